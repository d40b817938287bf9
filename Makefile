# make demo | make test | make bench | make lint — each creates .venv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# This machine has a CPU build of torch 2.13.0 on disk (pip finds it); elsewhere any torch >= 2.2 works:
# install the one you want into .venv first and this step leaves it alone.
TORCH_VERSION ?= 2.13.0
OUT ?= runs/demo

.PHONY: demo test bench bench-cnn bench-scale bench-stats lint install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(BIN)/python
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "torch==$(TORCH_VERSION)"
	@touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -e ".[dev]"
	@touch $@

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -e ".[bench]"
	@touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/miaudit audit --dataset digits --target mlp --reference-models 16 --attacks all --out $(OUT)

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/fmnist_mlp.py

bench-cnn: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/mnist_cnn.py | tee benchmarks/results/mnist_cnn.log

bench-scale: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/scale_fmnist.py | tee benchmarks/results/scale_fmnist.log

bench-stats: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/statistics_coverage.py --quick | tee benchmarks/results/statistics_coverage.log

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
