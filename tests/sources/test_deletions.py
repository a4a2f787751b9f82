"""Orders a load no longer finds in any file are removed and recorded in raw.deleted_orders (issue 18), both when
a window is replaced in place (a daily run) and when the whole history is rebuilt beside the live table."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest
from pipeline_runner import TEST_HASH_KEY

from pipelines.raw_layer import RAW_TABLES, load_into
from pipelines.sources import files as src

FULL = src.Window(
    start=date(2025, 1, 1), end=date(2025, 3, 31), as_of=date(2025, 3, 31), first_partition=date(2025, 1, 1)
)
DAY = src.Window(
    start=date(2025, 2, 1), end=date(2025, 2, 8), as_of=date(2025, 3, 31), first_partition=date(2025, 1, 1)
)
TODAY = date(2025, 4, 2)


def _write(directory, order_ids):
    rows = {"A": "2025-01-10", "B": "2025-02-03", "C": "2025-02-05", "D": "2025-03-01"}
    (directory / "orders.csv").write_text(
        "order_id,customer_id,ordered_at,net_revenue\n" + "".join(f"{o},C1,{rows[o]},10\n" for o in order_ids)
    )


@pytest.mark.parametrize(
    "window, chunks, gone", [(DAY, None, "B"), (FULL, 7, "A")], ids=["daily window in place", "full history staged"]
)
def test_an_order_no_file_holds_is_removed_and_recorded(tmp_path, window, chunks, gone):
    con = duckdb.connect()
    _write(tmp_path, "ABCD")
    load_into(con, RAW_TABLES["orders"], tmp_path, FULL, TODAY, "files", hash_key=TEST_HASH_KEY)
    _write(tmp_path, [o for o in "ABCD" if o != gone])
    summary = load_into(
        con, RAW_TABLES["orders"], tmp_path, window, TODAY, "files", chunk_days=chunks, hash_key=TEST_HASH_KEY
    )
    assert summary.deleted == 1
    assert sorted(r[0] for r in con.execute("select order_id from raw.orders").fetchall()) == sorted(
        set("ABCD") - {gone}
    )
    assert con.execute("select order_id, source_file, source_line from raw.deleted_orders").fetchall() == [
        (gone, "orders.csv", "ABCD".index(gone) + 2)
    ]


def test_a_large_changed_export_makes_the_daily_load_a_full_reload(tmp_path, monkeypatch):
    """Comparing a large changed file row by row would cost more than a full reload (10 M orders: 100 s, 6.2 GB):
    above CHANGE_DIFF_LIMIT_BYTES the daily load reloads everything, and the marts rebuild from the start."""
    from pipelines import raw_layer

    con = duckdb.connect()
    _write(tmp_path, "ABCD")
    load_into(con, RAW_TABLES["orders"], tmp_path, FULL, TODAY, "files", hash_key=TEST_HASH_KEY)
    _write(tmp_path, "BCD")  # A (January, outside the daily window) is gone from the export
    monkeypatch.setattr(raw_layer, "CHANGE_DIFF_LIMIT_BYTES", 0)
    summary = load_into(con, RAW_TABLES["orders"], tmp_path, DAY, TODAY, "files", hash_key=TEST_HASH_KEY, run_id="r2")
    assert summary.changed_from == FULL.first_partition and summary.deleted == 1
    assert con.execute("select window_start, changed_from from raw.load_log where run_id = 'r2'").fetchall() == [
        (FULL.first_partition, FULL.first_partition)
    ]
    assert sorted(r[0] for r in con.execute("select order_id from raw.orders").fetchall()) == ["B", "C", "D"]


@pytest.mark.parametrize("window", [DAY, FULL], ids=["daily run (change before the window)", "window reload"])
def test_an_order_changed_in_place_keeps_its_new_version(tmp_path, window):
    """The same file, re-exported with order A refunded on the same line: the old version goes, the new one stays
    (both have the same file and line: a version is not identified by where it came from)."""
    con = duckdb.connect()
    header = "order_id,customer_id,ordered_at,net_revenue,refunded_amount,refunded_at\n"
    (tmp_path / "orders.csv").write_text(header + "A,C1,2025-01-10,10,0,\nB,C1,2025-02-03,10,0,\n")
    load_into(con, RAW_TABLES["orders"], tmp_path, FULL, TODAY, "files", hash_key=TEST_HASH_KEY)
    (tmp_path / "orders.csv").write_text(header + "A,C1,2025-01-10,10,4,2025-02-02\nB,C1,2025-02-03,10,0,\n")
    load_into(con, RAW_TABLES["orders"], tmp_path, window, TODAY, "files", hash_key=TEST_HASH_KEY)
    assert con.execute("select order_id, refunded_amount from raw.orders order by 1").fetchall() == [
        ("A", 4.0),
        ("B", 0.0),
    ]
