import numpy as np
import pytest

from focus_eval.config import FocusConfig
from focus_eval.methods.focus.proposals import (ROI, cell_iou, cells_in_image, cells_to_box, expand_roi, expansion_scores, nms,
                                  propose_rois, relevance_scores, select_anchors, symmetric_roi)
from focus_eval.protocol import GridGeometry

# Hand-worked map (values / 9 are the min-max normalised scores):
#        c0 c1 c2 c3 c4
#   r0:   9  8  0  0  0
#   r1:   7  6  0  0  1
#   r2:   0  0  2  3  0
#   r3:   0  0  3  5  4
#   r4:   0  0  0  4  4
HAND = np.array([
    [9, 8, 0, 0, 0],
    [7, 6, 0, 0, 1],
    [0, 0, 2, 3, 0],
    [0, 0, 3, 5, 4],
    [0, 0, 0, 4, 4],
], dtype=np.float64)
HAND_GEOMETRY = GridGeometry.uniform((500, 500), (5, 5))  # 100 px cells


def config(**overrides):
    base = dict(k=3, s_min=1, s_max=3, s_dist=2.0, expansion_threshold=0.5, nms_threshold=0.3,
                anchor_selection="greedy", expansion_reference="global")
    base.update(overrides)
    return FocusConfig(**base)


def test_hand_map_greedy_global():
    # Walk by value: (0,0)=9 kept; (0,1), (1,0), (1,1) within 2 of it; (3,3)=5 kept (sqrt 18);
    # the 4s, 3s and 2 are all within sqrt 2 of (3,3); (1,4)=1: sqrt 17 and sqrt 5 away -> kept, k=3.
    # Expansion 1 -> 3, global threshold 0.5 on value / 9:
    #   (0,0): 3x3 clipped to rows 0-1, cols 0-1: (9+8+7+6)/4/9 = 0.83 -> accepted, cells (0,0,2,2)
    #   (3,3): rows 2-4, cols 2-4: 25/9/9 = 0.31 -> rejected, (3,3,4,4)
    #   (1,4): rows 0-2, cols 3-4: 4/6/9 = 0.07 -> rejected, (1,4,2,5)
    # No two overlap: NMS keeps all three.
    rois = propose_rois(HAND, HAND_GEOMETRY, config())
    assert rois == [
        ROI(anchor=(0, 0), anchor_score=9.0, cells=(0, 0, 2, 2), box=(0, 0, 200, 200)),
        ROI(anchor=(3, 3), anchor_score=5.0, cells=(3, 3, 4, 4), box=(300, 300, 400, 400)),
        ROI(anchor=(1, 4), anchor_score=1.0, cells=(1, 4, 2, 5), box=(400, 100, 500, 200)),
    ]


def test_hand_map_anchor_reference():
    # Same anchors; the threshold becomes 0.5 * the anchor's score:
    #   (0,0): 0.83 >= 0.5 * 1 -> (0,0,2,2)
    #   (3,3): 0.31 >= 0.5 * 5/9 = 0.28 -> accepted, (2,2,5,5)
    #   (1,4): 0.074 >= 0.5 * 1/9 = 0.056 -> accepted, rows 0-2, cols 3-4 = (0,3,3,5)
    # IoU((2,2,5,5), (0,3,3,5)) = 2 / (9 + 6 - 2) = 0.15 <= 0.3: all kept.
    rois = propose_rois(HAND, HAND_GEOMETRY, config(expansion_reference="anchor"))
    assert [r.cells for r in rois] == [(0, 0, 2, 2), (2, 2, 5, 5), (0, 3, 3, 5)]
    assert [r.box for r in rois] == [(0, 0, 200, 200), (200, 200, 500, 500), (300, 0, 500, 300)]
    # with an NMS threshold just below 2/13 the third ROI is suppressed by the second
    rois = propose_rois(HAND, HAND_GEOMETRY, config(expansion_reference="anchor", nms_threshold=0.15))
    assert [r.anchor for r in rois] == [(0, 0), (3, 3)]


def test_hand_map_mean_reference():
    # Same greedy anchors; scores are the map / its mean 56/25 = 2.24, so the threshold 0.5 is
    # 1.12 in map units:
    #   (0,0): 7.5 -> (0,0,2,2); (3,3): rows 2-4, cols 2-4: 25/9 = 2.78 -> accepted, (2,2,5,5);
    #   (1,4): rows 0-2, cols 3-4: 4/6 = 0.67 -> rejected, (1,4,2,5). No overlaps.
    np.testing.assert_allclose(expansion_scores(HAND, "mean"), HAND / 2.24)
    rois = propose_rois(HAND, HAND_GEOMETRY, config(expansion_reference="mean"))
    assert [r.cells for r in rois] == [(0, 0, 2, 2), (2, 2, 5, 5), (1, 4, 2, 5)]


def test_expansion_readings_on_a_shifted_map():
    # HAND + 9: min-max ("global", "anchor") is shift invariant, so nothing changes there; the
    # ratios to the max and to the mean move towards 1 and every ROI grows to 3x3:
    #   "max": (3,3): (25/9 + 9)/18 = 0.65, (1,4): (4/6 + 9)/18 = 0.54 >= 0.5.
    shifted = HAND + 9.0
    assert [r.cells for r in propose_rois(shifted, HAND_GEOMETRY, config())] == [(0, 0, 2, 2), (3, 3, 4, 4),
                                                                                 (1, 4, 2, 5)]
    for reference in ("max", "mean"):
        rois = propose_rois(shifted, HAND_GEOMETRY, config(expansion_reference=reference))
        assert [r.cells for r in rois] == [(0, 0, 2, 2), (2, 2, 5, 5), (0, 3, 3, 5)], reference
    np.testing.assert_allclose(expansion_scores(shifted, "max"), shifted / 18)


def test_expansion_scores_of_maps_without_a_positive_scale_are_zero():
    assert not expansion_scores(np.zeros((2, 2)), "mean").any()
    assert not expansion_scores(np.array([[-1.0, 0.0]]), "max").any()
    assert not expansion_scores(np.array([[-3.0, 1.0]]), "mean").any()  # mean -1
    with pytest.raises(ValueError, match="expansion reference"):
        expansion_scores(np.ones((2, 2)), "median")


def test_defaults_are_the_literal_anchors_and_the_mean_reference():
    # Sec. 3.3 / A.5: top-k anchors, then the too close ones discarded; Table 12: see expansion_scores
    assert FocusConfig().anchor_selection == "topk_then_filter"
    assert FocusConfig().expansion_reference == "mean"


def test_hand_map_topk_then_filter():
    # The 3 best cells are (0,0), (0,1), (1,0); the last two lie within 2 of (0,0): one anchor.
    rois = propose_rois(HAND, HAND_GEOMETRY, config(anchor_selection="topk_then_filter"))
    assert [r.anchor for r in rois] == [(0, 0)]


def test_hand_map_nms_suppresses_overlaps():
    # s_dist = 1: anchors (0,0), (0,1), (1,0). Expanded (global):
    #   (0,0): (0,0,2,2) mean 30/4/9 = 0.83; (0,1): (0,0,2,3) 30/6/9 = 0.56; (1,0): (0,0,3,2) 0.56.
    # IoU of either later ROI with (0,0,2,2) is 4/6 > 0.3: both suppressed.
    assert select_anchors(HAND, k=3, s_dist=1.0) == [(0, 0), (0, 1), (1, 0)]
    rois = propose_rois(HAND, HAND_GEOMETRY, config(s_dist=1.0))
    assert [(r.anchor, r.cells) for r in rois] == [((0, 0), (0, 0, 2, 2))]
    rois = propose_rois(HAND, HAND_GEOMETRY, config(s_dist=1.0, nms_threshold=0.7))
    assert [r.cells for r in rois] == [(0, 0, 2, 2), (0, 0, 2, 3), (0, 0, 3, 2)]


def test_anchor_distance_boundary_is_inclusive():
    relevance = np.array([[3.0, 2.0, 1.0]])
    assert select_anchors(relevance, k=3, s_dist=2.0) == [(0, 0), (0, 2)]  # distance exactly 2 is kept
    assert select_anchors(relevance, k=3, s_dist=2.01) == [(0, 0)]
    assert select_anchors(relevance, k=3, s_dist=0.0) == [(0, 0), (0, 1), (0, 2)]


def test_greedy_keeps_walking_until_k():
    # greedy finds 2 anchors where topk_then_filter, limited to the 2 best cells, finds 1
    relevance = np.array([[5.0, 4.0, 0.0, 3.0]])
    assert select_anchors(relevance, k=2, s_dist=2.0, mode="greedy") == [(0, 0), (0, 3)]
    assert select_anchors(relevance, k=2, s_dist=2.0, mode="topk_then_filter") == [(0, 0)]


def test_ties_are_row_major():
    relevance = np.ones((3, 3))
    assert select_anchors(relevance, k=9, s_dist=0.0) == [(r, c) for r in range(3) for c in range(3)]
    assert select_anchors(relevance, k=9, s_dist=2.0) == [(0, 0), (0, 2), (2, 0), (2, 2)]


def test_k_larger_than_the_number_of_cells():
    relevance = np.array([[1.0, 4.0], [3.0, 2.0]])
    rois = propose_rois(relevance, GridGeometry.uniform((20, 20), (2, 2)),
                        config(k=50, s_dist=0.0, s_min=1, s_max=1))
    assert [r.anchor for r in rois] == [(0, 1), (1, 0), (1, 1), (0, 0)]
    assert [r.box for r in rois] == [(10, 0, 20, 10), (0, 10, 10, 20), (10, 10, 20, 20), (0, 0, 10, 10)]


def test_symmetric_roi():
    assert symmetric_roi((5, 5), 3, (10, 10)) == (4, 4, 7, 7)
    assert symmetric_roi((5, 5), 4, (10, 10)) == (4, 4, 8, 8)  # even: anchor is the upper-left centre
    assert symmetric_roi((0, 0), 3, (10, 10)) == (0, 0, 2, 2)  # clipped at the top-left border
    assert symmetric_roi((9, 9), 5, (10, 10)) == (7, 7, 10, 10)  # clipped at the bottom-right
    assert symmetric_roi((0, 4), 9, (1, 5)) == (0, 0, 1, 5)


def test_expansion_sizes_end_with_an_odd_step_to_s_max():
    scores = np.ones((12, 12))
    assert expand_roi((6, 6), scores, s_min=3, s_max=6, threshold=0.0) == symmetric_roi((6, 6), 6, (12, 12))
    assert expand_roi((6, 6), scores, s_min=3, s_max=3, threshold=0.0) == (5, 5, 8, 8)


def test_expansion_stops_at_the_first_failure():
    # 9x9 around (4,4): centre 3x3 ones, the ring at distance 2 zeros, the outer rings ones.
    scores = np.ones((9, 9))
    scores[2:7, 2:7] = 0.0
    scores[3:6, 3:6] = 1.0
    # size 5 (rows 2-6): 9 ones / 25 = 0.36; size 7 (rows 1-7): 33 / 49 = 0.67; size 9: 65 / 81 = 0.80
    assert expand_roi((4, 4), scores, s_min=3, s_max=9, threshold=0.5) == (3, 3, 6, 6)
    assert expand_roi((4, 4), scores, s_min=3, s_max=9, threshold=0.3) == (0, 0, 9, 9)


def test_constant_map():
    # Global scores are all 0: no expansion; "anchor": 0 >= 0.5 * 0, full expansion.
    relevance = np.full((6, 6), 0.25)
    geometry = GridGeometry.uniform((60, 60), (6, 6))
    np.testing.assert_array_equal(relevance_scores(relevance), np.zeros((6, 6)))
    rois = propose_rois(relevance, geometry, config(k=4, s_dist=3.0, s_min=1, s_max=3))
    assert [r.anchor for r in rois] == [(0, 0), (0, 3), (3, 0), (3, 3)]
    assert all(r.cells[2] - r.cells[0] == 1 and r.cells[3] - r.cells[1] == 1 for r in rois)
    rois = propose_rois(relevance, geometry, config(k=4, s_dist=3.0, s_min=1, s_max=3, expansion_reference="anchor"))
    assert [r.cells for r in rois] == [(0, 0, 2, 2), (0, 2, 2, 5), (2, 0, 5, 2), (2, 2, 5, 5)]


def test_border_anchors():
    relevance = np.zeros((6, 8))
    relevance[5, 7] = 1.0  # bottom-right corner
    relevance[0, 3] = 0.9  # top edge
    relevance[4, 6] = relevance[5, 6] = relevance[4, 7] = 0.8
    geometry = GridGeometry.uniform((80, 60), (6, 8))
    rois = propose_rois(relevance, geometry, config(k=2, s_dist=3.0, s_min=3, s_max=5))
    # corner: 3x3 clipped to rows 4-5, cols 6-7, mean (1 + 3 * 0.8) / 4 = 0.85; 5x5 -> rows 3-5,
    # cols 5-7: 3.4 / 9 = 0.38 < 0.5 -> stays (4,6,6,8). Top edge: rows 0-1, cols 2-4: 0.9/6 < 0.5.
    assert [(r.anchor, r.cells, r.box) for r in rois] == [
        ((5, 7), (4, 6, 6, 8), (60, 40, 80, 60)),
        ((0, 3), (0, 2, 2, 5), (20, 0, 50, 20)),
    ]


def test_padded_geometry_never_anchors_outside_the_image():
    # 200x100 image padded to a square: the 4x4 grid covers y in [-50, 150), 50 px cells;
    # rows 0 and 3 are padding. The best cells lie in the padding.
    geometry = GridGeometry.uniform((200, 100), (4, 4), covered=(0, -50, 200, 150))
    np.testing.assert_array_equal(cells_in_image(geometry)[:, 0], [False, True, True, False])
    relevance = np.array([
        [9.0, 9.0, 9.0, 9.0],
        [1.0, 2.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 3.0],
        [9.0, 9.0, 9.0, 9.0],
    ])
    rois = propose_rois(relevance, geometry, config(k=5, s_dist=2.0, s_min=3, s_max=3))
    assert [r.anchor for r in rois] == [(2, 3), (1, 1)]
    # (2,3): rows 1-3, cols 2-3 -> y -> [0, 100) after clipping; x 100-200
    assert rois[0].cells == (1, 2, 4, 4) and rois[0].box == (100, 0, 200, 100)
    # (1,1): rows 0-2, cols 0-2 -> y [-50, 100) clipped to [0, 100); IoU with the first 2/13
    assert rois[1].cells == (0, 0, 3, 3) and rois[1].box == (0, 0, 150, 100)


def test_cells_to_box_rounds_outward_and_tolerates_float_noise():
    geometry = GridGeometry.uniform((10, 10), (3, 3))  # 3.33 px cells
    assert cells_to_box((0, 1, 1, 2), geometry) == (3, 0, 7, 4)
    assert cells_to_box((0, 0, 3, 3), geometry) == (0, 0, 10, 10)
    noisy = GridGeometry(image_size=(9, 9), cell_boxes=np.array([[[0.0, 0.0, 3.0000000001, 2.9999999999]]]))
    assert cells_to_box((0, 0, 1, 1), noisy) == (0, 0, 3, 3)


def test_cells_to_box_outside_the_image_is_none():
    geometry = GridGeometry.uniform((100, 50), (4, 2), covered=(0, -25, 100, 75))
    assert cells_to_box((0, 0, 1, 2), geometry) is None  # the top padding row
    assert cells_to_box((0, 0, 2, 2), geometry) == (0, 0, 100, 25)


def test_nms_and_iou():
    assert cell_iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    assert cell_iou((0, 0, 2, 2), (2, 2, 4, 4)) == 0.0
    boxes = [(0, 0, 2, 2), (0, 0, 2, 3), (1, 1, 3, 3), (5, 5, 6, 6)]
    assert nms(boxes, 0.3) == [0, 2, 3]  # IoU(0, 1) = 4/6 > 0.3, IoU(0, 2) = 1/7
    assert nms(boxes, 0.1) == [0, 3]
    assert nms(boxes, 1.0) == [0, 1, 2, 3]
    assert nms([], 0.3) == []


def test_uniform_real_size_geometry():
    # OneVision 1080x1920: 60x108 grid, 17.8 px cells; one hot cell, the rest 0
    geometry = GridGeometry.uniform((1920, 1080), (60, 108))
    relevance = np.zeros((60, 108))
    relevance[30, 54] = 1.0
    # global reading: the 5x5 window of the hot cell averages 1/25 of the peak: stays 3x3
    rois = propose_rois(relevance, geometry, FocusConfig(k=30, s_dist=2.0, expansion_reference="global"))
    assert rois[0].anchor == (30, 54) and rois[0].cells == (29, 53, 32, 56)
    assert rois[0].box == (942, 522, 996, 576)  # x 53 * 17.78 = 942.2 -> 942, 56 * 17.78 = 995.6 -> 996
    # defaults: the window averages 6480/25 times the map's mean: grows to s_max = 5
    rois = propose_rois(relevance, geometry, FocusConfig(k=30, s_dist=2.0))
    assert rois[0].cells == (28, 52, 33, 57) and rois[0].box == (924, 504, 1014, 594)
    # top 30 cells: the hot one and (0,0)..(0,28); every second of those is kept
    assert [r.anchor for r in rois] == [(30, 54)] + [(0, c) for c in range(0, 29, 2)]
    rois = propose_rois(relevance, geometry, FocusConfig(k=30, s_dist=2.0, anchor_selection="greedy"))
    assert len(rois) == 30 and len({r.anchor for r in rois}) == 30


@pytest.mark.parametrize("relevance, match", [
    (np.zeros((2, 3)), "differ"),
    (np.array([[np.nan, 0.0], [0.0, 0.0]]), "NaN"),
    (np.zeros(4), "2-D"),
])
def test_bad_maps(relevance, match):
    with pytest.raises(ValueError, match=match):
        propose_rois(relevance, GridGeometry.uniform((10, 10), (2, 2)), config())


def test_bad_step_arguments():
    with pytest.raises(ValueError, match="mode"):
        select_anchors(np.ones((2, 2)), k=1, s_dist=1.0, mode="nearest")
    with pytest.raises(ValueError, match="s_min"):
        expand_roi((0, 0), np.ones((2, 2)), s_min=3, s_max=2, threshold=0.5)
    with pytest.raises(ValueError, match="size"):
        symmetric_roi((0, 0), 0, (2, 2))
