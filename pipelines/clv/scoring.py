"""Per-customer CLV table and the long-format fit history, from fitted models (pure polars/numpy)."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from pipelines.clv.bgnbd import BgNbdFit, conditional_expected_purchases, p_alive
from pipelines.clv.gamma_gamma import GammaGammaFit, conditional_expected_order_value
from pipelines.clv.lifetime_value import predicted_clv

DAYS_PER_WEEK = 7.0
WEEKS_PER_YEAR = 365.25 / 7.0
MAX_LIFESPAN_YEARS = 10.0


def annual_churn_rate(orders: pl.LazyFrame, as_of: date) -> float | None:
    """Share of last year's active customers not active this year (years ending at as_of). With less than two
    years of history, the longest two equal periods are compared and the retention annualised."""
    bounds = orders.select(pl.col("order_date").min().alias("first")).collect()
    first = bounds["first"][0]
    if first is None:
        return None
    history_days = (as_of - first).days + 1
    period = min(365, history_days // 2)
    if period < 28:
        return None
    active = orders.select("customer_id", "order_date").with_columns(
        period=pl.when(pl.col("order_date") > pl.lit(as_of) - pl.duration(days=period)).then(1)
        .when(pl.col("order_date") > pl.lit(as_of) - pl.duration(days=2 * period)).then(0)
        .otherwise(None)
    ).drop_nulls("period").group_by("customer_id").agg(
        before=(pl.col("period") == 0).any(), after=(pl.col("period") == 1).any()
    ).collect()
    base = active.filter(pl.col("before"))
    if base.height == 0:
        return None
    retention = base.filter(pl.col("after")).height / base.height
    return 1.0 - retention ** (365.0 / period)


def score_customers(
    rfm: pl.DataFrame,
    customers: pl.DataFrame,
    bg: BgNbdFit | None,
    gg: GammaGammaFit | None,
    *,
    annual_discount_rate: float,
    default_margin_rate: float,
    lifespan_years: float | None,
    cac: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per customer. `rfm`: customer_id, frequency, recency, T, monetary_value (weeks).
    `customers`: customer_id, cohort_month, acquisition_channel, orders_count, net_revenue, gross_margin, aov,
    tenure_days. `cac` (optional): cohort_month, acquisition_channel, cac."""
    frame = rfm.join(customers, on="customer_id", how="inner", validate="1:1")
    x = frame["frequency"].to_numpy().astype(float)
    t_x = frame["recency"].to_numpy().astype(float)
    big_t = frame["T"].to_numpy().astype(float)
    m = frame["monetary_value"].to_numpy().astype(float)
    revenue = frame["net_revenue"].to_numpy().astype(float)
    margin = frame["gross_margin"].to_numpy().astype(float)
    # A customer's own margin rate where revenue allows; the shop default otherwise.
    with np.errstate(divide="ignore", invalid="ignore"):
        margin_rate = np.where(revenue > 0, np.clip(margin / revenue, 0.0, 1.0), default_margin_rate)
    lifespan = lifespan_years if lifespan_years is not None else np.nan
    tenure_years = frame["tenure_days"].to_numpy().astype(float) / 365.25
    annual_frequency = frame["orders_count"].to_numpy() / np.maximum(tenure_years, 1.0)
    missing = np.full(len(x), np.nan)
    horizon_days = (30, 90, 365)
    # All horizons in one call: the distinct (x, T) pairs are found once, not once per horizon.
    expected = (conditional_expected_purchases(bg, np.array(horizon_days)[:, None] / DAYS_PER_WEEK,
                                               x[None, :], t_x[None, :], big_t[None, :])
                if bg else np.tile(missing, (len(horizon_days), 1)))
    predicted = {
        "p_alive": p_alive(bg, x, t_x, big_t) if bg else missing,
        **{f"expected_purchases_{days}d": expected[i] for i, days in enumerate(horizon_days)},
        "expected_order_value": conditional_expected_order_value(gg, x, np.where(x > 0, m, 0.0)) if gg else missing,
        "predicted_clv_365d": predicted_clv(
            bg, gg, x, t_x, big_t, np.where(x > 0, m, 0.0), margin_rate=margin_rate,
            horizon_weeks=365 / DAYS_PER_WEEK, annual_discount_rate=annual_discount_rate) if bg and gg else missing,
    }
    scored = frame.select(
        "customer_id", "cohort_month", "acquisition_channel", "frequency", "recency", "T", "monetary_value",
        "orders_count",
    ).with_columns(
        historical_revenue=pl.Series(revenue),
        historical_margin=pl.Series(margin),
        **{name: pl.Series(values).fill_nan(None) for name, values in predicted.items()},
        margin_rate=pl.Series(margin_rate),
        formula_clv=pl.Series(frame["aov"].to_numpy() * annual_frequency * lifespan).fill_nan(None),
    )
    if cac is not None and cac.height:
        scored = scored.join(cac.select("cohort_month", "acquisition_channel", "cac"),
                             on=["cohort_month", "acquisition_channel"], how="left")
    else:
        scored = scored.with_columns(cac=pl.lit(None, pl.Float64))
    return scored.with_columns(
        net_clv=pl.col("predicted_clv_365d") - pl.col("cac"),
        formula_clv_net_of_cac=pl.col("formula_clv") - pl.col("cac"),
        # 1 = the top tenth by predicted CLV; ties broken by customer_id so re-runs agree.
        clv_decile=(pl.struct(pl.col("predicted_clv_365d").neg(), "customer_id").rank("ordinal") - 1)
        .mul(10).floordiv(pl.len()).add(1).cast(pl.Int32),
    ).sort("customer_id")


def model_fit_rows(as_of: date, bg: BgNbdFit | None, gg: GammaGammaFit | None,
                   extra: dict[str, dict[str, float | None]]) -> pl.DataFrame:
    """Long format: one row per (as_of_date, model, parameter). A model not fitted reports converged = 0."""
    bg_values = ({"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b, "log_likelihood": bg.log_likelihood,
                  "n_customers": bg.n_customers, "converged": float(bg.converged), "iterations": bg.iterations}
                 if bg else {"converged": 0.0})
    gg_values = ({"p": gg.p, "q": gg.q, "gamma": gg.gamma, "log_likelihood": gg.log_likelihood,
                  "n_customers": gg.n_customers, "converged": float(gg.converged), "iterations": gg.iterations}
                 if gg else {"converged": 0.0})
    rows = []
    for model, values in (("bg_nbd", bg_values), ("gamma_gamma", gg_values), *extra.items()):
        rows += [{"as_of_date": as_of, "model": model, "parameter": k, "value": float(v) if v is not None else None}
                 for k, v in values.items()]
    return pl.DataFrame(rows, schema={"as_of_date": pl.Date, "model": pl.String, "parameter": pl.String, "value": pl.Float64})


def fits_from_rows(rows: pl.DataFrame) -> tuple[BgNbdFit | None, GammaGammaFit | None]:
    """The fitted models back from one as-of block of `model_fit_rows` (columns model, parameter, value);
    a model that was not fitted (no parameters) comes back as None."""
    values = {(m, p): v for m, p, v in rows.select("model", "parameter", "value").iter_rows()}
    bg = gg = None
    if ("bg_nbd", "r") in values:
        bg = BgNbdFit(r=values["bg_nbd", "r"], alpha=values["bg_nbd", "alpha"], a=values["bg_nbd", "a"],
                      b=values["bg_nbd", "b"], log_likelihood=values["bg_nbd", "log_likelihood"],
                      converged=bool(values["bg_nbd", "converged"]), n_customers=int(values["bg_nbd", "n_customers"]),
                      iterations=int(values["bg_nbd", "iterations"]), message="from clv_model_fit")
    if ("gamma_gamma", "p") in values:
        gg = GammaGammaFit(p=values["gamma_gamma", "p"], q=values["gamma_gamma", "q"],
                           gamma=values["gamma_gamma", "gamma"], log_likelihood=values["gamma_gamma", "log_likelihood"],
                           converged=bool(values["gamma_gamma", "converged"]),
                           n_customers=int(values["gamma_gamma", "n_customers"]),
                           iterations=int(values["gamma_gamma", "iterations"]), message="from clv_model_fit")
    return bg, gg


# Months at which the projection is computed exactly; months between are interpolated linearly (the expected
# cumulative purchases are smooth and concave in t, so the error is small) to keep the cost at 10 evaluations.
PROJECTION_KNOTS = (1, 2, 3, 4, 6, 9, 12, 18, 24, 36)


def expected_margin_by_horizon(
    scored: pl.DataFrame, bg: BgNbdFit, group_cols: list[str], horizons_months: range,
    knots: tuple[int, ...] = PROJECTION_KNOTS,
) -> pl.DataFrame:
    """Expected future gross margin summed per group, for each horizon h (months after the as-of date):
    Σ_customers E[purchases in (0, h]] × E[order value] × margin rate. Feeds the predicted payback month."""
    groups = scored.select(group_cols).unique(maintain_order=True).with_row_index("group_index")
    indexed = scored.join(groups, on=group_cols, how="left")
    index = indexed["group_index"].to_numpy()
    x, t_x, big_t = (indexed[c].to_numpy().astype(float) for c in ("frequency", "recency", "T"))
    value = (indexed["expected_order_value"] * indexed["margin_rate"]).fill_null(0.0).to_numpy()
    exact = sorted({k for k in knots if k <= max(horizons_months)} | {max(horizons_months)})
    # (knots, customers) in one call: the distinct (x, T) pairs are found once, not once per knot.
    expected = conditional_expected_purchases(bg, np.array(exact, dtype=float)[:, None] * 365.25 / 12 / DAYS_PER_WEEK,
                                              x[None, :], t_x[None, :], big_t[None, :])
    at_knots = np.stack([np.bincount(index, weights=row * value, minlength=groups.height)
                         for row in expected])  # shape (knots, groups)
    months = np.array(list(horizons_months), dtype=float)
    # E[X(0)] = 0 anchors the interpolation below the first knot.
    grid = np.concatenate([[0.0], np.array(exact, dtype=float)])
    values = np.vstack([np.zeros(groups.height), at_knots])
    totals = np.stack([np.interp(months, grid, values[:, g]) for g in range(groups.height)], axis=1)
    parts = [groups.with_columns(horizon_months=pl.lit(int(h), pl.Int32), expected_margin=pl.Series(totals[i]))
             for i, h in enumerate(months)]
    return pl.concat(parts).drop("group_index")
