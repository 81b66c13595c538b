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
SIM := $(VENV)/bin/sim

.PHONY: install demo test test-all lint bench clean help

help:
	@echo "make demo      the main job: NS data, train a P4M G-CNN and a CNN, 200-step rollouts, report in $(DEMO_OUT)"
	@echo "make test      run the default test suite (creates .venv)"
	@echo "make test-all  also run the slow tests"
	@echo "make lint      ruff"
	@echo "make bench     install the peers (bench extra), run every scripts/bench_*.py, rewrite docs/benchmarks.md"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(VENV)/bin/python pyproject.toml $(CONSTRAINTS)
	$(PIP) install --upgrade -c $(CONSTRAINTS) pip setuptools wheel
	$(PIP) install -c $(CONSTRAINTS) -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	mkdir -p $(DEMO_OUT)
	$(SIM) generate ns2d --config configs/data/ns2d_demo.yaml --out $(DEMO_OUT)/ns2d_demo.nc --overwrite
	$(SIM) train --config configs/ns2d/demo_gcnn_p4m.yaml --out $(DEMO_OUT)/p4m --overwrite data.path=$(DEMO_OUT)/ns2d_demo.nc
	$(SIM) train --config configs/ns2d/demo_cnn.yaml --out $(DEMO_OUT)/cnn --overwrite data.path=$(DEMO_OUT)/ns2d_demo.nc
	for m in p4m cnn; do for g in 0 1 4; do \
	  $(SIM) rollout --checkpoint $(DEMO_OUT)/$$m/checkpoints/last.pt --data $(DEMO_OUT)/ns2d_demo.nc \
	    --samples 10:12 --steps 200 --element $$g --out $(DEMO_OUT)/$$m/rollout_g$$g.nc --overwrite || exit 1; \
	done; done
	$(SIM) evaluate --title "make demo: P4M G-CNN vs CNN, 200-step rollouts" --out $(DEMO_OUT)/report --overwrite \
	  P4M=$(DEMO_OUT)/p4m/rollout_g0.nc P4M=$(DEMO_OUT)/p4m/rollout_g1.nc P4M=$(DEMO_OUT)/p4m/rollout_g4.nc \
	  CNN=$(DEMO_OUT)/cnn/rollout_g0.nc CNN=$(DEMO_OUT)/cnn/rollout_g1.nc CNN=$(DEMO_OUT)/cnn/rollout_g4.nc

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q

test-all: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check sim tests scripts

bench: $(STAMP)
	$(PIP) install -c $(CONSTRAINTS) -e ".[bench]"
	for script in scripts/bench_*.py; do $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
