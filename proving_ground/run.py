"""`make proving-ground`: train each family's tiny model once per seed, evaluate every checkpoint
on the same questions, and report each row as the mean and spread over the seeds.

    python -m focus_eval.proving_ground.run [--families llava_1_5 llava_onevision] [--seeds 0 1 2]
        [--out runs/proving_ground] [--threads 1] [--jobs 1] [--questions 300] [--question-seed 11]

Seed N of a family trains into OUT/FAMILY/seed-N/model (and its untrained-LM control,
OUT/FAMILY/seed-N/control) with the family's trainer (train.py, onevision.py) and is evaluated into
OUT/FAMILY/seed-N/eval with evaluate.py; --jobs seeds run at once, each on --threads threads. A seed
whose checkpoint is already trained (training.json) is not retrained, and an evaluation whose
summary.json has the same questions is not re-run, so an interrupted run resumes. Writes
OUT/FAMILY/table.md (mean ± sample sd over the seeds, and each seed's value) and
OUT/FAMILY/summary.json; the last lines are evaluate.py's, of the means, one per family.

Seed 0 with --threads 1 is a family's committed checkpoint (evaluate.FAMILIES, the same bytes but
training.json's timings): the first seed, fixed before any result was seen, not the best one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from focus_eval.proving_ground import evaluate, scenes

METRICS = (("accuracy %", "vstar_overall_acc", 1.0, 1), ("attributes %", "vstar_direct_attributes_acc", 1.0, 1),
           ("relative %", "vstar_relative_position_acc", 1.0, 1), ("fp", "fp", 1.0, 2), ("bp", "bp", 1.0, 2),
           ("fp_total", "fp_total", 1.0, 2), ("ROI recall %", "roi_recall", 100.0, 1))
TRACED = (("top ROI %", "top_roi"), ("argmax on target %", "argmax_on_target"),
          ("argmax on another object %", "argmax_on_other"), ("argmax cell on target %", "argmax_cell_on_target"))


def run_seed(family: evaluate.Family, seed: int, out: Path, threads: int, questions: int,
             question_seed: int) -> dict[str, Any]:
    """Train (unless trained) and evaluate (unless evaluated on these questions) one seed; its summary."""
    folder = out / family.name / f"seed-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    python = [sys.executable, "-u", "-m"]
    if not (folder / "model" / "training.json").exists():
        with open(folder / "train.log", "w") as log:
            subprocess.run([*python, family.trainer, str(folder / "model"), "--control",
                            str(folder / "control"), "--seed", str(seed), "--threads", str(threads)],
                           stdout=log, stderr=subprocess.STDOUT, check=True)
    summary_path = folder / "eval" / "summary.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        if (summary["questions"], summary["seed"]) == (questions, question_seed):
            return summary
    with open(folder / "eval.log", "w") as log:
        subprocess.run([*python, "focus_eval.proving_ground.evaluate", "--family", family.name,
                        "--model", str(folder / "model"), "--control",
                        str(folder / "control"), "--out", str(folder / "eval"), "--questions", str(questions),
                        "--seed", str(question_seed), "--threads", str(threads)],
                       stdout=log, stderr=subprocess.STDOUT)
    return json.loads(summary_path.read_text())


def spread(values: Sequence[float | None], scale: float, digits: int) -> str:
    """"mean ± sd (a, b, c)" of the seeds' values; N/A where a seed has none."""
    if not values or any(v is None for v in values):
        return "N/A"
    scaled = [v * scale for v in values]
    sd = statistics.stdev(scaled) if len(scaled) > 1 else 0.0
    each = ", ".join(f"{v:.{digits}f}" for v in scaled)
    return f"{statistics.mean(scaled):.{digits}f} ± {sd:.{digits}f} ({each})"


def seeds_table(seeds: Sequence[int], summaries: Sequence[dict[str, Any]]) -> str:
    header = ["row", *(name for name, *_ in METRICS), *(name for name, _ in TRACED)]
    lines = [f"mean ± sd over training seeds {', '.join(map(str, seeds))} (each seed's value in brackets)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in summaries[0]["rows"]:
        cells = [row]
        for _, key, scale, digits in METRICS:
            cells.append(spread([(s["results"].get(row) or {}).get(key) for s in summaries], scale, digits))
        for _, key in TRACED:
            traced = [s["traces"].get(row) for s in summaries]
            cells.append("N/A" if None in traced else spread([t.get(key) for t in traced], 100.0, 1))
        lines.append("| " + " | ".join(cells) + " |")
    aucs = {name: [s["existence_auc"][name] for s in summaries if name in s["existence_auc"]]
            for name in ("model", "control")}
    lines += ["", "existence AUC (check prompt, GT crop vs another object's crop / vs an empty crop): " + "; ".join(
        f"{name} {spread([a['auc_other'] for a in found], 1.0, 3)} / {spread([a['auc_empty'] for a in found], 1.0, 3)}"
        for name, found in aucs.items() if found)]
    return "\n".join(lines)


def mean_summary(summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """evaluate.py's summary shape with each row's metrics averaged over the seeds (for last_line)."""
    results = {}
    for row in summaries[0]["rows"]:
        found = [s["results"].get(row) or {} for s in summaries]
        keys = set.intersection(*(set(f) for f in found)) if found else set()
        results[row] = {k: statistics.mean(f[k] for f in found) for k in keys
                        if all(isinstance(f[k], (int, float)) for f in found)}
    return {"family": summaries[0]["family"], "questions": summaries[0]["questions"], "results": results}


def main(argv: list[str] | None = None) -> int:
    from focus_eval.outputs import OutputLocationError, check_writable_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", choices=sorted(evaluate.FAMILIES), default=list(evaluate.FAMILIES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/proving_ground"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads per seed (1: the committed checkpoint)")
    parser.add_argument("--jobs", type=scenes.positive_int, default=1, help="seeds trained and evaluated at once")
    # 300, not evaluate.py's 500: ZoomEye's rows take ~70 forward passes per question
    parser.add_argument("--questions", type=scenes.positive_int, default=300)
    parser.add_argument("--question-seed", type=int, default=evaluate.TEST_SEED,
                        help=f"seed of the questions (default: the test seed {evaluate.TEST_SEED}; choices are made on "
                             f"{evaluate.DEV_SEED})")
    args = parser.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        parser.exit(2, f"{parser.prog}: error: --seeds: a seed given twice: {args.seeds}\n")
    try:
        check_writable_dir(args.out)
    except OutputLocationError as error:
        parser.exit(2, f"{parser.prog}: error: --out: {error}\n")
    families = [evaluate.FAMILIES[name] for name in dict.fromkeys(args.families)]
    runs = [(family, seed) for family in families for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda run: run_seed(*run, args.out, args.threads, args.questions, args.question_seed),
                             runs))
    last_lines, failed = [], []
    for family in families:
        summaries = [summary for (owner, _), summary in zip(runs, done) if owner is family]
        table = seeds_table(args.seeds, summaries)
        (args.out / family.name / "table.md").write_text(table + "\n")
        (args.out / family.name / "summary.json").write_text(json.dumps({"seeds": args.seeds, "per_seed": summaries},
                                                                        indent=1))
        print(f"{family.name}\n{table}\n")
        failed += [f"{family.name} seed {seed}" for seed, s in zip(args.seeds, summaries) if s["lmms_eval_exit_status"]]
        last_lines.append(evaluate.last_line(mean_summary(summaries)))
    if failed:
        print(f"lmms-eval failed for {', '.join(failed)}: see {args.out}/FAMILY/seed-N/eval/lmms-eval.log")
    print("\n".join(last_lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
