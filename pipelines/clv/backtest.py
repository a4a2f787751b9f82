"""Calibration / hold-out back-test of every purchase model, and of the articles' formula.

As in FHL 2005 section 4: fit on the calibration period, predict each calibration customer's repeat purchases
(purchase *days*, same convention as :mod:`pipelines.clv.rfm`) in the hold-out period, compare with what happened.
Customers first seen in the hold-out are not part of the test.

Each purchase model of :mod:`pipelines.clv.models` is back-tested on the same split, and so is the articles'
formula (AOV × purchase frequency × lifespan, from the calibration period only). Revenue is compared as well as
purchases: a model's predicted hold-out revenue is its predicted purchases × the Gamma-Gamma expected order value
(Gamma-Gamma fitted on the calibration period); the actual is the customer's hold-out revenue.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from pipelines.clv._mle import factorize
from pipelines.clv.gamma_gamma import GammaGammaFit, conditional_expected_order_value, fit_gamma_gamma
from pipelines.clv.models import FIT_FAILURES, PURCHASE_MODELS, fit_or_reason
from pipelines.clv.rfm import DAYS_PER_WEEK, rfm_summary

DEFAULT_HOLDOUT_WEEKS = 26
# With a short history a 26-week hold-out would leave too little to calibrate on.
DEFAULT_MAX_HOLDOUT_FRACTION = 1.0 / 3.0
FREQUENCY_BUCKET_CAP = 7  # buckets "0".."6" and "7+"
FORMULA = "formula"  # the block of the articles' formula CLV
DAYS_PER_YEAR = 365.25
MAX_FORMULA_LIFESPAN_YEARS = 10.0


@dataclass(frozen=True)
class ModelBacktest:
    """One model's hold-out accuracy. per_customer: customer_id, frequency, predicted, actual, predicted_revenue,
    actual_revenue (predicted_revenue null without a usable Gamma-Gamma fit), frequency_bucket."""

    model: str
    fit: object | None  # the purchase model fitted on the calibration period (None for the formula)
    overall: pl.DataFrame
    by_frequency: pl.DataFrame
    per_customer: pl.DataFrame

    @property
    def mae_per_customer(self) -> float:
        return float(self.overall["mae_per_customer"][0])


@dataclass(frozen=True)
class BacktestResult:
    """`overall`, `by_frequency`, `per_customer` and `fit` are those of the first model back-tested (BG/NBD unless
    asked otherwise); `by_model` holds every model that could be back-tested, the formula under 'formula', and
    `notes` why a model could not."""

    overall: pl.DataFrame  # one row: customers, predicted_total, actual_total, aggregate_pct_error, mae, ...
    by_frequency: pl.DataFrame  # frequency_bucket, customers, mean_predicted, mean_actual, ...
    per_customer: pl.DataFrame  # customer_id, frequency, predicted, actual, predicted_revenue, actual_revenue
    fit: object | None
    calibration_end: datetime.date
    holdout_end: datetime.date
    by_model: dict[str, ModelBacktest] = field(default_factory=dict)
    gamma_gamma: GammaGammaFit | None = None
    notes: dict[str, str] = field(default_factory=dict)

    def purchase_mae(self) -> dict[str, float]:
        """Per-customer mean absolute error of hold-out purchases, per purchase model back-tested."""
        return {name: result.mae_per_customer for name, result in self.by_model.items() if name != FORMULA}


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
    models: tuple[str, ...] = ("bg_nbd",),
    formula: bool = False,
    revenue: bool = True,
    min_repeat_customers: int = 0,
    customer_col: str = "customer_id",
    date_col: str = "order_date",
    value_col: str = "revenue",
) -> BacktestResult:
    """Fit each model of ``models`` on orders <= calibration_end, score repeat purchase days (and revenue) in
    (calibration_end, holdout_end]. Percentage error is (predicted - actual) / actual. A model whose calibration
    fit fails or does not converge is left out of ``by_model`` with its reason in ``notes``; ``formula`` adds the
    articles' formula as the block 'formula'. Raises ValueError when no model could be back-tested, or when fewer
    than ``min_repeat_customers`` customers bought again within the calibration period (checked before fitting).
    """
    if holdout_end <= calibration_end:
        raise ValueError("holdout_end must be after calibration_end")
    calibration = rfm_summary(
        orders,
        calibration_end,
        customer_col=customer_col,
        date_col=date_col,
        value_col=value_col,
        with_total_value=True,
    ).select(
        "customer_id",
        "frequency",
        "recency",
        "T",
        "monetary_value",
        "first_purchase_date",
        "purchase_days",
        pl.col("total_value").alias("calibration_revenue"),
    )
    day = pl.col(date_col).cast(pl.Date)
    holdout = (
        orders.select(
            pl.col(customer_col).alias("customer_id"),
            day.alias("day"),
            pl.col(value_col).cast(pl.Float64).alias("value"),
        )
        .filter(
            (pl.col("day") > pl.lit(calibration_end, dtype=pl.Date))
            & (pl.col("day") <= pl.lit(holdout_end, dtype=pl.Date))
        )
        .group_by("customer_id")
        .agg(actual=pl.col("day").n_unique(), actual_revenue=pl.col("value").sum())
    )
    summary = (
        calibration.join(holdout, on="customer_id", how="left")
        .with_columns(pl.col("actual").fill_null(0).cast(pl.Float64), pl.col("actual_revenue").fill_null(0.0))
        .collect()
    )

    repeaters = int((summary["frequency"] > 0).sum())
    if repeaters < min_repeat_customers:
        raise ValueError(f"only {repeaters} repeat customers before {calibration_end}")
    frequency = summary["frequency"].to_numpy().astype(np.float64)
    recency = summary["recency"].to_numpy()
    T = summary["T"].to_numpy()
    monetary = summary["monetary_value"].to_numpy()
    holdout_weeks = (holdout_end - calibration_end).days / DAYS_PER_WEEK

    notes: dict[str, str] = {}
    gamma_gamma = None
    order_value = None
    if revenue:
        gamma_gamma, note = fit_or_reason(
            "Gamma-Gamma (back-test)", fit_gamma_gamma, frequency, monetary, covariance=False
        )
        if gamma_gamma is not None and gamma_gamma.q <= 1:
            gamma_gamma, note = None, f"Gamma-Gamma (back-test) q={gamma_gamma.q:.3g} <= 1: no revenue back-test"
        if note:
            notes["gamma_gamma"] = note
        if gamma_gamma is not None:
            order_value = conditional_expected_order_value(gamma_gamma, frequency, monetary)

    # the bucket once for every model's table ("0" < "1" < ... < "6" < "7+" also holds as strings)
    base = summary.select("customer_id", "frequency", "actual", "actual_revenue", frequency_bucket=_bucket())
    by_model: dict[str, ModelBacktest] = {}
    # Every model is fitted to, and predicts, the distinct (x, t_x, T) rows (weighted by their customers), found
    # once here instead of once per model: the same fits and predictions to the last bit (a fit collapses its
    # rows into exactly these; a prediction depends on the customer's row only).
    rows = _distinct_rows(frequency, recency, T) if models else None
    for name in models:
        model = PURCHASE_MODELS[name]
        fit, note = fit_or_reason(
            f"{model.label} (back-test)", model.fit, *rows.columns, weights=rows.weights, covariance=False
        )
        if fit is None:
            notes[name] = note
            continue
        predicted = model.conditional_expected_purchases(fit, holdout_weeks, *rows.columns)[rows.inverse]
        by_model[name] = _model_backtest(
            name, fit, base, predicted, None if order_value is None else predicted * order_value
        )
    if formula:
        predicted, predicted_revenue, note = _formula_predictions(
            orders, summary, calibration_end, holdout_end, customer_col, date_col
        )
        if note:
            notes[FORMULA] = note
        else:
            by_model[FORMULA] = _model_backtest(FORMULA, None, base, predicted, predicted_revenue)
    first = next((by_model[name] for name in (*models, FORMULA) if name in by_model), None)
    if first is None or (models and not any(name in by_model for name in models)):
        raise ValueError(
            "no purchase model could be back-tested: " + "; ".join(notes[n] for n in (*models, FORMULA) if n in notes)
        )
    return BacktestResult(
        overall=first.overall,
        by_frequency=first.by_frequency,
        per_customer=first.per_customer,
        fit=first.fit,
        calibration_end=calibration_end,
        holdout_end=holdout_end,
        by_model=by_model,
        gamma_gamma=gamma_gamma,
        notes=notes,
    )


@dataclass(frozen=True)
class _DistinctRows:
    """The distinct (x, t_x, T) rows of the calibration customers: `columns` (x, t_x, T), `weights` (customers per
    row) and `inverse` (each customer's row: ``columns[i][inverse]`` is the customers' column i)."""

    columns: tuple[np.ndarray, np.ndarray, np.ndarray]
    weights: np.ndarray
    inverse: np.ndarray


def _distinct_rows(frequency: np.ndarray, recency: np.ndarray, T: np.ndarray) -> _DistinctRows:
    """Each column factorised (integers and whole-day weeks by counting, no sort), the codes combined into one
    integer key per customer, and the keys made unique (one sort of integers)."""
    factorised = [factorize(column) for column in (frequency, recency, T)]
    sizes = [max(values.size, 1) for values, _ in factorised]
    if math.prod(sizes) < np.iinfo(np.int64).max:
        key = np.ravel_multi_index([codes for _, codes in factorised], sizes)
        keys, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        codes = np.unravel_index(keys, sizes)
        columns = tuple(values[c] for (values, _), c in zip(factorised, codes))
    else:  # more distinct values than an int64 key can combine (never at realistic sizes)
        stacked, inverse, counts = np.unique(
            np.column_stack([frequency, recency, T]), axis=0, return_inverse=True, return_counts=True
        )
        columns = tuple(np.ascontiguousarray(stacked[:, i]) for i in range(3))
    return _DistinctRows(columns, counts.astype(np.float64), inverse.reshape(-1))


def _model_backtest(
    name: str, fit, base: pl.DataFrame, predicted: np.ndarray, predicted_revenue: np.ndarray | None
) -> ModelBacktest:
    per_customer = base.with_columns(
        predicted=pl.Series(predicted, dtype=pl.Float64),
        predicted_revenue=(
            pl.Series(predicted_revenue, dtype=pl.Float64)
            if predicted_revenue is not None
            else pl.lit(None, pl.Float64)
        ),
    ).select(
        "customer_id", "frequency", "predicted", "actual", "predicted_revenue", "actual_revenue", "frequency_bucket"
    )
    return ModelBacktest(name, fit, _overall_accuracy(per_customer), _accuracy_by_frequency(per_customer), per_customer)


def _formula_predictions(
    orders: pl.LazyFrame,
    summary: pl.DataFrame,
    calibration_end: datetime.date,
    holdout_end: datetime.date,
    customer_col: str,
    date_col: str,
):
    """The articles' formula from the calibration period: each customer keeps buying at their calibration rate
    (purchase days per year, over their tenure counted as at least one year, as customer_clv.formula_clv) while
    the expected lifespan lasts (1 / annual churn, capped at 10 years; churn from the calibration period only),
    each purchase worth their calibration value per purchase day. Over a hold-out of h years: rate × min(h,
    lifespan) purchases, × value per purchase day in revenue. (predicted, predicted_revenue, note)."""
    from pipelines.clv.scoring import annual_churn_rate  # scoring imports the models; imported late, once

    calibration_orders = orders.select(
        pl.col(customer_col).alias("customer_id"), pl.col(date_col).cast(pl.Date).alias("order_date")
    ).filter(pl.col("order_date") <= pl.lit(calibration_end, dtype=pl.Date))
    churn = annual_churn_rate(calibration_orders, calibration_end)
    if not churn:
        return None, None, "formula (back-test): the calibration period is too short to measure annual churn"
    lifespan = min(MAX_FORMULA_LIFESPAN_YEARS, 1.0 / churn)
    holdout_years = (holdout_end - calibration_end).days / DAYS_PER_YEAR
    tenure_days = summary.select(
        (pl.lit(calibration_end, dtype=pl.Date) - pl.col("first_purchase_date")).dt.total_days()
    )
    tenure_years = tenure_days.to_series().to_numpy().astype(np.float64) / DAYS_PER_YEAR
    purchase_days = summary["purchase_days"].to_numpy().astype(np.float64)
    rate = purchase_days / np.maximum(tenure_years, 1.0)
    predicted = rate * min(holdout_years, lifespan)
    value_per_purchase = summary["calibration_revenue"].fill_null(0.0).to_numpy() / purchase_days
    return predicted, predicted * value_per_purchase, None


def _error_columns(predicted: str, actual: str, prefix: str) -> list[pl.Expr]:
    predicted_total = pl.col(predicted).sum()
    actual_total = pl.col(actual).sum()
    has_prediction = pl.col(predicted).is_not_null().all()
    return [
        pl.when(has_prediction).then(predicted_total).alias(f"{prefix}predicted_total"),
        actual_total.alias(f"{prefix}actual_total"),
        # Undefined (null) when nobody bought in the hold-out, or nothing was predicted.
        pl.when((actual_total > 0) & has_prediction)
        .then((predicted_total - actual_total) / actual_total)
        .otherwise(None)
        .alias(f"{prefix}aggregate_pct_error"),
        (pl.col(predicted) - pl.col(actual)).abs().mean().alias(f"{prefix}mae_per_customer"),
    ]


def _overall_accuracy(per_customer: pl.DataFrame) -> pl.DataFrame:
    return per_customer.select(
        pl.len().alias("customers"),
        *_error_columns("predicted", "actual", ""),
        *_error_columns("predicted_revenue", "actual_revenue", "revenue_"),
    )


def _bucket() -> pl.Expr:
    return (
        pl.when(pl.col("frequency") >= FREQUENCY_BUCKET_CAP)
        .then(pl.lit(f"{FREQUENCY_BUCKET_CAP}+"))
        .otherwise(pl.col("frequency").cast(pl.String))
    )


def _accuracy_by_frequency(per_customer: pl.DataFrame) -> pl.DataFrame:
    bucket = pl.col("frequency_bucket") if "frequency_bucket" in per_customer.columns else _bucket()
    return (
        per_customer.group_by(bucket.alias("frequency_bucket"))
        .agg(
            pl.len().alias("customers"),
            pl.col("predicted").mean().alias("mean_predicted"),
            pl.col("actual").mean().alias("mean_actual"),
            *_error_columns("predicted", "actual", ""),
            pl.col("predicted_revenue").mean().alias("mean_predicted_revenue"),
            pl.col("actual_revenue").mean().alias("mean_actual_revenue"),
            *_error_columns("predicted_revenue", "actual_revenue", "revenue_"),
        )
        .sort("frequency_bucket")
    )


def backtest_table(result: BacktestResult) -> pl.DataFrame:
    """Every back-tested model as one block of rows: 'all' (overall) and one row per frequency bucket, with the
    model's name in `model` (the formula under 'formula')."""
    blocks = []
    for name, model in result.by_model.items():
        overall = model.overall.with_columns(
            frequency_bucket=pl.lit("all"),
            mean_predicted=pl.col("predicted_total") / pl.col("customers"),
            mean_actual=pl.col("actual_total") / pl.col("customers"),
            mean_predicted_revenue=pl.col("revenue_predicted_total") / pl.col("customers"),
            mean_actual_revenue=pl.col("revenue_actual_total") / pl.col("customers"),
        )
        blocks.append(pl.concat([overall, model.by_frequency], how="diagonal_relaxed").with_columns(model=pl.lit(name)))
    return pl.concat(blocks, how="diagonal_relaxed") if blocks else pl.DataFrame()


__all__ = [
    "FIT_FAILURES",
    "FORMULA",
    "BacktestResult",
    "ModelBacktest",
    "backtest_table",
    "calibration_holdout_backtest",
    "default_backtest_split",
]
