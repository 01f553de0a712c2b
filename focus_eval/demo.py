"""`make demo`: focus-eval end to end on this machine, offline, in about a minute.

1. Builds a tiny RANDOM (untrained) checkpoint of the model's family
   (`focus_eval.model_wrappers.tiny`) and tiny copies of the benchmarks in their real column
   schemas (`focus_eval.tasks.tiny_data`: synthetic scenes at the benchmarks' average
   resolutions with small coloured shapes to find).
2. Runs lmms-eval's command line once with a two-run `--config`: the FOCUS model, and the same
   model with `method=vanilla` (full image, same counters), through `focus-eval lmms-eval`
   (lmms-eval's own CLI with an honest exit status; lmms-eval 0.7.3 exits 0 after errors).
   FOCUS also saves one picture per question (`save_maps`).
3. Prints lmms-eval's results tables and a side-by-side summary: each task's headline
   accuracy, forward passes (search and total), TFLOPs, seconds and peak memory per question,
   and the questions that failed.
4. Writes the README picture `docs/demo.png` and its trace `docs/demo.json` through the Python
   API (`Focus(...).answer(...).save(...)`). The picture is the same on every run; the trace
   holds this run's timings, so git ignores it.
5. Runs `focus-eval compare` on the two runs beside the paper's numbers for the real model of
   the family (`<out>/compare/`) and copies the first task's accuracy-vs-FP plot to
   `docs/compare.png` (the README's; the same on every run, titled as untrained).

The tiny model is untrained: its answers are noise and its accuracy means nothing. The demo
shows that everything runs and what gets reported. lmms-eval's full log is in
`<out>/lmms-eval.log`.

    python -m focus_eval.demo [--out demo_out] [--docs docs] [--model llava_ov_focus]
                              [--tasks vstar,hrbench4k] [--limit N]

Exit status 0 when both runs produced results, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from focus_eval.tasks.record import COUNTER_COLUMNS, FAILURE_COLUMNS

TASK_DATA = {"vstar": "vstar", "vstar_logits": "vstar", "hrbench4k": "hrbench4k", "hrbench8k": "hrbench8k",
             "mme_realworld_lite": "mme_realworld_lite"}
HEADLINE_METRIC = {"vstar": "vstar_overall_acc", "vstar_logits": "vstar_overall_acc", "hrbench4k": "average",
                   "hrbench8k": "average", "mme_realworld_lite": "mme_realworld_score"}
METHODS = ("focus", "vanilla")
# Answers are option letters; the untrained model would otherwise write 1024 tokens of noise.
GEN_KWARGS = "max_new_tokens=16"
PLOT_TITLE = "make demo: tiny UNTRAINED model, its accuracy means nothing"
UNTRAINED = "\n".join([
    "+" + "-" * 81 + "+",
    "| The demo model is a tiny RANDOM checkpoint built just now. It is UNTRAINED:     |",
    "| its answers are noise and its ACCURACY MEANS NOTHING. The demo shows that FOCUS |",
    "| runs end to end through lmms-eval and what gets reported per question:          |",
    "| accuracy, forward passes, TFLOPs, seconds and peak memory.                      |",
    "+" + "-" * 81 + "+",
])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m focus_eval.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="demo_out", help="working folder (checkpoint, data, results)")
    parser.add_argument("--docs", default="docs", help="folder for the README picture demo.png + demo.json")
    parser.add_argument("--model", default="llava_ov_focus", help="FOCUS model of lmms-eval")
    parser.add_argument("--tasks", default="vstar,hrbench4k", help="comma-separated focus-eval tasks")
    parser.add_argument("--limit", type=int, default=None, help="questions per task (default: all)")
    args = parser.parse_args(argv)
    tasks = args.tasks.split(",")
    unknown = [task for task in tasks if task not in TASK_DATA]
    if unknown:
        parser.error(f"unknown task {unknown[0]!r}; choose from {', '.join(TASK_DATA)}")

    # imports torch / transformers: after the arguments are checked
    from focus_eval.model_wrappers.model_args import model_spec
    from focus_eval.model_wrappers.tiny import build_tiny_checkpoint
    from focus_eval.tasks import tiny_data

    spec = model_spec(args.model)
    out = Path(args.out).resolve()
    print(UNTRAINED, flush=True)
    checkpoint = build_tiny_checkpoint(spec.family, out / f"tiny-{spec.family}")
    data = {key: tiny_data.write_tiny_dataset(key, out / "data", scale=1.0)
            for key in dict.fromkeys(TASK_DATA[task] for task in tasks)}
    print(f"\nBuilt the untrained tiny {spec.family} checkpoint {checkpoint} and tiny {', '.join(data)} "
          f"datasets in their real schemas under {out / 'data'}.")

    config = out / "runs.yaml"
    config.write_text(yaml.safe_dump([_run(spec.model_id, method, checkpoint, data, tasks, args.limit, out)
                                      for method in METHODS], sort_keys=False))
    log = out / "lmms-eval.log"
    command = [str(Path(sys.executable).with_name("focus-eval")), "lmms-eval", "--config", str(config)]
    print(f"\nRunning lmms-eval on {', '.join(tasks)} with FOCUS and vanilla (one run each, see {config}):\n  "
          + " ".join(command) + f"\nAbout a minute on 2 CPU cores; follow it with: tail -f {log}", flush=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    with open(log, "w") as handle:
        done = subprocess.run(command, env=env, stdout=handle, stderr=subprocess.STDOUT, text=True)
    output = log.read_text(errors="replace")
    print("\n" + "\n".join(line for line in output.splitlines() if line.startswith("|") or line.startswith(
        f"{spec.model_id} (")))

    results = {method: _results(out / "results" / method) for method in METHODS}
    missing = [method for method, found in results.items() if found is None]
    if done.returncode != 0 or missing:
        errors = [line for line in output.splitlines() if line.startswith("focus-eval: error")]
        print(f"\nlmms-eval failed (exit status {done.returncode}; no results for {', '.join(missing) or '-'}):\n"
              + "\n".join(errors[-5:] or output.splitlines()[-20:]), file=sys.stderr)
        return 1
    print("\nSummary (per question; fp = search forward passes, fp_total = all of them):\n")
    print(_summary(tasks, results))

    picture, trace = _readme_picture(checkpoint, Path(args.docs))
    print(f"\nPer-question pictures of the FOCUS run: {out / 'maps'}\nREADME picture: {picture} (trace {trace})")
    compared = _compare(out, spec.family, tasks[0], Path(args.docs))
    print(f"Comparison with the paper (focus-eval compare): {out / 'compare' / 'compare.md'}; "
          f"plot {compared or 'not written (the error is above)'}\n")
    print(UNTRAINED)
    return 0


def _run(model_id: str, method: str, checkpoint: Path, data: dict[str, Path], tasks: list[str], limit: int | None,
         out: Path) -> dict:
    """One entry of lmms-eval's --config file."""
    model_args = [f"pretrained={checkpoint}", *(f"data_{key}={path}" for key, path in data.items())]
    model_args.append(f"save_maps={out / 'maps'}" if method == "focus" else "method=vanilla")
    run = {"model": model_id, "model_args": ",".join(model_args), "tasks": ",".join(tasks),
           "gen_kwargs": GEN_KWARGS, "output_path": str(out / "results" / method), "log_samples": True}
    if limit is not None:
        run["limit"] = limit
    return run


def _results(folder: Path) -> dict | None:
    found = sorted(folder.rglob("*_results.json"))
    return json.loads(found[-1].read_text())["results"] if found else None


def _summary(tasks: list[str], results: dict[str, dict]) -> str:
    header = ["task", "method", "accuracy", *COUNTER_COLUMNS, FAILURE_COLUMNS[0]]
    rows = [header, ["---"] * len(header)]
    for task in tasks:
        metric = HEADLINE_METRIC[task]
        for method in METHODS:
            values = results[method][task]
            rows.append([task, method, f"{metric} {_number(values.get(f'{metric},none'))}",
                         *(_number(values.get(f"{column},none")) for column in (*COUNTER_COLUMNS, FAILURE_COLUMNS[0]))])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "N/A"


def _compare(out: Path, family: str, first_task: str, docs: Path) -> Path | None:
    """`focus-eval compare` of both runs beside the paper's numbers for the family's real model;
    the first task's accuracy-vs-FP plot becomes docs/compare.png."""
    import contextlib
    import io
    import shutil

    from focus_eval.cli import main as focus_eval
    from focus_eval.compare.names import FAMILY_MODELS, task_of

    folder = out / "compare"
    arguments = ["compare", *(str(out / "results" / method) for method in METHODS), "--paper-models",
                 FAMILY_MODELS[family], "--out", str(folder), "--title", PLOT_TITLE]
    with contextlib.redirect_stdout(io.StringIO()):  # the tables are in compare.md
        status = focus_eval(arguments)
    if status == 2:  # the reason is on stderr
        return None
    docs.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(folder / f"{task_of(first_task).benchmark}_fp.png", docs / "compare.png"))


def _readme_picture(checkpoint: Path, docs: Path) -> tuple[Path, Path]:
    """FOCUS on the first tiny V*Bench question through the Python API (with its GT box), saved
    as docs/demo.*"""
    from focus_eval.api import Focus
    from focus_eval.tasks.tiny_data import build_rows

    row = build_rows("vstar", scale=1.0)[0]
    focus = Focus.from_pretrained(checkpoint, dataset="vstar")
    gt_boxes = [[x, y, x + w, y + h] for x, y, w, h in row["bbox"]]  # V*'s [x, y, w, h]; drawn in the picture
    return focus.answer(row["image"]["bytes"], row["text"], max_new_tokens=16, gt_boxes=gt_boxes,
                        gt_names=row["target_object"]).save(docs, "demo")


if __name__ == "__main__":
    sys.exit(main())
