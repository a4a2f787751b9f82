"""Helpers for the operational tests (idempotency, crash safety, concurrency): snapshots of the marts."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import duckdb
from pipeline_runner import SMALL_SHOP_AS_OF as AS_OF  # noqa: F401  (re-exported: the small_shop's as-of date)

from pipelines.warehouse import open_warehouse

NUMERIC = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "FLOAT",
    "DOUBLE",
    "REAL",
)


def copy_data_dir(source: Path, target: Path) -> Path:
    """A private copy of a pipeline data directory (warehouse, published snapshot, synthetic landing files)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("dagster_home", "*.run-lock"))
    return target


# when a row was written, not what it says: differs between identical reloads
VOLATILE_COLUMNS = {"loaded_at", "rejected_at", "load_id", "deleted_at"}


def _column_summary(column: str, data_type: str) -> str | None:
    if column in VOLATILE_COLUMNS:
        return None
    quoted = '"' + column.replace('"', '""') + '"'
    base = data_type.split("(")[0].upper()
    if base in NUMERIC or base == "DECIMAL":
        # NaN/inf would make sums incomparable: count them separately
        return f"sum(case when isfinite({quoted}::double) then {quoted}::double end)"
    if base == "BOOLEAN":
        return f"count_if({quoted})"
    if base == "DATE":
        return f"sum(date_diff('day', DATE '2000-01-01', {quoted}))"
    if base.startswith("TIMESTAMP"):
        return f"sum(epoch({quoted}::timestamp))"
    if base == "VARCHAR":
        return f"count(distinct {quoted})"
    return None


def snapshot_con(con: duckdb.DuckDBPyConnection, schema: str = "marts", catalog: str | None = None) -> dict:
    """`{table: (row count, {column: sum (numbers) | count_if (booleans) | distinct count (text) | ...})}`."""
    where = "table_schema = ?" + (" and table_catalog = ?" if catalog else "")
    params = [schema] + ([catalog] if catalog else [])
    tables = [
        r[0]
        for r in con.execute(
            f"select table_name from information_schema.tables where {where} order by table_name", params
        ).fetchall()
    ]
    prefix = f"{catalog}.{schema}" if catalog else schema
    result = {}
    for table in tables:
        columns = con.execute(
            f"select column_name, data_type from information_schema.columns where {where} and table_name = ? "
            "order by ordinal_position",
            params + [table],
        ).fetchall()
        summaries = [(c, s) for c, t in columns if (s := _column_summary(c, t)) is not None]
        select = ", ".join(["count(*)"] + [s for _, s in summaries])
        row = con.execute(f'select {select} from {prefix}."{table}"').fetchone()
        result[table] = (row[0], {c: v for (c, _), v in zip(summaries, row[1:])})
    return result


def snapshot(warehouse: Path, schema: str = "marts") -> dict:
    con = open_warehouse(warehouse, read_only=True)
    try:
        return snapshot_con(con, schema)
    finally:
        con.close()


def row_counts(snap: dict) -> dict[str, int]:
    return {t: n for t, (n, _) in snap.items()}


def differences(before: dict, after: dict, rel: float = 1e-9, abs_: float = 1e-6) -> list[str]:
    """Human-readable differences between two snapshots (empty when identical up to float rounding)."""
    diffs = []
    for table in sorted(set(before) | set(after)):
        if table not in after:
            diffs.append(f"{table}: missing after")
            continue
        if table not in before:
            diffs.append(f"{table}: new table")
            continue
        (n0, cols0), (n1, cols1) = before[table], after[table]
        if n0 != n1:
            diffs.append(f"{table}: {n0} rows -> {n1} rows")
        for col in sorted(set(cols0) | set(cols1)):
            a, b = cols0.get(col), cols1.get(col)
            if a is None or b is None:
                if a is not b:
                    diffs.append(f"{table}.{col}: {a} -> {b}")
            elif not math.isclose(float(a), float(b), rel_tol=rel, abs_tol=abs_):
                diffs.append(f"{table}.{col}: {a} -> {b}")
    return diffs
