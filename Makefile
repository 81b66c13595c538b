# Two entry points for users: `make demo` (the main job) and `make test` (the test suite).
# Both create or update a local virtual environment in .venv and install the package into it,
# always through constraints.txt (it pins torch==2.13.0, so pip takes the CPU wheel on CPU machines).
PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= constraints.txt
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
DEMO_OUT ?= runs/demo

.PHONY: install demo test test-all lint bench clean help

help:
	@echo "make demo      generate the small 2D Navier-Stokes demo data set in $(DEMO_OUT) (creates .venv)"
	@echo "make test      run the default test suite (creates .venv)"
	@echo "make test-all  also run the slow tests"
	@echo "make lint      ruff"
	@echo "make bench     run the benchmarks and rewrite docs/benchmarks.md"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(VENV)/bin/python pyproject.toml $(CONSTRAINTS)
	$(PIP) install --upgrade -c $(CONSTRAINTS) pip setuptools wheel
	$(PIP) install -c $(CONSTRAINTS) -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	mkdir -p $(DEMO_OUT)
	$(VENV)/bin/sim generate ns2d --config configs/data/ns2d_demo.yaml --out $(DEMO_OUT)/ns2d_demo.nc --overwrite
	$(VENV)/bin/sim inspect $(DEMO_OUT)/ns2d_demo.nc

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q

test-all: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check sim tests scripts

bench: $(STAMP)
	$(PY) scripts/bench_ns2d.py

clean:
	rm -rf $(VENV) runs .pytest_cache
