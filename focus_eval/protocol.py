"""The contract between the model-agnostic FOCUS method and a model adapter.

Data flows one way: pipeline -> adapter -> transformers. An adapter owns everything that
depends on a model family (chat template, processor, token geometry, FLOP formula); the
method only sees tensors, sequence positions and pixel boxes.

Coordinates used everywhere:
- map cells: (row, col) on the relevance grid, boxes as (row0, col0, row1, col1), end-exclusive;
- pixels: boxes as (x0, y0, x1, y1) in the ORIGINAL image, end-exclusive integers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from PIL import Image


class TargetLocationError(ValueError):
    """The target phrase could not be mapped to tokens of the templated prompt."""


@dataclass(frozen=True)
class PassCost:
    """Cost of one adapter call.

    `passes` counts forward passes the way the paper does (A.2): one per prompt sent through
    the model, whether or not several prompts share a batch; `batches` counts the model calls
    actually made. `backward` counts backward passes (gradients through the model), which are
    not forward passes. `flops` is summed over all passes, backward ones included.
    """

    passes: int
    batches: int
    flops: float
    tokens: int
    backward: int = 0

    def __add__(self, other: "PassCost") -> "PassCost":
        """The cost of both calls."""
        return PassCost(passes=self.passes + other.passes, batches=self.batches + other.batches,
                        flops=self.flops + other.flops, tokens=self.tokens + other.tokens,
                        backward=self.backward + other.backward)


@dataclass(frozen=True)
class GridGeometry:
    """Where the relevance grid lies in the original image.

    cell_boxes[r, c] is the pixel box (x0, y0, x1, y1) of the original image that grid cell
    (r, c) covers, as floats; boxes may reach outside the image (padding) and are clipped by
    whoever turns them into crops.
    """

    image_size: tuple[int, int]  # (width, height) of the original image
    cell_boxes: np.ndarray  # [h, w, 4] float64

    @property
    def grid_shape(self) -> tuple[int, int]:
        return int(self.cell_boxes.shape[0]), int(self.cell_boxes.shape[1])

    @classmethod
    def uniform(cls, image_size: tuple[int, int], grid_shape: tuple[int, int],
                covered: tuple[float, float, float, float] | None = None) -> "GridGeometry":
        """A grid of equal cells spanning `covered` (default: the whole image)."""
        width, height = image_size
        x0, y0, x1, y1 = covered if covered is not None else (0.0, 0.0, float(width), float(height))
        rows, cols = grid_shape
        xs = np.linspace(x0, x1, cols + 1)
        ys = np.linspace(y0, y1, rows + 1)
        boxes = np.empty((rows, cols, 4), dtype=np.float64)
        boxes[..., 0] = xs[None, :-1]
        boxes[..., 1] = ys[:-1, None]
        boxes[..., 2] = xs[None, 1:]
        boxes[..., 3] = ys[1:, None]
        return cls(image_size=(int(width), int(height)), cell_boxes=boxes)


@dataclass
class Prefill:
    """One forward pass over (image, existence prompt) with the cache kept.

    values: [layers, kv_heads, seq, head_dim], only the requested layers, in cache order.
    keys:   same shape with RoPE undone (float32), or None when not requested (K-K ablation only).
    target_positions: [s] long, sequence indices of the target phrase's tokens.
    visual_positions: [h * w] long, sequence indices of the grid's tokens, row-major, so
        that a vector over visual_positions reshapes to geometry.grid_shape.
    yes_no: [2] float logits (yes, no) of the next token, i.e. the existence check on the
        full image that this pass computes anyway.
    """

    values: torch.Tensor
    keys: torch.Tensor | None
    target_positions: torch.Tensor
    visual_positions: torch.Tensor
    geometry: GridGeometry
    yes_no: torch.Tensor
    cost: PassCost


@dataclass
class LastTokenAttention:
    """Attention of the prompt's last token to the relevance grid's image tokens at one decoder
    layer (ViCrop's maps), from one forward pass (and one backward pass with a gradient).

    weights: [heads, h * w] float32, ordered like visual_positions of `prefill` (row-major over
        geometry.grid_shape): the softmax weights, or with a gradient A * ReLU(dLoss/dA), A the
        weights and Loss the log-probability of the most likely next token.
    geometry: the grid, as `prefill` gives it for the same image.
    """

    weights: torch.Tensor
    geometry: GridGeometry
    cost: PassCost


@dataclass
class YesNo:
    """Next-token logits for "Yes" and "No", one row per prompt: [n, 2]."""

    logits: torch.Tensor
    cost: PassCost


@dataclass
class Generation:
    text: str
    cost: PassCost
    truncated: bool = False  # stopped at max_new_tokens, not at a stop string or the end of sequence


@dataclass
class OptionScores:
    """Log-likelihood of each answer option's text after the prompt (logits matching, C.5):
    scores[i] is the summed log-probability of option i's tokens, token_counts[i] their number."""

    scores: list[float]
    token_counts: list[int]
    cost: PassCost


@runtime_checkable
class Adapter(Protocol):
    """What the FOCUS pipeline needs from a model family."""

    family: str  # config key in configs/, e.g. "llava_onevision"
    multi_image: bool  # True: final answer = global view + crops as separate images
    num_layers: int  # decoder layers of the language model
    base_resolution: int  # side in pixels of one vision-encoder input (336, 384, ...)
    device: torch.device  # where the model takes its inputs (the input embeddings' device)

    def prefill(self, image: Image.Image, prompt: str, target: str, layers: Sequence[int],
                with_keys: bool = False, target_offset: int | None = None) -> Prefill:
        """Run the model on `prompt` (which contains `target` verbatim) and `image`.

        target_offset: where `target` starts in `prompt` (the pipeline knows it from the
        existence template); None: its first occurrence.
        Raises TargetLocationError when the target's tokens cannot be found."""
        ...

    def last_token_attention(self, image: Image.Image, prompt: str, layer: int,
                             gradient: bool = False) -> LastTokenAttention:
        """Attention weights of the last token of (image, prompt) to the grid's image tokens at
        decoder `layer` (0-based), per head; gradient=True weights them by ReLU(dLoss/dA)
        (grad-att: one forward and one backward pass, `PassCost.backward` = 1)."""
        ...

    def yes_no_logits(self, images: Sequence[Image.Image | Sequence[Image.Image]], prompts: Sequence[str],
                      image_texts: Sequence[Sequence[str]] | None = None, each_image_alone: bool = False) -> YesNo:
        """One batched forward over (images[i], prompts[i]) pairs; images[i] may be a list of
        images (ZoomEye's global-local view), each followed by its text in image_texts[i]
        when given (see `generate`)."""
        ...

    def generate(self, images: Sequence[Image.Image], prompt: str, max_new_tokens: int,
                 stop: Sequence[str] = (), image_texts: Sequence[str] | None = None,
                 each_image_alone: bool = False, shared_prefix: str | None = None, draft_tokens: int = 0,
                 **gen_kwargs) -> Generation:
        """Greedy answer to `prompt` given zero or more images (zero: text-only); decoding
        ends at the first of the `stop` strings, which is not part of the text.

        image_texts: one text per image, placed right after it (interleaved), before `prompt`.
        each_image_alone: encode every image as the model encodes an image alone in its prompt
        (LLaVA-OneVision: anyres), not in the model's multi-image form (one base tile each).
        shared_prefix, draft_tokens: speed-ups an adapter may take or ignore, which leave the
        greedy reply and its cost as they are: `shared_prefix`, a start of `prompt` that later
        calls repeat (its KV cache may be kept); `draft_tokens`, tokens copied from the prompt
        that one forward may verify (prompt-lookup decoding)."""
        ...

    def option_scores(self, images: Sequence[Image.Image], prompt: str, options: Sequence[str],
                      image_texts: Sequence[str] | None = None, each_image_alone: bool = False) -> OptionScores:
        """Summed log-probability and number of each option's tokens after the prompt."""
        ...
