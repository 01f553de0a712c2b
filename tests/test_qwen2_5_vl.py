"""Qwen2.5-VL adapter on tiny offline checkpoints: merged-patch geometry over the smart-resized
image, mRoPE (positions, padding, key un-rotation), multi-image prompts, relevance planting,
batching, attention implementations, FLOPs and a full FOCUS run.

The tiny image processor keeps min_pixels = 28^2 and max_pixels = 224^2 (1 to 64 tokens)."""

from functools import partial

import numpy as np
import pytest
import torch
from PIL import Image

from adapter_checks import (
    assert_attention_implementations_agree,
    assert_batched_yes_no_equals_one_by_one,
    assert_cost_matches_measured,
    assert_planted_target_found,
    noise_image,
    one_batch,
)
from focus_eval.config import load_config
from focus_eval.model_wrappers import load_adapter
from focus_eval.model_wrappers.base import AdapterInputError, kv_cache, unrotate
from focus_eval.model_wrappers.flops import measure_flops
from focus_eval.model_wrappers.qwen2_5_vl import Qwen25VLAdapter
from focus_eval.pipeline import Pipeline
from focus_eval.protocol import Adapter

FAMILY = "qwen2_5_vl"
PROMPT = "Is there a {} in the image? Answer Yes or No."
NEAREST = 0
BLOCK = 28  # resized pixels per token side
# (width, height) -> token grid (rows, cols) = smart_resize(h, w) / 28, worked out by hand
GRIDS = {
    (2000, 40): (1, 56),  # very wide: 1568x28
    (1000, 150): (3, 20),  # wide, over max_pixels: beta = sqrt(150000 / 50176), 560x84
    (120, 900): (21, 2),  # very tall, over max_pixels: 56x588
    (9, 6): (1, 2),  # smaller than one block, under min_pixels: beta = sqrt(784 / 54), 56x28
    (1, 1): (1, 1),  # one pixel: 28x28
    (640, 480): (6, 9),  # large, over max_pixels: 252x168
    (224, 224): (8, 8),  # exactly max_pixels
    (57, 101): (4, 2),  # odd: rounded to 56x112
}


@pytest.fixture(scope="module")
def adapter(tiny_adapter):
    return tiny_adapter(FAMILY)


def test_satisfies_protocol(adapter):
    assert isinstance(adapter, Qwen25VLAdapter) and isinstance(adapter, Adapter)
    assert (adapter.family, adapter.multi_image, adapter.max_images, adapter.num_layers) == ("qwen2_5_vl", True, None, 2)
    assert adapter.base_resolution == 224  # isqrt(max_pixels) in whole blocks
    assert adapter.tokenizer.convert_ids_to_tokens(adapter.yes_no_ids) == ["Yes", "No"]  # after "assistant\n"


# --- geometry ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", GRIDS)
def test_visual_tokens_match_processor(adapter, size):
    image = noise_image(*size)
    prefill = adapter.prefill(image, PROMPT.format("cat"), "cat", [0])
    text = adapter.chat_text(PROMPT.format("cat"), num_images=1)
    processed = adapter.processor(text=[text], images=[image], return_tensors="pt")
    input_ids = processed["input_ids"][0]
    rows, cols = GRIDS[size]
    assert processed["image_grid_thw"][0].tolist() == [1, 2 * rows, 2 * cols]
    image_positions = (input_ids == adapter.image_token_id).nonzero().flatten()
    assert prefill.visual_positions.tolist() == image_positions.tolist()
    assert prefill.visual_positions.tolist() == list(range(image_positions[0], image_positions[0] + rows * cols))
    assert input_ids[image_positions[0] - 1] == adapter.config.vision_start_token_id
    assert input_ids[image_positions[-1] + 1] == adapter.config.vision_end_token_id
    assert prefill.geometry.grid_shape == (rows, cols) and prefill.geometry.image_size == size
    assert prefill.values.shape[2] == len(input_ids)


def test_cell_boxes_by_hand(adapter):
    # 9x6 -> 56x28: token (0, c) is resized columns [28c, 28c + 28), 9/56 original pixels each
    image = noise_image(9, 6)
    boxes = adapter.prefill(image, PROMPT.format("cat"), "cat", [0]).geometry.cell_boxes
    np.testing.assert_allclose(boxes[0], [[0, 0, 4.5, 6], [4.5, 0, 9, 6]])
    # 1000x150 -> 560x84: 50 original columns and 50 original rows per token
    boxes = adapter.prefill(noise_image(1000, 150), PROMPT.format("cat"), "cat", [0]).geometry.cell_boxes
    np.testing.assert_allclose(boxes[1, 3], [150, 50, 200, 100])
    np.testing.assert_allclose(boxes[-1, -1], [950, 100, 1000, 150])


def _features(adapter, image):
    captured = []
    with adapter.edit_image_features(lambda features: captured.append(features.detach().clone())):
        prefill = adapter.prefill(image, PROMPT.format("cat"), "cat", [0])
    (features,) = captured
    return features, prefill.geometry  # [tokens, hidden]


def _sample_points(starts, ends):
    """[n, 28] source coordinates the 28 resized pixels of each cell read along one axis: nearest
    resampling maps resized pixel x to source pixel floor((x + 0.5) W / W'), i.e. the points
    start + (k + 0.5) (end - start) / 28 of a cell spanning [start, end)."""
    return starts[:, None] + (np.arange(BLOCK) + 0.5) * (ends - starts)[:, None] / BLOCK


@pytest.mark.parametrize("size", [size for size, grid in GRIDS.items() if grid != (1, 1)])
def test_perturbing_a_region_changes_exactly_the_tokens_that_sample_it(tiny_adapter, size):
    """Vision tower without attention mixing (each token sees only its own 2x2 patches) and
    nearest resampling. Exact criterion: a token changes iff the perturbed pixel box holds the
    source pixel of at least one of its 28x28 resized pixels; those are the centres of a 28x28
    sub-grid of the token's cell box, so the expected set follows from the geometry alone.
    Boxes are random: their edges cut cells anywhere."""
    adapter = tiny_adapter(FAMILY, local_vision=True, resample=NEAREST)
    width, height = size
    pixels = np.asarray(noise_image(*size, seed=1))
    reference, geometry = _features(adapter, Image.fromarray(pixels))
    boxes = geometry.cell_boxes
    columns = _sample_points(boxes[0, :, 0], boxes[0, :, 2])  # [cols, 28]
    rows = _sample_points(boxes[:, 0, 1], boxes[:, 0, 3])  # [rows, 28]
    rng = np.random.RandomState(width * height)
    tested = splitting = 0
    while tested < 12:
        x0, x1 = sorted(rng.choice(width + 1, 2, replace=False))
        y0, y1 = sorted(rng.choice(height + 1, 2, replace=False))
        if any(np.abs(points - edge).min() < 1e-6 for points, edges in ((columns, (x0, x1)), (rows, (y0, y1)))
               for edge in edges):
            continue  # a sample point on an edge: the float rounding of the resize would decide
        perturbed = pixels.copy()
        perturbed[y0:y1, x0:x1] = (perturbed[y0:y1, x0:x1].astype(int) + 128) % 256
        features, _ = _features(adapter, Image.fromarray(perturbed))
        changed = ((features - reference).abs().amax(-1) > 1e-6).reshape(geometry.grid_shape).numpy()
        expected = (((columns >= x0) & (columns < x1)).any(-1)[None, :]
                    & ((rows >= y0) & (rows < y1)).any(-1)[:, None])
        np.testing.assert_array_equal(changed, expected, err_msg=f"box {(x0, y0, x1, y1)}")
        tested += 1
        splitting += 0 < expected.sum() < expected.size
    assert splitting >= 6  # boxes that split the grid into changed and unchanged tokens


# transformers also replays processor kwargs at every call (via the tokenizer's init kwargs), where
# 5.23 still honours min/max_pixels with this warning; the image processor's own size is set too.
@pytest.mark.filterwarnings("ignore:Passing `min_pixels` and `max_pixels`:FutureWarning")
def test_min_and_max_pixels_pass_through_load_adapter(tiny_checkpoint, adapter):
    """lmms-eval's Qwen2.5-VL settings, as processor kwargs of load_adapter."""
    wide = load_adapter(tiny_checkpoint(FAMILY), device="cpu", min_pixels=256 * 28 * 28, max_pixels=1605632)
    size = wide.processor.image_processor.size
    assert (size["shortest_edge"], size["longest_edge"]) == (256 * 28 * 28, 1605632)
    assert wide.base_resolution == 1260
    # (width, height) -> grid: 100x80 is raised to min_pixels (504x420), 3000x2000 lowered to max_pixels (1540x1008)
    for (width, height), grid, default_grid in [((100, 80), (15, 18), (3, 4)), ((3000, 2000), (36, 55), (6, 9))]:
        image = noise_image(width, height)
        texts = [wide.chat_text("Describe the image.", 1)]
        positions, geometry = wide.visual_layout(wide.encode(texts, [image]), image)
        assert geometry.grid_shape == grid and len(positions) == grid[0] * grid[1]
        assert adapter.visual_layout(adapter.encode(texts, [image]), image)[1].grid_shape == default_grid
    prefill = wide.prefill(noise_image(100, 80), PROMPT.format("cat"), "cat", [1])
    assert prefill.geometry.grid_shape == (15, 18) and torch.isfinite(prefill.values).all()


# --- mRoPE: the processor's outputs reach every forward -----------------------------------------


def test_forward_equals_the_model_on_the_processor_outputs(adapter):
    image, prompt = noise_image(200, 150), PROMPT.format("cat")
    prefill = adapter.prefill(image, prompt, "cat", [0, 1])
    processed = adapter.processor(text=[adapter.chat_text(prompt, 1)], images=[image], return_tensors="pt")
    assert "mm_token_type_ids" in processed
    with torch.inference_mode():
        out = adapter.model(**processed, use_cache=True)
        without = adapter.model(**{k: v for k, v in processed.items() if k != "mm_token_type_ids"})
    torch.testing.assert_close(prefill.yes_no, out.logits[0, -1, adapter.yes_no_ids], atol=1e-5, rtol=0)
    torch.testing.assert_close(prefill.values[1], kv_cache(out).layers[1].values[0], atol=1e-5, rtol=0)
    # the trap: without mm_token_type_ids the model silently uses 1-D positions
    assert (without.logits[0, -1] - out.logits[0, -1]).abs().max() > 1e-3


def _forward_kwargs(adapter, call):
    """The keyword arguments of every model forward that `call()` makes."""
    seen = []
    hook = adapter.model.register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs), with_kwargs=True)
    try:
        call()
    finally:
        hook.remove()
    return seen


def test_every_call_passes_all_processor_outputs(adapter):
    images, prompt = [noise_image(90, 60), noise_image(40, 120)], PROMPT.format("cat")
    calls = {
        "prefill": lambda: adapter.prefill(images[0], prompt, "cat", [0]),
        "yes_no": lambda: adapter.yes_no_logits(images, [prompt] * 2),
        "option_scores": lambda: adapter.option_scores(images, "What is the color?", ["red"]),
        "generate": lambda: adapter.generate(images, "Describe the image.", 2),
    }
    for name, call in calls.items():
        with one_batch(adapter):
            seen = _forward_kwargs(adapter, call)
        first = seen[0]  # generate: the prompt step
        assert first.get("mm_token_type_ids") is not None, name
        if name != "generate":  # generate computes positions and image features before its first step
            for key in ("attention_mask", "pixel_values", "image_grid_thw"):
                assert first.get(key) is not None, (name, key)
            assert first["position_ids"] is None and len(seen) == 1  # the model computes the mRoPE positions


def _greedy_without_cache(adapter, inputs, steps):
    """Argmax decoding that re-runs the whole sequence every step, so the model recomputes the
    mRoPE positions from scratch: [steps] new token ids."""
    ids, types = inputs["input_ids"], inputs["mm_token_type_ids"]
    for _ in range(steps):
        with torch.inference_mode():
            logits = adapter.model(**{**inputs, "input_ids": ids, "mm_token_type_ids": types,
                                      "attention_mask": torch.ones_like(ids)}).logits
        ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        types = torch.cat([types, torch.zeros_like(types[:, :1])], dim=1)
    return ids[0, inputs["input_ids"].shape[1]:]


def test_generate_is_greedy_with_mrope_positions(adapter):
    images = [noise_image(120, 80), noise_image(60, 90, seed=1)]
    generation = adapter.generate(images, "Describe the image.", 6)
    reply = _greedy_without_cache(adapter, adapter.encode([adapter.chat_text("Describe the image.", 2)], images), 6)
    assert adapter.tokenizer.decode(reply, skip_special_tokens=True).strip() == generation.text
    # text only, right after a call with images: no stale mRoPE offsets carried over
    text_only = adapter.generate([], "Describe the image.", 6)
    reply = _greedy_without_cache(adapter, adapter.encode([adapter.chat_text("Describe the image.", 0)], []), 6)
    assert adapter.tokenizer.decode(reply, skip_special_tokens=True).strip() == text_only.text


def test_multi_image_prompt_token_count(adapter):
    """Global view + crops as separate images: each brings its own grid between
    vision_start / vision_end, in order, and the sequence grows by exactly those tokens."""
    images = [noise_image(640, 480), noise_image(120, 900, seed=1), noise_image(9, 6, seed=2)]
    text = adapter.chat_text("Describe the image.", num_images=3)
    assert text.count("<|vision_start|><|image_pad|><|vision_end|>") == 3
    input_ids = adapter.encode([text], images)["input_ids"][0]
    grids = [GRIDS[image.size] for image in images]
    text_only = adapter.encode([adapter.chat_text("Describe the image.", 0)], [])["input_ids"][0]
    assert len(input_ids) == len(text_only) + sum(2 + rows * cols for rows, cols in grids)  # 2: start, end
    is_image = (input_ids == adapter.image_token_id).int()
    runs = torch.diff(torch.cat([torch.zeros(1, dtype=torch.int), is_image, torch.zeros(1, dtype=torch.int)]))
    starts, ends = (runs == 1).nonzero().flatten(), (runs == -1).nonzero().flatten()
    assert (ends - starts).tolist() == [rows * cols for rows, cols in grids]
    generation = adapter.generate(images, "Describe the image.", 3)
    assert generation.cost.tokens == len(input_ids) + 3
    # interleaved: each image followed by its text; native resolution either way
    texts = ["Image 1 is the full image.", "Image 2 is a crop.", "Image 3 is another crop."]
    chat = adapter.chat_text("Describe the image.", 3, texts)
    assert adapter.image_placeholder == "<|vision_start|><|image_pad|><|vision_end|>"
    assert chat.index(texts[0]) < chat.index(adapter.image_placeholder + "\n" + texts[1])
    interleaved = adapter.encode([chat], images, each_image_alone=True)["input_ids"][0]
    assert int((interleaved == adapter.image_token_id).sum()) == int(is_image.sum())
    assert adapter.generate(images, "Describe the image.", 2, image_texts=texts).text is not None


# --- mRoPE: padding and key un-rotation ----------------------------------------------------------


def test_batched_yes_no_equals_one_by_one(adapter):
    """Crops of different sizes, hence different token counts and left padding, in one forward."""
    images = [noise_image(300, 200, seed=3), noise_image(50, 400, seed=4), noise_image(9, 6, seed=5),
              noise_image(224, 224, seed=6)]
    prompts = [PROMPT.format("cat"), "Is there a traffic light in the image?", PROMPT.format("white dog"),
               PROMPT.format("cat")]
    assert_batched_yes_no_equals_one_by_one(adapter, images, prompts)
    # the mRoPE positions of each padded row are those of the row alone
    inputs = adapter.encode([adapter.chat_text(p, 1) for p in prompts], images)
    mask = inputs["attention_mask"].bool()
    assert not mask.all()  # the batch is padded
    positions, _ = adapter.model.model.get_rope_index(
        inputs["input_ids"], inputs["mm_token_type_ids"], image_grid_thw=inputs["image_grid_thw"],
        attention_mask=inputs["attention_mask"])  # [3, batch, seq]
    for row, (image, prompt) in enumerate(zip(images, prompts)):
        alone = adapter.encode([adapter.chat_text(prompt, 1)], [image])
        expected, _ = adapter.model.model.get_rope_index(alone["input_ids"], alone["mm_token_type_ids"],
                                                         image_grid_thw=alone["image_grid_thw"])
        assert torch.equal(positions[:, row, mask[row]], expected[:, 0])
        rows, cols = GRIDS.get(image.size, (None, None))
        if rows is not None:  # image tokens: (s, s + r, s + c) on the token grid
            visual = expected[:, 0, alone["input_ids"][0] == adapter.image_token_id]  # [3, rows * cols]
            start = int(visual[0, 0])
            assert visual[1].tolist() == [start + r for r in range(rows) for _ in range(cols)]
            assert visual[2].tolist() == [start + c for _ in range(rows) for c in range(cols)]


def test_unrotated_keys_are_the_key_projections(adapter):
    captured = {}
    layer = adapter.language_model.layers[1]
    hook = layer.self_attn.k_proj.register_forward_hook(lambda m, args, out: captured.update(k=out.detach()))
    image = noise_image(200, 150)
    try:
        prefill = adapter.prefill(image, PROMPT.format("cat"), "cat", [1], with_keys=True)
    finally:
        hook.remove()
    kv_heads, seq, head_dim = prefill.keys.shape[1:]
    projected = captured["k"][0].view(seq, kv_heads, head_dim).transpose(0, 1)  # [kv_heads, seq, head_dim]
    torch.testing.assert_close(prefill.keys[0], projected, atol=1e-5, rtol=1e-5)
    # undoing plain 1-D RoPE instead is right before the image only: the 3 sections matter
    inputs = adapter.encode([adapter.chat_text(PROMPT.format("cat"), 1)], [image])
    cached = kv_cache(adapter.forward(inputs, use_cache=True)).layers[1].keys[0]  # [kv_heads, seq, head_dim]
    cos, sin = adapter.language_model.rotary_emb(cached, torch.arange(seq)[None, None].expand(3, 1, seq))  # equal sections
    one_d = unrotate(cached, cos[0], sin[0])
    first_image = int(prefill.visual_positions[0])
    torch.testing.assert_close(one_d[:, :first_image], projected[:, :first_image], atol=1e-5, rtol=1e-5)
    assert (one_d[:, first_image:] - projected[:, first_image:]).abs().max() > 1e-2


# --- relevance planting --------------------------------------------------------------------

PLANTS = [  # image size, planted cells (row0, col0, row1, col1) end-exclusive on the token grid
    ((224, 224), (0, 0, 3, 3)),  # 8x8
    ((224, 224), (4, 5, 7, 8)),
    ((448, 112), (1, 10, 4, 13)),  # 4x16, wide
    ((112, 448), (11, 0, 14, 3)),  # 16x4, tall
    ((400, 300), (2, 4, 5, 7)),  # 6x9, resized over max_pixels
]


@pytest.mark.parametrize("size, cells", PLANTS)
def test_planted_target_features_drive_relevance_and_top_roi(adapter, size, cells):
    """Image features of a region replaced by the target word's input embedding: the Fig. 7 map
    peaks there and the top proposal lies there (features in sequence order, not window order)."""
    assert_planted_target_found(adapter, noise_image(*size), cells)


# --- attention implementations and dtypes -------------------------------------------------


def test_sdpa_and_eager_agree(tiny_adapter):
    assert_attention_implementations_agree(partial(tiny_adapter, FAMILY), noise_image(333, 217), "white dog")


def test_bfloat16(tiny_adapter):
    adapter = tiny_adapter(FAMILY, dtype="bfloat16")
    assert adapter.model.dtype == torch.bfloat16 == adapter.dtype
    prefill = adapter.prefill(noise_image(64, 48), PROMPT.format("cat"), "cat", [1], with_keys=True)
    assert prefill.values.dtype == torch.bfloat16 and prefill.keys.dtype == torch.float32
    assert torch.isfinite(prefill.values).all() and torch.isfinite(prefill.yes_no).all()


# --- target location, option scores and bad input ------------------------------------------------


@pytest.mark.parametrize("prompt, target", [
    (PROMPT.format("red car"), "red car"),
    (PROMPT.format("xylophone"), "xylophone"),  # not in the vocabulary: many byte tokens
    ("Is there a user in the image?", "user"),  # also in the template ("<|im_start|>user"): the prompt's counts
])
def test_target_located_after_the_image(adapter, prompt, target):
    prefill = adapter.prefill(noise_image(40, 40), prompt, target, [0])
    input_ids = adapter.encode([adapter.chat_text(prompt, 1)], [noise_image(40, 40)])["input_ids"][0]
    positions = prefill.target_positions.tolist()
    assert positions == list(range(positions[0], positions[-1] + 1))
    assert adapter.tokenizer.decode(input_ids[positions]).strip() == target
    assert positions[0] > prefill.visual_positions.max()  # inside the user's text, after the image




def test_option_scores_with_several_images(adapter):
    images = [noise_image(100, 70), noise_image(30, 60, seed=1)]
    prompt, options = "What is the color of the car?", ["red", "The color of the car is blue."]
    scored = adapter.option_scores(images, prompt, options)
    for option, score in zip(options, scored.scores):
        text = adapter.chat_text(prompt, 2) + option  # the template ends "assistant\n": no separator
        processed = adapter.processor(text=[text], images=images, return_tensors="pt")
        ids = processed["input_ids"][0]
        n = len(adapter.tokenizer(option, add_special_tokens=False)["input_ids"])
        with torch.inference_mode():
            log_probs = torch.log_softmax(adapter.model(**processed).logits[0].float(), -1)
        assert score == pytest.approx(sum(float(log_probs[t - 1, ids[t]]) for t in range(len(ids) - n, len(ids))),
                                      abs=1e-4)
    assert (scored.cost.passes, scored.cost.batches) == (2, 2)


def test_bad_input(adapter):
    with pytest.raises(AdapterInputError, match="aspect ratio above 200"):
        adapter.prefill(noise_image(1000, 4), PROMPT.format("cat"), "cat", [0])
    with pytest.raises(AdapterInputError, match="aspect ratio"):
        adapter.yes_no_logits([noise_image(50, 50), noise_image(3, 700)], [PROMPT.format("cat")] * 2)
    with pytest.raises(AdapterInputError, match="needs an image"):
        adapter.prefill(None, PROMPT.format("cat"), "cat", [0])
    with pytest.raises(AdapterInputError, match="layers"):
        adapter.prefill(noise_image(9, 9), PROMPT.format("cat"), "cat", [2])
    assert adapter.prefill(noise_image(800, 4), PROMPT.format("cat"), "cat", [0]).geometry.grid_shape == (1, 15)


# --- FLOPs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(640, 480), (2000, 40), (120, 900), (9, 6)])
def test_vision_flops_are_exact(adapter, size):
    """Window attention over partial windows, full-attention block, merger: counted exactly."""
    inputs = adapter.encode([adapter.chat_text("x", 1)], [noise_image(*size)])
    with torch.inference_mode():
        _, measured = measure_flops(lambda: adapter.model.model.visual(inputs["pixel_values"],
                                                                       grid_thw=inputs["image_grid_thw"]))
    assert adapter.vision_flops(inputs) == measured


@pytest.mark.parametrize("call", ["prefill", "yes_no", "generate", "generate_multi_image", "generate_text_only",
                                  "option_scores"])
def test_flops_match_measured(adapter, call):
    image, crop = noise_image(200, 150), noise_image(60, 90)
    calls = {
        "prefill": lambda: adapter.prefill(image, PROMPT.format("red car"), "red car", [0, 1]),
        # same lengths, no padding: FLOPs count each prompt's own tokens, a padded batch computes more
        "yes_no": lambda: adapter.yes_no_logits([image, image], [PROMPT.format("cat"), PROMPT.format("dog")]),
        "generate": lambda: adapter.generate([image], "Describe the image.", 5),
        "generate_multi_image": lambda: adapter.generate([image, crop, crop], "Describe the image.", 5),
        "generate_text_only": lambda: adapter.generate([], "Describe the image.", 5),
        "option_scores": lambda: adapter.option_scores([image, crop], "What is the color?", ["red", "blue bag"]),
    }
    assert_cost_matches_measured(calls[call])


# --- the whole method ---------------------------------------------------------------------------


@pytest.mark.parametrize("question, extraction, question_type", [
    ("What is the color of the umbrella?", "icl", 1),
    ("How many cats are there in the image?", "rules", 2),
])
def test_focus_pipeline_counts_the_passes_it_makes(adapter, question, extraction, question_type):
    """Every forward the model runs on a fresh prompt is one pass; a batch is one model call."""
    prompts = []  # batch size of each forward over a new prompt (not the decoding steps of generate)

    def record(module, args, kwargs):
        cache = kwargs.get("cache", kwargs.get("past_key_values"))  # renamed in transformers 5.24
        if cache is None or cache.get_seq_length() == 0:
            prompts.append(kwargs["input_ids"].shape[0])

    config = load_config(FAMILY, "vstar", target_extraction=extraction, n_steps=2, check_batch_size=3)
    hook = adapter.model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        result = Pipeline(adapter, config).answer(noise_image(400, 300), question + "\n(A) red (B) blue")
    finally:
        hook.remove()
    trace, counters = result.trace, result.trace.counters
    assert trace.error is None and trace.question_type == question_type
    assert trace.targets and trace.targets[0].rois
    assert counters.fp_total == sum(prompts) and counters.batches == len(prompts)
    assert counters.fp_targets == (extraction == "icl") and counters.fp_answer == 1
    assert counters.fp >= 2  # a relevance prefill and at least one existence check
    if question_type == 1:  # the best ROI answers as a crop beside the outlined global view
        assert trace.final_layout == "global+crops" and len(result.final_images) == 2
