# Every target creates/reuses the virtualenv itself, so each works on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# dg runs the code location in its own interpreter: this venv, said so it does not warn of another
DG := VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/dg
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
HOST ?= 127.0.0.1
PORT ?= 3000
PYTEST_ARGS ?=
TEST_WORKERS ?= 2
# the slow tier mostly waits on its servers and runs: a third worker fills the gaps (16.6 vs ~23 min)
SLOW_WORKERS ?= 3

.PHONY: setup home init run batch ui test test-slow bench-smoke lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test,piper,plot]'
	touch $@

setup: $(VENV)/.installed

$(VENV)/.bench-installed: $(VENV)/.installed
	$(VENV)/bin/pip install -q -e '.[test,piper,plot,bench]'
	touch $@

# Persistent Dagster home inside the project: sqlite storage, telemetry off, the TTS pool
# limited to one step at a time (the resource itself caps requests within that step).
home:
	@mkdir -p "$(DAGSTER_HOME)"
	@test -f "$(DAGSTER_HOME)/dagster.yaml" || cp deploy/dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"

init: setup home
	$(PY) -m hybrid_audio_dagster.runner.headless init

# Main command: set up, make every message for the sample data, then serve the UI.
run: setup home
	$(PY) -m hybrid_audio_dagster.runner.headless batch
	$(DG) dev -h $(HOST) -p $(PORT)

batch: setup home
	$(PY) -m hybrid_audio_dagster.runner.headless batch

ui: setup home
	$(DG) dev -h $(HOST) -p $(PORT)

# the contracts CI enforces besides the tests: import layers, style, and that the code location loads
lint: setup
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	env -u DAGSTER_HOME $(DG) check defs

PYTEST := $(PY) -m pytest -q --dist loadfile --no-loadscope-reorder

# the README's test command: every test not marked slow (each marked one takes over ~15 s), ~4 min on 2 cores
test: setup
	$(PYTEST) -n $(TEST_WORKERS) -m "not slow and not bench" $(PYTEST_ARGS)

# the tests marked slow: dagster dev, the daemon, Chromium, deploys, overlaps, long campaigns; CI runs them after make test
test-slow: setup
	$(PYTEST) -n $(SLOW_WORKERS) -m "slow and not bench" $(PYTEST_ARGS)

# the benchmark suite end to end at a tiny size, so it never rots (a check of the bench, not of the product)
bench-smoke: setup
	$(PY) -m pytest -q -m bench tests/system/test_bench_smoke.py

bench: $(VENV)/.bench-installed
	$(PY) -m bench.run $(BENCH_ARGS)

clean:
	rm -rf .dagster_home stems output logs data/normalized data/store data/inbox data/rejected data/rotation
