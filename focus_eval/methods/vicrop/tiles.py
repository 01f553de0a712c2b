"""The map ViCrop searches: one per tile, cut to the cells inside the tile, stitched.

Tiles (the "-high" variants; official `utils.py`, `high_res_split_threshold`): rows =
ceil(H / tile_side), columns = int(rows * W / H), so tiles are at most tile_side high and about
as wide as high. The official columns are 0 for an image narrower than H / rows (a tall narrow
image: W < H / ceil(H / tile_side)), and the split then fails; here they are at least 1. Every
tile is ceil(W / columns) x ceil(H / rows) pixels, row-major; the official code lets the last
row and column reach past the image edge (PIL fills the overhang with black, fewer than `rows`
or `columns` pixels); here they are moved back to end at the edge, so every tile shows image
pixels only and all tiles have one size (the last ones overlap their neighbours by as many pixels).
Without tiling the whole image is the one tile.

Each tile's map lies on the family's relevance grid (`Adapter.last_token_attention`'s geometry,
in the tile's pixels), which may reach outside the tile: LLaVA-1.5 pads a tile to a square
(image_aspect=pad), OneVision's grid edges are rounded. The searched map keeps the rows and
columns whose cell centres lie inside the tile (all grids are rectilinear: a row's cells share
their y span, a column's their x span; when no centre lies inside, the cell row or column
nearest the tile's centre); it is a rectangular block of the tile's grid. Tiles of one size have
grids of one shape, so the blocks stitch into one map, tile row after tile row (the official
np.block), and its cell boxes are the tiles' cell boxes shifted by the tiles' offsets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from focus_eval.protocol import GridGeometry

Box = tuple[int, int, int, int]


def tile_layout(image_size: tuple[int, int], tile_side: int) -> tuple[int, int]:
    """(rows, columns) of tiles for a (width, height) image."""
    width, height = image_size
    rows = math.ceil(height / tile_side)
    return rows, max(1, int(rows * width / height))


def tile_boxes(image_size: tuple[int, int], tile_side: int) -> list[Box]:
    """The tiles (x0, y0, x1, y1), row-major (module docstring)."""
    width, height = image_size
    rows, cols = tile_layout(image_size, tile_side)
    tile_w, tile_h = math.ceil(width / cols), math.ceil(height / rows)
    xs = [min(i * tile_w, width - tile_w) for i in range(cols)]
    ys = [min(j * tile_h, height - tile_h) for j in range(rows)]
    return [(x, y, x + tile_w, y + tile_h) for y in ys for x in xs]


@dataclass
class TileMap:
    box: Box  # the tile in the image
    grid: np.ndarray  # [h, w] the map over the tile's whole grid
    geometry: GridGeometry  # the grid, in the tile's pixels


def inside(geometry: GridGeometry) -> tuple[slice, slice]:
    """The rows and columns of `geometry`'s grid whose cell centres lie inside its image."""
    width, height = geometry.image_size
    boxes = geometry.cell_boxes
    return (_inside((boxes[:, 0, 1] + boxes[:, 0, 3]) / 2, height),
            _inside((boxes[0, :, 0] + boxes[0, :, 2]) / 2, width))


def _inside(centres: np.ndarray, length: int) -> slice:
    kept = np.flatnonzero((centres >= 0) & (centres < length))
    if kept.size == 0:
        nearest = int(np.argmin(np.abs(centres - length / 2)))
        return slice(nearest, nearest + 1)
    return slice(int(kept[0]), int(kept[-1]) + 1)


def stitch(tiles: list[TileMap], columns: int, image_size: tuple[int, int]) -> tuple[np.ndarray, GridGeometry]:
    """One map [H, W] over the image from the tiles (row-major, `columns` per row) and its
    geometry in the image's pixels."""
    grids, boxes = [], []
    for tile in tiles:
        rows, cols = inside(tile.geometry)
        grids.append(tile.grid[rows, cols])
        x0, y0 = tile.box[:2]
        boxes.append(tile.geometry.cell_boxes[rows, cols] + np.array([x0, y0, x0, y0], dtype=np.float64))
    if len({grid.shape for grid in grids}) != 1:
        raise ValueError(f"the tiles' maps differ in shape ({sorted({g.shape for g in grids})}); they cannot be stitched")
    bands = range(0, len(tiles), columns)
    grid = np.concatenate([np.concatenate(grids[i:i + columns], axis=1) for i in bands], axis=0)  # [H, W]
    cells = np.concatenate([np.concatenate(boxes[i:i + columns], axis=1) for i in bands], axis=0)  # [H, W, 4]
    return grid, GridGeometry(image_size=tuple(image_size), cell_boxes=cells)
