"""A shop selling in several currencies: orders are converted to one reporting currency with the shop's own
fx_rates file (the latest rate on or before the order date), an order with no usable rate is quarantined, and
nothing is summed across currencies silently. Expected amounts are worked out by hand below."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest
from pipeline_runner import TEST_HASH_KEY

from pipelines.raw_layer import RAW_TABLES, load_into
from pipelines.sources import files as src

WINDOW = src.Window(
    start=date(2025, 1, 1), end=date(2025, 3, 31), as_of=date(2025, 3, 31), first_partition=date(2025, 1, 1)
)
TODAY = date(2025, 4, 2)
ORDERS = """order_id,customer_id,ordered_at,net_revenue,currency,discount_amount,refunded_amount,refunded_at,cost
E1,C1,2025-01-10,100.00,EUR,10,0,,40
E2,C2,2025-02-10,50.00,eur,0,0,,
E3,C3,2025-02-11,80.00,EUR,0,0,,
P1,C1,2025-01-20,400.00,PLN,40,100,2025-01-25,200
P2,C2,2025-03-05,99.99,PLN,0,0,,
P3,C4,2024-12-31T23:00:00,10.00,PLN,0,0,,
U1,C5,2025-02-01,20.00,USD,0,0,,
E4,C4,2025-03-10,30.00,EUR,0,0,,
"""
# 1 PLN in EUR: 0.23 from 2025-01-01, 0.24 from 2025-03-01 (P2 on 03-05 takes 0.24); no USD rate at all.
RATES = "date,currency,rate\n2025-01-01,PLN,0.23\n2025-03-01,PLN,0.24\n2024-06-01,GBP,1.18\n"


def _load(tmp_path, orders=ORDERS, rates=RATES, reporting=None):
    (tmp_path / "orders.csv").write_text(orders)
    if rates is not None:
        (tmp_path / "fx_rates.csv").write_text(rates)
    con = duckdb.connect()
    summary = load_into(
        con,
        RAW_TABLES["orders"],
        tmp_path,
        WINDOW,
        TODAY,
        "files",
        hash_key=TEST_HASH_KEY,
        reporting_currency=reporting,
    )
    return con, summary


def _orders(con):
    return {
        r[0]: r[1:]
        for r in con.execute(
            "select order_id, net_revenue, discount_amount, refunded_amount, cost, currency, fx_rate "
            "from raw.orders order by order_id"
        ).fetchall()
    }


def test_orders_in_other_currencies_are_converted_with_the_latest_rate(tmp_path):
    con, summary = _load(tmp_path)  # reporting in EUR: the currency most orders are in (4 EUR, 3 PLN, 1 USD)
    orders = _orders(con)
    assert orders["E1"] == (100.0, 10.0, 0.0, 40.0, "EUR", None)
    assert orders["E2"][4:] == ("EUR", None)  # upper-cased, not converted
    # P1: 400 × 0.23 = 92.00; discount 40 × 0.23 = 9.20; refund 100 × 0.23 = 23.00; cost 200 × 0.23 = 46.00
    assert orders["P1"] == (92.0, 9.2, 23.0, 46.0, "PLN", 0.23)
    # P2: 99.99 × 0.24 = 23.9976 -> 24.00 (to the cent)
    assert orders["P2"] == (24.0, 0.0, 0.0, None, "PLN", 0.24)
    reasons = dict(zip(summary.rejected["source_line"], summary.rejected["reason"]))
    # P3 is dated 2024-12-31, before WINDOW's first partition: rejected for that, not for its rate
    assert "before the first partition" in reasons[7]
    assert reasons[8] == (
        "no exchange rate for USD on or before 2025-02-01 in fx_rates* files (reporting currency "
        "EUR): add the rate, or set CLV_REPORTING_CURRENCY"
    )
    assert "U1" not in orders
    # the marts' one currency, as the CLI summary and the report state it
    assert con.execute("select currency from raw.reporting_currency").fetchall() == [("EUR",)]


def test_a_configured_reporting_currency_converts_the_others(tmp_path):
    rates = "date,currency,rate\n2025-01-01,EUR,4.30\n2025-01-01,USD,4.00\n"
    con, summary = _load(tmp_path, rates=rates, reporting="PLN")
    orders = _orders(con)
    assert orders["E1"] == (430.0, 43.0, 0.0, 172.0, "EUR", 4.30)  # 100 × 4.30, 10 × 4.30, 40 × 4.30
    assert orders["P1"] == (400.0, 40.0, 100.0, 200.0, "PLN", None)
    assert orders["U1"][0] == 80.0 and orders["U1"][5] == 4.0
    assert con.execute("select currency from raw.reporting_currency").fetchall() == [("PLN",)]


def test_without_rates_a_minority_currency_is_quarantined_not_summed(tmp_path):
    orders = (
        "order_id,customer_id,ordered_at,net_revenue,currency\n"
        + "".join(f"E{i},C{i},2025-02-0{i},10,EUR\n" for i in range(1, 10))
        + "P1,C1,2025-02-03,400,PLN\n"
    )
    con, summary = _load(tmp_path, orders=orders, rates=None)
    assert sorted(_orders(con)) == [f"E{i}" for i in range(1, 10)]
    assert summary.rejected["reason"].to_list() == [
        "no exchange rate for PLN on or before 2025-02-03 in fx_rates* files (reporting currency EUR): add the "
        "rate, or set CLV_REPORTING_CURRENCY"
    ]


def test_a_bad_rate_stops_the_load_with_file_and_line(tmp_path):
    with pytest.raises(src.SourceFileError, match=r"fx_rates.csv: line 3: '2025-02-01,PLN,-1' is not a rate"):
        _load(tmp_path, rates="date,currency,rate\n2025-01-01,PLN,0.23\n2025-02-01,PLN,-1\n")


def test_the_rates_file_is_read_not_reported_as_unloaded(tmp_path):
    (tmp_path / "fx_rates_2025.csv").write_text(RATES)
    assert src.unloaded_files(tmp_path) == []
