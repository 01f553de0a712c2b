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
# Extra requirements for test-latest, e.g. PINS="transformers==5.17.0".
PINS ?=
STAMP := $(VENV)/.focus-eval-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export UV_PYTHON_DOWNLOADS := never

.PHONY: install lock test test-latest demo bench clean

install: $(STAMP)

# uv's own wheel into a folder (a venv for it would cost more time than the whole sync).
$(UV):
	$(PYTHON) -m pip install -q --target $(UV_HOME) "uv==$(UV_VERSION)"

$(STAMP): $(LOCK) pyproject.toml | $(UV)
	$(UV) venv -q --clear --python $(PYTHON) $(VENV)
	$(UV) pip sync -q --python $(PY) -f $(TORCH_WHEELS) $(LOCK)
	$(UV) pip install -q --python $(PY) --no-deps -e .
	touch $@

# Re-resolve every pin from pyproject.toml (newest versions allowed by its ranges).
lock: | $(UV)
	$(UV) pip compile -q --upgrade --python-version 3.11 --extra test $(LOCK_INPUTS) \
		--custom-compile-command "make lock" -o $(LOCK) pyproject.toml

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests

# The suite on what a user's `pip install .` would get today (pyproject.toml alone, no lock):
# the next dependency drift shows here before users see it.
test-latest: | $(UV)
	$(UV) venv -q --clear --python $(PYTHON) $(LATEST_VENV)
	$(UV) pip install -q --refresh --python $(LATEST_VENV)/bin/python $(LOCK_INPUTS) -e ".[test]" $(PINS)
	$(UV) pip list -q --python $(LATEST_VENV)/bin/python | grep -E -i '^(torch|transformers|lmms-eval|filelock|accelerate|datasets|tokenizers) '
	$(LATEST_VENV)/bin/python -m pytest -q -p no:cacheprovider tests

demo: $(STAMP)
	$(PY) -m focus_eval.demo

# About 10 minutes on 2 CPU cores; see benchmarks/README.md (GPU: benchmarks/adapters.py --size 7b --device cuda).
bench: $(STAMP)
	$(PY) benchmarks/relevance_map.py
	$(PY) benchmarks/adapters.py --size small --threads 1

clean:
	rm -rf $(VENV) $(LATEST_VENV) $(UV_HOME) build *.egg-info
