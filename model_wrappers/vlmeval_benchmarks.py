"""The four benchmarks as VLMEvalKit stores them, read the way our lmms-eval tasks read them.

VLMEvalKit's datasets VStarBench, HRBench4K, HRBench8K and MME-RealWorld-Lite are tables
(`$LMUData/<name>.tsv`) with one question per row: `index`, `image` (base64), `question`, the
option texts in columns `A`, `B`, ... and the label in `answer`, plus `category` (and HRBench's
`cycle_category`, MME-RealWorld's `l2-category`). VLMEvalKit's MME-RealWorld loader turns the
stored list of "(A) .." items into the columns A-E when it loads the file. Only these columns
are read here; the rest of a real file's columns are VLMEvalKit's business.

`question(name, row)` turns a row into the document of our lmms-eval task (see
`focus_eval.tasks.schemas`) and asks the task's own code for everything the model needs: the
prompt (the task's `doc_to_text` with the YAML's pre/post prompt), the question and option
texts, the row's defect if any (`Benchmark.row_problem`), and the decoding (the YAML's
`generation_kwargs`, with lmms-eval's defaults). So a question gets the same input in both
frameworks, and the same answer.

`vlmeval_rows(key, rows)` goes the other way, for tiny test files: rows of
`focus_eval.tasks.tiny_data` in VLMEvalKit's columns (`write_tiny_tsv`).

This module imports neither framework.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from focus_eval.model_wrappers.model_args import DEFAULT_MAX_NEW_TOKENS
from focus_eval.tasks import tiny_data
from focus_eval.tasks.common import LETTERS, missing
from focus_eval.tasks.hrbench import utils as hrbench
from focus_eval.tasks.mme_realworld_lite import utils as mme_realworld_lite
from focus_eval.tasks.record import FocusQuestion
from focus_eval.tasks.vstar import utils as vstar

# VLMEvalKit dataset name -> our benchmark key (FocusConfig.dataset, Table 7 rules).
VLMEVAL_DATASETS = {"VStarBench": "vstar", "HRBench4K": "hrbench4k", "HRBench8K": "hrbench8k",
                    "MME-RealWorld-Lite": "mme_realworld_lite"}
# benchmark key -> (task package, task YAML, the Benchmark, the task's doc_to_text)
_TASKS = {
    "vstar": ("focus_eval.tasks.vstar", "vstar.yaml", vstar.VSTAR, vstar.doc_to_text),
    "hrbench4k": ("focus_eval.tasks.hrbench", "hrbench4k.yaml", hrbench.HRBENCH_4K, hrbench.doc_to_text),
    "hrbench8k": ("focus_eval.tasks.hrbench", "hrbench8k.yaml", hrbench.HRBENCH_8K, hrbench.doc_to_text),
    "mme_realworld_lite": ("focus_eval.tasks.mme_realworld_lite", "mme_realworld_lite.yaml",
                           mme_realworld_lite.MME_REALWORLD_LITE, mme_realworld_lite.doc_to_text),
}
LMMS_EVAL_STOP = ("\n\n",)  # lmms-eval's `until` when a task's generation_kwargs give none (its fewshot_delimiter)
_OPTION_COLUMNS = {"vstar": 4, "mme_realworld_lite": 5}


@dataclass(frozen=True)
class TaskInput:
    """What our lmms-eval task gives the model for one question."""

    question: FocusQuestion
    prompt: str
    max_new_tokens: int
    stop: tuple[str, ...]


@dataclass(frozen=True)
class VLMEvalQuestion:
    dataset: str  # VLMEvalKit's dataset name
    index: Any  # the row's `index`
    task: TaskInput
    image: Any  # the row's base64 image, a path, or a list of them (several images)


def question(name: str, row: Any) -> VLMEvalQuestion:
    """One row of VLMEvalKit dataset `name` (a pandas Series or a dict) as our task asks it."""
    key = VLMEVAL_DATASETS[name]
    image = row["image"] if "image" in row else row["image_path"]
    return VLMEvalQuestion(dataset=name, index=row["index"], task=task_input(key, document(key, row)), image=image)


def document(key: str, row: Any) -> dict[str, Any]:
    """The fields our lmms-eval task reads, from a VLMEvalKit row of benchmark `key`."""
    if key == "vstar":
        options = _options(row, _OPTION_COLUMNS[key])  # V*Bench's lmms-eval copy has the options inline in `text`
        text = _text(row["question"]) + "".join(f"\n({LETTERS[i]}) {o}" for i, o in enumerate(options))
        return {"text": text, "label": row["answer"], "category": row["category"], "question_id": row["index"]}
    if key == "mme_realworld_lite":
        items = [f"({LETTERS[i]}) {o}" for i, o in enumerate(_options(row, _OPTION_COLUMNS[key])) if o]
        return {"index": row["index"], "question": row["question"], "multi-choice options": items,
                "answer": row["answer"], "category": row["category"], "l2-category": row["l2-category"]}
    # HRBench: every option column, as in its lmms-eval copy (a missing one is a defect there too)
    return {"index": row["index"], "question": row["question"], "answer": row["answer"],
            "category": row["category"], "cycle_category": row["cycle_category"],
            **{letter: row[letter] if letter in row and not missing(row[letter]) else None for letter in LETTERS[:4]}}


def task_input(key: str, doc: dict[str, Any]) -> TaskInput:
    """Prompt, question, options, defect and decoding of our task for one document."""
    _, _, benchmark, doc_to_text = _TASKS[key]
    doc = {**doc, "focus_dataset": key}
    problem = benchmark.row_problem(doc)
    asked = problem != "question missing"
    config = task_config(key)
    return TaskInput(
        question=FocusQuestion(dataset=key, question=benchmark.question(doc) if asked else "",
                               options=tuple("" if missing(t) else str(t).strip() for t in benchmark.options(doc))
                               if asked else (), answer_scheme="generate", error=problem),
        prompt=doc_to_text(doc, config["lmms_eval_specific_kwargs"]["default"]),
        max_new_tokens=int(config.get("generation_kwargs", {}).get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)),
        stop=tuple(config.get("generation_kwargs", {}).get("until", LMMS_EVAL_STOP)))


@lru_cache(maxsize=None)
def task_config(key: str) -> dict[str, Any]:
    """Our task's YAML (its `!function` entries as plain strings)."""
    package, name, _, _ = _TASKS[key]
    config = yaml.load(resources.files(package).joinpath(name).read_text(encoding="utf-8"), Loader=_TaskLoader)
    if "lmms_eval_specific_kwargs" not in config:  # hrbench8k includes hrbench4k's
        config = {**task_config("hrbench4k"), **config}
    return config


class _TaskLoader(yaml.SafeLoader):
    pass


_TaskLoader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def _options(row: Any, count: int) -> list[str]:
    """Option texts A.. in place, up to the last one given; a missing one is ""."""
    texts = [None if letter not in row or missing(row[letter]) else str(row[letter]) for letter in LETTERS[:count]]
    while texts and texts[-1] is None:
        texts.pop()
    return [text or "" for text in texts]


def _text(value: Any) -> str:
    return "" if missing(value) else str(value)


# ---- tiny test files in VLMEvalKit's columns --------------------------------------------------


def vlmeval_rows(key: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of `focus_eval.tasks.tiny_data.build_rows(key)` in VLMEvalKit's columns."""
    out = []
    for row in rows:
        if key == "vstar":
            text, options = vstar.split_text(row["text"])
            image = base64.b64encode(row["image"]["bytes"]).decode("ascii")
            out.append({"index": row["question_id"], "image": image, "question": text,
                        **{LETTERS[i]: o for i, o in enumerate(options)},
                        "answer": row["label"], "category": row["category"]})
        elif key == "mme_realworld_lite":
            options = mme_realworld_lite.MME_REALWORLD_LITE.options(row)
            options += [None] * (_OPTION_COLUMNS[key] - len(options))  # VLMEvalKit's loader reads five items
            items = [f"({LETTERS[i]}) {o or ''}" for i, o in enumerate(options)]
            out.append({"index": row["index"], "image": row["bytes"], "question": row["question"],
                        "multi-choice options": repr(items), "answer": row["answer"],
                        "category": row["category"], "l2-category": row["l2-category"]})
        else:
            out.append(dict(row))
    return out


def write_tiny_tsv(name: str, out_dir: str | Path, *, scale: float = 1.0, bad_rows: bool = False,
                   seed: int = 0) -> Path:
    """Write the tiny copy of VLMEvalKit dataset `name` as `out_dir/<name>.tsv`."""
    import pandas as pd

    key = VLMEVAL_DATASETS[name]
    rows = vlmeval_rows(key, tiny_data.build_rows(key, scale=scale, bad_rows=bad_rows, seed=seed))
    path = Path(out_dir) / f"{name}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path

