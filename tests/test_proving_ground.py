"""The proving ground (focus_eval/proving_ground): its questions in V*Bench's schema, the detail
that only a crop shows, the training encoding against the adapter's, a short training run and
the committed checkpoint. The full training is not run here (`make proving-ground`)."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
import torch

from focus_eval.model_wrappers import load_adapter
from focus_eval.model_wrappers.llava_1_5 import Llava15Adapter
from focus_eval.proving_ground import scenes, train
from focus_eval.proving_ground import CHECKPOINT
from focus_eval.tasks.tiny_data import write_tiny_dataset
from focus_eval.tasks.vstar.utils import split_text

FULL_VIEW = (0, 0, *scenes.SCENE_SIZE)


def test_rows_have_vstar_schema_and_boxes(tmp_path):
    pairs = scenes.build_questions(12, seed=5)
    ours = datasets.Dataset.from_parquet(str(scenes.write_rows(tmp_path / "pg", [row for _, row in pairs])))
    tiny = datasets.Dataset.from_parquet(str(write_tiny_dataset("vstar", tmp_path / "tiny")))
    assert ours.features == tiny.features
    assert {row["category"] for row in ours} == set(scenes.CATEGORIES)
    for (scene, _), row in zip(pairs, ours):
        question, options = split_text(row["text"])
        assert row["label"] in "ABCD"[:len(options)] and len(options) == (4 if row["category"] == "direct_attributes" else 2)
        assert len(row["bbox"]) == len(row["target_object"]) == (1 if row["category"] == "direct_attributes" else 2)
        for name, (x, y, w, h) in zip(row["target_object"], row["bbox"]):
            assert name in question
            (index,) = [i for i, thing in enumerate(scene.objects) if thing.kind == name]
            mask = scene.object_map == index
            ys, xs = np.nonzero(mask)  # the box holds the object and fits it (a triangle's apex row may be empty)
            tight = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            box = np.array([x, y, x + w, y + h])
            assert (box[:2] <= tight[:2]).all() and (box[2:] >= tight[2:]).all() and np.abs(box - tight).max() <= 1
        if row["category"] == "direct_attributes":
            thing = next(t for t in scene.objects if t.kind == row["target_object"][0])
            assert options["ABCD".index(row["label"])] == thing.pattern
        else:
            first, second = (next(t for t in scene.objects if t.kind == n) for n in row["target_object"])
            assert options["AB".index(row["label"])] == ("left" if first.center[0] < second.center[0] else "right")


def test_questions_are_a_function_of_the_seed():
    first, again, other = (scenes.build_rows(3, seed) for seed in (2, 2, 3))
    assert first == again
    assert [row["image"]["bytes"] for row in first] != [row["image"]["bytes"] for row in other]


def test_pattern_vanishes_at_full_scale_and_survives_a_three_cell_crop():
    """detail_contrast: pixel std (0-255) inside the object after the processor's pad + resize to
    112 px. Full image: <= 3 (measured max 1.9 over 20 scenes); an s_max = 3 ROI (168 px) around
    the object: >= 30 (measured min 37)."""
    rng = np.random.default_rng(0)
    full, crop = [], []
    for _ in range(6):
        scene = scenes.make_scene(rng)
        for index, thing in enumerate(scene.objects):
            full.append(scenes.detail_contrast(scene, index, FULL_VIEW))
            crop.append(scenes.detail_contrast(scene, index, train.centred_crop(thing.center, 3 * train.CELL)))
    assert max(full) < 3.0
    assert min(crop) > 30.0


@pytest.fixture(scope="module")
def untrained():
    return train.build_model(seed=0)


def test_packed_questions_match_single_questions(untrained):
    """The shared-prefix packing (one image prefix, one branch per question, a 4-D mask) gives every
    answer token the logits it has when its question is encoded alone."""
    model, processor = untrained
    rng = np.random.default_rng(1)
    scene = scenes.make_scene(rng)
    view = train.gt_crop([scene.objects[0].box])
    turns = train.conversation(scene, "object", view, rng)[:3]
    assert len(turns) >= 2
    features = train.tower_features(model, train.render(scene, view)[None], processor)
    conversations = train.Conversations(processor)
    pad_id = processor.tokenizer.pad_token_id
    with torch.no_grad():
        packed = train.batch_tensors([conversations.encode(turns)], pad_id)
        packed_logits = train.language_logits(model, features, packed["ids"], packed["mask"], packed["positions"])[0]
        answers = packed["labels"][0, 1:] != -100
        alone = []
        for turn in turns:
            single = train.batch_tensors([conversations.encode([turn])], pad_id)
            logits = train.language_logits(model, features, single["ids"], single["mask"], single["positions"])[0]
            alone.append(logits[:-1][single["labels"][0, 1:] != -100])
    torch.testing.assert_close(packed_logits[:-1][answers], torch.cat(alone), atol=1e-4, rtol=1e-4)


def test_training_forward_equals_the_adapter_path(untrained, tmp_path):
    """The training's own forward (rendered view, tower features, packed ids) gives the logits that
    the saved checkpoint gives through load_adapter and the LLaVA processor on the cropped image."""
    model, processor = untrained
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    scene_list = [scenes.make_scene(np.random.default_rng(2))]
    probes = train.build_probes(scene_list, seed=0)[:4]
    ours = train.training_logits(model, processor, scene_list, probes)
    adapter = load_adapter(str(tmp_path), device="cpu")
    inputs = adapter.encode([adapter.chat_text(p.prompt, 1) for p in probes],
                            [scene_list[0].pil().crop(p.box) for p in probes])
    theirs = adapter.forward(inputs).logits[:, -1].float()
    torch.testing.assert_close(ours, theirs, atol=2e-3, rtol=1e-3)


def test_two_image_training_forward_equals_the_adapter_path(untrained):
    """ViCrop's final input as the training encodes it (the full view's then the crop's tower
    features, one prompt with two images) gives the logits of the adapter on [full image, crop]."""
    model, processor = untrained
    scene = scenes.make_scene(np.random.default_rng(3))
    crop = train.gt_crop([scene.objects[0].box])
    question = train.vstar_prompt(scenes.question_for(scene, "direct_attributes", np.random.default_rng(0), target=0)["text"])
    features = train.tower_features(model, np.stack([train.render(scene, FULL_VIEW), train.render(scene, crop)]),
                                    processor)
    conversations = train.Conversations(processor)
    ids = conversations.prompt_ids(question, images=2)
    tensors = train.prompt_batch([ids], processor.tokenizer.pad_token_id)
    with torch.no_grad():
        ours = train.language_logits(model, features.reshape(1, -1, features.shape[-1]), tensors["ids"],
                                     tensors["mask"], tensors["positions"])[0, -1]
    adapter = Llava15Adapter(model, processor)
    inputs = adapter.encode([adapter.chat_text(question, 2)], [scene.pil(), scene.pil().crop(crop)])
    assert inputs["input_ids"][0].tolist()[-len(ids):] == ids
    with torch.no_grad():
        theirs = adapter.forward(inputs).logits[0, -1].float()
    torch.testing.assert_close(ours, theirs, atol=2e-3, rtol=1e-3)


def test_zoomeye_questions_are_labelled_from_what_the_view_shows():
    """Latent: one Yes, for an object at least partly in the view, and one No, for one that is
    not. Answering: Yes exactly when
    the asked object is whole in the view and its pattern legible (a GT crop), No on the full
    image (illegible) and for an object outside the view."""
    scene = next(s for s in (scenes.make_scene(np.random.default_rng(seed)) for seed in range(50))
                 if len(s.objects) >= 2)
    crop = train.gt_crop([scene.objects[0].box])
    inside = {o.kind for i, o in enumerate(scene.objects) if scene.visible_fraction(i, crop) > train.ABSENT}
    for seed in range(5):
        turns = train.zoomeye_turns(scene, crop, np.random.default_rng(seed))
        latent = sorted((answer, prompt) for task, prompt, answer in turns if task == "latent")
        assert [answer for answer, _ in latent] == [train.NO, train.YES]
        assert all((answer == train.YES) == any(prompt == train.LATENT_PROMPT.format(target=k) for k in inside)
                   for answer, prompt in latent)
        answering = [(prompt, answer) for task, prompt, answer in turns if task == "answering"]
        assert answering and all(prompt.startswith("Question: ") for prompt, _ in answering)
        for prompt, answer in answering:
            asked = next(i for i, o in enumerate(scene.objects) if f" {o.kind}?" in prompt)
            assert (answer == train.YES) == (scene.visible_fraction(asked, crop) >= 0.9)
        full = train.zoomeye_turns(scene, FULL_VIEW, np.random.default_rng(seed))
        assert [answer for task, _, answer in full if task == "answering"] == [train.NO]  # whole but illegible


def test_patch_words_name_the_shape_and_the_legible_pattern(untrained):
    _, processor = untrained
    word = {w: processor.tokenizer(" " + w, add_special_tokens=False)["input_ids"][0]
            for w in (*scenes.SHAPES, *scenes.PATTERNS)}
    shape = np.array([[0, 1 + scenes.SHAPES.index("cross"), scenes.DISTRACTOR, 1 + scenes.SHAPES.index("circle")]])
    pattern = np.array([[0, 1 + scenes.PATTERNS.index("dots"), 1 + scenes.PATTERNS.index("dots"), -100]])
    targets = train.patch_word_targets(shape, pattern, processor.tokenizer)
    assert targets.tolist() == [[[-100, -100], [word["cross"], word["dots"]], [-100, -100], [word["circle"], -100]]]


def test_alignment_trains_the_projector_only():
    """Stage B0: the projector moves and the patch-word loss falls; the language model (and so the
    tied word embeddings the image tokens are aligned to) and the tower stay as they were."""
    model, processor = train.build_model(seed=0)  # its own: the module's fixture is not changed
    views = train.build_views(2, seed=4)
    features = train.tower_features(model, views.images, processor)
    targets = train.patch_word_targets(views.shape, views.pattern, processor.tokenizer)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if "multi_modal_projector" not in k}
    projector = {k: v.clone() for k, v in model.model.multi_modal_projector.state_dict().items()}
    with torch.no_grad():
        before = float(train.patch_word_loss(model, features, targets))
    train.align_projector(model, features, targets, steps=30, batch=4, seed=0, log=lambda line: None)
    with torch.no_grad():
        after = float(train.patch_word_loss(model, features, targets))
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in frozen.items())
    assert not all(torch.equal(model.model.multi_modal_projector.state_dict()[k], v) for k, v in projector.items())
    assert after < 0.8 * before
    assert all(parameter.requires_grad for parameter in model.model.language_model.parameters())  # for stage B


def test_short_training_run(tmp_path):
    phases = tuple(train.Phase(p.name, p.tasks, 3) for p in train.PHASES)
    report = train.train(tmp_path / "model", scenes=6, dev_scenes=3, tower_steps=4, align_steps=3, phases=phases,
                         batch=4, threads=1, control=tmp_path / "control", log=lambda line: None)
    assert report["stage_a"]["steps"] == 4 and report["stage_b0"]["steps"] == 3
    assert [p["phase"] for p in report["stage_b"]] == [p.name for p in phases]
    assert json.loads((tmp_path / "model" / "training.json").read_text())["views"] == report["views"]
    trained, control = (load_adapter(str(tmp_path / name), device="cpu") for name in ("model", "control"))
    towers = [a.model.model.vision_tower.state_dict() for a in (trained, control)]
    assert all(torch.equal(towers[0][k], towers[1][k]) for k in towers[0])  # stage B keeps the tower
    projectors = [a.model.model.multi_modal_projector.state_dict() for a in (trained, control)]
    assert not all(torch.equal(projectors[0][k], projectors[1][k]) for k in projectors[0])


@pytest.mark.skipif(not (CHECKPOINT / "config.json").exists(), reason="no committed checkpoint")
def test_committed_checkpoint_loads_and_checks_existence():
    """The committed checkpoint loads through load_adapter and FOCUS's existence check tells the
    named object's GT crop from another object's crop (AUC 0.995 on the 500 test scenes)."""
    adapter = load_adapter(str(CHECKPOINT), device="cpu")
    scene_list = [scenes.make_scene(np.random.default_rng([9, i])) for i in range(16)]
    probes = [p for p in train.build_probes(scene_list, seed=9) if p.kind in ("exist_gt", "exist_other")]
    yes_no = adapter.yes_no_logits([scene_list[p.scene].pil().crop(p.box) for p in probes], [p.prompt for p in probes])
    p_yes = torch.softmax(yes_no.logits, -1)[:, 0].tolist()
    scores = {kind: [v for p, v in zip(probes, p_yes) if p.kind == kind] for kind in ("exist_gt", "exist_other")}
    assert train.auc(scores["exist_gt"], scores["exist_other"]) >= 0.85


@pytest.mark.skipif(not (CHECKPOINT / "config.json").exists(), reason="no committed checkpoint")
def test_committed_checkpoint_reads_the_pattern_from_a_crop_only():
    """The pattern question: right from the GT crop (99.7% on the 301 test questions), near chance
    from the full image (23.9%): the detail the full image loses."""
    adapter = load_adapter(str(CHECKPOINT), device="cpu")
    scene_list = [scenes.make_scene(np.random.default_rng([10, i])) for i in range(24)]
    probes = [p for p in train.build_probes(scene_list, seed=10) if p.kind in ("attr_gt", "attr_full")]
    logits = train.training_logits(adapter.model, adapter.processor, scene_list, probes)
    report = train.probe_report(probes, logits, adapter.processor.tokenizer)
    assert report["acc_attr_gt"] >= 0.9 and report["acc_attr_full"] <= 0.5


def test_seed_table_gives_mean_and_sample_sd_of_each_row():
    from focus_eval.proving_ground import run

    def summary(accuracy, fp, top_roi):
        return {"family": "llava_1_5", "questions": 500, "rows": ["vanilla", "FOCUS n_steps=4"],
                "results": {"vanilla": {"vstar_overall_acc": 35.0, "fp": 0.0, "bp": 0.0, "fp_total": 1.0},
                            "FOCUS n_steps=4": {"vstar_overall_acc": accuracy, "fp": fp, "bp": 0.0, "fp_total": fp + 1,
                                                "roi_recall": 0.9}},
                "traces": {"FOCUS n_steps=4": {"top_roi": top_roi, "argmax_on_target": 0.5, "argmax_on_other": None}},
                "existence_auc": {"model": {"auc_other": 0.9, "auc_empty": 1.0}}, "lmms_eval_exit_status": 0}

    summaries = [summary(70.0, 7.0, 0.8), summary(74.0, 8.0, 0.9), summary(78.0, 9.0, 1.0)]
    table = run.seeds_table([0, 1, 2], summaries)
    focus = next(line for line in table.splitlines() if line.startswith("| FOCUS"))
    assert "| 74.0 ± 4.0 (70.0, 74.0, 78.0) |" in focus and "| 8.00 ± 1.00 (7.00, 8.00, 9.00) |" in focus
    assert "| 90.0 ± 10.0 (80.0, 90.0, 100.0) |" in focus and focus.endswith("| N/A |")  # a seed without a value
    assert "| N/A |" in next(line for line in table.splitlines() if line.startswith("| vanilla"))  # no ROI recall
    assert evaluate_last_line(run.mean_summary(summaries)) == (
        "proving ground (llava_1_5): vanilla 35.0%, focus 74.0% (n=500, fp=8.00, recall=90.0%)")


def evaluate_last_line(summary):
    from focus_eval.proving_ground import evaluate

    return evaluate.last_line(summary)


@pytest.mark.parametrize("arguments, message", [
    (["--questions", "0"], "--questions: must be at least 1, got 0"),
    (["--model", "{tmp}"], "config.json"),
    (["--out", "{file}"], "--out: "),
    (["--family", "llava_onevision", "--model", "{llava}"], "(family 'llava_1_5'), not family 'llava_onevision'"),
])
def test_evaluate_refuses_arguments_that_cannot_work_before_running_anything(tmp_path, capsys, arguments, message):
    from focus_eval.proving_ground import evaluate

    (tmp_path / "file").write_text("")
    argv = [a.format(tmp=tmp_path / "empty", file=tmp_path / "file", llava=CHECKPOINT) for a in arguments]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as stop:
        evaluate.main(["--out", str(tmp_path / "out"), *argv])
    assert stop.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]  # argparse's own errors come after its usage lines
    assert "error:" in last and message in last
    assert not (tmp_path / "out").exists()
