"""ViCrop (Zhang et al., "MLLMs know where to look", ICLR 2025, arXiv 2502.17422): an importance
map from one decoder layer's attention, a sliding-window crop box, and the answer from the full
image and the crop.

Reimplemented from the paper and the facts of the official code (saccharomycetes/mllms_know at
a64c5d5, no licence: read, not copied; ../shared/reference/baselines.md). Options `vicrop_*` in
`focus_eval.config.FocusConfig`, defaults per family in configs/<family>.yaml.

Maps (`vicrop_map`), from `Adapter.last_token_attention`: the attention of the prompt's last
token to the image tokens at one layer, mean over heads.
- rel_att: A(question prompt) / A(generic prompt), two forward passes per map.
- grad_att: mean over heads of A * ReLU(dLoss/dA), Loss = log-probability of the most likely
  next token: one forward and one backward pass per map.
- The prompts: the official code builds the map from the question followed by "Answer the
  question using a single word or phrase." and divides by the generic prompt "Write a general
  description of the image." followed by the same sentence (run.py: short_prompt,
  general_prompt). Its question there is `short_question` where its data has one (its V*Bench
  file, not in the repository; presumably the question without the options), else the question.
  Ours: the bare question (`SearchQuestion.question`, no options, no answer instruction) +
  `vicrop_instruction`, and `vicrop_generic_prompt` + `vicrop_instruction`, each in the
  checkpoint's chat template with the image first (the official LLaVA-1.5 prompt is a
  hand-written "<image>\\nUSER: ... ASSISTANT:", its Qwen2.5-VL prompt the chat template).
- The image tokens are the family's relevance grid, the one FOCUS's map uses (`visual_layout`),
  so both methods share the geometry: LLaVA-1.5 24 x 24 over the padded square
  (image_aspect=pad; the official code uses the hub processor's centre crop and maps it as if
  it covered the whole image), LLaVA-OneVision the local anyres grid (no base view), Qwen2.5-VL
  the merged grid at the adapter's max_pixels (the official code runs 256 * 28 * 28 pixels).
- A map with NaN or inf (a generic attention of exactly 0) gives the full image as the crop,
  with a note in the trace.

The layer: `vicrop_layer` of `vicrop_reference_num_layers`, scaled to other depths
(`FocusConfig.vicrop_layer_index`). LLaVA-1.5: 14 of 32 (llava_methods.py). Qwen2.5-VL: 22 of
36: the official code runs Qwen2.5-VL-3B-Instruct (info.py), whose language model has 36 layers,
so the 7B model's 28 layers get layer 17. LLaVA-OneVision has no official ViCrop; ours is the
same 22 of 36 (layer 17 of 28): OneVision-7B's language model is Qwen2-7B, the architecture and
depth of Qwen2.5-VL-7B's, and the official choice for the Qwen language models is the closest
evidence there is (LLaVA-1.5's Llama sits at 14 of 32; the authors' advice, their issue #6, is
a middle layer, which both are). Not validated on OneVision: `vicrop_layer` changes it. Its
crop window is the vision tower's input side, 384 px, the official rule ("the model's original
image input resolution", 336 for LLaVA-1.5; 224 for Qwen2.5-VL).

The box: `box.py`; the map it searches, tiles and stitching: `tiles.py`. A window covering the
whole map makes the crop the full image (the official code then answers from the full image
twice); no ROI is recorded then, so ROI recall counts nothing searched, as for a FOCUS question
without a proposal.

The answer: [full image, crop] in one prompt, greedy (run.py), through the shared answer stage
(`focus_eval.pipeline`), which also does logits matching when configured. No texts between the
images (the official prompt has none; the FOCUS texts speak of red outlines, which ViCrop's full
image does not have). LLaVA-1.5 takes the two images (its adapter allows 2 per prompt for this;
FOCUS composes one). LLaVA-OneVision encodes each image as if alone (anyres), the shared
`final_images_alone` (default true), rather than its multi-image form of one 384 px tile per
image: that form would show the full image at lower resolution than vanilla OneVision sees it,
so adding the crop could lose detail vanilla has; it is also how FOCUS's final images are encoded.

Cost (counters): every map pass in the "relevance" stage, the window search in "proposals" (no
pass), the crop in "answer". fp per question: rel_att 2, grad_att 1 (+ bp 1); with vicrop_high
times the tiles (V*Bench 2246 x 1582: 2 x 2 tiles; HRBench-4K 3 x 5; 8K 5 x 8 = 40). The FOCUS
paper's Table 10 (LLaVA-1.5, -high): rel-att 12.26 / 30.59 / 78.60 FP on V*Bench / HR-4K / HR-8K,
2 per tile; grad-att 6.63 / 15.80 / 39.80, 1 per tile and 0.50 more on all three datasets (their
count, not explained in the paper; ours counts the backward pass in bp, not fp).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from focus_eval.compose import FinalInput, crop
from focus_eval.methods.base import SearchQuestion
from focus_eval.methods.focus.maps import to_grid
from focus_eval.methods.vicrop.box import best_window, crop_box, mean_cell_size
from focus_eval.methods.vicrop.tiles import TileMap, inside, stitch, tile_boxes, tile_layout
from focus_eval.protocol import GridGeometry
from focus_eval.trace import RoiTrace, TargetTrace

Box = tuple[int, int, int, int]
MAP_NAME = "question"  # the trace's one "target": the map is the question's


def search(asked: SearchQuestion) -> FinalInput:
    cfg, image = asked.config, asked.image
    width, height = image.size
    full = (0, 0, width, height)
    prompt = _with_instruction(asked.question, cfg.vicrop_instruction)
    traced = TargetTrace(name=MAP_NAME, all_instances=False, existence_prompt=prompt)
    asked.trace.targets.append(traced)
    layer = cfg.vicrop_layer_index(asked.adapter.num_layers)
    boxes = tile_boxes(image.size, cfg.vicrop_tile_side) if cfg.vicrop_high else [full]
    with asked.meter.stage("relevance"):
        tiles = [_tile_map(asked, image if box == full else image.crop(box), box, prompt, layer) for box in boxes]
    columns = tile_layout(image.size, cfg.vicrop_tile_side)[1] if cfg.vicrop_high else 1
    grid, geometry = stitch(tiles, columns, image.size)
    traced.relevance_map = grid.tolist()
    traced.cell_boxes = np.round(geometry.cell_boxes, 2).tolist()
    traced.notes.extend(_tile_note(i, len(tiles), tile) for i, tile in enumerate(tiles))

    with asked.meter.stage("proposals"):
        box = _choose(grid, geometry, cfg.vicrop_crop_side, traced)
    with asked.meter.stage("answer"):
        return FinalInput(images=[image, crop(image, box)], boxes=[full, box], layout="full+crop")


def _with_instruction(text: str, instruction: str) -> str:
    return f"{text.strip()} {instruction.strip()}".strip()


def _tile_map(asked: SearchQuestion, image: Image.Image, box: Box, prompt: str, layer: int) -> TileMap:
    """The importance map of one tile (module docstring), its passes booked."""
    adapter, cfg = asked.adapter, asked.config
    if cfg.vicrop_map == "grad_att":
        result = adapter.last_token_attention(image, prompt, layer, gradient=True)
        asked.meter.add(result.cost)
        importance = result.weights.mean(dim=0)  # [h * w]
    else:
        result = adapter.last_token_attention(image, prompt, layer)
        asked.meter.add(result.cost)
        generic_prompt = _with_instruction(cfg.vicrop_generic_prompt, cfg.vicrop_instruction)
        generic = adapter.last_token_attention(image, generic_prompt, layer)
        asked.meter.add(generic.cost)
        importance = result.weights.mean(dim=0) / generic.weights.mean(dim=0)  # [h * w]
    return TileMap(box=box, grid=to_grid(importance, result.geometry.grid_shape), geometry=result.geometry)


def _choose(grid: np.ndarray, geometry: GridGeometry, crop_side: int, traced: TargetTrace) -> Box:
    """The crop box on the stitched map, recorded as the one ROI (the full image: no ROI)."""
    full = (0, 0, *geometry.image_size)
    if not np.isfinite(grid).all():
        traced.notes.append(f"map has {int((~np.isfinite(grid)).sum())} NaN/inf cells: the crop is the full image")
        return full
    window = best_window(grid, mean_cell_size(geometry), crop_side)
    if window is None:
        traced.notes.append(f"a {crop_side} px window covers the whole {grid.shape[0]}x{grid.shape[1]} map: "
                            "the crop is the full image")
        return full
    box = crop_box(window, geometry, crop_side)
    row0, col0, row1, col1 = window.cells
    traced.rois = [RoiTrace(anchor=[row0, col0], anchor_score=window.score, cells=list(window.cells), box=list(box),
                            confidence=None)]
    traced.order, traced.chosen = [0], [0]
    traced.notes.append(f"window ratio {window.ratio:g} ({row1 - row0}x{col1 - col0} cells, score {window.score:.4g})")
    return box


def _tile_note(index: int, count: int, tile: TileMap) -> str:
    rows, cols = inside(tile.geometry)
    h, w = tile.grid.shape
    x0, y0, x1, y1 = tile.box
    return (f"tile {index + 1}/{count} ({x1 - x0}x{y1 - y0} px at {x0},{y0}): {h}x{w} map, "
            f"{rows.stop - rows.start}x{cols.stop - cols.start} cells inside")
