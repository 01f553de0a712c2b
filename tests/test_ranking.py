import math

import pytest
import torch

from focus_eval.methods.focus.proposals import ROI
from focus_eval.methods.focus.ranking import Ranking, existence_confidence, rank_rois, select_type2


def rois(n):
    return [ROI(anchor=(i, 0), anchor_score=float(n - i), cells=(i, 0, i + 1, 1), box=(0, i, 1, i + 1))
            for i in range(n)]


class FakeCheck:
    """Confidence per ROI row (anchor[0]); records every call's batch."""

    def __init__(self, confidences):
        self.confidences = confidences
        self.calls = []

    def __call__(self, batch):
        self.calls.append([roi.anchor[0] for roi in batch])
        return [self.confidences[roi.anchor[0]] for roi in batch]


def test_eq5_hand_values():
    # softmax([a, b])[0] = 1 / (1 + e^(b - a)); c = 2 * that - 1
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0], [0.0, math.log(3.0)], [50.0, -50.0], [2.0, 1.0]])
    expected = torch.tensor([0.0, 0.5, -0.5, 1.0, 2 / (1 + math.exp(-1)) - 1])
    torch.testing.assert_close(existence_confidence(logits), expected)


def test_eq5_shapes_and_dtypes():
    assert existence_confidence(torch.tensor([1.0, 1.0])).shape == ()
    out = existence_confidence(torch.zeros(2, 3, 2, dtype=torch.bfloat16))
    assert out.shape == (2, 3) and out.dtype == torch.float32
    # only the difference of the logits matters
    torch.testing.assert_close(existence_confidence(torch.tensor([3.0, 1.0])),
                               existence_confidence(torch.tensor([102.0, 100.0])))


@pytest.mark.parametrize("logits, match", [
    (torch.zeros(3), r"\[\.\.\., 2\]"), (torch.tensor(1.0), r"\[\.\.\., 2\]"),
    (torch.tensor([float("nan"), 0.0]), "NaN"),
])
def test_eq5_bad_input(logits, match):
    with pytest.raises(ValueError, match=match):
        existence_confidence(logits)


def test_top_n_steps_in_one_call_and_reordered():
    check = FakeCheck([-0.2, 0.7, 0.1, 0.9, 0.5, 0.3])
    ranking = rank_rois(rois(6), check, n_steps=4, overrun=True)
    assert check.calls == [[0, 1, 2, 3]]  # a "Yes" among them: no overrun
    assert ranking.order == [3, 1, 2, 0, 4, 5]
    assert ranking.confidences == [-0.2, 0.7, 0.1, 0.9, None, None]
    assert (ranking.checks, ranking.batches) == (4, 1)


def test_overrun_stops_exactly_at_the_first_yes():
    check = FakeCheck([-0.9, -0.8, -0.1, -0.5, 0.0, 0.8, 0.9])
    ranking = rank_rois(rois(7), check, n_steps=2, overrun=True)
    # c = 0 (l_yes == l_no) counts as a "Yes": ROI 4 ends the overrun, 5 and 6 are never checked
    assert check.calls == [[0, 1], [2], [3], [4]]
    assert (ranking.checks, ranking.batches) == (5, 4)
    assert ranking.order == [4, 2, 3, 1, 0, 5, 6]
    assert ranking.confidences[5:] == [None, None]


def test_overrun_bounded_by_the_proposals():
    check = FakeCheck([-0.5, -0.6, -0.7])
    ranking = rank_rois(rois(3), check, n_steps=1, overrun=True)
    assert check.calls == [[0], [1], [2]]
    assert (ranking.checks, ranking.batches) == (3, 3)
    assert ranking.order == [0, 1, 2]


def test_no_overrun_never_exceeds_n_steps():
    check = FakeCheck([-0.9] * 10)
    ranking = rank_rois(rois(10), check, n_steps=3, overrun=False)
    assert check.calls == [[0, 1, 2]]
    assert (ranking.checks, ranking.batches) == (3, 1)


def test_single_roi_without_overrun_is_not_checked():
    for n_steps, n in [(1, 5), (4, 1)]:
        check = FakeCheck([0.3] * n)
        ranking = rank_rois(rois(n), check, n_steps=n_steps, overrun=False)
        assert check.calls == []
        assert ranking == Ranking(confidences=[None] * n, order=list(range(n)), checks=0, batches=0)


def test_single_roi_with_overrun_is_checked():
    check = FakeCheck([0.3, 0.9])
    ranking = rank_rois(rois(2), check, n_steps=1, overrun=True)
    assert check.calls == [[0]]
    assert ranking.order == [0, 1] and ranking.confidences == [0.3, None]


def test_n_steps_beyond_the_proposals():
    check = FakeCheck([0.1, 0.4])
    ranking = rank_rois(rois(2), check, n_steps=8, overrun=True)
    assert check.calls == [[0, 1]] and ranking.order == [1, 0]


def test_ties_keep_anchor_rank():
    check = FakeCheck([0.5, 0.8, 0.5, 0.8])
    ranking = rank_rois(rois(4), check, n_steps=4, overrun=False)
    assert ranking.order == [1, 3, 0, 2]


def test_empty_input_makes_no_call():
    check = FakeCheck([])
    assert rank_rois([], check, n_steps=3, overrun=True) == Ranking([], [], 0, 0)
    assert select_type2([], check, threshold=0.5, batch_size=4) == Ranking([], [], 0, 0)
    assert check.calls == []


def test_type2_checks_everything_in_batches():
    check = FakeCheck([0.6, 0.2, 0.9, 0.5, 0.7, -1.0, 0.51])
    ranking = select_type2(rois(7), check, threshold=0.5, batch_size=3)
    assert check.calls == [[0, 1, 2], [3, 4, 5], [6]]
    assert (ranking.checks, ranking.batches) == (7, 3)
    assert ranking.order == [2, 4, 0, 6, 3, 1, 5]
    assert ranking.selected == [2, 4, 0, 6]  # strictly above 0.5: ROI 3 (exactly 0.5) is out


def test_bad_check_results():
    with pytest.raises(ValueError, match="returned 1 confidences for 2"):
        rank_rois(rois(2), lambda batch: [0.1], n_steps=2, overrun=False)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        rank_rois(rois(2), lambda batch: [0.1, 1.5], n_steps=2, overrun=False)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        select_type2(rois(2), lambda batch: [float("nan")] * len(batch), threshold=0.5, batch_size=2)


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match="n_steps"):
        rank_rois(rois(2), FakeCheck([0.0, 0.0]), n_steps=0, overrun=True)
    with pytest.raises(ValueError, match="batch_size"):
        select_type2(rois(2), FakeCheck([0.0, 0.0]), threshold=0.5, batch_size=0)
