"""What every method shares: the question it searches, and target extraction.

A method decides what the final answer sees: `search(question) -> FinalInput`, booking every
model call to the stage that makes it (`SearchQuestion.meter`) and recording what it did in
`SearchQuestion.trace`. The shared runner (`focus_eval.pipeline.Pipeline`) then answers from that
input the same way for every method (generation or logits matching), so methods differ only in
their search and their final input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from PIL import Image

from focus_eval.compose import FinalInput
from focus_eval.config import FocusConfig
from focus_eval.counters import Meter
from focus_eval.protocol import Adapter
from focus_eval.targets import TargetSet, icl_prefix, icl_prompt, resolve_targets
from focus_eval.trace import Trace

# Prompt-lookup drafts per verification forward of target extraction (target_fast_decoding): the
# reply copies phrases of up to ~10 tokens from the examples and the question ("So I need the
# information about the following objects:"); a longer draft would mostly be rejected.
TARGET_DRAFT_TOKENS = 10


@dataclass
class SearchQuestion:
    """One question as a method searches it."""

    adapter: Adapter
    image: Image.Image  # RGB
    question: str  # the bare question (no options, no answer instruction)
    config: FocusConfig
    meter: Meter
    trace: Trace


Search = Callable[[SearchQuestion], FinalInput]


def extract_targets(asked: SearchQuestion) -> TargetSet:
    """The question's targets (Sec. 3.2: in-context extraction, or the rule-based extractor), in
    the "targets" stage, recorded in the trace. Every in-context answer is one line, so decoding
    stops at the first newline instead of writing further examples. With target_fast_decoding
    the adapter keeps the examples' KV cache across questions and decodes with prompt-lookup
    drafts: the same greedy reply (model_wrappers/decoding.py says how exactly) for fewer tokens
    and model calls."""
    cfg, trace = asked.config, asked.trace
    with asked.meter.stage("targets"):
        reply, cut = None, False
        if cfg.target_extraction == "icl":
            fast = dict(shared_prefix=icl_prefix(cfg.dataset), draft_tokens=TARGET_DRAFT_TOKENS)
            generation = asked.adapter.generate([], icl_prompt(asked.question, cfg.dataset),
                                                max_new_tokens=cfg.target_max_new_tokens, stop=["\n"],
                                                **(fast if cfg.target_fast_decoding else {}))
            asked.meter.add(generation.cost)
            reply, cut = generation.text, generation.truncated
        targets = resolve_targets(asked.question, reply, trust_empty_reply=cfg.trust_empty_target_reply, reply_cut=cut)
    trace.question_type = targets.question_type
    trace.target_source = targets.source
    trace.target_reply = targets.reply
    trace.notes.extend(targets.notes)
    if not targets.targets:
        trace.notes.append("no target: answered on the full image")
    return targets
