# Two commands on a fresh machine: `make run` (install, then the beacon scenario) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run test bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"

run: install
	$(BIN)/netmarl run scenarios/figure8_beacons.toml

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/messaging.py
	$(BIN)/python benchmarks/world.py
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/alternating.py --distributed 100,1000

clean:
	rm -rf runs .pytest_cache
