"""Serve the marts: read-only snapshot + Parquet exports, dbt docs."""

from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from pipelines import contract
from pipelines.dbt_runs import dbt_environment, write_static_docs
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


@dg.asset(
    key=dg.AssetKey(["reporting", "dbt_docs"]),
    deps=ALL_MARTS,
    group_name="reporting",
    kinds={"dbt"},
    description="dbt docs (models, columns, tests, lineage, exposures) as one static page: data/docs/index.html.",
)
def dbt_docs(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    settings = warehouse.settings()
    target = settings.data_dir / "docs"

    def generate(scratch: Path) -> None:
        # test_polars_marts: the tests of the polars marts (off in the pipeline's dbt build, which runs before the
        # polars assets) are shown in the docs too.
        args = ["docs", "generate", "--static", "--quiet", "--vars", "{test_polars_marts: true}"]
        with dbt_environment(settings):
            dbt.cli(args, target_path=scratch, raise_on_error=True).wait()

    regenerated = write_static_docs(generate, target)
    if not regenerated:
        context.log.info("dbt project unchanged since the docs were generated: data/docs kept as is.")
    return dg.MaterializeResult(
        metadata={"docs": dg.MetadataValue.path(str(target / "index.html")), "regenerated": regenerated}
    )
