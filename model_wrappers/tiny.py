"""Tiny random checkpoints of the three model families, built offline (tests, `make demo`).

`build_tiny_checkpoint(family, path, seed)` writes a directory that loads exactly like a hub
checkpoint (`load_adapter(path)`): random weights, a byte-level BPE tokenizer trained here on
a small corpus (the words the tests and the demo use, the family's special tokens, a chat
template in the family's format) and the family's real processor classes. Everything is a
function of the arguments: the same seed gives the same files.

Sizes: vision hidden 32 (patch 14, input 56 px), Qwen2-style text model with hidden 64,
2 layers, 4 heads, 2 key/value heads; LLaVA-OneVision pinpoints scaled to [[56 i, 56 j]];
Qwen2.5-VL mRoPE sections [2, 3, 3] (head_dim 16).

Options for geometry tests:
- local_vision: the vision attention output projections are zero, so attention adds nothing
  and every vision token depends on its own patch only (layer norms and MLPs are per token).
- vision_layers: depth of the vision tower; text_layers: depth of the language model (ViCrop's
  gradient needs layers after the probed one).
- resample: PIL resampling filter of the image processor (NEAREST makes a pixel's influence
  end exactly at the cells it lies in).
- image_preprocessing (LLaVA-1.5): "crop" = CLIP image processor, resize the shortest edge and
  centre-crop (llava-hf/llava-1.5-7b-hf); "pad" = LLaVA image processor padding to a square
  first (the original LLaVA-1.5 evaluation).
- image_size (LLaVA families): side of the vision input, a multiple of 14 for LLaVA-1.5.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast
from transformers.utils import is_torchvision_available

from .base import image_only_processor_class

FAMILIES = ("llava_1_5", "llava_onevision", "qwen2_5_vl")
VOCAB_SIZE = 512
TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=8192)
VISION = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, patch_size=14)

_OBJECTS = ("cat", "dog", "car", "red car", "bird", "person", "traffic light", "umbrella", "bicycle",
            "flag", "blue bag", "white dog", "tree", "bench", "ball", "sign", "cup", "book")
_CORPUS = [
    *(f"Is there a {name} in the image? Answer Yes or No." for name in _OBJECTS),
    *(f"What is the color of the {name}? The color of the {name} is red." for name in _OBJECTS),
    *(f"Question: Where is the {name}?\nIf you want to answer the question, which objects' information do "
      f"you need?\nSo I need the information about the following objects: {name} and the bench." for name in _OBJECTS),
    "Yes\nNo\nYes.\nNo.\n Yes No yes no",
    "(A) red (B) blue (C) green (D) white (E) black\nAnswer with the option's letter from the given choices directly.",
    "A. left\nB. right\nC. top\nD. bottom\nAnswer the option letter directly. A B C D",
    "USER: ASSISTANT: user assistant system You are a helpful assistant.",
    "Describe the image. How many people are there? 0 1 2 3 4 5 6 7 8 9",
]

# Chat templates in each family's format: images first, then the text, then the generation prompt.
_TEXT = "{% for c in m['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}"
_CHAT_TEMPLATES = {
    "llava_1_5": (
        "{% for m in messages %}{{ m['role'].upper() }}: "
        "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>\n{% endif %}{% endfor %}"
        + _TEXT + " {% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"),
    "llava_onevision": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }} "
        "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>{% endif %}{% endfor %}\n"
        + _TEXT + "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"),
    "qwen2_5_vl": (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
        "{% for c in m['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
        "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"),
}
_SPECIAL_TOKENS = {
    "llava_1_5": dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                      extra_special_tokens={"image_token": "<image>"}),
    "llava_onevision": dict(eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="<|endoftext|>",
                            extra_special_tokens={"image_token": "<image>", "video_token": "<video>",
                                                  "im_start_token": "<|im_start|>"}),
    "qwen2_5_vl": dict(eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="<|endoftext|>",
                       extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                                             "vision_start_token": "<|vision_start|>",
                                             "vision_end_token": "<|vision_end|>",
                                             "im_start_token": "<|im_start|>"}),
}
# Vision attention output projections, zeroed by local_vision.
_VISION_ATTENTION_OUTPUTS = {"llava_1_5": "self_attn.out_proj", "llava_onevision": "self_attn.out_proj",
                             "qwen2_5_vl": "attn.proj"}


def build_tiny_checkpoint(family: str, path: str | Path, seed: int = 0, *, vision_layers: int = 2,
                          local_vision: bool = False, resample: int | None = None,
                          image_preprocessing: str = "crop", image_size: int = 56, text_layers: int | None = None) -> Path:
    """Write a tiny random `family` checkpoint to `path` (created) and return it."""
    model_class, config, processor = tiny_parts(family, vision_layers=vision_layers, image_size=image_size,
                                                image_preprocessing=image_preprocessing)
    if text_layers is not None:
        config = with_dimensions(config, text={"num_hidden_layers": text_layers})
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = processor.tokenizer
    if resample is not None:
        processor.image_processor.resample = resample
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class._from_config(config, dtype=torch.float32)
    if local_vision:
        suffix = _VISION_ATTENTION_OUTPUTS[family]
        with torch.no_grad():
            for name, module in model.named_modules():
                if name.endswith(suffix) and ("vision" in name or "visual" in name):
                    module.weight.zero_()
                    if module.bias is not None:
                        module.bias.zero_()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def tiny_parts(family: str, *, vision_layers: int = 2, image_size: int = 56, image_preprocessing: str = "crop",
               corpus: Sequence[str] = _CORPUS) -> tuple[type, Any, Any]:
    """(model class, config, processor) of a tiny `family` checkpoint, before any weights exist:
    what build_tiny_checkpoint saves; benchmarks/adapters.py and the proving ground give the
    config other dimensions (`with_dimensions`). The tokenizer is trained on `corpus`."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; tiny checkpoints exist for {FAMILIES}")
    if image_preprocessing not in ("crop", "pad") or (image_preprocessing == "pad" and family != "llava_1_5"):
        raise ValueError(f"image_preprocessing={image_preprocessing!r}: 'crop' or 'pad', and 'pad' is for llava_1_5")
    patch = VISION["patch_size"]
    if image_size < patch or (family == "llava_1_5" and image_size % patch) \
            or (family == "qwen2_5_vl" and image_size != 56):
        raise ValueError(f"image_size={image_size}: a multiple of {patch} (LLaVA-OneVision: any size from {patch}, "
                         f"as its real 384 = 27 patches + 6 px); Qwen2.5-VL keeps 56")
    if vision_layers < 1:
        raise ValueError(f"vision_layers={vision_layers}: need at least 1")
    builders = {"llava_1_5": _llava_1_5, "llava_onevision": _llava_onevision, "qwen2_5_vl": _qwen2_5_vl}
    return builders[family](_tokenizer(family, corpus), vision_layers=vision_layers, image_size=image_size,
                            image_preprocessing=image_preprocessing)


def with_dimensions(config: Any, text: dict[str, Any] | None = None, vision: dict[str, Any] | None = None,
                    **top: Any) -> Any:
    """A copy of a multimodal `config` with entries of its text and vision sub-configs (and
    top-level entries) replaced."""
    values = config.to_dict()
    values["text_config"].update(text or {})
    values["text_config"].pop("layer_types", None)  # derived from num_hidden_layers
    values["vision_config"].update(vision or {})
    values.update(top)
    return type(config).from_dict(values)


def _tokenizer(family: str, corpus: Sequence[str]) -> PreTrainedTokenizerFast:
    special = _SPECIAL_TOKENS[family]
    specials = list(dict.fromkeys(
        [special[k] for k in ("unk_token", "bos_token", "eos_token", "pad_token") if k in special]
        + list(special["extra_special_tokens"].values())))
    model = Tokenizer(models.BPE())
    model.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    model.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    model.train_from_iterator(corpus, trainer)
    if "bos_token" in special:  # LLaVA-1.5's Llama tokenizer starts every text with <s>
        bos = special["bos_token"]
        model.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, model.token_to_id(bos))])
    return PreTrainedTokenizerFast(tokenizer_object=model, chat_template=_CHAT_TEMPLATES[family], **special)


def _text_config(tokenizer: PreTrainedTokenizerFast, **extra) -> dict:
    return dict(TEXT, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **extra)


def _with_video_processor(processor_class: type, video_processor_class: str, **kwargs):
    """The real processor with a default video processor where torchvision exists, else the
    image-only variant that `load_processor` also uses."""
    if is_torchvision_available():
        import transformers

        return processor_class(video_processor=getattr(transformers, video_processor_class)(), **kwargs)
    return image_only_processor_class(processor_class)(**kwargs)


def _llava_1_5(tokenizer, *, vision_layers: int, image_size: int, image_preprocessing: str):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    sizes = dict(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    if image_preprocessing == "pad":
        image_processor = LlavaImageProcessorPil(do_pad=True, **sizes)
    else:
        image_processor = CLIPImageProcessorPil(**sizes)
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=VISION["patch_size"],
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=_CHAT_TEMPLATES["llava_1_5"])
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**VISION, num_hidden_layers=vision_layers, image_size=image_size,
                                       projection_dim=VISION["hidden_size"]),
        text_config=LlamaConfig(**_text_config(tokenizer)),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(image_size // VISION["patch_size"]) ** 2,
        vision_feature_layer=-2, vision_feature_select_strategy="default")
    return LlavaForConditionalGeneration, config, processor


def _llava_onevision(tokenizer, *, vision_layers: int, image_size: int, image_preprocessing: str):
    from transformers import (LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, LlavaOnevisionProcessor,
                              Qwen2Config, SiglipVisionConfig)
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )

    pinpoints = [[image_size * i, image_size * j] for i in range(1, 7) for j in range(1, 7)]
    image_processor = LlavaOnevisionImageProcessorPil(size={"height": image_size, "width": image_size},
                                                      image_grid_pinpoints=pinpoints, do_pad=True)
    processor = _with_video_processor(
        LlavaOnevisionProcessor, "LlavaOnevisionVideoProcessor", image_processor=image_processor,
        tokenizer=tokenizer, num_image_tokens=(image_size // VISION["patch_size"]) ** 2,
        vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9",
        chat_template=_CHAT_TEMPLATES["llava_onevision"])
    config = LlavaOnevisionConfig(
        vision_config=SiglipVisionConfig(**VISION, num_hidden_layers=vision_layers, image_size=image_size),
        text_config=Qwen2Config(**_text_config(tokenizer)),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=pinpoints, vision_feature_layer=-1, vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9")
    return LlavaOnevisionForConditionalGeneration, config, processor


def _qwen2_5_vl(tokenizer, *, vision_layers: int, image_size: int, image_preprocessing: str):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    patch, merge = VISION["patch_size"], 2
    image_processor = Qwen2VLImageProcessorPil(min_pixels=(patch * merge) ** 2, max_pixels=(patch * merge * 8) ** 2,
                                               patch_size=patch, merge_size=merge, temporal_patch_size=2)
    processor = _with_video_processor(Qwen2_5_VLProcessor, "Qwen2VLVideoProcessor", image_processor=image_processor,
                                      tokenizer=tokenizer, chat_template=_CHAT_TEMPLATES["qwen2_5_vl"])
    token_id = tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        vision_config=dict(depth=vision_layers, hidden_size=VISION["hidden_size"],
                           intermediate_size=VISION["intermediate_size"], num_heads=VISION["num_attention_heads"],
                           out_hidden_size=TEXT["hidden_size"], patch_size=patch, spatial_merge_size=merge,
                           temporal_patch_size=2, window_size=2 * patch * merge,
                           fullatt_block_indexes=[vision_layers - 1]),
        text_config=_text_config(tokenizer, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}),
        image_token_id=token_id("<|image_pad|>"), video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"), vision_end_token_id=token_id("<|vision_end|>"))
    return Qwen2_5_VLForConditionalGeneration, config, processor
