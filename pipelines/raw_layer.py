"""Loading a source directory's files into the raw tables for one window (no Dagster: the ingest assets and the
tests call the same code)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Callable

import duckdb

from pipelines import warehouse as wh
from pipelines.sources import files as src


@dataclass(frozen=True)
class RawTable:
    name: str                                   # raw.<name>; also the file-name prefix of its source files
    date_col: str                               # the partition date column
    loader: Callable[..., src.LoadResult]
    select_sql: str = "*"
    version_key: str | None = None              # one row per key in the table: the latest version wins


RAW_TABLES = {
    "orders": RawTable("orders", "order_date", src.load_orders,
                       select_sql="* exclude (email), sha256(email) as email_sha256", version_key="order_id"),
    "marketing_spend": RawTable("marketing_spend", "date", src.load_marketing_spend),
    "cart_events": RawTable("cart_events", "event_date", src.load_cart_events),
}


def load_into(con: duckdb.DuckDBPyConnection, table: RawTable, directory: Path, window: src.Window,
              today: date | None, source: str) -> src.LoadResult:
    """Validate the table's files for `window` and replace the window's rows and rejects, each in one transaction."""
    result = table.loader(src.discover(directory, table.name), window, today=today)
    wh.ensure_raw_schema(con)
    wh.replace_window(con, f"raw.{table.name}", table.date_col, window.start, window.end, result.valid,
                      select_sql=table.select_sql, version_key=table.version_key)
    wh.replace_rejected(con, table.name, window.start, window.end, result.rejected)
    con.execute("insert into raw.load_log values (?, ?, ?, ?, ?, ?, ?, current_timestamp)",
                [table.name, window.start, window.end, window.as_of, source, result.valid.height, result.rejected.height])
    return result
