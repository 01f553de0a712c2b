"""`focus-eval compare` on real lmms-eval and VLMEvalKit output folders.

One lmms-eval console-script call per test session (`runs`) writes, on the tiny datasets
(4 questions per task): FOCUS on the tiny untrained LLaVA-OneVision at two budgets (the second
also on vstar_logits), the same model with method=vanilla twice (two runs of one model and
task), and lmms-eval's
own `llava_hf` model on the tiny LLaVA-1.5 with the built-in `vstar_bench` task (no counters;
its dataset is put in the datasets cache under the hub id, so the built-in task reads it
offline). Then the real `focus-eval` script compares them next to the paper's LLaVA-OV-7B
numbers. Expected values are read from lmms-eval's results files, not from compare's code.

VLMEvalKit: the session's run of the real VLMEvalKit and the lmms-eval run of the same questions
(tests/vlmeval_e2e.py, shared with test_vlmeval.py; skipped without FOCUS_VLMEVAL_PYTHON) are
compared with each other; expected values come from VLMEvalKit's and lmms-eval's own files.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from focus_eval.present.compare.names import COUNTERS, FAILURES, LMMS_EVAL_METRICS, LMMS_EVAL_RECALL
from focus_eval.present.compare.report import RECALL_NOTE
from focus_eval.present.compare.stats import wilson
from focus_eval.tasks import tiny_data
from vlmeval_e2e import needs_vlmevalkit

BIN = Path(sys.executable).parent
LIMIT = 4
FOCUS_RUNS = {"focus-1": "n_steps=1,overrun=false", "focus-2": "n_steps=2"}


def offline_env(home: Path, datasets_cache: Path) -> dict:
    env = dict(os.environ, HF_HOME=str(home / "hf"), HF_DATASETS_CACHE=str(datasets_cache), HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("LMMS_EVAL_PLUGINS", None)
    return env


def cache_as_hub_dataset(parquet: Path, repo_id: str, split: str, cache: Path, work: Path) -> None:
    """Put a parquet file in the datasets cache as if `load_dataset(repo_id)` had downloaded it."""
    from datasets.packaged_modules.parquet.parquet import Parquet

    name = repo_id.split("/")[1]
    builder = Parquet(cache_dir=str(work), dataset_name=name, data_files={split: str(parquet)}, hash="0" * 16)
    builder.download_and_prepare()
    shutil.copytree(builder.cache_dir, cache / repo_id.replace("/", "___") / "default" / "0.0.0" / ("0" * 16))


def builtin_model_runs() -> bool:
    try:
        import decord  # noqa: F401  lmms-eval's llava_hf imports it at module level
    except ImportError:
        return False
    return True


@pytest.fixture(scope="session")
def runs(tmp_path_factory, tiny_checkpoint):
    root = tmp_path_factory.mktemp("compare_runs")
    data = tiny_data.write_tiny_datasets(root / "data", scale=0.05, keys=("vstar", "hrbench4k"))
    cache = root / "datasets_cache"
    cache_as_hub_dataset(data["vstar"], "lmms-lab-encoder/vstar-bench", "test", cache, root / "build")
    ov = tiny_checkpoint("llava_onevision")
    common = f"pretrained={ov},data_vstar={data['vstar']},data_hrbench4k={data['hrbench4k']},target_max_new_tokens=8"

    def entry(name, model, model_args, tasks):
        return {"model": model, "model_args": model_args, "tasks": tasks, "gen_kwargs": "max_new_tokens=8",
                "limit": LIMIT, "log_samples": True, "output_path": str(root / "runs" / name)}

    config = [entry("focus-1", "llava_ov_focus", f"{common},{FOCUS_RUNS['focus-1']}", "vstar,hrbench4k"),
              entry("focus-2", "llava_ov_focus", f"{common},{FOCUS_RUNS['focus-2']}", "vstar,vstar_logits"),
              entry("vanilla-a", "llava_ov_focus", f"{common},method=vanilla", "vstar,hrbench4k"),
              entry("vanilla-b", "llava_ov_focus", f"{common},method=vanilla", "vstar")]
    if builtin_model_runs():
        config.append(entry("llava_hf", "llava_hf", f"pretrained={tiny_checkpoint('llava_1_5')},device=cpu,device_map=cpu",
                            "vstar_bench"))
    (root / "runs.yaml").write_text(json.dumps(config))  # JSON is YAML
    done = subprocess.run([str(BIN / "lmms-eval"), "--config", str(root / "runs.yaml")], cwd=root,
                          env=offline_env(root, cache), capture_output=True, text=True, timeout=900)
    names = [Path(e["output_path"]).name for e in config]
    results = {}
    for name in names:
        found = list((root / "runs" / name).rglob("*_results.json"))
        assert len(found) == 1, (name, done.stdout[-2000:] + done.stderr[-3000:])
        results[name] = json.loads(found[0].read_text())
    return root, names, results


@pytest.fixture(scope="session")
def models(tiny_checkpoint):
    """The model names compare gives the tiny checkpoints: their folder names."""
    return {"ov": tiny_checkpoint("llava_onevision").name, "llava_1_5": tiny_checkpoint("llava_1_5").name}


@pytest.fixture(scope="session")
def compared(runs):
    """`focus-eval compare` of every run next to the paper's LLaVA-OV-7B numbers, --out."""
    root, names, _ = runs
    out = root / "compared"
    done = compare([*(f"runs/{name}" for name in names), "--paper-models", "LLaVA-OV-7B", "--out", str(out),
                    "--title", "tiny untrained model"], root)
    return done, out


def compare(arguments: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "focus-eval"), "compare", *arguments], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def table(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_tables_hold_each_runs_numbers_with_intervals_and_settings(runs, compared, models):
    _, names, results = runs
    done, out = compared
    assert done.returncode == 0, done.stderr
    rows = table(out / "vstar.csv")
    ours = {(r["source"], r["metric"], r["setting"]): r for r in rows if r["source"].startswith("runs/")}
    settings = {"focus-1": "Steps-1 (no overrun)", "focus-2": "Steps-2 (overrun)", "vanilla-a": "", "vanilla-b": "",
                "llava_hf": ""}
    tasks = {"llava_hf": "vstar_bench"}
    for name in names:
        task = tasks.get(name, "vstar")
        values, n = results[name]["results"][task], results[name]["n-samples"][task]["effective"]
        row = ours[(f"runs/{name}", "overall", settings[name])]
        assert float(row["accuracy"]) == pytest.approx(values["vstar_overall_acc,none"], abs=0.005)
        assert int(row["n"]) == n == LIMIT
        low, high = wilson(values["vstar_overall_acc,none"], n)
        assert (float(row["ci_low"]), float(row["ci_high"])) == pytest.approx((low, high), abs=0.005)
        assert row["method"] == ("FOCUS" if name.startswith("focus") else "vanilla")
        for counter in ("fp", "fp_total", "failed", "roi_recall"):
            expected = values.get(f"{counter},none")
            shown = row["recall" if counter == "roi_recall" else counter]
            scale = 100 if counter == "roi_recall" else 1  # a fraction, shown in percent
            assert shown == "n/a" if expected is None else float(shown) == pytest.approx(expected * scale, abs=0.005)
        # our tasks report every failure count and FOCUS's recall (the tiny V*Bench rows carry GT boxes)
        assert (row["failed"] == "n/a") == (name == "llava_hf") and (row["recall"] != "n/a") == name.startswith("focus")
        assert row["model"] == (models["llava_1_5"] if name == "llava_hf" else models["ov"])
        assert row["runner"] == ("llava_hf" if name == "llava_hf" else "llava_ov_focus")
        assert row["paper"] == ""  # the tiny model is not the paper's model
    logits = ours[("runs/focus-2", "overall", "Steps-2 (overrun); logits matching")]
    assert float(logits["fp"]) == pytest.approx(results["focus-2"]["results"]["vstar_logits"]["fp,none"], abs=0.005)
    # category accuracies: n from the samples log (each question counts in one category)
    categories = [int(ours[("runs/focus-1", metric, settings["focus-1"])]["n"]) for metric in ("attribute", "spatial")]
    assert sum(categories) == LIMIT
    paper = [r for r in rows if r["source"] == "paper"]
    assert {r["model"] for r in paper} == {"LLaVA-OV-7B"}
    assert len(paper) == 12 * 3 + 1  # Table 10: 12 configurations x (overall, attribute, spatial); Table 13's vanilla
    markdown = (out / "compare.md").read_text()
    assert done.stdout == markdown.split("\n## Plots")[0]
    vstar_section, hrbench_section = markdown.split("## Efficiency")[0].split("## HRBench-4K")
    assert f"; {RECALL_NOTE}\n" in vstar_section and " | failed | recall | paper | diff | in CI |" in vstar_section
    assert "recall" not in hrbench_section  # no row of it has a recall: no column
    assert ("| paper (Table 10) |  | LLaVA-OV-7B | FOCUS | Steps-4 (overrun) | 191 | 92.15 | [87.45, 95.19] | 7.63 |"
            in markdown)
    hr = {r["source"] for r in table(out / "hrbench4k.csv")}
    assert hr == {"runs/focus-1", "runs/vanilla-a", "paper"}
    assert f"runs/focus-1: hrbench4k evaluated {LIMIT} of 8 questions (--limit)" in markdown


@pytest.mark.skipif(not builtin_model_runs(), reason="lmms-eval's llava_hf needs decord (test extra, Linux x86_64)")
def test_lmms_eval_builtin_model_is_compared_accuracy_only(runs, compared):
    _, _, results = runs
    done, out = compared
    row = next(r for r in table(out / "vstar.csv") if r["source"] == "runs/llava_hf" and r["metric"] == "overall")
    assert float(row["accuracy"]) == pytest.approx(results["llava_hf"]["results"]["vstar_bench"]["vstar_overall_acc,none"])
    assert all(row[c] == "n/a" for c in ("fp", "fp_total", "bp", "tflops", "seconds", "failed"))
    assert ("runs/llava_hf: vstar_bench reports no counters (fp, fp_total, bp, tflops, seconds): accuracy only"
            in done.stdout)


def test_two_runs_of_one_model_and_task_are_both_shown_by_run(compared, models):
    done, out = compared
    rows = [r for r in table(out / "vstar.csv") if r["method"] == "vanilla" and r["metric"] == "overall"
            and r["model"] == models["ov"]]
    assert [r["source"] for r in rows] == ["runs/vanilla-a", "runs/vanilla-b"]
    assert (f"2 runs of {models['ov']} vanilla on vstar (overall) with the same settings, each shown with its "
            "source: runs/vanilla-a, runs/vanilla-b") in done.stdout


def test_plots_are_drawn_from_the_tables_numbers(runs, compared):
    _, names, _ = runs
    _, out = compared
    for benchmark in ("vstar", "hrbench4k"):
        rows = [r for r in table(out / f"{benchmark}.csv") if r["metric"] == "overall"]
        for axis in ("fp", "tflops"):
            png = out / f"{benchmark}_{axis}.png"
            with Image.open(png) as image:
                assert image.format == "PNG" and image.width >= 700 and image.height >= 500
            points = table(png.with_suffix(".points.csv"))

            def x(row):  # the table's number for the axis; vanilla without an FP count sits at 0
                if row[axis] not in ("", "n/a"):
                    return float(row[axis])
                return 0.0 if axis == "fp" and row["method"] == "vanilla" else None
            expected = sorted((r["source"], r["setting"], round(x(r), 2), float(r["accuracy"]))
                              for r in rows if x(r) is not None)
            drawn = sorted((p["source"], p["setting"], round(float(p["x"]), 2), round(float(p["y"]), 2)) for p in points)
            assert drawn == expected and len(drawn) > 0, (benchmark, axis)
    fp_points = table(out / "vstar_fp.points.csv")
    run_points = [p for p in fp_points if p["source"] != "paper"]
    assert len(run_points) == len(names) + 1  # every run, plus focus-2's vstar_logits row
    assert len(fp_points) - len(run_points) == 13  # the paper's OV rows with an FP count or vanilla (Tables 10, 13)
    assert len(table(out / "vstar_tflops.points.csv")) == len(names) + 1 - (names[-1] == "llava_hf")  # ours only


def test_every_metric_of_our_tasks_is_one_compare_knows():
    """Accuracies, counters, failures and recall: nothing our tasks report is 'not compared'."""
    from focus_eval.model_wrappers.vlmeval_benchmarks import task_config

    for key, accuracies in LMMS_EVAL_METRICS.items():
        reported = {metric["metric"] for metric in task_config(key)["metric_list"]}
        assert set(accuracies) <= reported <= {*accuracies, *COUNTERS, *FAILURES, LMMS_EVAL_RECALL}, key


def test_folder_without_results_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no results here")
    done = compare(["empty"], tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("focus-eval: error: empty: no results found (lmms-eval: *_results.json from "
                           "--output_path; VLMEvalKit: focus_summary.json or status.json in "
                           "<work-dir>/<model>/<eval id>/)\n")
    (tmp_path / "bad_results.json").write_text("{not json")
    done = compare(["bad_results.json"], tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("focus-eval: error: bad_results.json: cannot read it as JSON")
    done = compare(["nowhere"], tmp_path)
    assert done.returncode == 2 and done.stderr == "focus-eval: error: nowhere: no such file or folder\n"


def test_results_of_an_unknown_task_are_named_not_dropped(runs, tmp_path):
    """A real results file whose hrbench4k is renamed to a task no benchmark knows."""
    root, _, results = runs
    data = json.loads(json.dumps(results["focus-1"]))
    data["results"]["mmmu_val"] = data["results"].pop("hrbench4k")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "20260101_000000_results.json").write_text(json.dumps(data))
    done = compare(["run"], tmp_path)
    assert done.returncode == 1
    assert "## V*Bench (vstar)" in done.stdout and "HRBench" not in done.stdout
    assert "- not compared: run: task 'mmmu_val' is not a benchmark compare knows (known names, normalized: " in done.stdout
    assert done.stderr.startswith("focus-eval compare: not compared: run: task 'mmmu_val' is not a benchmark")
    only_unknown = json.loads(json.dumps(data))
    only_unknown["results"] = {"mmmu_val": data["results"]["mmmu_val"]}
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "20260101_000000_results.json").write_text(json.dumps(only_unknown))
    done = compare(["other"], tmp_path)
    assert done.returncode == 2 and "nothing to compare: other: task 'mmmu_val'" in done.stderr


def test_published_for_runs_of_a_model_the_paper_lacks(runs, models):
    root, _, _ = runs
    done = compare(["runs/focus-1", "--published"], root)
    assert done.returncode == 0, done.stderr
    assert (f"the paper has no numbers for {models['ov']} on hrbench4k, vstar; choose its models with --paper-models"
            in done.stdout)
    assert "| paper" not in done.stdout  # no paper rows, no paper columns


def test_compare_imports_neither_torch_nor_lmms_eval():
    """Nor transformers: the FOCUS models' table (focus_eval.model_specs) is shared, not copied."""
    heavy = ("torch", "transformers", "lmms_eval", "vlmeval", "matplotlib", "pandas")
    code = ("import sys, focus_eval.present.cli, focus_eval.present.compare.command, focus_eval.present.compare.report, "
            f"focus_eval.present.compare.reproduce; loaded = sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}); "
            "assert not loaded, loaded")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_runs_of_the_papers_models_sit_next_to_its_numbers(runs, tmp_path):
    """Real results files relabelled as runs of the paper's checkpoints: the paper's number for the
    same configuration, the difference and whether it lies in the run's interval; "*" where the
    paper states no setting (Table 5's FOCUS with Qwen-2.5-VL); the paper's recall beside ours
    where it gives one (Table 3, LLaVA-1.5 at its default Steps-8 (overrun))."""
    _, _, results = runs
    relabelled = {"ov": ("llava_ov_focus", "llava-hf/llava-onevision-qwen2-7b-ov-hf,n_steps=1,overrun=false"),
                  "qwen": ("qwen2_5_vl_focus", "Qwen/Qwen2.5-VL-7B-Instruct,n_steps=1,overrun=false"),
                  "llava15": ("llava_1_5_focus", "llava-hf/llava-1.5-7b-hf")}
    for name, (runner, model_args) in relabelled.items():
        data = json.loads(json.dumps(results["focus-1"]))
        data["config"]["model"] = runner
        data["config"]["model_args"] = f"pretrained={model_args}"
        (tmp_path / name).mkdir()
        (tmp_path / name / "20260101_000000_results.json").write_text(json.dumps(data))
    done = compare(["ov", "qwen", "llava15", "--published", "--out", "out"], tmp_path)
    assert done.returncode == 0, done.stderr
    rows = {(r["source"], r["benchmark"]): r for r in table(tmp_path / "out" / "vstar.csv") if r["metric"] == "overall"}
    accuracy = results["focus-1"]["results"]["vstar"]["vstar_overall_acc,none"]
    for source, paper, stated in (("ov", 83.24, True), ("qwen", 90.58, False)):  # Table 10 Steps-1 (no overrun); Table 5
        row = rows[(source, "vstar")]
        assert row["setting"] == "Steps-1 (no overrun)"
        assert row["paper"] == f"{paper:.2f}" + ("" if stated else "*")
        assert float(row["diff"]) == pytest.approx(accuracy - paper, abs=0.005)
        low, high = wilson(accuracy, LIMIT)
        assert row["in_ci"] == ("yes" if low <= paper <= high else "no")
    hr = {r["source"]: r for r in table(tmp_path / "out" / "hrbench4k.csv") if r["metric"] == "overall"}
    assert hr["ov"]["paper"] == "69.00" and hr["qwen"]["paper"] == "79.25*"
    assert hr["ov"]["paper_table"] == "Table 10" and hr["qwen"]["paper_table"] == "Table 5"
    recall = 100 * results["focus-1"]["results"]["vstar"]["roi_recall,none"]
    llava15 = rows[("llava15", "vstar")]
    assert (llava15["setting"], llava15["paper"], llava15["paper_table"]) == ("Steps-8 (overrun)", "72.77",
                                                                              "Table 3, 10, 13, 14, 15")
    assert (float(llava15["recall"]), llava15["paper_recall"]) == (pytest.approx(recall), "77.49")
    assert rows[("ov", "vstar")]["paper_recall"] == "" and hr["llava15"]["paper_recall"] == ""  # not in the paper
    paper_rows = [r for r in table(tmp_path / "out" / "vstar.csv") if r["source"] == "paper" and r["recall"]]
    assert sorted(r["recall"] for r in paper_rows) == ["18.37", "38.48", "63.47", "75.56", "76.17", "77.49"]  # Table 3
    line = next(line for line in done.stdout.splitlines() if line.startswith("| llava15 |"))  # V*Bench's table first
    assert line.startswith("| llava15 | llava_1_5_focus | LLaVA-1.5-7B | FOCUS | Steps-8 (overrun) | ")
    assert f" | {LIMIT} | " in line and f" | {recall:.2f} | 72.77 | 77.49 | {accuracy - 72.77:.2f} | " in line


def test_baseline_runs_are_named_as_the_paper_names_them_drawn_and_compared(runs, tmp_path):
    """Real results files relabelled as LLaVA-1.5-7B runs of FOCUS, ZoomEye (ZoomEye's own logits
    matching on V*Bench, and open-ended generation) and ViCrop, with set accuracies and counters:
    each run's method and setting in the paper's words next to the paper's number for it, the
    baseline runs on curves of their own in the plot beside the paper's points, and A.2's
    efficiency ratio computed from the runs (never from a run against the paper)."""
    _, _, results = runs
    base = "pretrained=llava-hf/llava-1.5-7b-hf"
    made = {  # name: (task, model arguments, accuracy %, fp, bp)
        "focus-a": ("vstar", "n_steps=1,overrun=false", 60.0, 3.0, 0.0),
        "focus-b": ("vstar", "n_steps=4", 70.0, 6.0, 0.0),
        "zoomeye-1": ("vstar_logits", "method=zoomeye,zoomeye_depth=1,zoomeye_split=2", 50.0, 10.0, 0.0),
        "zoomeye-2": ("vstar_logits", "method=zoomeye,zoomeye_depth=2", 65.0, 40.0, 0.0),
        "zoomeye-5": ("vstar_logits", "method=zoomeye", 75.0, 50.0, 0.0),
        "zoomeye-open": ("vstar", "method=zoomeye,zoomeye_decrements=0.1:0.2", 68.0, 30.0, 0.0),
        "vicrop": ("vstar", "method=vicrop,vicrop_map=grad_att,vicrop_high=true", 55.0, 6.5, 6.5),
    }
    for name, (task, model_args, accuracy, fp, bp) in made.items():
        data = json.loads(json.dumps(results["focus-2"]))
        data["config"]["model"] = "llava_1_5_focus"
        data["config"]["model_args"] = f"{base},{model_args}"
        data["results"] = {task: dict(data["results"][task], **{"vstar_overall_acc,none": accuracy, "fp,none": fp,
                                                                  "bp,none": bp})}
        (tmp_path / name).mkdir()
        (tmp_path / name / "20260101_000000_results.json").write_text(json.dumps(data))
    done = compare([*made, "--published", "--out", "out"], tmp_path)
    assert done.returncode == 0, done.stderr
    rows = {r["source"]: r for r in table(tmp_path / "out" / "vstar.csv") if r["metric"] == "overall"
            and r["source"] != "paper"}
    expected = {  # source: (method, setting, the paper's number for it)
        "focus-a": ("FOCUS", "Steps-1 (no overrun)", "51.30"), "focus-b": ("FOCUS", "Steps-4 (overrun)", "68.06"),
        "zoomeye-1": ("ZoomEye", "Depth-1 (2 crops)", "50.26"), "zoomeye-2": ("ZoomEye", "Depth-2 (4 crops)", "71.20"),
        "zoomeye-5": ("ZoomEye", "Depth-5 (4 crops)", "77.48"),
        "zoomeye-open": ("ZoomEye", "Depth-5 (4 crops); open-ended generation", "72.25"),
        "vicrop": ("ViCrop", "grad-att-high", "54.97")}
    assert {name: (r["method"], r["setting"], r["paper"]) for name, r in rows.items()} == expected
    # options that differ between the runs of the row's method: FOCUS's k (Table 7: 15 below n_steps 4), ZoomEye's decrements
    assert (rows["focus-a"]["options"], rows["focus-b"]["options"]) == ("k=15", "k=30")
    assert rows["zoomeye-open"]["options"] == "zoomeye_decrements=[0.1, 0.2]" and rows["vicrop"]["options"] == ""
    assert rows["zoomeye-5"]["options"] == "zoomeye_decrements=[0.1, 0.1, 0.2]"
    assert (rows["vicrop"]["bp"], rows["focus-b"]["bp"]) == ("6.50", "0.00")
    markdown = (tmp_path / "out" / "compare.md").read_text()
    assert "| focus-a | llava_1_5_focus | LLaVA-1.5-7B | FOCUS | Steps-1 (no overrun) |" in markdown
    assert "| fp | fp_total | bp | tflops |" in markdown and "bp: backward passes per question" in markdown
    # A.2 from the runs: reference accuracy min(70, 75) = 70; FOCUS reaches it at 6 FP, ZoomEye's front
    # (10, 50), (40, 65), (50, 75) at 40 + 10 * 5 / 10 = 45 FP: 7.50x. Against the open-ended run (68% at 30 FP)
    # FOCUS needs 3 + 3 * 8 / 10 = 5.4 FP: 5.56x.
    ratios = [line for line in markdown.splitlines() if line.startswith("- V*Bench overall: runs: ")]
    assert ratios == [
        "- V*Bench overall: runs: LLaVA-1.5-7B FOCUS vs runs: LLaVA-1.5-7B ZoomEye: reference accuracy 70.00; "
        "FP 45.00 / 6.00 = 7.50x",
        "- V*Bench overall: runs: LLaVA-1.5-7B FOCUS vs runs: LLaVA-1.5-7B ZoomEye (open-ended generation): reference "
        "accuracy 68.00; FP 30.00 / 5.40 = 5.56x"]
    assert "- V*Bench overall: paper: LLaVA-1.5-7B FOCUS vs paper: LLaVA-1.5-7B ZoomEye: reference accuracy 72.77" in markdown
    assert not any("runs: " in line and "paper: " in line for line in markdown.splitlines() if line.startswith("- V*"))
    drawn = {(p["source"], p["method"], p["setting"]) for p in table(tmp_path / "out" / "vstar_fp.points.csv")}
    assert {(name, "zoomeye", setting) for name, (method, setting, _) in expected.items() if method == "ZoomEye"} <= drawn
    assert ("paper", "zoomeye", "Depth-2 (4 crops)") in drawn and ("paper", "vicrop", "rel-att-high") in drawn


# ---- VLMEvalKit runs (tests/vlmeval_e2e.py: made once per session, shared with test_vlmeval.py) ----

VLMEVAL_OVERALL = {"VStarBench": "split=none|Overall", "HRBench4K": "cycle=Average|type=all|accuracy",
                   "HRBench8K": "cycle=Average|type=all|accuracy", "MME-RealWorld-Lite": "Overall"}


@needs_vlmevalkit
def test_vlmevalkit_and_lmms_eval_runs_of_the_same_questions_show_the_same_numbers(vlmeval_single, tmp_path):
    """The same questions through both frameworks (one question's answer and counters are equal in
    both, test_vlmeval.py): the same accuracies, questions, failures and counters in compare's
    tables, each beside the framework's own numbers; nothing of either run left out."""
    runs = vlmeval_single
    done = compare([str(runs.lmms_dir), str(runs.work_dir), "--out", "out"], tmp_path)
    assert done.returncode == 0, done.stderr
    (summary_file,) = runs.work_dir.rglob("focus_summary.json")
    summary = json.loads(summary_file.read_text())
    (lmms_file,) = runs.lmms_dir.rglob("*_results.json")
    lmms = json.loads(lmms_file.read_text())
    same = ("model", "method", "setting", "options", "n", "accuracy", "fp", "fp_total", "bp", "tflops", "failed")
    for dataset, entry in summary["results"].items():
        benchmark = entry["benchmark"]
        rows = {(r["source"], r["metric"]): r for r in table(tmp_path / "out" / f"{benchmark}.csv")}
        metrics = {metric for _, metric in rows}
        assert {(source, metric) for metric in metrics for source in (str(runs.lmms_dir), str(runs.work_dir))} == set(rows)
        for metric in metrics:
            vlmevalkit, lmms_eval = rows[(str(runs.work_dir), metric)], rows[(str(runs.lmms_dir), metric)]
            assert [vlmevalkit[c] for c in same] == [lmms_eval[c] for c in same], (dataset, metric)
        overall = rows[(str(runs.work_dir), "overall")]
        assert overall["runner"] == f"{summary['model']} (VLMEvalKit)" and overall["setting"] == "Steps-8 (overrun)"
        assert float(overall["accuracy"]) == pytest.approx(100 * entry["metrics"][VLMEVAL_OVERALL[dataset]])
        assert int(overall["n"]) == entry["questions"] == lmms["n-samples"][benchmark]["effective"]
        assert int(overall["failed"]) == entry["failed"] == lmms["results"][benchmark]["failed,none"] == 2
        assert float(overall["fp"]) == pytest.approx(entry["fp"], abs=0.005)


@needs_vlmevalkit
def test_a_vlmevalkit_run_without_our_summary_is_read_from_its_status(vlmeval_single, tmp_path):
    """VLMEvalKit's own record of a run (what a run of its own models leaves): accuracy in percent
    (the tiny model's are all 0, so one is set to 0.5), questions from the prediction file, no
    counters; a dataset that did not finish is named, not dropped; the model folder's links to
    its latest run are not read again."""
    shutil.copytree(vlmeval_single.work_dir, tmp_path / "work", symlinks=True)
    (summary_file,) = (tmp_path / "work").rglob("focus_summary.json")
    questions = {name: entry["questions"] for name, entry in json.loads(summary_file.read_text())["results"].items()}
    summary_file.unlink()
    status_file = summary_file.with_name("status.json")
    status = json.loads(status_file.read_text())
    status["datasets"]["VStarBench"]["metrics"]["split=none|Overall"] = 0.5
    status["datasets"]["HRBench8K"]["status"] = "infer"
    status_file.write_text(json.dumps(status))
    done = compare(["work", "--out", "out"], tmp_path)
    assert done.returncode == 1
    assert "- not compared: work: HRBench8K did not finish in VLMEvalKit (status 'infer')" in done.stdout
    assert "- work: no focus_summary.json (not a focus-eval vlmeval run): VLMEvalKit's model " in done.stdout
    (row,) = [r for r in table(tmp_path / "out" / "vstar.csv") if r["metric"] == "overall"]
    model = status["model_name"]
    assert (row["source"], row["runner"], row["model"], row["method"]) == ("work", f"{model} (VLMEvalKit)", model,
                                                                            "vanilla")
    assert (float(row["accuracy"]), int(row["n"])) == (50.0, questions["VStarBench"])
    assert all(row[c] == "n/a" for c in ("fp", "fp_total", "bp", "tflops", "seconds", "failed", "recall"))
    hr = [r for r in table(tmp_path / "out" / "hrbench4k.csv") if r["metric"] == "overall"]
    assert [int(r["n"]) for r in hr] == [questions["HRBench4K"]]
    assert not (tmp_path / "out" / "hrbench8k.csv").exists()


# ---- numbers compare does not believe (hand-edited results files) ------------------------------

def _set(data: dict, path: tuple, value) -> None:
    for key in path[:-1]:
        data = data[key]
    if value is _DELETE:
        del data[path[-1]]
    else:
        data[path[-1]] = value


_DELETE = object()
# run folder -> (field of focus-1's results file, its bad value, the note's end; "" for the table's
# column that is left out, else the row is left out)
BAD_FIELDS = {
    "acc-250": (("results", "vstar", "vstar_overall_acc,none"), 250, "results.vstar vstar_overall_acc,none is 250, "
                "outside 0-100: left out", ""),
    "acc-negative": (("results", "vstar", "vstar_overall_acc,none"), -5, "results.vstar vstar_overall_acc,none is -5, "
                     "outside 0-100: left out", ""),
    "acc-nan": (("results", "vstar", "vstar_overall_acc,none"), float("nan"), "results.vstar vstar_overall_acc,none is "
                "nan, not a finite number: left out", ""),
    "acc-fraction-2.5": (("results", "hrbench4k", "average,none"), 2.5, "results.hrbench4k average,none is 2.5, "
                         "outside 0-1: left out", ""),
    "recall-inf": (("results", "vstar", "roi_recall,none"), float("inf"), "results.vstar roi_recall,none is inf, not a "
                   "finite number: left out", "recall"),
    "fp-text": (("results", "vstar", "fp,none"), "3.5", "results.vstar fp,none is not a number ('3.5'): left out", "fp"),
    "failed-text": (("results", "vstar", "failed,none"), "two", "results.vstar failed,none is not a number ('two'): "
                    "left out", "failed"),
    "n-text": (("n-samples", "vstar", "effective"), "4", "n-samples.vstar.effective is not a whole number ('4'): left "
               "out", "n"),
    "n-missing": (("n-samples", "vstar"), _DELETE, "n-samples.vstar.effective is missing: no question count and no "
                  "interval for it", "n"),
}


@pytest.fixture(scope="module")
def bad_numbers(runs, tmp_path_factory):
    """One compare (--out) of one hand-edited copy of a real results file per BAD_FIELDS entry, and of
    a VLMEvalKit summary (focus_summary.json's format) with an accuracy above 1 and an infinite fp."""
    _, _, results = runs
    root = tmp_path_factory.mktemp("bad_numbers")
    files = {}
    for name, (path, value, _, _) in BAD_FIELDS.items():
        data = json.loads(json.dumps(results["focus-1"]))
        _set(data, path, value)
        files[name] = root / name / "20260101_000000_results.json"
        files[name].parent.mkdir()
        files[name].write_text(json.dumps(data))  # NaN and Infinity as Python's json writes them
    summary = {"framework": "VLMEvalKit", "model": "llava_ov_focus", "focus_model": "llava_ov_focus", "model_args": {},
               "run_dir": "x", "judge": "exact_matching", "results": {
                   name: {"benchmark": benchmark, "status": "done", "error": None, "prediction_file": None,
                          "metric": "Overall", "value": value, "metrics": {metric: value}, "questions": 4, "failed": 0,
                          "failed_rate": 0.0, "fp": fp, "fp_total": 5.0, "tflops": 0.1, "seconds": 1.0,
                          "peak_mem_gb": 1.0}
                   for name, benchmark, metric, value, fp in (
                       ("VStarBench", "vstar", "split=none|Overall", 2.5, 3.0),
                       ("HRBench4K", "hrbench4k", "cycle=Average|type=all|accuracy", 0.5, float("inf")))}}
    files["vlmeval"] = root / "vlmeval" / "llava_ov_focus" / "T1" / "focus_summary.json"
    files["vlmeval"].parent.mkdir(parents=True)
    files["vlmeval"].write_text(json.dumps(summary))
    done = compare([*files, "--out", "out"], root)
    return done, root / "out", files


def shown(out: Path, source: str, benchmark: str = "vstar") -> dict | None:
    return next((r for r in table(out / f"{benchmark}.csv") if r["source"] == source and r["metric"] == "overall"),
                None)


def plotted(out: Path, source: str, axis: str, benchmark: str = "vstar") -> bool:
    return any(p["source"] == source for p in table(out / f"{benchmark}_{axis}.points.csv"))


@pytest.mark.parametrize("name", BAD_FIELDS)
def test_a_number_compare_cannot_believe_is_left_out_with_a_note(name, bad_numbers, runs):
    done, out, files = bad_numbers
    path, _, note, column = BAD_FIELDS[name]
    benchmark = path[1]
    line = f"{files[name].relative_to(files[name].parent.parent)}: {note}"  # the file as compare found it
    assert done.returncode == 1 and f"focus-eval compare: not compared: {line}\n" in done.stderr
    assert f"- not compared: {line}\n" in done.stdout and f"- not compared: {line}\n" in (out / "compare.md").read_text()
    row = shown(out, name, benchmark)
    if not column:  # the accuracy: no row, no point, no cell in the printed table
        assert row is None and not plotted(out, name, "fp", benchmark) and not plotted(out, name, "tflops", benchmark)
        section = done.stdout.split(f"## {'V*Bench' if benchmark == 'vstar' else 'HRBench-4K'} (")[1].split("\n## ")[0]
        assert f"| {name} |" not in section and "| n-text |" in section  # another edited run's row is there
        return
    good = shown(out, "acc-fraction-2.5")  # its V*Bench numbers are those of the unedited file
    assert good[column] not in ("", "n/a")
    assert row[column] in ("", "n/a") and float(row["accuracy"]) == float(good["accuracy"])  # the rest of the row stays
    assert plotted(out, name, "fp") == (column != "fp") and plotted(out, name, "tflops")
    if column == "n":
        assert row["ci_low"] == row["ci_high"] == ""  # no count, no interval


def test_vlmevalkit_summary_numbers_are_checked_too(bad_numbers):
    done, out, files = bad_numbers
    for line in ("results.VStarBench.metrics split=none|Overall is 2.5, outside 0-1: left out",
                 "results.HRBench4K fp is inf, not a finite number: left out"):
        assert f"focus-eval compare: not compared: {files['vlmeval']}: {line}\n" in done.stderr
    assert shown(out, "vlmeval") is None
    hrbench = shown(out, "vlmeval", "hrbench4k")
    assert (float(hrbench["accuracy"]), hrbench["fp"], float(hrbench["fp_total"])) == (50.0, "n/a", 5.0)
    assert not plotted(out, "vlmeval", "fp", "hrbench4k") and plotted(out, "vlmeval", "tflops", "hrbench4k")


def test_a_malformed_results_file_or_out_folder_is_one_line(runs, tmp_path):
    _, _, results = runs
    data = json.loads(json.dumps(results["focus-1"]))
    data["config"] = ["not", "an", "object"]
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "20260101_000000_results.json").write_text(json.dumps(data))
    (tmp_path / "a_file").write_text("")
    cases = [(["run"], f"run/20260101_000000_results.json: 'config' is not an object (['not', 'an', 'object'])"),
             # --out is checked before any run is read: "nowhere" does not exist
             (["nowhere", "--out", "a_file/out"], "--out: cannot write into a_file/out: Not a directory")]
    for arguments, line in cases:
        done = compare(arguments, tmp_path)
        assert (done.returncode, done.stdout, done.stderr) == (2, "", f"focus-eval: error: {line}\n")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a_file", "run"]
