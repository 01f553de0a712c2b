"""The reporting of `focus-eval lmms-eval` (model_wrappers/lmms_launcher.py) and the checks of its
command line before lmms-eval is imported (focus_eval/lmms.py); the launcher itself runs end to
end in test_lmms_e2e.py."""

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from focus_eval.lmms import SetupError, own_options
from focus_eval.model_wrappers.lmms_launcher import Run, _failed_questions, _report, too_many_failed

FOCUS_EVAL = Path(sys.executable).with_name("focus-eval")


def raised(error: Exception) -> Exception:
    try:
        raise error
    except Exception as caught:
        return caught


def test_with_verbosity_debug_the_traceback_comes_before_the_line(capsys):
    error = raised(ValueError("llava_ov_focus: n_steps must be >= 1"))
    run = Run(args=SimpleNamespace(verbosity="DEBUG"), error=error)  # lmms-eval re-raised the run's error
    assert _report([run], error, 0) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last)")
    assert err.splitlines()[-1] == "focus-eval: error: llava_ov_focus: n_steps must be >= 1"


def test_an_error_outside_any_run_is_a_setup_error(capsys):
    assert _report([], raised(ValueError("Config file does not exist: runs.yaml")), 0) == 2
    assert capsys.readouterr().err == "focus-eval: error: Config file does not exist: runs.yaml\n"


def test_lmms_evals_own_exit_status_passes_through(capsys):
    assert _report([], None, 2) == 2  # its argument errors
    assert _report([Run(args=None)], None, None) == 0  # `--tasks list`
    assert capsys.readouterr().err == ""


def test_failed_questions_are_named_and_the_first_failed_run_decides(capsys):
    results = {"results": {"vstar": {"failed,none": 2}, "hrbench4k": {"failed,none": 0},
                           "vstar_logits": {"failed,none": 2, "failed_rate,none": 1.0}},  # 2 asked (--offset 4)
               "n-samples": {"vstar": {"effective": 6}, "hrbench4k": {"effective": 10}, "vstar_logits": {"effective": 6}}}
    assert _failed_questions(results) == {"vstar": (2, 6), "vstar_logits": (2, 2)}
    del results["results"]["vstar_logits"]
    good = Run(args=None, failed=_failed_questions(results))
    evaluation = Run(args=None, started=True, error=RuntimeError("CUDA out of memory"))
    setup = Run(args=None, error=ValueError("Tasks not found: x."))
    assert _report([good, evaluation, setup], None, 0) == 1
    assert capsys.readouterr().err.splitlines() == [
        "focus-eval: error: run 2 of 3 (evaluation): CUDA out of memory",
        "focus-eval: error: run 3 of 3 (setup): Tasks not found: x.",
        "focus-eval: warning: questions failed and were scored wrong: vstar 2 of 6 (metric `failed`; the reasons "
        "are in the log and the samples)"]


def test_too_many_failed_questions_is_an_error_of_the_run():
    failed = {"vstar": (6, 6), "hrbench4k": (2, 10)}
    samples = {"vstar": [{"doc_id": 0, "vstar_overall_acc": {"score": 0, "error": "CUDA out of\n memory"}}]}
    error = too_many_failed(failed, None, samples)
    assert str(error) == ("every question failed: vstar 6 of 6 (metric `failed`; the first reason: CUDA out of memory; "
                          "all reasons are in the log and the samples)")
    assert str(too_many_failed(failed, 0.1, None)) == (
        "every question failed: vstar 6 of 6; more questions failed than --max-failed-rate 0.1 allows: hrbench4k 2 of "
        "10 (metric `failed`; all reasons are in the log and the samples)")
    assert too_many_failed({"hrbench4k": (2, 10)}, 0.2, None) is None  # 0.2 is allowed
    assert too_many_failed({"hrbench4k": (2, 10)}, None, None) is None
    run = Run(args=None, started=True, error=too_many_failed(failed, None, None), failed=failed)
    assert _report([run], None, 0) == 1


def test_the_launchers_own_option_is_taken_out_and_checked():
    assert own_options(["--model", "m", "--max-failed-rate", "0.25", "--tasks", "vstar"]) == (
        ["--model", "m", "--tasks", "vstar"], 0.25)
    assert own_options(["--max-failed-rate=0", "--limit", "3"]) == (["--limit", "3"], 0.0)
    assert own_options(["--tasks", "vstar"]) == (["--tasks", "vstar"], None)
    for bad in (["--max-failed-rate", "1.5"], ["--max-failed-rate=x"], ["--max-failed-rate"]):
        with pytest.raises(SetupError, match="--max-failed-rate expects a share of a task's questions between 0 and 1"):
            own_options(bad)


def usage_error(tmp_path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(FOCUS_EVAL), "lmms-eval", "--model", "llava_ov_focus", *arguments], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("arguments, line", [
    (["--tasks", "vstar", "--limit", "0"], "--limit 0 asks no question; give a number of questions per task (>= 1), "
                                           "a share of each task (between 0 and 1) or -1 for all"),
    (["--tasks", "vstar", "--max-failed-rate", "2"], "--max-failed-rate expects a share of a task's questions "
                                                     "between 0 and 1, got '2'"),
    (["--tasks", "vstar", "--output_path", "a_file/out"], "--output_path: cannot write into a_file/out: Not a directory"),
    (["--limit", "4"], "no --tasks given (`lmms-eval --tasks list` lists them)"),
])
def test_command_line_usage_errors_are_one_line_before_lmms_eval_starts(arguments, line, tmp_path):
    """No lmms-eval import (it logs from its first line on): the error comes at once."""
    (tmp_path / "a_file").write_text("")
    done = usage_error(tmp_path, *arguments)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"focus-eval: error: {line}\n")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a_file"]  # no output folder created
