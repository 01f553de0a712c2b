"""LLaVA-OneVision (llava-hf/llava-onevision-qwen2-{0.5b,7b,72b}-ov-hf): a global-local model whose
relevance grid is the anyres local-crop grid (Eq. 4).

Token layout of an image alone in its prompt (transformers 5.x: the image processor, the
processor's token count and `LlavaOnevisionModel.pack_image_features` agree on it). S is the crop
side (vision image_size, 384), P the patch (14), p = S // P tokens per crop side (27):
1. base view: the image squash-resized to S x S, p*p tokens, no newline;
2. canvas: the pinpoint (Hc, Wc) that `select_best_resolution` picks; the image is resized keeping
   its aspect (`get_patch_output_size`: the limiting side fills the canvas, the other is ceil'ed)
   and pasted at ((Hc - nh) // 2, (Wc - nw) // 2) on a zero canvas, which is cut into S x S
   crops, row-major. SigLIP sees each crop as p x p patches of P px: the last S - p P px of every
   crop (6 of 384) belong to no token;
3. the crops' tokens are stitched into a (Hc / S p) x (Wc / S p) grid and unpadded
   (`unpad_image`): if W / H > cols / rows, floor((rows - int(round(H cols / W, 7))) / 2) token
   rows go on each side, else as many columns;
4. anyres_max_N: with r = sqrt(h w / (N p^2)) > 1.1 the grid is resized bilinearly
   (align_corners=False) to (int(h // r), int(w // r));
5. an image_newline token ends every grid row.
Several images in one prompt: no anyres; each image is padded to a square (mean colour) and resized
to S, p*p tokens and one newline (OneVision's multi-image form: its paper trains multi-image data
at the base resolution). `encode(..., each_image_alone=True)` instead gives every image of such a
prompt the layout it has alone (base view + anyres crops, as above): the processor and the model
run anyres for an image whenever it is counted as its own prompt's only image.

Choices (the paper is silent):
- The grid is the local tokens as the language model receives them: after unpadding and the
  shrink. The base view and the newline tokens are not part of it (Eq. 4).
- Cell boxes: before the shrink each token's own P x P patch, mapped back through the paste
  offset and the resize; after the shrink a token's nominal footprint: output row i of the
  bilinear resize samples input row (i + 0.5) h / h' - 0.5 and stands for input rows
  [i h / h', (i + 1) h / h'), so cells tile the unpadded region (crop tails excepted). Its value
  mixes the input tokens with non-zero interpolation weight (at most 2 x 2, its "support"):
  pixels change a shrunk token exactly when they change a token of its support.
- An image so thin that unpadding keeps no token row (or column) has no grid: prefill raises
  AdapterInputError. With OneVision's odd 27 tokens per crop side at least one always remains.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from transformers import BatchFeature, LlavaOnevisionProcessor
from transformers.image_processing_utils import select_best_resolution

from focus_eval.protocol import GridGeometry

from .base import AdapterInputError, HFAdapter
from .flops import attention_flops, linear_flops, llava_vision_flops

_ANYRES = re.compile(r"anyres_max_(\d+)")


@dataclass(frozen=True)
class AnyresLayout:
    """Where the local grid of one image (alone in its prompt) lies. Sizes are (height, width)."""

    image_size: tuple[int, int]  # (width, height) of the original image
    crop_side: int  # S
    patch_size: int  # P
    canvas: tuple[int, int]  # best pinpoint (Hc, Wc)
    resized: tuple[int, int]  # (nh, nw) of the image on the canvas
    offset: tuple[int, int]  # (top, left) where the resized image is pasted
    rows: tuple[int, int]  # [start, stop) of the canvas token rows that unpadding keeps
    cols: tuple[int, int]  # [start, stop) of the canvas token columns that unpadding keeps
    grid_shape: tuple[int, int]  # (h, w) after the shrink

    @property
    def tokens_per_side(self) -> int:
        return self.crop_side // self.patch_size

    @property
    def crops(self) -> tuple[int, int]:
        """Crops of the canvas (rows, cols), the base view not included."""
        return self.canvas[0] // self.crop_side, self.canvas[1] // self.crop_side

    @property
    def unpadded_shape(self) -> tuple[int, int]:
        return self.rows[1] - self.rows[0], self.cols[1] - self.cols[0]

    @property
    def num_tokens(self) -> int:
        """Image tokens in the sequence: base view, then every grid row and its newline."""
        rows, cols = self.grid_shape
        return self.tokens_per_side**2 + rows * (cols + 1)

    def cell_boxes(self, grid_shape: tuple[int, int] | None = None) -> np.ndarray:
        """[h, w, 4] boxes (x0, y0, x1, y1) in original pixels of `grid_shape` cells (default: the
        final grid) dividing the unpadded token region evenly: the unpadded shape gives every
        token's own patch, the shrunk shape every token's nominal footprint (module doc)."""
        rows, cols = grid_shape or self.grid_shape
        width, height = self.image_size
        x0, x1 = self._cell_edges(self.cols, cols, self.offset[1], self.resized[1], width)
        y0, y1 = self._cell_edges(self.rows, rows, self.offset[0], self.resized[0], height)
        return np.stack(np.broadcast_arrays(x0[None, :], y0[:, None], x1[None, :], y1[:, None]), axis=-1)

    def _cell_edges(self, span: tuple[int, int], cells: int, offset: int, resized: int,
                    original: int) -> tuple[np.ndarray, np.ndarray]:
        """Starts and ends [cells] in original pixels of `cells` equal cells over the canvas token
        span [start, stop) of one axis. Token j of crop k covers canvas pixels [k S + j P,
        k S + (j + 1) P): a start edge lies in the crop it opens, an end edge in the crop it closes
        (an end on a crop boundary is the end of that crop's last patch, before its unseen tail).
        Canvas -> original: undo the paste offset, then the resize (pixel edges scale linearly in
        every half-pixel-centred resize)."""
        start, stop = span
        p = self.tokens_per_side
        # edges in token units; the integer product first, so that whole edges stay exact
        edges = start + (np.arange(cells + 1) * (stop - start)) / cells
        first_crop, last_crop = np.floor(edges[:-1] / p), np.ceil(edges[1:] / p) - 1
        starts = first_crop * self.crop_side + (edges[:-1] - first_crop * p) * self.patch_size
        ends = last_crop * self.crop_side + (edges[1:] - last_crop * p) * self.patch_size
        scale = original / resized
        return (starts - offset) * scale, (ends - offset) * scale


def anyres_layout(image_size: tuple[int, int], pinpoints: Sequence[Sequence[int]], crop_side: int,
                  patch_size: int, max_crops: int) -> AnyresLayout:
    """The anyres layout of a (width, height) image (module doc, steps 2-4)."""
    width, height = image_size
    canvas_h, canvas_w = select_best_resolution((height, width), [list(p) for p in pinpoints])
    # transformers' get_patch_output_size
    scale_w, scale_h = canvas_w / width, canvas_h / height
    if scale_w < scale_h:
        new_h, new_w = min(math.ceil(height * scale_w), canvas_h), canvas_w
    else:
        new_h, new_w = canvas_h, min(math.ceil(width * scale_h), canvas_w)
    p = crop_side // patch_size
    rows, cols = canvas_h // crop_side * p, canvas_w // crop_side * p
    # transformers' unpad_image on the [rows, cols] token grid
    row0, row1, col0, col1 = 0, rows, 0, cols
    if width / height > cols / rows:
        pad = (rows - int(round(height * (cols / width), 7))) // 2
        row0, row1 = pad, rows - pad
    else:
        pad = (cols - int(round(width * (rows / height), 7))) // 2
        col0, col1 = pad, cols - pad
    grid_h, grid_w = row1 - row0, col1 - col0
    # pack_image_features: the anyres_max_N shrink
    ratio = math.sqrt(grid_h * grid_w / (max_crops * p**2))
    if ratio > 1.1:
        grid_h, grid_w = int(grid_h // ratio), int(grid_w // ratio)
    return AnyresLayout(image_size=(int(width), int(height)), crop_side=crop_side, patch_size=patch_size,
                        canvas=(canvas_h, canvas_w), resized=(new_h, new_w),
                        offset=((canvas_h - new_h) // 2, (canvas_w - new_w) // 2),
                        rows=(row0, row1), cols=(col0, col1), grid_shape=(grid_h, grid_w))


class LlavaOnevisionAdapter(HFAdapter):
    family = "llava_onevision"
    multi_image = True
    max_images = None
    processor_class = LlavaOnevisionProcessor

    def __init__(self, model, processor):
        super().__init__(model, processor)
        config, vision = self.config, self.config.vision_config
        if config.vision_feature_select_strategy != "full":
            raise ValueError("LLaVA-OneVision adapter expects vision_feature_select_strategy='full' (SigLIP, every "
                             f"patch a token), got {config.vision_feature_select_strategy!r}")
        match = _ANYRES.fullmatch(str(config.vision_aspect_ratio))
        if match is None:
            raise ValueError(f"vision_aspect_ratio={config.vision_aspect_ratio!r}: expected 'anyres_max_N'")
        self.max_crops = int(match.group(1))
        self.crop_side, self.patch_size = vision.image_size, vision.patch_size
        self.pinpoints = [list(p) for p in config.image_grid_pinpoints]
        if any(side % self.crop_side for p in self.pinpoints for side in p):
            raise ValueError(f"image_grid_pinpoints must be multiples of the crop side {self.crop_side}, "
                             f"got {self.pinpoints}")
        image_processor = processor.image_processor
        processor_side = _crop_side(image_processor)
        processor_pinpoints = [list(p) for p in image_processor.image_grid_pinpoints]
        if (processor_side, processor_pinpoints) != (self.crop_side, self.pinpoints):
            raise ValueError(f"the image processor (crop side {processor_side}, pinpoints {processor_pinpoints}) "
                             f"disagrees with the model (crop side {self.crop_side}, pinpoints {self.pinpoints})")
        if (processor.vision_aspect_ratio, processor.num_image_tokens) != (
                config.vision_aspect_ratio, (self.crop_side // self.patch_size) ** 2):
            raise ValueError(f"the processor (vision_aspect_ratio {processor.vision_aspect_ratio!r}, "
                             f"{processor.num_image_tokens} tokens per crop) disagrees with the model "
                             f"({config.vision_aspect_ratio!r}, {(self.crop_side // self.patch_size) ** 2})")

    @property
    def image_token_cap(self) -> int:
        """The base view and anyres_max_N's N crops' worth of tokens ((1 + 9) x 729 = 7,290 at 7B). Large
        images come to a little more (2246x1582: 7,325; 8K 16:9: 7,317; newlines and the 1.1 margin of
        the shrink): the budget stays below vanilla's image on them."""
        return (1 + self.max_crops) * (self.crop_side // self.patch_size) ** 2

    @property
    def image_projector(self) -> torch.nn.Module:
        """The projector; its output [crops, p*p, hidden] is packed (unpadded, shrunk, newlines
        added) before it enters the sequence."""
        return self.model.model.multi_modal_projector

    def anyres_layout(self, image_size: tuple[int, int]) -> AnyresLayout:
        """Layout of a (width, height) image alone in its prompt."""
        return anyres_layout(image_size, self.pinpoints, self.crop_side, self.patch_size, self.max_crops)

    def encode(self, texts: Sequence[str], images: Sequence[Image.Image],
               each_image_alone: bool = False) -> BatchFeature:
        """Images go to the processor nested per prompt: OneVision runs anyres only for a prompt
        with exactly one image. A flat list makes every image its own single-image "prompt" for
        the processor and the model (batch_num_images all 1): each_image_alone."""
        counts = [text.count(self.processor.image_token) for text in texts]
        if sum(counts) != len(images):
            raise ValueError(f"the prompts reference {sum(counts)} images, {len(images)} given")
        if not images or each_image_alone:
            return super().encode(texts, list(images))
        bounds = np.cumsum([0, *counts]).tolist()
        return super().encode(texts, [list(images[a:b]) for a, b in zip(bounds, bounds[1:])])

    def visual_layout(self, inputs: BatchFeature, image: Image.Image) -> tuple[torch.Tensor, GridGeometry]:
        layout = self.anyres_layout(image.size)
        width, height = image.size
        if 0 in layout.grid_shape:
            raise AdapterInputError(f"a {width}x{height} image keeps no local token after unpadding (canvas "
                                    f"{layout.canvas[1]}x{layout.canvas[0]}); the relevance grid would be empty")
        run = (inputs["input_ids"][0] == self.image_token_id).nonzero().flatten().cpu()  # [num_tokens]
        if run.numel() != layout.num_tokens:
            raise RuntimeError(f"expected {layout.num_tokens} image tokens for a {width}x{height} image, the processor "
                               f"produced {run.numel()}")
        rows, cols = layout.grid_shape
        # after the base view, row r of the grid starts at r * (cols + 1); column `cols` is the newline
        local = layout.tokens_per_side**2 + torch.arange(rows)[:, None] * (cols + 1) + torch.arange(cols)[None, :]
        return run[local.flatten()], GridGeometry(image_size=image.size, cell_boxes=layout.cell_boxes())

    def vision_flops(self, inputs: BatchFeature) -> int:
        """Per crop (the base view and every canvas crop of a lone image; one padded square per
        image of a multi-image prompt): the SigLIP tower over the T = p*p patches (no CLS) and the
        projector (flops.llava_vision_flops), plus SigLIP's attention-pooling head, which runs
        though unused. Unpadding, the bilinear shrink and newlines are not matrix products."""
        vision = self.config.vision_config
        patches = (self.crop_side // self.patch_size) ** 2
        hidden, heads = vision.hidden_size, vision.num_attention_heads
        per_crop = llava_vision_flops(self.config, patches, cls_token=False)
        if getattr(vision, "vision_use_head", True):  # SigLIP runs its head unless the config says not (5.17: no field)
            # one probe query attending to the patches: q and out on 1 token, k and v on T, MLP on 1
            per_crop += (2 * linear_flops(1, hidden, hidden) + 2 * linear_flops(patches, hidden, hidden)
                         + attention_flops(1, patches, heads, hidden // heads)
                         + 2 * linear_flops(1, hidden, vision.intermediate_size))
        return self.num_crops(inputs) * per_crop

    def num_crops(self, inputs: BatchFeature) -> int:
        """S x S inputs the vision tower runs on for the images in `inputs` (padding crops of the
        batch are dropped by the model, so they are not counted)."""
        sizes = inputs["image_sizes"].tolist()  # [(height, width)] per image, prompt after prompt
        crops, start = 0, 0
        for count in inputs["batch_num_images"].tolist():
            if count == 1:
                height, width = sizes[start]
                crop_rows, crop_cols = self.anyres_layout((width, height)).crops
                crops += 1 + crop_rows * crop_cols
            else:
                crops += count
            start += count
        return crops


def _crop_side(image_processor) -> int:
    """Side of the crops the image processor cuts (its `patch_size` in `_preprocess`)."""
    crop, size = getattr(image_processor, "crop_size", None), image_processor.size
    if crop is not None and crop.get("height"):
        return int(crop["height"])
    return int(size.get("height") or size.get("shortest_edge"))
