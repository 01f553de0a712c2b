"""ROI recall (Tab. 3, Fig. 4): the overlap rule, which ROIs count, several targets."""

import pytest

from focus_eval.recall import add_recall, gt_coverage, roi_recall
from focus_eval.trace import RoiTrace, TargetTrace, Trace


@pytest.mark.parametrize("roi, gt, coverage", [
    ((0, 0, 100, 100), (10, 10, 20, 20), 1.0),  # the ROI shows the whole object (IoU would be 0.01)
    ((0, 0, 15, 100), (10, 10, 20, 20), 0.5),  # exactly half of it: a hit (inclusive)
    ((0, 0, 14, 100), (10, 10, 20, 20), 0.4),
    ((0, 0, 15, 15), (10, 10, 20, 20), 0.25),  # a corner
    ((20, 0, 40, 40), (10, 10, 20, 20), 0.0),  # touching edges share no area
    ((0, 0, 10, 10), (5, 5, 5, 9), 0.0),  # an empty GT box
    ((0.0, 0.0, 12.5, 30.0), (10.0, 10.0, 15.0, 20.0), 0.5),  # float boxes (V* has some)
])
def test_coverage_is_intersection_over_the_gt_area(roi, gt, coverage):
    assert gt_coverage(roi, gt) == pytest.approx(coverage)


def test_recall_is_the_share_of_gt_boxes_hit_by_some_roi():
    gts = [(10, 10, 20, 20), (100, 100, 110, 110)]
    assert roi_recall(gts, [(0, 0, 15, 100)]) == 0.5  # the first hit at exactly 50 %, the second missed
    assert roi_recall(gts, [(0, 0, 14, 100)]) == 0.0
    assert roi_recall(gts, [(0, 0, 15, 100), (90, 90, 200, 200)]) == 1.0
    assert roi_recall(gts, [(0, 0, 200, 200)]) == 1.0  # one ROI may hit several objects
    assert roi_recall(gts, []) == 0.0
    assert roi_recall([], [(0, 0, 5, 5)]) is None


def _trace(method="focus"):
    """Two targets; ROI boxes chosen so that each reading gives a different recall of the GT."""
    first = TargetTrace(name="cup", all_instances=False, rois=[
        RoiTrace([0, 0], 1.0, [0, 0, 1, 1], [0, 0, 50, 50], confidence=0.9),  # checked and chosen: hits GT 1
        RoiTrace([1, 1], 0.9, [1, 1, 2, 2], [200, 200, 300, 300], confidence=-0.2),  # checked: hits GT 2
        RoiTrace([2, 2], 0.8, [2, 2, 3, 3], [400, 400, 500, 500], confidence=None),  # never checked: hits GT 3
    ], order=[0, 1, 2], chosen=[0])
    second = TargetTrace(name="plate", all_instances=False, rois=[
        RoiTrace([0, 0], 1.0, [0, 0, 1, 1], [600, 600, 700, 700], confidence=None),  # chosen unchecked (ranking off)
    ], order=[0], chosen=[0])
    trace = Trace(question="q", prompt="q", image_size=[1000, 1000], config={}, method=method)
    trace.targets = [first, second]
    return trace


def test_the_three_readings_of_which_rois_count():
    gts = [(10, 10, 40, 40), (210, 210, 240, 240), (410, 410, 440, 440), (610, 610, 640, 640),
           (900, 900, 950, 950)]
    trace = _trace()
    add_recall(trace, gts, ["cup", "saucer", "spoon", "plate", "fork"])
    assert trace.roi_recall == 3 / 5  # checked or chosen: GT 1, 2 and 4
    assert trace.roi_recall_proposed == 4 / 5  # every proposed ROI: also GT 3
    assert trace.roi_recall_chosen == 2 / 5  # the answer's ROIs: GT 1 and 4
    assert trace.gt_boxes[0] == [10.0, 10.0, 40.0, 40.0] and trace.gt_names[3] == "plate"
    again = Trace.from_json(trace.to_json())
    assert (again.roi_recall, again.gt_boxes) == (trace.roi_recall, trace.gt_boxes)


def test_no_boxes_vanilla_and_no_rois():
    trace = _trace()
    add_recall(trace, [])
    assert trace.roi_recall is None and trace.roi_recall_proposed is None
    vanilla = _trace(method="vanilla")
    vanilla.targets = []
    add_recall(vanilla, [(0, 0, 10, 10)])
    assert vanilla.roi_recall is None and vanilla.gt_boxes == [[0.0, 0.0, 10.0, 10.0]]
    nothing = _trace()
    nothing.targets = []  # FOCUS found no target: answered on the full image, nothing searched
    add_recall(nothing, [(0, 0, 10, 10)])
    assert nothing.roi_recall == 0.0 and nothing.roi_recall_chosen == 0.0
