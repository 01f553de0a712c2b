"""Tiny offline checkpoints of the three families load through the real code path and run."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoConfig, AutoModelForImageTextToText, LlavaOnevisionProcessor, Qwen2_5_VLProcessor

from focus_eval.model_wrappers.base import kv_cache, load_processor
from focus_eval.model_wrappers.tiny import FAMILIES, build_tiny_checkpoint

# processor class with a video processor (torchvision trap), model_type, processor class name
EXPECTED = {
    "llava_1_5": (None, "llava", "LlavaProcessor"),
    "llava_onevision": (LlavaOnevisionProcessor, "llava_onevision", "LlavaOnevisionProcessor"),
    "qwen2_5_vl": (Qwen2_5_VLProcessor, "qwen2_5_vl", "Qwen2_5_VLProcessor"),
}


def load(directory, family):
    model = AutoModelForImageTextToText.from_pretrained(directory, attn_implementation="sdpa").eval()
    return model, load_processor(directory, EXPECTED[family][0])


def image_inputs(processor, image, prompt="Is there a cat in the image? Answer Yes or No."):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return text, processor(text=[text], images=[image], return_tensors="pt")


@pytest.mark.parametrize("family", FAMILIES)
def test_loads_through_auto_classes_and_runs(tiny_checkpoint, family):
    directory = tiny_checkpoint(family)
    assert AutoConfig.from_pretrained(directory).model_type == EXPECTED[family][1]
    model, processor = load(directory, family)
    assert type(processor).__name__ == EXPECTED[family][2]
    assert json.loads((directory / "processor_config.json").read_text())["processor_class"] == EXPECTED[family][2]
    image = Image.fromarray(np.random.RandomState(0).randint(0, 256, (90, 130, 3), dtype=np.uint8))
    text, inputs = image_inputs(processor, image)
    assert "cat in the image" in text
    image_tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
    assert image_tokens > 0
    with torch.inference_mode():
        out = model(**inputs, use_cache=True, logits_to_keep=1)
    seq = inputs["input_ids"].shape[1]
    assert out.logits.shape == (1, 1, model.config.get_text_config().vocab_size)
    assert len(kv_cache(out).layers) == 2
    assert kv_cache(out).layers[0].values.shape == (1, 2, seq, 16)
    assert torch.isfinite(out.logits).all()
    # text only
    with torch.inference_mode():
        text_out = model(**processor(text=["Describe the image."], return_tensors="pt"), logits_to_keep=1)
    assert torch.isfinite(text_out.logits).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_vocabulary_holds_the_test_words(tiny_checkpoint, family):
    _, processor = load(tiny_checkpoint(family), family)
    tokenizer = processor.tokenizer
    for word in ["Yes", "No", " Yes", " No", " cat", " dog", " umbrella", " bench", " red", " car"]:
        assert len(tokenizer(word, add_special_tokens=False)["input_ids"]) == 1, word
    assert tokenizer.decode(tokenizer("Is there a red car in the image?")["input_ids"],
                            skip_special_tokens=True) == "Is there a red car in the image?"


def test_family_details(tiny_checkpoint):
    ov = AutoConfig.from_pretrained(tiny_checkpoint("llava_onevision"))
    assert ov.image_grid_pinpoints == [[56 * i, 56 * j] for i in range(1, 7) for j in range(1, 7)]
    qwen = AutoConfig.from_pretrained(tiny_checkpoint("qwen2_5_vl"))
    assert qwen.get_text_config().rope_parameters["mrope_section"] == [2, 3, 3]
    llava = AutoConfig.from_pretrained(tiny_checkpoint("llava_1_5"))
    assert (llava.vision_config.image_size, llava.vision_config.patch_size, llava.vision_config.hidden_size) == (56, 14, 32)
    text = llava.text_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads) == (64, 2, 4, 2)


@pytest.mark.parametrize("family", FAMILIES)
def test_deterministic_from_seed(tmp_path, family):
    first = build_tiny_checkpoint(family, tmp_path / "a", seed=3)
    again = build_tiny_checkpoint(family, tmp_path / "b", seed=3)
    other = build_tiny_checkpoint(family, tmp_path / "c", seed=4)
    weights = lambda d: (d / "model.safetensors").read_bytes()
    assert weights(first) == weights(again) != weights(other)
    assert (first / "tokenizer.json").read_bytes() == (again / "tokenizer.json").read_bytes()


def _vision_outputs(model, family, inputs):
    """Per-token vision outputs before the language model: [tokens, hidden]."""
    with torch.inference_mode():
        if family == "qwen2_5_vl":
            return model.model.visual(inputs["pixel_values"], grid_thw=inputs["image_grid_thw"]).pooler_output
        pixels = inputs["pixel_values"]
        pixels = pixels.flatten(0, 1) if pixels.dim() == 5 else pixels  # OneVision: [crops, 3, h, w]
        return model.model.vision_tower(pixels).last_hidden_state.flatten(0, 1)


def _perturb_one_patch(family, inputs):
    inputs = {key: value.clone() for key, value in inputs.items()}
    if family == "qwen2_5_vl":
        inputs["pixel_values"][5] += 1.0  # one 14 x 14 (x 2 frames) patch, merged into token 5 // 4
    else:
        inputs["pixel_values"][..., 14:28, 28:42] += 1.0  # patch (1, 2) of every crop
    return inputs


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("local", [True, False])
def test_local_vision_option(tiny_checkpoint, family, local):
    model, processor = load(tiny_checkpoint(family, local_vision=local, vision_layers=3), family)
    vision = model.config.vision_config
    assert (vision.depth if family == "qwen2_5_vl" else vision.num_hidden_layers) == 3
    image = Image.fromarray(np.random.RandomState(1).randint(0, 256, (112, 112, 3), dtype=np.uint8))
    _, inputs = image_inputs(processor, image)
    reference = _vision_outputs(model, family, inputs)
    changed = (_vision_outputs(model, family, _perturb_one_patch(family, inputs)) - reference).abs().amax(-1) > 1e-6
    crops = 1 if family == "qwen2_5_vl" else inputs["pixel_values"].flatten(0, -4).shape[0]
    if local:  # one token per crop (the patch's own), nothing else
        assert int(changed.sum()) == crops
    else:  # attention spreads the change over the crop
        assert int(changed.sum()) > 4 * crops


def test_bad_options(tmp_path):
    with pytest.raises(ValueError, match="unknown family"):
        build_tiny_checkpoint("llava_next", tmp_path)
    with pytest.raises(ValueError, match="pad"):
        build_tiny_checkpoint("qwen2_5_vl", tmp_path, image_preprocessing="pad")
    with pytest.raises(ValueError, match="multiple of 14"):
        build_tiny_checkpoint("llava_1_5", tmp_path, image_size=60)
    with pytest.raises(ValueError, match="vision_layers"):
        build_tiny_checkpoint("llava_1_5", tmp_path, vision_layers=0)
