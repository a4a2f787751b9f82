"""CAC and payback per acquisition cohort month × channel (pure polars).

CAC = spend of the channel in the cohort month / new customers the channel brought that month.
Payback month = first month since acquisition (0 = the cohort month) where cumulative gross margin per customer
≥ CAC; null while not reached. Where spend is unknown for a cohort × channel, CAC and payback are null.
"""

from __future__ import annotations

import polars as pl

KEYS = ["cohort_month", "acquisition_channel"]


def cac_by_cohort(customers: pl.LazyFrame, spend: pl.LazyFrame) -> pl.DataFrame:
    """customers: customer_id, cohort_month, acquisition_channel. spend: spend_date, channel, spend.
    Spend in a month and channel without new customers is kept (new_customers 0, CAC null), never dropped."""
    cohorts = customers.group_by(KEYS).agg(new_customers=pl.len().cast(pl.Int64))
    monthly_spend = spend.group_by(
        cohort_month=pl.col("spend_date").dt.truncate("1mo"), acquisition_channel=pl.col("channel")
    ).agg(spend=pl.col("spend").sum())
    joined = cohorts.join(monthly_spend, on=KEYS, how="full", coalesce=True).with_columns(
        new_customers=pl.col("new_customers").fill_null(0))
    return joined.with_columns(
        cac=pl.when((pl.col("new_customers") > 0) & pl.col("spend").is_not_null())
        .then(pl.col("spend") / pl.col("new_customers")).otherwise(None)
    ).sort(KEYS).collect()


def payback_curve(customers: pl.LazyFrame, orders: pl.LazyFrame, cac: pl.DataFrame, as_of_month) -> pl.DataFrame:
    """Per cohort × channel × month since acquisition (dense up to the as-of month): cumulative gross margin per
    customer beside CAC. orders: customer_id, order_date, gross_margin."""
    months = (
        orders.join(customers, on="customer_id", how="inner")
        .with_columns(months_since_acquisition=(
            (pl.col("order_date").dt.year() - pl.col("cohort_month").dt.year()) * 12
            + pl.col("order_date").dt.month() - pl.col("cohort_month").dt.month()).cast(pl.Int32))
        .group_by(*KEYS, "months_since_acquisition").agg(margin=pl.col("gross_margin").sum())
        .collect()
    )
    cohorts = cac.filter(pl.col("new_customers") > 0)
    grid = cohorts.with_columns(
        months_observed=((as_of_month.year - pl.col("cohort_month").dt.year()) * 12
                         + as_of_month.month - pl.col("cohort_month").dt.month()).cast(pl.Int32)
    ).with_columns(months_since_acquisition=pl.int_ranges(0, pl.col("months_observed") + 1, dtype=pl.Int32)
    ).explode("months_since_acquisition")
    curve = grid.join(months, on=[*KEYS, "months_since_acquisition"], how="left").with_columns(
        margin=pl.col("margin").fill_null(0.0)
    ).sort(*KEYS, "months_since_acquisition")
    curve = curve.with_columns(
        cumulative_margin_per_customer=pl.col("margin").cum_sum().over(KEYS) / pl.col("new_customers"),
    ).with_columns(
        payback_ratio=pl.when(pl.col("cac") > 0).then(pl.col("cumulative_margin_per_customer") / pl.col("cac")),
        is_paid_back=pl.when(pl.col("cac").is_not_null()).then(pl.col("cumulative_margin_per_customer") >= pl.col("cac")),
    )
    return curve.select(*KEYS, "months_since_acquisition", "new_customers", "spend", "cac", "margin",
                        "cumulative_margin_per_customer", "payback_ratio", "is_paid_back")


def payback_summary(curve: pl.DataFrame, cac: pl.DataFrame, projected: pl.DataFrame | None) -> pl.DataFrame:
    """One row per cohort × channel. `projected` (optional): cohort_month, acquisition_channel, horizon_months,
    expected_margin (total over the cohort's customers, h months after the as-of date) from the CLV model."""
    observed = curve.group_by(KEYS).agg(
        months_observed=pl.col("months_since_acquisition").max(),
        payback_months=pl.col("months_since_acquisition").filter(pl.col("is_paid_back")).min(),
        cumulative_margin_per_customer=pl.col("cumulative_margin_per_customer").sort_by("months_since_acquisition").last(),
        margin_12m_per_customer=pl.col("cumulative_margin_per_customer").filter(pl.col("months_since_acquisition") == 11).first(),
    )
    summary = cac.join(observed, on=KEYS, how="left")
    if projected is not None and projected.height:
        ahead = projected.join(summary.select(*KEYS, "new_customers", "months_observed", "cumulative_margin_per_customer", "cac"),
                               on=KEYS, how="inner").with_columns(
            projected_margin_per_customer=pl.col("cumulative_margin_per_customer") + pl.col("expected_margin") / pl.col("new_customers"),
            month=pl.col("months_observed") + pl.col("horizon_months"),
        )
        predicted = ahead.group_by(KEYS).agg(
            predicted_payback_months=pl.col("month").filter(pl.col("projected_margin_per_customer") >= pl.col("cac")).min(),
            projected_12m=pl.col("projected_margin_per_customer").filter(pl.col("month") == 11).first(),
        )
        summary = summary.join(predicted, on=KEYS, how="left")
    else:
        summary = summary.with_columns(predicted_payback_months=pl.lit(None, pl.Int32), projected_12m=pl.lit(None, pl.Float64))
    return summary.with_columns(
        # Paid back already: the prediction is the observation.
        predicted_payback_months=pl.coalesce("payback_months", "predicted_payback_months").cast(pl.Int32),
        ltv_12m_per_customer=pl.coalesce("margin_12m_per_customer", "projected_12m"),
        ltv_12m_is_projected=pl.col("margin_12m_per_customer").is_null() & pl.col("projected_12m").is_not_null(),
    ).with_columns(
        ltv_to_cac_12m=pl.when(pl.col("cac") > 0).then(pl.col("ltv_12m_per_customer") / pl.col("cac")),
        romi=pl.when(pl.col("spend") > 0).then(
            (pl.col("cumulative_margin_per_customer") * pl.col("new_customers") - pl.col("spend")) / pl.col("spend")),
    ).select(
        *KEYS, "new_customers", "spend", "cac", "months_observed", "cumulative_margin_per_customer",
        pl.col("payback_months").cast(pl.Int32), "predicted_payback_months", "ltv_12m_per_customer",
        "ltv_12m_is_projected", "ltv_to_cac_12m", "romi",
    ).sort(KEYS)
