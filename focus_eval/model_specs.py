"""The FOCUS models as data: one table for both frameworks' model classes and for `focus-eval compare`.

Each `FocusModelSpec` names a model (`--model` of lmms-eval and of `focus-eval vlmeval`, with
aliases), its family (configs/<family>.yaml and the adapter), its lmms-eval class in
`focus_eval.model_wrappers.lmms_models`, and the family's processor options with their
defaults or choices. `DEFAULT_CHECKPOINTS` gives each family's checkpoint when `pretrained` is
not given. The model arguments are parsed in `focus_eval.model_wrappers.model_args`.

Imports neither torch, transformers nor an evaluation framework: compare reads files only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# In the paper's order (compare's tables and docs/reproduce.md follow it).
DEFAULT_CHECKPOINTS = {
    "llava_1_5": "llava-hf/llava-1.5-7b-hf",
    "llava_onevision": "llava-hf/llava-onevision-qwen2-7b-ov-hf",
    "qwen2_5_vl": "Qwen/Qwen2.5-VL-7B-Instruct",
}
# LLaVA-1.5's image_aspect (focus_eval.model_wrappers.llava_1_5): the first is the default.
IMAGE_ASPECTS = ("pad", "crop")


@dataclass(frozen=True)
class FocusModelSpec:
    model_id: str
    family: str  # configs/<family>.yaml and the adapter family
    class_name: str  # in lmms_models
    aliases: tuple[str, ...] = ()
    processor_defaults: dict[str, int] = field(default_factory=dict)  # processor options and defaults
    processor_choices: dict[str, tuple[str, ...]] = field(default_factory=dict)  # options -> values, default first


MODEL_SPECS = (
    FocusModelSpec("llava_ov_focus", "llava_onevision", "LlavaOneVisionFocus"),
    FocusModelSpec("llava_1_5_focus", "llava_1_5", "Llava15Focus", aliases=("llava15_focus",),
                   processor_choices={"image_aspect": IMAGE_ASPECTS}),
    # lmms-eval's built-in qwen2_5_vl model resizes images within these bounds
    FocusModelSpec("qwen2_5_vl_focus", "qwen2_5_vl", "Qwen25VLFocus",
                   processor_defaults={"min_pixels": 256 * 28 * 28, "max_pixels": 1605632}),
)
_BY_NAME = {name: spec for spec in MODEL_SPECS for name in (spec.model_id, *spec.aliases)}


def is_focus_model(model: Any) -> bool:
    """Whether a `--model` value names one of these models (or an alias)."""
    return isinstance(model, str) and model in _BY_NAME


def model_spec(name: str) -> FocusModelSpec:
    if name not in _BY_NAME:
        raise ValueError(f"unknown FOCUS model {name!r}; known: {', '.join(_BY_NAME)}")
    return _BY_NAME[name]
