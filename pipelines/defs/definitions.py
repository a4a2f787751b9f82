"""Assembles the code location; the logic lives in the modules it imports."""

import dagster as dg

from pipelines.defs.assets import clv, ingest, payback, report, reporting
from pipelines.defs.assets import dbt as dbt_assets_module
from pipelines.defs.jobs import automation_sensor, clv_pipeline_job, with_refresh_after_raw_load
from pipelines.defs.resources import WarehouseResource, dbt_resource
from pipelines.defs.schedules import daily_schedule
from pipelines.defs.sensors import alert_on_failure, dead_run_sweeper, raw_files_sensor

defs = dg.Definitions(
    assets=with_refresh_after_raw_load(
        dg.load_assets_from_modules([ingest, dbt_assets_module, clv, payback, reporting, report])
    ),
    asset_checks=dg.load_asset_checks_from_modules([ingest]),
    jobs=[clv_pipeline_job],
    schedules=[daily_schedule],
    sensors=[automation_sensor, raw_files_sensor, dead_run_sweeper, alert_on_failure],
    resources={"warehouse": WarehouseResource(), "dbt": dbt_resource()},
    # Runs of selected assets (the UI's Materialize, asset backfills, the automation refresh) run in-process like
    # clv_pipeline: one DuckDB writer, one dbt start, the warehouse lock held for the whole run.
    executor=dg.in_process_executor,
)
