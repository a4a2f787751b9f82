"""The marts of the small synthetic shop (session fixture `small_shop`, as of 2025-12-31) against an independent
polars computation from raw.* written from ../shared/SPEC.md's definitions (not from the dbt SQL):

* valid orders: dated on or before the as-of date, status not cancelled/test (missing status = completed), one row
  per order_id; a refund booked after the as-of date is not known yet (0); cost missing -> the default margin rate
  applies to the revenue kept: (net_revenue − refund known at the as-of date) × (1 − 0.40);
* revenue = net_revenue − refunded_amount, gross margin = revenue − cost;
* cohort months: is_complete_month = the calendar month ended on or before the as-of date (as of 2025-12-31, the
  last day of December, December 2025 is complete too);
* thresholds from the dbt vars defaults in dbt_project/dbt_project.yml.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import polars as pl
import pytest
import yaml
from _marts_support import same
from pipeline_runner import PROJECT_ROOT

AS_OF = date(2025, 12, 31)
AS_OF_MONTH = date(2025, 12, 1)
REL, ABS = 1e-9, 1e-6

VARS = yaml.safe_load((PROJECT_ROOT / "dbt_project" / "dbt_project.yml").read_text())["vars"]


# --------------------------------------------------------------------------- helpers
def q(con, sql: str, params=None) -> pl.DataFrame:
    return pl.from_arrow(con.sql(sql, params=params).to_arrow_table())


def month_index(col: str | pl.Expr) -> pl.Expr:
    expr = pl.col(col) if isinstance(col, str) else col
    return expr.dt.year().cast(pl.Int64) * 12 + expr.dt.month().cast(pl.Int64) - 1


def month_start(col: str) -> pl.Expr:
    return pl.date(pl.col(col).dt.year(), pl.col(col).dt.month(), 1)


def add_months(d: date, n: int) -> date:
    m = d.year * 12 + d.month - 1 + n
    return date(m // 12, m % 12 + 1, 1)


def compare_frames(
    actual: pl.DataFrame, expected: pl.DataFrame, key: list[str], columns: list[str] | None = None, max_report: int = 15
) -> None:
    """Every expected row (by key) is in actual and vice versa; the compared columns agree (floats approx)."""
    columns = columns or [c for c in expected.columns if c not in key]
    a_keys = set(actual.select(key).iter_rows())
    e_keys = set(expected.select(key).iter_rows())
    problems = [f"missing row {k}" for k in sorted(e_keys - a_keys, key=str)[:max_report]]
    problems += [f"unexpected row {k}" for k in sorted(a_keys - e_keys, key=str)[:max_report]]
    assert actual.height == len(a_keys), "duplicate keys in the mart"
    joined = expected.select(key + columns).join(actual.select(key + columns), on=key, how="inner", suffix="__mart")
    for row in joined.iter_rows(named=True):
        for c in columns:
            if not same(row[c + "__mart"], row[c], rel=REL, abs_=ABS):
                problems.append(
                    f"{tuple(row[k] for k in key)} {c}: expected {row[c]!r}, mart has {row[c + '__mart']!r}"
                )
                if len(problems) > max_report:
                    break
        if len(problems) > max_report:
            break
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- the independent computation
@pytest.fixture(scope="module")
def con(small_shop):
    connection = small_shop.connect()
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def orders(con) -> pl.DataFrame:
    # An order counts once: raw.orders may hold several loaded versions of an order; the latest export wins.
    raw = q(con, "select * from raw.orders").sort("source_file", "source_line").unique("order_id", keep="last")
    # The margin rate the run used (CLV_DEFAULT_MARGIN_RATE, handed to dbt in raw.run_context)
    rate = con.execute("select default_margin_rate from raw.run_context").fetchall()[0][0]
    valid = (
        raw.filter(
            (pl.col("order_date") <= AS_OF)
            & ~pl.col("status").fill_null("completed").str.to_lowercase().is_in(["cancelled", "test"])
        )
        .with_columns(
            refunded_amount=pl.when(pl.col("refunded_at").is_not_null() & (pl.col("refunded_at").dt.date() > AS_OF))
            .then(0.0)
            .otherwise(pl.col("refunded_amount").fill_null(0.0)),
            channel=pl.col("channel").fill_null("unknown"),
            product_category=pl.col("product_category").fill_null("unknown"),
            is_discounted=(pl.col("discount_amount").fill_null(0) > 0) | pl.col("discount_code").is_not_null(),
        )
        .with_columns(
            # refunded_amount is the refund known at the as-of date (computed just above, in the previous step)
            revenue=pl.col("net_revenue") - pl.col("refunded_amount"),
            cost=pl.coalesce(pl.col("cost"), (pl.col("net_revenue") - pl.col("refunded_amount")) * (1 - rate)),
        )
        .with_columns(
            gross_margin=pl.col("revenue") - pl.col("cost"),
            order_month=month_start("order_date"),
        )
        .sort("customer_id", "ordered_at", "order_id")
        .with_columns(
            order_number=pl.int_range(1, pl.len() + 1).over("customer_id").cast(pl.Int64),
        )
    )
    assert valid.height > 1000
    return valid


@pytest.fixture(scope="module")
def customers(orders) -> pl.DataFrame:
    first = orders.filter(pl.col("order_number") == 1).select(
        "customer_id",
        acquisition_channel="channel",
        first_product_category="product_category",
        first_order_discounted="is_discounted",
        first_order_discount_code="discount_code",
    )
    totals = orders.group_by("customer_id").agg(
        first_order_date=pl.col("order_date").min(),
        last_order_date=pl.col("order_date").max(),
        orders_count=pl.len().cast(pl.Int64),
        purchase_days=pl.col("order_date").n_unique().cast(pl.Int64),
        discounted_orders=pl.col("is_discounted").sum().cast(pl.Int64),
        net_revenue=pl.col("revenue").sum(),
        gross_margin=pl.col("gross_margin").sum(),
    )
    return totals.join(first, on="customer_id", how="inner", validate="1:1").with_columns(
        cohort_month=month_start("first_order_date"),
        aov=pl.col("net_revenue") / pl.col("orders_count"),
        tenure_days=(pl.lit(AS_OF) - pl.col("first_order_date")).dt.total_days().cast(pl.Int64),
        days_since_last_order=(pl.lit(AS_OF) - pl.col("last_order_date")).dt.total_days().cast(pl.Int64),
    )


# --------------------------------------------------------------------------- fct_orders and dim_customers
def test_fct_orders_totals_and_every_order(con, orders):
    mart = q(con, "select * from marts.fct_orders")
    assert mart.height == orders.height
    assert mart["revenue"].sum() == pytest.approx(orders["revenue"].sum(), rel=REL, abs=ABS)
    assert mart["gross_margin"].sum() == pytest.approx(orders["gross_margin"].sum(), rel=REL, abs=ABS)
    assert mart["refunded_amount"].sum() == pytest.approx(orders["refunded_amount"].sum(), rel=REL, abs=ABS)
    expected = orders.select(
        "order_id",
        "customer_id",
        "order_date",
        "revenue",
        "gross_margin",
        "refunded_amount",
        "cost",
        "channel",
        "order_number",
        is_first_order=pl.col("order_number") == 1,
    )
    compare_frames(mart, expected, ["order_id"])


def test_dim_customers_every_row(con, customers):
    mart = q(con, "select * from marts.dim_customers")
    compare_frames(mart, customers, ["customer_id"])


# --------------------------------------------------------------------------- cohort_retention
def _cohort_grid(customers: pl.DataFrame, dims: list[str]) -> pl.DataFrame:
    cohorts = customers.group_by(["cohort_month", *dims]).agg(cohort_size=pl.len().cast(pl.Int64))
    return (
        cohorts.with_columns(
            months_since_first_order=pl.int_ranges(
                0, month_index(pl.lit(AS_OF_MONTH)) - month_index("cohort_month") + 1
            )
        )
        .explode("months_since_first_order")
        .with_columns(pl.col("months_since_first_order").cast(pl.Int64))
    )


def expected_cohort_retention(orders, customers, dims: list[str]) -> pl.DataFrame:
    activity = (
        orders.join(customers.select("customer_id", "cohort_month", *dims), on="customer_id")
        .with_columns(months_since_first_order=(month_index("order_date") - month_index("cohort_month")).cast(pl.Int64))
        .group_by(["cohort_month", *dims, "months_since_first_order"])
        .agg(
            active_customers=pl.col("customer_id").n_unique().cast(pl.Int64),
            orders=pl.len().cast(pl.Int64),
            revenue=pl.col("revenue").sum(),
            gross_margin=pl.col("gross_margin").sum(),
        )
    )
    keys = ["cohort_month", *dims]
    grid = _cohort_grid(customers, dims).join(activity, on=[*keys, "months_since_first_order"], how="left")
    grid = (
        grid.with_columns(
            pl.col("active_customers", "orders").fill_null(0), pl.col("revenue", "gross_margin").fill_null(0.0)
        )
        .sort([*keys, "months_since_first_order"])
        .with_columns(
            retention_rate=pl.col("active_customers") / pl.col("cohort_size"),
            cumulative_revenue_per_customer=pl.col("revenue").cum_sum().over(keys) / pl.col("cohort_size"),
            cumulative_margin_per_customer=pl.col("gross_margin").cum_sum().over(keys) / pl.col("cohort_size"),
        )
    )
    index = month_index("cohort_month") + pl.col("months_since_first_order")
    return grid.with_columns(
        calendar_month=pl.date(index // 12, index % 12 + 1, 1),
    ).with_columns(
        # the calendar month's last day is on or before the as-of date
        is_complete_month=pl.col("calendar_month").dt.month_end() <= AS_OF
    )


def test_cohort_retention_every_row(con, orders, customers):
    expected = expected_cohort_retention(orders, customers, [])
    mart = q(con, "select * from marts.cohort_retention")
    compare_frames(mart, expected, ["cohort_month", "months_since_first_order"])


def test_cohort_retention_by_channel_every_row(con, orders, customers):
    expected = expected_cohort_retention(orders, customers, ["acquisition_channel"])
    mart = q(con, "select * from marts.cohort_retention_by_channel")
    compare_frames(mart, expected, ["cohort_month", "acquisition_channel", "months_since_first_order"])


# --------------------------------------------------------------------------- retention_kpis
def test_retention_kpis_every_row(con, orders, customers):
    first_month = customers["cohort_month"].min()
    months = pl.DataFrame(
        {
            "month": [
                add_months(first_month, i)
                for i in range((AS_OF_MONTH.year - first_month.year) * 12 + AS_OF_MONTH.month - first_month.month + 1)
            ]
        }
    )
    per_customer = orders.group_by("customer_id", "order_month").agg(n=pl.len(), revenue=pl.col("revenue").sum())
    activity = per_customer.group_by(month="order_month").agg(
        customers=pl.len().cast(pl.Int64),
        orders=pl.col("n").sum().cast(pl.Int64),
        revenue=pl.col("revenue").sum(),
        repeaters=(pl.col("n") > 1).sum(),
    )
    acquired = customers.group_by(month="cohort_month").agg(new_customers=pl.len().cast(pl.Int64))
    kpis = (
        months.join(activity, on="month", how="left")
        .join(acquired, on="month", how="left")
        .with_columns(
            pl.col("customers", "orders", "repeaters", "new_customers").fill_null(0),
            pl.col("revenue").fill_null(0.0),
        )
        .sort("month")
    )
    # customers before m = customers whose first order was before m (cumulative new customers of earlier months)
    kpis = kpis.with_columns(
        customers_before=(pl.col("new_customers").cum_sum() - pl.col("new_customers")).cast(pl.Int64)
    )
    kpis = (
        kpis.with_columns(
            returning_customers=(pl.col("customers") - pl.col("new_customers")).cast(pl.Int64),
            aov=pl.when(pl.col("orders") > 0).then(pl.col("revenue") / pl.col("orders")),
            purchase_frequency=pl.when(pl.col("customers") > 0).then(pl.col("orders") / pl.col("customers")),
            repeat_customer_rate=pl.when(pl.col("customers") > 0).then(pl.col("repeaters") / pl.col("customers")),
        )
        .with_columns(
            customer_value=pl.col("aov") * pl.col("purchase_frequency"),
            retention_rate=pl.when(pl.col("customers_before") > 0).then(
                pl.col("returning_customers") / pl.col("customers_before")
            ),
        )
        .with_columns(churn_rate=1 - pl.col("retention_rate"))
    )
    # Independent cross-check of `returning`: active customers whose first order is in an earlier month.
    returning = (
        per_customer.join(customers.select("customer_id", "cohort_month"), on="customer_id")
        .filter(pl.col("cohort_month") < pl.col("order_month"))
        .group_by(month="order_month")
        .agg(r=pl.len())
    )
    check = kpis.join(returning, on="month", how="left").with_columns(pl.col("r").fill_null(0))
    assert (check["r"] == check["returning_customers"]).all()
    mart = q(con, "select * from marts.retention_kpis")
    compare_frames(mart, kpis.drop("repeaters"), ["month"])


# --------------------------------------------------------------------------- windowed_ltv and ltv_drivers
def _per_customer_windows(orders, customers) -> pl.DataFrame:
    windows = pl.DataFrame({"window_days": [int(w) for w in VARS["ltv_windows"]]})
    base = customers.select("customer_id", "cohort_month", "first_order_date").join(windows, how="cross")
    in_window = (
        orders.select("customer_id", "order_date", "revenue", "gross_margin")
        .join(base, on="customer_id")
        .filter((pl.col("order_date") - pl.col("first_order_date")).dt.total_days() < pl.col("window_days"))
        .group_by("customer_id", "window_days")
        .agg(w_orders=pl.len(), w_revenue=pl.col("revenue").sum(), w_margin=pl.col("gross_margin").sum())
    )
    return base.join(in_window, on=["customer_id", "window_days"], how="left").with_columns(
        pl.col("w_orders").fill_null(0),
        pl.col("w_revenue", "w_margin").fill_null(0.0),
        # window = days 0..N−1 after the first order; observed when its last day is on or before the as-of date
        observed=(pl.lit(AS_OF) - pl.col("first_order_date")).dt.total_days() >= pl.col("window_days") - 1,
    )


def test_windowed_ltv_every_row_and_only_fully_observed_cohorts(con, orders, customers):
    per_customer = _per_customer_windows(orders, customers)
    cohorts = per_customer.group_by("cohort_month", "window_days").agg(
        customers=pl.len().cast(pl.Int64),
        revenue=pl.col("w_revenue").sum(),
        gross_margin=pl.col("w_margin").sum(),
        repeaters=(pl.col("w_orders") > 1).sum(),
        fully_observed=pl.col("observed").all(),
    )
    expected = (
        cohorts.filter(pl.col("fully_observed"))
        .with_columns(
            pl.col("window_days").cast(pl.Int32),
            revenue_per_customer=pl.col("revenue") / pl.col("customers"),
            margin_per_customer=pl.col("gross_margin") / pl.col("customers"),
            repeat_rate_in_window=pl.col("repeaters") / pl.col("customers"),
        )
        .drop("repeaters", "fully_observed")
    )
    mart = q(con, "select * from marts.windowed_ltv")
    compare_frames(mart, expected, ["cohort_month", "window_days"])
    # The partially observed cohorts are absent, and there are some (as-of 2025-12-31: e.g. 2025-12 for 30 days).
    assert cohorts.filter(~pl.col("fully_observed")).height > 0
    assert mart.filter((pl.col("cohort_month") == date(2025, 12, 1)) & (pl.col("window_days") == 30)).height == 0


def test_ltv_drivers_every_row(con, orders, customers):
    w = _per_customer_windows(orders, customers)

    def window(days):
        return w.filter(pl.col("window_days") == days).select(
            "customer_id",
            **{f"obs{days}": pl.col("observed"), f"rev{days}": pl.col("w_revenue"), f"mar{days}": pl.col("w_margin")},
        )

    enriched = (
        customers.join(window(90), on="customer_id")
        .join(window(365), on="customer_id")
        .with_columns(
            first_order_discount=pl.when(pl.col("first_order_discounted"))
            .then(pl.lit("discounted"))
            .otherwise(pl.lit("full price")),
            first_order_discount_code=pl.col("first_order_discount_code").fill_null("none"),
        )
    )
    parts = []
    for driver in (
        "first_product_category",
        "first_order_discount",
        "first_order_discount_code",
        "acquisition_channel",
    ):
        parts.append(
            enriched.group_by(driver_value=pl.col(driver))
            .agg(
                customers=pl.len().cast(pl.Int64),
                repeat_rate=(pl.col("orders_count") > 1).mean(),
                customers_90d_observed=pl.col("obs90").sum().cast(pl.Int64),
                value_90d_per_customer=pl.col("rev90").filter(pl.col("obs90")).mean(),
                margin_90d_per_customer=pl.col("mar90").filter(pl.col("obs90")).mean(),
                customers_365d_observed=pl.col("obs365").sum().cast(pl.Int64),
                value_365d_per_customer=pl.col("rev365").filter(pl.col("obs365")).mean(),
                margin_365d_per_customer=pl.col("mar365").filter(pl.col("obs365")).mean(),
            )
            .with_columns(driver=pl.lit(driver))
        )
    expected = pl.concat(parts, how="vertical_relaxed")
    mart = q(con, "select * from marts.ltv_drivers")
    compare_frames(mart, expected, ["driver", "driver_value"])


# --------------------------------------------------------------------------- customer_segments
def test_rfm_scores_are_quintiles_of_equal_size(con, customers):
    mart = q(con, "select * from marts.customer_segments")
    n = mart.height
    assert n == customers.height
    for score in ("recency_score", "frequency_score", "monetary_score"):
        counts = dict(mart.group_by(score).len().iter_rows())
        assert set(counts) == {1, 2, 3, 4, 5}, (score, counts)
        assert all(abs(c - n / 5) <= 1 for c in counts.values()), (score, counts)
    # monotone: a higher score never has a worse value than a lower one (ties may straddle a boundary)
    for score, col, better in (
        ("recency_score", "days_since_last_order", "lower"),
        ("frequency_score", "orders_count", "higher"),
        ("monetary_score", "net_revenue", "higher"),
    ):
        bounds = mart.group_by(score).agg(lo=pl.col(col).min(), hi=pl.col(col).max()).sort(score)
        for low, high in zip(bounds.iter_rows(named=True), list(bounds.iter_rows(named=True))[1:]):
            if better == "higher":
                assert low["hi"] <= high["lo"], (score, low, high)
            else:
                assert low["lo"] >= high["hi"], (score, low, high)
    assert set(mart["rfm_code"].to_list()) == set(
        (
            mart["recency_score"].cast(pl.String)
            + mart["frequency_score"].cast(pl.String)
            + mart["monetary_score"].cast(pl.String)
        ).to_list()
    )


def test_segment_flags(con, customers):
    big = customers["net_revenue"].quantile(float(VARS["big_spender_quantile"]), interpolation="linear")
    high_aov = customers["aov"].quantile(float(VARS["high_aov_quantile"]), interpolation="linear")
    carts = q(con, "select customer_id, event_at, event_date from raw.cart_events")
    window_start = AS_OF - timedelta(days=int(VARS["cart_abandon_days"]))
    recent_carts = (
        carts.filter((pl.col("event_date") > window_start) & (pl.col("event_date") <= AS_OF))
        .group_by("customer_id")
        .agg(last_cart=pl.col("event_at").max())
    )
    last_order = q(
        con,
        "select customer_id, max(ordered_at) as last_ordered_at from raw.orders "
        "where order_date <= ? and coalesce(lower(status), 'completed') not in ('cancelled', 'test') "
        "group by 1",
        [AS_OF],
    )
    expected = (
        customers.join(recent_carts, on="customer_id", how="left")
        .join(last_order, on="customer_id", how="left")
        .select(
            "customer_id",
            is_first_time_buyer=pl.col("orders_count") == 1,
            is_repeat_buyer=pl.col("orders_count") > 1,
            is_big_spender=pl.col("net_revenue") >= big,
            is_high_aov=pl.col("aov") >= high_aov,
            is_discount_shopper=pl.col("discounted_orders") / pl.col("orders_count")
            >= float(VARS["discount_shopper_share"]),
            is_full_price_buyer=pl.col("discounted_orders") == 0,
            is_vip=(pl.col("orders_count") >= int(VARS["vip_min_orders"]))
            & (pl.col("days_since_last_order") <= int(VARS["rfm_recent_days"])),
            is_at_risk=pl.col("days_since_last_order") >= int(VARS["at_risk_days"]),
            is_cart_abandoner=(pl.col("last_cart").is_not_null() & (pl.col("last_cart") > pl.col("last_ordered_at"))),
        )
    )
    assert carts.height > 0  # cart events are supplied by the synthetic shop: the flag is never null
    mart = q(con, "select * from marts.customer_segments")
    compare_frames(mart, expected, ["customer_id"])
    # the flags are not all trivially false or true on this shop
    for flag in ("is_big_spender", "is_high_aov", "is_discount_shopper", "is_vip", "is_at_risk", "is_cart_abandoner"):
        assert 0 < expected[flag].sum() < expected.height, flag


def test_every_customer_in_exactly_one_segment(con, customers):
    mart = q(con, "select customer_id, segment from marts.customer_segments")
    assert mart["customer_id"].n_unique() == mart.height == customers.height
    assert set(mart["customer_id"].to_list()) == set(customers["customer_id"].to_list())
    assert mart["segment"].null_count() == 0
    assert set(mart["segment"].unique().to_list()) <= {
        "champions",
        "loyal",
        "new",
        "potential_loyalists",
        "at_risk",
        "lost",
        "hibernating",
        "needs_attention",
    }


# --------------------------------------------------------------------------- CAC payback
def test_cac_and_payback_months(con, orders, customers):
    spend = (
        q(con, "select date, channel, spend from raw.marketing_spend where date <= ?", [AS_OF])
        .group_by(cohort_month=month_start("date"), acquisition_channel=pl.col("channel"))
        .agg(spend=pl.col("spend").sum())
    )
    new = customers.group_by("cohort_month", "acquisition_channel").agg(new_customers=pl.len().cast(pl.Int64))
    cac = (
        new.join(spend, on=["cohort_month", "acquisition_channel"], how="full", coalesce=True)
        .with_columns(
            pl.col("new_customers").fill_null(0),
        )
        .with_columns(cac=pl.when(pl.col("new_customers") > 0).then(pl.col("spend") / pl.col("new_customers")))
    )
    curve = expected_cohort_retention(orders, customers, ["acquisition_channel"])
    payback = (
        curve.join(cac.select("cohort_month", "acquisition_channel", "cac"), on=["cohort_month", "acquisition_channel"])
        .filter(pl.col("cac").is_not_null() & (pl.col("cumulative_margin_per_customer") >= pl.col("cac")))
        .group_by("cohort_month", "acquisition_channel")
        .agg(payback_months=pl.col("months_since_first_order").min().cast(pl.Int32))
    )
    expected = cac.join(payback, on=["cohort_month", "acquisition_channel"], how="left")
    mart = q(con, "select * from marts.cac_payback")
    compare_frames(
        mart, expected, ["cohort_month", "acquisition_channel"], ["new_customers", "spend", "cac", "payback_months"]
    )
    # the comparison is not vacuous: some cohorts paid back, some not yet, some have no spend (organic, ...)
    assert expected["payback_months"].drop_nulls().len() > 0
    assert expected.filter(pl.col("cac").is_not_null() & pl.col("payback_months").is_null()).height > 0
    assert expected["cac"].null_count() > 0


def test_cac_payback_curve_matches_cohort_margin(con, orders, customers):
    curve = expected_cohort_retention(orders, customers, ["acquisition_channel"]).select(
        "cohort_month",
        "acquisition_channel",
        pl.col("months_since_first_order").cast(pl.Int32).alias("months_since_acquisition"),
        new_customers="cohort_size",
        margin="gross_margin",
        cumulative_margin_per_customer="cumulative_margin_per_customer",
    )
    mart = q(con, "select * from marts.cac_payback_curve")
    compare_frames(mart, curve, ["cohort_month", "acquisition_channel", "months_since_acquisition"])


# --------------------------------------------------------------------------- customer_clv (historical part)
def test_customer_clv_rfm_in_weeks(con, orders, customers):
    days = orders.group_by("customer_id", "order_date").agg(value=pl.col("revenue").sum())
    rfm = (
        days.sort("order_date")
        .group_by("customer_id")
        .agg(
            frequency=(pl.len() - 1).cast(pl.Int64),
            first=pl.col("order_date").first(),
            last=pl.col("order_date").last(),
            repeat_value=pl.col("value").slice(1).sum(),
        )
        .with_columns(
            recency=(pl.col("last") - pl.col("first")).dt.total_days() / 7.0,
            T=(pl.lit(AS_OF) - pl.col("first")).dt.total_days() / 7.0,
            monetary_value=pl.when(pl.col("frequency") > 0)
            .then(pl.col("repeat_value") / pl.col("frequency"))
            .otherwise(0.0),
        )
        .join(
            customers.select("customer_id", historical_revenue="net_revenue", historical_margin="gross_margin"),
            on="customer_id",
        )
    )
    mart = q(con, "select * from marts.customer_clv")
    compare_frames(mart, rfm.drop("first", "last", "repeat_value"), ["customer_id"])


# --------------------------------------------------------------------------- invariants
def test_cohort_revenue_sums_to_fct_orders(con):
    fct = con.execute("select sum(revenue), sum(gross_margin) from marts.fct_orders").fetchall()[0]
    for table in ("cohort_retention", "cohort_retention_by_channel"):
        got = con.execute(f"select sum(revenue), sum(gross_margin) from marts.{table}").fetchall()[0]
        assert got[0] == pytest.approx(fct[0], rel=REL) and got[1] == pytest.approx(fct[1], rel=REL), table
    kpi = con.execute("select sum(revenue), sum(orders) from marts.retention_kpis").fetchall()[0]
    assert kpi[0] == pytest.approx(fct[0], rel=REL)
    assert kpi[1] == con.execute("select count(*) from marts.fct_orders").fetchall()[0][0]
    # the last cumulative point of each cohort × size = the cohort's lifetime revenue in dim_customers
    rows = con.execute(
        """
        select c.cohort_month, c.cumulative_revenue_per_customer * c.cohort_size, d.revenue
        from marts.cohort_retention c
        join (select cohort_month, sum(net_revenue) as revenue from marts.dim_customers group by 1) d
          using (cohort_month)
        where c.calendar_month = ?""",
        [AS_OF_MONTH],
    ).fetchall()
    assert rows and all(math.isclose(a, b, rel_tol=REL, abs_tol=ABS) for _, a, b in rows)


RATE_COLUMNS = {
    "cohort_retention": ["retention_rate"],
    "cohort_retention_by_channel": ["retention_rate"],
    "retention_kpis": ["repeat_customer_rate", "retention_rate", "churn_rate", "month_over_month_retention_rate"],
    "windowed_ltv": ["repeat_rate_in_window"],
    "ltv_drivers": ["repeat_rate"],
    "customer_clv": ["p_alive", "margin_rate"],
    "cohort_survival": ["mean_p_alive", "active_share_last_90d"],
}


@pytest.mark.parametrize("table", sorted(RATE_COLUMNS))
def test_rates_between_zero_and_one(con, table):
    for column in RATE_COLUMNS[table]:
        low, high, n = con.execute(
            f"select min({column}), max({column}), count({column}) from marts.{table}"
        ).fetchall()[0]
        assert n > 0, f"{table}.{column} is all null"
        assert 0 <= low and high <= 1, f"{table}.{column} in [{low}, {high}]"


# --------------------------------------------------------------------------- the models' trust figures (issue 17)
def test_the_model_with_the_lowest_backtest_error_scored_the_customers(con):
    blocks = q(
        con,
        "select model, selected, mae_per_customer from marts.clv_backtest where frequency_bucket = 'all' "
        "and as_of_date = ?",
        [AS_OF],
    )
    assert set(blocks["model"].to_list()) == {"bg_nbd", "pareto_nbd", "mbg_nbd", "formula"}
    purchase = blocks.filter(pl.col("model") != "formula").sort("mae_per_customer")
    chosen = purchase["model"][0]
    assert blocks.filter(pl.col("selected"))["model"].to_list() == [chosen]
    fit = q(
        con, "select model, value from marts.clv_model_fit where parameter = 'selected' and as_of_date = ?", [AS_OF]
    )
    assert dict(fit.iter_rows()) == {m: float(m == chosen) for m in ("bg_nbd", "pareto_nbd", "mbg_nbd")}
    assert q(con, "select distinct purchase_model from marts.customer_clv")["purchase_model"].to_list() == [chosen]
    # every parameter of every model has a standard error
    errors = q(
        con,
        "select model, parameter, std_error from marts.clv_model_fit where as_of_date = ? "
        "and parameter in ('r', 'alpha', 'a', 'b', 's', 'beta', 'p', 'q', 'gamma')",
        [AS_OF],
    )
    assert errors.height == 4 + 4 + 4 + 3 and (errors["std_error"] > 0).all()


def test_spearman_check_is_recorded_with_the_fit(con):
    from scipy.stats import spearmanr

    clv = q(con, "select frequency, monetary_value from marts.customer_clv where frequency > 0 and monetary_value > 0")
    expected = spearmanr(clv["frequency"].to_numpy(), clv["monetary_value"].to_numpy()).statistic
    got = con.execute(
        "select value from marts.clv_model_fit where model = 'gamma_gamma' "
        "and parameter = 'spearman_frequency_value' and as_of_date = ?",
        [AS_OF],
    ).fetchall()
    assert got[0][0] == pytest.approx(expected, rel=1e-9)


def test_cohort_survival_every_row(con, customers):
    clv = q(con, "select customer_id, p_alive, expected_purchases_365d from marts.customer_clv")
    since = AS_OF - timedelta(days=90)
    expected = (
        customers.join(clv, on="customer_id")
        .group_by("cohort_month")
        .agg(
            customers=pl.len().cast(pl.Int64),
            mean_p_alive=pl.col("p_alive").mean(),
            expected_alive_customers=pl.col("p_alive").sum(),
            active_customers_last_90d=(pl.col("last_order_date") > since).sum().cast(pl.Int64),
            expected_purchases_365d_per_customer=pl.col("expected_purchases_365d").mean(),
        )
        .with_columns(
            active_share_last_90d=pl.col("active_customers_last_90d") / pl.col("customers"),
            months_since_acquisition=(month_index(pl.lit(AS_OF_MONTH)) - month_index("cohort_month")).cast(pl.Int32),
        )
    )
    compare_frames(q(con, "select * from marts.cohort_survival"), expected, ["cohort_month"])


def test_breakeven_cac_of_cohorts_observed_for_the_whole_horizon(con, orders, customers):
    """12 months: cohorts up to 2025-01 are fully observed as of 2025-12-31; break-even = sum over months 0..11 of the
    cohort's margin in month m × 1.1^(−m/12), per acquired customer. 36 months: no cohort is that old, so every
    figure includes the model's projection, which is at least the margin already earned."""
    v = 1.1 ** (-1 / 12)
    joined = orders.join(customers.select("customer_id", "cohort_month", "acquisition_channel"), on="customer_id")
    monthly = joined.with_columns(m=(month_index("order_date") - month_index("cohort_month")).cast(pl.Int64))
    size = customers.group_by("cohort_month", "acquisition_channel").agg(n=pl.len())
    observed_12 = (
        monthly.filter(pl.col("m") <= 11)
        .group_by("cohort_month", "acquisition_channel")
        .agg(value=(pl.col("gross_margin") * pl.lit(v) ** pl.col("m")).sum())
    )
    observed_all = monthly.group_by("cohort_month", "acquisition_channel").agg(
        value=(pl.col("gross_margin") * pl.lit(v) ** pl.col("m")).sum()
    )
    mart = {
        (r["cohort_month"], r["acquisition_channel"]): r
        for r in q(con, "select * from marts.cac_payback").iter_rows(named=True)
    }
    checked = 0
    for row in size.join(observed_12, on=["cohort_month", "acquisition_channel"], how="left").iter_rows(named=True):
        got = mart[(row["cohort_month"], row["acquisition_channel"])]
        if row["cohort_month"] <= date(2025, 1, 1):
            assert got["breakeven_cac_12m_is_projected"] is False
            assert same(got["breakeven_cac_12m"], (row["value"] or 0.0) / row["n"]), (row, got)
            checked += 1
        else:
            assert got["breakeven_cac_12m_is_projected"] is True
    assert checked > 20
    for row in size.join(observed_all, on=["cohort_month", "acquisition_channel"], how="left").iter_rows(named=True):
        got = mart[(row["cohort_month"], row["acquisition_channel"])]
        assert got["breakeven_cac_36m_is_projected"] is True
        assert got["breakeven_cac_36m"] >= (row["value"] or 0.0) / row["n"] - 1e-9
        assert got["breakeven_cac_36m"] >= got["breakeven_cac_12m"] - 1e-9
        assert same(got["affordable_cac"], got["breakeven_cac_36m"] / 3.0) and got["target_ltv_to_cac"] == 3.0


def test_segment_clv_total_row_and_intervals(con):
    totals = con.execute(
        "select count(*), sum(predicted_clv_365d), sum(expected_purchases_365d) from marts.customer_clv"
    ).fetchall()[0]
    rows = q(con, "select * from marts.segment_clv")
    total = rows.filter(pl.col("segment_kind") == "total").row(0, named=True)
    assert total["segment"] == "all_customers" and total["customers"] == totals[0]
    assert total["predicted_clv_365d"] == pytest.approx(totals[1], rel=REL)
    assert total["expected_purchases_365d"] == pytest.approx(totals[2], rel=REL)
    for row in rows.iter_rows(named=True):
        assert (
            row["expected_purchases_365d_p05"] < row["expected_purchases_365d"] < row["expected_purchases_365d_p95"]
        ), row
        assert row["predicted_clv_365d_p05"] < row["predicted_clv_365d"] < row["predicted_clv_365d_p95"], row
    # the interval of all customers is a few per cent wide on a shop of this size, not 0 and not 100 %
    width = (total["predicted_clv_365d_p95"] - total["predicted_clv_365d_p05"]) / total["predicted_clv_365d"]
    assert 0.005 < width < 0.5
