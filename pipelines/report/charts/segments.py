"""Customer segments: size and value (revenue to date, predicted 365-day CLV) of each RFM segment."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from pipelines.report.charts.common import ChartSpec, figure, money_axis, no_data, num
from pipelines.report.charts.sql import records


def load_segments(con) -> dict:
    return {
        "rows": records(
            con,
            "select segment, customers, share_of_customers, historical_revenue, predicted_clv_365d, "
            "predicted_clv_365d_per_customer, share_of_predicted_clv, mean_p_alive from marts.segment_clv "
            "where segment_kind = 'rfm_segment' order by predicted_clv_365d desc, segment",
        )
    }


def draw_segments(data: dict) -> Figure:
    rows = data["rows"]
    fig = figure(11, 4.0)
    axes = fig.subplots(1, 2)
    if not rows:
        for ax in axes:
            no_data(ax)
        return fig
    names = [r["segment"].replace("_", " ") for r in rows]
    y = np.arange(len(rows))
    axes[0].barh(y, [r["customers"] for r in rows], color="#1f77b4")
    for i, r in enumerate(rows):
        axes[0].text(r["customers"], i, f" {num(r['share_of_customers']):.0%}", va="center", fontsize=8)
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()
    axes[0].set_title("customers (share of all)")
    axes[0].margins(x=0.15)
    axes[1].barh(
        y - 0.2, [num(r["historical_revenue"]) for r in rows], height=0.4, label="historical revenue", color="#9ecae1"
    )
    axes[1].barh(
        y + 0.2,
        [num(r["predicted_clv_365d"]) for r in rows],
        height=0.4,
        label="predicted CLV, next 365 d",
        color="#2ca02c",
    )
    axes[1].set_yticks(y, names)
    axes[1].invert_yaxis()
    axes[1].set_title("value (total per segment)")
    money_axis(axes[1], "x")
    axes[1].legend(loc="lower right")
    return fig


SPEC = ChartSpec(
    "segments",
    "Customer segments: size and value",
    "RFM segments: how many customers each holds (left) and the money they are worth (right): revenue to date "
    "and predicted CLV for the next 365 days. Segments where the green bar is large relative to their size are "
    "where retention spend pays most.",
    load_segments,
    draw_segments,
)
