"""The DuckDB warehouse: connections, raw-layer DDL, partition replacement and atomic table swaps.

No Dagster here: the assets call these functions, and so can tests.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Iterator

import duckdb
import polars as pl

RAW_DDL = """
create schema if not exists raw;
create schema if not exists marts;
create table if not exists raw.orders (
    order_id varchar not null, customer_id varchar not null, ordered_at timestamp not null, order_date date not null,
    net_revenue double not null, currency varchar, discount_amount double not null, discount_code varchar,
    refunded_amount double not null, refunded_at timestamp, cost double, channel varchar, status varchar,
    product_category varchar, email_sha256 varchar, source_file varchar, source_line bigint, loaded_at timestamp
);
create table if not exists raw.rejected_orders (
    source_table varchar, source_file varchar, source_line bigint, kind varchar, reason varchar, record varchar,
    event_date date, rejected_at timestamp
);
create table if not exists raw.marketing_spend (
    date date not null, channel varchar not null, spend double not null, source_file varchar, source_line bigint,
    loaded_at timestamp
);
create table if not exists raw.cart_events (
    customer_id varchar not null, event_at timestamp not null, event_date date not null, event_type varchar not null,
    cart_value double, source_file varchar, source_line bigint, loaded_at timestamp
);
-- The point in time and window of the current run, read by the dbt models. Passing them as data rather than
-- dbt --vars keeps dbt's partial parsing valid between runs (a changed var forces a full re-parse, ~7 s).
create table if not exists raw.run_context (as_of date, window_start date, default_margin_rate double);
insert into raw.run_context select null, null, 0.40 where not exists (select 1 from raw.run_context);
create table if not exists raw.load_log (
    asset varchar, window_start date, window_end date, as_of date, source varchar, rows_loaded bigint,
    rows_rejected bigint, loaded_at timestamp
);
"""


@contextmanager
def connect(path: Path, *, read_only: bool = False, threads: int = 2, memory_limit: str = "4GB") -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection: dbt runs in its own process and needs the file lock between our steps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only, config={"threads": threads, "memory_limit": memory_limit})
    try:
        yield con
    finally:
        con.close()


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(RAW_DDL)


def latest_loaded_day(con: duckdb.DuckDBPyConnection) -> date | None:
    """The newest order date any run has loaded (the default point in time of the marts)."""
    row = con.execute("select max(window_end) from raw.load_log where asset = 'orders'").fetchone()
    return row[0] if row else None


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection, incoming: pl.DataFrame | None = None) -> Iterator[None]:
    """One DuckDB transaction (committed, or rolled back on any error), with `incoming` registered as a view."""
    if incoming is not None:
        con.register("incoming", incoming.to_arrow())
    try:
        con.execute("begin transaction")
        yield
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        if incoming is not None:
            con.unregister("incoming")


def set_run_context(con: duckdb.DuckDBPyConnection, as_of: date | None, window_start: date | None,
                    default_margin_rate: float) -> None:
    with _transaction(con):
        con.execute("delete from raw.run_context")
        con.execute("insert into raw.run_context values (?, ?, ?)", [as_of, window_start, default_margin_rate])


def replace_window(con: duckdb.DuckDBPyConnection, table: str, date_col: str, start: date, end: date,
                   frame: pl.DataFrame, select_sql: str = "*", version_key: str | None = None) -> int:
    """Delete the window's rows and insert the new ones in ONE transaction: a re-run replaces, never duplicates,
    and a crash leaves the previous rows. With `version_key`, one row per key survives in the whole table: the
    latest by (source_file, source_line), so re-loading an old day never brings back a version superseded by a
    later file that moved the row to another day."""
    with _transaction(con, frame):
        con.execute(f"delete from {table} where {date_col} between ? and ?", [start, end])
        con.execute(f"insert into {table} by name select {select_sql}, current_timestamp as loaded_at from incoming")
        if version_key:
            # Only keys present twice can hold an old version (the table had one row per key before this insert).
            con.execute(f"""
                delete from {table} as old
                where old.{version_key} in (select {version_key} from {table} group by {version_key} having count(*) > 1)
                  and exists (select 1 from {table} as newer
                              where newer.{version_key} = old.{version_key}
                                and (newer.source_file > old.source_file
                                     or (newer.source_file = old.source_file and newer.source_line > old.source_line)))""")
    return frame.height


def replace_rejected(con: duckdb.DuckDBPyConnection, source_table: str, start: date, end: date, frame: pl.DataFrame) -> int:
    """Rejects of a window are replaced like the window; undated rejects are keyed by (file, line)."""
    with _transaction(con, frame):
        con.execute(
            """delete from raw.rejected_orders r where r.source_table = ? and (
                   r.event_date between ? and ?
                   or exists (select 1 from incoming i where i.source_file = r.source_file and i.source_line = r.source_line))""",
            [source_table, start, end],
        )
        con.execute("insert into raw.rejected_orders by name select *, current_timestamp as rejected_at from incoming")
    return frame.height


def replace_table(con: duckdb.DuckDBPyConnection, qualified_name: str, frame: pl.DataFrame) -> int:
    """Build-and-swap in one transaction: readers see the old table or the new one, never half of it."""
    with _transaction(con, frame):
        con.execute(f"create or replace table {qualified_name} as select * from incoming")
    return frame.height


def append_replacing(con: duckdb.DuckDBPyConnection, qualified_name: str, key_col: str, key_value, frame: pl.DataFrame) -> None:
    """History tables (one block of rows per as-of date): replace this key's rows, keep the others."""
    with _transaction(con, frame):
        con.execute(f"create table if not exists {qualified_name} as select * from incoming where false")
        con.execute(f"delete from {qualified_name} where {key_col} = ?", [key_value])
        con.execute(f"insert into {qualified_name} by name select * from incoming")


def read_frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pl.DataFrame:
    return pl.from_arrow(con.sql(sql, params=params or None).to_arrow_table())


@contextmanager
def exclusive_warehouse(path: Path, log=print, poll_seconds: float = 2.0) -> Iterator[None]:
    """DuckDB has one writer: runs take this lock for their whole duration, so a second run waits (queues)
    instead of crashing on DuckDB's own file lock."""
    lock_path = Path(f"{path}.run-lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        waited = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    log(f"Another run holds {lock_path}; waiting for it to finish before writing the warehouse.")
                    waited = True
                time.sleep(poll_seconds)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid={os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
