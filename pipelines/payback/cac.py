"""CAC and payback per acquisition cohort month × channel (pure polars).

CAC = spend of the channel in the cohort month / new customers the channel brought that month.
Payback month = first month since acquisition (0 = the cohort month) where cumulative gross margin per customer
≥ CAC; null while not reached. Where spend is unknown for a cohort × channel, CAC and payback are null.
"""

from __future__ import annotations

from datetime import date

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
        new_customers=pl.col("new_customers").fill_null(0)
    )
    return (
        joined.with_columns(
            cac=pl.when((pl.col("new_customers") > 0) & pl.col("spend").is_not_null())
            .then(pl.col("spend") / pl.col("new_customers"))
            .otherwise(None)
        )
        .sort(KEYS)
        .collect()
    )


def payback_curve(customers: pl.LazyFrame, orders: pl.LazyFrame, cac: pl.DataFrame, as_of_month) -> pl.DataFrame:
    """Per cohort × channel × month since acquisition (dense up to the as-of month): cumulative gross margin per
    customer beside CAC. orders: customer_id, order_date, gross_margin."""
    months = (
        orders.join(customers, on="customer_id", how="inner")
        .with_columns(
            months_since_acquisition=(
                (pl.col("order_date").dt.year() - pl.col("cohort_month").dt.year()) * 12
                + pl.col("order_date").dt.month()
                - pl.col("cohort_month").dt.month()
            ).cast(pl.Int32)
        )
        .group_by(*KEYS, "months_since_acquisition")
        .agg(margin=pl.col("gross_margin").sum())
        .collect()
    )
    cohorts = cac.filter(pl.col("new_customers") > 0)
    grid = (
        cohorts.with_columns(
            months_observed=(
                (as_of_month.year - pl.col("cohort_month").dt.year()) * 12
                + as_of_month.month
                - pl.col("cohort_month").dt.month()
            ).cast(pl.Int32)
        )
        .with_columns(months_since_acquisition=pl.int_ranges(0, pl.col("months_observed") + 1, dtype=pl.Int32))
        .explode("months_since_acquisition")
    )
    curve = (
        grid.join(months, on=[*KEYS, "months_since_acquisition"], how="left")
        .with_columns(margin=pl.col("margin").fill_null(0.0))
        .sort(*KEYS, "months_since_acquisition")
    )
    curve = curve.with_columns(
        cumulative_margin_per_customer=pl.col("margin").cum_sum().over(KEYS) / pl.col("new_customers"),
    ).with_columns(
        payback_ratio=pl.when(pl.col("cac") > 0).then(pl.col("cumulative_margin_per_customer") / pl.col("cac")),
        is_paid_back=pl.when(pl.col("cac").is_not_null()).then(
            pl.col("cumulative_margin_per_customer") >= pl.col("cac")
        ),
    )
    return curve.select(
        *KEYS,
        "months_since_acquisition",
        "new_customers",
        "spend",
        "cac",
        "margin",
        "cumulative_margin_per_customer",
        "payback_ratio",
        "is_paid_back",
    )


def payback_summary(curve: pl.DataFrame, cac: pl.DataFrame, projected: pl.DataFrame | None) -> pl.DataFrame:
    """One row per cohort × channel. `projected` (optional): cohort_month, acquisition_channel, horizon_months,
    expected_margin (total over the cohort's customers, h months after the as-of date) from the CLV model."""
    observed = curve.group_by(KEYS).agg(
        months_observed=pl.col("months_since_acquisition").max(),
        payback_months=pl.col("months_since_acquisition").filter(pl.col("is_paid_back")).min(),
        cumulative_margin_per_customer=pl.col("cumulative_margin_per_customer")
        .sort_by("months_since_acquisition")
        .last(),
        margin_12m_per_customer=pl.col("cumulative_margin_per_customer")
        .filter(pl.col("months_since_acquisition") == 11)
        .first(),
    )
    summary = cac.join(observed, on=KEYS, how="left")
    if projected is not None and projected.height:
        ahead = projected.join(
            summary.select(*KEYS, "new_customers", "months_observed", "cumulative_margin_per_customer", "cac"),
            on=KEYS,
            how="inner",
        ).with_columns(
            projected_margin_per_customer=pl.col("cumulative_margin_per_customer")
            + pl.col("expected_margin") / pl.col("new_customers"),
            month=pl.col("months_observed") + pl.col("horizon_months"),
        )
        predicted = ahead.group_by(KEYS).agg(
            predicted_payback_months=pl.col("month")
            .filter(pl.col("projected_margin_per_customer") >= pl.col("cac"))
            .min(),
            projected_12m=pl.col("projected_margin_per_customer").filter(pl.col("month") == 11).first(),
        )
        summary = summary.join(predicted, on=KEYS, how="left")
    else:
        summary = summary.with_columns(
            predicted_payback_months=pl.lit(None, pl.Int32), projected_12m=pl.lit(None, pl.Float64)
        )
    return (
        summary.with_columns(
            # Paid back already: the prediction is the observation.
            predicted_payback_months=pl.coalesce("payback_months", "predicted_payback_months").cast(pl.Int32),
            ltv_12m_per_customer=pl.coalesce("margin_12m_per_customer", "projected_12m"),
            ltv_12m_is_projected=pl.col("margin_12m_per_customer").is_null() & pl.col("projected_12m").is_not_null(),
        )
        .with_columns(
            ltv_to_cac_12m=pl.when(pl.col("cac") > 0).then(pl.col("ltv_12m_per_customer") / pl.col("cac")),
            romi=pl.when(pl.col("spend") > 0).then(
                (pl.col("cumulative_margin_per_customer") * pl.col("new_customers") - pl.col("spend")) / pl.col("spend")
            ),
        )
        .select(
            *KEYS,
            "new_customers",
            "spend",
            "cac",
            "months_observed",
            "cumulative_margin_per_customer",
            pl.col("payback_months").cast(pl.Int32),
            "predicted_payback_months",
            "ltv_12m_per_customer",
            "ltv_12m_is_projected",
            "ltv_to_cac_12m",
            "romi",
        )
        .sort(KEYS)
    )


BREAKEVEN_HORIZONS_MONTHS = (12, 36)


def breakeven_cac(
    curve: pl.DataFrame,
    projected: pl.DataFrame | None,
    as_of: date,
    *,
    annual_discount_rate: float,
    target_ltv_to_cac: float,
    horizons: tuple[int, ...] = BREAKEVEN_HORIZONS_MONTHS,
) -> pl.DataFrame:
    """Per cohort × channel, the most an acquired customer may cost: the expected discounted gross margin per
    acquired customer over the first h months (months 0 .. h−1 since acquisition, 0 = the cohort month).

    Months already observed count with the margin the cohort earned in them (the as-of month up to the as-of date);
    the rest of the horizon with the margin the purchase model expects from the cohort's customers (`projected`:
    cohort_month, acquisition_channel, month_offset (0 = the rest of the as-of month), expected_margin, total over the
    cohort's customers; None without a model). Month m since acquisition is discounted to the acquisition month at
    the annual rate: × (1 + d)^(−m/12). Where part of the horizon is still to come and there is no projection, the
    figure is null. affordable_cac = breakeven_cac_36m / target_ltv_to_cac (the CAC that keeps the target LTV:CAC).
    `curve`: payback_curve's rows (cohort_month, acquisition_channel, months_since_acquisition, new_customers,
    margin)."""
    monthly_discount = (1.0 + annual_discount_rate) ** (-1.0 / 12.0)
    observed = curve.select(*KEYS, "months_since_acquisition", "new_customers", "margin").with_columns(
        months_observed=pl.col("months_since_acquisition").max().over(KEYS),
        discount=pl.lit(monthly_discount) ** pl.col("months_since_acquisition"),
    )
    cohorts = observed.group_by(KEYS).agg(
        new_customers=pl.col("new_customers").first(), months_observed=pl.col("months_observed").first()
    )
    as_of_index = as_of.year * 12 + as_of.month - 1
    columns = []
    for h in horizons:
        observed_h = (
            observed.filter(pl.col("months_since_acquisition") <= h - 1)
            .group_by(KEYS)
            .agg(observed=(pl.col("margin") * pl.col("discount")).sum())
        )
        # The horizon's last day: the last day of month h−1 since acquisition. After the as-of date: part to come.
        last_month_index = pl.col("cohort_month").dt.year() * 12 + pl.col("cohort_month").dt.month() - 1 + (h - 1)
        to_come = (last_month_index > as_of_index) | (
            (last_month_index == as_of_index) & pl.lit(as_of.day < _days_in_month(as_of))
        )
        part = cohorts.join(observed_h, on=KEYS, how="left").with_columns(to_come=to_come)
        if projected is not None and projected.height:
            ahead = (
                projected.join(cohorts.select(*KEYS, "months_observed"), on=KEYS, how="inner")
                .with_columns(
                    month=pl.col("months_observed") + pl.col("month_offset"),
                )
                .filter(pl.col("month") <= h - 1)
                .group_by(KEYS)
                .agg(predicted=(pl.col("expected_margin") * pl.lit(monthly_discount) ** pl.col("month")).sum())
            )
            part = part.join(ahead, on=KEYS, how="left").with_columns(pl.col("predicted").fill_null(0.0))
        else:
            part = part.with_columns(predicted=pl.lit(None, pl.Float64))
        total = pl.col("observed").fill_null(0.0) + pl.when(pl.col("to_come")).then(pl.col("predicted")).otherwise(0.0)
        columns.append(
            part.select(
                *KEYS,
                pl.when(pl.col("new_customers") > 0).then(total / pl.col("new_customers")).alias(f"breakeven_cac_{h}m"),
                pl.col("to_come").alias(f"breakeven_cac_{h}m_is_projected"),
            )
        )
    result = cohorts.select(KEYS)
    for frame in columns:
        result = result.join(frame, on=KEYS, how="left")
    longest = max(horizons)
    return result.with_columns(
        target_ltv_to_cac=pl.lit(float(target_ltv_to_cac)),
        affordable_cac=pl.col(f"breakeven_cac_{longest}m") / float(target_ltv_to_cac),
    ).sort(KEYS)


def _days_in_month(day: date) -> int:
    following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return (following - date(day.year, day.month, 1)).days
