"""LTV curves: cumulative revenue and gross margin per customer, one line per cohort, with each paid channel's mean
CAC as a dashed line."""

from __future__ import annotations

from matplotlib import colormaps
from matplotlib.figure import Figure

from pipelines.report.charts.common import ChartSpec, channel_colour, figure, money_axis, month_label, no_data, num
from pipelines.report.charts.sql import records


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


def draw_ltv_curves(data: dict) -> Figure:
    rows, cac = data["rows"], data["cac"]
    fig = figure(11, 4.6)
    axes = fig.subplots(1, 2, sharex=True)
    cohorts = sorted({r["cohort_month"] for r in rows})
    cmap = colormaps["viridis"]
    for ax, column, label in (
        (axes[0], "cumulative_revenue_per_customer", "cumulative revenue per customer"),
        (axes[1], "cumulative_margin_per_customer", "cumulative gross margin per customer"),
    ):
        if not rows:
            no_data(ax)
            continue
        for k, cohort in enumerate(cohorts):
            points = [r for r in rows if r["cohort_month"] == cohort]
            colour = cmap(k / max(1, len(cohorts) - 1))
            ax.plot(
                [p["months_since_first_order"] for p in points],
                [num(p[column]) for p in points],
                color=colour,
                linewidth=1.1,
                alpha=0.85,
            )
        for k, channel in enumerate(cac):
            ax.axhline(
                num(channel["mean_cac"]),
                color=channel_colour(channel["acquisition_channel"], k),
                linestyle="--",
                linewidth=1.2,
                label=f"CAC {channel['acquisition_channel']} ({num(channel['mean_cac']):,.0f})",
            )
        ax.set_title(label)
        ax.set_xlabel("months since first order")
        money_axis(ax)
    if rows:
        first, last = month_label(cohorts[0]), month_label(cohorts[-1])
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


SPEC = ChartSpec(
    "ltv-curves",
    "Cumulative revenue and margin per customer by cohort (LTV curves)",
    "One line per cohort: revenue (left) and gross margin (right) accumulated per original cohort customer, by "
    "months since the first order. Steeper and higher is better. Dashed lines are the mean CAC per acquisition "
    "channel (spend ÷ new customers over all cohorts): where a margin curve crosses a channel's line, a customer "
    "from that channel has paid back their acquisition cost.",
    load_ltv_curves,
    draw_ltv_curves,
)
