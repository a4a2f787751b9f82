"""Marketing spend and cart events are validated like orders (issue 18): exact duplicates count once, spend in
another currency than the shop's is rejected, unknown event types are rejected, and rows that no order explains
(spend on a channel no customer came from, events of visitors without an order) are said. Expected values by hand."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest
from pipeline_runner import TEST_HASH_KEY

from pipelines.raw_layer import RAW_TABLES, load_into
from pipelines.sources import files as src

WINDOW = src.Window(
    start=date(2025, 1, 1), end=date(2025, 3, 31), as_of=date(2025, 3, 31), first_partition=date(2025, 1, 1)
)
TODAY = date(2025, 4, 2)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def shop(tmp_path):
    """Orders in PLN from two channels, loaded first (the shop's currency and customers come from them)."""
    write(
        tmp_path / "orders.csv",
        "order_id,customer_id,ordered_at,net_revenue,currency,channel\n"
        "O1,C1,2025-02-01,100,PLN,paid_search\nO2,C2,2025-02-02,80,pln,email\nO3,C1,2025-02-03,60,PLN,paid_search\n",
    )
    con = duckdb.connect()
    load_into(con, RAW_TABLES["orders"], tmp_path, WINDOW, TODAY, "files", hash_key=TEST_HASH_KEY)
    return tmp_path, con


def load(con, directory: Path, table: str):
    return load_into(con, RAW_TABLES[table], directory, WINDOW, TODAY, "files", hash_key=TEST_HASH_KEY)


def test_a_duplicate_spend_row_counts_once_and_other_currencies_are_rejected(shop):
    directory, con = shop
    write(
        directory / "marketing_spend.csv",
        "date,channel,spend,currency\n"
        "2025-02-01,paid_search,150,PLN\n"
        "2025-02-01,paid_search,150,PLN\n"  # the same row exported twice: CAC would double
        "2025-02-01,email,40,EUR\n"  # another currency: not summable with PLN
        "2025-02-02,tiktok,25,PLN\n",
    )  # no customer came from tiktok: kept, and said
    summary = load(con, directory, "marketing_spend")
    assert con.execute("select channel, sum(spend) from raw.marketing_spend group by 1 order by 1").fetchall() == [
        ("paid_search", 150.0),
        ("tiktok", 25.0),
    ]
    reasons = {(r["source_line"], r["kind"]): r["reason"] for r in summary.rejected.iter_rows(named=True)}
    assert reasons == {
        (3, "duplicate"): "exact duplicate of marketing_spend.csv:2",
        (4, "invalid"): "currency 'EUR' is not the shop's currency PLN (convert the spend first)",
    }
    assert summary.notes == ["spend of 25.00 on channel 'tiktok', from which no customer came"]


def test_without_order_currencies_the_spend_must_still_be_in_one_currency(tmp_path):
    result = src.load_marketing_spend(
        [
            write(
                tmp_path / "marketing_spend.csv",
                "date,channel,spend,currency\n"
                "2025-02-01,email,10,EUR\n2025-02-02,email,20,EUR\n2025-02-03,email,5,USD\n",
            )
        ],
        WINDOW,
        today=TODAY,
    )
    assert result.valid["spend"].to_list() == [10.0, 20.0]
    assert result.rejected["reason"].to_list() == [
        "currency 'USD' is not the shop's currency EUR (convert the spend first)"
    ]


def test_unknown_event_types_and_duplicate_events_are_rejected(shop):
    directory, con = shop
    write(
        directory / "cart_events.csv",
        "customer_id,event_at,event_type,cart_value\n"
        "C1,2025-03-01T10:00:00,add_to_cart,30\n"
        "C1,2025-03-01T10:00:00,add_to_cart,30\n"  # exact duplicate
        "C2,2025-03-02T10:00:00,bogus_type,10\n"  # would make C2 a cart abandoner
        "V9,2025-03-02T11:00:00,Checkout_Started,15\n",
    )  # a visitor who never ordered
    summary = load(con, directory, "cart_events")
    assert con.execute("select customer_id, event_type from raw.cart_events order by 1").fetchall() == [
        ("C1", "add_to_cart"),
        ("V9", "checkout_started"),
    ]
    reasons = {r["source_line"]: r["reason"] for r in summary.rejected.iter_rows(named=True)}
    assert reasons == {
        3: "exact duplicate of cart_events.csv:2",
        4: "unknown event_type 'bogus_type' (expected add_to_cart or checkout_started)",
    }
    assert summary.notes == ["1 cart events of visitors with no order (not in any mart)"]
