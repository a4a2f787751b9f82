"""Distribution of predicted 365-day CLV: equal bins up to the 99th percentile, then one overflow bin."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from pipelines.report.charts.common import ChartSpec, figure, money_axis, no_data, num
from pipelines.report.charts.sql import records

CLV_HISTOGRAM_BINS = 40  # equal bins from 0 to the 99th percentile, then one overflow bin


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


def draw_clv_distribution(data: dict) -> Figure:
    fig = figure(11, 3.8)
    ax = fig.add_subplot()
    bins = data["bins"]
    if not data["customers"]:
        no_data(ax)
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
    money_axis(ax, "x")
    ax.legend(
        loc="upper right",
        title=f"{data['customers']:,} customers; orange = above the 99th pct (up to {num(data['max']):,.0f})",
        title_fontsize=8,
    )
    return fig


SPEC = ChartSpec(
    "clv-distribution",
    "Distribution of predicted 365-day CLV",
    "Customers by predicted CLV over the next 365 days (the purchase model's purchases × Gamma-Gamma order value "
    "× margin, discounted). Equal-width bins from 0 to the 99th percentile; the orange bar gathers the top "
    "1 %. A long right tail is normal: a small group of customers carries most future value.",
    load_clv_distribution,
    draw_clv_distribution,
)
