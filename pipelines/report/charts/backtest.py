"""Back-test: the purchase models (and the articles' formula) side by side against the hold-out, by calibration
frequency, and the table of their errors on purchases and revenue under the chart."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from pipelines.report.charts.common import (
    MODEL_LABELS,
    PALETTE,
    ChartSpec,
    Table,
    distinct,
    figure,
    format_number,
    no_data,
    num,
)
from pipelines.report.charts.sql import records


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


def draw_backtest(data: dict) -> Figure:
    rows = data["rows"]
    fig = figure(11, 3.8)
    ax = fig.add_subplot()
    if not rows:
        no_data(ax, "no back-test yet")
        return fig
    models = distinct([r["model"] for r in rows])
    buckets = distinct([r["frequency_bucket"] for r in rows if r["model"] == models[0]])
    customers = {r["frequency_bucket"]: r["customers"] for r in rows if r["model"] == models[0]}
    x = np.arange(len(buckets))
    width = 0.8 / (len(models) + 1)
    selected = {r["model"] for r in data.get("models", []) if r["selected"]}
    for k, model in enumerate(models):
        by_bucket = {r["frequency_bucket"]: r for r in rows if r["model"] == model}
        ax.bar(
            x - 0.4 + width * (k + 0.5),
            [num(by_bucket.get(b, {}).get("mean_predicted")) for b in buckets],
            width=width,
            color=PALETTE[[0, 2, 4, 7][k % 4]] if model != "formula" else "#bbbbbb",
            label=MODEL_LABELS.get(model, model).split(" (")[0] + (" (selected)" if model in selected else ""),
            edgecolor="#222222" if model in selected else "none",
            linewidth=0.8,
        )
    first = {r["frequency_bucket"]: r for r in rows if r["model"] == models[0]}
    ax.bar(
        x - 0.4 + width * (len(models) + 0.5),
        [num(first[b]["mean_actual"]) for b in buckets],
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
            f"{num(overall['predicted_total']):,.0f} repeat purchases vs actual "
            f"{num(overall['actual_total']):,.0f}" + (f" ({error:+.1%})" if error is not None else ""),
            fontweight="normal",
        )
    ax.legend(loc="upper left", ncol=2)
    return fig


def backtest_table(data: dict) -> Table:
    """The models side by side: errors on hold-out purchases (the selection criterion) and revenue."""
    rows = [
        [
            MODEL_LABELS.get(r["model"], r["model"]) + (" (selected)" if r["selected"] else ""),
            format_number(r["mae_per_customer"], ".3f"),
            format_number(r["predicted_total"], ",.0f"),
            format_number(r["actual_total"], ",.0f"),
            format_number(r["aggregate_pct_error"], "+.1%"),
            format_number(r["revenue_predicted_total"], ",.0f"),
            format_number(r["revenue_actual_total"], ",.0f"),
            format_number(r["revenue_aggregate_pct_error"], "+.1%"),
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


SPEC = ChartSpec(
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
)
