"""The report's answers as Dagster metadata: markdown tables of the key figures and the CAC payback, chart images."""

from __future__ import annotations

import base64

from pipelines.report import ReportResult
from pipelines.report.charts import format_months
from pipelines.report.charts.common import format_number
from pipelines.report.key_figures import key_figure_tiles


def key_figures_markdown(result: ReportResult) -> str:
    rows = key_figure_tiles(result.key_figures, verbose=True)
    return "\n".join(["| figure | value |", "|---|---:|"] + [f"| {name} | {value} |" for name, value in rows])


def payback_markdown(result: ReportResult) -> str:
    if not result.payback:
        return "_no channel with known marketing spend_"
    lines = [
        "| channel | new customers | CAC | cohorts paid back | median payback month | median predicted | "
        "payback month of the curve | LTV:CAC 12 m | break-even CAC 36 m | affordable CAC |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result.payback:
        lines.append(
            f"| {r['acquisition_channel']} | {r['new_customers']:,} | {format_number(r['cac'], ',.2f')} | "
            f"{r['cohorts_paid_back']} / {r['cohorts']} | {format_months(r['median_payback_months'])} | "
            f"{format_months(r['median_predicted_payback_months'])} | "
            f"{format_months(r['pooled_payback_month'])} | {format_number(r['ltv_to_cac_12m'], '.2f')} | "
            f"{format_number(r['breakeven_cac_36m'], ',.2f')} | {format_number(r['affordable_cac'], ',.2f')} |"
        )
    return "\n".join(lines)


def chart_markdown(result: ReportResult, chart_id: str) -> str:
    chart = result.chart(chart_id)
    encoded = base64.b64encode(chart.png).decode("ascii")
    return f"![{chart.title}](data:image/png;base64,{encoded})"
