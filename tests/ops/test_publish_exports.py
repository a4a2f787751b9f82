"""Parquet exports: fct_orders one file per order month, rewritten only from the run's window start."""

from datetime import date

import duckdb
import polars as pl
import pytest
from pipeline_runner import open_warehouse

from pipelines import warehouse as wh
from pipelines.publish import publish


def _warehouse(path, window_start):
    con = open_warehouse(path, read_only=False)
    wh.ensure_raw_schema(con)
    con.execute(
        "create or replace table marts.fct_orders (order_id varchar, order_date date, revenue double, "
        "order_month date generated always as (date_trunc('month', order_date)))"
    )
    con.execute("""insert into marts.fct_orders (order_id, order_date, revenue) values ('A', '2025-01-05', 10),
                   ('B', '2025-01-20', 20), ('C', '2025-02-03', 30), ('D', '2025-03-01', 40),
                   ('E', '2025-03-30', 50)""")
    con.execute("create or replace table marts.dim_customers as select 'C1' as customer_id, 2 as orders_count")
    wh.set_run_context(con, date(2025, 3, 31), window_start, 0.4)
    return con


def _exported(directory):
    return {p.name: sorted(pl.read_parquet(p)["order_id"].to_list()) for p in sorted(directory.glob("*.parquet"))}


def test_months_before_the_window_keep_their_file_later_months_and_vanished_months_are_rewritten(tmp_path):
    warehouse, published, exports = tmp_path / "w.duckdb", tmp_path / "published", tmp_path / "exports"
    con = _warehouse(warehouse, None)
    con.close()
    (exports).mkdir()
    (exports / "fct_orders.parquet").write_bytes(b"left by an earlier version")
    counts = publish(warehouse, published, exports)
    assert counts == {"dim_customers": 1, "fct_orders": 5}
    assert _exported(exports / "fct_orders") == {
        "2025-01.parquet": ["A", "B"],
        "2025-02.parquet": ["C"],
        "2025-03.parquet": ["D", "E"],
    }
    assert not (exports / "fct_orders.parquet").exists()
    assert pl.read_parquet(exports / "dim_customers.parquet").height == 1

    # A daily run whose window starts in March: January is not touched by the incremental mart. Here it is
    # changed behind the pipeline's back to prove the file is not rewritten; March's new row is exported.
    con = open_warehouse(warehouse, read_only=False)
    con.execute("update marts.fct_orders set revenue = 99 where order_id = 'A'")
    con.execute("insert into marts.fct_orders (order_id, order_date, revenue) values ('F', '2025-03-31', 60)")
    wh.set_run_context(con, date(2025, 3, 31), date(2025, 3, 24), 0.4)
    con.close()
    publish(warehouse, published, exports)
    assert (
        pl.read_parquet(exports / "fct_orders" / "2025-01.parquet").filter(pl.col("order_id") == "A")["revenue"].item()
        == 10
    )
    assert _exported(exports / "fct_orders")["2025-03.parquet"] == ["D", "E", "F"]

    # A backfill to an earlier as-of removes the later orders: the month without rows loses its file.
    con = open_warehouse(warehouse, read_only=False)
    con.execute("delete from marts.fct_orders where order_date >= '2025-03-01'")
    wh.set_run_context(con, date(2025, 2, 28), date(2025, 2, 21), 0.4)
    con.close()
    publish(warehouse, published, exports)
    assert set(_exported(exports / "fct_orders")) == {"2025-01.parquet", "2025-02.parquet"}


def test_a_changed_mart_schema_rewrites_every_month(tmp_path):
    warehouse, published, exports = tmp_path / "w.duckdb", tmp_path / "published", tmp_path / "exports"
    _warehouse(warehouse, None).close()
    publish(warehouse, published, exports)
    con = open_warehouse(warehouse, read_only=False)
    con.execute("alter table marts.fct_orders add column channel varchar default 'email'")
    wh.set_run_context(con, date(2025, 3, 31), date(2025, 3, 24), 0.4)
    con.close()
    publish(warehouse, published, exports)
    for path in (exports / "fct_orders").glob("*.parquet"):
        assert pl.read_parquet(path)["channel"].to_list() == ["email"] * pl.read_parquet(path).height, path.name


def _files(directory):
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_publish_that_fails_changes_nothing_and_its_scratch_is_removed_next_time(tmp_path, monkeypatch):
    from pipelines import publish as publish_module

    warehouse, published, exports = tmp_path / "w.duckdb", tmp_path / "published", tmp_path / "exports"
    _warehouse(warehouse, None).close()
    publish(warehouse, published, exports)
    before = _files(published), _files(exports)
    con = open_warehouse(warehouse, read_only=False)
    con.execute("update marts.fct_orders set revenue = revenue + 1")
    con.execute("update marts.dim_customers set orders_count = 3")
    con.close()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(publish_module, "_write_snapshot", disk_full)  # the last file written: exports are done
    with pytest.raises(OSError):
        publish(warehouse, published, exports)
    assert (_files(published), _files(exports)) == before  # the snapshot and the exports still agree
    # a publish killed outright leaves scratch files: the next one removes them
    (published / ".warehouse.4242.building.duckdb").write_bytes(b"x" * 1000)
    (published / ".warehouse.duckdb.4242.publishing").write_bytes(b"x" * 1000)
    (exports / "fct_orders" / ".2025-01.parquet.4242.publishing").write_bytes(b"x")
    monkeypatch.undo()
    publish(warehouse, published, exports)
    assert sorted(p.name for p in published.iterdir()) == ["warehouse.duckdb"]
    assert not [p for p in exports.rglob(".*")]
    snap = duckdb.connect(str(published / "warehouse.duckdb"), read_only=True)
    try:
        assert snap.execute("select orders_count from marts.dim_customers").fetchone()[0] == 3
        assert {
            r[0] for r in snap.execute("select distinct table_schema from information_schema.tables").fetchall()
        } == {"marts"}
    finally:
        snap.close()


def test_exports_always_belong_to_one_warehouse_and_are_complete(tmp_path):
    """Two warehouses sharing one data directory, or a warehouse pointed at a new one: a daily run (window from
    March) still writes every month of its own marts, never keeps the other warehouse's files."""
    published, exports = tmp_path / "published", tmp_path / "exports"
    first, second = tmp_path / "first.duckdb", tmp_path / "second.duckdb"
    _warehouse(first, None).close()
    publish(first, published, exports)
    con = _warehouse(second, date(2025, 3, 24))  # a daily run's window
    con.execute("update marts.fct_orders set revenue = revenue * 10")
    con.execute("delete from marts.fct_orders where order_id = 'C'")  # February has no orders here
    con.close()
    publish(second, published, exports)
    assert _exported(exports / "fct_orders") == {"2025-01.parquet": ["A", "B"], "2025-03.parquet": ["D", "E"]}
    assert pl.read_parquet(exports / "fct_orders" / "2025-01.parquet")["revenue"].to_list() == [100.0, 200.0]
    # the same warehouse, a new data directory: everything is exported, not only the window's months
    fresh = tmp_path / "fresh_exports"
    publish(second, tmp_path / "fresh_published", fresh)
    assert set(_exported(fresh / "fct_orders")) == {"2025-01.parquet", "2025-03.parquet"}


def test_a_table_left_by_a_killed_dbt_swap_is_neither_exported_nor_published(tmp_path):
    warehouse, published, exports = tmp_path / "w.duckdb", tmp_path / "published", tmp_path / "exports"
    con = _warehouse(warehouse, None)
    # dbt renames the old table to <model>__dbt_backup, commits the swap, then drops it: a kill in between leaves it
    con.execute("create table marts.dim_customers__dbt_backup as select * from marts.dim_customers")
    con.close()
    counts = publish(warehouse, published, exports)
    assert counts == {"dim_customers": 1, "fct_orders": 5}
    assert not list(exports.glob("*dbt_backup*"))
    snapshot = duckdb.connect(str(published / "warehouse.duckdb"), read_only=True)
    try:
        tables = {r[0] for r in snapshot.execute("select table_name from information_schema.tables").fetchall()}
    finally:
        snapshot.close()
    assert tables == {"dim_customers", "fct_orders"}
