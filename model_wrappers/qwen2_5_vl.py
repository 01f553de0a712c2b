"""Qwen2.5-VL (Qwen/Qwen2.5-VL-{3,7,32,72}B-Instruct): native resolution, one token per 28 x 28
block of the resized image.

Token geometry (transformers' Qwen2-VL image processor, Qwen2.5-VL model; same in 5.17 and 5.23):
- `smart_resize` squashes the whole image (no crop, no padding) to H' x W', both multiples of
  factor = patch_size * merge_size (28), aspect ratio kept as closely as that allows, with
  min_pixels <= H' W' <= max_pixels (processor kwargs of `load_adapter`);
- image_grid_thw = (1, H'/14, W'/14) patches; the merger joins 2 x 2 patches, so the image
  becomes (H'/28) x (W'/28) tokens, row-major, between <|vision_start|> and <|vision_end|>;
- token (r, c) is the resized block [28c, 28c + 28) x [28r, 28r + 28). The resize maps [0, W']
  linearly onto [0, W] (and [0, H'] onto [0, H]), so its cell in the original image is
  [28c W/W', 28(c + 1) W/W') x [28r H/H', 28(r + 1) H/H']: a uniform grid over the whole image.
- The vision tower permutes the patches into attention windows and restores their order
  after the merger: the tower's pooler_output is in sequence order, the merger's is not.

Positions are mRoPE: head_dim/2 frequencies in three sections (temporal, height, width). A
text token at position p gets (p, p, p); image token (r, c) gets (s, s + r, s + c), s being
the position after the preceding text, and the text after the image continues at
s + max(rows, cols). transformers computes them from input_ids, image_grid_thw,
mm_token_type_ids and attention_mask (skipping left padding) when position_ids is None; every
call passes all processor outputs, since without mm_token_type_ids the model silently falls
back to 1-D positions.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import torch
from PIL import Image
from transformers import BatchFeature, Qwen2_5_VLProcessor

from focus_eval.protocol import GridGeometry

from .base import AdapterInputError, HFAdapter
from .flops import attention_flops, linear_flops

# smart_resize refuses images whose longer side exceeds this many times the shorter one.
MAX_ASPECT_RATIO = 200


class Qwen25VLAdapter(HFAdapter):
    family = "qwen2_5_vl"
    multi_image = True
    max_images = None
    processor_class = Qwen2_5_VLProcessor

    def __init__(self, model, processor):
        super().__init__(model, processor)
        vision = self.config.vision_config
        image_processor = processor.image_processor
        if (image_processor.patch_size, image_processor.merge_size) != (vision.patch_size, vision.spatial_merge_size):
            raise ValueError(f"image processor patch/merge size ({image_processor.patch_size}, "
                             f"{image_processor.merge_size}) differ from the vision tower's ({vision.patch_size}, "
                             f"{vision.spatial_merge_size})")
        self.merge_size: int = vision.spatial_merge_size
        self.block_size: int = vision.patch_size * vision.spatial_merge_size  # pixels of the resized image per token

    # --- family hooks -------------------------------------------------------------------

    @property
    def base_resolution(self) -> int:
        """Side of the largest square the processor keeps without shrinking it (max_pixels):
        Qwen2.5-VL has no fixed input size."""
        max_pixels = self.processor.image_processor.size["longest_edge"]
        return math.isqrt(max_pixels) // self.block_size * self.block_size

    @property
    def image_token_cap(self) -> int:
        """max_pixels over one token's 28 x 28 block (16,384 at the processor's default, 2,048 at
        lmms-eval's max_pixels)."""
        return self.processor.image_processor.size["longest_edge"] // self.block_size**2

    @property
    def image_projector(self) -> torch.nn.Module:
        """The vision tower: its pooler_output (merger output, window order undone) is what
        the sequence receives."""
        return self.model.model.visual

    def visual_layout(self, inputs: BatchFeature, image: Image.Image) -> tuple[torch.Tensor, GridGeometry]:
        temporal, height, width = inputs["image_grid_thw"][0].tolist()  # in patches
        rows, cols = height // self.merge_size, width // self.merge_size
        positions = (inputs["input_ids"][0] == self.image_token_id).nonzero().flatten().cpu()  # [rows * cols]
        if temporal != 1 or positions.numel() != rows * cols:
            raise RuntimeError(f"expected one {rows}x{cols} image grid, the processor produced {positions.numel()} "
                               f"image tokens for image_grid_thw {(temporal, height, width)}")
        return positions, GridGeometry.uniform(image.size, (rows, cols))

    def vision_flops(self, inputs: BatchFeature) -> int:
        """Per image of P = t h w patches (image_grid_thw), D hidden, I MLP width:
        patch embedding 2 P (C t_p p^2) D; every block 2 P D 3D (qkv) + 2 P D D (output)
        + 3 * 2 P D I (gated MLP) + attention: 4 (h w)^2 D per frame in the full-attention
        blocks, elsewhere 4 n^2 D summed over the windows (squares of window_size / 28 tokens
        tiling the token grid from the top left, the last row and column partial; n = the
        window's patches); merger 2 (P/4)(4D)(4D) + 2 (P/4)(4D) d_out."""
        vision = self.config.vision_config
        hidden, heads = vision.hidden_size, vision.num_heads
        head_dim = hidden // heads
        unit = self.merge_size**2  # patches per token
        window = vision.window_size // self.block_size  # window side in tokens
        full_blocks = len({i for i in vision.fullatt_block_indexes if 0 <= i < vision.depth})
        patch_inputs = vision.in_channels * vision.temporal_patch_size * vision.patch_size**2
        total = 0
        for temporal, height, width in inputs["image_grid_thw"].tolist():
            patches = temporal * height * width
            rows, cols = height // self.merge_size, width // self.merge_size
            # sum over one frame's windows of n^2, n = (window rows)(window cols) unit
            window_squares = unit**2 * _sum_of_squared_tiles(rows, window) * _sum_of_squared_tiles(cols, window)
            full_attention = attention_flops(height * width, height * width, heads, head_dim)
            window_attention = window_squares * attention_flops(1, 1, heads, head_dim)  # 4 n^2 D summed
            attention = temporal * (full_blocks * full_attention + (vision.depth - full_blocks) * window_attention)
            dense = (linear_flops(patches, hidden, 3 * hidden) + linear_flops(patches, hidden, hidden)
                     + 3 * linear_flops(patches, hidden, vision.intermediate_size))
            merger = (linear_flops(patches // unit, unit * hidden, unit * hidden)
                      + linear_flops(patches // unit, unit * hidden, vision.out_hidden_size))
            total += linear_flops(patches, patch_inputs, hidden) + vision.depth * dense + attention + merger
        return total

    def position_ids(self, inputs: BatchFeature) -> None:
        """None: the model computes the mRoPE positions itself (module doc)."""
        return None

    def rope_cos_sin(self, inputs: BatchFeature) -> tuple[torch.Tensor, torch.Tensor]:
        if "mm_token_type_ids" not in inputs:
            raise ValueError("mRoPE positions need the processor's mm_token_type_ids")
        positions, _ = self.model.model.get_rope_index(
            input_ids=inputs["input_ids"], mm_token_type_ids=inputs["mm_token_type_ids"],
            image_grid_thw=inputs.get("image_grid_thw"), attention_mask=inputs["attention_mask"])  # [3, 1, seq]
        probe = torch.zeros((), dtype=torch.float32, device=positions.device)
        cos, sin = self.language_model.rotary_emb(probe, positions)  # [1, seq, head_dim], sections merged
        return cos[0].float(), sin[0].float()

    # --- overrides --------------------------------------------------------------------------

    def encode(self, texts: Sequence[str], images: Sequence[Image.Image],
               each_image_alone: bool = False) -> BatchFeature:
        """Every image at its own native resolution, alone or not (each_image_alone changes nothing)."""
        for image in images:
            width, height = image.size
            if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
                raise AdapterInputError(f"{self.family}: image of size {width}x{height} has an aspect ratio above "
                                        f"{MAX_ASPECT_RATIO}, which the Qwen2.5-VL image processor refuses")
        return super().encode(texts, images, each_image_alone)

    @contextmanager
    def edit_image_features(self, edit: Callable[[torch.Tensor], torch.Tensor | None]) -> Iterator[None]:
        """As the base's, with `edit` receiving the features [tokens, hidden] of all images of a
        forward in sequence order (row-major per image, images one after another)."""
        def replace(module, args, output):
            edited = edit(output.pooler_output)
            if edited is not None:
                output.pooler_output = edited
            return output

        handle = self.image_projector.register_forward_hook(replace)
        try:
            yield
        finally:
            handle.remove()


def _sum_of_squared_tiles(length: int, tile: int) -> int:
    """Sum of squared tile lengths when `length` is cut into tiles of `tile`, the last partial."""
    full, rest = divmod(length, tile)
    return full * tile**2 + rest**2
