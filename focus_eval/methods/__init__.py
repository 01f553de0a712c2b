"""The methods focus-eval runs, each one module behind the same adapter protocol and counters.

| method | module | what the answer sees |
| --- | --- | --- |
| `vanilla` | `vanilla.py` | the full image |
| `focus` | `focus/` | FOCUS (the paper): value-vector relevance map, ROI proposals, existence ranking |

Shared by all of them: `focus_eval.protocol` (the adapter contract), `focus_eval.counters`
(forward passes, FLOPs, time, memory), `focus_eval.targets` (target extraction, through
`base.extract_targets`), `focus_eval.images`, `focus_eval.compose` (final-input images) and the
answer stage of `focus_eval.pipeline`.
"""

from __future__ import annotations

from focus_eval.methods import focus, vanilla
from focus_eval.methods.base import Search, SearchQuestion

METHODS: dict[str, Search] = {"vanilla": vanilla.search, "focus": focus.search}

__all__ = ["METHODS", "Search", "SearchQuestion"]
