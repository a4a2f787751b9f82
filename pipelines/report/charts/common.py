"""What every chart shares: the ChartSpec catalogue entry and the Chart/Table it becomes on the page, the style
and colours, the small drawing helpers (figure, axes, labels) and the number formats of the tables."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import matplotlib
import numpy as np
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

matplotlib.use("Agg")  # harmless when pyplot is never imported; guards anyone who imports it later in-process

DPI = 100
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

CHANNEL_COLOURS = {
    "affiliate": "#1f77b4",
    "email": "#ff7f0e",
    "paid_search": "#2ca02c",
    "paid_social": "#d62728",
    "organic": "#9467bd",
    "referral": "#8c564b",
}


# ---------------------------------------------------------------- the catalogue entry and what it becomes


@dataclass(frozen=True)
class ChartSpec:
    """One chart of the report: `load` reads its data from the marts (JSON-able), `draw` turns that into a figure."""

    id: str
    title: str
    caption: str
    load: Callable[[duckdb.DuckDBPyConnection], dict]
    draw: Callable[[dict], Figure]


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
    table: Table | None = None
    extra_data: dict = field(default_factory=dict)  # further JSON blocks: {suffix: data} → id="data-<id>-<suffix>"


# ---------------------------------------------------------------- drawing helpers


def num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def no_data(ax, message: str = "no data") -> None:
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


def money_axis(ax, axis: str = "y") -> None:
    """A money axis: at most 6 ticks at round steps, compact labels (the full figures are in the page's JSON)."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    target.set_major_formatter(FuncFormatter(lambda v, _pos: compact_number(v)))


def thin_labels(labels: list[str], max_labels: int = MAX_TICK_LABELS) -> list[str]:
    """Every k-th label of a long category axis (the others blank), so neighbours never overlap."""
    step = max(1, math.ceil(len(labels) / max_labels))
    return [label if i % step == 0 else "" for i, label in enumerate(labels)]


def month_label(iso: str) -> str:
    return iso[:7]


def distinct(values: list) -> list:
    return list(dict.fromkeys(values))


def channel_colour(channel: str, k: int) -> str:
    """The same colour for a channel in every chart (unknown channels take the remaining palette colours)."""
    return CHANNEL_COLOURS.get(channel, PALETTE[(k + 6) % len(PALETTE)])


def date_axis(ax, dates: list) -> None:
    locator = AutoDateLocator(minticks=2, maxticks=5)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    if len(set(dates)) == 1:
        ax.set_xlim(dates[0] - np.timedelta64(45, "D"), dates[0] + np.timedelta64(45, "D"))
        ax.set_xticks([dates[0]], [str(dates[0])])


# ---------------------------------------------------------------- number formats (tables, key figures)


def format_number(value, pattern: str) -> str:
    """A figure as `format(value, pattern)`, '–' when unknown."""
    return "–" if value is None else format(value, pattern)


def format_months(value) -> str:
    """A month count the same way everywhere: 1, 2.5 (a median of two cohorts), '–' when unknown."""
    if value is None:
        return "–"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
