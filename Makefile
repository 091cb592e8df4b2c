# Two commands for users: `make demo` and `make test`. Both install into .venv first if needed.
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON := $(PYTHON)
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install demo test lint bench ui clean

install: $(STAMP)

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

# Reinstall whenever the lock file or the project metadata changes.
$(STAMP): $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --extra dev
	touch $(STAMP)

demo: install
	$(BIN)/flair-pipeline demo

test: install
	$(BIN)/ruff check flair_pipeline tests bench
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check flair_pipeline tests bench
	$(BIN)/ruff format --check flair_pipeline tests bench

bench: install
	$(BIN)/python bench/synth.py
	$(BIN)/python bench/build_dataset.py

# Dagster UI (webserver + daemon) on 127.0.0.1:3000 with the persistent DAGSTER_HOME.
ui: install
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

clean:
	rm -rf $(VENV) $(TOOLS)
