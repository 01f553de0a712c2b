"""`make demo`: focus-eval end to end on this machine, offline, in about a minute.

1. Takes the model and its questions. By default the proving ground's two checkpoints, one after
   the other (`focus_eval.proving_ground`: a tiny LLaVA-1.5 as `llava_1_5_focus`, then a tiny
   LLaVA-OneVision as `llava_ov_focus`, trained on CPU by `make proving-ground`, committed), each on
   held-out questions of its V*Bench-like task (`proving_ground.scenes`, the old evaluation seed),
   with the FOCUS options of `configs/proving_ground/{family}.yaml`; `--model` picks one. The
   second family writes into `<out>/llava_onevision/` (its pictures in `docs/` there).
   With `--untrained`: a tiny RANDOM checkpoint of `--model`'s family
   (`focus_eval.model_wrappers.tiny`) and tiny copies of the benchmarks in their real column
   schemas (`focus_eval.tasks.tiny_data`); its accuracy means nothing.
2. Runs lmms-eval's command line once with a two-run `--config`: the FOCUS model, and the same
   model with `method=vanilla` (full image, same counters), through `python -m focus_eval.lmms`
   (= `focus-eval lmms-eval`: lmms-eval's own CLI with an honest exit status; lmms-eval 0.7.3
   exits 0 after errors).
   FOCUS also saves one picture per question (`save_maps`).
3. Prints lmms-eval's results tables and a side-by-side summary: each task's headline
   accuracy, forward passes (search and total), TFLOPs, seconds and peak memory per question,
   and the questions that failed.
4. Writes the README picture `docs/demo.png` and its trace `docs/demo.json` through the Python
   API (`Focus(...).answer(...).save(...)`): the first question FOCUS got right and vanilla
   wrong (else the first question). The picture is the same on every run; the trace holds
   this run's timings, so git ignores it.
5. Runs `focus-eval compare` on the two runs beside the paper's numbers for the real model of
   the family (`<out>/compare/`) and copies the first task's accuracy-vs-FP plot to
   `docs/compare.png` (the README's; the same on every run).

lmms-eval's full log is in `<out>/lmms-eval.log`.

    python -m focus_eval.present.demo [--out demo_out] [--docs docs] [--limit N] [--model llava_ov_focus]
    python -m focus_eval.present.demo --untrained [--model llava_ov_focus] [--tasks vstar,hrbench4k] ...

Exit status 0 when both runs produced results, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
PROVING_TASKS = ("vstar", "vstar_logits")
PROVING_QUESTIONS = 40  # about a minute on 2 cores
PROVING_SEED = 1  # the evaluation's seed (proving_ground.evaluate): scenes the training never draws
UNTRAINED = "\n".join([
    "+" + "-" * 81 + "+",
    "| The demo model is a tiny RANDOM checkpoint built just now. It is UNTRAINED:     |",
    "| its answers are noise and its ACCURACY MEANS NOTHING. The demo shows that FOCUS |",
    "| runs end to end through lmms-eval and what gets reported per question:          |",
    "| accuracy, forward passes, TFLOPs, seconds and peak memory.                      |",
    "+" + "-" * 81 + "+",
])
TRAINED = "\n".join([
    "+" + "-" * 81 + "+",
    "| The demo model: the proving ground's tiny LLaVA-1.5 (1.3M parameters), trained  |",
    "| here on CPU on SYNTHETIC V*Bench-like questions only (the pattern of a named    |",
    "| shape, or which of two shapes is left), on FOCUS's and ZoomEye's confidence     |",
    "| questions and on ViCrop's two-image answers. Its accuracy is on those           |",
    "| questions, not on V*Bench (README, 'Proving ground'). Other models: python -m   |",
    "| focus_eval.present.demo --untrained --model qwen2_5_vl_focus (random weights:   |",
    "| its accuracy means nothing)                                                     |",
    "+" + "-" * 81 + "+",
])
TRAINED_ONEVISION = "\n".join([
    "+" + "-" * 81 + "+",
    "| The demo model: the proving ground's tiny LLaVA-OneVision (1.5M parameters,     |",
    "| anyres), trained here on CPU on SYNTHETIC V*Bench-like questions only (the      |",
    "| pattern of a named shape, or which of two shapes is left), on FOCUS's existence |",
    "| question and its multi-image final input, NOT on ZoomEye's or ViCrop's prompts. |",
    "| Its accuracy is on those questions, not on V*Bench (README, 'Proving ground').  |",
    "+" + "-" * 81 + "+",
])
# The trained models: lmms-eval model -> (family, banner, plot title); the first is the README's.
PROVING = {
    "llava_1_5_focus": ("llava_1_5", TRAINED,
                        "make demo: the proving ground's tiny LLaVA-1.5 on its synthetic questions, not V*Bench"),
    "llava_ov_focus": ("llava_onevision", TRAINED_ONEVISION,
                       "make demo: the proving ground's tiny LLaVA-OneVision on its synthetic questions, not V*Bench"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m focus_eval.present.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="demo_out", help="working folder (checkpoint, data, results)")
    parser.add_argument("--docs", default="docs", help="folder for the README picture demo.png + demo.json")
    parser.add_argument("--untrained", action="store_true",
                        help="a tiny random checkpoint of --model's family on tiny benchmarks (default: the "
                             "proving ground's trained models on their own questions)")
    parser.add_argument("--model", help=f"FOCUS model of lmms-eval (default: the trained {' and '.join(PROVING)}; "
                                        "with --untrained: llava_ov_focus)")
    parser.add_argument("--tasks", help="comma-separated focus-eval tasks (default: vstar; with --untrained: "
                                        "vstar,hrbench4k)")
    parser.add_argument("--limit", type=int, default=None,
                        help=f"questions per task (default: all; the proving ground writes {PROVING_QUESTIONS})")
    args = parser.parse_args(argv)
    models = [args.model or "llava_ov_focus"] if args.untrained else [args.model] if args.model else list(PROVING)
    tasks = (args.tasks or ("vstar,hrbench4k" if args.untrained else "vstar")).split(",")
    unknown = [task for task in tasks if task not in TASK_DATA]
    if unknown:
        parser.error(f"unknown task {unknown[0]!r}; choose from {', '.join(TASK_DATA)}")
    if not args.untrained and (set(models) - set(PROVING) or set(tasks) - set(PROVING_TASKS)):
        parser.error(f"the proving ground's checkpoints are {' and '.join(PROVING)} trained on V*Bench-like questions "
                     f"only (tasks {', '.join(PROVING_TASKS)}); add --untrained for other models or tasks")
    out, docs = Path(args.out).resolve(), Path(args.docs)
    status = 0
    for index, model in enumerate(models):
        here = out if index == 0 else out / PROVING[model][0]  # only the trained models come in twos
        status = max(status, _demo(model, tasks, args.untrained, args.limit, here, docs if index == 0 else here / "docs"))
    return status


def _demo(model: str, tasks: list[str], untrained: bool, limit: int | None, out: Path, docs: Path) -> int:
    """Steps 1-5 of the module docstring for one model; its exit status."""
    # imports torch / transformers: after the arguments are checked
    from focus_eval.model_wrappers.model_args import model_spec
    from focus_eval.model_wrappers.tiny import build_tiny_checkpoint
    from focus_eval.tasks import tiny_data

    spec = model_spec(model)
    banner = UNTRAINED if untrained else PROVING[model][1]
    print(banner, flush=True)
    if untrained:
        checkpoint = build_tiny_checkpoint(spec.family, out / f"tiny-{spec.family}")
        data = {key: tiny_data.write_tiny_dataset(key, out / "data", scale=1.0)
                for key in dict.fromkeys(TASK_DATA[task] for task in tasks)}
        options: dict = {}
        print(f"\nBuilt the untrained tiny {spec.family} checkpoint {checkpoint} and tiny {', '.join(data)} "
              f"datasets in their real schemas under {out / 'data'}.")
    else:
        from focus_eval.proving_ground import evaluate, scenes

        family = evaluate.FAMILIES[spec.family]
        checkpoint = family.checkpoint
        rows = scenes.build_rows(limit or PROVING_QUESTIONS, PROVING_SEED, family.scene_size)
        data = {"vstar": scenes.write_rows(out / "data", rows)}
        options = {**evaluate.method_options("focus", family), "n_steps": evaluate.MAIN_STEPS}  # the README's FOCUS row
        print(f"\nThe proving ground's checkpoint {checkpoint}; {limit or PROVING_QUESTIONS} of its held-out "
              f"questions in V*Bench's schema under {out / 'data'}; FOCUS options {options}.")

    for stale in ("results", "maps", "compare"):  # lmms-eval adds a results file per run; compare would read all
        shutil.rmtree(out / stale, ignore_errors=True)
    config = out / "runs.yaml"
    config.write_text(yaml.safe_dump([_run(spec.model_id, method, checkpoint, data, tasks, limit, out, options)
                                      for method in METHODS], sort_keys=False))
    log = out / "lmms-eval.log"
    # `python -m`, not the focus-eval script: that may not lie beside this python (pip install --user)
    command = [sys.executable, "-m", "focus_eval.lmms", "--config", str(config)]
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

    picture, trace = _readme_picture(checkpoint, docs, out, options, not untrained)
    print(f"\nPer-question pictures of the FOCUS run: {out / 'maps'}\nREADME picture: {picture} (trace {trace})")
    compared = _compare(out, spec.family, tasks[0], docs, PLOT_TITLE if untrained else PROVING[model][2])
    print(f"Comparison with the paper (focus-eval compare): {out / 'compare' / 'compare.md'}; "
          f"plot {compared or 'not written (the error is above)'}\n")
    print(banner)
    return 0


def _run(model_id: str, method: str, checkpoint: Path, data: dict[str, Path], tasks: list[str], limit: int | None,
         out: Path, options: dict) -> dict:
    """One entry of lmms-eval's --config file; `options`: FOCUS model arguments of the FOCUS run."""
    model_args = [f"pretrained={checkpoint}", *(f"data_{key}={path}" for key, path in data.items())]
    if method == "focus":
        model_args += [f"{key}={value}" for key, value in options.items()] + [f"save_maps={out / 'maps'}"]
    else:
        model_args.append("method=vanilla")
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


def _compare(out: Path, family: str, first_task: str, docs: Path, title: str) -> Path | None:
    """`focus-eval compare` of both runs beside the paper's numbers for the family's real model;
    the first task's accuracy-vs-FP plot becomes docs/compare.png."""
    import contextlib
    import io

    from focus_eval.present.cli import main as focus_eval
    from focus_eval.present.compare.names import FAMILY_MODELS, task_of

    folder = out / "compare"
    arguments = ["compare", *(str(out / "results" / method) for method in METHODS), "--paper-models",
                 FAMILY_MODELS[family], "--out", str(folder), "--title", title]
    with contextlib.redirect_stdout(io.StringIO()):  # the tables are in compare.md
        status = focus_eval(arguments)
    if status == 2:  # the reason is on stderr
        return None
    docs.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(folder / f"{task_of(first_task).benchmark}_fp.png", docs / "compare.png"))


def _readme_picture(checkpoint: Path, docs: Path, out: Path, options: dict, proving: bool) -> tuple[Path, Path]:
    """FOCUS through the Python API (with the GT boxes), saved as docs/demo.*: on the proving
    ground, the first question the FOCUS run got right and the vanilla run wrong (else the
    first), with the run's prompt and options; untrained, the first tiny V*Bench question."""
    from focus_eval.api import Focus

    if proving:
        import datasets

        from focus_eval.proving_ground.evaluate import right_only_with_focus
        from focus_eval.proving_ground.train import vstar_prompt

        doc_id = next(iter(right_only_with_focus(*(out / "results" / method for method in METHODS))), 0)
        row = datasets.Dataset.from_parquet(str(out / "data" / "vstar.parquet"))[doc_id]
        image, prompt = row["image"], vstar_prompt(row["text"])  # a PIL image, as datasets decodes it
    else:
        from focus_eval.tasks.tiny_data import build_rows

        row = build_rows("vstar", scale=1.0)[0]
        image, prompt = row["image"]["bytes"], row["text"]
    focus = Focus.from_pretrained(checkpoint, dataset="vstar", **options)
    gt_boxes = [[x, y, x + w, y + h] for x, y, w, h in row["bbox"]]  # V*'s [x, y, w, h]; drawn in the picture
    return focus.answer(image, prompt, max_new_tokens=16, gt_boxes=gt_boxes,
                        gt_names=row["target_object"]).save(docs, "demo")


if __name__ == "__main__":
    sys.exit(main())
