"""Cohort retention: the share of each first-order-month cohort that orders again, by months since the first
order, as a heatmap."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from pipelines.report.charts.common import ChartSpec, figure, month_label, no_data, num, thin_labels
from pipelines.report.charts.sql import records


def load_cohort_retention(con) -> dict:
    return {
        "rows": records(
            con,
            "select cohort_month, months_since_first_order, cohort_size, active_customers, retention_rate, "
            "is_complete_month from marts.cohort_retention order by cohort_month, months_since_first_order",
        )
    }


def draw_cohort_retention(data: dict) -> Figure:
    rows = data["rows"]
    cohorts = sorted({r["cohort_month"] for r in rows})
    months = sorted({r["months_since_first_order"] for r in rows})
    fig = figure(11, max(3.5, 0.3 * len(cohorts) + 1.5))
    ax = fig.add_subplot()
    if not rows:
        no_data(ax)
        return fig
    matrix = np.full((len(cohorts), len(months)), np.nan)
    row_of = {c: i for i, c in enumerate(cohorts)}
    col_of = {m: j for j, m in enumerate(months)}
    for r in rows:
        matrix[row_of[r["cohort_month"]], col_of[r["months_since_first_order"]]] = num(r["retention_rate"]) * 100
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
    ax.set_yticks(range(len(cohorts)), thin_labels([f"{month_label(c)} (n={sizes.get(c, '?')})" for c in cohorts], 40))
    ax.set_xticks(range(len(months)), thin_labels([str(m) for m in months], 40))
    ax.set_xlabel("months since first order")
    ax.set_ylabel("cohort (first-order month)")
    ax.grid(False)
    fig.colorbar(
        image, ax=ax, label="customers ordering again (% of cohort)", shrink=0.8, format=PercentFormatter(decimals=0)
    )
    return fig


SPEC = ChartSpec(
    "cohort-retention",
    "Cohort retention",
    "Each row is the cohort of customers whose first order fell in that month; each column counts months since "
    "that first order. A cell is the share of the cohort that ordered in that month (month 0 is 100 % by "
    "definition, so colours are scaled on months 1+). Read across a row for how one cohort decays, down a column "
    "to see whether newer cohorts retain better than older ones.",
    load_cohort_retention,
    draw_cohort_retention,
)
