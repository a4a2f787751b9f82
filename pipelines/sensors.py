"""Sensors: new order files in the raw directory launch a run at once; runs whose process died are marked failed.

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

from pipelines import run_health
from pipelines.jobs import clv_pipeline_job
from pipelines.partitions import daily_partitions
from pipelines.privacy import redact
from pipelines.run_window import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG
from pipelines.settings import Settings

LOAD_KEY_TAG = "clv/load_key"
RAW_FILES_SENSOR = "raw_files_sensor"
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
def _loaded_signatures(warehouse: Path) -> dict[str, tuple[int, int]] | None:
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


def _partition_bounds() -> tuple[date, date | None]:
    last = daily_partitions.get_last_partition_key()
    return (date.fromisoformat(daily_partitions.get_first_partition_key()), date.fromisoformat(last) if last else None)


# ---------------------------------------------------------------- the sensor
@dg.sensor(
    name=RAW_FILES_SENSOR,
    job=clv_pipeline_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Source `files`: a new or changed orders* file in CLV_RAW_DIR launches one run for the dates it "
    "holds (deduplicated with the daily schedule). Off by default.",
)
def raw_files_sensor(context: dg.SensorEvaluationContext):
    try:
        settings = Settings.from_env()
        paths = order_files(settings)
    except (ValueError, OSError) as exc:
        return dg.SkipReason(f"Cannot read the raw directory: {exc}")
    if settings.source != "files":
        return dg.SkipReason(
            f"This instance reads the {settings.source!r} source; the sensor watches the orders "
            "files of CLV_RAW_DIR (CLV_SOURCE=files)."
        )
    loaded = _loaded_signatures(settings.warehouse)
    if loaded is None:
        return dg.SkipReason("A run is writing the warehouse; the files are compared with what it loaded next time.")
    current = signatures(paths)
    changed = [p for p, (name, size, mtime) in zip(paths, current) if loaded.get(name) != (size, mtime)]
    if not changed:
        return dg.SkipReason(f"No new or changed orders file in {settings.raw_dir} ({len(paths)} loaded as they are).")
    ranges, unreadable = [], []
    for path in changed:
        try:
            dates = order_dates(path)
        except Exception as exc:  # noqa: BLE001 - the run reports a bad file properly; here it only has no dates
            unreadable.append(f"{path.name} ({type(exc).__name__})")
            continue
        if dates:
            ranges.append(dates)
    first_partition, last_partition = _partition_bounds()
    names = redact(", ".join(p.name for p in changed))  # a file may be named after the person who exported it
    if not ranges:
        if unreadable:  # a file that is not a table: a run over the newest day says so in its failure
            ranges = [(last_partition, last_partition)] if last_partition else []
        if not ranges:
            return dg.SkipReason(f"New or changed: {names}; no order dates in them.")
    start = max(first_partition, min(r[0] for r in ranges))
    end = min(last_partition, max(r[1] for r in ranges)) if last_partition else None
    if end is None or start > end:
        return dg.SkipReason(
            f"New or changed: {names}; their orders are of today (or before {first_partition}): the "
            "02:00 run loads today's once the day is complete."
        )
    key = load_key(start, end, files_digest(current))
    existing = run_with_key(context.instance, key)
    if existing is not None:
        return dg.SkipReason(f"{names}: dates {start}..{end} already loaded or queued by run {existing.run_id}.")
    tags = {LOAD_KEY_TAG: key, "clv/trigger": RAW_FILES_SENSOR, "clv/files": names[:200]}
    context.log.info(
        f"New or changed: {names}; launching one run for {start}..{end}"
        + (f" (unreadable, left to the run to report: {redact(', '.join(unreadable))})" if unreadable else "")
    )
    if start == end:
        return dg.RunRequest(
            run_key=key, partition_key=start.isoformat(), tags={**tags, PARTITION_TAG: start.isoformat()}
        )
    return dg.RunRequest(run_key=key, tags={**tags, RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()})


@dg.sensor(
    name="dead_run_sweeper",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks failed every run in progress whose process is gone (kill -9, a crash), so queued runs start.",
)
def dead_run_sweeper(context: dg.SensorEvaluationContext):
    marked = run_health.sweep(context.instance, log=context.log.warning)
    if marked:
        return dg.SkipReason(f"Marked failed (their process is gone): {', '.join(marked)}")
    return dg.SkipReason("Every run in progress has a live process.")
