"""Every mart and every column of it is described in dbt and carries that description as a COMMENT in the warehouse
and in the published snapshot; the seven marts written by polars are in dbt's lineage (source marts_polars, with the
exposures depending on them) and their tests pass on a real warehouse."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from pipeline_runner import PROJECT_ROOT, PipelineRun

from pipelines import contract
from pipelines.contract import MARTS as MART_TABLES
from pipelines.publish import DBT_MANIFEST, POLARS_MARTS_SOURCE
from pipelines.warehouse import marts_path

POLARS_MARTS = set(contract.POLARS_MARTS)
DBT_DIR = PROJECT_ROOT / "dbt_project"


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(DBT_MANIFEST.read_text())


def manifest_marts(manifest: dict) -> dict[str, dict]:
    """{mart: its manifest node}: the dbt models in schema marts and the tables of source marts_polars."""
    models = {
        n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model" and n["schema"] == "marts"
    }
    sources = {s["name"]: s for s in manifest["sources"].values() if s["source_name"] == POLARS_MARTS_SOURCE}
    assert not set(models) & set(sources)
    return {**models, **sources}


def database_docs(path: Path) -> tuple[dict[str, str | None], dict[str, dict[str, str | None]]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = dict(
            con.execute(
                "select table_name, comment from duckdb_tables() where schema_name = 'marts' "
                "and database_name = current_database()"
            ).fetchall()
        )
        columns: dict[str, dict[str, str | None]] = {}
        for table, column, comment in con.execute(
            "select table_name, column_name, comment from duckdb_columns() where schema_name = 'marts' "
            "and database_name = current_database()"
        ).fetchall():
            columns.setdefault(table, {})[column] = comment
    finally:
        con.close()
    return tables, columns


def test_every_mart_is_declared_in_dbt_with_a_description_for_every_column(small_shop: PipelineRun, manifest):
    marts = manifest_marts(manifest)
    assert set(marts) == set(MART_TABLES)
    assert {m for m, node in marts.items() if node["resource_type"] == "source"} == POLARS_MARTS
    _, columns = database_docs(marts_path(small_shop.warehouse))
    missing = []
    for mart, node in marts.items():
        if not node["description"].strip():
            missing.append(f"{mart}: no description")
        declared = node["columns"]
        for column in columns[mart]:
            if not (declared.get(column) or {}).get("description", "").strip():
                missing.append(f"{mart}.{column}: no description in dbt")
        missing += [f"{mart}.{c}: described in dbt, not in the table" for c in declared if c not in columns[mart]]
    assert not missing, "\n".join(missing)


def test_shared_descriptions_come_from_one_docs_block(manifest):
    marts = manifest_marts(manifest)
    for column, tables in (
        ("customer_id", ["dim_customers", "customer_segments", "customer_clv"]),
        ("cohort_month", ["dim_customers", "customer_clv", "cac_payback", "cac_payback_curve"]),
        ("cac", ["customer_clv", "cac_payback", "cac_payback_curve"]),
    ):
        texts = {marts[t]["columns"][column]["description"] for t in tables}
        assert len(texts) == 1 and "{{" not in next(iter(texts)), (column, texts)


@pytest.mark.parametrize("where", ["warehouse", "snapshot"])
def test_every_table_and_column_carries_its_description_as_a_comment(small_shop: PipelineRun, manifest, where):
    # the live marts (their own file beside the warehouse) and the published copy of them
    path = (
        marts_path(small_shop.warehouse)
        if where == "warehouse"
        else small_shop.data_dir / "published" / "warehouse.duckdb"
    )
    tables, columns = database_docs(path)
    assert set(MART_TABLES) <= set(tables)
    marts = manifest_marts(manifest)
    missing = [f"{t}: no table comment" for t in MART_TABLES if not (tables[t] or "").strip()]
    missing += [
        f"{t}.{c}: no column comment"
        for t in MART_TABLES
        for c, comment in columns[t].items()
        if not (comment or "").strip()
    ]
    assert not missing, "\n".join(missing)
    # the comments are the dbt descriptions (folded YAML lines end without their newline)
    for t in MART_TABLES:
        assert tables[t].strip() == marts[t]["description"].strip(), t
        for c, comment in columns[t].items():
            assert comment.strip() == marts[t]["columns"][c]["description"].strip(), f"{t}.{c}"


def test_the_exposures_read_all_fifteen_marts(manifest):
    marts = manifest_marts(manifest)
    ids = {node["unique_id"] for node in marts.values()}
    for name in ("bi_dashboard", "clv_report"):
        exposure = manifest["exposures"][f"exposure.clv_warehouse.{name}"]
        assert set(exposure["depends_on"]["nodes"]) == ids, name


def test_the_polars_mart_tests_are_off_in_the_pipeline_build_and_pass_on_a_warehouse(
    small_shop: PipelineRun, manifest, tmp_path
):
    # The pipeline's dbt build runs before the polars assets: their tests must not be part of it.
    assert not [
        n
        for n in manifest["nodes"].values()
        if n["resource_type"] == "test"
        and any(f"source.clv_warehouse.{POLARS_MARTS_SOURCE}." in d for d in n["depends_on"]["nodes"])
    ]
    warehouse = tmp_path / "warehouse.duckdb"
    # dbt opens its warehouse for writing; other tests read this one
    shutil.copy(small_shop.warehouse, warehouse)
    shutil.copy(marts_path(small_shop.warehouse), marts_path(warehouse))
    env = {**os.environ, "CLV_WAREHOUSE": str(warehouse), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "test",
            "--select",
            f"source:{POLARS_MARTS_SOURCE}",
            "--vars",
            "{test_polars_marts: true}",
            "--project-dir",
            str(DBT_DIR),
            "--profiles-dir",
            str(DBT_DIR),
            "--target-path",
            str(tmp_path / "target"),
            "--log-path",
            str(tmp_path / "logs"),
        ],
        cwd=DBT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    results = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    assert len(results) >= 2 * len(POLARS_MARTS) and all(r["status"] == "pass" for r in results), [
        (r["unique_id"], r["status"]) for r in results if r["status"] != "pass"
    ]
