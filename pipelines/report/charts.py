"""The report's charts: one loader (plain SQL over the marts → JSON-able dict) and one matplotlib drawing per chart.

No Dagster and no pyplot: figures are `matplotlib.figure.Figure` objects rendered without a display, keep no global
state between charts and are safe inside a Dagster run. Each chart is written as SVG with its text as real text
(the page embeds it inline: selectable, searchable, sharp in print and PDF, and a browser test can measure every
tick label), and as PNG where an image is needed (Dagster's metadata).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import duckdb
import matplotlib

matplotlib.use("Agg")  # harmless when pyplot is never imported; guards anyone who imports it later in-process

import numpy as np  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter  # noqa: E402

from pipelines.warehouse import reporting_currency  # noqa: E402

DPI = 100
FREQUENCY_CAP = 20  # P(alive) matrix: repeat purchases >= this share one row ("20+")
RECENCY_BIN_WEEKS = 4  # P(alive) matrix: recency (weeks) in 4-week bins
MIN_CELL_CUSTOMERS = 3  # P(alive) matrix: cells with fewer customers are greyed out (too noisy to read)
CLV_HISTOGRAM_BINS = 40  # CLV distribution: equal bins from 0 to the 99th percentile, then one overflow bin
MIN_DRIVER_CUSTOMERS = 30  # LTV drivers: a value (or a window's bar) needs this many customers to be shown
MIN_PAYBACK_COHORTS = 3  # payback curves: a month is drawn while at least this many cohorts have completed it
SPEARMAN_WARNING_THRESHOLD = 0.3  # as pipelines.clv.gamma_gamma: |rho| from here puts Gamma-Gamma in doubt
MODEL_LABELS = {
    "bg_nbd": "BG/NBD",
    "pareto_nbd": "Pareto/NBD",
    "mbg_nbd": "MBG/NBD",
    "formula": "formula (AOV × frequency × lifespan)",
    "gamma_gamma": "Gamma-Gamma",
}
MAX_TICK_LABELS = 20  # category axes with more ticks than this label every k-th one
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "image.cmap": "viridis",
    # SVG: text stays text (with a font fallback list), ids and output are the same from run to run
    "svg.fonttype": "none",
    "svg.hashsalt": "clv-report",
}


@dataclass(frozen=True)
class Table:
    """A small HTML table shown under a chart: header labels and already formatted cells."""

    columns: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    caption: str
    data: dict
    svg: str  # inline <svg> element, ids prefixed with the chart id
    png: bytes | None = None  # only for the charts shown in Dagster's metadata
    table: Table | None = None
    extra_data: dict = field(default_factory=dict)  # further JSON blocks: {suffix: data} → id="data-<id>-<suffix>"


# ---------------------------------------------------------------- reading


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return _jsonable(float(value))
    return value


def records(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [{n: _jsonable(v) for n, v in zip(names, row)} for row in cursor.fetchall()]


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


# ------------------------------------------------------------- loaders: SQL over the marts (the test re-derives each)


def load_key_figures(con: duckdb.DuckDBPyConnection) -> dict:
    # customers from dim_customers (one row each): a distinct count over every order costs 0.5 s at 10 M
    orders = records(
        con,
        "select (select count(*) from marts.dim_customers) as customers, count(*) as orders, sum(revenue) as revenue, "
        "sum(gross_margin) as gross_margin, min(order_date) as first_order, max(order_date) as last_order "
        "from marts.fct_orders",
    )[0]
    clv = records(
        con,
        "select max(as_of_date) as as_of_date, count(*) as scored_customers, avg(p_alive) as mean_p_alive, "
        "sum(predicted_clv_365d) as predicted_clv_365d_total, avg(predicted_clv_365d) as predicted_clv_365d_mean "
        "from marts.customer_clv",
    )[0]
    # Share of all customers ever with 2+ orders (lifetime); retention_kpis.repeat_customer_rate is another
    # number: the share of one month's buyers who ordered 2+ times within that month.
    repeat = records(
        con,
        "select avg(case when orders_count > 1 then 1.0 else 0.0 end) "
        "as lifetime_repeat_customer_rate from marts.dim_customers",
    )[0]
    cac = records(
        con,
        "select sum(spend) as paid_spend, sum(new_customers) as paid_new_customers, "
        "sum(cac * new_customers) / nullif(sum(new_customers), 0) as blended_cac "
        "from marts.cac_payback where cac is not null and new_customers > 0",
    )[0]
    # The latest back-test of the model that scored the customers (older warehouses: BG/NBD, the only one).
    selected = "coalesce(selected, true)" if _has_column(con, "clv_backtest", "selected") else "true"
    backtest = records(
        con,
        "select aggregate_pct_error as backtest_aggregate_pct_error, mae_per_customer as backtest_mae_per_customer "
        f"from marts.clv_backtest where frequency_bucket = 'all' and {selected} "
        "order by as_of_date desc limit 1",
    )
    # Why a model is not used this run (a failed or unconverged fit): said at the top of the report.
    notes = (
        [
            r["note"]
            for r in records(
                con,
                "select distinct model, note from marts.clv_model_fit where note is not null "
                "and as_of_date = (select max(as_of_date) from marts.clv_model_fit) "
                "order by model",
            )
        ]
        if _has_column(con, "clv_model_fit", "note")
        else []
    )
    return {
        **orders,
        **clv,
        **repeat,
        **cac,
        "model_notes": notes,
        "currency": reporting_currency(con),
        **(backtest[0] if backtest else {"backtest_aggregate_pct_error": None, "backtest_mae_per_customer": None}),
        **load_model_figures(con),
    }


def load_model_figures(con: duckdb.DuckDBPyConnection) -> dict:
    """The trust figures of the latest run: the purchase model used, the 90 % intervals of the total predicted
    purchases and CLV (segment_clv's 'total' row), how far the articles' formula CLV was from the hold-out
    (revenue, latest back-test) and Gamma-Gamma's assumption check (Spearman rho of frequency and value)."""
    figures = {
        "purchase_model": None,
        "expected_purchases_365d_total": None,
        "expected_purchases_365d_p05": None,
        "expected_purchases_365d_p95": None,
        "predicted_clv_365d_p05": None,
        "predicted_clv_365d_p95": None,
        "formula_revenue_aggregate_pct_error": None,
        "selected_revenue_aggregate_pct_error": None,
        "spearman_frequency_value": None,
        "spearman_warning": False,
    }
    if _has_column(con, "customer_clv", "purchase_model"):
        figures["purchase_model"] = records(con, "select any_value(purchase_model) as m from marts.customer_clv")[0][
            "m"
        ]
    if _has_column(con, "segment_clv", "predicted_clv_365d_p05"):
        total = records(
            con,
            "select expected_purchases_365d as expected_purchases_365d_total, expected_purchases_365d_p05, "
            "expected_purchases_365d_p95, predicted_clv_365d_p05, predicted_clv_365d_p95 "
            "from marts.segment_clv where segment_kind = 'total'",
        )
        figures.update(total[0] if total else {})
    if _has_column(con, "clv_backtest", "model"):
        latest = records(
            con,
            "select model, selected, revenue_aggregate_pct_error from marts.clv_backtest "
            "where frequency_bucket = 'all' and as_of_date = (select max(as_of_date) from marts.clv_backtest)",
        )
        for r in latest:
            if r["model"] == "formula":
                figures["formula_revenue_aggregate_pct_error"] = r["revenue_aggregate_pct_error"]
            elif r["selected"]:
                figures["selected_revenue_aggregate_pct_error"] = r["revenue_aggregate_pct_error"]
    rho = records(
        con,
        "select value from marts.clv_model_fit where model = 'gamma_gamma' "
        "and parameter = 'spearman_frequency_value' "
        "and as_of_date = (select max(as_of_date) from marts.clv_model_fit)",
    )
    if rho and rho[0]["value"] is not None:
        figures["spearman_frequency_value"] = rho[0]["value"]
        figures["spearman_warning"] = abs(rho[0]["value"]) >= SPEARMAN_WARNING_THRESHOLD
    return figures


def assumption_warnings(key_figures: dict) -> list[str]:
    """Checks of the models' assumptions that failed this run, in words (shown at the top of the report)."""
    warnings = []
    if key_figures.get("spearman_warning"):
        warnings.append(
            f"purchase frequency and order value are correlated (Spearman rho = "
            f"{key_figures['spearman_frequency_value']:.2f}, |rho| >= {SPEARMAN_WARNING_THRESHOLD}): the "
            "Gamma-Gamma spend model assumes they are independent, so expected order values and CLV may be "
            "biased"
        )
    return warnings


def _has_column(con, table: str, column: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.columns where table_schema = 'marts' "
            "and table_name = ? and column_name = ?",
            [table, column],
        ).fetchall()[0][0]
    )


def load_cohort_retention(con) -> dict:
    return {
        "rows": records(
            con,
            "select cohort_month, months_since_first_order, cohort_size, active_customers, retention_rate, "
            "is_complete_month from marts.cohort_retention order by cohort_month, months_since_first_order",
        )
    }


def load_ltv_curves(con) -> dict:
    return {
        "rows": records(
            con,
            "select cohort_month, months_since_first_order, cohort_size, cumulative_revenue_per_customer, "
            "cumulative_margin_per_customer from marts.cohort_retention "
            "order by cohort_month, months_since_first_order",
        ),
        # Mean CAC per channel, weighted by new customers (= spend / new customers over the cohorts with known spend).
        "cac": records(
            con,
            "select acquisition_channel, sum(new_customers) as new_customers, "
            "sum(cac * new_customers) / sum(new_customers) as mean_cac from marts.cac_payback "
            "where cac is not null and new_customers > 0 group by acquisition_channel order by acquisition_channel",
        ),
    }


PAYBACK_CURVE_SQL = f"""
with as_of as (select max(as_of_date) as as_of_date from marts.cac_payback),
paid as (   -- cohorts with a CAC; only calendar months that are over at the as-of date
    select c.acquisition_channel, c.cohort_month, c.months_since_acquisition, c.new_customers, c.cac,
           c.cumulative_margin_per_customer - coalesce(lag(c.cumulative_margin_per_customer) over (
               partition by c.acquisition_channel, c.cohort_month order by c.months_since_acquisition), 0)
               as margin_per_customer
    from marts.cac_payback_curve c, as_of
    where c.cac > 0 and c.new_customers > 0
      and last_day(c.cohort_month + to_months(c.months_since_acquisition)) <= as_of.as_of_date
),
channel_cac as (   -- the channel's CAC over every cohort in the curve (those that completed month 0)
    select acquisition_channel, sum(cac * new_customers) / sum(new_customers) as cac
    from paid where months_since_acquisition = 0 group by acquisition_channel
),
monthly as (   -- each month's margin per customer over the cohorts that completed that month
    select acquisition_channel, months_since_acquisition, count(*) as cohorts, sum(new_customers) as new_customers,
           sum(margin_per_customer * new_customers) / sum(new_customers) as margin_per_customer
    from paid group by acquisition_channel, months_since_acquisition
    having count(*) >= {MIN_PAYBACK_COHORTS}
),
chained as (
    select m.*, sum(m.margin_per_customer) over (partition by m.acquisition_channel
               order by m.months_since_acquisition) as cumulative_margin_per_customer,
           -- months in an unbroken run from 0: the line stops at the first month with too few cohorts
           m.months_since_acquisition = row_number() over (partition by m.acquisition_channel
               order by m.months_since_acquisition) - 1 as unbroken
    from monthly m
)
select c.acquisition_channel, c.months_since_acquisition, c.cohorts, c.new_customers, c.margin_per_customer,
       c.cumulative_margin_per_customer, k.cac, c.cumulative_margin_per_customer / k.cac as payback_ratio
from chained c join channel_cac k using (acquisition_channel)
where c.unbroken
order by c.acquisition_channel, c.months_since_acquisition
"""


def load_payback_curves(con) -> dict:
    """Per channel × month since acquisition, chain-linked: month m adds the margin per customer earned in month m
    by the cohorts that have completed month m (weighted by their new customers), so later months are not dragged
    down when only the older cohorts are left in the average; CAC is the channel's over all its cohorts."""
    return {"min_cohorts": MIN_PAYBACK_COHORTS, "rows": records(con, PAYBACK_CURVE_SQL)}


def load_payback_table(con) -> dict:
    rows = records(
        con,
        "select acquisition_channel, count(*) as cohorts, sum(new_customers) as new_customers, "
        "sum(spend) as spend, sum(cac * new_customers) / sum(new_customers) as cac, "
        "count(payback_months) as cohorts_paid_back, "
        "median(payback_months) as median_payback_months, "
        "median(predicted_payback_months) as median_predicted_payback_months, "
        "sum(ltv_to_cac_12m * new_customers) / sum(new_customers) "
        "filter (where ltv_to_cac_12m is not null) as ltv_to_cac_12m"
        + (
            ", sum(breakeven_cac_36m * new_customers) / sum(new_customers) "
            "filter (where breakeven_cac_36m is not null) as breakeven_cac_36m, "
            "sum(affordable_cac * new_customers) / sum(new_customers) "
            "filter (where affordable_cac is not null) as affordable_cac, "
            "any_value(target_ltv_to_cac) as target_ltv_to_cac"
            if _has_column(con, "cac_payback", "affordable_cac")
            else ", null as breakeven_cac_36m, null as affordable_cac, null as target_ltv_to_cac"
        )
        + " from marts.cac_payback where cac > 0 and new_customers > 0 "
        "group by acquisition_channel order by acquisition_channel",
    )
    return {"rows": rows}


def load_clv_distribution(con) -> dict:
    stats = records(
        con,
        "select count(*) as customers, sum(predicted_clv_365d) as total, avg(predicted_clv_365d) as mean, "
        "median(predicted_clv_365d) as median, quantile_cont(predicted_clv_365d, 0.9) as p90, "
        "quantile_cont(predicted_clv_365d, 0.99) as p99, min(predicted_clv_365d) as min, "
        "max(predicted_clv_365d) as max from marts.customer_clv where predicted_clv_365d is not null",
    )[0]
    values = (
        con.execute("select predicted_clv_365d from marts.customer_clv where predicted_clv_365d is not null")
        .fetchnumpy()["predicted_clv_365d"]
        .astype(float)
    )
    low = min(0.0, stats["min"] or 0.0)
    high = stats["p99"] if stats["p99"] is not None else 1.0
    if not high > low:
        high = low + 1.0
    # CLV_HISTOGRAM_BINS - 1 equal bins from `low` to the 99th percentile, then one overflow bin from it upwards:
    # bin i holds edges[i] <= v < edges[i+1] (the first bin also anything below), the last every v >= edges[-1].
    edges = np.linspace(low, high, CLV_HISTOGRAM_BINS)
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, CLV_HISTOGRAM_BINS - 1)
    counts = np.bincount(index, minlength=CLV_HISTOGRAM_BINS)
    bins = [
        {
            "lo": float(edges[i]),
            "hi": float(edges[i + 1]) if i < CLV_HISTOGRAM_BINS - 1 else None,
            "customers": int(counts[i]),
        }
        for i in range(CLV_HISTOGRAM_BINS)
    ]
    return {**stats, "bins": bins}


def load_p_alive_matrix(con) -> dict:
    rows = records(
        con,
        f"select least(frequency, {FREQUENCY_CAP}) as frequency, "
        f"cast(floor(recency / {RECENCY_BIN_WEEKS}) * {RECENCY_BIN_WEEKS} as integer) as recency_weeks, "
        "count(*) as customers, avg(p_alive) as mean_p_alive from marts.customer_clv "
        "group by all order by frequency, recency_weeks",
    )
    return {"frequency_cap": FREQUENCY_CAP, "recency_bin_weeks": RECENCY_BIN_WEEKS, "rows": rows}


def load_backtest(con) -> dict:
    """The latest back-test: per model (the purchase models and the formula), the mean predicted and actual repeat
    purchases by calibration frequency, and the overall errors in purchases and revenue; `overall` is the selected
    model's."""
    latest = "(select max(as_of_date) from marts.clv_backtest)"
    rows = records(
        con,
        "select model, frequency_bucket, customers, mean_predicted, mean_actual from marts.clv_backtest "
        f"where as_of_date = {latest} and frequency_bucket <> 'all' "
        "order by model, try_cast(replace(frequency_bucket, '+', '') as integer), frequency_bucket",
    )
    models = records(
        con,
        "select model, selected, customers, predicted_total, actual_total, aggregate_pct_error, "
        "mae_per_customer, revenue_predicted_total, revenue_actual_total, revenue_aggregate_pct_error, "
        "revenue_mae_per_customer from marts.clv_backtest "
        f"where as_of_date = {latest} and frequency_bucket = 'all' order by model",
    )
    overall = records(
        con,
        "select as_of_date, calibration_end, holdout_end, model, customers, predicted_total, actual_total, "
        "aggregate_pct_error, mae_per_customer from marts.clv_backtest "
        f"where as_of_date = {latest} and frequency_bucket = 'all' and selected",
    )
    order = {name: k for k, name in enumerate(MODEL_LABELS)}
    models.sort(key=lambda r: order.get(r["model"], len(order)))
    rows.sort(key=lambda r: order.get(r["model"], len(order)))
    return {"overall": overall[0] if overall else None, "models": models, "rows": rows}


def backtest_table(data: dict) -> Table:
    """The models side by side: errors on hold-out purchases (the selection criterion) and revenue."""

    def fmt(value, pattern: str) -> str:
        return "–" if value is None else format(value, pattern)

    rows = [
        [
            MODEL_LABELS.get(r["model"], r["model"]) + (" (selected)" if r["selected"] else ""),
            fmt(r["mae_per_customer"], ".3f"),
            fmt(r["predicted_total"], ",.0f"),
            fmt(r["actual_total"], ",.0f"),
            fmt(r["aggregate_pct_error"], "+.1%"),
            fmt(r["revenue_predicted_total"], ",.0f"),
            fmt(r["revenue_actual_total"], ",.0f"),
            fmt(r["revenue_aggregate_pct_error"], "+.1%"),
        ]
        for r in data["models"]
    ]
    return Table(
        [
            "model",
            "error per customer (purchases)",
            "predicted purchases",
            "actual purchases",
            "total purchases error",
            "predicted revenue",
            "actual revenue",
            "total revenue error",
        ],
        rows,
    )


def load_cohort_survival(con) -> dict:
    if not _has_table(con, "cohort_survival"):
        return {"rows": []}
    return {
        "rows": records(
            con,
            "select cohort_month, customers, mean_p_alive, active_share_last_90d, purchase_model "
            "from marts.cohort_survival order by cohort_month",
        )
    }


def _has_table(con, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = 'marts' and table_name = ?", [table]
        ).fetchall()[0][0]
    )


def load_segments(con) -> dict:
    return {
        "rows": records(
            con,
            "select segment, customers, share_of_customers, historical_revenue, predicted_clv_365d, "
            "predicted_clv_365d_per_customer, share_of_predicted_clv, mean_p_alive from marts.segment_clv "
            "where segment_kind = 'rfm_segment' order by predicted_clv_365d desc, segment",
        )
    }


def load_ltv_drivers(con) -> dict:
    rows = records(
        con,
        "select driver, driver_value, customers, repeat_rate, customers_90d_observed, "
        "value_90d_per_customer, customers_365d_observed, value_365d_per_customer "
        "from marts.ltv_drivers order by driver, value_365d_per_customer desc nulls last, driver_value",
    )
    return {"rows": rows, "min_customers": MIN_DRIVER_CUSTOMERS, "shown": driver_rows_shown(rows, MIN_DRIVER_CUSTOMERS)}


def _weighted(rows: list[dict], value: str, weight: str) -> float | None:
    total = sum(r[weight] or 0 for r in rows if r[value] is not None)
    return sum(r[value] * r[weight] for r in rows if r[value] is not None and r[weight]) / total if total else None


def driver_rows_shown(rows: list[dict], min_customers: int) -> list[dict]:
    """The LTV-driver rows the chart draws. Per driver, values with fewer than `min_customers` customers are
    grouped into one 'other' row (values weighted by the customers observed for each window), which is itself
    dropped when it still has too few; a window's value is left out (null) when fewer than `min_customers`
    customers were observed for the whole window."""
    shown = []
    for driver in _distinct([r["driver"] for r in rows]):
        values = [r for r in rows if r["driver"] == driver]
        kept = [dict(r, grouped_values=1) for r in values if r["customers"] >= min_customers]
        small = [r for r in values if r["customers"] < min_customers]
        if small and sum(r["customers"] for r in small) >= min_customers:
            kept.append(
                {
                    "driver": driver,
                    "driver_value": f"other ({len(small)} values)",
                    "customers": sum(r["customers"] for r in small),
                    "grouped_values": len(small),
                    "repeat_rate": _weighted(small, "repeat_rate", "customers"),
                    **{
                        f"customers_{w}d_observed": sum(r[f"customers_{w}d_observed"] or 0 for r in small)
                        for w in (90, 365)
                    },
                    **{
                        f"value_{w}d_per_customer": _weighted(
                            small, f"value_{w}d_per_customer", f"customers_{w}d_observed"
                        )
                        for w in (90, 365)
                    },
                }
            )
        for r in kept:
            for w in (90, 365):
                if (r[f"customers_{w}d_observed"] or 0) < min_customers:
                    r[f"value_{w}d_per_customer"] = None
        shown += kept
    return shown


def load_kpi_trends(con) -> dict:
    return {
        "rows": records(
            con,
            "select month, customers, new_customers, returning_customers, orders, revenue, aov, "
            "purchase_frequency, repeat_customer_rate, retention_rate, churn_rate, "
            "month_over_month_retention_rate from marts.retention_kpis order by month",
        )
    }


PURCHASE_PARAMETERS = {
    "bg_nbd": ("r", "alpha", "a", "b"),
    "pareto_nbd": ("r", "alpha", "s", "beta"),
    "mbg_nbd": ("r", "alpha", "a", "b"),
}
GAMMA_GAMMA_PARAMETERS = ("p", "q", "gamma")


def load_model_drift(con) -> dict:
    """The parameters over time of the purchase model used at the latest as-of date (BG/NBD in warehouses from
    before the models were compared) and of Gamma-Gamma, with their standard errors where recorded."""
    model = records(
        con,
        "select model from marts.clv_model_fit where parameter = 'selected' and value = 1 "
        "and as_of_date = (select max(as_of_date) from marts.clv_model_fit)",
    )
    model = model[0]["model"] if model else "bg_nbd"
    names = ", ".join(f"'{p}'" for p in (*PURCHASE_PARAMETERS[model], *GAMMA_GAMMA_PARAMETERS, "n_customers"))
    error = "std_error" if _has_column(con, "clv_model_fit", "std_error") else "null as std_error"
    return {
        "purchase_model": model,
        "rows": records(
            con,
            f"select as_of_date, model, parameter, value, {error} from marts.clv_model_fit "
            f"where model in ('{model}', 'gamma_gamma') and parameter in ({names}) "
            "order by model, parameter, as_of_date",
        ),
    }


# ---------------------------------------------------------------- drawing helpers


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _no_data(ax, message: str = "no data") -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#777777")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def compact_number(value: float) -> str:
    """Tick labels that stay short: 750k, 1M, 1.25M, 2.5B; below a thousand up to 3 significant digits."""
    for threshold, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= threshold:
            return f"{value / threshold:.3g}{suffix}"
    return "0" if value == 0 else f"{value:.3g}"


def _money(ax, axis: str = "y") -> None:
    """A money axis: at most 6 ticks at round steps, compact labels (the full figures are in the page's JSON)."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    target.set_major_formatter(FuncFormatter(lambda v, _pos: compact_number(v)))


def _thin_labels(labels: list[str], max_labels: int = MAX_TICK_LABELS) -> list[str]:
    """Every k-th label of a long category axis (the others blank), so neighbours never overlap."""
    step = max(1, math.ceil(len(labels) / max_labels))
    return [label if i % step == 0 else "" for i, label in enumerate(labels)]


def _month_label(iso: str) -> str:
    return iso[:7]


def _distinct(values: list) -> list:
    return list(dict.fromkeys(values))


CHANNEL_COLOURS = {
    "affiliate": "#1f77b4",
    "email": "#ff7f0e",
    "paid_search": "#2ca02c",
    "paid_social": "#d62728",
    "organic": "#9467bd",
    "referral": "#8c564b",
}


def _channel_colour(channel: str, k: int) -> str:
    """The same colour for a channel in every chart (unknown channels take the remaining palette colours)."""
    return CHANNEL_COLOURS.get(channel, PALETTE[(k + 6) % len(PALETTE)])


def _date_axis(ax, dates: list) -> None:
    locator = AutoDateLocator(minticks=2, maxticks=5)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    if len(set(dates)) == 1:
        ax.set_xlim(dates[0] - np.timedelta64(45, "D"), dates[0] + np.timedelta64(45, "D"))
        ax.set_xticks([dates[0]], [str(dates[0])])


# ---------------------------------------------------------------- drawings


def draw_cohort_retention(data: dict) -> Figure:
    rows = data["rows"]
    cohorts = sorted({r["cohort_month"] for r in rows})
    months = sorted({r["months_since_first_order"] for r in rows})
    fig = _figure(11, max(3.5, 0.3 * len(cohorts) + 1.5))
    ax = fig.add_subplot()
    if not rows:
        _no_data(ax)
        return fig
    matrix = np.full((len(cohorts), len(months)), np.nan)
    row_of = {c: i for i, c in enumerate(cohorts)}
    col_of = {m: j for j, m in enumerate(months)}
    for r in rows:
        matrix[row_of[r["cohort_month"]], col_of[r["months_since_first_order"]]] = _num(r["retention_rate"]) * 100
    # Month 0 is 100 % by definition: scale the colours on months >= 1 so the interesting range is visible.
    later = matrix[:, 1:] if matrix.shape[1] > 1 else matrix
    vmax = np.nanmax(later) if np.isfinite(later).any() else 100
    cmap = colormaps["YlGnBu"].with_extremes(bad="white")
    image = ax.imshow(matrix, aspect="auto", cmap=cmap, vmin=0, vmax=max(vmax, 1), interpolation="nearest")
    if matrix.size <= 700:
        for (i, j), value in np.ndenumerate(matrix):
            if np.isfinite(value):
                colour = "white" if value > 0.6 * max(vmax, 1) else "#222222"
                ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=6, color=colour)
    sizes = {r["cohort_month"]: r["cohort_size"] for r in rows if r["months_since_first_order"] == months[0]}
    ax.set_yticks(
        range(len(cohorts)), _thin_labels([f"{_month_label(c)} (n={sizes.get(c, '?')})" for c in cohorts], 40)
    )
    ax.set_xticks(range(len(months)), _thin_labels([str(m) for m in months], 40))
    ax.set_xlabel("months since first order")
    ax.set_ylabel("cohort (first-order month)")
    ax.grid(False)
    fig.colorbar(
        image, ax=ax, label="customers ordering again (% of cohort)", shrink=0.8, format=PercentFormatter(decimals=0)
    )
    return fig


def draw_ltv_curves(data: dict) -> Figure:
    rows, cac = data["rows"], data["cac"]
    fig = _figure(11, 4.6)
    axes = fig.subplots(1, 2, sharex=True)
    cohorts = sorted({r["cohort_month"] for r in rows})
    cmap = colormaps["viridis"]
    for ax, column, label in (
        (axes[0], "cumulative_revenue_per_customer", "cumulative revenue per customer"),
        (axes[1], "cumulative_margin_per_customer", "cumulative gross margin per customer"),
    ):
        if not rows:
            _no_data(ax)
            continue
        for k, cohort in enumerate(cohorts):
            points = [r for r in rows if r["cohort_month"] == cohort]
            colour = cmap(k / max(1, len(cohorts) - 1))
            ax.plot(
                [p["months_since_first_order"] for p in points],
                [_num(p[column]) for p in points],
                color=colour,
                linewidth=1.1,
                alpha=0.85,
            )
        for k, channel in enumerate(cac):
            ax.axhline(
                _num(channel["mean_cac"]),
                color=_channel_colour(channel["acquisition_channel"], k),
                linestyle="--",
                linewidth=1.2,
                label=f"CAC {channel['acquisition_channel']} ({_num(channel['mean_cac']):,.0f})",
            )
        ax.set_title(label)
        ax.set_xlabel("months since first order")
        _money(ax)
    if rows:
        first, last = _month_label(cohorts[0]), _month_label(cohorts[-1])
        axes[0].text(
            0.02,
            0.97,
            f"one line per cohort: dark = {first}, light = {last}",
            transform=axes[0].transAxes,
            va="top",
            fontsize=8,
            color="#444444",
        )
        if cac:
            axes[1].legend(loc="upper left", title="mean CAC per channel", title_fontsize=8)
    return fig


def draw_payback_curves(data: dict) -> Figure:
    rows = data["rows"]
    fig = _figure(11, 4.4)
    axes = fig.subplots(1, 2)
    channels = _distinct([r["acquisition_channel"] for r in rows])
    if not rows:
        for ax in axes:
            _no_data(ax, f"no channel with known marketing spend and {data['min_cohorts']}+ cohorts")
        return fig
    for k, channel in enumerate(channels):
        points = [r for r in rows if r["acquisition_channel"] == channel]
        x = [p["months_since_acquisition"] for p in points]
        colour = _channel_colour(channel, k)
        axes[0].plot(x, [_num(p["payback_ratio"]) for p in points], color=colour, linewidth=1.6, label=channel)
        axes[1].plot(
            x, [_num(p["cumulative_margin_per_customer"]) for p in points], color=colour, linewidth=1.6, label=channel
        )
        axes[1].plot(x, [_num(p["cac"]) for p in points], color=colour, linewidth=1, linestyle=":")
    axes[0].axhline(1.0, color="#444444", linewidth=1.4, linestyle="--")
    axes[0].text(
        1.0,
        1.0,
        "paid back (margin = CAC) ",
        color="#444444",
        fontsize=8,
        va="bottom",
        ha="right",
        transform=axes[0].get_yaxis_transform(),
    )
    ratios = [r["payback_ratio"] for r in rows if r["payback_ratio"] is not None and r["payback_ratio"] > 0]
    if ratios and max(ratios) / min(ratios) > 20:
        axes[0].set_yscale("log")  # a cheap channel at 40× would flatten the others against the 1× line
        axes[0].yaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: f"{v:g}×" if str(f"{v:g}")[0] in "25" else ""))
        axes[0].set_title("cumulative margin per customer ÷ CAC (log scale)")
    else:
        axes[0].set_title("cumulative margin per customer ÷ CAC")
    axes[0].set_xlabel(f"months since acquisition (while {data['min_cohorts']}+ cohorts have completed the month)")
    axes[0].yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}×"))
    axes[0].legend(loc="upper left")
    axes[1].set_title("cumulative margin per customer (solid) vs CAC (dotted)")
    axes[1].set_xlabel("months since acquisition")
    _money(axes[1])
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))
    return fig


def draw_clv_distribution(data: dict) -> Figure:
    fig = _figure(11, 3.8)
    ax = fig.add_subplot()
    bins = data["bins"]
    if not data["customers"]:
        _no_data(ax)
        return fig
    width = bins[0]["hi"] - bins[0]["lo"] if bins[0]["hi"] is not None else 1.0
    lefts = [b["lo"] for b in bins]
    counts = [b["customers"] for b in bins]
    colours = ["#1f77b4"] * (len(bins) - 1) + ["#ff7f0e"]
    ax.bar(lefts, counts, width=width * 0.95, align="edge", color=colours)
    for value, name, style in (
        (data["mean"], "mean", "--"),
        (data["median"], "median", ":"),
        (data["p90"], "90th pct", "-."),
    ):
        if value is not None:
            ax.axvline(value, color="#333333", linestyle=style, linewidth=1.1, label=f"{name} {value:,.0f}")
    ax.set_xlabel("predicted CLV, next 365 days (discounted gross margin)")
    ax.set_ylabel("customers")
    _money(ax, "x")
    ax.legend(
        loc="upper right",
        title=f"{data['customers']:,} customers; orange = above the 99th pct (up to {_num(data['max']):,.0f})",
        title_fontsize=8,
    )
    return fig


def draw_p_alive_matrix(data: dict) -> Figure:
    rows = data["rows"]
    fig = _figure(11, 4.8)
    ax = fig.add_subplot()
    if not rows:
        _no_data(ax)
        return fig
    cap, step = data["frequency_cap"], data["recency_bin_weeks"]
    frequencies = list(range(0, max(r["frequency"] for r in rows) + 1))
    recencies = list(range(0, max(r["recency_weeks"] for r in rows) + step, step))
    matrix = np.full((len(frequencies), len(recencies)), np.nan)
    for r in rows:
        if r["customers"] >= MIN_CELL_CUSTOMERS:
            matrix[r["frequency"], r["recency_weeks"] // step] = _num(r["mean_p_alive"])
    cmap = colormaps["RdYlGn"].with_extremes(bad="#f2f2f2")
    image = ax.imshow(matrix, aspect="auto", origin="lower", cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks(range(len(frequencies)), [f"{f}+" if f == cap else str(f) for f in frequencies])
    ax.set_xticks(range(len(recencies)), _thin_labels([str(w) for w in recencies]), rotation=0)
    ax.set_xlabel(f"recency: weeks between first and last purchase ({step}-week bins)")
    ax.set_ylabel("frequency (repeat purchases)")
    ax.grid(False)
    fig.colorbar(image, ax=ax, label="mean P(alive)", shrink=0.85)
    return fig


def draw_backtest(data: dict) -> Figure:
    rows = data["rows"]
    fig = _figure(11, 3.8)
    ax = fig.add_subplot()
    if not rows:
        _no_data(ax, "no back-test yet")
        return fig
    models = _distinct([r["model"] for r in rows])
    buckets = _distinct([r["frequency_bucket"] for r in rows if r["model"] == models[0]])
    customers = {r["frequency_bucket"]: r["customers"] for r in rows if r["model"] == models[0]}
    x = np.arange(len(buckets))
    width = 0.8 / (len(models) + 1)
    selected = {r["model"] for r in data.get("models", []) if r["selected"]}
    for k, model in enumerate(models):
        by_bucket = {r["frequency_bucket"]: r for r in rows if r["model"] == model}
        ax.bar(
            x - 0.4 + width * (k + 0.5),
            [_num(by_bucket.get(b, {}).get("mean_predicted")) for b in buckets],
            width=width,
            color=PALETTE[[0, 2, 4, 7][k % 4]] if model != "formula" else "#bbbbbb",
            label=MODEL_LABELS.get(model, model).split(" (")[0] + (" (selected)" if model in selected else ""),
            edgecolor="#222222" if model in selected else "none",
            linewidth=0.8,
        )
    first = {r["frequency_bucket"]: r for r in rows if r["model"] == models[0]}
    ax.bar(
        x - 0.4 + width * (len(models) + 0.5),
        [_num(first[b]["mean_actual"]) for b in buckets],
        width=width,
        label="actual",
        color="#ff7f0e",
    )
    ax.set_xticks(x, [f"{b}\n(n={customers[b]:,})" for b in buckets])
    ax.set_xlabel("repeat purchases in the calibration period")
    ax.set_ylabel("repeat purchases per customer in the holdout")
    overall = data["overall"]
    if overall:
        error = overall["aggregate_pct_error"]
        label = MODEL_LABELS.get(overall["model"], overall["model"])
        ax.set_title(
            f"calibration to {overall['calibration_end']}, holdout to {overall['holdout_end']}: {label} predicted "
            f"{_num(overall['predicted_total']):,.0f} repeat purchases vs actual "
            f"{_num(overall['actual_total']):,.0f}" + (f" ({error:+.1%})" if error is not None else ""),
            fontweight="normal",
        )
    ax.legend(loc="upper left", ncol=2)
    return fig


def draw_cohort_survival(data: dict) -> Figure:
    rows = data["rows"]
    fig = _figure(11, 3.8)
    ax = fig.add_subplot()
    if not rows or all(r["mean_p_alive"] is None for r in rows):
        _no_data(ax, "no purchase model this run" if rows else "no data")
        return fig
    months = [np.datetime64(r["cohort_month"]) for r in rows]
    label = MODEL_LABELS.get(rows[0]["purchase_model"] or "", "the model")
    ax.plot(
        months,
        [_num(r["mean_p_alive"]) for r in rows],
        marker="o",
        markersize=3,
        linewidth=1.6,
        color="#1f77b4",
        label=f"mean P(alive), {label}",
    )
    ax.plot(
        months,
        [_num(r["active_share_last_90d"]) for r in rows],
        marker="s",
        markersize=3,
        linewidth=1.6,
        color="#ff7f0e",
        label="observed: ordered in the last 90 days",
    )
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1))
    ax.set_xlabel("acquisition cohort (month of the first order)")
    ax.set_ylabel("share of the cohort")
    _date_axis(ax, months)
    ax.legend(loc="lower left")
    return fig


def draw_segments(data: dict) -> Figure:
    rows = data["rows"]
    fig = _figure(11, 4.0)
    axes = fig.subplots(1, 2)
    if not rows:
        for ax in axes:
            _no_data(ax)
        return fig
    names = [r["segment"].replace("_", " ") for r in rows]
    y = np.arange(len(rows))
    axes[0].barh(y, [r["customers"] for r in rows], color="#1f77b4")
    for i, r in enumerate(rows):
        axes[0].text(r["customers"], i, f" {_num(r['share_of_customers']):.0%}", va="center", fontsize=8)
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()
    axes[0].set_title("customers (share of all)")
    axes[0].margins(x=0.15)
    axes[1].barh(
        y - 0.2, [_num(r["historical_revenue"]) for r in rows], height=0.4, label="historical revenue", color="#9ecae1"
    )
    axes[1].barh(
        y + 0.2,
        [_num(r["predicted_clv_365d"]) for r in rows],
        height=0.4,
        label="predicted CLV, next 365 d",
        color="#2ca02c",
    )
    axes[1].set_yticks(y, names)
    axes[1].invert_yaxis()
    axes[1].set_title("value (total per segment)")
    _money(axes[1], "x")
    axes[1].legend(loc="lower right")
    return fig


def draw_ltv_drivers(data: dict) -> Figure:
    rows = data["shown"]
    drivers = _distinct([r["driver"] for r in rows])
    columns = 2
    panels = max(1, len(drivers))
    fig = _figure(11, 3.0 * math.ceil(panels / columns))
    axes = np.atleast_1d(fig.subplots(math.ceil(panels / columns), columns, squeeze=False)).ravel()
    if not rows:
        _no_data(axes[0])
    for ax, driver in zip(axes, drivers):
        points = [r for r in rows if r["driver"] == driver]
        y = np.arange(len(points))
        ax.barh(
            y - 0.2,
            [_num(p["value_90d_per_customer"]) for p in points],
            height=0.4,
            color="#9ecae1",
            label="first 90 days",
        )
        ax.barh(
            y + 0.2,
            [_num(p["value_365d_per_customer"]) for p in points],
            height=0.4,
            color="#1f77b4",
            label="first 365 days",
        )
        ax.set_yticks(y, [f"{p['driver_value']} (n={p['customers']:,})" for p in points])
        for i, p in enumerate(points):
            missing = [label for w, label in ((90, "90 d"), (365, "365 d")) if p[f"value_{w}d_per_customer"] is None]
            if missing:
                ax.text(
                    0,
                    i + (0.2 if len(missing) == 1 and missing[0] == "365 d" else 0),
                    f"  {' & '.join(missing)}: fewer than {data['min_customers']} customers observed",
                    va="center",
                    fontsize=7,
                    color="#777777",
                )
        ax.invert_yaxis()
        hidden = [r for r in data["rows"] if r["driver"] == driver and r["customers"] < data["min_customers"]]
        grouped = any(p["grouped_values"] > 1 for p in points)
        ax.set_title(
            driver.replace("_", " ")
            + (
                f" ({len(hidden)} value{'s' if len(hidden) > 1 else ''} under "
                f"{data['min_customers']} customers not shown)"
                if hidden and not grouped
                else ""
            )
        )
        _money(ax, "x")
    for ax in axes[len(drivers) :]:
        ax.set_visible(False)
    if drivers:
        axes[0].legend(loc="lower right", title="revenue per customer", title_fontsize=8)
    return fig


def draw_kpi_trends(data: dict) -> Figure:
    rows = data["rows"]
    fig = _figure(11, 5.6)
    axes = fig.subplots(2, 2, sharex=True).ravel()
    if not rows:
        for ax in axes:
            _no_data(ax)
        return fig
    months = np.array([np.datetime64(r["month"]) for r in rows])
    panels = (
        (axes[0], "average order value", [("aov", "AOV", "#1f77b4")], False),
        (
            axes[1],
            "purchase frequency (orders per active customer)",
            [("purchase_frequency", "orders / customer", "#ff7f0e")],
            False,
        ),
        (
            axes[2],
            "customers with 2+ orders within the month (share of the month's buyers)",
            [("repeat_customer_rate", "2+ orders in the month", "#2ca02c")],
            True,
        ),
        (
            axes[3],
            "retention and churn (of customers seen before)",
            [
                ("retention_rate", "retention", "#1f77b4"),
                ("churn_rate", "churn", "#d62728"),
                ("month_over_month_retention_rate", "month-over-month retention", "#9467bd"),
            ],
            True,
        ),
    )
    for ax, title, series, percent in panels:
        for column, label, colour in series:
            ax.plot(
                months,
                [_num(r[column]) for r in rows],
                marker="o",
                markersize=3,
                linewidth=1.4,
                color=colour,
                label=label,
            )
        ax.set_title(title)
        if percent:
            ax.yaxis.set_major_formatter(PercentFormatter(xmax=1))
        if len(series) > 1:
            ax.set_ylim(0, 1.15)
            ax.legend(loc="upper center", ncol=len(series), fontsize=7)
    _date_axis(axes[2], list(months))  # shared x: one locator for all four panels
    return fig


def draw_model_drift(data: dict) -> Figure:
    rows = data["rows"]
    purchase = data.get("purchase_model", "bg_nbd")
    fig = _figure(11, 4.6)
    axes = fig.subplots(2, 4).ravel()
    panels = (
        [(purchase, p) for p in PURCHASE_PARAMETERS[purchase]]
        + [("gamma_gamma", p) for p in GAMMA_GAMMA_PARAMETERS]
        + [("n_customers", "customers fitted")]
    )
    for ax, (model, parameter) in zip(axes, panels):
        if model == "n_customers":
            for k, name in enumerate((purchase, "gamma_gamma")):
                points = [r for r in rows if r["model"] == name and r["parameter"] == "n_customers"]
                dates = [np.datetime64(p["as_of_date"]) for p in points]
                ax.plot(
                    dates,
                    [_num(p["value"]) for p in points],
                    marker="o",
                    color=PALETTE[k],
                    label=MODEL_LABELS.get(name, name),
                )
                if dates:
                    _date_axis(ax, dates)
            ax.set_title(parameter)
            ax.legend(loc="best")
        else:
            points = [r for r in rows if r["model"] == model and r["parameter"] == parameter]
            colour = PALETTE[0] if model != "gamma_gamma" else PALETTE[1]
            dates = [np.datetime64(p["as_of_date"]) for p in points]
            ax.plot(dates, [_num(p["value"]) for p in points], marker="o", color=colour)
            with_error = [(d, p) for d, p in zip(dates, points) if p.get("std_error") is not None]
            if with_error:  # ± 2 standard errors: about 95 % of the estimate's sampling spread
                ax.errorbar(
                    [d for d, _ in with_error],
                    [_num(p["value"]) for _, p in with_error],
                    yerr=[2 * _num(p["std_error"]) for _, p in with_error],
                    fmt="none",
                    ecolor=colour,
                    elinewidth=1,
                    capsize=3,
                    alpha=0.6,
                )
            if dates:
                _date_axis(ax, dates)
            label = MODEL_LABELS.get(model, model)
            ax.set_title(f"{label} {parameter}")
            if len(points) == 1:
                ax.annotate(
                    f"{points[0]['value']:.4g}",
                    (np.datetime64(points[0]["as_of_date"]), points[0]["value"]),
                    textcoords="offset points",
                    xytext=(6, 4),
                    fontsize=8,
                )
            if not points:
                _no_data(ax)
        ax.tick_params(axis="x", labelsize=7)
    return fig


# ---------------------------------------------------------------- the catalogue


@dataclass(frozen=True)
class ChartSpec:
    id: str
    title: str
    caption: str
    load: Callable[[duckdb.DuckDBPyConnection], dict]
    draw: Callable[[dict], Figure]


CHARTS: tuple[ChartSpec, ...] = (
    ChartSpec(
        "cohort-retention",
        "Cohort retention",
        "Each row is the cohort of customers whose first order fell in that month; each column counts months since "
        "that first order. A cell is the share of the cohort that ordered in that month (month 0 is 100 % by "
        "definition, so colours are scaled on months 1+). Read across a row for how one cohort decays, down a column "
        "to see whether newer cohorts retain better than older ones.",
        load_cohort_retention,
        draw_cohort_retention,
    ),
    ChartSpec(
        "ltv-curves",
        "Cumulative revenue and margin per customer by cohort (LTV curves)",
        "One line per cohort: revenue (left) and gross margin (right) accumulated per original cohort customer, by "
        "months since the first order. Steeper and higher is better. Dashed lines are the mean CAC per acquisition "
        "channel (spend ÷ new customers over all cohorts): where a margin curve crosses a channel's line, a customer "
        "from that channel has paid back their acquisition cost.",
        load_ltv_curves,
        draw_ltv_curves,
    ),
    ChartSpec(
        "payback-curves",
        "CAC payback by acquisition channel",
        "Left: cumulative gross margin per acquired customer divided by CAC, by months since acquisition; "
        "the channel has paid back where its line crosses 1× (dashed). Right: the same margin and CAC in "
        "money. Each month adds the margin per customer that the cohorts which have completed that month "
        "earned in it (weighted by their new customers), so the curve uses every cohort for the early months "
        "and is not pulled down later when only the older cohorts are left; CAC is the channel's over all its "
        f"cohorts. A line stops where fewer than {MIN_PAYBACK_COHORTS} cohorts have completed the month (the "
        "month in progress never counts). Channels without marketing spend (organic, referral) have no CAC and "
        "are left out. The table gives per channel the observed payback month (median over the cohorts that "
        "paid back), the model's predicted payback month, the month where the curve crosses 1×, the "
        "12-month LTV:CAC, the break-even CAC (the discounted margin an acquired customer is expected to bring in "
        "36 months: paying more loses money) and the affordable CAC (break-even ÷ the target LTV:CAC, "
        "CLV_TARGET_LTV_TO_CAC): a channel whose CAC is above it is buying customers too dear.",
        load_payback_curves,
        draw_payback_curves,
    ),
    ChartSpec(
        "clv-distribution",
        "Distribution of predicted 365-day CLV",
        "Customers by predicted CLV over the next 365 days (the purchase model's purchases × Gamma-Gamma order value "
        "× margin, discounted). Equal-width bins from 0 to the 99th percentile; the orange bar gathers the top "
        "1 %. A long right tail is normal: a small group of customers carries most future value.",
        load_clv_distribution,
        draw_clv_distribution,
    ),
    ChartSpec(
        "p-alive-matrix",
        "P(alive) by recency and frequency",
        "The classic BG/NBD-style matrix (from the purchase model in use): mean probability that customers are "
        "still active, by how many repeat purchases they made (rows) and how late in their history the last one "
        "came (columns, weeks after the first). Green = likely alive. Frequent buyers whose last purchase was long "
        "ago (top left) are the most likely to have churned; "
        f"grey cells have fewer than {MIN_CELL_CUSTOMERS} customers.",
        load_p_alive_matrix,
        draw_p_alive_matrix,
    ),
    ChartSpec(
        "backtest",
        "Back-test: the purchase models side by side",
        "Each purchase model (BG/NBD, Pareto/NBD, MBG/NBD) is fitted on the calibration period only and predicts "
        "each customer's repeat purchases in the holdout that follows; the grey bars are the articles' formula "
        "(AOV × frequency × lifespan from the calibration period). Bars compare the mean prediction with what "
        "customers actually did, by number of repeat purchases in calibration (latest back-test). The model with "
        "the smallest error per customer scores the customers (selected, outlined). The table gives each model's "
        "errors on purchases and on revenue (predicted purchases × the Gamma-Gamma order value): the formula's "
        "revenue error is how far the formula CLV was from what happened.",
        load_backtest,
        draw_backtest,
    ),
    ChartSpec(
        "cohort-survival",
        "Survival by cohort: the model vs what was observed",
        "For each acquisition cohort, the mean probability that its customers are still active according to the "
        "purchase model (P(alive) at the as-of date), beside the share who actually ordered in the last 90 days. "
        "P(alive) counts customers who have not dropped out even if they did not buy recently, so it is normally "
        "above the 90-day share, most for the youngest cohorts; a gap that keeps widening, or a model line "
        "falling below the observed one, says the model no longer describes the customers.",
        load_cohort_survival,
        draw_cohort_survival,
    ),
    ChartSpec(
        "segments",
        "Customer segments: size and value",
        "RFM segments: how many customers each holds (left) and the money they are worth (right): revenue to date "
        "and predicted CLV for the next 365 days. Segments where the green bar is large relative to their size are "
        "where retention spend pays most.",
        load_segments,
        draw_segments,
    ),
    ChartSpec(
        "ltv-drivers",
        "LTV drivers",
        "Revenue per customer in the first 90 and 365 days after the first order, split by what we knew at "
        "acquisition (one panel per driver). Each value only counts customers observed for the full window. Large "
        "gaps between bars in one panel point at the levers (channel, first category, first-order discount) that "
        "shape lifetime value. Too few customers make a noisy bar: values with fewer than "
        f"{MIN_DRIVER_CUSTOMERS} customers are grouped into one 'other' row per panel (left out when the group "
        f"is still that small), and a window's bar is drawn only when at least {MIN_DRIVER_CUSTOMERS} customers "
        "were observed for all of it (the full figures of every value are in this page's data).",
        load_ltv_drivers,
        draw_ltv_drivers,
    ),
    ChartSpec(
        "kpi-trends",
        "Monthly KPI trends",
        "Month by month: average order value, orders per active customer, the share of the month's buyers who "
        "ordered twice or more within that same month (retention_kpis.repeat_customer_rate; not the lifetime "
        "share of customers with 2+ orders in the key figures above), and retention/churn of customers acquired "
        "before the month (month-over-month retention: share of last month's customers who ordered again). Look "
        "for trends, not single months.",
        load_kpi_trends,
        draw_kpi_trends,
    ),
    ChartSpec(
        "model-drift",
        "Model parameters over time",
        "The fitted parameters of the purchase model in use and of Gamma-Gamma at each as-of date the pipeline has "
        "run for (kept across runs), with ± 2 standard errors. Stable values mean the model sees the same customer "
        "behaviour; a jump larger than the error bars after new data is worth a look before trusting the CLV "
        "figures. Purchase model: r, alpha shape the purchase rate; a, b (BG/NBD, MBG/NBD) the dropout "
        "probability, s, beta (Pareto/NBD) the lifetime; Gamma-Gamma: p, q, gamma the spend per order. With one "
        "as-of date each panel shows a single point.",
        load_model_drift,
        draw_model_drift,
    ),
)


_SVG_ID = re.compile(r'\bid="([^"]+)"')


def _svg_element(fig: Figure, prefix: str) -> str:
    """The figure as an <svg> element for inline use: no XML prologue, no metadata, and every id (and reference
    to it) prefixed, so several charts in one page never share an id."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", dpi=DPI, metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)
    ids = set(_SVG_ID.findall(text))
    text = _SVG_ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', text)
    text = re.sub(
        r'(href="#|url\(#)([^")]+)',
        lambda m: m.group(1) + (f"{prefix}-{m.group(2)}" if m.group(2) in ids else m.group(2)),
        text,
    )
    return text.strip()


def render(spec: ChartSpec, data: dict, png: bool = False) -> tuple[str, bytes | None]:
    """(inline SVG, PNG when asked) of one chart."""
    with matplotlib.rc_context(STYLE):
        fig = spec.draw(data)
        return _svg_element(fig, spec.id), (_png(fig) if png else None)


def format_months(value) -> str:
    """A month count the same way everywhere: 1, 2.5 (a median of two cohorts), '–' when unknown."""
    if value is None:
        return "–"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def payback_table(data: dict) -> Table:
    """Per channel: the payback figures of `cac_payback` (`data` from load_payback_table, with the pooled month
    added)."""

    def fmt(value, pattern: str) -> str:
        return "–" if value is None else format(value, pattern)

    rows = [
        [
            r["acquisition_channel"],
            f"{r['cohorts']:,}",
            f"{r['new_customers']:,}",
            fmt(r["spend"], ",.0f"),
            fmt(r["cac"], ",.2f"),
            f"{r['cohorts_paid_back']:,} / {r['cohorts']:,}",
            format_months(r["median_payback_months"]),
            format_months(r["median_predicted_payback_months"]),
            format_months(r["pooled_payback_month"]),
            fmt(r["ltv_to_cac_12m"], ".2f"),
            fmt(r["breakeven_cac_36m"], ",.2f"),
            fmt(r["affordable_cac"], ",.2f"),
        ]
        for r in data["rows"]
    ]
    target = next((r["target_ltv_to_cac"] for r in data["rows"] if r["target_ltv_to_cac"] is not None), None)
    return Table(
        [
            "channel",
            "cohorts",
            "new customers",
            "spend",
            "CAC",
            "cohorts paid back",
            "median payback month",
            "median predicted payback month",
            "payback month of the curve",
            "LTV:CAC 12 m",
            "break-even CAC 36 m",
            "affordable CAC" + (f" (LTV:CAC {target:g}×)" if target else ""),
        ],
        rows,
    )


def pooled_payback_months(curves: dict) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for r in curves["rows"]:
        channel = r["acquisition_channel"]
        out.setdefault(channel, None)
        if out[channel] is None and r["payback_ratio"] is not None and r["payback_ratio"] >= 1:
            out[channel] = r["months_since_acquisition"]
    return out
