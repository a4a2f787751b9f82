"""Publish the marts for readers who must never block the writer or see half a table.

- `published/warehouse.duckdb`: a read-only snapshot holding only the `marts` schema (what BI reads: no raw rows,
  no rejected records, no e-mail hashes), written beside the old one and swapped in with one rename (readers
  holding the old file keep reading it; new readers get the new one). It is a byte copy of the marts' own file
  (pipelines/warehouse.py, MARTS_CATALOG), which is kept in DuckDB 1.1's storage format, so every client from
  DuckDB 1.1 on opens it, not only DuckDB 2.0; every table and column carries its dbt description as a COMMENT
  (BI tools and SQL clients show them).
- `exports/<mart>.parquet`: one Parquet file per mart. `fct_orders`, the one mart that grows with history, is
  exported one file per order month (`exports/fct_orders/<YYYY-MM>.parquet`): a daily run rewrites only the
  months its window touched.

Everything is first written under temporary names; only when every file is complete are they renamed into place
(renames need no disk space), so a full disk or a crash leaves the previous snapshot and exports together.
Scratch files of a publish that died are removed by the next one (runs hold the warehouse lock: one at a time).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from pipelines.settings import DBT_PROJECT_DIR
from pipelines.warehouse import (
    DBT_SCRATCH_SUFFIXES,
    MARTS_CATALOG,
    connect,
    ensure_raw_schema,
    marts_path,
    marts_schema_tables,
    sql_identifier,
    sql_string,
)

# mart -> its month column (first day of the month): exported one Parquet file per month.
MONTHLY_EXPORTS = {"fct_orders": "order_month"}
# Says which warehouse the exports beside it come from: a daily run rewrites only its months when it is this one.
MANIFEST = "_manifest.json"
SCRATCH_MARK = ".publishing"
# The dbt manifest (`dbt parse`; needed by Dagster anyway): descriptions of the marts the polars assets write.
DBT_MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"
POLARS_MARTS_SOURCE = "marts_polars"


def mart_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [t for t in marts_schema_tables(con, MARTS_CATALOG) if not t.endswith(DBT_SCRATCH_SUFFIXES)]


# {table: (table description, {column: description})}
TableDocs = dict[str, tuple[str, dict[str, str]]]


def polars_mart_docs(manifest: Path = DBT_MANIFEST) -> TableDocs:
    """Descriptions of the marts written by the polars assets, declared in dbt as the source `marts_polars`
    (dbt_project/models/marts/_marts_polars.yml; doc() blocks are already rendered in the manifest). Empty when
    there is no manifest (a warehouse published outside a project checkout)."""
    try:
        sources = json.loads(manifest.read_text())["sources"].values()
    except (OSError, ValueError, KeyError):
        return {}
    return {
        s["name"]: (s.get("description") or "", {c: (d.get("description") or "") for c, d in s["columns"].items()})
        for s in sources
        if s.get("source_name") == POLARS_MARTS_SOURCE
    }


def comment_marts(con: duckdb.DuckDBPyConnection, docs: TableDocs, catalog: str) -> int:
    """COMMENT ON the marts of `catalog` that exist, and on their columns that exist, from `docs`; empty
    descriptions are skipped. One transaction. Returns the comments written."""
    present: dict[str, set[str]] = {}
    for table, column in con.execute(
        "select table_name, column_name from duckdb_columns() where database_name = ? and schema_name = 'marts'",
        [catalog],
    ).fetchall():
        present.setdefault(table, set()).add(column)
    statements = []
    for table, (description, columns) in docs.items():
        if table not in present:
            continue
        qualified = f"{sql_identifier(catalog)}.marts.{sql_identifier(table)}"
        if description.strip():
            statements.append(f"comment on table {qualified} is {sql_string(description.strip())}")
        statements += [
            f"comment on column {qualified}.{sql_identifier(column)} is {sql_string(text.strip())}"
            for column, text in columns.items()
            if column in present[table] and text.strip()
        ]
    if statements:
        con.execute("begin transaction")
        try:
            for statement in statements:
                con.execute(statement)
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    return len(statements)


@dataclass
class _Staged:
    """Files written under scratch names, renamed into place together by `commit`."""

    renames: list[tuple[Path, Path]] = field(default_factory=list)
    deletions: list[Path] = field(default_factory=list)

    def scratch_for(self, target: Path) -> Path:
        scratch = target.parent / f".{target.name}.{os.getpid()}{SCRATCH_MARK}"
        self.renames.append((scratch, target))
        return scratch

    def commit(self) -> None:
        for scratch, target in self.renames:
            os.replace(scratch, target)
        for stale in self.deletions:
            stale.unlink(missing_ok=True)

    def discard(self) -> None:
        for scratch, _ in self.renames:
            scratch.unlink(missing_ok=True)


def remove_scratch(*directories: Path) -> list[Path]:
    """Leftovers of a publish that died (full disk, kill -9): they can be gigabytes each."""
    removed = []
    for directory in directories:
        if not directory.exists():
            continue
        for path in list(directory.rglob(f".*{SCRATCH_MARK}*")) + list(directory.glob(".warehouse.*.building.duckdb*")):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _copy_to_parquet(con: duckdb.DuckDBPyConnection, sql: str, target: Path, params: list | None = None) -> None:
    con.execute(f"copy ({sql}) to {sql_string(target)} (format parquet)", params)


def _columns(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[str, str]]:
    return [(name, str(kind)) for name, kind, *_ in con.execute(f"{sql} limit 0").description]


def _export_by_month(
    con: duckdb.DuckDBPyConnection,
    table: str,
    month_col: str,
    directory: Path,
    changed_from: date | None,
    staged: _Staged,
) -> None:
    """Months before `changed_from` (the run's window start: the incremental mart did not touch them) keep their
    file; later months are rewritten, all in one pass over the mart; months that no longer have rows lose theirs."""
    directory.mkdir(parents=True, exist_ok=True)
    kept = sorted(directory.glob("*.parquet"))
    if kept and _columns(con, f"select * from read_parquet({sql_string(kept[0])})") != _columns(
        con, f"select * from marts.{table}"
    ):
        changed_from = None  # the mart's columns changed (a full refresh after a model change): rewrite every month
    partitions = directory.parent / f".{table}.{os.getpid()}{SCRATCH_MARK}.months"
    shutil.rmtree(partitions, ignore_errors=True)
    where, params = (f"where {month_col} >= ?", [changed_from.replace(day=1)]) if changed_from else ("", None)
    try:
        # DuckDB buffers up to this many rows per open month before writing them out: the default (512 k) held
        # 1.3 GB more at 10 M orders over 36 months (measured 2.55 GB vs 1.22 GB at 50 k, no slower).
        con.execute("set partitioned_write_flush_threshold = 50000")
        con.execute(
            f"copy (select * from marts.{table} {where}) to {sql_string(partitions)} "
            f"(format parquet, partition_by ({month_col}), write_partition_columns true)",
            params,
        )
        for month_dir in sorted(partitions.iterdir()) if partitions.exists() else []:  # <month_col>=YYYY-MM-01
            scratch = staged.scratch_for(directory / f"{month_dir.name.split('=', 1)[1][:7]}.parquet")
            parts = sorted(month_dir.glob("*.parquet"))
            if len(parts) == 1:
                os.replace(parts[0], scratch)
            else:
                _copy_to_parquet(
                    con, f"select * from read_parquet([{', '.join(sql_string(p) for p in parts)}])", scratch
                )
    finally:
        shutil.rmtree(partitions, ignore_errors=True)
    wanted = {
        f"{m:%Y-%m}.parquet" for (m,) in con.execute(f"select distinct {month_col} from marts.{table}").fetchall()
    }
    staged.deletions.extend(p for p in directory.glob("*.parquet") if p.name not in wanted)


def _read_manifest(exports_dir: Path) -> dict | None:
    try:
        return json.loads((exports_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _write_snapshot(con: duckdb.DuckDBPyConnection, warehouse: Path, target: Path) -> None:
    """The marts file's bytes, once nothing else is in it and everything is in it: dbt's scratch relations of a
    killed run dropped, the write-ahead log checkpointed into the file and the file detached (closed)."""
    leftovers = [name for name in marts_schema_tables(con, MARTS_CATALOG) if name.endswith(DBT_SCRATCH_SUFFIXES)]
    for name in leftovers:
        con.execute(f"drop table {MARTS_CATALOG}.marts.{sql_identifier(name)}")
    con.execute(f"checkpoint {MARTS_CATALOG}")
    con.execute(f"detach {MARTS_CATALOG}")
    source = marts_path(warehouse)
    wal = Path(f"{source}.wal")
    if wal.exists() and wal.stat().st_size:  # the copy would miss what the log holds: never publish that
        raise RuntimeError(f"{source.name}: its write-ahead log was not checkpointed; the snapshot was not replaced")
    shutil.copyfile(source, target)


def publish(
    warehouse: Path, published_dir: Path, exports_dir: Path, *, threads: int = 2, memory_limit: str = "2GB"
) -> dict[str, int]:
    published_dir.mkdir(parents=True, exist_ok=True)
    exports_dir.mkdir(parents=True, exist_ok=True)
    remove_scratch(published_dir, exports_dir)
    counts: dict[str, int] = {}
    staged = _Staged()
    try:
        with connect(warehouse, threads=threads, memory_limit=memory_limit) as con:
            _publish(con, warehouse, exports_dir, published_dir, staged, counts)
    except BaseException:
        staged.discard()
        raise
    staged.commit()
    return counts


def _publish(
    con: duckdb.DuckDBPyConnection,
    warehouse: Path,
    exports_dir: Path,
    published_dir: Path,
    staged: _Staged,
    counts: dict[str, int],
) -> None:
    con.execute("set enable_progress_bar = false")
    ensure_raw_schema(con)  # warehouses from before the exports' manifest get their identity here
    window_start = con.execute("select max(window_start) from raw.run_context").fetchall()[0][0]
    identity = con.execute("select warehouse_id from raw.warehouse_identity").fetchall()[0][0]
    manifest = {"warehouse": str(warehouse), "warehouse_id": identity}
    if _read_manifest(exports_dir) != manifest:
        window_start = None  # exports of another warehouse, or none yet: every month is written from this one
    staged.scratch_for(exports_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    # The polars marts were (re)written after dbt: their descriptions come from the dbt manifest (the dbt
    # models have theirs from persist_docs). In the warehouse too, so its readers see them.
    comment_marts(con, polars_mart_docs(), MARTS_CATALOG)
    tables = mart_tables(con)
    for table in tables:
        counts[table] = con.execute(f"select count(*) from marts.{sql_identifier(table)}").fetchall()[0][0]
        if table in MONTHLY_EXPORTS:
            _export_by_month(con, table, MONTHLY_EXPORTS[table], exports_dir / table, window_start, staged)
        else:
            target = staged.scratch_for(exports_dir / f"{table}.parquet")
            _copy_to_parquet(con, f"select * from marts.{sql_identifier(table)}", target)
    # Single files of marts that are gone or now exported by month (fct_orders.parquet of earlier versions).
    wanted = {f"{t}.parquet" for t in tables if t not in MONTHLY_EXPORTS}
    staged.deletions.extend(p for p in exports_dir.glob("*.parquet") if p.name not in wanted)
    # The snapshot is renamed last: its presence says every export beside it is complete.
    _write_snapshot(con, warehouse, staged.scratch_for(published_dir / "warehouse.duckdb"))
