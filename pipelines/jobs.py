import dagster as dg

# Every asset in one job (partitioned by raw/orders' daily partitions), run in-process: DuckDB has one writer, dbt is started once per run, and the
# warehouse lock (WarehouseResource) is held for the whole run.
clv_pipeline_job = dg.define_asset_job(
    name="clv_pipeline",
    selection=dg.AssetSelection.all(),
    executor_def=dg.in_process_executor,
    description="Ingest the day's orders (plus look-back), rebuild the dbt marts, fit CLV, payback, publish, report.",
)
