"""Publish the marts for readers who must never block the writer or see half a table.

- `published/warehouse.duckdb`: a read-only snapshot — a byte copy of the checkpointed warehouse taken while this
  run holds the writer lock, written beside the old one and swapped in with one rename (readers holding the old file
  keep reading it; new readers get the new one). BI tools read its `marts` schema.
- `exports/<mart>.parquet`: one Parquet file per mart, each written to a temporary name and renamed into place.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb


def mart_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "select table_name from information_schema.tables where table_schema = 'marts' "
        "and table_type = 'BASE TABLE' order by table_name").fetchall()
    return [r[0] for r in rows]


def publish(warehouse: Path, published_dir: Path, exports_dir: Path) -> dict[str, int]:
    published_dir.mkdir(parents=True, exist_ok=True)
    exports_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("set enable_progress_bar = false")
        # Everything in the WAL goes into the file, so the byte copy below is the complete warehouse.
        con.execute("checkpoint")
        for table in mart_tables(con):
            counts[table] = con.execute(f"select count(*) from marts.{table}").fetchone()[0]
            part = exports_dir / f".{table}.{os.getpid()}.parquet"
            con.execute(f"copy (select * from marts.{table}) to '{part}' (format parquet)")
            os.replace(part, exports_dir / f"{table}.parquet")
    finally:
        con.close()
    building = published_dir / f".warehouse.{os.getpid()}.building.duckdb"
    shutil.copyfile(warehouse, building)
    os.replace(building, published_dir / "warehouse.duckdb")
    return counts
