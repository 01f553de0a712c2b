"""The reporting of `focus-eval lmms-eval` (model_wrappers/lmms_launcher.py); the launcher itself
runs end to end in test_lmms_e2e.py."""

from types import SimpleNamespace

from focus_eval.model_wrappers.lmms_launcher import Run, _failed_questions, _report


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
    results = {"results": {"vstar": {"failed,none": 2}, "hrbench4k": {"failed,none": 0}},
               "n-samples": {"vstar": {"effective": 6}, "hrbench4k": {"effective": 10}}}
    good = Run(args=None, failed=_failed_questions(results))
    evaluation = Run(args=None, started=True, error=RuntimeError("CUDA out of memory"))
    setup = Run(args=None, error=ValueError("Tasks not found: x."))
    assert _report([good, evaluation, setup], None, 0) == 1
    assert capsys.readouterr().err.splitlines() == [
        "focus-eval: error: run 2 of 3 (evaluation): CUDA out of memory",
        "focus-eval: error: run 3 of 3 (setup): Tasks not found: x.",
        "focus-eval: warning: questions failed and were scored wrong: vstar 2 of 6 (metric `failed`; the reasons "
        "are in the log and the samples)"]
