"""The marts live in a DuckDB file of their own, and the published snapshot is a byte copy of it.

- After a run, `published/warehouse.duckdb` has the very bytes of `<warehouse>.marts.duckdb` (no rewrite), holds
  the `marts` schema only, and is in DuckDB 1.1's storage format.
- A warehouse from before this layout (its marts in the warehouse file) has them moved by the next run, and that run
  gives the marts a run on today's layout gives.
- A marts file written in DuckDB 2.0's own format is converted to 1.1's (DuckDB refuses to lower it in place).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pipeline_runner
from _ops_support import AS_OF, differences, snapshot

from pipelines import contract
from pipelines import warehouse as wh
from pipelines.settings import DBT_PROJECT_DIR


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _storage_version(path: Path) -> str:
    con = duckdb.connect()
    try:
        con.execute(f"attach {wh.sql_string(path)} as probe (read_only)")
        return con.execute(
            "select tags['storage_version'] from duckdb_databases() where database_name = 'probe'"
        ).fetchall()[0][0]
    finally:
        con.close()


def test_the_snapshot_is_the_marts_file_byte_for_byte(small_shop):
    marts_file = wh.marts_path(small_shop.warehouse)
    published = small_shop.data_dir / "published" / "warehouse.duckdb"
    assert marts_file == small_shop.data_dir / "warehouse.marts.duckdb"
    assert _sha256(published) == _sha256(marts_file)
    assert _storage_version(published) == "v1.0.0+"  # what DuckDB reports for a file created as v1.1.0
    con = duckdb.connect(str(published), read_only=True)
    try:
        schemas = {
            s
            for (s,) in con.execute(
                "select distinct schema_name from duckdb_tables() where database_name = current_database()"
            ).fetchall()
        }
        tables = {t for (t,) in con.execute("select table_name from duckdb_tables()").fetchall()}
    finally:
        con.close()
    assert schemas == {"marts"}
    assert tables == set(contract.MARTS)


def test_the_warehouse_file_holds_no_marts(small_shop):
    con = duckdb.connect(str(small_shop.warehouse), read_only=True)
    try:
        schemas = {
            s
            for (s,) in con.execute(
                "select schema_name from duckdb_schemas() where database_name = current_database()"
            ).fetchall()
        }
    finally:
        con.close()
    assert "marts" not in schemas
    assert {"raw", "staging", "intermediate"} <= schemas


def _to_the_old_layout(warehouse: Path) -> None:
    """The marts put back into the warehouse file and their own file deleted: a warehouse from before the change."""
    marts_file = wh.marts_path(warehouse)
    con = duckdb.connect(str(warehouse))
    try:
        con.execute(f"attach {wh.sql_string(marts_file)} as old_marts")
        con.execute("create schema marts")
        for (table,) in con.execute(
            "select table_name from duckdb_tables() where database_name = 'old_marts'"
        ).fetchall():
            con.execute(f'create table marts."{table}" as select * from old_marts.marts."{table}"')
        # what a dbt run killed between a swap and its cleanup leaves behind: not a mart, not carried over
        con.execute("create table marts.fct_orders__dbt_backup as select * from marts.fct_orders")
        con.execute("detach old_marts")
    finally:
        con.close()
    marts_file.unlink()


def test_a_warehouse_from_before_has_its_marts_moved_by_the_next_run(small_shop, shop_copy_factory):
    upgraded_dir = shop_copy_factory("marts_upgraded")
    upgraded = upgraded_dir / "warehouse.duckdb"
    _to_the_old_layout(upgraded)
    # Readers before the next run (the report, the UI) still find the marts where they are.
    with wh.connect(upgraded, read_only=True) as con:
        assert con.execute("select count(*) from marts.fct_orders").fetchall()[0][0] > 0

    pipeline_runner.run_clv(upgraded_dir, "run", "--as-of", AS_OF)

    # A re-run of the as-of date gives the marts it gave (tests/ops/test_idempotency.py): those of small_shop.
    assert differences(snapshot(small_shop.warehouse), snapshot(upgraded)) == []
    con = duckdb.connect(str(upgraded), read_only=True)
    try:
        assert not con.execute("select count(*) from duckdb_schemas() where schema_name = 'marts'").fetchall()[0][0]
    finally:
        con.close()
    published = upgraded_dir / "published" / "warehouse.duckdb"
    assert _sha256(published) == _sha256(wh.marts_path(upgraded))
    con = duckdb.connect(str(published), read_only=True)
    try:
        assert {t for (t,) in con.execute("select table_name from duckdb_tables()").fetchall()} == set(contract.MARTS)
    finally:
        con.close()


def test_a_marts_file_in_duckdb_2_format_is_converted(tmp_path):
    warehouse = tmp_path / "shop.duckdb"
    marts_file = wh.marts_path(warehouse)
    assert marts_file.name == "shop.marts.duckdb"
    con = duckdb.connect(str(marts_file))  # DuckDB 2.0's own format: what `duckdb shop.marts.duckdb` would create
    con.execute("create schema marts")
    con.execute("create table marts.customer_clv as select range as customer_id, range * 1.5 as clv from range(1000)")
    con.close()
    assert _storage_version(marts_file) == "v2.0.0+"

    with wh.connect(warehouse) as con:
        assert con.execute("select count(*), sum(clv) from marts.customer_clv").fetchall() == [(1000, 749250.0)]
    assert _storage_version(marts_file) == "v1.0.0+"
    assert not list(tmp_path.glob(".*converting*"))


def test_a_read_only_connection_never_creates_the_marts_file(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    duckdb.connect(str(warehouse)).close()
    with wh.connect(warehouse, read_only=True) as con:
        assert con.execute("select 1").fetchall() == [(1,)]
    assert not wh.marts_path(warehouse).exists()
    with wh.connect(warehouse) as con:
        con.execute("create table marts.t as select 1 as x")
    with wh.connect(warehouse, read_only=True) as con:
        assert con.execute("select x from marts.t").fetchall() == [(1,)]


def test_dbt_attaches_the_marts_file_the_pipeline_attaches():
    """profiles.yml derives the marts file from CLV_WAREHOUSE in Jinja; it must name the file marts_path names."""
    import jinja2
    import yaml

    profile = yaml.safe_load((DBT_PROJECT_DIR / "profiles.yml").read_text())
    attached = {a["alias"]: a["path"] for a in profile["clv_warehouse"]["outputs"]["duckdb"]["attach"]}
    assert set(attached) == {"warehouse", wh.MARTS_CATALOG}
    for warehouse in ["/data/warehouse.duckdb", "/d/o'brien shop.db", "/a.b/shop", "/x/ünïcode.duckdb.duckdb"]:
        rendered = (
            jinja2.Environment()
            .from_string(attached[wh.MARTS_CATALOG])
            .render(env_var=lambda name, default=None, w=warehouse: w if name == "CLV_WAREHOUSE" else default)
        )
        assert rendered == str(wh.marts_path(Path(warehouse)))


def test_a_connection_without_the_marts_file_leaves_an_old_marts_schema_alone(tmp_path):
    """The move needs the marts file attached; a bare connection (a hand-made old warehouse) keeps its marts."""
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    try:
        con.execute("create schema marts; create table marts.fct_orders as select 1 as order_id")
        wh.ensure_raw_schema(con)
        assert con.execute("select order_id from marts.fct_orders").fetchall() == [(1,)]
    finally:
        con.close()
    assert not wh.marts_path(tmp_path / "old.duckdb").exists()
