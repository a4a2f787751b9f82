"""The warnings Dagster shows as checks of raw/orders, on a hand-made table (pipelines/data_checks.py)."""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import pytest

from pipelines import warehouse as wh
from pipelines.data_checks import orders_freshness, orders_per_day, orders_reject_rate, orders_row_count_drop


@pytest.fixture
def con(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    wh.ensure_raw_schema(con)
    # 10 orders a day on 1..7 March, 2 on 8 March; 3 invalid rows and 1 duplicate quarantined
    for day in range(1, 9):
        for n in range(10 if day < 8 else 2):
            con.execute(
                "insert into raw.orders (order_id, customer_id, ordered_at, order_date, net_revenue, discount_amount, "
                "refunded_amount) values (?, 'C', ?, ?, 10, 0, 0)",
                [f"O{day}-{n}", datetime(2025, 3, day, 12, n), date(2025, 3, day)],
            )
    for kind in ("invalid", "invalid", "invalid", "duplicate"):
        con.execute("insert into raw.rejected_orders (source_table, kind) values ('orders', ?)", [kind])
    yield con
    con.close()


def test_freshness_is_the_age_of_the_newest_order(con):
    check = orders_freshness(con, 36, now=datetime(2025, 3, 9, 12, 1))  # newest: 8 March 12:01
    assert (check.passed, check.metadata["age_hours"]) == (True, 24.0)
    assert not orders_freshness(con, 36, now=datetime(2025, 3, 10, 0, 2)).passed  # 36 h 1 min


def test_reject_rate_counts_invalid_rows_only(con):
    check = orders_reject_rate(con, 0.05)
    assert check.metadata["reject_rate"] == round(3 / 75, 6)  # 72 valid, 3 invalid (the duplicate is not bad input)
    assert check.passed is True
    assert orders_reject_rate(con, 0.03).passed is False


def test_row_count_drop_compares_the_newest_day_with_the_seven_before(con):
    check = orders_row_count_drop(con, 0.5)
    assert (check.metadata["rows"], check.metadata["baseline_rows"], check.metadata["drop"]) == (2, 10.0, 0.8)
    assert check.passed is False
    assert orders_row_count_drop(con, 0.9).passed is True


def test_rows_per_day(con):
    assert orders_per_day(con, date(2025, 3, 7), date(2025, 3, 8)) == (72, {date(2025, 3, 7): 10, date(2025, 3, 8): 2})
