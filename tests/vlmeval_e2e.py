"""Runs of the real VLMEvalKit, and of lmms-eval on the same questions, for the tests.

The VLMEvalKit runs use its own environment (`make test` sets FOCUS_VLMEVAL_PYTHON to the python
of `.venv-vlmeval`, built by `make vlmeval-env` from the vendored snapshot; tests that need it
are marked `needs_vlmevalkit`). The tiny LLaVA-OneVision answers tiny TSVs in VLMEvalKit's
columns for VStarBench, HRBench4K, HRBench8K and MME-RealWorld-Lite (each with two defective rows
at the end); lmms-eval's run asks our tasks the same questions from parquet copies.

`run_both` makes the runs that tests/conftest.py's session fixture `vlmeval_single` shares (each
costs minutes): tests/test_vlmeval.py checks them against each other, tests/test_compare.py
compares them with `focus-eval compare`. Tests must not write into their folders.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from focus_eval.model_wrappers import vlmeval_benchmarks as vb
from focus_eval.tasks import tiny_data

TESTS_DIR = Path(__file__).resolve().parent
SCALE = 0.05
DATASETS = tuple(vb.VLMEVAL_DATASETS)  # VStarBench HRBench4K HRBench8K MME-RealWorld-Lite
TASKS = {key: key for key in vb.VLMEVAL_DATASETS.values()}  # our lmms-eval task of each benchmark
VLMEVAL_PYTHON = os.path.abspath(os.environ["FOCUS_VLMEVAL_PYTHON"]) if os.environ.get("FOCUS_VLMEVAL_PYTHON") else None
needs_vlmevalkit = pytest.mark.skipif(VLMEVAL_PYTHON is None, reason="FOCUS_VLMEVAL_PYTHON not set (make test sets "
                                      "it after `make vlmeval-env`)")
MODEL_ARGS = "target_max_new_tokens=8,max_new_tokens=8"  # short replies: the tiny model's are gibberish


@dataclass(frozen=True)
class Setup:
    root: Path
    env: dict  # VLMEvalKit's environment: $LMUData holds the tiny TSVs
    checkpoint: Path  # the tiny LLaVA-OneVision


@dataclass(frozen=True)
class BothRuns:
    """One VLMEvalKit run (one process) and the lmms-eval run of the same questions."""

    work_dir: Path  # VLMEvalKit's --work-dir
    output: str  # its stdout and stderr
    maps: Path  # its pictures and traces (save_maps)
    lmms_dir: Path  # lmms-eval's --output_path (--log_samples)
    lmms_maps: Path


def prepare(root: Path, checkpoint: Path) -> Setup:
    lmu_data = root / "LMUData"
    for name in DATASETS:
        vb.write_tiny_tsv(name, lmu_data, scale=SCALE, bad_rows=True)
    return Setup(root, vlmeval_env(root, lmu_data), checkpoint)


def run_both(setup: Setup) -> BothRuns:
    root, checkpoint = setup.root, setup.checkpoint
    lmms = run_lmms_eval(root, checkpoint, wait=False)  # two cores: the frameworks run side by side
    code, out, err = run_vlmeval(focus_args(checkpoint, root / "one", maps=root / "maps"), setup.env, root)
    assert code == 0, err[-3000:]
    lmms_code, lmms_out, lmms_err = finish(lmms)
    assert lmms_code == 0, lmms_err[-3000:]
    return BothRuns(root / "one", out + err, root / "maps", root / "lmms", root / "lmms_maps")


def vlmeval_env(root: Path, lmu_data: Path) -> dict:
    env = dict(os.environ, LMUData=str(lmu_data), HOME=str(root), HF_HOME=str(root / "hf"), HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("MMEVAL_ROOT", None)
    return env


def focus_args(checkpoint, work_dir: Path, *extra: str, maps: Path | None = None) -> list[str]:
    model_args = f"pretrained={checkpoint},{MODEL_ARGS}" + (f",save_maps={maps}" if maps else "")
    return ["--model", "llava_ov_focus", "--data", *DATASETS, "--model-args", model_args, "--work-dir", str(work_dir),
            "--trust-local-data", *extra]


def run_vlmeval(args: list[str], env: dict, cwd: Path, processes: int = 1, wait: bool = True,
                stand_in: bool = True):
    """`python -m focus_eval.vlmeval ARGS` in VLMEvalKit's environment, through tests/vlmeval_cpu.py's
    torchvision stand-in unless `stand_in` is False."""
    launcher = [] if processes == 1 else ["-m", "torch.distributed.run", "--nproc-per-node", str(processes)]
    entry = [str(TESTS_DIR / "vlmeval_cpu.py")] if stand_in else ["-m", "focus_eval.vlmeval"]
    command = [VLMEVAL_PYTHON, *launcher, *entry, *args]
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return finish(process) if wait else process


def run_lmms_eval(root: Path, checkpoint, wait: bool = True):
    data = tiny_data.write_tiny_datasets(root / "lmms_data", scale=SCALE, bad_rows=True)
    model_args = ",".join([f"pretrained={checkpoint}", "target_max_new_tokens=8", f"save_maps={root / 'lmms_maps'}",
                           *(f"data_{key}={path}" for key, path in data.items())])
    command = [str(Path(sys.executable).with_name("lmms-eval")), "--model", "llava_ov_focus", "--model_args", model_args,
               "--tasks", ",".join(TASKS.values()), "--gen_kwargs", "max_new_tokens=8", "--log_samples",
               "--output_path", str(root / "lmms")]
    env = dict(os.environ, HF_HOME=str(root / "hf_lmms"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1")
    process = subprocess.Popen(command, env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return finish(process) if wait else process


def finish(process) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=900)
    return process.returncode, out, err
