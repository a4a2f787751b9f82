"""Assembles the code location; the logic lives in the modules it imports."""

import dagster as dg

from pipelines.assets import clv, ingest, payback, report, reporting
from pipelines.assets import dbt as dbt_assets_module
from pipelines.jobs import clv_pipeline_job
from pipelines.resources import WarehouseResource, dbt_resource
from pipelines.schedules import daily_schedule

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([ingest, dbt_assets_module, clv, payback, reporting, report]),
    asset_checks=dg.load_asset_checks_from_modules([ingest]),
    jobs=[clv_pipeline_job],
    schedules=[daily_schedule],
    resources={"warehouse": WarehouseResource(), "dbt": dbt_resource()},
)
