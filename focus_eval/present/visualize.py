"""Pictures of what FOCUS did on one question (the paper's Fig. 5 and Figs. 8-10), PIL only.

`render_explanation(trace, image, final_images)` draws, left to right under a header with the
question, the answer and the forward-pass counters:
- one panel per target: the original image with that target's relevance map overlaid in heat
  colours, every proposed ROI outlined and labelled "#rank confidence", the chosen ROI(s)
  highlighted;
- one panel per image actually given to the model for the final answer.
A legend line under the header says what the outline colours and the "#rank confidence" labels
mean. `save_explanation(trace, image, final_images, out_dir, stem)` writes that picture as
`<stem>.png` and the trace as `<stem>.json`; the CLI, the Python API and the lmms-eval models
(`save_maps=DIR`) all call it.

Choices (display only, nothing here changes what FOCUS computes):
- The map is min-max normalised per target, then bilinearly interpolated between cell centres
  (cell positions from the trace's `cell_boxes`, so padded or centre-cropped grids land where
  the model saw them); image areas outside the grid get no overlay. Colours: the "hot" ramp
  black -> red -> yellow -> white, blended over the image with HEAT_ALPHA, so irrelevant areas
  look dark and relevant ones glow.
- Ranks are 1-based positions in the trace's `order` (after reranking by existence confidence).
  Outlines: grey for ROIs never checked, cyan for checked ones, green for chosen ones, drawn in
  that order so the chosen outline is never covered by another. Pure CHOSEN_COLOUR cannot come
  from the heat overlay (a green heat channel implies a red one), so it marks the choice.
- Every panel is scaled to one height, PANEL_HEIGHT by default, shrunk when the row of panels
  would exceed max_width: 8K inputs are downscaled, tiny ones enlarged (nearest neighbour, so
  their pixels stay visible). Fonts, margins and line widths scale with the panel height.
- The question and the answer take at most MAX_TEXT_LINES lines each in the header (a
  1,024-token answer would fill the picture); the rest is in the trace, and the header says how
  many characters were left out.
- Text is drawn with `focus_eval.present.fonts.Typeface`: each character in the first font of a chain
  that has it (FOCUS_EVAL_FONT, common system fonts, PIL's built-in), so questions and answers
  in any script are text; a character no font has is shown as a \\u escape, and the header says
  so.
- Timing and memory counters are left out of the picture, so the PNG bytes depend only on the
  inputs (and the fonts installed).
- Ground-truth boxes (V*Bench, `trace.gt_boxes`) are outlined in GT_COLOUR on every target
  panel, labelled "GT <name>", and the header gives the ROI recall (focus_eval.recall).
- ZoomEye's traces have no map: its panels show the tree nodes it scored (the views the model
  was shown), labelled "#pop confidence" (pop order, answering confidence; type 2: the order of
  the checks and the existence confidence), in the same colours: chosen, popped, only queued.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from focus_eval.compose import outline_boxes
from focus_eval.present.fonts import FONT_ENV, Typeface
from focus_eval.images import to_rgb
from focus_eval.outputs import safe_stem
from focus_eval.methods.focus.proposals import relevance_scores
from focus_eval.trace import TargetTrace, Trace

PANEL_HEIGHT = 512
MAX_WIDTH = 2560
HEAT_ALPHA = 0.5
CHOSEN_COLOUR = (0, 255, 0)
CHECKED_COLOUR = (0, 200, 255)
UNCHECKED_COLOUR = (170, 170, 170)
ERROR_COLOUR = (200, 0, 0)
GT_COLOUR = (255, 0, 255)
_MIN_PANEL_HEIGHT = 64
_MIN_COLUMN_ASPECT = 0.6  # a column is at least this many panel heights wide
MAX_TEXT_LINES = 3  # header lines of the question and of the answer
LEGEND = ((CHOSEN_COLOUR, "chosen ROI"), (CHECKED_COLOUR, "checked"), (UNCHECKED_COLOUR, "never checked"))
LEGEND_TEXT = ('labels "#rank confidence": rank after reranking (#1 best) and the existence confidence of '
               'Eq. 5, 2 p(Yes) - 1 in [-1, 1]; map: black irrelevant to white most relevant')
TREE_LEGEND = ((CHOSEN_COLOUR, "chosen node"), (CHECKED_COLOUR, "popped"), (UNCHECKED_COLOUR, "only queued"))
TREE_LEGEND_TEXT = ('labels "#pop confidence": the order the tree search popped the node (#1 first) and its answering '
                    'confidence (type 2: order and existence confidence), 2 p(Yes) - 1 in [-1, 1]; boxes: the views '
                    'the model was shown')


@dataclass(frozen=True)
class Panel:
    kind: str  # "target" (original image with a map) or "input" (an image given to the model)
    box: tuple[int, int, int, int]  # where the image lies in the picture, end-exclusive
    source_size: tuple[int, int]  # (width, height) of the image it shows

    def to_picture(self, x: float, y: float) -> tuple[int, int]:
        """Picture pixel of source pixel coordinate (x, y)."""
        x0, y0, x1, y1 = self.box
        width, height = self.source_size
        return x0 + round(x * (x1 - x0) / width), y0 + round(y * (y1 - y0) / height)


@dataclass
class Figure:
    image: Image.Image
    panels: list[Panel]


def hot_colours(values: np.ndarray) -> np.ndarray:
    """[...] values in [0, 1] -> [..., 3] float RGB in [0, 1]: black, red, yellow, white."""
    v = np.clip(values, 0.0, 1.0)[..., None]
    return np.clip(3.0 * v - np.array([0.0, 1.0, 2.0]), 0.0, 1.0)


def render_explanation(trace: Trace, image: Image.Image, final_images: Sequence[Image.Image], *,
                       panel_height: int = PANEL_HEIGHT, max_width: int = MAX_WIDTH) -> Figure:
    """The picture of one question (layout: module docstring).

    image: the image the trace was computed on (any mode; converted like the pipeline does).
    final_images: the images the model answered from (PipelineResult.final_images); empty when
        the question failed before the answer.
    """
    image = to_rgb(image)
    if list(image.size) != list(trace.image_size):
        raise ValueError(f"image is {image.size[0]}x{image.size[1]} but the trace was computed on "
                         f"{trace.image_size[0]}x{trace.image_size[1]}")
    targets: list[TargetTrace | None] = list(trace.targets) or [None]
    sources = [image] * len(targets) + list(final_images)
    height = _fit_height([s.size for s in sources], panel_height, max_width)
    style = _Style(height)

    panels = [_ground_truth(_target_panel(image, target, height, style), image.size, trace, style)
              for target in targets]
    panels += [_scaled(im, height) for im in final_images]
    captions = [_target_caption(target, trace) for target in targets]
    captions += [f"model input {i + 1}/{len(final_images)} ({trace.final_layout}): {im.size[0]}x{im.size[1]} px"
                 for i, im in enumerate(final_images)]
    if not final_images and trace.error:
        captions[-1] += "\nno model input: the question failed"

    columns = [max(p.width, style.min_column) for p in panels]
    width = style.margin * (len(panels) + 1) + sum(columns)
    legend = any(target is not None and target.rois for target in targets)
    tree = trace.method == "zoomeye"
    keys = (TREE_LEGEND if tree else LEGEND) + (((GT_COLOUR, "ground truth"),) if trace.gt_boxes else ())
    legend_text = TREE_LEGEND_TEXT if tree else LEGEND_TEXT
    legend_lines = _wrap(legend_text, style.font, width - 2 * style.margin - _legend_keys_width(style, keys)) if legend else []
    caption_lines = [_wrap(c, style.font, col) for c, col in zip(captions, columns)]
    header = _header_lines(trace, style, width - 2 * style.margin)  # after the other text: it may note escapes
    header_h = style.line_height * (len(header) + len(legend_lines))
    caption_h = style.line_height * max(len(lines) for lines in caption_lines)
    top = 2 * style.margin + header_h
    total_h = top + height + style.margin + caption_h + style.margin

    picture = Image.new("RGB", (width, total_h), "white")
    draw = ImageDraw.Draw(picture)
    for i, (text, colour) in enumerate(header):
        style.font.draw(draw, (style.margin, style.margin + i * style.line_height), text, fill=colour)
    if legend_lines:
        _draw_legend(draw, style, style.margin + len(header) * style.line_height, keys, legend_lines)
    placed: list[Panel] = []
    x = style.margin
    for index, (panel, column, lines) in enumerate(zip(panels, columns, caption_lines)):
        left = x + (column - panel.width) // 2
        picture.paste(panel, (left, top))
        source = sources[index]
        placed.append(Panel(kind="target" if index < len(targets) else "input",
                            box=(left, top, left + panel.width, top + panel.height), source_size=source.size))
        for row, line in enumerate(lines):
            style.font.draw(draw, (x, top + height + style.margin + row * style.line_height), line, fill="black")
        x += column + style.margin
    return Figure(image=picture, panels=placed)


def save_explanation(trace: Trace, image: Image.Image, final_images: Sequence[Image.Image],
                     out_dir: str | os.PathLike, stem: str) -> tuple[Path, Path]:
    """Write `<stem>.png` (render_explanation) and `<stem>.json` (the trace) into out_dir.

    stem: file name without extension, e.g. f"{task}_{doc_id}", made a safe file name by
        `focus_eval.outputs.safe_stem`. Both files are written under a temporary name and
        renamed, so a reader never sees half a file. Returns (png_path, json_path).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = safe_stem(stem)
    png_path, json_path = out_dir / f"{stem}.png", out_dir / f"{stem}.json"
    picture = render_explanation(trace, image, final_images).image
    _write_atomic(png_path, lambda f: picture.save(f, format="PNG"))
    _write_atomic(json_path, lambda f: f.write(trace.to_json().encode()))
    return png_path, json_path


# layout ---------------------------------------------------------------------------------


class _Style:
    """Font, margins and line widths for panels `height` pixels high."""

    def __init__(self, height: int):
        self.font = Typeface(max(11, round(height / 30)))
        self.label_font = Typeface(max(10, round(height / 36)))
        self.line_height = round(self.font.size * 1.35)
        self.margin = max(6, height // 48)
        self.line_width = max(2, math.ceil(height / 200))
        self.min_column = math.ceil(_MIN_COLUMN_ASPECT * height)  # room for the caption


def _fit_height(sizes: list[tuple[int, int]], panel_height: int, max_width: int) -> int:
    """panel_height, or less so that the panels side by side fit in max_width."""
    aspect_sum = sum(max(w / h, _MIN_COLUMN_ASPECT) for w, h in sizes)
    margins = max(6, panel_height // 48) * (len(sizes) + 1)
    fitting = math.floor((max_width - margins) / aspect_sum)
    return max(_MIN_PANEL_HEIGHT, min(panel_height, fitting))


def _scaled(image: Image.Image, height: int) -> Image.Image:
    width = max(1, round(image.width * height / image.height))
    enlarge = height >= image.height
    return image.resize((width, height), Image.Resampling.NEAREST if enlarge else Image.Resampling.LANCZOS,
                        reducing_gap=None if enlarge else 3.0)


def _target_panel(image: Image.Image, target: TargetTrace | None, height: int, style: _Style) -> Image.Image:
    panel = _scaled(image, height)
    if target is None:
        return panel
    if target.relevance_map:
        panel = _overlay_heat(panel, image.size, target)
    if not target.rois:
        return panel
    chosen = set(target.chosen)
    checked = _checked(target)
    groups = (
        (UNCHECKED_COLOUR, max(1, style.line_width // 2),
         [i for i in range(len(target.rois)) if i not in checked and i not in chosen]),
        (CHECKED_COLOUR, style.line_width, [i for i in range(len(target.rois)) if i in checked and i not in chosen]),
        (CHOSEN_COLOUR, 2 * style.line_width, list(target.chosen)),
    )
    scale = (panel.width / image.width, panel.height / image.height)
    for colour, width, indices in groups:
        boxes = [_scale_box(target.rois[i].box, scale, panel.size) for i in indices]
        panel = outline_boxes(panel, boxes, color=colour, width=width)
        draw = ImageDraw.Draw(panel)
        for i, box in zip(indices, boxes):
            _label(draw, box, _roi_label(target, i), colour, style, panel.width)
    return panel


def _checked(target: TargetTrace) -> set[int]:
    """ROIs given a check: FOCUS's with a confidence; a tree search's popped nodes (its order)."""
    if target.search_depth is not None:
        return set(target.order)
    return {i for i, roi in enumerate(target.rois) if roi.confidence is not None}


def _ground_truth(panel: Image.Image, image_size: tuple[int, int], trace: Trace, style: _Style) -> Image.Image:
    """The trace's GT boxes outlined and labelled on a panel showing the whole image."""
    if not trace.gt_boxes:
        return panel
    scale = (panel.width / image_size[0], panel.height / image_size[1])
    boxes = [_scale_box(box, scale, panel.size) for box in trace.gt_boxes]
    panel = outline_boxes(panel, boxes, color=GT_COLOUR, width=style.line_width)
    draw = ImageDraw.Draw(panel)
    names = trace.gt_names if len(trace.gt_names) == len(boxes) else [""] * len(boxes)
    for box, name in zip(boxes, names):
        _label(draw, box, f"GT {name}".strip(), GT_COLOUR, style, panel.width)
    return panel


def _overlay_heat(panel: Image.Image, image_size: tuple[int, int], target: TargetTrace) -> Image.Image:
    """Blend the target's normalised map, interpolated to the panel's pixels, over the panel."""
    relevance = np.asarray(target.relevance_map, dtype=np.float64)  # [h, w]
    cells = np.asarray(target.cell_boxes, dtype=np.float64)  # [h, w, 4] original pixels
    normalised = relevance_scores(relevance)
    # panel pixel centres in original-image coordinates: [pw], [ph]
    xs = (np.arange(panel.width) + 0.5) * image_size[0] / panel.width
    ys = (np.arange(panel.height) + 0.5) * image_size[1] / panel.height
    centres_x = (cells[0, :, 0] + cells[0, :, 2]) / 2  # [w]
    centres_y = (cells[:, 0, 1] + cells[:, 0, 3]) / 2  # [h]
    fx = np.interp(xs, centres_x, np.arange(len(centres_x)))  # fractional column per panel column
    fy = np.interp(ys, centres_y, np.arange(len(centres_y)))
    heat = _bilinear(normalised, fy, fx)  # [ph, pw]
    covered = (((xs >= cells[0, 0, 0]) & (xs < cells[0, -1, 2]))[None, :]
               & ((ys >= cells[0, 0, 1]) & (ys < cells[-1, 0, 3]))[:, None])  # [ph, pw]
    pixels = np.asarray(panel, dtype=np.float64)  # [ph, pw, 3]
    blended = (1 - HEAT_ALPHA) * pixels + HEAT_ALPHA * 255.0 * hot_colours(heat)
    out = np.where(covered[..., None], blended, pixels)
    return Image.fromarray(np.rint(out).astype(np.uint8), mode="RGB")


def _bilinear(grid: np.ndarray, fy: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """grid [h, w] sampled at fractional rows fy [H] x columns fx [W] -> [H, W]."""
    y0 = np.floor(fy).astype(int)
    x0 = np.floor(fx).astype(int)
    y1 = np.minimum(y0 + 1, grid.shape[0] - 1)
    x1 = np.minimum(x0 + 1, grid.shape[1] - 1)
    ty, tx = (fy - y0)[:, None], (fx - x0)[None, :]
    top = grid[y0][:, x0] * (1 - tx) + grid[y0][:, x1] * tx
    bottom = grid[y1][:, x0] * (1 - tx) + grid[y1][:, x1] * tx
    return top * (1 - ty) + bottom * ty


def _scale_box(box: Sequence[int], scale: tuple[float, float], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """An original-image box on the panel, at least one pixel wide and high, inside it."""
    sx, sy = scale
    x0 = min(round(box[0] * sx), size[0] - 1)
    y0 = min(round(box[1] * sy), size[1] - 1)
    return x0, y0, max(x0 + 1, min(round(box[2] * sx), size[0])), max(y0 + 1, min(round(box[3] * sy), size[1]))


def _label(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], text: str, colour: tuple, style: _Style,
           panel_width: int) -> None:
    """Text on a dark plate just above the box's top-left corner; inside the corner, clear of
    the outline, when the box touches the panel's top."""
    left, top, right, bottom = style.label_font.bbox(text)
    pad = max(1, style.line_width // 2)
    w, h = right - left + 2 * pad, bottom - top + 2 * pad
    if box[1] >= h:
        x, y = box[0], box[1] - h
    else:
        x, y = box[0] + 2 * style.line_width, box[1] + 2 * style.line_width
    x = min(x, max(0, panel_width - w))
    draw.rectangle((x, y, x + w - 1, y + h - 1), fill=(0, 0, 0))
    style.label_font.draw(draw, (x + pad - left, y + pad - top), text, fill=colour)


def _roi_label(target: TargetTrace, index: int) -> str:
    """"#rank confidence": rank after reranking (1 = best), Eq. 5 confidence when checked."""
    rank = target.order.index(index) + 1 if index in target.order else "-"
    confidence = target.rois[index].confidence
    return f"#{rank}" + ("" if confidence is None else f" {confidence:+.2f}")


def _target_caption(target: TargetTrace | None, trace: Trace) -> str:
    if target is None:
        reason = "vanilla: full image" if trace.method == "vanilla" else "no target: full image"
        return f"{reason}, no relevance map"
    kind = "all instances" if target.all_instances else "target"
    parts = [f"{kind} '{target.name}'"]
    if target.full_image_confidence is not None:
        parts.append(f"full image {target.full_image_confidence:+.2f}")
    if target.root_answering is not None:
        parts.append(f"root answering {target.root_answering:+.2f}")
    if target.search_depth is not None:
        parts.append(f"tree depth {target.search_depth}, {len(target.order)} popped of {len(target.rois)} nodes scored"
                     if not target.all_instances else f"tree depth {target.search_depth}, {len(target.rois)} nodes checked")
    elif target.rois:
        parts.append(f"{len(target.rois)} ROIs, {len(_checked(target))} checked")
    if target.rois:
        chosen = ", ".join(_roi_label(target, i) for i in target.chosen)
        parts.append(f"chosen {chosen}" if chosen else "none chosen")
    lines = [", ".join(parts)]
    lines += target.notes
    return "\n".join(lines)


def _header_lines(trace: Trace, style: _Style, width: int) -> list[tuple[str, tuple[int, int, int]]]:
    c = trace.counters
    targets = ", ".join(t.name for t in trace.targets) or "none"
    answer = f"answer: {trace.answer if trace.answer is not None else '-'}"
    facts = [f"method {trace.method}, question type {trace.question_type}, targets ({trace.target_source}): {targets}",
             (f"forward passes: search {c.fp} + targets {c.fp_targets} + answer {c.fp_answer} = {c.fp_total} "
              f"in {c.batches} batches, {c.tflops:.3g} TFLOPs")]
    if trace.gt_boxes:
        recall = "-" if trace.roi_recall is None else f"{trace.roi_recall:.2f}"
        facts.append(f"ROI recall {recall} of {len(trace.gt_boxes)} GT box(es) (a searched ROI shows >= 50 % of it)")
    lines = [(line, (0, 0, 0)) for line in _wrap("Q: " + trace.question, style.font, width, MAX_TEXT_LINES)]
    lines += [(line, (0, 0, 0)) for line in _wrap(answer, style.font, width, MAX_TEXT_LINES)]
    lines += [(line, (0, 0, 0)) for fact in facts for line in _wrap(fact, style.font, width)]
    notes = list(trace.notes) + ([f"error: {trace.error}"] if trace.error else [])
    lines += [(line, ERROR_COLOUR) for note in notes for line in _wrap(note, style.font, width)]
    if style.font.escaped:
        note = (r"\u....: characters none of the fonts can draw; set " f"{FONT_ENV} to a font file that has them "
                "(e.g. Noto Sans CJK)")
        lines += [(line, (0, 0, 0)) for line in _wrap(note, style.font, width)]
    return lines


def _legend_keys_width(style: _Style, keys: Sequence[tuple[tuple, str]]) -> int:
    return sum(round(style.font.length(text)) + 3 * style.line_height // 2 for _, text in keys)


def _draw_legend(draw: ImageDraw.ImageDraw, style: _Style, y: int, keys: Sequence[tuple[tuple, str]],
                 text_lines: list[str]) -> None:
    """Colour keys of the ROI outlines, then the meaning of the labels and the map."""
    x, side = style.margin, style.font.size
    top = y + (style.line_height - side) // 2
    for colour, text in keys:
        draw.rectangle((x, top, x + side - 1, top + side - 1), fill=colour, outline=(0, 0, 0))
        style.font.draw(draw, (x + side + side // 3, y), text, fill="black")
        x += round(style.font.length(text)) + 3 * style.line_height // 2
    for row, line in enumerate(text_lines):
        style.font.draw(draw, (x, y + row * style.line_height), line, fill="black")


def printable(text: str) -> str:
    """`text` with control characters (an untrained model emits them) escaped as \\x.. / \\u..;
    newlines and tabs are kept, "\\r" is escaped."""
    return "".join(ch if ch in "\n\t" or ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _wrap(text: str, font: Typeface, width: int, max_lines: int | None = None) -> list[str]:
    """Greedy word wrap to `width` pixels; words longer than a line are cut. Beyond max_lines
    lines, the last one kept ends with how many characters were left out."""
    text = font.visible(printable(text))
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if font.length(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            while font.length(word) > width and len(word) > 1:
                cut = max(1, int(len(word) * width / font.length(word)))
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    if max_lines is None or len(lines) <= max_lines:
        return lines
    kept, last = lines[:max_lines - 1], lines[max_lines - 1]
    suffix = " ... (+{} characters, see the trace)"
    room = width - font.length(suffix.format(_non_blank(text)))  # the count only gets shorter
    while last and font.length(last) > room:
        last = last[:-1].rstrip()
    left_out = _non_blank(text) - sum(map(_non_blank, kept)) - _non_blank(last)
    return kept + [last + suffix.format(left_out)]


def _non_blank(text: str) -> int:
    return sum(not ch.isspace() for ch in text)


def _write_atomic(path: Path, write) -> None:
    """Write through a temporary file in the same folder (created with the umask's permissions,
    named by process and thread so ranks and threads never share one), then rename."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
