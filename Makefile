# Two entry points: `make repro` (default pipeline on the embedded tiny models)
# and `make test`. Both bootstrap .venv on first use and are no-ops after.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# Torch wheels that lie on this kind of machine's disk; users elsewhere get
# whatever pyproject's loose range resolves to (override TORCH_SPEC="").
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# pip through uv when it can be had (tools/pip_install.py: 54 s instead of 157 s here).
PIP_INSTALL := $(BIN)/python tools/pip_install.py -q
STAMP := $(VENV)/.vlmscope-installed
DEV_STAMP := $(VENV)/.vlmscope-dev-installed

.PHONY: install dev repro pull test clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	@if [ -n "$(TORCH_SPEC)" ] && ! $(BIN)/python -c "import torch, torchvision" 2>/dev/null; then \
		$(PIP_INSTALL) $(TORCH_SPEC) || $(PIP_INSTALL) torch torchvision; fi
	$(PIP_INSTALL) -e .
	@touch $@

$(DEV_STAMP): $(STAMP)
	$(PIP_INSTALL) -e '.[dev]'
	@touch $@

install: $(STAMP)

dev: $(DEV_STAMP)

repro: $(STAMP)
	@if [ ! -d .dvc ]; then $(BIN)/dvc init -q; fi
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro
	@$(BIN)/python -m vlmscope.report.where artifacts/reports
	@echo "to share these results: git add dvc.lock && git commit -m results && dvc push (others: git pull && make pull)"

# dvc pull, explaining that a clone without a committed dvc.lock has nothing to pull (tools/pull.py)
pull: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python tools/pull.py

test: $(DEV_STAMP)
	$(BIN)/ruff check .
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
