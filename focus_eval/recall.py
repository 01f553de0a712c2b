"""ROI recall against ground-truth boxes (the paper's Tab. 3 and Fig. 4, V*Bench).

The paper: "We calculate recall by checking whether one of the proposed ROIs overlaps with the
GT region by at least 50%." Made precise here:
- Overlap of an ROI with a GT box = area(ROI ∩ GT) / area(GT): the share of the object that the
  ROI shows. V*Bench's boxes are tight object boxes and ROIs are crops several times larger,
  so IoU would call an ROI that shows the whole object a miss; >= 0.5 (inclusive) is the hit.
- Which ROIs ("searched", `roi_recall`, the paper's number): those the search looked at, i.e.
  every ROI given an existence check (the top n_steps, the overrun ones, all of a type-2
  target) and the chosen ones (with ranking off: the top-anchor ROI, unchecked). Not all
  proposed ROIs: Table 3's "w/o proposal ranking" row has recall 38.48 % against 77.49 % for
  the same proposals ranked, and Fig. 4's recall grows with n_steps "as additional
  lower-priority ROIs are explored", neither of which could happen over all proposals. The
  trace also keeps the two other readings: `roi_recall_proposed` (every proposed ROI after
  NMS) and `roi_recall_chosen` (only the ROIs the answer was composed from).
- Several targets: the ROIs of all of a question's targets are pooled (extracted target
  names need not match V*'s `target_object` names), and a question's recall is the fraction
  of its GT boxes that some pooled ROI hits (a relative-position question with one of its two
  objects found scores 0.5). The task metric is the mean over the questions that have boxes.
- A FOCUS question that proposed nothing (no target, no ROI) scores 0; `method=vanilla` has no
  ROIs and no recall (None).
- ZoomEye (`method=zoomeye`): its ROIs are the tree nodes it scored, `box` the view the model
  was shown. "Searched" = the nodes it visited: popped ones (type 1, which carry an answering
  confidence) and every node of a type-2 search; "proposed" adds the nodes that were only queued
  (existence and latent confidences). The root is left out of all three readings: it is the
  full image, popped first by every type-1 search, and would hit every GT box.
- ViCrop (`method=vicrop`): its one ROI is the crop box it chose (searched and chosen); when the
  crop is the full image (a window covering the whole map, a map with NaN/inf) no ROI is
  recorded and the question scores 0, as a FOCUS question without a proposal.
"""

from __future__ import annotations

from typing import Sequence

from focus_eval.trace import Trace

HIT_FRACTION = 0.5


def gt_coverage(roi: Sequence[float], gt: Sequence[float]) -> float:
    """area(roi ∩ gt) / area(gt) for (x0, y0, x1, y1) boxes; 0 for an empty gt box."""
    width = min(roi[2], gt[2]) - max(roi[0], gt[0])
    height = min(roi[3], gt[3]) - max(roi[1], gt[1])
    area = (gt[2] - gt[0]) * (gt[3] - gt[1])
    return max(width, 0) * max(height, 0) / area if area > 0 else 0.0


def roi_recall(gt_boxes: Sequence[Sequence[float]], rois: Sequence[Sequence[float]]) -> float | None:
    """Fraction of `gt_boxes` that some ROI covers by at least HIT_FRACTION; None without boxes."""
    if not gt_boxes:
        return None
    hits = sum(any(gt_coverage(roi, gt) >= HIT_FRACTION for roi in rois) for gt in gt_boxes)
    return hits / len(gt_boxes)


def add_recall(trace: Trace, gt_boxes: Sequence[Sequence[float]],
               gt_names: Sequence[str] = ()) -> dict[str, float | None]:
    """Record the GT boxes ((x0, y0, x1, y1) original pixels) and the three recall readings
    (module docstring) in `trace`; returns the readings by their trace field names."""
    trace.gt_boxes = [[float(v) for v in box] for box in gt_boxes]
    trace.gt_names = [str(name) for name in gt_names]
    if trace.method == "vanilla" or not trace.gt_boxes:
        trace.roi_recall = trace.roi_recall_proposed = trace.roi_recall_chosen = None
        return _readings(trace)
    proposed, searched, chosen = [], [], []
    for target in trace.targets:
        for index, roi in enumerate(target.rois):
            if roi.depth == 0:  # ZoomEye's root is the full image, not a region: it would hit every box
                continue
            proposed.append(roi.box)
            if roi.confidence is not None or index in target.chosen:
                searched.append(roi.box)
            if index in target.chosen:
                chosen.append(roi.box)
    trace.roi_recall = roi_recall(trace.gt_boxes, searched)
    trace.roi_recall_proposed = roi_recall(trace.gt_boxes, proposed)
    trace.roi_recall_chosen = roi_recall(trace.gt_boxes, chosen)
    return _readings(trace)


def _readings(trace: Trace) -> dict[str, float | None]:
    return {"roi_recall": trace.roi_recall, "roi_recall_proposed": trace.roi_recall_proposed,
            "roi_recall_chosen": trace.roi_recall_chosen}
