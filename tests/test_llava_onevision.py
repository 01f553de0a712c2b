"""LLaVA-OneVision adapter on tiny offline checkpoints: anyres token geometry (token counts, the
layout of the packed features, pixel perturbation through unpadding, crop tails and the bilinear
shrink), the real OneVision processor's token counts, multi-image prompts, relevance planting,
batching, K-K keys, attention implementations, FLOPs and a full FOCUS run."""

import json
from functools import partial
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import LlavaOnevisionProcessor
from transformers.models.llava_onevision.image_processing_pil_llava_onevision import LlavaOnevisionImageProcessorPil

from adapter_checks import (assert_attention_implementations_agree, assert_batched_yes_no_equals_one_by_one,
                            assert_not_uniform, noise_image)
from focus_eval.config import load_config
from focus_eval.methods.focus.maps import downsample_geometry, smooth_and_downsample, to_grid
from focus_eval.model_wrappers import load_adapter
from focus_eval.model_wrappers.base import AdapterInputError, image_only_processor_class, kv_cache
from focus_eval.model_wrappers.flops import measure_flops
from focus_eval.model_wrappers.llava_onevision import LlavaOnevisionAdapter, anyres_layout
from focus_eval.pipeline import Pipeline
from focus_eval.methods.focus.proposals import propose_rois
from focus_eval.protocol import Adapter

FAMILY = "llava_onevision"
PROMPT = "Is there a {} in the image? Answer Yes or No."
NEAREST = 0
# very wide, very tall, smaller than one crop (twice), odd sizes, one just below the shrink threshold
# (20 x 8 tokens: r = 1.05) and sizes whose unpadded grid the anyres_max_9 shrink resizes on the tiny
# config (4 x 4 tokens per crop, pinpoints 56 i x 56 j)
SIZES = [(1000, 150), (120, 900), (9, 6), (5, 3), (57, 101), (90, 240), (333, 217), (300, 300), (640, 480),
         (336, 100)]
SHRUNK = {(333, 217), (300, 300), (640, 480), (336, 100)}
# the real OneVision image processor (llava-hf/llava-onevision-qwen2-*-ov-hf): 384 px crops, patch 14
REAL_PINPOINTS = [[384 * i, 384 * j] for i in range(1, 7) for j in range(1, 7)]


@pytest.fixture(scope="module")
def adapter(tiny_adapter):
    return tiny_adapter(FAMILY)


@pytest.fixture(scope="module")
def local_adapter(tiny_adapter):
    """Vision tokens depend on their own patch only, images resampled to the nearest pixel."""
    return tiny_adapter(FAMILY, local_vision=True, resample=NEAREST)


@pytest.fixture(scope="module")
def tailed_adapter(tiny_checkpoint, tmp_path_factory):
    """The local checkpoint with 60 px crops: 4 patches of 14 px see 56 px of each crop and the
    last 4 px belong to no token, like the 6 px of OneVision's 384 px crops (27 x 14 = 378)."""
    directory = tmp_path_factory.mktemp("ov_tailed")
    shutil.copytree(tiny_checkpoint(FAMILY, local_vision=True, resample=NEAREST), directory, dirs_exist_ok=True)
    pinpoints = [[60 * i, 60 * j] for i in range(1, 7) for j in range(1, 7)]
    config = json.loads((directory / "config.json").read_text())
    config["vision_config"]["image_size"] = 60
    config["image_grid_pinpoints"] = pinpoints
    (directory / "config.json").write_text(json.dumps(config))
    processor = json.loads((directory / "processor_config.json").read_text())
    processor["image_processor"].update(size={"height": 60, "width": 60}, image_grid_pinpoints=pinpoints)
    (directory / "processor_config.json").write_text(json.dumps(processor))
    return load_adapter(directory, device="cpu")


def real_processor(tokenizer):
    image_processor = LlavaOnevisionImageProcessorPil(size={"height": 384, "width": 384},
                                                      image_grid_pinpoints=REAL_PINPOINTS,
                                                      image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return image_only_processor_class(LlavaOnevisionProcessor)(
        image_processor=image_processor, tokenizer=tokenizer, num_image_tokens=27 * 27,
        vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9")


def test_satisfies_protocol(adapter):
    assert isinstance(adapter, LlavaOnevisionAdapter) and isinstance(adapter, Adapter)
    assert (adapter.family, adapter.multi_image, adapter.num_layers, adapter.base_resolution) == (FAMILY, True, 2, 56)
    assert adapter.tokenizer.convert_ids_to_tokens(adapter.yes_no_ids) == ["Yes", "No"]  # after "assistant\n"


# --- geometry: token counts and where the grid lies in the packed features ----------------------


def _image_features(adapter, image):
    """(inputs, packed features of the image [num_tokens, hidden], projector output
    [1 + crops, p * p, hidden]) for `image` alone in the existence prompt."""
    inputs = adapter.encode([adapter.chat_text(PROMPT.format("cat"), 1)], [image])
    projected = []
    with adapter.edit_image_features(lambda features: projected.append(features.detach().clone())), \
            torch.inference_mode():
        packed = adapter.model.model.get_image_features(
            inputs["pixel_values"], inputs["image_sizes"], batch_num_images=inputs["batch_num_images"]).pooler_output
    (packed,), (projected,) = packed, projected
    return inputs, packed, projected


@pytest.mark.parametrize("size", SIZES)
def test_token_counts_and_packed_layout(adapter, size):
    """The processor's image tokens, the layout and the model's packed features agree; in the
    packed features the base view comes first (the projector's crop 0) and every grid row ends
    in the image_newline embedding; the grid is everything else."""
    image = noise_image(*size)
    layout = adapter.anyres_layout(size)
    prefill = adapter.prefill(image, PROMPT.format("cat"), "cat", [0])
    inputs, packed, projected = _image_features(adapter, image)
    image_positions = (inputs["input_ids"][0] == adapter.image_token_id).nonzero().flatten()
    processor_ids = adapter.processor(text=[adapter.chat_text(PROMPT.format("cat"), 1)], images=[image],
                                      return_tensors="pt")["input_ids"][0]
    assert int((processor_ids == adapter.image_token_id).sum()) == len(image_positions) == layout.num_tokens
    assert packed.shape[0] == layout.num_tokens and prefill.values.shape[2] == inputs["input_ids"].shape[1]
    assert (layout.grid_shape != layout.unpadded_shape) == (size in SHRUNK)
    assert prefill.geometry.grid_shape == layout.grid_shape and prefill.geometry.image_size == size

    base = 16  # p * p = (56 // 14) ** 2
    offsets = (prefill.visual_positions - image_positions[0]).tolist()
    assert set(prefill.visual_positions.tolist()) <= set(image_positions.tolist())
    assert torch.equal(packed[:base], projected[0])
    rest = sorted(set(range(base, layout.num_tokens)) - set(offsets))
    assert torch.equal(packed[rest], adapter.model.model.image_newline.detach().expand(len(rest), -1))
    rows, cols = layout.grid_shape
    assert rest == [base + r * (cols + 1) + cols for r in range(rows)]  # one newline closing each row
    assert offsets == sorted(offsets)


@pytest.mark.parametrize("size, tokens, grid", [
    ((640, 480), 2929, (40, 54)),  # 2 x 2 crops, 7 token rows unpadded on each side
    ((1920, 1080), 7269, (60, 108)),  # 3 x 5 crops, 75 x 135 unpadded, shrunk by r = 1.242
    ((2246, 1582), None, None),  # V*Bench's average size: 5 x 6 crops, shrunk
    ((100, 3000), None, None),  # very tall
    ((559, 1943), None, None),  # 162 x 46 tokens: r = 1.066, just below the shrink threshold
    ((3, 2), None, None),  # far smaller than a crop
])
def test_real_processor_token_counts(adapter, size, tokens, grid):
    processor = real_processor(adapter.tokenizer)
    inputs = processor(text=["<image>Is there a cat?"], images=[[Image.new("RGB", size)]], return_tensors="pt")
    counted = int((inputs["input_ids"] == processor.image_token_id).sum())
    layout = anyres_layout(size, REAL_PINPOINTS, crop_side=384, patch_size=14, max_crops=9)
    assert layout.num_tokens == counted
    assert inputs["pixel_values"].shape[1] == 1 + layout.crops[0] * layout.crops[1]
    if tokens is not None:
        assert (counted, layout.grid_shape) == (tokens, grid)


def _pasted_box(pixel_values, layout):
    """(top, left, height, width) of a white image on the zero canvas the image processor built,
    read from its crops [1, 1 + crops, 3, S, S] (padding normalises below 0, white above)."""
    crop_rows, crop_cols = layout.crops
    side = layout.crop_side
    crops = pixel_values[0, 1:1 + crop_rows * crop_cols, 0]
    canvas = crops.reshape(crop_rows, crop_cols, side, side).permute(0, 2, 1, 3).reshape(crop_rows * side, -1)
    ys, xs = (canvas > 0).nonzero(as_tuple=True)
    return int(ys.min()), int(xs.min()), int(ys.max() - ys.min()) + 1, int(xs.max() - xs.min()) + 1


@pytest.mark.parametrize("size", SIZES)
def test_resize_and_pad_match_the_image_processor(adapter, tailed_adapter, size):
    """Where the image lies on the canvas (paste offset, resized size, best pinpoint) as the image
    processor really builds it, for the tiny configs and the real one."""
    white = Image.new("RGB", size, (255, 255, 255))
    for processor in (adapter.processor, tailed_adapter.processor, real_processor(adapter.tokenizer)):
        image_processor = processor.image_processor
        side = image_processor.size["height"]
        layout = anyres_layout(size, image_processor.image_grid_pinpoints, side, 14, 9)
        pixel_values = image_processor([[white]], return_tensors="pt")["pixel_values"]
        assert pixel_values.shape[1] == 1 + layout.crops[0] * layout.crops[1]
        assert _pasted_box(pixel_values, layout) == (*layout.offset, *layout.resized), side


def test_real_layout_by_hand():
    layout = anyres_layout((640, 480), REAL_PINPOINTS, crop_side=384, patch_size=14, max_crops=9)
    assert (layout.canvas, layout.resized, layout.offset) == ((768, 768), (576, 768), (96, 0))
    assert (layout.rows, layout.cols, layout.grid_shape) == ((7, 47), (0, 54), (40, 54))
    boxes = layout.cell_boxes()
    # token row 7 = canvas rows [98, 112), pasted at 96, scaled by 480 / 576
    np.testing.assert_allclose(boxes[0, 0], [0, 2 * 5 / 6, 14 * 5 / 6, 16 * 5 / 6])
    # column 26 ends crop 0 at canvas 378; column 27 starts crop 1 at 384: 6 px in between are unseen
    np.testing.assert_allclose(boxes[0, 26, [0, 2]], [364 * 5 / 6, 378 * 5 / 6])
    np.testing.assert_allclose(boxes[0, 27, [0, 2]], [384 * 5 / 6, 398 * 5 / 6])
    # last cell: row 46 = crop 1, patch 19; column 53 = crop 1, patch 26
    np.testing.assert_allclose(boxes[-1, -1], [748 * 5 / 6, (650 - 96) * 5 / 6, 762 * 5 / 6, (664 - 96) * 5 / 6])

    shrunk = anyres_layout((1920, 1080), REAL_PINPOINTS, crop_side=384, patch_size=14, max_crops=9)
    assert (shrunk.canvas, shrunk.resized, shrunk.offset) == ((1152, 1920), (1080, 1920), (36, 0))
    assert (shrunk.rows, shrunk.cols, shrunk.unpadded_shape, shrunk.grid_shape) == ((3, 78), (0, 135), (75, 135),
                                                                                    (60, 108))
    boxes = shrunk.cell_boxes()
    # nominal footprints: 75 / 60 = 1.25 token rows and 135 / 108 = 1.25 token columns per cell
    np.testing.assert_allclose(boxes[0, 0], [0, 42 - 36, 1.25 * 14, 3 * 14 + 1.25 * 14 - 36])
    # cell column 21 spans token columns [26.25, 27.5): from crop 0 into crop 1, across the unseen tail
    np.testing.assert_allclose(boxes[0, 21, [0, 2]], [26.25 * 14, 384 + 0.5 * 14])
    # the grid ends with token column 135 (crop 4, patch 26 ends at 1536 + 378) and token row 78
    # (crop 2, patch 23 ends at 768 + 336, pasted at 36)
    np.testing.assert_allclose(boxes[-1, -1, 2:], [1536 + 378, 768 + 336 - 36])


# --- geometry: perturbing pixels -------------------------------------------------------------


def _canvas_grid(projected, layout):
    """Projector output [1 + crops, p*p, hidden] -> the unpadded token grid [h, w, hidden] before the shrink."""
    p = layout.tokens_per_side
    crop_rows, crop_cols = layout.crops
    canvas = projected[1:].reshape(crop_rows, crop_cols, p, p, -1).permute(0, 2, 1, 3, 4)
    canvas = canvas.reshape(crop_rows * p, crop_cols * p, -1)
    return canvas[layout.rows[0]:layout.rows[1], layout.cols[0]:layout.cols[1]]


def _overlaps(boxes, region):
    x0, y0, x1, y1 = region
    return ((np.minimum(boxes[..., 2], x1) > np.maximum(boxes[..., 0], x0))
            & (np.minimum(boxes[..., 3], y1) > np.maximum(boxes[..., 1], y0)))


def _grid_and_unshrunk(adapter, image, layout):
    inputs, packed, projected = _image_features(adapter, image)
    positions, _ = adapter.visual_layout(inputs, image)
    first = int((inputs["input_ids"][0] == adapter.image_token_id).nonzero()[0])
    return packed[positions - first], _canvas_grid(projected, layout)


@pytest.mark.parametrize("tailed", [False, True], ids=["56px-crops", "60px-crops"])
@pytest.mark.parametrize("size", SIZES)
def test_perturbing_a_region_changes_exactly_the_overlapping_cells(local_adapter, tailed_adapter, size, tailed):
    """With no attention mixing in the vision tower and nearest resampling, a pixel reaches only
    the token whose patch it lies in. Before the shrink the changed tokens ARE the tokens whose
    cells (`cell_boxes(unpadded_shape)`) overlap the perturbed region; after it, a grid token
    changes exactly when its bilinear support (the input tokens with non-zero weight) holds a
    changed token, i.e. where the resized indicator of the changed tokens is > 0; grid tokens
    are read at visual_positions in row-major order."""
    adapter = tailed_adapter if tailed else local_adapter
    layout = adapter.anyres_layout(size)
    pixels = np.asarray(noise_image(*size, seed=1))
    reference, reference_unshrunk = _grid_and_unshrunk(adapter, Image.fromarray(pixels), layout)
    boxes = layout.cell_boxes(layout.unpadded_shape)
    centre_x = (boxes[0, :, 0] + boxes[0, :, 2]) / 2
    centre_y = (boxes[:, 0, 1] + boxes[:, 0, 3]) / 2
    rows, cols = layout.unpadded_shape
    tested = 0
    for fractions in [(0, 0, 0.4, 0.5), (0.3, 0.3, 0.9, 0.8), (0.5, 0, 1, 0.3), (0, 0.6, 1, 1)]:
        r0, c0, r1, c1 = (round(f * (n - 1)) for f, n in zip(fractions, (rows, cols, rows, cols)))
        # from the centre of cell (r0, c0) to the centre of cell (r1, c1): no sliver overlaps
        region = (round(max(centre_x[c0], 0)), round(max(centre_y[r0], 0)),
                  round(min(centre_x[c1], size[0])), round(min(centre_y[r1], size[1])))
        x0, y0, x1, y1 = region
        if x1 <= x0 or y1 <= y0:  # a grid one cell high or wide: this pair of centres coincides
            continue
        perturbed = pixels.copy()
        perturbed[y0:y1, x0:x1] = (perturbed[y0:y1, x0:x1].astype(int) + 128) % 256
        grid, unshrunk = _grid_and_unshrunk(adapter, Image.fromarray(perturbed), layout)
        overlaps = _overlaps(boxes, region)
        assert 0 < overlaps.sum() < overlaps.size
        changed_unshrunk = ((unshrunk - reference_unshrunk).abs().amax(-1) > 1e-6).numpy()
        np.testing.assert_array_equal(changed_unshrunk, overlaps, err_msg=f"before the shrink, region {region}")
        support = F.interpolate(torch.tensor(overlaps, dtype=torch.float32)[None, None], size=layout.grid_shape,
                                mode="bilinear")[0, 0] > 0
        changed = ((grid - reference).abs().amax(-1) > 1e-6).reshape(layout.grid_shape).numpy()
        np.testing.assert_array_equal(changed, support.numpy(), err_msg=f"grid, region {region}")
        if layout.grid_shape == layout.unpadded_shape:
            np.testing.assert_array_equal(changed, overlaps)
        tested += 1
    assert tested >= 2


@pytest.mark.parametrize("size", [(300, 300), (1000, 150)])
def test_crop_tail_pixels_reach_no_token(tailed_adapter, size):
    """Pixels that only the unseen tail of a crop shows (canvas columns 56-60 of each 60 px crop)
    lie in no cell and change no local token; one more canvas column on each side changes some."""
    layout = tailed_adapter.anyres_layout(size)
    assert layout.offset[1] == 0 and layout.resized[1] == layout.canvas[1]  # no horizontal padding
    scale = size[0] / layout.resized[1]  # original pixels per canvas pixel
    x0, x1 = 56 * scale, 60 * scale  # the tail of the first crop column
    tail = (int(np.ceil(x0)), 0, int(np.floor(x1)), size[1])
    wider = (int(np.floor(55 * scale)), 0, int(np.ceil(61 * scale)), size[1])
    pixels = np.asarray(noise_image(*size, seed=2))
    reference, _ = _grid_and_unshrunk(tailed_adapter, Image.fromarray(pixels), layout)
    boxes = layout.cell_boxes(layout.unpadded_shape)
    for region, expect_change in ((tail, False), (wider, True)):
        assert region[2] > region[0]
        perturbed = pixels.copy()
        perturbed[:, region[0]:region[2]] = 255 - perturbed[:, region[0]:region[2]]
        grid, _ = _grid_and_unshrunk(tailed_adapter, Image.fromarray(perturbed), layout)
        changed = bool(((grid - reference).abs().amax(-1) > 1e-6).any())
        assert changed == expect_change == bool(_overlaps(boxes, region).any()), region


# --- multi-image prompts ------------------------------------------------------------------------


def test_several_images_in_one_prompt_have_no_anyres(adapter):
    """A prompt with several images: each is one padded square, p*p tokens + one newline, and
    the vision tower runs once per image; alone, each image would get its anyres layout."""
    images = [noise_image(640, 480, 1), noise_image(80, 300, 2), noise_image(30, 30, 3)]
    text = adapter.chat_text("Describe the image.", num_images=3)
    inputs = adapter.encode([text], images)
    assert int((inputs["input_ids"] == adapter.image_token_id).sum()) == 3 * (16 + 1)
    assert inputs["batch_num_images"].tolist() == [3] and inputs["pixel_values"].shape[:2] == (3, 1)
    assert adapter.num_crops(inputs) == 3
    alone = [adapter.anyres_layout(image.size) for image in images]
    assert all(layout.num_tokens > 17 for layout in alone)
    encoded = []  # images per vision-tower call
    hook = adapter.model.model.vision_tower.register_forward_pre_hook(
        lambda module, args, kwargs: encoded.append((args[0] if args else kwargs["pixel_values"]).shape[0]),
        with_kwargs=True)
    try:
        with torch.inference_mode():
            adapter.model(**inputs)
    finally:
        hook.remove()
    assert encoded == [3]  # one 384-px square per image, no anyres crops
    reply = adapter.generate(images, "Describe the image.", 4)
    assert reply.cost.tokens >= inputs["input_ids"].shape[1]
    real = real_processor(adapter.tokenizer)
    counted = real(text=["<image><image>Is there a cat?"], images=[[Image.new("RGB", (640, 480)),
                                                                   Image.new("RGB", (1920, 1080))]],
                   return_tensors="pt")["input_ids"]
    assert int((counted == real.image_token_id).sum()) == 2 * (27 * 27 + 1)
    with pytest.raises(ValueError, match="reference 3 images, 2 given"):
        adapter.encode([text], images[:2])


def test_each_image_alone_keeps_every_images_anyres_layout(adapter):
    """The final input's crops as their existence checks saw them: each image of the prompt gets
    the token layout (base view + anyres crops) it has alone, in order."""
    images = [noise_image(640, 480, 1), noise_image(80, 300, 2), noise_image(30, 30, 3)]
    text = adapter.chat_text("Describe the image.", num_images=3)
    inputs = adapter.encode([text], images, each_image_alone=True)
    alone = [adapter.anyres_layout(image.size) for image in images]
    assert int((inputs["input_ids"] == adapter.image_token_id).sum()) == sum(layout.num_tokens for layout in alone)
    assert inputs["batch_num_images"].tolist() == [1, 1, 1]
    assert adapter.num_crops(inputs) == sum(1 + layout.crops[0] * layout.crops[1] for layout in alone)
    with torch.inference_mode():
        logits = adapter.model(**inputs).logits
    assert torch.isfinite(logits).all()
    first = adapter.encode([adapter.chat_text("Describe the image.", 1)], images[:1])
    assert int((first["input_ids"] == adapter.image_token_id).sum()) == alone[0].num_tokens


def test_interleaved_texts_follow_their_images(adapter):
    images = [noise_image(200, 120, 4), noise_image(64, 64, 5)]
    texts = ["Image 1 is the full image.", "Image 2 is an enlarged view of the region with the cat."]
    chat = adapter.chat_text("What is the color of the cat?", 2, texts)
    assert adapter.image_placeholder == adapter.processor.image_token
    first, second = chat.index(adapter.image_placeholder), chat.rindex(adapter.image_placeholder)
    assert first < chat.index(texts[0]) < second < chat.index(texts[1]) < chat.index("What is the color")
    inputs = adapter.encode([chat], images, each_image_alone=True)
    ids = inputs["input_ids"][0].tolist()
    image_id = adapter.image_token_id
    runs = [i for i in range(len(ids)) if ids[i] == image_id and (i == 0 or ids[i - 1] != image_id)]
    assert len(runs) == 2
    between = adapter.tokenizer.decode([t for t in ids[runs[0]:runs[1]] if t != image_id])
    assert texts[0] in between
    reply = adapter.generate(images, "What is the color of the cat?", 3, image_texts=texts, each_image_alone=True)
    assert reply.cost.tokens >= len(ids)
    scored = adapter.option_scores(images, "What is the color of the cat?", ["red", "blue"], image_texts=texts)
    assert scored.token_counts == [len(adapter.tokenizer("red", add_special_tokens=False)["input_ids"]),
                                   len(adapter.tokenizer("blue", add_special_tokens=False)["input_ids"])]
    with pytest.raises(AdapterInputError, match="1 image texts for 2 images"):
        adapter.chat_text("q", 2, texts[:1])


def test_option_scores_with_several_images(adapter):
    images = [noise_image(200, 120, 4), noise_image(64, 64, 5)]
    scored = adapter.option_scores(images, "What is the color of the car?", ["red", "blue"])
    assert len(scored.scores) == 2 and all(np.isfinite(scored.scores))
    text = adapter.chat_text("What is the color of the car?", 2) + "red"
    inputs = adapter.encode([text], images)
    with torch.inference_mode():
        log_probs = torch.log_softmax(adapter.model(**inputs).logits[0].float(), -1)
    ids = inputs["input_ids"][0]
    n = len(adapter.tokenizer("red", add_special_tokens=False)["input_ids"])
    expected = sum(float(log_probs[t - 1, ids[t]]) for t in range(len(ids) - n, len(ids)))
    assert scored.scores[0] == pytest.approx(expected, abs=1e-4)


# --- existence checks ----------------------------------------------------------------------------


def test_batched_yes_no_of_different_crop_sizes_equals_one_by_one(adapter):
    """Crops with different anyres token counts in one forward: left padding, positions that skip
    it, the padding crops of the batch dropped by the model: the same confidences as alone."""
    images = [noise_image(300, 200, 3), noise_image(50, 400, 4), noise_image(640, 480, 5), noise_image(20, 20, 6)]
    counts = {adapter.anyres_layout(image.size).num_tokens for image in images}
    assert len(counts) == len(images)
    prompts = [PROMPT.format("cat"), "Is there a traffic light in the image?",
               PROMPT.format("white dog near a bench"), PROMPT.format("dog")]
    single = assert_batched_yes_no_equals_one_by_one(adapter, images, prompts)
    prefill = adapter.prefill(images[2], prompts[2], "white dog", [0])
    torch.testing.assert_close(prefill.yes_no, single[2], atol=1e-5, rtol=0)


# --- K-K ablation and attention implementations ------------------------------------------------


def test_keys_have_rope_undone(adapter):
    """Prefill keys equal the k_proj outputs (keys before RoPE) of the same forward."""
    captured = {}
    layers = adapter.language_model.layers
    hooks = [layers[i].self_attn.k_proj.register_forward_hook(
        lambda module, args, output, i=i: captured.__setitem__(i, output.detach().clone())) for i in (0, 1)]
    try:
        prefill = adapter.prefill(noise_image(333, 217), PROMPT.format("red car"), "red car", [0, 1], with_keys=True)
    finally:
        for hook in hooks:
            hook.remove()
    heads, head_dim = prefill.keys.shape[1], prefill.keys.shape[3]
    for index, layer in enumerate((0, 1)):
        expected = captured[layer][0].reshape(-1, heads, head_dim).transpose(0, 1)  # [kv_heads, seq, head_dim]
        torch.testing.assert_close(prefill.keys[index], expected.float(), atol=1e-5, rtol=1e-5)
    inputs = adapter.encode([adapter.chat_text(PROMPT.format("red car"), 1)], [noise_image(333, 217)])
    cached = kv_cache(adapter.forward(inputs, use_cache=True)).layers[1].keys[0]  # rotated: RoPE did change them
    assert cached.shape == prefill.keys[1].shape and not torch.allclose(cached.float(), prefill.keys[1], atol=1e-3)


def test_sdpa_and_eager_agree(tiny_adapter):
    assert_attention_implementations_agree(partial(tiny_adapter, FAMILY), noise_image(640, 480), "red car")


# --- relevance planting ----------------------------------------------------------------------------

PLANTS = [  # image size, planted block of the unpadded grid before the shrink (fractions r0, c0, r1, c1)
    ((600, 600), (0.1, 0.1, 0.45, 0.45)),  # 24 x 24 tokens shrunk to 12 x 12
    ((600, 600), (0.55, 0.5, 0.9, 0.85)),
    ((900, 450), (0.3, 0.6, 0.8, 0.8)),  # wide
    ((300, 600), (0.6, 0.2, 0.8, 0.7)),  # tall
    ((200, 160), (0.1, 0.5, 0.6, 0.95)),  # no shrink
]


@pytest.mark.parametrize("size, fractions", PLANTS)
def test_planted_target_features_drive_relevance_and_top_roi(adapter, size, fractions):
    """The projected features of a block of local tokens replaced by the target word's input
    embedding: the Fig. 7 map peaks on a grid token the block reaches, and after the config's
    Gaussian filter and downsampling the top proposal is anchored there and centred on it."""
    layout = adapter.anyres_layout(size)
    rows, cols = layout.unpadded_shape
    r0, c0, r1, c1 = (round(f * n) for f, n in zip(fractions, (rows, cols, rows, cols)))
    planted = torch.zeros(rows, cols, dtype=torch.bool)
    planted[r0:r1, c0:c1] = True
    # grid tokens the block reaches through the shrink (all of them when there is none)
    reached = (F.interpolate(planted.float()[None, None], size=layout.grid_shape, mode="bilinear")[0, 0] > 0).numpy()
    (target_token,) = adapter.tokenizer(" umbrella", add_special_tokens=False)["input_ids"]
    embedding = adapter.model.get_input_embeddings().weight[target_token].detach()
    p = layout.tokens_per_side
    crop_rows, crop_cols = layout.crops

    def plant(features):  # [1 + crops, p * p, hidden], crop 0 is the base view
        canvas = torch.zeros(crop_rows * p, crop_cols * p, dtype=torch.bool)
        canvas[layout.rows[0]:layout.rows[1], layout.cols[0]:layout.cols[1]] = planted
        mask = canvas.reshape(crop_rows, p, crop_cols, p).permute(0, 2, 1, 3).reshape(-1, p * p)
        features = features.clone()
        features[1:][mask] = embedding
        return features

    config = load_config(FAMILY)
    layers = config.layer_range(adapter.num_layers)
    assert list(layers) == [1]  # 21-28 of 28 scaled to 2 layers
    with adapter.edit_image_features(plant):
        prefill = adapter.prefill(noise_image(*size), PROMPT.format("umbrella"), "umbrella", layers)
    assert len(prefill.target_positions) == 1
    scores = assert_not_uniform(prefill.values, prefill.target_positions, prefill.visual_positions)
    grid = to_grid(scores, prefill.geometry.grid_shape)
    assert reached[np.unravel_index(np.argmax(grid), grid.shape)]

    smoothed = smooth_and_downsample(grid, config.gaussian_sigma, config.downsample)
    geometry = downsample_geometry(prefill.geometry, config.downsample)
    top = propose_rois(smoothed, geometry, config)[0]
    boxes = layout.cell_boxes(layout.unpadded_shape)[r0:r1, c0:c1]
    region = (boxes[..., 0].min(), boxes[..., 1].min(), boxes[..., 2].max(), boxes[..., 3].max())
    anchor = geometry.cell_boxes[top.anchor]
    assert _overlaps(anchor, region)
    x0, y0, x1, y1 = top.box
    cell_w, cell_h = anchor[2] - anchor[0], anchor[3] - anchor[1]  # one downsampled cell of slack
    assert region[0] - cell_w <= (x0 + x1) / 2 <= region[2] + cell_w
    assert region[1] - cell_h <= (y0 + y1) / 2 <= region[3] + cell_h


# --- FLOPs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("call", ["prefill", "yes_no", "generate_multi_image", "generate_text_only",
                                  "option_scores_multi_image", "generate_each_image_alone"])
def test_flops_match_measured(adapter, call):
    shrunk, small = noise_image(640, 480), noise_image(90, 60)
    assert adapter.anyres_layout(shrunk.size).grid_shape != adapter.anyres_layout(shrunk.size).unpadded_shape
    calls = {
        "prefill": lambda: adapter.prefill(shrunk, PROMPT.format("red car"), "red car", [0, 1]),
        "yes_no": lambda: adapter.yes_no_logits([small], [PROMPT.format("cat")]),
        "generate_multi_image": lambda: adapter.generate([shrunk, small, small], "Describe the image.", 5),
        "generate_text_only": lambda: adapter.generate([], "Describe the image.", 5),
        "option_scores_multi_image": lambda: adapter.option_scores([shrunk, small], "What is the color?",
                                                                   ["red", "blue bag"]),
        "generate_each_image_alone": lambda: adapter.generate([shrunk, small], "Describe the image.", 5,
                                                              image_texts=["a", "b"], each_image_alone=True),
    }
    result, measured = measure_flops(calls[call])
    assert measured > 0
    assert abs(result.cost.flops - measured) / measured < 0.02, (result.cost.flops, measured)


# --- a whole FOCUS question --------------------------------------------------------------------------


class CountingAdapter:
    """Forwards to the adapter and counts the passes and model calls the pipeline makes."""

    def __init__(self, adapter):
        self.adapter = adapter
        self.passes = {"prefill": 0, "yes_no": 0, "generate": 0, "option_scores": 0}
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self.adapter, name)

    def prefill(self, *args, **kwargs):
        self.passes["prefill"] += 1
        self.calls += 1
        return self.adapter.prefill(*args, **kwargs)

    def yes_no_logits(self, images, prompts):
        self.passes["yes_no"] += len(prompts)
        self.calls += 1
        return self.adapter.yes_no_logits(images, prompts)

    def generate(self, *args, **kwargs):
        self.passes["generate"] += 1
        self.calls += 1
        return self.adapter.generate(*args, **kwargs)


@pytest.mark.parametrize("question, question_type", [
    ("What is the color of the umbrella?\n(A) red (B) blue\nAnswer with the option's letter from the given "
     "choices directly.", 1),
    ("How many dogs are there in the image?\n(A) 1 (B) 2\nAnswer with the option's letter from the given "
     "choices directly.", 2),
])
def test_focus_pipeline_runs_and_counts_its_passes(adapter, question, question_type):
    counting = CountingAdapter(adapter)
    # t_type2 = -1: a type-2 target keeps every checked ROI, so the answer sees several crops
    config = load_config(FAMILY, "vstar", n_steps=2, target_max_new_tokens=8, t_type2=-1.0)
    result = Pipeline(counting, config).answer(noise_image(640, 480, seed=7), question, max_new_tokens=4)
    trace = result.trace
    assert trace.question_type == question_type and trace.targets and trace.error is None
    counters = trace.counters
    assert counters.fp == counting.passes["prefill"] + counting.passes["yes_no"] > 1
    assert counters.fp_targets + counters.fp_answer == counting.passes["generate"]
    assert (counters.fp_targets, counters.fp_answer) == (1, 1)
    assert counters.batches == counting.calls
    assert counters.flops > 0
    # the outlined global view and the crops, as separate images: a multi-image prompt
    assert trace.final_layout == "global+crops" and len(result.final_images) == len(trace.final_boxes) >= 2


# --- bad checkpoints ---------------------------------------------------------------------------------


@pytest.mark.parametrize("edit, message", [
    (lambda config, processor: processor["image_processor"].update(image_grid_pinpoints=[[56, 56], [56, 112]]),
     "disagrees with the model"),
    (lambda config, processor: config.update(vision_aspect_ratio="anyres"), "anyres_max_N"),
    (lambda config, processor: config.update(vision_feature_select_strategy="default"), "'full'"),
])
def test_inconsistent_checkpoints_are_refused(tiny_checkpoint, tmp_path, edit, message):
    shutil.copytree(tiny_checkpoint(FAMILY), tmp_path, dirs_exist_ok=True)
    config = json.loads((tmp_path / "config.json").read_text())
    processor = json.loads((tmp_path / "processor_config.json").read_text())
    edit(config, processor)
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "processor_config.json").write_text(json.dumps(processor))
    with pytest.raises(ValueError, match=message):
        load_adapter(tmp_path, device="cpu")


def test_missing_image_or_empty_grid_is_a_clear_error(adapter):
    with pytest.raises(AdapterInputError, match="needs an image"):
        adapter.prefill(None, PROMPT.format("cat"), "cat", [0])
    # 4 token rows (an even number, unlike OneVision's 27) and a 2000 x 13 image: unpadding keeps none
    assert adapter.anyres_layout((2000, 13)).unpadded_shape == (0, 24)
    with pytest.raises(AdapterInputError, match="keeps no local token"):
        adapter.prefill(noise_image(2000, 13), PROMPT.format("cat"), "cat", [0])
    # real sizes keep at least one row: 27 rows per crop is odd
    assert anyres_layout((2000, 13), REAL_PINPOINTS, crop_side=384, patch_size=14, max_crops=9).grid_shape == (1, 162)
