"""Re-running gives identical tables: a re-run partition range (backfill) and a re-run as-of date (`clv run`).

One module-scoped sequence of real runs on a private copy of the small synthetic shop (already run as of D):
  S_run      after `clv run --as-of D`                 (the copy of small_shop)
  S_rerun    after `clv run --as-of D` again
  S_bf1      after `clv backfill --start D-3 --end D-1`
  S_bf2      after the same backfill again
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pipeline_runner
import pytest
from _ops_support import AS_OF, differences, snapshot
from pipeline_runner import TEST_HASH_KEY, open_warehouse

from pipelines import warehouse as wh
from pipelines.raw_layer import RAW_TABLES, load_into
from pipelines.sources import files as src

D = date.fromisoformat(AS_OF)
BACKFILL = ("backfill", "--start", (D - timedelta(days=3)).isoformat(), "--end", (D - timedelta(days=1)).isoformat())


def raw_state(warehouse: Path) -> dict:
    con = open_warehouse(warehouse)
    try:
        return {
            "orders": con.execute(
                "select count(*), count(distinct order_id), round(sum(net_revenue), 4), round(sum(refunded_amount), 4) "
                "from raw.orders"
            ).fetchone(),
            "rejected": con.execute("select kind, count(*) from raw.rejected_orders group by 1 order by 1").fetchall(),
            "spend": con.execute("select count(*), round(sum(spend), 4) from raw.marketing_spend").fetchone(),
            "cart": con.execute("select count(*) from raw.cart_events").fetchone(),
            "model_fit_as_of": con.execute(
                "select as_of_date, count(*) from marts.clv_model_fit group by 1 order by 1"
            ).fetchall(),
        }
    finally:
        con.close()


@pytest.fixture(scope="module")
def states(shop_copy_factory) -> dict:
    run_clv = pipeline_runner.run_clv
    data_dir = shop_copy_factory("idempotency")
    warehouse = data_dir / "warehouse.duckdb"
    out: dict = {"dir": data_dir}

    def take(name: str) -> None:
        out[name] = snapshot(warehouse)
        out[name + "_raw"] = raw_state(warehouse)

    take("run")
    run_clv(data_dir, "run", "--as-of", AS_OF)
    take("rerun")
    out["bf1_run"] = run_clv(data_dir, *BACKFILL)
    take("bf1")
    out["bf2_run"] = run_clv(data_dir, *BACKFILL)
    take("bf2")
    return out


@pytest.mark.slow
def test_snapshot_covers_every_mart(states):
    snap = states["run"]
    for table in (
        "fct_orders",
        "dim_customers",
        "cohort_retention",
        "retention_kpis",
        "customer_segments",
        "customer_clv",
        "clv_model_fit",
        "windowed_ltv",
        "segment_clv",
        "cac_payback",
        "cac_payback_curve",
    ):
        assert snap[table][0] > 0, table
    assert "net_revenue" in snap["fct_orders"][1] and snap["fct_orders"][1]["net_revenue"] > 0


@pytest.mark.slow
def test_backfill_rerun_gives_identical_marts(states):
    assert "partitions 2025-12-28..2025-12-30" in states["bf1_run"].stdout
    assert differences(states["bf1"], states["bf2"]) == []


@pytest.mark.slow
def test_backfill_rerun_gives_identical_raw_orders(states):
    assert states["bf1_raw"] == states["bf2_raw"]


@pytest.mark.slow
def test_raw_orders_have_no_duplicate_order_id_after_backfills(states):
    count, distinct, _, _ = states["bf2_raw"]["orders"]
    assert count == distinct
    assert states["bf2_raw"]["orders"] == states["run_raw"]["orders"]


@pytest.mark.slow
def test_backfill_of_loaded_partitions_changes_no_mart(states):
    """The backfill reloads days that the run already loaded from the same files, as of the same day: nothing
    in the marts may change (the history table clv_model_fit keeps one block for the as-of date)."""
    assert differences(states["rerun"], states["bf1"]) == []


@pytest.mark.slow
def test_rerunning_an_as_of_date_gives_identical_marts(states):
    assert differences(states["run"], states["rerun"]) == []
    assert states["run_raw"] == states["rerun_raw"]


@pytest.mark.slow
def test_model_fit_keeps_one_block_per_as_of_date(states):
    for name in ("run", "rerun", "bf1", "bf2"):
        blocks = states[name + "_raw"]["model_fit_as_of"]
        assert [d for d, _ in blocks] == [D], (name, blocks)
        assert blocks[0][1] == states["run"]["clv_model_fit"][0]


@pytest.mark.slow
def test_snapshot_comparison_detects_a_change(states, tmp_path):
    """The comparison itself can fail: change one value in a copy and it must be reported."""
    copy = tmp_path / "w.duckdb"
    copy.write_bytes((states["dir"] / "warehouse.duckdb").read_bytes())
    wh.marts_path(copy).write_bytes(wh.marts_path(states["dir"] / "warehouse.duckdb").read_bytes())
    con = open_warehouse(copy, read_only=False)
    con.execute(
        "update marts.fct_orders set net_revenue = net_revenue + 0.01 "
        "where order_id = (select min(order_id) from marts.fct_orders)"
    )
    con.execute(
        "delete from marts.cohort_retention where months_since_first_order = 0 and cohort_month = "
        "(select min(cohort_month) from marts.cohort_retention)"
    )
    con.close()
    diffs = differences(states["bf2"], snapshot(copy))
    assert any(d.startswith("fct_orders.net_revenue") for d in diffs)
    assert any(d.startswith("cohort_retention: ") for d in diffs)


# ---------------------------------------------------------------- warehouse level (fast, no pipeline run)
def _csv(path: Path, rows: list[str]) -> Path:
    path.write_text("order_id,customer_id,ordered_at,net_revenue\n" + "\n".join(rows) + "\n")
    return path


def _load_window(con, files: list[Path], start: date, end: date, as_of: date) -> None:
    """What the raw/orders asset does for one run (pipelines/defs/assets/ingest.py: raw_orders)."""
    window = src.Window(start, end, as_of, first_partition=date(2025, 1, 1))
    load_into(
        con,
        RAW_TABLES["orders"],
        files[0].parent,
        window,
        today=date(2025, 4, 1),
        source="files",
        hash_key=TEST_HASH_KEY,
    )


def test_reloading_a_window_twice_does_not_duplicate_rows_or_rejects(tmp_path):
    files = [
        _csv(
            tmp_path / "orders_1.csv",
            ["A,C1,2025-03-01,10", "B,C1,2025-03-05,5", ",C2,2025-03-02,1", "C,C3,garbage,1", "A,C1,2025-03-01,10"],
        )
    ]
    with wh.connect(tmp_path / "w.duckdb") as con:
        wh.ensure_raw_schema(con)
        _load_window(con, files, date(2025, 1, 1), date(2025, 3, 31), date(2025, 3, 31))
        first = (
            con.execute("select order_id, source_line from raw.orders order by 1").fetchall(),
            con.execute("select source_line, kind from raw.rejected_orders order by 1").fetchall(),
        )
        for _ in range(2):
            _load_window(con, files, date(2025, 2, 25), date(2025, 3, 3), date(2025, 3, 31))
        again = (
            con.execute("select order_id, source_line from raw.orders order by 1").fetchall(),
            con.execute("select source_line, kind from raw.rejected_orders order by 1").fetchall(),
        )
    assert first == ([("A", 2), ("B", 3)], [(4, "invalid"), (5, "invalid"), (6, "duplicate")])
    assert again == first


def test_backfill_does_not_resurrect_a_superseded_version(tmp_path):
    old = _csv(tmp_path / "orders_2025_03_01.csv", ["X1,C1,2025-03-01,10", "X2,C2,2025-03-01,20"])
    new = _csv(tmp_path / "orders_2025_03_12.csv", ["X1,C1,2025-03-10,10"])  # the shop corrected X1's date
    with wh.connect(tmp_path / "w.duckdb") as con:
        wh.ensure_raw_schema(con)
        _load_window(con, [old, new], date(2025, 1, 1), date(2025, 3, 31), date(2025, 3, 31))  # `clv run`
        assert con.execute("select order_id, order_date from raw.orders order by 1").fetchall() == [
            ("X1", date(2025, 3, 10)),
            ("X2", date(2025, 3, 1)),
        ]
        # `clv backfill --start 2025-03-01 --end 2025-03-01` (7-day look-back): the newer X1 is outside the window
        _load_window(con, [old, new], date(2025, 2, 22), date(2025, 3, 1), date(2025, 3, 31))
        rows = con.execute("select order_id, order_date, source_file from raw.orders order by 1, 2").fetchall()
    assert rows == [
        ("X1", date(2025, 3, 10), "orders_2025_03_12.csv"),
        ("X2", date(2025, 3, 1), "orders_2025_03_01.csv"),
    ]
