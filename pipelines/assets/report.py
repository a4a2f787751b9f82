"""The CLV report (data/report/index.html and its PDF, data/report/report.pdf): every chart from the marts, one
self-contained page, refreshed each run."""

import base64

import dagster as dg

from pipelines.assets.reporting import ALL_MARTS
from pipelines.report import METADATA_CHARTS, ReportResult, build_report
from pipelines.report.charts import MODEL_LABELS, format_months
from pipelines.resources import WarehouseResource

REPORT = dg.AssetKey(["reporting", "report"])


def _fmt(value, pattern: str) -> str:
    return "–" if value is None else format(value, pattern)


def key_figures_markdown(result: ReportResult) -> str:
    k = result.key_figures
    rows = [
        ("as of", str(k["as_of_date"])),
        ("customers", _fmt(k["customers"], ",d")),
        ("orders", _fmt(k["orders"], ",d")),
        ("revenue", _fmt(k["revenue"], ",.0f")),
        ("gross margin", _fmt(k["gross_margin"], ",.0f")),
        ("customers with 2+ orders (lifetime)", _fmt(k["lifetime_repeat_customer_rate"], ".1%")),
        ("predicted CLV, next 365 d (total)", _fmt(k["predicted_clv_365d_total"], ",.0f")),
        ("90 % interval of the predicted CLV", _range(k["predicted_clv_365d_p05"], k["predicted_clv_365d_p95"])),
        ("expected purchases, next 365 d (total)", _fmt(k["expected_purchases_365d_total"], ",.0f")),
        ("90 % interval of the purchases", _range(k["expected_purchases_365d_p05"], k["expected_purchases_365d_p95"])),
        ("predicted CLV per customer", _fmt(k["predicted_clv_365d_mean"], ",.2f")),
        ("mean P(alive)", _fmt(k["mean_p_alive"], ".1%")),
        ("blended CAC (paid channels)", _fmt(k["blended_cac"], ",.2f")),
        ("purchase model (chosen by the back-test)", MODEL_LABELS.get(k["purchase_model"] or "", "–")),
        ("back-test error (total repeat purchases)", _fmt(k["backtest_aggregate_pct_error"], "+.1%")),
        ("formula CLV vs hold-out revenue", _fmt(k["formula_revenue_aggregate_pct_error"], "+.1%")),
        (
            "frequency–value correlation (Spearman)",
            _fmt(k["spearman_frequency_value"], "+.2f")
            + (" ⚠ Gamma-Gamma assumption in doubt" if k["spearman_warning"] else ""),
        ),
    ]
    return "\n".join(["| figure | value |", "|---|---:|"] + [f"| {name} | {value} |" for name, value in rows])


def _range(low, high) -> str:
    return "–" if low is None or high is None else f"{low:,.0f} – {high:,.0f}"


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
            f"| {r['acquisition_channel']} | {r['new_customers']:,} | {_fmt(r['cac'], ',.2f')} | "
            f"{r['cohorts_paid_back']} / {r['cohorts']} | {format_months(r['median_payback_months'])} | "
            f"{format_months(r['median_predicted_payback_months'])} | "
            f"{format_months(r['pooled_payback_month'])} | {_fmt(r['ltv_to_cac_12m'], '.2f')} | "
            f"{_fmt(r['breakeven_cac_36m'], ',.2f')} | {_fmt(r['affordable_cac'], ',.2f')} |"
        )
    return "\n".join(lines)


def chart_markdown(result: ReportResult, chart_id: str) -> str:
    chart = result.chart(chart_id)
    encoded = base64.b64encode(chart.png).decode("ascii")
    return f"![{chart.title}](data:image/png;base64,{encoded})"


@dg.asset(
    key=REPORT,
    deps=ALL_MARTS,
    group_name="reporting",
    kinds={"html", "matplotlib"},
    description="The answers at a glance: cohort retention, LTV curves, CAC payback and affordable CAC, CLV "
    "distribution with its 90 % interval, P(alive), the purchase models' back-test side by side, "
    "survival by cohort, segments, LTV drivers, KPI trends and model drift, as one self-contained HTML page "
    "(data/report/index.html) with each chart's data embedded as JSON, and the same page as a PDF "
    "(data/report/report.pdf; needs Chromium).",
)
def report(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    settings = warehouse.settings()
    # build_report opens the warehouse once, read-only, and closes it before drawing: nothing is held across steps.
    result = build_report(settings.warehouse, settings.report_dir, warn=context.log.warning)
    context.log.info(
        f"Report with {len(result.charts)} charts written to {result.path}"
        + (f" and {result.pdf_path}" if result.pdf_path else "")
        + f" in {result.seconds:.1f} s."
    )
    metadata = {
        "report": dg.MetadataValue.path(str(result.path)),
        "dagster/row_count": len(result.charts),  # one "row" per chart
        "charts": dg.MetadataValue.json([{"id": c.id, "title": c.title} for c in result.charts]),
        "size_bytes": result.path.stat().st_size,
        "build_seconds": round(result.seconds, 2),
        "pdf": (
            dg.MetadataValue.path(str(result.pdf_path)) if result.pdf_path else (result.pdf_problem or "not written")
        ),
        "key_figures": dg.MetadataValue.md(key_figures_markdown(result)),
        "cac_payback": dg.MetadataValue.md(payback_markdown(result)),
    }
    for chart_id in METADATA_CHARTS:
        metadata[f"chart_{chart_id.replace('-', '_')}"] = dg.MetadataValue.md(chart_markdown(result, chart_id))
    return dg.MaterializeResult(metadata=metadata)
