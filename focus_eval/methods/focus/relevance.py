"""Object relevance map from cached token similarity (Sec. 3.2, Eq. 1-3, Fig. 7).

Fig. 7, for cached features X [O, H, N, D] of the selected layers:
  1. L2-normalise every head's vector, concatenate the heads: X [O, N, H*D];
     cos = X X^T [O, N, N], so an entry is the SUM of the per-head cosines;
  2. per layer, M = (cos + I) / 2 (residual of attention rollout), row-normalised;
  3. per target token t: sum over layers of M[t, visual], divided by its sum (Eq. 2);
  4. product over target tokens (Eq. 3).

The paper normalises "after every matrix addition and multiplication"; the product is
therefore renormalised after each factor (with many target tokens the raw product would
underflow) and the result sums to 1. With positive normalisers this differs from the
literal pseudocode only by a positive scale.

Only the s target rows of each layer's [N, N] matrix are computed, over the full sequence,
and indexed at the visual positions afterwards: a target row is a complete row, so its sum
(step 2) is exact. The 1/|x| factors are applied to the products instead of normalising a
copy of the cache. Memory: O(N * (H + s)) for float32 input, which is read in place; other
dtypes add one layer up-cast to float32 at a time.

row_normalization (FocusConfig switch, see config.py):
- "column" (default): Fig. 7's line `X_layer /= X_layer.sum(dim=-1)` under PyTorch
  broadcasting: entry (t, j) divided by the sum of ROW j. Row sums of all tokens cost
  O(N * H * D): sum_k cos(j, k) = sum_h x_j^h . (sum_k x_k^h).
- "target_row": row t divided by its own sum, sum_k M[t, k] (the comment "row-wise
  normalization" of Fig. 7).

Degenerate inputs. Cosines can be negative, so a normaliser (a row sum, a target's layer
sum, the running product's sum) can be <= 0 or non-finite (e.g. NaN in the cache). Dividing
by it would flip or destroy the map, so every normaliser must be > 0 and finite; otherwise
the function returns the uniform map 1/V and emits a DegenerateRelevanceWarning that names
the normaliser. One exception: under "column" an image token whose row sums to <= 0 (it is
anti-similar to the sequence as a whole) gets no share in that layer, and the warning says how
many did; only when every image token's does is the map uniform. Such a token's entry has no
defined share (the literal division would flip its sign or blow it up), and among thousands of
image tokens one such token is likely in noisy caches (tests/test_relevance.py: 200k tokens
with a shared direction per head): a uniform map for it would discard every other token.
No NaN or inf ever leaves the function. Individual entries may be negative (a target can be
anti-similar to some tokens), as in the paper's pseudocode.

K-K ablation (Table 3): the same function applied to the cached KEYS with RoPE removed,
which the adapter supplies (Prefill.keys); nothing here is specific to values.
"""

from __future__ import annotations

import warnings
from typing import get_args, get_type_hints

import torch

from focus_eval.config import FocusConfig

ROW_NORMALIZATIONS = get_args(get_type_hints(FocusConfig)["row_normalization"])  # ("target_row", "column")


class DegenerateRelevanceWarning(RuntimeWarning):
    """A normaliser of the relevance map was <= 0 or non-finite: the map is uniform, or (an image
    token's row sum under "column") that token got no share in the layer."""


def object_relevance_map(values: torch.Tensor, target_positions: torch.Tensor,
                         visual_positions: torch.Tensor,
                         row_normalization: str = "column") -> torch.Tensor:
    """Relevance of each visual token to the target phrase (Fig. 7).

    values: [layers, kv_heads, seq, head_dim] cached values of the selected layers l..L
        (or RoPE-free keys for the K-K ablation), any float dtype; not modified or copied whole.
    target_positions: [s] long, sequence indices of the target's tokens.
    visual_positions: [V] long, sequence indices of the grid's tokens (any order, unique).
    Returns float32 [V] summing to 1 (uniform with a DegenerateRelevanceWarning on
    degenerate input, see the module docstring).
    """
    _check_inputs(values, target_positions, visual_positions, row_normalization)
    seq = values.shape[2]
    targets = target_positions.to(device=values.device, dtype=torch.long)
    visual = visual_positions.to(device=values.device, dtype=torch.long)
    # residual identity of target t lands on column t; visible only if t is a visual position
    identity = (targets[None, :] == torch.arange(seq, device=values.device)[:, None]).float()  # [N, s]

    pseudo_attn = torch.zeros(visual.numel(), targets.numel(), dtype=torch.float32, device=values.device)
    for layer in range(values.shape[0]):
        # float32 view of this layer (a copy only for other dtypes): [H, N, D]
        features = values[layer].to(torch.float32)
        # 1 / max(|x|, eps) per token and head (F.normalize semantics), applied after the products
        # so that no normalised copy of the layer is made: [H, N]
        inverse_norm = features.norm(dim=-1).clamp_min_(1e-12).reciprocal_()
        target_units = features[:, targets] * inverse_norm[:, targets, None]  # [H, s, D]
        # target rows over the whole sequence: rows[n, t] = sum_h cos(x_n^h, x_t^h), [N, s]
        rows = (torch.bmm(features, target_units.transpose(1, 2)) * inverse_norm[..., None]).sum(dim=0)
        rows = (rows + identity) / 2
        if row_normalization == "target_row":
            denominators = rows.sum(dim=0, keepdim=True)  # [1, s]
            if not _positive(denominators):
                return _uniform(visual, f"layer {layer}: a target row sum is <= 0 or non-finite")
            pseudo_attn += rows[visual] / denominators  # [V, s]
        else:
            # row sums of every token, (sum_k cos(j, k) + 1) / 2 = (sum_h x_j^h . sum_k x_k^h + 1) / 2
            unit_sums = torch.bmm(inverse_norm[:, None, :], features)  # [H, 1, D]
            sums = (torch.bmm(features, unit_sums.transpose(1, 2))[..., 0] * inverse_norm).sum(dim=0)  # [N]
            denominators = ((sums + 1) / 2)[visual, None]  # [V, 1]
            defined = torch.isfinite(denominators) & (denominators > 0)  # [V, 1]
            if not bool(defined.any()):
                return _uniform(visual, f"layer {layer}: every visual row sum is <= 0 or non-finite")
            if not bool(defined.all()):
                warnings.warn(DegenerateRelevanceWarning(
                    f"layer {layer}: {int((~defined).sum())} of {visual.numel()} visual row sums are <= 0 or "
                    "non-finite; those image tokens get no share in this layer"), stacklevel=2)
            pseudo_attn += torch.where(defined, rows[visual] / denominators, 0.0)  # [V, s]
        del features

    relevance = torch.ones(visual.numel(), dtype=torch.float32, device=values.device)
    for t in range(targets.numel()):
        target_sum = pseudo_attn[:, t].sum()
        if not _positive(target_sum):
            return _uniform(visual, f"target token {t}: the summed pseudo-attention is <= 0 or non-finite")
        relevance = relevance * (pseudo_attn[:, t] / target_sum)
        product_sum = relevance.sum()
        if not _positive(product_sum):
            return _uniform(visual, f"target token {t}: the product over targets sums to <= 0 or non-finite")
        relevance = relevance / product_sum
    if not bool(torch.isfinite(relevance).all()):
        return _uniform(visual, "the map has non-finite entries")
    return relevance


def random_relevance_map(num_visual: int, seed: int) -> torch.Tensor:
    """Table 3's "random map" ablation: i.i.d. uniform values, float32 [V] summing to 1.

    Deterministic per seed (its own CPU generator, global RNG untouched).
    """
    if num_visual < 1:
        raise ValueError(f"num_visual must be >= 1, got {num_visual}")
    generator = torch.Generator().manual_seed(int(seed))
    # uniform on (0, 1]: never all zeros, so the normalisation is always defined
    noise = 1.0 - torch.rand(num_visual, generator=generator, dtype=torch.float64)
    return (noise / noise.sum()).to(torch.float32)


def _positive(x: torch.Tensor) -> bool:
    return bool(torch.isfinite(x).all() and (x > 0).all())


def _uniform(visual: torch.Tensor, reason: str) -> torch.Tensor:
    warnings.warn(DegenerateRelevanceWarning(f"relevance map is uniform: {reason}"), stacklevel=3)
    return torch.full((visual.numel(),), 1.0 / visual.numel(), dtype=torch.float32, device=visual.device)


def _check_inputs(values: torch.Tensor, target_positions: torch.Tensor, visual_positions: torch.Tensor,
                  row_normalization: str) -> None:
    if row_normalization not in ROW_NORMALIZATIONS:
        raise ValueError(f"row_normalization={row_normalization!r}: expected one of {ROW_NORMALIZATIONS}")
    if values.dim() != 4 or not values.is_floating_point():
        raise ValueError(f"values must be a float tensor [layers, kv_heads, seq, head_dim], got "
                         f"{values.dtype} {tuple(values.shape)}")
    if min(values.shape) == 0:
        raise ValueError(f"values has an empty dimension: {tuple(values.shape)}")
    seq = values.shape[2]
    for name, positions in (("target_positions", target_positions), ("visual_positions", visual_positions)):
        if positions.dim() != 1 or positions.numel() == 0:
            raise ValueError(f"{name} must be a non-empty 1-D tensor, got shape {tuple(positions.shape)}")
        if positions.is_floating_point() or positions.is_complex() or positions.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer indices, got {positions.dtype}")
        if int(positions.min()) < 0 or int(positions.max()) >= seq:
            raise ValueError(f"{name} must lie in [0, {seq}), got [{int(positions.min())}, {int(positions.max())}]")
    if torch.unique(visual_positions).numel() != visual_positions.numel():
        raise ValueError("visual_positions repeats a sequence index")
