"""Monthly KPI trends: AOV, purchase frequency, the within-month repeat rate, and retention/churn."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from pipelines.report.charts.common import ChartSpec, date_axis, figure, no_data, num
from pipelines.report.charts.sql import records


def load_kpi_trends(con) -> dict:
    return {
        "rows": records(
            con,
            "select month, customers, new_customers, returning_customers, orders, revenue, aov, "
            "purchase_frequency, repeat_customer_rate, retention_rate, churn_rate, "
            "month_over_month_retention_rate from marts.retention_kpis order by month",
        )
    }


def draw_kpi_trends(data: dict) -> Figure:
    rows = data["rows"]
    fig = figure(11, 5.6)
    axes = fig.subplots(2, 2, sharex=True).ravel()
    if not rows:
        for ax in axes:
            no_data(ax)
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
                [num(r[column]) for r in rows],
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
    date_axis(axes[2], list(months))  # shared x: one locator for all four panels
    return fig


SPEC = ChartSpec(
    "kpi-trends",
    "Monthly KPI trends",
    "Month by month: average order value, orders per active customer, the share of the month's buyers who "
    "ordered twice or more within that same month (retention_kpis.repeat_customer_rate; not the lifetime "
    "share of customers with 2+ orders in the key figures above), and retention/churn of customers acquired "
    "before the month (month-over-month retention: share of last month's customers who ordered again). Look "
    "for trends, not single months.",
    load_kpi_trends,
    draw_kpi_trends,
)
