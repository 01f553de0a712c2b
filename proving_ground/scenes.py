"""Synthetic fine-grained VQA scenes in V*Bench's schema: the proving ground's data.

A scene is a 448 x 336 image (V*Bench's aspect, about 1.4; the tiny tower's 112 px input is a
quarter of its longer side) with a smooth greyish noisy background, clutter (small plain
blobs), elongated-ellipse distractors and 2-3 named objects of distinct shapes (circle,
square, triangle, cross, each in its own colour family), 64-80 px wide. Every object and
distractor is filled with a two-shade pattern (horizontal stripes, vertical stripes, dots, checkerboard) of period 4 or 5 px.

Why these numbers: the padded 448 px square reaches the tower at 112 px (a factor 4), where a
4 or 5 px period is above the Nyquist limit and the pattern averages out (`detail_contrast`
measures it: ~0-3 of 255), while the shape, 16-20 px, stays legible; an ROI of 3 cells of the
8 x 8 grid (168 px) reaches the tower at a factor 1.5 and keeps the pattern (contrast ~60).

Questions follow V*Bench's two categories, one per image:
- direct_attributes: "What is the pattern of the {shape}?" with the four patterns as options;
- relative_position: "Is the {shape A} on the left or right side of the {shape B}?" with
  options left/right (the two centres are at least MIN_SEPARATION px apart horizontally).
Options come in a fixed order (PATTERNS; left, right); the answer is uniform over them, so
chance stays 25% / 50%. Shuffled options made the task a pointer problem (find the option that
names what you see, answer its letter) that the 4-layer language model did not learn in the
minutes of training it gets: 24% from the GT crop after 550 steps. Rows carry V*Bench's columns (image, text, label, category,
question_id) and the official V* annotation of the ground truth: `bbox`, one [x, y, w, h] box
in original pixels per target, and `target_object`, the target names in the same order.

Everything is a function of the seed (numpy's PCG64 and Pillow only), so the same seed gives
the same bytes on every machine.

    python -m focus_eval.proving_ground.scenes OUT_DIR [--questions N] [--seed S]
"""

from __future__ import annotations

import argparse
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

SCENE_SIZE = (448, 336)  # width, height
SHAPES = ("circle", "square", "triangle", "cross")
# Each shape has its colour family, as traffic signs do: the tiny tower, trained from scratch in
# minutes, tells the objects apart at full scale by colour as much as by outline. Distractors
# take other hues.
SHAPE_HUES = {"circle": (215, 45, 45), "square": (45, 85, 225), "triangle": (40, 165, 55), "cross": (230, 195, 25)}
DISTRACTOR_HUES = ((150, 60, 185), (135, 135, 135), (140, 85, 40))
PATTERNS = ("horizontal stripes", "vertical stripes", "dots", "checkerboard")
OBJECT_SIDE = (64, 80)  # px, bounding-box side of a named object
PERIODS = (4, 5)  # px; integer periods: a fractional one beats with the pixel grid into a coarser pattern
MIN_SEPARATION = 40  # px between the centres of a relative-position pair, horizontally
MIN_GAP = 12  # px between the boxes of any two objects or distractors
# Label values of `Scene.shape_map`: 0 background, 1 + SHAPES index, DISTRACTOR.
DISTRACTOR = len(SHAPES) + 1
CATEGORIES = ("direct_attributes", "relative_position")
# Share of direct_attributes questions: V*Bench's 115 of 191.
ATTRIBUTE_SHARE = 115 / 191


@dataclass(frozen=True)
class Thing:
    kind: str  # a SHAPES name, or "distractor"
    pattern: str  # a PATTERNS name
    box: tuple[int, int, int, int]  # tight (x0, y0, x1, y1), end-exclusive

    @property
    def center(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2

    @property
    def xywh(self) -> list[float]:
        """The box as V*'s annotation writes it: [x, y, w, h]."""
        x0, y0, x1, y1 = self.box
        return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # [H, W, 3] uint8
    objects: tuple[Thing, ...]  # named shapes, all different
    distractors: tuple[Thing, ...]
    shape_map: np.ndarray  # [H, W] int8: 0 background, 1 + SHAPES index, DISTRACTOR
    pattern_map: np.ndarray  # [H, W] int8: 0 none, 1 + PATTERNS index
    object_map: np.ndarray  # [H, W] int8: index into objects, -1 elsewhere

    def pil(self) -> Image.Image:
        return Image.fromarray(self.image, "RGB")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)"""
        return self.image.shape[1], self.image.shape[0]

    def visible_fraction(self, index: int, box: tuple[int, int, int, int]) -> float:
        """Share of object `index`'s pixels inside `box` (x0, y0, x1, y1)."""
        x0, y0, x1, y1 = box
        mask = self.object_map == index
        return float(mask[max(y0, 0):y1, max(x0, 0):x1].sum() / mask.sum())


# ---- rendering ---------------------------------------------------------------------------


def pattern_mask(pattern: str, xx: np.ndarray, yy: np.ndarray, period: float, phase: tuple[float, float]) -> np.ndarray:
    """bool mask of the pattern's first colour at pixel coordinates xx, yy."""
    u, v = (xx + phase[0]) / period, (yy + phase[1]) / period
    if pattern == "horizontal stripes":
        return np.floor(2 * v) % 2 == 0
    if pattern == "vertical stripes":
        return np.floor(2 * u) % 2 == 0
    if pattern == "checkerboard":
        return (np.floor(2 * u) + np.floor(2 * v)) % 2 == 0
    if pattern == "dots":
        return (u - np.round(u)) ** 2 + (v - np.round(v)) ** 2 < 0.3**2
    raise ValueError(f"unknown pattern {pattern!r}")


def shape_mask(kind: str, width: int, height: int) -> np.ndarray:
    """bool [height, width] mask of a shape filling its box; a distractor is an ellipse."""
    yy, xx = np.mgrid[0:height, 0:width]
    u, v = (xx + 0.5) / width, (yy + 0.5) / height  # (0, 1) inside the box
    if kind in ("circle", "distractor"):
        return (u - 0.5) ** 2 + (v - 0.5) ** 2 < 0.25
    if kind == "square":
        return np.ones((height, width), dtype=bool)
    if kind == "triangle":  # apex up
        return np.abs(u - 0.5) < v / 2
    if kind == "cross":
        arm = 0.18
        return (np.abs(u - 0.5) < arm) | (np.abs(v - 0.5) < arm)
    raise ValueError(f"unknown shape {kind!r}")


def pattern_colours(rng: np.random.Generator, hue: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """A light and a dark shade of `hue` (jittered): far apart, so the pattern is readable when
    zoomed, and averaging to a colour of the same family, so the object stays recognisable
    when the pattern averages out."""
    base = np.clip(np.asarray(hue, np.float32) + rng.uniform(-15, 15, size=3), 0, 255)
    return base + (255 - base) * 0.5, base * 0.45


def _place(rng: np.random.Generator, width: int, height: int, taken: list[tuple[int, int, int, int]],
           gap: int, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    scene_w, scene_h = size
    for _ in range(200):
        x0, y0 = int(rng.integers(2, scene_w - width - 2)), int(rng.integers(2, scene_h - height - 2))
        box = (x0, y0, x0 + width, y0 + height)
        if all(box[0] >= t[2] + gap or t[0] >= box[2] + gap or box[1] >= t[3] + gap or t[1] >= box[3] + gap
               for t in taken):
            return box
    return None


def make_scene(rng: np.random.Generator, size: tuple[int, int] = SCENE_SIZE) -> Scene:
    """A scene of `size` (width, height); objects, patterns and gaps keep their pixel sizes."""
    width, height = size
    grey = rng.uniform(95, 165, size=(4, 5, 1))
    coarse = np.clip(grey + rng.uniform(-18, 18, size=(4, 5, 3)), 0, 255).astype(np.uint8)  # greyish, tinted
    image = np.asarray(Image.fromarray(coarse, "RGB").resize((width, height), Image.Resampling.BILINEAR), np.float32)
    image += rng.uniform(-10, 10, size=image.shape).astype(np.float32)  # grain, std ~6
    shape_map = np.zeros((height, width), np.int8)
    pattern_map = np.zeros((height, width), np.int8)
    object_map = np.full((height, width), -1, np.int8)
    taken: list[tuple[int, int, int, int]] = []

    def paint(kind: str, box: tuple[int, int, int, int], mask: np.ndarray, pattern: str | None) -> None:
        x0, y0, x1, y1 = box
        region = image[y0:y1, x0:x1]
        if pattern is None:  # clutter: one plain colour
            region[mask] = rng.uniform(0, 255, size=3)
            return
        hue = SHAPE_HUES[kind] if kind in SHAPE_HUES else DISTRACTOR_HUES[int(rng.integers(len(DISTRACTOR_HUES)))]
        first, second = pattern_colours(rng, hue)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        phase = tuple(rng.uniform(0, 10, size=2))
        on = pattern_mask(pattern, xx, yy, float(rng.choice(PERIODS)), phase)
        region[mask & on], region[mask & ~on] = first, second
        shape_map[y0:y1, x0:x1][mask] = DISTRACTOR if kind == "distractor" else 1 + SHAPES.index(kind)
        pattern_map[y0:y1, x0:x1][mask] = 1 + PATTERNS.index(pattern)

    objects = []
    for kind in rng.permutation(SHAPES)[: int(rng.integers(2, 4))]:
        side = int(rng.integers(OBJECT_SIDE[0], OBJECT_SIDE[1] + 1))
        box = _place(rng, side, side, taken, MIN_GAP, size)
        if box is None:
            continue
        taken.append(box)
        pattern = PATTERNS[int(rng.integers(len(PATTERNS)))]
        paint(str(kind), box, shape_mask(str(kind), side, side), pattern)
        object_map[box[1]:box[3], box[0]:box[2]][shape_mask(str(kind), side, side)] = len(objects)
        objects.append(Thing(str(kind), pattern, box))
    distractors = []
    for _ in range(int(rng.integers(1, 4))):
        long_side, short_side = int(rng.integers(64, 97)), int(rng.integers(20, 29))
        w, h = (long_side, short_side) if rng.random() < 0.5 else (short_side, long_side)
        box = _place(rng, w, h, taken, MIN_GAP, size)
        if box is None:
            continue
        taken.append(box)
        pattern = PATTERNS[int(rng.integers(len(PATTERNS)))]
        paint("distractor", box, shape_mask("distractor", w, h), pattern)
        distractors.append(Thing("distractor", pattern, box))
    for _ in range(int(rng.integers(3, 7))):  # clutter: small plain blobs
        side = int(rng.integers(8, 20))
        box = _place(rng, side, side, taken, 4, size)
        if box is not None:
            kind = "square" if rng.random() < 0.5 else "circle"
            paint(kind, box, shape_mask(kind, side, side), None)
    return Scene(np.clip(image + 0.5, 0, 255).astype(np.uint8), tuple(objects), tuple(distractors),
                 shape_map, pattern_map, object_map)


def detail_contrast(scene: Scene, index: int, view: tuple[int, int, int, int], side: int = 112) -> float:
    """Std (0-255, mean over the colour channels) inside object `index` after `view` (a box in the scene)
    is padded to a square and resized to side x side as the LLaVA image processor does: how
    much of the pattern the tower can see. Measured on the object's interior (eroded by 1/4)."""
    x0, y0, x1, y1 = scene.objects[index].box
    inner = (x0 + (x1 - x0) // 4, y0 + (y1 - y0) // 4, x1 - (x1 - x0) // 4, y1 - (y1 - y0) // 4)
    resized = np.asarray(to_square(scene.pil().crop(view)).resize((side, side), Image.Resampling.BICUBIC),
                         np.float32)
    vx0, vy0, vx1, vy1 = view
    span = max(vx1 - vx0, vy1 - vy0)
    scale = side / span
    left, top = (span - (vx1 - vx0)) // 2, (span - (vy1 - vy0)) // 2
    # interior box in resized pixels, shrunk by 2 px so the bicubic edge ringing stays out
    a0 = int(np.ceil((inner[0] - vx0 + left) * scale)) + 2
    b0 = int(np.ceil((inner[1] - vy0 + top) * scale)) + 2
    a1 = int(np.floor((inner[2] - vx0 + left) * scale)) - 2
    b1 = int(np.floor((inner[3] - vy0 + top) * scale)) - 2
    patch = resized[b0:b1, a0:a1]
    mask = np.asarray(Image.fromarray(scene.object_map == index).crop(view))
    return float(patch.reshape(-1, 3).std(0).mean()) if patch.size and mask.any() else 0.0


def to_square(image: Image.Image, fill: tuple[int, int, int] = (122, 116, 104)) -> Image.Image:
    """`image` centred on a square of its longer side (the LLaVA processor's do_pad; its fill
    is the CLIP mean colour, 255 * (0.481, 0.458, 0.408))."""
    width, height = image.size
    side = max(width, height)
    if width == height:
        return image
    canvas = Image.new("RGB", (side, side), fill)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


# ---- V*Bench rows --------------------------------------------------------------------------


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _letter(index: int) -> str:
    return chr(ord("A") + index)


def question_for(scene: Scene, category: str, rng: np.random.Generator, *, target: int | None = None,
                 pair: tuple[int, int] | None = None) -> dict[str, Any] | None:
    """One V*Bench row (without image and question_id) about `scene`: about object `target`
    (direct_attributes) or the objects `pair` (relative_position), drawn when not given; None
    when the scene has no pair of objects far enough apart for a relative-position question."""
    if category == "direct_attributes":
        target = scene.objects[int(rng.integers(len(scene.objects))) if target is None else target]
        options = list(PATTERNS)
        text = f"What is the pattern of the {target.kind}?"
        label, targets = options.index(target.pattern), [target]
    else:
        pairs = [(a, b) for a in scene.objects for b in scene.objects
                 if a is not b and abs(a.center[0] - b.center[0]) >= MIN_SEPARATION]
        if pair is not None:
            pairs = [(scene.objects[pair[0]], scene.objects[pair[1]])]
        if not pairs:
            return None
        first, second = pairs[int(rng.integers(len(pairs)))]
        options = ["left", "right"]
        text = f"Is the {first.kind} on the left or right side of the {second.kind}?"
        label = options.index("left" if first.center[0] < second.center[0] else "right")
        targets = [first, second]
    text += "".join(f"\n({_letter(i)}) {option}" for i, option in enumerate(options))
    return {"text": text, "label": _letter(label), "category": category,
            "bbox": [t.xywh for t in targets], "target_object": [t.kind for t in targets]}


def build_questions(n: int, seed: int, size: tuple[int, int] = SCENE_SIZE) -> list[tuple[Scene, dict[str, Any]]]:
    """`n` (scene, V*Bench row) pairs, one scene of `size` each; the first round(n * ATTRIBUTE_SHARE)
    ask attributes."""
    rng = np.random.default_rng([seed, 13])
    n_attributes = round(n * ATTRIBUTE_SHARE)
    pairs: list[tuple[Scene, dict[str, Any]]] = []
    while len(pairs) < n:
        scene = make_scene(rng, size)
        category = CATEGORIES[0] if len(pairs) < n_attributes else CATEGORIES[1]
        row = question_for(scene, category, rng)
        if row is not None:
            pairs.append((scene, {"image": {"bytes": png_bytes(scene.pil()), "path": None}, "text": row["text"],
                                  "label": row["label"], "category": row["category"], "question_id": len(pairs),
                                  "bbox": row["bbox"], "target_object": row["target_object"]}))
    return pairs


def build_rows(n: int, seed: int, size: tuple[int, int] = SCENE_SIZE) -> list[dict[str, Any]]:
    """The rows of `build_questions`."""
    return [row for _, row in build_questions(n, seed, size)]


def write_rows(out_dir: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    """`out_dir/vstar.parquet` holding `rows` (read by `--model_args data_vstar=PATH`)."""
    import datasets

    from focus_eval.tasks.tiny_data import features

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "vstar.parquet"
    datasets.Dataset.from_list(list(rows), features=features("vstar")).to_parquet(str(path))
    return path


def write_dataset(out_dir: str | Path, n: int, seed: int) -> Path:
    """`out_dir/vstar.parquet` with `n` questions."""
    return write_rows(out_dir, build_rows(n, seed))


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a count of questions)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> None:
    from focus_eval.outputs import OutputLocationError, check_writable_dir

    parser = argparse.ArgumentParser(description="Write the proving ground's V*Bench-like questions.")
    parser.add_argument("out_dir")
    parser.add_argument("--questions", type=positive_int, default=600)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        check_writable_dir(args.out_dir)
    except OutputLocationError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    print(write_dataset(args.out_dir, args.questions, args.seed))


if __name__ == "__main__":
    main()
