"""The incremental dbt models (fct_orders, int_customer_totals, int_customer_months) leave, after a daily run, the
same rows as a full rebuild as of the same day — and the same after a run that moves the as-of date back.

One module-scoped sequence of real runs on private copies of the small synthetic shop (a full run as of D):
  daily      the copy, then `clv backfill --start D+1 --end D+1`   (incremental: window D-6..D+1)
  full       another copy, then `clv run --as-of D+1`               (full history, --full-refresh)
  rollback   a copy of `daily`, then `clv backfill --start D --end D --as-of D`: orders of D+1 leave the marts;
             compared with the small shop itself (a full run as of D)
Tables are compared row by row: every row must have a partner with the same non-double columns and doubles equal
to 1e-9 (summing in another order moves the last bits).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pipeline_runner
import pytest
from _ops_support import AS_OF, copy_data_dir
from pipeline_runner import open_warehouse

from pipelines import warehouse as wh
from pipelines.contract import DBT_MARTS

D = date.fromisoformat(AS_OF)
NEXT = (D + timedelta(days=1)).isoformat()
TABLES = [("marts", t) for t in DBT_MARTS] + [
    ("intermediate", "int_customer_totals"),
    ("intermediate", "int_customer_months"),
]


@pytest.fixture(scope="module")
def runs(shop_copy_factory, small_shop, tmp_path_factory) -> dict[str, Path]:
    daily = shop_copy_factory("daily")
    pipeline_runner.run_clv(daily, "backfill", "--start", NEXT, "--end", NEXT)
    full = shop_copy_factory("full")
    pipeline_runner.run_clv(full, "run", "--as-of", NEXT)
    rollback = copy_data_dir(daily, tmp_path_factory.mktemp("rollback") / "data")
    pipeline_runner.run_clv(rollback, "backfill", "--start", AS_OF, "--end", AS_OF, "--as-of", AS_OF)
    return {"daily": daily, "full": full, "rollback": rollback, "shop": small_shop.data_dir}


def _catalog(side: str, schema: str) -> str:
    """The attached file of one side (l or r) holding `schema`: the marts have a file of their own."""
    return f"{side}m" if schema == "marts" else side


def _columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> tuple[list[str], list[str]]:
    """(key columns: everything but doubles, double columns) of the left side's schema.table."""
    columns = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_catalog = ? and table_schema = ? and table_name = ? order by ordinal_position",
        [_catalog("l", schema), schema, table],
    ).fetchall()
    assert columns, f"{schema}.{table} does not exist"
    return [f'"{c}"' for c, t in columns if t != "DOUBLE"], [f'"{c}"' for c, t in columns if t == "DOUBLE"]


def row_differences(left: Path, right: Path) -> dict[str, tuple[int, int, int]]:
    """{table: (rows, rows only in left, rows only in right)} for every table that differs. Rows are matched on
    their non-double columns (every mart has its grain among them); doubles must agree to 1e-9 (relative), as
    summing in another order moves the last bits."""
    con = duckdb.connect()
    try:
        for side, data_dir in (("l", left), ("r", right)):
            con.execute(f"attach {wh.sql_string(data_dir / 'warehouse.duckdb')} as {side} (read_only)")
            marts = wh.marts_path(data_dir / "warehouse.duckdb")
            con.execute(f"attach {wh.sql_string(marts)} as {_catalog(side, 'marts')} (read_only)")
        found = {}
        for schema, table in TABLES:
            keys, doubles = _columns(con, schema, table)
            close = " and ".join(
                [f"l.{k} is not distinct from r.{k}" for k in keys]
                + [
                    f"(l.{d} is not distinct from r.{d} "
                    f"or abs(l.{d} - r.{d}) <= 1e-9 * greatest(1, abs(l.{d}), abs(r.{d})))"
                    for d in doubles
                ]
            )
            rows = con.execute(f"select count(*) from {_catalog('l', schema)}.{schema}.{table}").fetchall()[0][0]
            # the condition is symmetric in l and r: the same text matches either way round
            only = [
                con.execute(
                    f"select count(*) from {_catalog(a, schema)}.{schema}.{table} as {a} "
                    f"anti join {_catalog(b, schema)}.{schema}.{table} as {b} on {close}"
                ).fetchall()[0][0]
                for a, b in (("l", "r"), ("r", "l"))
            ]
            if any(only):
                found[f"{schema}.{table}"] = (rows, *only)
        return found
    finally:
        con.close()


@pytest.mark.slow
def test_daily_run_leaves_the_same_rows_as_a_full_rebuild(runs):
    assert row_differences(runs["daily"], runs["full"]) == {}


@pytest.mark.slow
def test_the_daily_run_was_incremental_and_added_the_new_day(runs):
    con = open_warehouse(runs["daily"] / "warehouse.duckdb")
    try:
        window_start, as_of = con.execute("select window_start, as_of from raw.run_context").fetchall()[0]
        new_day_orders = con.execute("select count(*) from marts.fct_orders where order_date = ?", [NEXT]).fetchall()[
            0
        ][0]
    finally:
        con.close()
    assert (window_start, as_of) == (D + timedelta(days=1) - timedelta(days=7), D + timedelta(days=1))
    assert new_day_orders > 0


@pytest.mark.slow
def test_moving_the_as_of_date_back_matches_the_full_run_of_that_day(runs):
    assert row_differences(runs["rollback"], runs["shop"]) == {}


@pytest.mark.slow
def test_the_comparison_sees_a_changed_row(runs, tmp_path):
    changed = copy_data_dir(runs["full"], tmp_path / "changed")
    con = open_warehouse(changed / "warehouse.duckdb", read_only=False)
    try:
        con.execute(
            "update intermediate.int_customer_totals set net_revenue = net_revenue + 1 "
            "where customer_id = (select min(customer_id) from intermediate.int_customer_totals)"
        )
    finally:
        con.close()
    assert row_differences(changed, runs["full"]) == {"intermediate.int_customer_totals": (_customers(changed), 1, 1)}


def _customers(data_dir: Path) -> int:
    con = open_warehouse(data_dir / "warehouse.duckdb")
    try:
        return con.execute("select count(*) from intermediate.int_customer_totals").fetchall()[0][0]
    finally:
        con.close()


@pytest.mark.slow
def test_window_uniqueness_test_catches_an_old_order_rebuilt_in_the_window(runs, tmp_path):
    """fct_orders' uniqueness test checks only the rows a run rebuilt (against the whole table): an order that
    already exists before the window and is rebuilt inside it (re-dated) must fail it."""
    import subprocess
    import sys

    changed = copy_data_dir(runs["full"], tmp_path / "duplicate")
    warehouse = changed / "warehouse.duckdb"

    def window_test() -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                str(Path(sys.executable).parent / "dbt"),
                "test",
                "--select",
                "test_name:unique_since_window_start",
                "--target-path",
                str(tmp_path / "target"),
                "--quiet",
            ],
            cwd=pipeline_runner.PROJECT_ROOT / "dbt_project",
            capture_output=True,
            text=True,
            env={**pipeline_runner.pipeline_env(changed), "CLV_WAREHOUSE": str(warehouse)},
        )

    con = open_warehouse(warehouse, read_only=False)
    try:
        con.execute("update raw.run_context set window_start = as_of - 6")
        con.execute(
            "insert into marts.fct_orders select * replace ((select as_of from raw.run_context) as order_date) "
            "from marts.fct_orders where order_date < (select window_start from raw.run_context) limit 1"
        )
    finally:
        con.close()
    failed = window_test()
    assert failed.returncode != 0 and "FAIL 1" in failed.stdout, failed.stdout[-2000:]
    con = open_warehouse(warehouse, read_only=False)
    try:
        con.execute(
            "delete from marts.fct_orders where order_date = (select as_of from raw.run_context) and order_id in "
            "(select order_id from marts.fct_orders where order_date < (select window_start from raw.run_context))"
        )
    finally:
        con.close()
    passed = window_test()
    assert passed.returncode == 0, passed.stdout[-2000:]
