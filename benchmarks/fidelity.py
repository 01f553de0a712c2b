"""What issue 9's fidelity changes do to the search, measured side by side in one run.

"before" runs the old defaults through their switches (anchor_selection=greedy,
expansion_reference=global, final_texts=False, final_images_alone=False, option_format=option,
option_score=sum; LLaVA-1.5 image_aspect=crop); "after" runs the new defaults. The type-2
singular and the target offset are fixes without a switch and are in both. Every number is
computed here, per question, from the pipeline's traces and counters:

1. Demo data: the tiny untrained LLaVA-OneVision of `make demo` on the tiny V*Bench (with its
   GT boxes) and HRBench-4K copies at the benchmarks' sizes: forward passes of the search per
   question, ROIs per target (proposed, checked), ROI side in pixels, the regions the final
   input shows (multi-image: the full view + the crops; LLaVA-1.5: the crop, union or canvas
   tiles), and the V*Bench ROI recall (focus_eval.recall: searched / proposed / chosen). The
   model is untrained: its maps are near uniform, its existence checks and answers noise.
2. Planted images: tests/fake_adapter.py's adapter, whose value cache carries the target's
   vector on the cells of the red squares (plus noise), on V*Bench-sized scenes (2246x1582)
   with a LLaVA-1.5-like 24x24 grid (one final image) and a OneVision-like 40x56 grid (global
   view + crops); each object fills 90 % of
   one cell; the existence check says "Yes" when a crop shows at least a quarter of an object's
   red pixels (`Planted`). Type 1: one red square and three blue decoys that outrank it on the
   map; type 2 ("how many"): three red squares. Same columns; recall against the red squares.
3. LLaVA-1.5 on a 2000x400 image with a target planted at the far left (the tiny checkpoint with
   the hub's centre-crop processor; the target word's embedding planted as the image features of
   its cells, as in tests/adapter_checks.py): how much of the width the map covers and whether
   the top proposal lies on the target, crop vs pad.
4. ROI expansion readings on the planted maps of section 2 (n noisy scenes): the share of ROIs
   that grow to s_max and the share whose size changes between thresholds 0.3 and 0.7
   (Table 12b says: none that matters), per reading.

Usage: python benchmarks/fidelity.py [--json out.json]   (a few minutes on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from transformers.utils.logging import disable_progress_bar

from focus_eval.config import load_config
from focus_eval.images import load_image
from focus_eval.methods.focus.maps import to_grid
from focus_eval.model_wrappers import load_adapter
from focus_eval.model_wrappers.tiny import build_tiny_checkpoint
from focus_eval.pipeline import Pipeline
from focus_eval.methods.focus.proposals import propose_rois
from focus_eval.recall import add_recall
from focus_eval.methods.focus.relevance import DegenerateRelevanceWarning, object_relevance_map
from focus_eval.tasks import tiny_data
from focus_eval.tasks.hrbench import utils as hrbench
from focus_eval.tasks.vstar import utils as vstar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from fake_adapter import FakeAdapter, colour_fraction, scene  # noqa: E402  the planted-cache adapter of the tests

BEFORE = {"anchor_selection": "greedy", "expansion_reference": "global", "final_texts": False,
          "final_images_alone": False, "option_format": "option", "option_score": "sum"}
SETTINGS = {"before": BEFORE, "after": {}}
READINGS = ("global", "max", "anchor", "mean")
VSTAR_SIZE = (2246, 1582)
VSTAR_INSTRUCTION = "\nAnswer with the option's letter from the given choices directly."  # the task YAMLs'
HR_INSTRUCTION = "Answer the option letter directly."
QUESTION = "What is the colour of the red square?\n(A) red (B) blue\nAnswer with the option's letter directly."
COUNT = "How many red squares are there?\n(A) 3 (B) 2\nAnswer with the option's letter directly."


class Planted(FakeAdapter):
    """FakeAdapter whose existence check sees the target colour when a crop holds at least
    `min_pixels` pixels of it, whatever the crop's size."""

    def __init__(self, min_pixels: int, **options):
        super().__init__(**options)
        self.min_pixels = min_pixels

    def _logits(self, image, target):
        seen = colour_fraction(image, target.split()[0]) * image.width * image.height >= self.min_pixels
        return torch.tensor([2.0, -2.0]) if seen else torch.tensor([-2.0, 2.0])


def question_stats(trace) -> dict:
    """The per-question numbers of one trace."""
    rois = [roi for target in trace.targets for roi in target.rois]
    sides = [max(r.box[2] - r.box[0], r.box[3] - r.box[1]) for r in rois]
    chosen = [t.rois[i] for t in trace.targets for i in t.chosen]
    return {
        "fp": trace.counters.fp,
        "targets": len(trace.targets),
        "rois": [len(t.rois) for t in trace.targets],
        "checked": [sum(r.confidence is not None for r in t.rois) for t in trace.targets],
        "roi_side": sides,
        "chosen_side": [max(r.box[2] - r.box[0], r.box[3] - r.box[1]) for r in chosen],
        "final_regions": len(trace.final_boxes),
        "map_cells": [len(t.relevance_map) * len(t.relevance_map[0]) for t in trace.targets if t.relevance_map],
        "degenerate": sum(any("uniform" in note for note in t.notes) for t in trace.targets),
        "recall": [trace.roi_recall, trace.roi_recall_proposed, trace.roi_recall_chosen],
    }


def summary(rows: list[dict]) -> dict:
    """Means over questions (per target for ROI counts), medians of ROI sides."""
    def mean(values):
        values = [v for v in values if v is not None]
        return statistics.fmean(values) if values else None

    def median(values):
        return statistics.median(values) if values else None

    return {
        "questions": len(rows),
        "map cells": median([n for r in rows for n in r["map_cells"]]),
        "fp/question": mean([r["fp"] for r in rows]),
        "ROIs/target": mean([n for r in rows for n in r["rois"]]),
        "checked/target": mean([n for r in rows for n in r["checked"]]),
        "ROI side px": median([s for r in rows for s in r["roi_side"]]),
        "chosen side px": median([s for r in rows for s in r["chosen_side"]]),
        "final regions": mean([r["final_regions"] for r in rows]),
        "recall": mean([r["recall"][0] for r in rows]),
        "recall proposed": mean([r["recall"][1] for r in rows]),
        "recall chosen": mean([r["recall"][2] for r in rows]),
        "degenerate maps": sum(r["degenerate"] for r in rows),
    }


def demo_data(workdir: Path) -> dict:
    """Section 1: the tiny untrained OneVision on the tiny V*Bench and HRBench-4K."""
    adapter = load_adapter(build_tiny_checkpoint("llava_onevision", workdir / "tiny-ov"), device="cpu")
    out = {}
    for key in ("vstar", "hrbench4k"):
        rows = tiny_data.build_rows(key)
        truths = _truths(rows) if key == "vstar" else [([], [])] * len(rows)
        for name, overrides in SETTINGS.items():
            config = load_config("llava_onevision", key, target_max_new_tokens=16, **overrides)
            pipeline = Pipeline(adapter, config)
            stats = []
            for row, (boxes, names) in zip(rows, truths):
                image, prompt = _image_and_prompt(key, row)
                trace = pipeline.answer(image, prompt, max_new_tokens=4).trace
                add_recall(trace, boxes, names)
                stats.append(question_stats(trace))
            out[f"{key} {name}"] = summary(stats)
    return out


def _truths(rows: list[dict]) -> list:
    import datasets

    data = datasets.Dataset.from_list(rows, features=tiny_data.features("vstar"))
    return vstar.ground_truth(data, vstar.VSTAR.schema)


def _image_and_prompt(key: str, row: dict):
    """The image and the prompt the task YAML builds."""
    if key == "vstar":
        return load_image(row["image"]["bytes"]), vstar.doc_to_text(row, {"post_prompt": VSTAR_INSTRUCTION})
    return load_image(row["image"]), hrbench.doc_to_text({**row, "focus_dataset": key}, {"post_prompt": HR_INSTRUCTION})


def planted(grid: tuple[int, int], family: str, multi_image: bool) -> dict:
    """Section 2: planted scenes, type 1 with decoys and type 2 with three squares; objects at
    the same relative places on both grids, each filling 90 % of its cell."""
    def cell(fx: float, fy: float) -> tuple[int, int, int, int]:
        width, height = VSTAR_SIZE[0] / grid[1], VSTAR_SIZE[1] / grid[0]
        col, row = int(fx * grid[1]), int(fy * grid[0])
        return (round((col + 0.05) * width), round((row + 0.05) * height),
                round((col + 0.95) * width), round((row + 0.95) * height))

    red = [cell(0.67, 0.57)]
    decoys = [cell(0.1, 0.12), cell(0.85, 0.2), cell(0.27, 0.82)]
    many = [cell(0.13, 0.25), cell(0.53, 0.45), cell(0.85, 0.76)]
    area = (red[0][2] - red[0][0]) * (red[0][3] - red[0][1])
    cases = [
        ("type 1", scene(VSTAR_SIZE, {"red": red, "blue": decoys}), QUESTION, red,
         dict(decoys=decoys, square_noise=0.5)),
        ("type 2", scene(VSTAR_SIZE, {"red": many}), COUNT, many,
         dict(reply="So I need the information about the following objects: all red squares.")),
    ]
    out = {}
    for label, image, prompt, gt, options in cases:
        for name, overrides in SETTINGS.items():
            adapter = Planted(area // 4, grid_shape=grid, multi_image=multi_image, **options)
            config = load_config(family, "vstar", layers="0-4", reference_num_layers=4, **overrides)
            trace = Pipeline(adapter, config).answer(image, prompt).trace
            add_recall(trace, gt)
            out[f"{label} {name}"] = summary([question_stats(trace)])
    return out


def far_left_target(workdir: Path) -> dict:
    """Section 3: tiny LLaVA-1.5 (hub-style CLIP processor, 12x12 grid) and a 2000x400 image with
    the target at x < 333."""
    import importlib

    checks = importlib.import_module("adapter_checks")
    checkpoint = build_tiny_checkpoint("llava_1_5", workdir / "tiny-llava", image_size=168)
    image = checks.noise_image(2000, 400)
    target_box = (0, 0, 333, 400)
    out = {}
    for name, aspect in (("before (crop)", "crop"), ("after (pad)", "pad")):
        adapter = load_adapter(checkpoint, device="cpu", image_aspect=aspect)
        prompt = checks.existence_prompt("umbrella")
        geometry = adapter.prefill(image, prompt, "umbrella", [0]).geometry
        boxes = geometry.cell_boxes
        covered = (max(boxes[..., 0].min(), 0), min(boxes[..., 2].max(), 2000))
        planted = (boxes[..., 0] < target_box[2]) & (boxes[..., 2] > 0) & (boxes[..., 1] < 400) & (boxes[..., 3] > 0)
        rois, hit = [], False
        if planted.any():
            (token,) = adapter.tokenizer(" umbrella", add_special_tokens=False)["input_ids"]
            embedding = adapter.model.get_input_embeddings().weight[token].detach()

            def plant(features):
                features = features.clone()
                features[..., torch.from_numpy(planted).flatten(), :] = embedding
                return features

            config = load_config("llava_1_5", "vstar")
            with adapter.edit_image_features(plant):
                prefill = adapter.prefill(image, prompt, "umbrella", config.layer_range(adapter.num_layers))
            grid = to_grid(object_relevance_map(prefill.values, prefill.target_positions, prefill.visual_positions),
                           prefill.geometry.grid_shape)
            rois = propose_rois(grid, prefill.geometry, config)
            hit = rois[0].box[0] < target_box[2]
        out[name] = {"map covers x": [round(float(v)) for v in covered],
                     "cells over the target": int(planted.sum()),
                     "top ROI on the target": hit, "top ROI box": list(rois[0].box) if rois else None}
    return out


def expansion_readings(scenes: int = 12) -> dict:
    """Section 4: planted maps (24x24 over a V*Bench-sized image, objects of 100-250 px, noisy
    value caches) through each reading of the expansion score at thresholds 0.3 and 0.7."""
    rng = np.random.default_rng(0)
    maps = []
    for index in range(scenes):
        side = int(rng.integers(100, 250))
        x, y = int(rng.integers(0, VSTAR_SIZE[0] - side)), int(rng.integers(0, VSTAR_SIZE[1] - side))
        adapter = FakeAdapter(grid_shape=(24, 24), square_noise=float(rng.uniform(0.2, 1.0)))
        image = scene(VSTAR_SIZE, {"red": [(x, y, x + side, y + side)]})
        prefill = adapter.prefill(image, "Is there a red square in the image?", "red square", range(4))
        with warnings.catch_warnings():
            warnings.simplefilter("error", DegenerateRelevanceWarning)
            relevance = object_relevance_map(prefill.values, prefill.target_positions, prefill.visual_positions)
        maps.append((to_grid(relevance, prefill.geometry.grid_shape), prefill.geometry))
    out = {}
    for reading in READINGS:
        at_max, changed, total = 0, 0, 0
        for grid, geometry in maps:
            base = load_config("llava_1_5", "vstar", expansion_reference=reading)
            low = propose_rois(grid, geometry, base.replace(expansion_threshold=0.3))
            high = propose_rois(grid, geometry, base.replace(expansion_threshold=0.7))
            sizes_low = {r.anchor: r.cells for r in low}
            for roi in high:
                total += 1
                at_max += max(roi.cells[2] - roi.cells[0], roi.cells[3] - roi.cells[1]) == base.s_max
                changed += sizes_low.get(roi.anchor) != roi.cells
        out[reading] = {"ROIs": total, "at s_max (t=0.7)": round(at_max / total, 3),
                        "changed 0.3 vs 0.7": round(changed / total, 3)}
    return out


def table(title: str, results: dict) -> list[str]:
    columns = list(next(iter(results.values())))
    lines = [f"\n{title}", "| run | " + " | ".join(columns) + " |", "|" + " --- |" * (len(columns) + 1)]
    for name, values in results.items():
        lines.append(f"| {name} | " + " | ".join(_cell(values[c]) for c in columns) + " |")
    return lines


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "N/A" if value is None else str(value)


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--sections", default="1,2,3,4", help="which sections to run, e.g. 2,4")
    args = parser.parse_args(argv)
    disable_progress_bar()
    torch.manual_seed(0)
    sections = {
        "1": {"1. demo data: tiny untrained LLaVA-OneVision, tiny V*Bench (GT boxes) and HRBench-4K": demo_data},
        "2": {"2a. planted: LLaVA-1.5 config, 24x24 grid, single image, 2246x1582":
              lambda _: planted((24, 24), "llava_1_5", multi_image=False),
              "2b. planted: OneVision config, 40x56 grid, multi-image, 2246x1582":
              lambda _: planted((40, 56), "llava_onevision", multi_image=True)},
        "3": {"3. LLaVA-1.5, 2000x400 image, target planted at x < 333": far_left_target},
        "4": {"4. expansion readings on 12 planted 24x24 maps (LLaVA-1.5 V*Bench config)":
              lambda _: expansion_readings()},
    }
    with tempfile.TemporaryDirectory() as workdir:
        results = {title: run(Path(workdir)) for key in args.sections.split(",")
                   for title, run in sections[key.strip()].items()}
    lines = [line for title, values in results.items() for line in table(title, values)]
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return lines


if __name__ == "__main__":
    main()
