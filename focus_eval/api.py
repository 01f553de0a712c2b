"""FOCUS on your own images: `Focus.from_pretrained(checkpoint).answer(image, question)`.

    from focus_eval import Focus
    focus = Focus.from_pretrained("llava-hf/llava-onevision-qwen2-7b-ov-hf", n_steps=4)
    result = focus.answer("street.jpg", "What colour is the umbrella?")
    result.answer, result.trace.counters.fp      # the answer and its forward passes
    result.relevance_map(0)                      # [h, w] numpy map of the first target
    result.save("out", "street")                 # out/street.png (picture) + out/street.json (trace)

The FOCUS options are those of `focus_eval.config.FocusConfig`, on top of the Table 7 values of
the checkpoint's family (and of `dataset`, which also picks the in-context examples for target
extraction; None = generic examples). `method="vanilla"` answers on the full image,
`method="zoomeye"` runs the ZoomEye baseline (its `zoomeye_*` options; focus_eval.methods).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from focus_eval.config import FocusConfig, coerce_overrides, load_config
from focus_eval.images import load_image
from focus_eval.pipeline import Pipeline, PipelineResult
from focus_eval.protocol import Adapter
from focus_eval.recall import add_recall
from focus_eval.present.visualize import render_explanation, save_explanation


@dataclass
class FocusAnswer(PipelineResult):
    """A PipelineResult (answer, trace, final_images) with the RGB image it was computed on."""

    image: Image.Image = field(kw_only=True)

    def relevance_map(self, target: int | str = 0) -> np.ndarray:
        """[h, w] float32 relevance map of a target, by index or name (empty if none was built)."""
        return np.asarray(self._target(target).relevance_map, dtype=np.float32)

    def picture(self) -> Image.Image:
        """The explanation picture (focus_eval.present.visualize.render_explanation)."""
        return render_explanation(self.trace, self.image, self.final_images).image

    def save(self, out_dir: str | os.PathLike, stem: str) -> tuple[Path, Path]:
        """Write <stem>.png and <stem>.json into out_dir; returns both paths."""
        return save_explanation(self.trace, self.image, self.final_images, out_dir, stem)

    def _target(self, target: int | str):
        targets = self.trace.targets
        if isinstance(target, int):
            if not -len(targets) <= target < len(targets):
                raise IndexError(f"target index {target} out of range: {len(targets)} target(s)")
            return targets[target]
        for candidate in targets:
            if candidate.name == target:
                return candidate
        raise KeyError(f"no target named {target!r}; targets: {[t.name for t in targets]}")


class Focus:
    """A model adapter and a FOCUS configuration, ready to answer questions about images."""

    def __init__(self, adapter: Adapter, config: FocusConfig):
        self.adapter = adapter
        self.config = config
        self._pipeline = Pipeline(adapter, config)

    @classmethod
    def from_pretrained(cls, pretrained: str | os.PathLike, *, family: str | None = None,
                        dataset: str | None = None, dtype: str | torch.dtype = "auto",
                        device: str | torch.device | None = None, device_map: Any = None,
                        attn_implementation: str = "sdpa", processor_kwargs: dict[str, Any] | None = None,
                        **overrides: Any) -> Focus:
        """Load a checkpoint (hub id or local directory) of any family with an adapter.

        family: checked against the checkpoint's model type (default: inferred from it).
        dataset: one of focus_eval.config.DATASETS or None (Table 7 rules, ICL examples).
        dtype, device, device_map, attn_implementation, processor_kwargs: passed to
            focus_eval.model_wrappers.load_adapter; processor_kwargs holds the family's image
            options, e.g. {"image_aspect": "crop"} for LLaVA-1.5 (default "pad", see
            focus_eval.model_wrappers.llava_1_5) or {"min_pixels": ...} for Qwen2.5-VL, and
            every family's {"max_batch_tokens": N} (tokens per existence-check forward, 0: no
            limit; HFAdapter.batch_token_budget).
        overrides: FocusConfig fields by name (strings are converted); an unknown name or a bad
            value raises ValueError before any weight is loaded.
        A Path, or a string starting with "/", "." or "~", is a local folder; anything else may
        also be a hub id.
        """
        coerce_overrides(overrides)
        # imports transformers: only when a model is loaded
        from focus_eval.model_wrappers import load_adapter

        adapter = load_adapter(pretrained, family, dtype=dtype, device=device, device_map=device_map,
                               attn_implementation=attn_implementation, **(processor_kwargs or {}))
        return cls(adapter, load_config(adapter.family, dataset, **overrides))

    def answer(self, image: Any, question: str, *, options: Sequence[tuple[str, str]] | None = None,
               max_new_tokens: int = 64, gen_kwargs: dict[str, Any] | None = None,
               gt_boxes: Sequence[Sequence[float]] | None = None, gt_names: Sequence[str] = ()) -> FocusAnswer:
        """Answer `question` about `image` (a path, PIL image, bytes, base64 or array).

        question: the full text given to the model; answer options written in it ("(A) red
            (B) blue" or "A. red" lines) are left out of target extraction, and are what
            answer_scheme="logits" scores unless `options` gives (letter, text) pairs.
        gt_boxes: ground-truth boxes (x0, y0, x1, y1) of the question's objects; the trace then
            holds the ROI recall (focus_eval.recall) and the picture draws them.
        Raises ImageLoadError for an unusable image and PipelineError (with `.trace`) when
        the question fails.
        """
        rgb = load_image(image)
        result = self._pipeline.answer(rgb, question, options=options, max_new_tokens=max_new_tokens,
                                       gen_kwargs=gen_kwargs)
        if gt_boxes:
            add_recall(result.trace, gt_boxes, gt_names)
        return FocusAnswer(answer=result.answer, trace=result.trace, final_images=result.final_images, image=rgb)

