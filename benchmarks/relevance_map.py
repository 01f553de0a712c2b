"""Speed and memory of the relevance map and the ROI proposals at LLaVA-OneVision-7B size.

Relevance map: the cache of the 8 selected layers (of 28) as the adapter hands it over,
4 kv heads x 128, a 7,400-token sequence with 7,269 image tokens (a 1080x1920 image: the 27x27
base view, then the 60x108 local grid with a newline token per row), 3 target tokens,
float32 on CPU (and bfloat16 for ours). focus_eval.methods.focus.relevance.object_relevance_map against the literal Fig. 7
transcription (tests/fig7_literal.py) on the same input; the literal one only loops over
those 8 layers (Fig. 7 as written would build X for all 28, 3.5x more).

Each variant runs in a fresh subprocess with its input already allocated; peak extra memory
is VmHWM minus the resident size just before the call, with the high-water mark reset
through /proc/self/clear_refs before every call (focus_eval.counters.Meter), Linux only.

Then ROI proposal + NMS (focus_eval.methods.focus.proposals.propose_rois) on a 60x108 map with k = 30.

Usage: python benchmarks/relevance_map.py   (about a minute on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from focus_eval.config import FocusConfig
from focus_eval.counters import Meter
from focus_eval.methods.focus.maps import to_grid
from focus_eval.methods.focus.proposals import propose_rois
from focus_eval.protocol import GridGeometry
from focus_eval.methods.focus.relevance import object_relevance_map

ROOT = Path(__file__).resolve().parents[1]
LAYERS, HEADS, SEQ, HEAD_DIM = 8, 4, 7400, 128
GRID = (60, 108)  # local grid of a 1080x1920 image: 60 rows of 108 cells + 1 newline token
VISUAL_START = 740  # after the system prompt and the 27x27 base view
TARGETS = (7385, 7386, 7387)

VARIANTS = {"focus_eval": "object_relevance_map", "focus_eval_bf16": "  same, bfloat16 input",
            "fig7_literal": "Fig. 7 literal"}
MAP_SECONDS, MAP_EXTRA_MB, PROPOSAL_MS, LITERAL_MIN_MB = 0.2, 100.0, 20.0, 1024.0


def make_inputs():
    generator = torch.Generator().manual_seed(0)
    # noise plus a shared direction per (layer, head), as real value vectors have
    values = torch.randn(LAYERS, HEADS, SEQ, HEAD_DIM, generator=generator)
    values += 2.0 * torch.randn(LAYERS, HEADS, 1, HEAD_DIM, generator=generator)
    rows, cols = GRID
    offsets = torch.arange(rows * (cols + 1)).reshape(rows, cols + 1)[:, :cols].reshape(-1)  # skip newlines
    return values, torch.tensor(TARGETS), VISUAL_START + offsets


def worker(variant: str, runs: int) -> None:
    values, targets, visual = make_inputs()
    if variant == "focus_eval_bf16":
        values = values.to(torch.bfloat16)
    if variant.startswith("focus_eval"):
        def run():
            return object_relevance_map(values, targets, visual)
    else:
        sys.path.insert(0, str(ROOT / "tests"))
        from fig7_literal import fig7_relevance_map

        def run():
            out = fig7_relevance_map(values, targets, visual, range(LAYERS))
            return out / out.sum()

    seconds, extra_bytes = [], []
    for _ in range(runs):
        baseline = Meter().finish().peak_mem_gb  # right after a reset the peak is the current size
        meter = Meter()
        start = time.perf_counter()
        out = run()
        seconds.append(time.perf_counter() - start)
        extra_bytes.append((meter.finish().peak_mem_gb - baseline) * 1024**3)
        del out
    result = run()
    json.dump({"seconds": seconds, "extra_bytes": extra_bytes, "map": result.tolist()}, sys.stdout)


def measure(variant: str, runs: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", variant, "--runs", str(runs)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def proposal_benchmark(runs: int) -> tuple[float, int]:
    rng = np.random.default_rng(0)
    rows, cols = GRID
    r, c = np.mgrid[0:rows, 0:cols]
    relevance = rng.random(GRID) * 1e-5  # noise floor plus a few blobs, like a real map
    for _ in range(12):
        cr, cc, width = rng.uniform(0, rows), rng.uniform(0, cols), rng.uniform(1.0, 4.0)
        relevance += rng.random() * np.exp(-((r - cr) ** 2 + (c - cc) ** 2) / (2 * width**2))
    relevance = to_grid(torch.from_numpy(relevance / relevance.sum()).reshape(-1), GRID)
    geometry = GridGeometry.uniform((1920, 1080), GRID)
    config = FocusConfig(k=30, s_min=3, s_max=5, s_dist=2.0)
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        rois = propose_rois(relevance, geometry, config)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings), len(rois)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.runs)
        return

    print(f"relevance map: {LAYERS} selected layers x {HEADS} kv heads x {SEQ} tokens x {HEAD_DIM}, "
          f"{GRID[0]}x{GRID[1]} visual tokens, {len(TARGETS)} target tokens, float32, "
          f"{torch.get_num_threads()} torch threads")
    results = {variant: measure(variant, runs=3 if variant == "fig7_literal" else 9) for variant in VARIANTS}
    summary = {}
    for variant, result in results.items():
        median = statistics.median(result["seconds"])
        peak_mb = max(result["extra_bytes"]) / 1024**2
        summary[variant] = (median, peak_mb)
        print(f"  {VARIANTS[variant]:22s} median {median * 1e3:9.1f} ms over {len(result['seconds'])} runs, "
              f"peak extra {peak_mb:8.1f} MB")
    ours, literal = results["focus_eval"], results["fig7_literal"]
    (ours_s, ours_mb), (literal_s, literal_mb) = summary["focus_eval"], summary["fig7_literal"]
    difference = float(np.abs(np.array(ours["map"]) - np.array(literal["map"])).max())
    print(f"  literal / ours: time {literal_s / ours_s:.0f}x, memory {literal_mb / ours_mb:.0f}x; "
          f"max |difference| of the maps {difference:.2e} (entries ~{1 / len(ours['map']):.1e})")
    for variant in ("focus_eval", "focus_eval_bf16"):
        seconds, extra_mb = summary[variant]
        label = "float32" if variant == "focus_eval" else "bfloat16"
        print(f"  target: map < {MAP_SECONDS} s ({label}): {seconds:.3f} s {verdict(seconds < MAP_SECONDS)}")
        print(f"  target: map < {MAP_EXTRA_MB:.0f} MB extra ({label}): {extra_mb:.1f} MB "
              f"{verdict(extra_mb < MAP_EXTRA_MB)}")
    print(f"  target: literal needs gigabytes (> {LITERAL_MIN_MB:.0f} MB): {literal_mb:.0f} MB "
          f"{verdict(literal_mb > LITERAL_MIN_MB)}")

    median, count = proposal_benchmark(runs=200)
    print(f"ROI proposal + NMS: {GRID[0]}x{GRID[1]} map, k=30, s_min=3, s_max=5, s_dist=2: "
          f"median {median * 1e3:.2f} ms over 200 runs, {count} ROIs")
    print(f"  target: proposals < {PROPOSAL_MS:.0f} ms: {verdict(median * 1e3 < PROPOSAL_MS)}")


if __name__ == "__main__":
    main()
