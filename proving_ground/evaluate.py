"""FOCUS against vanilla and the baselines on the proving ground, through the real lmms-eval
command line.

    python -m focus_eval.proving_ground.evaluate [--family llava_1_5] [--model DIR] [--control DIR]
                                                 [--out DIR] [--questions 500] [--seed 11]

--family picks the tiny model (FAMILIES: llava_1_5, llava_onevision) and with it the lmms-eval
model, the scenes and configs/proving_ground/{family}.yaml; --model defaults to its committed
checkpoint. --seed picks the questions: the test seed TEST_SEED by default, read once per recipe
(NOTES.md says when); every choice is made on DEV_SEED. Arguments that cannot work (a --model or
--control that is not a checkpoint of the family with weights, --questions below 1, an --out that
is a file) are reported in one line before anything runs (exit 2).

1. Writes the held-out questions (`scenes.build_questions`; the training uses other seeds) in
   V*Bench's schema, and their oracle copy, whose images are the GT crops (`train.gt_crop` of
   the targets' boxes, the boxes moved into the crop).
2. Runs `python -m focus_eval.lmms --config runs.yaml` (lmms-eval's own CLI, with an honest exit
   status) once, one run per row of the table, each `--model llava_1_5_focus (llava_ov_focus) --model_args
   pretrained=DIR,data_vstar=DIR,...` on our `vstar` task: vanilla (method=vanilla), the oracle
   (vanilla on the GT crops), FOCUS at n_steps 1, 2, 4, 8, the ablations of Table 3 at
   n_steps 4 (random map, K-K map, no ranking), the untrained-LM control (FOCUS on the
   checkpoint saved after stage A: trained tower, untrained projector and language model), and
   the baselines as Table 10 names them: ZoomEye Depth-1 (2 and 4 crops), Depth-2 (4 crops)
   and Depth-5 (4 crops, the full depth), ViCrop rel-att and grad-att (for a family trained on
   their prompts: Family.baselines). FOCUS runs take configs/proving_ground/{family}.yaml's
   `model_args`, the baselines its `baselines:` mapping (each method's own arguments).
3. Reads accuracy, search forward passes (`fp`) and ROI recall (`roi_recall`, focus_eval/recall.py)
   from lmms-eval's results. Runs with traces (`save_maps`) add, from the traces: top-ROI recall
   (`roi_recall_chosen`, the ROIs the answer was composed from) and where the map's argmax cell
   falls: in the GT box of the named target, or in another object or distractor (the map
   finding an object but not the named one).
4. Measures the existence AUCs of the check prompt through the adapter (`yes_no_logits`, FOCUS's
   own path): GT crop vs ANOTHER object's crop, and vs a crop showing no object, for the model
   and the control.
Writes `summary.json` and `table.md` to the output folder and prints the table; the last line is
`proving ground (FAMILY): vanilla A%, focus B% (n=N, fp=F, recall=R%)` (FOCUS at n_steps 4).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from focus_eval.proving_ground import CHECKPOINT, ONEVISION_CHECKPOINT, onevision, scenes, train
from focus_eval.proving_ground.train import YES, auc, build_probes, gt_crop

TASK = "vstar"
MAIN_STEPS = 4
DEV_SEED = 2  # questions every choice is made on
TEST_SEED = 11  # questions read once per recipe (seed 1, the old test seed, was read during the recipe's search)


@dataclass(frozen=True)
class Family:
    """A trained family of the proving ground: its lmms-eval model, committed checkpoint and scenes."""

    name: str  # model_wrappers family, and configs/proving_ground/{name}.yaml
    model: str  # lmms-eval model name
    checkpoint: Path
    trainer: str  # the module that trains it
    scene_size: tuple[int, int]
    cell: float  # px per relevance-grid cell of a full scene (GT crops are 3 cells)
    baselines: bool  # trained on ZoomEye's and ViCrop's prompts, so their rows run


FAMILIES = {
    "llava_1_5": Family("llava_1_5", "llava_1_5_focus", CHECKPOINT, "focus_eval.proving_ground.train",
                        scenes.SCENE_SIZE, train.CELL, baselines=True),
    "llava_onevision": Family("llava_onevision", "llava_ov_focus", ONEVISION_CHECKPOINT,
                              "focus_eval.proving_ground.onevision", onevision.SCENE_SIZE, onevision.CELL,
                              baselines=False),
}
LLAVA_1_5 = FAMILIES["llava_1_5"]


def method_options(method: str, family: Family = LLAVA_1_5) -> dict[str, Any]:
    """A method's model arguments for the tiny model: configs/proving_ground/{family}.yaml's
    `model_args` (FOCUS), its `baselines:` entry (zoomeye, vicrop), none for vanilla."""
    text = resources.files("focus_eval.configs").joinpath(f"proving_ground/{family.name}.yaml").read_text()
    spec = yaml.safe_load(text)
    if method == "focus":
        return dict(spec["model_args"])
    return dict(spec.get("baselines", {}).get(method, {}))


@dataclass(frozen=True)
class Row:
    name: str
    checkpoint: str  # "model" or "control"
    data: str  # "test" or "oracle"
    options: dict[str, Any] = field(default_factory=dict)
    traced: bool = False  # save_maps: traces for top-ROI recall and the argmax

    @property
    def method(self) -> str:
        return self.options.get("method", "focus")


MAIN = Row(f"FOCUS n_steps={MAIN_STEPS}", "model", "test", {"n_steps": MAIN_STEPS}, traced=True)
VANILLA = Row("vanilla", "model", "test", {"method": "vanilla"})
ROWS = (
    VANILLA,
    Row("oracle (vanilla on the GT crop)", "model", "oracle", {"method": "vanilla"}),
    *(Row(f"FOCUS n_steps={n}", "model", "test", {"n_steps": n}) for n in (1, 2)),
    MAIN,
    Row("FOCUS n_steps=8", "model", "test", {"n_steps": 8}),
    Row("random map", "model", "test", {"n_steps": MAIN_STEPS, "relevance": "random"}),
    Row("K-K map", "model", "test", {"n_steps": MAIN_STEPS, "relevance": "kk"}),
    Row("no ranking", "model", "test", {"n_steps": MAIN_STEPS, "ranking": "off"}),
    Row("untrained-LM control", "control", "test", {"n_steps": MAIN_STEPS}, traced=True),
    *(Row(f"ZoomEye Depth-{depth} ({split} crops)", "model", "test",
          {"method": "zoomeye", "zoomeye_depth": depth, "zoomeye_split": split}) for depth, split in ((1, 2), (1, 4), (2, 4))),
    Row("ZoomEye Depth-5 (4 crops)", "model", "test", {"method": "zoomeye"}),  # 5 caps nothing: the tree is 3 deep here
    *(Row(f"ViCrop {name}", "model", "test", {"method": "vicrop", "vicrop_map": name.replace("-", "_")})
      for name in ("rel-att", "grad-att")),
)


def xyxy(box: Sequence[float]) -> tuple[int, int, int, int]:
    x, y, w, h = box
    return int(x), int(y), int(x + w), int(y + h)


def write_data(folder: Path, questions: int, seed: int,
               family: Family = LLAVA_1_5) -> tuple[dict[str, Path], list[tuple[scenes.Scene, dict]]]:
    """The test set and its oracle copy (GT-crop images): ({"test": dir, "oracle": dir}, pairs)."""
    pairs = scenes.build_questions(questions, seed, family.scene_size)
    scenes.write_rows(folder / "test", [row for _, row in pairs])
    oracle = []
    for scene, row in pairs:
        box = gt_crop([xyxy(b) for b in row["bbox"]], family.cell, family.scene_size)
        oracle.append({**row, "image": {"bytes": scenes.png_bytes(scene.pil().crop(box)), "path": None},
                       "bbox": [[b[0] - box[0], b[1] - box[1], b[2], b[3]] for b in row["bbox"]]})
    scenes.write_rows(folder / "oracle", oracle)
    return {"test": folder / "test", "oracle": folder / "oracle"}, pairs


def lmms_eval_runs(rows: Sequence[Row], checkpoints: dict[str, Path], data: dict[str, Path], out: Path,
                   family: Family = LLAVA_1_5) -> list[dict]:
    """The entries of lmms-eval's --config file, one per row."""
    runs = []
    for index, row in enumerate(rows):
        args: dict[str, Any] = {"pretrained": checkpoints[row.checkpoint], "data_vstar": data[row.data]}
        args.update(method_options(row.method, family))
        if row.traced:
            args["save_maps"] = out / "traces" / str(index)
        args.update(row.options)
        runs.append({"model": family.model, "model_args": ",".join(f"{k}={v}" for k, v in args.items()), "tasks": TASK,
                     "batch_size": 1, "output_path": str(out / "results" / str(index)), "log_samples": True})
    return runs


def run_lmms_eval(runs: list[dict], out: Path, threads: int) -> int:
    """lmms-eval's CLI on all runs in one process; its log goes to out/lmms-eval.log."""
    config = out / "runs.yaml"
    config.write_text(yaml.safe_dump(runs, sort_keys=False))
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               OMP_NUM_THREADS=str(threads))
    with open(out / "lmms-eval.log", "w") as log:
        return subprocess.run([sys.executable, "-m", "focus_eval.lmms", "--config", str(config)], env=env,
                              stdout=log, stderr=subprocess.STDOUT).returncode


def sample_scores(folder: Path) -> dict[int, bool]:
    """doc_id -> answered correctly, from the run's samples log."""
    scores = {}
    for path in folder.rglob(f"*_samples_{TASK}.jsonl"):
        for line in path.read_text().splitlines():
            sample = json.loads(line)
            scores[sample["doc_id"]] = bool(sample["vstar_overall_acc"]["score"])
    return scores


def right_only_with_focus(focus: Path, vanilla: Path) -> list[int]:
    """doc_ids, in order, that the FOCUS run (results folder) answered right and the vanilla run wrong."""
    focus_right, vanilla_right = sample_scores(focus), sample_scores(vanilla)
    return [doc_id for doc_id in sorted(focus_right) if focus_right[doc_id] and vanilla_right.get(doc_id) is False]


def lmms_results(folder: Path) -> dict[str, Any] | None:
    """The vstar metrics of the run's results file ({"vstar_overall_acc": 41.2, ...}), None if absent."""
    found = sorted(folder.rglob("*_results.json"))
    if not found:
        return None
    metrics = json.loads(found[-1].read_text())["results"][TASK]
    return {key.split(",")[0]: value for key, value in metrics.items() if key.endswith(",none")}


# ---- readings from the traces ---------------------------------------------------------------


def argmax_cell(target: dict, size: tuple[int, int]) -> np.ndarray | None:
    """Box (x0, y0, x1, y1, original pixels) of the most relevant cell of a traced target's map,
    among the cells whose centre lies in the (width, height) image (not on the padding)."""
    relevance = np.asarray(target["relevance_map"], dtype=np.float64)
    if relevance.size == 0:
        return None
    boxes = np.asarray(target["cell_boxes"], dtype=np.float64)  # [h, w, 4]
    width, height = size
    cx, cy = (boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2
    in_image = (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)
    row, col = np.unravel_index(np.where(in_image, relevance, -np.inf).argmax(), relevance.shape)
    return boxes[row, col]


def inside(point: tuple[float, float], box: Sequence[float]) -> bool:
    return box[0] <= point[0] < box[2] and box[1] <= point[1] < box[3]


def trace_report(folder: Path, pairs: Sequence[tuple[scenes.Scene, dict]]) -> dict[str, Any]:
    """Means over questions of: top-ROI recall, map argmax (its cell's centre) in the named
    target's GT box, in another object or distractor, and the argmax cell overlapping the target's
    box (where cells are larger than objects, as OneVision's 103 px cells against 64-80 px objects,
    many targets hold no cell centre at all)."""
    chosen, on_target, on_other, overlapping = [], [], [], []
    for doc_id, (scene, row) in enumerate(pairs):
        path = folder / f"{TASK}_{doc_id}.json"
        if not path.exists():
            continue
        trace = json.loads(path.read_text())
        if trace.get("roi_recall_chosen") is not None:
            chosen.append(trace["roi_recall_chosen"])
        maps = {target["name"]: argmax_cell(target, scene.size) for target in trace["targets"]}
        for name, box in zip(row["target_object"], row["bbox"]):
            cell, gt = maps.get(name), xyxy(box)
            point = None if cell is None else ((cell[0] + cell[2]) / 2, (cell[1] + cell[3]) / 2)
            overlapping.append(cell is not None and cell[0] < gt[2] and gt[0] < cell[2] and cell[1] < gt[3]
                               and gt[1] < cell[3])
            on_target.append(point is not None and inside(point, gt))
            others = [t.box for t in (*scene.objects, *scene.distractors) if t.box != gt]
            on_other.append(point is not None and not inside(point, gt) and any(inside(point, b) for b in others))
    return {"top_roi": _mean(chosen), "argmax_on_target": _mean(on_target),
            "argmax_on_other": _mean(on_other), "argmax_cell_on_target": _mean(overlapping)}


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


# ---- existence AUC through the adapter --------------------------------------------------------


def existence_aucs(checkpoint: Path, pairs: Sequence[tuple[scenes.Scene, dict]], seed: int,
                   cell: float = train.CELL) -> dict[str, float]:
    """Existence-check AUCs on held-out probes of the test scenes, through load_adapter and
    yes_no_logits (the processor path and the check FOCUS runs)."""
    import torch

    from focus_eval.model_wrappers import load_adapter

    adapter = load_adapter(str(checkpoint), device="cpu")
    scene_list = [scene for scene, _ in pairs]
    probes = [p for p in build_probes(scene_list, seed, cell) if p.kind.startswith("exist")]
    logits = []
    for start in range(0, len(probes), 32):
        batch = probes[start:start + 32]
        yes_no = adapter.yes_no_logits([scene_list[p.scene].pil().crop(p.box) for p in batch], [p.prompt for p in batch])
        logits.append(yes_no.logits)
    confidence = torch.softmax(torch.cat(logits), -1)[:, 0].tolist()  # P(Yes) of the Yes/No pair
    by_kind: dict[str, list[float]] = {}
    for probe, value in zip(probes, confidence):
        by_kind.setdefault(probe.kind, []).append(value)
    assert all(p.answer == YES for p in probes if p.kind == "exist_gt")
    return {"auc_other": auc(by_kind["exist_gt"], by_kind.get("exist_other", [])),
            "auc_empty": auc(by_kind["exist_gt"], by_kind.get("exist_random", []))}


# ---- the table ---------------------------------------------------------------------------------


def number(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "N/A" if value is None or value != value else f"{value * scale:.{digits}f}"


def table(rows: Sequence[Row], results: dict[str, dict | None], traces: dict[str, dict]) -> str:
    header = ["row", "accuracy %", "attributes %", "relative %", "fp", "bp", "fp_total", "ROI recall %", "top ROI %",
              "argmax on target %", "argmax on another object %", "argmax cell on target %"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        found, traced = results.get(row.name) or {}, traces.get(row.name, {})
        lines.append("| " + " | ".join([
            row.name, number(found.get("vstar_overall_acc")), number(found.get("vstar_direct_attributes_acc")),
            number(found.get("vstar_relative_position_acc")), number(found.get("fp"), digits=2),
            number(found.get("bp"), digits=2), number(found.get("fp_total"), digits=2), number(found.get("roi_recall"), 100),
            number(traced.get("top_roi"), 100), number(traced.get("argmax_on_target"), 100),
            number(traced.get("argmax_on_other"), 100), number(traced.get("argmax_cell_on_target"), 100)]) + " |")
    return "\n".join(lines)


def focus_only_example(out: Path, rows: Sequence[Row]) -> Path | None:
    """Copy the picture of the first question FOCUS (n_steps 4) got right and vanilla wrong."""
    if MAIN not in rows or VANILLA not in rows:
        return None
    for doc_id in right_only_with_focus(*(out / "results" / str(rows.index(row)) for row in (MAIN, VANILLA))):
        picture = out / "traces" / str(rows.index(MAIN)) / f"{TASK}_{doc_id}.png"
        if picture.exists():
            return Path(shutil.copy(picture, out / "right_only_with_focus.png"))
    return None


def family_rows(family: Family, rows: Sequence[Row] = ROWS) -> list[Row]:
    """The rows a family runs: the baselines' only where it was trained on their prompts."""
    return [row for row in rows if family.baselines or row.method in ("focus", "vanilla")]


def evaluate(model: Path, control: Path | None, out: Path, questions: int, seed: int,
             rows: Sequence[Row] | None = None, threads: int = 1, family: Family = LLAVA_1_5) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    data, pairs = write_data(out / "data", questions, seed, family)
    rows = [row for row in (family_rows(family) if rows is None else rows)
            if row.checkpoint == "model" or control is not None]
    status = run_lmms_eval(lmms_eval_runs(rows, {"model": model, "control": control}, data, out, family), out, threads)
    results = {row.name: lmms_results(out / "results" / str(i)) for i, row in enumerate(rows)}
    traces = {row.name: trace_report(out / "traces" / str(i), pairs) for i, row in enumerate(rows) if row.traced}
    aucs = {"model": existence_aucs(model, pairs, seed, family.cell)}
    if control is not None:
        aucs["control"] = existence_aucs(control, pairs, seed, family.cell)
    example = focus_only_example(out, rows)
    summary = {"family": family.name, "questions": questions, "seed": seed, "lmms_eval_exit_status": status,
               "rows": [row.name for row in rows], "results": results,
               "traces": traces,
               "existence_auc": aucs, "example": None if example is None else str(example)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "table.md").write_text(table(rows, results, traces) + "\n")
    return summary


def last_line(summary: dict[str, Any]) -> str:
    vanilla, focus = summary["results"].get(VANILLA.name) or {}, summary["results"].get(MAIN.name) or {}
    return (f"proving ground ({summary['family']}): vanilla {number(vanilla.get('vstar_overall_acc'))}%, "
            f"focus {number(focus.get('vstar_overall_acc'))}% (n={summary['questions']}, "
            f"fp={number(focus.get('fp'), digits=2)}, recall={number(focus.get('roi_recall'), 100)}%)")


def checkpoint_problem(path: Path, family: Family = LLAVA_1_5) -> str | None:
    """Why `path` is not a trained checkpoint of `family` (None when it is)."""
    from focus_eval.model_wrappers import check_local_checkpoint

    try:
        check_local_checkpoint(path.resolve(), family.name)
    except ValueError as error:
        return str(error)
    if not any((path / name).is_file() for name in ("model.safetensors", "pytorch_model.bin")):
        return f"{path} has no model weights (model.safetensors): not a trained checkpoint"
    return None


def main(argv: list[str] | None = None) -> int:
    from focus_eval.outputs import OutputLocationError, check_writable_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=sorted(FAMILIES), default=LLAVA_1_5.name)
    parser.add_argument("--model", type=Path, help="the trained checkpoint (default: the family's committed one)")
    parser.add_argument("--control", type=Path, help="the untrained-LM control checkpoint (train.py --control)")
    parser.add_argument("--out", type=Path, default=Path("runs/proving_ground"))
    parser.add_argument("--questions", type=scenes.positive_int, default=500)
    parser.add_argument("--seed", type=int, default=TEST_SEED,
                        help=f"seed of the questions (default: the test seed {TEST_SEED}; choices are made on "
                             f"{DEV_SEED}; the training draws its scenes from other random streams)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    family = FAMILIES[args.family]
    model = args.model or family.checkpoint
    for name, path in (("--model", model), ("--control", args.control)):
        problem = path is not None and checkpoint_problem(path, family)
        if problem:
            parser.exit(2, f"{parser.prog}: error: {name}: {problem}\n")
    try:
        check_writable_dir(args.out)
    except OutputLocationError as error:
        parser.exit(2, f"{parser.prog}: error: --out: {error}\n")
    summary = evaluate(model, args.control, args.out, args.questions, args.seed, threads=args.threads, family=family)
    print((args.out / "table.md").read_text())
    aucs = summary["existence_auc"]
    print("existence AUC (check prompt, GT crop vs another object's crop / vs an empty crop): "
          + "; ".join(f"{name} {number(a['auc_other'], digits=3)} / {number(a['auc_empty'], digits=3)}"
                      for name, a in aucs.items()))
    if summary["example"]:
        print(f"a question only FOCUS got right: {summary['example']}")
    if summary["lmms_eval_exit_status"]:
        print(f"lmms-eval exited with status {summary['lmms_eval_exit_status']}: see {args.out / 'lmms-eval.log'}")
    print(last_line(summary))
    return 1 if summary["lmms_eval_exit_status"] else 0


if __name__ == "__main__":
    sys.exit(main())
