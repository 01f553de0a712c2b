"""What every model adapter shares: loading, chat templating, token bookkeeping, the five
protocol calls, RoPE removal and cost accounting.

A family module subclasses `HFAdapter` and supplies only what differs between families:
`family`, `multi_image`, `max_images`, `image_projector`, `visual_layout` (which sequence
positions form the relevance grid and where its cells lie in the original image) and
`vision_flops`; `rope_cos_sin` and `position_ids` when its language model does not use plain
1-D RoPE; `processor_class` when its processor carries a video processor.

Choices made here (the paper is silent):
- The target's tokens are those whose character span (fast-tokenizer offsets) overlaps the
  target inside the prompt, inside the final templated text: at the offset the caller gives
  (the pipeline knows it from the existence template, so a target such as "a" is never taken
  from the template's own words), else at its first occurrence. A token that also covers
  neighbouring characters (" cat" with its space, "cat?" merged) counts.
- An answer word ("Yes", "No", an option's text) follows the generation prompt directly when
  the template ends in whitespace, else after one space, as a model writes it ("ASSISTANT: Yes",
  "assistant\\nYes"). "Yes"/"No" are the first tokens of those answers.
- Decoding is greedy: sampling parameters in gen_kwargs are ignored, do_sample=True is refused.
- option_scores appends each option after the generation prompt and sums the log-probabilities
  of the tokens overlapping the option's characters (and counts them, for a length-normalised
  score); one forward pass per option.
- FLOPs of a batched call count each prompt's own tokens, not its padding.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
from contextlib import contextmanager, nullcontext
from functools import cache, cached_property, partial
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Sequence

import torch
from PIL import Image
from transformers import (AutoModelForImageTextToText, AutoProcessor, BatchFeature, PreTrainedModel, StoppingCriteriaList,
                          StopStringCriteria)
from transformers.utils import is_torchvision_available

from focus_eval.images import load_image
from focus_eval.protocol import (
    Generation,
    GridGeometry,
    LastTokenAttention,
    OptionScores,
    PassCost,
    Prefill,
    TargetLocationError,
    YesNo,
)

from .attention_probe import gradient_mode, probe_last_row
from .decoding import PrefixCache, cache_argument, lookup_greedy
from .flops import attention_backward_flops, attention_row_flops, decoder_flops, generation_flops

DTYPES: dict[str, torch.dtype | str] = {
    "auto": "auto",
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float32": torch.float32,
}
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")
# Options that `from_pretrained` gives an adapter's constructor, not its processor; a family
# accepts those in its `adapter_options` (LLaVA-1.5: image_aspect, see llava_1_5.py).
ADAPTER_OPTIONS = ("image_aspect",)
# Sampling switches that greedy decoding makes meaningless; dropped rather than warned about.
_SAMPLING_KWARGS = ("temperature", "top_p", "top_k", "typical_p", "min_p")


class AdapterInputError(ValueError):
    """A request an adapter cannot serve: no image, too many images, bad layers, empty options."""


# ---------------------------------------------------------------------------------------------
# loading


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype | str:
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"dtype={dtype}: expected one of {list(DTYPES)}")
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}: expected one of {list(DTYPES)}")
    return DTYPES[dtype]


def check_attn_implementation(attn_implementation: str) -> str:
    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise ValueError(f"attn_implementation={attn_implementation!r}: expected one of {ATTN_IMPLEMENTATIONS}")
    if attn_implementation == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        raise ValueError("attn_implementation='flash_attention_2' needs the flash-attn package, which is not "
                         "installed; use 'sdpa' (the default) or install flash-attn")
    return attn_implementation


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@cache
def image_only_processor_class(processor_class: type) -> type:
    """`processor_class` without its video processor, for machines without torchvision.

    transformers 5.x type-checks a processor's `video_processor` against a class that needs
    torchvision, so LLaVA-OneVision's and Qwen2.5-VL's processors refuse to construct without
    it. The subclass drops that argument from its `__init__` signature, which is where 5.x reads
    the sub-processors from (`get_attributes`, `to_dict`). The constructor from the loaded
    config is overridden because transformers reads the accepted config keys (`chat_template`,
    `vision_aspect_ratio`, ...) from the code object of `__init__`, not from its signature, and
    this `__init__` takes them as **kwargs: `from_args_and_dict(args, processor_dict)` up to 5.24,
    `from_dict(processor_dict)` from 5.25 on (the sub-processors are entries of the dict there).
    Without the second override 5.25 drops the chat template. The class keeps its parent's
    name, so a checkpoint saved with it names the real processor.
    """
    signature = inspect.signature(processor_class.__init__)
    init_keys = set(signature.parameters) - {"self", "video_processor", "kwargs"}

    class ImageOnlyProcessor(processor_class):
        def __init__(self, image_processor=None, tokenizer=None, **kwargs):
            super().__init__(image_processor=image_processor, tokenizer=tokenizer, video_processor=None, **kwargs)

        @classmethod
        def from_args_and_dict(cls, args, processor_dict, **kwargs):  # transformers <= 5.24
            return cls.from_dict({**processor_dict, **dict(zip(cls.get_attributes(), args))}, **kwargs)

        @classmethod
        def from_dict(cls, processor_dict, **kwargs):  # transformers >= 5.25
            kwargs.pop("return_unused_kwargs", None)
            config = {**processor_dict, **kwargs}
            return cls(**{key: value for key, value in config.items() if key in init_keys})

    ImageOnlyProcessor.__init__.__signature__ = signature.replace(
        parameters=[p for name, p in signature.parameters.items() if name != "video_processor"])
    ImageOnlyProcessor.__name__ = processor_class.__name__
    ImageOnlyProcessor.__qualname__ = processor_class.__qualname__
    return ImageOnlyProcessor


def load_processor(pretrained: str | Path, processor_class: type | None = None, **processor_kwargs):
    """AutoProcessor, or the image-only variant of `processor_class` when torchvision is missing."""
    if processor_class is not None and not is_torchvision_available():
        return image_only_processor_class(processor_class).from_pretrained(pretrained, **processor_kwargs)
    return AutoProcessor.from_pretrained(pretrained, **processor_kwargs)


# ---------------------------------------------------------------------------------------------
# token bookkeeping (pure functions of a tokenizer and strings)


def locate_in_prompt(text: str, prompt: str, phrase: str, offset: int | None = None) -> tuple[int, int]:
    """Character span [start, end) of `phrase` inside `prompt`, inside the templated `text`.

    offset: where `phrase` starts in `prompt`, checked; None: the first occurrence counts, and
    a case-insensitive match is accepted when no exact one exists. Surrounding whitespace of
    `phrase` is ignored."""
    needle = phrase.strip()
    if not needle:
        raise TargetLocationError(f"empty target phrase {phrase!r}")
    prompt_start = text.find(prompt)
    if prompt_start < 0:
        raise TargetLocationError("the chat template changed the prompt; it is not verbatim in the templated text")
    if offset is not None:
        offset += len(phrase) - len(phrase.lstrip())
        if prompt[offset:offset + len(needle)] != needle:
            raise TargetLocationError(f"target {needle!r} is not at offset {offset} of the prompt {prompt!r}")
        return prompt_start + offset, prompt_start + offset + len(needle)
    offset = prompt.find(needle)
    if offset < 0:
        offset = prompt.casefold().find(needle.casefold())
        if offset < 0 or len(prompt.casefold()) != len(prompt):
            raise TargetLocationError(f"target {needle!r} does not occur in the prompt {prompt!r}")
    start = prompt_start + offset
    return start, start + len(needle)


def answer_separator(prefix: str) -> str:
    """What a model writes between the generation prompt and its answer (module doc)."""
    return "" if not prefix or prefix[-1].isspace() else " "


def first_answer_token(tokenizer, prefix: str, word: str) -> int:
    """Id of the first token of `word` written as an answer after the templated `prefix`."""
    text = prefix + answer_separator(prefix) + word
    encoding = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    for token, (start, end) in zip(encoding["input_ids"], encoding["offset_mapping"]):
        if end > len(prefix) and end > start:
            if start < len(prefix) and prefix[start:].isspace():
                # the prompt, tokenized alone, ends in its own whitespace token: the answer starts afresh
                return int(tokenizer(word, add_special_tokens=False)["input_ids"][0])
            if start < len(prefix):
                raise ValueError(f"the answer {word!r} merges with the end of the generation prompt into one "
                                 f"token ({tokenizer.convert_ids_to_tokens(token)!r}); no clean answer token")
            return int(token)
    raise ValueError(f"{word!r} produced no token after the generation prompt")


# ---------------------------------------------------------------------------------------------
# the adapter


class HFAdapter:
    """A transformers image-text-to-text model behind the FOCUS adapter protocol."""

    family: ClassVar[str]
    multi_image: ClassVar[bool]
    max_images: ClassVar[int | None]  # per prompt; None: no limit
    processor_class: ClassVar[type | None] = None  # set when the processor has a video processor
    # the family's constructor options among ADAPTER_OPTIONS -> their values, the default first
    adapter_options: ClassVar[dict[str, tuple[str, ...]]] = {}
    # from_pretrained's option for every family (`batch_token_budget`): None, the family's
    # image_token_cap; 0, no limit; N, at most N tokens per batched existence-check forward
    max_batch_tokens: int | None = None

    def __init__(self, model: PreTrainedModel, processor):
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.tokenizer.padding_side = "left"  # the last position is the next-token position in every row
        self.config = model.config
        self.text_config = model.config.get_text_config()
        self.num_layers: int = self.text_config.num_hidden_layers
        self.image_token_id: int = self.config.image_token_id
        self.device: torch.device = model.get_input_embeddings().weight.device
        self.dtype: torch.dtype = model.dtype
        self._stopping: dict[tuple[str, ...], StoppingCriteriaList] = {}
        prefix = self.chat_text("Answer.", num_images=0)
        self.yes_no_ids = [first_answer_token(self.tokenizer, prefix, "Yes"),
                           first_answer_token(self.tokenizer, prefix, "No")]
        if self.yes_no_ids[0] == self.yes_no_ids[1]:
            raise ValueError(f"'Yes' and 'No' start with the same token {self.yes_no_ids[0]}")

    @classmethod
    def from_pretrained(cls, pretrained: str | Path, *, dtype: str | torch.dtype = "auto",
                        device: str | torch.device | None = None, device_map: Any = None,
                        attn_implementation: str = "sdpa", **processor_kwargs) -> "HFAdapter":
        if device is not None and device_map is not None:
            raise ValueError("give device or device_map, not both")
        options = {name: processor_kwargs.pop(name) for name in ADAPTER_OPTIONS if name in processor_kwargs}
        max_batch_tokens = check_max_batch_tokens(processor_kwargs.pop("max_batch_tokens", None))
        for name, value in options.items():
            if name not in cls.adapter_options:
                raise ValueError(f"{name} is not an option of the {cls.family} adapter")
            if value not in cls.adapter_options[name]:
                raise ValueError(f"{name}={value!r}: expected one of {', '.join(cls.adapter_options[name])}")
        # use_kernels=False: transformers 5.25 swaps layers for kernels from the hub by default when the
        # `kernels` package is installed (it became a dependency); the model's own layers keep the
        # numbers of 5.17-5.24 and loading offline.
        model = AutoModelForImageTextToText.from_pretrained(
            pretrained, dtype=resolve_dtype(dtype), device_map=device_map,
            attn_implementation=check_attn_implementation(attn_implementation), use_kernels=False)
        if device_map is None:
            model = model.to(torch.device(device) if device is not None else default_device())
        adapter = cls(model, load_processor(pretrained, cls.processor_class, **processor_kwargs), **options)
        adapter.max_batch_tokens = max_batch_tokens
        return adapter

    # --- family hooks -------------------------------------------------------------------

    @property
    def base_resolution(self) -> int:
        """Side in pixels of one vision-encoder input."""
        return self.config.vision_config.image_size

    @property
    def image_projector(self) -> torch.nn.Module:
        """The module whose output are the image features placed into the sequence."""
        raise NotImplementedError

    def visual_layout(self, inputs: BatchFeature, image: Image.Image) -> tuple[torch.Tensor, GridGeometry]:
        """Sequence positions [h * w] of the grid's tokens (row-major) and the grid's geometry,
        for a single prompt with a single `image`."""
        raise NotImplementedError

    def vision_flops(self, inputs: BatchFeature) -> int:
        """FLOPs of the vision tower and projector for the images in `inputs`."""
        raise NotImplementedError

    @property
    def image_token_cap(self) -> int:
        """Image tokens of one image at the family's largest encoding (what a benchmark image,
        larger than every cap, costs vanilla): the default of `batch_token_budget`."""
        raise NotImplementedError

    @property
    def language_model(self) -> torch.nn.Module:
        return self.model.model.language_model

    def position_ids(self, inputs: BatchFeature) -> torch.Tensor | None:
        """1-D positions that skip left padding, so a padded row computes what it would alone."""
        mask = inputs["attention_mask"]
        return (mask.long().cumsum(-1) - 1).clamp_min(0)

    def rope_cos_sin(self, inputs: BatchFeature) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin [seq, head_dim] (float32) the cached keys of the single prompt were rotated with."""
        positions = self.position_ids(inputs)
        probe = torch.zeros((), dtype=torch.float32, device=positions.device)
        cos, sin = self.language_model.rotary_emb(probe, positions)
        return cos[0].float(), sin[0].float()

    # --- shared helpers -------------------------------------------------------------------

    def chat_text(self, prompt: str, num_images: int, image_texts: Sequence[str] | None = None) -> str:
        """The templated user turn: `num_images` images, then `prompt`; with `image_texts`, each
        image followed by its text (interleaved; the family's template may put images first)."""
        if image_texts is not None:
            if len(image_texts) != num_images:
                raise AdapterInputError(f"{len(image_texts)} image texts for {num_images} images")
            placeholder = self.image_placeholder
            separator = "" if placeholder[-1:].isspace() else "\n"
            prompt = "".join(f"{placeholder}{separator}{text}\n" for text in image_texts) + prompt
            num_images = 0
        content = [{"type": "image"}] * num_images + [{"type": "text", "text": prompt}]
        return self.processor.apply_chat_template([{"role": "user", "content": content}],
                                                  add_generation_prompt=True, tokenize=False)

    @cached_property
    def image_placeholder(self) -> str:
        """What the chat template writes for one image: the difference between a user turn
        templated with one image and without."""
        marker = "\x00"
        with_image, without = self.chat_text(marker, 1), self.chat_text(marker, 0)
        start = len(os.path.commonprefix([with_image, without]))
        end = len(os.path.commonprefix([with_image[start:][::-1], without[start:][::-1]]))
        placeholder = with_image[start:len(with_image) - end]
        if self.processor.image_token not in placeholder:
            raise RuntimeError(f"{self.family}: the chat template writes no image token for an image ({placeholder!r})")
        return placeholder

    def encode(self, texts: Sequence[str], images: Sequence[Image.Image],
               each_image_alone: bool = False) -> BatchFeature:
        """Processor outputs for `texts` (left-padded) and the images they reference, in order.

        each_image_alone: encode every image as an image alone in its prompt, also when a prompt
        references several (families with a multi-image form, LLaVA-OneVision, override this)."""
        inputs = self.processor(text=list(texts), images=list(images) or None, padding=True, return_tensors="pt")
        return BatchFeature({key: value.to(self.device, dtype=self.dtype if value.is_floating_point() else None)
                             for key, value in inputs.items()})

    def forward(self, inputs: BatchFeature, logits_to_keep: int = 1, use_cache: bool = False, grad: bool = False):
        """One forward pass computing the last `logits_to_keep` logit rows; the KV cache is built
        only when asked for (the relevance prefill reads it; existence checks and option scores
        need logits only, and a batch of check crops' cache would be dead memory). grad: build
        the autograd graph, also inside a caller's inference mode (the caller freezes parameters)."""
        with torch.inference_mode(not grad), torch.set_grad_enabled(grad):
            return self.model(**inputs, position_ids=self.position_ids(inputs), use_cache=use_cache,
                              logits_to_keep=logits_to_keep)

    def text_positions(self, text: str, input_ids: torch.Tensor) -> tuple[list[int], list[tuple[int, int]]]:
        """Sequence index in `input_ids` [seq] (-1: image placeholder) and character span in `text`
        of every token of `text` tokenized alone.

        The processor expands each image placeholder into a run of image tokens; walking both
        sequences side by side maps the text's tokens onto the expanded sequence."""
        encoding = self.tokenizer(text, return_offsets_mapping=True)
        expanded = input_ids.tolist()
        positions, j = [], 0
        for token in encoding["input_ids"]:
            if token == self.image_token_id:
                positions.append(-1)
                while j < len(expanded) and expanded[j] == self.image_token_id:
                    j += 1
                continue
            if j >= len(expanded) or expanded[j] != token:
                raise RuntimeError(f"the processor tokenized {text!r} differently from the tokenizer "
                                   f"(mismatch at sequence index {j})")
            positions.append(j)
            j += 1
        if j != len(expanded):
            raise RuntimeError(f"the processor added {len(expanded) - j} tokens the tokenizer did not produce")
        return positions, [tuple(span) for span in encoding["offset_mapping"]]

    def span_positions(self, text: str, input_ids: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """Sequence indices [s] of the tokens whose characters overlap text[start:end]."""
        positions, spans = self.text_positions(text, input_ids)
        found = [p for p, (a, b) in zip(positions, spans) if p >= 0 and b > a and a < end and b > start]
        if not found:
            raise TargetLocationError(f"no token covers {text[start:end]!r}")
        return torch.tensor(found, dtype=torch.long)

    def pass_cost(self, inputs: BatchFeature, logit_rows: int = 1) -> PassCost:
        """Cost of one forward over `inputs`: one pass per row, each at its own token count."""
        lengths = inputs["attention_mask"].sum(-1).tolist()
        flops = self.vision_flops(inputs) if "pixel_values" in inputs else 0
        flops += sum(decoder_flops(self.text_config, n, logit_rows=logit_rows) for n in lengths)
        return PassCost(passes=len(lengths), batches=1, flops=float(flops), tokens=int(sum(lengths)))

    def one_image(self, image: Image.Image | None) -> Image.Image:
        if image is None:
            raise AdapterInputError(f"{self.family}: this call needs an image, got None")
        return _to_rgb(image)

    def check_images(self, images: Sequence[Image.Image]) -> list[Image.Image]:
        images = list(images)
        if self.max_images is not None and len(images) > self.max_images:
            raise AdapterInputError(f"{self.family} takes at most {self.max_images} image(s) per prompt, got "
                                    f"{len(images)}; compose them into one canvas")
        return [_to_rgb(image) for image in images]

    @contextmanager
    def edit_image_features(self, edit: Callable[[torch.Tensor], torch.Tensor | None]) -> Iterator[None]:
        """Within the block, `edit` receives the projected image features of every forward and
        may return a replacement (tests: capture features, plant known ones)."""
        handle = self.image_projector.register_forward_hook(lambda module, args, output: edit(output))
        try:
            yield
        finally:
            handle.remove()

    # --- protocol -------------------------------------------------------------------------

    def prefill(self, image: Image.Image, prompt: str, target: str, layers: Sequence[int],
                with_keys: bool = False, target_offset: int | None = None) -> Prefill:
        image = self.one_image(image)
        layers = self._check_layers(layers)
        text = self.chat_text(prompt, num_images=1)
        start, end = locate_in_prompt(text, prompt, target, target_offset)
        inputs = self.encode([text], [image])
        target_positions = self.span_positions(text, inputs["input_ids"][0], start, end)
        visual_positions, geometry = self.visual_layout(inputs, image)
        out = self.forward(inputs, use_cache=True)
        cache = kv_cache(out)
        values = torch.stack([cache.layers[i].values[0] for i in layers])  # [layers, kv_heads, seq, head_dim]
        keys = None
        if with_keys:
            rotated = torch.stack([cache.layers[i].keys[0] for i in layers])  # [layers, kv_heads, seq, head_dim]
            keys = unrotate(rotated, *self.rope_cos_sin(inputs))
        return Prefill(values=values, keys=keys, target_positions=target_positions,
                       visual_positions=visual_positions, geometry=geometry,
                       yes_no=out.logits[0, -1, self.yes_no_ids].float(), cost=self.pass_cost(inputs))

    def last_token_attention(self, image: Image.Image, prompt: str, layer: int,
                             gradient: bool = False) -> LastTokenAttention:
        """Attention of the templated prompt's last token (the generation prompt's end) to the
        grid's image tokens (`visual_layout`, FOCUS's relevance grid, so the geometry is the one
        `prefill` gives) at decoder `layer`, from the attention probe (attention_probe.py: only
        that layer computes weights, and only for the last row). gradient: grad-att's
        A * ReLU(dLoss/dA), Loss = the log-probability (float32) of the argmax next token."""
        image = self.one_image(image)
        (layer,) = self._check_layers([layer])
        with gradient_mode(self.model) if gradient else nullcontext():
            inputs = self.encode([self.chat_text(prompt, num_images=1)], [image])
            visual_positions, geometry = self.visual_layout(inputs, image)
            with probe_last_row(self.language_model.layers[layer].self_attn, gradient) as probe:
                logits = self.forward(inputs, grad=gradient).logits[0, -1].float()  # [vocab]
            weights = probe.weights  # [1, heads, seq]
            if gradient:
                (grad,) = torch.autograd.grad(torch.log_softmax(logits, dim=-1).max(), weights)
                weights = weights.detach() * grad.relu()
        cost = self.pass_cost(inputs)
        tokens = inputs["input_ids"].shape[1]
        flops = cost.flops + attention_row_flops(self.text_config, tokens, gradient)
        if gradient:
            flops += attention_backward_flops(self.text_config, tokens, layer)
        return LastTokenAttention(weights=weights[0][:, visual_positions.to(weights.device)].float(),
                                  geometry=geometry,
                                  cost=PassCost(passes=1, batches=1, flops=float(flops), tokens=cost.tokens,
                                                backward=int(gradient)))

    def yes_no_logits(self, images: Sequence[Image.Image | Sequence[Image.Image]], prompts: Sequence[str],
                      image_texts: Sequence[Sequence[str]] | None = None, each_image_alone: bool = False) -> YesNo:
        """images[i]: prompt i's image, or its list of images (then image_texts[i], when given,
        holds one text per image, and each_image_alone applies as in `generate`)."""
        if len(images) != len(prompts) or not prompts:
            raise AdapterInputError(f"need one image per prompt (or one list of images per prompt) and at least one "
                                    f"prompt, got {len(images)} and {len(prompts)} prompts")
        if image_texts is not None and len(image_texts) != len(prompts):
            raise AdapterInputError(f"{len(image_texts)} lists of image texts for {len(prompts)} prompts")
        views = [[self.one_image(image)] if isinstance(image, Image.Image) or image is None
                 else self.check_images(image) for image in images]
        if any(not view for view in views):
            raise AdapterInputError("every existence prompt needs at least one image")
        texts = [self.chat_text(p, len(view), None if image_texts is None else image_texts[i])
                 for i, (p, view) in enumerate(zip(prompts, views))]
        inputs = self.encode(texts, [image for view in views for image in view], each_image_alone)
        groups = token_budget_groups(inputs["attention_mask"].sum(-1).tolist(), self.batch_token_budget())
        if len(groups) == 1:
            return self._yes_no(inputs)
        # each group encoded on its own, padded to its own longest prompt
        answers = [self._yes_no(self.encode([texts[i] for i in group], [image for i in group for image in views[i]],
                                            each_image_alone)) for group in groups]
        return YesNo(logits=torch.cat([answer.logits for answer in answers]),
                     cost=sum((answer.cost for answer in answers[1:]), answers[0].cost))

    def _yes_no(self, inputs: BatchFeature) -> YesNo:
        logits = self.forward(inputs).logits[:, -1, self.yes_no_ids].float()  # [n, 2]
        return YesNo(logits=logits, cost=self.pass_cost(inputs))

    def batch_token_budget(self) -> int | None:
        """Most tokens, padding included, that one batched `yes_no_logits` forward runs (None: no
        limit); prompts beyond it go to further forwards, one prompt at least each. The same
        checks, confidences (up to float rounding) and forward passes as one batch: only model
        calls and peak memory change. Default, the family's `image_token_cap`: a benchmark image
        reaches the cap, so vanilla's answer runs at least that many tokens in one forward and
        keeps their KV cache, while a check forward keeps none: the checks' activations stay
        below vanilla's whatever n_steps is (OneVision's 8 anyres crops were 3.6x vanilla's
        tokens in one forward). Smaller images make vanilla cheaper than the cap."""
        if self.max_batch_tokens is None:
            return self.image_token_cap
        return self.max_batch_tokens or None

    def generate(self, images: Sequence[Image.Image], prompt: str, max_new_tokens: int,
                 stop: Sequence[str] = (), image_texts: Sequence[str] | None = None,
                 each_image_alone: bool = False, shared_prefix: str | None = None, draft_tokens: int = 0,
                 **gen_kwargs) -> Generation:
        """Greedy reply; generation ends at the first of the `stop` strings, which is cut off.
        image_texts, each_image_alone: see `chat_text` and `encode`. Text-only prompts only
        (model_wrappers/decoding.py): shared_prefix, a start of `prompt` whose KV cache is kept
        for later calls; draft_tokens, prompt-lookup drafts per forward (0: none). The reply and
        its cost are those of plain greedy decoding."""
        images = self.check_images(images)
        if gen_kwargs.pop("do_sample", False):
            raise AdapterInputError("decoding is greedy; do_sample=True is not supported")
        if draft_tokens < 0:
            raise AdapterInputError(f"draft_tokens must be >= 0, got {draft_tokens}")
        if shared_prefix is not None and not prompt.startswith(shared_prefix):
            raise AdapterInputError("shared_prefix must be the start of the prompt")
        for key in _SAMPLING_KWARGS:
            gen_kwargs.pop(key, None)
        stop = tuple(s for s in stop if s)
        if stop:
            gen_kwargs["stopping_criteria"] = self.stopping_criteria(stop)
        text = self.chat_text(prompt, len(images), image_texts)
        inputs = self.encode([text], images, each_image_alone)
        gen_kwargs.update(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                          pad_token_id=self.tokenizer.pad_token_id)
        if not images and (shared_prefix or draft_tokens):
            prefix = self.shared_prefix_tokens(text, prompt, shared_prefix, inputs["input_ids"][0]) if shared_prefix else 0
            output = self._fast_text_generate(inputs, prefix, draft_tokens, gen_kwargs)
        else:
            with torch.inference_mode():
                output = self.model.generate(**inputs, **gen_kwargs)
        new_tokens = output[0, inputs["input_ids"].shape[1]:]
        text = self.tokenizer.decode(new_tokens, skip_special_tokens=True)
        stopped = [text.find(s) for s in stop if s in text]
        text = text[:min(stopped, default=len(text))]
        eos = self.model.generation_config.eos_token_id
        ended = bool(len(new_tokens)) and int(new_tokens[-1]) in (eos if isinstance(eos, list) else [eos])
        truncated = len(new_tokens) >= max_new_tokens and not stopped and not ended
        prompt_cost = self.pass_cost(inputs)
        flops = generation_flops(self.text_config, prompt_cost.flops, prompt_cost.tokens, len(new_tokens))
        return Generation(text=text.strip(),
                          cost=PassCost(passes=1, batches=1, flops=float(flops),
                                        tokens=prompt_cost.tokens + len(new_tokens)),
                          truncated=truncated)

    def shared_prefix_tokens(self, text: str, prompt: str, shared_prefix: str, input_ids: torch.Tensor) -> int:
        """Leading tokens of input_ids [seq] (the templated `text`) that end within `shared_prefix`,
        the start of `prompt`; at most seq - 1, as the model has to run one token. 0 when the chat
        template changed the prompt."""
        start = text.find(prompt)
        if start < 0:
            return 0
        end = start + len(shared_prefix)
        positions, spans = self.text_positions(text, input_ids)
        count = 0
        for position, (_, span_end) in zip(positions, spans):
            if position != count or span_end > end:
                break
            count += 1
        return min(count, len(input_ids) - 1)

    def _fast_text_generate(self, inputs: BatchFeature, prefix: int, draft_tokens: int,
                            gen_kwargs: dict[str, Any]) -> torch.Tensor:
        """Greedy decoding from the kept cache of the first `prefix` tokens, with prompt-lookup
        drafts (model_wrappers/decoding.py); output ids [1, seq] as plain greedy decoding's."""
        kwargs = dict(gen_kwargs, custom_generate=partial(lookup_greedy, draft_tokens=draft_tokens))
        if prefix:
            kwargs[cache_argument(self.model)] = self.prefix_cache.get(self.model, inputs["input_ids"][:, :prefix],
                                                                       self._prefix_forward)
        try:
            with torch.inference_mode():
                output = self.model.generate(**inputs, **kwargs)
        except BaseException:
            self.prefix_cache.clear()  # a generation cut short may leave it longer than the prefix
            raise
        if prefix:
            self.prefix_cache.restore(prefix)
        return output

    def _prefix_forward(self, prefix_ids: torch.Tensor) -> Any:
        """The KV cache of prefix_ids [1, p] alone (text only: the model's own positions)."""
        with torch.inference_mode():
            output = self.model(input_ids=prefix_ids, attention_mask=torch.ones_like(prefix_ids), use_cache=True,
                                logits_to_keep=1)
        return kv_cache(output)

    @cached_property
    def prefix_cache(self) -> PrefixCache:
        return PrefixCache()

    def stopping_criteria(self, stop: tuple[str, ...]) -> StoppingCriteriaList:
        """Built once per stop tuple: StopStringCriteria preprocesses the whole vocabulary
        (~0.5 s for a 150k vocabulary), and transformers' own cache misses because its key holds
        the vocabulary dict's order, which differs between get_vocab() calls of fast tokenizers."""
        if stop not in self._stopping:
            self._stopping[stop] = StoppingCriteriaList([StopStringCriteria(self.tokenizer, list(stop))])
        return self._stopping[stop]

    def option_scores(self, images: Sequence[Image.Image], prompt: str, options: Sequence[str],
                      image_texts: Sequence[str] | None = None, each_image_alone: bool = False) -> OptionScores:
        images = self.check_images(images)
        if not options or any(not option.strip() for option in options):
            raise AdapterInputError(f"options must be non-empty strings, got {list(options)!r}")
        prefix = self.chat_text(prompt, len(images), image_texts)
        prefix += answer_separator(prefix)
        scores, counts, flops, total_tokens = [], [], 0.0, 0
        for option in options:
            text = prefix + option
            inputs = self.encode([text], images, each_image_alone)
            positions = self.span_positions(text, inputs["input_ids"][0], len(prefix), len(text)).to(self.device)
            first, seq = int(positions[0]), inputs["input_ids"].shape[1]
            # logits at position t predict token t + 1; keep rows first - 1 .. seq - 1
            logits = self.forward(inputs, logits_to_keep=seq - first + 1).logits[0].float()  # [seq-first+1, vocab]
            log_probs = torch.log_softmax(logits[positions - first], dim=-1)  # [s, vocab]
            tokens = inputs["input_ids"][0, positions]  # [s]
            scores.append(float(log_probs.gather(-1, tokens[:, None]).sum()))
            counts.append(len(positions))
            cost = self.pass_cost(inputs, logit_rows=seq - first + 1)
            flops, total_tokens = flops + cost.flops, total_tokens + cost.tokens
        return OptionScores(scores=scores, token_counts=counts, cost=PassCost(passes=len(options), batches=len(options),
                                                         flops=flops, tokens=total_tokens))

    def _check_layers(self, layers: Sequence[int]) -> list[int]:
        layers = [int(layer) for layer in layers]
        if not layers or any(b <= a for a, b in zip(layers, layers[1:])) or layers[0] < 0 \
                or layers[-1] >= self.num_layers:
            raise AdapterInputError(f"layers must be strictly increasing indices in [0, {self.num_layers}), "
                                    f"got {layers}")
        return layers


def check_max_batch_tokens(value: Any) -> int | None:
    """The `max_batch_tokens` option: None (the family default), 0 (no limit) or a positive count."""
    if value is None:
        return None
    try:
        number = int(str(value))
    except ValueError:
        number = -1
    if number < 0 or isinstance(value, bool):
        raise ValueError(f"max_batch_tokens={value!r}: expected a token count >= 0 (0: no limit)")
    return number


def token_budget_groups(lengths: Sequence[int], budget: int | None) -> list[list[int]]:
    """Consecutive prompts (by their token counts) per forward, so that rows x longest row (the
    left-padded batch) stays within `budget` tokens; a prompt over the budget goes alone. None:
    one group."""
    if budget is None:
        return [list(range(len(lengths)))]
    groups: list[list[int]] = []
    longest = 0
    for i, length in enumerate(lengths):
        if groups and (len(groups[-1]) + 1) * max(longest, length) <= budget:
            groups[-1].append(i)
            longest = max(longest, length)
        else:
            groups.append([i])
            longest = length
    return groups


def kv_cache(output) -> Any:
    """The KV cache of a forward's output: transformers 5.24 renamed `past_key_values` to `cache`
    (the old name warns, and goes in 5.40)."""
    return output["cache"] if "cache" in output else output["past_key_values"]


def unrotate(keys: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Undo RoPE on keys [..., seq, head_dim] (float32 out): RoPE turns each pair (x_i, x_{i+d/2})
    by the position's angle and scales it by cos^2 + sin^2 (the rope type's attention scaling),
    so the inverse turns it back and divides that scale out."""
    keys = keys.float()
    half = keys.shape[-1] // 2
    rotated_half = torch.cat((-keys[..., half:], keys[..., :half]), dim=-1)
    return (keys * cos - rotated_half * sin) / (cos * cos + sin * sin)


def _to_rgb(image: Image.Image) -> Image.Image:
    """The RGB image the model sees (focus_eval.images.load_image: size limit, EXIF orientation,
    explicit mode conversion); geometry is computed on it."""
    if not isinstance(image, Image.Image):
        raise AdapterInputError(f"expected a PIL image, got {type(image).__name__}")
    if min(image.size) < 1:
        raise AdapterInputError(f"empty image of size {image.size}")
    return load_image(image)
