"""Sensors: new order files launch a run (pipelines/raw_files.py decides which), dead runs are marked failed, and a
failed unattended run is reported (pipelines/alerts.py)."""

from __future__ import annotations

from datetime import date

import dagster as dg

from pipelines import run_health
from pipelines.alerts import alert
from pipelines.defs.jobs import clv_pipeline_job
from pipelines.defs.partitions import daily_partitions
from pipelines.privacy import redact
from pipelines.raw_files import (
    LOAD_KEY_TAG,
    files_digest,
    load_key,
    loaded_signatures,
    order_dates,
    order_files,
    run_with_key,
    signatures,
)
from pipelines.run_window import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG
from pipelines.settings import Settings

RAW_FILES_SENSOR = "raw_files_sensor"


def _partition_bounds() -> tuple[date, date | None]:
    last = daily_partitions.get_last_partition_key()
    return (date.fromisoformat(daily_partitions.get_first_partition_key()), date.fromisoformat(last) if last else None)


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
    loaded = loaded_signatures(settings.warehouse)
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


@dg.run_failure_sensor(
    name="alert_on_failure",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="When a scheduled or sensor run fails: a short message in the run's log and, if "
    "CLV_ALERT_WEBHOOK_URL is set, POSTed there as Slack-compatible JSON.",
)
def alert_on_failure(context: dg.RunFailureSensorContext):
    alert(
        context.instance,
        context.dagster_run,
        context.failure_event,
        list(context.get_step_failure_events()),
        log=context.log.warning,
    )
