"""What the model sees of ZoomEye's nodes: the view of one node for a confidence pass, and the
final input from the chosen nodes. Pixels only, no model.

As the official code (om-ai-lab/ZoomEye 6762d79, `process_nodes_to_image_list` of
`ZoomModelLocal`, `ZoomModelGlobalLocal` in `ZoomEye/zoom_model.py` and `ZoomModelQwenVL` in
`ZoomEye/zoom_model_qwenvl.py`), with these differences, all in how pixels reach our adapters:
- Local-view model (adapter.multi_image False, LLaVA-1.5), "local" prompts: a node is its view
  box's crop (tree.view_box), the root the full image. The official code crops from the image
  padded to a square with the processor's mean colour and then pads each crop to a square; the
  view box always lies inside the image, so that crop is ours, and our LLaVA-1.5 adapter pads every
  image it is given the same way (image_aspect=pad).
- Global-local model (OneVision, Qwen2.5-VL): the root is the full image alone ("global"
  prompts); any other node is two images with ZOOM_IMAGE_TEXTS after them ("zoom" prompts): the
  global view, i.e. the full image with the view box framed in red, shrunk to the patch size, then
  the zoomed view, i.e. the crop of the framed box, frame included. The frame is
  max(1, max(W, H) // 120) px wide and lies just outside the view box (the box grown by that width);
  where the grown box leaves the image it is clipped to the image (official: to the padded square,
  so a frame at the border of a non-square image can lie on the padding; ours then lies on the
  view box's outer pixels). The global view is `zoomeye_global_view`: "square" (official
  LLaVA-OneVision: padded to a square, then patch_size x patch_size) or "fit" (official
  Qwen2.5-VL: the longer side shrunk to patch_size). Padding uses the image's mean colour
  (`compose.mean_colour`), as our canvases do; the official code uses the image processor's mean
  (SigLIP's mid grey), which the adapter protocol does not expose.
- The multi-target root check of a global-local model (`filter_visual_cues`) shows the global
  view alone, without a frame (`global_view`).

Final input (`final_input`, official `process_nodes_to_image_list` of the chosen nodes):
- No node, or only the root (global-local: any root among them): the full image ("full").
- The chosen nodes' view boxes are merged where they overlap or lie less than MERGE_GAP
  (2 x 50) px apart (official `merge_bbox_list`, which grows every box by 50 px before testing).
- Local view: the crop of the union of the merged boxes ("crop" for one box, "union" for
  several), except for exactly two merged boxes whose union is longer than CANVAS_SIDE px on a
  side: both on a canvas ("canvas"). The canvas is `compose.paste_on_canvas`, the layout FOCUS's
  answers use too, rather than the official one (both crops squashed to 336 x 336 and offset
  vertically by the difference of their centres): every method's answer stage shows two far
  apart regions alike, and the crops keep their aspect.
- Global-local: [global view with every merged box framed, crop of the union of the framed
  boxes] with ZOOM_IMAGE_TEXTS ("global+crops"), the same two-image form as a node's view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

from PIL import Image

from focus_eval.compose import (FinalInput, clip_box, crop, full_image_input, mean_colour, merge_overlapping,
                                outline_boxes, pad_to_square, paste_on_canvas, union_box)
from focus_eval.methods.zoomeye.prompts import ZOOM_IMAGE_TEXTS, View
from focus_eval.methods.zoomeye.tree import Box, Node, view_box

GlobalView = Literal["square", "fit"]

MERGE_GAP = 100  # official: boxes grown by 50 px each overlap
CANVAS_SIDE = 1000  # official `side_threshold` of the local-view model
_OUTLINE_DIVISOR = 120  # official frame width: the padded square's side // 120


@dataclass(frozen=True)
class NodeView:
    """One node as one confidence prompt shows it."""

    kind: View  # "local" | "global" | "zoom" (the prompt wording, prompts.py)
    images: tuple[Image.Image, ...]  # one image, or (global view, zoomed view) for "zoom"
    box: Box  # the region shown (the view box; the root: the full image)

    @property
    def texts(self) -> tuple[str, ...] | None:
        """The text after each image (zoom views only)."""
        return ZOOM_IMAGE_TEXTS if self.kind == "zoom" else None


@dataclass(frozen=True)
class ViewSettings:
    multi_image: bool  # the adapter's: global-local (True) or local-view model
    patch_size: int
    patch_scale: float
    global_view: GlobalView


def shown_box(node: Node, image_size: tuple[int, int], settings: ViewSettings) -> Box:
    """The region the model is shown for `node`: its view box; the root: the full image."""
    if node.is_root:
        return node.box
    return view_box(node.box, image_size, settings.patch_size, settings.patch_scale)


def node_view(image: Image.Image, node: Node, settings: ViewSettings) -> NodeView:
    box = shown_box(node, image.size, settings)
    if node.is_root:
        return NodeView("global" if settings.multi_image else "local", (image,), box)
    if not settings.multi_image:
        return NodeView("local", (crop(image, box),), box)
    return NodeView("zoom", zoom_images(image, [box], settings), box)


def global_view(image: Image.Image, size: int, mode: GlobalView) -> Image.Image:
    """The full image shrunk for a global-local model (module docstring)."""
    if mode == "square":
        return pad_to_square(image, mean_colour(image)).resize((size, size), Image.Resampling.BICUBIC)
    if mode == "fit":
        scale = size / max(image.size)
        fitted = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
        return image.resize(fitted, Image.Resampling.BICUBIC)
    raise ValueError(f"global view must be 'square' or 'fit', got {mode!r}")


def outline_width(image_size: tuple[int, int]) -> int:
    return max(1, max(image_size) // _OUTLINE_DIVISOR)


def zoom_images(image: Image.Image, boxes: Sequence[Box], settings: ViewSettings) -> tuple[Image.Image, Image.Image]:
    """(global view with every box framed, crop of the union of the framed boxes)."""
    width = outline_width(image.size)
    framed = [clip_box((x0 - width, y0 - width, x1 + width, y1 + width), image.size) for x0, y0, x1, y1 in boxes]
    outlined = outline_boxes(image, framed, width=width)
    return (global_view(outlined, settings.patch_size, settings.global_view),
            outlined.crop(union_box(framed)))


def merge_near(boxes: Sequence[Box], gap: int = MERGE_GAP) -> list[Box]:
    """Boxes merged (their bounding box) while two overlap or lie less than `gap` px apart
    (`gap` even).
    Growing every box by gap / 2 commutes with taking bounding boxes, so this is
    `compose.merge_overlapping` on the grown boxes, shrunk back."""
    half = gap // 2
    grown = [(x0 - half, y0 - half, x1 + half, y1 + half) for x0, y0, x1, y1 in boxes]
    return [(x0 + half, y0 + half, x1 - half, y1 - half) for x0, y0, x1, y1 in merge_overlapping(grown)]


def final_input(image: Image.Image, nodes: Sequence[Node], settings: ViewSettings, canvas_size: int) -> FinalInput:
    """The final-answer images from the chosen nodes (module docstring)."""
    if not nodes or (len(nodes) == 1 and nodes[0].is_root) or (settings.multi_image and any(n.is_root for n in nodes)):
        return full_image_input(image)
    boxes = merge_near([shown_box(n, image.size, settings) for n in nodes])
    if settings.multi_image:
        global_image, zoomed = zoom_images(image, boxes, settings)
        return FinalInput(images=[global_image, zoomed], boxes=[(0, 0, image.width, image.height), union_box(boxes)],
                          layout="global+crops", texts=list(ZOOM_IMAGE_TEXTS))
    union = union_box(boxes)
    if len(boxes) == 2 and max(union[2] - union[0], union[3] - union[1]) > CANVAS_SIDE:
        return FinalInput(images=[paste_on_canvas(image, boxes, canvas_size)], boxes=boxes, layout="canvas")
    return FinalInput(images=[image.crop(union)], boxes=[union], layout="crop" if len(boxes) == 1 else "union")
