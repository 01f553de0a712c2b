"""Shared adapter machinery: loading and the registry, the image-only processor, token
bookkeeping, RoPE removal, FLOP measurement."""

import importlib.util
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import AutoProcessor, LlamaConfig, LlavaOnevisionProcessor, Qwen2_5_VLProcessor
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb
from transformers.utils import is_torchvision_available

from focus_eval.config import FocusConfig
from focus_eval.model_wrappers import check_device, check_local_checkpoint, default_checkpoint, load_adapter
from focus_eval.model_wrappers.base import (
    answer_separator,
    check_attn_implementation,
    first_answer_token,
    image_only_processor_class,
    kv_cache,
    load_processor,
    locate_in_prompt,
    resolve_dtype,
    unrotate,
)
from focus_eval.model_wrappers.flops import attention_flops, measure_flops
from focus_eval.protocol import TargetLocationError
from focus_eval.methods.focus.ranking import existence_prompt


def noise_image(width, height, seed=0):
    return Image.fromarray(np.random.RandomState(seed).randint(0, 256, (height, width, 3), dtype=np.uint8))


# --- loading ----------------------------------------------------------------------------------


def test_family_detected_from_model_type(tiny_checkpoint):
    adapter = load_adapter(str(tiny_checkpoint("llava_1_5")), device="cpu")
    assert adapter.family == "llava_1_5"
    assert load_adapter(tiny_checkpoint("llava_1_5"), "llava_1_5", device="cpu").family == "llava_1_5"


def test_family_mismatch_and_unsupported_model_type(tiny_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="not family 'qwen2_5_vl'"):
        load_adapter(tiny_checkpoint("llava_1_5"), "qwen2_5_vl", device="cpu")
    LlamaConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"model_type 'llama' has no adapter; supported model types: llava \(llava_1_5\)"):
        load_adapter(tmp_path, device="cpu")


def test_local_checkpoints_are_checked_from_their_config_alone(tiny_checkpoint, tmp_path):
    check_local_checkpoint(tiny_checkpoint("llava_1_5"), "llava_1_5")
    check_local_checkpoint("org/model")  # a hub id: checked when it loads
    (tmp_path / "empty").mkdir()
    cases = [(tmp_path / "missing", "no such model folder"), (tmp_path / "empty", "has no config.json"),
             (tiny_checkpoint("llava_1_5"), "is a 'llava' checkpoint \\(family 'llava_1_5'\\), not family 'qwen2_5_vl'")]
    for folder, message in cases:
        with pytest.raises(ValueError, match=message):
            check_local_checkpoint(folder, "qwen2_5_vl")
    with pytest.raises(ValueError, match="unknown family 'llava2'; families: llava_1_5, llava_onevision, qwen2_5_vl"):
        load_adapter(tiny_checkpoint("llava_1_5"), "llava2", device="cpu")


def test_devices_are_checked_before_loading(tiny_checkpoint, monkeypatch):
    assert check_device(None) is None and check_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device='tpu': "):
        check_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device='cuda', but CUDA is not available; use device=cpu"):
        load_adapter(tiny_checkpoint("llava_1_5"), device="cuda")


def test_a_generation_stopped_by_its_token_limit_says_so(tiny_adapter):
    adapter = tiny_adapter("llava_1_5")
    cut = adapter.generate([], "Describe a car.", max_new_tokens=3)
    assert cut.truncated and cut.text  # the random model writes on until the limit
    stopped = adapter.generate([], "Describe a car.", max_new_tokens=3, stop=[cut.text[0]])
    assert not stopped.truncated


def test_default_checkpoints():
    assert default_checkpoint("llava_1_5") == "llava-hf/llava-1.5-7b-hf"
    assert default_checkpoint("llava_onevision") == "llava-hf/llava-onevision-qwen2-7b-ov-hf"
    assert default_checkpoint("qwen2_5_vl") == "Qwen/Qwen2.5-VL-7B-Instruct"
    with pytest.raises(ValueError, match="unknown family"):
        default_checkpoint("gemma3")


def test_dtype_and_attention_options():
    assert resolve_dtype("auto") == "auto" and resolve_dtype("bfloat16") is torch.bfloat16
    assert resolve_dtype(torch.float16) is torch.float16
    with pytest.raises(ValueError, match="dtype='fp8'"):
        resolve_dtype("fp8")
    assert check_attn_implementation("eager") == "eager"
    with pytest.raises(ValueError, match="expected one of"):
        check_attn_implementation("flex")


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is not None, reason="flash-attn is installed")
def test_flash_attention_needs_the_package(tiny_checkpoint):
    with pytest.raises(ValueError, match="needs the flash-attn package"):
        load_adapter(tiny_checkpoint("llava_1_5"), attn_implementation="flash_attention_2", device="cpu")


def test_device_and_device_map_are_exclusive(tiny_checkpoint):
    with pytest.raises(ValueError, match="device or device_map"):
        load_adapter(tiny_checkpoint("llava_1_5"), device="cpu", device_map="cpu")
    assert load_adapter(tiny_checkpoint("llava_1_5"), device_map="cpu").device == torch.device("cpu")


# --- the image-only processor (torchvision trap) -------------------------------------------------


@pytest.mark.parametrize("family, processor_class, keys", [
    ("llava_onevision", LlavaOnevisionProcessor, {"num_image_tokens": 16, "vision_feature_select_strategy": "full"}),
    ("qwen2_5_vl", Qwen2_5_VLProcessor, {}),
])
def test_image_only_processor_round_trip(tiny_checkpoint, tmp_path, family, processor_class, keys):
    directory = tiny_checkpoint(family)
    if not is_torchvision_available():  # the trap this works around
        with pytest.raises((OSError, TypeError, ImportError, ValueError)):
            AutoProcessor.from_pretrained(directory)
    processor = load_processor(directory, processor_class)
    assert isinstance(processor, processor_class) and type(processor).__name__ == processor_class.__name__
    assert image_only_processor_class(processor_class) is image_only_processor_class(processor_class)
    for key, value in keys.items():
        assert getattr(processor, key) == value
    assert processor.chat_template
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert saved["processor_class"] == processor_class.__name__
    assert all(saved[key] == value for key, value in keys.items())
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Is there a cat?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[noise_image(100, 60)], return_tensors="pt")
    assert int((inputs["input_ids"] == processor.image_token_id).sum()) > 1


# --- token bookkeeping -------------------------------------------------------------------------


def test_locate_in_prompt():
    text = "USER: <image>\nIs there a cat near the cat toy? ASSISTANT:"
    prompt = "Is there a cat near the cat toy?"
    start, end = locate_in_prompt(text, prompt, "cat")
    assert text[start:end] == "cat" and start == text.index("cat")  # first occurrence
    start, end = locate_in_prompt("USER: is there a Cat? ASSISTANT:", "is there a Cat?", " cat ")
    assert (start, end) == (17, 20)  # case-insensitive, stray spaces ignored
    with pytest.raises(TargetLocationError, match="does not occur"):
        locate_in_prompt(text, prompt, "dog")
    with pytest.raises(TargetLocationError, match="not verbatim"):
        locate_in_prompt("USER: something else", prompt, "cat")


def test_locate_in_prompt_at_a_known_offset():
    # a target that is also a word of the existence template: "a" is found at its field
    prompt, offset = existence_prompt(FocusConfig().existence_prompt, "a")
    assert prompt == "Is there a a in the image? Answer Yes or No." and offset == 11
    text = f"USER: <image>\n{prompt} ASSISTANT:"
    start, end = locate_in_prompt(text, prompt, "a", offset)
    assert (start, end) == (text.index(prompt) + 11, text.index(prompt) + 12)
    assert locate_in_prompt(text, prompt, "a")[0] == text.index(prompt) + 9  # the first occurrence: the template's
    with pytest.raises(TargetLocationError, match="not at offset 12"):
        locate_in_prompt(text, prompt, "a", 12)
    # a template with escaped braces before its field
    assert existence_prompt("{{Q}} Is there a {target}?", "cat") == ("{Q} Is there a cat?", 15)
    with pytest.raises(ValueError, match="no {target} field"):
        existence_prompt("Is there a cat?", "cat")


def test_answer_token_follows_the_generation_prompt(tiny_adapter):
    tokenizer = tiny_adapter("llava_1_5").tokenizer
    vocab = tokenizer.get_vocab()
    assert {"Yes", "ĠYes", "No", "ĠNo"} <= set(vocab)  # both variants exist, so the choice matters
    assert answer_separator("ASSISTANT:") == " " and answer_separator("assistant\n") == ""
    assert first_answer_token(tokenizer, "USER: x ASSISTANT:", "Yes") == vocab["ĠYes"]
    assert first_answer_token(tokenizer, "<|im_start|>assistant\n", "Yes") == vocab["Yes"]
    assert first_answer_token(tokenizer, "<|im_start|>assistant\n", "No") == vocab["No"]
    assert first_answer_token(tokenizer, "ASSISTANT: ", "No") == vocab["No"]
    # a word the vocabulary splits: its first piece
    first = first_answer_token(tokenizer, "ASSISTANT:", "Xylophone")
    assert tokenizer.convert_ids_to_tokens(first) in ("ĠX", "Ġ")


def test_text_positions_skip_the_image_run(tiny_adapter):
    adapter = tiny_adapter("llava_1_5")
    text = adapter.chat_text("Is there a cat?", num_images=1)
    input_ids = adapter.encode([text], [noise_image(30, 30)])["input_ids"][0]
    positions, spans = adapter.text_positions(text, input_ids)
    placeholder = positions.index(-1)
    assert positions[:placeholder] == list(range(placeholder))
    assert positions[placeholder + 1:] == list(range(placeholder + 16, len(input_ids)))  # 16 image tokens
    assert all(input_ids[p] == adapter.image_token_id for p in range(placeholder, placeholder + 16))
    with pytest.raises(RuntimeError, match="differently"):
        adapter.text_positions(text.replace("cat", "dog"), input_ids)


# --- RoPE removal --------------------------------------------------------------------------------


@pytest.mark.parametrize("rope", [{"rope_type": "default", "rope_theta": 10000.0},
                                  {"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0},
                                  {"rope_type": "yarn", "factor": 4.0, "rope_theta": 10000.0,
                                   "original_max_position_embeddings": 64}])
def test_unrotate_inverts_rope(rope):
    config = LlamaConfig(hidden_size=64, num_attention_heads=4, rope_parameters=rope, max_position_embeddings=256)
    rotary = LlamaRotaryEmbedding(config)
    keys = torch.randn(1, 2, 40, 16)  # [batch, kv_heads, seq, head_dim]
    cos, sin = rotary(keys, torch.arange(40)[None])
    if rope["rope_type"] == "yarn":
        assert not torch.allclose(cos**2 + sin**2, torch.ones_like(cos))  # scaled: the case that needs dividing
    _, rotated = apply_rotary_pos_emb(keys, keys, cos, sin)
    torch.testing.assert_close(unrotate(rotated[0], cos[0], sin[0]), keys[0], atol=1e-5, rtol=1e-5)


def test_unrotated_keys_are_the_key_projections(tiny_adapter):
    adapter = tiny_adapter("llava_1_5")
    captured = {}
    layer = adapter.language_model.layers[1]
    handle = layer.self_attn.k_proj.register_forward_hook(lambda m, args, out: captured.update(k=out.detach()))
    try:
        prefill = adapter.prefill(noise_image(70, 50), "Is there a cat in the image?", "cat", [1], with_keys=True)
    finally:
        handle.remove()
    kv_heads, seq, head_dim = prefill.keys.shape[1:]
    projected = captured["k"][0].view(seq, kv_heads, head_dim).transpose(0, 1)  # [kv_heads, seq, head_dim]
    torch.testing.assert_close(prefill.keys[0], projected, atol=1e-5, rtol=1e-5)
    inputs = adapter.encode([adapter.chat_text("Is there a cat in the image?", 1)], [noise_image(70, 50)])
    cached = kv_cache(adapter.forward(inputs, use_cache=True)).layers[1].keys[0]  # with RoPE
    assert not torch.allclose(cached, projected, atol=1e-2)


# --- FLOP measurement ------------------------------------------------------------------------------


def test_measure_flops_counts_cpu_sdpa():
    q, k, v = torch.randn(2, 4, 10, 8), torch.randn(2, 4, 12, 8), torch.randn(2, 4, 12, 8)
    _, measured = measure_flops(lambda: F.scaled_dot_product_attention(q, k, v))
    assert measured == 2 * attention_flops(10, 12, 4, 8)  # batch of 2
