"""Reading evaluation runs: one `Row` per accuracy number, with what it cost.

A RUN argument is an output folder or a results file of an evaluation framework. Each
framework has a `RunReader` that finds its results files under a path and turns one into rows
(`READERS`); a second framework (VLMEvalKit) is one more reader. Readers never drop anything
silently: what they cannot compare (a task of no known benchmark, an unknown metric, an
accuracy that is not a number) is listed in `not_compared`; an accuracy that is N/A (no
question of its category evaluated) is a note.

lmms-eval (`LmmsEvalReader`): `<output_path>/<model>/<date>_results.json`, with
`<date>_samples_<task>.jsonl` beside it under --log_samples.
- Task names and metrics are mapped by `focus_eval.compare.names`; values become percent.
  lmms-eval writes `[]` for a per-sample key that has no aggregation (the built-in vstar_bench
  does so for its category accuracies): not a number, skipped.
- The model: `config.model` is the lmms-eval model. Ours (FOCUS_MODELS) carry the FOCUS
  options in `config.model_args`; the resolved configuration (`load_config` with the family's
  Table 7 rules for the benchmark) gives method and setting (`settings.setting_name`) and
  the options shown where runs differ. Any other model answers from the full image: method
  vanilla. The checkpoint is `pretrained` from the model arguments (for ours, the family's
  default checkpoint when absent), named by `names.model_name`.
- Numbers behind an interval: the task's evaluated questions (`n-samples` effective) for
  `overall` and for a task's only accuracy; for other accuracies the questions with an entry
  in our tasks' samples log (other tasks' logs may hold every image, so they are not read).
- Counters (fp, fp_total, tflops, seconds, peak_mem_gb) and failures (failed, failed_rate)
  are the task's values when it reports them; None otherwise ("n/a").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from focus_eval.compare.names import (COUNTERS, FAILURES, FAMILY_MODELS, FOCUS_MODELS, LMMS_EVAL_METRICS, TASKS,
                                      model_name, task_of)
from focus_eval.compare.settings import LOGITS, setting_name
from focus_eval.config import FocusConfig, load_config


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
    tflops: float | None = None
    seconds: float | None = None
    failed: float | None = None
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
    return relative.as_posix().removesuffix(".json").removesuffix("_results")


# ---- lmms-eval ----------------------------------------------------------------------------

_STDERR_SUFFIXES = ("_stderr", "_stderr_clt", "_stderr_clustered")
_FOCUS_OPTIONS = {*FocusConfig.field_names(), "layers"} - {"dataset", "answer_scheme"}  # the task sets those


class LmmsEvalReader:
    framework = "lmms-eval"
    expected = "*_results.json from --output_path"

    def results_files(self, path: Path) -> list[Path]:
        if path.is_file():
            return [path] if path.suffix == ".json" else []
        return sorted(path.rglob("*_results.json"))

    def read(self, results_file: Path, label: str) -> RunData:
        try:
            data = json.loads(results_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CompareError(f"{results_file}: cannot read it as JSON: {error}") from None
        if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
            raise CompareError(f"{results_file}: not an lmms-eval results file (no 'results' object)")
        config = data.get("config") or {}
        runner = str(config.get("model") or "unknown model")
        model_args = _parse_model_args(config.get("model_args") or "")
        family = FOCUS_MODELS.get(runner)
        pretrained = model_args.get("pretrained") or ""
        model = model_name(pretrained) if pretrained else FAMILY_MODELS.get(family, runner)
        run = RunData()
        for task, values in data["results"].items():
            known = task_of(task)
            if known is None:
                names = ", ".join(sorted(TASKS))
                run.not_compared.append(f"{label}: task {task!r} is not a benchmark compare knows (known "
                                        f"names, normalized: {names})")
                continue
            base = dict(source=label, table="", runner=runner, model=model, benchmark=known.benchmark)
            if family:
                try:
                    options = load_config(family, known.benchmark, answer_scheme=known.answer_scheme,
                                          **{k: v for k, v in model_args.items() if k in _FOCUS_OPTIONS}).to_dict()
                except ValueError as error:
                    raise CompareError(f"{results_file}: model_args of {runner}: {error}") from None
                table7 = load_config(family, known.benchmark).to_dict()
                base.update(method=options["method"], setting=setting_name(options, table7), options=options)
            else:
                base.update(method="vanilla", setting=LOGITS if known.answer_scheme == "logits" else "")
            run.rows += self._task_rows(values, base, data, task, results_file, label, run, bool(family))
        return run

    def _task_rows(self, values: dict, base: dict, data: dict, task: str, results_file: Path, label: str,
                   run: RunData, ours: bool) -> list[Row]:
        metrics = LMMS_EVAL_METRICS[base["benchmark"]]
        costs = {name: _number(values.get(f"{name},none")) for name in ("fp", "fp_total", "tflops", "seconds", "failed")}
        if all(costs[name] is None for name in ("fp", "fp_total", "tflops", "seconds")):
            run.notes.append(f"{label}: {task} reports no counters (fp, fp_total, tflops, seconds): accuracy only")
        counts = (data.get("n-samples") or {}).get(task) or {}
        effective = counts.get("effective")
        if effective is not None and counts.get("original") not in (None, effective):
            run.notes.append(f"{label}: {task} evaluated {effective} of {counts['original']} questions (--limit)")
        reported = [key for key, value in values.items() if key.partition(",")[0] in metrics and _number(value) is not None]
        samples = None
        rows = []
        for key, value in values.items():
            name, _, filter_name = key.partition(",")
            if key == "alias" or name.endswith(_STDERR_SUFFIXES) or name in (*COUNTERS, *FAILURES):
                continue
            if name not in metrics or filter_name != "none":
                run.not_compared.append(f"{label}: {task} metric {key!r} is not an accuracy compare knows")
                continue
            if isinstance(value, list):  # lmms-eval's leftover of a per-sample key without aggregation
                continue
            if value is None:  # our tasks' N/A: no question of that category was evaluated
                run.notes.append(f"{label}: {task} {name} is N/A (no question of it evaluated)")
                continue
            if _number(value) is None:
                run.not_compared.append(f"{label}: {task} {name} is not a number ({value!r})")
                continue
            metric, factor = metrics[name]
            if metric == "overall" or len(reported) == 1:
                n = effective
            elif ours:
                samples = self._entries(results_file, task) if samples is None else samples
                n = samples.get(name)
            else:
                n = None
            rows.append(Row(**base, metric=metric, value=float(value) * factor, n=n, **costs))
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


def _parse_model_args(args: str | dict) -> dict[str, str]:
    if isinstance(args, dict):  # simple_evaluate called from Python with a dict
        return {str(name): str(value) for name, value in args.items()}
    pairs = (item.partition("=") for item in str(args).split(",") if item.strip())
    return {name.strip(): value.strip() for name, _, value in pairs}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


READERS: tuple[RunReader, ...] = (LmmsEvalReader(),)
