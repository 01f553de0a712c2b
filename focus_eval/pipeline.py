"""FOCUS end to end on one question, against any `Adapter`.

Stages (Fig. 2, A.5): targets (in-context extraction, Sec. 3.2) -> relevance (one prefill per
target, Fig. 7) -> proposals (Algorithm of A.5) -> ranking (Eq. 5, n_steps, overrun of C.1,
type 2) -> answer (composition of A.5, then generation or logits matching of C.5).

Choices the paper leaves open, made here:
- A question whose targets cannot be found (none named, or none located in the tokens)
  is answered on the full image; the trace says why.
- A type-2 target none of whose ROIs passes t_type2 contributes no region; if nothing is
  chosen at all the full image answers.
- With ranking off (Table 3 ablation) each target contributes its top-anchor ROI, for
  type-2 targets too (there are no confidences to threshold).
- The random-map ablation draws each map from a generator seeded by the config seed, the
  question and the target, so it is reproducible and independent of process and order.
- A type-2 target ("all boats") is asked about in the singular ("Is there a boat in the
  image?", `singular_target`); its tokens are located where the existence template puts
  them (`existence_prompt`).
- Logits matching scores each option as a statement with a length-normalised score
  (`focus_eval.statements`; switches option_format, option_score).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from PIL import Image

from focus_eval.compose import FinalInput, compose_final_input, crop
from focus_eval.config import FocusConfig
from focus_eval.counters import Meter
from focus_eval.images import to_rgb
from focus_eval.maps import downsample_geometry, smooth_and_downsample, to_grid
from focus_eval.proposals import ROI, propose_rois
from focus_eval.protocol import Adapter, TargetLocationError
from focus_eval.ranking import Ranking, existence_confidence, existence_prompt, rank_rois, select_type2
from focus_eval.relevance import DegenerateRelevanceWarning, object_relevance_map, random_relevance_map
from focus_eval.statements import option_statement
from focus_eval.targets import (Target, TargetSet, icl_prompt, options_from_prompt, question_from_prompt,
                                resolve_targets, singular_target)
from focus_eval.trace import RoiTrace, TargetTrace, Trace


@dataclass
class FocusResult:
    answer: str
    trace: Trace
    final_images: list[Image.Image] = field(default_factory=list)


class PipelineError(RuntimeError):
    """A question failed; `trace` keeps everything computed before the failure."""

    def __init__(self, message: str, trace: Trace):
        super().__init__(message)
        self.trace = trace


class FocusPipeline:
    def __init__(self, adapter: Adapter, config: FocusConfig):
        self.adapter = adapter
        self.config = config

    def answer(self, image: Image.Image, prompt: str, *, question: str | None = None,
               options: Sequence[tuple[str, str]] | None = None, max_new_tokens: int = 16,
               gen_kwargs: dict | None = None, config: FocusConfig | None = None) -> FocusResult:
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
            final = (self._compose(image, [], 1, cfg) if cfg.method == "vanilla"
                     else self._search(image, question, cfg, meter, trace))
            trace.final_layout = final.layout
            trace.final_boxes = [list(b) for b in final.boxes]
            trace.final_texts = list(final.texts) if cfg.final_texts else []
            with meter.stage("answer"):
                trace.answer = self._final_answer(final, prompt, question, options, cfg,
                                                  max_new_tokens, gen_kwargs or {}, meter, trace)
        except Exception as error:
            trace.error = f"{type(error).__name__}: {error}"
            trace.counters = meter.finish()
            raise PipelineError(trace.error, trace) from error
        trace.counters = meter.finish()
        return FocusResult(answer=trace.answer, trace=trace, final_images=final.images)

    # stages -----------------------------------------------------------------------------

    def _search(self, image: Image.Image, question: str, cfg: FocusConfig, meter: Meter,
                trace: Trace) -> FinalInput:
        with meter.stage("targets"):
            targets = self._extract_targets(question, cfg, meter)
        trace.question_type = targets.question_type
        trace.target_source = targets.source
        trace.target_reply = targets.reply
        trace.notes.extend(targets.notes)
        if not targets.targets:
            trace.notes.append("no target: answered on the full image")

        layers = cfg.layer_range(self.adapter.num_layers)
        chosen: list[list[tuple[int, int, int, int]]] = []
        for target in targets.targets:
            target_trace = TargetTrace(name=target.name, all_instances=target.all_instances)
            trace.targets.append(target_trace)
            chosen.append(self._search_target(image, question, target, layers, cfg, meter, target_trace))

        names = [target.name if target.all_instances else f"the {target.name}" for target in targets.targets]
        with meter.stage("answer"):
            return self._compose(image, chosen, targets.question_type, cfg, names)

    def _compose(self, image: Image.Image, chosen: list[list[tuple[int, int, int, int]]], question_type: int,
                 cfg: FocusConfig, names: list[str] | None = None) -> FinalInput:
        return compose_final_input(image, chosen, question_type=question_type, multi_image=self.adapter.multi_image,
                                   t_obj_dist=cfg.t_obj_dist, canvas_size=cfg.canvas_size, names=names)

    def _extract_targets(self, question: str, cfg: FocusConfig, meter: Meter) -> TargetSet:
        reply, cut = None, False
        if cfg.target_extraction == "icl":
            # every in-context answer is one line: stop there instead of decoding further examples
            generation = self.adapter.generate([], icl_prompt(question, cfg.dataset),
                                               max_new_tokens=cfg.target_max_new_tokens, stop=["\n"])
            meter.add(generation.cost)
            reply, cut = generation.text, generation.truncated
        return resolve_targets(question, reply, trust_empty_reply=cfg.trust_empty_target_reply, reply_cut=cut)

    def _search_target(self, image: Image.Image, question: str, target: Target, layers: range,
                       cfg: FocusConfig, meter: Meter,
                       target_trace: TargetTrace) -> list[tuple[int, int, int, int]]:
        phrase = singular_target(target.name) if target.all_instances else target.name
        prompt, offset = existence_prompt(cfg.existence_prompt, phrase)
        target_trace.existence_prompt = prompt
        with meter.stage("relevance"):
            try:
                prefill = self.adapter.prefill(image, prompt, phrase, layers, with_keys=cfg.relevance == "kk",
                                               target_offset=offset)
            except TargetLocationError as error:
                target_trace.notes.append(f"target not located in the prompt tokens: {error}")
                return []
            meter.add(prefill.cost)
            num_visual = int(prefill.visual_positions.numel())
            if cfg.relevance == "random":
                relevance = random_relevance_map(num_visual, _stable_seed(cfg.seed, question, target.name))
            else:
                # [layers, kv_heads, seq, head_dim]: values (V-V) or un-rotated keys (K-K, Table 3)
                features = prefill.keys if cfg.relevance == "kk" else prefill.values
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", DegenerateRelevanceWarning)
                    relevance = object_relevance_map(features, prefill.target_positions,
                                                     prefill.visual_positions, cfg.row_normalization)
                target_trace.notes.extend(str(w.message) for w in caught)
            grid = smooth_and_downsample(to_grid(relevance, prefill.geometry.grid_shape),
                                         cfg.gaussian_sigma, cfg.downsample)  # [h', w']
            geometry = downsample_geometry(prefill.geometry, cfg.downsample)
            target_trace.full_image_confidence = float(existence_confidence(prefill.yes_no))
            del prefill  # the cache of a 7B model is large; only the map is kept
        target_trace.relevance_map = grid.tolist()
        target_trace.cell_boxes = np.round(geometry.cell_boxes, 2).tolist()

        with meter.stage("proposals"):
            rois = propose_rois(grid, geometry, cfg)
        if not rois:
            target_trace.notes.append("no region proposed")
            return []

        with meter.stage("ranking"):
            ranking, chosen = self._rank(image, prompt, target, rois, cfg, meter)
        target_trace.rois = [_roi_trace(roi, conf) for roi, conf in zip(rois, ranking.confidences)]
        target_trace.order = list(ranking.order)
        target_trace.chosen = chosen
        if not chosen:
            target_trace.notes.append(f"no ROI above t_type2={cfg.t_type2}")
        return [rois[i].box for i in chosen]

    def _rank(self, image: Image.Image, prompt: str, target: Target, rois: list[ROI],
              cfg: FocusConfig, meter: Meter) -> tuple[Ranking, list[int]]:
        if not cfg.ranking:
            unchecked = Ranking(confidences=[None] * len(rois), order=list(range(len(rois))),
                                checks=0, batches=0)
            return unchecked, [0]

        def check(batch: Sequence[ROI]) -> list[float]:
            crops = [crop(image, roi.box) for roi in batch]
            result = self.adapter.yes_no_logits(crops, [prompt] * len(crops))
            meter.add(result.cost)
            return existence_confidence(result.logits).tolist()

        if target.all_instances:
            ranking = select_type2(rois, check, threshold=cfg.t_type2, batch_size=cfg.check_batch_size)
            return ranking, list(ranking.selected)
        ranking = rank_rois(rois, check, n_steps=cfg.n_steps, overrun=cfg.overrun)
        return ranking, [ranking.order[0]]

    def _final_answer(self, final: FinalInput, prompt: str, question: str,
                      options: Sequence[tuple[str, str]] | None, cfg: FocusConfig,
                      max_new_tokens: int, gen_kwargs: dict, meter: Meter, trace: Trace) -> str:
        if cfg.answer_scheme == "logits":
            options = list(options) if options is not None else options_from_prompt(prompt)
            if not options:
                raise ValueError("answer_scheme=logits needs answer options; none found in the prompt")
            texts = [option_statement(question, text) if cfg.option_format == "statement" else text
                     for _, text in options]
            scored = self.adapter.option_scores(final.images, question, texts, **self._final_options(final, cfg))
            meter.add(scored.cost)
            scores = np.asarray(scored.scores)
            if cfg.option_score == "mean":
                scores = scores / np.asarray(scored.token_counts)
            return options[int(np.argmax(scores))][0]
        generation = self.adapter.generate(final.images, prompt, max_new_tokens=max_new_tokens,
                                           **self._final_options(final, cfg), **gen_kwargs)
        meter.add(generation.cost)
        return generation.text

    @staticmethod
    def _final_options(final: FinalInput, cfg: FocusConfig) -> dict:
        """How the adapter shows the final images: interleaved texts, each image alone (config.py)."""
        return {"image_texts": final.texts if cfg.final_texts and final.texts else None,
                "each_image_alone": cfg.final_images_alone}


def _roi_trace(roi: ROI, confidence: float | None) -> RoiTrace:
    return RoiTrace(anchor=list(roi.anchor), anchor_score=float(roi.anchor_score),
                    cells=list(roi.cells), box=list(roi.box), confidence=confidence)


def _stable_seed(seed: int, question: str, target: str) -> int:
    digest = hashlib.sha256(f"{seed}\x00{question}\x00{target}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)
