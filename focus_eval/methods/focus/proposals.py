"""ROI proposals on an object relevance map (Sec. 3.3, Algorithm of A.5).

anchors -> symmetric s_min ROIs -> expansion up to s_max -> ranking by anchor relevance -> NMS.
The choices where the paper is silent are FocusConfig switches (see config.py):
- anchors (anchor_selection): "topk_then_filter" (default, the paper's words: "we extract the
  locations of the top-k highest scores as anchor points ... Anchor points that are too close
  are discarded", and the Algorithm's Extract-Top-K-Anchors(A, k), which takes no distance)
  takes the k best cells, then walks them by relevance and drops a cell whose Euclidean
  distance in cells to an already kept anchor is < s_dist: fewer than k anchors may remain.
  "greedy" walks all cells by relevance with the same rule until k are kept. Ties in
  relevance go to the earlier cell in row-major order. Cells whose pixel box does not overlap
  the image (padding, e.g. LLaVA-1.5's pad to square) are never anchors.
- initial ROI: the s_min x s_min square with the anchor at offset (s_min - 1) // 2 (the
  centre; for even sizes the upper-left of the two centres), clipped to the map.
- expansion (expansion_reference, see `expansion_scores`): sizes s_min, s_min + 2, ... and
  finally s_max exactly; the next size is accepted while the mean relevance score inside it
  is >= expansion_threshold (times the anchor's own score for "anchor"), and expansion stops
  at the first failure.
- ranking: anchor relevance descending, ties in row-major order; then greedy NMS on cell
  boxes, an ROI whose IoU with a kept one is > nms_threshold is dropped.
- pixels: the union of the covered cells' boxes, clipped to the image, x0/y0 floored and
  x1/y1 ceiled (after a 1e-6 px tolerance for float noise); an ROI with an empty pixel box
  is dropped before NMS so it cannot suppress others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from focus_eval.config import FocusConfig
from focus_eval.protocol import GridGeometry

Cells = tuple[int, int, int, int]  # (row0, col0, row1, col1), end-exclusive
Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) pixels, end-exclusive

_PIXEL_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ROI:
    anchor: tuple[int, int]  # (row, col) on the map
    anchor_score: float  # map value at the anchor
    cells: Cells  # clipped to the map
    box: Box  # original-image pixels, clipped


def propose_rois(relevance: np.ndarray, geometry: GridGeometry, config: FocusConfig) -> list[ROI]:
    """Anchors -> symmetric s_min ROIs -> expansion to s_max -> ranking by anchor relevance -> NMS.
    Returned in rank order (anchor_score descending, ties broken deterministically)."""
    relevance = _check_map(relevance)
    if relevance.shape != geometry.grid_shape:
        raise ValueError(f"relevance map {relevance.shape} and geometry grid {geometry.grid_shape} differ")
    anchors = select_anchors(relevance, k=config.k, s_dist=config.s_dist, mode=config.anchor_selection,
                             allowed=cells_in_image(geometry))
    scores = expansion_scores(relevance, config.expansion_reference)
    rois = []
    for anchor in anchors:  # already in rank order
        reference = scores[anchor] if config.expansion_reference == "anchor" else 1.0
        cells = expand_roi(anchor, scores, s_min=config.s_min, s_max=config.s_max,
                           threshold=config.expansion_threshold * reference)
        box = cells_to_box(cells, geometry)
        if box is not None:
            rois.append(ROI(anchor=anchor, anchor_score=float(relevance[anchor]), cells=cells, box=box))
    return [rois[i] for i in nms([roi.cells for roi in rois], config.nms_threshold)]


def select_anchors(relevance: np.ndarray, k: int, s_dist: float, mode: str = "topk_then_filter",
                   allowed: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Anchor cells in rank order (relevance descending, ties row-major), at most k.

    allowed: [h, w] bool, cells that may be anchors (default: all).
    """
    relevance = _check_map(relevance)
    if mode not in ("greedy", "topk_then_filter"):
        raise ValueError(f"anchor selection mode {mode!r}: expected 'greedy' or 'topk_then_filter'")
    if k < 1 or s_dist < 0:
        raise ValueError(f"need k >= 1 and s_dist >= 0, got k={k}, s_dist={s_dist}")
    rows, cols = relevance.shape
    order = np.argsort(-relevance.ravel(), kind="stable")
    if allowed is not None:
        order = order[np.asarray(allowed, dtype=bool).ravel()[order]]
    if mode == "topk_then_filter":
        order = order[:k]
    # cells closer than s_dist to a kept anchor, stamped as a disk around each kept one
    reach = max(math.ceil(s_dist) - 1, 0)
    offsets = np.arange(-reach, reach + 1)
    disk = offsets[:, None] ** 2 + offsets[None, :] ** 2 < s_dist**2  # [2 reach + 1, 2 reach + 1]
    blocked = np.zeros((rows, cols), dtype=bool)
    anchors: list[tuple[int, int]] = []
    for index in order.tolist():
        row, col = divmod(index, cols)
        if blocked[row, col]:
            continue
        anchors.append((row, col))
        if len(anchors) == k:
            break
        r0, c0 = max(row - reach, 0), max(col - reach, 0)
        r1, c1 = min(row + reach + 1, rows), min(col + reach + 1, cols)
        blocked[r0:r1, c0:c1] |= disk[r0 - row + reach:r1 - row + reach, c0 - col + reach:c1 - col + reach]
    return anchors


def symmetric_roi(anchor: tuple[int, int], size: int, grid_shape: tuple[int, int]) -> Cells:
    """size x size cells with the anchor at offset (size - 1) // 2, clipped to the map."""
    if size < 1:
        raise ValueError(f"ROI size must be >= 1, got {size}")
    (row, col), (rows, cols) = anchor, grid_shape
    r0, c0 = row - (size - 1) // 2, col - (size - 1) // 2
    return max(r0, 0), max(c0, 0), min(r0 + size, rows), min(c0 + size, cols)


def expand_roi(anchor: tuple[int, int], scores: np.ndarray, *, s_min: int, s_max: int, threshold: float) -> Cells:
    """Grow the s_min ROI by 2 cells per step (a last odd step to exactly s_max) while the mean
    of `scores` inside the next size is >= threshold; stop at the first failure."""
    if not 1 <= s_min <= s_max:
        raise ValueError(f"need 1 <= s_min <= s_max, got s_min={s_min}, s_max={s_max}")
    sizes = list(range(s_min, s_max + 1, 2))
    if sizes[-1] != s_max:
        sizes.append(s_max)
    cells = symmetric_roi(anchor, s_min, scores.shape)
    for size in sizes[1:]:
        candidate = symmetric_roi(anchor, size, scores.shape)
        r0, c0, r1, c1 = candidate
        if not scores[r0:r1, c0:c1].mean() >= threshold:
            break
        cells = candidate
    return cells


def nms(cells: Sequence[Cells], threshold: float) -> list[int]:
    """Greedy NMS over cell boxes given in rank order: indices kept, in that order."""
    kept: list[int] = []
    for i, candidate in enumerate(cells):
        if all(cell_iou(candidate, cells[j]) <= threshold for j in kept):
            kept.append(i)
    return kept


def cell_iou(a: Cells, b: Cells) -> float:
    rows = min(a[2], b[2]) - max(a[0], b[0])
    cols = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(rows, 0) * max(cols, 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def cells_to_box(cells: Cells, geometry: GridGeometry) -> Box | None:
    """Pixel box of the union of the cells' boxes, clipped to the image; None if empty."""
    r0, c0, r1, c1 = cells
    boxes = geometry.cell_boxes[r0:r1, c0:c1].reshape(-1, 4)
    if boxes.size == 0:
        return None
    width, height = geometry.image_size
    x0 = math.floor(min(max(boxes[:, 0].min(), 0.0), width) + _PIXEL_TOLERANCE)
    y0 = math.floor(min(max(boxes[:, 1].min(), 0.0), height) + _PIXEL_TOLERANCE)
    x1 = math.ceil(min(max(boxes[:, 2].max(), 0.0), width) - _PIXEL_TOLERANCE)
    y1 = math.ceil(min(max(boxes[:, 3].max(), 0.0), height) - _PIXEL_TOLERANCE)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def cells_in_image(geometry: GridGeometry) -> np.ndarray:
    """[h, w] bool: the cell's pixel box overlaps the image by more than the tolerance."""
    width, height = geometry.image_size
    boxes = geometry.cell_boxes
    overlap_x = np.minimum(boxes[..., 2], width) - np.maximum(boxes[..., 0], 0.0)
    overlap_y = np.minimum(boxes[..., 3], height) - np.maximum(boxes[..., 1], 0.0)
    return (overlap_x > _PIXEL_TOLERANCE) & (overlap_y > _PIXEL_TOLERANCE)


def relevance_scores(relevance: np.ndarray) -> np.ndarray:
    """The map min-max normalised to [0, 1]; a constant map scores 0 everywhere."""
    low, high = relevance.min(), relevance.max()
    if high <= low:
        return np.zeros_like(relevance, dtype=np.float64)
    return (relevance - low) / (high - low)


def expansion_scores(relevance: np.ndarray, reference: str) -> np.ndarray:
    """The "relevance score" of every cell that ROI expansion averages (Sec. 3.3), per reading.

    The paper defines a score per map element but never writes it down. Readings:
    - "mean" (default): the map divided by its mean, so 1 is the level of a uniform map and a
      threshold of 0.5 means "half as relevant as an average cell" (a map whose mean is not
      positive scores 0 everywhere);
    - "global": min-max normalised to [0, 1] (a constant map scores 0);
    - "max": the map divided by its maximum (a map whose maximum is not positive scores 0);
    - "anchor": the min-max scores, compared with threshold * the anchor's own score.

    Why "mean" is the default: Table 12 needs the expansion of the ROIs that answer to go to
    s_max almost always, whatever the threshold in [0.3, 0.7]. (b) 50 thresholds drawn from
    U(0.3, 0.7) leave LLaVA-1.5's accuracy at 72.77 +- 0.00, so the threshold decides nothing;
    (c) s_max is the most influential parameter (5 -> 9 costs 4.7 pp), so ROIs do reach it;
    (e) NMS thresholds 0.3 and 0.5 give different LLaVA-1.5 accuracies, so some ROI pairs
    overlap with IoU in (0.3, 0.5], impossible for 3 x 3 ROIs whose anchors are >= s_dist = 2
    apart (their IoU is at most 3/15 = 0.2); and A.3 sizes s_max so that "the maximum crop
    size" spans 1-2x the encoder's base resolution, i.e. it treats s_max as the crop size.
    Anchors are the top cells of a map that concentrates on the object, so a window around one
    averages several times the map's mean: "mean" grows them to s_max for every threshold in
    [0.3, 0.7], on peaked and on flat maps alike. "global", "max" and "anchor" compare the
    window with the peak: on a peaked map (a small object, the benchmarks' case) they rarely
    grow past s_min, which contradicts (c) and (e), and on flatter maps the outcome moves with
    the threshold, which contradicts (b). benchmarks/fidelity.py measures this on synthetic
    maps.
    """
    relevance = np.asarray(relevance, dtype=np.float64)
    if reference in ("global", "anchor"):
        return relevance_scores(relevance)
    if reference not in ("mean", "max"):
        raise ValueError(f"expansion reference {reference!r}: expected 'mean', 'global', 'max' or 'anchor'")
    scale = relevance.mean() if reference == "mean" else relevance.max()
    if not scale > 0:
        return np.zeros_like(relevance)
    return relevance / scale


def _check_map(relevance: np.ndarray) -> np.ndarray:
    relevance = np.asarray(relevance, dtype=np.float64)
    if relevance.ndim != 2 or relevance.size == 0:
        raise ValueError(f"relevance map must be a non-empty 2-D array, got shape {relevance.shape}")
    if not np.isfinite(relevance).all():
        raise ValueError("relevance map contains NaN or inf")
    return relevance
