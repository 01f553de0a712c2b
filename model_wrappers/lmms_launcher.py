"""`focus-eval lmms-eval ARGS` and `python -m focus_eval.lmms ARGS`: lmms-eval's own command
line, with an exit status that says whether the evaluation worked.

lmms-eval 0.7.3's `cli_evaluate` catches the error of every evaluation, prints its traceback
and "Error during evaluation: ...", and exits 0: a scheduler or CI job cannot tell a failed
run from a good one. This launcher runs lmms-eval's own entry point
(`lmms_eval.cli.dispatch.main`) with the arguments as given, so every flag, subcommand and
`--config` file works as with `lmms-eval` (and `torchrun ... -m focus_eval.lmms`,
`accelerate launch -m focus_eval.lmms` as with `-m lmms_eval`). It watches each evaluation
from outside, without changing what it computes:
- `lmms_eval.__main__.cli_evaluate_single` (one call per run; a `--config` file may hold
  several) is wrapped: before the run it checks the run's arguments
  (`focus_eval.lmms.check_run`: --tasks given, --limit not 0, --output_path a folder it can
  write, without creating it); it records the error the run ended with and, after it, that
  the results file was written (lmms-eval only warns when it cannot write it) and how many
  questions of each task failed;
- `lmms_eval.evaluator.evaluate` is wrapped to know whether a run failed before lmms-eval
  began on its requests (setup) or after;
- the `traceback` module as lmms_eval.__main__ sees it is replaced, so that lmms-eval's
  `traceback.print_exc()` no longer writes to stderr (see below).
`focus_eval.lmms.main` runs `check_run` before this module is imported when the evaluation is
given on the command line (not in a `--config` file), so that those usage errors appear at
once; the others (model arguments, tasks, data) appear after the imports of torch,
transformers and lmms-eval (15-60 s). It also takes the launcher's own option
`--max-failed-rate RATE` (0 to 1) out of the arguments lmms-eval gets.

Exit status:
  0  every run finished and wrote its results. Questions that failed were scored wrong and
     are counted in each task's `failed` metric; a warning line names the tasks.
  1  a run failed after lmms-eval began on its requests: the model failed while answering (a
     FOCUS model loads its weights at the first question, so weights that do not load land
     here), a task's scoring raised, or the results file was not written; or every question
     of a task failed (an error of the model on each question, e.g. CUDA out of memory, is
     recorded per question), or, with --max-failed-rate RATE, a larger share than RATE of a
     task's questions failed.
  2  bad usage or setup, found before any question was asked: lmms-eval's own argument
     errors, no --tasks, --limit 0, an unknown task, a bad --model_args value, a missing or
     malformed dataset, a checkpoint folder that is missing, empty or of another family, an
     output folder that cannot be written, a bad --max-failed-rate.
  With several runs, the status of the first run that failed.
On stderr, one line per failed run, `focus-eval: error: MESSAGE` (with several runs:
`focus-eval: error: run 2 of 5 (setup): MESSAGE`, or "(evaluation)"). The traceback of a setup
error is not shown (with `--verbosity DEBUG` lmms-eval raises the error, stops there, and the
traceback is printed); the traceback of an error during the evaluation is written to the log
on stdout, where lmms-eval logs everything else, so that a long run need not be repeated to
see it.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from focus_eval.lmms import COMMAND, PROG, SETUP_ERROR, check_run
from focus_eval.tasks.record import failed_questions_problem

RUN_ERROR = 1


class FailedQuestionsError(RuntimeError):
    """A run whose tasks lost more questions than allowed (module docstring, exit status 1)."""


@dataclass
class Run:
    """What the launcher saw of one evaluation."""

    args: Any  # lmms-eval's argparse namespace of the run
    started: bool = False  # lmms-eval began on the requests
    error: BaseException | None = None
    failed: dict[str, tuple[int, int]] = field(default_factory=dict)  # task -> (failed questions, questions)

    @property
    def status(self) -> int:
        if self.error is None:
            return 0
        return RUN_ERROR if self.started else SETUP_ERROR

    def describe(self) -> str:
        return " ".join(str(self.error).split()) or type(self.error).__name__


class Watcher:
    """Wraps lmms-eval's functions (module docstring) and collects the runs."""

    def __init__(self, max_failed_rate: float | None = None) -> None:
        self.runs: list[Run] = []
        self.max_failed_rate = max_failed_rate

    @contextmanager
    def installed(self):
        """lmms-eval's functions wrapped while the context lasts."""
        import lmms_eval.__main__ as lmms_main
        from lmms_eval import evaluator

        originals = lmms_main.cli_evaluate_single, evaluator.evaluate, lmms_main.traceback
        lmms_main.cli_evaluate_single = self._watch_single(originals[0])
        evaluator.evaluate = self._watch_evaluate(originals[1])
        lmms_main.traceback = _TracebackToLog(self)
        try:
            yield
        finally:
            lmms_main.cli_evaluate_single, evaluator.evaluate, lmms_main.traceback = originals

    def _watch_single(self, single: Callable) -> Callable:
        def watched(args):
            run = Run(args)
            self.runs.append(run)
            try:
                return self._checked(single, run)
            except Exception as error:
                run.error = error
                raise

        return watched

    def _watch_evaluate(self, evaluate: Callable) -> Callable:
        def watched(*args, **kwargs):
            if self.runs:
                self.runs[-1].started = True
            return evaluate(*args, **kwargs)

        return watched

    def _checked(self, single: Callable, run: Run):
        """One run with the checks before and after it (module docstring)."""
        args = run.args
        check_run(args.tasks, args.limit, args.output_path)
        before = _results_files(args.output_path)
        results, samples = single(args)
        if results is not None:  # the main process
            if args.output_path and _results_files(args.output_path) == before:
                run.started = True
                run.error = RuntimeError(f"no results file was written under {args.output_path} (lmms-eval's "
                                         "warning 'Could not save results aggregated' above gives the reason)")
            run.failed = _failed_questions(results)
            if run.error is None:
                run.error = too_many_failed(run.failed, self.max_failed_rate, samples)
        return results, samples


def too_many_failed(failed: dict[str, tuple[int, int]], max_rate: float | None,
                    samples: dict | None) -> FailedQuestionsError | None:
    """The error of a run whose tasks lost every question, or a larger share than `max_rate`
    (`failed_questions_problem`); None when none did. `samples` (with --log_samples) give the
    first failed question's reason."""
    problem = failed_questions_problem(failed, max_rate)
    if problem is None:
        return None
    every_failed = [task for task, (count, total) in failed.items() if count >= total]
    reason = _first_error(samples or {}, [*every_failed, *failed])
    first = f"; the first reason: {reason}" if reason else ""
    return FailedQuestionsError(f"{problem} (metric `failed`{first}; all reasons are in the log and the samples)")


def _first_error(samples: dict, tasks: list[str]) -> str | None:
    """The error of the first failed question of `tasks` in lmms-eval's samples (our tasks record
    it in every metric entry of a question; see tasks/common.py)."""
    for task in tasks:
        for sample in samples.get(task) or ():
            for entry in sample.values():
                if isinstance(entry, dict) and entry.get("error"):
                    return " ".join(str(entry["error"]).split())[:200]
    return None


class _TracebackToLog:
    """Stands in for the `traceback` module inside lmms_eval.__main__: the traceback of an
    error during an evaluation goes to stdout (the log); that of a setup error is dropped."""

    def __init__(self, watcher: Watcher):
        self._watcher = watcher

    def print_exc(self, *args, **kwargs) -> None:
        runs = self._watcher.runs
        if runs and runs[-1].started:
            print(traceback.format_exc(), file=sys.stdout, flush=True)

    def __getattr__(self, name: str):
        return getattr(traceback, name)


def main(arguments: Sequence[str], max_failed_rate: float | None = None) -> int:
    """Run lmms-eval's command line on `arguments` (checked by focus_eval.lmms.main, which calls
    this); returns the exit status."""
    from lmms_eval.cli.dispatch import main as lmms_eval_main

    watcher = Watcher(max_failed_rate)
    escaped: BaseException | None = None
    exit_code: int | str | None = 0
    argv_before, sys.argv = sys.argv, [COMMAND, *arguments]  # lmms-eval reads sys.argv
    try:
        with watcher.installed():
            lmms_eval_main()
    except SystemExit as done:  # lmms-eval's argument errors (2), --help and `--tasks list` (0)
        exit_code = done.code
    except Exception as error:  # outside a run (a bad --config file), or any error with --verbosity DEBUG
        escaped = error
    finally:
        sys.argv = argv_before
    return _report(watcher.runs, escaped, exit_code)


def _report(runs: list[Run], escaped: BaseException | None, exit_code: int | str | None) -> int:
    """Print the error lines and the failed-questions warnings; return the exit status."""
    failed_runs = [run for run in runs if run.error is not None]
    if escaped is not None:
        if any(run.error is escaped for run in runs):  # lmms-eval raises a run's error with --verbosity DEBUG
            traceback.print_exception(escaped, file=sys.stderr)
        else:
            failed_runs.append(Run(args=None, started=any(run.started for run in runs), error=escaped))
    for run in failed_runs:
        numbered = len(runs) > 1 and run in runs
        stage = "evaluation" if run.started else "setup"
        prefix = f"run {runs.index(run) + 1} of {len(runs)} ({stage}): " if numbered else ""
        print(f"{PROG}: error: {prefix}{run.describe()}", file=sys.stderr)
    for run in runs:
        if run.failed and not isinstance(run.error, FailedQuestionsError):
            counts = ", ".join(f"{task} {failed} of {total}" for task, (failed, total) in run.failed.items())
            print(f"{PROG}: warning: questions failed and were scored wrong: {counts} (metric `failed`; the "
                  "reasons are in the log and the samples)", file=sys.stderr)
    if failed_runs:
        return failed_runs[0].status
    if isinstance(exit_code, str):  # sys.exit("message"): Python prints it and exits 1
        print(exit_code, file=sys.stderr)
        return 1
    return exit_code or 0


def _results_files(output_path: str | None) -> dict[Path, int]:
    """Results files lmms-eval has written under output_path (<output_path>/<model>/<date>_results.json)."""
    if not output_path:
        return {}
    return {path: path.stat().st_mtime_ns for path in Path(output_path).expanduser().glob("*/*_results.json")}


def _failed_questions(results: dict) -> dict[str, tuple[int, int]]:
    """task -> (failed, questions) for the tasks with a `failed` metric above 0. The questions
    are `failed` / `failed_rate` (lmms-eval 0.7.3's n-samples "effective" ignores --offset), else
    n-samples."""
    failed = {}
    for task, values in results.get("results", {}).items():
        count, rate = values.get("failed,none"), values.get("failed_rate,none")
        if isinstance(count, (int, float)) and count > 0:
            questions = round(count / rate) if isinstance(rate, (int, float)) and rate > 0 else \
                int(results.get("n-samples", {}).get(task, {}).get("effective", 0))
            failed[task] = (int(count), questions)
    return failed
