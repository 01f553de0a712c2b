"""What focus-eval's three benchmark tasks share: loading, document fields, scoring, counters.

Each task is a `FocusTask` (an lmms-eval `ConfigurableTask` named by `class:` in its YAML,
`focus_eval.tasks.lmms_tasks`) bound to a `Benchmark`; the benchmarks (this module and each
`<benchmark>/utils.py`) import no lmms-eval, so the VLMEvalKit models share their prompts.
Differences from lmms-eval's built-in versions of these tasks, all deliberate:

- Data: `download` resolves the source through `focus_eval.tasks.sources` (hub id, local
  file or directory; one-line errors, no retry loop) instead of a hub-only load.
- Documents get `focus_*` columns (see `focus_eval.tasks.record.FocusQuestion`). A row with a
  missing option or a label that names no option gets `focus_error` and is scored wrong.
- Images are decoded by `doc_to_visual` only (`focus_eval.images.load_image`); a corrupt
  image raises `ImageLoadError` for that document. V*Bench's image column is read with
  `Image(decode=False)` so that merely reading a row never decodes it.
- The documents given to `process_results` and written by `--log_samples` carry no image
  (the built-in HRBench and MME-RealWorld tasks log the base64 string of every image).
- No LLM judge: an answer from which no option letter can be read is wrong; the raw answer
  and the parsed letter are kept in the sample's metric entry.
- Every accuracy metric of a task is always reported: a category without questions (e.g.
  under `--limit`) reads None ("N/A"), where the built-in leaves the metric out.
- Every task reports the counter columns fp, fp_total, bp (backward passes), tflops, seconds and
  peak_mem_gb per question (`focus_eval.tasks.record.DocRecord`), aggregated by `mean_reported`: the mean
  over questions that report them (failed questions do not), None ("N/A" in the table,
  null in the JSON) when none does, e.g. for a model that is not a FOCUS model.
- Every task reports `failed` (the number of questions that failed and were scored wrong:
  defective rows, images that do not decode, errors of the model) and `failed_rate` (their
  fraction of the task's questions, 0 to 1), so that a mean over the questions that ran is
  never read without knowing how many did not.
"""

from __future__ import annotations

import abc
from typing import Any, Iterable, Sequence

import datasets
from loguru import logger

from focus_eval.images import ImageLoadError, load_image
from focus_eval.tasks.record import ANSWER_SCHEMES, COUNTER_COLUMNS, FAILURE_COLUMNS, DocRecord
from focus_eval.tasks.schemas import SCHEMAS

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def option_letter(value: Any) -> str | None:
    """'A', ' b ', '(C)', 'D.' -> the capital letter; anything else -> None."""
    if not isinstance(value, str):
        return None
    text = value.strip().strip("().").strip().upper()
    return text if len(text) == 1 and text in LETTERS else None


def missing(value: Any) -> bool:
    """An absent option text: None, NaN (pandas reads empty TSV cells so) or blank."""
    return value is None or (isinstance(value, float) and value != value) or (isinstance(value, str) and not value.strip())


class Benchmark(abc.ABC):
    """One benchmark's reading of a row: question, options, answer letter, metric keys."""

    accuracy_metrics: tuple[str, ...]  # every accuracy metric of the task's YAML

    def __init__(self, key: str):
        self.key = key
        self.schema = SCHEMAS[key]

    @abc.abstractmethod
    def question(self, row: dict) -> str:
        """The question without options or answer instructions (the question column is text)."""

    @abc.abstractmethod
    def options(self, row: dict) -> list[Any]:
        """Option texts in letter order from A; a missing text stays in its place (the
        question column is text)."""

    @abc.abstractmethod
    def parse_answer(self, response: str, options: Sequence[str]) -> str | None:
        """The option letter the response chooses, by the built-in task's rules; None if none."""

    @abc.abstractmethod
    def entry_fields(self, doc: dict) -> dict[str, Any]:
        """Fields of the per-question metric entry that the aggregations group by."""

    @abc.abstractmethod
    def metric_names(self, doc: dict) -> list[str]:
        """The accuracy metrics this question counts in (a subset of accuracy_metrics)."""

    def record_metrics(self, doc: dict, record: DocRecord) -> dict[str, Any]:
        """Further per-question metrics read from the model's record (V*Bench: roi_recall)."""
        return {}

    # ---- shared ------------------------------------------------------------------------

    def row_problem(self, row: dict) -> str | None:
        """Why the row cannot be asked, or None."""
        if missing(row[self.schema.question_column]):
            return "question missing"
        options = self.options(row)
        if len(options) < 2:
            return f"needs at least two options, found {len(options)}"
        absent = [LETTERS[i] for i, text in enumerate(options) if missing(text)]
        if absent:
            return f"option {', '.join(absent)} missing"
        label = row[self.schema.label_column]
        letter = option_letter(label)
        if letter is None or LETTERS.index(letter) >= len(options):
            return f"label {label!r} names none of the options {LETTERS[:len(options)]}"
        return None

    def prepare(self, data: datasets.Dataset, answer_scheme: str) -> datasets.Dataset:
        """Add the focus_* columns to every row; never decodes an image."""
        if answer_scheme not in ANSWER_SCHEMES:
            raise ValueError(f"answer_scheme must be one of {ANSWER_SCHEMES}, got {answer_scheme!r}")
        image = self.schema.image_column
        if isinstance(data.features[image], datasets.Image):
            data = data.cast_column(image, datasets.Image(decode=False))
        rows = data.select_columns([c for c in data.column_names if c != image]).to_list()
        errors = [self.row_problem(row) for row in rows]
        asked = [error != "question missing" for error in errors]
        columns = {
            "focus_dataset": ([self.key] * len(rows), datasets.Value("string")),
            "focus_question": ([self.question(row) if ok else "" for row, ok in zip(rows, asked)],
                               datasets.Value("string")),
            "focus_options": ([[("" if missing(t) else str(t).strip()) for t in self.options(row)] if ok else []
                               for row, ok in zip(rows, asked)], datasets.List(datasets.Value("string"))),
            "focus_answer_scheme": ([answer_scheme] * len(rows), datasets.Value("string")),
            "focus_error": (errors, datasets.Value("string")),
        }
        for name, (values, feature) in columns.items():
            data = data.add_column(name, values, feature=feature)
        return data

    def doc_to_visual(self, doc: dict) -> list:
        """The document's image as RGB; `ImageLoadError` naming the document if unusable."""
        try:
            return [load_image(doc[self.schema.image_column])]
        except ImageLoadError as error:
            raise ImageLoadError(f"{self.key} {self.schema.id_column}={doc[self.schema.id_column]}: {error}") from None

    def process_results(self, doc: dict, results: list) -> dict[str, Any]:
        """Accuracy entries and counters of one question; never raises on a bad record.

        An accuracy metric the question does not count in (another category) gets None."""
        record = DocRecord.from_response(results[0] if results else None)
        error = doc["focus_error"] or record.error
        label = option_letter(doc[self.schema.label_column])
        letter = None if error else self.parse_answer(record.answer or "", doc["focus_options"])
        entry = {
            "id": doc[self.schema.id_column],
            **self.entry_fields(doc),
            "score": int(letter is not None and letter == label),
            "answer": letter,
            "label": label,
            "raw_answer": record.answer,
            "error": error,
        }
        if error:
            logger.warning(f"{self.key} {self.schema.id_column}={entry['id']} failed and is scored wrong: {error}")
        counted_in = set(self.metric_names(doc))
        # Every metric gets a value, so that a category without questions reads N/A, not absent.
        metrics: dict[str, Any] = {name: entry if name in counted_in else None for name in self.accuracy_metrics}
        metrics.update(dict.fromkeys(COUNTER_COLUMNS) if error else record.counter_values())
        metrics.update(self.record_metrics(doc, record))
        metrics.update(dict.fromkeys(FAILURE_COLUMNS, int(bool(error))))
        return metrics


def accuracy(entries: Iterable[dict | None]) -> float | None:
    """Fraction of the questions counted (entries not None) scored correct; None if none."""
    scores = [entry["score"] for entry in entries if entry is not None]
    return sum(scores) / len(scores) if scores else None


def total(values: Iterable[int]) -> int:
    """Sum of per-question counts (`failed`)."""
    return sum(values)


def mean_reported(values: Iterable[float | None]) -> float | None:
    """Mean of the values that were measured; None when none was."""
    measured = [v for v in values if v is not None]
    return sum(measured) / len(measured) if measured else None
