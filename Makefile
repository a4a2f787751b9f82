# Two commands: `make run` (build the warehouse on the synthetic shop) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/dagster_home
# The venv's tools (dbt, dagster) first on PATH: dagster-dbt looks dbt up on PATH under `dagster dev`.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export DBT_SEND_ANONYMOUS_USAGE_STATS := false

.PHONY: run test lint test-browser test-spark install dev bench bench-clv bench-incremental docs clean

$(BIN)/clv: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

# The dbt manifest must exist before Dagster loads the code location.
dbt_project/target/manifest.json: $(BIN)/clv $(shell find dbt_project/models dbt_project/macros dbt_project/tests -type f 2>/dev/null) dbt_project/dbt_project.yml
	cd dbt_project && ../$(BIN)/dbt parse --quiet
	@touch $@

install: $(BIN)/clv dbt_project/target/manifest.json

run: install
	$(BIN)/clv run

# Lint and format first: a style slip fails in seconds, before the 10-minute suite.
lint: $(BIN)/clv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# One worker per core (pytest-xdist), at most 4 (each builds its own small shop; `clv` peaks at 0.53 GB), a module per
# worker: module fixtures (a shop run once, then its tests) stay on one worker. About 1.5x faster on 2 cores
# (BENCHMARKS.md, "Test suite"). The browser tests share one Dagster instance, in order: they stay serial.
test: install lint
	$(BIN)/python -m pytest -m "not browser" -q -n auto --maxprocesses 4 --dist loadfile

test-browser: install
	$(BIN)/python -m pytest -m browser -q

# The same dbt models on a local Spark (dbt-spark, session) against the DuckDB build, full and daily (docs/spark.md).
# Installs Java (apt-get) when missing and dbt-spark + pyspark into .venv-spark, never into .venv.
test-spark: install
	PYTHON=$(PYTHON) scripts/spark/setup.sh
	$(BIN)/python scripts/spark/run_test.py

dev: install
	$(BIN)/dagster dev -w workspace.yaml

bench: install
	$(BIN)/python benchmarks/pipeline.py --orders 10000000

bench-incremental: install
	$(BIN)/python benchmarks/pipeline.py --orders 10000000 --mode incremental

clean:
	rm -rf data/warehouse.duckdb* data/published data/exports data/report data/docs data/landing
