"""ViCrop's crop box from an importance map: the sliding-window search (official `utils.py`,
`bbox_from_att_image_adaptive`, reimplemented from its behaviour).

For each ratio r in RATIOS a window of crop_side * r pixels per side becomes n_cols x n_rows map
cells (the pixels divided by the mean cell width / height, rounded down as the official int(),
at most the map's size); every placement at stride 1 gets the sum of its cells. The placement
with the largest sum wins (ties: the first in the official scan, columns outer, rows inner);
its score is (its sum - the mean sum of the placements one cell left, right, above and below
that exist) / (n_rows * n_cols), the "sharpness" of the peak. The ratio with the largest score
wins (ties: the smaller ratio). The crop is a square of crop_side * r pixels (2 * floor(side / 2),
as the official integer halves) centred on the winning window's centre (truncated to an
integer), shifted to lie inside the image and clipped to it where the image is smaller.

- A window at r = 1 that covers the whole map in both directions means the full image; a larger
  ratio that covers it is skipped (the official rules).
- Ours, where the official code fails: a window is at least one cell per side. The official
  int() gives 0 cells when a cell is wider than the window (e.g. Qwen2.5-VL at its official
  256 * 28 * 28 pixels on an 8K image: 480 px cells, a 224 px window), and then every
  window's sum is 0 and its score 0 / 0.
- Cell sizes come from the grid's geometry (`GridGeometry.cell_boxes`), so non-square cells and
  grids that cover part of the image work; the official code divides the image size by the map
  shape, which assumes the map covers the whole image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from focus_eval.protocol import GridGeometry

RATIOS = (1.0, 1.2, 1.4, 1.6, 1.8, 2.0)
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Window:
    ratio: float
    cells: tuple[int, int, int, int]  # (row0, col0, row1, col1) on the map, end-exclusive
    score: float  # (sum - mean of the neighbouring placements' sums) / cells


def window_cells(side: float, cell: float, count: int) -> int:
    """Cells a window of `side` pixels spans on an axis of `count` cells of `cell` pixels."""
    return max(1, min(int(side / cell), count))


def best_window(grid: np.ndarray, cell_size: tuple[float, float], crop_side: float) -> Window | None:
    """The winning window on `grid` [h, w] with cells of `cell_size` = (width, height) pixels
    (module docstring); None when the window at ratio 1 covers the whole map."""
    rows, cols = grid.shape
    cell_width, cell_height = cell_size
    best = None
    for ratio in RATIOS:
        n_rows = window_cells(crop_side * ratio, cell_height, rows)
        n_cols = window_cells(crop_side * ratio, cell_width, cols)
        if (n_rows, n_cols) == (rows, cols):
            if ratio == RATIOS[0]:
                return None
            continue
        sums = sliding_window_view(grid, (n_rows, n_cols)).sum(axis=(2, 3))  # [rows - n_rows + 1, cols - n_cols + 1]
        col, row = divmod(int(np.argmax(sums.T)), sums.shape[0])  # the first maximum, columns outer
        neighbours = [sums[r, c] for r, c in ((row, col - 1), (row, col + 1), (row - 1, col), (row + 1, col))
                      if 0 <= r < sums.shape[0] and 0 <= c < sums.shape[1]]
        score = float((sums[row, col] - np.mean(neighbours)) / (n_rows * n_cols))
        if best is None or score > best.score:
            best = Window(ratio=ratio, cells=(row, col, row + n_rows, col + n_cols), score=score)
    return best


def mean_cell_size(geometry: GridGeometry) -> tuple[float, float]:
    """(width, height) in pixels of the grid's cells, on average."""
    boxes = geometry.cell_boxes
    return float(np.mean(boxes[..., 2] - boxes[..., 0])), float(np.mean(boxes[..., 3] - boxes[..., 1]))


def crop_box(window: Window, geometry: GridGeometry, crop_side: float) -> Box:
    """The square crop of `window` in the image of `geometry` (module docstring)."""
    row0, col0, row1, col1 = window.cells
    x0, y0 = geometry.cell_boxes[row0, col0, :2]
    x1, y1 = geometry.cell_boxes[row1 - 1, col1 - 1, 2:]
    half = max(1, int(crop_side * window.ratio // 2))
    width, height = geometry.image_size
    left, right = _centred_span(int((x0 + x1) / 2), half, width)
    top, bottom = _centred_span(int((y0 + y1) / 2), half, height)
    return left, top, right, bottom


def _centred_span(centre: int, half: int, length: int) -> tuple[int, int]:
    """[centre - half, centre + half) moved inside [0, length), then clipped to it."""
    centre = min(max(centre, half), length - half)
    return max(0, centre - half), min(length, centre + half)
