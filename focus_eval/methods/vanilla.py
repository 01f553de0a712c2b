"""Vanilla: no search, the model answers on the full image (the baseline row of every table)."""

from __future__ import annotations

from focus_eval.compose import FinalInput, full_image_input
from focus_eval.methods.base import SearchQuestion


def search(asked: SearchQuestion) -> FinalInput:
    return full_image_input(asked.image)
