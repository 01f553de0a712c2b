"""Column schemas of the four benchmarks as lmms-eval's built-in tasks read them.

Checked against lmms-eval 0.7.3's `vstar_bench`, `hrbench` and `mme_realworld` utils (the
fields those tasks read) and the notes on the hub datasets:

- V*Bench (`lmms-lab-encoder/vstar-bench`, split test): `image` (Hugging Face Image),
  `text` (question with inline "(A) .. (B) .." options), `label` (letter), `category`
  (direct_attributes / relative_position), `question_id`. Optional, the official V*
  annotation fields (penghao-wu/vstar): `bbox` (list of [x, y, w, h] in original pixels, one
  per target) and `target_object` (list of names, same order); a local copy may instead keep
  them in a sidecar `<image stem>.json` beside each image file (see tasks/vstar/utils.py).
- HRBench (`DreamMr/HR-Bench`, config hrbench_version_split, splits hrbench_4k /
  hrbench_8k): `index`, `question`, `A`..`D`, `answer` (letter), `category` (single /
  cross), `cycle_category` (which of the 4 option permutations), `image` (base64 string).
- MME-RealWorld-Lite (`yifanzhang114/MME-RealWorld-lite-lmms-eval`, split train): `index`,
  `question`, `multi-choice options` (list of "(A) .."), `answer` (letter), `category`
  ("Perception/<domain>" or "Reasoning/<domain>"), `l2-category` (fine task), `bytes`
  (base64 image).

This module has no dependencies: the dataset loader, the tiny-dataset builder and the model
argument check all read it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Schema:
    columns: tuple[str, ...]  # every column a task reads; a source lacking one is rejected
    image_column: str
    id_column: str
    label_column: str
    question_column: str
    optional_columns: tuple[str, ...] = ()  # read when present


SCHEMAS: dict[str, Schema] = {
    "vstar": Schema(
        columns=("image", "text", "label", "category", "question_id"),
        image_column="image", id_column="question_id", label_column="label", question_column="text",
        optional_columns=("bbox", "target_object")),
    "hrbench4k": Schema(
        columns=("index", "question", "A", "B", "C", "D", "answer", "category", "cycle_category", "image"),
        image_column="image", id_column="index", label_column="answer", question_column="question"),
    "hrbench8k": Schema(
        columns=("index", "question", "A", "B", "C", "D", "answer", "category", "cycle_category", "image"),
        image_column="image", id_column="index", label_column="answer", question_column="question"),
    "mme_realworld_lite": Schema(
        columns=("index", "question", "multi-choice options", "answer", "category", "l2-category", "bytes"),
        image_column="bytes", id_column="index", label_column="answer", question_column="question"),
}
