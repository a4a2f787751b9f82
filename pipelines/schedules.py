import dagster as dg

from pipelines.jobs import clv_pipeline_job

# 02:00 UTC: yesterday's partition (the last complete day) and everything downstream.
daily_schedule = dg.build_schedule_from_partitioned_job(
    clv_pipeline_job, hour_of_day=2, minute_of_hour=0, name="daily_clv_refresh",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
