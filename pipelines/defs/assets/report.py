"""The CLV report (data/report/index.html and its PDF, data/report/report.pdf): every chart from the marts, one
self-contained page, refreshed each run."""

import dagster as dg

from pipelines.defs.assets.reporting import ALL_MARTS
from pipelines.defs.resources import WarehouseResource
from pipelines.report import METADATA_CHARTS, build_report
from pipelines.report.metadata import chart_markdown, key_figures_markdown, payback_markdown

REPORT = dg.AssetKey(["reporting", "report"])


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
