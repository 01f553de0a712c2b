"""LLaVA-1.5 adapter on tiny offline checkpoints: token geometry, relevance planting, batching,
attention implementations, dtype plumbing, errors, FLOPs."""

import re
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
from focus_eval.model_wrappers.base import AdapterInputError
from focus_eval.config import load_config
from focus_eval.model_wrappers import base as adapter_base
from focus_eval.model_wrappers.llava_1_5 import Llava15Adapter, covered_box, pad_to_square
from focus_eval.pipeline import Pipeline
from focus_eval.methods.focus.ranking import existence_prompt
from focus_eval.protocol import Adapter, TargetLocationError

FAMILY = "llava_1_5"
PROMPT = "Is there a {} in the image? Answer Yes or No."
# very wide, very tall, smaller than one cell, square, odd sizes
SIZES = [(1000, 150), (120, 900), (9, 6), (5, 3), (224, 224), (333, 217), (57, 101)]
NEAREST = 0


@pytest.fixture(scope="module")
def adapter(tiny_adapter):
    return tiny_adapter(FAMILY)


def test_satisfies_protocol(adapter):
    assert isinstance(adapter, Llava15Adapter) and isinstance(adapter, Adapter)
    assert (adapter.family, adapter.multi_image, adapter.num_layers, adapter.base_resolution) == ("llava_1_5", False, 2, 56)
    assert adapter.device == torch.device("cpu")


# --- geometry ------------------------------------------------------------------------------


@pytest.mark.parametrize("preprocessing", ["pad", "crop"])
@pytest.mark.parametrize("size", SIZES)
def test_visual_tokens_match_processor(tiny_adapter, preprocessing, size):
    adapter = tiny_adapter(FAMILY, image_preprocessing=preprocessing)
    image = noise_image(*size)
    prefill = adapter.prefill(image, PROMPT.format("cat"), "cat", [0])
    text = adapter.chat_text(PROMPT.format("cat"), num_images=1)
    input_ids = adapter.processor(text=[text], images=[image], return_tensors="pt")["input_ids"][0]
    image_positions = (input_ids == adapter.image_token_id).nonzero().flatten()
    assert prefill.visual_positions.tolist() == image_positions.tolist()
    assert len(image_positions) == 16 and prefill.geometry.grid_shape == (4, 4)
    assert prefill.geometry.image_size == size
    assert prefill.values.shape[2] == len(input_ids)


@pytest.mark.parametrize("preprocessing", ["pad", "crop"])
def test_covered_box_by_hand(tiny_adapter, preprocessing):
    processor = tiny_adapter(FAMILY, image_preprocessing=preprocessing).processor.image_processor
    # padded: 1000x150 centred on a 1000 square, (1000 - 150) // 2 = 425 rows above
    assert covered_box((1000, 150), processor, 56, padded=True) == (0, -425, 1000, 575)
    assert covered_box((120, 901), processor, 56, padded=True) == (-390, 0, 511, 901)
    # centre crop: 1000x150 -> 373x56 (int(56 * 1000 / 150)), left = (373 - 56) // 2 = 158
    assert covered_box((1000, 150), processor, 56, padded=False) == pytest.approx(
        (158 * 1000 / 373, 0, 214 * 1000 / 373, 150))
    # 120x901 -> 56x420, top = (420 - 56) // 2 = 182
    assert covered_box((120, 901), processor, 56, padded=False) == pytest.approx(
        (0, 182 * 901 / 420, 120, 238 * 901 / 420))
    assert covered_box((224, 224), processor, 56, padded=False) == (0, 0, 224, 224)


def test_image_aspect_pad_is_the_default_and_is_the_llava_processors_own_padding(tiny_adapter, tiny_checkpoint):
    # The hub checkpoint's CLIP processor centre-crops; the default pads first, with the mean colour.
    adapter = tiny_adapter(FAMILY)
    assert adapter.image_aspect == "pad"
    image = noise_image(1000, 150)
    text = adapter.chat_text(PROMPT.format("cat"), 1)
    fill = tuple(int(channel * 255) for channel in adapter.processor.image_processor.image_mean)
    assert fill == (122, 116, 104)  # CLIP's mean, as LLaVA's expand2square uses it
    square = pad_to_square(image, fill)
    assert square.size == (1000, 1000) and square.getpixel((0, 0)) == fill
    assert square.crop((0, 425, 1000, 575)).tobytes() == image.tobytes()
    expected = adapter.processor(text=[text], images=[square], return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(adapter.encode([text], [image])["pixel_values"], expected, atol=0, rtol=0)
    # a LLaVA image processor with do_pad pads the same way: its own output on the raw image
    padding = tiny_adapter(FAMILY, image_preprocessing="pad")
    assert padding.processor.image_processor.do_pad is False  # switched off: never padded twice
    own = adapter_base.load_processor(tiny_checkpoint(FAMILY, image_preprocessing="pad"))
    assert own.image_processor.do_pad is True
    torch.testing.assert_close(padding.encode([text], [image])["pixel_values"],
                               own(text=[text], images=[image], return_tensors="pt")["pixel_values"], atol=0, rtol=0)


def test_image_aspect_crop_is_the_hub_processor_alone(tiny_adapter):
    adapter = tiny_adapter(FAMILY, image_aspect="crop")
    image = noise_image(1000, 150)
    text = adapter.chat_text(PROMPT.format("cat"), 1)
    expected = adapter.processor(text=[text], images=[image], return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(adapter.encode([text], [image])["pixel_values"], expected, atol=0, rtol=0)


def test_image_aspect_is_checked_before_loading(tiny_checkpoint):
    from focus_eval.model_wrappers import load_adapter

    with pytest.raises(ValueError, match="image_aspect='squash': expected one of pad, crop"):
        load_adapter(tiny_checkpoint(FAMILY), device="cpu", image_aspect="squash")
    with pytest.raises(ValueError, match="image_aspect is not an option of the llava_onevision adapter"):
        load_adapter(tiny_checkpoint("llava_onevision"), device="cpu", image_aspect="pad")


def test_far_left_target_of_a_wide_image_is_found_only_when_padded(tiny_adapter):
    """Issue 9: the hub processor's centre crop shows a 2000x400 image only in x [800, 1200];
    padded to a square, a target at the far left is found."""
    size = (2000, 400)
    cropped = tiny_adapter(FAMILY, image_aspect="crop", image_size=168)
    geometry = cropped.prefill(noise_image(*size), PROMPT.format("cat"), "cat", [0]).geometry
    assert geometry.cell_boxes[..., 0].min() == pytest.approx(800) and geometry.cell_boxes[..., 2].max() == 1200
    # padded: 12 x 12 cells of 166.7 px over y in [-800, 1200); the image spans rows 4.8 to 7.2
    padded = tiny_adapter(FAMILY, image_size=168)
    assert_planted_target_found(padded, noise_image(*size), (5, 0, 7, 2))  # x in [0, 333)


def test_vanilla_and_focus_send_only_padded_squares(tiny_adapter, monkeypatch):
    adapter = tiny_adapter(FAMILY)
    seen = []
    encode = adapter_base.HFAdapter.encode

    def spy(self, texts, images, each_image_alone=False):
        seen.extend(image.size for image in images)
        return encode(self, texts, images, each_image_alone)

    monkeypatch.setattr(adapter_base.HFAdapter, "encode", spy)
    question = "What is the color of the red car?\n(A) red (B) blue"
    for method in ("vanilla", "focus"):
        seen.clear()
        config = load_config(FAMILY, "vstar", method=method, target_extraction="rules", n_steps=2)
        Pipeline(adapter, config).answer(noise_image(900, 300), question, max_new_tokens=2)
        assert seen and all(width == height for width, height in seen), (method, seen)
        assert (900, 900) in seen


def _features(adapter, image):
    captured = []
    with adapter.edit_image_features(lambda features: captured.append(features.detach().clone())):
        prefill = adapter.prefill(image, PROMPT.format("cat"), "cat", [0])
    (features,) = captured
    return features[0], prefill.geometry  # [16, hidden]


def _region(geometry, cells, image_size):
    """Pixel box from the centre of cell (r0, c0) to the centre of cell (r1, c1), clipped."""
    r0, c0, r1, c1 = cells
    boxes = geometry.cell_boxes
    centre_x = (boxes[0, :, 0] + boxes[0, :, 2]) / 2
    centre_y = (boxes[:, 0, 1] + boxes[:, 0, 3]) / 2
    width, height = image_size
    x0, x1 = round(max(centre_x[c0], 0)), round(min(centre_x[c1], width))
    y0, y1 = round(max(centre_y[r0], 0)), round(min(centre_y[r1], height))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


@pytest.mark.parametrize("preprocessing, aspect", [("crop", "pad"), ("crop", "crop"), ("pad", "pad"), ("pad", "crop")])
@pytest.mark.parametrize("size", SIZES)
def test_perturbing_a_region_changes_exactly_the_overlapping_cells(tiny_adapter, preprocessing, aspect, size):
    """With a vision tower without attention mixing and nearest resampling, a pixel can only
    affect the token whose cell contains it: the changed tokens ARE the cells overlapping the
    perturbed region, in the row-major order of visual_positions. For either image processor
    (CLIP as on the hub, LLaVA's with do_pad) and either image_aspect."""
    adapter = tiny_adapter(FAMILY, image_preprocessing=preprocessing, local_vision=True, resample=NEAREST,
                           image_aspect=aspect)
    pixels = np.asarray(noise_image(*size, seed=1))
    reference, geometry = _features(adapter, Image.fromarray(pixels))
    boxes = geometry.cell_boxes
    tested = 0
    for cells in [(0, 0, 1, 2), (1, 1, 3, 3), (2, 0, 3, 1), (0, 2, 3, 3)]:
        region = _region(geometry, cells, size)
        if region is None:  # these cells lie in the padding
            continue
        x0, y0, x1, y1 = region
        perturbed = pixels.copy()
        perturbed[y0:y1, x0:x1] = (perturbed[y0:y1, x0:x1].astype(int) + 128) % 256
        features, _ = _features(adapter, Image.fromarray(perturbed))
        changed = ((features - reference).abs().amax(-1) > 1e-6).reshape(geometry.grid_shape).numpy()
        overlaps = ((np.minimum(boxes[..., 2], x1) > np.maximum(boxes[..., 0], x0))
                    & (np.minimum(boxes[..., 3], y1) > np.maximum(boxes[..., 1], y0)))
        assert 0 < overlaps.sum() < overlaps.size
        np.testing.assert_array_equal(changed, overlaps, err_msg=f"region {region}")
        tested += 1
    assert tested >= 2


def test_padding_cells_lie_outside_the_image(tiny_adapter):
    adapter = tiny_adapter(FAMILY, image_preprocessing="pad")
    geometry = adapter.prefill(noise_image(1000, 150), PROMPT.format("cat"), "cat", [0]).geometry
    boxes = geometry.cell_boxes
    assert boxes[0, 0, 1] == -425 and boxes[-1, -1, 3] == 575  # rows reach above and below the image
    assert boxes[0, 0, 0] == 0 and boxes[-1, -1, 2] == 1000


# --- relevance planting --------------------------------------------------------------------

PLANTS = [  # image size, planted cells (row0, col0, row1, col1) end-exclusive on the 12 x 12 grid
    ((600, 600), (1, 1, 4, 4)),
    ((600, 600), (7, 6, 11, 9)),
    ((900, 450), (5, 8, 8, 12)),  # wide, padding rows above and below
    ((300, 600), (8, 4, 11, 7)),  # tall
]


@pytest.mark.parametrize("size, cells", PLANTS)
def test_planted_target_features_drive_relevance_and_top_roi(tiny_adapter, size, cells):
    """Projected image features of a region replaced by the target word's input embedding:
    the Fig. 7 map peaks there and the top proposal lies there."""
    adapter = tiny_adapter(FAMILY, image_preprocessing="pad", image_size=168)
    assert_planted_target_found(adapter, noise_image(*size), cells)


# --- attention implementations and dtypes -------------------------------------------------


def test_sdpa_and_eager_agree(tiny_adapter):
    assert_attention_implementations_agree(partial(tiny_adapter, FAMILY), noise_image(333, 217), "red car")


@pytest.mark.parametrize("dtype, expected", [("auto", torch.float32), ("float32", torch.float32),
                                             ("bfloat16", torch.bfloat16), ("float16", torch.float16)])
def test_dtype_plumbing(tiny_adapter, dtype, expected):
    adapter = tiny_adapter(FAMILY, dtype=dtype)
    assert adapter.model.dtype == expected == adapter.dtype
    prefill = adapter.prefill(noise_image(64, 48), PROMPT.format("cat"), "cat", [1], with_keys=True)
    assert prefill.values.dtype == expected and prefill.keys.dtype == torch.float32
    assert torch.isfinite(prefill.values).all() and torch.isfinite(prefill.yes_no).all()


# --- yes / no --------------------------------------------------------------------------------


def test_yes_no_ids_are_the_answer_tokens(adapter):
    tokens = adapter.tokenizer.convert_ids_to_tokens(adapter.yes_no_ids)
    assert tokens == ["ĠYes", "ĠNo"]  # the template ends "ASSISTANT:", the answer is " Yes"
    assert adapter.chat_text("x", 1).endswith("ASSISTANT:")


def test_batched_yes_no_equals_one_by_one(adapter):
    images = [noise_image(300, 200, seed=3), noise_image(50, 400, seed=4), noise_image(640, 480, seed=5)]
    prompts = [PROMPT.format("cat"), "Is there a traffic light in the image?", PROMPT.format("white dog near a bench")]
    single = assert_batched_yes_no_equals_one_by_one(adapter, images, prompts)
    # the prefill's own yes/no is the same existence check
    prefill = adapter.prefill(images[0], prompts[0], "cat", [0])
    torch.testing.assert_close(prefill.yes_no, single[0], atol=1e-5, rtol=0)


def test_one_forward_and_one_logit_row_cache_only_for_the_prefill(adapter):
    calls, rows = [], []
    forward_hook = adapter.model.register_forward_pre_hook(lambda m, args, kwargs: calls.append(kwargs),
                                                           with_kwargs=True)
    head_hook = adapter.model.lm_head.register_forward_pre_hook(lambda m, args: rows.append(args[0].shape[:2]))
    try:
        adapter.prefill(noise_image(90, 60), PROMPT.format("cat"), "cat", [0, 1])
        with one_batch(adapter):
            adapter.yes_no_logits([noise_image(90, 60)] * 2, [PROMPT.format("cat"), PROMPT.format("dog")])
    finally:
        forward_hook.remove()
        head_hook.remove()
    assert len(calls) == 2 and rows == [(1, 1), (2, 1)]
    assert [kwargs["use_cache"] for kwargs in calls] == [True, False]  # only the relevance prefill keeps a cache
    for kwargs in calls:
        assert kwargs["logits_to_keep"] == 1
        assert not kwargs.get("output_attentions") and not kwargs.get("output_hidden_states")


# --- target location --------------------------------------------------------------------------


@pytest.mark.parametrize("prompt, target", [
    (PROMPT.format("red car"), "red car"),
    (PROMPT.format("xylophone"), "xylophone"),  # not in the vocabulary: many byte tokens
    ("Is there a zebra-crossing? Answer Yes or No.", "zebra-crossing"),
    ("cat? Is there one in the image?", "cat"),  # at the start of the prompt, glued to "?"
    (PROMPT.format("bench"), "  bench "),  # stray spaces around the target
    ("Is there a USER in the image?", "USER"),  # also in the template: the prompt's one counts
    ("Is there a Traffic Light?", "traffic light"),  # case differs
])
def test_target_located(adapter, prompt, target):
    prefill = adapter.prefill(noise_image(40, 40), prompt, target, [0])
    text = adapter.chat_text(prompt, 1)
    input_ids = adapter.encode([text], [noise_image(40, 40)])["input_ids"][0]
    positions = prefill.target_positions.tolist()
    assert positions == list(range(positions[0], positions[-1] + 1))
    decoded = adapter.tokenizer.decode(input_ids[positions])
    assert decoded.strip().lower() == target.strip().lower()
    assert positions[0] > prefill.visual_positions.max()  # inside the user's text, after the image


def test_target_found_at_the_templates_offset_not_in_its_words(adapter):
    # "the" also begins the template's "there": the offset points at the target's field
    prompt, offset = existence_prompt(PROMPT.replace("{}", "{target}"), "the")
    prefill = adapter.prefill(noise_image(40, 40), prompt, "the", [0], target_offset=offset)
    searched = adapter.prefill(noise_image(40, 40), prompt, "the", [0])
    ids = adapter.encode([adapter.chat_text(prompt, 1)], [noise_image(40, 40)])["input_ids"][0]
    assert adapter.tokenizer.decode(ids[prefill.target_positions]).strip() == "the"
    assert "there" in adapter.tokenizer.decode(ids[searched.target_positions])  # the old first-match reading
    assert prefill.target_positions.min() > searched.target_positions.max()


def test_target_not_in_prompt(adapter):
    with pytest.raises(TargetLocationError, match="does not occur"):
        adapter.prefill(noise_image(40, 40), PROMPT.format("cat"), "dog", [0])
    with pytest.raises(TargetLocationError, match="empty"):
        adapter.prefill(noise_image(40, 40), PROMPT.format("cat"), "  ", [0])


# --- bad input ----------------------------------------------------------------------------------


def test_missing_or_extra_images(adapter):
    with pytest.raises(AdapterInputError, match="needs an image"):
        adapter.prefill(None, PROMPT.format("cat"), "cat", [0])
    with pytest.raises(AdapterInputError, match="needs an image"):
        adapter.yes_no_logits([noise_image(9, 9), None], [PROMPT.format("cat")] * 2)
    with pytest.raises(AdapterInputError, match="one image per prompt"):
        adapter.yes_no_logits([noise_image(9, 9)], [PROMPT.format("cat")] * 2)
    with pytest.raises(AdapterInputError, match="at most 2 image"):
        adapter.generate([noise_image(9, 9)] * 3, "Describe the image.", 4)
    with pytest.raises(AdapterInputError, match="empty image"):
        adapter.prefill(Image.new("RGB", (0, 5)), PROMPT.format("cat"), "cat", [0])
    with pytest.raises(AdapterInputError, match="PIL image"):
        adapter.prefill(np.zeros((4, 4, 3)), PROMPT.format("cat"), "cat", [0])
    with pytest.raises(AdapterInputError, match="layers"):
        adapter.prefill(noise_image(9, 9), PROMPT.format("cat"), "cat", [1, 0])
    with pytest.raises(AdapterInputError, match="layers"):
        adapter.prefill(noise_image(9, 9), PROMPT.format("cat"), "cat", [2])


@pytest.mark.parametrize("aspect", ["pad", "crop"])
def test_single_pixel_image(tiny_adapter, aspect):
    prefill = tiny_adapter(FAMILY, image_aspect=aspect).prefill(
        noise_image(1, 1), PROMPT.format("cat"), "cat", [0])
    boxes = prefill.geometry.cell_boxes
    assert boxes[0, 0, :2].tolist() == [0, 0] and boxes[-1, -1, 2:].tolist() == [1, 1]


def test_image_modes_are_converted(adapter):
    rgba = noise_image(80, 60).convert("RGBA")
    grey = noise_image(80, 60).convert("L")
    for image in (rgba, grey):
        assert adapter.prefill(image, PROMPT.format("cat"), "cat", [0]).geometry.image_size == (80, 60)


# --- generation and option scores -------------------------------------------------------------


def test_generate_is_greedy_and_deterministic(adapter):
    image = noise_image(120, 80)
    first = adapter.generate([image], "Describe the image.", 6)
    assert first == adapter.generate([image], "Describe the image.", 6, temperature=0.0, top_p=None)
    # greedy: the same text as taking the argmax step by step without a cache
    inputs = adapter.encode([adapter.chat_text("Describe the image.", 1)], [image])
    ids = inputs["input_ids"]
    for _ in range(6):
        with torch.inference_mode():
            logits = adapter.model(**{**inputs, "input_ids": ids, "attention_mask": torch.ones_like(ids)}).logits
        ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    reply = ids[0, inputs["input_ids"].shape[1]:]
    assert adapter.tokenizer.decode(reply, skip_special_tokens=True).strip() == first.text
    assert first.cost.tokens == ids.shape[1] and first.cost.passes == 1
    text_only = adapter.generate([], "Describe the image.", 6)
    assert text_only.cost.tokens < first.cost.tokens  # no image tokens in the sequence
    with pytest.raises(AdapterInputError, match="greedy"):
        adapter.generate([image], "Describe the image.", 6, do_sample=True)


def test_generation_ends_at_a_stop_string(adapter):
    image = noise_image(120, 80)
    free = adapter.generate([image], "Describe the image.", 12)
    words = re.findall(r"[A-Za-z]{3,}", free.text[1:])  # plain text: byte-level pieces do not match
    assert words, free.text
    stop = words[0]
    stopped = adapter.generate([image], "Describe the image.", 12, stop=[stop, "never-there"])
    assert stopped.text == free.text[:free.text.index(stop)].strip()
    assert stopped.cost.tokens < free.cost.tokens  # decoding ended early, not just the text
    again = adapter.generate([image], "Describe the image.", 12, stop=[stop, "never-there"])
    assert again == stopped
    key = (stop, "never-there")
    assert adapter.stopping_criteria(key) is adapter.stopping_criteria(key)  # the vocabulary tables are built once


def test_option_scores_are_summed_log_probabilities(adapter):
    image = noise_image(100, 70)
    prompt = "What is the color of the car?"
    options = ["red", "The color of the car is blue."]
    scored = adapter.option_scores([image], prompt, options)
    for option, score in zip(options, scored.scores):
        text = adapter.chat_text(prompt, 1) + " " + option
        inputs = adapter.encode([text], [image])
        ids = inputs["input_ids"][0]
        n = len(adapter.tokenizer(" " + option, add_special_tokens=False)["input_ids"])
        with torch.inference_mode():
            log_probs = torch.log_softmax(adapter.model(**inputs).logits[0].float(), -1)  # all rows
        expected = sum(float(log_probs[t - 1, ids[t]]) for t in range(len(ids) - n, len(ids)))
        assert score == pytest.approx(expected, abs=1e-4)
    assert (scored.cost.passes, scored.cost.batches) == (2, 2)
    with pytest.raises(AdapterInputError, match="options"):
        adapter.option_scores([image], prompt, [])


# --- FLOPs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("call", ["prefill", "yes_no", "generate", "generate_text_only", "option_scores"])
def test_flops_match_measured(adapter, call):
    image = noise_image(200, 150)
    calls = {
        "prefill": lambda: adapter.prefill(image, PROMPT.format("red car"), "red car", [0, 1]),
        "yes_no": lambda: adapter.yes_no_logits([image], [PROMPT.format("cat")]),
        "generate": lambda: adapter.generate([image], "Describe the image.", 5),
        "generate_text_only": lambda: adapter.generate([], "Describe the image.", 5),
        "option_scores": lambda: adapter.option_scores([image], "What is the color?", ["red", "blue bag"]),
    }
    assert_cost_matches_measured(calls[call])
