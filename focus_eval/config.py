"""Typed configuration of every method: Table 7 per model family and dataset, every field overridable.

`load_config(family, dataset, **overrides)` reads `configs/<family>.yaml` (installed as
`focus_eval.configs`), applies its rules for the dataset and n_steps, then the overrides.
Overrides may be strings (as they arrive from `--model_args`); they are converted to the
field's type, and an unknown name fails with the list of valid names.

Choices where the paper is ambiguous (each one a field, so it can be switched):
- layer_start / layer_end: 0-based, end-exclusive (Python `range`) over decoder layers. This
  matches Fig. 7's `x_layer: [L - l]` and makes the ablation rows 0-14 and 0-32 of Table 3
  partition LLaVA-1.5's 32 layers. For a checkpoint of another depth the range is scaled
  from `reference_num_layers` (the depth Table 7 was set for), see `layer_range`.
- row_normalization: Fig. 7 writes `X_layer /= X_layer.sum(dim=-1)`, commented "row-wise
  normalization". "column" (default) is what that line computes under PyTorch broadcasting:
  entry (t, j) divided by the sum of row j, so an image token that resembles the whole
  sequence counts less. "target_row" divides each target row by its own sum (the comment's
  reading); with a positive sum that only rescales the layer, so the map's shape changes
  through layer weighting alone. Default "column": the literal code, and on the proving
  ground's dev split it put the map's argmax on the named object in 73% of the questions vs
  30% at equal accuracy (NOTES.md); no real 7B checkpoint has decided it.
- anchor_selection: "topk_then_filter" (default, the paper's words and Algorithm) takes
  the k best cells, then drops those closer than s_dist to a better kept one, so fewer than
  k may remain; "greedy" walks down the map until k anchors at least s_dist apart are kept
  (see proposals.py).
- expansion_reference: the paper's "relevance score" for ROI expansion is not defined.
  "mean" (default) divides the map by its mean; "global" min-max normalises it; "max"
  divides it by its maximum; "anchor" compares the ROI mean with expansion_threshold times
  the anchor's min-max score. The argument from Table 12 for "mean" is in
  `focus_eval.methods.focus.proposals.expansion_scores`.
- final_texts / final_images_alone (global-local models' multi-image final input, A.5):
  interleave a short text after each image saying what it shows (ZoomEye's strategy, which the
  paper follows; wording in compose.py); and encode every image as the model encodes an image
  alone (LLaVA-OneVision: anyres) rather than in its multi-image form, where HF OneVision
  gives each image one 384 px tile and an 8K crop of ~775 px would be halved. For the second:
  the existence check ranked the crop as seen alone, A.3 sizes s_max so that a crop spans
  1-2x the base resolution, and ZoomEye's zoomed view went through anyres; against it,
  OneVision trained its multi-image data at base resolution, and the answer's prefill gets
  longer (tflops, not fp). Qwen2.5-VL sees every image at native resolution either way.
- option_format / option_score: logits matching (C.5) scores each option as a statement,
  by its mean log-probability per token (focus_eval/statements.py).
- Not here: LLaVA-1.5's image_aspect (pad | crop, default pad) is an option of the adapter
  (`--model_args image_aspect=crop`, `Focus.from_pretrained(..., processor_kwargs=...)`,
  `focus-eval --image-aspect`): it decides the pixels of every model call, vanilla's too
  (model_wrappers/llava_1_5.py).
- The baselines' options carry their method's prefix (zoomeye_*, vicrop_*); their defaults per
  family are the official code's (configs/<family>.yaml), and the choices made where that code
  or its paper is silent are written in focus_eval/methods/zoomeye/ and vicrop/.
- zoomeye_patch_size: the official code splits nodes down to the vision input size, read from
  the image processor (LLaVA-1.5 336, OneVision 384: our adapters' base_resolution, so 0) except
  for Qwen2.5-VL, hard-coded to 448 (configs/qwen2_5_vl.yaml), whose adapter's base_resolution
  (the largest square max_pixels keeps) is not an input size. zoomeye_global_view: how a
  global-local model's full view is shrunk to that size, "square" (padded, official OneVision) or
  "fit" (aspect kept, official Qwen2.5-VL). zoomeye_batch_size: how many confidence prompts share
  one model call (memory, not passes; the official code sends them one by one).
- target_fast_decoding (issue 18): target extraction keeps the in-context examples' KV cache
  across questions and decodes with prompt-lookup drafts (model_wrappers/decoding.py). On by
  default: in float32 the replies, their `truncated` flags and costs were those of plain greedy
  decoding on the tiny models of the three families and on the proving ground's 500 questions;
  in bf16 a near-tie between two tokens could resolve differently, so `false` decodes plainly.
  Existence checks' token budget is an adapter option, not a field (`max_batch_tokens`): it
  decides model calls and memory, not what is computed.
- gaussian_sigma / downsample: Sec. 3.2 names a Gaussian filter and downsampling for
  global-local models without values. sigma is in grid cells; downsampling is average
  pooling by an integer factor (a partial last block averages what it has). Factor 2 turns
  OneVision's ~57x114 grid of an 8K image into the 30x60 map of A.3's example.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from dataclasses import dataclass, fields
from importlib import resources
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml

DATASETS = ("vstar", "hrbench4k", "hrbench8k", "mme_realworld_lite")


@dataclass(frozen=True)
class FocusConfig:
    # what runs
    method: Literal["focus", "vanilla", "zoomeye", "vicrop"] = "focus"
    relevance: Literal["vv", "kk", "random"] = "vv"  # Table 3 ablations: K-K w/o RoPE, random map
    ranking: bool = True  # False: Table 3 "proposal ranking" ablation, top anchor ROI answers
    answer_scheme: Literal["generate", "logits"] = "generate"  # logits matching of C.5
    option_format: Literal["statement", "option"] = "statement"  # what logits matching scores (statements.py)
    option_score: Literal["mean", "sum"] = "mean"  # per-token mean (length-normalised) or summed log-probability
    target_extraction: Literal["icl", "rules"] = "icl"
    trust_empty_target_reply: bool = False  # a reply naming no object wins over rule targets (targets.py)
    dataset: str | None = None  # selects the in-context examples and the dataset rules

    # search budget (Sec. 4.1, C.1)
    n_steps: int = 8
    overrun: bool = True
    check_batch_size: int = 8  # existence checks per batched forward beyond the first n_steps

    # ROI proposal (Table 7, Algorithm of A.5, Table 12)
    k: int = 30
    s_min: int = 3
    s_max: int = 5
    s_dist: float = 2.0
    expansion_threshold: float = 0.5
    nms_threshold: float = 0.3
    anchor_selection: Literal["topk_then_filter", "greedy"] = "topk_then_filter"
    expansion_reference: Literal["mean", "global", "max", "anchor"] = "mean"

    # relevance map (Eq. 1-4, Fig. 7)
    layer_start: int = 21
    layer_end: int = 28
    reference_num_layers: int = 28
    row_normalization: Literal["target_row", "column"] = "column"
    gaussian_sigma: float = 0.0
    downsample: int = 1

    # final answer (A.5)
    t_type2: float = 0.5
    t_obj_dist: float = 1200.0
    canvas_size: int = 672
    final_texts: bool = True  # multi-image final input: a short text after each image (compose.py)
    final_images_alone: bool = True  # ... every image encoded as if alone in its prompt (OneVision: anyres)
    existence_prompt: str = "Is there a {target} in the image? Answer Yes or No."
    target_max_new_tokens: int = 64
    target_fast_decoding: bool = True  # kept in-context prefix cache + prompt-lookup drafts, the same reply (targets)

    # ZoomEye (baseline; official defaults per family in configs/<family>.yaml)
    zoomeye_depth: int = 5  # depth cap of a type-1 search (Table 10: Depth-1, -2, -5)
    zoomeye_type2_depth: int = 2  # depth of the type-2 post-order search
    zoomeye_split: int = 4  # children per node: 4 (the official 2x2 / 1x4 / 4x1), 2 (halves of the longer side)
    zoomeye_bias: float = 0.6  # b in the priority weight w = b + (1 - b) d^2 / D^2
    zoomeye_patch_scale: float = 1.2  # a node's view: its box grown to the patch size, times this
    zoomeye_tau_up: float = 0.6  # answering confidence that ends the search
    zoomeye_tau_low: float = 0.0  # the lowered threshold may not go below this
    zoomeye_decrements: tuple[float, ...] = (0.1, 0.1, 0.2)  # tau_up lowered by these in turn (the last repeats)
    zoomeye_pop_factor: int = 3  # pops before the threshold is lowered: this times the depth
    zoomeye_pop_increment: int = 2  # further pops allowed after each lowering
    zoomeye_type2_threshold: float = 0.6  # existence confidence a type-2 node must reach
    zoomeye_patch_size: int = 0  # nodes split while a side is >= this; 0: the adapter's base_resolution
    zoomeye_global_view: Literal["square", "fit"] = "square"  # global-local models' shrunk full view
    zoomeye_batch_size: int = 8  # confidence prompts per model call (passes are counted per prompt)

    # ViCrop (baseline; official defaults per family in configs/<family>.yaml)
    vicrop_map: Literal["rel_att", "grad_att"] = "rel_att"
    vicrop_high: bool = False  # the "-high" variant: one map per tile of at most vicrop_tile_side px
    vicrop_layer: int = 14  # the decoder layer whose attention is read, 0-based
    vicrop_reference_num_layers: int = 32  # depth vicrop_layer is given for; scaled for other depths
    vicrop_crop_side: int = 336  # side in pixels of the crop window at ratio 1
    vicrop_tile_side: int = 1024
    vicrop_generic_prompt: str = "Write a general description of the image."
    # appended to the question and to the generic prompt of the map passes, as the official code does
    vicrop_instruction: str = "Answer the question using a single word or phrase."

    seed: int = 0

    def __post_init__(self) -> None:
        hints = _hints()
        for f in fields(self):
            choices = _choices(hints[f.name])
            if choices and getattr(self, f.name) not in choices:
                raise ValueError(f"{f.name}={getattr(self, f.name)!r}: expected one of {choices}")
        checks = [
            (self.n_steps >= 1, "n_steps must be >= 1"),
            (self.check_batch_size >= 1, "check_batch_size must be >= 1"),
            (self.k >= 1, "k must be >= 1"),
            (1 <= self.s_min <= self.s_max, "need 1 <= s_min <= s_max"),
            (self.s_dist >= 0, "s_dist must be >= 0"),
            (0.0 <= self.nms_threshold <= 1.0, "nms_threshold must be in [0, 1]"),
            (0 <= self.layer_start < self.layer_end, "need 0 <= layer_start < layer_end"),
            (self.layer_end <= self.reference_num_layers, "layer_end must be <= reference_num_layers"),
            (self.gaussian_sigma >= 0, "gaussian_sigma must be >= 0"),
            (self.downsample >= 1, "downsample must be >= 1"),
            (-1.0 <= self.t_type2 <= 1.0, "t_type2 is a confidence in [-1, 1]"),
            (self.canvas_size >= 2, "canvas_size must be >= 2"),
            ("{target}" in self.existence_prompt, "existence_prompt must contain {target}"),
            (self.zoomeye_depth >= 1 and self.zoomeye_type2_depth >= 1, "zoomeye depths must be >= 1"),
            (self.zoomeye_split in (2, 4), "zoomeye_split must be 4 or 2"),
            (0.0 <= self.zoomeye_bias <= 1.0, "zoomeye_bias must be in [0, 1]"),
            (self.zoomeye_patch_scale >= 1.0, "zoomeye_patch_scale must be >= 1"),
            (-1.0 <= self.zoomeye_tau_low <= self.zoomeye_tau_up <= 1.0,
             "need -1 <= zoomeye_tau_low <= zoomeye_tau_up <= 1"),
            (len(self.zoomeye_decrements) >= 1 and all(d > 0 for d in self.zoomeye_decrements),
             "zoomeye_decrements must be one or more positive numbers"),
            (self.zoomeye_pop_factor >= 1 and self.zoomeye_pop_increment >= 1,
             "zoomeye_pop_factor and zoomeye_pop_increment must be >= 1"),
            (-1.0 <= self.zoomeye_type2_threshold <= 1.0, "zoomeye_type2_threshold is a confidence in [-1, 1]"),
            (self.zoomeye_patch_size == 0 or self.zoomeye_patch_size >= 4,
             "zoomeye_patch_size must be 0 (the adapter's base resolution) or >= 4"),
            (self.zoomeye_batch_size >= 1, "zoomeye_batch_size must be >= 1"),
            (0 <= self.vicrop_layer < self.vicrop_reference_num_layers,
             "need 0 <= vicrop_layer < vicrop_reference_num_layers"),
            (self.vicrop_crop_side >= 1 and self.vicrop_tile_side >= 1, "vicrop sides must be >= 1"),
            (self.dataset is None or self.dataset in DATASETS, f"dataset must be one of {DATASETS}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def replace(self, **overrides: Any) -> "FocusConfig":
        return dataclasses.replace(self, **coerce_overrides(overrides))

    def layer_range(self, num_layers: int) -> range:
        """Selected decoder layers for a model with `num_layers` layers.

        The configured range is kept as is when the depth matches reference_num_layers and
        scaled proportionally otherwise (e.g. 21-28 of 28 becomes 18-24 of 24).
        """
        if num_layers == self.reference_num_layers:
            return range(self.layer_start, self.layer_end)
        scale = num_layers / self.reference_num_layers
        start = min(int(round(self.layer_start * scale)), num_layers - 1)
        end = max(start + 1, min(num_layers, int(round(self.layer_end * scale))))
        return range(start, end)

    def vicrop_layer_index(self, num_layers: int) -> int:
        """ViCrop's decoder layer (0-based) for a model with `num_layers` layers: vicrop_layer as
        is at vicrop_reference_num_layers, else scaled by depth and rounded as in `layer_range`
        (14 of 32 becomes 12 of 28)."""
        if num_layers == self.vicrop_reference_num_layers:
            return self.vicrop_layer
        return min(int(round(self.vicrop_layer * num_layers / self.vicrop_reference_num_layers)), num_layers - 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (tuples as lists), so a trace's config survives a JSON round trip."""
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in dataclasses.asdict(self).items()}


def load_config(family: str, dataset: str | None = None, **overrides: Any) -> FocusConfig:
    """Table 7 defaults of `family`, its rules for `dataset` and n_steps, then overrides."""
    spec = family_spec(family)
    overrides = coerce_overrides(overrides)
    values: dict[str, Any] = dict(spec.get("defaults", {}))
    values["dataset"] = dataset
    n_steps = overrides.get("n_steps", values.get("n_steps", FocusConfig.n_steps))
    for rule in spec.get("rules", []):
        if _rule_matches(rule["when"], dataset=dataset, n_steps=n_steps):
            values.update(rule["set"])
    values.update(overrides)
    return FocusConfig(**coerce_overrides(values))


def family_spec(family: str) -> dict[str, Any]:
    try:
        text = resources.files("focus_eval.configs").joinpath(f"{family}.yaml").read_text()
    except FileNotFoundError:
        raise ValueError(f"no config for model family {family!r}; known: {known_families()}") from None
    return yaml.safe_load(text)


def known_families() -> list[str]:
    root = resources.files("focus_eval.configs")
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def coerce_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """Validate names and convert string values to each field's type.

    `layers="21-28"` is accepted as shorthand for layer_start=21, layer_end=28.
    """
    hints = _hints()
    out: dict[str, Any] = {}
    for name, value in overrides.items():
        if name == "layers":
            out.update(_parse_layers(value))
            continue
        if name not in hints:
            valid = ", ".join(sorted((*hints, "layers")))
            raise ValueError(f"unknown FOCUS option {name!r}; valid options: {valid}")
        out[name] = _coerce(name, hints[name], value)
    return out


_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq}


def _rule_matches(when: dict[str, Any], dataset: str | None, n_steps: int) -> bool:
    for key, want in when.items():
        if key == "dataset":
            allowed = want if isinstance(want, list) else [want]
            if dataset not in allowed:
                return False
        elif key == "n_steps":
            op, number = _split_comparison(str(want))
            if not op(n_steps, number):
                return False
        else:
            raise ValueError(f"unknown rule condition {key!r}")
    return True


def _split_comparison(text: str):
    for symbol in ("<=", ">=", "==", "<", ">"):
        if text.startswith(symbol):
            return _OPS[symbol], int(text[len(symbol):])
    return operator.eq, int(text)


def _parse_layers(value: Any) -> dict[str, int]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        start, end = value
    else:
        parts = str(value).replace(":", "-").split("-")
        if len(parts) != 2:
            raise ValueError(f"layers={value!r}: expected START-END, e.g. 21-28")
        start, end = parts
    return {"layer_start": int(start), "layer_end": int(end)}


def _hints() -> dict[str, Any]:
    return get_type_hints(FocusConfig)


def _choices(hint: Any) -> tuple | None:
    return get_args(hint) if get_origin(hint) is Literal else None


def _coerce(name: str, hint: Any, value: Any) -> Any:
    if value is None:
        return None
    if _choices(hint):
        return str(value)
    if get_origin(hint) is tuple:
        return _coerce_tuple(name, get_args(hint)[0], value)
    args = [a for a in get_args(hint) if a is not type(None)] if get_origin(hint) else [hint]
    target = args[0]
    try:
        if target is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            if value not in (0, 1):  # lmms-eval turns "2" into 2: not a truth value
                raise ValueError(value)
            return bool(value)
        if target is int:
            number = float(value)
            if not math.isfinite(number) or number != int(number):
                raise ValueError(value)
            return int(number)
        if target is float:
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r}: expected {getattr(target, '__name__', target)}") from None


def _coerce_tuple(name: str, item: type, value: Any) -> tuple:
    """A list or tuple, or a string of items separated by ':', ';' or whitespace (lmms-eval's
    --model_args splits on commas, so "0.1:0.1:0.2")."""
    items = value if isinstance(value, (list, tuple)) else str(value).replace(":", " ").replace(";", " ").split()
    try:
        return tuple(item(v) for v in items)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r}: expected {item.__name__} values separated by ':'") from None
