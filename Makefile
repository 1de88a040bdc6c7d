# One command sets everything up and runs the main job; one runs the tests (README).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU machines: the CPU wheel. GPU servers: leave torch to pip's default CUDA build (or docker/).
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
DEMO_DIR ?= demo_out

.PHONY: setup demo test test-fast lint format clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

demo: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh "$(DEMO_DIR)"

lint: setup
	$(BIN)/ruff check lsmseg tests data_prep benchmarks docker
	$(BIN)/ruff format --check lsmseg tests data_prep benchmarks docker
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q --durations=15

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

format: setup
	$(BIN)/ruff format lsmseg tests data_prep benchmarks docker
	$(BIN)/ruff check --fix lsmseg tests data_prep benchmarks docker

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
