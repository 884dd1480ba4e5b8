# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install clean ui

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Set up, write a sample library and run one batch through every phase on the embedded default.
run: $(STAMP)
	@test -f settings.env || install -m 600 settings.env.example settings.env
	$(BIN)/media-pipeline sample-library sample-library
	$(BIN)/media-pipeline run

## Set up and run the whole test suite (what CI runs).
test: $(STAMP)
	$(BIN)/ruff check media_assets media_assets_tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check media_assets media_assets_tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache

## Start the Dagster UI (http://127.0.0.1:3000) and the daemon on the embedded default.
ui: $(STAMP)
	@test -f settings.env || install -m 600 settings.env.example settings.env
	$(BIN)/media-pipeline ui
