"""FOCUS's search on one question (Fig. 2, A.5): targets (in-context extraction, Sec. 3.2) ->
relevance (one prefill per target, Fig. 7) -> proposals (Algorithm of A.5) -> ranking (Eq. 5,
n_steps, overrun of C.1, type 2) -> final input (composition of A.5).

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
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Sequence

import numpy as np

from focus_eval.compose import FinalInput, compose_final_input, crop, target_names
from focus_eval.methods.base import SearchQuestion, extract_targets
from focus_eval.methods.focus.maps import downsample_geometry, smooth_and_downsample, to_grid
from focus_eval.methods.focus.proposals import ROI, propose_rois
from focus_eval.methods.focus.ranking import Ranking, existence_confidence, existence_prompt, rank_rois, select_type2
from focus_eval.methods.focus.relevance import (DegenerateRelevanceWarning, object_relevance_map,
                                                random_relevance_map)
from focus_eval.protocol import TargetLocationError
from focus_eval.targets import Target, singular_target
from focus_eval.trace import RoiTrace, TargetTrace

Box = tuple[int, int, int, int]


def search(asked: SearchQuestion) -> FinalInput:
    targets = extract_targets(asked)
    cfg = asked.config
    layers = cfg.layer_range(asked.adapter.num_layers)
    chosen: list[list[Box]] = []
    for target in targets.targets:
        target_trace = TargetTrace(name=target.name, all_instances=target.all_instances)
        asked.trace.targets.append(target_trace)
        chosen.append(_search_target(asked, target, layers, target_trace))
    with asked.meter.stage("answer"):
        return compose_final_input(asked.image, chosen, question_type=targets.question_type,
                                   multi_image=asked.adapter.multi_image, t_obj_dist=cfg.t_obj_dist,
                                   canvas_size=cfg.canvas_size, names=target_names(targets.targets))


def _search_target(asked: SearchQuestion, target: Target, layers: range, target_trace: TargetTrace) -> list[Box]:
    cfg, meter, image = asked.config, asked.meter, asked.image
    phrase = singular_target(target.name) if target.all_instances else target.name
    prompt, offset = existence_prompt(cfg.existence_prompt, phrase)
    target_trace.existence_prompt = prompt
    with meter.stage("relevance"):
        try:
            prefill = asked.adapter.prefill(image, prompt, phrase, layers, with_keys=cfg.relevance == "kk",
                                            target_offset=offset)
        except TargetLocationError as error:
            target_trace.notes.append(f"target not located in the prompt tokens: {error}")
            return []
        meter.add(prefill.cost)
        num_visual = int(prefill.visual_positions.numel())
        if cfg.relevance == "random":
            relevance = random_relevance_map(num_visual, _stable_seed(cfg.seed, asked.question, target.name))
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
        ranking, chosen = _rank(asked, prompt, target, rois)
    target_trace.rois = [_roi_trace(roi, conf) for roi, conf in zip(rois, ranking.confidences)]
    target_trace.order = list(ranking.order)
    target_trace.chosen = chosen
    if not chosen:
        target_trace.notes.append(f"no ROI above t_type2={cfg.t_type2}")
    return [rois[i].box for i in chosen]


def _rank(asked: SearchQuestion, prompt: str, target: Target, rois: list[ROI]) -> tuple[Ranking, list[int]]:
    cfg = asked.config
    if not cfg.ranking:
        unchecked = Ranking(confidences=[None] * len(rois), order=list(range(len(rois))), checks=0, batches=0)
        return unchecked, [0]

    def check(batch: Sequence[ROI]) -> list[float]:
        crops = [crop(asked.image, roi.box) for roi in batch]
        result = asked.adapter.yes_no_logits(crops, [prompt] * len(crops))
        asked.meter.add(result.cost)
        return existence_confidence(result.logits).tolist()

    if target.all_instances:
        ranking = select_type2(rois, check, threshold=cfg.t_type2, batch_size=cfg.check_batch_size)
        return ranking, list(ranking.selected)
    ranking = rank_rois(rois, check, n_steps=cfg.n_steps, overrun=cfg.overrun)
    return ranking, [ranking.order[0]]


def _roi_trace(roi: ROI, confidence: float | None) -> RoiTrace:
    return RoiTrace(anchor=list(roi.anchor), anchor_score=float(roi.anchor_score),
                    cells=list(roi.cells), box=list(roi.box), confidence=confidence)


def _stable_seed(seed: int, question: str, target: str) -> int:
    digest = hashlib.sha256(f"{seed}\x00{question}\x00{target}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)
