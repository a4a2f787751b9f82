"""Publish the marts for readers who must never block the writer or see half a table.

- `published/warehouse.duckdb`: a read-only snapshot of the `marts` schema, built beside the old one and swapped in
  with one rename (readers holding the old file keep reading it; new readers get the new one).
- `exports/<mart>.parquet`: one Parquet file per mart, each written to a temporary name and renamed into place.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb


def mart_tables(con: duckdb.DuckDBPyConnection, catalog: str = "src") -> list[str]:
    rows = con.execute(
        "select table_name from information_schema.tables where table_catalog = ? and table_schema = 'marts' "
        "and table_type = 'BASE TABLE' order by table_name", [catalog]).fetchall()
    return [r[0] for r in rows]


def publish(warehouse: Path, published_dir: Path, exports_dir: Path) -> dict[str, int]:
    published_dir.mkdir(parents=True, exist_ok=True)
    exports_dir.mkdir(parents=True, exist_ok=True)
    snapshot = published_dir / "warehouse.duckdb"
    building = published_dir / f".warehouse.{os.getpid()}.building.duckdb"
    building.unlink(missing_ok=True)
    counts: dict[str, int] = {}
    con = duckdb.connect(str(building))
    try:
        con.execute(f"attach '{warehouse}' as src (read_only)")
        con.execute("create schema marts")
        for table in mart_tables(con):
            con.execute(f"create table marts.{table} as select * from src.marts.{table}")
            counts[table] = con.execute(f"select count(*) from marts.{table}").fetchone()[0]
            part = exports_dir / f".{table}.{os.getpid()}.parquet"
            con.execute(f"copy (select * from src.marts.{table}) to '{part}' (format parquet)")
            os.replace(part, exports_dir / f"{table}.parquet")
        con.execute("detach src")
        con.execute("checkpoint")
    finally:
        con.close()
    os.replace(building, snapshot)
    return counts
