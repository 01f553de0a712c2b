"""Logits matching (C.5): each answer option reformulated as a statement about the question.

The paper (after SEAL and ZoomEye): "each answer option is reformulated as a sentence (e.g.,
"(A) Red" -> "The color of the car is red.") which is then appended to the original question",
and the option whose statement the model finds most likely wins. The official V*Bench
annotations carry these sentences; the hub copy of V*Bench that lmms-eval reads has only the
bare options, so they are rebuilt from V*Bench's two question forms:
- direct attributes, "What is the {attribute} of {object}?" -> "The {attribute} of {object}
  is {option}.";
- relative positions, "Is {A} on the left or right side of {B}?" -> "{A} is on the {option}
  side of {B}." ({A} capitalised).
A question of another form keeps the option text itself (FocusConfig.option_format="option"
does that always). The score is length-normalised (option_score="mean": the mean
log-probability per statement token, as SEAL's and ZoomEye's mean cross-entropy), so that a
short option is not favoured for having fewer tokens to pay for; "sum" is the plain sum.
"""

from __future__ import annotations

import re

_ATTRIBUTE = re.compile(r"^what is the (?P<attribute>[\w' -]+?) of (?P<object>.+?)\s*\?*$", re.IGNORECASE)
_SIDE = re.compile(r"^is (?P<first>.+?) on the left or (?:the )?right side of (?P<second>.+?)\s*\?*$", re.IGNORECASE)


def option_statement(question: str, option: str) -> str:
    """`option` as a sentence answering `question` (module docstring); the option itself when
    the question has neither of V*Bench's forms."""
    text, option = " ".join(question.split()), option.strip().rstrip(".")
    attribute = _ATTRIBUTE.match(text)
    if attribute:
        return f"The {attribute['attribute']} of {attribute['object']} is {option}."
    side = _SIDE.match(text)
    if side:
        first = side["first"]
        return f"{first[:1].upper()}{first[1:]} is on the {option} side of {side['second']}."
    return option
