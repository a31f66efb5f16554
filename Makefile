# rare-triage: every target sets itself up from requirements/dev.lock into .venv; the service's targets from
# requirements/serving-dev.lock into .venv-serving (serving's own dependencies only, never the platform's).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SERVING_VENV := .venv-serving
SERVING_BIN := $(SERVING_VENV)/bin
UV_COMPILE := $(BIN)/uv pip compile --quiet --python-version 3.11 --python-platform x86_64-unknown-linux-gnu
UV_VERSION := 0.13.9
export RARE_TRIAGE_HOME ?= $(CURDIR)/.rare_triage
export DAGSTER_HOME ?= $(RARE_TRIAGE_HOME)/dagster_home
DAYS ?= 35

.PHONY: setup run ui mlflow-ui ui-tour test lint smoke bench bench-serving clean setup-serving test-serving lock-serving

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

# The platform end to end, then the service on the model it published, in the foreground (Ctrl-C stops it).
run: setup setup-serving $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m rare_triage demo --days $(DAYS)
	MODEL_ENV=dev $(SERVING_BIN)/python -m serving --announce

# The Dagster UI (webserver and daemon) on 127.0.0.1:$(UI_PORT). dg dev starts in DAGSTER_HOME, where the instance's
# dagster.yaml is (started here it would warn that ./dagster.yaml, the template copied above, is not the instance's);
# the homes are passed as absolute paths. VIRTUAL_ENV tells dg that .venv is the project's environment.
UI_PORT ?= 3000
ui: setup $(DAGSTER_HOME)/dagster.yaml
	cd $(DAGSTER_HOME) && RARE_TRIAGE_HOME=$(abspath $(RARE_TRIAGE_HOME)) DAGSTER_HOME=$(abspath $(DAGSTER_HOME)) \
		VIRTUAL_ENV=$(abspath $(VENV)) $(abspath $(BIN))/dg dev -w $(CURDIR)/workspace.yaml -h 127.0.0.1 -p $(UI_PORT)

# The MLflow UI on the runs and registered models of `make run` (the sqlite store under RARE_TRIAGE_HOME).
MLFLOW_PORT ?= 5000
mlflow-ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(abspath $(RARE_TRIAGE_HOME))/mlflow/mlflow.db \
		-h 127.0.0.1 -p $(MLFLOW_PORT)

# Screenshots of both UIs in headless Chromium, `make ui` and `make mlflow-ui` running (selenium: serving's dev lock).
ui-tour: setup-serving
	$(SERVING_BIN)/python scripts/ui_tour.py --dagster http://127.0.0.1:$(UI_PORT) \
		--mlflow http://127.0.0.1:$(MLFLOW_PORT) --out $(RARE_TRIAGE_HOME)/reports/ui_tour

# lint-imports checks the import contracts of pyproject.toml; dg check defs loads the Dagster definitions against the
# instance in DAGSTER_HOME (telemetry off there), VIRTUAL_ENV telling dg that .venv is the project's environment.
test: setup $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache --no-logo
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/dg check defs
	$(BIN)/pytest -n 2
	$(MAKE) --no-print-directory test-serving

lint: setup $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy rare_triage serving
	$(BIN)/lint-imports --no-cache --no-logo
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/dg check defs

# The whole graph on a small fixed synthetic slice in a throwaway home (not $(RARE_TRIAGE_HOME)): exit 1 when a
# blocking check fails, 2 when a run fails otherwise; the check table goes to $GITHUB_STEP_SUMMARY when set.
smoke: setup $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m rare_triage smoke

# The service's venv: the locked runtime and test tools, then serving itself without dependencies; pip check fails
# when the lock misses a dependency (installed with --no-deps, nothing is resolved behind the lock's back).
setup-serving: $(SERVING_VENV)/.installed

$(SERVING_VENV)/.installed: requirements/serving-dev.lock serving/pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "rare-triage-serving needs Python 3.11, found " + sys.version'
	$(PYTHON) -m venv $(SERVING_VENV)
	$(SERVING_BIN)/python -m pip install --quiet --no-deps -r requirements/serving-dev.lock
	$(SERVING_BIN)/python -m pip install --quiet --no-deps -e serving
	$(SERVING_BIN)/python -m pip check
	touch $@

# Run from serving/ with pytest's importlib mode: the tests import serving as installed, and the repository root
# (rare_triage) is not on their path.
test-serving: setup-serving
	cd serving && ../$(SERVING_BIN)/pytest

# serving.lock from serving/pyproject.toml; serving-dev.lock adds the dev extra with serving.lock's pins as
# constraints, so the tests run the exact runtime versions the service ships with.
lock-serving: setup
	$(UV_COMPILE) serving/pyproject.toml -o requirements/serving.lock
	$(UV_COMPILE) serving/pyproject.toml --extra dev -c requirements/serving.lock -o requirements/serving-dev.lock

bench: setup
	$(BIN)/python bench/bench_pipeline.py

# The service over HTTP on 127.0.0.1 against its floor and the seed design (FastAPI + native pipeline), on the
# model published in $(RARE_TRIAGE_HOME) (`make run` first); needs Debian's wrk (else a slower Python client).
bench-serving: setup setup-serving
	$(BIN)/python bench/bench_serving.py --home $(RARE_TRIAGE_HOME) $(BENCH_SERVING_ARGS)

clean:
	rm -rf $(RARE_TRIAGE_HOME)
