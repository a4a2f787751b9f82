"""The CLV report: the answers at a glance, as one self-contained HTML page built from the marts, and its PDF.

`build_report(warehouse, out_dir)` reads the marts through one short-lived read-only DuckDB connection, draws every
chart with matplotlib (no display) and writes `out_dir/index.html` atomically, then prints that page to
`out_dir/report.pdf` with headless Chromium when there is one (else one warning, and no PDF). No Dagster here: the
`reporting/report` asset and the tests call it directly.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pipelines import warehouse as wh
from pipelines.report import charts as ch
from pipelines.report.html import render_page
from pipelines.report.key_figures import assumption_warnings, key_figure_tiles, load_key_figures
from pipelines.report.pdf import PdfError, find_chromium, print_to_pdf

__all__ = [
    "ChartImage",
    "ReportResult",
    "build_report",
    "key_figure_tiles",
    "load_report_data",
    "METADATA_CHARTS",
    "PDF_NAME",
]

# Charts also drawn as PNG: shown next to the run in Dagster's UI (reporting/report's metadata).
METADATA_CHARTS = ("cohort-retention", "payback-curves", "clv-distribution", "backtest")
PDF_NAME = "report.pdf"


@dataclass(frozen=True)
class ChartImage:
    id: str
    title: str
    svg: str
    png: bytes | None = None  # METADATA_CHARTS only


@dataclass(frozen=True)
class ReportResult:
    path: Path
    charts: list[ChartImage]
    key_figures: dict
    payback: list[dict]  # per acquisition channel: the payback table's figures
    seconds: float
    pdf_path: Path | None = None  # None: no PDF this run (no Chromium, or it failed: `pdf_problem` says which)
    pdf_problem: str | None = None

    def chart(self, chart_id: str) -> ChartImage:
        return next(c for c in self.charts if c.id == chart_id)


def load_report_data(warehouse: Path) -> tuple[dict, dict[str, dict], dict]:
    """(key figures, {chart id: data}, payback table data), read in one short-lived read-only connection."""
    with wh.connect(warehouse, read_only=True) as con:
        key_figures = load_key_figures(con)
        data = {spec.id: spec.load(con) for spec in ch.CHARTS}
        table = ch.load_payback_table(con)
    pooled = ch.pooled_payback_months(data["payback-curves"])
    for row in table["rows"]:
        row["pooled_payback_month"] = pooled.get(row["acquisition_channel"])
    return key_figures, data, table


def _write_pdf(html: Path, pdf: bool) -> tuple[Path | None, str | None]:
    """The PDF beside the page, or why there is none (no renderer, or it failed: the caller warns); an older one is
    then removed, so the PDF beside the page is never from another run."""
    target = html.parent / PDF_NAME
    if not pdf:
        return None, None
    chromium = find_chromium()
    problem = None
    if chromium is None:
        problem = (
            f"no PDF report this run: no Chromium to print it with (apt-get install chromium, or set "
            f"CLV_CHROMIUM); the HTML report is at {html}"
        )
    else:
        try:
            return print_to_pdf(html, target, chromium), None
        except PdfError as exc:
            problem = f"no PDF report this run: {exc}"
    target.unlink(missing_ok=True)
    return None, problem


def build_report(
    warehouse: Path, out_dir: Path, *, pdf: bool = True, warn: Callable[[str], None] = print
) -> ReportResult:
    started = time.perf_counter()
    warehouse, out_dir = Path(warehouse), Path(out_dir)
    if not warehouse.exists():
        raise FileNotFoundError(f"no warehouse at {warehouse}: run `clv run` first")
    key_figures, data, table = load_report_data(warehouse)
    key_figures["assumption_warnings"] = assumption_warnings(key_figures)
    rendered: list[ch.Chart] = []
    figures = {}  # METADATA_CHARTS: drawn as PNG once the page is written
    for spec in ch.CHARTS:
        svg, fig = ch.render_svg(spec, data[spec.id])
        if spec.id in METADATA_CHARTS:
            figures[spec.id] = fig
        extra, html_table = {}, None
        if spec.id == "payback-curves":
            extra, html_table = {"table": table}, ch.payback_table(table)
        elif spec.id == "backtest":
            html_table = ch.backtest_table(data[spec.id])
        rendered.append(ch.Chart(spec.id, spec.title, spec.caption, data[spec.id], svg, html_table, extra))
    subtitle = (
        f"As of {key_figures['as_of_date'] or 'unknown'}: {key_figures['customers'] or 0:,} customers, "
        f"{key_figures['orders'] or 0:,} orders from {key_figures['first_order'] or '–'} to "
        f"{key_figures['last_order'] or '–'}. Money in "
        f"{key_figures['currency'] or 'the shop’s currency'}; CLV and payback on gross margin."
    )
    page = render_page(rendered, key_figure_tiles(key_figures), key_figures, subtitle)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "index.html"
    scratch = out_dir / f".index.html.{os.getpid()}.tmp"
    try:
        scratch.write_text(page, encoding="utf-8")
        os.replace(scratch, target)
    finally:
        scratch.unlink(missing_ok=True)
    # Chromium prints the page (1.5 s of CPU in its own process, at 10 M orders) while this process draws the PNGs
    # (0.55 s): on two cores the PNGs cost no time.
    with ThreadPoolExecutor(max_workers=1) as pool:
        printing = pool.submit(_write_pdf, target, pdf)
        pngs = {chart_id: ch.render_png(fig) for chart_id, fig in figures.items()}
        pdf_path, pdf_problem = printing.result()
    if pdf_problem:
        warn(pdf_problem)
    return ReportResult(
        path=target,
        charts=[ChartImage(c.id, c.title, c.svg, pngs.get(c.id)) for c in rendered],
        key_figures=key_figures,
        payback=table["rows"],
        seconds=time.perf_counter() - started,
        pdf_path=pdf_path,
        pdf_problem=pdf_problem,
    )
