"""Small polars → markdown tables for Dagster metadata (no pandas/tabulate dependency)."""

from __future__ import annotations

import polars as pl


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}"
    return str(value).replace("|", "\\|")


def frame_to_markdown(frame: pl.DataFrame, max_rows: int = 20) -> str:
    if frame.height == 0:
        return "_no rows_"
    shown = frame.head(max_rows)
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * shown.width]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in shown.iter_rows()]
    if frame.height > max_rows:
        lines.append(f"\n_{frame.height - max_rows:,} more rows_")
    return "\n".join(lines)
