"""HRBench-4K/8K: prompt, answer reading and metrics as lmms-eval's built-in `hrbench4k/8k`.

Comparable with the built-in: the same prompt (question, "A. ..\\n" lines, "Answer the option
letter directly."), the same metric names and aggregation: `single` and `cross` over the
questions of that category, `average` over all, each the mean over `cycle_category` of the
per-cycle accuracy, in 0-1. Answers are read by the built-in's local rules
(`parse_hrbench_letter`); where those find nothing the built-in asks an OpenAI judge, here the
answer is wrong (the raw answer stays in the sample log).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

from focus_eval.tasks.common import LETTERS, Benchmark, missing

CATEGORIES = ("single", "cross")

_REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
_SEPARATORS = str.maketrans({c: " " for c in ".()[],:;!*#{}"})


def parse_hrbench_letter(response: str, options: Sequence[str]) -> str | None:
    """The letter when exactly one option letter stands alone in the response, else the
    option whose text alone occurs in it; refusals and a lone "Z" (none of them) read None."""
    if any(refusal in response for refusal in _REFUSALS):
        return None
    letters = LETTERS[:len(options)]
    tokens = set(response.translate(_SEPARATORS).split())
    named = [letter for letter in letters if letter in tokens]
    if len(named) == 1:
        return named[0]
    if not named and "Z" in tokens:
        return None
    lowered = response.lower()
    matching = [letter for letter, text in zip(letters, options) if text and text.lower() in lowered]
    return matching[0] if len(matching) == 1 else None


class HRBench(Benchmark):
    accuracy_metrics = (*CATEGORIES, "average")

    def question(self, row: dict) -> str:
        return row["question"].strip()

    def options(self, row: dict) -> list[Any]:
        texts = []
        for letter in LETTERS:
            if letter not in row:
                break
            texts.append(row[letter])
        return texts

    def parse_answer(self, response: str, options: Sequence[str]) -> str | None:
        return parse_hrbench_letter(response, options)

    def entry_fields(self, doc: dict) -> dict[str, Any]:
        return {"category": doc["category"], "cycle_category": doc["cycle_category"]}

    def metric_names(self, doc: dict) -> list[str]:
        return ["average"] + ([doc["category"]] if doc["category"] in CATEGORIES else [])


HRBENCH_4K = HRBench("hrbench4k")
HRBENCH_8K = HRBench("hrbench8k")
_BY_KEY = {HRBENCH_4K.key: HRBENCH_4K, HRBENCH_8K.key: HRBENCH_8K}


def doc_to_visual(doc: dict) -> list:
    return _BY_KEY[doc["focus_dataset"]].doc_to_visual(doc)


def process_results(doc: dict, results: list) -> dict[str, Any]:
    return _BY_KEY[doc["focus_dataset"]].process_results(doc, results)


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """The built-in's prompt; like it, an option whose text is missing is left out."""
    kwargs = lmms_eval_specific_kwargs or {}
    texts = _BY_KEY[doc["focus_dataset"]].options(doc)
    options = "".join(f"{LETTERS[i]}. {text}\n" for i, text in enumerate(texts) if not missing(text))
    return f"{kwargs.get('pre_prompt', '')}{(doc['question'] or '').strip()}\n{options}{kwargs.get('post_prompt', '')}"


def cycle_average(entries) -> float | None:
    """Mean over cycle_category of the accuracy within each cycle; None for no questions."""
    per_cycle: dict[Any, list[int]] = defaultdict(list)
    for entry in entries:
        if entry is not None:
            per_cycle[entry["cycle_category"]].append(entry["score"])
    if not per_cycle:
        return None
    return sum(sum(scores) / len(scores) for scores in per_cycle.values()) / len(per_cycle)
