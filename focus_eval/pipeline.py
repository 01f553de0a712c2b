"""One question end to end, for any method, against any `Adapter`.

`Pipeline.answer` runs the configured method's search (`focus_eval.methods.METHODS[cfg.method]`),
which returns the final input, then answers from it the same way for every method: generation,
or logits matching (C.5: each option scored as a statement with a length-normalised score,
`focus_eval.statements`; switches option_format, option_score). Every model call is booked in the
question's counters; a failure keeps everything computed before it (`PipelineError.trace`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from PIL import Image

from focus_eval.compose import FinalInput
from focus_eval.config import FocusConfig
from focus_eval.counters import Meter
from focus_eval.images import to_rgb
from focus_eval.methods import METHODS, SearchQuestion
from focus_eval.protocol import Adapter
from focus_eval.statements import option_statement
from focus_eval.targets import options_from_prompt, question_from_prompt
from focus_eval.trace import Trace


@dataclass
class PipelineResult:
    answer: str
    trace: Trace
    final_images: list[Image.Image] = field(default_factory=list)


class PipelineError(RuntimeError):
    """A question failed; `trace` keeps everything computed before the failure."""

    def __init__(self, message: str, trace: Trace):
        super().__init__(message)
        self.trace = trace


class Pipeline:
    def __init__(self, adapter: Adapter, config: FocusConfig):
        self.adapter = adapter
        self.config = config

    def answer(self, image: Image.Image, prompt: str, *, question: str | None = None,
               options: Sequence[tuple[str, str]] | None = None, max_new_tokens: int = 16,
               gen_kwargs: dict | None = None, config: FocusConfig | None = None) -> PipelineResult:
        """Answer `prompt` (the benchmark's full text) about `image`.

        question: the bare question used for target extraction (default: `prompt` without
            its options and answer instructions).
        options: (letter, text) pairs for logits matching (default: parsed from `prompt`).
        """
        cfg = config or self.config
        image = to_rgb(image)
        question = question if question is not None else question_from_prompt(prompt)
        meter = Meter(getattr(self.adapter, "device", None))
        trace = Trace(question=question, prompt=prompt, image_size=list(image.size),
                      config=cfg.to_dict(), method=cfg.method, counters=meter.counters)
        try:
            final = METHODS[cfg.method](SearchQuestion(self.adapter, image, question, cfg, meter, trace))
            trace.final_layout = final.layout
            trace.final_boxes = [list(b) for b in final.boxes]
            trace.final_texts = list(final.texts) if cfg.final_texts else []
            with meter.stage("answer"):
                trace.answer = self._final_answer(final, prompt, question, options, cfg,
                                                  max_new_tokens, gen_kwargs or {}, meter)
        except Exception as error:
            trace.error = f"{type(error).__name__}: {error}"
            trace.counters = meter.finish()
            raise PipelineError(trace.error, trace) from error
        trace.counters = meter.finish()
        return PipelineResult(answer=trace.answer, trace=trace, final_images=final.images)

    def _final_answer(self, final: FinalInput, prompt: str, question: str,
                      options: Sequence[tuple[str, str]] | None, cfg: FocusConfig,
                      max_new_tokens: int, gen_kwargs: dict, meter: Meter) -> str:
        if cfg.answer_scheme == "logits":
            options = list(options) if options is not None else options_from_prompt(prompt)
            if not options:
                raise ValueError("answer_scheme=logits needs answer options; none found in the prompt")
            texts = [option_statement(question, text) if cfg.option_format == "statement" else text
                     for _, text in options]
            scored = self.adapter.option_scores(final.images, question, texts, **_final_options(final, cfg))
            meter.add(scored.cost)
            scores = np.asarray(scored.scores)
            if cfg.option_score == "mean":
                scores = scores / np.asarray(scored.token_counts)
            return options[int(np.argmax(scores))][0]
        generation = self.adapter.generate(final.images, prompt, max_new_tokens=max_new_tokens,
                                           **_final_options(final, cfg), **gen_kwargs)
        meter.add(generation.cost)
        return generation.text


def _final_options(final: FinalInput, cfg: FocusConfig) -> dict:
    """How the adapter shows the final images: interleaved texts, each image alone (config.py)."""
    return {"image_texts": final.texts if cfg.final_texts and final.texts else None,
            "each_image_alone": cfg.final_images_alone}
