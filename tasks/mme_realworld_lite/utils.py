"""MME-RealWorld-Lite: the built-in `mmerealworld_lite` prompt and answer rules, plus the
per-domain accuracies of the paper's Table 2 / Table 11.

Comparable with the built-in: the same prompt, the same answer rules (`parse_mme_letter`)
and `mme_realworld_score`, the overall accuracy in 0-1. Added, in 0-1 as well: per task
(Perception / Reasoning, read from `category` as the built-in does) the accuracy over its
questions (`perception_avg`, `reasoning_avg`: question-weighted, which reproduces the
paper's averages, e.g. 52.01 for LLaVA-OV-7B perception) and per domain (`perception_ocr`,
`perception_rs`, `perception_dt`, `perception_mo`, `perception_ad`, `reasoning_ocr`,
`reasoning_dt`, `reasoning_mo`, `reasoning_ad`). Each entry keeps `l2-category`, so Table 11's
fine-grained accuracies follow from the sample log.

One rule differs from the built-in on purpose: when no capital A-E occurs, the built-in
takes the answer as a letter whenever it is a substring of "(A)".."(E)", which makes an empty
answer "A"; here only a lone letter, optionally in parentheses, is read.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from focus_eval.tasks.common import LETTERS, Benchmark

# Domain names in `category` ("Perception/<domain>") -> Table 2's abbreviations.
DOMAINS = {
    "OCR with Complex Context": "ocr",
    "Remote Sensing": "rs",
    "Diagram and Table": "dt",
    "Monitoring": "mo",
    "Autonomous_Driving": "ad",
}

_ANSWER_PREFIXES = (
    "The best answer is",
    "The correct answer is",
    "The answer is",
    "The answer",
    "The best option is",
    "The correct option is",
    "Best answer:",
    "Best option:",
)
_OPTION = re.compile(r"\s*[(（]([A-Z])[)）]\s*(.*)", re.DOTALL)
_LONE_LETTER = re.compile(r"\(?([a-e])\)?", re.IGNORECASE)


def parse_mme_letter(response: str) -> str | None:
    text = response.strip()
    for prefix in _ANSWER_PREFIXES:
        text = text.replace(prefix, "")
    found = re.search(r"[ABCDE]", text)
    if found:
        return found.group(0)
    lone = _LONE_LETTER.fullmatch(text.strip())
    return lone.group(1).upper() if lone else None


def task_of(category: str) -> str:
    """The built-in's reading: Perception if the category says so, else Reasoning."""
    return "perception" if "perception" in category.lower() else "reasoning"


class MMERealWorldLite(Benchmark):
    accuracy_metrics = ("mme_realworld_score",
                        "perception_avg", *(f"perception_{d}" for d in ("ocr", "rs", "dt", "mo", "ad")),
                        "reasoning_avg", *(f"reasoning_{d}" for d in ("ocr", "dt", "mo", "ad")))

    def question(self, row: dict) -> str:
        return row["question"].strip()

    def options(self, row: dict) -> list[Any]:
        """Texts of the "(A) ..", "(B) .." items placed by their letters; a letter without an
        item (or an item without a letter) leaves a missing option."""
        placed: dict[int, str | None] = {}
        for position, item in enumerate(row["multi-choice options"] or []):
            parsed = _OPTION.fullmatch(item) if isinstance(item, str) else None
            placed.setdefault(LETTERS.index(parsed.group(1)) if parsed else position, parsed and parsed.group(2))
        return [placed.get(index) for index in range(max(placed, default=-1) + 1)]

    def parse_answer(self, response: str, options: Sequence[str]) -> str | None:
        return parse_mme_letter(response)

    def entry_fields(self, doc: dict) -> dict[str, Any]:
        category = doc["category"] or ""
        return {"task": task_of(category), "domain": category.split("/")[-1], "l2_category": doc["l2-category"]}

    def metric_names(self, doc: dict) -> list[str]:
        category = doc["category"] or ""
        task = task_of(category)
        domain = DOMAINS.get(category.split("/")[-1])
        return ["mme_realworld_score", f"{task}_avg"] + ([f"{task}_{domain}"] if domain else [])


MME_REALWORLD_LITE = MMERealWorldLite("mme_realworld_lite")
doc_to_visual = MME_REALWORLD_LITE.doc_to_visual
process_results = MME_REALWORLD_LITE.process_results


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    kwargs = lmms_eval_specific_kwargs or {}
    options = "\n".join(item for item in (doc["multi-choice options"] or []) if isinstance(item, str))
    return (f"{kwargs.get('pre_prompt', '')}{doc['question'] or ''} The choices are listed below:\n{options}\n"
            f"{kwargs.get('post_prompt', '')}")
