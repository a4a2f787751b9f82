"""P(alive) by recency and frequency: the mean probability that customers are still active, as a matrix."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from pipelines.report.charts.common import ChartSpec, figure, no_data, num, thin_labels
from pipelines.report.charts.sql import records

FREQUENCY_CAP = 20  # repeat purchases >= this share one row ("20+")
RECENCY_BIN_WEEKS = 4  # recency (weeks) in 4-week bins
MIN_CELL_CUSTOMERS = 3  # cells with fewer customers are greyed out (too noisy to read)


def load_p_alive_matrix(con) -> dict:
    rows = records(
        con,
        f"select least(frequency, {FREQUENCY_CAP}) as frequency, "
        f"cast(floor(recency / {RECENCY_BIN_WEEKS}) * {RECENCY_BIN_WEEKS} as integer) as recency_weeks, "
        "count(*) as customers, avg(p_alive) as mean_p_alive from marts.customer_clv "
        "group by all order by frequency, recency_weeks",
    )
    return {"frequency_cap": FREQUENCY_CAP, "recency_bin_weeks": RECENCY_BIN_WEEKS, "rows": rows}


def draw_p_alive_matrix(data: dict) -> Figure:
    rows = data["rows"]
    fig = figure(11, 4.8)
    ax = fig.add_subplot()
    if not rows:
        no_data(ax)
        return fig
    cap, step = data["frequency_cap"], data["recency_bin_weeks"]
    frequencies = list(range(0, max(r["frequency"] for r in rows) + 1))
    recencies = list(range(0, max(r["recency_weeks"] for r in rows) + step, step))
    matrix = np.full((len(frequencies), len(recencies)), np.nan)
    for r in rows:
        if r["customers"] >= MIN_CELL_CUSTOMERS:
            matrix[r["frequency"], r["recency_weeks"] // step] = num(r["mean_p_alive"])
    cmap = colormaps["RdYlGn"].with_extremes(bad="#f2f2f2")
    image = ax.imshow(matrix, aspect="auto", origin="lower", cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks(range(len(frequencies)), [f"{f}+" if f == cap else str(f) for f in frequencies])
    ax.set_xticks(range(len(recencies)), thin_labels([str(w) for w in recencies]), rotation=0)
    ax.set_xlabel(f"recency: weeks between first and last purchase ({step}-week bins)")
    ax.set_ylabel("frequency (repeat purchases)")
    ax.grid(False)
    fig.colorbar(image, ax=ax, label="mean P(alive)", shrink=0.85)
    return fig


SPEC = ChartSpec(
    "p-alive-matrix",
    "P(alive) by recency and frequency",
    "The classic BG/NBD-style matrix (from the purchase model in use): mean probability that customers are "
    "still active, by how many repeat purchases they made (rows) and how late in their history the last one "
    "came (columns, weeks after the first). Green = likely alive. Frequent buyers whose last purchase was long "
    "ago (top left) are the most likely to have churned; "
    f"grey cells have fewer than {MIN_CELL_CUSTOMERS} customers.",
    load_p_alive_matrix,
    draw_p_alive_matrix,
)
