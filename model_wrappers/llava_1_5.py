"""LLaVA-1.5 (llava-hf/llava-1.5-7b-hf): a global-view model with a 24 x 24 relevance grid.

Token geometry: the CLIP tower sees one base_resolution square (336 px, patch 14) and the
projector returns its patch tokens without CLS, 576 of them, row-major; the processor
expands "<image>" into exactly that run. Which part of the original image the square shows
is the adapter option `image_aspect`, applied to every image the model sees (relevance map,
existence checks, final answer, and `method=vanilla`, so FOCUS and vanilla rows see the same
pixels):
- "pad" (default): the image is centred on a square canvas of its longer side filled with the
  image processor's mean colour (offset (side - w) // 2, (side - h) // 2), then the processor
  resizes it: cells over the padding lie outside the image. This is what the original
  LLaVA-1.5 evaluation does (expand2square with the mean colour, then the CLIP processor) and
  what the paper shows ("we do not adjust the aspect ratio of the images for LLaVA-1.5 ...
  there are some padding areas in the object relevance maps", Fig. 9). The padding is done
  here, for any image processor, and a LLaVA image processor's own do_pad (the same padding)
  is switched off so that it is never applied twice.
- "crop": the checkpoint's processor as the hub's llava-hf/llava-1.5-7b-hf ships it (CLIP
  image processor): the shortest edge is resized to size["shortest_edge"] (the other to
  int(s * long / short)) or both to size["height"/"width"], then centre-cropped at
  ((H - h) // 2, (W - w) // 2): cells cover the central part only (of a 2246x1582 V*Bench
  image x in [330, 1912]), and existence checks and the final answer lose the sides of their
  crops too. lmms-eval's built-in `llava_hf` model works this way.

Images per prompt: at most 2. FOCUS gives LLaVA-1.5 one image (its final input is one crop,
union or canvas); ViCrop answers from [full image, crop] in one prompt, as the official ViCrop
code gives llava-hf's LLaVA-1.5 (each image 576 tokens, `image_aspect` applied to both).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from PIL import Image
from transformers import BatchFeature

from focus_eval.compose import pad_to_square
from focus_eval.model_specs import IMAGE_ASPECTS
from focus_eval.protocol import GridGeometry

from .base import HFAdapter
from .flops import llava_vision_flops


class Llava15Adapter(HFAdapter):
    family = "llava_1_5"
    multi_image = False
    max_images = 2  # ViCrop's [full image, crop] (module docstring)
    adapter_options = {"image_aspect": IMAGE_ASPECTS}

    def __init__(self, model, processor, image_aspect: str = IMAGE_ASPECTS[0]):
        if image_aspect not in IMAGE_ASPECTS:
            raise ValueError(f"image_aspect={image_aspect!r}: expected one of {', '.join(IMAGE_ASPECTS)}")
        self.image_aspect = image_aspect
        if getattr(processor.image_processor, "do_pad", False):
            processor.image_processor.do_pad = False  # padding is ours ("pad") or absent ("crop")
        super().__init__(model, processor)
        if self.config.vision_feature_select_strategy != "default":
            raise ValueError("LLaVA-1.5 adapter expects vision_feature_select_strategy='default' (CLS dropped), got "
                             f"{self.config.vision_feature_select_strategy!r}")
        vision = self.config.vision_config
        self.grid_side = vision.image_size // vision.patch_size

    @property
    def image_token_cap(self) -> int:
        """Every image is one grid of grid_side x grid_side tokens (576)."""
        return self.grid_side**2

    @property
    def image_projector(self) -> torch.nn.Module:
        return self.model.model.multi_modal_projector

    def visual_layout(self, inputs: BatchFeature, image: Image.Image) -> tuple[torch.Tensor, GridGeometry]:
        positions = (inputs["input_ids"][0] == self.image_token_id).nonzero().flatten().cpu()  # [576]
        if positions.numel() != self.grid_side**2:
            raise RuntimeError(f"expected {self.grid_side ** 2} image tokens, the processor produced {positions.numel()}")
        covered = covered_box(image.size, self.processor.image_processor, self.base_resolution,
                              padded=self.image_aspect == "pad")
        return positions, GridGeometry.uniform(image.size, (self.grid_side, self.grid_side), covered)

    def encode(self, texts: Sequence[str], images: Sequence[Image.Image],
               each_image_alone: bool = False) -> BatchFeature:
        """Every image padded to a square first when image_aspect is "pad" (module docstring)."""
        if self.image_aspect == "pad":
            fill = tuple(int(channel * 255) for channel in self.processor.image_processor.image_mean)
            images = [pad_to_square(image, fill) for image in images]
        return super().encode(texts, images, each_image_alone)

    def vision_flops(self, inputs: BatchFeature) -> int:
        """Per image: the CLIP tower over P patches + CLS and the projector (flops.llava_vision_flops)."""
        return inputs["pixel_values"].shape[0] * llava_vision_flops(self.config, self.grid_side**2, cls_token=True)


def covered_box(image_size: tuple[int, int], image_processor: Any, side: int,
                padded: bool) -> tuple[float, float, float, float]:
    """Box (x0, y0, x1, y1) in original pixels that the encoder's `side` x `side` input shows,
    for an image given to `image_processor` padded to a square (`pad_to_square`) or as is."""
    width, height = image_size
    # the array the resize sees, placed at (left, top) of the original image
    left, top, canvas_w, canvas_h = 0, 0, width, height
    if padded:
        canvas_w = canvas_h = max(width, height)
        left, top = -((canvas_w - width) // 2), -((canvas_h - height) // 2)
    out_h, out_w = canvas_h, canvas_w
    if image_processor.do_resize:
        out_h, out_w = _resized_size(canvas_h, canvas_w, dict(image_processor.size))
    x0, y0, x1, y1 = 0, 0, out_w, out_h  # in resized pixels
    if image_processor.do_center_crop:
        crop = dict(image_processor.crop_size)
        if crop["height"] > out_h or crop["width"] > out_w:
            raise ValueError(f"centre crop {crop} larger than the resized image {out_w}x{out_h} (zero padding) "
                             "is not supported")
        y0, x0 = (out_h - crop["height"]) // 2, (out_w - crop["width"]) // 2
        y1, x1 = y0 + crop["height"], x0 + crop["width"]
    if (x1 - x0, y1 - y0) != (side, side):
        raise ValueError(f"the image processor produces {x1 - x0}x{y1 - y0} inputs, the vision tower takes {side}x{side}")
    scale_x, scale_y = canvas_w / out_w, canvas_h / out_h  # original pixels per resized pixel
    return left + x0 * scale_x, top + y0 * scale_y, left + x1 * scale_x, top + y1 * scale_y


def _resized_size(height: int, width: int, size: dict) -> tuple[int, int]:
    """(height, width) after the CLIP/LLaVA resize (transformers' get_resize_output_image_size)."""
    if set(size) == {"shortest_edge"}:
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = size["shortest_edge"], int(size["shortest_edge"] * long / short)
        return (new_long, new_short) if width <= height else (new_short, new_long)
    if set(size) == {"height", "width"}:
        return size["height"], size["width"]
    raise ValueError(f"unsupported image processor size {size}; expected shortest_edge or height/width")
