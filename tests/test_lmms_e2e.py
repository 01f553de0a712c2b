"""focus-eval's tasks run through lmms-eval end to end, offline, on the tiny datasets.

- The real `lmms-eval` console script with lmms-eval's `dummy` model (vstar, vstar_logits,
  mme_realworld_lite; for the dummy, hrbench4k/8k are the built-ins): the results table and
  JSON have the accuracy and counter columns (counters N/A / null: the dummy reports none),
  `--limit`, `--log_samples`, `--output_path` work; a missing dataset path or missing columns
  stop the run with one line naming the problem.
- lmms-eval's evaluator with `ContractModel` (tests/lmms_contract_model.py), which answers
  and reports counters the way a FOCUS model class must: per-question counters reach the
  results, failed questions are scored wrong, the response cache replays records of a
  finished run, and 2 processes give the numbers of 1.
- The launcher `focus-eval lmms-eval` (lmms-eval's console script with an honest exit status,
  model_wrappers/lmms_launcher.py) with a real FOCUS model class on a tiny checkpoint
  (model_wrappers/lmms_models.py): accuracy, counter and `failed` columns, failed rows recorded
  and the run going on, per-question pictures, exit 0 and a warning naming the failed
  questions; 2 processes (torchrun, `-m focus_eval.lmms`) give the answers and numbers of 1; a
  run killed midway and restarted with the same command recomputes only the unfinished
  questions and ends with the results of an uninterrupted run; bad input stops with one line
  naming the problem before any weights are loaded (exit 2), a failure during the evaluation
  exits 1 with its traceback in the log.
"""

import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from focus_eval.tasks import sources, tiny_data
from focus_eval.tasks.record import COUNTER_COLUMNS, DocRecord

TESTS_DIR = Path(__file__).resolve().parent
LMMS_EVAL = Path(sys.executable).with_name("lmms-eval")
FOCUS_EVAL = Path(sys.executable).with_name("focus-eval")
SCALE = 0.05
TASK_DATA = {"vstar": "vstar", "vstar_logits": "vstar", "hrbench4k": "hrbench4k", "hrbench8k": "hrbench8k",
             "mme_realworld_lite": "mme_realworld_lite"}
# hrbench4k/8k are ours only for FOCUS models (discovery.py); the dummy model gets the built-ins.
CLI_TASKS = ("vstar", "vstar_logits", "mme_realworld_lite")
VSTAR_ACCURACY = ["vstar_overall_acc", "vstar_direct_attributes_acc", "vstar_relative_position_acc"]
ACCURACY = {"vstar": VSTAR_ACCURACY, "vstar_logits": VSTAR_ACCURACY,
            "mme_realworld_lite": ["mme_realworld_score", "perception_avg", "reasoning_avg", "perception_ad",
                                   "reasoning_dt"]}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_data.write_tiny_datasets(tmp_path_factory.mktemp("tiny"), scale=SCALE, bad_rows=True)


@pytest.fixture
def offline_env(tmp_path):
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", PYTHONPATH=os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]))
    env.pop("LMMS_EVAL_PLUGINS", None)
    return env


def override_dir(folder: Path, paths: dict[str, Path]) -> Path:
    """`--tasks DIR` overrides: one YAML per task pointing at a local dataset."""
    folder.mkdir(parents=True, exist_ok=True)
    for task, path in paths.items():
        (folder / f"{task}.yaml").write_text(f"task: {task}\ndataset_path: {path}\n")
    return folder


def run_cli(args: list[str], env: dict, cwd: Path) -> str:
    done = subprocess.run([str(LMMS_EVAL), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    return done.stdout + done.stderr


def run_launcher(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    """`focus-eval lmms-eval ARGS`, the console script users run."""
    return subprocess.run([str(FOCUS_EVAL), "lmms-eval", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def table_rows(output: str) -> dict[tuple[str, str], str]:
    """(task, metric) -> value from lmms-eval's markdown results table."""
    rows, task = {}, None
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 6 and cells[1] == "none":
            task = cells[0] or task
            rows[(task, cells[3])] = cells[5]
    return rows


def test_cli_dummy_model_runs_every_task_with_accuracy_and_counter_columns(tiny, tmp_path, offline_env):
    tasks = override_dir(tmp_path / "tasks", {task: tiny[TASK_DATA[task]] for task in CLI_TASKS})
    out = tmp_path / "out"
    output = run_cli(["--model", "dummy", "--model_args", "response=B", "--tasks", str(tasks), "--limit", "4",
                      "--log_samples", "--output_path", str(out)], offline_env, tmp_path)
    table = table_rows(output)
    for task in CLI_TASKS:
        for metric in ACCURACY[task]:
            assert (task, metric) in table, (task, metric, output[-3000:])
        for column in COUNTER_COLUMNS:
            assert table[(task, column)] == "N/A", (task, column)
    # the first 4 MME-RealWorld rows are all Perception: reasoning reads N/A (not 0, not absent)
    assert table[("mme_realworld_lite", "reasoning_avg")] == "N/A"
    assert table[("mme_realworld_lite", "perception_avg")] != "N/A"
    (results_file,) = out.rglob("*_results.json")
    results = json.loads(results_file.read_text())
    for task in CLI_TASKS:
        assert results["n-samples"][task]["effective"] == 4
        assert all(results["results"][task][f"{column},none"] is None for column in COUNTER_COLUMNS)
        assert results["results"][task]["failed,none"] == 0 and results["results"][task]["failed_rate,none"] == 0
    # dummy answers "B": accuracy over the first 4 rows, computed from the data itself
    rows = tiny_data.build_rows("vstar", scale=SCALE, bad_rows=True)[:4]
    assert results["results"]["vstar"]["vstar_overall_acc,none"] == pytest.approx(
        100 * sum(r["label"] == "B" for r in rows) / 4)
    samples = {path.name.split("_samples_")[1][:-len(".jsonl")]: [json.loads(line) for line in path.open()]
               for path in out.rglob("*_samples_*.jsonl")}
    assert set(samples) == set(CLI_TASKS)
    for task, logged in samples.items():
        assert len(logged) == 4
        entry = logged[0][ACCURACY[task][0]]
        assert entry["raw_answer"] == "B" and entry["answer"] == "B" and entry["error"] is None


@pytest.mark.parametrize("problem", ["missing path", "missing columns"])
def test_cli_bad_dataset_stops_with_one_clear_line(problem, tiny, tmp_path, offline_env):
    path = tmp_path / "nowhere" / "vstar.parquet" if problem == "missing path" else tiny["hrbench4k"]
    tasks = override_dir(tmp_path / "tasks", {"vstar": path})
    out = tmp_path / "out"
    output = run_cli(["--model", "dummy", "--tasks", str(tasks), "--output_path", str(out)], offline_env, tmp_path)
    expected = (f"vstar: dataset path '{path}' does not exist" if problem == "missing path"
                else f"vstar: '{path}' is missing columns ['text', 'label', 'question_id']")
    assert f"Error during evaluation: {expected}" in output
    assert "RetryError" not in output and not list(out.rglob("*_results.json"))


# ---- lmms-eval's evaluator with a model that follows the contract ----------------------------

def expected_results(task: str) -> dict[str, float]:
    """What ContractModel must score, from the builder's rows: the last two rows are bad,
    even doc ids answer the label, fp = id + 1 and fp_total = fp + 1 over the good rows."""
    key = TASK_DATA[task]
    rows = tiny_data.build_rows(key, scale=SCALE, bad_rows=True)
    failed = {len(rows) - 2, len(rows) - 1}
    score = {i: int(i % 2 == 0 and i not in failed) for i in range(len(rows))}
    good = [i for i in range(len(rows)) if i not in failed]
    expected = {"fp": sum(i + 1 for i in good) / len(good), "fp_total": sum(i + 2 for i in good) / len(good),
                "tflops": sum(good) / len(good), "failed": 2, "failed_rate": 2 / len(rows)}
    if key == "vstar":
        expected["vstar_overall_acc"] = 100 * sum(score.values()) / len(rows)
        for category in ("direct_attributes", "relative_position"):
            ids = [i for i, r in enumerate(rows) if r["category"] == category]
            expected[f"vstar_{category}_acc"] = 100 * sum(score[i] for i in ids) / len(ids)
    elif key.startswith("hrbench"):
        for metric in ("single", "cross", "average"):
            cycles = defaultdict(list)
            for i, r in enumerate(rows):
                if metric in (r["category"], "average"):
                    cycles[r["cycle_category"]].append(score[i])
            expected[metric] = sum(sum(s) / len(s) for s in cycles.values()) / len(cycles)
    else:
        expected["mme_realworld_score"] = sum(score.values()) / len(rows)
        perception = [i for i, r in enumerate(rows) if r["category"].startswith("Perception")]
        expected["perception_avg"] = sum(score[i] for i in perception) / len(perception)
    return expected


def evaluate_in_process(tasks, tiny, **kwargs):
    import lmms_eval.models  # noqa: F401  entry points, as the CLI loads them
    from lmms_eval import evaluator
    from lmms_eval.tasks import TaskManager
    from lmms_contract_model import ContractModel

    for key in {TASK_DATA[t] for t in tasks}:
        sources.register_local_dataset(key, tiny[key])
    model = ContractModel()
    manager = TaskManager("WARNING", model_name="llava_ov_focus")  # as lmms-eval builds it for a FOCUS model
    results = evaluator.simple_evaluate(model=model, tasks=tasks, task_manager=manager, log_samples=False, **kwargs)
    return model, results["results"]


@pytest.fixture
def clean_registry(monkeypatch, tmp_path):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))
    monkeypatch.setattr(sources, "_local_datasets", {})


def test_counters_failures_and_accuracy_through_the_evaluator(tiny, clean_registry):
    tasks = ["vstar", "vstar_logits", "hrbench4k", "mme_realworld_lite"]
    model, results = evaluate_in_process(tasks, tiny)
    for task in tasks:
        for metric, value in expected_results(task).items():
            assert results[task][f"{metric},none"] == pytest.approx(value), (task, metric)
        assert results[task]["seconds,none"] == 0.0 and results[task]["peak_mem_gb,none"] == 0.0
    assert ("vstar_logits", 0) in model.generated


def test_response_cache_replays_records_on_resume(tiny, clean_registry, tmp_path):
    cache = str(tmp_path / "cache")
    first_model, first = evaluate_in_process(["vstar", "hrbench8k"], tiny, use_cache=cache)
    resumed_model, resumed = evaluate_in_process(["vstar", "hrbench8k"], tiny, use_cache=cache)
    assert len(first_model.generated) == 16 and resumed_model.generated == []
    assert resumed == first
    assert first["vstar"]["fp,none"] == pytest.approx(expected_results("vstar")["fp"])


def test_two_processes_give_the_numbers_of_one(tiny, tmp_path, offline_env):
    """Rank 0's gathered results equal the single-process expectations (checked in-process in
    test_counters_failures_and_accuracy_through_the_evaluator) while each rank generated half."""
    data = ",".join(f"{key}={tiny[key]}" for key in ("vstar", "hrbench4k"))
    out = tmp_path / "results.json"
    # On GPUs: `accelerate launch --num_processes N`. On this CPU machine the `accelerate` CLI
    # fails to import (timm needs torchvision) and its --cpu launch starts one process, so two
    # ranks are started by torchrun, with accelerate told to run its multi-CPU (gloo) mode.
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               str(TESTS_DIR / "lmms_contract_model.py"), str(out), "vstar,hrbench4k", data]
    done = subprocess.run(command, env={**offline_env, "ACCELERATE_USE_CPU": "1"}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    for task in ("vstar", "hrbench4k"):
        for metric, value in expected_results(task).items():
            assert results[task][f"{metric},none"] == pytest.approx(value), (task, metric)
    per_rank = [json.loads((tmp_path / f"results.json.rank{rank}").read_text()) for rank in (0, 1)]
    vstar_ids = [sorted(i for task, i in generated if task == "vstar") for generated in per_rank]
    assert vstar_ids == [[0, 2, 4], [1, 3, 5]]  # lmms-eval shards documents by rank


# ---- the real console script with a FOCUS model class on a tiny checkpoint ------------------

FOCUS_MODEL, FOCUS_FAMILY = "llava_ov_focus", "llava_onevision"
FOCUS_TASKS = {"vstar": 6, "hrbench4k": 10}  # task -> rows, the last two of each defective
MEASURED = ("seconds", "peak_mem_gb")  # timing and memory: the only numbers that may differ between runs


def cli_env(home: Path) -> dict:
    env = dict(os.environ, HF_HOME=str(home / "hf"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1")
    env.pop("LMMS_EVAL_PLUGINS", None)
    return env


@pytest.fixture(scope="module")
def focus_cli(tiny, tiny_checkpoint):
    """lmms-eval arguments for the FOCUS model on the tiny data (8-token target replies and answers)."""
    model_args = ",".join([f"pretrained={tiny_checkpoint(FOCUS_FAMILY)}", f"data_vstar={tiny['vstar']}",
                           f"data_hrbench4k={tiny['hrbench4k']}", "target_max_new_tokens=8"])
    return ["--model", FOCUS_MODEL, "--model_args", model_args, "--tasks", ",".join(FOCUS_TASKS),
            "--gen_kwargs", "max_new_tokens=8", "--log_samples"]


def with_model_args(arguments: list[str], extra: str) -> list[str]:
    index = arguments.index("--model_args") + 1
    return [*arguments[:index], f"{arguments[index]},{extra}", *arguments[index + 1:]]


@dataclass
class Run:
    output: str
    results: dict  # task -> metric -> value
    samples: dict  # task -> samples by doc_id

    @classmethod
    def read(cls, output: str, out: Path) -> "Run":
        (results_file,) = out.rglob("*_results.json")
        samples = {}
        for path in out.rglob("*_samples_*.jsonl"):
            logged = [json.loads(line) for line in path.open()]
            samples[path.name.split("_samples_")[1][:-len(".jsonl")]] = sorted(logged, key=lambda s: s["doc_id"])
        return cls(output, json.loads(results_file.read_text())["results"], samples)

    def numbers(self) -> dict:
        """Every reported number except measured time and memory, by "task/metric". (Means of the
        same values gathered from several ranks are summed in another order: compare them with
        pytest.approx.)"""
        return {f"{task}/{k}": v for task, values in self.results.items() for k, v in values.items()
                if not k.startswith(MEASURED) and k != "alias"}

    def records(self, task: str) -> list[tuple]:
        """Per question: doc id, answer, error, counters without time and memory, details."""
        out = []
        for sample in self.samples[task]:
            record = DocRecord.from_response(sample["filtered_resps"])
            counters = {k: v for k, v in (record.counters or {}).items()
                        if k not in ("seconds", "total_seconds", "peak_mem_gb")}
            out.append((sample["doc_id"], record.answer, record.error, counters, record.details))
        return out


@pytest.fixture(scope="module")
def single_run(focus_cli, tmp_path_factory):
    """One uninterrupted single-process run through the launcher, with per-question pictures;
    (Run, pictures folder, the launcher's exit status and stderr)."""
    root = tmp_path_factory.mktemp("single")
    done = run_launcher([*with_model_args(focus_cli, f"save_maps={root / 'maps'}"), "--output_path",
                         str(root / "out")], cli_env(root), root)
    return Run.read(done.stdout + done.stderr, root / "out"), root / "maps", done.returncode, done.stderr


def test_cli_focus_model_reports_accuracy_counters_and_failed_rows(single_run):
    run, maps, returncode, stderr = single_run
    assert returncode == 0, stderr[-3000:]
    assert stderr.splitlines()[-1] == ("focus-eval: warning: questions failed and were scored wrong: hrbench4k 2 of 10, "
                                       "vstar 2 of 6 (metric `failed`; the reasons are in the log and the samples)")
    table = table_rows(run.output)
    accuracy = {"vstar": VSTAR_ACCURACY, "hrbench4k": ["single", "cross", "average"]}
    for task, rows in FOCUS_TASKS.items():
        for metric in (*accuracy[task], *COUNTER_COLUMNS):
            assert table[(task, metric)] != "N/A", (task, metric)  # every question that ran reported counters
        samples = run.samples[task]
        assert [s["doc_id"] for s in samples] == list(range(rows))
        good, bad = samples[:-2], samples[-2:]
        assert all(s["fp"] >= 1 and s["fp_total"] >= s["fp"] + 2 and s["tflops"] > 0 for s in good)
        for sample in bad:  # recorded as failed, scored wrong, no counters; the run went on
            entry = sample[accuracy[task][-1 if task == "hrbench4k" else 0]]
            assert entry["error"] and entry["score"] == 0 and sample["fp"] is None
        fp = run.results[task]["fp,none"]
        assert fp == pytest.approx(sum(s["fp"] for s in good) / len(good))
        assert (table[(task, "failed")], table[(task, "failed_rate")]) == ("2.0000", f"{2 / rows:.4f}")
        assert run.results[task]["failed,none"] == 2 and run.results[task]["failed_rate,none"] == pytest.approx(2 / rows)
    scores = [s["vstar_overall_acc"]["score"] for s in run.samples["vstar"]]
    assert run.results["vstar"]["vstar_overall_acc,none"] == pytest.approx(100 * sum(scores) / len(scores))
    assert "ImageLoadError" in run.samples["vstar"][4]["vstar_overall_acc"]["error"]
    assert run.samples["hrbench4k"][9]["average"]["error"] == "option D missing"
    # ROI recall of the tiny V*Bench's annotated boxes: per question in the samples and the traces
    recalls = [s["roi_recall"] for s in run.samples["vstar"]]
    assert all(0 <= r <= 1 for r in recalls[:4]) and recalls[4:] == [None, None]  # the defective rows
    assert run.results["vstar"]["roi_recall,none"] == pytest.approx(sum(recalls[:4]) / 4)
    assert table[("vstar", "roi_recall")] != "N/A" and "roi_recall,none" not in run.results["hrbench4k"]
    trace = json.loads((maps / "vstar_0.json").read_text())
    assert trace["gt_boxes"] and trace["roi_recall"] == recalls[0]
    assert sorted(path.name for path in maps.glob("*.png")) == sorted(
        f"{task}_{i}.png" for task, rows in FOCUS_TASKS.items() for i in range(rows - 2))
    assert f"{FOCUS_MODEL}: loaded {FOCUS_FAMILY} checkpoint" in run.output


def test_two_processes_give_the_answers_and_numbers_of_one(single_run, focus_cli, tmp_path):
    # On GPUs: `accelerate launch --num_processes N -m focus_eval.lmms ...`. The `accelerate` CLI fails
    # to import on this CPU machine (timm needs torchvision), so torchrun starts the two ranks;
    # the Accelerator lmms-eval's CLI creates initialises torch.distributed with gloo, and
    # lmms-eval shards, pads and gathers through it.
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "focus_eval.lmms",
               *with_model_args(focus_cli, f"save_maps={tmp_path / 'maps'}"), "--output_path", str(tmp_path / "out")]
    done = subprocess.run(command, env=cli_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    run = Run.read(done.stdout + done.stderr, tmp_path / "out")
    one = single_run[0]
    assert run.numbers() == pytest.approx(one.numbers())
    for task in FOCUS_TASKS:
        assert run.records(task) == one.records(task)
    assert sorted(path.name for path in (tmp_path / "maps").glob("*.png")) == sorted(
        f"{task}_{i}.png" for task, rows in FOCUS_TASKS.items() for i in range(rows - 2))  # from both ranks
    assert run.output.count(f"{FOCUS_MODEL}: loaded {FOCUS_FAMILY} checkpoint") == 2  # one model per rank


def test_interrupted_run_resumes_without_recomputing_finished_questions(single_run, focus_cli, tmp_path):
    arguments = [*with_model_args(focus_cli, f"resume_dir={tmp_path / 'resume'}"), "--output_path", str(tmp_path / "out")]
    probe = [sys.executable, str(TESTS_DIR / "lmms_cli_probe.py")]
    killed = subprocess.run([*probe, str(tmp_path / "calls.1"), "5", *arguments], env=cli_env(tmp_path),
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert killed.returncode == 9 and not list((tmp_path / "out").rglob("*_results.json"))
    assert len((tmp_path / "calls.1").read_text().splitlines()) == 5
    resumed = subprocess.run([*probe, str(tmp_path / "calls.2"), "-1", *arguments], env=cli_env(tmp_path),
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    questions = sum(rows - 2 for rows in FOCUS_TASKS.values())  # defective rows never reach the model
    assert len((tmp_path / "calls.2").read_text().splitlines()) == questions - 5
    run, one = Run.read(resumed.stdout + resumed.stderr, tmp_path / "out"), single_run[0]
    assert run.numbers() == pytest.approx(one.numbers())
    for task in FOCUS_TASKS:
        assert run.records(task) == one.records(task)


def launcher_config(tmp_path: Path, runs: list[dict]) -> list[str]:
    """Arguments running every entry of `runs` (lmms-eval --config entries) in one process."""
    config = tmp_path / "runs.yaml"
    config.write_text(json.dumps(runs))  # JSON is YAML
    return ["--config", str(config)]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("focus-eval: ")]


def test_setup_errors_exit_2_with_one_line_each_before_any_model_loads(tiny, tiny_checkpoint, tmp_path):
    checkpoint = tiny_checkpoint(FOCUS_FAMILY)
    other_family = tiny_checkpoint("llava_1_5")
    empty = tmp_path / "empty"
    empty.mkdir()
    blocker = tmp_path / "a_file"  # nothing can be created under a file, not even by root
    blocker.write_text("")
    missing = tmp_path / "nowhere" / "vstar.parquet"
    good = f"pretrained={checkpoint},data_vstar={tiny['vstar']}"
    runs = [  # (lmms-eval --config entry, the message of its line)
        ({"model_args": f"{good},n_step=4"}, f"{FOCUS_MODEL}: unknown model argument 'n_step'; valid: anchor_selection, "),
        ({"model_args": f"{good},n_steps=-1"}, f"{FOCUS_MODEL}: n_steps must be >= 1"),
        ({"model_args": f"{good},layers=30-10"}, f"{FOCUS_MODEL}: need 0 <= layer_start < layer_end"),
        ({"model_args": f"{good},method=zoomeye,zoomeye_split=3"}, f"{FOCUS_MODEL}: zoomeye_split must be 4 or 2"),
        ({"model_args": f"{good},method=vicrop,vicrop_map=attention"},
         f"{FOCUS_MODEL}: vicrop_map='attention': expected one of ('rel_att', 'grad_att')"),
        ({"model_args": good, "tasks": "vstar,no_such_task"}, "Tasks not found: no_such_task."),
        ({"model_args": f"pretrained={checkpoint},data_vstar={missing}"}, f"vstar: dataset path '{missing}' does not exist"),
        ({"model_args": f"pretrained={checkpoint},data_vstar={tiny['hrbench4k']}"},
         f"vstar: '{tiny['hrbench4k']}' is missing columns ['text', 'label', 'question_id']"),
        ({"model_args": f"pretrained={other_family}"},
         f"{FOCUS_MODEL}: {other_family} is a 'llava' checkpoint (family 'llava_1_5'), not family 'llava_onevision'"),
        ({"model_args": f"pretrained={empty}"}, f"{FOCUS_MODEL}: {empty} has no config.json"),
        ({"model_args": f"{good},save_maps={blocker}/maps"},
         f"{FOCUS_MODEL}: save_maps='{blocker}/maps': cannot write into {blocker}/maps: Not a directory"),
        ({"model_args": f"{good},resume_dir={blocker}/resume"},
         f"{FOCUS_MODEL}: resume_dir='{blocker}/resume': cannot write into {blocker}/resume: Not a directory"),
        ({"model_args": good, "output_path": str(blocker / "out")},
         f"--output_path: cannot write into {blocker}/out: Not a directory"),
        ({"model_args": good, "tasks": None}, "no --tasks given"),
        ({"model_args": good, "limit": 0}, "--limit 0 asks no question; give a number of questions per task"),
    ]
    base = {"model": FOCUS_MODEL, "tasks": "vstar", "output_path": str(tmp_path / "out")}
    done = run_launcher(launcher_config(tmp_path, [{**base, **entry} for entry, _ in runs]), cli_env(tmp_path), tmp_path)
    assert done.returncode == 2
    lines = error_lines(done.stderr)
    assert len(lines) == len(runs), done.stderr[-3000:]
    for number, (line, (_, message)) in enumerate(zip(lines, runs), start=1):
        assert line.startswith(f"focus-eval: error: run {number} of {len(runs)} (setup): {message}"), (message, line)
    assert all(f" {name}," in lines[0] for name in ("n_steps", "pretrained", "resume_dir", "save_maps"))
    output = done.stdout + done.stderr
    assert "Traceback" not in output and "loaded" not in output and not list(tmp_path.rglob("*_results.json"))
    assert not (tmp_path / "out").exists()  # --output_path is checked, not created, for runs that never start


def test_failures_during_the_evaluation_exit_1_with_the_traceback_in_the_log(tiny, tiny_checkpoint, tmp_path):
    """Weights that do not load (at the first question), and a run whose results file cannot be
    written: exit 1. A picture that cannot be written is a warning and the run goes on."""
    from lmms_eval.utils import sanitize_model_name

    checkpoint = tiny_checkpoint(FOCUS_FAMILY)
    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    (broken / "model.safetensors").write_bytes(b"not weights")
    maps, out = tmp_path / "maps", tmp_path / "out"
    (maps / "vstar_1.png").mkdir(parents=True)  # a folder where a picture must go
    out.mkdir()
    (out / sanitize_model_name(str(checkpoint))).write_text("")  # where lmms-eval writes its results file
    common = {"model": FOCUS_MODEL, "tasks": "vstar", "gen_kwargs": "max_new_tokens=4"}
    runs = [{**common, "model_args": f"pretrained={broken},data_vstar={tiny['vstar']}",
             "output_path": str(tmp_path / "broken_out")},
            {**common, "model_args": f"pretrained={checkpoint},data_vstar={tiny['vstar']},save_maps={maps},"
                                     "target_max_new_tokens=4", "output_path": str(out), "limit": 3}]
    done = run_launcher(launcher_config(tmp_path, runs), cli_env(tmp_path), tmp_path)
    assert done.returncode == 1
    first, second = error_lines(done.stderr)
    assert first.startswith("focus-eval: error: run 1 of 2 (evaluation): ")
    assert second == (f"focus-eval: error: run 2 of 2 (evaluation): no results file was written under {out} "
                      "(lmms-eval's warning 'Could not save results aggregated' above gives the reason)")
    assert "Traceback" not in done.stderr and "Traceback (most recent call last)" in done.stdout
    assert f"vstar doc 1: picture and trace not saved in {maps}" in done.stdout
    assert sorted(path.name for path in maps.glob("*.png")) == ["vstar_0.png", "vstar_1.png", "vstar_2.png"]
    assert (maps / "vstar_1.png").is_dir() and (maps / "vstar_2.json").is_file()


def test_runs_that_lost_too_many_questions_exit_1_with_one_line_each(tiny, tiny_checkpoint, tmp_path):
    """Every question of a task failed (--offset 4 asks only the tiny vstar's two defective rows), or,
    with --max-failed-rate, a larger share than allowed (2 of 3): exit 1, one line per such run
    naming the first reason; a run within the rate (2 of 4) only warns."""
    common = {"model": FOCUS_MODEL, "tasks": "vstar", "gen_kwargs": "max_new_tokens=4", "log_samples": True,
              "model_args": f"pretrained={tiny_checkpoint(FOCUS_FAMILY)},data_vstar={tiny['vstar']},"
                            "target_max_new_tokens=4"}
    runs = [{**common, "offset": offset, "output_path": str(tmp_path / f"offset{offset}")} for offset in (4, 3, 2)]
    done = run_launcher([*launcher_config(tmp_path, runs), "--max-failed-rate", "0.5"], cli_env(tmp_path), tmp_path)
    reason = "the first reason: ImageLoadError: "
    assert done.returncode == 1
    first, second, warning = error_lines(done.stderr)
    assert first.startswith(f"focus-eval: error: run 1 of 3 (evaluation): every question failed: vstar 2 of 2 "
                            f"(metric `failed`; {reason}")
    assert second.startswith("focus-eval: error: run 2 of 3 (evaluation): more questions failed than "
                             f"--max-failed-rate 0.5 allows: vstar 2 of 3 (metric `failed`; {reason}")
    assert warning == ("focus-eval: warning: questions failed and were scored wrong: vstar 2 of 4 (metric `failed`; the "
                       "reasons are in the log and the samples)")
    assert "Traceback" not in done.stderr and len(list(tmp_path.rglob("*_results.json"))) == 3
