"""method=vicrop: the one-layer attention probe against the whole model run eager, the window
search on planted maps, tiling and stitching, exact pass counts, and end to end on the tiny
models of all three families."""

import numpy as np
import pytest
import torch
from PIL import Image

from adapter_checks import noise_image
from api_helpers import RED, SIZE, TINY_QUESTION
from fake_adapter import FakeAdapter, scene
from focus_eval import Focus
from focus_eval.config import FocusConfig, load_config
from focus_eval.methods.vicrop.box import RATIOS, Window, best_window, crop_box, window_cells
from focus_eval.methods.vicrop.tiles import TileMap, inside, stitch, tile_boxes, tile_layout
from focus_eval.model_wrappers.attention_probe import PROBE, _last_row_attention, _Probe, probe_last_row
from focus_eval.model_wrappers.flops import measure_flops
from focus_eval.model_wrappers.tiny import FAMILIES
from focus_eval.pipeline import Pipeline
from focus_eval.protocol import GridGeometry
from focus_eval.recall import add_recall

LAYERS = 4  # tiny language models deep enough for layers after the probed one
PROMPT = "What is the color of the red car? Answer the question using a single word or phrase."


@pytest.fixture(scope="module", params=FAMILIES)
def family(request):
    return request.param


def adapter_of(tiny_adapter, family, attn_implementation="sdpa"):
    return tiny_adapter(family, attn_implementation=attn_implementation, text_layers=LAYERS)


def eager_reference(adapter, image, prompt, layer):
    """The official computation: the whole model eager with output_attentions. Returns the last
    row of `layer`'s weights at the grid's tokens [heads, h * w], A * ReLU(dLoss/dA) there, and
    the logits."""
    inputs = adapter.encode([adapter.chat_text(prompt, 1)], [image])
    positions, _ = adapter.visual_layout(inputs, image)
    out = adapter.model(**inputs, position_ids=adapter.position_ids(inputs), output_attentions=True)
    weights = out.attentions[layer]  # [1, heads, seq, seq]
    weights.retain_grad()
    loss = torch.log_softmax(out.logits[0, -1].float(), dim=-1).max()
    loss.backward()
    grad_att = (weights * weights.grad.relu())[0, :, -1]
    return weights[0, :, -1, positions].detach(), grad_att[:, positions].detach(), out.logits.detach()


# --- the attention probe ---------------------------------------------------------------------------


@pytest.mark.parametrize("layer", [0, 1, LAYERS - 1])
def test_probe_equals_whole_model_eager_attention_and_autograd(tiny_adapter, family, layer):
    adapter = adapter_of(tiny_adapter, family)
    eager = adapter_of(tiny_adapter, family, "eager")
    image = noise_image(130, 90)
    rows, grad_rows, _ = eager_reference(eager, image, PROMPT, layer)
    rel = adapter.last_token_attention(image, PROMPT, layer)
    grad = adapter.last_token_attention(image, PROMPT, layer, gradient=True)
    heads = adapter.text_config.num_attention_heads
    assert rel.weights.shape == (heads, rel.geometry.grid_shape[0] * rel.geometry.grid_shape[1]) == rows.shape
    torch.testing.assert_close(rel.weights, rows, atol=1e-7, rtol=1e-5)
    torch.testing.assert_close(grad.weights, grad_rows, atol=1e-9, rtol=1e-4)
    assert grad.weights.abs().max() > 0 and (grad.weights >= 0).all()
    # the geometry is FOCUS's relevance grid
    prefill = adapter.prefill(image, PROMPT, "car", [0])
    np.testing.assert_array_equal(rel.geometry.cell_boxes, prefill.geometry.cell_boxes)


def test_probe_on_an_eager_model_equals_the_sdpa_one(tiny_adapter, family):
    image = noise_image(70, 110)
    sdpa = adapter_of(tiny_adapter, family).last_token_attention(image, PROMPT, 1, gradient=True)
    eager = adapter_of(tiny_adapter, family, "eager").last_token_attention(image, PROMPT, 1, gradient=True)
    torch.testing.assert_close(sdpa.weights, eager.weights, atol=1e-9, rtol=1e-4)


def test_probe_leaves_the_other_layers_and_the_logits_alone(tiny_adapter, family, monkeypatch):
    """Every layer still runs sdpa (the probed one inside the probe), eager never runs, and the
    probe does not change the logits: bit for bit without a gradient, to float error with one."""
    from transformers import AttentionInterface

    adapter = adapter_of(tiny_adapter, family)
    image = noise_image(90, 60)
    inputs = adapter.encode([adapter.chat_text(PROMPT, 1)], [image])
    plain = adapter.forward(inputs).logits
    calls = {"sdpa": [], "probe": []}  # the attention module of every call
    sdpa, probe = AttentionInterface._global_mapping["sdpa"], AttentionInterface._global_mapping[PROBE]

    def counted(name, function):
        def call(module, *args, **kwargs):
            calls[name].append(module)
            return function(module, *args, **kwargs)
        return call

    monkeypatch.setitem(AttentionInterface._global_mapping, PROBE, counted("probe", probe))
    layers = [layer.self_attn for layer in adapter.language_model.layers]
    with probe_last_row(layers[2], gradient=False) as state:
        state.inner = counted("sdpa", state.inner)  # the probed layer's own kernel
        monkeypatch.setitem(AttentionInterface._global_mapping, "sdpa", counted("sdpa", sdpa))
        probed = adapter.forward(inputs).logits
    text_calls = {name: [m for m in modules if any(m is layer for layer in layers)] for name, modules in calls.items()}
    assert [id(m) for m in text_calls["sdpa"]] == [id(layer) for layer in layers]  # the vision tower's calls aside
    assert [id(m) for m in text_calls["probe"]] == [id(layers[2])]
    assert torch.equal(probed, plain)
    with probe_last_row(layers[2], gradient=True) as state:
        with torch.enable_grad():
            gradient_logits = adapter.model(**inputs, position_ids=adapter.position_ids(inputs), logits_to_keep=1).logits
    torch.testing.assert_close(gradient_logits.detach(), plain, atol=1e-5, rtol=1e-5)
    assert state.weights.requires_grad and state.weights.is_leaf


def test_probe_restores_the_layer_and_the_parameters_after_a_failure(tiny_adapter):
    adapter = adapter_of(tiny_adapter, "llava_1_5")
    attention = adapter.language_model.layers[1].self_attn
    config = attention.config
    flags = [p.requires_grad for p in adapter.model.parameters()]

    def explode(features):
        raise RuntimeError("vision failed")

    with adapter.edit_image_features(explode), pytest.raises(RuntimeError, match="vision failed"):
        adapter.last_token_attention(noise_image(50, 50), PROMPT, 1, gradient=True)
    assert attention.config is config and config._attn_implementation == "sdpa"
    assert not hasattr(attention, "focus_eval_probe")
    assert [p.requires_grad for p in adapter.model.parameters()] == flags
    assert adapter.last_token_attention(noise_image(50, 50), PROMPT, 1).weights.isfinite().all()


def test_grad_att_inside_a_callers_inference_mode(tiny_adapter, family):
    adapter = adapter_of(tiny_adapter, family)
    image = noise_image(64, 48)
    plain = adapter.last_token_attention(image, PROMPT, 1, gradient=True).weights
    with torch.inference_mode():
        inside_inference = adapter.last_token_attention(image, PROMPT, 1, gradient=True).weights
    assert torch.equal(plain, inside_inference) and plain.abs().max() > 0


@pytest.mark.parametrize("mask_form", ["none", "bool4d", "float4d", "padding2d"])
def test_last_row_honours_each_mask_format(mask_form):
    """The probe's row equals eager attention's last row (query dtype matmul, additive mask,
    float32 softmax) for every mask format transformers hands an attention function."""
    torch.manual_seed(0)
    batch, heads, kv_heads, seq, dim = 2, 4, 2, 7, 8
    query, key, value = (torch.randn(batch, h, seq, dim) for h in (heads, kv_heads, kv_heads))
    keep = torch.ones(batch, seq, dtype=torch.bool)
    keep[0, :3] = False  # left padding of the first row
    causal = torch.ones(seq, seq, dtype=torch.bool).tril()
    allowed = causal[None, None] & keep[:, None, None, :]  # [b, 1, q, k]
    additive = torch.where(allowed, 0.0, torch.finfo(torch.float32).min)
    masks = {"none": None, "bool4d": allowed, "float4d": additive, "padding2d": keep}
    effective = causal[None, None].expand(batch, 1, seq, seq) if mask_form == "none" else allowed

    def inner(module, q, k, v, mask, scaling, dropout=0.0, **kwargs):
        return torch.zeros(q.shape[0], q.shape[2], q.shape[1], q.shape[3]), None

    module = torch.nn.Module()
    module.focus_eval_probe = _Probe(inner=inner, gradient=False)
    _last_row_attention(module, query, key, value, masks[mask_form], scaling=dim**-0.5)
    keys = key.repeat_interleave(heads // kv_heads, dim=1)
    scores = query @ keys.transpose(2, 3) * dim**-0.5 + torch.where(effective, 0.0, torch.finfo(torch.float32).min)
    expected = torch.softmax(scores, dim=-1)[:, :, -1]  # [b, heads, k]
    torch.testing.assert_close(module.focus_eval_probe.weights, expected)
    if mask_form != "none":
        assert module.focus_eval_probe.weights[0, :, :3].max() < 1e-30  # the padding gets nothing


def test_probe_refuses_a_sliding_window_without_a_4d_mask():
    module = torch.nn.Module()
    module.focus_eval_probe = _Probe(inner=lambda m, q, k, v, mask, **kw: (torch.zeros(1, 3, 2, 4), None),
                                     gradient=False)
    with pytest.raises(NotImplementedError, match="sliding-window"):
        _last_row_attention(module, torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4),
                            None, scaling=0.5, sliding_window=2)


@pytest.mark.parametrize("gradient", [False, True])
def test_probe_cost_matches_measured_flops(tiny_adapter, family, gradient):
    adapter = adapter_of(tiny_adapter, family)
    result, measured = measure_flops(lambda: adapter.last_token_attention(noise_image(80, 60), PROMPT, 1, gradient))
    assert (result.cost.passes, result.cost.batches, result.cost.backward) == (1, 1, int(gradient))
    assert result.cost.flops == measured
    plain = adapter.pass_cost(adapter.encode([adapter.chat_text(PROMPT, 1)], [noise_image(80, 60)]))
    assert result.cost.tokens == plain.tokens
    assert (result.cost.flops > 1.3 * plain.flops) == gradient  # the backward through layers 1..3


# --- the window search ------------------------------------------------------------------------------


def uniform(rows, cols, cell=(10.0, 10.0)):
    return GridGeometry.uniform((int(cols * cell[0]), int(rows * cell[1])), (rows, cols))


def test_a_bright_square_lands_in_the_box():
    grid = np.ones((24, 24))
    grid[5:8, 15:18] = 10.0
    geometry = uniform(24, 24, (14.0, 14.0))  # 336 x 336 px
    window = best_window(grid, (14.0, 14.0), crop_side=56)
    assert window is not None
    row0, col0, row1, col1 = window.cells
    assert row0 <= 5 and 8 <= row1 and col0 <= 15 and 18 <= col1
    x0, y0, x1, y1 = crop_box(window, geometry, 56)
    assert x0 <= 15 * 14 and 18 * 14 <= x1 and y0 <= 5 * 14 and 8 * 14 <= y1


def test_the_ratio_whose_window_fits_the_blob_wins():
    """Cells of 10 px and a 50 px crop side give windows of 5, 6, 7, 8, 9, 10 cells; an 8 x 8
    blob is matched exactly at ratio 1.6 (smaller windows see no edge, larger ones a dull one)."""
    assert [window_cells(50 * r, 10.0, 40) for r in RATIOS] == [5, 6, 7, 8, 9, 10]
    grid = np.zeros((40, 40))
    grid[12:20, 22:30] = 1.0
    window = best_window(grid, (10.0, 10.0), crop_side=50)
    assert window.ratio == 1.6 and window.cells == (12, 22, 20, 30)
    assert window.score == pytest.approx((64 - 56) / 64)  # every neighbour loses one row or column of 8
    assert crop_box(window, uniform(40, 40), 50) == (220, 120, 300, 200)  # an 80 px square on the blob


def test_the_first_maximum_of_the_column_outer_scan_wins_ties():
    grid = np.zeros((24, 24))
    grid[15:18, 2:5] = 1.0  # lower left
    grid[2:5, 15:18] = 1.0  # upper right: same sum, later column
    window = best_window(grid, (10.0, 10.0), crop_side=30)
    assert window.cells == (15, 2, 18, 5)


def test_a_window_covering_the_map_means_the_full_image():
    assert best_window(np.random.RandomState(0).rand(4, 4), (10.0, 10.0), crop_side=40) is None
    # ratio 1 covers 5 of 6 cells; every larger ratio would cover all: ratio 1 is the only candidate
    grid = np.zeros((6, 6))
    grid[0, 0] = 1.0
    window = best_window(grid, (10.0, 10.0), crop_side=50)
    assert (window.ratio, window.cells) == (1.0, (0, 0, 5, 5))


def test_a_map_covered_along_one_axis_slides_along_the_other():
    grid = np.zeros((4, 20))
    grid[:, 12:16] = 1.0
    window = best_window(grid, (10.0, 10.0), crop_side=40)
    assert window.cells == (0, 12, 4, 16)
    assert window.score == pytest.approx((16 - 12) / 16)  # left and right neighbours only


def test_border_windows_average_only_the_neighbours_that_exist():
    grid = np.zeros((10, 10))
    grid[:5, :5] = 1.0
    window = best_window(grid, (10.0, 10.0), crop_side=50)
    assert window.cells == (0, 0, 5, 5)
    assert window.score == pytest.approx((25 - 20) / 25)  # right and below only, both 20
    assert crop_box(window, uniform(10, 10), 50) == (0, 0, 50, 50)


def test_non_square_cells_and_cells_wider_than_the_window():
    grid = np.zeros((20, 20))
    grid[10, 3] = 1.0
    window = best_window(grid, (10.0, 20.0), crop_side=60)  # cells 10 px wide, 20 px high
    assert (window.cells[2] - window.cells[0], window.cells[3] - window.cells[1]) == (3, 6)
    coarse = best_window(grid, (500.0, 500.0), crop_side=224)  # official int() -> 0 cells; here 1
    assert coarse.cells == (10, 3, 11, 4)


def test_crop_box_rounding_and_clamping():
    geometry = uniform(24, 24, (100.0, 50.0))  # 2400 x 1200 px
    right_edge = Window(ratio=1.2, cells=(10, 22, 12, 24), score=1.0)
    assert crop_box(right_edge, geometry, 336) == (2400 - 402, 349, 2400, 751)  # half = 403.2 // 2 = 201
    small = GridGeometry.uniform((300, 200), (24, 24))  # smaller than the 336 px crop
    assert crop_box(Window(1.0, (3, 3, 5, 5), 1.0), small, 336) == (0, 0, 300, 200)


# --- tiles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size, layout", [
    ((2246, 1582), (2, 2)),  # V*Bench's mean size
    ((3840, 2160), (3, 5)),  # HRBench-4K: 15 tiles
    ((7680, 4320), (5, 8)),  # HRBench-8K: 40 tiles
    ((1000, 500), (1, 2)),
    ((500, 4000), (4, 1)),  # tall and narrow: the official int(4 * 500 / 4000) = 0 columns
    ((30, 5000), (5, 1)),
    ((100, 100), (1, 1)),
])
def test_tile_layout(size, layout):
    assert tile_layout(size, 1024) == layout
    boxes = tile_boxes(size, 1024)
    assert len(boxes) == layout[0] * layout[1]
    assert len({(b[2] - b[0], b[3] - b[1]) for b in boxes}) == 1  # one size
    assert all(0 <= b[0] < b[2] <= size[0] and 0 <= b[1] < b[3] <= size[1] for b in boxes)
    covered = np.zeros(size[::-1], dtype=bool)
    for x0, y0, x1, y1 in boxes:
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    assert max(b[3] - b[1] for b in boxes) <= 1024


def test_the_last_tiles_end_at_the_edge():
    boxes = tile_boxes((1001, 1001), 500)  # 3 x 3 tiles of 334 px: the last ones start at 667, not 668
    assert [b[0] for b in boxes[:3]] == [0, 334, 667] and boxes[-1] == (667, 667, 1001, 1001)


def test_inside_keeps_the_cells_centred_in_the_image():
    padded = GridGeometry.uniform((200, 100), (4, 4), covered=(0.0, -50.0, 200.0, 150.0))  # square padding
    assert inside(padded) == (slice(1, 3), slice(0, 4))
    sliver = GridGeometry.uniform((200, 2), (4, 4), covered=(0.0, -99.0, 200.0, 101.0))  # no row centre inside
    assert inside(sliver)[0] == slice(1, 2)  # centres -24 and 26 are as near the middle: the first


def test_stitching_puts_each_tiles_inside_cells_in_place():
    padded = GridGeometry.uniform((200, 100), (4, 4), covered=(0.0, -50.0, 200.0, 150.0))
    tiles = [TileMap(box=(x, y, x + 200, y + 100), grid=np.full((4, 4), float(i)), geometry=padded)
             for i, (x, y) in enumerate([(0, 0), (200, 0), (0, 100), (200, 100)])]
    grid, geometry = stitch(tiles, 2, (400, 200))
    expected = np.block([[np.full((2, 4), 0.0), np.full((2, 4), 1.0)], [np.full((2, 4), 2.0), np.full((2, 4), 3.0)]])
    np.testing.assert_array_equal(grid, expected)
    assert geometry.image_size == (400, 200) and geometry.grid_shape == (4, 8)
    np.testing.assert_array_equal(geometry.cell_boxes[0, 0], [0, 0, 50, 50])
    np.testing.assert_array_equal(geometry.cell_boxes[3, 7], [350, 150, 400, 200])
    other = TileMap(box=(200, 100, 400, 200), grid=np.zeros((3, 3)), geometry=GridGeometry.uniform((200, 100), (3, 3)))
    with pytest.raises(ValueError, match="differ in shape"):
        stitch(tiles[:3] + [other], 2, (400, 200))


# --- the layer ---------------------------------------------------------------------------------


def test_layer_per_family_and_depth():
    expected = {"llava_1_5": ((14, 32, 336), 14, 12), "llava_onevision": ((22, 36, 384), 17, 17),
                "qwen2_5_vl": ((22, 36, 224), 17, 17)}
    for family, (values, at_own, at_28) in expected.items():
        cfg = load_config(family)
        assert (cfg.vicrop_layer, cfg.vicrop_reference_num_layers, cfg.vicrop_crop_side) == values
        assert cfg.vicrop_layer_index(32 if family == "llava_1_5" else 28) == at_own
        assert cfg.vicrop_layer_index(28) == at_28
        assert 0 <= cfg.vicrop_layer_index(1) == 0 and cfg.vicrop_layer_index(LAYERS) < LAYERS
    assert load_config("llava_1_5").vicrop_layer_index(36) == 16
    with pytest.raises(ValueError, match="vicrop_layer"):
        FocusConfig(vicrop_layer=32, vicrop_reference_num_layers=32)


# --- the method on a fake model (planted maps, exact counts) -----------------------------------------


INSTRUCTION = FocusConfig().vicrop_instruction
GENERIC = f"{FocusConfig().vicrop_generic_prompt} {INSTRUCTION}"


def fake_run(adapter=None, **overrides):
    adapter = adapter or FakeAdapter(family="llava_1_5")
    config = load_config("llava_1_5", **{"method": "vicrop", "vicrop_crop_side": 150, **overrides})
    image = scene(SIZE, {"red": [RED]})
    return adapter, Pipeline(adapter, config).answer(image, "What is the colour of the square?\n(A) red (B) blue")


@pytest.mark.parametrize("vicrop_map, fp, bp", [("rel_att", 2, 0), ("grad_att", 1, 1)])
def test_the_crop_shows_the_attended_square_and_counts_are_exact(vicrop_map, fp, bp):
    adapter, result = fake_run(vicrop_map=vicrop_map)
    trace, counters = result.trace, result.trace.counters
    assert (counters.fp, counters.bp, counters.fp_targets, counters.fp_answer) == (fp, bp, 0, 1)
    assert counters.passes == {"targets": 0, "relevance": fp, "proposals": 0, "ranking": 0, "search": 0, "answer": 1}
    assert counters.flops == (fp + 1) * 1.0e9
    assert trace.final_layout == "full+crop" and [im.size for im in result.final_images] == [SIZE, (150, 150)]
    box = trace.final_boxes[1]
    assert box[0] <= RED[0] and box[1] <= RED[1] and RED[2] <= box[2] and RED[3] <= box[3]
    (target,) = trace.targets
    assert target.rois[0].box == box and target.chosen == [0]
    assert np.asarray(target.relevance_map).shape == (12, 16) and np.asarray(target.cell_boxes).shape == (12, 16, 4)
    layer = load_config("llava_1_5").vicrop_layer_index(adapter.num_layers)
    question = f"What is the colour of the square? {INSTRUCTION}"  # the bare question, as the map's prompt
    assert target.existence_prompt == question
    assert [call[1:] for call in adapter.attentions] == (
        [(question, layer, True)] if vicrop_map == "grad_att" else [(question, layer, False), (GENERIC, layer, False)])
    assert adapter.final_calls == [([SIZE, (150, 150)], None, True)]  # both images, no texts
    assert result.answer == "A"
    assert add_recall(trace, [RED])["roi_recall"] == 1.0
    assert add_recall(trace, [(0, 0, 40, 40)])["roi_recall"] == 0.0


@pytest.mark.parametrize("vicrop_map, per_tile", [("rel_att", 2), ("grad_att", 1)])
def test_high_runs_one_map_per_tile(vicrop_map, per_tile):
    adapter, result = fake_run(vicrop_map=vicrop_map, vicrop_high=True, vicrop_tile_side=300)  # 800 x 600: 2 x 2
    counters = result.trace.counters
    assert (counters.fp, counters.bp) == (4 * per_tile, 4 * (per_tile == 1))
    assert {call[0] for call in adapter.attentions} == {(400, 300)}
    target = result.trace.targets[0]
    assert np.asarray(target.relevance_map).shape == (24, 32)
    assert sum(note.startswith("tile ") for note in target.notes) == 4
    box = result.trace.final_boxes[1]
    assert box[0] <= RED[0] and box[1] <= RED[1] and RED[2] <= box[2] and RED[3] <= box[3]


def test_a_whole_map_window_and_a_non_finite_map_crop_the_full_image():
    _, whole = fake_run(vicrop_crop_side=800)
    assert whole.trace.final_boxes == [[0, 0, 800, 600]] * 2 and not whole.trace.targets[0].rois
    assert any("covers the whole" in note for note in whole.trace.targets[0].notes)
    _, infinite = fake_run(FakeAdapter(family="llava_1_5", generic_zero=True))
    assert infinite.trace.final_boxes == [[0, 0, 800, 600]] * 2
    assert any("NaN/inf" in note for note in infinite.trace.targets[0].notes)
    assert add_recall(infinite.trace, [RED])["roi_recall"] == 0.0


# --- end to end on the tiny models -------------------------------------------------------------


@pytest.mark.parametrize("vicrop_map", ["rel_att", "grad_att"])
def test_end_to_end_on_tiny_models(tiny_checkpoint, family, vicrop_map, tmp_path):
    checkpoint = tiny_checkpoint(family, text_layers=LAYERS)
    image = noise_image(300, 200, seed=3)
    runs = []
    for high in (False, True, False):  # the third run repeats the first: determinism
        focus = Focus.from_pretrained(checkpoint, device="cpu", method="vicrop", vicrop_map=vicrop_map,
                                      vicrop_crop_side=60, vicrop_high=high, vicrop_tile_side=150)
        runs.append(focus.answer(image, TINY_QUESTION, max_new_tokens=3))
    single, tiled, again = runs
    tiles = len(tile_boxes(image.size, 150))  # 2 x 3
    per_map = (2, 0) if vicrop_map == "rel_att" else (1, 1)
    assert (single.trace.counters.fp, single.trace.counters.bp) == per_map
    assert (tiled.trace.counters.fp, tiled.trace.counters.bp) == (tiles * per_map[0], tiles * per_map[1])
    for run in (single, tiled):
        assert run.trace.error is None and run.trace.final_layout == "full+crop"
        assert [im.size for im in run.final_images][0] == (300, 200)
        assert run.trace.counters.fp_answer == 1 and run.trace.counters.flops > 0
        target = run.trace.targets[0]
        assert np.isfinite(target.relevance_map).all()
        assert len(target.rois) == 1 and target.rois[0].box == run.trace.final_boxes[1]
    assert again.answer == single.answer and again.trace.final_boxes == single.trace.final_boxes
    assert again.trace.targets[0].relevance_map == single.trace.targets[0].relevance_map
    assert again.trace.counters.flops == single.trace.counters.flops
    png, _ = single.save(tmp_path, "vicrop")
    assert Image.open(png).size[0] > 0


def test_llava_1_5_answers_from_two_images(tiny_adapter):
    adapter = adapter_of(tiny_adapter, "llava_1_5")
    images = [noise_image(60, 40), noise_image(20, 20, seed=1)]
    inputs = adapter.encode([adapter.chat_text("Describe the image.", 2)], images)
    assert int((inputs["input_ids"] == adapter.image_token_id).sum()) == 2 * adapter.grid_side**2
    assert adapter.generate(images, "Describe the image.", 2).cost.passes == 1
