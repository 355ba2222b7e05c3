# The README's two commands: `make run` and `make test` set everything up on a fresh
# machine with Python 3.11 and make, then start the app / run the tests.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench install clean check posterior

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

PORT ?= 8501

run: $(STAMP)  ## the app on one fixed port (make run PORT=8600 for another; a clear error when busy), warmed up at start
	LXSD_PORT=$(PORT) $(PY) -m lxapp.serve

test: $(STAMP)  ## lint (ruff), types (mypy on engine/), then the test suite
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest

bench: $(STAMP)  ## engine vs PySD and the numpy floor; analysis; app; conformance models
	$(PY) benchmarks/run_benchmarks.py
	$(PY) benchmarks/bench_analysis.py | tee docs/benchmarks-analysis.md
	$(PY) benchmarks/bench_app.py 2>/dev/null | tee docs/benchmarks-app.md
	$(PY) benchmarks/bench_conformance.py

posterior: $(STAMP)  ## regenerate the shipped posterior after changing the model, the data or the data map
	$(PY) -m engine posterior model/linxiang.toml scenarios/actual_trend.toml --data data/linxiang_statistics.csv \
	    --map model/linxiang_data_map.toml --samples 2000 --seed 1 --out model/linxiang_posterior.nc

check: $(STAMP)
	$(PY) -m engine check model/linxiang.toml

clean:
	rm -rf $(VENV) .pytest_cache
