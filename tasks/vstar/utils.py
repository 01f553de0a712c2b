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
it scores every option text (`focus_options`) as a continuation and answers the letter of
the best one. The lmms-lab-encoder copy of V*Bench has no sentence reformulations of the
options ("The color of the car is red."), so the option texts themselves are scored.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from focus_eval.tasks.common import Benchmark, accuracy

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
