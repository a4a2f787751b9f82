"""The report's charts, one module per chart: its data (plain SQL over the marts → a JSON-able dict), its drawing
(matplotlib, no pyplot) and its catalogue entry (`SPEC`), e.g. the CAC payback chart is all in `payback_curves`.

Shared by all of them: `common` (the ChartSpec type, style, colours, drawing helpers, number formats), `sql`
(reading the marts) and `render` (a figure as inline SVG, and PNG for Dagster's metadata). `CHARTS` is the
catalogue, in the order of the page.
"""

from pipelines.report.charts import (
    backtest,
    clv_distribution,
    cohort_retention,
    cohort_survival,
    kpi_trends,
    ltv_curves,
    ltv_drivers,
    model_drift,
    p_alive_matrix,
    payback_curves,
    segments,
)
from pipelines.report.charts.backtest import backtest_table
from pipelines.report.charts.common import MODEL_LABELS, Chart, ChartSpec, Table, format_months, format_number
from pipelines.report.charts.payback_curves import load_payback_table, payback_table, pooled_payback_months
from pipelines.report.charts.render import render_png, render_svg
from pipelines.report.key_figures import assumption_warnings  # kept importable from here, where it used to live

CHARTS: tuple[ChartSpec, ...] = (
    cohort_retention.SPEC,
    ltv_curves.SPEC,
    payback_curves.SPEC,
    clv_distribution.SPEC,
    p_alive_matrix.SPEC,
    backtest.SPEC,
    cohort_survival.SPEC,
    segments.SPEC,
    ltv_drivers.SPEC,
    kpi_trends.SPEC,
    model_drift.SPEC,
)

__all__ = [
    "CHARTS",
    "MODEL_LABELS",
    "Chart",
    "ChartSpec",
    "Table",
    "assumption_warnings",
    "backtest_table",
    "format_months",
    "format_number",
    "load_payback_table",
    "payback_table",
    "pooled_payback_months",
    "render_png",
    "render_svg",
]
