from datetime import UTC, timedelta

import dagster as dg

from pipelines.defs.jobs import clv_pipeline_job
from pipelines.raw_files import LOAD_KEY_TAG, current_digest, load_key, run_with_key
from pipelines.run_window import PARTITION_TAG

DAILY_SCHEDULE = "daily_clv_refresh"


# 02:00 UTC: yesterday's partition (the last complete day) and everything downstream. Skipped when the raw-files
# sensor already loaded exactly that day from the same files (the shared load key: pipelines/raw_files.py).
@dg.schedule(
    name=DAILY_SCHEDULE,
    job=clv_pipeline_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Yesterday's orders (plus the look-back) and every asset downstream, at 02:00 UTC.",
)
def daily_schedule(context: dg.ScheduleEvaluationContext):
    day = (context.scheduled_execution_time.astimezone(UTC) - timedelta(days=1)).date()
    key = load_key(day, day, current_digest())
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:  # evaluated without an instance (tests): nothing to deduplicate
        instance = None
    existing = run_with_key(instance, key) if instance is not None else None
    if existing is not None:
        return dg.SkipReason(f"{day} was already loaded from the same files by run {existing.run_id}.")
    # the partition tag set here too: the request is complete without the repository (tests build the context bare)
    return dg.RunRequest(
        run_key=key, partition_key=day.isoformat(), tags={LOAD_KEY_TAG: key, PARTITION_TAG: day.isoformat()}
    )
