import math

import numpy as np
import pytest
import torch

from focus_eval.methods.focus.maps import downsample_geometry, smooth_and_downsample, to_grid
from focus_eval.protocol import GridGeometry


def test_to_grid_is_row_major_float64_copy():
    relevance = torch.arange(12, dtype=torch.float32)
    grid = to_grid(relevance, (3, 4))
    assert grid.dtype == np.float64 and grid.shape == (3, 4)
    assert grid[1, 2] == 6 and grid[2, 0] == 8
    grid[0, 0] = 99
    assert relevance[0].item() == 0  # not a view of the tensor


def test_to_grid_accepts_bf16():
    grid = to_grid(torch.tensor([0.5, 0.25, 0.25, 0.0], dtype=torch.bfloat16), (2, 2))
    np.testing.assert_array_equal(grid, [[0.5, 0.25], [0.25, 0.0]])


@pytest.mark.parametrize("relevance, shape", [(torch.zeros(11), (3, 4)), (torch.zeros(3, 4), (3, 4))])
def test_to_grid_rejects_mismatch(relevance, shape):
    with pytest.raises(ValueError, match="does not fill"):
        to_grid(relevance, shape)


def test_off_is_identity():
    grid = np.random.default_rng(0).random((5, 7))
    np.testing.assert_array_equal(smooth_and_downsample(grid, sigma=0.0, factor=1), grid)


def test_sigma_is_in_cells():
    # A unit impulse far from the border becomes the separable, normalised 1-D kernel
    # exp(-x^2 / (2 sigma^2)), |x| <= 4 sigma, in both directions.
    sigma = 1.5
    grid = np.zeros((21, 21))
    grid[10, 10] = 1.0
    out = smooth_and_downsample(grid, sigma=sigma, factor=1)
    x = np.arange(-6, 7)  # 4 * 1.5 = 6 cells
    kernel = np.exp(-x**2 / (2 * sigma**2))
    kernel /= kernel.sum()
    expected = np.zeros((21, 21))
    expected[4:17, 4:17] = np.outer(kernel, kernel)
    np.testing.assert_allclose(out, expected, atol=1e-12)


def test_border_is_not_darkened():
    # reflect mode: a constant map stays constant, including its border cells
    out = smooth_and_downsample(np.full((6, 9), 0.3), sigma=2.0, factor=1)
    np.testing.assert_allclose(out, 0.3, rtol=1e-12)


def test_average_pooling_with_partial_blocks():
    grid = np.arange(35, dtype=np.float64).reshape(5, 7)
    out = smooth_and_downsample(grid, sigma=0.0, factor=2)
    assert out.shape == (3, 4)  # ceil(5 / 2) x ceil(7 / 2)
    # block (0, 0): rows 0-1, cols 0-1 -> (0 + 1 + 7 + 8) / 4; block (2, 3): the single cell 34
    assert out[0, 0] == 4.0 and out[2, 3] == 34.0
    # block (2, 0): row 4, cols 0-1 -> (28 + 29) / 2; block (0, 3): rows 0-1, col 6 -> (6 + 13) / 2
    assert out[2, 0] == 28.5 and out[0, 3] == 9.5
    for i in range(3):
        for j in range(4):
            assert out[i, j] == pytest.approx(grid[2 * i:2 * i + 2, 2 * j:2 * j + 2].mean())


@pytest.mark.parametrize("shape, factor", [((5, 7), 3), ((60, 108), 2), ((1, 9), 4), ((1, 1), 5), ((4, 4), 4)])
def test_pooled_shape(shape, factor):
    out = smooth_and_downsample(np.ones(shape), sigma=1.0, factor=factor)
    assert out.shape == (math.ceil(shape[0] / factor), math.ceil(shape[1] / factor))


@pytest.mark.parametrize("name, grid, expected", [
    ("constant", np.full((4, 5), 2.5), np.full((2, 3), 2.5)),
    ("all zero", np.zeros((4, 5)), np.zeros((2, 3))),
    ("single cell", np.array([[7.0]]), np.array([[7.0]])),
    ("1xN", np.array([[1.0, 1.0, 1.0]]), np.array([[1.0, 1.0]])),
    ("negative", np.full((3, 3), -1.0), np.full((2, 2), -1.0)),
])
def test_degenerate_maps_stay_finite(name, grid, expected):
    out = smooth_and_downsample(grid, sigma=1.0, factor=2)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_negative_values_keep_their_order():
    grid = -np.arange(16, dtype=np.float64).reshape(4, 4)
    out = smooth_and_downsample(grid, sigma=0.5, factor=2)
    assert out[0, 0] > out[0, 1] > out[1, 1]


@pytest.mark.parametrize("kwargs, match", [
    (dict(grid=np.zeros(4)), "2-D"),
    (dict(grid=np.zeros((0, 3))), "non-empty"),
    (dict(grid=np.array([[1.0, np.nan]])), "NaN"),
    (dict(sigma=-1.0), "sigma"),
    (dict(sigma=float("inf")), "sigma"),
    (dict(factor=0), "factor"),
    (dict(factor=1.5), "factor"),
])
def test_bad_input(kwargs, match):
    args = dict(grid=np.ones((3, 3)), sigma=1.0, factor=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        smooth_and_downsample(**args)


def test_geometry_factor_one_is_unchanged():
    geometry = GridGeometry.uniform((640, 480), (4, 5))
    assert downsample_geometry(geometry, 1) is geometry


def test_pooled_geometry_tiles_the_same_area():
    geometry = GridGeometry.uniform((100, 70), (7, 10))
    pooled = downsample_geometry(geometry, 3)
    boxes = pooled.cell_boxes
    assert pooled.grid_shape == (3, 4) and pooled.image_size == (100, 70)
    # partial last block (2, 3): source row 6, col 9 -> its own cell box
    np.testing.assert_allclose(boxes[2, 3], geometry.cell_boxes[6, 9])
    # block (1, 2): rows 3-5, cols 6-8 -> x 60..90, y 30..60
    np.testing.assert_allclose(boxes[1, 2], [60, 30, 90, 60])
    areas = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    assert areas.sum() == pytest.approx(100 * 70)
    # neighbours share edges exactly: a partition of the image, no overlap, no gap
    np.testing.assert_allclose(boxes[:, 1:, 0], boxes[:, :-1, 2])
    np.testing.assert_allclose(boxes[1:, :, 1], boxes[:-1, :, 3])
    np.testing.assert_allclose([boxes[..., 0].min(), boxes[..., 1].min(), boxes[..., 2].max(), boxes[..., 3].max()],
                               [0, 0, 100, 70])


def test_pooled_geometry_of_padded_grid():
    # LLaVA-1.5 style pad to square: a 200x100 image, the grid covers y in [-50, 150)
    geometry = GridGeometry.uniform((200, 100), (4, 4), covered=(0, -50, 200, 150))
    pooled = downsample_geometry(geometry, 2)
    np.testing.assert_allclose(pooled.cell_boxes[0, 0], [0, -50, 100, 50])
    np.testing.assert_allclose(pooled.cell_boxes[1, 1], [100, 50, 200, 150])


def test_geometry_rejects_bad_factor():
    with pytest.raises(ValueError, match="factor"):
        downsample_geometry(GridGeometry.uniform((10, 10), (2, 2)), 0)
