"""The methods focus-eval runs, each one module behind the same adapter protocol and counters.

| method | module | what the answer sees | what `fp` counts (the search stage's forward passes) |
| --- | --- | --- | --- |
| `vanilla` | `vanilla.py` | the full image | 0 |
| `focus` | `focus/` | FOCUS (the paper): value-vector relevance map, ROI proposals, existence ranking | one relevance prefill per target + one pass per existence check (overrun and type 2 included) |
| `zoomeye` | `zoomeye/` | ZoomEye's tree search: the chosen node's zoomed view (global-local models: with the full image, node framed in red) | see below |
| `vicrop` | `vicrop/` | ViCrop: the full image and one crop from a one-layer attention map | `rel_att`: 2 per map (question and generic prompt); `grad_att`: 1 per map, + 1 backward pass in `bp`; `vicrop_high`: one map per tile. FOCUS Table 10 (LLaVA-1.5, -high): rel-att 12.26 / 30.59 / 78.60 FP on V*Bench / HR-4K / HR-8K = 2 per tile; grad-att 6.63 / 15.80 / 39.80 = 1 per tile + 0.50 (vicrop/__init__.py); the map passes in the "relevance" stage |

ZoomEye's `fp`, every pass in the "search" stage (target extraction and the answer are
`fp_targets` and `fp_answer`, as for FOCUS):
- global-local model with several targets: one answering pass per type-1 target on the root;
  if one reaches tau_up, nothing else;
- per type-1 target: one answering pass per popped node (not the root of a local-view model with
  several targets) + two passes (existence, latent) per queued node: about 1 + 8 per expansion of a
  4-way node, 1 + 4 for a 2-way one;
- per type-2 target: one existence pass per node down to zoomeye_type2_depth (1 + 4 + 16 = 21
  for a 4-way tree to depth 2).
The FOCUS paper's Table 10 counts ZoomEye's passes the same way (A.2: calls of the model during
the search, the answer excluded); its "three FPs per region" (its comparison with ZoomEye) is an upper bound, since
a region that was queued but never popped costs 2. Batching several prompts into one model call
changes `batches`, not `fp`.

Shared by all of them: `focus_eval.protocol` (the adapter contract), `focus_eval.counters`
(forward passes, FLOPs, time, memory), `focus_eval.targets` (target extraction, through
`base.extract_targets`), `focus_eval.images`, `focus_eval.compose` (final-input images) and the
answer stage of `focus_eval.pipeline`.
"""

from __future__ import annotations

from focus_eval.methods import focus, vanilla, vicrop, zoomeye
from focus_eval.methods.base import Search, SearchQuestion

METHODS: dict[str, Search] = {"vanilla": vanilla.search, "focus": focus.search, "zoomeye": zoomeye.search,
                              "vicrop": vicrop.search}

__all__ = ["METHODS", "Search", "SearchQuestion"]
