"""Changes of any age reach the marts through the daily run (issue 18): a refund booked 40 days after its order, a
cancellation 100 days late and a correction of an order from the first month arrive in a new export the day after
the warehouse was built; the daily run (`clv backfill` of that one day, 7-day look-back) must leave the same rows
as a full rebuild of the same day. Orders an export no longer holds are kept by daily runs (and said so) and
removed by a full reload, which records them in raw.deleted_orders.

The shop is the synthetic generator's, exported as one CSV (orders_1.csv) as of D; the changes are rows of a second
export (orders_2.csv), each a copy of the original order with one field changed, so the right answer is known."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from _ops_support import copy_data_dir
from pipeline_runner import open_warehouse, run_clv
from test_incremental_matches_full import row_differences

from pipelines.sources.synthetic import SyntheticShopConfig, generate_shop

pytestmark = pytest.mark.slow

START, D = date(2025, 1, 1), date(2025, 6, 30)
NEXT = D + timedelta(days=1)
ENV = {"CLV_START_DATE": START.isoformat()}


def _one_order(orders: pl.DataFrame, day: date) -> dict:
    """A completed order without refund dated `day` (or the first such day after it)."""
    candidates = orders.filter(
        (pl.col("ordered_at").dt.date() >= day) & (pl.col("status") == "completed") & (pl.col("refunded_amount") == 0)
    ).sort("ordered_at")
    return candidates.row(0, named=True)


def _as_text(rows: list[dict], orders: pl.DataFrame) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=orders.schema).select(pl.all().cast(pl.String))


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    base = tmp_path_factory.mktemp("late_changes")
    raw = base / "raw"
    raw.mkdir()
    generated = generate_shop(
        SyntheticShopConfig(n_customers=400, start_date=START, end_date=NEXT, seed=7, dirty_rows=0)
    )
    orders = generated.orders.with_columns(refunded_amount=pl.lit(0.0), refunded_at=pl.lit(None, pl.Datetime("us")))
    history = orders.filter(pl.col("ordered_at").dt.date() <= D)
    history.select(pl.all().cast(pl.String)).write_csv(raw / "orders_1.csv")
    generated.marketing_spend.write_parquet(raw / "marketing_spend.parquet")
    data = base / "base" / "data"
    run_clv(data, "run", "--as-of", D.isoformat(), "--source", "files", "--raw-dir", str(raw), **ENV)

    refund = _one_order(history, D - timedelta(days=40))
    cancel = _one_order(history, D - timedelta(days=100))
    correct = _one_order(history, START)
    changed = [
        {
            **refund,
            "refunded_amount": round(refund["net_revenue"] / 2, 2),
            "refunded_at": refund["ordered_at"].replace(year=NEXT.year, month=NEXT.month, day=NEXT.day),
        },
        {**cancel, "status": "cancelled"},
        {**correct, "net_revenue": correct["net_revenue"] + 100.0},
    ]
    new_day = orders.filter(pl.col("ordered_at").dt.date() == NEXT).to_dicts()
    assert new_day, "the generator made no order on the new day"
    bad = {**refund, "order_id": "BAD1", "net_revenue": -5.0}  # an old date, but invalid: recorded, not loaded
    _as_text(changed + new_day + [bad], orders).write_csv(raw / "orders_2.csv")

    daily = copy_data_dir(data, base / "daily" / "data")
    daily_run = run_clv(
        daily,
        "backfill",
        "--start",
        NEXT.isoformat(),
        "--end",
        NEXT.isoformat(),
        "--source",
        "files",
        "--raw-dir",
        str(raw),
        **ENV,
    )
    full = copy_data_dir(data, base / "full" / "data")
    run_clv(full, "run", "--as-of", NEXT.isoformat(), "--source", "files", "--raw-dir", str(raw), **ENV)
    return {
        "raw": raw,
        "daily": daily,
        "full": full,
        "daily_run": daily_run,
        "history": history,
        "refund": refund,
        "cancel": cancel,
        "correct": correct,
    }


def _query(data_dir: Path, sql: str, params: list | None = None):
    con = open_warehouse(data_dir / "warehouse.duckdb")
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def test_the_daily_run_applies_late_refunds_cancellations_and_corrections(shop):
    revenue = dict(
        _query(
            shop["daily"],
            "select order_id, revenue from marts.fct_orders where order_id in (?, ?, ?)",
            [shop["refund"]["order_id"], shop["cancel"]["order_id"], shop["correct"]["order_id"]],
        )
    )
    refund, correct = shop["refund"], shop["correct"]
    assert revenue == {
        refund["order_id"]: pytest.approx(refund["net_revenue"] - round(refund["net_revenue"] / 2, 2)),
        correct["order_id"]: pytest.approx(correct["net_revenue"] + 100.0),
    }  # the cancelled order left the marts
    window_start = _query(shop["daily"], "select window_start from raw.run_context")[0][0]
    assert window_start == correct["ordered_at"].date()  # the marts were rebuilt from the oldest change


def test_the_daily_run_equals_a_full_rebuild_of_that_day(shop):
    assert row_differences(shop["daily"], shop["full"]) == {}
    columns = "* exclude (loaded_at, load_id, source_file, source_sort_key, source_line)"
    assert _query(shop["daily"], f"select {columns} from raw.orders order by all") == _query(
        shop["full"], f"select {columns} from raw.orders order by all"
    )


def test_a_bad_row_of_an_old_date_in_a_new_export_is_recorded(shop):
    rows = _query(
        shop["daily"], "select source_file, kind, reason from raw.rejected_orders where source_file = 'orders_2.csv'"
    )
    assert rows == [("orders_2.csv", "invalid", "negative net_revenue")]


def test_only_the_changed_file_was_read_whole(shop):
    log = Path(
        next(line for line in shop["daily_run"].stdout.splitlines() if line.startswith("Full log: ")).removeprefix(
            "Full log: "
        )
    ).read_text()
    assert "New or changed since the last load, read whole: orders_2.csv; 3 rows dated before the window changed" in log


def test_an_order_missing_from_an_export_is_kept_daily_and_removed_by_a_full_reload(shop, tmp_path):
    gone = _one_order(shop["history"], D - timedelta(days=60))
    data = copy_data_dir(shop["daily"], tmp_path / "data")
    raw = tmp_path / "raw"
    raw.mkdir()
    for path in shop["raw"].iterdir():
        (raw / path.name).write_bytes(path.read_bytes())
    pl.read_csv(raw / "orders_1.csv", infer_schema=False).filter(pl.col("order_id") != gone["order_id"]).write_csv(
        raw / "orders_1.csv"
    )
    daily = run_clv(
        data,
        "backfill",
        "--start",
        NEXT.isoformat(),
        "--end",
        NEXT.isoformat(),
        "--source",
        "files",
        "--raw-dir",
        str(raw),
        **ENV,
    )
    log = Path(
        next(line for line in daily.stdout.splitlines() if line.startswith("Full log: ")).removeprefix("Full log: ")
    ).read_text()
    assert "1 orders are no longer in orders_1.csv; they are kept until a full reload" in log
    assert _query(data, "select count(*) from marts.fct_orders where order_id = ?", [gone["order_id"]])[0][0] == 1
    run_clv(data, "run", "--as-of", NEXT.isoformat(), "--source", "files", "--raw-dir", str(raw), **ENV)
    assert _query(data, "select count(*) from marts.fct_orders where order_id = ?", [gone["order_id"]])[0][0] == 0
    assert _query(data, "select order_id, order_date, source_file from raw.deleted_orders") == [
        (gone["order_id"], gone["ordered_at"].date(), "orders_1.csv")
    ]
