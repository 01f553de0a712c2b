"""`python -m focus_eval.lmms ARGS` and `focus-eval lmms-eval ARGS`: lmms-eval's command line with an
honest exit status (the glue: focus_eval.model_wrappers.lmms_launcher, whose docstring has the
exit statuses). Also under `torchrun ... -m focus_eval.lmms` and `accelerate launch -m
focus_eval.lmms`.

This module imports neither torch nor lmms-eval: before the glue is imported (torch,
transformers and lmms-eval take 15-60 s), it takes the launcher's own option
`--max-failed-rate RATE` out of the arguments and checks what it can of an evaluation given on
the command line (`check_run`: --tasks, --limit, --output_path), so that those usage errors are
one line at once (exit status 2). The glue runs `check_run` again on each run, those of a
`--config` file included.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from focus_eval.outputs import check_writable_dir
from focus_eval.tasks.record import MAX_FAILED_RATE

PROG = "focus-eval"
COMMAND = f"{PROG} lmms-eval"
SETUP_ERROR = 2


class SetupError(ValueError):
    """A run that cannot start as given."""


def main(argv: Sequence[str] | None = None) -> int:
    """lmms-eval's command line on `argv` (default: sys.argv[1:]); returns the exit status."""
    try:
        arguments, max_failed_rate = own_options(list(sys.argv[1:] if argv is None else argv))
        _check_command_line(arguments)
    except SetupError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return SETUP_ERROR
    from focus_eval.model_wrappers.lmms_launcher import main as launch

    return launch(arguments, max_failed_rate)


def check_run(tasks: str | None, limit: float | None, output_path: str | None) -> None:
    """The checks of one run's arguments before it starts; SetupError."""
    if not tasks:  # lmms-eval would log an error and exit 0
        raise SetupError("no --tasks given (`lmms-eval --tasks list` lists them)")
    if limit == 0:  # lmms-eval would stop after loading everything: "did not find any docs"
        raise SetupError("--limit 0 asks no question; give a number of questions per task (>= 1), a share of "
                         "each task (between 0 and 1) or -1 for all")
    if output_path:
        try:
            check_writable_dir(output_path)
        except ValueError as error:
            raise SetupError(f"--output_path: {error}") from None


def own_options(arguments: list[str]) -> tuple[list[str], float | None]:
    """`arguments` without the launcher's own option, and its value (None when not given)."""
    rest, rate = [], None
    items = iter(arguments)
    for item in items:
        if item != MAX_FAILED_RATE and not item.startswith(f"{MAX_FAILED_RATE}="):
            rest.append(item)
            continue
        text = item.partition("=")[2] if "=" in item else next(items, "")
        try:
            rate = float(text)
        except ValueError:
            rate = None
        if rate is None or not 0 <= rate <= 1:
            raise SetupError(f"{MAX_FAILED_RATE} expects a share of a task's questions between 0 and 1, got {text!r}")
    return rest, rate


def _check_command_line(arguments: list[str]) -> None:
    """`check_run` for an evaluation given on the command line."""
    if arguments[:1] == ["eval"]:
        arguments = arguments[1:]
    if not arguments or not arguments[0].startswith("-") or {"-h", "--help", "--config"} & set(arguments):
        return  # another subcommand, lmms-eval's wizard, help, or runs in a --config file
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    for name in ("--tasks", "--limit", "--output_path"):
        parser.add_argument(name)
    try:
        given, _ = parser.parse_known_args(arguments)
        limit = None if given.limit is None else float(given.limit)
    except (argparse.ArgumentError, ValueError):
        return  # lmms-eval's own parser says what is wrong
    check_run(given.tasks, limit, given.output_path)


if __name__ == "__main__":
    sys.exit(main())
