"""The VLMEvalKit plug-in (model_wrappers/vlmeval_*.py, `focus-eval vlmeval`).

In this environment: our tasks' prompts, questions and decoding for VLMEvalKit's rows equal what
lmms-eval builds for the same questions; the prediction-file columns and the summary's numbers;
the errors found before VLMEvalKit is imported.

End to end (`make test` sets FOCUS_VLMEVAL_PYTHON to the VLMEvalKit environment's python, built
by `make vlmeval-env` from the vendored snapshot; without it these tests are skipped; the shared
runs are made by tests/vlmeval_e2e.py): the real VLMEvalKit run.py on the tiny LLaVA-OneVision and tiny TSVs in VLMEvalKit's columns for
VStarBench, HRBench4K, HRBench8K and MME-RealWorld-Lite. Its result files appear with the
counter columns and the summary; every question's answer, failure and counters equal those of
the lmms-eval run of the same questions, and so does the prompt each pipeline was given; two
processes (torchrun, gloo) give the records of one; `--reuse` recomputes nothing and keeps the
counters; an unknown dataset, a missing data file or bad input stop with one line and a
non-zero exit status.
"""

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from focus_eval.model_wrappers import vlmeval_benchmarks as vb
from focus_eval.model_wrappers import vlmeval_run
from focus_eval.model_wrappers.lmms_models import Decoding
from focus_eval.tasks import sources, tiny_data
from focus_eval.tasks.record import COUNTER_COLUMNS, DocRecord, FocusQuestion
from vlmeval_e2e import DATASETS, SCALE, TASKS, VLMEVAL_PYTHON, finish, focus_args, needs_vlmevalkit, run_vlmeval

TIMING = ("seconds", "total_seconds", "peak_mem_gb")  # measured, not computed: differ between runs
PROG = "python -m focus_eval.vlmeval"  # the name its lines carry in the VLMEvalKit runs (tests/vlmeval_cpu.py)


def as_vlmevalkit_loads(key: str, row: dict) -> dict:
    """A TSV row as VLMEvalKit's dataset holds it: its MME-RealWorld loader turns the stored
    list of items into the columns A-E (the text after "(X) ")."""
    if key != "mme_realworld_lite":
        return row
    items = eval(row["multi-choice options"])  # VLMEvalKit's loader reads it so
    return {**row, **{letter: item[4:] for letter, item in zip("ABCDE", items)}}


def asked_fields(question: FocusQuestion) -> tuple:
    """What the model is asked: VLMEvalKit's rows carry no more than this."""
    return question.dataset, question.question, question.options, question.answer_scheme


@pytest.fixture(scope="module")
def lmms_requests(tmp_path_factory):
    """lmms-eval's requests for our four tasks on the tiny data (bad rows included), by task."""
    import datasets
    import lmms_eval.models  # noqa: F401  the entry point registers our tasks
    from lmms_eval.tasks import TaskManager

    root = tmp_path_factory.mktemp("lmms")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(root / "hf_datasets"))
        patch.setattr(sources, "_local_datasets", {})
        for key, path in tiny_data.write_tiny_datasets(root, scale=SCALE, bad_rows=True).items():
            sources.register_local_dataset(key, path)
        manager = TaskManager("WARNING", model_name="llava_ov_focus")
        out = {}
        for task in TASKS.values():
            built = manager.load_task_or_group(task)[task]
            built.build_all_requests()
            out[task] = (built.dataset[built.config.test_split], sorted(built.instances, key=lambda i: i.doc_id))
    return out


@pytest.mark.parametrize("name", DATASETS)
def test_prompts_questions_and_decoding_equal_the_lmms_eval_tasks(name, lmms_requests):
    key = vb.VLMEVAL_DATASETS[name]
    docs, instances = lmms_requests[TASKS[key]]
    rows = vb.vlmeval_rows(key, tiny_data.build_rows(key, scale=SCALE, bad_rows=True))
    assert len(rows) == len(instances) == len(docs)
    for row, instance in zip(rows, instances):
        context, gen_kwargs = instance.args[0], instance.args[1]
        asked = vb.question(name, as_vlmevalkit_loads(key, row))
        ours, theirs = asked.task.question, FocusQuestion.from_doc(docs[instance.doc_id])
        assert asked.index == instance.doc_id
        decoding = Decoding.from_gen_kwargs(gen_kwargs)
        assert (asked.task.max_new_tokens, asked.task.stop) == (decoding.max_new_tokens, decoding.stop)
        assert bool(ours.error) == bool(theirs.error), (instance.doc_id, ours, theirs)
        if not theirs.error:  # a defective row is never asked (its error texts may differ: see vlmeval_rows)
            assert (asked.task.prompt, *asked_fields(ours)) == (context, *asked_fields(theirs))


def test_decoding_defaults_are_the_tasks():
    row = lambda key: as_vlmevalkit_loads(key, vb.vlmeval_rows(key, tiny_data.build_rows(key, scale=SCALE))[0])
    limits = {name: vb.question(name, row(key)).task.max_new_tokens for name, key in vb.VLMEVAL_DATASETS.items()}
    # vstar and mme_realworld_lite set max_new_tokens 16; hrbench sets none: the models' default
    assert limits == {"VStarBench": 16, "HRBench4K": 1024, "HRBench8K": 1024, "MME-RealWorld-Lite": 16}


def test_record_columns_and_summary_numbers():
    good = DocRecord(answer="B", counters={"fp": 3, "fp_total": 5, "bp": 1, "tflops": 0.5, "total_seconds": 2.0,
                                           "peak_mem_gb": 1.0}).to_response()
    bad = DocRecord.failure("ImageLoadError: no image").to_response()
    assert vlmeval_run.record_columns(good) == {"fp": 3.0, "fp_total": 5.0, "bp": 1.0, "tflops": 0.5, "seconds": 2.0,
                                                "peak_mem_gb": 1.0, "failed": 0, "error": None}
    assert vlmeval_run.record_columns(bad) == {**dict.fromkeys(COUNTER_COLUMNS), "failed": 1,
                                               "error": "ImageLoadError: no image"}
    assert vlmeval_run.record_columns(float("nan")) == dict.fromkeys(vlmeval_run.RECORD_COLUMNS)  # no record
    import pandas as pd

    table = pd.DataFrame([vlmeval_run.record_columns(text) for text in (good, bad, good.replace('"fp": 3', '"fp": 7'))])
    summary = vlmeval_run.counter_summary(table)
    assert (summary["questions"], summary["failed"]) == (3, 1)
    assert summary["failed_rate"] == pytest.approx(1 / 3)
    assert summary["fp"] == 5.0 and summary["fp_total"] == 5.0 and summary["bp"] == 1.0  # means over the two that ran


def test_model_args_string_and_run_names(tmp_path):
    assert vlmeval_run.parse_args_string(" n_steps=4, pretrained=/m/x ,") == {"n_steps": "4", "pretrained": "/m/x"}
    with pytest.raises(vlmeval_run.UserError, match="NAME=VALUE pairs"):
        vlmeval_run.parse_args_string("n_steps")
    (plain,) = vlmeval_run._models(["llava15_focus"], [""])
    assert plain.name == "llava15_focus" and plain.args.spec.family == "llava_1_5"
    one, two = (vlmeval_run._models(["llava_ov_focus"], [text])[0] for text in ("n_steps=4,method=vanilla",
                                                                              "method=vanilla, n_steps=4"))
    assert one.name == two.name and one.name.startswith("llava_ov_vanilla-") and len(one.name) == len("llava_ov_vanilla-") + 8
    assert one.args.config("vstar").method == "vanilla" and one.args.max_new_tokens is None
    assert vlmeval_run._models(["llava_ov_focus"], ["max_new_tokens=8"])[0].args.max_new_tokens == 8
    assert vlmeval_run._models(["llava_ov_focus"], [f"save_maps={tmp_path}"])[0].name == "llava_ov_focus"


def test_run_names_say_the_method():
    """The registered name (VLMEvalKit's work folder and file prefix) says the method; FOCUS keeps
    the model's name; the digest covers the other arguments, so no two methods or settings share
    a folder."""
    def name(model, text):
        return vlmeval_run._models([model], [text])[0].name

    assert [name("llava_ov_focus", f"method={m}") for m in ("focus", "vanilla", "zoomeye", "vicrop")] == [
        "llava_ov_focus", "llava_ov_vanilla", "llava_ov_zoomeye", "llava_ov_vicrop"]
    assert name("llava15_focus", "method=zoomeye") == "llava15_zoomeye"
    assert name("qwen2_5_vl_focus", "method=vicrop") == "qwen2_5_vl_vicrop"
    rel, grad = (name("llava_1_5_focus", f"method=vicrop,vicrop_map={m}") for m in ("rel_att", "grad_att"))
    assert rel != grad and rel.startswith("llava_1_5_vicrop-") and grad.startswith("llava_1_5_vicrop-")
    assert name("llava_ov_focus", "n_steps=4").startswith("llava_ov_focus-")
    assert name("llava_ov_focus", "method=focus,n_steps=4") == name("llava_ov_focus", "n_steps=4")
    # one process, several runs: one --model-args string per model, in order; two identical runs are refused
    runs = vlmeval_run._models(["llava_ov_focus", "llava_ov_focus", "llava_1_5_focus"],
                               ["method=zoomeye", "method=vicrop,vicrop_map=grad_att", "method=vanilla"])
    assert [r.name for r in runs][::2] == ["llava_ov_zoomeye", "llava_1_5_vanilla"]
    assert runs[1].args.config(None).vicrop_map == "grad_att" and runs[2].args.spec.family == "llava_1_5"
    with pytest.raises(vlmeval_run.UserError, match="one K=V,... string for all models or one per model"):
        vlmeval_run._models(["llava_ov_focus"] * 3, ["method=zoomeye", "method=vicrop"])
    with pytest.raises(vlmeval_run.UserError, match=r"two of the runs are the same \(llava_ov_zoomeye\)"):
        vlmeval_run._models(["llava_ov_focus"] * 2, ["method=zoomeye"])


def test_baseline_options_pass_the_one_parser():
    """A list option survives `--model-args` (items separated by ':'); a bad value or a list with
    commas is one line before VLMEvalKit is even looked for."""
    (model,) = vlmeval_run._models(["llava_ov_focus"], ["method=zoomeye,zoomeye_decrements=0.1:0.1:0.2,zoomeye_depth=2"])
    config = model.args.config("vstar")
    assert (config.method, config.zoomeye_decrements, config.zoomeye_depth) == ("zoomeye", (0.1, 0.1, 0.2), 2)
    (model,) = vlmeval_run._models(["llava_1_5_focus"], ["method=vicrop,vicrop_map=grad_att,vicrop_high=true"])
    config = model.args.config("hrbench8k")
    assert (config.method, config.vicrop_map, config.vicrop_high) == ("vicrop", "grad_att", True)


@pytest.mark.parametrize("argv, message", [
    (["--model", "llava_onevision", "--data", "VStarBench"], "'llava_onevision' is not a FOCUS model"),
    (["--model", "llava_ov_focus", "--data", "VStarBench", "--model-args", "nsteps=3"],
     "llava_ov_focus: unknown model argument 'nsteps'; valid: "),
    (["--model", "llava_ov_focus", "--data", "VStarBench", "--model-args", "resume_dir=x"],
     "llava_ov_focus: unknown model argument 'resume_dir'"),  # lmms-eval's; VLMEvalKit resumes with --reuse
    (["--model", "llava_ov_focus", "--data", "VStarBench", "--model-args", "n_steps=0"], "n_steps must be >= 1"),
    (["--model", "llava_ov_focus", "--data", "VStarBench", "--model-args", "method=zoomeye,zoomeye_split=3"],
     "llava_ov_focus: zoomeye_split must be 4 or 2"),
    (["--model", "llava_ov_focus", "--data", "VStarBench", "--model-args", "zoomeye_decrements=0.1:x"],
     "llava_ov_focus: zoomeye_decrements='0.1:x': expected float values separated by ':'"),
    (["--model", "llava_ov_focus", "--data", "VStarBench", "--model-args", "zoomeye_decrements=0.1,0.2"],
     "--model-args expects NAME=VALUE pairs separated by commas, got '0.2'"),
    (["--model", "llava_1_5_focus", "--data", "VStarBench", "--model-args", "method=vicrop,vicrop_map=attention"],
     "llava_1_5_focus: vicrop_map='attention': expected one of ('rel_att', 'grad_att')"),
    (["--model", "llava_1_5_focus", "--data", "VStarBench", "--model-args", "method=sliding"],
     "llava_1_5_focus: method='sliding': expected one of ('focus', 'vanilla', 'zoomeye', 'vicrop')"),
    (["--model", "llava_ov_focus", "--data", "VStarBench"], vlmeval_run.NOT_FOUND),
    (["--model", "llava_ov_focus", "--data", "VStarBench", "--vlmevalkit", "/no/clone"],
     "--vlmevalkit /no/clone: not a VLMEvalKit clone"),
])
def test_bad_input_is_one_line_before_vlmevalkit(argv, message, capsys, monkeypatch):
    """Each problem is found before VLMEvalKit would be needed (as if it were not installed here)."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "vlmeval" else
                        find_spec(name, *rest))
    assert vlmeval_run.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("focus-eval vlmeval: error: ") and message in err, err


# A folder shaped like a VLMEvalKit clone (run.py beside the vlmeval package): an older VLMEvalKit has
# neither the run status functions nor the structured answers; another imports torchvision at once.
OLDER_VLMEVALKIT = {
    "run.py": "from vlmeval.smp import dump, load\ndef main(): pass\ndef infer_data_job(*args, **kwargs): pass\n",
    "vlmeval/__init__.py": "",
    "vlmeval/inference.py": "def infer_data(*args, **kwargs): pass\n",
    "vlmeval/smp.py": "".join(f"def {name}(*args, **kwargs): pass\n" for name in (
        "LMUDataRoot", "dump", "get_logger", "get_pred_file_path", "get_rank_and_world_size", "load")),
    "vlmeval/config.py": "supported_VLM = {}\n",
    "vlmeval/dataset/__init__.py": "DATASET_CLASSES, SUPPORTED_DATASETS = [], []\n",
    "vlmeval/dataset/video_dataset_config.py": "supported_video_datasets = {}\n",
    "vlmeval/vlm/__init__.py": "",
    "vlmeval/vlm/base.py": "class BaseModel: pass\n",
}
TORCHVISION_VLMEVALKIT = {"run.py": "import vlmeval\n",  # `import torchvision` failing, whether or not it is here
                          "vlmeval/__init__.py": "raise ModuleNotFoundError(\"No module named 'torchvision'\", "
                                                 "name='torchvision')\n"}


def write_files(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize("files, line", [
    (OLDER_VLMEVALKIT, "VLMEvalKit at {clone} lacks run.upsert_run_status, vlmeval.inference._is_structured_record, "
                       "vlmeval.smp.collect_run_benchmark_report, vlmeval.smp.load_run_status, which focus-eval uses: "
                       "it is older than the tested commit e8e78f05; git -C {clone} fetch origin && git -C {clone} "
                       "checkout e8e78f05f3080fe28154f2130321f17951c3be94"),
    (TORCHVISION_VLMEVALKIT, "VLMEvalKit imports torchvision, which is not installed: install the torchvision release "
                             "built for your torch {torch} (for a CPU torch: pip install torchvision --index-url "
                             "https://download.pytorch.org/whl/cpu)"),
], ids=["older VLMEvalKit", "no torchvision"])
def test_a_vlmevalkit_that_cannot_serve_is_one_line_before_any_work(files, line, tmp_path):
    """Through the console script (the real VLMEvalKit without torchvision:
    test_unknown_dataset_and_missing_data_stop_with_one_line)."""
    import torch

    clone = write_files(tmp_path / "VLMEvalKit", files)
    done = subprocess.run([str(Path(sys.executable).with_name("focus-eval")), "vlmeval", "--model", "llava_ov_focus",
                           "--data", "VStarBench", "--vlmevalkit", str(clone), "--work-dir", str(tmp_path / "out")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    expected = line.format(clone=clone, torch=torch.__version__)
    assert (done.returncode, done.stderr) == (2, f"focus-eval vlmeval: error: {expected}\n")
    assert not (tmp_path / "out").exists()


# ---- end to end: the real VLMEvalKit ---------------------------------------------------------

class Run:
    """One VLMEvalKit run folder: summary, prediction tables, records by dataset and index."""

    def __init__(self, work_dir: Path, output: str):
        (self.summary_path,) = work_dir.rglob(vlmeval_run.SUMMARY_NAME)
        self.run_dir = self.summary_path.parent
        self.summary = json.loads(self.summary_path.read_text())
        self.output = output
        import pandas as pd

        self.tables = {name: pd.read_excel(Path(entry["prediction_file"]))
                       for name, entry in self.summary["results"].items()}

    def records(self, name: str) -> dict[int, DocRecord]:
        table = self.tables[name]
        return {int(i): DocRecord.from_response(text) for i, text in zip(table["index"], table["extra_records"])}

    def numbers(self) -> dict:
        """Every entry of the summary but measured time and memory and the file's path, by "dataset/key"."""
        out = {}
        for name, entry in self.summary["results"].items():
            out.update({f"{name}/metrics/{key}": value for key, value in entry["metrics"].items()})
            out.update({f"{name}/{key}": value for key, value in entry.items()
                        if key not in ("metrics", "seconds", "peak_mem_gb", "prediction_file")})
        return out


def comparable(record: DocRecord) -> tuple:
    """Answer, failure, counters without time and memory, and the details the VLMEvalKit model records."""
    counters = {k: v for k, v in (record.counters or {}).items() if k not in TIMING}
    details = {k: record.details.get(k) for k in ("targets", "final_layout", "final_boxes")}
    return record.answer, record.failed, counters, details


@pytest.fixture(scope="module")
def setup(vlmeval_setup):
    return vlmeval_setup.root, vlmeval_setup.env, vlmeval_setup.checkpoint


@pytest.fixture(scope="module")
def single(vlmeval_single):
    """One process, pictures and traces in maps/, beside the lmms-eval run of the same questions
    (tests/vlmeval_e2e.py)."""
    runs = vlmeval_single
    return Run(runs.work_dir, runs.output), runs.maps, lmms_samples(runs.lmms_dir), runs.lmms_maps


def lmms_samples(out: Path) -> dict[str, dict[int, DocRecord]]:
    samples = {}
    for path in out.rglob("*_samples_*.jsonl"):
        task = path.name.split("_samples_")[1][:-len(".jsonl")]
        samples[task] = {s["doc_id"]: DocRecord.from_response(s["filtered_resps"])
                         for s in map(json.loads, path.open())}
    return samples


@needs_vlmevalkit
def test_results_files_counters_and_summary(single):
    run, maps, _, _ = single
    assert "loaded llava_onevision checkpoint" in run.output
    status = json.loads((run.run_dir / "status.json").read_text())["datasets"]
    model = run.summary["model"]
    for name in DATASETS:
        rows = len(tiny_data.build_rows(vb.VLMEVAL_DATASETS[name], scale=SCALE, bad_rows=True))
        entry, table = run.summary["results"][name], run.tables[name]
        assert (status[name]["status"], status[name]["judge_model"]) == ("done", "exact_matching")
        assert entry["error"] is None and entry["metric"] and entry["value"] is not None and entry["metrics"]
        assert list(table.columns[-len(vlmeval_run.RECORD_COLUMNS):]) == list(vlmeval_run.RECORD_COLUMNS)
        good, bad = table.iloc[:-2], table.iloc[-2:]  # the last two rows of each dataset are defective
        assert (good["failed"] == 0).all() and (bad["failed"] == 1).all() and bad["fp"].isna().all()
        # (an MME-RealWorld OCR question names no object: no search, fp 0)
        assert (good["fp"] >= 0).all() and (good["fp_total"] > good["fp"]).all() and (good["tflops"] > 0).all()
        assert (bad["prediction"] == "Failed to obtain answer").all() and bad["error"].str.len().gt(0).all()
        assert (entry["questions"], entry["failed"], entry["failed_rate"]) == (rows, 2, pytest.approx(2 / rows))
        for column in COUNTER_COLUMNS:
            assert entry[column] == pytest.approx(good[column].mean())
        scored = next(run.run_dir.glob(f"{model}_{name}_*.xlsx"))  # VLMEvalKit's scored copy keeps the columns
        import pandas as pd

        assert "fp" in pd.read_excel(scored).columns
    assert "ImageLoadError" in run.tables["VStarBench"]["error"].iloc[-2]
    assert len(list(maps.glob("*.png"))) == sum(len(t) - 2 for t in run.tables.values())
    assert "FOCUS x VLMEvalKit" in run.output and "fp_total" in run.output  # the printed table


@needs_vlmevalkit
def test_answers_counters_and_prompts_equal_the_lmms_eval_run(single):
    run, maps, lmms, lmms_maps = single
    for name, key in vb.VLMEVAL_DATASETS.items():
        ours, theirs = run.records(name), lmms[TASKS[key]]
        assert sorted(ours) == sorted(theirs)
        for index in ours:
            assert comparable(ours[index]) == comparable(theirs[index]), (name, index)
            if not ours[index].failed:
                trace = json.loads((maps / f"{name}_{index}.json").read_text())
                lmms_trace = json.loads((lmms_maps / f"{TASKS[key]}_{index}.json").read_text())
                assert (trace["prompt"], trace["question"]) == (lmms_trace["prompt"], lmms_trace["question"])
    answered = [r for records in lmms.values() for r in records.values() if not r.failed]
    assert len(answered) == sum(len(t) - 2 for t in run.tables.values())


@needs_vlmevalkit
def test_two_processes_give_the_records_of_one(single, setup):
    """Also: a picture that cannot be written is a warning, and the run goes on."""
    root, env, checkpoint = setup
    maps = root / "two_maps"
    (maps / "VStarBench_1.png").mkdir(parents=True)  # a folder where a picture must go
    code, out, err = run_vlmeval(focus_args(checkpoint, root / "two", maps=maps), env, root, processes=2)
    assert code == 0, err[-3000:]
    two, (one, _, _, _) = Run(root / "two", out + err), single
    assert (out + err).count("loaded llava_onevision checkpoint") == 2  # one model per rank
    assert f"VStarBench_1: picture and trace not saved in {maps}: " in out + err
    assert (maps / "VStarBench_1.png").is_dir() and (maps / "VStarBench_2.png").is_file()
    for name in DATASETS:
        assert {i: comparable(r) for i, r in two.records(name).items()} == \
               {i: comparable(r) for i, r in one.records(name).items()}
    assert two.numbers() == pytest.approx(one.numbers())


@needs_vlmevalkit
def test_reuse_recomputes_nothing_and_keeps_the_counters(single, setup):
    """Also: with --max-failed-rate below the share of the defective rows, the run exits 1 with one line."""
    root, env, checkpoint = setup
    run, maps, _, _ = single
    work_dir = root / "reuse"  # a copy: the shared run stays as it is
    shutil.copytree(run.run_dir.parent.parent, work_dir, symlinks=True)
    code, out, err = run_vlmeval(focus_args(checkpoint, work_dir, "--reuse", "--max-failed-rate", "0.1", maps=maps),
                                 env, root)
    counts = ", ".join(f"{name} 2 of {entry['questions']}" for name, entry in run.summary["results"].items())
    lines = [line for line in err.splitlines() if "focus_eval.vlmeval: error: " in line]
    assert code == 1 and lines == [f"{PROG}: error: {run.summary['model']}: more questions failed than "
                                   f"--max-failed-rate 0.1 allows: {counts} (the reasons are in the prediction "
                                   "files' `error` column)"], err[-3000:]
    assert "loaded llava_onevision checkpoint" not in out + err
    first, again = (json.loads(path.read_text()) for path in sorted(work_dir.rglob(vlmeval_run.SUMMARY_NAME)))
    assert first == run.summary and again["run_dir"] != first["run_dir"]
    without_paths = lambda summary: {name: {k: v for k, v in entry.items() if k != "prediction_file"}
                                     for name, entry in summary["results"].items()}
    assert without_paths(again) == without_paths(first)  # measured seconds and memory included: carried over


@needs_vlmevalkit
def test_unknown_dataset_and_missing_data_stop_with_one_line(setup):
    root, env, checkpoint = setup
    empty = root / "empty_LMUData"
    empty.mkdir()
    # VLMEvalKit downloads a missing file: through a proxy at a closed local port it fails at once, network or not
    no_network = {**env, "LMUData": str(empty), "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    no_network.pop("no_proxy", None), no_network.pop("NO_PROXY", None)
    origin = subprocess.run([VLMEVAL_PYTHON, "-c", "import importlib.util; print(importlib.util.find_spec('vlmeval').origin)"],
                            capture_output=True, text=True, check=True).stdout.strip()
    newer = root / "newer" / "VLMEvalKit"  # the snapshot's clone with another run.py, named with --vlmevalkit
    shutil.copytree(Path(origin).parent.parent, newer)
    with (newer / "run.py").open("a") as handle:
        handle.write("\n# a later commit\n")
    only_failures = root / "only_failures_LMUData"  # VStarBench's two defective rows alone
    import pandas as pd

    pd.read_csv(vb.write_tiny_tsv("VStarBench", only_failures, scale=SCALE, bad_rows=True), sep="\t").iloc[-2:].to_csv(
        only_failures / "VStarBench.tsv", sep="\t", index=False)
    cases = [  # (arguments, environment, exit status, the line, whether through tests/vlmeval_cpu.py)
        (["--model", "llava_ov_focus", "--data", "VStarBench", "VStarBenchX", "--vlmevalkit", str(newer)], env, 2,
         "error: unknown VLMEvalKit dataset 'VStarBenchX' (FOCUS's benchmarks there: VStarBench, HRBench4K", True),
        (["--model", "llava_ov_focus", "--data", "VStarBench", "--model-args", "device=cuda:0"], env, 2,
         "error: llava_ov_focus: device='cuda:0', but CUDA is not available; use device=cpu", True),
        (["--model", "llava_ov_focus", "--data", "HRBench8K", "--trust-local-data"], {**env, "LMUData": str(empty)}, 2,
         f"error: HRBench8K: no data file {empty / 'HRBench8K.tsv'} (VLMEvalKit reads $LMUData/<dataset>.tsv)", True),
        (["--model", "llava_ov_focus", "--data", "HRBench4K", "--model-args", f"pretrained={checkpoint}",
          "--work-dir", str(root / "missing")], no_network, 1,
         f"x HRBench4K: no data file {empty / 'HRBench4K.tsv'}, and VLMEvalKit could not get it: ", True),
        (["--model", "llava_ov_focus", "--data", "VStarBench", "--model-args", f"pretrained={checkpoint}",
          "--trust-local-data", "--work-dir", str(root / "only_failures")], {**env, "LMUData": str(only_failures)}, 1,
         "error: llava_ov_focus-", True),
        (["--model", "llava_ov_focus", "--data", "VStarBench"], env, 2,  # VLMEvalKit as it is, without the stand-in
         "error: VLMEvalKit imports torchvision, which is not installed: install the torchvision release built for "
         "your torch ", False),
    ]
    processes = [run_vlmeval(args, case_env, root, wait=False, stand_in=stand_in)
                 for args, case_env, _, _, stand_in in cases]
    outputs = []
    for process, (_, _, status, line, _) in zip(processes, cases):
        code, out, err = finish(process)
        errors = [text for text in err.splitlines() if "focus_eval.vlmeval: error: " in text]
        assert code == status and len(errors) == 1 and line in errors[0], (line, err[-2000:])
        assert status == 1 or "Traceback" not in err, err[-3000:]  # VLMEvalKit's own log has its tracebacks
        outputs.append((errors[0], err))
    assert outputs[-2][0].endswith(": every question failed: VStarBench 2 of 2 (the reasons are in the prediction "
                                   "files' `error` column)")
    warnings = [text for text in outputs[0][1].splitlines() if "focus_eval.vlmeval: warning: " in text]
    assert warnings == [f"{PROG}: warning: VLMEvalKit at {newer} is not the tested commit e8e78f05 (changed: "
                        "run.py); it has what focus-eval uses, so the run goes on; if it fails: git -C "
                        f"{newer} fetch origin && git -C {newer} checkout e8e78f05f3080fe28154f2130321f17951c3be94"]
