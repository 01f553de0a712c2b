# Development and CI environment: `.venv`, installed by uv from the lock (lock/requirements.txt).
# The lock is for this machine kind (CPython 3.11, x86_64, CPU torch from $(TORCH_WHEELS));
# pyproject.toml holds the ranges a user's `pip install .` resolves.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
UV_HOME := .uv
UV := $(UV_HOME)/bin/uv
TORCH_WHEELS ?= /opt/wheels
LOCK := lock/requirements.txt
LOCK_INPUTS := -f $(TORCH_WHEELS) -c lock/torch-cpu.txt --excludes lock/exclude.txt
LATEST_VENV := .venv-latest
# Extra requirements for test-latest, e.g. PINS="transformers==5.17.0"; what its suite runs.
PINS ?=
LATEST_TESTS ?= tests
# test-above-caps: the requirements whose caps it lifts (default: all), e.g. LIFT=transformers.
LIFT ?=
STAMP := $(VENV)/.focus-eval-installed
# VLMEvalKit's tests run in an environment of their own (its pins clash with lmms-eval's), from
# lock/vlmeval.txt, with VLMEvalKit at the tested commit under build/ installed into it.
VLMEVAL_VENV ?= .venv-vlmeval
VLMEVAL_PY := $(VLMEVAL_VENV)/bin/python
VLMEVAL_LOCK := lock/vlmeval.txt
VLMEVAL_COMMIT := e8e78f05f3080fe28154f2130321f17951c3be94
VLMEVAL_SNAPSHOT := VLMEvalKit-e8e78f05
# Where VLMEvalKit comes from (tools/get-vlmevalkit): a `git archive` of the commit, by default the
# copy in shared/vendor/ beside the clone (CI, the main checkout) or three levels up (a worktree
# under wt/); else a clone of VLMEVAL_GIT at the commit.
VLMEVAL_TARBALL ?= $(firstword $(wildcard ../shared/vendor/$(VLMEVAL_SNAPSHOT).tar.gz ../../../shared/vendor/$(VLMEVAL_SNAPSHOT).tar.gz))
VLMEVAL_GIT ?= https://github.com/open-compass/VLMEvalKit.git
VLMEVAL_BUILD ?= build/$(VLMEVAL_SNAPSHOT)
VLMEVAL_SRC := $(VLMEVAL_BUILD)/VLMEvalKit
VLMEVAL_STAMP := $(VLMEVAL_VENV)/.focus-eval-installed
VLMEVAL_MISSING := $(VLMEVAL_BUILD).missing
GET_VLMEVAL = VLMEVAL_TARBALL="$(VLMEVAL_TARBALL)" VLMEVAL_GIT="$(VLMEVAL_GIT)" VLMEVAL_COMMIT=$(VLMEVAL_COMMIT) \
	tools/get-vlmevalkit $(VLMEVAL_BUILD)
# What `make test` runs (a test of the Makefile replaces it).
PYTEST ?= $(PY) -m pytest -q -p no:cacheprovider tests
# Packages that decide the numbers: the VLMEvalKit environment takes the main lock's versions of them.
SHARED_PINS := torch|transformers|tokenizers|safetensors|numpy|pillow|huggingface-hub|accelerate|scipy
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export UV_PYTHON_DOWNLOADS := never

.PHONY: install vlmeval-env lock test test-latest test-above-caps demo bench proving-ground clean

install: $(STAMP)

# uv's own wheel into a folder (a venv for it would cost more time than the whole sync).
$(UV):
	$(PYTHON) -m pip install -q --target $(UV_HOME) "uv==$(UV_VERSION)"

$(STAMP): $(LOCK) pyproject.toml | $(UV)
	$(UV) venv -q --clear --python $(PYTHON) $(VENV)
	$(UV) pip sync -q --python $(PY) -f $(TORCH_WHEELS) $(LOCK)
	$(UV) pip install -q --python $(PY) --no-deps -e .
	touch $@

vlmeval-env: $(VLMEVAL_STAMP)

$(VLMEVAL_SRC)/run.py:
	@$(GET_VLMEVAL)

$(VLMEVAL_STAMP): $(VLMEVAL_LOCK) pyproject.toml $(VLMEVAL_SRC)/run.py | $(UV)
	$(UV) venv -q --clear --python $(PYTHON) $(VLMEVAL_VENV)
	$(UV) pip sync -q --python $(VLMEVAL_PY) -f $(TORCH_WHEELS) $(VLMEVAL_LOCK)
	$(UV) pip install -q --python $(VLMEVAL_PY) --no-deps -e . -e $(VLMEVAL_SRC)
	touch $@

# Re-resolve every pin from pyproject.toml (newest versions allowed by its ranges), then the
# VLMEvalKit environment's from pyproject.toml and lock/vlmeval.in, with the main lock's SHARED_PINS.
lock: | $(UV)
	$(UV) pip compile -q --upgrade --python-version 3.11 --extra test $(LOCK_INPUTS) \
		--custom-compile-command "make lock" -o $(LOCK) pyproject.toml
	mkdir -p build
	grep -E '^($(SHARED_PINS))==' $(LOCK) > build/vlmeval-shared-pins.txt
	$(UV) pip compile -q --upgrade --python-version 3.11 $(LOCK_INPUTS) -c build/vlmeval-shared-pins.txt \
		--custom-compile-command "make lock" -o $(VLMEVAL_LOCK) pyproject.toml lock/vlmeval.in

# The suite. Its VLMEvalKit end-to-end tests need VLMEvalKit (tools/get-vlmevalkit): without it
# they are skipped (even when the caller's environment names a VLMEvalKit python) and the last line
# says so and how to provide it; under CI=true that is a failure.
test: $(STAMP)
	@mkdir -p $(dir $(VLMEVAL_MISSING)); got=0; $(GET_VLMEVAL) 2> $(VLMEVAL_MISSING) || got=$$?; \
	case $$got in \
	  0) $(MAKE) --no-print-directory vlmeval-env || exit 1 ;; \
	  3) if [ "$$CI" = true ]; then echo "make test: CI=true needs the VLMEvalKit end-to-end tests:" \
	       "$$(cat $(VLMEVAL_MISSING))" >&2; exit 1; fi ;; \
	  *) cat $(VLMEVAL_MISSING) >&2; exit 1 ;; \
	esac; \
	if [ $$got = 0 ]; then FOCUS_VLMEVAL_PYTHON=$(VLMEVAL_PY) $(PYTEST); else \
	  FOCUS_VLMEVAL_PYTHON= $(PYTEST); status=$$?; echo "make test: the VLMEvalKit end-to-end tests did not run:" \
	    "$$(cat $(VLMEVAL_MISSING))"; exit $$status; fi

# The suite on what a user's `pip install .` would get today (pyproject.toml alone, no lock):
# the next dependency drift shows here before users see it.
test-latest: | $(UV)
	$(UV) venv -q --clear --python $(PYTHON) $(LATEST_VENV)
	$(UV) pip install -q --refresh --python $(LATEST_VENV)/bin/python $(LOCK_INPUTS) $(LATEST_OVERRIDES) \
		-e ".[test]" $(PINS)
	$(UV) pip list -q --python $(LATEST_VENV)/bin/python | grep -E -i '^(torch|transformers|lmms-eval|filelock|accelerate|datasets|tokenizers|kernels) '
	$(LATEST_VENV)/bin/python -m pytest -q -p no:cacheprovider $(LATEST_TESTS)

# The same on the newest releases above pyproject.toml's caps (tools/lift-caps.py): test-latest
# cannot see a release that breaks us until a cap is raised; this shows it first (README).
test-above-caps: | $(UV)
	mkdir -p build
	$(PYTHON) tools/lift-caps.py $(LIFT) > build/caps-lifted.txt
	$(MAKE) --no-print-directory test-latest LATEST_OVERRIDES="--override build/caps-lifted.txt"

demo: $(STAMP)
	$(PY) -m focus_eval.present.demo

# Tens of minutes on 2 CPU cores; see benchmarks/README.md (GPU: benchmarks/adapters.py --size 7b --device cuda).
bench: $(STAMP)
	$(PY) benchmarks/relevance_map.py
	$(PY) benchmarks/adapters.py --size small --threads 1

# The proving ground (focus_eval/proving_ground): train each family's tiny model (FAMILY=llava_1_5 or
# llava_onevision: that one; empty: both) on synthetic fine-grained VQA once per seed, then every
# method through lmms-eval on the test questions; the table is the mean and sd over the seeds, the
# last lines the result per family. Seed 0 on THREADS=1 is a family's committed checkpoint; JOBS
# seeds run at once (each on THREADS threads: contended threads spin).
PROVING_GROUND ?= runs/proving_ground
FAMILY ?=
SEEDS ?= 0 1 2
THREADS ?= 1
JOBS ?= 2
proving-ground: $(STAMP)
	$(PY) -m focus_eval.proving_ground.run $(if $(FAMILY),--families $(FAMILY)) --seeds $(SEEDS) \
		--out $(PROVING_GROUND) --threads $(THREADS) --jobs $(JOBS)

clean:
	rm -rf $(VENV) $(LATEST_VENV) $(VLMEVAL_VENV) $(UV_HOME) build *.egg-info
