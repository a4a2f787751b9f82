import datetime

import polars as pl
import pytest

from pipelines.clv.rfm import rfm_from_customer_totals, rfm_summary

D = datetime.date
AS_OF = D(2024, 1, 29)


def _orders() -> pl.LazyFrame:
    rows = [
        # customer 1: two orders on day 1 (one purchase), repeat purchases on
        # 01-08 and on 01-22 (two orders that day), one order after as_of.
        (1, D(2024, 1, 1), 10.0),
        (1, D(2024, 1, 1), 5.0),
        (1, D(2024, 1, 8), 20.0),
        (1, D(2024, 1, 22), 30.0),
        (1, D(2024, 1, 22), 10.0),
        (1, D(2024, 3, 1), 100.0),
        # customer 2: a single purchase.
        (2, D(2024, 1, 15), 7.0),
        # customer 3: buys only after as_of, must not appear.
        (3, D(2024, 2, 1), 50.0),
        # customer 4: a zero-value repeat purchase is still a purchase.
        (4, D(2024, 1, 1), 5.0),
        (4, D(2024, 1, 10), 0.0),
        # customer 5: purchase exactly on as_of counts.
        (5, D(2024, 1, 2), 3.0),
        (5, AS_OF, 9.0),
    ]
    return pl.LazyFrame(
        rows, schema={"customer_id": pl.Int64, "order_date": pl.Date, "revenue": pl.Float64}, orient="row"
    )


def _by_customer(summary: pl.LazyFrame) -> dict:
    return {row["customer_id"]: row for row in summary.collect().iter_rows(named=True)}


def test_rfm_summary_follows_fader_hardie_conventions():
    result = _by_customer(rfm_summary(_orders(), AS_OF))

    assert set(result) == {1, 2, 4, 5}
    first = result[1]
    assert first["frequency"] == 2
    assert first["purchase_days"] == 3
    assert first["recency"] == pytest.approx(21 / 7)
    assert first["T"] == pytest.approx(28 / 7)
    assert first["monetary_value"] == pytest.approx((20.0 + 40.0) / 2)
    assert first["first_purchase_date"] == D(2024, 1, 1)
    assert first["last_purchase_date"] == D(2024, 1, 22)

    single = result[2]
    assert (single["frequency"], single["recency"], single["monetary_value"]) == (0, 0.0, 0.0)
    assert single["T"] == pytest.approx(14 / 7)

    zero_value = result[4]
    assert zero_value["frequency"] == 1
    assert zero_value["monetary_value"] == 0.0
    assert zero_value["recency"] == pytest.approx(9 / 7)

    on_as_of = result[5]
    assert on_as_of["frequency"] == 1
    assert on_as_of["recency"] == pytest.approx(on_as_of["T"])
    assert on_as_of["monetary_value"] == pytest.approx(9.0)


def test_rfm_summary_custom_columns_and_datetimes_merge_same_day():
    orders = pl.LazyFrame(
        {
            "cust": ["a", "a", "a"],
            "ts": [
                datetime.datetime(2024, 1, 1, 9, 0),
                datetime.datetime(2024, 1, 1, 18, 30),
                datetime.datetime(2024, 1, 3, 12, 0),
            ],
            "amount": [1, 2, 4],
        }
    )
    result = rfm_summary(orders, D(2024, 1, 8), customer_col="cust", date_col="ts", value_col="amount").collect()

    assert result.columns[:5] == ["customer_id", "frequency", "recency", "T", "monetary_value"]
    row = result.row(0, named=True)
    assert (row["customer_id"], row["frequency"], row["monetary_value"]) == ("a", 1, 4.0)
    assert row["recency"] == pytest.approx(2 / 7)
    assert row["T"] == pytest.approx(7 / 7)


def test_rfm_from_customer_totals_matches_the_summary_of_the_orders():
    """The per-customer totals of _orders() up to AS_OF, written out by hand (orders after AS_OF dropped; customer 3
    has none), give the same summary as rfm_summary over the orders themselves."""
    totals = pl.LazyFrame(
        [  # customer, first, last, purchase days, revenue, first-day revenue
            (1, D(2024, 1, 1), D(2024, 1, 22), 3, 75.0, 15.0),
            (2, D(2024, 1, 15), D(2024, 1, 15), 1, 7.0, 7.0),
            (4, D(2024, 1, 1), D(2024, 1, 10), 2, 5.0, 5.0),
            (5, D(2024, 1, 2), AS_OF, 2, 12.0, 3.0),
        ],
        schema={
            "customer_id": pl.Int64,
            "first_order_date": pl.Date,
            "last_order_date": pl.Date,
            "purchase_days": pl.Int64,
            "net_revenue": pl.Float64,
            "first_day_revenue": pl.Float64,
        },
        orient="row",
    )
    got = _by_customer(rfm_from_customer_totals(totals, AS_OF))
    assert got[1]["frequency"] == 2 and got[1]["recency"] == pytest.approx(3.0) and got[1]["T"] == pytest.approx(4.0)
    assert got[1]["monetary_value"] == pytest.approx(30.0)  # (20 + 40) / 2
    assert got[2]["frequency"] == 0 and got[2]["monetary_value"] == 0.0
    assert got[4]["monetary_value"] == 0.0  # one zero-value repeat purchase
    assert got == _by_customer(rfm_summary(_orders(), AS_OF))
