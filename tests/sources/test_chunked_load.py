"""A long window loaded in chunks (raw_layer.load_into(chunk_days=7): the staged build-and-swap of
warehouse.replace_window) gives the same raw tables as the same window loaded in one piece."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from pipeline_runner import TEST_HASH_KEY

from pipelines import raw_layer
from pipelines import warehouse as wh
from pipelines.raw_layer import RAW_TABLES, load_into
from pipelines.sources import files as src

TODAY = date(2025, 3, 5)
WINDOW = src.Window(date(2025, 1, 1), date(2025, 2, 28), date(2025, 2, 28), first_partition=date(2025, 1, 1))
SUB = dataclasses.replace(WINDOW, start=date(2025, 1, 10), end=date(2025, 2, 9))
# raw.orders' columns in table order, as `select * exclude (loaded_at, load_id)` returns them
RAW_ORDER_COLUMNS = [
    c.split()[0] for c in wh.RAW_TABLE_COLUMNS["raw.orders"].split(",") if c.split()[0] not in ("loaded_at", "load_id")
]
COLS = ("order_id", "customer_id", "ordered_at", "net_revenue", "status", "email")


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2025, month, day, hour)


# (order_id, customer_id, ordered_at, net_revenue, status, email), in file order (Parquet line = index + 1)
ROWS_A = [
    (
        f"A{i}",
        f"C{i % 5}",
        datetime(2025, 1, 1, 8) + timedelta(days=2 * i, hours=i % 9),
        10.0 + i,
        "completed",
        f"a{i}@x.com",
    )
    for i in range(30)
] + [  # lines 1..30, Jan 1 .. Feb 28
    ("X", "C1", at(1, 3), 50.0, "completed", "x@x.com"),  # 31: old version (chunk 1)
    ("N1", "C2", at(1, 20), -5.0, "completed", None),  # 32: negative net_revenue (chunk 3)
    ("U1", "C3", None, 10.0, "completed", None),  # 33: no ordered_at: read by every chunk
    ("D1", "C4", at(2, 15, 9), 20.0, "completed", "d@x.com"),  # 34
    ("D1", "C4", at(2, 15, 9), 20.0, "completed", "d@x.com"),  # 35: exact duplicate of line 34
    ("E1", "C1", datetime(2024, 12, 20), 7.0, "completed", None),  # 36: before the first partition
]
ROWS_B = [
    (f"B{i}", f"C{i % 3}", at(1, 6) + timedelta(days=5 * i), 30.0 + i, "shipped", None) for i in range(10)
] + [  # lines 1..10, Jan 6 .. Feb 20
    ("X", "C1", at(2, 5), 55.0, "refunded", "x@x.com"),  # 11: newer version (chunk 6)
    ("M1", None, at(2, 10), 12.0, "completed", None),  # 12: missing customer_id (chunk 6)
    ("U2", "C2", None, 3.0, "completed", None),  # 13: no ordered_at
]
EXPECTED_VALID = {f"A{i}" for i in range(30)} | {f"B{i}" for i in range(10)} | {"X", "D1"}
EXPECTED_REJECTS = {
    ("orders_a.parquet", 31): "superseded",
    ("orders_a.parquet", 32): "invalid",
    ("orders_a.parquet", 33): "invalid",
    ("orders_a.parquet", 35): "duplicate",
    ("orders_a.parquet", 36): "invalid",
    ("orders_b.parquet", 12): "invalid",
    ("orders_b.parquet", 13): "invalid",
}


def write_orders(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    schema = {
        "order_id": pl.String,
        "customer_id": pl.String,
        "ordered_at": pl.Datetime("us"),
        "net_revenue": pl.Float64,
        "status": pl.String,
        "email": pl.String,
    }
    for name, rows in (("orders_a.parquet", ROWS_A), ("orders_b.parquet", ROWS_B)):
        pl.DataFrame(rows, schema=schema, orient="row").write_parquet(directory / name)
    return directory


def load(con, directory: Path, window: src.Window = WINDOW, chunk_days: int | None = 7, table=RAW_TABLES["orders"]):
    return load_into(con, table, directory, window, TODAY, "files", chunk_days=chunk_days, hash_key=TEST_HASH_KEY)


def state(con) -> tuple[list, list]:
    return (
        con.execute("select * exclude (loaded_at, load_id) from raw.orders order by all").fetchall(),
        con.execute("select * exclude (rejected_at) from raw.rejected_orders order by all").fetchall(),
    )


def kinds(summary: raw_layer.LoadSummary) -> Counter:
    return Counter(summary.rejected["kind"].to_list())


@pytest.fixture
def raw_dir(tmp_path) -> Path:
    return write_orders(tmp_path / "raw")


def test_chunked_load_matches_one_piece_load(tmp_path, raw_dir, monkeypatch):
    splits = []
    real_split = src.Window.split
    monkeypatch.setattr(src.Window, "split", lambda self, days: splits.append(days) or real_split(self, days))
    results = {}
    for chunk_days in (7, None):
        with wh.connect(tmp_path / f"w_{chunk_days}.duckdb") as con:
            summary = load(con, raw_dir, chunk_days=chunk_days)
            results[chunk_days] = (summary, *state(con))
    assert splits == [7] and len(real_split(WINDOW, 7)) == 9  # the chunked load ran in 9 chunks, the other in one
    (chunked, orders_c, rejects_c), (whole, orders_w, rejects_w) = results[7], results[None]
    # Independent expectations first, so a difference below is not mistaken for the same mistake made twice.
    for summary, orders, rejects in (results[7], results[None]):
        assert sorted(r[0] for r in orders) == sorted(EXPECTED_VALID)
        assert {(r[1], r[2]): r[3] for r in rejects} == EXPECTED_REJECTS
        assert len(rejects) == len(EXPECTED_REJECTS)  # the undated rows, read by every chunk, are rejected once
        x = [r for r in orders if r[0] == "X"]
        source_file = RAW_ORDER_COLUMNS.index("source_file")  # position in the table (select *)
        assert [(r[3], r[4], r[source_file]) for r in x] == [(date(2025, 2, 5), 55.0, "orders_b.parquet")]
        old_x = next(r for r in rejects if (r[1], r[2]) == ("orders_a.parquet", 31))
        assert "orders_b.parquet" in old_x[4] and old_x[6] == date(2025, 1, 3)
        assert summary.rows_loaded == len(EXPECTED_VALID)
        assert kinds(summary) == Counter(EXPECTED_REJECTS.values())
    assert orders_c == orders_w
    assert [r[:5] + r[6:] for r in rejects_c] == [r[:5] + r[6:] for r in rejects_w]  # all but the record text
    assert rejects_c == rejects_w
    assert chunked.rows_loaded == whole.rows_loaded
    assert kinds(chunked) == kinds(whole)


def test_staged_swap_keeps_constraints_and_leaves_no_loading_table(tmp_path, raw_dir):
    with wh.connect(tmp_path / "w.duckdb") as con:
        load(con, raw_dir)
        nullable = dict(
            con.execute(
                "select column_name, is_nullable from information_schema.columns "
                "where table_schema = 'raw' and table_name = 'orders'"
            ).fetchall()
        )
        tables = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'raw'"
            ).fetchall()
        }
    for column in ("order_id", "customer_id", "ordered_at", "order_date", "net_revenue"):
        assert nullable[column] == "NO", column
    assert nullable["status"] == "YES"
    assert "orders" in tables and "orders__loading" not in tables


def test_chunked_reload_of_a_sub_window_keeps_rows_outside_it(tmp_path, raw_dir):
    with wh.connect(tmp_path / "w.duckdb") as con:
        load(con, raw_dir, chunk_days=None)
        before = state(con)
        outside = [r for r in before[0] if not SUB.start <= r[3] <= SUB.end]
        assert len(outside) > 10 and len(outside) < len(before[0])
        load(con, raw_dir, window=SUB)
        once = state(con)
        load(con, raw_dir, window=SUB)
        twice = state(con)
    assert [r for r in once[0] if not SUB.start <= r[3] <= SUB.end] == outside
    assert sorted(r[0] for r in once[0]) == sorted(EXPECTED_VALID)  # nothing lost, nothing duplicated
    assert once == before  # same files: the reload changes nothing (old X stays superseded, once)
    assert twice == once


def test_crash_during_a_staged_load_leaves_the_raw_tables_as_they_were(tmp_path, raw_dir):
    calls = []

    def failing_loader(files, window, today=None, **options):
        calls.append(window)
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        return src.load_orders(files, window, today=today, **options)

    broken = dataclasses.replace(RAW_TABLES["orders"], loader=failing_loader)
    with wh.connect(tmp_path / "w.duckdb") as con:
        load(con, raw_dir, chunk_days=None)
        con.execute("delete from raw.orders where order_id in ('A0', 'B3')")  # so a completed reload would show
        before = state(con)
        with pytest.raises(RuntimeError, match="disk on fire"):
            load(con, raw_dir, table=broken)
        assert len(calls) == 3
        assert state(con) == before
        summary = load(con, raw_dir)
        after = state(con)
    assert summary.rows_loaded == len(EXPECTED_VALID)
    assert sorted(r[0] for r in after[0]) == sorted(EXPECTED_VALID)
    assert {(r[1], r[2]): r[3] for r in after[1]} == EXPECTED_REJECTS


def test_csv_over_the_reread_limit_is_loaded_in_one_piece(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "orders_1.csv").write_text(
        "order_id,customer_id,ordered_at,net_revenue\n"
        + "\n".join(
            ["K1,C1,2025-01-02,10", "K2,C2,2025-02-20,20", "K3,C3,,5", "K4,C1,2025-01-25,-1", "K1,C1,2025-02-25,11"]
        )
        + "\n"
    )
    staged_args = []
    real_replace = wh.replace_window
    monkeypatch.setattr(wh, "replace_window", lambda *a, **k: staged_args.append(k["staged"]) or real_replace(*a, **k))
    monkeypatch.setattr(raw_layer, "CSV_REREAD_LIMIT_BYTES", 10)
    with wh.connect(tmp_path / "w.duckdb") as con:
        summary = load(con, raw)
        orders = con.execute("select order_id, order_date, source_line from raw.orders order by 1").fetchall()
        rejects = con.execute("select source_line, kind from raw.rejected_orders order by 1").fetchall()
    assert staged_args == [False]
    assert orders == [("K1", date(2025, 2, 25), 6), ("K2", date(2025, 2, 20), 3)]
    assert rejects == [(2, "superseded"), (4, "invalid"), (5, "invalid")]
    assert summary.rows_loaded == 2 and kinds(summary) == Counter({"invalid": 2, "superseded": 1})
    monkeypatch.setattr(raw_layer, "CSV_REREAD_LIMIT_BYTES", 10**6)  # under the limit: chunked, same result
    with wh.connect(tmp_path / "w2.duckdb") as con:
        load(con, raw)
        assert con.execute("select order_id, order_date, source_line from raw.orders order by 1").fetchall() == orders
        assert con.execute("select source_line, kind from raw.rejected_orders order by 1").fetchall() == rejects
    assert staged_args == [False, True]
