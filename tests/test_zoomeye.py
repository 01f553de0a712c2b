"""method=zoomeye: tree geometry, the two searches on scripted confidences, views and final inputs,
exact forward-pass counts on a scripted fake model, traces, and the method end to end on the tiny
models of the three families."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from PIL import Image

from api_helpers import TINY_QUESTION, red_square_image
from fake_adapter import COLOURS, FakeAdapter, colour_fraction, scene
from focus_eval import Focus
from focus_eval.compose import OUTLINE_COLOUR, paste_on_canvas
from focus_eval.config import FocusConfig, load_config
from focus_eval.methods import METHODS
from focus_eval.methods.zoomeye.prompts import (ANSWERING_PROMPT, DECOMPOSED_QUESTION, LATENT_PROMPTS,
                                                ZOOM_EXISTENCE_PROMPT, ZOOM_IMAGE_TEXTS, confidence_prompt)
from focus_eval.methods.zoomeye.search import Type1Search, post_order, priority_weight, type2_search
from focus_eval.methods.zoomeye.tree import build_tree, split_box, split_grid, view_box
from focus_eval.methods.zoomeye.views import (ViewSettings, final_input, global_view, merge_near, node_view,
                                              outline_width)
from focus_eval.model_wrappers import ADAPTERS
from focus_eval.pipeline import Pipeline, PipelineError
from focus_eval.present.visualize import CHECKED_COLOUR, CHOSEN_COLOUR, render_explanation
from focus_eval.protocol import PassCost, YesNo
from focus_eval.recall import add_recall
from focus_eval.trace import RoiTrace, TargetTrace, Trace

EXISTENCE = FocusConfig.existence_prompt  # FOCUS's template, the default of the config field


# --- tree geometry ---------------------------------------------------------------------------


@pytest.mark.parametrize("size, split, grid", [
    ((100, 100), 4, (2, 2)), ((100, 199), 4, (2, 2)), ((100, 200), 4, (1, 4)), ((100, 500), 4, (1, 4)),
    ((199, 100), 4, (2, 2)), ((200, 100), 4, (4, 1)), ((500, 100), 4, (4, 1)),
    ((300, 200), 2, (2, 1)), ((200, 300), 2, (1, 2)), ((200, 200), 2, (2, 1)), ((1000, 10), 2, (2, 1)),
])
def test_split_grid_follows_the_aspect_ratio(size, split, grid):
    assert split_grid(*size, split) == grid


def test_split_box_cuts_equal_parts_and_the_last_takes_the_remainder():
    # 103 x 37: h / w <= 0.5, four columns of 103 // 4 = 25 px, the last 28 px
    assert split_box((10, 20, 113, 57), 4) == [(10, 20, 35, 57), (35, 20, 60, 57), (60, 20, 85, 57), (85, 20, 113, 57)]
    # 2 x 2 of an odd box, row by row: rows of 7 // 2 = 3 and 4 px, columns of 5 // 2 = 2 and 3 px
    assert split_box((0, 0, 5, 7), 4) == [(0, 0, 2, 3), (2, 0, 5, 3), (0, 3, 2, 7), (2, 3, 5, 7)]
    assert split_box((0, 0, 9, 4), 2) == [(0, 0, 4, 4), (4, 0, 9, 4)]  # halves of the longer side
    assert split_box((0, 0, 4, 9), 2) == [(0, 0, 4, 4), (0, 4, 4, 9)]
    with pytest.raises(ValueError, match="split"):
        split_box((0, 0, 4, 4), 3)


@pytest.mark.parametrize("split", [4, 2])
def test_children_tile_their_parent(split):
    tree = build_tree((1037, 611), 100, split, max_depth=6)
    for node in tree.nodes():
        if node.children:
            areas = sum((c.box[2] - c.box[0]) * (c.box[3] - c.box[1]) for c in node.children)
            assert areas == (node.box[2] - node.box[0]) * (node.box[3] - node.box[1])
            assert len(node.children) == split
            assert all(c.path == node.path + (i,) for i, c in enumerate(node.children))


def test_nodes_split_while_a_side_reaches_the_patch_size_down_to_the_cap():
    # 800 x 600, patch 200: 400 x 300 -> 200 x 150 (200 >= 200 still splits) -> 100 x 75 leaves
    full = build_tree((800, 600), 200, 4, max_depth=5)
    assert full.depth == 3 and len(full.nodes()) == 1 + 4 + 16 + 64
    assert all(n.is_leaf == (n.depth == 3) for n in full.nodes())
    capped = build_tree((800, 600), 200, 4, max_depth=2)  # D = min(tree depth, cap)
    assert capped.depth == 2 and all(n.is_leaf == (n.depth == 2) for n in capped.nodes())
    small = build_tree((199, 150), 200, 4, max_depth=5)
    assert small.depth == 0 and small.root.is_leaf
    assert build_tree((200, 150), 200, 4, max_depth=5).depth == 1
    two_way = build_tree((800, 600), 200, 2, max_depth=1)
    assert [c.box for c in two_way.root.children] == [(0, 0, 400, 600), (400, 0, 800, 600)]
    with pytest.raises(ValueError, match="patch size"):
        build_tree((800, 600), 3, 4, max_depth=5)


def test_a_view_grows_to_the_patch_size_about_its_centre_and_is_placed_like_the_official_code():
    size = (1000, 800)
    assert view_box((400, 300, 500, 400), size, 336) == (282, 182, 618, 518)  # centre (450, 350), 336 px
    assert view_box((400, 300, 500, 400), size, 336, 1.2) == (249, 149, 652, 552)  # int(336 * 1.2) = 403
    assert view_box((0, 0, 100, 100), size, 336) == (0, 0, 336, 336)  # left/top border: moved inward
    assert view_box((900, 700, 1000, 800), size, 336) == (782, 582, 1000, 800)  # right/bottom border: cut
    assert view_box((0, 0, 1000, 800), size, 336, 1.2) == (0, 0, 1000, 800)  # larger than the patch: clipped
    assert view_box((100, 100, 600, 200), size, 336) == (100, 0, 600, 336)  # only the short side grows


# --- the searches on scripted confidences ---------------------------------------------------------


def test_priority_weight_goes_from_the_bias_at_the_root_to_one_at_depth_D():
    assert priority_weight(0, 5, 0.2) == 0.2 and priority_weight(5, 5, 0.2) == 1.0
    assert priority_weight(1, 2, 0.2) == pytest.approx(0.4) and priority_weight(2, 5, 0.6) == pytest.approx(0.664)
    with pytest.raises(ValueError):
        priority_weight(1, 0, 0.2)


@dataclass
class Script:
    """Confidences by node path, with defaults, and a log of the calls the search made."""

    answering: dict = field(default_factory=dict)
    existence: dict = field(default_factory=dict)
    latent: dict = field(default_factory=dict)
    default_answering: float = -0.3
    answered: list = field(default_factory=list)  # path per answering call
    prioritised: list = field(default_factory=list)  # paths per existence_latent call

    def answer(self, node):
        self.answered.append(node.path)
        return self.answering.get(node.path, self.default_answering)

    def pairs(self, nodes):
        self.prioritised.append([n.path for n in nodes])
        return [(self.existence.get(n.path, 0.0), self.latent.get(n.path, 0.0)) for n in nodes]

    @property
    def passes(self) -> int:
        return len(self.answered) + 2 * sum(map(len, self.prioritised))


def type1(script, size=(800, 800), patch=200, cap=2, **options):
    tree = build_tree(size, patch, 4, cap)
    settings = dict(tau_up=0.6, tau_low=0.0, decrements=(0.1, 0.1, 0.2), pop_factor=3, pop_increment=2, bias=0.2)
    search = Type1Search(tree.root, tree.depth, script.pairs, script.answer, **{**settings, **options})
    chosen = search.run()
    return search, (chosen.path if chosen is not None else None)


def test_the_root_answers_alone_in_one_pass():
    script = Script(answering={(): 0.7})
    search, chosen = type1(script)
    assert chosen == () and script.passes == 1 and script.prioritised == [] and search.thresholds == []


def test_best_first_search_pops_by_depth_weighted_priority_and_stops_at_tau_up():
    # existence favours (3,) then (3, 3); latent favours (0,) near the root, where it weighs more
    script = Script(answering={(3, 3): 0.8}, existence={(3,): 0.9, (3, 3): 0.9},
                    latent={(0,): 0.7, (3,): -0.2})
    search, chosen = type1(script)
    # w(1) = 0.2 + 0.8 / 4 = 0.4: p(3,) = 0.4 * 0.9 + 0.6 * -0.2 = 0.24, p(0,) = 0.6 * 0.7 = 0.42
    assert search.scores[search.root.children[3]].priority == pytest.approx(0.24)
    assert search.scores[search.root.children[0]].priority == pytest.approx(0.42)
    # (0,) first; its children (w(2) = 1: existence alone, 0) queue behind (3,) (0.24) and before (1,), (2,)
    assert [n.path for n in search.popped] == [(), (0,), (3,), (3, 3)] and chosen == (3, 3)
    assert script.prioritised == [[(0,), (1,), (2,), (3,)], [(0, 0), (0, 1), (0, 2), (0, 3)],
                                  [(3, 0), (3, 1), (3, 2), (3, 3)]]
    assert script.passes == 4 + 2 * 12 == 28
    assert search.stop == "answering confidence reached tau_up"


def test_equal_priorities_keep_the_queue_order():
    script = Script(answering={(1,): 0.9})
    search, chosen = type1(script)
    assert [n.path for n in search.popped] == [(), (0,), (1,)] and chosen == (1,)


def test_the_threshold_is_lowered_every_two_pops_after_three_times_D_and_the_best_popped_node_answers():
    # all priorities 0: pops (), (0,), (1,), (2,), (3,), (0, 0), (0, 1), (0, 2), (0, 3), (1, 0)
    script = Script(answering={(0, 2): 0.3, (0, 3): 0.25})
    search, chosen = type1(script)
    # pop 6: tau 0.5, pop 8: 0.4, pop 10: 0.2 (the last decrement repeats), then (0, 2) and (0, 3) reach it
    assert search.thresholds == pytest.approx([0.5, 0.4, 0.2])
    assert len(search.popped) == 10 and chosen == (0, 2) and search.candidates == [search.root.children[0].children[2]]
    assert script.passes == 10 + 2 * (4 + 4 * 4) == 50  # every depth-1 node was expanded before the stop
    assert "lowered tau_up" in search.stop


def test_the_search_ends_when_tau_up_falls_below_tau_low():
    script = Script()  # every answering confidence -0.3
    search, chosen = type1(script)
    assert search.thresholds == pytest.approx([0.5, 0.4, 0.2, 0.0, -0.2])
    assert chosen is None and len(search.popped) == 14 and "below tau_low" in search.stop
    # pop_limit 1 * D = 2, then every pop; -0.6 everywhere: -0.9 is reached, all popped nodes tie, the first wins
    search, chosen = type1(Script(default_answering=-0.6), pop_factor=1, pop_increment=1, decrements=(0.5,), tau_low=-1.0)
    assert search.thresholds == pytest.approx([0.1, -0.4, -0.9]) and len(search.popped) == 4 and chosen == ()


def test_visit_bottom_goes_on_past_a_stop_until_a_bottom_node_is_popped():
    existence = {(3,): 0.9, (3, 3): 0.9}
    # (3,) answers but the bottom was not reached: its children are searched; (3, 3) is the bottom
    search, chosen = type1(Script(answering={(3,): 0.7}, existence=existence), visit_bottom=True)
    assert [n.path for n in search.popped] == [(), (3,), (3, 3)] and chosen == (3,)
    assert search.stop == "bottom reached with a candidate"
    # both answer: the deepest candidate wins
    search, chosen = type1(Script(answering={(3,): 0.7, (3, 3): 0.65}, existence=existence), visit_bottom=True)
    assert [n.path for n in search.candidates] == [(3,), (3, 3)] and chosen == (3, 3)
    # without visit_bottom the first stop ends the search
    search, chosen = type1(Script(answering={(3,): 0.7}, existence=existence))
    assert len(search.popped) == 2 and chosen == (3,)


def test_skip_root_never_asks_the_root_and_counts_it_as_minus_one():
    script = Script(answering={(): 0.99}, default_answering=-0.3)
    search, chosen = type1(script, skip_root=True, tau_low=-1.0, decrements=(0.5,), pop_factor=1)
    assert () not in script.answered and search.scores[search.root].answering is None
    # thresholds 0.1, -0.4, -0.9: -0.3 >= -0.4 picks the first popped node below the root, never the root (-1)
    assert search.thresholds == pytest.approx([0.1, -0.4]) and chosen == (0,)


def test_an_image_smaller_than_the_patch_is_one_pass_on_the_root():
    script = Script()
    search, chosen = type1(script, size=(150, 100))
    assert search.max_depth == 0 and chosen is None and script.passes == 1 and search.stop == "queue empty"


def test_type2_checks_every_node_to_depth_2_post_order_in_one_call_and_keeps_local_maxima():
    tree = build_tree((800, 800), 200, 4, max_depth=2)
    confidences = {(0, 1): 0.8, (0,): 0.7, (1,): 0.9, (2, 2): 0.65, (2,): 0.65, (3, 0): 0.55, (): 0.95}
    calls = []

    def existence(nodes):
        calls.append([n.path for n in nodes])
        return [confidences.get(n.path, -0.5) for n in nodes]

    result = type2_search(tree.root, 2, 0.6, existence)
    assert len(calls) == 1 and len(calls[0]) == 21 and calls[0][:5] == [(0, 0), (0, 1), (0, 2), (0, 3), (0,)]
    assert calls[0][-1] == () and [n.path for n in result.visited] == calls[0]
    # (0,) 0.7 < its child's 0.8; (2,) 0.65 >= its best child 0.65; (3, 0) below 0.6; the root beats everything
    assert [n.path for n in result.kept] == [(0, 1), (1,), (2, 2), (2,), ()]
    assert [n.path for n in post_order(tree.root, 1)] == [(0,), (1,), (2,), (3,), ()]


# --- a scripted model behind the adapter protocol --------------------------------------------------


@dataclass
class ZoomFake(FakeAdapter):
    """Yes/no logits from what the (last) image shows of the colour the prompt names, by the
    prompt's kind: existence +0.9 if any pixel, latent `latent`, answering +0.8 above
    `answer_fraction` of the pixels, else -0.9 and -0.5."""

    latent: float = 0.0
    answer_fraction: float = 0.02
    base_resolution: int = 200
    log: list = field(default_factory=list)  # per prompt: (kind, prompt, image sizes, texts, each alone, call)
    fail_at_call: int | None = None

    def yes_no_logits(self, images, prompts, image_texts=None, each_image_alone=False):
        call = len({entry[-1] for entry in self.log})
        if self.fail_at_call == call:
            raise RuntimeError("the model fell over")
        rows = []
        for i, (image, prompt) in enumerate(zip(images, prompts)):
            shown = [image] if isinstance(image, Image.Image) else list(image)
            kind = "answering" if prompt.startswith("Question:") else "latent" if "common sense" in prompt else "existence"
            colour = next(c for c in (*COLOURS, "blue") if c in prompt)
            seen = colour_fraction(shown[-1], colour)
            value = {"existence": 0.9 if seen > 0 else -0.9, "latent": self.latent,
                     "answering": 0.8 if seen > self.answer_fraction else -0.5}[kind]
            rows.append([math.log((1 + value) / (1 - value)), 0.0])  # 2 (sigmoid(l) - 0.5) = value
            self.log.append((kind, prompt, [im.size for im in shown], None if image_texts is None else image_texts[i],
                             each_image_alone, call))
        return YesNo(logits=torch.tensor(rows), cost=PassCost(passes=len(prompts), batches=1, flops=1e9, tokens=1))

    def prompts_of(self, kind):
        return [entry for entry in self.log if entry[0] == kind]


def reply(*objects):
    return "So I need the information about the following objects: " + " and ".join(objects) + "."


BLUE = (620, 620, 660, 660)
QUESTION = "What is the colour of the blue square?\n(A) red (B) blue"


def zoom_config(**overrides):
    return FocusConfig(**{"method": "zoomeye", "zoomeye_depth": 2, "zoomeye_bias": 0.2,
                          "zoomeye_patch_scale": 1.0, **overrides})


def answer(adapter, image, question=QUESTION, **overrides):
    return Pipeline(adapter, zoom_config(**overrides)).answer(image, question)


def test_exact_passes_of_a_local_view_search_on_a_scripted_model():
    """800 x 800, patch 200, D = 2, b = 0.2 (LLaVA-1.5's settings). Pops: the root (answering -0.5:
    0.25 % blue), (3,) (-0.5: 1 %; existence +0.9 gives it priority 0.36, the others -0.36), then
    (3, 3) (4 %: 0.8 >= 0.6). Passes: 3 answering + 2 x (4 + 4) priorities = 19, in 3 + 2 calls."""
    adapter = ZoomFake(reply=reply("blue square"))
    result = answer(adapter, scene((800, 800), {"blue": [BLUE]}))
    counters, target = result.trace.counters, result.trace.targets[0]
    assert counters.fp == 19 and counters.passes["search"] == 19 and counters.fp_targets == 1 and counters.fp_answer == 1
    assert counters.batches == 1 + 5 + 1 and counters.fp_total == 21 and counters.seconds["search"] > 0
    assert [(r.depth, r.node_box) for r in (target.rois[i] for i in target.order)] == [
        (0, [0, 0, 800, 800]), (1, [400, 400, 800, 800]), (2, [600, 600, 800, 800])]
    chosen = target.rois[target.chosen[0]]
    assert chosen.box == [600, 600, 800, 800] and chosen.confidence == pytest.approx(0.8, abs=1e-6)
    assert [r.priority for r in target.rois[1:5]] == pytest.approx([-0.36, -0.36, -0.36, 0.36], abs=1e-6)
    assert target.search_depth == 2 and target.answering_question == "What is the colour of the blue square?"
    assert result.trace.final_layout == "crop" and result.trace.final_boxes == [[600, 600, 800, 800]]
    assert result.final_images[0].size == (200, 200)
    # a local-view model sees one image per prompt, in the local wording
    assert all(len(sizes) == 1 and texts is None for _, _, sizes, texts, *_ in adapter.log)
    assert adapter.prompts_of("latent")[0][1] == LATENT_PROMPTS["local"].format(target="blue square")
    assert adapter.prompts_of("existence")[0][1] == EXISTENCE.format(target="blue square")
    assert adapter.prompts_of("answering")[0][1] == ANSWERING_PROMPT.format(question="What is the colour of the blue square?")
    assert adapter.prompts_of("answering")[0][2] == [(800, 800)]  # the root is the full image


def test_batch_size_changes_model_calls_not_passes():
    image = scene((800, 800), {"blue": [BLUE]})
    batched = answer(ZoomFake(reply=reply("blue square")), image, zoomeye_batch_size=3).trace
    assert batched.counters.fp == 19 and batched.counters.batches == 1 + 3 + 2 * 3 + 1  # 8 prompts in 3 + 3 + 2
    one_by_one = answer(ZoomFake(reply=reply("blue square")), image, zoomeye_batch_size=1).trace
    assert one_by_one.counters.fp == 19 and one_by_one.counters.batches == 1 + 19 + 1
    assert batched.to_dict()["targets"] == one_by_one.to_dict()["targets"]


def test_global_local_views_are_the_framed_full_image_and_the_zoomed_crop():
    adapter = ZoomFake(reply=reply("blue square"), multi_image=True)
    image = scene((800, 800), {"blue": [BLUE]})
    result = answer(adapter, image, zoomeye_patch_scale=1.2)
    assert result.trace.counters.fp == 19  # the same search: zoomed views see what local crops saw
    root, *rest = adapter.log
    assert root[0] == "answering" and root[2] == [(800, 800)] and root[3] is None  # the root alone ("global")
    existence = adapter.prompts_of("existence")
    assert existence[0][1] == ZOOM_EXISTENCE_PROMPT.format(target="blue square")
    assert adapter.prompts_of("latent")[0][1] == LATENT_PROMPTS["zoom"].format(target="blue square")
    width = outline_width((800, 800))
    assert width == 6
    # (0,) is 400 px, its view int(400 * 1.2) = 480 px, framed 6 px outside: a 486 px zoomed view
    assert existence[0][2] == [(200, 200), (486, 486)] and existence[0][3] == list(ZOOM_IMAGE_TEXTS)
    assert all(entry[4] for entry in rest)  # encoded like the final input (final_images_alone)
    # final: [global view, zoomed view] with ZoomEye's texts; (3, 3)'s view 240 px, cut at the border
    assert result.trace.final_layout == "global+crops" and result.trace.final_texts == list(ZOOM_IMAGE_TEXTS)
    assert result.trace.final_boxes == [[0, 0, 800, 800], [580, 580, 800, 800]]
    global_image, zoomed = result.final_images
    assert global_image.size == (200, 200) and zoomed.size == (226, 226)
    assert zoomed.getpixel((0, 100)) == OUTLINE_COLOUR and zoomed.getpixel((width, 100)) != OUTLINE_COLOUR
    assert adapter.final_calls[-1][1] == list(ZOOM_IMAGE_TEXTS)


def test_the_global_view_is_padded_square_or_fitted():
    image = scene((900, 300), {"blue": [(10, 10, 50, 50)]})
    square = global_view(image, 200, "square")
    assert square.size == (200, 200)
    assert colour_fraction(square.crop((0, 0, 200, 60)), "blue") == 0  # the top third is padding
    assert global_view(image, 200, "fit").size == (200, 66)
    assert global_view(scene((300, 900), {}), 448, "fit").size == (149, 448)
    with pytest.raises(ValueError):
        global_view(image, 200, "stretch")


def settings(multi_image=False, patch=200, scale=1.0, mode="square"):
    return ViewSettings(multi_image=multi_image, patch_size=patch, patch_scale=scale, global_view=mode)


def test_merge_near_joins_boxes_less_than_100_px_apart():
    a = (0, 0, 10, 10)
    assert merge_near([a, (109, 0, 120, 10)]) == [(0, 0, 120, 10)]
    assert merge_near([a, (110, 0, 120, 10)]) == [a, (110, 0, 120, 10)]
    assert merge_near([a, (50, 50, 60, 60), (150, 0, 160, 10)]) == [(0, 0, 160, 60)]  # chains merge


def test_final_input_rules():
    image = scene((2400, 1200), {"blue": [(100, 100, 140, 140), (2200, 1000, 2240, 1040)]})
    tree = build_tree(image.size, 300, 4, 5)
    local = settings(patch=300)
    # 2400 x 1200 -> 4 x 1 (600 x 1200) -> 1 x 4 (600 x 300) -> 4 x 1 (150 x 300) -> 1 x 4 (150 x 75)
    node = tree.root.children[0].children[0].children[0]  # (0, 0, 150, 300), view (0, 0, 300, 300)
    far = tree.nodes()[-1]  # the bottom-right leaf
    assert final_input(image, [], local, 672).layout == "full"
    assert final_input(image, [tree.root], local, 672).layout == "full"
    one = final_input(image, [node], local, 672)
    assert one.layout == "crop" and one.boxes == [(0, 0, 300, 300)] and one.images[0].size == (300, 300)
    near = final_input(image, [node, tree.root.children[0].children[0].children[1]], local, 672)
    assert near.layout == "crop" and len(near.boxes) == 1  # views overlap: one box
    two = final_input(image, [node, far], local, 672)  # far apart, union 2400 px wide: a canvas
    assert two.layout == "canvas" and two.images[0].size == (672, 672)
    assert two.images[0].tobytes() == paste_on_canvas(image, two.boxes, 672).tobytes()
    middle = tree.root.children[1].children[0].children[0]  # (600, 0, 750, 300)
    apart = final_input(image, [node, middle], local, 672)  # views (0, 0, 300, 300) and (525, 0, 825, 300)
    assert apart.layout == "union" and apart.boxes == [(0, 0, 825, 300)] and apart.images[0].size == (825, 300)
    # global-local: any root among the nodes gives the full image; else the framed global view and zoomed view
    multi = settings(multi_image=True, patch=300)
    assert final_input(image, [node, tree.root], multi, 672).layout == "full"
    both = final_input(image, [node, far], multi, 672)
    assert both.layout == "global+crops" and both.texts == list(ZOOM_IMAGE_TEXTS) and len(both.images) == 2
    width = outline_width(image.size)  # 2400 // 120 = 20
    assert both.images[1].size == (2400, 1200)  # the union of both framed boxes spans the image
    assert both.images[1].getpixel((300 + width // 2, 100)) == OUTLINE_COLOUR


def test_a_local_view_is_the_crop_and_a_root_the_full_image():
    image = scene((800, 600), {})
    tree = build_tree(image.size, 200, 4, 2)
    view = node_view(image, tree.root.children[1].children[0], settings())
    assert view.kind == "local" and view.box == (400, 0, 600, 200) and view.images[0].size == (200, 200)
    assert view.texts is None
    root = node_view(image, tree.root, settings(multi_image=True))
    assert root.kind == "global" and root.images == (image,) and root.texts is None


def test_several_targets_on_a_global_local_model_ask_the_root_first():
    image = scene((800, 800), {"blue": [BLUE]})
    # blue covers 0.25 % of the root: not answerable there, both targets are searched
    adapter = ZoomFake(reply=reply("blue square", "green square"), multi_image=True)
    result = answer(adapter, image)
    first = adapter.log[:2]
    assert [e[1] for e in first] == [ANSWERING_PROMPT.format(question=DECOMPOSED_QUESTION.format(target=t))
                                     for t in ("blue square", "green square")]
    assert first[0][2] == [(200, 200)] and first[0][-1] == first[1][-1]  # the global view, one call
    blue, green = result.trace.targets
    assert blue.root_answering == pytest.approx(-0.5, abs=1e-6) and blue.answering_question == "What is the appearance of the blue square?"
    # several targets: the searches must reach the bottom; green is never found (no node chosen)
    assert blue.chosen and not green.chosen
    assert blue.rois[blue.order[-1]].depth == 2
    # a big blue square is answerable on the root: no search, the full image answers
    adapter = ZoomFake(reply=reply("blue square", "green square"), multi_image=True)
    result = answer(adapter, scene((800, 800), {"blue": [(100, 100, 400, 400)]}))
    assert result.trace.counters.fp == 2 and result.trace.final_layout == "full"
    assert all(not t.rois for t in result.trace.targets) and "no search" in result.trace.notes[-1]


def test_several_targets_on_a_local_view_model_never_ask_the_root():
    adapter = ZoomFake(reply=reply("blue square", "green square"))
    result = answer(adapter, scene((800, 800), {"blue": [BLUE], "green": [(100, 100, 140, 140)]}))
    assert all(sizes != [(800, 800)] for kind, _, sizes, *_ in adapter.prompts_of("answering"))
    blue, green = result.trace.targets
    assert blue.rois[blue.order[0]].depth == 0 and blue.rois[blue.order[0]].confidence is None
    assert blue.rois[blue.chosen[0]].node_box == [600, 600, 800, 800]
    assert green.rois[green.chosen[0]].node_box == [0, 0, 200, 200]
    # passes = the answering calls on popped nodes + existence and latent of every queued node
    queued = sum(r.priority is not None for t in (blue, green) for r in t.rois)
    popped = sum(len(t.order) - 1 for t in (blue, green))
    assert result.trace.counters.fp == popped + 2 * queued == len(adapter.log)
    assert len(adapter.prompts_of("answering")) == popped
    # two far-apart views, union 800 px (< 1000): the crop of their union
    assert result.trace.final_layout == "union" and result.trace.final_boxes == [[0, 0, 800, 800]]


def test_a_type2_target_checks_21_nodes_in_the_singular():
    adapter = ZoomFake(reply=reply("all blue squares"))
    image = scene((800, 800), {"blue": [(20, 20, 60, 60), (720, 20, 760, 60)]})
    result = answer(adapter, image, zoomeye_batch_size=32)
    target = result.trace.targets[0]
    assert target.all_instances and result.trace.question_type == 2
    assert result.trace.counters.fp == 21 and result.trace.counters.batches == 1 + 1 + 1
    assert {entry[1] for entry in adapter.log} == {EXISTENCE.format(target="blue square")}
    kept = [target.rois[i] for i in target.chosen]
    # every node showing blue is 0.9; the kept ones are those no descendant beats: all of them
    assert all(r.confidence == pytest.approx(0.9, abs=1e-6) for r in kept)
    assert [0, 0, 200, 200] in [r.node_box for r in kept] and [0, 0, 800, 800] in [r.node_box for r in kept]
    assert result.trace.final_layout == "crop" and result.trace.final_boxes == [[0, 0, 800, 800]]  # the root is kept


def test_same_inputs_give_the_same_trace_and_images():
    image = scene((800, 800), {"blue": [BLUE]})
    runs = [answer(ZoomFake(reply=reply("blue square", "green square"), multi_image=True), image) for _ in range(2)]
    dicts = [r.trace.to_dict() for r in runs]
    for d in dicts:
        for key in ("seconds", "total_seconds", "peak_mem_gb"):
            d["counters"].pop(key)
    assert dicts[0] == dicts[1]
    assert [im.tobytes() for im in runs[0].final_images] == [im.tobytes() for im in runs[1].final_images]


def test_a_failure_mid_search_keeps_the_trace_so_far():
    adapter = ZoomFake(reply=reply("blue square"), fail_at_call=2)  # root answering, priorities, then boom
    with pytest.raises(PipelineError, match="fell over") as caught:
        answer(adapter, scene((800, 800), {"blue": [BLUE]}))
    trace = caught.value.trace
    target = trace.targets[0]
    assert trace.error and trace.counters.fp == 1 + 8 and len(target.rois) == 5 and target.order == [0, 4]
    assert target.chosen == [] and all(r.priority is not None for r in target.rois[1:])


def test_a_zoomeye_trace_round_trips_and_old_traces_still_load():
    result = answer(ZoomFake(reply=reply("blue square")), scene((800, 800), {"blue": [BLUE]}))
    data = json.loads(result.trace.to_json())
    assert Trace.from_dict(data).to_dict() == result.trace.to_dict()
    old = {"anchor": [1, 1], "anchor_score": 0.5, "cells": [0, 0, 2, 2], "box": [0, 0, 10, 10], "confidence": 0.3}
    old_target = {"name": "cat", "all_instances": False, "rois": [old], "order": [0], "chosen": [0]}
    loaded = Trace.from_dict({**data, "method": "focus", "targets": [old_target]})
    assert loaded.targets[0].rois[0] == RoiTrace(**old) and loaded.targets[0].search_depth is None


def test_recall_counts_popped_and_type2_nodes_never_the_root():
    trace = Trace(question="q", prompt="q", image_size=[800, 800], config={}, method="zoomeye")
    trace.targets = [TargetTrace(name="blue square", all_instances=False, rois=[
        RoiTrace(box=[0, 0, 800, 800], confidence=0.1, depth=0),  # popped root: never counts
        RoiTrace(box=[0, 0, 200, 200], confidence=-0.5, depth=1),  # popped
        RoiTrace(box=[600, 600, 800, 800], confidence=None, depth=1, priority=0.2),  # only queued
    ], order=[0, 1], chosen=[], search_depth=2)]
    readings = add_recall(trace, [(10, 10, 50, 50), (610, 610, 650, 650), (300, 300, 310, 310)])
    assert readings == {"roi_recall": pytest.approx(1 / 3), "roi_recall_proposed": pytest.approx(2 / 3),
                        "roi_recall_chosen": 0.0}


def test_the_picture_draws_the_searched_nodes_without_a_map():
    image = scene((800, 800), {"blue": [BLUE]})
    result = answer(ZoomFake(reply=reply("blue square")), image)
    figure = render_explanation(result.trace, image, result.final_images)
    panel = np.asarray(figure.image.crop(figure.panels[0].box))
    assert (panel == CHOSEN_COLOUR).all(-1).sum() > 100 and (panel == CHECKED_COLOUR).all(-1).sum() > 100
    x, y = figure.panels[0].to_picture(600, 700)  # the chosen node's left edge
    assert figure.image.getpixel((x + 1, y)) == CHOSEN_COLOUR


# --- configuration ------------------------------------------------------------------------------


def test_config_fields_and_family_defaults():
    assert "zoomeye" in METHODS
    qwen, onevision, llava = (load_config(f) for f in ("qwen2_5_vl", "llava_onevision", "llava_1_5"))
    assert (qwen.zoomeye_patch_size, qwen.zoomeye_global_view, qwen.zoomeye_tau_up) == (448, "fit", 0.95)
    assert (onevision.zoomeye_patch_size, onevision.zoomeye_global_view, onevision.zoomeye_patch_scale) == (0, "square", 1.2)
    assert (llava.zoomeye_bias, llava.zoomeye_patch_scale, llava.zoomeye_decrements) == (0.2, 1.0, (0.1, 0.1, 0.2))
    custom = load_config("llava_1_5", method="zoomeye", zoomeye_decrements="0.05:0.1", zoomeye_split="2")
    assert custom.zoomeye_decrements == (0.05, 0.1) and custom.zoomeye_split == 2
    for bad in ({"zoomeye_patch_size": 3}, {"zoomeye_batch_size": 0}, {"zoomeye_global_view": "stretch"},
                {"zoomeye_split": 3}):
        with pytest.raises(ValueError):
            FocusConfig(**bad)


def test_prompts_are_the_official_strings():
    assert confidence_prompt("existence", "local", "cat", EXISTENCE) == "Is there a cat in the image? Answer Yes or No."
    assert confidence_prompt("existence", "zoom", "cat", EXISTENCE) == "Is there a cat in the zoomed-in view? Answer Yes or No."
    assert confidence_prompt("answering", "global", "Why?", EXISTENCE) == (
        "Question: Why?\nCould you answer the question based on the the available visual information? Answer Yes or No.")
    assert LATENT_PROMPTS["global"].startswith("According to your common sense knowledge and the content of image,")
    with pytest.raises(ValueError):
        confidence_prompt("answering", "side", "Why?", EXISTENCE)


# --- end to end on the tiny models ----------------------------------------------------------------


@pytest.mark.parametrize("family", [spec.family for spec in ADAPTERS])
def test_the_tiny_models_run_zoomeye_through_the_api(family, tiny_checkpoint, tmp_path):
    focus = Focus.from_pretrained(tiny_checkpoint(family), dtype="float32", device="cpu", method="zoomeye",
                                  zoomeye_depth=2, zoomeye_patch_size=200)
    result = focus.answer(red_square_image(tmp_path), TINY_QUESTION)
    trace = result.trace
    assert isinstance(result.answer, str) and trace.error is None and trace.method == "zoomeye"
    (target,) = trace.targets
    assert target.name == "red car" and target.search_depth == 2
    queued = sum(r.priority is not None for r in target.rois)
    assert trace.counters.fp == len(target.order) + 2 * queued and trace.counters.fp_answer == 1
    assert all(-1 <= r.confidence <= 1 for r in target.rois if r.confidence is not None)
    if target.chosen and target.rois[target.chosen[0]].depth:
        assert len(result.final_images) == 1 + focus.adapter.multi_image
    else:
        assert trace.final_layout == "full"
    again = focus.answer(red_square_image(tmp_path), TINY_QUESTION).trace
    assert again.to_dict()["targets"] == trace.to_dict()["targets"]
    png, _ = result.save(tmp_path, "tiny")
    assert Image.open(png).size == result.picture().size


def test_explain_runs_zoomeye_from_the_command_line(tiny_checkpoint, tmp_path, capsys):
    from focus_eval.present.cli import main

    code = main(["explain", "--model", str(tiny_checkpoint("llava_1_5")), "--image", str(red_square_image(tmp_path)),
                 "--question", TINY_QUESTION, "--out", str(tmp_path / "maps"), "--json", "--quiet", "--device", "cpu",
                 "--dtype", "float32", "--set", "method=zoomeye", "--set", "zoomeye_depth=1",
                 "--set", "zoomeye_decrements=0.3:0.5"])
    out, err = capsys.readouterr()
    assert code == 0, err
    record = json.loads(out)
    trace = Trace.from_json((tmp_path / "maps" / "scene.json").read_text())
    assert trace.method == "zoomeye" and trace.config["zoomeye_decrements"] == [0.3, 0.5]
    assert trace.targets[0].search_depth == 1 and record["counters"]["fp"] == trace.counters.fp > 0
    assert (tmp_path / "maps" / "scene.png").is_file()
