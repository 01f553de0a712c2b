"""The methods focus-eval runs, each one module behind the same adapter protocol and counters.

| method | module | what the answer sees | what its `fp` counts (per question) |
| --- | --- | --- | --- |
| `vanilla` | `vanilla.py` | the full image | nothing (0) |
| `focus` | `focus/` | FOCUS (the paper): value-vector relevance map, ROI proposals, existence ranking | one relevance prefill per target + the existence checks |
| `vicrop` | `vicrop/` | ViCrop: the full image and one crop from a one-layer attention map | `rel_att`: 2 per map (question and generic prompt); `grad_att`: 1 per map, + 1 backward pass in `bp`; `vicrop_high`: one map per tile. FOCUS Table 10 (LLaVA-1.5, -high): rel-att 12.26 / 30.59 / 78.60 FP on V*Bench / HR-4K / HR-8K = 2 per tile; grad-att 6.63 / 15.80 / 39.80 = 1 per tile + 0.50 (vicrop/__init__.py) |

Target extraction (`fp_targets`, FOCUS only) and the final answer (`fp_answer`) are counted apart
(`focus_eval.counters`).

Shared by all of them: `focus_eval.protocol` (the adapter contract), `focus_eval.counters`
(forward passes, FLOPs, time, memory), `focus_eval.targets` (target extraction, through
`base.extract_targets`), `focus_eval.images`, `focus_eval.compose` (final-input images) and the
answer stage of `focus_eval.pipeline`.
"""

from __future__ import annotations

from focus_eval.methods import focus, vanilla, vicrop
from focus_eval.methods.base import Search, SearchQuestion

METHODS: dict[str, Search] = {"vanilla": vanilla.search, "focus": focus.search, "vicrop": vicrop.search}

__all__ = ["METHODS", "Search", "SearchQuestion"]
