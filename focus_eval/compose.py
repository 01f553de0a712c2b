"""Final-answer input (A.5): the image(s) the model answers from once the ROIs are chosen.

Boxes are (x0, y0, x1, y1) integer pixels of the original image, end-exclusive. Boxes that
reach outside the image are clipped to it; a box that does not overlap it is an error.

Rules of `compose_final_input` (A.5, after ZoomEye's inference strategy):
- Nothing chosen: the full image ("full").
- Global-local models (multi_image: LLaVA-OneVision, Qwen2.5-VL): the full image with every
  chosen box outlined, followed by one crop per target; a type-2 target's boxes are merged
  where they overlap and give one crop per merged box ("global+crops"). Identical crops of
  different targets are sent once. The outline width scales with the image (see
  `outline_boxes`) so that it survives the model's downscaling of the global view.
  The paper gives these models the images through their "text-image interleaved
  capabilities", after ZoomEye, whose prompt says which image is the main one, that the
  rectangle marks the focus region and that the next image is its zoomed-in view. So every
  image gets a short text that follows it (`FinalInput.texts`, our wording): the first says
  it is the full image and that red outlines mark the regions enlarged in the next images;
  each crop says which target it shows ("Image 2 is an enlarged view of the region with the
  red car."; a type-2 region "... with boats"). Single-image layouts have no texts (the
  paper's LLaVA-1.5 input is the one image and the question).
- Global-view models (single image: LLaVA-1.5):
  - type 1, one box: the crop ("crop");
  - type 1, several boxes (one per target): the crop of their union box ("union"), unless the
    largest distance between two box centres exceeds t_obj_dist pixels (strictly); then the
    boxes, merged where they overlap, are pasted on a canvas ("canvas");
  - type 2: all boxes merged where they overlap, pasted on a canvas ("canvas"), even a single
    merged box, as the paper states the rule without exception.

Canvas (`paste_on_canvas`), our generalisation of ZoomEye's layout of two ROIs resized to 336
and pasted side by side on a 672x672 canvas: a square canvas of canvas_size filled with the
image's mean colour; cols = ceil(sqrt(n)), rows = ceil(n / cols), tile = canvas_size // cols.
Boxes go to rows by centre y (chunks of cols), left to right by centre x inside a row; a
partial row and any horizontal remainder are centred. Each crop is resized (up or down,
bicubic) to fit its tile keeping its aspect ratio and centred in it. The vertical space the
rows leave free, canvas_size - rows * tile, keeps the boxes' relative vertical positions:
a tile moves down by free * (box centre y / image height). Offsets grow with centre y and
rows are sorted by it, so tiles never overlap. For two boxes this is the side-by-side layout
with the two tiles offset vertically as the boxes are in the image.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from PIL import Image, ImageStat

Box = tuple[int, int, int, int]

OUTLINE_COLOUR = (255, 0, 0)  # named "red" in the texts of the global view
# The global view is shrunk to the vision encoder's input (336-384 px, or about 1000 px for
# Qwen2.5-VL's default max_pixels); one line pixel per this many image pixels of the longer
# side keeps the outline about 2 px wide at 384.
_OUTLINE_PIXELS_PER_LINE_PIXEL = 192


@dataclass
class FinalInput:
    images: list[Image.Image]
    boxes: list[Box]  # the regions these images show (for the trace)
    layout: str  # "full" | "crop" | "union" | "canvas" | "global+crops" | "full+crop" (ViCrop)
    texts: list[str] = field(default_factory=list)  # global+crops: the text after each image; else empty


def crop(image: Image.Image, box: Sequence[int]) -> Image.Image:
    return image.crop(clip_box(box, image.size))


def clip_box(box: Sequence[int], size: tuple[int, int]) -> Box:
    """`box` as four ints clipped to an image of `size` = (width, height)."""
    if len(box) != 4:
        raise ValueError(f"a box is (x0, y0, x1, y1); got {box!r}")
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty box {box!r}: need x0 < x1 and y0 < y1")
    width, height = size
    clipped = (max(x0, 0), max(y0, 0), min(x1, width), min(y1, height))
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        raise ValueError(f"box {box!r} lies outside the {width}x{height} image")
    return clipped


def union_box(boxes: Iterable[Sequence[int]]) -> Box:
    boxes = [tuple(int(v) for v in box) for box in boxes]
    if not boxes:
        raise ValueError("union of no boxes")
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def box_center(box: Sequence[int]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0


def max_center_distance(boxes: Sequence[Sequence[int]]) -> float:
    """Largest Euclidean distance between two box centres; 0.0 for fewer than two boxes."""
    centers = [box_center(box) for box in boxes]
    return max((math.dist(a, b) for a, b in itertools.combinations(centers, 2)), default=0.0)


def merge_overlapping(boxes: Sequence[Sequence[int]]) -> list[Box]:
    """Replace overlapping boxes by their union until no two overlap.

    Boxes overlap when they share at least one pixel (touching edges do not, boxes being
    end-exclusive). A merge can create new overlaps, so the scan repeats until none is left.
    Each result keeps the position of its earliest input box, so the order is deterministic
    and a caller's ranking (e.g. by confidence) survives.
    """
    merged = [tuple(int(v) for v in box) for box in boxes]
    found = True
    while found:
        found = False
        for i, j in itertools.combinations(range(len(merged)), 2):
            if _overlap(merged[i], merged[j]):
                merged[i] = union_box((merged[i], merged[j]))
                del merged[j]
                found = True
                break
    return merged


def _overlap(a: Box, b: Box) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def paste_on_canvas(image: Image.Image, boxes: Sequence[Sequence[int]], canvas_size: int) -> Image.Image:
    """Crops of `boxes` on a canvas_size x canvas_size canvas (layout: module docstring)."""
    boxes = [clip_box(box, image.size) for box in boxes]
    if not boxes:
        raise ValueError("paste_on_canvas needs at least one box")
    count = len(boxes)
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    tile = canvas_size // cols
    if tile < 1:
        raise ValueError(f"canvas_size {canvas_size} is too small for {count} tiles")
    free_height = canvas_size - rows * tile
    image_height = image.size[1]

    canvas = Image.new("RGB", (canvas_size, canvas_size), mean_colour(image))
    by_center_y = sorted(boxes, key=lambda b: (box_center(b)[1], box_center(b)[0]))
    for row in range(rows):
        row_boxes = sorted(by_center_y[row * cols:(row + 1) * cols], key=lambda b: (box_center(b)[0], box_center(b)[1]))
        row_left = (canvas_size - len(row_boxes) * tile) // 2
        for col, box in enumerate(row_boxes):
            piece = image.crop(box).convert("RGB")
            scale = min(tile / piece.width, tile / piece.height)
            size = (max(1, min(tile, round(piece.width * scale))), max(1, min(tile, round(piece.height * scale))))
            piece = piece.resize(size, Image.Resampling.BICUBIC)
            offset = round(free_height * box_center(box)[1] / image_height)
            left = row_left + col * tile + (tile - size[0]) // 2
            top = row * tile + offset + (tile - size[1]) // 2
            canvas.paste(piece, (left, top))
    return canvas


def mean_colour(image: Image.Image) -> tuple[int, int, int]:
    """The image's mean RGB colour, rounded: the fill of canvases and padded squares."""
    return tuple(int(round(v)) for v in ImageStat.Stat(image.convert("RGB")).mean)


def pad_to_square(image: Image.Image, fill: tuple[int, int, int]) -> Image.Image:
    """`image` centred on a square of its longer side filled with `fill` (LLaVA's expand2square)."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    square = Image.new(image.mode, (side, side), fill)
    square.paste(image, ((side - width) // 2, (side - height) // 2))
    return square


def outline_boxes(image: Image.Image, boxes: Sequence[Sequence[int]], color=OUTLINE_COLOUR,
                  width: int | None = None) -> Image.Image:
    """A copy of `image` with each box's border drawn `width` pixels wide inside the box.

    Drawn inside so the line stays visible at the image border; a box narrower than two
    lines is filled. Default width: max(2, ceil(longer side / 192)), about 2 px once the
    image is shrunk to 384 px.
    """
    if width is None:
        width = max(2, math.ceil(max(image.size) / _OUTLINE_PIXELS_PER_LINE_PIXEL))
    if width < 1:
        raise ValueError(f"outline width must be >= 1, got {width}")
    outlined = image.convert("RGB") if image.mode != "RGB" else image.copy()
    color = tuple(color)
    for box in boxes:
        x0, y0, x1, y1 = clip_box(box, image.size)
        line = min(width, x1 - x0, y1 - y0)
        for band in ((x0, y0, x1, y0 + line), (x0, y1 - line, x1, y1),
                     (x0, y0, x0 + line, y1), (x1 - line, y0, x1, y1)):
            outlined.paste(color, band)
    return outlined


def compose_final_input(image: Image.Image, chosen: Sequence[Sequence[tuple]], *, question_type: int,
                        multi_image: bool, t_obj_dist: float, canvas_size: int,
                        names: Sequence[str] | None = None) -> FinalInput:
    """The final-answer images from the chosen ROIs, one box list per target (rules: module docstring).

    chosen[i]: the boxes chosen for target i (type 1: its best ROI; type 2: every ROI above
    t_type2); a target with nothing chosen is empty or absent.
    names[i]: how the texts of a multi-image input name target i ("the red car", "boats");
    default "target {i + 1}".
    """
    if question_type not in (1, 2):
        raise ValueError(f"question_type must be 1 or 2, got {question_type!r}")
    names = list(names) if names is not None else [f"target {i + 1}" for i in range(len(chosen))]
    if len(names) != len(chosen):
        raise ValueError(f"{len(names)} names for {len(chosen)} targets")
    named = [(name, [clip_box(box, image.size) for box in boxes]) for name, boxes in zip(names, chosen) if boxes]
    per_target = [boxes for _, boxes in named]
    if not per_target:
        return full_image_input(image)

    every_box = _unique(box for boxes in per_target for box in boxes)
    if multi_image:
        shown: dict[Box, list[str]] = {}  # crop box -> the targets it shows, in target order
        for name, boxes in named:
            for box in merge_overlapping(boxes):
                shown.setdefault(box, []).append(name)
        crop_boxes = list(shown)
        images = [outline_boxes(image, every_box)] + [image.crop(box) for box in crop_boxes]
        return FinalInput(images=images, boxes=[_full_box(image)] + crop_boxes, layout="global+crops",
                          texts=interleaved_texts(list(shown.values())))

    if question_type == 1 and len(every_box) == 1:
        return FinalInput(images=[image.crop(every_box[0])], boxes=every_box, layout="crop")
    if question_type == 1 and max_center_distance(every_box) <= t_obj_dist:
        union = union_box(every_box)
        return FinalInput(images=[image.crop(union)], boxes=[union], layout="union")
    merged = merge_overlapping(every_box)
    return FinalInput(images=[paste_on_canvas(image, merged, canvas_size)], boxes=merged, layout="canvas")


def full_image_input(image: Image.Image) -> FinalInput:
    """The full image alone: vanilla's input, and every method's when it chose nothing."""
    return FinalInput(images=[image], boxes=[_full_box(image)], layout="full")


def target_names(targets: Sequence) -> list[str]:
    """How the texts of a multi-image input name each target (`focus_eval.targets.Target`):
    "the red car", or "boats" for a type-2 target."""
    return [target.name if target.all_instances else f"the {target.name}" for target in targets]


def interleaved_texts(crop_names: Sequence[Sequence[str]]) -> list[str]:
    """The text after each image of a global+crops input (module docstring): the global view's,
    then one per crop naming the targets it shows."""
    regions = "the region" if len(crop_names) == 1 else "the regions"
    images = "the next image" if len(crop_names) == 1 else "the next images"
    texts = [f"Image 1 is the full image; red outlines mark {regions} shown enlarged in {images}."]
    for number, names in enumerate(crop_names, start=2):
        texts.append(f"Image {number} is an enlarged view of the region with {_join(names)}.")
    return texts


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _full_box(image: Image.Image) -> Box:
    return (0, 0, image.size[0], image.size[1])


def _unique(boxes: Iterable[Box]) -> list[Box]:
    return list(dict.fromkeys(boxes))
