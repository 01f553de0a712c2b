"""An Adapter without a neural network: its cache and its answers are set by the test.

The image is a grey canvas with coloured squares. prefill() plants value vectors so that the
grid cells of every square of the target's colour carry the target token's vector plus
`square_noise`, and the cells of `decoys` (pixel boxes) carry it exactly: with noise > 0 the
decoys are the most relevant cells. yes_no_logits() says "Yes" iff the crop shows enough
pixels of the target's colour, so existence checks behave like a model that can see.
last_token_attention() (ViCrop's maps) attends `attention_gain` times more to the red cells than
to the others for a question, uniformly for the generic prompt (`generic_zero`: the generic
prompt gives the red cells no attention at all).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from focus_eval.config import FocusConfig
from focus_eval.protocol import (Generation, GridGeometry, LastTokenAttention, OptionScores, PassCost, Prefill,
                                 TargetLocationError, YesNo)

COLOURS = {"red": (220, 20, 20), "blue": (20, 20, 220), "green": (20, 200, 20)}
GREY = (128, 128, 128)
PASS_FLOPS = 1.0e9


def scene(size: tuple[int, int], squares: dict[str, list[tuple[int, int, int, int]]]) -> Image.Image:
    image = Image.new("RGB", size, GREY)
    for colour, boxes in squares.items():
        for box in boxes:
            image.paste(COLOURS[colour], box)
    return image


def colour_fraction(image: Image.Image, colour: str) -> float:
    pixels = np.asarray(image, dtype=np.int16)
    return float((np.abs(pixels - np.array(COLOURS[colour])).sum(-1) < 30).mean())


@dataclass
class FakeAdapter:
    grid_shape: tuple[int, int] = (12, 16)
    reply: str = "So I need the information about the following objects: red square."
    decoys: list[tuple[int, int, int, int]] = field(default_factory=list)
    square_noise: float = 0.0
    multi_image: bool = False
    family: str = "fake"
    num_layers: int = 4
    base_resolution: int = 64
    heads: int = 2
    # 16 wide: with 8, the random part makes a token's similarity to the whole sequence vary 3x within a
    # layer, and the default "column" normalisation (each entry over its token's row sum) then
    # outweighs the planted target vector (tests/test_relevance.py covers both normalisations).
    head_dim: int = 16
    calls: dict[str, int] = field(default_factory=lambda: {"prefill": 0, "yes_no": 0, "yes_no_prompts": 0,
                                                          "generate": 0, "option_scores": 0, "with_keys": 0,
                                                          "attention": 0})
    fail_generate_with_images: bool = False
    locatable: bool = True
    prefills: list = field(default_factory=list)  # (prompt, target, target_offset) of every prefill
    scored: list = field(default_factory=list)  # the options of every option_scores call
    final_calls: list = field(default_factory=list)  # (image sizes, image_texts, each_image_alone) of answers
    reply_truncated: bool = False  # the target reply stopped at max_new_tokens
    attention_gain: float = 4.0
    generic_zero: bool = False
    attentions: list = field(default_factory=list)  # (image size, prompt, layer, gradient) of every attention call

    def prefill(self, image, prompt, target, layers, with_keys=False, target_offset=None):
        if not self.locatable or target not in prompt or (
                target_offset is not None and not prompt.startswith(target, target_offset)):
            raise TargetLocationError(f"{target!r} not found in the tokens of {prompt!r}")
        self.calls["prefill"] += 1
        self.prefills.append((prompt, target, target_offset))
        rows, cols = self.grid_shape
        geometry = GridGeometry.uniform(image.size, self.grid_shape)
        prefix, num_visual = 3, rows * cols
        target_positions = torch.tensor([prefix + num_visual + 2, prefix + num_visual + 3])
        seq = prefix + num_visual + 8
        gen = torch.Generator().manual_seed(1234)
        # [L, H, N, D]: a shared direction per layer and head, as real value vectors have
        shared = torch.randn(len(layers), self.heads, 1, self.head_dim, generator=gen)
        values = shared + 0.7 * torch.randn(len(layers), self.heads, seq, self.head_dim, generator=gen)
        target_vector = values[:, :, target_positions[0]].clone()
        values[:, :, target_positions[1]] = target_vector
        colour = target.split()[0]
        cell_colour = _cell_fractions(image, geometry, colour)  # [rows, cols]
        for r, c in zip(*np.nonzero(cell_colour > 0.3)):
            position = prefix + r * cols + c
            values[:, :, position] = target_vector + self.square_noise * values[:, :, position]
        for box in self.decoys:
            for r, c in zip(*np.nonzero(_cell_overlap(geometry, box) > 0.3)):
                values[:, :, prefix + r * cols + c] = target_vector
        self.calls["with_keys"] += bool(with_keys)
        # keys: the values shifted by one position, so the K-K map differs from the V-V map
        return Prefill(values=values, keys=values.roll(1, dims=2) if with_keys else None,
                       target_positions=target_positions,
                       visual_positions=torch.arange(prefix, prefix + num_visual),
                       geometry=geometry, yes_no=self._logits(image, target),
                       cost=PassCost(passes=1, batches=1, flops=PASS_FLOPS, tokens=seq))

    def last_token_attention(self, image, prompt, layer, gradient=False):
        self.calls["attention"] += 1
        self.attentions.append((image.size, prompt, layer, gradient))
        geometry = GridGeometry.uniform(image.size, self.grid_shape)
        red = torch.tensor(_cell_fractions(image, geometry, "red") > 0.3).flatten()  # [h * w]
        weights = torch.ones(self.heads, red.numel())
        if prompt.startswith(FocusConfig().vicrop_generic_prompt):
            weights[:, red] = 0.0 if self.generic_zero else 1.0
        else:
            weights[:, red] = self.attention_gain
        return LastTokenAttention(weights=weights / weights.sum(-1, keepdim=True), geometry=geometry,
                                  cost=PassCost(passes=1, batches=1, flops=PASS_FLOPS, tokens=10,
                                                backward=int(gradient)))

    def yes_no_logits(self, images, prompts):
        self.calls["yes_no"] += 1
        self.calls["yes_no_prompts"] += len(images)
        targets = [p.split("Is there a ")[1].split(" in the image")[0] for p in prompts]
        logits = torch.stack([self._logits(im, t) for im, t in zip(images, targets)])
        return YesNo(logits=logits, cost=PassCost(passes=len(images), batches=1,
                                                  flops=PASS_FLOPS * len(images), tokens=10 * len(images)))

    def generate(self, images: Sequence[Image.Image], prompt: str, max_new_tokens: int, stop=(), image_texts=None,
                 each_image_alone=False, **gen_kwargs):
        self.calls["generate"] += 1
        if images:
            self.final_calls.append(([im.size for im in images], image_texts, each_image_alone))
        if not images:
            text = min((self.reply.split(s)[0] for s in stop), key=len, default=self.reply)
        elif self.fail_generate_with_images:
            raise RuntimeError("generation exploded")
        else:
            text = "A" if any(colour_fraction(im, "red") > 0 for im in images) else "B"
        return Generation(text=text, cost=PassCost(passes=1, batches=1, flops=PASS_FLOPS, tokens=20),
                          truncated=not images and self.reply_truncated)

    def option_scores(self, images, prompt, options, image_texts=None, each_image_alone=False):
        """Summed "log-probability" 0 for the option whose last word names what the images
        show (red or not), -1 per word for the others."""
        self.calls["option_scores"] += 1
        self.scored.append(list(options))
        red = any(colour_fraction(im, "red") > 0 for im in images)
        words = [option.rstrip(".").split() for option in options]
        scores = [0.0 if (w[-1] == "red") == red else -float(len(w)) for w in words]
        return OptionScores(scores=scores, token_counts=[len(w) for w in words], cost=PassCost(passes=len(options), batches=len(options),
                                                         flops=PASS_FLOPS * len(options), tokens=0))

    @staticmethod
    def _logits(image: Image.Image, target: str) -> torch.Tensor:
        seen = colour_fraction(image, target.split()[0]) > 0.02
        return torch.tensor([2.0, -2.0]) if seen else torch.tensor([-2.0, 2.0])


def _cell_fractions(image: Image.Image, geometry: GridGeometry, colour: str) -> np.ndarray:
    rows, cols = geometry.grid_shape
    out = np.zeros((rows, cols))
    for r in range(rows):
        for c in range(cols):
            x0, y0, x1, y1 = geometry.cell_boxes[r, c].round().astype(int)
            out[r, c] = colour_fraction(image.crop((x0, y0, x1, y1)), colour)
    return out


def _cell_overlap(geometry: GridGeometry, box: tuple[int, int, int, int]) -> np.ndarray:
    boxes = geometry.cell_boxes
    ix = np.clip(np.minimum(boxes[..., 2], box[2]) - np.maximum(boxes[..., 0], box[0]), 0, None)
    iy = np.clip(np.minimum(boxes[..., 3], box[3]) - np.maximum(boxes[..., 1], box[1]), 0, None)
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    return ix * iy / area
