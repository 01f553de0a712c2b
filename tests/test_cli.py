"""`focus-eval answer|explain`: output, files, questions files, and user errors (exit 2)."""

import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch
from PIL import Image

from api_helpers import QUESTION, RED, TINY_QUESTION, inside, install_fake_loader, red_square_image
from focus_eval.present.cli import main
from focus_eval.compose import crop
from focus_eval.model_wrappers import ADAPTERS
from focus_eval.trace import Trace
from focus_eval.present.visualize import CHOSEN_COLOUR, render_explanation


@pytest.fixture
def fake_checkpoints(monkeypatch, tmp_path):
    return install_fake_loader(monkeypatch, tmp_path)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("focus-eval: error: ") and "Traceback" not in err
    return lines[0]


def test_answer_prints_the_answer_and_the_counters(fake_checkpoints, tmp_path, capsys):
    checkpoint, _ = fake_checkpoints
    code, out, _ = run(capsys, "answer", "--model", checkpoint, "--image", red_square_image(tmp_path),
                       "--question", QUESTION, "--quiet")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "answer: A"
    assert lines[1].startswith("targets: red square (question type 1); answered from crop [[")
    assert lines[2].startswith("forward passes: search ") and "+ targets 1 + answer 1 = " in lines[2]


def test_image_aspect_goes_to_the_loader(fake_checkpoints, tmp_path, capsys):
    checkpoint, calls = fake_checkpoints
    image = red_square_image(tmp_path)
    assert run(capsys, "answer", "--model", checkpoint, "--image", image, "--question", QUESTION, "--quiet")[0] == 0
    assert run(capsys, "answer", "--model", checkpoint, "--image", image, "--question", QUESTION, "--quiet",
               "--image-aspect", "crop")[0] == 0
    assert "image_aspect" not in calls[0] and calls[1]["image_aspect"] == "crop"


def test_json_output_parses_and_carries_the_counters(fake_checkpoints, tmp_path, capsys):
    checkpoint, _ = fake_checkpoints
    code, out, _ = run(capsys, "answer", "--model", checkpoint, "--image", red_square_image(tmp_path),
                       "--question", QUESTION, "--json", "--set", "n_steps=2")
    assert code == 0
    record = json.loads(out)
    assert record["answer"] == "A" and record["error"] is None and record["targets"] == ["red square"]
    assert inside(RED, record["final_boxes"][0])
    counters = record["counters"]
    assert counters["fp_total"] == counters["fp"] + counters["fp_targets"] + counters["fp_answer"]
    assert counters["fp"] == 1 + 2  # one relevance pass, n_steps=2 existence checks
    assert record["picture"] is None and record["trace"] is None


def test_explain_writes_the_picture_and_the_trace(fake_checkpoints, tmp_path, capsys):
    checkpoint, _ = fake_checkpoints
    out_dir = tmp_path / "maps"
    code, out, _ = run(capsys, "explain", "--model", checkpoint, "--image", red_square_image(tmp_path),
                       "--question", QUESTION, "--out", out_dir, "--json", "--quiet")
    assert code == 0
    record = json.loads(out)
    assert record["picture"] == str(out_dir / "scene.png") and record["trace"] == str(out_dir / "scene.json")
    trace = Trace.from_json((out_dir / "scene.json").read_text())
    assert trace.answer == "A" and trace.counters.fp == record["counters"]["fp"]
    assert Image.open(out_dir / "scene.png").width > 800


def test_a_questions_file_goes_on_past_failing_questions(fake_checkpoints, tmp_path, capsys):
    checkpoint, _ = fake_checkpoints
    red_square_image(tmp_path, "a.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    lines = [
        json.dumps({"image": "a.png", "question": QUESTION, "id": "first"}),
        "",
        json.dumps({"image": "missing.png", "question": QUESTION}),
        "{not json",
        json.dumps({"image": "broken.png", "question": QUESTION}),
        json.dumps({"image": "a.png", "question": QUESTION, "answer": "A"}),
        json.dumps({"image": "a.png", "question": "Where is it?", "id": "first"}),
        json.dumps({"image": str(tmp_path / "a.png"), "question": QUESTION, "id": 8}),
    ]
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(lines) + "\n")
    out_dir = tmp_path / "maps"
    code, out, err = run(capsys, "explain", "--model", checkpoint, "--questions", questions, "--out", out_dir, "--json")
    assert code == 1
    records = [json.loads(line) for line in out.splitlines()]
    assert all(list(r) == list(records[0]) for r in records)  # one schema, failed or not
    assert [r["id"] for r in records] == ["first", "3", "4", "5", "6", "first", "8"]
    assert [r["answer"] for r in records] == ["A", None, None, None, None, None, "A"]
    errors = [r["error"] for r in records]
    assert errors[0] is None and errors[-1] is None
    assert "no such image file" in errors[1] and "missing.png" in errors[1]
    assert errors[2].startswith("line 4: not valid JSON")
    assert "not a recognised image format" in errors[3]
    assert errors[4].startswith("line 6: unknown key(s) ['answer']")
    assert errors[5] == "duplicate id 'first'"
    assert sorted(p.name for p in out_dir.iterdir()) == ["8.json", "8.png", "first.json", "first.png"]
    assert "2 of 7 questions answered" in err


def test_a_failing_question_exits_1_with_its_picture(fake_checkpoints, tmp_path, capsys, monkeypatch):
    checkpoint, _ = fake_checkpoints
    from fake_adapter import FakeAdapter

    from focus_eval import model_wrappers

    monkeypatch.setattr(model_wrappers, "load_adapter",
                        lambda *a, **k: FakeAdapter(family="llava_1_5", fail_generate_with_images=True))
    code, out, err = run(capsys, "explain", "--model", checkpoint, "--image", red_square_image(tmp_path),
                         "--question", QUESTION, "--out", tmp_path / "maps", "--quiet")
    assert code == 1
    assert "generation exploded" in one_error_line(err)
    assert "picture: " in out and (tmp_path / "maps" / "scene.png").is_file()


@pytest.mark.parametrize("image_kind", ["missing", "unreadable"])
def test_a_bad_image_is_one_error_line_and_exit_2_before_loading(fake_checkpoints, tmp_path, capsys, image_kind):
    checkpoint, calls = fake_checkpoints
    path = tmp_path / "photo.jpg"
    if image_kind == "unreadable":
        path.write_bytes(b"\x00" * 100)
    code, out, err = run(capsys, "answer", "--model", checkpoint, "--image", path, "--question", "q?")
    assert code == 2 and out == "" and calls == []
    line = one_error_line(err)
    assert str(path) in line
    assert ("no such image file" if image_kind == "missing" else "not a recognised image format") in line


def test_user_errors_are_one_line_and_exit_2(fake_checkpoints, tmp_path, capsys):
    checkpoint, calls = fake_checkpoints
    image = red_square_image(tmp_path)
    blocker = tmp_path / "a_file"  # nothing can be created under a file, not even by root
    blocker.write_text("")
    cases = [
        (["--set", "n_step=4"], "unknown FOCUS option 'n_step'; valid options: "),
        (["--set", "k=zero"], "k='zero': expected int"),
        (["--set", "n_steps"], "--set expects KEY=VALUE"),
        (["--dataset", "imagenet"], "argument --dataset: invalid choice: 'imagenet'"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["--max-new-tokens", "0"], "argument --max-new-tokens: expected an integer >= 1, got '0'"),
        (["--max-new-tokens", "-5"], "argument --max-new-tokens: expected an integer >= 1, got '-5'"),
        (["--family", "llava2"], "argument --family: invalid choice: 'llava2' (choose from "),
    ]
    for extra, message in cases:
        code, _, err = run(capsys, "answer", "--model", checkpoint, "--image", image, "--question", "q?", *extra)
        assert code == 2, extra
        assert message in one_error_line(err), (extra, err)
    for question in ("", "  "):  # the rule of a questions file: a non-empty string
        code, _, err = run(capsys, "answer", "--model", checkpoint, "--image", image, "--question", question)
        assert code == 2 and "--question must be a non-empty string" in one_error_line(err)
    for out, message in [(blocker, f"--out: {blocker} exists and is not a folder"),
                         (blocker / "maps", f"--out: cannot write into {blocker / 'maps'}: Not a directory")]:
        code, _, err = run(capsys, "explain", "--model", checkpoint, "--image", image, "--question", "q?", "--out", out)
        assert code == 2 and one_error_line(err) == f"focus-eval: error: {message}"
    assert calls == []  # all before the model loads
    code, _, err = run(capsys, "answer", "--model", tmp_path / "no-such-model", "--image", image, "--question", "q?")
    assert code == 2 and "cannot load model" in one_error_line(err) and "no-such-model" in err
    code, _, err = run(capsys, "answer", "--model", checkpoint, "--questions", tmp_path / "nope.jsonl")
    assert code == 2 and "no such questions file" in one_error_line(err)
    code, _, err = run(capsys, "answer", "--model", checkpoint, "--image", image)
    assert code == 2 and "give --image and --question" in one_error_line(err)


def test_a_picture_that_cannot_be_written_is_a_warning_and_the_run_goes_on(fake_checkpoints, tmp_path, capsys):
    checkpoint, _ = fake_checkpoints
    red_square_image(tmp_path, "a.png")
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps({"image": "a.png", "question": QUESTION, "id": i}) + "\n"
                                 for i in ("first", "second", "third")))
    out_dir = tmp_path / "maps"
    (out_dir / "second.png").mkdir(parents=True)  # a folder where the picture must go (a full disk, say)
    code, out, err = run(capsys, "explain", "--model", checkpoint, "--questions", questions, "--out", out_dir, "--json")
    assert code == 1
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["answer"] for r in records] == ["A", "A", "A"] and [r["error"] for r in records] == [None] * 3
    assert [r["picture"] is None for r in records] == [False, True, False]
    warning, summary = err.strip().splitlines()[-2:]
    assert warning.startswith("focus-eval: warning: [second] picture and trace not written: [Errno 21] Is a directory")
    assert summary == "focus-eval: 3 of 3 questions answered; 1 without picture and trace"
    assert sorted(p.name for p in out_dir.glob("*.json")) == ["first.json", "third.json"]


def test_ids_become_safe_distinct_file_names(fake_checkpoints, tmp_path, capsys):
    checkpoint, _ = fake_checkpoints
    red_square_image(tmp_path, "a.png")
    long_id = "q" * 300  # longer than a file name may be
    ids = [long_id, long_id + "x", "a/b", "a_b"]
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps({"image": "a.png", "question": QUESTION, "id": i}) + "\n" for i in ids))
    code, out, _ = run(capsys, "explain", "--model", checkpoint, "--questions", questions, "--out", tmp_path / "maps",
                       "--json")
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and [r["answer"] for r in records] == ["A", "A", "A", None]
    assert records[3]["error"] == "id 'a_b' gives the same file names (a_b.png) as id 'a/b'"
    names = [Path(r["picture"]).name for r in records[:3]]
    assert len(set(names)) == 3 and all(len(name) <= 104 for name in names) and names[2] == "a_b.png"
    assert all(Path(r["trace"]).is_file() for r in records[:3])


def test_a_cuda_device_without_cuda_is_one_line_through_the_console_script(tiny_checkpoint, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = subprocess.run([str(Path(sys.executable).with_name("focus-eval")), "answer", "--model",
                           str(tiny_checkpoint("llava_onevision")), "--image", str(red_square_image(tmp_path)),
                           "--question", "q?", "--device", "cuda"], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert one_error_line(done.stderr) == ("focus-eval: error: device='cuda', but CUDA is not available; "
                                           "use device=cpu")


def test_console_script_and_module_entry(tmp_path):
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "focus-eval"]
    assert script.value == "focus_eval.present.cli:main"
    done = subprocess.run([sys.executable, "-m", "focus_eval.present.cli", "answer", "--model", "m",
                           "--image", str(tmp_path / "x.png"), "--question", "q?"], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert one_error_line(done.stderr) == f"focus-eval: error: no such image file: {tmp_path / 'x.png'}"


@pytest.mark.parametrize("family", [spec.family for spec in ADAPTERS])
def test_explain_on_a_tiny_checkpoint_is_reproduced_from_its_trace(family, tiny_checkpoint, tmp_path, capsys):
    image_path = red_square_image(tmp_path)
    code, out, err = run(capsys, "explain", "--model", tiny_checkpoint(family), "--image", image_path,
                         "--question", TINY_QUESTION, "--out", tmp_path / "maps", "--json", "--quiet",
                         "--device", "cpu", "--dtype", "float32", "--set", "n_steps=2")
    assert code == 0, err
    record = json.loads(out)
    trace = Trace.from_json((tmp_path / "maps" / "scene.json").read_text())
    assert record["answer"] == trace.answer and record["counters"]["fp"] == trace.counters.fp > 0
    assert trace.config["n_steps"] == 2
    image = Image.open(image_path).convert("RGB")
    if trace.final_layout == "crop":  # the model input is rebuilt from the trace alone
        figure = render_explanation(trace, image, [crop(image, box) for box in trace.final_boxes])
        png = tmp_path / "again.png"
        figure.image.save(png)
        assert png.read_bytes() == (tmp_path / "maps" / "scene.png").read_bytes()
        target = trace.targets[0]
        x0, y0, _, y1 = target.rois[target.chosen[0]].box
        assert figure.image.getpixel(figure.panels[0].to_picture(x0, (y0 + y1) / 2)) == CHOSEN_COLOUR
    else:
        assert trace.final_layout in ("global+crops", "canvas", "union", "full")


@pytest.mark.parametrize("method, options", [("zoomeye", ["--set", "zoomeye_depth=2"]),
                                             ("vicrop", ["--set", "vicrop_map=grad_att"])])
def test_a_baseline_answers_and_explains_through_the_cli(method, options, tiny_checkpoint, tmp_path, capsys):
    """`--set method=...` (and the method's options) reach the pipeline like FOCUS's: the answer, the
    counters with the search's passes, the picture and the trace of the baseline."""
    code, out, err = run(capsys, "explain", "--model", tiny_checkpoint("llava_1_5"), "--image", red_square_image(tmp_path),
                         "--question", TINY_QUESTION, "--out", tmp_path / "maps", "--json", "--quiet", "--device", "cpu",
                         "--set", f"method={method}", *options)
    assert code == 0, err
    record = json.loads(out)
    trace = Trace.from_json((tmp_path / "maps" / "scene.json").read_text())
    assert (trace.method, record["answer"]) == (method, trace.answer) and record["error"] is None
    search = {stage: n for stage, n in record["counters"]["passes"].items() if stage not in ("targets", "answer")}
    assert record["counters"]["fp"] == trace.counters.fp == sum(search.values()) > 0
    assert record["counters"]["bp"] == (trace.counters.fp if method == "vicrop" else 0)  # grad-att: one backward per map
    assert trace.config[options[1].split("=")[0]] == (2 if method == "zoomeye" else "grad_att")
    assert (tmp_path / "maps" / "scene.png").is_file()


def test_unloadable_models_are_one_error_line(tmp_path, capsys):
    image = red_square_image(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "config.json").write_text('{"model_type": "bert"}')
    for model, message in [(tmp_path / "missing", "no such model folder"),
                           (tmp_path / "empty", "config.json"),
                           (tmp_path / "text", "'bert' has no adapter")]:
        code, _, err = run(capsys, "answer", "--model", model, "--image", image, "--question", "q?", "--quiet")
        assert code == 2
        assert message in one_error_line(err) and str(model) in err
