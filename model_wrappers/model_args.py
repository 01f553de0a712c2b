"""The FOCUS models' arguments, one parser for lmms-eval and VLMEvalKit.

Models (`focus_eval.model_specs`): `llava_ov_focus` (LLaVA-OneVision), `llava_1_5_focus` (alias
`llava15_focus`), `qwen2_5_vl_focus`. `parse_model_args` (lmms-eval's `--model_args`) and
`parse_vlmeval_model_args` (`focus-eval vlmeval --model-args`) validate everything a model
class receives before any weights are loaded:
- model loading (`focus_eval.model_wrappers.load_adapter`'s arguments): pretrained (default:
  the family's checkpoint), dtype, attn_implementation, device or device_map, and the
  family's processor options (Qwen2.5-VL: min_pixels, max_pixels, defaulting to lmms-eval's
  built-in qwen2_5_vl values so that the vanilla numbers are comparable; LLaVA-1.5:
  image_aspect=pad|crop, default pad, see `focus_eval.model_wrappers.llava_1_5`), and every
  family's max_batch_tokens (most tokens per batched existence-check forward: absent, the
  family's default; 0, no limit; `HFAdapter.batch_token_budget`);
- FOCUS options: every `FocusConfig` field (and `layers=START-END`) except `dataset` and
  `answer_scheme`, which each question's benchmark sets; values are type-checked against the
  family's configuration. `method=vanilla` answers on the full image through the same class,
  so both rows carry the same counters;
- outputs: `save_maps=DIR` (a picture and a trace per question, on every rank), checked to be a
  writable folder (so is `resume_dir`);
- lmms-eval only: batch_size and max_batch_size (lmms-eval's own), `resume_dir=DIR`, and local
  data `data_<benchmark>=PATH` for vstar, hrbench4k, hrbench8k, mme_realworld_lite (existence
  and columns checked, see `focus_eval.tasks.sources`);
- VLMEvalKit only: `max_new_tokens` (the answer's length limit; lmms-eval takes it from
  `--gen_kwargs`).
A local `pretrained` folder is checked too: it must hold a config.json of the model's family
(`check_local_checkpoint`; the weights load at the first question). An unknown name or a bad
value raises ValueError naming it and listing the valid names.

This module imports neither framework.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from focus_eval.config import FocusConfig, coerce_overrides, load_config
from focus_eval.model_specs import FocusModelSpec, model_spec
from focus_eval.model_wrappers import check_device, check_local_checkpoint, default_checkpoint, load_adapter
from focus_eval.model_wrappers.base import ATTN_IMPLEMENTATIONS, DTYPES, check_max_batch_tokens
from focus_eval.outputs import check_writable_dir
from focus_eval.tasks.schemas import SCHEMAS
from focus_eval.tasks.sources import check_local_dataset

DATA_PREFIX = "data_"
DOCUMENT_FIELDS = {"dataset", "answer_scheme"}  # FocusConfig fields each question sets, not model arguments
# Answer length limit when the benchmark sets none (the default of lmms-eval's llava and llava_onevision models).
DEFAULT_MAX_NEW_TOKENS = 1024


@dataclass(frozen=True)
class FocusModelArgs:
    spec: FocusModelSpec
    pretrained: str
    dtype: str
    attn_implementation: str
    device: str | None
    batch_size: int
    device_map: str | None = None
    processor_kwargs: dict[str, Any] = field(default_factory=dict)  # the family's processor options
    save_maps: str | None = None  # directory for per-question pictures and traces
    resume_dir: str | None = None  # directory of finished questions' responses (lmms-eval)
    focus_overrides: dict[str, Any] = field(default_factory=dict)  # typed FocusConfig overrides
    local_datasets: dict[str, str] = field(default_factory=dict)  # benchmark key -> checked path (lmms-eval)
    max_new_tokens: int | None = None  # answer length limit (VLMEvalKit); None: the benchmark's

    def config(self, dataset: str | None) -> FocusConfig:
        """Table 7 configuration for one question's benchmark, with the user's overrides."""
        return load_config(self.spec.family, dataset, **self.focus_overrides)

    def load_adapter(self, device: torch.device):
        """The checkpoint's adapter as these arguments ask; `device` unless device_map is given."""
        return load_adapter(self.pretrained, self.spec.family, dtype=self.dtype,
                            device=None if self.device_map else device, device_map=self.device_map,
                            attn_implementation=self.attn_implementation, **self.processor_kwargs)


_LOADING_ARGS = ("pretrained", "dtype", "attn_implementation", "device", "device_map")
_ADAPTER_ARGS = ("max_batch_tokens",)  # every family's adapter options, passed with the processor's
_OUTPUT_ARGS = ("save_maps",)
_LMMS_EVAL_ARGS = ("batch_size", "max_batch_size", "resume_dir")  # and data_<benchmark>
_VLMEVAL_ARGS = ("max_new_tokens",)


def parse_model_args(model_name: str, **kwargs: Any) -> FocusModelArgs:
    """Validate lmms-eval's keyword arguments for `model_name`; raises ValueError."""
    return _parse(model_name, kwargs, _LMMS_EVAL_ARGS, local_data=True)


def parse_vlmeval_model_args(model_name: str, **kwargs: Any) -> FocusModelArgs:
    """Validate `focus-eval vlmeval --model-args` for `model_name`; raises ValueError."""
    return _parse(model_name, kwargs, _VLMEVAL_ARGS, local_data=False)


def _parse(model_name: str, kwargs: dict[str, Any], framework_args: tuple[str, ...],
           local_data: bool) -> FocusModelArgs:
    spec = model_spec(model_name)
    focus_names = {*FocusConfig.field_names(), "layers"} - DOCUMENT_FIELDS
    known = {*_LOADING_ARGS, *_ADAPTER_ARGS, *_OUTPUT_ARGS, *framework_args, *spec.processor_defaults,
             *spec.processor_choices, *focus_names}
    unknown = [name for name in kwargs
               if name not in known and not (local_data and name.startswith(DATA_PREFIX))]
    if unknown:
        valid = sorted({*known, *(DATA_PREFIX + key for key in SCHEMAS if local_data)})
        raise ValueError(f"{model_name}: unknown model argument {unknown[0]!r}; valid: {', '.join(valid)}")
    try:
        overrides = coerce_overrides({k: v for k, v in kwargs.items() if k in focus_names})
        load_config(spec.family, None, **overrides)
    except ValueError as error:
        raise ValueError(f"{model_name}: {error}") from None

    local_datasets = {}
    for name, path in kwargs.items():
        if name.startswith(DATA_PREFIX):
            key = name[len(DATA_PREFIX):]
            if key not in SCHEMAS:
                raise ValueError(f"{model_name}: unknown benchmark in {name!r}; use one of "
                                 f"{', '.join(DATA_PREFIX + k for k in SCHEMAS)}")
            check_local_dataset(key, path)
            local_datasets[key] = str(path)

    processor_kwargs: dict[str, Any] = {name: positive_int(model_name, name, kwargs.get(name, default))
                                        for name, default in spec.processor_defaults.items()}
    processor_kwargs.update({name: _choice(model_name, name, kwargs.get(name, choices[0]), choices)
                             for name, choices in spec.processor_choices.items()})
    if "max_batch_tokens" in kwargs:
        try:
            processor_kwargs["max_batch_tokens"] = check_max_batch_tokens(kwargs["max_batch_tokens"])
        except ValueError as error:
            raise ValueError(f"{model_name}: {error}") from None
    if processor_kwargs.get("min_pixels", 0) > processor_kwargs.get("max_pixels", float("inf")):
        raise ValueError(f"{model_name}: min_pixels={processor_kwargs['min_pixels']} exceeds "
                         f"max_pixels={processor_kwargs['max_pixels']}")
    device, device_map = _path_arg(model_name, "device", kwargs), _path_arg(model_name, "device_map", kwargs)
    if device is not None and device_map is not None:
        raise ValueError(f"{model_name}: give device or device_map, not both (device={device!r}, "
                         f"device_map={device_map!r})")
    pretrained = str(kwargs.get("pretrained") or default_checkpoint(spec.family))
    try:
        check_local_checkpoint(pretrained, spec.family)
    except ValueError as error:
        raise ValueError(f"{model_name}: {error}") from None
    outputs = {name: _path_arg(model_name, name, kwargs) for name in ("save_maps", "resume_dir")}
    for name, folder in outputs.items():
        if folder is not None:
            try:
                check_writable_dir(folder)
            except ValueError as error:
                raise ValueError(f"{model_name}: {name}={folder!r}: {error}") from None
    max_new_tokens = kwargs.get("max_new_tokens")
    return FocusModelArgs(
        spec=spec,
        pretrained=pretrained,
        dtype=_choice(model_name, "dtype", kwargs.get("dtype", "auto"), tuple(DTYPES)),
        attn_implementation=_choice(model_name, "attn_implementation", kwargs.get("attn_implementation", "sdpa"),
                                    ATTN_IMPLEMENTATIONS),
        device=device,
        batch_size=positive_int(model_name, "batch_size", kwargs.get("batch_size", 1)),
        device_map=device_map,
        processor_kwargs=processor_kwargs,
        save_maps=outputs["save_maps"],
        resume_dir=outputs["resume_dir"],
        focus_overrides=overrides,
        local_datasets=local_datasets,
        max_new_tokens=None if max_new_tokens is None else positive_int(model_name, "max_new_tokens",
                                                                         max_new_tokens),
    )


def _choice(model_name: str, name: str, value: Any, choices: tuple[str, ...]) -> str:
    if str(value) not in choices:
        raise ValueError(f"{model_name}: {name}={value!r}: expected one of {', '.join(choices)}")
    return str(value)


def _path_arg(model_name: str, name: str, kwargs: dict[str, Any]) -> str | None:
    """A text value (directory, device); absent or empty -> None."""
    value = kwargs.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):  # lmms-eval turns "true" into True
        raise ValueError(f"{model_name}: {name}={value!r}: expected a name or path")
    return str(value)


def positive_int(model_name: str, name: str, value: Any) -> int:
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(f"{model_name}: {name}={value!r}: expected a positive integer")
    return number


def resolve_device(device: str | None, device_map: str | None, world_size: int, local_rank: int) -> torch.device:
    """Where this process's model takes its inputs.

    Under a multi-process launch (world_size > 1) each rank takes `cuda:local_rank`, or the
    CPU without CUDA, whatever `device` says; device_map (one process spread over several
    GPUs) is refused there. One process: `device`, else cuda when available, else cpu.
    (lmms-eval passes its LOCAL_RANK; VLMEvalKit gives each rank its own slice of
    CUDA_VISIBLE_DEVICES, so its ranks pass 0.)
    """
    cuda = torch.cuda.is_available()
    if world_size > 1:
        if device_map is not None:
            raise ValueError(f"device_map={device_map!r} spreads one process's model over several GPUs; with "
                             f"{world_size} processes each rank uses one GPU, so leave device_map out")
        return torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if device is not None:
        return check_device(device)
    return torch.device("cuda:0" if cuda else "cpu")
