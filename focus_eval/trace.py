"""What a method did on one question, as plain data that round-trips through JSON.

FOCUS fills a target's relevance map and its proposed ROIs (anchor, cells); ZoomEye fills the
tree nodes it scored as ROIs (depth, node box, confidences) and its search's depth and
thresholds. Fields one method does not use keep their defaults, so older traces still load."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from focus_eval.counters import Counters

Box = list[int]  # (x0, y0, x1, y1) original-image pixels, end-exclusive


@dataclass
class RoiTrace:
    """A region a method looked at. `box` is what the model was shown."""

    anchor: list[int] = field(default_factory=list)  # FOCUS: (row, col) on the relevance map
    anchor_score: float | None = None  # FOCUS
    cells: list[int] = field(default_factory=list)  # FOCUS: (row0, col0, row1, col1) on the map, end-exclusive
    box: Box = field(default_factory=list)
    # FOCUS: Eq. 5 existence; ZoomEye: the answering confidence of a popped node (type 2: existence).
    # None: the region was not checked (recall counts checked and chosen regions, focus_eval/recall.py)
    confidence: float | None = None
    # ZoomEye: a tree node (box = its view, the node box grown to the patch size)
    depth: int | None = None  # 0: the root, the full image
    node_box: Box | None = None
    existence: float | None = None
    latent: float | None = None
    priority: float | None = None  # w c_exist + (1 - w) c_latent, the queue's order


@dataclass
class TargetTrace:
    name: str
    all_instances: bool  # "all X": a type-2 target
    existence_prompt: str = ""  # what the relevance pass and the existence checks asked (type 2: singular)
    relevance_map: list[list[float]] = field(default_factory=list)  # [h, w] map the ROIs came from
    cell_boxes: list[list[list[float]]] = field(default_factory=list)  # [h][w] -> (x0, y0, x1, y1)
    full_image_confidence: float | None = None  # Eq. 5 of the relevance pass (whole image)
    rois: list[RoiTrace] = field(default_factory=list)  # in anchor-relevance order, after NMS
    order: list[int] = field(default_factory=list)  # indices into rois after reranking
    chosen: list[int] = field(default_factory=list)  # indices into rois given to the answer
    notes: list[str] = field(default_factory=list)  # degenerate maps, why nothing was chosen, ...
    # ZoomEye: rois are the scored nodes, order their pop order (type 2: the post-order of the checks)
    answering_question: str | None = None  # the {question} of the answering prompts
    search_depth: int | None = None  # D = min(tree depth, depth cap)
    thresholds: list[float] = field(default_factory=list)  # tau_up after each lowering
    root_answering: float | None = None  # global-local model, several targets: the root check


@dataclass
class Trace:
    question: str
    prompt: str
    image_size: list[int]  # (width, height)
    config: dict[str, Any]
    method: str = "focus"
    question_type: int = 1
    target_source: str = "none"  # icl | rules | none
    target_reply: str | None = None
    targets: list[TargetTrace] = field(default_factory=list)
    final_layout: str = "full"
    final_boxes: list[Box] = field(default_factory=list)
    final_texts: list[str] = field(default_factory=list)  # text after each final image (multi-image input)
    answer: str | None = None
    counters: Counters = field(default_factory=Counters)
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # set when the question failed; everything before it is kept
    # ground truth, when the benchmark has it (V*Bench); recall readings: focus_eval/recall.py
    gt_boxes: list[list[float]] = field(default_factory=list)  # (x0, y0, x1, y1) original pixels
    gt_names: list[str] = field(default_factory=list)
    roi_recall: float | None = None  # share of GT boxes hit by a searched (checked or chosen) ROI
    roi_recall_proposed: float | None = None  # ... by any proposed ROI
    roi_recall_chosen: float | None = None  # ... by a chosen ROI

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["counters"] = self.counters.to_dict()
        return out

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Trace":
        data = dict(data)
        counter_fields = {f.name for f in dataclasses.fields(Counters)}
        data["counters"] = Counters(**{k: v for k, v in data["counters"].items() if k in counter_fields})
        data["targets"] = [
            TargetTrace(**{**t, "rois": [RoiTrace(**r) for r in t["rois"]]}) for t in data["targets"]
        ]
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "Trace":
        return cls.from_dict(json.loads(text))
