"""V*Bench: prompt, answer reading and metrics as lmms-eval's built-in `vstar_bench`.

Comparable with the built-in: the same prompt (question, then "A. ..", "B. .." lines, then the
post prompt), the same answer rules (`parse_vstar_letter`), the same metric names
(`vstar_overall_acc`, `vstar_direct_attributes_acc`, `vstar_relative_position_acc`) in 0-100.
The built-in reports the two category accuracies only from separate tasks; here they are
columns of `vstar` itself. Two choices where the `text` field could be read differently:
- An option text is everything up to the next "(X)" marker, parentheses allowed (the
  built-in's pattern stops at any parenthesis).
- A trailing "Answer with the option's letter ..." line in `text` is dropped before reading
  options, so it neither ends up in the last option nor appears twice in the prompt.

`vstar_logits` (C.5 of the paper) asks the bare question and leaves the choice to the model:
it scores every option (`focus_options`) as a continuation and answers the letter of the best
one. The lmms-lab-encoder copy of V*Bench has no sentence reformulations of the options ("The
color of the car is red."); the model rebuilds them from V*Bench's two question forms and
scores their mean log-probability per token (`focus_eval.statements`).

ROI recall (the paper's Tab. 3, Fig. 4; definition in `focus_eval.recall`): a row may carry the
official V* annotation of its targets, as columns `bbox` (list of [x, y, w, h] in original
pixels, one per target) and `target_object` (list of names, same order), or, for a local copy
whose `image` column holds file paths (the layout of the official penghao-wu/vstar folders), in
a sidecar `<image stem>.json` beside each image with those two keys. The boxes become the
documents' `focus_gt_boxes` ((x0, y0, x1, y1)) and `focus_gt_names`; a FOCUS model reports the
question's recall in its record, and the task's `roi_recall` metric is its mean over the
questions with boxes (null / N/A when no row has them). A malformed annotation is ignored with
a warning: the question is still asked.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Sequence

import datasets
import pyarrow as pa
from loguru import logger

from focus_eval.tasks.common import Benchmark, accuracy
from focus_eval.tasks.record import DocRecord, finite_number

CATEGORIES = ("direct_attributes", "relative_position")

_MARKER = re.compile(r"\(([A-Z])\)")
_TRAILING_INSTRUCTION = re.compile(r"\s*answer with the option'?s letter from the given choices directly\.?\s*$",
                                   re.IGNORECASE)
# The built-in's rules in its order; the response is upper-cased first.
_LETTER_RULES = (
    re.compile(r"^([A-D])"),  # starts with the letter
    re.compile(r"(?:ANSWER|CHOICE|OPTION)(?:\s+IS)?[\s:]+([A-D])"),  # "Answer: B", "the answer is B"
    re.compile(r"\(([A-D])\)"),  # "(B)"
    re.compile(r"([A-D])\s*[.)\]]"),  # "B." "B)" "B]"
    re.compile(r"(?:^|\s)([A-D])(?:\s|$)"),  # a lone letter
)


def split_text(text: str) -> tuple[str, list[str]]:
    """(question, option texts) of a V*Bench `text`; no options -> (text, [])."""
    text = _TRAILING_INSTRUCTION.sub("", text)
    markers = []
    for marker in _MARKER.finditer(text):
        if marker.group(1) != chr(ord("A") + len(markers)):
            break
        markers.append(marker)
    if not markers:
        return text.strip(), []
    ends = [m.start() for m in markers[1:]] + [len(text)]
    options = [text[m.end():end].strip() for m, end in zip(markers, ends)]
    return text[:markers[0].start()].strip(), options


def parse_vstar_letter(response: str) -> str | None:
    text = response.strip().upper()
    for rule in _LETTER_RULES:
        found = rule.search(text)
        if found:
            return found.group(1)
    letters = re.findall(r"[A-D]", text)
    return letters[0] if len(letters) == 1 else None


class VStar(Benchmark):
    accuracy_metrics = ("vstar_overall_acc", *(f"vstar_{category}_acc" for category in CATEGORIES))

    def question(self, row: dict) -> str:
        return split_text(row["text"])[0]

    def options(self, row: dict) -> list[Any]:
        return split_text(row["text"])[1]

    def parse_answer(self, response: str, options: Sequence[str]) -> str | None:
        return parse_vstar_letter(response)

    def entry_fields(self, doc: dict) -> dict[str, Any]:
        return {"category": doc["category"]}

    def metric_names(self, doc: dict) -> list[str]:
        category = doc["category"]
        return ["vstar_overall_acc"] + ([f"vstar_{category}_acc"] if category in CATEGORIES else [])

    def prepare(self, data: datasets.Dataset, answer_scheme: str) -> datasets.Dataset:
        """The focus_* columns, and the target boxes and names where the row has them."""
        truths = ground_truth(data, self.schema)
        data = super().prepare(data, answer_scheme)
        data = data.add_column("focus_gt_boxes", [boxes for boxes, _ in truths],
                               feature=datasets.List(datasets.List(datasets.Value("float64"))))
        return data.add_column("focus_gt_names", [names for _, names in truths],
                               feature=datasets.List(datasets.Value("string")))

    def record_metrics(self, doc: dict, record: DocRecord) -> dict[str, Any]:
        recall = finite_number(record.details.get("roi_recall")) if doc.get("focus_gt_boxes") else None
        return {"roi_recall": recall}


def ground_truth(data: datasets.Dataset, schema) -> list[tuple[list[list[float]], list[str]]]:
    """(boxes (x0, y0, x1, y1), names) per row, from the `bbox` / `target_object` columns or the
    rows' sidecar JSON files (module docstring); ([], []) where there is none or it is malformed."""
    ids = data[schema.id_column]
    if "bbox" in data.column_names:
        names = data["target_object"] if "target_object" in data.column_names else [None] * len(data)
        annotations = [{"bbox": bbox, "target_object": name} for bbox, name in zip(data["bbox"], names)]
    else:
        annotations = [_sidecar(path) for path in _image_paths(data, schema.image_column)]
    return [_annotation(annotation, row_id) for annotation, row_id in zip(annotations, ids)]


def _image_paths(data: datasets.Dataset, column: str) -> list[str | None]:
    """The file path stored with each row's image, without reading the image bytes."""
    table = data.select_columns([column]).with_format("arrow")[:]
    values = table.column(column)
    if not pa.types.is_struct(values.type) or values.type.get_field_index("path") < 0:
        return [None] * len(data)
    return [path for chunk in values.chunks for path in chunk.field("path").to_pylist()]


def _sidecar(path: str | None) -> dict | None:
    """The V* annotation `<image stem>.json` beside the image file, if there is one."""
    if not path:
        return None
    sidecar = Path(path).with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        annotation = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        logger.warning(f"vstar: GT annotation {sidecar} ignored: {error}")
        return None
    return annotation if isinstance(annotation, dict) else None


def _annotation(annotation: dict | None, row_id: Any) -> tuple[list[list[float]], list[str]]:
    if not annotation or annotation.get("bbox") is None:
        return [], []
    try:
        boxes = [_xyxy(box) for box in annotation["bbox"]]
    except (TypeError, ValueError) as error:
        logger.warning(f"vstar question_id={row_id}: GT annotation ignored, bbox {annotation['bbox']!r}: {error}")
        return [], []
    names = annotation.get("target_object")
    if not (isinstance(names, (list, tuple)) and len(names) == len(boxes) and all(isinstance(n, str) for n in names)):
        if names is not None:
            logger.warning(f"vstar question_id={row_id}: target_object {names!r} does not name the "
                           f"{len(boxes)} boxes; names left out")
        names = []
    return boxes, list(names)


def _xyxy(box: Any) -> list[float]:
    """V*'s [x, y, w, h] -> [x0, y0, x1, y1]; ValueError unless four finite numbers with w, h > 0."""
    if isinstance(box, (str, bytes)) or len(box) != 4:
        raise ValueError("expected [x, y, w, h]")
    x, y, w, h = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise ValueError("expected finite numbers and a positive width and height")
    return [x, y, x + w, y + h]


VSTAR = VStar("vstar")
doc_to_visual = VSTAR.doc_to_visual
process_results = VSTAR.process_results


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    kwargs = lmms_eval_specific_kwargs or {}
    text = doc["text"] or ""
    question, options = split_text(text)
    if options:
        question = question + "\n" + "\n".join(f"{chr(ord('A') + i)}. {option}" for i, option in enumerate(options))
    else:
        question = text
    return f"{kwargs.get('pre_prompt', '')}{question}{kwargs.get('post_prompt', '')}"


def doc_to_question(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """vstar_logits: the question alone; the model scores the options itself."""
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{split_text(doc['text'] or '')[0]}{kwargs.get('post_prompt', '')}"


def accuracy_percent(entries) -> float | None:
    """The built-in's scale: percent."""
    fraction = accuracy(entries)
    return None if fraction is None else 100.0 * fraction
