"""`python -m focus_eval.vlmeval ...` (also under torchrun): VLMEvalKit's run with the FOCUS models.

The same as `focus-eval vlmeval ...`; see `focus_eval.model_wrappers.vlmeval_run`.
"""

import sys

if __name__ == "__main__":
    from focus_eval.model_wrappers.vlmeval_run import main

    sys.exit(main(prog="python -m focus_eval.vlmeval"))
