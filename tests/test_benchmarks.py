"""benchmarks/adapters.py keeps working: a tiny run end to end, and its 7B architectures are the
real ones (parameter counts of the hub checkpoints); benchmarks/fidelity.py's planted-map
measurement of the ROI expansion readings; benchmarks/vicrop_attention.py runs both ways to the
same map. Nothing here is timed."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    module = load_script("adapters")
    yield module
    del sys.modules[module.__name__]


def test_expansion_readings_on_planted_maps_agree_with_table_12():
    """Table 12b/c/e need the ROIs to reach s_max whatever the threshold in [0.3, 0.7]: only the
    "mean" reading (the default) does; the others stay at s_min and move with the threshold."""
    fidelity = load_script("fidelity")
    try:
        readings = fidelity.expansion_readings(scenes=6)
    finally:
        del sys.modules[fidelity.__name__]
    assert readings["mean"]["at s_max (t=0.7)"] >= 0.95 and readings["mean"]["changed 0.3 vs 0.7"] == 0
    for reading in ("global", "max", "anchor"):
        assert readings[reading]["at s_max (t=0.7)"] < 0.05 and readings[reading]["changed 0.3 vs 0.7"] > 0.5


def test_tiny_run_measures_vanilla_focus_focus_without_the_speedups_and_the_baselines_side_by_side(bench, tmp_path):
    raw = tmp_path / "raw.json"
    lines = bench.main(["--size", "tiny", "--families", "llava_1_5", "--steps", "2", "--image", "448x336",
                        "--warmup", "1", "--repeats", "1", "--threads", "1", "--workdir", str(tmp_path),
                        "--json", str(raw)])
    runs = json.loads(raw.read_text())["llava_1_5"]
    assert list(runs) == ["vanilla", "FOCUS n=2", "FOCUS n=2 plain", "ZoomEye Depth-5 (4 crops)", "ViCrop rel-att",
                          "ViCrop grad-att"]
    (_, vanilla), (first, focus), (_, plain), (_, zoomeye), (_, rel), (_, grad) = runs.values()
    # vanilla: one answer on the full image, the scripted reply "A" then end-of-sequence
    assert (vanilla["counters"]["fp"], vanilla["counters"]["fp_total"], vanilla["model_calls"]) == (0, 1, 2)
    assert vanilla["answer"] == "A" and vanilla["counters"]["peak_mem_gb"] > 0
    # FOCUS: the in-context reply names the flag, one prefill, 2 checks (overrun off), the answer
    assert focus["target_source"] == "icl" and focus["targets"] == ["flag"] and focus["answer"] == "A"
    counters = focus["counters"]
    assert (counters["fp"], counters["fp_targets"], counters["fp_answer"]) == (3, 1, 1)
    assert [(name, passes) for name, passes, *_ in focus["calls"]] == [
        ("generate", 1), ("prefill", 1), ("yes_no_logits", 2), ("generate", 1)]
    assert all(counters["seconds"][stage] > 0 for stage in ("targets", "relevance", "ranking", "answer"))
    # the same question without the speed-ups: the same outcome, in more model calls
    assert bench.same_outcome(focus["outcome"], plain["outcome"]) and counters["flops"] == plain["counters"]["flops"]
    checks = {name: [calls for call, _, _, calls, _, _ in run["calls"] if call == "yes_no_logits"]
              for name, run in (("focus", focus), ("plain", plain))}
    assert checks == {"focus": [2], "plain": [1]}  # a 576-token image per check: one per forward
    targets = {name: run["calls"][0][4] for name, run in (("first", first), ("focus", focus), ("plain", plain))}
    assert len(targets["plain"]) == 22  # the scripted reply up to its newline, one call per token
    assert targets["first"][0] > 400 and targets["first"][1:] == targets["focus"]  # the first builds the prefix cache
    assert len(targets["focus"]) <= 12 and targets["focus"][0] <= 100
    # the baselines, each with the family's official settings, through the same adapter calls and counters
    assert zoomeye["outcome"]["method"] == "zoomeye" and zoomeye["counters"]["fp"] == zoomeye["counters"]["passes"]["search"]
    assert zoomeye["counters"]["fp"] == sum(passes for name, passes, *_ in zoomeye["calls"] if name == "yes_no_logits")
    for row, fp, bp in ((rel, 2, 0), (grad, 1, 1)):  # one map: rel-att 2 forward passes, grad-att 1 and 1 backward
        assert (row["counters"]["fp"], row["counters"]["bp"], row["counters"]["fp_targets"]) == (fp, bp, 0)
        assert [(name, passes) for name, passes, *_ in row["calls"]] == [("last_token_attention", 1)] * fp + [
            ("generate", 1)]
        assert row["final_layout"] == "full+crop"  # ViCrop answers from the full image and its crop
    text = "\n".join(lines)
    assert "target, FOCUS n=2 vs vanilla: wall time < 3.0x" in text
    assert "target <= 12 calls: PASS, <= 100 prefill tokens: PASS" in text
    assert "confidences and crops identical" in text
    assert "peak GB by call (largest over the timed questions): vanilla answer " in text
    assert all(call[5] > 0 for call in focus["calls"]) and focus["counters"]["peak_mem_gb"] >= max(
        call[5] for call in focus["calls"])
    assert list(tmp_path.iterdir()) == [raw]  # checkpoints and logs removed


def test_outcomes_compare_floats_to_a_tolerance_and_everything_else_exactly(bench):
    a = {"answer": "A", "rois": [{"box": [1, 2, 3, 4], "confidence": 0.5}], "order": [1, 0]}
    assert bench.same_outcome(a, {**a, "rois": [{"box": [1, 2, 3, 4], "confidence": 0.500004}]})
    assert not bench.same_outcome(a, {**a, "rois": [{"box": [1, 2, 3, 4], "confidence": 0.5001}]})
    assert not bench.same_outcome(a, {**a, "order": [0, 1]}) and not bench.same_outcome(a, {**a, "answer": "B"})
    assert not bench.same_outcome(a, {**a, "rois": [{"box": [1, 2, 3, 5], "confidence": 0.5}]})
    assert not bench.same_outcome({"c": None}, {"c": 0.0}) and not bench.same_outcome(a, {"answer": "A"})


@pytest.mark.parametrize("family, billions", [("llava_1_5", 7.06), ("llava_onevision", 8.03), ("qwen2_5_vl", 8.29)])
def test_7b_architectures_have_the_hub_checkpoints_parameter_counts(bench, family, billions):
    model_class, config, processor = bench.model_parts(family, "7b")
    with torch.device("meta"):
        model = model_class._from_config(config)
    assert round(sum(p.numel() for p in model.parameters()) / 1e9, 2) == billions
    assert processor.image_processor is not None


def test_bad_arguments_are_refused_with_a_message(bench, capsys):
    for argv, message in [(["--image", "2048"], "expected WIDTHxHEIGHT"), (["--steps", "0"], "n_steps must be >= 1"),
                          (["--repeats", "0"], "--repeats must be >= 1")]:
        with pytest.raises(SystemExit):
            bench.main(argv)
        assert message in capsys.readouterr().err


def test_vicrop_attention_runs_both_ways_and_their_maps_agree(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # it imports adapters.py as the script does
    vicrop = load_script("vicrop_attention")
    try:
        lines = vicrop.main(["--size", "tiny", "--families", "llava_1_5", "--maps", "grad_att", "--image", "224x168",
                             "--repeats", "1"])
    finally:
        del sys.modules[vicrop.__name__]
    rows = [line.split() for line in lines if line.startswith("  grad_att")]
    assert [row[:2] for row in rows] == [["grad_att", "official"], ["grad_att", "probe"]]
    assert all(float(row[5]) < 1e-5 for row in rows if row[1] == "official")
    assert all(float(row[4]) > 0 for row in rows)  # peak memory
