"""Tests of the synthetic online-shop generator (small configs, fast)."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from pipelines import contract
from pipelines.sources import _synthetic_params as P
from pipelines.sources import synthetic
from pipelines.sources._synthetic_schema import ORDER_COLUMNS
from pipelines.sources.synthetic import SyntheticShop, SyntheticShopConfig, generate_shop

N_CUSTOMERS = 2_000
CONFIG = SyntheticShopConfig(n_customers=N_CUSTOMERS, seed=7)
WINDOW_START = datetime(2024, 1, 1)
WINDOW_END = datetime(2026, 12, 31, 23, 59, 59)

ORDERS_SCHEMA = {
    "order_id": pl.String,
    "customer_id": pl.String,
    "ordered_at": pl.Datetime("us"),
    "net_revenue": pl.Float64,
    "currency": pl.String,
    "discount_amount": pl.Float64,
    "discount_code": pl.String,
    "refunded_amount": pl.Float64,
    "refunded_at": pl.Datetime("us"),
    "cost": pl.Float64,
    "channel": pl.String,
    "status": pl.String,
    "product_category": pl.String,
    "email": pl.String,
}
CHANNELS = {"paid_search", "paid_social", "email", "organic", "referral", "affiliate"}
CATEGORIES = {"apparel", "shoes", "accessories", "beauty", "home", "electronics", "sports", "kids"}
CAC = {"paid_search": 35.0, "paid_social": 45.0, "affiliate": 25.0}


@pytest.fixture(scope="module")
def shop() -> SyntheticShop:
    return generate_shop(CONFIG)


@pytest.fixture(scope="module")
def big_shop() -> SyntheticShop:
    """Enough customers for between-segment comparisons to be statistically stable."""
    return generate_shop(SyntheticShopConfig(n_customers=20_000, seed=11, dirty_rows=0))


def _first_orders(orders: pl.DataFrame) -> pl.DataFrame:
    return orders.sort("ordered_at", "order_id").group_by("customer_id", maintain_order=True).first()


# --------------------------------------------------------------------------- determinism


def test_same_config_gives_identical_frames(shop: SyntheticShop) -> None:
    again = generate_shop(CONFIG)
    assert again.orders.equals(shop.orders)
    assert again.marketing_spend.equals(shop.marketing_spend)
    assert again.cart_events.equals(shop.cart_events)
    assert again.dirty_orders.equals(shop.dirty_orders)


def test_different_seed_gives_different_frames(shop: SyntheticShop) -> None:
    other = generate_shop(SyntheticShopConfig(n_customers=N_CUSTOMERS, seed=8))
    assert not other.orders.equals(shop.orders)
    assert not other.marketing_spend.equals(shop.marketing_spend)
    assert not other.cart_events.equals(shop.cart_events)


# --------------------------------------------------------------------------- schema & integrity


def test_schemas(shop: SyntheticShop) -> None:
    assert dict(shop.orders.schema) == ORDERS_SCHEMA
    assert list(shop.orders.columns) == list(ORDERS_SCHEMA)
    assert dict(shop.marketing_spend.schema) == {
        "date": pl.Date,
        "channel": pl.String,
        "spend": pl.Float64,
    }
    assert dict(shop.cart_events.schema) == {
        "customer_id": pl.String,
        "event_at": pl.Datetime("us"),
        "event_type": pl.String,
        "cart_value": pl.Float64,
    }
    assert list(shop.dirty_orders.columns) == list(ORDERS_SCHEMA)
    assert all(dt == pl.String for dt in shop.dirty_orders.dtypes)


def test_schemas_are_exported_and_match_the_contract(shop: SyntheticShop) -> None:
    assert synthetic.ORDERS_SCHEMA == ORDERS_SCHEMA
    assert ORDER_COLUMNS == tuple(c for c in contract.ORDERS.names(input=True) if c != "updated_at")
    assert dict(shop.marketing_spend.schema) == synthetic.MARKETING_SPEND_SCHEMA
    assert dict(shop.cart_events.schema) == synthetic.CART_EVENTS_SCHEMA


def test_ids_and_customers(shop: SyntheticShop) -> None:
    o = shop.orders
    assert o["order_id"].null_count() == 0
    assert o["order_id"].n_unique() == o.height
    assert o["order_id"].str.contains(r"^O\d{8}$").all()
    assert o["customer_id"].str.contains(r"^C\d{7}$").all()
    # every order belongs to one of the generated customers, and every customer ordered
    expected = {f"C{i:07d}" for i in range(1, N_CUSTOMERS + 1)}
    assert set(o["customer_id"].unique().to_list()) == expected
    # one stable email per customer, derived from the id
    emails = o.group_by("customer_id").agg(pl.col("email").n_unique().alias("n"), pl.col("email").first())
    assert emails["n"].max() == 1
    assert (emails["email"] == emails["customer_id"].str.to_lowercase() + "@example.com").all()


def test_values_and_dates(shop: SyntheticShop) -> None:
    o = shop.orders
    assert o.select(pl.all().exclude("discount_code", "refunded_at").null_count()).sum_horizontal().item() == 0
    assert o["ordered_at"].min() >= WINDOW_START
    assert o["ordered_at"].max() <= WINDOW_END
    assert (o["currency"] == "EUR").all()
    assert set(o["status"].unique()) <= {"completed", "cancelled", "test"}
    assert set(o["channel"].unique()) == CHANNELS
    assert set(o["product_category"].unique()) == CATEGORIES
    assert set(o["discount_code"].drop_nulls().unique()) == {"WELCOME10", "SUMMER20", "BF30", "VIP15"}
    for col in ("net_revenue", "discount_amount", "refunded_amount", "cost"):
        assert (o[col] >= 0).all(), col
        x = o[col].to_numpy()
        # exactly the double nearest to a 2-decimal amount (round-trips through "%.2f")
        assert np.array_equal(x, np.rint(x * 100.0) / 100.0), f"{col} not in cents"
    assert (o["refunded_amount"] <= o["net_revenue"]).all()
    # discount codes and amounts go together
    assert ((o["discount_amount"] > 0) == o["discount_code"].is_not_null()).all()
    refunded = o.filter(pl.col("refunded_amount") > 0)
    assert refunded.height > 0
    assert (o["refunded_at"].is_not_null() == (o["refunded_amount"] > 0)).all()
    gap = refunded["refunded_at"] - refunded["ordered_at"]
    assert (gap >= timedelta(days=1)).all() and (gap <= timedelta(days=30)).all()
    assert (refunded["refunded_at"] <= WINDOW_END).all()
    assert (refunded["status"] == "completed").all()
    # both full and partial refunds
    assert (refunded["refunded_amount"] == refunded["net_revenue"]).any()
    assert (refunded["refunded_amount"] < refunded["net_revenue"]).any()


def test_first_orders_are_smaller_and_use_welcome_codes(shop: SyntheticShop) -> None:
    o = shop.orders.with_columns(
        (pl.col("ordered_at") == pl.col("ordered_at").min().over("customer_id")).alias("is_first")
    )
    welcome = o.filter(pl.col("discount_code") == "WELCOME10")
    assert welcome.height > 0 and welcome["is_first"].all()
    share_first = o.filter("is_first")["discount_code"].is_not_null().mean()
    share_repeat = o.filter(~pl.col("is_first"))["discount_code"].is_not_null().mean()
    assert share_first > share_repeat
    gross = pl.col("net_revenue") + pl.col("discount_amount")
    paid = o.filter(pl.col("net_revenue") > 0)
    first_value = paid.filter("is_first").select(gross.mean()).item()
    repeat_value = paid.filter(~pl.col("is_first")).select(gross.mean()).item()
    assert first_value < 0.95 * repeat_value
    # zero-value orders exist (free replacements) but are rare
    zero_share = (o["net_revenue"] == 0).mean()
    assert 0.0003 < zero_share < 0.01
    assert not o.filter(pl.col("net_revenue") == 0)["is_first"].any()


def test_same_day_repeat_orders_happen(shop: SyntheticShop) -> None:
    per_day = shop.orders.group_by("customer_id", pl.col("ordered_at").dt.date()).len()
    assert (per_day["len"] >= 2).sum() >= 10


# --------------------------------------------------------------------------- distributions


def test_repeat_purchasing_is_plausible(shop: SyntheticShop) -> None:
    counts = shop.orders.group_by("customer_id").len()["len"].cast(pl.Float64)
    repeat_share = (counts >= 2).mean()
    assert 0.2 <= repeat_share <= 0.8
    assert 3.0 <= counts.mean() <= 12.0
    # BG/NBD heterogeneity: counts are over-dispersed
    assert counts.var() > 2 * counts.mean()


def test_order_values_are_plausible(shop: SyntheticShop) -> None:
    completed = shop.orders.filter(pl.col("status") == "completed", pl.col("net_revenue") > 0)
    aov = completed["net_revenue"].mean()
    assert 55.0 <= aov <= 95.0
    assert completed["net_revenue"].quantile(0.99) > 2 * aov  # right-skewed
    margin = 1 - completed["cost"].sum() / completed["net_revenue"].sum()
    assert 0.25 <= margin <= 0.65


def test_status_and_refund_shares(shop: SyntheticShop) -> None:
    o = shop.orders
    cancelled = (o["status"] == "cancelled").mean()
    test_share = (o["status"] == "test").mean()
    assert 0.012 <= cancelled <= 0.03
    assert 0.0 < test_share <= 0.004
    completed = o.filter(pl.col("status") == "completed")
    refund_share = (completed["refunded_amount"] > 0).mean()
    assert 0.035 <= refund_share <= 0.065


def test_seasonality(shop: SyntheticShop) -> None:
    per_day = shop.orders.group_by(pl.col("ordered_at").dt.date().alias("d")).len()
    n_days = (date(2026, 12, 31) - date(2024, 1, 1)).days + 1
    avg_per_day = shop.orders.height / n_days
    holiday = shop.orders.filter(pl.col("ordered_at").dt.month() >= 11)
    holiday_days = per_day.filter(pl.col("d").dt.month() >= 11).height
    assert holiday_days == 3 * 61
    assert holiday.height / holiday_days > 1.5 * avg_per_day
    # not just the growth trend: Nov+Dec beat the two months right before them
    autumn = shop.orders.filter(pl.col("ordered_at").dt.month().is_in([9, 10])).height
    assert holiday.height > 1.35 * autumn
    # the shop grows: more orders in the last year than in the first
    by_year = shop.orders.group_by(pl.col("ordered_at").dt.year().alias("y")).len().sort("y")
    assert by_year["len"][-1] > 1.5 * by_year["len"][0]


def test_every_channel_acquires_customers(shop: SyntheticShop) -> None:
    acq = _first_orders(shop.orders).group_by("channel").len()
    assert set(acq["channel"]) == CHANNELS
    assert acq["len"].min() >= 0.03 * N_CUSTOMERS


def test_channels_and_first_categories_differ_in_value(big_shop: SyntheticShop) -> None:
    o = big_shop.orders.filter(pl.col("status") == "completed")
    first = _first_orders(big_shop.orders).select(
        "customer_id", pl.col("channel").alias("acq"), pl.col("product_category").alias("first_cat")
    )
    per_cust = o.group_by("customer_id").agg(pl.len().alias("n"), pl.col("net_revenue").sum().alias("rev"))
    per_cust = first.join(per_cust, on="customer_id", how="left").fill_null(0)
    by_acq = {r["acq"]: r for r in per_cust.group_by("acq").agg(pl.col("rev").mean(), pl.col("n").mean()).to_dicts()}
    # retention channels bring more valuable customers than deal / social channels
    assert by_acq["referral"]["rev"] > 1.5 * by_acq["affiliate"]["rev"]
    assert by_acq["email"]["rev"] > 1.5 * by_acq["paid_social"]["rev"]
    by_cat = {r["first_cat"]: r["n"] for r in per_cust.group_by("first_cat").agg(pl.col("n").mean()).to_dicts()}
    assert by_cat["beauty"] > 1.2 * by_cat["electronics"]


# --------------------------------------------------------------------------- marketing spend


def test_marketing_spend_rows(shop: SyntheticShop) -> None:
    s = shop.marketing_spend
    n_days = (date(2026, 12, 31) - date(2024, 1, 1)).days + 1
    assert set(s["channel"].unique()) == {"paid_search", "paid_social", "affiliate", "email"}
    assert s.height == 4 * n_days
    assert s.select("date", "channel").is_unique().all()
    assert s["date"].min() == date(2024, 1, 1) and s["date"].max() == date(2026, 12, 31)
    assert (s["spend"] > 0).all()
    spend = s["spend"].to_numpy()
    assert np.array_equal(spend, np.rint(spend * 100.0) / 100.0)
    assert s["spend"].null_count() == 0


def test_cac_per_paid_channel_near_configured(shop: SyntheticShop) -> None:
    new = _first_orders(shop.orders).group_by("channel").len()
    spend = shop.marketing_spend.group_by("channel").agg(pl.col("spend").sum())
    cac = dict(spend.join(new, on="channel").select("channel", pl.col("spend") / pl.col("len")).iter_rows())
    for ch, target in CAC.items():
        assert 0.8 * target <= cac[ch] <= 1.4 * target, (ch, cac[ch])
    # email only carries a small flat fee
    assert cac["email"] < min(CAC.values())
    assert CAC == P.CHANNEL_CAC


def test_spend_tracks_new_customers_over_time(big_shop: SyntheticShop) -> None:
    month = pl.col("date").dt.truncate("1mo")
    new = (
        _first_orders(big_shop.orders)
        .filter(pl.col("channel") == "paid_search")
        .group_by(pl.col("ordered_at").dt.date().dt.truncate("1mo").alias("date"))
        .len()
    )
    spend = (
        big_shop.marketing_spend.filter(pl.col("channel") == "paid_search")
        .group_by(month.alias("date"))
        .agg(pl.col("spend").sum())
    )
    joined = spend.join(new, on="date")
    assert joined.height == 36
    assert joined.select(pl.corr("spend", "len")).item() > 0.8


# --------------------------------------------------------------------------- cart events


def test_cart_events(shop: SyntheticShop) -> None:
    ev = shop.cart_events
    orders = shop.orders
    assert set(ev["event_type"].unique()) == {"add_to_cart", "checkout_started"}
    assert ev.null_count().sum_horizontal().item() == 0
    assert (ev["cart_value"] > 0).all()
    value = ev["cart_value"].to_numpy()
    assert np.array_equal(value, np.rint(value * 100.0) / 100.0)
    assert ev["event_at"].min() >= WINDOW_START and ev["event_at"].max() <= WINDOW_END
    assert set(ev["customer_id"].unique()) <= set(orders["customer_id"].unique())
    # classify by the next order of the same customer
    nxt = ev.sort("event_at").join_asof(
        orders.select("customer_id", pl.col("ordered_at").alias("next_order")).sort("next_order"),
        left_on="event_at",
        right_on="next_order",
        by="customer_id",
        strategy="forward",
        check_sortedness=False,
        allow_exact_matches=False,
    )
    wait = nxt["next_order"] - nxt["event_at"]
    converted = wait <= timedelta(hours=1)
    abandoned = nxt["next_order"].is_null() | (wait > timedelta(days=7))
    assert converted.sum() > 0.2 * ev.height
    assert abandoned.sum() > 0.1 * ev.height
    # every event either led to an order shortly after or was abandoned for 7+ days
    assert (converted | abandoned).all()


# --------------------------------------------------------------------------- dirty rows


def _problems(row: dict, clean: dict[str, dict]) -> list[str]:
    found = []
    if not row["order_id"]:
        found.append("missing_order_id")
    if not row["customer_id"]:
        found.append("missing_customer_id")
    parsed = None
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            parsed = datetime.strptime(row["ordered_at"] or "", fmt)
            break
        except ValueError:
            continue
    if parsed is None:
        found.append("unparseable_date")
    elif not WINDOW_START <= parsed <= WINDOW_END:
        found.append("impossible_date")
    try:
        net = float(row["net_revenue"])
    except (TypeError, ValueError):
        found.append("non_numeric_revenue")
    else:
        if math.isnan(net):
            found.append("nan_revenue")
        elif math.isinf(net):
            found.append("inf_revenue")
        elif net < 0:
            found.append("negative_revenue")
    try:
        float(row["discount_amount"])
    except (TypeError, ValueError):
        found.append("non_numeric_discount")
    if row["order_id"] in clean:
        c = clean[row["order_id"]]
        same = (
            row["customer_id"] == c["customer_id"]
            and parsed == c["ordered_at"]
            and all(float(row[k]) == c[k] for k in ("net_revenue", "discount_amount", "refunded_amount", "cost"))
            and all(
                row[k] == c[k] for k in ("currency", "discount_code", "channel", "status", "product_category", "email")
            )
            and (
                (row["refunded_at"] is None and c["refunded_at"] is None)
                or datetime.strptime(row["refunded_at"], "%Y-%m-%d %H:%M:%S") == c["refunded_at"]
            )
        )
        found.append("exact_duplicate" if same else "reused_order_id")
    return found


def test_dirty_rows_have_exactly_one_problem_each(shop: SyntheticShop) -> None:
    dirty = shop.dirty_orders
    assert dirty.height == CONFIG.dirty_rows
    ids = dirty["order_id"].drop_nulls().to_list()
    clean = {r["order_id"]: r for r in shop.orders.filter(pl.col("order_id").is_in(ids)).to_dicts()}
    seen = []
    for row in dirty.to_dicts():
        problems = _problems(row, clean)
        assert len(problems) == 1, (row, problems)
        seen.append(problems[0])
        # everything else looks like a normal order
        if problems[0] != "missing_customer_id":
            assert row["email"] == row["customer_id"].lower() + "@example.com"
        assert row["channel"] in CHANNELS and row["product_category"] in CATEGORIES
    assert set(seen) == {
        "missing_order_id",
        "missing_customer_id",
        "unparseable_date",
        "impossible_date",
        "non_numeric_revenue",
        "negative_revenue",
        "nan_revenue",
        "inf_revenue",
        "exact_duplicate",
        "non_numeric_discount",
    }
    # both unparseable date variants are present
    assert {"2025-13-45", "not a date"} <= set(dirty["ordered_at"].drop_nulls())


def test_dirty_rows_count_follows_config() -> None:
    none = generate_shop(SyntheticShopConfig(n_customers=300, dirty_rows=0))
    assert none.dirty_orders.height == 0
    assert list(none.dirty_orders.columns) == list(ORDERS_SCHEMA)
    assert all(dt == pl.String for dt in none.dirty_orders.dtypes)
    seven = generate_shop(SyntheticShopConfig(n_customers=300, dirty_rows=7))
    assert seven.dirty_orders.height == 7
    # clean orders do not depend on the number of dirty rows
    assert none.orders.equals(seven.orders)


def test_short_window_and_invalid_configs() -> None:
    short = generate_shop(
        SyntheticShopConfig(n_customers=200, start_date=date(2025, 11, 1), end_date=date(2025, 11, 30))
    )
    o = short.orders
    assert o["ordered_at"].min() >= datetime(2025, 11, 1)
    assert o["ordered_at"].max() < datetime(2025, 12, 1)
    assert o["customer_id"].n_unique() == 200
    assert short.marketing_spend.height == 4 * 30
    with pytest.raises(ValueError):
        generate_shop(SyntheticShopConfig(n_customers=0))
    with pytest.raises(ValueError):
        generate_shop(SyntheticShopConfig(start_date=date(2025, 1, 2), end_date=date(2025, 1, 1)))
    assert np.isfinite(o["net_revenue"].to_numpy()).all()
