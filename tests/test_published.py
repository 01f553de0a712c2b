"""The paper's numbers as data (focus_eval/present/compare/published.csv) and what is derived from them
without any run: the transcription against the paper's text, `focus-eval compare --published`,
the setting names, intervals, A.2's efficiency ratios, and docs/reproduce.md."""

import csv
import io
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from focus_eval.present.compare import reproduce
from focus_eval.present.compare.names import BENCHMARKS, FAMILY_MODELS, focus_family, focus_model_id, model_name, task_of
from focus_eval.present.compare.published import COLUMNS, published_rows, published_text
from focus_eval.present.compare.report import build_report, paper_rows
from focus_eval.present.compare.runs import RunData
from focus_eval.present.compare.settings import setting_name, setting_options
from focus_eval.present.compare.stats import cost_to_reach, efficiency_ratio, pareto_front, wilson
from focus_eval.config import DATASETS, load_config
from focus_eval.model_specs import MODEL_SPECS
from paper_tables import PAPER, read_tables

REPO = Path(__file__).resolve().parent.parent
FOCUS_EVAL = Path(sys.executable).with_name("focus-eval")
TABLES = {"Table 2": 33, "Table 3": 22, "Table 5": 6, "Table 10": 240, "Table 13": 18, "Table 14": 36, "Table 15": 10}


def data_rows() -> list[tuple[str, ...]]:
    rows = list(csv.reader(io.StringIO(published_text())))
    assert tuple(rows[0]) == COLUMNS
    return [tuple(row) for row in rows[1:]]


@pytest.mark.skipif(not PAPER.is_file(), reason=f"the paper's text ({PAPER}) is not on this machine")
def test_every_number_matches_the_papers_text():
    """Each row of the data is a cell of the paper (value and FP as printed) and each cell of
    the seven tables is a row: read independently from the text by tests/paper_tables.py."""
    paper = Counter(read_tables(PAPER.read_text()))
    data = Counter(data_rows())
    assert sorted((data - paper).elements()) == []  # in the data, not in the paper
    assert sorted((paper - data).elements()) == []  # in the paper, not in the data
    assert max(data.values()) == 1
    assert Counter(row[1] for row in data_rows()) == TABLES


@pytest.mark.parametrize("cell", [  # typed by hand from the paper, independent of its text file
    ("Table 2", "LLaVA-OV-7B", "focus", "", "mme_realworld_lite", "perception", "54.15", "7.71"),
    ("Table 2", "LLaVA-OV-7B", "zoomeye", "", "mme_realworld_lite", "reasoning_ad", "35.50", ""),
    ("Table 3", "LLaVA-1.5-7B", "focus", "Steps-8 (overrun); K-K w/o RoPE", "vstar", "recall", "63.47", ""),
    ("Table 3", "", "chance", "", "hrbench4k", "overall", "25.00", ""),
    ("Table 5", "Qwen-2.5-VL-7B", "focus", "", "hrbench8k", "overall", "76.25", ""),
    ("Table 10", "LLaVA-OV-7B", "focus", "Steps-4 (overrun)", "vstar", "overall", "92.15", "7.63"),
    ("Table 10", "LLaVA-1.5-7B", "focus", "Steps-2 (no overrun)", "hrbench4k", "overall", "46.5", "5.41"),
    ("Table 10", "LLaVA-1.5-7B", "zoomeye", "Depth-5 (4 crops)", "hrbench8k", "fsp", "61.75", "59.64"),
    ("Table 10", "LLaVA-1.5-7B", "dc2", "", "hrbench8k", "overall", "39.50", "77.02"),
    ("Table 13", "LLaVA-7B (SEAL)", "seal", "", "vstar", "peak_mem_gb", "27.34", "25.53"),
    ("Table 14", "LLaVA-1.5-7B", "zoomeye", "Depth-2 (4 crops)", "vstar", "tflops", "199.21", "44.54"),
    ("Table 15", "LLaVA-1.5-7B", "focus", "Steps-8 (overrun); logits matching", "vstar", "seconds", "2.76", "13.28"),
])
def test_sample_cells(cell):
    assert ("focus-paper", *cell) in data_rows()


def test_published_prints_the_data_as_csv():
    done = subprocess.run([str(FOCUS_EVAL), "compare", "--published"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "source,table,model,method,setting,benchmark,metric,value,fp"
    assert done.stdout == published_text() and len(done.stdout.splitlines()) == 1 + sum(TABLES.values())
    one = subprocess.run([str(FOCUS_EVAL), "compare", "--paper-models", "qwen-2.5-vl-7b"], capture_output=True,
                         text=True, timeout=120)
    assert one.stdout.splitlines() == [",".join(COLUMNS)] + [
        ",".join(row) for row in data_rows() if row[2] == "Qwen-2.5-VL-7B"]
    bad = subprocess.run([str(FOCUS_EVAL), "compare", "--paper-models", "LLaVA-2"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == ("focus-eval: error: --paper-models: unknown model(s) LLaVA-2; the paper's models: LLaVA-1.5-7B, "
                          "LLaVA-7B (SEAL), LLaVA-OV-7B, Qwen-2.5-VL-7B (or all)\n")


def test_names_across_frameworks():
    assert tuple(BENCHMARKS) == DATASETS  # the FocusConfig dataset keys, in their order
    for alias in ("vstar", "vstar_bench", "VStarBench", "V*Bench", "vstar_bench_direct_attributes"):
        assert task_of(alias).benchmark == "vstar" and task_of(alias).answer_scheme == "generate"
    assert task_of("vstar_logits").answer_scheme == "logits"
    assert {task_of(a).benchmark for a in ("hrbench4k", "HRBench4K", "HR-Bench 4K")} == {"hrbench4k"}
    assert {task_of(a).benchmark for a in ("mme_realworld_lite", "mmerealworld_lite", "MME-RealWorld-Lite")} == {
        "mme_realworld_lite"}
    assert task_of("mmmu_val") is None
    assert model_name("llava-hf/llava-1.5-7b-hf") == model_name("/models/llava-1.5-7b-hf/") == "LLaVA-1.5-7B"
    assert model_name("lmms-lab/llava-onevision-qwen2-7b-ov") == "LLaVA-OV-7B"
    assert model_name("/tmp/x/tiny-llava_1_5") == "tiny-llava_1_5"


def test_every_family_defaults_to_a_paper_model():
    assert set(FAMILY_MODELS) == {spec.family for spec in MODEL_SPECS}
    assert FAMILY_MODELS == {"llava_1_5": "LLaVA-1.5-7B", "llava_onevision": "LLaVA-OV-7B", "qwen2_5_vl": "Qwen-2.5-VL-7B"}
    assert {model: focus_model_id(model) for model in FAMILY_MODELS.values()} == {
        "LLaVA-1.5-7B": "llava_1_5_focus", "LLaVA-OV-7B": "llava_ov_focus", "Qwen-2.5-VL-7B": "qwen2_5_vl_focus"}
    assert (focus_family("llava15_focus"), focus_family("llava_hf"), focus_model_id("LLaVA-7B (SEAL)")) == (
        "llava_1_5", None, None)


def test_every_setting_of_the_paper_round_trips_through_our_options():
    """FOCUS, vanilla, ZoomEye and ViCrop: a stated setting becomes model arguments (and a task:
    vstar or vstar_logits) whose run is named by the same setting. The one exception is the
    paper's second label for ZoomEye's default on V*Bench (settings.py)."""
    checked, alias = {}, []
    for row in published_rows():
        if row.model not in FAMILY_MODELS.values() or row.method not in ("focus", "vanilla", "zoomeye", "vicrop") or not (
                row.setting or row.method == "vanilla"):
            continue
        family = next(f for f, m in FAMILY_MODELS.items() if m == row.model)
        options, logits = setting_options(row.method, row.setting, row.benchmark)
        config = load_config(family, row.benchmark, answer_scheme="logits" if logits else "generate", **options)
        named = setting_name(config.to_dict(), load_config(family, row.benchmark).to_dict())
        if row.setting == "Depth-5 (4 crops); logits matching":
            alias.append((row.table, named, logits))
            continue
        assert named == row.setting, row
        checked[row.method] = checked.get(row.method, 0) + 1
    # FOCUS: Table 10: 2 models x 8 settings x 9 numbers; Table 3: 6 x 3; Table 13: 3; Table 14: 8 x 3; Table 15: 4.
    # vanilla: Table 3: 2; Table 13: 6; Table 15: 2; Table 2: 11; Table 5: 3.
    # ZoomEye: Table 10: 2 models x 4 settings x 9; Table 14: 4 x 3; Table 15's open-ended generation: 2.
    # ViCrop: Table 10: 2 settings x 9; Table 13: 3.
    assert checked == {"focus": 144 + 18 + 3 + 24 + 4, "vanilla": 2 + 6 + 2 + 11 + 3, "zoomeye": 72 + 12 + 2,
                       "vicrop": 18 + 3}
    assert alias == [(table, "Depth-5 (4 crops)", True) for table in ("Table 13", "Table 13", "Table 13", "Table 15",
                                                                      "Table 15")]
    assert setting_options("focus", "", "vstar")[0] == {"n_steps": "8", "overrun": "true"}  # Tables 2 and 5 state none
    assert setting_options("zoomeye", "", "mme_realworld_lite") == ({"method": "zoomeye"}, False)  # Table 2: the default
    assert setting_options("zoomeye", "Depth-2 (4 crops)", "vstar") == (
        {"method": "zoomeye", "zoomeye_depth": "2", "zoomeye_split": "4"}, True)  # ZoomEye's own scheme on V*Bench (C.5)
    assert setting_options("zoomeye", "Depth-2 (4 crops)", "hrbench4k")[1] is False
    assert setting_options("zoomeye", "Depth-5 (4 crops); open-ended generation", "vstar")[1] is False
    assert setting_options("vicrop", "grad-att", "hrbench8k") == (
        {"method": "vicrop", "vicrop_map": "grad_att", "vicrop_high": "false"}, False)
    assert setting_options("focus", "Steps-8 (overrun); 4 crops", "vstar") is None
    assert setting_options("zoomeye", "Depth-2 (3 crops)", "vstar") is None
    assert setting_options("vicrop", "pure-grad", "vstar") is None and setting_options("seal", "", "vstar") is None


def test_wilson_interval_and_pareto_front():
    low, high = wilson(50.0, 100)
    assert (round(low, 2), round(high, 2)) == (40.38, 59.62)
    assert wilson(0.0, 4)[0] == 0.0 and round(wilson(0.0, 4)[1], 2) == 48.99
    assert wilson(100.0, 10)[1] == pytest.approx(100.0) and round(wilson(100.0, 10)[0], 2) == 72.25
    points = [(1, 50), (2, 40), (3, 60), (3, 55), (5, 60), (4, 70)]
    assert pareto_front(points) == [(1, 50), (3, 60), (4, 70)]
    assert cost_to_reach(points, 65) == pytest.approx(3.5)
    assert cost_to_reach(points, 45) == 1  # the cheapest point already reaches it
    assert cost_to_reach(points, 71) is None and cost_to_reach(points, 39) is None


def test_efficiency_ratios_of_the_papers_tables():
    """A.2 on Table 10: the paper's 3.43x (V*Bench) and 4.72x (HRBench-8K) for LLaVA-1.5 vs
    ZoomEye; HRBench-4K gives 4.36x from the rounded table (the paper: 4.39x)."""
    report = build_report(RunData(), paper_rows())
    ratios = {(r.benchmark, r.ours.model, r.reference.method): r.efficiency for r in report.efficiency()
              if r.ours.own and r.reference.own and r.reference.variant == ""}  # each method's published search
    assert round(ratios[("vstar", "LLaVA-1.5-7B", "zoomeye")].ratio, 2) == 3.43
    assert ratios[("vstar", "LLaVA-1.5-7B", "zoomeye")].reference_accuracy == 72.77
    assert round(ratios[("hrbench8k", "LLaVA-1.5-7B", "zoomeye")].ratio, 2) == 4.72
    assert round(ratios[("hrbench4k", "LLaVA-1.5-7B", "zoomeye")].ratio, 2) == 4.36
    zoomeye_ov = [ratios[(b, "LLaVA-OV-7B", "zoomeye")].ratio for b in ("vstar", "hrbench4k", "hrbench8k")]
    assert 3 <= min(zoomeye_ov) and max(zoomeye_ov) <= 6.6  # Fig. 3: "3 - 6.5x higher efficiency than ZoomEye"
    assert efficiency_ratio([(1, 50)], [(10, 60), (20, 70)]) is None  # no overlap: 50 is below ZoomEye's range


def test_paper_rows_list_each_number_once_with_its_tables():
    rows = {(r.model, r.method, r.setting, r.benchmark, r.metric): r for r in paper_rows()}
    assert len(rows) == len(paper_rows())  # one number per configuration and metric
    steps8 = rows[("LLaVA-1.5-7B", "focus", "Steps-8 (overrun)", "vstar", "overall")]
    assert (steps8.table, steps8.value, steps8.fp, steps8.tflops, steps8.seconds, steps8.n) == (
        "Table 3, 10, 13, 14, 15", 72.77, 13.28, 62.46, 2.19, 191)
    assert rows[("LLaVA-OV-7B", "focus", "", "mme_realworld_lite", "reasoning")].n == 750


def test_reproduce_doc_is_generated_from_the_data():
    committed = (REPO / "docs" / "reproduce.md").read_text()
    assert committed == reproduce.render(), "regenerate: python -m focus_eval.present.compare.reproduce --write docs/reproduce.md"
    assert ("lmms-eval --model llava_1_5_focus --model_args n_steps=4,overrun=true --tasks vstar,hrbench4k,hrbench8k "
            "--batch_size 1 --log_samples --output_path runs/llava-1.5-7b/focus-steps-4-overrun") in committed
    assert "| hrbench4k | average | 0.4925 | 49.25 | 10.14 | 10 |" in committed
    assert "--model_args n_steps=8,overrun=true --tasks vstar_logits" in committed
    # the baselines, with ZoomEye's own scheme on V*Bench (logits matching) and the paper's second label merged
    assert ("lmms-eval --model llava_1_5_focus --model_args method=zoomeye,zoomeye_depth=2,zoomeye_split=4 --tasks "
            "vstar_logits,hrbench4k,hrbench8k ") in committed
    assert "### ZoomEye, Depth-5 (4 crops); logits matching" not in committed
    assert ("### ZoomEye, Depth-5 (4 crops); open-ended generation\n\n```bash\nlmms-eval --model llava_1_5_focus "
            "--model_args method=zoomeye,zoomeye_depth=5,zoomeye_split=4 --tasks vstar ") in committed
    assert ("--model_args method=vicrop,vicrop_map=grad_att,vicrop_high=true --tasks vstar,hrbench4k,hrbench8k "
            in committed)
    assert "### ZoomEye (the paper states no setting: the official Depth-5 (4 crops))" in committed  # Table 2
    for other in ("dc2", "seal", "chance"):  # not produced
        assert f"--output_path runs/llava-1.5-7b/{other}" not in committed
