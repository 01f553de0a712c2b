"""`focus-eval vlmeval` and `python -m focus_eval.vlmeval`: VLMEvalKit's own run with the FOCUS models.

    focus-eval vlmeval --model llava_ov_focus --data VStarBench HRBench4K HRBench8K MME-RealWorld-Lite \\
        [--model-args n_steps=4,pretrained=PATH,... [ONE PER MODEL ...]] [--work-dir OUT] [--vlmevalkit PATH] \\
        [--trust-local-data] [any other option of VLMEvalKit's run.py]
    torchrun --nproc-per-node 8 -m focus_eval.vlmeval --model llava_ov_focus --data VStarBench ...

In this process (in every rank under torchrun):
1. Everything the user can get wrong is checked before any work, each problem one line on
   stderr (from rank 0) and exit status 2: the model names, `--model-args` (the lmms-eval
   models' parser, `parse_vlmeval_model_args`), `--max-failed-rate`, where VLMEvalKit is
   (`--vlmevalkit`, else the clone the installed `vlmeval` package lives in: run.py lies beside
   the package, not in it); then VLMEvalKit is imported (run.py sets each rank's
   CUDA_VISIBLE_DEVICES when imported, so CUDA is not asked before): an import that fails on
   torchvision (VLMEvalKit imports it everywhere; PyPI's build does not import beside a CPU
   torch) or on another missing package is one line saying what to install; then
   `check_vlmevalkit`: the clone must have everything the plug-in uses (`NEEDED`), which the
   tested commit TESTED_COMMIT has and older clones lack (the line names the `git checkout`
   that fixes it); a clone whose hooked files differ from that commit's (`TESTED_FILES`, e.g. a
   newer head) runs, after one warning line; then the device, the dataset names and, with
   `--trust-local-data`, the data files.
2. VLMEvalKit's run.py is imported from that clone and, for this run only: the models join
   its registry `vlmeval.config.supported_VLM` under a name that says the method and the
   arguments (`run_name`): the model's name for FOCUS, its `_focus` replaced by the method
   otherwise (`llava_ov_zoomeye`), plus a digest of the other `--model-args` when there are any
   (`llava_ov_focus-1a2b3c4d`; save_maps left out), so that runs of other methods or arguments
   never share a work folder and VLMEvalKit's `--reuse` never takes their predictions; without
   CUDA its process group uses gloo instead of the hard-coded nccl; `--trust-local-data` drops
   VLMEvalKit's md5 check of the named datasets' files (a subset or local copy of a benchmark
   is otherwise downloaded again, over the local file).
3. run.py's main runs with the other arguments, plus `--judge exact_matching` unless a judge
   is named (VLMEvalKit's default MCQ judge is an OpenAI model; offline it falls back to
   exact matching after a timeout and labels the results with the judge's name): its datasets,
   inference loop, checkpoints, `--reuse`, scoring and result files.
4. Counters: each answer's record (`vlmeval_models`) travels in VLMEvalKit's per-rank
   checkpoints with the answer; when VLMEvalKit has written the prediction file, rank 0 adds
   the columns fp, fp_total, bp, tflops, seconds, peak_mem_gb (None for a failed question),
   failed (1 or 0) and error. Predictions VLMEvalKit reuses from an earlier run (`--reuse`)
   keep the records of that run's file.
5. Rank 0 reads VLMEvalKit's `status.json` and writes `focus_summary.json` into the run
   folder (`<work-dir>/<model>/<eval id>/`), format below, and prints it as a table. Exit
   status 1 when a dataset did not finish (VLMEvalKit itself exits 0), with one line on
   stderr per dataset, or when every question of a dataset failed, or, with
   `--max-failed-rate RATE`, a larger share than RATE of a dataset's questions (one line for
   the model); otherwise failed questions are counted, not an error of the run.

focus_summary.json:
    {"framework": "VLMEvalKit", "model": VLMEvalKit's model name, "focus_model": "llava_ov_focus",
     "method": "focus" | "vanilla" | "zoomeye" | "vicrop", "model_args": {...as given}, "run_dir": "...",
     "judge": "exact_matching",
     "results": {DATASET: {"benchmark": "vstar" | null, "status": "done", "error": null | "...",
         "prediction_file": "...", "metric": VLMEvalKit's primary metric, "value": its value (both as
         VLMEvalKit's run report gives them, e.g. "Overall Acc" in percent for VStarBench, fractions
         for HRBench and MME-RealWorld), "metrics": {all of VLMEvalKit's metrics, as in its status.json},
         "questions": N, "failed": N, "failed_rate": 0..1,
         "fp": mean, "fp_total": mean, "tflops": mean, "seconds": mean, "peak_mem_gb": mean}}}
The counter means are over the questions that report them (failed ones do not); null when none does.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from focus_eval.model_specs import is_focus_model
from focus_eval.model_wrappers.model_args import FocusModelArgs, parse_vlmeval_model_args, resolve_device
from focus_eval.model_wrappers.vlmeval_benchmarks import VLMEVAL_DATASETS
from focus_eval.tasks.common import mean_reported
from focus_eval.tasks.record import COUNTER_COLUMNS, MAX_FAILED_RATE, DocRecord, failed_questions_problem

PROG = "focus-eval vlmeval"
SUMMARY_NAME = "focus_summary.json"
EXACT_MATCHING = "exact_matching"
TESTED_COMMIT = "e8e78f05f3080fe28154f2130321f17951c3be94"  # the VLMEvalKit commit the tests run (Makefile)
NOT_FOUND = ("VLMEvalKit not found: clone the open-compass/VLMEvalKit repository at the tested commit "
             f"({TESTED_COMMIT[:8]}) and `pip install -e` it, or pass --vlmevalkit PATH_TO_CLONE")
# What the plug-in uses of VLMEvalKit: module (run.py is "run") -> names. Older clones lack the run
# status functions (run.py's upsert_run_status, vlmeval.smp's load_run_status and
# collect_run_benchmark_report) and the structured {"prediction", "extra_records"} answers.
NEEDED = {"run": ("main", "infer_data_job", "upsert_run_status"),
          "vlmeval.inference": ("infer_data", "_is_structured_record"),
          "vlmeval.smp": ("LMUDataRoot", "collect_run_benchmark_report", "dump", "get_logger", "get_pred_file_path",
                          "get_rank_and_world_size", "load", "load_run_status"),
          "vlmeval.config": ("supported_VLM",),
          "vlmeval.dataset": ("DATASET_CLASSES", "SUPPORTED_DATASETS"),
          "vlmeval.dataset.video_dataset_config": ("supported_video_datasets",),
          "vlmeval.vlm.base": ("BaseModel",)}
# sha256 of the files the launcher hooks, at TESTED_COMMIT: another content is a warning.
TESTED_FILES = {"run.py": "efe24021e6f5f6ec394eba0f59afc094f897301a2ed31c6a3ba5ba975e148653",
                "vlmeval/inference.py": "a669883ebc86a1491bc2c4ce17230c558426b53a95b06773c52e0de759211a0f",
                "vlmeval/smp/status_report.py": "bef6e53a55fd00fe3cf90dcc1de238c6bd6dd47aeee186f82bd3163cb4d0233d"}
RECORD_COLUMNS = (*COUNTER_COLUMNS, "failed", "error")  # added to VLMEvalKit's prediction file


class UserError(Exception):
    """Bad input found before the run: one line on stderr, exit status 2."""


@dataclass(frozen=True)
class Model:
    name: str  # VLMEvalKit's model name: registry key, folder and file prefix
    args: FocusModelArgs
    given: dict[str, str]  # --model-args as typed


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    args, passthrough = _parser(prog).parse_known_args(argv)
    rank = int(os.environ.get("RANK", 0))
    try:
        models = _models(args.model, args.model_args)
        if args.max_failed_rate is not None and not 0 <= args.max_failed_rate <= 1:
            raise UserError(f"{MAX_FAILED_RATE} expects a share of a dataset's questions between 0 and 1, got "
                            f"{args.max_failed_rate:g}")
        run_py = locate_run_py(args.vlmevalkit)
        if args.config or args.api_mode:
            raise UserError("--config and --api-mode build VLMEvalKit's own models; use --model and --data")
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network when litellm is imported
        run = import_vlmevalkit(run_py)  # from here on CUDA may be asked (this rank's GPUs are set)
        changed = check_vlmevalkit(run, run_py.parent)
        if changed and rank == 0:
            print(f"{prog}: warning: {changed}", file=sys.stderr)
        _check_devices(models)
        _check_datasets(args.data, args.data_config, args.trust_local_data)
    except UserError as error:
        if rank == 0:
            print(f"{prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    run_dirs = _prepare(run, models)
    if rank == 0:
        for model in models:
            given = ",".join(f"{k}={v}" for k, v in model.given.items()) or "default model arguments"
            print(f"{prog}: {model.args.spec.model_id} ({given}) runs as {model.name}", file=sys.stderr)
    sys.argv = [str(run_py), "--model", *(m.name for m in models), "--data", *args.data, "--work-dir", args.work_dir,
                "--judge", args.judge, *(["--data-config", args.data_config] if args.data_config else []), *passthrough]
    run.main()
    if rank != 0:
        return 0
    problems = []
    for model in models:
        if model.name not in run_dirs:
            problems.append(f"{model.name}: VLMEvalKit started no run")
            continue
        summary = summarize(model, run_dirs[model.name], args.data, args.judge)
        path = Path(summary["run_dir"]) / SUMMARY_NAME
        path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        print(summary_table(summary) + f"\n{prog}: summary in {path}")
        problems += [f"{model.name} x {name}: {entry['error']}" for name, entry in summary["results"].items()
                     if entry["error"]]
        lost = failed_questions_problem({name: (entry["failed"], entry["questions"])
                                         for name, entry in summary["results"].items() if entry["failed"] is not None},
                                        args.max_failed_rate)
        if lost:
            problems.append(f"{model.name}: {lost} (the reasons are in the prediction files' `error` column)")
    for problem in problems:
        print(f"{prog}: error: {problem}", file=sys.stderr)
    return 1 if problems else 0


# ---- checks before the run ------------------------------------------------------------------


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, allow_abbrev=False,  # run.py's --mode must not read as an abbreviation of --model
        description="Run VLMEvalKit (its run.py: datasets, scoring, result files) with the FOCUS models. Options "
                    "not listed here go to run.py unchanged (e.g. --mode, --reuse, --verbose).")
    parser.add_argument("--model", nargs="+", required=True, metavar="MODEL",
                        help="llava_ov_focus, llava_1_5_focus (llava15_focus) or qwen2_5_vl_focus")
    parser.add_argument("--model-args", nargs="+", default=[""], metavar="K=V,...",
                        help="FOCUS model arguments, as lmms-eval's --model_args (README: Model arguments): one string "
                             "for every --model, or one per --model in order")
    parser.add_argument("--data", nargs="+", required=True, metavar="DATASET", help="VLMEvalKit dataset names")
    parser.add_argument("--data-config", help="run.py's --data-config (custom dataset names)")
    parser.add_argument("--work-dir", default="./outputs", help="output folder (run.py's; default ./outputs)")
    parser.add_argument("--judge", default=EXACT_MATCHING,
                        help="answer matching (default exact_matching: no network; run.py's default is an OpenAI model)")
    parser.add_argument("--vlmevalkit", metavar="PATH_TO_CLONE",
                        help="a VLMEvalKit clone (default: the one the installed vlmeval package lives in)")
    parser.add_argument("--trust-local-data", action="store_true",
                        help="use $LMUData/<dataset>.tsv as it is, even when its md5 differs from VLMEvalKit's record")
    parser.add_argument(MAX_FAILED_RATE, type=float, metavar="RATE",
                        help="exit status 1 when a larger share than RATE (0-1) of a dataset's questions failed "
                             "(default: only when every question failed)")
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--api-mode", action="store_true", help=argparse.SUPPRESS)
    return parser


def _models(names: list[str], model_args: list[str]) -> list[Model]:
    """The runs: one `--model-args` string for every model, or one per model in order (e.g. the
    same model with method=focus, method=zoomeye and method=vicrop, compared in one process)."""
    if len(model_args) not in (1, len(names)):
        raise UserError(f"--model-args: give one K=V,... string for all models or one per model ({len(names)} models, "
                        f"{len(model_args)} strings)")
    models = []
    for name, text in zip(names, model_args * len(names) if len(model_args) == 1 else model_args):
        if not is_focus_model(name):
            raise UserError(f"{name!r} is not a FOCUS model; use llava_ov_focus, llava_1_5_focus or qwen2_5_vl_focus")
        given = parse_args_string(text)
        try:
            parsed = parse_vlmeval_model_args(name, **given)
        except ValueError as error:
            raise UserError(str(error)) from None
        models.append(Model(name=run_name(name, parsed.config(None).method, given), args=parsed, given=given))
    twice = next((model.name for i, model in enumerate(models) if model.name in (m.name for m in models[:i])), None)
    if twice is not None:
        raise UserError(f"two of the runs are the same ({twice}): give each model different arguments")
    return models


def run_name(model: str, method: str, given: dict[str, str]) -> str:
    """VLMEvalKit's name of a run (registry key, work folder, file prefix): the model's name
    with its `_focus` ending replaced by the method when that is not FOCUS (`llava_ov_zoomeye`),
    plus a digest of the other model arguments that change answers (save_maps does not), so that
    neither a run of another method nor one with other arguments shares a folder or `--reuse`s
    another's predictions. FOCUS with no argument keeps the model's own name."""
    stem = model if method == "focus" else f"{model.removesuffix('_focus')}_{method}"
    answering = {k: v for k, v in given.items() if k not in ("save_maps", "method")}
    digest = hashlib.sha256(json.dumps(answering, sort_keys=True).encode()).hexdigest()[:8]
    return f"{stem}-{digest}" if answering else stem


def parse_args_string(text: str) -> dict[str, str]:
    """`k=v,k=v` (lmms-eval's --model_args format) -> {k: v}; values stay strings."""
    pairs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--model-args expects NAME=VALUE pairs separated by commas, got {item!r}")
        pairs[name.strip()] = value.strip()
    return pairs


def locate_run_py(clone: str | None) -> Path:
    """VLMEvalKit's run.py: in `clone`, else beside the installed vlmeval package."""
    if clone is not None:
        root = Path(clone).expanduser().resolve()
        if not (root / "run.py").is_file() or not (root / "vlmeval" / "__init__.py").is_file():
            raise UserError(f"--vlmevalkit {clone}: not a VLMEvalKit clone (it needs run.py and vlmeval/)")
        sys.path.insert(0, str(root))
        return root / "run.py"
    spec = importlib.util.find_spec("vlmeval")
    if spec is None or spec.origin is None:
        raise UserError(NOT_FOUND)
    run_py = Path(spec.origin).parent.parent / "run.py"
    if not run_py.is_file():
        raise UserError(f"vlmeval is installed ({Path(spec.origin).parent}) but not from a clone: no run.py beside it; "
                        "pass --vlmevalkit PATH_TO_CLONE")
    return run_py


def import_vlmevalkit(run_py: Path):
    """VLMEvalKit's run.py as a module (it imports the vlmeval package); UserError, in one line,
    for an import that fails on a missing package or on torchvision."""
    spec = importlib.util.spec_from_file_location("vlmevalkit_run", run_py)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise UserError(_import_problem(error, run_py.parent)) from None
    return module


def _import_problem(error: Exception, clone: Path) -> str:
    """Why VLMEvalKit could not be imported, and what to do, in one line."""
    import traceback

    cause = f"{type(error).__name__}: {' '.join(str(error).split())}"[:300]
    torchvision_frames = any("torchvision" in Path(frame.filename).parts
                             for frame in traceback.extract_tb(error.__traceback__))
    if getattr(error, "name", None) == "torchvision" or torchvision_frames:
        state = "is not installed" if isinstance(error, ModuleNotFoundError) else f"does not import here ({cause})"
        return (f"VLMEvalKit imports torchvision, which {state}: install the torchvision release built for your torch "
                f"{torch.__version__} (for a CPU torch: pip install torchvision --index-url "
                "https://download.pytorch.org/whl/cpu)")
    missing = getattr(error, "name", None)
    if isinstance(error, ImportError) and missing and not missing.startswith("vlmeval"):
        return f"VLMEvalKit could not be imported ({cause}): install its requirements (pip install -e {clone})"
    return (f"VLMEvalKit at {clone} could not be imported ({cause}); focus-eval is tested with its commit "
            f"{TESTED_COMMIT[:8]}: {_checkout(clone)}")


def check_vlmevalkit(run, clone: Path) -> str | None:
    """UserError when the imported VLMEvalKit lacks something the plug-in uses (NEEDED); the
    warning when its hooked files differ from the tested commit's (TESTED_FILES), else None."""
    missing = []
    for module_name, names in NEEDED.items():
        try:
            module = run if module_name == "run" else importlib.import_module(module_name)
        except ImportError:
            module = None
        missing += [f"{module_name}.{name}" for name in names if not hasattr(module, name)]
    if missing:
        raise UserError(f"VLMEvalKit at {clone} lacks {', '.join(missing)}, which focus-eval uses: it is older than "
                        f"the tested commit {TESTED_COMMIT[:8]}; {_checkout(clone)}")
    changed = [name for name, digest in TESTED_FILES.items()
               if not (clone / name).is_file() or hashlib.sha256((clone / name).read_bytes()).hexdigest() != digest]
    if not changed:
        return None
    return (f"VLMEvalKit at {clone} is not the tested commit {TESTED_COMMIT[:8]} (changed: {', '.join(changed)}); it has "
            f"what focus-eval uses, so the run goes on; if it fails: {_checkout(clone)}")


def _checkout(clone: Path) -> str:
    return f"git -C {clone} fetch origin && git -C {clone} checkout {TESTED_COMMIT}"


def _check_devices(models: list[Model]) -> None:
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    for model in models:
        try:
            resolve_device(model.args.device, model.args.device_map, world_size, 0)
        except ValueError as error:
            raise UserError(f"{model.args.spec.model_id}: {error}") from None


def _check_datasets(names: list[str], data_config: str | None, trust_local_data: bool) -> None:
    from vlmeval.dataset import SUPPORTED_DATASETS
    from vlmeval.dataset.video_dataset_config import supported_video_datasets
    from vlmeval.smp import LMUDataRoot

    try:
        custom = set(json.loads(data_config)) if data_config else set()
    except (json.JSONDecodeError, TypeError) as error:
        raise UserError(f"--data-config is not a JSON object: {error}") from None
    known = {*SUPPORTED_DATASETS, *supported_video_datasets, *custom}
    for name in names:
        if name not in known:
            ours = ", ".join(VLMEVAL_DATASETS)
            raise UserError(f"unknown VLMEvalKit dataset {name!r} (FOCUS's benchmarks there: {ours})")
    if trust_local_data:
        for name in names:
            path = Path(LMUDataRoot()) / f"{name}.tsv"
            if not path.is_file():
                raise UserError(f"{name}: no data file {path} (VLMEvalKit reads $LMUData/<dataset>.tsv)")
            for dataset_class in _dataset_classes(name):
                dataset_class.DATASET_MD5.pop(name, None)


def _dataset_classes(name: str) -> list:
    from vlmeval.dataset import DATASET_CLASSES

    return [cls for cls in DATASET_CLASSES if name in cls.supported_datasets() and hasattr(cls, "DATASET_MD5")]


# ---- the run --------------------------------------------------------------------------------


def _prepare(run, models: list[Model]) -> dict[str, Path]:
    """Register the models and hook VLMEvalKit for this run (module docstring); returns the
    dict that receives each model's run folder."""
    import vlmeval.config
    import vlmeval.inference

    from focus_eval.model_wrappers.vlmeval_models import model_entry

    names = {model.name for model in models}
    for model in models:
        vlmeval.config.supported_VLM[model.name] = model_entry(model.args)
    _gloo_without_cuda()
    vlmeval.inference.infer_data = _carry_reused_records(vlmeval.inference.infer_data, names)
    run.infer_data_job = _add_record_columns(run.infer_data_job, names)
    run_dirs: dict[str, Path] = {}
    upsert_run_status = run.upsert_run_status

    @functools.wraps(upsert_run_status)
    def record_run_dir(run_dir, **fields):
        if fields.get("model_name") in names:
            run_dirs[fields["model_name"]] = Path(run_dir)
        return upsert_run_status(run_dir, **fields)

    run.upsert_run_status = record_run_dir
    return run_dirs


def _gloo_without_cuda() -> None:
    import torch.distributed as dist

    init_process_group = dist.init_process_group

    @functools.wraps(init_process_group)
    def init(*args, **kwargs):
        if kwargs.get("backend") == "nccl" and not torch.cuda.is_available():
            kwargs["backend"] = "gloo"
        return init_process_group(*args, **kwargs)

    dist.init_process_group = init


def _carry_reused_records(infer_data, names: set[str]):
    """After one rank's inference: answers VLMEvalKit took from an earlier prediction file are
    plain strings; give them that file's records, so that every response is a structured
    record and VLMEvalKit keeps the records column."""
    from vlmeval.smp import dump, get_pred_file_path, load

    @functools.wraps(infer_data)
    def wrapper(*, model, model_name, work_dir, dataset, out_file, **kwargs):
        model = infer_data(model=model, model_name=model_name, work_dir=work_dir, dataset=dataset, out_file=out_file,
                           **kwargs)
        responses = load(out_file)
        if model_name in names and any(not isinstance(value, dict) for value in responses.values()):
            earlier = _records_in(get_pred_file_path(work_dir, model_name, dataset.dataset_name), load)
            dump({index: value if isinstance(value, dict) else {"prediction": value,
                                                                "extra_records": earlier.get(index, "")}
                  for index, value in responses.items()}, out_file)
        return model

    return wrapper


def _records_in(prediction_file: str, load) -> dict[Any, str]:
    if not Path(prediction_file).is_file():
        return {}
    data = load(prediction_file)
    if "extra_records" not in data:
        return {}
    return {index: text for index, text in zip(data["index"], data["extra_records"]) if isinstance(text, str)}


def _add_record_columns(infer_data_job, names: set[str]):
    """After VLMEvalKit wrote the prediction file (rank 0): the counter columns from the records."""
    from vlmeval.smp import dump, get_pred_file_path, get_rank_and_world_size, load

    @functools.wraps(infer_data_job)
    def wrapper(model, *, work_dir, model_name, dataset, **kwargs):
        model = infer_data_job(model, work_dir=work_dir, model_name=model_name, dataset=dataset, **kwargs)
        if model_name in names and get_rank_and_world_size()[0] == 0:
            path = get_pred_file_path(str(work_dir), model_name, dataset.dataset_name)
            data = load(path)
            columns = [record_columns(text) for text in data.get("extra_records", [""] * len(data))]
            for column in RECORD_COLUMNS:
                data[column] = [values[column] for values in columns]
            dump(data, path)
        return model

    return wrapper


def record_columns(text: Any) -> dict[str, Any]:
    """One question's prediction-file columns from its record; all None without a record."""
    if not isinstance(text, str) or not text.strip():
        return dict.fromkeys(RECORD_COLUMNS)
    record = DocRecord.from_response(text)
    return {**record.counter_values(), "failed": int(record.failed), "error": record.error}


# ---- the summary ----------------------------------------------------------------------------


def summarize(model: Model, run_dir: Path, datasets: list[str], judge: str) -> dict[str, Any]:
    """focus_summary.json (module docstring) from VLMEvalKit's status.json, its run report and
    the prediction files."""
    from vlmeval.smp import LMUDataRoot, collect_run_benchmark_report, load, load_run_status

    status = load_run_status(run_dir).get("datasets", {})
    reported = {row["benchmark"]: row for row in collect_run_benchmark_report(run_dir)}
    results = {}
    for name in datasets:
        entry, report = status.get(name, {}), reported.get(name, {})
        prediction = run_dir / entry["prediction_file"] if entry.get("prediction_file") else None
        data = load(str(prediction)) if prediction is not None and prediction.is_file() else None
        results[name] = {
            "benchmark": VLMEVAL_DATASETS.get(name),
            "status": entry.get("status"),
            "error": _problem(name, entry, LMUDataRoot()),
            "prediction_file": None if data is None else str(prediction),
            "metric": report.get("primary_metric"),
            "value": report.get("primary_metric_value"),
            "metrics": entry.get("metrics") or {},
            **counter_summary(data),
        }
    return {"framework": "VLMEvalKit", "model": model.name, "focus_model": model.args.spec.model_id,
            "method": model.args.config(None).method, "model_args": model.given, "run_dir": str(run_dir),
            "judge": judge, "results": results}


def _problem(name: str, entry: dict[str, Any], data_root: str) -> str | None:
    """Why VLMEvalKit did not finish `name`, in one line; None when it did."""
    error, skip = entry.get("error_message"), entry.get("skip_reason")
    if entry.get("status") == "done" and not error and skip in (None, "mode_infer"):
        return None
    reason = " ".join(str(error or skip or f"stopped at status {entry.get('status')!r}").split())[:300]
    data_file = Path(data_root) / f"{name}.tsv"
    if not data_file.is_file():
        return f"no data file {data_file}, and VLMEvalKit could not get it: {reason}"
    return reason


def counter_summary(data) -> dict[str, Any]:
    """Questions, failed count and rate, and the counter means of a prediction table."""
    if data is None or "failed" not in data:
        return {"questions": None if data is None else len(data), "failed": None, "failed_rate": None,
                **dict.fromkeys(COUNTER_COLUMNS)}
    failed = [int(value) for value in data["failed"] if value == value]  # NaN: no record
    return {"questions": len(data), "failed": sum(failed), "failed_rate": sum(failed) / len(data) if len(data) else None,
            **{column: mean_reported(None if value != value else float(value) for value in data[column])
               for column in COUNTER_COLUMNS}}


def summary_table(summary: dict[str, Any]) -> str:
    from tabulate import tabulate

    rows = [[name, entry["metric"] or "-", entry["value"], entry["questions"], entry["failed"],
             *(entry[column] for column in COUNTER_COLUMNS)] for name, entry in summary["results"].items()]
    headers = ["dataset", "metric", "value", "questions", "failed", *COUNTER_COLUMNS]
    return f"FOCUS x VLMEvalKit: {summary['model']} ({summary['run_dir']})\n" + tabulate(
        rows, headers=headers, floatfmt=".4g", missingval="N/A")
