# Two entry points: `make demo` (set up, then run the main job) and `make test` (set up, then run the tests).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: setup demo test unit clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@echo "installing compound and its extras; llama-cpp-python builds from source the first time (5-9 min on 2 cores)"
	CMAKE_ARGS="-DLLAVA_BUILD=OFF" $(BIN)/python -m pip install -q -e ".[llama,tables,retrieval,dense,mcp,ray,evaluate,demo,dev,serve,otel,serve-test]"
	$(BIN)/compound models install smollm2-135m qwen2.5-coder-0.5b qwen2.5-coder-1.5b
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

demo: setup
	$(BIN)/compound demo

test: setup
	$(BIN)/python -m pytest

unit: setup
	$(BIN)/python -m pytest -m "not integration"

clean:
	rm -rf $(VENV) .pytest_cache
