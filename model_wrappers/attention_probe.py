"""The attention of the last query token at ONE decoder layer, every layer keeping its own kernel.

ViCrop's maps (`focus_eval/methods/vicrop/`) need, at one layer, the softmax weights from the
prompt's last token to the image tokens, and for grad-att the gradient of the answer's
log-probability with respect to those weights. The official code loads the whole model with
eager attention and `output_attentions=True`, so every layer materialises and returns its
[heads, seq, seq] weights. Here only the probed layer does anything extra, and only for its
last query row:

- transformers 5.24 (Llama, Qwen2, Qwen2.5-VL text attention alike) picks a layer's attention
  function per call from `self.config._attn_implementation` through `ALL_ATTENTION_FUNCTIONS`;
  all layers share one config object. `probe_last_row` gives the probed attention module a copy
  of that config naming `PROBE`, an attention function registered here, and puts the original
  config back afterwards. The causal mask is built once per forward from the model's config,
  so every layer, the probed one included, gets the mask of the model's own implementation.
- `PROBE` runs the layer's own implementation (sdpa, flash-attention or eager) for the layer's
  output, then computes the last query row's weights with eager attention's math (q k^T times
  the scaling in the model's dtype, plus the mask, softmax in float32): [batch, heads, keys]
  instead of [batch, heads, seq, seq]. Without a gradient the layer's output is untouched, so
  the logits are those of a plain forward.
- With a gradient, the float32 row is made a leaf that requires grad and the layer's last output
  row is recomputed from it (eager math: weights cast to the value dtype, times the values); the
  other rows keep the kernel's output. Parameters are frozen for the call (`gradient_mode`),
  so nothing before the probed layer builds a graph and the backward runs only through the
  layers after it (the last row of the probed layer feeds every later position through the
  later layers' keys and values, so those layers back-propagate over the whole sequence).

Masks the row honours: none (causal: the last row sees every key), a 4-D boolean (sdpa) or
additive (eager) mask, a 2-D padding mask (flash-attention). A sliding window without a 4-D mask
is refused (none of our families uses one).
"""

from __future__ import annotations

import copy
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from transformers import AttentionInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

PROBE = "focus_eval_last_row_probe"
_STATE = "focus_eval_probe"  # attribute of the probed attention module during the call


@dataclass
class _Probe:
    inner: Callable[..., tuple[torch.Tensor, Any]]  # the layer's own attention function
    gradient: bool
    weights: torch.Tensor | None = None  # [batch, heads, keys] float32, the last query row


def _last_row_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        attention_mask: torch.Tensor | None, scaling: float, dropout: float = 0.0,
                        **kwargs) -> tuple[torch.Tensor, None]:
    """query [b, H, q, d], key/value [b, K, k, d] (after RoPE and the cache); returns the layer's
    attention output [b, q, H, d] as transformers' attention functions do."""
    probe: _Probe = getattr(module, _STATE)
    output, _ = probe.inner(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    groups = query.shape[1] // key.shape[1]
    keys = key.repeat_interleave(groups, dim=1)  # [b, H, k, d]: head h reads key/value head h // groups
    scores = torch.matmul(query[:, :, -1:], keys.transpose(2, 3)) * scaling  # [b, H, 1, k]
    scores = scores + _last_row_bias(attention_mask, kwargs.get("sliding_window"), scores)
    weights = torch.softmax(scores[:, :, 0].float(), dim=-1)  # [b, H, k]
    if probe.gradient:
        weights = weights.detach().requires_grad_()
        values = value.repeat_interleave(groups, dim=1)  # [b, H, k, d]
        last = torch.matmul(weights.to(values.dtype)[:, :, None], values)  # [b, H, 1, d]
        output = torch.cat([output[:, :-1], last.transpose(1, 2)], dim=1)  # [b, q, H, d]
    probe.weights = weights
    return output, None


def _last_row_bias(mask: torch.Tensor | None, sliding_window: int | None, scores: torch.Tensor) -> torch.Tensor:
    """Additive mask [b, 1 or H, 1, k] of the last query row in the mask format of the model's
    implementation (module docstring); 0 where there is none."""
    if mask is None or mask.dim() == 2:
        if sliding_window is not None:
            raise NotImplementedError("the attention probe needs a 4-D mask for a sliding-window layer")
        if mask is None:
            return torch.zeros((), dtype=scores.dtype, device=scores.device)
        mask = mask[:, None, None, -scores.shape[-1]:]  # [b, 1, 1, k], padding mask (True/1: attend)
    else:
        mask = mask[:, :, -1:, -scores.shape[-1]:]  # [b, 1 or H, 1, k]
    if mask.dtype == torch.bool or not mask.is_floating_point():
        return torch.where(mask.bool(), 0.0, torch.finfo(scores.dtype).min).to(scores.dtype)
    return mask.to(scores.dtype)


AttentionInterface.register(PROBE, _last_row_attention)


@contextmanager
def probe_last_row(attention: torch.nn.Module, gradient: bool) -> Iterator[_Probe]:
    """Within the block, every forward through the decoder attention module `attention` records
    its last query row's weights in the yielded probe (module docstring)."""
    original = attention.config
    implementation = original._attn_implementation
    if implementation == PROBE:
        raise RuntimeError("this attention layer is already probed")
    inner = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, _eager_function(attention))
    probed = copy.deepcopy(original)
    probed._attn_implementation = PROBE
    probe = _Probe(inner=inner, gradient=gradient)
    attention.config = probed
    setattr(attention, _STATE, probe)
    try:
        yield probe
    finally:
        attention.config = original
        delattr(attention, _STATE)


@contextmanager
def gradient_mode(model: torch.nn.Module) -> Iterator[None]:
    """Autograd on within the block, also inside a caller's inference mode (tensors made there
    are ordinary ones, which a backward may save), and no parameter of `model` requiring grad;
    the flags are restored after."""
    flags = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def _eager_function(attention: torch.nn.Module) -> Callable:
    """The modelling module's `eager_attention_forward`, what the layer runs under "eager"."""
    function = getattr(sys.modules[type(attention).__module__], "eager_attention_forward", None)
    if function is None:
        raise RuntimeError(f"{type(attention).__name__}'s module has no eager_attention_forward to fall back to")
    return function
