"""Model adapters: transformers checkpoints behind the FOCUS adapter protocol.

`load_adapter(pretrained)` loads a hub id or a local directory; the family comes from the
checkpoint config's model_type unless given. A family plugs in with one `AdapterSpec` line
in ADAPTERS (its module is imported only when it is loaded).
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig

from focus_eval.model_specs import DEFAULT_CHECKPOINTS

from .base import HFAdapter


@dataclass(frozen=True)
class AdapterSpec:
    family: str  # config key in configs/
    model_type: str  # transformers config.model_type of its checkpoints
    adapter: str  # "module:Class" inside this package

    def load_class(self) -> type[HFAdapter]:
        module, name = self.adapter.split(":")
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)


ADAPTERS = (
    AdapterSpec("llava_1_5", "llava", "llava_1_5:Llava15Adapter"),
    AdapterSpec("llava_onevision", "llava_onevision", "llava_onevision:LlavaOnevisionAdapter"),
    AdapterSpec("qwen2_5_vl", "qwen2_5_vl", "qwen2_5_vl:Qwen25VLAdapter"),
)


def load_adapter(pretrained: str | Path, family: str | None = None, *, dtype: str | torch.dtype = "auto",
                 device: str | torch.device | None = None, device_map: Any = None,
                 attn_implementation: str = "sdpa", **processor_kwargs) -> HFAdapter:
    """Load a checkpoint (hub id or directory) as the adapter of its family.

    dtype: "auto" (the checkpoint's), "bfloat16", "float16" or "float32". device: where the
    model goes (default cuda when available, else cpu); device_map: passed to transformers
    instead. attn_implementation: "sdpa", "eager" or "flash_attention_2" (needs flash-attn).
    processor_kwargs go to the processor's from_pretrained (e.g. min_pixels for Qwen2.5-VL).
    """
    if missing_local_model(pretrained):  # transformers would call it a malformed hub repo id
        raise FileNotFoundError(f"no such model folder: {pretrained}")
    check_device(device)
    model_type = AutoConfig.from_pretrained(pretrained).model_type
    spec = _spec_for(model_type, family, pretrained)
    return spec.load_class().from_pretrained(pretrained, dtype=dtype, device=device, device_map=device_map,
                                             attn_implementation=attn_implementation, **processor_kwargs)


def missing_local_model(pretrained: str | Path) -> bool:
    """Whether `pretrained` names a local folder that does not exist: a Path, or a string
    starting with "/", "." or "~" is a folder; anything else may also be a hub id."""
    return _is_local(pretrained) and not Path(pretrained).expanduser().is_dir()


def _is_local(pretrained: str | Path) -> bool:
    return not isinstance(pretrained, str) or pretrained.startswith(("/", ".", "~"))


def check_local_checkpoint(pretrained: str | Path, family: str | None = None) -> None:
    """Raise ValueError when `pretrained` names a local folder (see missing_local_model) that
    cannot be loaded as `family`: missing, without a readable config.json, or a model type
    without an adapter or of another family. Reads config.json only, so a run can check its
    checkpoint before its data while the weights load later; hub ids are checked when they load."""
    if not _is_local(pretrained):
        return
    folder = Path(pretrained).expanduser()
    if not folder.is_dir():
        raise ValueError(f"no such model folder: {pretrained}")
    try:
        model_type = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
    except FileNotFoundError:
        raise ValueError(f"{pretrained} has no config.json: not a transformers checkpoint folder") from None
    except (OSError, ValueError, AttributeError) as error:
        raise ValueError(f"{pretrained}/config.json cannot be read: {error}") from None
    _spec_for(str(model_type), family, pretrained)


def check_device(device: str | torch.device | None) -> torch.device | None:
    """The torch.device named by `device` (None stays None); ValueError for a name torch does
    not know, or a CUDA device this machine does not have."""
    if device is None:
        return None
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"device={device!r}: {error}") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={str(device)!r}, but CUDA is not available; use device=cpu")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device={str(device)!r}, but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return resolved


def default_checkpoint(family: str) -> str:
    if family not in DEFAULT_CHECKPOINTS:
        raise ValueError(f"unknown family {family!r}; known: {sorted(DEFAULT_CHECKPOINTS)}")
    return DEFAULT_CHECKPOINTS[family]


def _spec_for(model_type: str, family: str | None, pretrained: str | Path) -> AdapterSpec:
    supported = {spec.model_type: spec for spec in ADAPTERS}
    families = [spec.family for spec in ADAPTERS]
    if family is not None and family not in families:
        raise ValueError(f"unknown family {family!r}; families: {', '.join(families)}")
    if model_type not in supported:
        raise ValueError(f"{pretrained}: model_type {model_type!r} has no adapter; supported model types: "
                         + ", ".join(f"{t} ({s.family})" for t, s in supported.items()))
    spec = supported[model_type]
    if family is not None and family != spec.family:
        raise ValueError(f"{pretrained} is a {model_type!r} checkpoint (family {spec.family!r}), not family {family!r}")
    return spec


__all__ = ["ADAPTERS", "DEFAULT_CHECKPOINTS", "AdapterSpec", "HFAdapter", "check_device", "check_local_checkpoint",
           "default_checkpoint", "load_adapter", "missing_local_model"]
