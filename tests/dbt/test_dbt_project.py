"""The dbt project's own checks outside a pipeline run: its unit tests (hand-computed rows for the windowed LTV and
retention marts, models/marts/_unit_tests_*.yml) pass against a real warehouse, and a column description used in
more than one place is written once, as a `{% docs %}` block in models/_docs.md."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from pipeline_runner import PROJECT_ROOT, PipelineRun

from pipelines.warehouse import marts_path

DBT_DIR = PROJECT_ROOT / "dbt_project"
MODELS = DBT_DIR / "models"
# The unit tests the review asked for; listed so that one disabled or renamed by accident fails here.
UNIT_TESTS = {
    "int_orders_as_of_cut_off_and_refunds",
    "int_customer_totals_value_windows",
    "int_customer_window_value_observed_at_as_of",
    "windowed_ltv_only_fully_observed_cohorts",
    "int_customer_months_month_boundaries",
    "cohort_retention_dense_grid_to_the_as_of_month",
    "cohort_retention_by_channel_month_end_as_of",
    "retention_kpis_spec_retention_definition",
}


def _column_descriptions() -> dict[str, list[str]]:
    """{description as written: ['file: node.column', ...]} over every yml file of the project's models."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted(MODELS.rglob("*.yml")):
        document = yaml.safe_load(path.read_text()) or {}
        nodes = [(m["name"], m) for m in document.get("models", []) or []]
        nodes += [(f"{s['name']}.{t['name']}", t) for s in document.get("sources", []) or [] for t in s["tables"]]
        for name, node in nodes:
            for column in node.get("columns", []) or []:
                text = " ".join(str(column.get("description", "")).split())
                found[text].append(f"{path.relative_to(MODELS)}: {name}.{column['name']}")
    return found


def test_a_description_used_twice_is_a_docs_block():
    repeated = {
        text: where
        for text, where in _column_descriptions().items()
        if len(where) > 1 and text and not re.fullmatch(r"\{\{\s*doc\('[a-z0-9_]+'\)\s*\}\}", text)
    }
    assert not repeated, (
        "the same description written in several places: put it in models/_docs.md as a {% docs name %} block and "
        "reference it as \"{{ doc('name') }}\":\n" + "\n".join(f"{t!r}: {w}" for t, w in repeated.items())
    )


def test_every_docs_block_is_used():
    defined = set(re.findall(r"\{%\s*docs\s+([a-z0-9_]+)\s*%\}", (MODELS / "_docs.md").read_text()))
    used = {
        name
        for path in MODELS.rglob("*.yml")
        for name in re.findall(r"\{\{\s*doc\('([a-z0-9_]+)'\)\s*\}\}", path.read_text())
    }
    assert not defined - used, f"docs blocks nothing references: {sorted(defined - used)}"
    assert not used - defined, f"doc() references without a block: {sorted(used - defined)}"


@pytest.mark.slow
def test_dbt_unit_tests_pass(small_shop: PipelineRun, tmp_path: Path):
    """`dbt test --select test_type:unit` on a copy of a built warehouse (unit tests read the column types of their
    inputs from the warehouse). The pipeline's `dbt build` runs them too, before each model they test."""
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(small_shop.warehouse, warehouse)
    shutil.copy(marts_path(small_shop.warehouse), marts_path(warehouse))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLV_", "DBT_"))}
    env.update({"CLV_WAREHOUSE": str(warehouse), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"})
    target = tmp_path / "target"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "test",
            "--select",
            "test_type:unit",
            "--target-path",
            str(target),
            "--log-path",
            str(tmp_path / "logs"),
        ],
        cwd=DBT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"dbt unit tests failed:\n{done.stdout[-8000:]}\n{done.stderr[-4000:]}"
    results = json.loads((target / "run_results.json").read_text())["results"]
    ran = {r["unique_id"].rsplit(".", 1)[-1]: r["status"] for r in results if r["unique_id"].startswith("unit_test.")}
    assert UNIT_TESTS <= set(ran), f"unit tests missing: {sorted(UNIT_TESTS - set(ran))}"
    assert all(status == "pass" for status in ran.values()), ran
