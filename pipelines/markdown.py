"""Small polars → markdown tables for Dagster metadata (no pandas/tabulate dependency). Every cell is redacted:
previews reach Dagster's event log, and a file name or a free-text value may hold an e-mail address."""

from __future__ import annotations

import polars as pl

from pipelines.privacy import redact


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}"
    return redact(str(value)).replace("|", "\\|")


def markdown_table(columns: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """A markdown table of already formatted cells; `align`: one letter per column, 'l' or 'r' (default: left)."""
    rule = "|" + "".join("---:|" if a == "r" else "---|" for a in (align or "l" * len(columns)))
    return "\n".join(["| " + " | ".join(columns) + " |", rule] + ["| " + " | ".join(row) + " |" for row in rows])


def frame_to_markdown(frame: pl.DataFrame, max_rows: int = 20) -> str:
    if frame.height == 0:
        return "_no rows_"
    shown = frame.head(max_rows)
    lines = [markdown_table(shown.columns, [[_cell(v) for v in row] for row in shown.iter_rows()])]
    if frame.height > max_rows:
        lines.append(f"\n_{frame.height - max_rows:,} more rows_")
    return "\n".join(lines)
