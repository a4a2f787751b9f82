"""The report's answers as Dagster metadata: markdown tables of the key figures and the CAC payback, chart images."""

from __future__ import annotations

import base64

from pipelines.markdown import markdown_table
from pipelines.report import ReportResult
from pipelines.report.charts.payback_curves import payback_table
from pipelines.report.key_figures import key_figure_tiles


def key_figures_markdown(result: ReportResult) -> str:
    rows = [list(tile) for tile in key_figure_tiles(result.key_figures, verbose=True)]
    return markdown_table(["figure", "value"], rows, "lr")


def payback_markdown(result: ReportResult) -> str:
    """The report's payback table (the same cells as the page's), as markdown."""
    if not result.payback:
        return "_no channel with known marketing spend_"
    table = payback_table({"rows": result.payback})
    return markdown_table(table.columns, table.rows, "l" + "r" * (len(table.columns) - 1))


def chart_markdown(result: ReportResult, chart_id: str) -> str:
    chart = result.chart(chart_id)
    encoded = base64.b64encode(chart.png).decode("ascii")
    return f"![{chart.title}](data:image/png;base64,{encoded})"
