"""Calibration / hold-out back-test of the BG/NBD purchase forecast.

As in FHL 2005 section 4: fit on the calibration period, predict each
calibration customer's repeat purchases (purchase *days*, same convention as
:mod:`pipelines.clv.rfm`) in the hold-out period, compare with what happened.
Customers first seen in the hold-out are not part of the test.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import polars as pl

from pipelines.clv.bgnbd import BgNbdFit, conditional_expected_purchases, fit_bgnbd
from pipelines.clv.rfm import DAYS_PER_WEEK, rfm_summary

DEFAULT_HOLDOUT_WEEKS = 26
# With a short history a 26-week hold-out would leave too little to calibrate on.
DEFAULT_MAX_HOLDOUT_FRACTION = 1.0 / 3.0
FREQUENCY_BUCKET_CAP = 7  # buckets "0".."6" and "7+"


@dataclass(frozen=True)
class BacktestResult:
    overall: pl.DataFrame  # one row: customers, predicted_total, actual_total, aggregate_pct_error, mae_per_customer
    by_frequency: pl.DataFrame  # frequency_bucket, customers, mean_predicted, mean_actual
    per_customer: pl.DataFrame  # customer_id, frequency, predicted, actual
    fit: BgNbdFit
    calibration_end: datetime.date
    holdout_end: datetime.date


def default_backtest_split(
    first_order_date: datetime.date,
    as_of: datetime.date,
    *,
    holdout_weeks: int = DEFAULT_HOLDOUT_WEEKS,
    max_holdout_fraction: float = DEFAULT_MAX_HOLDOUT_FRACTION,
) -> tuple[datetime.date, datetime.date]:
    """(calibration_end, holdout_end): the hold-out is the last ``holdout_weeks``
    before ``as_of``, shortened to ``max_holdout_fraction`` of the history
    when the history is shorter than ``holdout_weeks / max_holdout_fraction``.
    """
    history_days = (as_of - first_order_date).days
    if history_days < 2:
        raise ValueError("need at least two days of history to split calibration and hold-out")
    holdout_days = min(holdout_weeks * 7, max(1, int(history_days * max_holdout_fraction)))
    return as_of - datetime.timedelta(days=holdout_days), as_of


def calibration_holdout_backtest(
    orders: pl.LazyFrame,
    calibration_end: datetime.date,
    holdout_end: datetime.date,
    *,
    customer_col: str = "customer_id",
    date_col: str = "order_date",
    value_col: str = "revenue",
) -> BacktestResult:
    """Fit BG/NBD on orders <= calibration_end, score repeat purchase days in
    (calibration_end, holdout_end]. Percentage error is (predicted - actual) / actual.
    """
    if holdout_end <= calibration_end:
        raise ValueError("holdout_end must be after calibration_end")
    calibration = rfm_summary(
        orders, calibration_end, customer_col=customer_col, date_col=date_col, value_col=value_col
    ).select("customer_id", "frequency", "recency", "T")
    holdout_purchase_days = (
        orders.select(pl.col(customer_col).alias("customer_id"), pl.col(date_col).cast(pl.Date).alias("day"))
        .filter(
            (pl.col("day") > pl.lit(calibration_end, dtype=pl.Date))
            & (pl.col("day") <= pl.lit(holdout_end, dtype=pl.Date))
        )
        .group_by("customer_id")
        .agg(pl.col("day").n_unique().alias("actual"))
    )
    summary = (
        calibration.join(holdout_purchase_days, on="customer_id", how="left")
        .with_columns(pl.col("actual").fill_null(0).cast(pl.Float64))
        .collect()
    )

    frequency = summary["frequency"].to_numpy()
    recency = summary["recency"].to_numpy()
    T = summary["T"].to_numpy()
    fit = fit_bgnbd(frequency, recency, T)
    holdout_weeks = (holdout_end - calibration_end).days / DAYS_PER_WEEK
    predicted = conditional_expected_purchases(fit, holdout_weeks, frequency, recency, T)

    per_customer = summary.select("customer_id", "frequency", "actual").with_columns(
        predicted=pl.Series(predicted, dtype=pl.Float64)
    )
    return BacktestResult(
        overall=_overall_accuracy(per_customer),
        by_frequency=_accuracy_by_frequency(per_customer),
        per_customer=per_customer.select("customer_id", "frequency", "predicted", "actual"),
        fit=fit,
        calibration_end=calibration_end,
        holdout_end=holdout_end,
    )


def _overall_accuracy(per_customer: pl.DataFrame) -> pl.DataFrame:
    predicted_total = pl.col("predicted").sum()
    actual_total = pl.col("actual").sum()
    return per_customer.select(
        pl.len().alias("customers"),
        predicted_total.alias("predicted_total"),
        actual_total.alias("actual_total"),
        # Undefined (null) when nobody bought in the hold-out.
        pl.when(actual_total > 0)
        .then((predicted_total - actual_total) / actual_total)
        .otherwise(None)
        .alias("aggregate_pct_error"),
        (pl.col("predicted") - pl.col("actual")).abs().mean().alias("mae_per_customer"),
    )


def _accuracy_by_frequency(per_customer: pl.DataFrame) -> pl.DataFrame:
    bucket = (
        pl.when(pl.col("frequency") >= FREQUENCY_BUCKET_CAP)
        .then(pl.lit(f"{FREQUENCY_BUCKET_CAP}+"))
        .otherwise(pl.col("frequency").cast(pl.String))
    )
    # "0" < "1" < ... < "6" < "7+" also holds as strings.
    return (
        per_customer.group_by(bucket.alias("frequency_bucket"))
        .agg(
            pl.len().alias("customers"),
            pl.col("predicted").mean().alias("mean_predicted"),
            pl.col("actual").mean().alias("mean_actual"),
        )
        .sort("frequency_bucket")
    )


__all__ = ["BacktestResult", "calibration_holdout_backtest", "default_backtest_split"]
