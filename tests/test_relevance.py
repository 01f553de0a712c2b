import math
import warnings

import pytest
import torch

from fig7_literal import fig7_relevance_map
from focus_eval.methods.focus.relevance import DegenerateRelevanceWarning, object_relevance_map, random_relevance_map

MODES = ("target_row", "column")


def realistic_values(layers, heads, seq, dim, seed):
    """Random cache with a shared direction per (layer, head), as real value vectors have;
    without it target row sums of pure noise are <= 0 about half the time."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(layers, heads, seq, dim, generator=g)
    shared = torch.nn.functional.normalize(torch.randn(layers, heads, 1, dim, generator=g), dim=-1)
    return noise + 1.5 * math.sqrt(dim) * shared


def literal_normalised(values, targets, visual, layers, mode):
    reference = fig7_relevance_map(values, targets, visual, layers, mode)
    return reference / reference.sum()


# (layers in cache, selected layers, heads, seq, dim, targets, visual)
CASES = {
    "single target, single layer, single head": (1, [0], 1, 12, 4, [11], list(range(2, 10))),
    "several heads, targets after the visual block": (5, [2, 3, 4], 4, 50, 16, [44, 45, 47], list(range(3, 40))),
    "targets before the visual block": (3, [0, 1, 2], 2, 30, 8, [1, 2], list(range(5, 30))),
    "unsorted non-contiguous visual positions": (4, [1, 2], 3, 60, 8, [55, 57], [40, 3, 17, 9, 33, 21, 8, 50, 12]),
    "target inside the visual block": (2, [0, 1], 2, 20, 4, [6], [2, 4, 6, 8, 10]),
}


@pytest.mark.filterwarnings("error::focus_eval.methods.focus.relevance.DegenerateRelevanceWarning")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(CASES))
def test_matches_literal_fig7(case, mode):
    layers_total, selected, heads, seq, dim, targets, visual = CASES[case]
    values = realistic_values(layers_total, heads, seq, dim, seed=len(case))
    targets, visual = torch.tensor(targets), torch.tensor(visual)
    reference = literal_normalised(values, targets, visual, selected, mode)
    out = object_relevance_map(values[selected], targets, visual, row_normalization=mode)
    assert out.dtype == torch.float32 and out.shape == visual.shape
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-8)
    assert out.sum().item() == pytest.approx(1.0, abs=1e-6)


def test_default_is_the_literal_line_of_fig7():
    # Fig. 7's `X_layer /= X_layer.sum(dim=-1)` as PyTorch broadcasts it: the function's and the
    # config's default (README, config.py say why).
    from focus_eval.config import FocusConfig, load_config

    values = realistic_values(3, 2, 40, 8, seed=3)
    targets, visual = torch.tensor([37, 38]), torch.arange(2, 30)
    reference = fig7_relevance_map(values, targets, visual, range(3))
    torch.testing.assert_close(object_relevance_map(values, targets, visual), reference / reference.sum())
    assert FocusConfig().row_normalization == "column"
    assert {load_config(family).row_normalization for family in ("llava_1_5", "llava_onevision", "qwen2_5_vl")} == {"column"}


def test_modes_differ():
    values = realistic_values(2, 2, 30, 8, seed=1)
    targets, visual = torch.tensor([28, 29]), torch.arange(20)
    a = object_relevance_map(values, targets, visual, row_normalization="target_row")
    b = object_relevance_map(values, targets, visual, row_normalization="column")
    assert not torch.allclose(a, b, rtol=1e-3)


def test_hand_computed_single_layer_single_head():
    # One layer, one head, 2-d vectors; tokens 0-2 visual, token 3 the target.
    #   a = (1, 0), b = (0, 1), c = (3, 4) -> unit (0.6, 0.8), t = (0, 2) -> unit (0, 1)
    # cos(t, .) = [0, 1, 0.8, 1]; target row of (cos + I) / 2 = [0, 0.5, 0.4, 1], sum 1.9.
    # target_row: visual part [0, 0.5, 0.4] / 1.9, then / its sum 0.9 / 1.9 -> [0, 5/9, 4/9].
    # column: divide by the row sums of a, b, c:
    #   cos(a, .) = [1, 0, 0.6, 0] -> (1.6 + 1) / 2 = 1.3
    #   cos(b, .) = [0, 1, 0.8, 1] -> (2.8 + 1) / 2 = 1.9
    #   cos(c, .) = [0.6, 0.8, 1, 0.8] -> (3.2 + 1) / 2 = 2.1
    #   [0, 0.5 / 1.9, 0.4 / 2.1] = [0, 5/19, 4/21], sum 181/399 -> [0, 105/181, 76/181].
    values = torch.tensor([[[[1.0, 0.0], [0.0, 1.0], [3.0, 4.0], [0.0, 2.0]]]])
    targets, visual = torch.tensor([3]), torch.tensor([0, 1, 2])
    out = object_relevance_map(values, targets, visual, row_normalization="target_row")
    torch.testing.assert_close(out, torch.tensor([0.0, 5 / 9, 4 / 9]))
    out = object_relevance_map(values, targets, visual, row_normalization="column")
    torch.testing.assert_close(out, torch.tensor([0.0, 105 / 181, 76 / 181]))


def test_hand_computed_two_targets_multiply():
    # Tokens a, b, c as above (visual), t1 = (0, 2) -> (0, 1), t2 = (4, 3) -> (0.8, 0.6).
    # t1 on visual: (cos / 2) = [0, 0.5, 0.4] -> [0, 5/9, 4/9]
    # t2 on visual: cos = [0.8, 0.6, 0.96] -> [0.4, 0.3, 0.48] -> / 1.18 -> [40, 30, 48] / 118
    # product [0, 150, 192] / 1062 -> [0, 25/57, 32/57]
    values = torch.tensor([[[[1.0, 0.0], [0.0, 1.0], [3.0, 4.0], [0.0, 2.0], [4.0, 3.0]]]])
    out = object_relevance_map(values, torch.tensor([3, 4]), torch.tensor([0, 1, 2]), row_normalization="target_row")
    torch.testing.assert_close(out, torch.tensor([0.0, 25 / 57, 32 / 57]))


def test_many_targets_do_not_underflow():
    # 30 factors of about 1/300 underflow float32 (1e-74); renormalising after each does not.
    values = realistic_values(2, 2, 340, 8, seed=3)
    targets, visual = torch.arange(305, 335), torch.arange(300)
    raw = fig7_relevance_map(values, targets, visual, [0, 1])
    assert raw.abs().max().item() < 1e-38  # the literal product is (sub)normal-tiny or zero
    out = object_relevance_map(values, targets, visual)
    assert torch.isfinite(out).all() and out.sum().item() == pytest.approx(1.0, abs=1e-5)
    # float64 reference: product of the single-target literal maps
    expected = torch.ones(300, dtype=torch.float64)
    for t in targets:
        expected *= literal_normalised(values, t[None], visual, [0, 1], "column").double()
    expected /= expected.sum()
    torch.testing.assert_close(out.double(), expected, rtol=2e-4, atol=1e-9)


def test_bf16_input_is_upcast_per_layer_and_left_untouched():
    values = realistic_values(3, 2, 40, 16, seed=4).to(torch.bfloat16)
    before = values.clone()
    targets, visual = torch.tensor([35, 36]), torch.arange(30)
    out = object_relevance_map(values, targets, visual)
    assert out.dtype == torch.float32
    assert torch.equal(out, object_relevance_map(values.float(), targets, visual))
    assert torch.equal(values, before)


def test_float32_input_is_not_modified():
    values = realistic_values(2, 2, 30, 8, seed=5)
    before = values.clone()
    object_relevance_map(values, torch.tensor([25]), torch.arange(20), row_normalization="column")
    assert torch.equal(values, before)


def test_non_contiguous_values():
    values = realistic_values(3, 2, 30, 8, seed=6)
    strided = values.transpose(0, 1).contiguous().transpose(0, 1)  # same values, other strides
    assert not strided.is_contiguous()
    targets, visual = torch.tensor([25, 27]), torch.arange(4, 24)
    torch.testing.assert_close(object_relevance_map(strided, targets, visual),
                               object_relevance_map(values, targets, visual), rtol=0, atol=0)


def test_keys_go_through_the_same_computation():
    # K-K ablation: the adapter passes RoPE-free keys in place of values.
    values = realistic_values(2, 2, 30, 8, seed=7)
    keys = realistic_values(2, 2, 30, 8, seed=8)
    targets, visual = torch.tensor([26, 27]), torch.arange(20)
    from_keys = object_relevance_map(keys, targets, visual)
    torch.testing.assert_close(from_keys, literal_normalised(keys, targets, visual, [0, 1], "column"),
                               rtol=1e-5, atol=1e-8)
    assert not torch.allclose(from_keys, object_relevance_map(values, targets, visual), rtol=1e-3)


def test_never_materialises_seq_by_seq():
    # seq = 200k: a [seq, seq] float32 matrix would need 160 GB, [V, seq] 80 GB.
    seq = 200_000
    values = realistic_values(1, 1, seq, 2, seed=9)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = object_relevance_map(values, torch.tensor([seq - 1]), torch.arange(100_000))
    assert out.shape == (100_000,) and out.sum().item() == pytest.approx(1.0, abs=1e-4)
    # some of 100k noisy image tokens are anti-similar to the sequence: they alone get no share
    dropped = int((out == 0).sum())
    assert dropped > 0 and [str(w.message) for w in caught] == [
        f"layer 0: {dropped} of 100000 visual row sums are <= 0 or non-finite; those image tokens get no share in this layer"]
    assert out.max() > out.min()


def degenerate(values, targets, visual, mode="target_row"):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = object_relevance_map(values, torch.tensor(targets), torch.tensor(visual), row_normalization=mode)
    messages = [str(w.message) for w in caught if issubclass(w.category, DegenerateRelevanceWarning)]
    assert len(messages) == 1
    assert torch.equal(out, torch.full((len(visual),), 1 / len(visual)))
    return messages[0]


def test_negative_target_row_sum_gives_uniform_map():
    # every token is +u, the target is -u: its row is [-1/2, ..., -1/2, 1 (self)], sum < 0
    values = torch.ones(1, 1, 6, 2)
    values[0, 0, 5] = -1.0
    assert "target row sum" in degenerate(values, [5], [0, 1, 2, 3])


def test_negative_visual_row_sum_drops_that_token_alone_in_column_mode():
    # visual token 0 is anti-aligned with the rest of a realistic cache: its row sum is < 0
    values = realistic_values(1, 2, 12, 8, seed=4)
    values[0, :, 0] = -values[0, :, 1:].mean(dim=1) * 10
    targets, visual = torch.tensor([11]), torch.tensor([0, 1, 2, 3, 4, 5])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = object_relevance_map(values, targets, visual, row_normalization="column")
    messages = [str(w.message) for w in caught if issubclass(w.category, DegenerateRelevanceWarning)]
    assert messages == [("layer 0: 1 of 6 visual row sums are <= 0 or non-finite; "
                         "those image tokens get no share in this layer")]
    # one layer, one target: the other tokens keep Fig. 7's literal entries, renormalised
    literal = fig7_relevance_map(values, targets, visual, [0])
    assert out[0].item() == 0.0
    torch.testing.assert_close(out[1:], literal[1:] / literal[1:].sum())


def test_every_visual_row_sum_negative_gives_uniform_map_in_column_mode():
    # image tokens 0, 1 are -u, the eight others +u: an image row sums to (2 - 8 + 1) / 2 < 0
    values = torch.ones(1, 1, 10, 2)
    values[0, 0, :2] = -1.0
    assert "every visual row sum" in degenerate(values, [9], [0, 1], mode="column")


def test_product_summing_to_negative_gives_uniform_map():
    # 2-d unit vectors by angle: visual v1 at 0 deg, v2 at 120 deg; t1 at -20 deg, t2 at 140 deg.
    # t1 on (v1, v2): (cos 20, cos 140) = (0.94, -0.77), sum > 0; t2: (-0.77, 0.94), sum > 0.
    # Both entries of the product are negative: the product's sum is < 0.
    angles = torch.deg2rad(torch.tensor([0.0, 120.0, -20.0, 140.0]))
    values = torch.stack([angles.cos(), angles.sin()], dim=-1)[None, None]
    assert "product" in degenerate(values, [2, 3], [0, 1])


def test_nan_in_cache_gives_uniform_map():
    values = realistic_values(1, 1, 10, 4, seed=10)
    values[0, 0, 3] = float("nan")
    degenerate(values, [9], [0, 1, 2, 3, 4])


@pytest.mark.parametrize("kwargs, match", [
    (dict(values=torch.zeros(2, 3, 4)), "values must be"),
    (dict(values=torch.zeros(1, 1, 10, 4, dtype=torch.long)), "values must be"),
    (dict(target_positions=torch.tensor([10])), r"target_positions must lie in \[0, 10\)"),
    (dict(visual_positions=torch.tensor([-1, 2])), "visual_positions must lie"),
    (dict(visual_positions=torch.tensor([1.0, 2.0])), "integer indices"),
    (dict(visual_positions=torch.tensor([], dtype=torch.long)), "non-empty 1-D"),
    (dict(target_positions=torch.tensor([[9]])), "non-empty 1-D"),
    (dict(visual_positions=torch.tensor([1, 2, 1])), "repeats"),
    (dict(row_normalization="rows"), "row_normalization"),
])
def test_bad_input_raises_value_error(kwargs, match):
    args = dict(values=torch.ones(1, 1, 10, 4), target_positions=torch.tensor([9]),
                visual_positions=torch.tensor([0, 1, 2]))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        object_relevance_map(**args)


def test_random_map_deterministic_per_seed_and_different_across_seeds():
    a = random_relevance_map(100, seed=3)
    assert a.dtype == torch.float32 and a.shape == (100,)
    assert (a > 0).all() and a.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(a, random_relevance_map(100, seed=3))
    assert not torch.allclose(a, random_relevance_map(100, seed=4))
    assert a.std().item() > 0.1 / 100  # not a constant map


def test_random_map_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    random_relevance_map(10, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_random_map_rejects_empty():
    with pytest.raises(ValueError, match="num_visual"):
        random_relevance_map(0, seed=0)


def test_single_visual_token():
    values = realistic_values(1, 2, 5, 4, seed=11)
    out = object_relevance_map(values, torch.tensor([4]), torch.tensor([2]))
    assert out.tolist() == [1.0]
    assert math.isclose(random_relevance_map(1, seed=5).item(), 1.0)
