"""Publish the marts for readers who must never block the writer or see half a table.

- `published/warehouse.duckdb`: a read-only snapshot — a byte copy of the checkpointed warehouse taken while this
  run holds the writer lock, written beside the old one and swapped in with one rename (readers holding the old file
  keep reading it; new readers get the new one). BI tools read its `marts` schema.
- `exports/<mart>.parquet`: one Parquet file per mart, each written to a temporary name and renamed into place.
  `fct_orders`, the one mart that grows with history, is exported one file per order month
  (`exports/fct_orders/<YYYY-MM>.parquet`): a daily run rewrites only the months its window touched.
"""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

import duckdb

# mart -> its month column (first day of the month): exported one Parquet file per month.
MONTHLY_EXPORTS = {"fct_orders": "order_month"}


def mart_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "select table_name from information_schema.tables where table_schema = 'marts' "
        "and table_type = 'BASE TABLE' order by table_name").fetchall()
    return [r[0] for r in rows]


def _copy_to_parquet(con: duckdb.DuckDBPyConnection, sql: str, target: Path, params: list | None = None) -> None:
    part = target.parent / f".{target.name}.{os.getpid()}.tmp"
    con.execute(f"copy ({sql}) to '{part}' (format parquet)", params)
    os.replace(part, target)


def _columns(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[str, str]]:
    return [(name, str(kind)) for name, kind, *_ in con.execute(f"{sql} limit 0").description]


def _export_by_month(con: duckdb.DuckDBPyConnection, table: str, month_col: str, directory: Path,
                     changed_from: date | None) -> None:
    """Months before `changed_from` (the run's window start: the incremental mart did not touch them) keep their
    file; later months are rewritten, all in one pass over the mart; months that no longer have rows lose theirs."""
    directory.mkdir(parents=True, exist_ok=True)
    kept = sorted(directory.glob("*.parquet"))
    if kept and _columns(con, f"select * from read_parquet('{kept[0]}')") != _columns(con, f"select * from marts.{table}"):
        changed_from = None  # the mart's columns changed (a full refresh after a model change): rewrite every month
    staging = directory.parent / f".{table}.{os.getpid()}.months"
    shutil.rmtree(staging, ignore_errors=True)
    where, params = (f"where {month_col} >= ?", [changed_from.replace(day=1)]) if changed_from else ("", None)
    try:
        # DuckDB buffers up to this many rows per open month before writing them out: the default (512 k) held
        # 1.3 GB more at 10 M orders over 36 months (measured 2.55 GB vs 1.22 GB at 50 k, no slower).
        con.execute("set partitioned_write_flush_threshold = 50000")
        con.execute(f"copy (select * from marts.{table} {where}) to '{staging}' "
                    f"(format parquet, partition_by ({month_col}), write_partition_columns true)", params)
        for month_dir in sorted(staging.iterdir()) if staging.exists() else []:  # <month_col>=YYYY-MM-01
            target = directory / f"{month_dir.name.split('=', 1)[1][:7]}.parquet"
            parts = sorted(month_dir.glob("*.parquet"))
            if len(parts) == 1:
                os.replace(parts[0], target)
            else:
                _copy_to_parquet(con, f"select * from read_parquet({[str(p) for p in parts]})", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    wanted = {f"{m:%Y-%m}.parquet" for (m,) in con.execute(f"select distinct {month_col} from marts.{table}").fetchall()}
    for stale in directory.glob("*.parquet"):
        if stale.name not in wanted:
            stale.unlink()


def publish(warehouse: Path, published_dir: Path, exports_dir: Path, *, threads: int = 2,
            memory_limit: str = "2GB") -> dict[str, int]:
    published_dir.mkdir(parents=True, exist_ok=True)
    exports_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    con = duckdb.connect(str(warehouse), config={"threads": threads, "memory_limit": memory_limit})
    try:
        con.execute("set enable_progress_bar = false")
        # Everything in the WAL goes into the file, so the byte copy below is the complete warehouse.
        con.execute("checkpoint")
        window_start = con.execute("select max(window_start) from raw.run_context").fetchone()[0]
        for table in mart_tables(con):
            counts[table] = con.execute(f"select count(*) from marts.{table}").fetchone()[0]
            if table in MONTHLY_EXPORTS:
                _export_by_month(con, table, MONTHLY_EXPORTS[table], exports_dir / table, window_start)
                (exports_dir / f"{table}.parquet").unlink(missing_ok=True)  # the single file of earlier versions
            else:
                _copy_to_parquet(con, f"select * from marts.{table}", exports_dir / f"{table}.parquet")
    finally:
        con.close()
    building = published_dir / f".warehouse.{os.getpid()}.building.duckdb"
    shutil.copyfile(warehouse, building)
    os.replace(building, published_dir / "warehouse.duckdb")
    return counts
