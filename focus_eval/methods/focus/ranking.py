"""Existence confidence (Eq. 5) and the schedule of existence checks (Sec. 3.3, C.1).

`check(batch)` stands for ONE batched forward over the ROIs it is given (the pipeline binds
the image, target and prompt) and returns their Eq. 5 confidences; every ROI in it is one
forward pass in the paper's count (A.2), every call one model call.

Type 1 (rank_rois): the top min(n_steps, #ROIs) proposals are checked in one call and
re-ranked by confidence. With overrun (C.1), if none of them is a "Yes" (c >= 0, i.e.
l_yes >= l_no), the next proposals are checked one per call until the first "Yes" or until
they run out. Without overrun, a single ROI to check is not checked: its confidence cannot
change which ROI answers. This is what makes the paper's Steps-1 no-overrun cost add up
(1.47 FPs per question on V*Bench: one relevance prefill per target and no check).

Type 2 (select_type2): every proposal is checked, `batch_size` per call, not bounded by
n_steps (Sec. 3.3); the ROIs with c > threshold are selected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from focus_eval.methods.focus.proposals import ROI

Check = Callable[[Sequence[ROI]], Sequence[float]]


def existence_prompt(template: str, phrase: str) -> tuple[str, int]:
    """(the existence prompt for `phrase`, the offset of `phrase` in it). The offset is where
    the template's first {target} field lands, so the target's tokens are located there and
    never in the template's own words (a target "a" in "Is there a a in the image?")."""
    head = template.split("{target}", 1)[0]
    if head == template:
        raise ValueError(f"existence prompt {template!r} has no {{target}} field")
    return template.format(target=phrase), len(head.format())


def existence_confidence(logits: torch.Tensor) -> torch.Tensor:
    """[..., 2] (l_yes, l_no) -> [...] c = 2 * (softmax([l_yes, l_no])[0] - 0.5) in [-1, 1]."""
    if logits.dim() == 0 or logits.shape[-1] != 2:
        raise ValueError(f"expected logits [..., 2] (yes, no), got shape {tuple(logits.shape)}")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("yes/no logits contain NaN or inf")
    probabilities = torch.softmax(logits.to(torch.float32), dim=-1)
    return 2 * (probabilities[..., 0] - 0.5)


@dataclass
class Ranking:
    confidences: list[float | None]  # aligned with the input ROIs; None = not checked
    order: list[int]  # checked ROIs by confidence desc (ties: anchor rank), then unchecked in anchor order
    checks: int  # ROIs checked (forward passes)
    batches: int  # calls made to `check`
    selected: list[int] = field(default_factory=list)  # select_type2 only: c > threshold, in `order`


def rank_rois(rois: Sequence[ROI], check: Check, *, n_steps: int, overrun: bool) -> Ranking:
    """Check the top n_steps ROIs in one call (plus overrun, see the module docstring) and
    order them by confidence. `rois` are in anchor rank order."""
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    confidences: list[float | None] = [None] * len(rois)
    first = min(n_steps, len(rois))
    batches = 0
    if first > 1 or (first == 1 and overrun):
        _record(confidences, range(first), _call(check, rois[:first]))
        batches = 1
        position = first
        while overrun and position < len(rois) and max(c for c in confidences if c is not None) < 0:
            _record(confidences, [position], _call(check, rois[position:position + 1]))
            batches += 1
            position += 1
    return _ranking(confidences, batches)


def select_type2(rois: Sequence[ROI], check: Check, *, threshold: float, batch_size: int) -> Ranking:
    """Check every ROI, `batch_size` per call; `selected` holds those with c > threshold."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    confidences: list[float | None] = [None] * len(rois)
    batches = 0
    for start in range(0, len(rois), batch_size):
        indices = range(start, min(start + batch_size, len(rois)))
        _record(confidences, indices, _call(check, rois[indices.start:indices.stop]))
        batches += 1
    ranking = _ranking(confidences, batches)
    ranking.selected = [i for i in ranking.order if confidences[i] > threshold]
    return ranking


def _call(check: Check, batch: Sequence[ROI]) -> list[float]:
    result = [float(c) for c in check(batch)]
    if len(result) != len(batch):
        raise ValueError(f"check returned {len(result)} confidences for {len(batch)} ROIs")
    for c in result:
        if not (math.isfinite(c) and -1.0 <= c <= 1.0):
            raise ValueError(f"check returned {c}; an existence confidence lies in [-1, 1]")
    return result


def _record(confidences: list[float | None], indices: Sequence[int], values: list[float]) -> None:
    for i, value in zip(indices, values):
        confidences[i] = value


def _ranking(confidences: list[float | None], batches: int) -> Ranking:
    checked = sorted((i for i, c in enumerate(confidences) if c is not None), key=lambda i: (-confidences[i], i))
    unchecked = [i for i, c in enumerate(confidences) if c is None]
    return Ranking(confidences=confidences, order=checked + unchecked, checks=len(checked), batches=batches)
