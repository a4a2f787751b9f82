"""Reading the marts: rows as JSON-able dicts, and whether a mart (or one of its columns) exists in this warehouse
(older warehouses lack some: the charts then fall back to what there is)."""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import duckdb
import numpy as np

from pipelines import warehouse as wh


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return _jsonable(float(value))
    return value


def records(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [{n: _jsonable(v) for n, v in zip(names, row)} for row in cursor.fetchall()]


def has_column(con, table: str, column: str) -> bool:
    return column in wh.table_columns(con, f"marts.{table}")


def has_table(con, table: str) -> bool:
    return table in wh.table_names(con, "marts")
