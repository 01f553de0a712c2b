"""The whole FOCUS pipeline against an adapter whose cache and answers the test controls."""

import pytest

from fake_adapter import FakeAdapter, colour_fraction, scene
from focus_eval.config import FocusConfig
from focus_eval.pipeline import Pipeline, PipelineError
from focus_eval.protocol import OptionScores, PassCost
from focus_eval.trace import Trace

SIZE = (800, 600)  # grid 12x16 -> 50 px cells
RED = (500, 300, 550, 350)
PROMPT = "What is the colour of the red square?\n(A) red (B) blue\nAnswer with the option's letter from the given choices directly."


def config(**overrides):
    base = dict(k=30, s_min=3, s_max=5, s_dist=2, n_steps=4, overrun=True, downsample=1, gaussian_sigma=0.0,
                layer_start=0, layer_end=4, reference_num_layers=4)
    base.update(overrides)
    return FocusConfig(**base)


def inside(inner, outer):
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def test_planted_target_is_found_and_counted_exactly():
    adapter = FakeAdapter()
    result = Pipeline(adapter, config()).answer(scene(SIZE, {"red": [RED]}), PROMPT)
    trace = result.trace

    assert [t.name for t in trace.targets] == ["red square"]
    assert trace.target_source == "icl" and trace.question_type == 1
    target = trace.targets[0]
    best = target.rois[target.chosen[0]]
    assert inside(RED, best.box), (best.box, RED)
    assert trace.final_layout == "crop" and trace.final_boxes == [best.box]
    # the default expansion (map / its mean) grows the ROI to s_max = 5 cells of 50 px
    assert best.box == [400, 200, 650, 450]
    assert colour_fraction(result.final_images[0], "red") == pytest.approx(50 * 50 / 250**2)
    assert result.answer == "A"

    counters = trace.counters
    assert counters.fp == adapter.calls["prefill"] + adapter.calls["yes_no_prompts"]
    assert counters.fp == 1 + min(4, len(target.rois))  # one relevance pass, one n_steps batch
    assert adapter.calls["yes_no"] == 1  # the n_steps checks were one batched call
    assert (counters.fp_targets, counters.fp_answer) == (1, 1)
    assert counters.fp_total == counters.fp + 2
    assert counters.batches == adapter.calls["prefill"] + adapter.calls["yes_no"] + adapter.calls["generate"]
    assert counters.flops == pytest.approx(1e9 * counters.fp_total)
    assert set(counters.seconds) == {"targets", "relevance", "proposals", "ranking", "search", "answer"}
    assert counters.passes["search"] == 0 and counters.bp == 0  # FOCUS books its own stages, no backward
    assert counters.passes == {"targets": 1, "relevance": 1, "proposals": 0, "ranking": counters.fp - 1, "search": 0,
                               "answer": 1}
    assert counters.stage_flops["ranking"] == pytest.approx(1e9 * (counters.fp - 1))
    assert sum(counters.stage_flops.values()) == pytest.approx(counters.flops)
    assert counters.peak_mem_gb > 0


def test_overrun_stops_at_the_first_yes():
    # Decoys are more relevant than the real square, so the first n_steps ROIs all say "No".
    decoys = [(50, 50, 100, 100), (650, 50, 700, 100), (50, 450, 100, 500)]
    adapter = FakeAdapter(decoys=decoys, square_noise=0.5)
    cfg = config(n_steps=1, overrun=True)
    trace = Pipeline(adapter, cfg).answer(scene(SIZE, {"red": [RED], "blue": decoys}), PROMPT).trace

    rois = trace.targets[0].rois
    shows_red = [RED[0] < r.box[2] and r.box[0] < RED[2] and RED[1] < r.box[3] and r.box[1] < RED[3] for r in rois]
    first_yes = shows_red.index(True)
    assert first_yes >= 1, "the test needs the real square behind at least one decoy ROI"
    checked = [r.confidence is not None for r in rois]
    assert checked == [i <= first_yes for i in range(len(rois))]
    assert all(rois[i].confidence < 0 for i in range(first_yes)) and rois[first_yes].confidence > 0
    assert trace.counters.fp == 1 + first_yes + 1
    assert adapter.calls["yes_no"] == first_yes + 1  # n_steps batch of one, then one per overrun step
    assert trace.targets[0].chosen == [first_yes]


def test_without_overrun_the_budget_is_n_steps():
    decoys = [(50, 50, 100, 100), (650, 50, 700, 100), (50, 450, 100, 500)]
    adapter = FakeAdapter(decoys=decoys, square_noise=0.5)
    trace = Pipeline(adapter, config(n_steps=2, overrun=False)).answer(
        scene(SIZE, {"red": [RED], "blue": decoys}), PROMPT).trace
    assert trace.counters.fp == 1 + 2
    assert sum(r.confidence is not None for r in trace.targets[0].rois) == 2


def test_type2_question_composes_a_canvas():
    squares = [(60, 60, 110, 110), (640, 80, 690, 130), (300, 460, 350, 510)]
    adapter = FakeAdapter(reply="So I need the information about the following objects: all red squares.")
    result = Pipeline(adapter, config(t_type2=0.5)).answer(
        scene(SIZE, {"red": squares}), "How many red squares are there?\nA. 2\nB. 3\nAnswer the option letter directly.")
    trace = result.trace
    assert trace.question_type == 2
    assert trace.final_layout == "canvas" and len(result.final_images) == 1
    for square in squares:
        assert any(inside(square, box) for box in trace.final_boxes), square
    target = trace.targets[0]
    assert all(r.confidence is not None for r in target.rois)  # type 2 checks every proposal
    assert trace.counters.fp == 1 + len(target.rois)


def test_multi_image_models_get_global_view_plus_crops():
    adapter = FakeAdapter(multi_image=True)
    result = Pipeline(adapter, config()).answer(scene(SIZE, {"red": [RED]}), PROMPT)
    assert result.trace.final_layout == "global+crops"
    assert len(result.final_images) == 2 and result.final_images[0].size == SIZE


def test_question_without_targets_falls_back_to_the_full_image():
    adapter = FakeAdapter(reply="zzz qq")
    result = Pipeline(adapter, config()).answer(scene(SIZE, {"red": [RED]}), "What is going on here?")
    trace = result.trace
    assert trace.targets == [] and trace.target_source == "none"
    assert trace.final_layout == "full" and result.final_images[0].size == SIZE
    assert (trace.counters.fp, trace.counters.fp_targets, trace.counters.fp_answer) == (0, 1, 1)
    assert adapter.calls["prefill"] == 0


def test_vanilla_answers_on_the_full_image_with_the_same_counters():
    adapter = FakeAdapter()
    trace = Pipeline(adapter, config(method="vanilla")).answer(scene(SIZE, {"red": [RED]}), PROMPT).trace
    assert trace.final_layout == "full"
    assert (trace.counters.fp, trace.counters.fp_targets, trace.counters.fp_answer) == (0, 0, 1)


def test_ranking_off_takes_the_top_anchor_without_checks():
    adapter = FakeAdapter()
    trace = Pipeline(adapter, config(ranking=False)).answer(scene(SIZE, {"red": [RED]}), PROMPT).trace
    assert adapter.calls["yes_no"] == 0 and trace.counters.fp == 1
    assert trace.targets[0].chosen == [0]


@pytest.mark.parametrize("relevance", ["kk", "random"])
def test_relevance_ablations_use_their_map_and_are_reproducible(relevance):
    image = scene(SIZE, {"red": [RED]})
    adapters = [FakeAdapter(), FakeAdapter()]
    traces = [Pipeline(adapter, config(relevance=relevance)).answer(image, PROMPT).trace for adapter in adapters]
    assert traces[0].targets[0].relevance_map == traces[1].targets[0].relevance_map
    assert [adapter.calls["with_keys"] for adapter in adapters] == [int(relevance == "kk")] * 2
    value_map = Pipeline(FakeAdapter(), config()).answer(image, PROMPT).trace.targets[0].relevance_map
    assert traces[0].targets[0].relevance_map != value_map
    if relevance == "random":
        other = Pipeline(FakeAdapter(), config(relevance="random", seed=1)).answer(image, PROMPT).trace
        assert other.targets[0].relevance_map != traces[0].targets[0].relevance_map


def test_logits_matching_scores_the_options_as_statements():
    adapter = FakeAdapter()
    trace = Pipeline(adapter, config(answer_scheme="logits")).answer(scene(SIZE, {"red": [RED]}), PROMPT).trace
    assert trace.answer == "A"
    assert trace.counters.fp_answer == 2 and adapter.calls["option_scores"] == 1
    # C.5: "(A) Red" -> "The color of the car is red."
    assert adapter.scored == [["The colour of the red square is red.", "The colour of the red square is blue."]]
    Pipeline(adapter, config(answer_scheme="logits", option_format="option")).answer(
        scene(SIZE, {"red": [RED]}), PROMPT)
    assert adapter.scored[1] == ["red", "blue"]


class FixedScores(FakeAdapter):
    """Option A: 2 tokens summing to -2; option B: 6 tokens summing to -3."""

    def option_scores(self, images, prompt, options, **image_options):
        return OptionScores(scores=[-2.0, -3.0], token_counts=[2, 6], cost=PassCost(2, 2, 2e9, 0))


@pytest.mark.parametrize("option_score, answer", [("mean", "B"), ("sum", "A")])
def test_logits_matching_normalises_by_length(option_score, answer):
    # mean log-probability: -1 per token for A, -0.5 for B; the sum favours the shorter A
    config_ = config(answer_scheme="logits", option_score=option_score)
    assert Pipeline(FixedScores(), config_).answer(scene(SIZE, {"red": [RED]}), PROMPT).answer == answer
    assert FocusConfig().option_score == "mean" and FocusConfig().option_format == "statement"


@pytest.mark.parametrize("final_texts, final_images_alone", [(True, True), (False, False)])
def test_multi_image_answer_is_interleaved_and_each_image_alone(final_texts, final_images_alone):
    adapter = FakeAdapter(multi_image=True)
    config_ = config(final_texts=final_texts, final_images_alone=final_images_alone)
    trace = Pipeline(adapter, config_).answer(scene(SIZE, {"red": [RED]}), PROMPT).trace
    (sizes, texts, alone), = adapter.final_calls
    assert trace.final_layout == "global+crops" and sizes[0] == SIZE and len(sizes) == 2
    expected = ["Image 1 is the full image; red outlines mark the region shown enlarged in the next image.",
                "Image 2 is an enlarged view of the region with the red square."]
    assert texts == (expected if final_texts else None) and trace.final_texts == (expected if final_texts else [])
    assert alone is final_images_alone
    assert FocusConfig().final_texts and FocusConfig().final_images_alone


def test_type2_targets_are_asked_about_in_the_singular_at_the_templates_offset():
    adapter = FakeAdapter(reply="So I need the information about the following objects: all red squares.")
    trace = Pipeline(adapter, config()).answer(scene(SIZE, {"red": [RED]}), "How many red squares are there?").trace
    assert trace.question_type == 2 and trace.targets[0].name == "red squares"
    prompt = "Is there a red square in the image? Answer Yes or No."
    assert trace.targets[0].existence_prompt == prompt
    assert adapter.prefills == [(prompt, "red square", len("Is there a "))]


def test_unlocatable_target_is_noted_and_the_question_still_answered():
    adapter = FakeAdapter(locatable=False)
    trace = Pipeline(adapter, config()).answer(scene(SIZE, {"red": [RED]}), PROMPT).trace
    assert "not located" in trace.targets[0].notes[0]
    assert trace.final_layout == "full" and trace.answer == "A"
    assert trace.counters.fp == 0


def test_failure_keeps_what_was_computed():
    adapter = FakeAdapter(fail_generate_with_images=True)
    with pytest.raises(PipelineError) as caught:
        Pipeline(adapter, config()).answer(scene(SIZE, {"red": [RED]}), PROMPT)
    trace = caught.value.trace
    assert "generation exploded" in trace.error
    assert trace.targets[0].rois and trace.counters.fp >= 2


def test_same_inputs_same_trace_and_json_round_trip():
    image = scene(SIZE, {"red": [RED]})
    first, second = (Pipeline(FakeAdapter(), config()).answer(image, PROMPT).trace for _ in range(2))
    strip = lambda t: {k: v for k, v in t.to_dict().items() if k != "counters"}
    assert strip(first) == strip(second)
    assert first.counters.fp == second.counters.fp
    again = Trace.from_json(first.to_json())
    assert again.to_dict() == first.to_dict()


def test_the_trace_says_why_targets_were_left_out():
    image = scene(SIZE, {"red": [RED]})
    adapter = FakeAdapter(reply="So I need the information about the following objects: red square and blue sq",
                          reply_truncated=True)
    trace = Pipeline(adapter, config()).answer(image, PROMPT).trace
    assert [t.name for t in trace.targets] == ["red square"]
    assert any("the last one, 'blue sq', may be cut short and is left out" in note for note in trace.notes)
    nothing = Pipeline(FakeAdapter(reply="garbage"), config()).answer(
        image, "\u8d64\u3044\u5186\u306f\u4f55\u8272\u3067\u3059\u304b\uff1f").trace
    assert nothing.targets == [] and nothing.notes[-2:] == [
        "the rule fallback finds no object in the question (it reads English only)",
        "no target: answered on the full image"]
