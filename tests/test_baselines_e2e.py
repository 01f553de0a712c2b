"""Every method through both frameworks, end to end, on the tiny random models of all three families.

One lmms-eval run (`focus-eval lmms-eval --config`: one entry per family and method) and one
VLMEvalKit run (`focus-eval vlmeval`: one `--model-args` string per run) ask the same tiny V*Bench
questions (4 good rows, then a corrupt image and a row with a missing option) with vanilla,
FOCUS, ZoomEye and ViCrop (rel-att and grad-att) on the tiny LLaVA-1.5, LLaVA-OneVision and
Qwen2.5-VL. Checked: every method answers, reports its counters (bp only for grad-att) and
records the two defective rows as failed questions while the run goes on; both frameworks give
every question the same answer, failure and counters, and `focus-eval compare` the same numbers
with each run's method and setting in the paper's words; a baseline run killed midway resumes
from `resume_dir` with the results of the uninterrupted run (the questions it recomputes in
another process get the same answers and counters: determinism). The untrained models' answers
mean nothing; what must hold is that both frameworks and both processes agree on them.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from focus_eval.model_wrappers.vlmeval_run import parse_args_string, run_name
from focus_eval.tasks import tiny_data
from focus_eval.tasks.record import COUNTER_COLUMNS, DocRecord
from vlmeval_e2e import VLMEVAL_PYTHON, finish, needs_vlmevalkit, prepare, run_vlmeval

TESTS_DIR = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
SCALE = 0.05
ROWS = len(tiny_data.build_rows("vstar", scale=SCALE, bad_rows=True))  # the last two defective
FAMILIES = {"llava_1_5": "llava_1_5_focus", "llava_onevision": "llava_ov_focus", "qwen2_5_vl": "qwen2_5_vl_focus"}
METHODS = {"vanilla": "method=vanilla", "focus": "method=focus", "zoomeye": "method=zoomeye",
           "vicrop_rel": "method=vicrop,vicrop_map=rel_att", "vicrop_grad": "method=vicrop,vicrop_map=grad_att"}
SETTINGS = {"vanilla": "", "focus": "Steps-8 (overrun)", "zoomeye": "Depth-5 (4 crops); open-ended generation",
            "vicrop_rel": "rel-att", "vicrop_grad": "grad-att"}
TITLES = {"vanilla": "vanilla", "focus": "FOCUS", "zoomeye": "ZoomEye", "vicrop_rel": "ViCrop", "vicrop_grad": "ViCrop"}
SHORT = "target_max_new_tokens=8"  # the untrained models' replies are gibberish: keep them short
TIMING = ("seconds", "total_seconds", "peak_mem_gb")  # measured: may differ between runs


def run_id(family: str, method: str) -> str:
    return f"{family}-{method}"


def comparable(record: DocRecord) -> tuple:
    """Answer, failure, counters without time and memory, and the details both frameworks record."""
    counters = {k: v for k, v in (record.counters or {}).items() if k not in TIMING}
    details = {k: record.details.get(k) for k in ("targets", "final_layout", "final_boxes")}
    return record.answer, record.failed, counters, details


def samples_of(out: Path) -> dict[int, dict]:
    """The samples of the latest run written under `out` (lmms-eval's file names start with the date)."""
    log = max(out.rglob("*_samples_vstar.jsonl"), key=lambda path: path.name)
    return {s["doc_id"]: s for s in map(json.loads, log.open())}


@dataclass(frozen=True)
class Runs:
    root: Path
    data: Path  # the tiny V*Bench parquet
    checkpoints: dict[str, Path]
    lmms: dict[str, Path]  # run id -> its --output_path
    lmms_code: int
    lmms_output: str
    vlmeval_dir: Path | None  # VLMEvalKit's --work-dir (None without VLMEvalKit)
    vlmeval_output: str

    def lmms_args(self, family: str, method: str) -> str:
        return f"pretrained={self.checkpoints[family]},data_vstar={self.data},{SHORT},{METHODS[method]}"

    def vlmeval_args(self, family: str, method: str) -> str:
        return vlmeval_args(self.checkpoints[family], method)


def vlmeval_args(checkpoint: Path, method: str) -> str:
    return f"pretrained={checkpoint},{SHORT},max_new_tokens=8,{METHODS[method]}"


def lmms_config(root: Path, data: Path, checkpoints: dict[str, Path]) -> tuple[Path, dict[str, Path]]:
    outputs, entries = {}, []
    for family, model in FAMILIES.items():
        for method in METHODS:
            name = run_id(family, method)
            outputs[name] = root / "lmms" / name
            entries.append({"model": model, "tasks": "vstar", "gen_kwargs": "max_new_tokens=8", "log_samples": True,
                            "output_path": str(outputs[name]),
                            "model_args": f"pretrained={checkpoints[family]},data_vstar={data},{SHORT},{METHODS[method]}"})
    config = root / "runs.yaml"
    config.write_text(json.dumps(entries))  # JSON is YAML
    return config, outputs


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_checkpoint) -> Runs:
    """Both frameworks side by side (two cores), each in one process for all 15 runs."""
    root = tmp_path_factory.mktemp("baselines")
    checkpoints = {family: tiny_checkpoint(family) for family in FAMILIES}
    data = tiny_data.write_tiny_dataset("vstar", root / "data", scale=SCALE, bad_rows=True)
    config, outputs = lmms_config(root, data, checkpoints)
    env = dict(os.environ, HF_HOME=str(root / "hf"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1")
    env.pop("LMMS_EVAL_PLUGINS", None)
    lmms = subprocess.Popen([str(BIN / "focus-eval"), "lmms-eval", "--config", str(config)], env=env, cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    vlmeval_dir, vlmeval_output = None, ""
    if VLMEVAL_PYTHON is not None:
        setup = prepare(root / "vlmeval", checkpoints["llava_onevision"])  # the tiny TSVs; checkpoints given below
        models, model_args = [], []
        for family, model in FAMILIES.items():
            for method in METHODS:
                models.append(model)
                model_args.append(vlmeval_args(checkpoints[family], method))
        vlmeval_dir = root / "vlmeval_work"
        code, out, err = run_vlmeval(["--model", *models, "--data", "VStarBench", "--model-args", *model_args,
                                      "--work-dir", str(vlmeval_dir), "--trust-local-data"], setup.env, root)
        assert code == 0, err[-3000:]
        vlmeval_output = out + err
    code, out, err = finish(lmms)
    return Runs(root, data, checkpoints, outputs, code, out + err, vlmeval_dir, vlmeval_output)


def test_every_method_answers_counts_and_records_failures_in_lmms_eval(runs):
    assert runs.lmms_code == 0, runs.lmms_output[-3000:]
    for family in FAMILIES:
        for method in METHODS:
            out = runs.lmms[run_id(family, method)]
            (results_file,) = out.rglob("*_results.json")
            results = json.loads(results_file.read_text())["results"]["vstar"]
            samples = samples_of(out)
            assert sorted(samples) == list(range(ROWS))
            good, bad = [samples[i] for i in range(ROWS - 2)], [samples[i] for i in range(ROWS - 2, ROWS)]
            for sample in bad:  # failed, scored wrong, no counters; the run went on
                entry = sample["vstar_overall_acc"]
                assert entry["error"] and entry["score"] == 0 and sample["fp"] is None, (family, method)
            assert "ImageLoadError" in bad[0]["vstar_overall_acc"]["error"]
            assert results["failed,none"] == 2 and results["failed_rate,none"] == pytest.approx(2 / ROWS)
            for column in COUNTER_COLUMNS:
                assert results[f"{column},none"] is not None, (family, method, column)
            records = [DocRecord.from_response(s["filtered_resps"]) for s in good]
            assert all(not r.failed for r in records), (family, method, [r.error for r in records])
            counters = [r.counters for r in records]
            assert all(c["fp_total"] == c["fp"] + c["fp_targets"] + c["fp_answer"] for c in counters)
            assert all(c["bp"] == 0 for c in counters) == (method != "vicrop_grad"), (family, method)
            if method == "vanilla":
                assert all((c["fp"], c["fp_targets"], c["fp_answer"]) == (0, 0, 1) for c in counters)
            if method.startswith("vicrop"):
                # one map (no tiling): rel-att 2 passes (question, generic prompt), grad-att 1 forward + 1 backward
                expected = (2, 0) if method == "vicrop_rel" else (1, 1)
                assert all((c["fp"], c["bp"]) == expected for c in counters), (family, method, counters)


@needs_vlmevalkit
def test_both_frameworks_give_every_question_the_same_answer_and_counters(runs):
    assert runs.lmms_code == 0, runs.lmms_output[-3000:]
    summaries = {json.loads(path.read_text())["model"]: json.loads(path.read_text())
                 for path in runs.vlmeval_dir.rglob("focus_summary.json")}
    import pandas as pd

    for family, model in FAMILIES.items():
        for method in METHODS:
            given = parse_args_string(runs.vlmeval_args(family, method))
            summary = summaries[run_name(model, given["method"], given)]
            assert summary["method"] == given["method"] and summary["model_args"] == given
            entry = summary["results"]["VStarBench"]
            assert (entry["error"], entry["questions"], entry["failed"]) == (None, ROWS, 2)
            table = pd.read_excel(entry["prediction_file"])
            ours = {int(i): DocRecord.from_response(t) for i, t in zip(table["index"], table["extra_records"])}
            theirs = {i: DocRecord.from_response(s["filtered_resps"])
                      for i, s in samples_of(runs.lmms[run_id(family, method)]).items()}
            assert sorted(ours) == sorted(theirs)
            for index in ours:
                assert comparable(ours[index]) == comparable(theirs[index]), (family, method, index)


def compare(arguments: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "focus-eval"), "compare", *arguments], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_compare_names_every_method_and_setting_of_both_frameworks(runs, tmp_path):
    """Every run in compare's table with its method and setting (ZoomEye on the `vstar` task answers
    by generation: not its own scheme there, so named); the VLMEvalKit run of the same questions
    shows the same numbers."""
    assert runs.lmms_code == 0, runs.lmms_output[-3000:]
    sources = [str(path) for path in runs.lmms.values()] + ([str(runs.vlmeval_dir)] if runs.vlmeval_dir else [])
    done = compare([*sources, "--out", "out"], tmp_path)
    assert done.returncode == 0, done.stderr
    with (tmp_path / "out" / "vstar.csv").open() as handle:
        rows = [row for row in csv.DictReader(handle) if row["metric"] == "overall"]
    by_source = {row["source"]: row for row in rows}
    for family in FAMILIES:
        for method in METHODS:
            row = by_source[str(runs.lmms[run_id(family, method)])]
            assert (row["method"], row["setting"], row["model"]) == (TITLES[method], SETTINGS[method],
                                                                      runs.checkpoints[family].name)
            assert row["failed"] == "2" and row["n"] == str(ROWS)
            assert (float(row["bp"]) > 0) == (method == "vicrop_grad")
    if runs.vlmeval_dir is not None:
        vlmeval = [row for row in rows if row["source"].startswith(str(runs.vlmeval_dir))]
        lmms_eval = [row for row in rows if not row["source"].startswith(str(runs.vlmeval_dir))]
        # (not the accuracy: the frameworks read the untrained models' gibberish answers differently, README)
        same = ("model", "method", "setting", "options", "n", "fp", "fp_total", "bp", "tflops", "failed")
        key = lambda row: (row["model"], row["method"], row["setting"])  # noqa: E731
        assert sorted(tuple(row[c] for c in same) for row in vlmeval) == sorted(
            tuple(row[c] for c in same) for row in lmms_eval)
        assert len({key(row) for row in vlmeval}) == len(FAMILIES) * len(METHODS)


RESUMED = (("llava_onevision", "zoomeye"), ("llava_1_5", "vicrop_grad"))  # in one lmms-eval --config


def test_killed_baseline_runs_resume_with_the_results_of_uninterrupted_ones(runs, tmp_path):
    """Two baseline runs in one process, killed after the first run and 2 questions of the second,
    restarted with the same command: only the second run's other 2 questions are computed, in
    another process, and every record equals the uninterrupted runs'."""
    assert runs.lmms_code == 0, runs.lmms_output[-3000:]
    entries = [{"model": FAMILIES[family], "tasks": "vstar", "gen_kwargs": "max_new_tokens=8", "log_samples": True,
                "model_args": f"{runs.lmms_args(family, method)},resume_dir={tmp_path / 'resume'}",
                "output_path": str(tmp_path / "out" / method)} for family, method in RESUMED]
    (tmp_path / "runs.yaml").write_text(json.dumps(entries))
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1")
    probe = [sys.executable, str(TESTS_DIR / "lmms_cli_probe.py")]
    good = ROWS - 2  # defective rows never reach the model
    killed = subprocess.run([*probe, str(tmp_path / "calls.1"), str(good + 2), "--config", str(tmp_path / "runs.yaml")],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert killed.returncode == 9, killed.stderr[-3000:]
    assert [len(list((tmp_path / "out" / method).rglob("*_results.json"))) for _, method in RESUMED] == [1, 0]
    resumed = subprocess.run([*probe, str(tmp_path / "calls.2"), "-1", "--config", str(tmp_path / "runs.yaml")],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert len((tmp_path / "calls.2").read_text().splitlines()) == good - 2
    for family, method in RESUMED:
        again, first = samples_of(tmp_path / "out" / method), samples_of(runs.lmms[run_id(family, method)])
        assert sorted(again) == sorted(first)
        for doc_id in first:
            assert comparable(DocRecord.from_response(again[doc_id]["filtered_resps"])) == comparable(
                DocRecord.from_response(first[doc_id]["filtered_resps"])), (family, method, doc_id)
