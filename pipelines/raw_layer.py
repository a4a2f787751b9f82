"""Loading a source directory's files into the raw tables for one window (no Dagster: the ingest assets and the
tests call the same code)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import polars as pl

from pipelines import warehouse as wh
from pipelines.data_checks import DataCheckFailed, Thresholds, blocking_problems
from pipelines.privacy import REDACTED, HashKey, hmac_sql, pseudonym_sql, redact, redact_expr, redact_sql
from pipelines.run_window import Window
from pipelines.sources import files as src
from pipelines.sources import fx

if TYPE_CHECKING:
    from pipelines.sources.postgres import PostgresSource


@dataclass(frozen=True)
class RawTable:
    name: str  # raw.<name>; also the file-name prefix of its source files
    date_col: str  # the partition date column
    loader: Callable[..., src.LoadResult]
    # How a validated frame (registered as `incoming`) is inserted; `$hmac_*` are the keyed-hash parameters.
    select_sql: str = "*"
    from_sql: str = "incoming"
    version_key: str | None = None  # one row per key in the table: the latest version wins
    # What the loader needs to know of the warehouse (keyword arguments), e.g. the shop's currency for spend;
    # called with the connection and CLV_REPORTING_CURRENCY.
    loader_options: Callable[[duckdb.DuckDBPyConnection, str | None], dict] | None = None
    # Orders are the wide table that grows with the shop: a full-history load goes in chunks of order dates. The
    # narrow tables load faster in one piece (7 M cart events: 3.7 s in one piece, 6.4 s in 92-day chunks).
    load_in_chunks: bool = False
    # Amounts in other currencies are converted to the reporting currency (pipelines/sources/fx.py).
    converts_currency: bool = False

    @property
    def keyed_hashes(self) -> bool:
        """Whether inserting rows computes keyed hashes (the `$hmac_*` parameters)."""
        return "$hmac" in self.select_sql + self.from_sql


def _redacted(columns: tuple[str, ...]) -> str:
    """`replace (...)` of a select: the free-text columns with e-mail addresses redacted (privacy.redact_sql)."""
    return "replace (" + ", ".join(f"{redact_sql(c)} as {c}" for c in columns) + ")"


# Free text a shop types (a channel named after a partner's address, a discount code for one customer) is stored
# without addresses; identifiers are not: customer_id has its keyed pseudonym, order_id is the shop's own key.
ORDERS_FREE_TEXT = ("currency", "discount_code", "channel", "status", "product_category")
SPEND_FREE_TEXT = ("channel",)

RAW_TABLES = {
    "orders": RawTable(
        "orders",
        "order_date",
        src.load_orders,
        select_sql=f"* exclude (email, _email, customer_id) {_redacted(ORDERS_FREE_TEXT)}, "
        f"{pseudonym_sql('customer_id')} as customer_id, $load_id as load_id",
        # An HMAC costs four SHA-256 blocks: each distinct address is hashed once (10 M orders: 5.2 s
        # per row, 2.8 s per address, beside 1.5 s for the unkeyed sha256 it replaces).
        from_sql=f"incoming left join (select email as _email, {hmac_sql('email')} as email_hmac "
        "from (select distinct email from incoming where email is not null)) on email = _email",
        version_key="order_id",
        load_in_chunks=True,
        converts_currency=True,
    ),
    "marketing_spend": RawTable(
        "marketing_spend",
        "date",
        src.load_marketing_spend,
        select_sql=f"* {_redacted(SPEND_FREE_TEXT)}",
        loader_options=lambda con, reporting: {"shop_currency": reporting or wh.shop_currency(con)},
    ),
    "cart_events": RawTable(
        "cart_events",
        "event_date",
        src.load_cart_events,
        select_sql=f"* exclude (customer_id), {pseudonym_sql('customer_id')} as customer_id",
    ),
}


CSV_REREAD_LIMIT_BYTES = 32 * 1024 * 1024
# Changed files larger than this make a daily run a full reload instead of a row-by-row comparison.
CHANGE_DIFF_LIMIT_BYTES = 64 * 1024 * 1024


def _read_ahead(
    loader: Callable[..., src.LoadResult], files, chunks: list[Window], *, ahead: bool, **options
) -> Iterator:
    """`loader(files, chunk, **options)` of each chunk in order. With `ahead`, the next chunk is read and validated on
    a thread while the caller inserts this one: polars and DuckDB both release the GIL, and the insert alone keeps
    only ~1.2 of 2 cores busy (10 M orders in 12 chunks). Files only: a database source's connection is not shared
    across threads. One chunk more is held in memory meanwhile."""
    if not ahead or len(chunks) < 2:
        for chunk in chunks:
            yield loader(files, chunk, **options)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as pool:
        pending = pool.submit(loader, files, chunks[0], **options)
        for chunk in chunks[1:]:
            result = pending.result()
            pending = pool.submit(loader, files, chunk, **options)
            yield result
        yield pending.result()


@dataclass
class LoadSummary:
    files: list[str]
    rows_read: int
    rows_loaded: int
    rejected: pl.DataFrame  # this run's rejects, one row per (file, line)
    preview: pl.DataFrame  # the first valid rows, for the asset's metadata
    unloaded: list[str]  # entries of the directory no table reads, with why
    warnings: list[str]  # blocking problems accepted by CLV_ACCEPT_BAD_INPUT
    changed_files: list[str] = field(default_factory=list)  # read whole: new or changed since the last load
    changed_rows: int = 0  # rows dated outside the window that the source changed (late refunds, corrections)
    changed_from: date | None = None  # the earliest date those changes touched: the marts rebuild from there
    deleted: int = 0  # orders no file holds any more, removed (raw.deleted_orders)
    missing_kept: dict[str, int] = field(default_factory=dict)  # per changed file: orders it no longer holds (kept)
    # What reading assumed (encoding, platform export) and loaded rows that match nothing else (said, not rejected)
    notes: list[str] = field(default_factory=list)


def load_into(
    con: duckdb.DuckDBPyConnection,
    table: RawTable,
    directory: Path | PostgresSource,
    window: Window,
    today: date | None,
    source: str,
    chunk_days: int | None = None,
    *,
    hash_key: HashKey,
    thresholds: Thresholds | None = None,
    accept_bad_input: bool = False,
    run_id: str | None = None,
    reporting_currency: str | None = None,
) -> LoadSummary:
    """Validate the table's files for `window` and replace the window's rows and rejects in one transaction.

    For orders, a long window (a full-history load) of Parquet files is validated and inserted `chunk_days` of order
    dates at a time: Parquet row-group statistics let each chunk read only its own rows, so memory is bounded by a
    chunk, not by the history. CSV has no such statistics and every chunk re-reads every CSV file: with more than
    CSV_REREAD_LIMIT_BYTES of CSV the window is loaded in one piece.

    A daily load of orders also reads whole every file that is new or changed (size or modification time) since the
    last load, and applies its rows dated before the window that differ from the warehouse: a refund booked a month
    late, a cancellation, a correction of any age. `changed_from` tells the marts where to rebuild from.

    With `thresholds`, the blocking data checks (pipelines/data_checks.py) run before anything is committed and
    raise DataCheckFailed, unless `accept_bad_input` turns them into warnings.

    `directory` may be a database (pipelines/sources/postgres.py): its relations stand for the files, read with
    the window pushed into the query; a daily load's changes are its rows updated since the last load."""
    on_disk = isinstance(directory, Path)
    files = src.discover(directory, table.name) if on_disk else directory.discover(table.name)
    wh.ensure_raw_schema(con)
    summary = LoadSummary(
        [f.name for f in files],
        0,
        0,
        pl.DataFrame(schema=src.REJECTED_SCHEMA),
        pl.DataFrame(),
        src.unloaded_files(directory) if on_disk else directory.unloaded(),
        [],
    )
    if on_disk and not files and table.name == "orders":  # the one required input: say what is there instead
        unloaded = f"; not loaded: {'; '.join(summary.unloaded)}" if summary.unloaded else ""
        raise src.SourceFileError(f"no orders*.csv|parquet file found in {directory}{unloaded}")
    full_reload = window.start <= window.first_partition
    changed: list[Path] = []
    covered = None
    if table.version_key and not full_reload:
        covered = _covered_dates(con, table.name)
        changed = _changed_files(con, table.name, files)
        summary.changed_files = [f.name for f in changed]
        if covered and sum(_size(f) for f in changed) > CHANGE_DIFF_LIMIT_BYTES:
            # Comparing a large changed export row by row costs more than reloading everything (10 M orders:
            # 100 s and 6.2 GB against 75 s and 2.8 GB): the run becomes a full reload, in bounded chunks.
            window = replace(window, start=window.first_partition, end=max(window.end, covered[1]))
            full_reload = True
            summary.changed_from = window.first_partition
    csv_bytes = sum(_size(f) for f in files if not f.name.lower().endswith(".parquet"))
    chunked = table.load_in_chunks and chunk_days and csv_bytes <= CSV_REREAD_LIMIT_BYTES
    chunks = window.split(chunk_days) if chunked else [window]
    rejected_parts: list[pl.DataFrame] = []
    reading_notes: list[str] = []
    file_rows: dict[str, int] = {}

    options = table.loader_options(con, reporting_currency) if table.loader_options else {}
    if table.converts_currency:
        options.update(
            fx_rates=fx.load_fx_rates(directory if on_disk else None),
            reporting_currency=fx.reporting_currency(reporting_currency, wh.shop_currency(con), files),
        )

    def batches():
        for result in _read_ahead(table.loader, files, chunks, ahead=on_disk, today=today, **options):
            summary.rows_read += result.rows_read
            for name, rows in result.file_rows.items():  # every chunk counts the whole file
                file_rows[name] = max(rows, file_rows.get(name, 0))
            if summary.preview.is_empty():
                preview = result.valid.head(5).drop("email", strict=False)
                summary.preview = preview.with_columns(redact_expr(pl.col(pl.String)))
                if "customer_id" in preview.columns:  # stored as its keyed pseudonym: the rest may be a name
                    holds_address = pl.col("customer_id").str.contains(REDACTED, literal=True)
                    summary.preview = summary.preview.with_columns(
                        customer_id=pl.when(holds_address).then(pl.lit(REDACTED)).otherwise(pl.col("customer_id"))
                    )
            rejected_parts.append(result.rejected)
            # What reading assumed (an encoding, a platform's export): said once, however many chunks read it.
            reading_notes.extend(redact(n) for n in result.notes if redact(n) not in reading_notes)
            yield result.valid, result.rejected

    def gate(rows_before: int, rows_after: int, rejected: pl.DataFrame) -> None:
        problems = blocking_problems(
            table.name,
            file_rows=file_rows,
            rejected=rejected,
            rows_before=rows_before,
            rows_after=rows_after,
            full_history=full_reload,
            thresholds=thresholds,
        )
        if problems and not accept_bad_input:
            raise DataCheckFailed(table.name, problems)
        summary.warnings.extend(problems)

    params = {"load_id": time.time_ns() // 1000} if table.version_key else {}
    if table.keyed_hashes:
        params.update(zip(("hmac_outer", "hmac_inner"), hash_key.sql_params()))
        _check_hash_key(con, table.name, hash_key, full_reload=full_reload)
    changes = changes_rejected = None
    if changed and covered and not full_reload:
        changes, changes_rejected = _changes_before_window(con, table, changed, window, covered, today, summary)
        rejected_parts.append(changes_rejected)
    replaced = wh.replace_window(
        con,
        f"raw.{table.name}",
        table.date_col,
        window.start,
        window.end,
        batches(),
        source_table=table.name,
        select_sql=table.select_sql,
        from_sql=table.from_sql,
        params=params or None,
        version_key=table.version_key,
        staged=len(chunks) > 1,
        gate=gate if thresholds is not None else None,
        changes=changes,
        changes_rejected=changes_rejected,
    )
    if options.get("reporting_currency"):
        con.execute("delete from raw.reporting_currency")
        con.execute("insert into raw.reporting_currency values (?)", [options["reporting_currency"]])
    if table.keyed_hashes:  # committed: the table's hashes are now made with this key
        con.execute("insert or replace into raw.hash_keys values (?, ?)", [table.name, hash_key.fingerprint])
    _remember_files(con, table.name, files)
    summary.changed_rows, summary.deleted = replaced.changed, replaced.deleted
    summary.changed_from = summary.changed_from or replaced.changed_from
    if not replaced.superseded.is_empty():
        rejected_parts.append(replaced.superseded.cast(src.REJECTED_SCHEMA))
    # Rows with no usable date are read by every chunk (and replaced by (file, line) in the warehouse): once here.
    summary.rejected = pl.concat([summary.rejected, *rejected_parts]).unique(
        ["source_file", "source_line"], keep="last", maintain_order=True
    )
    # Versions superseded across chunks were inserted, then removed: the window's rows are counted, not the batches.
    summary.rows_loaded = con.execute(
        f"select count(*) from raw.{table.name} where {table.date_col} between ? and ?", [window.start, window.end]
    ).fetchall()[0][0]
    if len(chunks) > 1:
        summary.rows_read = summary.rows_loaded + summary.rejected.height
    summary.notes = reading_notes + _unmatched(con, table.name, window)
    con.execute(
        """insert into raw.load_log by name select ? as asset, ? as window_start, ? as window_end, ? as as_of,
                   ? as source, ? as rows_loaded, ? as rows_rejected, current_timestamp as loaded_at, ? as run_id,
                   ? as changed_from""",
        [
            table.name,
            window.start,
            window.end,
            window.as_of,
            source,
            summary.rows_loaded,
            summary.rejected.height,
            run_id,
            summary.changed_from,
        ],
    )
    return summary


def _size(path) -> int:
    """Bytes of a file; 0 for a database relation (read by queries, never re-read whole)."""
    return path.stat().st_size if isinstance(path, Path) else 0


def _file_signature(path: Path) -> tuple[int, int]:
    if not isinstance(path, Path):  # a database relation: (0, its newest updated_at) (pipelines/sources/postgres.py)
        return path.signature()
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _remember_files(con: duckdb.DuckDBPyConnection, table: str, files: list[Path]) -> None:
    con.execute("delete from raw.source_files where table_name = ?", [table])
    for path in files:
        con.execute("insert into raw.source_files values (?, ?, ?, ?)", [table, path.name, *_file_signature(path)])


def _covered_dates(con: duckdb.DuckDBPyConnection, table: str) -> tuple[date, date] | None:
    """The dates earlier loads of the table covered (first, last); None before the first load."""
    covered = con.execute(
        "select min(window_start), max(window_end) from raw.load_log where asset = ?", [table]
    ).fetchall()[0]
    return None if covered[0] is None else covered


def _changed_files(con: duckdb.DuckDBPyConnection, table: str, files: list[Path]) -> list[Path]:
    known = {
        name: (size, mtime)
        for name, size, mtime in con.execute(
            "select file_name, size, mtime_ns from raw.source_files where table_name = ?", [table]
        ).fetchall()
    }
    # A changed database relation is read as its rows updated since the last load, not whole.
    return [
        f if isinstance(f, Path) else f.changes_since(known.get(f.name))
        for f in files
        if known.get(f.name) != _file_signature(f)
    ]


def _changes_before_window(
    con: duckdb.DuckDBPyConnection,
    table: RawTable,
    changed: list[Path],
    window: Window,
    covered: tuple[date, date],
    today: date | None,
    summary: LoadSummary,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(valid rows, rejected rows) dated outside the window in the `changed` files (new or changed since the last
    load; the warehouse compares the valid ones with what it holds). Only the `covered` dates of earlier loads are
    read: rows of dates never loaded are history for a backfill, not changes. Orders such a file no longer holds
    are counted, not removed: a daily file may be a partial export, so only a full reload removes orders."""
    covered_start, covered_end = covered
    whole = replace(window, start=max(covered_start, window.first_partition), end=max(window.end, covered_end))
    result = table.loader(changed, whole, today=today)
    outside = ~pl.col(table.date_col).is_between(window.start, window.end)
    rejected = result.rejected.filter(
        pl.col("event_date").is_not_null() & ~pl.col("event_date").is_between(window.start, window.end)
    )
    if not all(isinstance(f, Path) for f in changed):  # rows updated in a database: not a whole export to compare
        return result.valid.filter(outside), rejected
    key = table.version_key
    held = result.valid.select(key)
    with wh.registered(con, held):
        summary.missing_kept = dict(
            con.execute(
                f"""select o.source_file, count(*) from raw.{table.name} o
                where o.source_file in (select unnest(?)) and o.{table.date_col} not between ? and ?
                  and not exists (select 1 from incoming i where i.{key} = o.{key})
                group by 1 order by 1""",
                [summary.changed_files, window.start, window.end],
            ).fetchall()
        )
    return result.valid.filter(outside), rejected


def _check_hash_key(con: duckdb.DuckDBPyConnection, table: str, hash_key: HashKey, full_reload: bool) -> None:
    """Hashes made with different keys cannot be compared: after a key rotation only a full reload (`clv run`),
    which re-hashes every row, may write the table."""
    con.execute("create table if not exists raw.hash_keys (table_name varchar primary key, fingerprint varchar)")
    rows = con.execute("select fingerprint from raw.hash_keys where table_name = ?", [table]).fetchall()
    if rows and rows[0][0] != hash_key.fingerprint and not full_reload:
        raise src.SourceFileError(
            f"raw.{table} was hashed with another e-mail hash key (CLV_HASH_KEY_FILE changed): run `clv run` once "
            "to re-hash every row with the new key"
        )


def _unmatched(con: duckdb.DuckDBPyConnection, table: str, window: Window) -> list[str]:
    """Valid rows that no order explains: kept (an order may still come), but said, so nothing goes unnoticed."""
    if table == "marketing_spend":
        rows = con.execute(
            """select channel, sum(spend) from raw.marketing_spend where date between ? and ?
                              and channel not in (select distinct channel from raw.orders where channel is not null)
                              group by 1 order by 1""",
            [window.start, window.end],
        ).fetchall()
        return [f"spend of {spend:,.2f} on channel '{channel}', from which no customer came" for channel, spend in rows]
    if table == "cart_events":
        n = con.execute(
            """select count(*) from raw.cart_events where event_date between ? and ?
                           and customer_id not in (select distinct customer_id from raw.orders)""",
            [window.start, window.end],
        ).fetchall()[0][0]
        return [f"{n:,} cart events of visitors with no order (not in any mart)"] if n else []
    return []
