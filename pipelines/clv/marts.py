"""The CLV marts: customer_clv, clv_model_fit, clv_backtest, segment_clv and cohort_survival, with their queries.

The purchase model (BG/NBD, Pareto/NBD or MBG/NBD, chosen by the back-test) and Gamma-Gamma are fitted, or reused
from a recent fit (the refit cadence), every customer is scored, the fit and its back-test are appended to their
history tables, and segment totals get bootstrap intervals. No Dagster here: the assets (pipelines/defs/assets/clv.py)
call `build_clv_models`, `build_segment_clv` and `build_cohort_survival` and attach metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

import numpy as np
import polars as pl

from pipelines import warehouse as wh
from pipelines.clv import (
    calibration_holdout_backtest,
    default_backtest_split,
    fit_gamma_gamma,
    rfm_from_customer_totals,
)
from pipelines.clv.backtest import FORMULA, backtest_table
from pipelines.clv.gamma_gamma import frequency_value_spearman, spearman_warning
from pipelines.clv.models import FIT_FAILURES, PURCHASE_MODELS, fit_or_reason, select_purchase_model
from pipelines.clv.rfm import DAYS_PER_WEEK
from pipelines.clv.scoring import (
    MAX_LIFESPAN_YEARS,
    annual_churn_rate,
    cohort_survival_table,
    fits_from_rows,
    model_fit_rows,
    purchase_fits_from_rows,
    score_customers,
)
from pipelines.clv.uncertainty import bootstrap_group_totals
from pipelines.payback.cac import cac_by_cohort
from pipelines.settings import Settings


class Log(Protocol):
    def info(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...


# Below this many customers with a repeat purchase the models have nothing to learn from: they are skipped.
MIN_REPEAT_CUSTOMERS = 20
BACKTEST_SCHEMA = {
    "as_of_date": pl.Date,
    "calibration_end": pl.Date,
    "holdout_end": pl.Date,
    "model": pl.String,
    "selected": pl.Boolean,
    "frequency_bucket": pl.String,
    "customers": pl.Int64,
    "mean_predicted": pl.Float64,
    "mean_actual": pl.Float64,
    "predicted_total": pl.Float64,
    "actual_total": pl.Float64,
    "aggregate_pct_error": pl.Float64,
    "mae_per_customer": pl.Float64,
    "mean_predicted_revenue": pl.Float64,
    "mean_actual_revenue": pl.Float64,
    "revenue_predicted_total": pl.Float64,
    "revenue_actual_total": pl.Float64,
    "revenue_aggregate_pct_error": pl.Float64,
    "revenue_mae_per_customer": pl.Float64,
}
# Back-test figures recorded with each purchase model's fit in clv_model_fit (and carried to the days reusing it).
HOLDOUT_PARAMETERS = {
    "holdout_mae_per_customer": "mae_per_customer",
    "holdout_aggregate_pct_error": "aggregate_pct_error",
    "holdout_revenue_mae_per_customer": "revenue_mae_per_customer",
    "holdout_revenue_aggregate_pct_error": "revenue_aggregate_pct_error",
}
SPEARMAN_PARAMETER = "spearman_frequency_value"


@dataclass(frozen=True)
class ClvModelsResult:
    """What `build_clv_models` wrote, and the figures its assets report."""

    as_of: date
    fitted_on: date
    refit: bool  # False: a recent fit was reused (CLV_REFIT_DAYS) and no back-test ran
    selected: str | None  # the purchase model customers were scored with
    scored: pl.DataFrame  # marts.customer_clv
    fit_rows: pl.DataFrame  # the day's block of marts.clv_model_fit
    backtest_rows: pl.DataFrame  # the day's block of marts.clv_backtest (no rows on a reuse day)
    converged: dict[str, bool]
    spearman: float | None
    notes: dict[str, str] = field(default_factory=dict)  # {model: why it is not used}
    backtest: object | None = None
    calibration_end: date | None = None
    holdout_end: date | None = None

    def backtest_figures(self) -> dict[str, object]:
        """The back-test's split and each model's overall errors (an error is undefined when the hold-out has no
        purchase, an as-of far past the data: left out)."""
        if self.backtest is None:
            return {"refit_this_run": self.refit}
        figures: dict[str, object] = {
            "calibration_end": str(self.calibration_end),
            "holdout_end": str(self.holdout_end),
            "selected_model": self.selected or "none",
        }
        for name, result in self.backtest.by_model.items():
            overall = result.overall.row(0, named=True)
            figures.update(
                {
                    f"{name}_{k}": float(overall[k])
                    for k in ("aggregate_pct_error", "mae_per_customer", "revenue_aggregate_pct_error")
                    if overall[k] is not None
                }
            )
        return figures


def _orders(warehouse: wh.WarehouseHandle) -> pl.LazyFrame:
    return wh.query(warehouse, "select customer_id, order_date, revenue from marts.fct_orders").lazy()


def build_clv_models(warehouse: wh.WarehouseHandle, settings: Settings, as_of: date, log: Log) -> ClvModelsResult:
    """Fit (or reuse a recent fit), back-test and select the purchase model, score every customer as of `as_of`, and
    write customer_clv and the day's blocks of clv_model_fit and clv_backtest."""
    orders = _orders(warehouse)
    # RFM from the incrementally kept per-customer totals, not from every order (the same numbers: tested)
    rfm = rfm_from_customer_totals(
        wh.query(
            warehouse,
            "select customer_id, first_order_date, last_order_date, purchase_days, "
            "net_revenue, first_day_revenue from intermediate.int_customer_totals",
        ).lazy(),
        as_of,
    ).collect()
    reused = recent_fit_rows(warehouse, as_of, settings.clv_refit_days)
    backtest = calibration_end = holdout_end = None
    if reused is not None:
        fitted_on, stored = reused
        fits, stored_selected, gg = purchase_fits_from_rows(stored)
        fits = {
            name: fits.get(name) if fits.get(name) is not None and fits[name].converged else None
            for name in PURCHASE_MODELS
        }
        selected = stored_selected
        if settings.purchase_model and settings.purchase_model != stored_selected:
            if fits.get(settings.purchase_model) is not None:
                selected = settings.purchase_model
            else:
                log.warning(
                    f"CLV_PURCHASE_MODEL={settings.purchase_model} did not converge in the fit of "
                    f"{fitted_on}: scoring with {stored_selected} as chosen then."
                )
        carried = carried_rows(stored)
        log.info(
            f"Scoring with the models fitted as of {fitted_on} ({selected}; refit every "
            f"{settings.clv_refit_days} days, CLV_REFIT_DAYS); no back-test this run."
        )
        notes = {}
    else:
        fitted_on = as_of
        backtest, calibration_end, holdout_end = _backtest(log, orders, rfm, as_of)
        fits, gg, notes = _fit_models(log, rfm, as_of)
        selection = select_purchase_model(
            [name for name, fit in fits.items() if fit is not None],
            backtest.purchase_mae() if backtest else {},
            settings.purchase_model,
        )
        selected = selection.model
        for model, note in (backtest.notes if backtest else {}).items():
            # converged on the whole history, but its calibration fit did not: left out of the comparison
            if model in PURCHASE_MODELS and fits.get(model) is not None and model != selected:
                notes[model] = f"{note}: not compared in the back-test"
                log.warning(f"As of {as_of}: {notes[model]}.")
        if selected is not None:
            log.info(f"As of {as_of}: customers scored with {PURCHASE_MODELS[selected].label}: {selection.reason}.")
        if settings.purchase_model and not selection.overridden:
            log.warning(selection.reason)
        carried = _backtest_rows(backtest) if backtest else {}
        # Gamma-Gamma's assumption check, on the customers it is fitted on (when there are enough to fit it)
        repeaters = rfm.filter((pl.col("frequency") > 0) & (pl.col("monetary_value") > 0))
        if repeaters.height >= MIN_REPEAT_CUSTOMERS:
            carried.setdefault("gamma_gamma", {})[SPEARMAN_PARAMETER] = frequency_value_spearman(
                repeaters["frequency"].to_numpy(), repeaters["monetary_value"].to_numpy()
            )
    rho = carried.get("gamma_gamma", {}).get(SPEARMAN_PARAMETER)
    if spearman_warning(rho):
        log.warning(f"As of {as_of}: {spearman_warning(rho)}.")
    purchase_fit = fits.get(selected) if selected is not None else None
    churn = annual_churn_rate(orders, as_of)
    lifespan = min(MAX_LIFESPAN_YEARS, 1.0 / churn) if churn else None
    customers = wh.query(
        warehouse,
        "select customer_id, cohort_month, acquisition_channel, orders_count, net_revenue, "
        "gross_margin, aov, tenure_days from marts.dim_customers",
    )
    spend = wh.query(
        warehouse, "select spend_date, channel, spend from staging.stg_marketing_spend where spend_date <= ?", [as_of]
    )
    cac = cac_by_cohort(customers.lazy(), spend.lazy())
    usable_gg = gg if gg is not None and gg.q > 1 else None
    scored = score_customers(
        rfm,
        customers,
        purchase_fit,
        usable_gg,
        annual_discount_rate=settings.annual_discount_rate,
        default_margin_rate=settings.default_margin_rate,
        lifespan_years=lifespan,
        cac=cac,
    )
    scored = scored.with_columns(as_of_date=pl.lit(as_of))

    extra = {model: dict(values) for model, values in carried.items()}
    extra.setdefault(FORMULA, {}).update({"annual_churn_rate": churn, "lifespan_years": lifespan})
    extra["settings"] = {
        "annual_discount_rate": settings.annual_discount_rate,
        "default_margin_rate": settings.default_margin_rate,
    }
    fit_rows = model_fit_rows(as_of, fits, gg, extra, selected=selected).with_columns(
        fitted_on=pl.lit(fitted_on), note=pl.col("model").replace_strict(notes, default=None, return_dtype=pl.String)
    )
    if backtest is not None:
        backtest_rows = (
            backtest_table(backtest)
            .with_columns(
                as_of_date=pl.lit(as_of),
                calibration_end=pl.lit(calibration_end),
                holdout_end=pl.lit(holdout_end),
                selected=pl.col("model") == pl.lit(selected),
            )
            .select([pl.col(c).cast(t) for c, t in BACKTEST_SCHEMA.items()])
        )
    else:  # same columns, no rows: readers of the table never see its shape change
        backtest_rows = pl.DataFrame(schema=BACKTEST_SCHEMA)
    with warehouse.connect() as con:
        wh.replace_table(con, "marts.customer_clv", scored)
        _upgrade_history_tables(con)
        wh.append_replacing(con, "marts.clv_model_fit", "as_of_date", as_of, fit_rows)
        if not reused:  # the back-test belongs to a fit: days that reuse one keep the fit day's back-test
            wh.append_replacing(con, "marts.clv_backtest", "as_of_date", as_of, backtest_rows)
    return ClvModelsResult(
        as_of=as_of,
        fitted_on=fitted_on,
        refit=reused is None,
        selected=selected,
        scored=scored,
        fit_rows=fit_rows,
        backtest_rows=backtest_rows,
        converged={
            **{name: fits.get(name) is not None for name in PURCHASE_MODELS},
            "gamma_gamma": bool(gg and gg.converged),
        },
        spearman=rho,
        notes=notes,
        backtest=backtest,
        calibration_end=calibration_end,
        holdout_end=holdout_end,
    )


def _fit_models(log: Log, rfm: pl.DataFrame, as_of) -> tuple[dict, object, dict[str, str]]:
    """({purchase model: its fit, None when not usable}, Gamma-Gamma, {model: why it is not used}) as of `as_of`."""
    repeaters = rfm.filter((pl.col("frequency") > 0) & (pl.col("monetary_value") > 0))
    if repeaters.height < MIN_REPEAT_CUSTOMERS:
        reason = f"only {repeaters.height} customers have bought again (at least {MIN_REPEAT_CUSTOMERS} are needed)"
        log.warning(
            f"As of {as_of} {reason}: the predictive CLV models are not fitted, their columns are null this run."
        )
        return (
            {name: None for name in PURCHASE_MODELS},
            None,
            {**{name: reason for name in PURCHASE_MODELS}, "gamma_gamma": reason},
        )
    notes = {}
    fits = {}
    columns = (rfm["frequency"].to_numpy(), rfm["recency"].to_numpy(), rfm["T"].to_numpy())
    for name, model in PURCHASE_MODELS.items():
        fits[name], notes[name] = fit_or_reason(model.label, model.fit, *columns)
    gg, notes["gamma_gamma"] = fit_or_reason(
        "Gamma-Gamma", fit_gamma_gamma, repeaters["frequency"].to_numpy(), repeaters["monetary_value"].to_numpy()
    )
    if gg is not None and gg.q <= 1:
        # The population mean spend p·gamma/(q−1) does not exist: expected order values would be unbounded.
        notes["gamma_gamma"] = (
            f"Gamma-Gamma q={gg.q:.3g} <= 1 (spend too heavy-tailed for the model): expected "
            "order value and predicted CLV are null"
        )
    notes = {model: note for model, note in notes.items() if note}
    for note in notes.values():
        log.warning(f"As of {as_of}: {note}; the model is not used this run (clv_model_fit.note).")
    for name, fit in fits.items():
        if fit is not None:
            errors = fit.std_errors or (float("nan"),) * len(fit.params)
            log.info(
                f"As of {as_of}: {PURCHASE_MODELS[name].label} on {fit.n_customers:,} customers "
                + " ".join(
                    f"{p}={v:.4g} (se {e:.2g})"
                    for p, v, e in zip(PURCHASE_MODELS[name].parameter_names, fit.params, errors)
                )
                + "."
            )
    if gg is not None:
        log.info(
            f"As of {as_of}: Gamma-Gamma on {gg.n_customers:,} repeat customers p={gg.p:.4g} "
            f"q={gg.q:.4g} gamma={gg.gamma:.4g}."
        )
    return fits, gg, notes


def _backtest_rows(backtest) -> dict[str, dict[str, float | None]]:
    """{model: {holdout_*: the back-test's figure}} for clv_model_fit (the formula's too)."""
    rows = {}
    for name, result in backtest.by_model.items():
        overall = result.overall.row(0, named=True)
        rows[name] = {parameter: overall[column] for parameter, column in HOLDOUT_PARAMETERS.items()}
    return rows


def carried_rows(stored: pl.DataFrame) -> dict[str, dict[str, float | None]]:
    """The figures that belong to the fit (back-test errors, the Spearman check) from the fit day's block."""
    carried: dict[str, dict[str, float | None]] = {}
    for model, parameter, value in (
        stored.filter(pl.col("parameter").is_in([*HOLDOUT_PARAMETERS, SPEARMAN_PARAMETER]))
        .select("model", "parameter", "value")
        .iter_rows()
    ):
        carried.setdefault(model, {})[parameter] = value
    return carried


# Columns added to the history tables since they were first written (older warehouses get them, empty).
HISTORY_COLUMNS = {
    "clv_model_fit": {"fitted_on": "date", "note": "varchar", "std_error": "double"},
    "clv_backtest": {
        name: {pl.Date: "date", pl.String: "varchar", pl.Boolean: "boolean", pl.Int64: "bigint", pl.Float64: "double"}[
            dtype
        ]
        for name, dtype in BACKTEST_SCHEMA.items()
    },
}


def _upgrade_history_tables(con) -> None:
    """Warehouses from before the refit cadence have no fitted_on column (every block there was a fresh fit); from
    before the models were compared, no standard errors and a BG/NBD-only back-test (model null: it was BG/NBD)."""
    existing = wh.table_names(con, "marts") & set(HISTORY_COLUMNS)
    for table in sorted(existing):
        for column, sql_type in HISTORY_COLUMNS[table].items():
            con.execute(f"alter table marts.{table} add column if not exists {column} {sql_type}")
    if "clv_model_fit" in existing:
        con.execute("update marts.clv_model_fit set fitted_on = as_of_date where fitted_on is null")
    if "clv_backtest" in existing:
        con.execute("update marts.clv_backtest set model = 'bg_nbd', selected = true where model is null")


def recent_fit_rows(warehouse: wh.WarehouseHandle, as_of, refit_days: int):
    """(fitted_on, that day's clv_model_fit rows) for a fit made at most `refit_days` − 1 days before `as_of`
    (never after it: point in time) in which some purchase model converged; None when this run must fit.
    Parameters move slowly, so daily runs rescore every customer with the latest fit and refit (all models, with
    their back-tests) on a slower cadence."""
    if refit_days <= 1:
        return None
    with warehouse.connect(read_only=True) as con:
        if "fitted_on" not in wh.table_columns(con, "marts.clv_model_fit"):
            return None
        models = ", ".join(f"'{name}'" for name in PURCHASE_MODELS)
        row = con.execute(
            f"""select max(as_of_date) from marts.clv_model_fit
               where model in ({models}) and parameter = 'converged' and value = 1 and fitted_on = as_of_date
                 and as_of_date between ? - cast(? as integer) + 1 and ?""",
            [as_of, refit_days, as_of],
        ).fetchall()[0]
        if row[0] is None:
            return None
        rows = wh.read_frame(con, "select * from marts.clv_model_fit where as_of_date = ?", [row[0]])
    return row[0], rows


def recent_fit(warehouse: wh.WarehouseHandle, as_of, refit_days: int):
    """(fitted_on, the purchase model selected then, Gamma-Gamma) of the fit `recent_fit_rows` finds, or None."""
    found = recent_fit_rows(warehouse, as_of, refit_days)
    if found is None:
        return None
    fit, gg = fits_from_rows(found[1])
    return found[0], fit, gg


def _backtest(log: Log, orders: pl.LazyFrame, rfm: pl.DataFrame, as_of):
    """Every purchase model and the formula on a calibration/holdout split inside the observed data; skipped (with a
    warning) when history is too short."""
    first_purchase = rfm["first_purchase_date"].min()
    if first_purchase is None:
        log.warning("No back-test this run: no customers.")
        return None, None, None
    try:
        calibration_end, holdout_end = default_backtest_split(first_purchase, as_of)
        result = calibration_holdout_backtest(
            orders,
            calibration_end,
            holdout_end,
            models=tuple(PURCHASE_MODELS),
            formula=True,
            min_repeat_customers=MIN_REPEAT_CUSTOMERS,
        )
        for name, model in result.by_model.items():
            overall = model.overall.row(0, named=True)
            log.info(
                f"Back-test {calibration_end} → {holdout_end}, {name}: error per customer "
                f"{overall['mae_per_customer']:.4g} purchases, total "
                + (f"{overall['aggregate_pct_error']:+.1%}" if overall["aggregate_pct_error"] is not None else "n/a")
                + "."
            )
        return result, calibration_end, holdout_end
    except FIT_FAILURES as exc:  # too little history for a calibration fit
        log.warning(f"No back-test this run: {exc}.")
        return None, None, None


def build_segment_clv(warehouse: wh.WarehouseHandle, settings: Settings, log: Log) -> pl.DataFrame:
    """Customers, historical and predicted value per RFM segment, per segment flag and in total, with 90 % intervals
    of the predicted totals; written to marts.segment_clv and returned."""
    flags = [
        "is_first_time_buyer",
        "is_repeat_buyer",
        "is_big_spender",
        "is_high_aov",
        "is_discount_shopper",
        "is_full_price_buyer",
        "is_vip",
        "is_at_risk",
        "is_cart_abandoner",
    ]
    joined = wh.query(
        warehouse,
        f"""
        select s.segment, {", ".join("coalesce(s." + f + ", false) as " + f for f in flags)}, c.historical_revenue,
               c.historical_margin, c.predicted_clv_365d, c.p_alive, c.expected_purchases_365d, c.frequency,
               c.recency, c."T", c.monetary_value, c.margin_rate, c.as_of_date
        from marts.customer_segments s join marts.customer_clv c using (customer_id)
        order by c.customer_id""",
    )
    # The groups: all customers, each RFM segment (one per customer), each flag (overlapping).
    segments = sorted(joined["segment"].unique().to_list())
    keys = (
        [("total", "all_customers")]
        + [("rfm_segment", name) for name in segments]
        + [("flag", f.removeprefix("is_")) for f in flags]
    )
    membership = (
        np.column_stack(
            [np.ones(joined.height, dtype=bool)]
            + [(joined["segment"] == name).to_numpy() for name in segments]
            + [joined[f].to_numpy().astype(bool) for f in flags]
        )
        if joined.height
        else np.zeros((0, len(keys)), bool)
    )
    # Lazy, on the columns the sums need: the eleven overlapping groups as one eager frame were 11 copies of the
    # joined rows (1.6 M customers: ~1 GB allocated and freed again).
    values = ["historical_revenue", "historical_margin", "predicted_clv_365d", "p_alive", "expected_purchases_365d"]
    rows = joined.lazy().select("segment", *flags, *values)
    long = pl.concat(
        [
            rows.select(pl.lit("total").alias("segment_kind"), pl.lit("all_customers").alias("segment"), *values),
            rows.select(pl.lit("rfm_segment").alias("segment_kind"), "segment", *values),
            *[
                rows.filter(pl.col(f)).select(
                    pl.lit("flag").alias("segment_kind"), pl.lit(f.removeprefix("is_")).alias("segment"), *values
                )
                for f in flags
            ],
        ]
    )
    summary = (
        long.group_by("segment_kind", "segment")
        .agg(
            customers=pl.len().cast(pl.Int64),
            historical_revenue=pl.col("historical_revenue").sum(),
            historical_margin=pl.col("historical_margin").sum(),
            historical_revenue_per_customer=pl.col("historical_revenue").mean(),
            predicted_clv_365d=pl.col("predicted_clv_365d").sum(),
            predicted_clv_365d_per_customer=pl.col("predicted_clv_365d").mean(),
            mean_p_alive=pl.col("p_alive").mean(),
            expected_purchases_365d=pl.col("expected_purchases_365d").sum(),
            expected_purchases_365d_per_customer=pl.col("expected_purchases_365d").mean(),
        )
        .with_columns(
            share_of_customers=pl.col("customers") / joined.height,
            share_of_predicted_clv=pl.col("predicted_clv_365d") / joined["predicted_clv_365d"].sum(),
        )
        .collect()
    )
    summary = summary.join(
        _segment_intervals(log, warehouse, settings, joined, membership, keys, summary),
        on=["segment_kind", "segment"],
        how="left",
    )
    summary = summary.sort("segment_kind", "predicted_clv_365d", descending=[True, True])
    with warehouse.connect() as con:
        wh.replace_table(con, "marts.segment_clv", summary)
    return summary


INTERVAL_COLUMNS = (
    "expected_purchases_365d_p05",
    "expected_purchases_365d_p95",
    "predicted_clv_365d_p05",
    "predicted_clv_365d_p95",
)


def segment_interval_figures(summary: pl.DataFrame) -> dict[str, float]:
    """The 90 % intervals of the totals over all customers, by column name (prefixed total_)."""
    total = summary.filter(pl.col("segment_kind") == "total")
    return {f"total_{c}": float(total[c][0]) for c in INTERVAL_COLUMNS if total.height and total[c][0] is not None}


def _segment_intervals(
    log: Log,
    warehouse: wh.WarehouseHandle,
    settings,
    joined: pl.DataFrame,
    membership: np.ndarray,
    keys: list[tuple[str, str]],
    summary: pl.DataFrame,
) -> pl.DataFrame:
    """90 % intervals of each group's total predicted purchases and CLV over 365 days (parametric bootstrap over
    the parameters of the fit customer_clv was scored with: pipelines.clv.uncertainty)."""
    schema = {"segment_kind": pl.String, "segment": pl.String, **{c: pl.Float64 for c in INTERVAL_COLUMNS}}
    as_of = joined["as_of_date"].max() if joined.height else None
    rows = wh.query(warehouse, "select * from marts.clv_model_fit where as_of_date = ?", [as_of]) if as_of else None
    fit, gg = fits_from_rows(rows) if rows is not None and rows.height else (None, None)
    if fit is None or fit.covariance is None:
        if fit is not None:
            log.warning("No intervals this run: the purchase model's fit has no standard errors.")
        return pl.DataFrame(schema=schema)
    intervals = bootstrap_group_totals(
        fit,
        gg if gg is not None and gg.q > 1 else None,
        joined["frequency"].to_numpy(),
        joined["recency"].to_numpy(),
        joined["T"].to_numpy(),
        joined["monetary_value"].to_numpy(),
        joined["margin_rate"].to_numpy(),
        membership,
        horizon_weeks=365 / DAYS_PER_WEEK,
        annual_discount_rate=settings.annual_discount_rate,
    )
    point = {
        (k, s): (p, c)
        for k, s, p, c in summary.select(
            "segment_kind", "segment", "expected_purchases_365d", "predicted_clv_365d"
        ).iter_rows()
    }
    totals = np.array([point.get(key, (np.nan, np.nan)) for key in keys], dtype=np.float64)
    scaled = intervals.scaled(totals[:, 0], totals[:, 1])
    log.info(
        f"Intervals from {intervals.draws} parameter draws evaluated on {intervals.customers_evaluated:,} customers."
    )
    return pl.DataFrame(
        {
            "segment_kind": [k for k, _ in keys],
            "segment": [s for _, s in keys],
            "expected_purchases_365d_p05": scaled["purchases_low"],
            "expected_purchases_365d_p95": scaled["purchases_high"],
            "predicted_clv_365d_p05": scaled["clv_low"],
            "predicted_clv_365d_p95": scaled["clv_high"],
        },
        schema=schema,
    ).with_columns(pl.col(INTERVAL_COLUMNS).fill_nan(None))


def build_cohort_survival(warehouse: wh.WarehouseHandle, as_of: date) -> pl.DataFrame:
    """Per acquisition cohort: mean P(alive) beside the observed share active in the last 90 days (customer_clv's
    as-of date, else `as_of`); written to marts.cohort_survival and returned."""
    scored = wh.query(
        warehouse,
        "select customer_id, cohort_month, p_alive, expected_purchases_365d, purchase_model, "
        "as_of_date from marts.customer_clv",
    )
    customers = wh.query(warehouse, "select customer_id, last_order_date from marts.dim_customers")
    as_of = scored["as_of_date"].max() if scored.height else as_of
    table = cohort_survival_table(scored, customers, as_of)
    with warehouse.connect() as con:
        wh.replace_table(con, "marts.cohort_survival", table)
    return table
