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

.PHONY: install demo test lint bench ui clean mutation record gpu-experiment hub-experiment

DVC_ENV := $(TOOLS)/dvc
DVC_STAMP := $(DVC_ENV)/.installed

install: $(STAMP) $(DVC_STAMP)

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

# Reinstall whenever the lock file or the project metadata changes.
$(STAMP): $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --extra dev
	touch $(STAMP)

# DVC in its own locked environment (tools/dvc: its antlr4 pin conflicts with Dagster's),
# linked into .venv/bin so that `dvc` and `flair-pipeline` share one PATH entry.
$(DVC_STAMP): $(UV) tools/dvc/uv.lock tools/dvc/pyproject.toml $(STAMP)
	UV_PROJECT_ENVIRONMENT=$(CURDIR)/$(DVC_ENV) $(UV) sync --frozen --project tools/dvc
	ln -sf $(CURDIR)/$(DVC_ENV)/bin/dvc $(BIN)/dvc
	touch $(DVC_STAMP)

# `dvc repro` of dvc.yaml with params.yaml's CPU recipe, then the comparison table.
# Afterwards `dvc status` is clean and a second `make demo` runs nothing.
demo: install
	$(BIN)/flair-pipeline demo

# Record in DVC what the Dagster UI or the sensor built (dvc commit of the changed stages).
record: install
	$(BIN)/flair-pipeline dvc-record

# FLAIR's GPU recipe (recipes/flair-gpu.yaml) as the DVC experiment `flair-gpu`.
gpu-experiment: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc exp run -n flair-gpu $$($(BIN)/flair-pipeline recipe-args recipes/flair-gpu.yaml)

# A FLAIR-HUB recipe (recipes/flair-hub-$(RECIPE).yaml: lc-a, lc-l, lpis-i) as the DVC
# experiment `flair-hub-$(RECIPE)` (stages hub_release, train_hub, evaluate_hub).
RECIPE ?= lc-a
hub-experiment: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc exp run -n flair-hub-$(RECIPE) $$($(BIN)/flair-pipeline recipe-args recipes/flair-hub-$(RECIPE).yaml)

# Static checks first (seconds), then the suite: ruff (lint, docstrings, format), no cycles
# between packages (import-linter's layers in pyproject.toml), mypy on the package, and
# `dg check defs` (every defs.yaml against its component's schema, then the code location
# loaded as `dg dev` loads it).
test: install
	$(BIN)/ruff check flair_pipeline tests bench scripts
	$(BIN)/ruff format --check flair_pipeline tests bench scripts
	$(BIN)/lint-imports
	$(BIN)/mypy flair_pipeline
	$(BIN)/dg check defs
	$(BIN)/pytest -q -n 2 --dist loadscope

lint: install
	$(BIN)/ruff check flair_pipeline tests bench scripts
	$(BIN)/ruff format --check flair_pipeline tests bench scripts

bench: install
	$(BIN)/python bench/synth.py
	$(BIN)/python bench/build_dataset.py

# Dagster UI (webserver + daemon) on 127.0.0.1:$(UI_PORT) with the persistent DAGSTER_HOME:
# `flair-pipeline ui` checks that the port is free (a clear error otherwise), then execs
# `dg dev --target-path <this checkout> --check-yaml -h 127.0.0.1 -p $(UI_PORT)` (Dagster's
# `dg` project: [tool.dg] in pyproject.toml).
UI_PORT ?= 3000
ui: install
	$(BIN)/flair-pipeline ui --host 127.0.0.1 --port $(UI_PORT)

# Mutation testing (docs/testing.md): mutmut on the modules and tests listed in pyproject's
# [tool.mutmut], the mutants of [tool.flair_mutation]; not in CI (too slow). Runs under nice
# with one child (the machine is shared; MUTATION_JOBS=2 on an idle one), prints the wall
# time and the score per module; survivors: `$(BIN)/mutmut show <name>`.
MUTATION_JOBS ?= 1
mutation: install
	rm -rf mutants
	$(BIN)/python scripts/mutation_score.py --run $(MUTATION_JOBS)

clean:
	rm -rf $(VENV) $(TOOLS)
