"""Reading evaluation runs: one `Row` per accuracy number, with what it cost.

A RUN argument is an output folder or a results file of an evaluation framework. Each
framework has a `RunReader` that finds its results files under a path and turns one into rows
(`READERS`: lmms-eval, VLMEvalKit). Readers never drop anything silently: what they cannot
compare (a task of no known benchmark, an unknown metric, a dataset that did not finish) is
listed in `not_compared`; an accuracy that is N/A (no question of its category evaluated) is a
note. Readers believe no number: every number they read (`_checked`) must be a finite number
(not a bool, not a string) within its field's range: accuracies 0-100 percent (0-1 where the
framework writes fractions), recall 0-1, counters and failure counts >= 0, question counts
integers >= 0; one that is not is left out (a bad accuracy: its row; a bad counter, recall or
question count: that column, shown n/a and not plotted) and listed in `not_compared`, naming
the file and the field. A results file whose structure is wrong (no `results` object, a
`config` or model arguments that are no object) is a CompareError. The model, method, setting
and options of a run of our FOCUS models come from its model arguments the same way in both
(`_identity`).

lmms-eval (`LmmsEvalReader`): `<output_path>/<model>/<date>_results.json`, with
`<date>_samples_<task>.jsonl` beside it under --log_samples.
- Task names and metrics are mapped by `focus_eval.present.compare.names`; values become percent.
  lmms-eval writes `[]` for a per-sample key that has no aggregation (the built-in vstar_bench
  does so for its category accuracies): not a number, skipped.
- The model: `config.model` is the lmms-eval model. Ours (`focus_eval.model_specs`) carry the FOCUS
  options in `config.model_args`; the resolved configuration (`load_config` with the family's
  Table 7 rules for the benchmark) gives method and setting (`settings.setting_name`) and
  the options shown where runs differ. Any other model answers from the full image: method
  vanilla. The checkpoint is `pretrained` from the model arguments (for ours, the family's
  default checkpoint when absent), named by `names.model_name`.
- Numbers behind an interval: the task's evaluated questions (`n-samples` effective) for
  `overall` and for a task's only accuracy; for other accuracies the questions with an entry
  in our tasks' samples log (other tasks' logs may hold every image, so they are not read).
  lmms-eval always writes `n-samples`: a task without it is listed in `not_compared`.
- Counters (fp, fp_total, bp, tflops, seconds, peak_mem_gb), failures (failed, failed_rate) and
  our V*Bench tasks' `roi_recall` (a fraction; percent in `Row.recall`) are the task's values
  when it reports them, on every row of the task; None otherwise ("n/a").

VLMEvalKit (`VlmevalReader`): a run folder `<work-dir>/<model>/<eval id>/` holds VLMEvalKit's
`status.json` (per dataset: status, metrics, prediction file) and, for `focus-eval vlmeval`,
`focus_summary.json` (the same metrics, plus our model, its method and arguments, counters and
failures; model_wrappers/vlmeval_run.py). The summary's method is the one the run resolved; it
wins over the model arguments, so that a run's method stays what it was if a default changes. A run is read from its summary when it has one, else from
status.json: VLMEvalKit's own model (its model name), method vanilla, no counters. VLMEvalKit
links `<work-dir>/<model>/status.json` to the latest run's; links are not read again.
- Dataset names map to benchmarks as lmms-eval's tasks do (VStarBench, HRBench4K, HRBench8K,
  MME-RealWorld-Lite); metrics by `names.VLMEVAL_METRICS` (fractions, made percent); the numbers
  they are averaged from (`names.VLMEVAL_PARTS`) are left out.
- A dataset whose status is not "done" or that has an error is not compared.
- Numbers behind an interval: the questions of the prediction file (in the run folder), per
  metric by its `category` column (`names.VLMEVAL_CATEGORIES`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from focus_eval.present.compare.names import (COUNTERS, FAILURES, FAMILY_MODELS, LMMS_EVAL_METRICS, LMMS_EVAL_RECALL, TASKS,
                                      VLMEVAL_CATEGORIES, VLMEVAL_METRICS, VLMEVAL_PARTS, Task, focus_family,
                                      model_name, task_of)
from focus_eval.present.compare.settings import LOGITS, setting_name
from focus_eval.config import FocusConfig, load_config


VLMEVAL_STATUS = "status.json"  # VLMEvalKit's record of a run
FOCUS_SUMMARY = "focus_summary.json"  # focus-eval vlmeval's, beside it (model_wrappers/vlmeval_run.py)


class CompareError(Exception):
    """Input that cannot be compared at all: one line, exit status 2."""


@dataclass
class Row:
    """One number of a run or of the paper, with the configuration and costs behind it."""

    source: str  # the run's label, or the paper
    table: str  # the paper's table(s); "" for a run
    runner: str  # the framework's model that produced it (lmms-eval --model); "" for the paper
    model: str
    method: str
    setting: str
    benchmark: str
    metric: str
    value: float  # accuracy in percent
    n: int | None  # questions behind the value
    fp: float | None = None
    fp_total: float | None = None
    bp: float | None = None  # backward passes per question (ViCrop's grad-att)
    tflops: float | None = None
    seconds: float | None = None
    failed: float | None = None
    recall: float | None = None  # V*Bench ROI recall in percent (names.py)
    options: dict[str, Any] = field(default_factory=dict)  # resolved FOCUS options (our FOCUS runs)

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return self.model, self.method, self.setting, self.benchmark, self.metric


@dataclass
class RunData:
    rows: list[Row] = field(default_factory=list)
    not_compared: list[str] = field(default_factory=list)  # what the runs hold that was left out, one line each
    notes: list[str] = field(default_factory=list)  # anything else worth knowing, one line each


class RunReader(Protocol):
    framework: str
    expected: str  # what its results files look like, for the message when none is found

    def results_files(self, path: Path) -> list[Path]:
        """This framework's results files at `path` (a file or a folder); [] if none."""

    def read(self, results_file: Path, label: str) -> RunData:
        """The rows of one results file; CompareError if it is not one."""


def read_runs(arguments: list[str], readers: tuple[RunReader, ...] | None = None) -> RunData:
    """All rows of the RUN arguments; CompareError for a path without results."""
    readers = READERS if readers is None else readers
    data, seen = RunData(), {}
    for argument in arguments:
        path = Path(argument)
        if not path.exists():
            raise CompareError(f"{argument}: no such file or folder")
        found = [(reader, found) for reader in readers for found in reader.results_files(path)]
        if not found:
            wanted = "; ".join(f"{reader.framework}: {reader.expected}" for reader in readers)
            raise CompareError(f"{argument}: no results found ({wanted})")
        for reader, results_file in found:
            resolved = results_file.resolve()
            if resolved in seen:
                data.notes.append(f"{argument}: {results_file} was already read as {seen[resolved]}; read once")
                continue
            label = argument if len(found) == 1 else f"{argument.rstrip('/')}/{_stem(results_file.relative_to(path))}"
            seen[resolved] = label
            run = reader.read(results_file, label)
            data.rows += run.rows
            data.not_compared += run.not_compared
            data.notes += run.notes
    return data


def _stem(relative: Path) -> str:
    if relative.name in (VLMEVAL_STATUS, FOCUS_SUMMARY):  # a VLMEvalKit run: its folder
        return relative.parent.as_posix()
    return relative.as_posix().removesuffix(".json").removesuffix("_results")


# ---- lmms-eval ----------------------------------------------------------------------------

_STDERR_SUFFIXES = ("_stderr", "_stderr_clt", "_stderr_clustered")
_FOCUS_OPTIONS = {*FocusConfig.field_names(), "layers"} - {"dataset", "answer_scheme"}  # the task sets those


class LmmsEvalReader:
    framework = "lmms-eval"
    expected = "*_results.json from --output_path"

    def results_files(self, path: Path) -> list[Path]:
        if path.is_file():
            return [path] if path.suffix == ".json" and path.name not in (VLMEVAL_STATUS, FOCUS_SUMMARY) else []
        return sorted(path.rglob("*_results.json"))

    def read(self, results_file: Path, label: str) -> RunData:
        data = _load_json(results_file)
        if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
            raise CompareError(f"{results_file}: not an lmms-eval results file (no 'results' object)")
        config = _object(data, "config", results_file)
        runner = str(config.get("model") or "unknown model")
        model_args = config.get("model_args") or ""
        if not isinstance(model_args, (str, dict)):
            raise CompareError(f"{results_file}: config.model_args is neither text nor an object ({model_args!r})")
        model_args = _parse_model_args(model_args)
        n_samples = _object(data, "n-samples", results_file)
        run = RunData()
        for task, values in data["results"].items():
            known = _benchmark_of(task, label, run)
            if known is None:
                continue
            if not isinstance(values, dict):
                run.not_compared.append(f"{results_file}: results.{task} is not an object ({values!r}): left out")
                continue
            base = _identity(label, runner, runner, model_args, known, results_file)
            run.rows += self._task_rows(values, base, n_samples, task, results_file, label, run, "options" in base)
        return run

    def _task_rows(self, values: dict, base: dict, n_samples: dict, task: str, results_file: Path, label: str,
                   run: RunData, ours: bool) -> list[Row]:
        metrics = LMMS_EVAL_METRICS[base["benchmark"]]
        where = f"{results_file}: results.{task}"
        costs = _costs({name: values.get(f"{name},none") for name in _COSTS}, where, task, label, run,
                       suffix=",none")
        recall = _checked(values.get(f"{LMMS_EVAL_RECALL},none"), f"{where} {LMMS_EVAL_RECALL},none", run, high=1)
        costs["recall"] = None if recall is None else recall * 100
        counts = n_samples.get(task)
        effective = None
        if not isinstance(counts, dict) or "effective" not in counts:
            run.not_compared.append(f"{results_file}: n-samples.{task}.effective is missing: no question count and no "
                                    "interval for it")
        else:
            effective = _checked(counts["effective"], f"{results_file}: n-samples.{task}.effective", run, count=True)
            if effective is not None and isinstance(counts.get("original"), int) and counts["original"] != effective:
                run.notes.append(f"{label}: {task} evaluated {effective} of {counts['original']} questions (--limit)")
        reported = [key for key, value in values.items() if key.partition(",")[0] in metrics and _number(value) is not None]
        samples = None
        rows = []
        for key, value in values.items():
            name, _, filter_name = key.partition(",")
            if key == "alias" or name.endswith(_STDERR_SUFFIXES) or name in (*COUNTERS, *FAILURES, LMMS_EVAL_RECALL):
                continue
            if name not in metrics or filter_name != "none":
                run.not_compared.append(f"{label}: {task} metric {key!r} is not an accuracy compare knows")
                continue
            if isinstance(value, list):  # lmms-eval's leftover of a per-sample key without aggregation
                continue
            if value is None:  # our tasks' N/A: no question of that category was evaluated
                run.notes.append(f"{label}: {task} {name} is N/A (no question of it evaluated)")
                continue
            metric, factor = metrics[name]
            accuracy = _checked(value, f"{where} {key}", run, high=100 / factor)
            if accuracy is None:
                continue
            if metric == "overall" or len(reported) == 1:
                n = effective
            elif ours:
                samples = self._entries(results_file, task) if samples is None else samples
                n = samples.get(name)
            else:
                n = None
            rows.append(Row(**base, metric=metric, value=accuracy * factor, n=n, **costs))
        return rows

    @staticmethod
    def _entries(results_file: Path, task: str) -> dict[str, int]:
        """Questions per metric in the task's samples log ({} without one)."""
        date = results_file.name.removesuffix("_results.json")
        log = results_file.with_name(f"{date}_samples_{task}.jsonl")
        counts: dict[str, int] = {}
        if log.is_file():
            with log.open() as handle:
                for line in handle:
                    for name, entry in json.loads(line).items():
                        if isinstance(entry, dict) and "score" in entry:
                            counts[name] = counts.get(name, 0) + 1
        return counts


# ---- VLMEvalKit ---------------------------------------------------------------------------

_PREDICTION_READERS = {".xlsx": "read_excel", ".tsv": "read_table", ".csv": "read_csv"}


class VlmevalReader:
    framework = "VLMEvalKit"
    expected = f"{FOCUS_SUMMARY} or {VLMEVAL_STATUS} in <work-dir>/<model>/<eval id>/"

    def results_files(self, path: Path) -> list[Path]:
        if path.is_file():
            return [path] if path.name in (FOCUS_SUMMARY, VLMEVAL_STATUS) else []
        # VLMEvalKit links <model>/status.json to its latest run's: each run is read once, from its own folder
        found = [file for name in (FOCUS_SUMMARY, VLMEVAL_STATUS) for file in path.rglob(name) if not file.is_symlink()]
        return sorted(file for file in found if file.name == FOCUS_SUMMARY or not file.with_name(FOCUS_SUMMARY).is_file())

    def read(self, results_file: Path, label: str) -> RunData:
        run_dir = results_file.resolve().parent
        run = RunData()
        if (run_dir / FOCUS_SUMMARY).is_file():
            summary = _load_json(run_dir / FOCUS_SUMMARY)
            if not isinstance(summary, dict) or not isinstance(summary.get("results"), dict):
                raise CompareError(f"{run_dir / FOCUS_SUMMARY}: not a focus-eval vlmeval summary (no 'results' object)")
            model_id = str(summary.get("focus_model"))
            model_args = _parse_model_args(_object(summary, "model_args", run_dir / FOCUS_SUMMARY))
            if summary.get("method"):  # the method the run resolved (older summaries: from model_args alone)
                model_args["method"] = str(summary["method"])
            runner, datasets = str(summary.get("model")), summary["results"]
            source = run_dir / FOCUS_SUMMARY
        else:
            status = _load_json(run_dir / VLMEVAL_STATUS)
            if not isinstance(status, dict) or not isinstance(status.get("datasets"), dict):
                raise CompareError(f"{run_dir / VLMEVAL_STATUS}: not a VLMEvalKit status.json (no 'datasets' object)")
            model_id, model_args = str(status.get("model_name") or run_dir.parent.name), {}
            runner = model_id
            datasets = {name: dict(entry, error=entry.get("error_message") or entry.get("skip_reason"))
                        if isinstance(entry, dict) else entry for name, entry in status["datasets"].items()}
            source = run_dir / VLMEVAL_STATUS
            run.notes.append(f"{label}: no {FOCUS_SUMMARY} (not a focus-eval vlmeval run): VLMEvalKit's model "
                             f"{runner} read as answering from the full image")
        for dataset, entry in datasets.items():
            known = _benchmark_of(dataset, label, run)
            if known is None:
                continue
            where = f"{source}: {'results' if source.name == FOCUS_SUMMARY else 'datasets'}.{dataset}"
            if not isinstance(entry, dict) or not isinstance(entry.get("metrics") or {}, dict):
                run.not_compared.append(f"{where} is not an object with a 'metrics' object: left out")
                continue
            if entry.get("status") != "done" or entry.get("error"):
                error = f": {entry['error']}" if entry.get("error") else ""
                run.not_compared.append(f"{label}: {dataset} did not finish in VLMEvalKit (status "
                                        f"{entry.get('status')!r}{error})")
                continue
            base = _identity(label, f"{runner} (VLMEvalKit)", model_id, model_args, known, results_file)
            costs = _costs(entry, where, dataset, label, run)
            counts = _question_counts(run_dir, entry.get("prediction_file"), known.benchmark)
            if counts is None:
                run.notes.append(f"{label}: {dataset}: no prediction file, so no question counts (intervals)")
            run.rows += self._dataset_rows(entry.get("metrics") or {}, base, costs, counts or {}, dataset, label, run,
                                           where)
        return run

    @staticmethod
    def _dataset_rows(metrics: dict, base: dict, costs: dict, counts: dict[str, int], dataset: str, label: str,
                      run: RunData, where: str) -> list[Row]:
        known, parts = VLMEVAL_METRICS[base["benchmark"]], VLMEVAL_PARTS.get(base["benchmark"])
        order = list(known)
        rows = []
        for name, value in sorted(metrics.items(), key=lambda item: order.index(item[0]) if item[0] in order else 0):
            if parts is not None and parts.fullmatch(name):
                continue
            if name not in known:
                run.not_compared.append(f"{label}: {dataset} metric {name!r} is not an accuracy compare knows")
                continue
            metric, factor = known[name]
            accuracy = _checked(value, f"{where}.metrics {name}", run, high=100 / factor)
            if accuracy is not None:
                rows.append(Row(**base, metric=metric, value=accuracy * factor, n=counts.get(metric), **costs))
        return rows


def _question_counts(run_dir: Path, prediction_file: Any, benchmark: str) -> dict[str, int] | None:
    """Questions per metric in a VLMEvalKit prediction file (.xlsx, .tsv or .csv, in the run's
    folder); None without one."""
    path = run_dir / Path(str(prediction_file or "")).name
    if not prediction_file or path.suffix not in _PREDICTION_READERS or not path.is_file():
        return None
    import pandas as pd

    table = getattr(pd, _PREDICTION_READERS[path.suffix])(path)
    counts = {"overall": len(table)}
    categories = VLMEVAL_CATEGORIES[benchmark]
    for category in table["category"] if "category" in table else ():
        for metric in categories.get(category, ()):
            counts[metric] = counts.get(metric, 0) + 1
    return counts


# ---- both -----------------------------------------------------------------------------------

_COUNTED = ("fp", "fp_total", "bp", "tflops", "seconds")
_COSTS = (*_COUNTED, "failed")


def _costs(reported: dict[str, Any], where: str, task: str, label: str, run: RunData,
           suffix: str = "") -> dict[str, float | None]:
    """A task's fp, fp_total, bp, tflops, seconds and failed count (`_checked`, `where` + the field and
    `suffix`), None where it reports none; a task without counters is noted."""
    costs = {name: _checked(reported.get(name), f"{where} {name}{suffix}", run) for name in _COSTS}
    if all(reported.get(name) is None for name in _COUNTED):
        run.notes.append(f"{label}: {task} reports no counters ({', '.join(_COUNTED)}): accuracy only")
    return costs


def _checked(value: Any, where: str, run: RunData, high: float = math.inf, count: bool = False) -> float | None:
    """`value` when it is a finite number from 0 to `high` (an int, with `count`); None when it is
    None (not reported) or is not such a number, which is listed in `run.not_compared` with
    `where` (the file and the field) and left out."""
    if value is None:
        return None
    if count and not (isinstance(value, int) and not isinstance(value, bool)):
        problem = f"is not a whole number ({value!r})"
    elif _number(value) is None:
        problem = f"is not a number ({value!r})"
    elif not math.isfinite(value):
        problem = f"is {value!r}, not a finite number"
    elif not 0 <= value <= high:
        problem = f"is {value!r}, outside 0-{high:g}"
    else:
        return value if count else float(value)
    run.not_compared.append(f"{where} {problem}: left out")
    return None


def _object(data: dict, key: str, path: Path) -> dict:
    """`data[key]`, an object ({} when absent); CompareError when it is something else."""
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CompareError(f"{path}: '{key}' is not an object ({value!r})")
    return value


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CompareError(f"{path}: cannot read it as JSON: {error}") from None


def _benchmark_of(task: str, label: str, run: RunData) -> Task | None:
    """The benchmark of a framework's task or dataset name; None (noted in `run`) for an unknown one."""
    known = task_of(task)
    if known is None:
        run.not_compared.append(f"{label}: task {task!r} is not a benchmark compare knows (known names, normalized: "
                                f"{', '.join(sorted(TASKS))})")
    return known


def _identity(label: str, runner: str, model_id: str, model_args: dict[str, str], known: Task,
              results_file: Path) -> dict[str, Any]:
    """The Row fields that say who answered what: source, runner, model, benchmark, method, setting
    and, for our FOCUS models (`model_id`), the resolved options."""
    family = focus_family(model_id)
    pretrained = model_args.get("pretrained") or ""
    model = model_name(pretrained) if pretrained else FAMILY_MODELS.get(family, model_id)
    base = dict(source=label, table="", runner=runner, model=model, benchmark=known.benchmark)
    if not family:
        return dict(base, method="vanilla", setting=LOGITS if known.answer_scheme == "logits" else "")
    try:
        options = load_config(family, known.benchmark, answer_scheme=known.answer_scheme,
                              **{k: v for k, v in model_args.items() if k in _FOCUS_OPTIONS}).to_dict()
    except ValueError as error:
        raise CompareError(f"{results_file}: model arguments of {model_id}: {error}") from None
    table7 = load_config(family, known.benchmark).to_dict()
    return dict(base, method=options["method"], setting=setting_name(options, table7), options=options)


def _parse_model_args(args: str | dict) -> dict[str, str]:
    if isinstance(args, dict):  # simple_evaluate called from Python with a dict
        return {str(name): str(value) for name, value in args.items()}
    pairs = (item.partition("=") for item in str(args).split(",") if item.strip())
    return {name.strip(): value.strip() for name, _, value in pairs}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


READERS: tuple[RunReader, ...] = (LmmsEvalReader(), VlmevalReader())
