# rare-triage: every target sets itself up from requirements/dev.lock into .venv.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
export RARE_TRIAGE_HOME ?= $(CURDIR)/.rare_triage
export DAGSTER_HOME ?= $(RARE_TRIAGE_HOME)/dagster_home
DAYS ?= 35

.PHONY: setup run ui test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements/dev.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "rare-triage needs Python 3.11, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements/dev.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

run: setup $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m rare_triage demo --days $(DAYS)

ui: setup $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

# lint-imports checks the import contracts of pyproject.toml; dg check defs loads the Dagster definitions against the
# instance in DAGSTER_HOME (telemetry off there), VIRTUAL_ENV telling dg that .venv is the project's environment.
test: setup $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache --no-logo
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/dg check defs
	$(BIN)/pytest -n 2

lint: setup $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy rare_triage serving
	$(BIN)/lint-imports --no-cache --no-logo
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/dg check defs

bench: setup
	$(BIN)/python bench/bench_pipeline.py

clean:
	rm -rf $(RARE_TRIAGE_HOME)
