"""Train the proving ground's tiny LLaVA-OneVision on CPU: train.py's stages through anyres.

    python -m focus_eval.proving_ground.onevision OUT_DIR [--control DIR] [--seed 0] [--scenes 1600]

The model is a real `LlavaOnevisionForConditionalGeneration` with the real processor
(model_wrappers/tiny.py: anyres pinpoints [[56 i, 56 j]] for i, j in 1..6, `anyres_max_9`, the
OneVision chat template) and train.py's dimensions: a SigLIP tower on 56 px crops (4 x 4 patches
of 14 px, a seventh of OneVision's 384 px and its 27 x 27), the two-layer projector, a Qwen2
language model with tied embeddings.

Scenes (`scenes.make_scene` at SCENE_SIZE, 1344 x 1008, three times LLaVA-1.5's 448 x 336 on each
side, objects and patterns as there): the largest pinpoint is 336 px, so a full scene reaches the
tower at 0.25, as LLaVA-1.5's does (its 4-5 px patterns average out: `detail_contrast` <= 3; at
896 x 672, 0.375, their aliases stayed, up to 31), on 30 crops whose 24 x 18 tokens anyres_max_9
shrinks to 13 x 10 (+ 16 base tokens + 10 newlines: 156). A FOCUS ROI of 3 cells of that grid
(310 px) goes through anyres at 1.08 (contrast >= 50). CELL is that grid's cell.

Every tower input is a 56 px crop the processor cuts (the base view squashed to 56 x 56, then the
canvas crops); `tower_inputs` cuts them as LlavaOnevisionImageProcessorPil does (equal bytes,
tests/test_proving_ground_onevision.py) and `label_inputs` cuts the label maps the same way
(nearest).
  A. The tower, as train.py's stage A, on those crops (per-patch shape, pattern, column heads).
  B0. The projector alone on the patch-word loss, per crop.
  B. Projector + language model on the image tokens as `pack_image_features` (the model's own
     code: unpadding, the shrink, newlines) hands them to the language model, for every view;
     train.py's phases and turns without ZoomEye's questions (LLaVA-1.5's local-view prompts,
     not what ZoomEye asks OneVision) and, in the VQA phase, FOCUS's final input for OneVision:
     the full scene with the ROI outlined, then the ROI's crop, each encoded alone (anyres),
     each followed by compose.py's interleaved text (FINAL_BATCH per step, attribute questions).
So FOCUS's prompts (the existence check, its final input) and vanilla's are trained; ZoomEye's
and ViCrop's are not, and the OneVision rows do not compare with them (NOTES.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from focus_eval.compose import interleaved_texts, outline_boxes
from focus_eval.model_wrappers.llava_onevision import LlavaOnevisionAdapter, anyres_layout
from focus_eval.model_wrappers.tiny import tiny_parts, with_dimensions
from focus_eval.proving_ground import train as base
from focus_eval.proving_ground.scenes import SHAPES, Scene, make_scene

FAMILY = "llava_onevision"
TOWER_SIDE = 56
PATCH = base.PATCH
SCENE_SIZE = (1344, 1008)
CELL = SCENE_SIZE[0] / 13  # px per cell of a full scene's relevance grid (13 x 10 after the shrink)
TASKS = ("naming", "existence", "attribute", "relative")  # train.TASKS less ZoomEye's
FINAL_BATCH, FINAL_WEIGHT = 8, 0.5
PHASES = (base.Phase("naming", ("naming",), 80),
          base.Phase("existence", ("naming", "existence"), 400),
          base.Phase("vqa", TASKS, 550))


def corpus() -> list[str]:
    """train.corpus() and OneVision's own text: its chat roles and the final input's image texts."""
    lines = base.corpus() + ["user assistant"]
    for shape in SHAPES:
        lines += interleaved_texts([[f"the {shape}"]])
    return lines


def build_model(seed: int):
    """(untrained LlavaOnevisionForConditionalGeneration, processor); the same seed gives the same weights."""
    model_class, config, processor = tiny_parts(FAMILY, image_size=TOWER_SIDE,
                                                vision_layers=base.VISION["num_hidden_layers"], corpus=corpus())
    config = with_dimensions(config, text=base.TEXT, vision=dict(base.VISION, image_size=TOWER_SIDE))
    return base.instantiate(model_class, config, processor, seed)


def layout(size: tuple[int, int]):
    """The anyres layout of a (width, height) image alone in its prompt, at the tiny geometry."""
    pinpoints = [[TOWER_SIDE * i, TOWER_SIDE * j] for i in range(1, 7) for j in range(1, 7)]
    return anyres_layout(size, pinpoints, TOWER_SIDE, PATCH, 9)


def _cut(image: Image.Image, resample: int, fill: int | tuple[int, ...]) -> list[Image.Image]:
    """The processor's tower inputs of `image`: the base view squashed to TOWER_SIDE, then the
    canvas (the image resized keeping its aspect, pasted on `fill`) cut row-major."""
    plan = layout(image.size)
    (canvas_h, canvas_w), (new_h, new_w), (top, left) = plan.canvas, plan.resized, plan.offset
    canvas = Image.new(image.mode, (canvas_w, canvas_h), fill)
    canvas.paste(image.resize((new_w, new_h), resample), (left, top))
    side = TOWER_SIDE
    crops = [canvas.crop((c * side, r * side, (c + 1) * side, (r + 1) * side))
             for r in range(canvas_h // side) for c in range(canvas_w // side)]
    return [image.resize((side, side), resample)] + crops


def tower_inputs(image: Image.Image) -> np.ndarray:
    """[1 + crops, 56, 56, 3] uint8: what the image processor feeds the tower (bicubic, black canvas)."""
    return np.stack([np.asarray(c) for c in _cut(image.convert("RGB"), Image.Resampling.BICUBIC, (0, 0, 0))])


def tile_scales(size: tuple[int, int]) -> list[float]:
    """Tower px per image px of each tower input of a (width, height) image (the base view: its
    more shrunk axis)."""
    plan = layout(size)
    crops = plan.crops[0] * plan.crops[1]
    return [min(TOWER_SIDE / size[0], TOWER_SIDE / size[1])] + [plan.resized[1] / size[0]] * crops


def legible(box: base.Box) -> bool:
    """The view's canvas crops show the pattern (tower px per scene px >= LEGIBLE_SCALE)."""
    return tile_scales((box[2] - box[0], box[3] - box[1]))[-1] >= base.LEGIBLE_SCALE


def detail_contrast(scene: Scene, index: int, view: base.Box) -> float:
    """Std (0-255, mean over the colour channels) inside object `index` (its box's central half)
    once `view` is resized as anyres resizes it onto its canvas: how much of the pattern the
    canvas crops show (the base view shows less)."""
    x0, y0, x1, y1 = scene.objects[index].box
    inner = (x0 + (x1 - x0) // 4, y0 + (y1 - y0) // 4, x1 - (x1 - x0) // 4, y1 - (y1 - y0) // 4)
    width, height = view[2] - view[0], view[3] - view[1]
    resized_h, resized_w = layout((width, height)).resized
    scale = resized_w / width
    resized = np.asarray(scene.pil().crop(view).resize((resized_w, resized_h), Image.Resampling.BICUBIC), np.float32)
    # the interior in resized pixels, 2 px in from each side (bicubic ringing at the edges)
    a0, b0 = (int(np.ceil((inner[k] - view[k]) * scale)) + 2 for k in (0, 1))
    a1, b1 = (int(np.floor((inner[k] - view[k - 2]) * scale)) - 2 for k in (2, 3))
    patch = resized[b0:b1, a0:a1]
    return float(patch.reshape(-1, 3).std(0).mean()) if patch.size else 0.0


def label_inputs(scene: Scene, box: base.Box) -> tuple[np.ndarray, np.ndarray]:
    """Per-patch targets [1 + crops, 16] (shape, pattern) of a view's tower inputs
    (train.patch_classes on the label maps cut as the pixels are, nearest)."""
    size = (box[2] - box[0], box[3] - box[1])

    def cut(label_map: np.ndarray) -> list[np.ndarray]:
        crop = Image.fromarray(label_map.astype(np.uint8)).crop(box)
        return [np.asarray(c) for c in _cut(crop, Image.Resampling.NEAREST, 0)]

    shapes, patterns = [], []
    for shape_pixels, pattern_pixels, scale in zip(cut(scene.shape_map), cut(scene.pattern_map), tile_scales(size)):
        shape, pattern = base.patch_classes(shape_pixels, pattern_pixels, scale >= base.LEGIBLE_SCALE)
        shapes.append(shape)
        patterns.append(pattern)
    return np.stack(shapes), np.stack(patterns)


# ---- data -----------------------------------------------------------------------------------


@dataclass
class TileViews:
    """Views as their tower inputs; view v owns tiles [start[v], start[v] + count[v])."""

    images: np.ndarray  # [tiles, 56, 56, 3] uint8 (train_tower's ViewSet.images)
    shape: np.ndarray  # [tiles, 16]
    pattern: np.ndarray  # [tiles, 16]
    kinds: list[str]  # per tile: its view's kind (train_tower's dev accuracy by kind)
    start: list[int]
    count: list[int]
    sizes: list[tuple[int, int]]  # (width, height) per view
    turns: list[list[base.Turn]]
    finals: list["Final"]
    scenes: list[Scene]  # kept for the held-out views only


@dataclass(frozen=True)
class Final:
    """FOCUS's final input for OneVision about crop view `view`: the outlined full scene (view
    `full`, a view of kind "final"), then the crop; `turns` its attribute questions."""

    full: int
    view: int
    texts: tuple[str, ...]
    turns: tuple[base.Turn, ...]


def _target(question: str) -> str:
    return next(shape for shape in SHAPES if f"the {shape}?" in question)


def build_views(n_scenes: int, seed: int, keep_scenes: bool = False) -> TileViews:
    rng = np.random.default_rng([seed, 7])
    data = TileViews([], [], [], [], [], [], [], [], [], [])

    def add(scene: Scene, kind: str, box: base.Box, image: Image.Image, turns: list[base.Turn]) -> int:
        tiles = tower_inputs(image)
        shape, pattern = label_inputs(scene, box)
        data.start.append(len(data.kinds))
        data.count.append(len(tiles))
        data.images.extend(tiles)
        data.shape.extend(shape)
        data.pattern.extend(pattern)
        data.kinds.extend([kind] * len(tiles))
        data.sizes.append(image.size)
        data.turns.append(turns)
        return len(data.sizes) - 1

    for _ in range(n_scenes):
        scene = make_scene(rng, SCENE_SIZE)
        if keep_scenes:
            data.scenes.append(scene)
        picture = scene.pil()
        finals = []
        for kind, box in base.sample_views(scene, rng, CELL):
            turns = [t for t in base.conversation(scene, kind, box, rng, legible) if t[0] in TASKS]
            view = add(scene, kind, box, picture.crop(box), turns)
            attributes = tuple(t for t in turns if t[0] == "attribute")
            if kind != "full" and attributes:
                finals.append((view, box, attributes))
        if finals:  # one final input per scene (the outlined scene's 31 tiles are costly)
            view, box, attributes = finals[int(rng.integers(len(finals)))]
            full_box = (0, 0, *SCENE_SIZE)
            full = add(scene, "final", full_box, outline_boxes(picture, [box]), [])
            texts = tuple(interleaved_texts([[f"the {_target(attributes[0][1])}"]]))
            data.finals.append(Final(full, view, texts, attributes[:1]))
    data.images, data.shape, data.pattern = np.stack(data.images), np.stack(data.shape), np.stack(data.pattern)
    return data


# ---- sequences -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Images:
    """The images of a prompt: their (width, height) sizes and, for FOCUS's final input, the text
    after each (compose.py's interleaved texts; None: the images alone)."""

    sizes: tuple[tuple[int, int], ...]
    texts: tuple[str, ...] | None = None


class AnyresConversations(base.Conversations):
    """train.Conversations through the adapter's chat text: no BOS, the answer right after the
    generation prompt's newline, every image token expanded to its image's anyres token count."""

    answer_separator = ""

    def __init__(self, adapter: LlavaOnevisionAdapter):
        super().__init__(adapter.processor)
        self.adapter = adapter

    def prompt_ids(self, question: str, images: Images) -> list[int]:
        texts = list(images.texts) if images.texts else None
        text = self.adapter.chat_text(question, len(images.sizes), texts)
        counts = iter(layout(size).num_tokens for size in images.sizes)
        ids = []
        for token in self._tokens(text):
            ids += [token] * (next(counts) if token == self.image_token else 1)
        return ids


def image_tokens(model, features: Sequence[torch.Tensor], sizes: Sequence[tuple[int, int]]) -> torch.Tensor:
    """[tokens, hidden]: the image tokens of images alone in their prompts, in order, from their
    tower features ([1 + crops, 16, vision hidden] each) through the projector and the model's
    pack_image_features."""
    inner = model.model
    projected = [inner.multi_modal_projector(f) for f in features]
    packed, _ = inner.pack_image_features(projected, torch.tensor([[h, w] for w, h in sizes]),
                                          image_newline=inner.image_newline,
                                          vision_aspect_ratio=model.config.vision_aspect_ratio)
    return torch.cat(packed)


def view_features(features: torch.Tensor, views: TileViews, index: Sequence[int]) -> list[torch.Tensor]:
    return [features[views.start[v]:views.start[v] + views.count[v]] for v in index]


# ---- stage B ---------------------------------------------------------------------------------


def train_language(model, adapter, features: torch.Tensor, views: TileViews, patch_words: torch.Tensor,
                   phases: Sequence[base.Phase], *, batch: int, seed: int, gate: Callable[[str], dict[str, Any]],
                   log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Stage B (module docstring), as train.train_language; returns the phases' logs."""
    for parameter in model.model.vision_tower.parameters():
        parameter.requires_grad_(False)
    trained = list(model.model.multi_modal_projector.parameters()) + list(model.model.language_model.parameters())
    trained.append(model.model.image_newline)
    optimizer = torch.optim.AdamW(trained, lr=base.LANGUAGE_LR, weight_decay=0.01)
    conversations = AnyresConversations(adapter)
    pad_id = adapter.tokenizer.pad_token_id
    rng = np.random.default_rng([seed, 13])
    total, done, logs = sum(phase.steps for phase in phases), 0, []
    for phase in phases:
        kept = [[turn for turn in view if turn[0] in phase.tasks] for view in views.turns]
        usable = [i for i, view in enumerate(kept) if view]
        for step in range(phase.steps):
            for group in optimizer.param_groups:
                group["lr"] = base.schedule(done, total, base.LANGUAGE_LR)
            index = rng.choice(usable, size=batch, replace=False)
            tensors = base.batch_tensors([conversations.encode(kept[i], Images((views.sizes[i],))) for i in index], pad_id)
            image = image_tokens(model, view_features(features, views, index), [views.sizes[i] for i in index])
            logits = base.logits_with_image_tokens(model, image, tensors["ids"], tensors["mask"], tensors["positions"])
            loss = base.balanced_loss(logits, tensors["labels"], tensors["task"])
            tiles = torch.cat([torch.arange(views.start[i], views.start[i] + views.count[i]) for i in index])
            loss = loss + base.PATCH_WORD_WEIGHT * base.patch_word_loss(model, features[tiles], patch_words[tiles])
            if "attribute" in phase.tasks and views.finals:
                finals = [views.finals[i] for i in rng.choice(len(views.finals), size=min(FINAL_BATCH, len(views.finals)),
                                                              replace=False)]
                pairs = [(views.sizes[f.full], views.sizes[f.view]) for f in finals]
                two = base.batch_tensors([conversations.encode(f.turns, Images(sizes, f.texts))
                                          for f, sizes in zip(finals, pairs)], pad_id)
                order = [v for f in finals for v in (f.full, f.view)]
                image = image_tokens(model, view_features(features, views, order), [views.sizes[v] for v in order])
                logits = base.logits_with_image_tokens(model, image, two["ids"], two["mask"], two["positions"])
                loss = loss + FINAL_WEIGHT * base.balanced_loss(logits, two["labels"], two["task"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if (step + 1) % base.CHECK_EVERY == 0:
                log(f"stage B {phase.name} step {step + 1}: loss {loss.item():.3f}")
        results = gate(phase.name)
        log(f"stage B {phase.name} done: " + ", ".join(f"{k} {v:.3f}" for k, v in results.items()))
        logs.append({"phase": phase.name, "steps": phase.steps, "loss": loss.item(), **results})
    return logs


def probe_logits(model, adapter, scenes: Sequence[Scene], probes: Sequence[base.Probe], processor) -> torch.Tensor:
    """Next-token logits [n, vocab] of the probes through the training forward."""
    conversations = AnyresConversations(adapter)
    rows = []
    with torch.no_grad():
        for start in range(0, len(probes), 32):
            batch = probes[start:start + 32]
            crops = [scenes[p.scene].pil().crop(p.box) for p in batch]
            features = [base.tower_features(model, tower_inputs(c), processor) for c in crops]
            prompts = [conversations.prompt_ids(p.prompt, Images((c.size,))) for p, c in zip(batch, crops)]
            tensors = base.prompt_batch(prompts, adapter.tokenizer.pad_token_id)
            image = image_tokens(model, features, [c.size for c in crops])
            logits = base.logits_with_image_tokens(model, image, tensors["ids"], tensors["mask"], tensors["positions"])
            rows.append(logits[torch.arange(len(batch)), tensors["last"]])
    return torch.cat(rows)


# ---- main ------------------------------------------------------------------------------------


def train(out: Path, *, seed: int = 0, scenes: int = 1600, dev_scenes: int = 120, tower_steps: int = 1500,
          align_steps: int = base.ALIGN_STEPS, phases: Sequence[base.Phase] = PHASES, batch: int = 32,
          threads: int = 1, control: Path | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train and save the checkpoint to `out` (the untrained-LM control to `control`); returns the
    report, also written to `out/training.json`."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    lap = base.Laps(log)
    model, processor = build_model(seed)
    train_views = build_views(scenes, seed)
    dev_views = build_views(dev_scenes, seed + 1, keep_scenes=True)
    log(f"{len(train_views.sizes)} training views ({len(train_views.kinds)} tower inputs) of {scenes} scenes, "
        f"{len(dev_views.sizes)} held-out views")
    lap("data")
    tower = base.train_tower(model, processor, train_views, dev_views, steps=tower_steps, batch=batch * 4, seed=seed,
                             log=log)
    lap("stage A")
    if control is not None:
        model.save_pretrained(control)
        processor.save_pretrained(control)
    features = base.tower_features(model, train_views.images, processor, batch=512)
    adapter = LlavaOnevisionAdapter(model, processor)
    probes = base.build_probes(dev_views.scenes, seed + 1, CELL)

    def gate(phase: str) -> dict[str, float]:
        logits = probe_logits(model, adapter, dev_views.scenes, probes, processor)
        return base.probe_report(probes, logits, processor.tokenizer, separator="")

    patch_words = base.patch_word_targets(train_views.shape, train_views.pattern, processor.tokenizer)
    alignment = base.align_projector(model, features, patch_words, steps=align_steps, batch=batch * 4, seed=seed, log=log)
    language = train_language(model, adapter, features, train_views, patch_words, phases, batch=batch, seed=seed,
                              gate=gate, log=log)
    lap("stage B")
    model.save_pretrained(out)
    processor.save_pretrained(out)
    report = {"family": FAMILY, "seed": seed, "threads": threads, "scenes": scenes, "views": len(train_views.sizes),
              "tower_inputs": len(train_views.kinds), "stage_a": tower, "stage_b0": alignment, "stage_b": language,
              "times": lap.times, "total": lap.total()}
    (Path(out) / "training.json").write_text(json.dumps(report, indent=1))
    return report


def main(argv: list[str] | None = None) -> None:
    base.training_cli(argv, __doc__, train, scenes=1600)


if __name__ == "__main__":
    main()
