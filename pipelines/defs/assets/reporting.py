"""Serve the marts: read-only snapshot + Parquet exports (the report and the dbt docs page: report.py)."""

import dagster as dg

from pipelines import contract
from pipelines.defs.resources import WarehouseResource
from pipelines.publish import publish

ALL_MARTS = [dg.AssetKey(["marts", name]) for name in contract.MARTS]
PUBLISHED = dg.AssetKey(["reporting", "published_marts"])


@dg.asset(
    key=PUBLISHED,
    deps=ALL_MARTS,
    group_name="reporting",
    kinds={"duckdb", "parquet"},
    description="Read-only snapshot data/published/warehouse.duckdb and data/exports/<mart>.parquet, "
    "swapped in atomically after every successful run.",
)
def published_marts(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    settings = warehouse.settings()
    counts = publish(
        settings.warehouse,
        settings.published_dir,
        settings.exports_dir,
        threads=settings.duckdb_threads,
        memory_limit=settings.duckdb_memory_limit,
    )
    context.log.info(
        f"Published {len(counts)} marts to {settings.published_dir / 'warehouse.duckdb'} and {settings.exports_dir}."
    )
    return dg.MaterializeResult(
        metadata={
            "snapshot": dg.MetadataValue.path(str(settings.published_dir / "warehouse.duckdb")),
            "exports": dg.MetadataValue.path(str(settings.exports_dir)),
            "row_counts": dg.MetadataValue.json(counts),
        }
    )
