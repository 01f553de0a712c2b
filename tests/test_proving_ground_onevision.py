"""The proving ground's tiny LLaVA-OneVision (focus_eval/proving_ground/onevision.py): its tower
inputs against the real image processor, its labels against the adapter's token geometry, the
training forward against the adapter path (one image, and FOCUS's interleaved final input), the
detail the full scene loses, a short training run and the committed checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from focus_eval.compose import compose_final_input
from focus_eval.model_wrappers import load_adapter
from focus_eval.proving_ground import ONEVISION_CHECKPOINT, onevision, scenes, train

FULL_VIEW = (0, 0, *onevision.SCENE_SIZE)


@pytest.fixture(scope="module")
def scene():
    return scenes.make_scene(np.random.default_rng(4), onevision.SCENE_SIZE)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """An untrained proving-ground OneVision saved as a checkpoint, and its adapter."""
    model, processor = onevision.build_model(seed=0)
    path = tmp_path_factory.mktemp("onevision")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return load_adapter(str(path), device="cpu")


def test_tower_inputs_are_the_image_processors(saved, scene):
    processor = saved.processor.image_processor
    for box in (FULL_VIEW, (10, 20, 320, 330), (500, 100, 700, 230)):
        view = scene.pil().crop(box)
        expected = processor(images=[view], return_tensors="pt")["pixel_values"][0]
        ours = train.pixel_tensor(onevision.tower_inputs(view), saved.processor)
        assert len(ours) == 1 + np.prod(onevision.layout(view.size).crops)
        torch.testing.assert_close(ours, expected[:len(ours)], atol=0, rtol=0)


def test_labels_follow_the_adapters_token_geometry(scene):
    """Each canvas token's shape label (label_inputs) is the object under the adapter's cell box of
    that token (AnyresLayout.cell_boxes of the unpadded grid): the object's class where the box lies
    inside the object, background where the box touches no object or distractor."""
    inside = outside = 0
    for view in (FULL_VIEW, train.gt_crop([scene.objects[0].box], onevision.CELL, scene.size)):
        plan = onevision.layout((view[2] - view[0], view[3] - view[1]))
        shape, _ = onevision.label_inputs(scene, view)
        side = onevision.TOWER_SIDE // onevision.PATCH
        crop_rows, crop_cols = plan.crops
        grid = shape[1:].reshape(crop_rows, crop_cols, side, side).transpose(0, 2, 1, 3).reshape(crop_rows * side, -1)
        grid = grid[plan.rows[0]:plan.rows[1], plan.cols[0]:plan.cols[1]]
        boxes = plan.cell_boxes(plan.unpadded_shape)
        for (row, col), label in np.ndenumerate(grid):
            x0, y0, x1, y1 = (int(round(v)) for v in boxes[row, col])
            under = scene.shape_map[view[1] + max(y0, 0):view[1] + y1, view[0] + max(x0, 0):view[0] + x1]
            if under.size and (under == under.flat[0]).all() and under.flat[0] != 0:
                assert label == under.flat[0]
                inside += 1
            elif under.size and (under == 0).all():
                assert label == 0
                outside += 1
    assert inside >= 4 and outside >= 100


def test_pattern_vanishes_at_full_scale_and_survives_a_three_cell_roi():
    """Contrast inside the objects as anyres resizes the view: the full scene (0.25): <= 3
    (measured max 2.0 over 10 scenes); an ROI of 3 cells around the object (1.08): >= 30 (min 54)."""
    rng = np.random.default_rng(0)
    full, roi = [], []
    for _ in range(6):
        scene = scenes.make_scene(rng, onevision.SCENE_SIZE)
        for index, thing in enumerate(scene.objects):
            full.append(onevision.detail_contrast(scene, index, FULL_VIEW))
            roi.append(onevision.detail_contrast(scene, index, train.centred_crop(thing.center, 3 * onevision.CELL,
                                                                                  scene.size)))
    assert max(full) < 3.0
    assert min(roi) > 30.0


def test_training_forward_equals_the_adapter_path(saved, scene):
    """Single-image probes: the training's token ids and logits are the adapter's."""
    probes = train.build_probes([scene], seed=0, cell=onevision.CELL)[:4]
    ours = onevision.probe_logits(saved.model, saved, [scene], probes, saved.processor)
    inputs = saved.encode([saved.chat_text(p.prompt, 1) for p in probes], [scene.pil().crop(p.box) for p in probes])
    theirs = saved.forward(inputs).logits[:, -1].float()
    torch.testing.assert_close(ours, theirs, atol=2e-3, rtol=1e-3)


def test_final_input_training_forward_equals_the_adapter_path(saved, scene):
    """FOCUS's final input for OneVision (compose.py: the outlined scene, then the ROI, each with
    its text, each encoded alone) as the training encodes it: the same ids and logits."""
    roi = train.gt_crop([scene.objects[0].box], onevision.CELL, scene.size)
    final = compose_final_input(scene.pil(), [[roi]], question_type=1, multi_image=True, t_obj_dist=0,
                                canvas_size=0, names=[f"the {scene.objects[0].kind}"])
    question = train.vstar_prompt(scenes.question_for(scene, "direct_attributes", np.random.default_rng(0),
                                                      target=0)["text"])
    sizes = tuple(image.size for image in final.images)
    ids = onevision.AnyresConversations(saved).prompt_ids(question, onevision.Images(sizes, tuple(final.texts)))
    inputs = saved.encode([saved.chat_text(question, 2, final.texts)], final.images, each_image_alone=True)
    assert inputs["input_ids"][0].tolist() == ids
    features = [train.tower_features(saved.model, onevision.tower_inputs(image), saved.processor)
                for image in final.images]
    mask = torch.ones(len(ids), len(ids), dtype=torch.bool).tril()[None, None]
    with torch.no_grad():
        image = onevision.image_tokens(saved.model, features, sizes)
        ours = train.logits_with_image_tokens(saved.model, image, torch.tensor([ids]), mask, torch.arange(len(ids))[None])
        theirs = saved.forward(inputs).logits
    torch.testing.assert_close(ours[0, -1], theirs[0, -1].float(), atol=2e-3, rtol=1e-3)


def test_short_training_run(tmp_path):
    phases = tuple(train.Phase(p.name, p.tasks, 2) for p in onevision.PHASES)
    report = onevision.train(tmp_path / "model", scenes=4, dev_scenes=2, tower_steps=3, align_steps=2, phases=phases,
                             batch=4, control=tmp_path / "control", log=lambda line: None)
    assert report["family"] == "llava_onevision" and report["stage_a"]["steps"] == 3
    assert [p["phase"] for p in report["stage_b"]] == [p.name for p in phases]
    assert json.loads((tmp_path / "model" / "training.json").read_text())["views"] == report["views"]
    trained, control = (load_adapter(str(tmp_path / name), device="cpu") for name in ("model", "control"))
    assert trained.family == "llava_onevision"
    towers = [a.model.model.vision_tower.state_dict() for a in (trained, control)]
    assert all(torch.equal(towers[0][k], towers[1][k]) for k in towers[0])  # stage B keeps the tower
    assert not torch.equal(trained.model.model.image_newline, control.model.model.image_newline)


@pytest.mark.skipif(not (ONEVISION_CHECKPOINT / "config.json").exists(), reason="no committed checkpoint")
def test_committed_checkpoint_reads_the_pattern_from_a_crop_only():
    """The committed OneVision checkpoint through load_adapter: the pattern question right from
    the GT crop, near chance from the full scene (training gates: 0.967 and 0.283)."""
    adapter = load_adapter(str(ONEVISION_CHECKPOINT), device="cpu")
    assert adapter.family == "llava_onevision"
    scene_list = [scenes.make_scene(np.random.default_rng([10, i]), onevision.SCENE_SIZE) for i in range(16)]
    probes = [p for p in train.build_probes(scene_list, seed=10, cell=onevision.CELL) if p.kind in ("attr_gt", "attr_full")]
    logits = onevision.probe_logits(adapter.model, adapter, scene_list, probes, adapter.processor)
    report = train.probe_report(probes, logits, adapter.processor.tokenizer, separator="")
    assert report["acc_attr_gt"] >= 0.85 and report["acc_attr_full"] <= 0.5
