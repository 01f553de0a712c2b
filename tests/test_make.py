"""Where `make test` gets VLMEvalKit (tools/get-vlmevalkit, Makefile), without any network: a
local bare repository stands in for the public one (VLMEVAL_GIT) and `git archive`s of it for
the mirror (VLMEVAL_TARBALL). The mirror wins, else the clone at the pinned commit; with neither
the suite runs without the VLMEvalKit tests and its last line says how to provide VLMEvalKit,
except under CI=true, where that is a failure. `make test` runs a stand-in for pytest here
(PYTEST), which prints FOCUS_VLMEVAL_PYTHON."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GET = REPO / "tools" / "get-vlmevalkit"
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "-c", "init.defaultBranch=main"]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> dict:
    """A bare repository with two commits of a VLMEvalKit-shaped tree, and `git archive`s of both."""
    root = tmp_path_factory.mktemp("upstream")
    work = root / "work"
    subprocess.run([*GIT, "init", "-q", str(work)], check=True)
    commits = []
    for version in ("tested", "newer"):
        (work / "vlmeval").mkdir(exist_ok=True)
        (work / "vlmeval" / "__init__.py").write_text("")
        (work / "run.py").write_text(f"# {version}\n")
        subprocess.run([*GIT, "-C", str(work), "add", "."], check=True)
        subprocess.run([*GIT, "-C", str(work), "commit", "-q", "-m", version], check=True)
        commits.append(subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True,
                                      check=True).stdout.strip())
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(root / "bare.git")], check=True)
    archives = {}
    for name, commit in zip(("tested", "newer"), commits):
        archives[name] = root / f"{name}.tar.gz"
        subprocess.run(["git", "-C", str(work), "archive", "--prefix=VLMEvalKit/", "-o", str(archives[name]), commit],
                       check=True)
    return {"git": str(root / "bare.git"), "tested": commits[0], "newer": commits[1], "archives": archives}


def get(dest: Path, commit: str, tarball: str = "", git: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, VLMEVAL_TARBALL=tarball, VLMEVAL_GIT=git or "/nowhere/VLMEvalKit.git",
               VLMEVAL_COMMIT=commit)
    return subprocess.run([str(GET), str(dest)], env=env, capture_output=True, text=True, timeout=120)


def test_the_mirror_is_unpacked_and_must_hold_the_pinned_commit(upstream, tmp_path):
    done = get(tmp_path / "a", upstream["tested"], tarball=str(upstream["archives"]["tested"]))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "a" / "VLMEvalKit" / "run.py").read_text() == "# tested\n"
    done = get(tmp_path / "b", upstream["tested"], tarball=str(upstream["archives"]["newer"]))
    assert done.returncode == 1 and not (tmp_path / "b" / "VLMEvalKit").exists()
    assert done.stderr == (f"VLMEVAL_TARBALL={upstream['archives']['newer']} holds VLMEvalKit commit "
                           f"{upstream['newer']}, not the tested {upstream['tested']}\n")


def test_without_a_mirror_the_pinned_commit_is_cloned(upstream, tmp_path):
    done = get(tmp_path, upstream["tested"], git=upstream["git"])
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "VLMEvalKit" / "run.py").read_text() == "# tested\n"  # not the newer head
    assert not (tmp_path / "VLMEvalKit" / ".git").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["VLMEvalKit"]  # no work folder left


def test_with_neither_one_line_says_how_to_provide_it(upstream, tmp_path):
    done = get(tmp_path, upstream["tested"])
    assert done.returncode == 3 and done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"no VLMEvalKit at {upstream['tested'][:8]}: VLMEVAL_TARBALL is not set and "
                                  "`git clone /nowhere/VLMEvalKit.git` at that commit failed (")
    assert done.stderr.endswith("); set VLMEVAL_TARBALL=PATH to a `git archive` of that commit, or make the clone "
                                "possible\n")
    assert not (tmp_path / "VLMEvalKit").exists()


def make_test(tmp_path: Path, ci: bool, **variables: str) -> subprocess.CompletedProcess:
    """`make test` in this checkout with VLMEvalKit from `variables`, the suite replaced by a line
    naming FOCUS_VLMEVAL_PYTHON, and the environments taken as built."""
    stand_in = f"{sys.executable} -c 'import os; print(\"suite ran, FOCUS_VLMEVAL_PYTHON=\" + os.environ.get(\"FOCUS_VLMEVAL_PYTHON\", \"\"))'"
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "MAKEFLAGS", "MAKELEVEL")}
    if ci:
        env["CI"] = "true"
    venv = tmp_path / "vlmeval-venv"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    arguments = [f"PYTEST={stand_in}", f"VLMEVAL_BUILD={tmp_path / 'build'}", f"VLMEVAL_VENV={venv}",
                 *(f"{k}={v}" for k, v in variables.items())]
    stamp = venv / ".focus-eval-installed"
    stamp.touch()
    later = time.time() + 3600  # newer than the VLMEvalKit files fetched below: `make vlmeval-env` has nothing to do
    os.utime(stamp, (later, later))
    return subprocess.run(["make", "--no-print-directory", "-s", "-C", str(REPO), "-o", ".venv/.focus-eval-installed",
                           "test", *arguments], env=env, capture_output=True, text=True, timeout=300)


def test_make_test_runs_the_vlmevalkit_tests_when_it_can_have_vlmevalkit(upstream, tmp_path):
    done = make_test(tmp_path, ci=True, VLMEVAL_TARBALL="", VLMEVAL_GIT=upstream["git"],
                     VLMEVAL_COMMIT=upstream["tested"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"suite ran, FOCUS_VLMEVAL_PYTHON={tmp_path / 'vlmeval-venv'}/bin/python"
    assert (tmp_path / "build" / "VLMEvalKit" / "run.py").read_text() == "# tested\n"


def test_make_test_without_vlmevalkit_skips_its_tests_with_one_line_except_under_ci(tmp_path):
    neither = {"VLMEVAL_TARBALL": "", "VLMEVAL_GIT": "/nowhere/VLMEvalKit.git"}
    done = make_test(tmp_path, ci=False, **neither)
    assert done.returncode == 0, done.stderr
    suite, line = done.stdout.splitlines()[-2:]
    assert suite == "suite ran, FOCUS_VLMEVAL_PYTHON="
    assert line.startswith("make test: the VLMEvalKit end-to-end tests did not run: no VLMEvalKit at e8e78f05: ")
    assert line.endswith("set VLMEVAL_TARBALL=PATH to a `git archive` of that commit, or make the clone possible")
    done = make_test(tmp_path, ci=True, **neither)
    assert done.returncode != 0 and "suite ran" not in done.stdout
    assert done.stderr.startswith("make test: CI=true needs the VLMEvalKit end-to-end tests: no VLMEvalKit at e8e78f05: ")
