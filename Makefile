# Retail Sync Hub — everything the project needs is installed from here.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck install serve bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[erp,dev]'
	@touch $(STAMP)

install: $(STAMP)

## The hub with its local demo, on the embedded SQLite default.
demo: $(STAMP)
	$(BIN)/retailsync demo

## The whole test suite: lint, type check, then every test.
test: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/ruff format --check src tests $(wildcard bench)
	$(BIN)/mypy
	bash scripts/ensure-chromium.sh
	$(BIN)/python -m pytest

serve: $(STAMP)
	$(BIN)/retailsync serve

bench: $(STAMP)
	$(BIN)/python bench/bus.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
