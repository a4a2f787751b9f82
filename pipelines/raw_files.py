"""Which order files are new or changed since the warehouse loaded them, the dates they hold, and the load key
that deduplicates the raw-files sensor (pipelines/defs/sensors.py) with the daily schedule.


`raw_files_sensor` (the `files` source; off by default, one toggle in the UI: Automation → raw_files_sensor) looks
at the `orders*` files of CLV_RAW_DIR every minute. A file that is new or changed since the warehouse last loaded it
(`raw.source_files`: size and modification time) launches one run of `clv_pipeline` for the order dates it holds
(all such files together: one run), so a corrected export is in the marts within minutes instead of at 02:00.

Deduplication, through one key per load: `<first day>..<last day>@<digest of the orders files>`. It is the run key of
the sensor's run (Dagster never launches a sensor's run key twice) and a tag of every run the sensor or the daily
schedule launches; either skips when a run with its key is queued, running or succeeded. So the nightly export
landing at 00:30 is loaded once: by the sensor, and the 02:00 schedule, finding the same day and the same files
loaded, skips. Files the schedule's run has loaded are no longer new to the sensor.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl

from pipelines.settings import Settings

LOAD_KEY_TAG = "clv/load_key"
FINISHED_BADLY = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


# ---------------------------------------------------------------- the load key, shared with the schedule
def files_digest(files: list[tuple[str, int, int]]) -> str:
    """Short digest of (name, size, mtime_ns) of the order files; '-' without files (synthetic, postgres)."""
    if not files:
        return "-"
    text = "\n".join(f"{name}\t{size}\t{mtime}" for name, size, mtime in sorted(files))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def order_files(settings: Settings) -> list[Path]:
    if settings.source != "files" or settings.raw_dir is None:
        return []
    from pipelines.sources import files as src

    return src.discover(settings.raw_dir, "orders")


def signatures(paths: list[Path]) -> list[tuple[str, int, int]]:
    stats = [(p.name, p.stat()) for p in paths]
    return [(name, stat.st_size, stat.st_mtime_ns) for name, stat in stats]


def load_key(start: date, end: date, digest: str) -> str:
    return f"{start.isoformat()}..{end.isoformat()}@{digest}"


def run_with_key(instance: dg.DagsterInstance, key: str) -> dg.DagsterRun | None:
    """A run with this load key that is queued, running or succeeded (a failed one does not count)."""
    runs = instance.get_runs(dg.RunsFilter(tags={LOAD_KEY_TAG: key}), limit=10)
    return next((run for run in runs if run.status not in FINISHED_BADLY), None)


def current_digest() -> str:
    """The load key's files part for the current settings (the schedule uses it too)."""
    try:
        settings = Settings.from_env()
        return files_digest(signatures(order_files(settings)))
    except (ValueError, OSError):  # a configuration error or an unreadable directory: the run will say it
        return "-"


# ---------------------------------------------------------------- which files changed, which dates they hold
def loaded_signatures(warehouse: Path) -> dict[str, tuple[int, int]] | None:
    """{file: (size, mtime_ns)} the warehouse last loaded orders from; None while a run writes the warehouse."""
    import duckdb

    if not warehouse.exists():
        return {}
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.IOException:  # DuckDB's file lock: a run is writing
        return None
    try:
        rows = con.execute(
            "select file_name, size, mtime_ns from raw.source_files where table_name = 'orders'"
        ).fetchall()
    except duckdb.CatalogException:  # a warehouse from before raw.source_files, or an empty one
        return {}
    finally:
        con.close()
    return {name: (size, mtime) for name, size, mtime in rows}


def order_dates(path: Path) -> tuple[date, date] | None:
    """First and last plausible order date in one orders file (read the way the load reads it), None if none."""
    from pipelines.sources import files as src

    latest = datetime.combine(datetime.now(UTC).date() + timedelta(days=2), datetime.min.time())
    if path.name.lower().endswith(".parquet"):
        dates = pl.scan_parquet(path).select("ordered_at")
        dates = dates.select(ordered_at=src.parse_timestamp("ordered_at", dates.collect_schema()["ordered_at"]))
    else:
        frame = src.read_table(path, src.ORDER_REQUIRED)
        dates = frame.lazy().select(ordered_at=src.parse_timestamp("ordered_at", frame.schema["ordered_at"]))
    first, last = (
        dates.filter(pl.col("ordered_at").is_between(src.EARLIEST_PLAUSIBLE, latest, closed="left"))
        .select(pl.col("ordered_at").min().alias("first"), pl.col("ordered_at").max().alias("last"))
        .collect()
        .row(0)
    )
    return None if first is None else (first.date(), last.date())
