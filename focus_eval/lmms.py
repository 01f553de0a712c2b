"""`python -m focus_eval.lmms ARGS`: lmms-eval's command line with an honest exit status, the
same as `focus-eval lmms-eval ARGS` (focus_eval.model_wrappers.lmms_launcher). Also under
`torchrun ... -m focus_eval.lmms` and `accelerate launch -m focus_eval.lmms`."""

import sys

from focus_eval.model_wrappers.lmms_launcher import main

if __name__ == "__main__":
    sys.exit(main())
