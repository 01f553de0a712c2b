"""Tiny offline copies of the four benchmarks, in the real datasets' column schemas.

Each image is a synthetic high-resolution scene (default: the average sizes of the paper's
Table 8, `scale` shrinks them): a smooth textured background, grey distractor blocks and a
few small coloured shapes (side 1.5 % of the shorter image side) that the questions ask
about (colour, left/right position, a number written small), so a visual search has
something small to find. Rows follow `focus_eval.tasks.schemas`: V*Bench's `image` is a
Hugging Face Image and its rows carry the official V* annotation fields `bbox` ([x, y, w, h]
of each object the question is about) and `target_object` (their names), so that the ROI
recall metric runs end to end, HRBench's `image` and MME-RealWorld's `bytes` are base64 JPEG strings,
HRBench repeats each question in its 4 option permutations (`cycle_category` cycle_0..3),
MME-RealWorld-Lite has one question per Perception/Reasoning domain of Table 9.

`bad_rows=True` appends two defective rows to each dataset, as tests need them: one with an
image that cannot be decoded (bytes that are no image, or a string that is no base64) and
one with a missing option.

    python -m focus_eval.tasks.tiny_data OUT_DIR [--format parquet|tsv|saved] [--scale S] [--bad-rows]
"""

from __future__ import annotations

import argparse
import base64
import io
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from focus_eval.config import DATASETS
from focus_eval.tasks.schemas import SCHEMAS

# The hub split each benchmark's task reads (the YAMLs' test_split).
SPLITS = {"vstar": "test", "hrbench4k": "hrbench_4k", "hrbench8k": "hrbench_8k", "mme_realworld_lite": "train"}
# Average image sizes (width, height) of the paper's Table 8.
SIZES = {"vstar": (2246, 1582), "hrbench4k": (4024, 3503), "hrbench8k": (7431, 5358),
         "mme_realworld_lite": (2836, 1566)}
FORMATS = ("parquet", "tsv", "saved")

COLORS = {"red": (214, 39, 40), "blue": (31, 90, 220), "green": (44, 160, 44), "yellow": (240, 200, 20),
          "purple": (148, 60, 189), "orange": (255, 127, 14), "black": (20, 20, 20), "white": (250, 250, 250)}
SHAPES = ("circle", "square", "triangle")
OBJECT_FRACTION = 0.015  # object side / shorter image side
# Corrupt image fields are longer than 64 characters: VLMEvalKit reads a shorter image field as the
# index of another row whose image it shares.
NOT_AN_IMAGE = b"these bytes are not an image, nor is any part of them a picture of anything"
NOT_BASE64 = "!!! this string is not base64, so no image can be decoded from it at all !!!"

# (task, domain, l2-category) of the MME-RealWorld-Lite rows: every domain of Table 9.
_MME_ROWS = (
    ("Perception", "OCR with Complex Context", "text_recognition"),
    ("Perception", "Remote Sensing", "color"),
    ("Perception", "Diagram and Table", "diagram"),
    ("Perception", "Monitoring", "vehicle/color"),
    ("Perception", "Autonomous_Driving", "object/identify"),
    ("Reasoning", "OCR with Complex Context", "character_identification"),
    ("Reasoning", "Diagram and Table", "table"),
    ("Reasoning", "Monitoring", "property"),
    ("Reasoning", "Autonomous_Driving", "attention/traffic_signal"),
)


@dataclass(frozen=True)
class Thing:
    shape: str
    color: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1

    @property
    def name(self) -> str:
        return f"{self.color} {self.shape}"


@dataclass(frozen=True)
class Scene:
    image: Image.Image
    things: tuple[Thing, ...]  # left to right


def make_scene(rng: random.Random, size: tuple[int, int], n_things: int = 3, label: str | None = None) -> Scene:
    """Smooth background, grey blocks, `n_things` small shapes of distinct shape and colour
    in distinct vertical bands (so left/right is unambiguous), optional small text."""
    width, height = size
    noise = np.random.default_rng(rng.randrange(2**32)).uniform(90, 200, size=(6, 8, 3)).astype(np.uint8)
    image = Image.fromarray(noise, "RGB").resize((width, height), Image.BILINEAR)
    draw = ImageDraw.Draw(image)
    side = max(6, round(OBJECT_FRACTION * min(width, height)))
    for _ in range(8):
        x, y = rng.randrange(width), rng.randrange(height)
        grey = rng.randrange(60, 200)
        draw.rectangle((x, y, x + rng.randrange(side, 4 * side), y + rng.randrange(side, 4 * side)), fill=(grey,) * 3)
    shapes = rng.sample(SHAPES, k=n_things) if n_things <= len(SHAPES) else [rng.choice(SHAPES) for _ in range(n_things)]
    colors = rng.sample(sorted(COLORS), k=n_things)
    band = width // n_things
    things = []
    for i, (shape, color) in enumerate(zip(shapes, colors)):
        x0 = i * band + rng.randrange(side, max(side + 1, band - 2 * side))
        y0 = rng.randrange(side, max(side + 1, height - 2 * side))
        box = (x0, y0, x0 + side, y0 + side)
        _draw_shape(draw, shape, box, COLORS[color])
        things.append(Thing(shape, color, box))
    if label is not None:
        font = ImageFont.load_default(size=max(8, side))
        draw.text((width // 2, height // 2), label, fill=(0, 0, 0), font=font)
    return Scene(image, tuple(things))


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box, fill) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([((x0 + x1) // 2, y0), (x0, y1), (x1, y1)], fill=fill)


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _choices(rng: random.Random, correct: str, pool, n: int) -> tuple[list[str], int]:
    """`n` options containing `correct` in a random place; (options, index of correct)."""
    options = [correct] + rng.sample([p for p in pool if p != correct], k=n - 1)
    rng.shuffle(options)
    return options, options.index(correct)


def _letter(index: int) -> str:
    return chr(ord("A") + index)


# ---- rows per benchmark --------------------------------------------------------------------

def vstar_rows(rng: random.Random, size, bad_rows: bool) -> list[dict[str, Any]]:
    rows = []
    for qid in range(4):
        scene = make_scene(rng, size)
        if qid < 2:
            thing = rng.choice(scene.things)
            options, answer = _choices(rng, thing.color, COLORS, 4)
            question, category = f"What is the color of the {thing.shape}?", "direct_attributes"
            targets = [(thing, thing.shape)]
        else:
            first, second = rng.sample(scene.things, k=2)
            options = ["left", "right"]
            answer = 0 if first.box[0] < second.box[0] else 1
            question = f"Is the {first.name} on the left or right side of the {second.name}?"
            category = "relative_position"
            targets = [(first, first.name), (second, second.name)]
        text = question + "".join(f"\n({_letter(i)}) {o}" for i, o in enumerate(options))
        rows.append({"image": {"bytes": jpeg_bytes(scene.image), "path": None}, "text": text,
                     "label": _letter(answer), "category": category, "question_id": qid,
                     "bbox": [_xywh(thing.box) for thing, _ in targets],
                     "target_object": [name for _, name in targets]})
    if bad_rows:
        good = rows[0]
        rows.append({**good, "image": {"bytes": NOT_AN_IMAGE, "path": None}, "question_id": len(rows)})
        rows.append({**good, "text": "What is the color of the square?\n(A) red\n(B) ", "label": "B",
                     "question_id": len(rows)})
    return rows


def _xywh(box: tuple[int, int, int, int]) -> list[float]:
    x0, y0, x1, y1 = box
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def hrbench_rows(rng: random.Random, size, bad_rows: bool) -> list[dict[str, Any]]:
    rows = []
    for category in ("single", "cross"):
        scene = make_scene(rng, size)
        image = b64(jpeg_bytes(scene.image))
        if category == "single":
            thing = rng.choice(scene.things)
            options, answer = _choices(rng, thing.color, COLORS, 4)
            question = f"What is the color of the small {thing.shape} in the image?"
        else:
            first, second = rng.sample(scene.things, k=2)
            options = ["To the left", "To the right", "Directly above", "Directly below"]
            answer = 0 if first.box[0] < second.box[0] else 1
            question = f"Where is the {first.name} relative to the {second.name}?"
        for cycle in range(4):  # HRBench's option permutations: rotate the options
            rotated = options[cycle:] + options[:cycle]
            rows.append({"index": len(rows), "question": question, **{_letter(i): o for i, o in enumerate(rotated)},
                         "answer": _letter((answer - cycle) % 4), "category": category,
                         "cycle_category": f"cycle_{cycle}", "image": image})
    if bad_rows:
        good = rows[0]
        rows.append({**good, "index": len(rows), "image": NOT_BASE64})
        rows.append({**good, "index": len(rows), "D": None})
    return rows


def mme_rows(rng: random.Random, size, bad_rows: bool) -> list[dict[str, Any]]:
    rows = []
    for task, domain, l2 in _MME_ROWS:
        if domain == "OCR with Complex Context":
            number = str(rng.randrange(10, 100))
            scene = make_scene(rng, size, label=number)
            options, answer = _choices(rng, number, [str(n) for n in range(10, 100)], 5)
            question = "What number is written in the middle of the image?"
        else:
            scene = make_scene(rng, size)
            thing = rng.choice(scene.things)
            options, answer = _choices(rng, thing.color, COLORS, 5)
            question = f"What is the color of the {thing.shape}?"
        rows.append({"index": len(rows), "question": question,
                     "multi-choice options": [f"({_letter(i)}) {o}" for i, o in enumerate(options)],
                     "answer": _letter(answer), "category": f"{task}/{domain}", "l2-category": l2,
                     "bytes": b64(jpeg_bytes(scene.image))})
    if bad_rows:
        good = rows[1]
        rows.append({**good, "index": len(rows), "bytes": b64(NOT_AN_IMAGE)})
        skipped_c = [o for o in good["multi-choice options"] if not o.startswith("(C)")]
        rows.append({**good, "index": len(rows), "multi-choice options": skipped_c})
    return rows


_ROW_BUILDERS = {"vstar": vstar_rows, "hrbench4k": hrbench_rows, "hrbench8k": hrbench_rows,
                 "mme_realworld_lite": mme_rows}


def build_rows(key: str, *, scale: float = 1.0, bad_rows: bool = False, seed: int = 0) -> list[dict[str, Any]]:
    """Rows of benchmark `key` as dicts in the real column order; deterministic in `seed`."""
    if key not in _ROW_BUILDERS:
        raise ValueError(f"unknown benchmark {key!r}; known: {', '.join(DATASETS)}")
    if not 0 < scale <= 4:
        raise ValueError(f"scale must be in (0, 4], got {scale}")
    width, height = SIZES[key]
    size = (max(64, round(width * scale)), max(64, round(height * scale)))
    rows = _ROW_BUILDERS[key](random.Random(f"{key}:{seed}"), size, bad_rows)
    schema = SCHEMAS[key]
    return [{column: row[column] for column in (*schema.columns, *schema.optional_columns) if column in row}
            for row in rows]


def features(key: str):
    import datasets

    text, integer = datasets.Value("string"), datasets.Value("int64")
    if key == "vstar":
        return datasets.Features({"image": datasets.Image(), "text": text, "label": text, "category": text,
                                  "question_id": integer,
                                  "bbox": datasets.List(datasets.List(datasets.Value("float64"))),
                                  "target_object": datasets.List(text)})
    if key == "mme_realworld_lite":
        return datasets.Features({"index": integer, "question": text, "multi-choice options": datasets.List(text),
                                  "answer": text, "category": text, "l2-category": text, "bytes": text})
    return datasets.Features({column: integer if column == "index" else text for column in SCHEMAS[key].columns})


def write_tiny_dataset(key: str, out_dir: str | Path, *, fmt: str = "parquet", scale: float = 1.0,
                       bad_rows: bool = False, seed: int = 0) -> Path:
    """Write benchmark `key` under `out_dir`: `<key>.parquet`, `<key>.tsv` (HRBench only: the
    others have an image or list column) or a `save_to_disk` directory `<key>/`."""
    import datasets

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "tsv" and not key.startswith("hrbench"):
        raise ValueError(f"{key} has an image or list column that a tsv file cannot hold; use parquet or saved")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = build_rows(key, scale=scale, bad_rows=bad_rows, seed=seed)
    if fmt == "tsv":
        import pandas as pd

        path = out_dir / f"{key}.tsv"
        pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
        return path
    data = datasets.Dataset.from_list(rows, features=features(key))
    if fmt == "parquet":
        path = out_dir / f"{key}.parquet"
        data.to_parquet(str(path))
        return path
    path = out_dir / key
    datasets.DatasetDict({SPLITS[key]: data}).save_to_disk(str(path))
    return path


def write_tiny_datasets(out_dir: str | Path, *, fmt: str = "parquet", scale: float = 1.0, bad_rows: bool = False,
                        seed: int = 0, keys=DATASETS) -> dict[str, Path]:
    return {key: write_tiny_dataset(key, out_dir, fmt=fmt, scale=scale, bad_rows=bad_rows, seed=seed) for key in keys}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write tiny copies of V*Bench, HRBench-4K/8K, MME-RealWorld-Lite.")
    parser.add_argument("out_dir")
    parser.add_argument("--format", choices=FORMATS, default="parquet")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--bad-rows", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    keys = [k for k in DATASETS if args.format != "tsv" or k.startswith("hrbench")]
    for key, path in write_tiny_datasets(args.out_dir, fmt=args.format, scale=args.scale, bad_rows=args.bad_rows,
                                         seed=args.seed, keys=keys).items():
        print(f"{key}: {path}")


if __name__ == "__main__":
    main()
