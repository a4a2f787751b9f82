"""The dbt project as Dagster assets: sources map onto the ingest assets, tests become asset checks."""

import hashlib
import os
from typing import Any, Mapping

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets

from pipelines import warehouse as wh
from pipelines.resources import WarehouseResource
from pipelines.settings import DBT_PROJECT_DIR

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()


class ClvDbtTranslator(DagsterDbtTranslator):
    """Keys follow the warehouse: raw/<table> for sources (the ingest assets), <schema>/<model> for models."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return {"staging": "staging", "intermediate": "staging", "marts": "marts"}.get(dbt_resource_props.get("schema"), "marts")


translator = ClvDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


@dbt_assets(manifest=dbt_project.manifest_path, dagster_dbt_translator=translator, project=dbt_project)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    settings = warehouse.settings()
    window, _ = warehouse.run_window(context)
    with warehouse.connect() as con:
        # Late changes the load found before its window (a refund a month late) widen what the models rebuild.
        rebuild_from = wh.rebuild_start(con, window.load_start, context.run_id)
        wh.set_run_context(con, window.as_of, rebuild_from, settings.default_margin_rate)
    # dbt runs in a subprocess: hand it the same warehouse and engine limits.
    os.environ["CLV_WAREHOUSE"] = str(settings.warehouse)
    os.environ["CLV_DUCKDB_THREADS"] = str(settings.duckdb_threads)
    os.environ["CLV_DUCKDB_MEMORY_LIMIT"] = settings.duckdb_memory_limit
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    # A run that reloads all history rebuilds the incremental models from scratch (--full-refresh): the same
    # rows, and it is how a changed model or dbt var (new ltv_windows columns, say) reaches them.
    full_history = rebuild_from is None or rebuild_from <= settings.start_date
    context.log.info(f"dbt build as of {window.as_of or 'the newest loaded day'}; the incremental models rebuild "
                     + ("everything (full refresh)." if full_history else f"order dates from {rebuild_from}."))
    # One target directory per warehouse: dbt's partial-parse state survives from run to run (the profile
    # names the warehouse, and a changed profile forces a full parse).
    target = DBT_PROJECT_DIR / "target" / f"runs-{hashlib.sha1(str(settings.warehouse).encode()).hexdigest()[:12]}"
    args = ["build", "--full-refresh"] if full_history else ["build"]
    yield from dbt.cli(args, context=context, target_path=target).stream()
