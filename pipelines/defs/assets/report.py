"""The two pages of a run, in one step: the CLV report (data/report/index.html and its PDF, data/report/report.pdf:
every chart from the marts, one self-contained page, refreshed each run) and the dbt docs page (data/docs/index.html,
regenerated when the dbt project changed).

One step because each uses one core for seconds (matplotlib and Chromium here, `dbt docs generate` in its own
process) and the machine has two: drawn while dbt documents, the pair takes about the longer of the two instead of
their sum (10 M orders, fresh data directory: 11.0 s as two steps, 7.2 s as one; medians of 3, interleaved). dbt
attaches the warehouse read-only for this, so the report can read it at the same time (a file opened read-write by
one process is opened by no other)."""

import threading
from contextlib import nullcontext
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource
from dagster_dbt.core.dbt_cli_invocation import DbtCliInvocation

from pipelines.dbt_runs import dbt_environment, static_docs_target
from pipelines.defs.assets.reporting import ALL_MARTS
from pipelines.defs.resources import WarehouseResource
from pipelines.report import METADATA_CHARTS, ReportResult, build_report
from pipelines.report.metadata import chart_markdown, key_figures_markdown, payback_markdown
from pipelines.settings import Settings

REPORT = dg.AssetKey(["reporting", "report"])
DOCS = dg.AssetKey(["reporting", "dbt_docs"])
# test_polars_marts: the tests of the polars marts (off in the pipeline's dbt build, which runs before the polars
# assets) are shown in the docs too.
DOCS_ARGS = ["docs", "generate", "--static", "--quiet", "--vars", "{test_polars_marts: true}"]


@dg.multi_asset(
    name="reporting__report_and_docs",
    can_subset=True,
    specs=[
        dg.AssetSpec(
            REPORT,
            deps=ALL_MARTS,
            group_name="reporting",
            kinds={"html", "matplotlib"},
            description="The answers at a glance: cohort retention, LTV curves, CAC payback and affordable CAC, CLV "
            "distribution with its 90 % interval, P(alive), the purchase models' back-test side by side, "
            "survival by cohort, segments, LTV drivers, KPI trends and model drift, as one self-contained HTML "
            "page (data/report/index.html) with each chart's data embedded as JSON, and the same page as a PDF "
            "(data/report/report.pdf; needs Chromium).",
        ),
        dg.AssetSpec(
            DOCS,
            deps=ALL_MARTS,
            group_name="reporting",
            kinds={"dbt"},
            description="dbt docs (models, columns, tests, lineage, exposures) as one static page: "
            "data/docs/index.html.",
        ),
    ],
)
def report_and_docs(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    settings = warehouse.settings()
    selected = context.selected_asset_keys
    docs_dir = settings.data_dir / "docs"
    report_error: Exception | None = None
    regenerated = False
    with static_docs_target(docs_dir) if DOCS in selected else nullcontext() as scratch:
        docs = _start_docs(dbt, settings, scratch) if scratch is not None else None
        try:
            if REPORT in selected:
                try:
                    result = build_report(settings.warehouse, settings.report_dir, warn=context.log.warning)
                except Exception as exc:  # the docs page is still finished (it does not depend on the report)
                    report_error = exc
                else:
                    yield _report_materialization(context, result)
            if docs is not None:
                docs.wait()
                regenerated = True
        finally:
            if docs is not None:
                docs.stop()  # an interrupted step does not leave dbt running
    if DOCS in selected:
        if not regenerated:
            context.log.info("dbt project unchanged since the docs were generated: data/docs kept as is.")
        yield dg.MaterializeResult(
            asset_key=DOCS,
            metadata={"docs": dg.MetadataValue.path(str(docs_dir / "index.html")), "regenerated": regenerated},
        )
    if report_error is not None:
        raise report_error


class _Docs:
    """`dbt docs generate --static` running in its own process; its output is read on a thread (a full pipe would
    stop dbt) while this process draws the report."""

    def __init__(self, invocation: DbtCliInvocation):
        self.invocation = invocation
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._read, name="dbt-docs", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            self.invocation.wait()
        except BaseException as exc:  # raised again by wait() in the step's thread
            self.error = exc

    def wait(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        if self.invocation.process.poll() is None:
            self.invocation.process.terminate()
        self.thread.join()


def _start_docs(dbt: DbtCliResource, settings: Settings, scratch: Path) -> _Docs:
    with dbt_environment(settings, read_only=True):  # read by dbt.cli when it starts the process
        return _Docs(dbt.cli(DOCS_ARGS, target_path=scratch, raise_on_error=True))


def _report_materialization(context: dg.AssetExecutionContext, result: ReportResult) -> dg.MaterializeResult:
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
    return dg.MaterializeResult(asset_key=REPORT, metadata=metadata)
