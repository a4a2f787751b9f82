"""Per-customer CLV table and the long-format fit history, from fitted models (pure polars/numpy).

The purchase model is any of :mod:`pipelines.clv.models` (BG/NBD, Pareto/NBD, MBG/NBD): the functions here take
its fit and find its functions in the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta

import numpy as np
import polars as pl

from pipelines.clv._mle import factorize
from pipelines.clv.gamma_gamma import GammaGammaFit, conditional_expected_order_value
from pipelines.clv.lifetime_value import predicted_clv
from pipelines.clv.models import GAMMA_GAMMA_PARAMETERS, PURCHASE_MODELS, model_of
from pipelines.clv.rfm import DAYS_PER_WEEK

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
    active = (
        orders.select("customer_id", "order_date")
        .with_columns(
            period=pl.when(pl.col("order_date") > pl.lit(as_of) - pl.duration(days=period))
            .then(1)
            .when(pl.col("order_date") > pl.lit(as_of) - pl.duration(days=2 * period))
            .then(0)
            .otherwise(None)
        )
        .drop_nulls("period")
        .group_by("customer_id")
        .agg(before=(pl.col("period") == 0).any(), after=(pl.col("period") == 1).any())
        .collect()
    )
    base = active.filter(pl.col("before"))
    if base.height == 0:
        return None
    retention = base.filter(pl.col("after")).height / base.height
    return 1.0 - retention ** (365.0 / period)


def score_customers(
    rfm: pl.DataFrame,
    customers: pl.DataFrame,
    bg,
    gg: GammaGammaFit | None,
    *,
    annual_discount_rate: float,
    default_margin_rate: float,
    lifespan_years: float | None,
    cac: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per customer. `rfm`: customer_id, frequency, recency, T, monetary_value (weeks).
    `customers`: customer_id, cohort_month, acquisition_channel, orders_count, net_revenue, gross_margin, aov,
    tenure_days. `bg`: the fitted purchase model (any of pipelines.clv.models; None: the predictive columns are
    null), named in the column purchase_model. `cac` (optional): cohort_month, acquisition_channel, cac."""
    model = model_of(bg) if bg is not None else None
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
    expected = (
        model.conditional_expected_purchases(
            bg, np.array(horizon_days)[:, None] / DAYS_PER_WEEK, x[None, :], t_x[None, :], big_t[None, :]
        )
        if model
        else np.tile(missing, (len(horizon_days), 1))
    )
    predicted = {
        "p_alive": model.p_alive(bg, x, t_x, big_t) if model else missing,
        **{f"expected_purchases_{days}d": expected[i] for i, days in enumerate(horizon_days)},
        "expected_order_value": conditional_expected_order_value(gg, x, np.where(x > 0, m, 0.0)) if gg else missing,
        "predicted_clv_365d": predicted_clv(
            bg,
            gg,
            x,
            t_x,
            big_t,
            np.where(x > 0, m, 0.0),
            margin_rate=margin_rate,
            horizon_weeks=365 / DAYS_PER_WEEK,
            annual_discount_rate=annual_discount_rate,
        )
        if bg and gg
        else missing,
    }
    scored = frame.select(
        "customer_id",
        "cohort_month",
        "acquisition_channel",
        "frequency",
        "recency",
        "T",
        "monetary_value",
        "orders_count",
    ).with_columns(
        historical_revenue=pl.Series(revenue),
        historical_margin=pl.Series(margin),
        **{name: pl.Series(values).fill_nan(None) for name, values in predicted.items()},
        margin_rate=pl.Series(margin_rate),
        formula_clv=pl.Series(frame["aov"].to_numpy() * annual_frequency * lifespan).fill_nan(None),
        purchase_model=pl.lit(model.name if model else None, pl.String),
    )
    if cac is not None and cac.height:
        scored = scored.join(
            cac.select("cohort_month", "acquisition_channel", "cac"),
            on=["cohort_month", "acquisition_channel"],
            how="left",
        )
    else:
        scored = scored.with_columns(cac=pl.lit(None, pl.Float64))
    return scored.with_columns(
        net_clv=pl.col("predicted_clv_365d") - pl.col("cac"),
        formula_clv_net_of_cac=pl.col("formula_clv") - pl.col("cac"),
        # 1 = the top tenth by predicted CLV; ties broken by customer_id so re-runs agree.
        clv_decile=(pl.struct(pl.col("predicted_clv_365d").neg(), "customer_id").rank("ordinal") - 1)
        .mul(10)
        .floordiv(pl.len())
        .add(1)
        .cast(pl.Int32),
    ).sort("customer_id")


FIT_SCHEMA = {
    "as_of_date": pl.Date,
    "model": pl.String,
    "parameter": pl.String,
    "value": pl.Float64,
    "std_error": pl.Float64,
}


def _fit_values(fit, parameter_names: tuple[str, ...]) -> list[tuple[str, float | None, float | None]]:
    """(parameter, value, standard error) rows of one fit: its parameters with their standard errors, the
    correlations of their estimates (corr_<a>_<b>, kept so that a later run reusing the fit can draw from the same
    asymptotic normal), log_likelihood, n_customers, converged, iterations. A fit that is None: converged 0."""
    if fit is None:
        return [("converged", 0.0, None)]
    errors = fit.std_errors or (None,) * len(parameter_names)
    rows = [(name, value, error) for name, value, error in zip(parameter_names, fit.params, errors)]
    if fit.covariance is not None:
        covariance = np.asarray(fit.covariance)
        scale = np.sqrt(np.diag(covariance))
        for i, first in enumerate(parameter_names):
            for j in range(i + 1, len(parameter_names)):
                rows.append((f"corr_{first}_{parameter_names[j]}", covariance[i, j] / (scale[i] * scale[j]), None))
    rows += [
        ("log_likelihood", fit.log_likelihood, None),
        ("n_customers", fit.n_customers, None),
        ("converged", float(fit.converged), None),
        ("iterations", fit.iterations, None),
    ]
    return rows


def model_fit_rows(
    as_of: date,
    purchase_fits,
    gg: GammaGammaFit | None,
    extra: Mapping[str, Mapping[str, float | None]],
    *,
    selected: str | None = None,
) -> pl.DataFrame:
    """Long format: one row per (as_of_date, model, parameter), with `value` and, on parameter rows, `std_error`.

    `purchase_fits`: {model name: fit or None (not fitted or not converged)} (a single BG/NBD fit or None is read as
    {'bg_nbd': it}). Each purchase model gets a row `selected` (1 for the model that scored the customers, 0 for the
    others; `selected` defaults to BG/NBD when it alone is given). A model not fitted reports converged = 0.
    `extra`: further rows {model: {parameter: value}} (e.g. back-test errors, the formula's lifespan)."""
    if not isinstance(purchase_fits, Mapping):
        purchase_fits = {"bg_nbd": purchase_fits}
        selected = selected if selected is not None else ("bg_nbd" if purchase_fits["bg_nbd"] is not None else None)
    rows = []
    for name, fit in purchase_fits.items():
        values = _fit_values(fit, PURCHASE_MODELS[name].parameter_names)
        values.append(("selected", float(name == selected), None))
        rows += [(name, *v) for v in values]
    rows += [("gamma_gamma", *v) for v in _fit_values(gg, GAMMA_GAMMA_PARAMETERS)]
    for model, values in extra.items():
        rows += [(model, k, v, None) for k, v in values.items()]
    return pl.DataFrame(
        [
            {
                "as_of_date": as_of,
                "model": model,
                "parameter": parameter,
                "value": float(value) if value is not None else None,
                "std_error": float(error) if error is not None else None,
            }
            for model, parameter, value, error in rows
        ],
        schema=FIT_SCHEMA,
    )


def _covariance_from_rows(values: dict, errors: dict, model: str, names: tuple[str, ...]) -> np.ndarray | None:
    scale = [errors.get((model, name)) for name in names]
    if any(v is None or not np.isfinite(v) for v in scale):
        return None
    correlation = np.eye(len(names))
    for i, first in enumerate(names):
        for j in range(i + 1, len(names)):
            rho = values.get((model, f"corr_{first}_{names[j]}"))
            if rho is None:
                return None
            correlation[i, j] = correlation[j, i] = rho
    scale = np.asarray(scale, dtype=np.float64)
    return correlation * np.outer(scale, scale)


def purchase_fits_from_rows(rows: pl.DataFrame) -> tuple[dict[str, object], str | None, GammaGammaFit | None]:
    """({purchase model: its fit} for the models with parameters, the selected model's name, Gamma-Gamma) from one
    as-of block of `model_fit_rows` (columns model, parameter, value and, where present, std_error). Blocks
    written before the models were compared name no selected model: BG/NBD was the one used."""
    has_errors = "std_error" in rows.columns
    columns = ["model", "parameter", "value"] + (["std_error"] if has_errors else [])
    values, errors = {}, {}
    for row in rows.select(columns).iter_rows():
        values[(row[0], row[1])] = row[2]
        if has_errors and row[3] is not None:
            errors[(row[0], row[1])] = row[3]
    fits = {}
    for name, model in PURCHASE_MODELS.items():
        if (name, model.parameter_names[0]) in values:
            stored = {k[1]: v for k, v in values.items() if k[0] == name and v is not None}
            fits[name] = model.from_values(stored, _covariance_from_rows(values, errors, name, model.parameter_names))
    selected = next((name for name in PURCHASE_MODELS if values.get((name, "selected")) == 1.0), None)
    if selected is None and not any((name, "selected") in values for name in PURCHASE_MODELS) and "bg_nbd" in fits:
        selected = "bg_nbd"
    gg = None
    if ("gamma_gamma", "p") in values:
        gg = GammaGammaFit(
            p=values["gamma_gamma", "p"],
            q=values["gamma_gamma", "q"],
            gamma=values["gamma_gamma", "gamma"],
            log_likelihood=values["gamma_gamma", "log_likelihood"],
            converged=bool(values["gamma_gamma", "converged"]),
            n_customers=int(values["gamma_gamma", "n_customers"]),
            iterations=int(values["gamma_gamma", "iterations"]),
            message="from clv_model_fit",
            covariance=_covariance_from_rows(values, errors, "gamma_gamma", GAMMA_GAMMA_PARAMETERS),
        )
    return fits, selected, gg


def fits_from_rows(rows: pl.DataFrame) -> tuple[object | None, GammaGammaFit | None]:
    """(the selected purchase model's fit, Gamma-Gamma) back from one as-of block of `model_fit_rows`; a model
    that was not fitted (no parameters) comes back as None."""
    fits, selected, gg = purchase_fits_from_rows(rows)
    return (fits[selected] if selected is not None else None), gg


# Months at which the projection is computed exactly; months between are interpolated linearly (the expected
# cumulative purchases are smooth and concave in t, so the error is small) to keep the cost at 10 evaluations.
PROJECTION_KNOTS = (1, 2, 3, 4, 6, 9, 12, 18, 24, 36)


def expected_margin_by_horizon(
    scored: pl.DataFrame,
    bg,
    group_cols: list[str],
    horizons_months: range,
    knots: tuple[int, ...] = PROJECTION_KNOTS,
) -> pl.DataFrame:
    """Expected future gross margin summed per group, for each horizon h (months after the as-of date):
    Σ_customers E[purchases in (0, h]] × E[order value] × margin rate, with `bg` any fitted purchase model.
    Feeds the predicted payback month."""
    groups = scored.select(group_cols).unique(maintain_order=True).with_row_index("group_index")
    indexed = scored.join(groups, on=group_cols, how="left")
    index = indexed["group_index"].to_numpy()
    x, t_x, big_t = (indexed[c].to_numpy().astype(float) for c in ("frequency", "recency", "T"))
    value = (indexed["expected_order_value"] * indexed["margin_rate"]).fill_null(0.0).to_numpy()
    exact = sorted({k for k in knots if k <= max(horizons_months)} | {max(horizons_months)})
    # (knots, customers) in one call: the distinct (x, T) pairs are found once, not once per knot.
    weeks = np.array(exact, dtype=float)[:, None] * 365.25 / 12 / DAYS_PER_WEEK
    expected = model_of(bg).conditional_expected_purchases(bg, weeks, x[None, :], t_x[None, :], big_t[None, :])
    at_knots = np.stack(
        [np.bincount(index, weights=row * value, minlength=groups.height) for row in expected]
    )  # shape (knots, groups)
    months = np.array(list(horizons_months), dtype=float)
    # E[X(0)] = 0 anchors the interpolation below the first knot.
    grid = np.concatenate([[0.0], np.array(exact, dtype=float)])
    values = np.vstack([np.zeros(groups.height), at_knots])
    totals = np.stack([np.interp(months, grid, values[:, g]) for g in range(groups.height)], axis=1)
    parts = [
        groups.with_columns(horizon_months=pl.lit(int(h), pl.Int32), expected_margin=pl.Series(totals[i]))
        for i, h in enumerate(months)
    ]
    return pl.concat(parts).drop("group_index")


def month_end_weeks(as_of: date, months_ahead: int) -> np.ndarray:
    """Weeks from the as-of date to the last day of each calendar month from the as-of month on (j = 0: the rest
    of the as-of month, 0 when the as-of date is its last day): the model's time of a purchase on day d is
    (d - as_of) / 7 weeks after T, so purchases up to the last day L of a month are those within (L - as_of) / 7."""
    first = date(as_of.year, as_of.month, 1)
    ends = []
    for j in range(months_ahead):
        index = first.year * 12 + first.month - 1 + j + 1  # the month after month j
        next_first = date(index // 12, index % 12 + 1, 1)
        ends.append((next_first - as_of).days - 1)
    return np.asarray(ends, dtype=np.float64) / DAYS_PER_WEEK


def expected_margin_by_calendar_month(
    scored: pl.DataFrame,
    fit,
    group_cols: list[str],
    as_of: date,
    months_ahead: int,
) -> pl.DataFrame:
    """Expected gross margin per group in each calendar month from the as-of month on: month_offset j = 0 is what
    remains of the as-of month after the as-of date, j = 1 the next month, ... (exact month ends, no interpolation):
    Σ_customers (E[purchases up to the end of month j] − E[... up to the end of month j−1]) × E[order value] ×
    margin rate, with `fit` any fitted purchase model. Columns: group_cols, month_offset, expected_margin.
    `scored` as customer_clv: frequency, recency, T, expected_order_value, margin_rate and the group columns.

    Every model's expectation is P(alive | x, t_x, T) × (expected purchases while alive | x, T), so the customers'
    P(alive) × value is summed per group and distinct (x, T) first, and the time-dependent factor is evaluated once
    per distinct (x, T) and month end (1.6 M customers: 58 k pairs), not once per customer and month end."""
    groups = scored.select(group_cols).unique(maintain_order=True).with_row_index("group_index")
    indexed = scored.join(groups, on=group_cols, how="left")
    x, t_x, big_t = (indexed[c].to_numpy().astype(float) for c in ("frequency", "recency", "T"))
    value = (indexed["expected_order_value"] * indexed["margin_rate"]).fill_null(0.0).to_numpy()
    model = model_of(fit)
    weights = (
        pl.DataFrame(
            {
                "x": x,
                "T": big_t,
                "group_index": indexed["group_index"],
                "weight": model.p_alive(fit, x, t_x, big_t) * value,
            }
        )
        .group_by("x", "T", "group_index")
        .agg(pl.col("weight").sum())
    )
    pair_x, pair_code = factorize(weights["x"].to_numpy())
    pair_t, t_code = factorize(weights["T"].to_numpy())
    pair_key = pair_code * pair_t.size + t_code
    distinct_keys, row_pair = np.unique(pair_key, return_inverse=True)
    ends = month_end_weeks(as_of, months_ahead)
    if_alive = model.expected_purchases_if_alive(
        fit, ends[:, None], pair_x[distinct_keys // pair_t.size][None, :], pair_t[distinct_keys % pair_t.size][None, :]
    )  # (months, pairs)
    group_index = weights["group_index"].to_numpy()
    row_weight = weights["weight"].to_numpy()
    cumulative = np.stack(
        [
            np.bincount(group_index, weights=if_alive[j][row_pair.reshape(-1)] * row_weight, minlength=groups.height)
            for j in range(months_ahead)
        ]
    )
    monthly = np.diff(cumulative, axis=0, prepend=0.0)
    return pl.concat(
        [
            groups.with_columns(month_offset=pl.lit(j, pl.Int32), expected_margin=pl.Series(monthly[j]))
            for j in range(months_ahead)
        ]
    ).drop("group_index")


def cohort_survival_table(
    scored: pl.DataFrame, customers: pl.DataFrame, as_of: date, active_days: int = 90
) -> pl.DataFrame:
    """Per acquisition cohort month as of the run: customers, mean P(alive) from the purchase model (with the
    expected number still alive) beside what was observed: the share (and number) of the cohort's customers who
    ordered within the last `active_days` days. `scored`: customer_id, cohort_month, p_alive,
    expected_purchases_365d, purchase_model; `customers`: customer_id, last_order_date."""
    since = as_of - timedelta(days=active_days)
    joined = scored.join(customers.select("customer_id", "last_order_date"), on="customer_id", how="left")
    return (
        joined.group_by("cohort_month")
        .agg(
            customers=pl.len().cast(pl.Int64),
            mean_p_alive=pl.col("p_alive").mean(),
            expected_alive_customers=pl.col("p_alive").sum(),
            active_customers_last_90d=(pl.col("last_order_date") > since).sum().cast(pl.Int64),
            expected_purchases_365d_per_customer=pl.col("expected_purchases_365d").mean(),
            purchase_model=pl.col("purchase_model").first(),
        )
        .with_columns(
            active_share_last_90d=pl.col("active_customers_last_90d") / pl.col("customers"),
            months_since_acquisition=(
                (as_of.year - pl.col("cohort_month").dt.year()) * 12 + as_of.month - pl.col("cohort_month").dt.month()
            ).cast(pl.Int32),
            as_of_date=pl.lit(as_of),
        )
        .with_columns(
            # null (not 0) where the model is not available
            expected_alive_customers=pl.when(pl.col("mean_p_alive").is_not_null()).then(
                pl.col("expected_alive_customers")
            ),
        )
        .select(
            "cohort_month",
            "months_since_acquisition",
            "customers",
            "mean_p_alive",
            "expected_alive_customers",
            "active_customers_last_90d",
            "active_share_last_90d",
            "expected_purchases_365d_per_customer",
            "purchase_model",
            "as_of_date",
        )
        .sort("cohort_month")
    )
