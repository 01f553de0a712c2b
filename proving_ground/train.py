"""Train the proving ground's tiny LLaVA-1.5 on CPU, stage by stage, each stage gated.

    python -m focus_eval.proving_ground.train OUT_DIR [--control DIR] [--seed 0] [--scenes 2400]

The model is a real `LlavaForConditionalGeneration` (model_wrappers/tiny.py's tokenizer,
chat template and LLaVA processor, other dimensions): a CLIP tower on 112 px inputs with
14 px patches (an 8 x 8 grid, the LLaVA-1.5 geometry at a third of the resolution), a
two-layer MLP projector and a Llama language model with tied embeddings. Its image processor
is a LLaVA image processor with do_pad, so every image, full or crop, is padded to a square
with the mean colour before the resize (as the original LLaVA-1.5 evaluation does).

Training data: `scenes.make_scene` scenes seen through views (the full image, crops around
objects and distractors of 2-3.3 grid cells, random crops, crops around pairs of objects),
each view resized exactly as the processor does.

Stages (the model is trained as a VLM; no loss refers to value vectors, KV caches or
relevance maps):
  A. The vision tower with dense direct supervision: three linear heads read every patch
     feature the projector will see; one predicts the shape class of the object covering
     the patch (background, a SHAPES name, distractor), one its pattern (only where the view
     is zoomed enough for the pattern to exist), one the patch's grid column (so that the
     features keep where they are: left/right questions). Gate: per-patch shape accuracy >=
     SHAPE_GATE on object patches of held-out full views and crops (and pattern accuracy >=
     PATTERN_TARGET on crops), checked every CHECK_EVERY steps; the stage ends when it passes
     or after its step budget.
  B0. Feature alignment (LLaVA's stage 1, made dense): tower and language model frozen, the
     projector alone, ALIGN_STEPS steps on the patch-word loss: every projected image token of
     a named object, read by the (tied) output layer, predicts its shape word (" circle") and,
     where the view shows its pattern, its pattern word (" dots"), the two as equally likely
     targets. The image tokens then enter the language model as the words they show.
  B. Tower frozen (its features computed once), projector + language model on multi-turn
     conversations about a view, loss on the answers only, in three phases whose gates are
     checked on held-out views at their end:
       1. naming ("What shape is in the image?" on a crop of one object);
       2. + existence, FOCUS's own check prompt (also ZoomEye's existence question), with hard
          negatives: a crop of one object asked about the shape of another object of the same
          scene;
       3. + ZoomEye's latent question (its local-view prompt, as LLaVA-1.5 gets it): Yes for an
          object at least partly in the view, No for one elsewhere or not in the scene;
          + ZoomEye's answering question ("Could you answer the question ...?", the attribute
          question or its decomposed "What is the appearance of the {target}?"): Yes when the
          object is whole in the view and its pattern legible, else No (the full image, a
          crop without it); + the VQA in V*Bench's prompt format (the vstar task's
          doc_to_text): the pattern of a named object on crops where it is legible, left/right
          of two objects on any view that shows both, on one image and, for ViCrop's final
          input, on two (the full view, then the crop; TWO_IMAGE_BATCH per step).
     So every method compared on the proving ground meets prompts it was trained on: FOCUS's
     and ZoomEye's confidence questions and each method's final input. ViCrop's map prompts
     (the bare question or the generic description + "Answer the question using a single word
     or phrase.") are in the tokenizer's corpus but not supervised: ViCrop reads attention
     from them, never an answer.
     Tasks weigh TASK_WEIGHTS in the loss (balanced_loss); the patch-word loss of B0 stays on
     at PATCH_WORD_WEIGHT so that the projector keeps the alignment.
Why B0 (measured on the held-out gates, each a full training run): without any patch-word loss
the image tokens of a 4-layer model trained for minutes share no direction with the words and
FOCUS's V-V map on layer 0 found the named object in 3% of questions (uniform maps); with a
shape-word-only loss during stage B the map worked but the projector squeezed the pattern out
(pattern from the GT crop 41%); B0 with both words: GT crop 99%, existence AUC against another
object's crop 1.0, map argmax on the named object 68% (NOTES.md, "Proving ground").
The held-out gates (GT-crop accuracy, existence AUC vs another object's crop and vs a random
crop) are measured again on the saved checkpoint through the adapter by evaluate.py.

Determinism: every random draw comes from numpy generators seeded by --seed and from
torch.manual_seed(seed); torch runs with --threads threads. The same seed, thread count and
machine give the same weights: seed 0 on 1 thread is the committed checkpoint (run.py).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from focus_eval.config import FocusConfig
from focus_eval.methods.zoomeye.prompts import ANSWERING_PROMPT, DECOMPOSED_QUESTION, LATENT_PROMPTS
from focus_eval.model_wrappers.tiny import tiny_parts, with_dimensions
from focus_eval.proving_ground.scenes import (
    DISTRACTOR,
    MIN_SEPARATION,
    PATTERNS,
    SCENE_SIZE,
    SHAPES,
    Scene,
    make_scene,
    question_for,
    to_square,
)
from focus_eval.tasks.vstar.utils import doc_to_text

IMAGE_SIZE = 112  # tower input side
PATCH = 14
GRID = IMAGE_SIZE // PATCH  # 8 x 8 cells
VISION = dict(hidden_size=96, intermediate_size=384, num_attention_heads=4, num_hidden_layers=3)
TEXT = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=4, head_dim=32, tie_word_embeddings=True)
CELL = max(SCENE_SIZE) / GRID  # px of the scene per grid cell (56)

EXISTENCE_PROMPT = FocusConfig().existence_prompt  # FOCUS's check prompt: "Is there a {target} ..."
LATENT_PROMPT = LATENT_PROMPTS["local"]  # ZoomEye's latent question as LLaVA-1.5 (a local-view model) gets it
NAMING_PROMPT = "What shape is in the image?"
YES, NO = "Yes", "No"
SHAPE_GATE = 0.85
PATTERN_TARGET = 0.95  # per-patch pattern accuracy on crops before stage A ends: the oracle reads it
# Background covers ~90% of the patches; weighting the object classes keeps them from being ignored.
SHAPE_CLASS_WEIGHTS = torch.tensor([1.0] + [5.0] * len(SHAPES) + [3.0])
CHECK_EVERY = 100
PATCH_WORD_WEIGHT = 0.5
TWO_IMAGE_BATCH, TWO_IMAGE_WEIGHT = 8, 0.25  # ViCrop's [full image, crop] answers (train_language)
ALIGN_STEPS = 600
ALIGN_LR = 3e-3
LANGUAGE_LR = 1e-3
# A view shows an object when this share of its pixels is inside; it lacks it below ABSENT.
VISIBLE, ABSENT = 0.6, 0.05
LEGIBLE_SCALE = 0.55  # tower px per scene px from which the pattern is trained (crops of <= 200 px)


def _vstar_post_prompt() -> str:
    """The answer instruction of the vstar task's YAML, so training prompts are the eval prompts."""
    loader = type("TaskLoader", (yaml.SafeLoader,), {})
    loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    spec = yaml.load(resources.files("focus_eval.tasks.vstar").joinpath("vstar.yaml").read_text(), Loader=loader)
    return spec["lmms_eval_specific_kwargs"]["default"]["post_prompt"]


VSTAR_POST_PROMPT = _vstar_post_prompt()


def vstar_prompt(text: str) -> str:
    """A V*Bench `text` as the vstar task puts it to the model."""
    return doc_to_text({"text": text}, {"post_prompt": VSTAR_POST_PROMPT})


def corpus() -> list[str]:
    """What the tokenizer is trained on: every prompt and answer the proving ground uses."""
    lines = [NAMING_PROMPT, YES, NO, *SHAPES, *PATTERNS, "left", "right", "A B C D"]
    lines += [EXISTENCE_PROMPT.format(target=shape) for shape in SHAPES]
    lines += [LATENT_PROMPT.format(target=shape) for shape in SHAPES]
    config = FocusConfig()
    lines += [f"{config.vicrop_generic_prompt} {config.vicrop_instruction}"]
    for first in SHAPES:
        lines.append(vstar_prompt(f"What is the pattern of the {first}?"
                                  + "".join(f"\n({'ABCD'[i]}) {p}" for i, p in enumerate(PATTERNS))))
        lines += [ANSWERING_PROMPT.format(question=question) for question in answerable_questions(first)]
        lines.append(f"What is the pattern of the {first}? {config.vicrop_instruction}")
        lines += [vstar_prompt(f"Is the {first} on the left or right side of the {second}?\n(A) left\n(B) right")
                  for second in SHAPES if second != first]
    lines.append("USER: ASSISTANT: A. B. C. D.")
    return lines


# ---- model --------------------------------------------------------------------------------


def build_model(seed: int):
    """(untrained LlavaForConditionalGeneration, LlavaProcessor) with the proving ground's
    dimensions; the same seed gives the same weights."""
    model_class, config, processor = tiny_parts("llava_1_5", image_size=IMAGE_SIZE, image_preprocessing="pad",
                                                vision_layers=VISION["num_hidden_layers"], corpus=corpus())
    # the last tower layer feeds the projector (LLaVA-1.5 takes the second-to-last of 24; here
    # every layer is trained through the per-patch heads, none is spare)
    config = with_dimensions(config, text=TEXT, vision=dict(VISION, projection_dim=VISION["hidden_size"]),
                             vision_feature_layer=-1)
    return instantiate(model_class, config, processor, seed)


def instantiate(model_class: type, config: Any, processor, seed: int):
    """(model with `seed`'s initial weights, processor), the processor's pad and end tokens in its
    generation config."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class._from_config(config, dtype=torch.float32)
    tokenizer = processor.tokenizer
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, processor


def image_features(model, pixels: torch.Tensor) -> torch.Tensor:
    """[n, patches, vision hidden]: the tower output the projector reads (get_image_features
    before the projector: hidden state of vision_feature_layer, CLIP's CLS dropped)."""
    states = model.model.vision_tower(pixels, output_hidden_states=True).hidden_states
    selected = states[model.config.vision_feature_layer]
    return selected if model.config.vision_feature_select_strategy == "full" else selected[:, 1:]


# ---- views --------------------------------------------------------------------------------

Box = tuple[int, int, int, int]


def clip_box(box: Sequence[float], size: tuple[int, int] = SCENE_SIZE) -> Box:
    width, height = size
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)


def centred_crop(center: tuple[float, float], side: float, size: tuple[int, int] = SCENE_SIZE) -> Box:
    return clip_box((center[0] - side / 2, center[1] - side / 2, center[0] + side / 2, center[1] + side / 2), size)


def gt_crop(boxes: Sequence[Box], cell: float = CELL, size: tuple[int, int] = SCENE_SIZE) -> Box:
    """The oracle's view of some targets: the union of their boxes grown to at least 3 grid
    cells of `cell` px (an ROI of s_max = 3) around its centre, plus a margin of half a cell."""
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half_w, half_h = max((x1 - x0) / 2 + cell / 2, 1.5 * cell), max((y1 - y0) / 2 + cell / 2, 1.5 * cell)
    return clip_box((cx - half_w, cy - half_h, cx + half_w, cy + half_h), size)


def sample_views(scene: Scene, rng: np.random.Generator, cell: float = CELL) -> list[tuple[str, Box]]:
    """(kind, box) views of a scene for training: full, object crops, a distractor crop,
    a random crop, a pair crop; crops measure 2-3.3 cells of `cell` px."""
    width, height = size = scene.size
    views = [("full", (0, 0, width, height))]
    things = list(scene.objects) + ([scene.distractors[int(rng.integers(len(scene.distractors)))]]
                                    if scene.distractors else [])
    for thing in things:
        side = rng.uniform(2.0, 3.3) * cell
        jitter = rng.uniform(-0.3, 0.3, size=2) * (thing.box[2] - thing.box[0])
        views.append(("object", centred_crop((thing.center[0] + jitter[0], thing.center[1] + jitter[1]), side, size)))
    side = rng.uniform(2.0, 3.3) * cell
    views.append(("random", centred_crop((rng.uniform(0, width), rng.uniform(0, height)), side, size)))
    if len(scene.objects) >= 2:
        first, second = rng.choice(len(scene.objects), size=2, replace=False)
        boxes = [scene.objects[first].box, scene.objects[second].box]
        margin = rng.uniform(8, 40)
        views.append(("pair", clip_box((min(b[0] for b in boxes) - margin, min(b[1] for b in boxes) - margin,
                                        max(b[2] for b in boxes) + margin, max(b[3] for b in boxes) + margin), size)))
    return views


def render(scene: Scene, box: Box) -> np.ndarray:
    """[112, 112, 3] uint8: the view as the LLaVA processor resizes it (pad to a square with the
    mean colour, bicubic resize)."""
    return np.asarray(to_square(scene.pil().crop(box)).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC))


def patch_labels(scene: Scene, box: Box, legible: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-patch targets [64] of a view: shape class (0 background, 1 + SHAPES index,
    DISTRACTOR) of the thing covering >= 20% of the patch, and its pattern (0 none, 1 +
    PATTERNS index); -100 (ignored) for the pattern where it is not legible or the patch is
    only partly covered."""
    def square(label_map: np.ndarray) -> np.ndarray:
        crop = Image.fromarray(label_map.astype(np.uint8)).crop(box)
        side = max(crop.size)
        square = Image.new("L", (side, side), 0)
        square.paste(crop, ((side - crop.size[0]) // 2, (side - crop.size[1]) // 2))
        return np.asarray(square.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.NEAREST))

    return patch_classes(square(scene.shape_map), square(scene.pattern_map), legible)


def patch_classes(shape_pixels: np.ndarray, pattern_pixels: np.ndarray, legible: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-patch targets [(side / PATCH)^2] of one tower input from its label pixels [side, side]
    (Scene.shape_map and pattern_map values, resized as the pixels were): patch_labels's rule."""
    def blocks(pixels: np.ndarray) -> np.ndarray:
        grid = pixels.shape[0] // PATCH
        return pixels.reshape(grid, PATCH, grid, PATCH).transpose(0, 2, 1, 3).reshape(grid * grid, PATCH * PATCH)

    def dominant(cells: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
        counts = np.stack([(cells == c).mean(1) for c in range(classes)], 1)  # [patches, classes]
        counts[:, 0] = 0
        return counts.argmax(1), counts.max(1)

    shape, shape_share = dominant(blocks(shape_pixels), DISTRACTOR + 1)
    shape = np.where(shape_share >= 0.2, shape, 0)
    pattern, pattern_share = dominant(blocks(pattern_pixels), len(PATTERNS) + 1)
    pattern = np.where(pattern_share >= 0.5, pattern, np.where(pattern_share > 0, -100, 0))
    if not legible:
        pattern = np.where(pattern == 0, 0, -100)
    return shape.astype(np.int64), pattern.astype(np.int64)


def legible(box: Box) -> bool:
    return IMAGE_SIZE / max(box[2] - box[0], box[3] - box[1]) >= LEGIBLE_SCALE


# ---- conversations ----------------------------------------------------------------------

Turn = tuple[str, str, str]  # (task, prompt, answer)
TASKS = ("naming", "existence", "latent", "answering", "attribute", "relative")
# Existence against another object's crop needs the most training: with equal weights it stayed at
# AUC 0.51 after 800 steps (the patch-word loss slows it; without that loss, 0.93 after 350).
# With ZoomEye's questions beside it at full weight (and ViCrop's two-image batch at 0.5) existence
# against another object's crop fell to AUC 0.52 on the held-out gates (seed 0, recipe search).
TASK_WEIGHTS = {"naming": 1.0, "existence": 4.0, "latent": 0.5, "answering": 0.5, "attribute": 1.0, "relative": 1.0}


def answerable_questions(kind: str) -> tuple[str, str]:
    """The two questions ZoomEye's answering confidence asks about one object: the attribute
    question itself (a single-target question, bare as the search gets it) and its decomposed
    question (each target of a multi-target question, e.g. left/right)."""
    return f"What is the pattern of the {kind}?", DECOMPOSED_QUESTION.format(target=kind)


def existence_turns(scene: Scene, box: Box, rng: np.random.Generator) -> list[Turn]:
    """Yes for every object the view shows; as many No (at least one), first for shapes of the
    scene's other objects (hard negatives), then for shapes not in the scene."""
    shares = [scene.visible_fraction(i, box) for i in range(len(scene.objects))]
    shown = [o.kind for o, share in zip(scene.objects, shares) if share >= VISIBLE]
    elsewhere = [o.kind for o, share in zip(scene.objects, shares) if share <= ABSENT]
    missing = [s for s in SHAPES if s not in {o.kind for o in scene.objects}]
    negatives = list(rng.permutation(elsewhere)) + list(rng.permutation(missing))
    turns = [("existence", EXISTENCE_PROMPT.format(target=kind), YES) for kind in shown]
    turns += [("existence", EXISTENCE_PROMPT.format(target=kind), NO) for kind in negatives[:max(1, len(shown))]]
    return turns


def zoomeye_turns(scene: Scene, box: Box, rng: np.random.Generator,
                  is_legible: Callable[[Box], bool] = legible) -> list[Turn]:
    """ZoomEye's other two confidence questions in LLaVA-1.5's local view, with existence's
    negatives, one question of each answer per view (each view already asks existence about every
    object it shows). Latent ("is it possible to find a {target} in the image?"): Yes for an
    object at least partly in the view, No for one elsewhere or a shape not in the scene. Answering
    ("Could you answer the question ...?") about one object the view shows whole and one other:
    Yes when the object is whole and its pattern legible in the view, else No."""
    shares = [scene.visible_fraction(i, box) for i in range(len(scene.objects))]
    partly = [o.kind for o, share in zip(scene.objects, shares) if share > ABSENT]
    elsewhere = [o.kind for o, share in zip(scene.objects, shares) if share <= ABSENT]
    missing = [s for s in SHAPES if s not in {o.kind for o in scene.objects}]
    negatives = list(rng.permutation(elsewhere)) + list(rng.permutation(missing))
    turns = [("latent", LATENT_PROMPT.format(target=kind), YES) for kind in rng.permutation(partly)[:1]]
    turns += [("latent", LATENT_PROMPT.format(target=kind), NO) for kind in negatives[:1]]
    whole = [i for i, share in enumerate(shares) if share >= 0.9]
    others = [i for i in range(len(scene.objects)) if i not in whole]
    asked = ([int(rng.choice(whole))] if whole else []) + ([int(rng.choice(others))] if others else [])
    for i in asked:
        question = answerable_questions(scene.objects[i].kind)[int(rng.integers(2))]
        answerable = i in whole and is_legible(box)
        turns.append(("answering", ANSWERING_PROMPT.format(question=question), YES if answerable else NO))
    return turns


def conversation(scene: Scene, kind: str, box: Box, rng: np.random.Generator,
                 is_legible: Callable[[Box], bool] = legible) -> list[Turn]:
    """Every question the view can answer (module docstring), in random order; `is_legible(box)`:
    whether the family's processor shows the view's patterns to the tower."""
    shares = [scene.visible_fraction(i, box) for i in range(len(scene.objects))]
    whole = [i for i, share in enumerate(shares) if share >= 0.9]
    turns = existence_turns(scene, box, rng) + zoomeye_turns(scene, box, rng, is_legible)
    if kind == "object" and len(whole) == 1 and sum(share > ABSENT for share in shares) == 1:
        turns.append(("naming", NAMING_PROMPT, scene.objects[whole[0]].kind))
    if is_legible(box):
        for i in whole:
            turns.append(("attribute", *_vqa(question_for(scene, "direct_attributes", rng, target=i))))
    pairs = [(a, b) for a in whole for b in whole
             if a < b and abs(scene.objects[a].center[0] - scene.objects[b].center[0]) >= MIN_SEPARATION]
    if pairs:
        a, b = pairs[int(rng.integers(len(pairs)))]
        pair = (a, b) if rng.random() < 0.5 else (b, a)
        turns.append(("relative", *_vqa(question_for(scene, "relative_position", rng, pair=pair))))
    return [turns[i] for i in rng.permutation(len(turns))]


def _vqa(row: dict[str, Any]) -> tuple[str, str]:
    return vstar_prompt(row["text"]), row["label"]


# ---- token sequences ---------------------------------------------------------------------


@dataclass
class Encoded:
    """Several single-turn questions about one image, packed: the shared prefix (BOS, "USER: ",
    the image tokens, ...) once, then each question and its answer as a branch that sees the
    prefix and itself only, at the positions it would have alone."""

    ids: list[int]
    labels: list[int]  # -100 except answer tokens
    positions: list[int]
    branch: list[int]  # 0: shared prefix, k: k-th question
    task: list[int]  # TASKS index of the question an answer token answers, -1 elsewhere


class Conversations:
    """Turns -> token ids as the adapter sees them: "<s>USER: <image>\n{q} ASSISTANT:" (the chat
    template), the image token expanded to the grid's GRID * GRID tokens as the processor does,
    then the answer " {a}" and end of sequence."""

    answer_separator = " "  # after "ASSISTANT:" (model_wrappers/base.py, answer_separator)

    def __init__(self, processor):
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.image_token = self.tokenizer.convert_tokens_to_ids("<image>")
        self._cache: dict[str, list[int]] = {}

    def _tokens(self, text: str) -> list[int]:
        if text not in self._cache:
            self._cache[text] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self._cache[text]

    def prompt_ids(self, question: str, images: int = 1) -> list[int]:
        """BOS + the templated question after its `images` images, up to "ASSISTANT:"."""
        content = [{"type": "image"}] * images + [{"type": "text", "text": question}]
        text = self.processor.apply_chat_template([{"role": "user", "content": content}],
                                                  add_generation_prompt=True, tokenize=False)
        ids = [self.tokenizer.bos_token_id]
        for token in self._tokens(text):
            ids += [token] * (GRID * GRID if token == self.image_token else 1)
        return ids

    def encode(self, turns: Sequence[Turn], images: Any = 1) -> Encoded:
        """`images`: what prompt_ids takes (here the number of images)."""
        prompts = [self.prompt_ids(question, images) for _, question, _ in turns]
        replies = [self._tokens(self.answer_separator + answer) + [self.tokenizer.eos_token_id]
                   for _, _, answer in turns]
        shared = len(prompts[0])
        for prompt in prompts[1:]:
            shared = next((i for i, (a, b) in enumerate(zip(prompts[0], prompt)) if a != b), min(shared, len(prompt)))
        shared = min(shared, min(len(p) for p in prompts) - 1)  # every branch keeps its last prompt token
        ids, labels = list(prompts[0][:shared]), [-100] * shared
        positions, branch, task = list(range(shared)), [0] * shared, [-1] * shared
        for number, ((kind, _, _), prompt, reply) in enumerate(zip(turns, prompts, replies), start=1):
            tail = prompt[shared:] + reply
            ids += tail
            labels += [-100] * (len(prompt) - shared) + reply
            positions += list(range(shared, shared + len(tail)))
            branch += [number] * len(tail)
            task += [-1] * (len(prompt) - shared) + [TASKS.index(kind)] * len(reply)
        return Encoded(ids, labels, positions, branch, task)


def batch_tensors(encoded: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ids, labels, positions and the [b, 1, seq, seq] boolean attention mask of
    packed sequences (a token sees earlier tokens of the prefix and of its own branch; a
    padding token sees itself only)."""
    ids = pad([e.ids for e in encoded], pad_id)
    labels = pad([e.labels for e in encoded], -100)
    task = pad([e.task for e in encoded], -1)
    positions = pad([e.positions for e in encoded], 0)
    branch = pad([e.branch for e in encoded], -1)  # [b, seq]
    length = ids.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    visible = causal & ((branch[:, None, :] == 0) | (branch[:, None, :] == branch[:, :, None]))
    padding = branch < 0
    visible &= ~padding[:, None, :]
    visible |= torch.eye(length, dtype=torch.bool) & padding[:, :, None]
    return {"ids": ids, "labels": labels, "task": task, "positions": positions, "mask": visible[:, None]}


def prompt_batch(prompts: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """batch_tensors of prompts without answers, plus `last` [b]: each prompt's last position,
    where its next-token logits are read."""
    tensors = batch_tensors([Encoded(list(p), [-100] * len(p), list(range(len(p))), [1] * len(p), [-1] * len(p))
                             for p in prompts], pad_id)
    tensors["last"] = torch.tensor([len(p) - 1 for p in prompts])
    return tensors


# ---- data ---------------------------------------------------------------------------------


@dataclass
class ViewSet:
    images: np.ndarray  # [n, 112, 112, 3] uint8
    shape: np.ndarray  # [n, 64] int64
    pattern: np.ndarray  # [n, 64] int64
    kinds: list[str]
    turns: list[list[Turn]]
    full_view: list[int]  # index of the full view of each view's scene
    scenes: list[Scene] = field(repr=False)


def build_views(n_scenes: int, seed: int) -> ViewSet:
    """`n_scenes` scenes and their views (sample_views) with per-patch labels and questions."""
    rng = np.random.default_rng([seed, 7])
    images, shapes, patterns, kinds, turns, full_view, scenes = [], [], [], [], [], [], []
    for _ in range(n_scenes):
        scene = make_scene(rng)
        scenes.append(scene)
        full = len(images)  # sample_views puts the full view first
        for kind, box in sample_views(scene, rng):
            full_view.append(full)
            shape, pattern = patch_labels(scene, box, legible(box))
            images.append(render(scene, box))
            shapes.append(shape)
            patterns.append(pattern)
            kinds.append(kind)
            turns.append(conversation(scene, kind, box, rng))
    return ViewSet(np.stack(images), np.stack(shapes), np.stack(patterns), kinds, turns, full_view, scenes)


def pixel_tensor(images: np.ndarray, processor) -> torch.Tensor:
    """uint8 [n, H, W, 3] -> normalised [n, 3, H, W] float32, as the image processor rescales and
    normalises."""
    mean = torch.tensor(processor.image_processor.image_mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(processor.image_processor.image_std, dtype=torch.float32)[:, None, None]
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0 - mean) / std


# ---- training loops -----------------------------------------------------------------------


def schedule(step: int, total: int, peak: float, warmup: int = 50) -> float:
    """Linear warm-up, cosine decay to 10% of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def patch_accuracy(model, heads, views: ViewSet, processor, kinds: tuple[str, ...]) -> tuple[float, float]:
    """Per-patch (shape, pattern) accuracy on the patches of named objects in views of the given
    kinds (pattern: where it is a target, i.e. legible)."""
    chosen = [i for i, kind in enumerate(views.kinds) if kind in kinds]
    counts = np.zeros(4)
    with torch.no_grad():
        for start in range(0, len(chosen), 128):
            batch = chosen[start:start + 128]
            features = image_features(model, pixel_tensor(views.images[batch], processor))
            shape, pattern = torch.from_numpy(views.shape[batch]), torch.from_numpy(views.pattern[batch])
            named = (shape >= 1) & (shape <= len(SHAPES))
            with_pattern = named & (pattern > 0)
            counts += [int((heads["shape"](features).argmax(-1)[named] == shape[named]).sum()), int(named.sum()),
                       int((heads["pattern"](features).argmax(-1)[with_pattern] == pattern[with_pattern]).sum()),
                       int(with_pattern.sum())]
    return counts[0] / max(counts[1], 1), counts[2] / max(counts[3], 1)


def train_tower(model, processor, train: ViewSet, dev: ViewSet, *, steps: int, batch: int, seed: int,
                log: Callable[[str], None]) -> dict[str, Any]:
    """Stage A (module docstring); returns its log."""
    tower = model.model.vision_tower
    hidden = model.config.vision_config.hidden_size
    side = math.isqrt(train.shape.shape[1])  # patches per side of a tower input
    heads = torch.nn.ModuleDict({"shape": torch.nn.Linear(hidden, DISTRACTOR + 1),
                                 "pattern": torch.nn.Linear(hidden, len(PATTERNS) + 1),
                                 "column": torch.nn.Linear(hidden, side)})
    columns = torch.arange(side * side) % side  # [side^2]: grid column of each patch
    params = list(tower.parameters()) + list(heads.parameters())
    optimizer = torch.optim.AdamW(params, lr=2e-3, weight_decay=0.01)
    rng = np.random.default_rng([seed, 11])
    history = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = schedule(step, steps, 2e-3)
        index = rng.choice(len(train.kinds), size=batch, replace=False)
        features = image_features(model, pixel_tensor(train.images[index], processor))
        loss = (F.cross_entropy(heads["shape"](features).flatten(0, 1), torch.from_numpy(train.shape[index]).flatten(),
                                weight=SHAPE_CLASS_WEIGHTS)
                + F.cross_entropy(heads["pattern"](features).flatten(0, 1),
                                  torch.from_numpy(train.pattern[index]).flatten(), ignore_index=-100)
                + F.cross_entropy(heads["column"](features).flatten(0, 1), columns.repeat(batch)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if (step + 1) % CHECK_EVERY == 0 or step + 1 == steps:
            full, _ = patch_accuracy(model, heads, dev, processor, ("full",))
            crops, patterns = patch_accuracy(model, heads, dev, processor, ("object",))
            history.append({"step": step + 1, "loss": loss.item(), "shape_acc_full": full, "shape_acc_crop": crops,
                            "pattern_acc_crop": patterns})
            log(f"stage A step {step + 1}: loss {loss.item():.3f}, per-patch shape accuracy full {full:.3f} "
                f"crop {crops:.3f}, pattern accuracy crop {patterns:.3f}")
            if full >= SHAPE_GATE and crops >= SHAPE_GATE and patterns >= PATTERN_TARGET:
                break
    final = history[-1]
    return {"steps": final["step"], "history": history, "shape_acc_full": final["shape_acc_full"],
            "shape_acc_crop": final["shape_acc_crop"], "pattern_acc_crop": final["pattern_acc_crop"],
            "gate_passed": bool(final["shape_acc_full"] >= SHAPE_GATE and final["shape_acc_crop"] >= SHAPE_GATE)}


def tower_features(model, images: np.ndarray, processor, batch: int = 128) -> torch.Tensor:
    """[n, 64, vision hidden] features of uint8 views with the (frozen) tower."""
    with torch.no_grad():
        return torch.cat([image_features(model, pixel_tensor(images[i:i + batch], processor))
                          for i in range(0, len(images), batch)])


def language_logits(model, features: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                    positions: torch.Tensor) -> torch.Tensor:
    """[b, seq, vocab] logits of the language model on `ids` [b, seq] whose image tokens take the
    projected `features` [b, 64, vision hidden] (as LlavaModel.forward places them), with an
    explicit attention mask [b, 1, seq, seq] and positions [b, seq] (batch_tensors)."""
    image = model.model.multi_modal_projector(features)  # [b, 64, hidden]
    return logits_with_image_tokens(model, image, ids, mask, positions)


def logits_with_image_tokens(model, image: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                             positions: torch.Tensor) -> torch.Tensor:
    """language_logits with the image tokens already in the language model's width: `image`
    holds every image token of the batch in order (any leading shape)."""
    inner = model.model
    embeds = inner.language_model.embed_tokens(ids)
    is_image = (ids == model.config.image_token_id)[..., None]
    embeds = embeds.masked_scatter(is_image, image.to(embeds.dtype))
    hidden = inner.language_model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions).last_hidden_state
    return model.lm_head(hidden)


def pad(sequences: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    longest = max(len(s) for s in sequences)
    return torch.tensor([list(s) + [value] * (longest - len(s)) for s in sequences], dtype=torch.long)


@dataclass(frozen=True)
class Phase:
    name: str
    tasks: tuple[str, ...]  # turn tasks trained in this phase
    steps: int


def balanced_loss(logits: torch.Tensor, labels: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
    """Weighted mean (TASK_WEIGHTS) over the tasks present of each task's mean answer-token
    cross-entropy: existence has 2-6 questions per view, the VQA 0-2, and would otherwise take
    most of the gradient. A reply token is predicted from the position before it, which is in
    the same branch."""
    losses = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100,
                             reduction="none")
    task = task[:, 1:].flatten()
    present = [int(t) for t in task.unique() if t >= 0]
    weights = torch.tensor([TASK_WEIGHTS[TASKS[t]] for t in present])
    return (torch.stack([losses[task == t].mean() for t in present]) * weights).sum() / weights.sum()


def patch_word_targets(shape: np.ndarray, pattern: np.ndarray, tokenizer) -> torch.Tensor:
    """[n, 64, 2] token ids of each patch's words: its object's shape word (" circle", ...) and,
    where the pattern is legible (patch_labels), its pattern word (" horizontal", " dots", ...);
    -100 for background, distractor and illegible: the targets of the patch-word loss."""
    def first(word: str) -> int:
        return tokenizer(" " + word, add_special_tokens=False)["input_ids"][0]

    shape_words = torch.tensor([-100] + [first(kind) for kind in SHAPES] + [-100])
    pattern_words = torch.tensor([-100] + [first(name) for name in PATTERNS])
    named = torch.from_numpy(shape)
    patterned = torch.from_numpy(pattern)
    shape_ids = shape_words[named]
    pattern_ids = torch.where((patterned > 0) & (shape_ids >= 0), pattern_words[patterned.clamp_min(0)], -100)
    return torch.stack([shape_ids, pattern_ids], -1)


def patch_word_loss(model, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the (tied) output layer read at every projected image token
    [b, 64, hidden] against its patch words `targets` [b, 64, 2] (patch_word_targets): a
    patch with both words has the two as equally likely targets."""
    words = model.lm_head(model.model.multi_modal_projector(features))  # [b, 64, vocab]
    return F.cross_entropy(words[:, :, None].expand(-1, -1, 2, -1).flatten(0, 2), targets.flatten(),
                           ignore_index=-100)


def align_projector(model, features: torch.Tensor, targets: torch.Tensor, *, steps: int, batch: int, seed: int,
                    log: Callable[[str], None]) -> dict[str, Any]:
    """Stage B0 (module docstring): the projector alone, language model frozen (its tied word
    embeddings are the targets), on the patch-word loss; returns its log."""
    language_model = list(model.model.language_model.parameters())
    for parameter in language_model:
        parameter.requires_grad_(False)
    projector = model.model.multi_modal_projector
    optimizer = torch.optim.AdamW(projector.parameters(), lr=ALIGN_LR, weight_decay=0.01)
    rng = np.random.default_rng([seed, 19])
    loss = torch.tensor(float("nan"))
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = schedule(step, steps, ALIGN_LR)
        index = rng.choice(len(features), size=batch, replace=False)
        loss = patch_word_loss(model, features[index], targets[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if (step + 1) % CHECK_EVERY == 0 or step + 1 == steps:
            log(f"stage B0 step {step + 1}: patch-word loss {loss.item():.3f}")
    for parameter in language_model:
        parameter.requires_grad_(True)
    return {"steps": steps, "loss": loss.item()}


def train_language(model, processor, features: torch.Tensor, turns: Sequence[Sequence[Turn]], phases: Sequence[Phase],
                   *, full_view: Sequence[int], patch_words: torch.Tensor, batch: int, seed: int,
                   gate: Callable[[str], dict[str, Any]], log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Stage B (module docstring): projector + language model, tower frozen; `gate(phase)`
    measures a phase's held-out results at its end. Returns the phases' logs.

    patch_words [n, 64, 2]: the patch-word loss's targets (patch_word_targets), weighted PATCH_WORD_WEIGHT.
    full_view[i]: the full view of view i's scene; in phases with the VQA, every step adds a
    batch of TWO_IMAGE_BATCH two-image VQA conversations (ViCrop's final input: the full view,
    then the crop view i, asked view i's VQA), weighted TWO_IMAGE_WEIGHT."""
    for parameter in model.model.vision_tower.parameters():
        parameter.requires_grad_(False)
    trained = list(model.model.multi_modal_projector.parameters()) + list(model.model.language_model.parameters())
    optimizer = torch.optim.AdamW(trained, lr=LANGUAGE_LR, weight_decay=0.01)
    conversations = Conversations(processor)
    pad_id = processor.tokenizer.pad_token_id
    rng = np.random.default_rng([seed, 13])
    total, done, logs = sum(phase.steps for phase in phases), 0, []
    vqa = [[turn for turn in view if turn[0] in ("attribute", "relative")] if full_view[i] != i else []
           for i, view in enumerate(turns)]
    with_vqa = [i for i, view in enumerate(vqa) if view]
    for phase in phases:
        kept = [[turn for turn in view if turn[0] in phase.tasks] for view in turns]
        usable = [i for i, view in enumerate(kept) if view]
        for step in range(phase.steps):
            for group in optimizer.param_groups:
                group["lr"] = schedule(done, total, LANGUAGE_LR)
            index = rng.choice(usable, size=batch, replace=False)
            tensors = batch_tensors([conversations.encode(kept[i]) for i in index], pad_id)
            logits = language_logits(model, features[index], tensors["ids"], tensors["mask"], tensors["positions"])
            loss = balanced_loss(logits, tensors["labels"], tensors["task"])
            loss = loss + PATCH_WORD_WEIGHT * patch_word_loss(model, features[index], patch_words[index])
            if "attribute" in phase.tasks:
                pairs = rng.choice(with_vqa, size=min(TWO_IMAGE_BATCH, len(with_vqa)), replace=False)
                two = batch_tensors([conversations.encode(vqa[i], images=2) for i in pairs], pad_id)
                both = torch.cat([features[[full_view[i] for i in pairs]], features[pairs]], 1)  # [b, 128, hidden]
                logits = language_logits(model, both, two["ids"], two["mask"], two["positions"])
                loss = loss + TWO_IMAGE_WEIGHT * balanced_loss(logits, two["labels"], two["task"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if (step + 1) % CHECK_EVERY == 0:
                log(f"stage B {phase.name} step {step + 1}: loss {loss.item():.3f}")
        results = gate(phase.name)
        log(f"stage B {phase.name} done: " + ", ".join(f"{k} {v:.3f}" for k, v in results.items()))
        logs.append({"phase": phase.name, "steps": phase.steps, "loss": loss.item(), **results})
    return logs


# ---- held-out probes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    kind: str  # naming, exist_gt, exist_other, exist_random, answer_gt, answer_full, attr_gt, attr_full, rel_gt, rel_full
    scene: int
    box: Box
    prompt: str
    answer: str


def build_probes(scenes: Sequence[Scene], seed: int, cell: float = CELL) -> list[Probe]:
    """Held-out questions per scene about one of its objects (the target): naming and existence
    on the target's GT crop; existence of the target on ANOTHER object's GT crop and on a
    random crop showing no object (hard and easy negatives); the pattern question on the GT
    crop (oracle) and on the full image (vanilla); ZoomEye's answering question about it on the
    GT crop (answerable) and on the full image (not); a relative-position question likewise.
    Crops are 3 cells of `cell` px."""
    rng = np.random.default_rng([seed, 17])
    probes = []
    for index, scene in enumerate(scenes):
        width, height = size = scene.size
        target = int(rng.integers(len(scene.objects)))
        thing = scene.objects[target]
        crop = gt_crop([thing.box], cell, size)
        exist = EXISTENCE_PROMPT.format(target=thing.kind)
        if sum(scene.visible_fraction(i, crop) > ABSENT for i in range(len(scene.objects))) == 1:
            probes.append(Probe("naming", index, crop, NAMING_PROMPT, thing.kind))
        probes.append(Probe("exist_gt", index, crop, exist, YES))
        for other in scene.objects:
            other_crop = gt_crop([other.box], cell, size)
            if other is not thing and scene.visible_fraction(target, other_crop) <= ABSENT:
                probes.append(Probe("exist_other", index, other_crop, exist, NO))
                break
        for _ in range(20):
            empty = centred_crop((rng.uniform(0, width), rng.uniform(0, height)), 3 * cell, size)
            if all(scene.visible_fraction(i, empty) <= ABSENT for i in range(len(scene.objects))):
                probes.append(Probe("exist_random", index, empty, exist, NO))
                break
        answering = ANSWERING_PROMPT.format(question=answerable_questions(thing.kind)[0])
        probes.append(Probe("answer_gt", index, crop, answering, YES))
        probes.append(Probe("answer_full", index, (0, 0, width, height), answering, NO))
        attribute = question_for(scene, "direct_attributes", rng, target=target)
        probes.append(Probe("attr_gt", index, crop, vstar_prompt(attribute["text"]), attribute["label"]))
        probes.append(Probe("attr_full", index, (0, 0, width, height), vstar_prompt(attribute["text"]),
                            attribute["label"]))
        relative = question_for(scene, "relative_position", rng)
        if relative is not None:
            boxes = [tuple(x for x in (b[0], b[1], b[0] + b[2], b[1] + b[3])) for b in relative["bbox"]]
            for kind, box in (("rel_gt", gt_crop(boxes, cell, size)), ("rel_full", (0, 0, width, height))):
                probes.append(Probe(kind, index, box, vstar_prompt(relative["text"]), relative["label"]))
    return probes


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """P(positive > negative), ties counting half."""
    pos, neg = np.asarray(positives)[:, None], np.asarray(negatives)[None, :]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean()) if pos.size and neg.size else float("nan")


def probe_report(probes: Sequence[Probe], logits: torch.Tensor, tokenizer, separator: str = " ") -> dict[str, float]:
    """Accuracies and existence AUCs from next-token `logits` [n, vocab] after each probe's prompt
    (answers start with `separator`, as after the family's generation prompt)."""
    first = {answer: tokenizer(separator + answer, add_special_tokens=False)["input_ids"][0]
             for answer in {p.answer for p in probes}}
    yes, no = first.get(YES), first.get(NO)
    confidence = {}
    correct: dict[str, list[bool]] = {}
    for probe, row in zip(probes, logits):
        if probe.kind.startswith(("exist", "answer")):
            pair = torch.softmax(row[[yes, no]].float(), -1)
            confidence.setdefault(probe.kind, []).append(float(2 * (pair[0] - 0.5)))
        correct.setdefault(probe.kind, []).append(int(row.argmax()) == first[probe.answer])
    report = {f"acc_{kind}": float(np.mean(hits)) for kind, hits in sorted(correct.items())}
    report["auc_other"] = auc(confidence.get("exist_gt", []), confidence.get("exist_other", []))
    report["auc_random"] = auc(confidence.get("exist_gt", []), confidence.get("exist_random", []))
    report["auc_answering"] = auc(confidence.get("answer_gt", []), confidence.get("answer_full", []))
    return report


def training_logits(model, processor, scenes: Sequence[Scene], probes: Sequence[Probe]) -> torch.Tensor:
    """Next-token logits [n, vocab] of the probes through the training forward (language_logits)."""
    conversations = Conversations(processor)
    images = np.stack([render(scenes[p.scene], p.box) for p in probes])
    features = tower_features(model, images, processor)
    rows = []
    with torch.no_grad():
        for start in range(0, len(probes), 64):
            batch = probes[start:start + 64]
            tensors = prompt_batch([conversations.prompt_ids(p.prompt) for p in batch], processor.tokenizer.pad_token_id)
            logits = language_logits(model, features[start:start + 64], tensors["ids"], tensors["mask"],
                                     tensors["positions"])
            rows.append(logits[torch.arange(len(batch)), tensors["last"]])
    return torch.cat(rows)


# ---- main ---------------------------------------------------------------------------------

PHASES = (Phase("naming", ("naming",), 80),
          Phase("existence", ("naming", "existence"), 400),
          Phase("vqa", TASKS, 550))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Laps:
    """Wall and CPU seconds of a training's parts, each logged as it ends (training.json's `times`)."""

    def __init__(self, log: Callable[[str], None]):
        self.log = log
        self.times: dict[str, dict[str, float]] = {}
        self.wall, self.cpu = time.time(), cpu_seconds()

    def __call__(self, name: str) -> None:
        self.times[name] = {"wall_s": round(time.time() - self.wall, 1), "cpu_s": round(cpu_seconds() - self.cpu, 1)}
        self.log(f"{name}: {self.times[name]['wall_s']} s wall, {self.times[name]['cpu_s']} s CPU")
        self.wall, self.cpu = time.time(), cpu_seconds()

    def total(self) -> dict[str, float]:
        return {key: round(sum(t[key] for t in self.times.values()), 1) for key in ("wall_s", "cpu_s")}


def train(out: Path, *, seed: int = 0, scenes: int = 2400, dev_scenes: int = 120, tower_steps: int = 1500,
          align_steps: int = ALIGN_STEPS,
          phases: Sequence[Phase] = PHASES, batch: int = 32, threads: int = 1, control: Path | None = None,
          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train and save the checkpoint to `out` (and the untrained-LM control to `control`);
    returns the training report, also written to `out/training.json`."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    lap = Laps(log)
    model, processor = build_model(seed)
    train_views = build_views(scenes, seed)
    dev_views = build_views(dev_scenes, seed + 1)
    log(f"{len(train_views.kinds)} training views of {scenes} scenes, {len(dev_views.kinds)} held-out views")
    lap("data")
    tower = train_tower(model, processor, train_views, dev_views, steps=tower_steps, batch=batch, seed=seed, log=log)
    lap("stage A")
    if control is not None:
        model.save_pretrained(control)
        processor.save_pretrained(control)
    features = tower_features(model, train_views.images, processor)
    probes = build_probes(dev_views.scenes, seed + 1)

    def gate(phase: str) -> dict[str, float]:
        return probe_report(probes, training_logits(model, processor, dev_views.scenes, probes), processor.tokenizer)

    patch_words = patch_word_targets(train_views.shape, train_views.pattern, processor.tokenizer)
    alignment = align_projector(model, features, patch_words, steps=align_steps, batch=batch, seed=seed, log=log)
    language = train_language(model, processor, features, train_views.turns, phases, full_view=train_views.full_view,
                              patch_words=patch_words, batch=batch, seed=seed, gate=gate, log=log)
    lap("stage B")
    model.save_pretrained(out)
    processor.save_pretrained(out)
    report = {"seed": seed, "threads": threads, "scenes": scenes, "views": len(train_views.kinds),
              "stage_a": tower, "stage_b0": alignment, "stage_b": language, "times": lap.times, "total": lap.total()}
    (Path(out) / "training.json").write_text(json.dumps(report, indent=1))
    return report


def training_cli(argv: list[str] | None, doc: str, train_function: Callable[..., dict[str, Any]], scenes: int) -> None:
    """The trainers' command line: OUT [--control DIR] [--seed 0] [--scenes N] [--threads 1]."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--control", type=Path, help="also save the untrained-LM control (trained tower) here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenes", type=int, default=scenes)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    report = train_function(args.out, seed=args.seed, scenes=args.scenes, threads=args.threads, control=args.control)
    print(json.dumps(report["total"]))


def main(argv: list[str] | None = None) -> None:
    training_cli(argv, __doc__, train, scenes=2400)


if __name__ == "__main__":
    main()
