"""The `lmms-eval` console script with FOCUS answers counted, and the process killed mid-run.

    python tests/lmms_cli_probe.py CALLS_FILE KILL_AFTER LMMS-EVAL-ARGUMENTS...

Every `Pipeline.answer` call (one per question the model computes) appends a line to
CALLS_FILE. With KILL_AFTER = k >= 0 the process ends abruptly when call k + 1 starts:
`os._exit` runs no clean-up, no `finally` and no lmms-eval finalisation, as a kill would. The
rest of the arguments go to the console script's own entry function.
"""

import os
import sys

from lmms_eval.cli.dispatch import main

from focus_eval.pipeline import Pipeline

KILLED = 9


def counted(answer, calls_file: str, kill_after: int):
    def wrapper(self, image, prompt, **kwargs):
        with open(calls_file, "a+") as handle:
            handle.seek(0)
            if kill_after >= 0 and len(handle.read().splitlines()) >= kill_after:
                os._exit(KILLED)
            handle.write(f"{kwargs.get('question')!r}\n")
        return answer(self, image, prompt, **kwargs)

    return wrapper


if __name__ == "__main__":
    calls_file, kill_after, *arguments = sys.argv[1:]
    Pipeline.answer = counted(Pipeline.answer, calls_file, int(kill_after))
    sys.argv = ["lmms-eval", *arguments]
    sys.exit(main())
