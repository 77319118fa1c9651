# Each target creates or reuses .venv, with the optional integrations (Lightning, Hugging Face,
# Optuna, Ray, TensorBoard and MLflow) installed so their tests run. torch is pinned to the CPU
# build this machine has on disk before the package is installed, so the open range in pyproject
# installs nothing more.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,lightning,transformers,optuna,ray,lrfree,logging]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/disciplined tune --task mnist1d-cnn --out runs/demo

# Tests run in parallel, one pytest-xdist worker a core; the tests that start a local Ray share
# one worker (xdist_group "ray"), every other test writes only under its own tmp_path.
# Chromium is installed best effort: the report's browser test needs it and is skipped without
# it; this step never fails the target.
test: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	-@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null 2>&1) || echo "chromium could not be installed: the browser test will be skipped"
	$(PY) -m pytest -q -n auto --dist loadgroup

# The inner loop: ruff and every test not marked slow (whole tunes, subprocesses, benchmarks).
test-fast: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m pytest -q -n auto --dist loadgroup -m "not slow"

# `make bench` reruns the tables under an hour (benchmarks/run_all.py DEFAULT); `make bench
# ONLY=name[,name]` reruns those tables, the hour-long ones included (OWN_COMMAND), and keeps
# the others, each marked stale when its code changed after the commit that made it.
# The optional baselines (Optuna's TPE) and torch-lr-finder are installed best effort: a
# benchmark without them leaves their rows out and says so.
bench: $(STAMP)
	-$(PY) -m pip install -q torch-lr-finder optuna || true
	$(PY) benchmarks/run_all.py --out docs/benchmarks.md $(if $(ONLY),--only $(ONLY))

clean:
	rm -rf runs .pytest_cache
