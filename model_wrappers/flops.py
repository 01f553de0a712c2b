"""Analytic FLOP counts of one forward pass, from the config and the actual token counts.

Convention (the one `torch.utils.flop_counter.FlopCounterMode` uses, so that a measured count
checks the formula): 2 FLOPs per multiply-add, matrix products only (linear layers,
convolutions, attention scores and weighted sums); norms, activations, softmax, RoPE and
bias additions are not counted. Attention is counted over the full query x key rectangle, as
the kernels compute it (no halving for the causal mask).

A decoder layer over n new tokens attending to p cached + n new tokens, hidden d, H query
heads and K key/value heads of size h, MLP width m:

    projections   2 n d (H h) [q] + 2 * 2 n d (K h) [k, v] + 2 n (H h) d [o]
    attention     2 * 2 n (p + n) H h                      [q k^T, softmax(.) v]
    MLP           2 n d m * (3 if gated else 2)

The language model adds 2 r d V for the r logit rows kept (r = 1 with logits_to_keep=1).
Vision towers are built from the same pieces (see `transformer_layers_flops`); each adapter
documents its tower's formula in `vision_flops`.

A backward pass with frozen parameters (ViCrop's grad-att, `attention_backward_flops`) computes
input gradients only: a linear layer's costs one product of its forward's size (dX = dY W^T, no
dW), and the attention core's 2.5 times its forward, as torch's FlopCounterMode counts the fused
SDPA / flash-attention backward (the score matrix recomputed, then dA, dV, dQ, dK; eager
attention's autograd skips the recomputation: 2 times).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count


def linear_flops(tokens: int, d_in: int, d_out: int) -> int:
    return 2 * tokens * d_in * d_out


def attention_flops(query_tokens: int, key_tokens: int, heads: int, head_dim: int) -> int:
    """q k^T and softmax(.) v over the full rectangle."""
    return 2 * 2 * query_tokens * key_tokens * heads * head_dim


def transformer_layers_flops(tokens: int, *, layers: int, hidden: int, heads: int, head_dim: int,
                             intermediate: int, gated_mlp: bool, kv_heads: int | None = None,
                             past_tokens: int = 0) -> int:
    """`layers` pre-norm transformer layers over `tokens` new tokens (formula in the module doc)."""
    kv_heads = heads if kv_heads is None else kv_heads
    projections = (linear_flops(tokens, hidden, heads * head_dim)
                   + 2 * linear_flops(tokens, hidden, kv_heads * head_dim)
                   + linear_flops(tokens, heads * head_dim, hidden))
    attention = attention_flops(tokens, past_tokens + tokens, heads, head_dim)
    mlp = (3 if gated_mlp else 2) * linear_flops(tokens, hidden, intermediate)
    return layers * (projections + attention + mlp)


def llava_vision_flops(config: Any, patches: int, *, cls_token: bool) -> int:
    """One image input through a CLIP/SigLIP tower and LLaVA's 2-layer projector: patch
    embedding 2 P (C p^2) D, every layer over the P patches (+ 1 with a CLS token) with a
    2-matrix MLP (the tower runs all layers although one feature layer is read), projector
    2 P (D n_f) d + 2 P d d on the P patch tokens (n_f feature layers)."""
    vision, text_hidden = config.vision_config, config.get_text_config().hidden_size
    hidden, heads = vision.hidden_size, vision.num_attention_heads
    feature_layers = config.vision_feature_layer
    n_features = len(feature_layers) if isinstance(feature_layers, (list, tuple)) else 1
    tower = linear_flops(patches, vision.num_channels * vision.patch_size**2, hidden)
    tower += transformer_layers_flops(patches + int(cls_token), layers=vision.num_hidden_layers, hidden=hidden,
                                      heads=heads, head_dim=hidden // heads, intermediate=vision.intermediate_size,
                                      gated_mlp=False)
    projector = linear_flops(patches, hidden * n_features, text_hidden) + linear_flops(patches, text_hidden, text_hidden)
    return tower + projector


def decoder_flops(text_config: Any, tokens: int, *, past_tokens: int = 0, logit_rows: int = 1) -> int:
    """Language model (Llama / Qwen2 style: gated MLP, grouped-query attention) plus LM head."""
    hidden, heads, kv_heads, head_dim = _attention_shape(text_config)
    body = transformer_layers_flops(
        tokens, layers=text_config.num_hidden_layers, hidden=hidden, heads=heads, head_dim=head_dim,
        intermediate=text_config.intermediate_size, gated_mlp=True, kv_heads=kv_heads, past_tokens=past_tokens)
    return body + linear_flops(logit_rows, hidden, text_config.vocab_size)


def _attention_shape(text_config: Any) -> tuple[int, int, int, int]:
    """(hidden, query heads, key/value heads, head_dim) of a Llama / Qwen2 style text config."""
    hidden = text_config.hidden_size
    heads = text_config.num_attention_heads
    head_dim = getattr(text_config, "head_dim", None) or hidden // heads
    return hidden, heads, getattr(text_config, "num_key_value_heads", None) or heads, head_dim


def attention_row_flops(text_config: Any, tokens: int, gradient: bool) -> int:
    """The attention probe's own products on top of a forward pass (model_wrappers/attention_probe.py):
    the last query row's scores q K^T over `tokens` keys, and with a gradient the row's output
    recomputed from the weights (A V)."""
    _, heads, _, head_dim = _attention_shape(text_config)
    return attention_flops(1, tokens, heads, head_dim) // (1 if gradient else 2)


def attention_backward_flops(text_config: Any, tokens: int, layer: int) -> int:
    """Backward pass from the last position's log-probability to the last query row's attention
    weights of decoder `layer` (0-based), parameters frozen (module doc): the LM head's row, the
    layers after `layer` over all `tokens` (projections and MLP once, attention 2.5 times), the
    output projection and MLP of `layer` itself, and dA = dO V^T of the row (one row of a product
    with the values)."""
    hidden, heads, kv_heads, head_dim = _attention_shape(text_config)
    later = text_config.num_hidden_layers - layer - 1
    projections = (linear_flops(tokens, hidden, heads * head_dim) + 2 * linear_flops(tokens, hidden, kv_heads * head_dim)
                   + linear_flops(tokens, heads * head_dim, hidden))
    mlp = 3 * linear_flops(tokens, hidden, text_config.intermediate_size)
    attention = attention_flops(tokens, tokens, heads, head_dim) * 5 // 2
    own = linear_flops(tokens, heads * head_dim, hidden) + mlp
    row = attention_flops(1, tokens, heads, head_dim) // 2
    return linear_flops(1, hidden, text_config.vocab_size) + later * (projections + mlp + attention) + own + row


def generation_flops(text_config: Any, prompt_flops: int, prompt_tokens: int, new_tokens: int) -> int:
    """Greedy decoding with a KV cache: the prompt pass (`prompt_flops`, one logit row) and one
    single-token pass per generated token after the first, attending to everything before it."""
    steps = sum(decoder_flops(text_config, 1, past_tokens=prompt_tokens + i) for i in range(max(new_tokens - 1, 0)))
    return prompt_flops + steps


def _cpu_flash_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_flash_sdpa_backward_flops(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                                   **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


# torch 2.13 has no formula for the CPU kernels that sdpa dispatches to, so it counts 0 there.
_MISSING_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_sdpa_flops,
                     torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_flash_sdpa_backward_flops}


def measure_flops(fn: Callable[[], Any]) -> tuple[Any, int]:
    """Run `fn()` under FlopCounterMode and return (its result, the FLOPs counted).

    For tests and benchmarks: about 4x slower than the plain call."""
    with FlopCounterMode(display=False, custom_mapping=_MISSING_FORMULAS) as counter:
        result = fn()
    return result, int(counter.get_total_flops())
