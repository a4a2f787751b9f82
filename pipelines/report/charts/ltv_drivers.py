"""LTV drivers: revenue per customer in the first 90 and 365 days by what was known at acquisition; values with
too few customers are grouped or left out (`driver_rows_shown`)."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from pipelines.report.charts.common import ChartSpec, distinct, figure, money_axis, no_data, num
from pipelines.report.charts.sql import records

MIN_DRIVER_CUSTOMERS = 30  # a value (or a window's bar) needs this many customers to be shown


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
    for driver in distinct([r["driver"] for r in rows]):
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


def draw_ltv_drivers(data: dict) -> Figure:
    rows = data["shown"]
    drivers = distinct([r["driver"] for r in rows])
    columns = 2
    panels = max(1, len(drivers))
    fig = figure(11, 3.0 * math.ceil(panels / columns))
    axes = np.atleast_1d(fig.subplots(math.ceil(panels / columns), columns, squeeze=False)).ravel()
    if not rows:
        no_data(axes[0])
    for ax, driver in zip(axes, drivers):
        points = [r for r in rows if r["driver"] == driver]
        y = np.arange(len(points))
        ax.barh(
            y - 0.2,
            [num(p["value_90d_per_customer"]) for p in points],
            height=0.4,
            color="#9ecae1",
            label="first 90 days",
        )
        ax.barh(
            y + 0.2,
            [num(p["value_365d_per_customer"]) for p in points],
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
        money_axis(ax, "x")
    for ax in axes[len(drivers) :]:
        ax.set_visible(False)
    if drivers:
        axes[0].legend(loc="lower right", title="revenue per customer", title_fontsize=8)
    return fig


SPEC = ChartSpec(
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
)
