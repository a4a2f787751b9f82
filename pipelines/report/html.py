"""One self-contained HTML page: inline CSS, each chart as an inline SVG element, its data as an inline JSON block.

Nothing is fetched when the page opens (no scripts, fonts or styles from the network), so it can be mailed,
archived or opened from a file share. Print rules (A4 landscape, one chart per block, no navigation) make the same
page the PDF summary (pipelines/report/pdf.py).
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime

from pipelines.report.charts import Chart, Table

CSS = """
:root { --ink: #1d2330; --muted: #5b6473; --line: #e3e6eb; --accent: #1f77b4; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 24px 32px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 0; color: #c6ccd6; }
header p.notice { margin-top: 8px; color: #ffd479; }
main { max-width: 1180px; margin: 0 auto; padding: 16px 24px 48px; }
nav { margin: 16px 0; font-size: 14px; }
nav a { color: var(--accent); margin-right: 14px; white-space: nowrap; text-decoration: none; }
nav a:hover { text-decoration: underline; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 10px; margin: 16px 0 8px; }
.figure { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.figure .label { color: var(--muted); font-size: 12px; }
.figure .value { font-size: 20px; font-weight: 600; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 16px 20px; margin: 18px 0; }
section h2 { margin: 0 0 6px; font-size: 19px; }
section p.caption { margin: 0 0 12px; color: var(--muted); font-size: 14px; max-width: 980px; }
section .chart { margin: 0; }
section .chart svg { display: block; width: 100%; height: auto; }
table { border-collapse: collapse; margin-top: 12px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f2f5; font-weight: 600; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 16px; }
@page { size: A4 landscape; margin: 10mm; }
@media print {
  body { background: #fff; font-size: 12px; }
  header { padding: 10px 16px; print-color-adjust: exact; -webkit-print-color-adjust: exact; }
  nav { display: none; }
  main { max-width: none; padding: 0; }
  .figures { grid-template-columns: repeat(6, 1fr); break-inside: avoid; }
  .figure { padding: 6px 8px; }
  section { border: none; padding: 0; margin: 0 0 6mm; break-inside: avoid; }
  section + section { break-before: page; }
  section p.caption { font-size: 11px; max-width: none; }
  section .chart svg { width: auto; max-width: 100%; max-height: 150mm; margin: 0 auto; }
  section:has(table) .chart svg { max-height: 105mm; }   /* the payback chart and its table on one page */
  table { break-inside: avoid; }
  footer { padding: 4px; }
}
"""


def _json_block(element_id: str, data) -> str:
    # `</` would end the script element early; `\u003c` is the same character to a JSON parser.
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")
    return f'<script type="application/json" id="{html.escape(element_id)}">{text}</script>'


def _table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in table.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(chart: Chart) -> str:
    parts = [
        f'<section id="{html.escape(chart.id)}" data-chart="{html.escape(chart.id)}">',
        f"<h2>{html.escape(chart.title)}</h2>",
        f'<p class="caption">{html.escape(chart.caption)}</p>',
        f'<figure class="chart" role="img" aria-label="{html.escape(chart.title)}">{chart.svg}</figure>',
    ]
    if chart.table is not None:
        parts.append(_table(chart.table))
    parts.append(_json_block(f"data-{chart.id}", chart.data))
    for suffix, data in chart.extra_data.items():
        parts.append(_json_block(f"data-{chart.id}-{suffix}", data))
    parts.append("</section>")
    return "\n".join(parts)


def render_page(charts: list[Chart], figures: list[tuple[str, str]], key_figures: dict, subtitle: str) -> str:
    """`figures` are (label, formatted value) tiles for the top; `key_figures` their raw values (embedded as JSON)."""
    tiles = "".join(
        f'<div class="figure"><div class="label">{html.escape(label)}</div>'
        f'<div class="value">{html.escape(value)}</div></div>'
        for label, value in figures
    )
    nav = " ".join(f'<a href="#{html.escape(c.id)}">{html.escape(c.title)}</a>' for c in charts)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            "<title>Customer lifetime value: the answers at a glance</title>",
            f"<style>{CSS}</style></head><body>",
            "<header><h1>Customer lifetime value: the answers at a glance</h1>",
            f"<p>{html.escape(subtitle)}</p>",
            *(
                f'<p class="notice">Not in the predictions this run: {html.escape(note)}.</p>'
                for note in key_figures.get("model_notes") or []
            ),
            *(
                f'<p class="notice">Assumption check: {html.escape(warning)}.</p>'
                for warning in key_figures.get("assumption_warnings") or []
            ),
            "</header>",
            "<main>",
            f'<div class="figures" id="key-figures">{tiles}</div>',
            _json_block("data-key-figures", key_figures),
            f"<nav>{nav}</nav>",
            *(_section(c) for c in charts),
            "</main>",
            f"<footer>Generated {generated} from the marts of the DuckDB warehouse. Every chart's numbers are "
            "embedded in this page as JSON (script elements with id data-&lt;chart&gt;).</footer>",
            "</body></html>",
        ]
    )
