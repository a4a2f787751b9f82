"""Survival by cohort: the purchase model's mean P(alive) per acquisition cohort vs the share that ordered in the
last 90 days."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from pipelines.report.charts.common import MODEL_LABELS, ChartSpec, date_axis, figure, no_data, num
from pipelines.report.charts.sql import has_table, records


def load_cohort_survival(con) -> dict:
    if not has_table(con, "cohort_survival"):
        return {"rows": []}
    return {
        "rows": records(
            con,
            "select cohort_month, customers, mean_p_alive, active_share_last_90d, purchase_model "
            "from marts.cohort_survival order by cohort_month",
        )
    }


def draw_cohort_survival(data: dict) -> Figure:
    rows = data["rows"]
    fig = figure(11, 3.8)
    ax = fig.add_subplot()
    if not rows or all(r["mean_p_alive"] is None for r in rows):
        no_data(ax, "no purchase model this run" if rows else "no data")
        return fig
    months = [np.datetime64(r["cohort_month"]) for r in rows]
    label = MODEL_LABELS.get(rows[0]["purchase_model"] or "", "the model")
    ax.plot(
        months,
        [num(r["mean_p_alive"]) for r in rows],
        marker="o",
        markersize=3,
        linewidth=1.6,
        color="#1f77b4",
        label=f"mean P(alive), {label}",
    )
    ax.plot(
        months,
        [num(r["active_share_last_90d"]) for r in rows],
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
    date_axis(ax, months)
    ax.legend(loc="lower left")
    return fig


SPEC = ChartSpec(
    "cohort-survival",
    "Survival by cohort: the model vs what was observed",
    "For each acquisition cohort, the mean probability that its customers are still active according to the "
    "purchase model (P(alive) at the as-of date), beside the share who actually ordered in the last 90 days. "
    "P(alive) counts customers who have not dropped out even if they did not buy recently, so it is normally "
    "above the 90-day share, most for the youngest cohorts; a gap that keeps widening, or a model line "
    "falling below the observed one, says the model no longer describes the customers.",
    load_cohort_survival,
    draw_cohort_survival,
)
