"""Predictive CLV (BG/NBD + Gamma-Gamma), fit history, back-test and segment value: thin wrappers over pipelines.clv."""

import dagster as dg
import numpy as np
import polars as pl

from pipelines import warehouse as wh
from pipelines.assets.common import marts_as_of, read, table_metadata
from pipelines.clv import (calibration_holdout_backtest, default_backtest_split, fit_bgnbd, fit_gamma_gamma,
                           rfm_from_customer_totals)
from pipelines.clv.scoring import (MAX_LIFESPAN_YEARS, annual_churn_rate, fits_from_rows, model_fit_rows,
                                   score_customers)
from pipelines.payback.cac import cac_by_cohort
from pipelines.resources import WarehouseResource

# Below this many customers with a repeat purchase the models have nothing to learn from: they are skipped.
MIN_REPEAT_CUSTOMERS = 20
BACKTEST_SCHEMA = {
    "as_of_date": pl.Date, "calibration_end": pl.Date, "holdout_end": pl.Date, "frequency_bucket": pl.String,
    "customers": pl.Int64, "mean_predicted": pl.Float64, "mean_actual": pl.Float64, "predicted_total": pl.Float64,
    "actual_total": pl.Float64, "aggregate_pct_error": pl.Float64, "mae_per_customer": pl.Float64,
}
CUSTOMER_CLV = dg.AssetKey(["marts", "customer_clv"])
MODEL_FIT = dg.AssetKey(["marts", "clv_model_fit"])
BACKTEST = dg.AssetKey(["marts", "clv_backtest"])
MART_DEPS = [dg.AssetKey(["marts", "fct_orders"]), dg.AssetKey(["marts", "dim_customers"]),
             dg.AssetKey(["intermediate", "int_customer_totals"]), dg.AssetKey(["staging", "stg_marketing_spend"])]


def _orders(warehouse: WarehouseResource) -> pl.LazyFrame:
    return read(warehouse, "select customer_id, order_date, revenue from marts.fct_orders").lazy()


@dg.multi_asset(
    specs=[
        dg.AssetSpec(CUSTOMER_CLV, deps=MART_DEPS, group_name="clv", kinds={"polars", "scipy"},
                     description="Per customer at the as-of date: RFM (weeks), P(alive), expected purchases, expected "
                                 "order value, discounted 365-day predicted CLV on gross margin, formula CLV, CAC, net CLV, decile."),
        dg.AssetSpec(MODEL_FIT, deps=MART_DEPS, group_name="clv", kinds={"scipy"},
                     description="BG/NBD and Gamma-Gamma estimates per as-of date (long format), kept across runs for drift."),
        dg.AssetSpec(BACKTEST, deps=MART_DEPS, group_name="clv", kinds={"scipy"},
                     description="Calibration/holdout back-test: predicted vs actual repeat purchases, overall and by frequency."),
    ],
)
def clv_models(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    settings = warehouse.settings()
    as_of = marts_as_of(context, warehouse)
    orders = _orders(warehouse)
    # RFM from the incrementally kept per-customer totals, not from every order (the same numbers: tested)
    rfm = rfm_from_customer_totals(read(warehouse, "select customer_id, first_order_date, last_order_date, purchase_days, "
                                               "net_revenue, first_day_revenue from intermediate.int_customer_totals").lazy(),
                                   as_of).collect()
    reused = _recent_fit(warehouse, as_of, settings.clv_refit_days)
    if reused is not None:
        fitted_on, bg, gg = reused
        context.log.info(f"Scoring with the models fitted as of {fitted_on} (refit every {settings.clv_refit_days} "
                         "days, CLV_REFIT_DAYS); no back-test this run.")
        notes = {}
    else:
        fitted_on = as_of
        bg, gg, notes = _fit_models(context, rfm, as_of)
    churn = annual_churn_rate(orders, as_of)
    lifespan = min(MAX_LIFESPAN_YEARS, 1.0 / churn) if churn else None
    customers = read(warehouse, "select customer_id, cohort_month, acquisition_channel, orders_count, net_revenue, "
                                "gross_margin, aov, tenure_days from marts.dim_customers")
    spend = read(warehouse, "select spend_date, channel, spend from staging.stg_marketing_spend where spend_date <= ?", [as_of])
    cac = cac_by_cohort(customers.lazy(), spend.lazy())
    usable_gg = gg if gg is not None and gg.q > 1 else None
    scored = score_customers(rfm, customers, bg, usable_gg, annual_discount_rate=settings.annual_discount_rate,
                             default_margin_rate=settings.default_margin_rate, lifespan_years=lifespan, cac=cac)
    scored = scored.with_columns(as_of_date=pl.lit(as_of))

    fit_rows = model_fit_rows(as_of, bg, gg, {
        "formula": {"annual_churn_rate": churn, "lifespan_years": lifespan},
        "settings": {"annual_discount_rate": settings.annual_discount_rate,
                     "default_margin_rate": settings.default_margin_rate},
    }).with_columns(fitted_on=pl.lit(fitted_on), note=pl.col("model").replace_strict(notes, default=None,
                                                                                  return_dtype=pl.String))
    backtest, calibration_end, holdout_end = (None, None, None) if reused else _backtest(context, orders, rfm, as_of)
    if backtest is not None:
        backtest_rows = pl.concat([
            backtest.overall.with_columns(frequency_bucket=pl.lit("all"),
                                          mean_predicted=pl.col("predicted_total") / pl.col("customers"),
                                          mean_actual=pl.col("actual_total") / pl.col("customers")),
            backtest.by_frequency,
        ], how="diagonal_relaxed").with_columns(
            as_of_date=pl.lit(as_of), calibration_end=pl.lit(calibration_end), holdout_end=pl.lit(holdout_end),
        ).select([pl.col(c).cast(t) for c, t in BACKTEST_SCHEMA.items()])
    else:  # same columns, no rows: readers of the table never see its shape change
        backtest_rows = pl.DataFrame(schema=BACKTEST_SCHEMA)
    with warehouse.connect() as con:
        wh.replace_table(con, "marts.customer_clv", scored)
        _add_fitted_on(con)
        wh.append_replacing(con, "marts.clv_model_fit", "as_of_date", as_of, fit_rows)
        if not reused:  # the back-test belongs to a fit: days that reuse one keep the fit day's back-test
            wh.append_replacing(con, "marts.clv_backtest", "as_of_date", as_of, backtest_rows)
    yield dg.MaterializeResult(asset_key=CUSTOMER_CLV, metadata={
        **table_metadata(scored.sort("predicted_clv_365d", descending=True, nulls_last=True)), "as_of": str(as_of),
        "mean_predicted_clv_365d": float(scored["predicted_clv_365d"].mean() or 0.0),
        "mean_p_alive": float(scored["p_alive"].mean() or 0.0)})
    yield dg.MaterializeResult(asset_key=MODEL_FIT, metadata={
        **table_metadata(fit_rows, rows=30), "fitted_on": str(fitted_on), "refit_this_run": reused is None,
        "bg_nbd_converged": bool(bg and bg.converged), "gamma_gamma_converged": bool(gg and gg.converged),
        "models_not_used": "\n".join(f"{m}: {n}" for m, n in notes.items()) or "none"})
    figures = {"refit_this_run": reused is None}
    if backtest is not None:
        overall = backtest.overall.row(0, named=True)
        # an error is undefined when the hold-out has no purchase (an as-of far past the data): left out
        figures = {"calibration_end": str(calibration_end), "holdout_end": str(holdout_end),
                   **{k: float(overall[k]) for k in ("aggregate_pct_error", "mae_per_customer") if overall[k] is not None}}
    yield dg.MaterializeResult(asset_key=BACKTEST, metadata={**table_metadata(backtest_rows), **figures})


# A fit can fail numerically (a spend distribution with no heterogeneity drives Gamma-Gamma's q and gamma to
# infinity): the model is then left out of this run, its columns null, and the rest of the run completes.
NUMERICAL_FAILURES = (ArithmeticError, ValueError, np.linalg.LinAlgError)


def _fit_or_reason(name: str, fit, *args):
    """(the fit, None) when it converged; (None, why not) when it failed or did not converge."""
    try:
        result = fit(*args)
    except NUMERICAL_FAILURES as exc:
        return None, f"{name} fit failed ({type(exc).__name__}: {exc})"
    if not result.converged:
        return None, f"{name} fit did not converge ({result.message})"
    return result, None


def _fit_models(context, rfm: pl.DataFrame, as_of) -> tuple[object, object, dict[str, str]]:
    """(BG/NBD, Gamma-Gamma, {model: why it is not used}) as of `as_of`; a model not used is None."""
    repeaters = rfm.filter((pl.col("frequency") > 0) & (pl.col("monetary_value") > 0))
    if repeaters.height < MIN_REPEAT_CUSTOMERS:
        reason = (f"only {repeaters.height} customers have bought again (at least {MIN_REPEAT_CUSTOMERS} are needed)")
        context.log.warning(f"As of {as_of} {reason}: the predictive CLV models are not fitted, their columns are "
                            "null this run.")
        return None, None, {"bg_nbd": reason, "gamma_gamma": reason}
    notes = {}
    bg, notes["bg_nbd"] = _fit_or_reason("BG/NBD", fit_bgnbd, rfm["frequency"].to_numpy(), rfm["recency"].to_numpy(),
                                         rfm["T"].to_numpy())
    gg, notes["gamma_gamma"] = _fit_or_reason("Gamma-Gamma", fit_gamma_gamma, repeaters["frequency"].to_numpy(),
                                              repeaters["monetary_value"].to_numpy())
    if gg is not None and gg.q <= 1:
        # The population mean spend p·gamma/(q−1) does not exist: expected order values would be unbounded.
        notes["gamma_gamma"] = (f"Gamma-Gamma q={gg.q:.3g} <= 1 (spend too heavy-tailed for the model): expected "
                                "order value and predicted CLV are null")
    notes = {model: note for model, note in notes.items() if note}
    for note in notes.values():
        context.log.warning(f"As of {as_of}: {note}; the model's columns are null this run (clv_model_fit.note).")
    if bg is not None:
        context.log.info(f"As of {as_of}: BG/NBD on {bg.n_customers:,} customers r={bg.r:.4g} alpha={bg.alpha:.4g} "
                         f"a={bg.a:.4g} b={bg.b:.4g}.")
    if gg is not None:
        context.log.info(f"As of {as_of}: Gamma-Gamma on {gg.n_customers:,} repeat customers p={gg.p:.4g} "
                         f"q={gg.q:.4g} gamma={gg.gamma:.4g}.")
    return bg, gg, notes


def _add_fitted_on(con) -> None:
    """Warehouses from before the refit cadence have no fitted_on column: every block there was a fresh fit."""
    exists = con.execute("select count(*) from information_schema.tables where table_schema = 'marts' "
                         "and table_name = 'clv_model_fit'").fetchall()[0][0]
    if exists:
        con.execute("alter table marts.clv_model_fit add column if not exists fitted_on date")
        con.execute("alter table marts.clv_model_fit add column if not exists note varchar")
        con.execute("update marts.clv_model_fit set fitted_on = as_of_date where fitted_on is null")


def _recent_fit(warehouse: WarehouseResource, as_of, refit_days: int):
    """A converged fit made at most `refit_days` − 1 days before `as_of` (never after it: point in time), as
    (fitted_on, BG/NBD, Gamma-Gamma); None when this run must fit. Parameters move slowly, so daily runs
    rescore every customer with the latest fit and refit on a slower cadence (the fit and its back-test
    are a fifth of the CLV step at 10 M orders)."""
    if refit_days <= 1:
        return None
    with warehouse.connect(read_only=True) as con:
        has_fit_history = con.execute(
            "select count(*) from information_schema.columns where table_schema = 'marts' "
            "and table_name = 'clv_model_fit' and column_name = 'fitted_on'").fetchall()[0][0]
        if not has_fit_history:
            return None
        row = con.execute(
            """select max(as_of_date) from marts.clv_model_fit
               where model = 'bg_nbd' and parameter = 'converged' and value = 1 and fitted_on = as_of_date
                 and as_of_date between ? - cast(? as integer) + 1 and ?""", [as_of, refit_days, as_of]).fetchall()[0]
        if row[0] is None:
            return None
        rows = wh.read_frame(con, "select model, parameter, value from marts.clv_model_fit where as_of_date = ?", [row[0]])
    bg, gg = fits_from_rows(rows)
    return row[0], bg, gg


def _backtest(context, orders: pl.LazyFrame, rfm: pl.DataFrame, as_of):
    """Calibration/holdout split inside the observed data; skipped (with a warning) when history is too short."""
    first_purchase = rfm["first_purchase_date"].min()
    if first_purchase is None:
        context.log.warning("No back-test this run: no customers.")
        return None, None, None
    try:
        calibration_end, holdout_end = default_backtest_split(first_purchase, as_of)
        result = calibration_holdout_backtest(orders, calibration_end, holdout_end)
        repeaters = result.per_customer.filter(pl.col("frequency") > 0).height
        if repeaters < MIN_REPEAT_CUSTOMERS:
            raise ValueError(f"only {repeaters} repeat customers before {calibration_end}")
        return result, calibration_end, holdout_end
    except NUMERICAL_FAILURES as exc:
        context.log.warning(f"No back-test this run: {exc}.")
        return None, None, None


@dg.asset(key=dg.AssetKey(["marts", "segment_clv"]), deps=[CUSTOMER_CLV, dg.AssetKey(["marts", "customer_segments"])],
          group_name="clv", kinds={"duckdb"},
          description="Customers, historical and predicted value per RFM segment and per segment flag.")
def segment_clv(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    flags = ["is_first_time_buyer", "is_repeat_buyer", "is_big_spender", "is_high_aov", "is_discount_shopper",
             "is_full_price_buyer", "is_vip", "is_at_risk", "is_cart_abandoner"]
    joined = read(warehouse, f"""
        select s.segment, {', '.join('s.' + f for f in flags)}, c.historical_revenue, c.historical_margin,
               c.predicted_clv_365d, c.p_alive, c.expected_purchases_365d
        from marts.customer_segments s join marts.customer_clv c using (customer_id)""")
    long = pl.concat([
        joined.with_columns(segment_kind=pl.lit("rfm_segment")),
        *[joined.filter(pl.col(f)).with_columns(segment_kind=pl.lit("flag"), segment=pl.lit(f.removeprefix("is_")))
          for f in flags],
    ])
    summary = long.group_by("segment_kind", "segment").agg(
        customers=pl.len().cast(pl.Int64),
        historical_revenue=pl.col("historical_revenue").sum(),
        historical_margin=pl.col("historical_margin").sum(),
        historical_revenue_per_customer=pl.col("historical_revenue").mean(),
        predicted_clv_365d=pl.col("predicted_clv_365d").sum(),
        predicted_clv_365d_per_customer=pl.col("predicted_clv_365d").mean(),
        mean_p_alive=pl.col("p_alive").mean(),
        expected_purchases_365d_per_customer=pl.col("expected_purchases_365d").mean(),
    ).with_columns(
        share_of_customers=pl.col("customers") / joined.height,
        share_of_predicted_clv=pl.col("predicted_clv_365d") / joined["predicted_clv_365d"].sum(),
    ).sort("segment_kind", "predicted_clv_365d", descending=[True, True])
    with warehouse.connect() as con:
        wh.replace_table(con, "marts.segment_clv", summary)
    return dg.MaterializeResult(metadata=table_metadata(summary, rows=20))
