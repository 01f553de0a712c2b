"""The Python API: Focus.from_pretrained(...).answer(image, question) and what it returns."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from api_helpers import QUESTION, RED, TINY_QUESTION, inside, install_fake_loader, red_square_image, small_config
from fake_adapter import FakeAdapter

from focus_eval import Focus, FocusAnswer
from focus_eval.model_wrappers import ADAPTERS
from focus_eval.images import ImageLoadError
from focus_eval.pipeline import PipelineError
from focus_eval.trace import Trace


@pytest.fixture
def fake_checkpoints(monkeypatch, tmp_path):
    return install_fake_loader(monkeypatch, tmp_path)


def test_answer_returns_the_answer_maps_rois_inputs_and_counters(tmp_path):
    adapter = FakeAdapter()
    result = Focus(adapter, small_config()).answer(red_square_image(tmp_path), QUESTION)
    assert isinstance(result, FocusAnswer) and result.answer == "A"
    trace = result.trace
    assert trace.question_type == 1 and [t.name for t in trace.targets] == ["red square"]
    relevance = result.relevance_map(0)
    assert relevance.shape == adapter.grid_shape and relevance.dtype == np.float32
    assert np.array_equal(relevance, result.relevance_map("red square"))
    # the most relevant cell lies on the planted square (cells are 50 px)
    row, col = np.unravel_index(relevance.argmax(), relevance.shape)
    assert (RED[0] // 50, RED[1] // 50) == (col, row)
    target = trace.targets[0]
    best = target.rois[target.chosen[0]]
    assert inside(RED, best.box) and best.confidence > 0
    assert all(isinstance(r.anchor_score, float) for r in target.rois)
    assert len(result.final_images) == 1 and result.final_images[0].size == (best.box[2] - best.box[0],
                                                                           best.box[3] - best.box[1])
    assert trace.counters.fp == adapter.calls["prefill"] + adapter.calls["yes_no_prompts"]
    with pytest.raises(KeyError, match="no target named 'cat'"):
        result.relevance_map("cat")
    with pytest.raises(IndexError):
        result.relevance_map(1)


def test_gt_boxes_give_the_recall_and_are_drawn(tmp_path):
    from focus_eval.present.visualize import GT_COLOUR

    focus = Focus(FakeAdapter(), small_config())
    result = focus.answer(red_square_image(tmp_path), QUESTION, gt_boxes=[RED, (0, 0, 20, 20)], gt_names=["square", "corner"])
    trace = result.trace
    assert trace.gt_boxes == [list(map(float, RED)), [0.0, 0.0, 20.0, 20.0]] and trace.gt_names == ["square", "corner"]
    assert trace.roi_recall == 0.5 and trace.roi_recall_chosen == 0.5  # the square is found, the corner not
    picture = np.asarray(result.picture())
    assert (picture == GT_COLOUR).all(-1).sum() > 100
    plain = focus.answer(red_square_image(tmp_path), QUESTION)
    assert plain.trace.gt_boxes == [] and plain.trace.roi_recall is None
    assert not (np.asarray(plain.picture()) == GT_COLOUR).all(-1).any()


def test_picture_and_save_write_the_same_picture(tmp_path):
    result = Focus(FakeAdapter(), small_config()).answer(Image.open(red_square_image(tmp_path)), QUESTION)
    png, trace_json = result.save(tmp_path / "out", "scene")
    assert Image.open(png).convert("RGB").tobytes() == result.picture().tobytes()
    assert Trace.from_json(trace_json.read_text()).to_dict() == result.trace.to_dict()


def test_same_inputs_give_the_same_trace_apart_from_time_and_memory(tmp_path):
    path = red_square_image(tmp_path)
    runs = [Focus(FakeAdapter(), small_config()).answer(path, QUESTION) for _ in range(2)]
    dicts = [r.trace.to_dict() for r in runs]
    for d in dicts:
        for key in ("seconds", "total_seconds", "peak_mem_gb"):
            d["counters"].pop(key)
    assert dicts[0] == dicts[1]
    assert runs[0].picture().tobytes() == runs[1].picture().tobytes()


def test_from_pretrained_applies_the_family_table_and_overrides(fake_checkpoints, tmp_path):
    checkpoint, calls = fake_checkpoints
    focus = Focus.from_pretrained(checkpoint, n_steps="2", dtype="float32", device="cpu",
                                  attn_implementation="eager", processor_kwargs={"min_pixels": 3136})
    assert calls == [{"pretrained": str(checkpoint), "family": None, "dtype": "float32", "device": "cpu",
                      "device_map": None, "attn_implementation": "eager", "min_pixels": 3136}]
    # configs/llava_1_5.yaml: k = 15 when n_steps < 4, s_dist 3 off V*Bench, layers 14-32 of 32
    assert (focus.config.n_steps, focus.config.k, focus.config.s_dist) == (2, 15, 3)
    assert (focus.config.layer_start, focus.config.layer_end) == (14, 32)
    assert Focus.from_pretrained(checkpoint, dataset="vstar").config.s_dist == 2
    assert focus.answer(red_square_image(tmp_path), QUESTION).answer == "A"


def test_vanilla_answers_on_the_full_image(fake_checkpoints, tmp_path):
    checkpoint, _ = fake_checkpoints
    result = Focus.from_pretrained(checkpoint, method="vanilla").answer(red_square_image(tmp_path), QUESTION)
    assert result.trace.method == "vanilla" and result.trace.targets == []
    assert result.final_images[0].size == (800, 600)
    assert (result.trace.counters.fp, result.trace.counters.fp_answer) == (0, 1)


def test_a_bad_option_fails_before_loading(fake_checkpoints):
    checkpoint, calls = fake_checkpoints
    with pytest.raises(ValueError, match="unknown FOCUS option 'n_step'"):
        Focus.from_pretrained(checkpoint, n_step=2)
    with pytest.raises(ValueError, match="n_steps='many': expected int"):
        Focus.from_pretrained(checkpoint, n_steps="many")
    assert calls == []


def test_a_missing_local_folder_is_named_as_such(tmp_path):
    # the real loader: transformers would report a malformed hub repo id instead
    with pytest.raises(FileNotFoundError, match="no such model folder: .*missing"):
        Focus.from_pretrained(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no such model folder: ./missing"):
        Focus.from_pretrained("./missing")


def test_bad_images_and_failing_questions_raise_specific_errors(tmp_path):
    focus = Focus(FakeAdapter(fail_generate_with_images=True), small_config())
    with pytest.raises(ImageLoadError, match="neither an existing file"):
        focus.answer(str(tmp_path / "missing.png"), QUESTION)
    with pytest.raises(PipelineError, match="generation exploded") as failure:
        focus.answer(red_square_image(tmp_path), QUESTION)
    assert failure.value.trace.targets[0].rois  # the search before the failure is kept


def test_importing_the_package_does_not_import_torch():
    code = "import sys, focus_eval; assert 'torch' not in sys.modules; print(focus_eval.Focus.__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Focus"


@pytest.mark.parametrize("family", [spec.family for spec in ADAPTERS])
def test_a_tiny_checkpoint_answers_with_a_full_trace(family, tiny_checkpoint, tmp_path):
    focus = Focus.from_pretrained(tiny_checkpoint(family), dtype="float32", device="cpu", n_steps=2)
    table7_k = 15 if family == "llava_1_5" else 30  # LLaVA-1.5 takes k = 15 below 4 steps, the others keep 30
    assert focus.adapter.family == family and (focus.config.n_steps, focus.config.k) == (2, table7_k)
    result = focus.answer(red_square_image(tmp_path), TINY_QUESTION)
    trace = result.trace
    assert isinstance(result.answer, str) and trace.error is None
    (target,) = trace.targets
    assert target.name == "red car"  # the untrained reply names nothing; the rules find it
    relevance = result.relevance_map("red car")
    assert relevance.ndim == 2 and relevance.shape == np.asarray(target.cell_boxes).shape[:2]
    # a random tiny model's cached values can make a normaliser <= 0: the map is then uniform, with a note
    degenerate = any(note.startswith("relevance map is uniform") for note in target.notes)
    assert np.isfinite(relevance).all() and (relevance.max() > relevance.min()) != degenerate
    checked = [r.confidence for r in target.rois if r.confidence is not None]
    assert checked and all(-1 <= c <= 1 for c in checked)
    assert trace.counters.fp == 1 + len(checked) and trace.counters.fp_answer == 1
    # multi-image families answer from the outlined global view (its box first) plus the crops
    assert result.final_images and len(trace.final_boxes) == len(target.chosen) + focus.adapter.multi_image
    png, _ = result.save(tmp_path, "tiny")
    assert Image.open(png).size == result.picture().size
