"""Relevance vector -> grid, and the post-processing of global-local maps (Sec. 3.2).

Sec. 3.2 applies "a Gaussian filter to A, followed by downsampling" for global-local-view
models; neither is specified further. Our choices (FocusConfig.gaussian_sigma, .downsample):
- Gaussian: sigma in grid cells (0 = off), scipy.ndimage.gaussian_filter with mode "reflect"
  (the grid mirrored about its edge): a constant map stays constant and border cells are
  not darkened, so objects at the image border are not penalised. Truncated at 4 sigma.
- Downsampling: average pooling over factor x factor blocks (1 = off); the last row/column
  of blocks may be partial and averages only the cells it has, so the pooled grid is
  ceil(h / factor) x ceil(w / factor) and no cell is dropped or padded with zeros.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from focus_eval.protocol import GridGeometry


def to_grid(relevance: torch.Tensor, grid_shape: tuple[int, int]) -> np.ndarray:
    """[h * w] relevance over the visual tokens (row-major) -> [h, w] float64."""
    rows, cols = grid_shape
    if relevance.dim() != 1 or relevance.numel() != rows * cols:
        raise ValueError(f"relevance of shape {tuple(relevance.shape)} does not fill a {rows}x{cols} grid")
    return relevance.detach().to(device="cpu", dtype=torch.float64).numpy().reshape(rows, cols).copy()


def smooth_and_downsample(grid: np.ndarray, sigma: float, factor: int) -> np.ndarray:
    """Gaussian filter (sigma in cells, 0 = off), then factor x factor average pooling
    (1 = off). [h, w] -> [ceil(h / factor), ceil(w / factor)] float64."""
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 2 or grid.size == 0:
        raise ValueError(f"grid must be a non-empty 2-D array, got shape {grid.shape}")
    if not np.isfinite(grid).all():
        raise ValueError("grid contains NaN or inf")
    if not (sigma >= 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma}")
    _check_factor(factor)
    if sigma > 0:
        grid = gaussian_filter(grid, sigma=sigma, mode="reflect", truncate=4.0)
    if factor == 1:
        return grid
    rows, cols = grid.shape
    starts_r, starts_c = np.arange(0, rows, factor), np.arange(0, cols, factor)
    # block sums over [start, next start) along each axis, divided by the block's cell count
    sums = np.add.reduceat(np.add.reduceat(grid, starts_r, axis=0), starts_c, axis=1)
    counts = np.outer(np.diff(np.append(starts_r, rows)), np.diff(np.append(starts_c, cols)))
    return sums / counts


def downsample_geometry(geometry: GridGeometry, factor: int) -> GridGeometry:
    """Geometry of the pooled grid: cell (i, j) covers the union (bounding box) of the pixel
    boxes of the source cells it averages."""
    _check_factor(factor)
    if factor == 1:
        return geometry
    boxes = geometry.cell_boxes  # [h, w, 4]
    rows, cols = geometry.grid_shape
    starts_r, starts_c = np.arange(0, rows, factor), np.arange(0, cols, factor)

    def reduce(ufunc, channel):
        return ufunc.reduceat(ufunc.reduceat(boxes[..., channel], starts_r, axis=0), starts_c, axis=1)

    pooled = np.stack([reduce(np.minimum, 0), reduce(np.minimum, 1), reduce(np.maximum, 2), reduce(np.maximum, 3)],
                      axis=-1)
    return GridGeometry(image_size=geometry.image_size, cell_boxes=pooled)


def _check_factor(factor: int) -> None:
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"downsampling factor must be an integer >= 1, got {factor!r}")
