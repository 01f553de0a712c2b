"""Greedy decoding of text-only prompts made cheaper with the same tokens (target extraction).

Target extraction sends the same in-context examples with every question (about 450 tokens)
and decodes a one-line reply that mostly copies words of the prompt. Two speed-ups, both asked
for through `HFAdapter.generate` (`shared_prefix`, `draft_tokens`):

- Prefix cache (`PrefixCache`): the KV cache of the prompt's shared start is kept between calls
  and the model runs only the rest. The shared start is the tokens of the templated text that
  end within `shared_prefix`; their cache comes from one forward over exactly those tokens, so
  every question reuses the same numbers whatever was asked before (answers do not depend on
  the order of the questions). It is rebuilt when anything it depends on changes: the token
  ids (prefix text, chat template, tokenizer), the weights (the identity and version counter of
  every parameter: moved, converted, trained or loaded weights; an edit through `.data` is not
  seen), the attention implementation. One entry: lmms-eval runs one task after another, and a
  second entry would hold a second cache in accelerator memory (LLaVA-1.5-7B: about 0.5 MB per
  token in bf16, 0.23 GB for 450 tokens).
- Prompt-lookup drafts (`lookup_greedy`, generate's decoding loop through `custom_generate`):
  after each greedy token, up to `draft_tokens` tokens that followed the latest earlier
  occurrence of the last 1-3 tokens (`lookup_draft`) are run in the same forward; each is kept
  while it is the greedy choice at its position, through generate's own logits processors and
  stopping criteria, token by token as in plain decoding (stop strings, end of sequence and
  max_new_tokens end decoding at the same token). transformers' `prompt_lookup_num_tokens` is
  not used: its assisted decoding feeds the whole prompt again on top of a given cache (5.24;
  5.17's code reads the same), checks stop strings only at the end of each accepted run, and
  drafts from the first match, often an in-context example's unrelated continuation.

Equality: in exact arithmetic both give plain greedy decoding's tokens. In floating point, the
cached keys and values and the verified positions' logits come from forwards of other shapes
than plain decoding's, so they differ at rounding level, and where the two best tokens are
nearly tied a reply could differ. Float32 on the tiny models of the three families and on the
proving ground gave identical replies (tests/test_speedups.py, benchmarks/speedups_identical.py);
in bf16 on a GPU a near-tie could resolve the other way. `target_fast_decoding=false`
(FocusConfig) decodes plainly.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

import torch
from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList


def lookup_greedy(model, input_ids: torch.Tensor, logits_processor: LogitsProcessorList,
                  stopping_criteria: StoppingCriteriaList, generation_config: GenerationConfig, synced_gpus: bool = False,
                  streamer: Any = None, draft_tokens: int = 0, **model_kwargs) -> torch.Tensor:
    """Greedy decoding with prompt-lookup drafts, as `generate`'s decoding loop (`custom_generate`):
    generate prepares the logits processors and stopping criteria of plain greedy decoding and the
    cache (the kept prefix's, or an empty one), and every token, drafted or not, goes through them
    as in plain decoding. input_ids [1, seq], no padding; returns the ids [1, seq + new]."""
    if input_ids.shape[0] != 1 or streamer is not None or synced_gpus:
        raise ValueError("prompt-lookup decoding takes one prompt, without streamer or synced GPUs")
    name = cache_argument(model)
    cache = model_kwargs[name]

    def run(tokens: torch.Tensor) -> torch.Tensor:
        """Logits [k, vocab] (float32) of tokens [1, k] after the cached ones, which they join."""
        start, count = cache.get_seq_length(), tokens.shape[1]
        positions = torch.arange(start, start + count, device=tokens.device)[None]
        mask = torch.ones(1, start + count, dtype=torch.long, device=tokens.device)
        output = model(input_ids=tokens, attention_mask=mask, position_ids=positions, use_cache=True,
                       logits_to_keep=count, **{name: cache})
        return output.logits[0].float()

    def choose(sequence: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits_processor(sequence, logits[None]).argmax(-1)  # [1]

    sequence = input_ids
    logits = run(input_ids[:, cache.get_seq_length():])[-1]  # [vocab]: the next token's
    while True:
        token = choose(sequence, logits)
        sequence = torch.cat([sequence, token[None]], dim=1)
        if bool(stopping_criteria(sequence, None).any()):
            return sequence
        draft = lookup_draft(sequence[0].tolist(), min(draft_tokens, generation_config.max_length - sequence.shape[1]))
        rows = run(torch.tensor([[int(token), *draft]], device=sequence.device))  # [1 + drafted, vocab]
        accepted, stopped = 0, False
        for proposed in draft:
            if int(choose(sequence, rows[accepted])) != proposed:
                break
            sequence = torch.cat([sequence, sequence.new_tensor([[proposed]])], dim=1)
            accepted += 1
            stopped = bool(stopping_criteria(sequence, None).any())
            if stopped:
                break
        if accepted < len(draft):  # the cache keeps the token and the accepted drafts only
            cache.crop(accepted - len(draft))
        if stopped:
            return sequence
        logits = rows[accepted]


def lookup_draft(sequence: list[int], count: int, max_ngram: int = 3) -> list[int]:
    """Up to `count` tokens that followed the latest earlier occurrence of the sequence's last n
    tokens, the longest n <= max_ngram that occurs: words of the prompt (the question, the
    examples) or of the reply so far, copied."""
    if count < 1:
        return []
    for n in range(min(max_ngram, len(sequence) - 1), 0, -1):
        pattern = sequence[-n:]
        for start in range(len(sequence) - n - 1, -1, -1):
            if sequence[start:start + n] == pattern:
                return sequence[start + n:start + n + count]
    return []


def cache_argument(model) -> str:
    """The name under which `model` takes a KV cache: transformers 5.24 renamed
    `past_key_values` to `cache` (5.17 knows only the old name)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def weights_state(model) -> tuple:
    """What identifies the weights' current values: each parameter's storage and version counter
    (in-place updates bump it: optimiser steps, load_state_dict)."""
    return tuple((p.data_ptr(), p._version, p.dtype) for p in model.parameters())


class PrefixCache:
    """The KV cache of one token prefix, kept between calls (module doc)."""

    def __init__(self):
        self._key: tuple | None = None
        self._cache: Any = None

    def get(self, model, prefix_ids: torch.Tensor, build: Callable[[torch.Tensor], Any]) -> Any:
        """The cache of prefix_ids [1, p]: the kept one when nothing it depends on has changed,
        else `build(prefix_ids)`, one forward over exactly these tokens (the old cache is freed
        first)."""
        key = (tuple(prefix_ids[0].tolist()), weights_state(model), model.config._attn_implementation)
        if key != self._key:
            self.clear()
            self._cache = build(prefix_ids)
            self._key = key
        return self._cache

    def restore(self, length: int) -> None:
        """Drop what a generation appended after the prefix's `length` tokens (crop with a negative
        count: tokens to remove in transformers 5.24, and 5.17 reads it the same way)."""
        extra = self._cache.get_seq_length() - length
        if extra > 0:
            self._cache.crop(-extra)

    def clear(self) -> None:
        self._key, self._cache = None, None

    @property
    def length(self) -> int:
        return 0 if self._cache is None else self._cache.get_seq_length()
