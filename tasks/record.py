"""The two halves of the channel between focus-eval's tasks and a FOCUS model class.

Task -> model (`FocusQuestion`): when a task loads its dataset it adds `focus_*` columns to
every document (see `focus_eval.tasks.common`). A model reads the document the lmms-eval way,
`self.task_dict[task][split][doc_id]`, and `FocusQuestion.from_doc(doc)` gives the question
without its options, the option texts in letter order (what logits matching scores), the
benchmark key that selects the FOCUS configuration, the answer scheme, and the row's defect
when it has one (then the model must not run and answers `DocRecord.failure(...)`).

Model -> task (`DocRecord`): `generate_until` returns, per request, the string
`DocRecord(...).to_response()`: a JSON object marked `"focus_eval_record": 1` holding the raw
answer, the question's `Counters.to_dict()`, an error for a failed question, and free-form
details. That string is what lmms-eval stores as the response, so it reaches
`process_results` on the rank that generated it, lands in `--log_samples` output and in the
`--use_cache` response cache, and is replayed unchanged on resume. The per-sample metrics
`process_results` derives from it are gathered to rank 0 by lmms-eval's own metric gathering.
A response that is not such an object (any other model) is a plain answer with no counters.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, get_args, get_type_hints

from focus_eval.config import FocusConfig

RECORD_MARKER = "focus_eval_record"
RECORD_VERSION = 1

# Metric column -> key of `focus_eval.counters.Counters.to_dict()`: search forward passes, all forward
# passes, backward passes (ViCrop's grad-att map; 0 for every other method), TFLOPs, seconds, peak memory.
COUNTER_SOURCES = {
    "fp": "fp",
    "fp_total": "fp_total",
    "bp": "bp",
    "tflops": "tflops",
    "seconds": "total_seconds",
    "peak_mem_gb": "peak_mem_gb",
}
COUNTER_COLUMNS = tuple(COUNTER_SOURCES)
# Per-task failure columns: how many questions failed (a defective row, an image that does not
# decode, a model error; each is scored wrong) and their fraction of the task's questions.
FAILURE_COLUMNS = ("failed", "failed_rate")
MAX_FAILED_RATE = "--max-failed-rate"  # the launchers' option (focus-eval lmms-eval, focus-eval vlmeval)


def failed_questions_problem(counts: Mapping[str, tuple[int, int]], max_rate: float | None) -> str | None:
    """Why a run's failed questions fail the run, in words, or None: every question of a task
    failed, or, with `max_rate` (MAX_FAILED_RATE), a larger share than that. counts: task or
    dataset -> (failed questions, questions)."""
    every = [name for name, (failed, total) in counts.items() if total and failed >= total]
    over = [name for name, (failed, total) in counts.items()
            if name not in every and max_rate is not None and total and failed / total > max_rate]
    parts = []
    if every:
        parts.append("every question failed: " + ", ".join(f"{name} {counts[name][1]} of {counts[name][1]}"
                                                             for name in every))
    if over:
        parts.append(f"more questions failed than {MAX_FAILED_RATE} {max_rate:g} allows: "
                     + ", ".join(f"{name} {counts[name][0]} of {counts[name][1]}" for name in over))
    return "; ".join(parts) or None

ANSWER_SCHEMES = get_args(get_type_hints(FocusConfig)["answer_scheme"])  # ("generate", "logits")


@dataclass(frozen=True)
class FocusQuestion:
    dataset: str  # FocusConfig dataset key: vstar, hrbench4k, hrbench8k, mme_realworld_lite
    question: str  # the question alone: no options, no answer instruction
    options: tuple[str, ...]  # option texts; options[i] belongs to letter "ABCDE.."[i]
    answer_scheme: str  # "generate": answer the prompt; "logits": score each option text
    error: str | None  # the row's defect (missing option, bad label); None when usable
    gt_boxes: tuple[tuple[float, ...], ...] = ()  # V*Bench target boxes (x0, y0, x1, y1), when annotated
    gt_names: tuple[str, ...] = ()  # their target_object names ((): unknown)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> "FocusQuestion | None":
        """The focus-eval fields of `doc`, or None for a document of another task."""
        if "focus_dataset" not in doc:
            return None
        return cls(dataset=doc["focus_dataset"], question=doc["focus_question"],
                   options=tuple(doc["focus_options"]), answer_scheme=doc["focus_answer_scheme"],
                   error=doc["focus_error"] or None,
                   gt_boxes=tuple(tuple(box) for box in doc.get("focus_gt_boxes") or ()),
                   gt_names=tuple(doc.get("focus_gt_names") or ()))

    @property
    def lettered_options(self) -> list[tuple[str, str]]:
        """[("A", text), ("B", text), ..]: the `options` argument of `Pipeline.answer`."""
        return [(chr(ord("A") + i), text) for i, text in enumerate(self.options)]


@dataclass(frozen=True)
class DocRecord:
    answer: str | None  # raw answer text (generate) or the chosen letter (logits); None if failed
    counters: dict[str, Any] | None = None  # Counters.to_dict() of this question
    error: str | None = None  # why the question failed; None when it did not
    details: dict[str, Any] = field(default_factory=dict)  # JSON-able extras, e.g. option scores

    @classmethod
    def success(cls, answer: str, counters, **details: Any) -> "DocRecord":
        """`counters`: the question's `focus_eval.counters.Counters`."""
        return cls(answer=answer, counters=counters.to_dict(), details=details)

    @classmethod
    def failure(cls, error: str | BaseException, counters=None, **details: Any) -> "DocRecord":
        message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        return cls(answer=None, counters=None if counters is None else counters.to_dict(),
                   error=message, details=details)

    @property
    def failed(self) -> bool:
        return self.error is not None

    def to_response(self) -> str:
        return json.dumps({RECORD_MARKER: RECORD_VERSION, "answer": self.answer, "error": self.error,
                           "counters": self.counters, "details": self.details}, sort_keys=True)

    @classmethod
    def from_response(cls, response: str | None) -> "DocRecord":
        """Never raises: a plain string is an answer without counters; a damaged record is a
        failure that says so."""
        text = (response or "").strip()
        if not text.startswith("{") or RECORD_MARKER not in text:
            return cls(answer=text)
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as error:
            return cls(answer=None, error=f"unreadable focus-eval record: {error}")
        if not isinstance(payload, dict) or RECORD_MARKER not in payload:
            return cls(answer=text)
        if payload[RECORD_MARKER] != RECORD_VERSION:
            return cls(answer=None, error=f"unsupported focus-eval record version {payload[RECORD_MARKER]!r}")
        answer, error, counters = payload.get("answer"), payload.get("error"), payload.get("counters")
        if not (answer is None or isinstance(answer, str)) or not (counters is None or isinstance(counters, dict)):
            return cls(answer=None, error="malformed focus-eval record: answer must be a string, counters an object")
        if answer is None and error is None:
            error = "focus-eval record without answer or error"
        return cls(answer=answer, counters=counters, error=None if error is None else str(error),
                   details=payload.get("details") or {})

    def counter_values(self) -> dict[str, float | None]:
        """The per-sample counter metrics; None where not measured (no counters, or failed)."""
        if self.failed or not self.counters:
            return dict.fromkeys(COUNTER_COLUMNS)
        return {column: finite_number(self.counters.get(source)) for column, source in COUNTER_SOURCES.items()}


def finite_number(value: Any) -> float | None:
    """A finite number as float; None for anything else (None, NaN, a string, a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)
