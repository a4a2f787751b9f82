"""The dbt project as Dagster assets: sources map onto the ingest assets, tests become asset checks."""

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets

from pipelines.dbt_runs import (
    dbt_environment,
    missing_relations,
    plan_build,
    record_build,
    relation_figures,
    target_path,
)
from pipelines.defs.resources import WarehouseResource
from pipelines.markdown import frame_to_markdown
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
        groups = {"staging": "staging", "intermediate": "staging", "marts": "marts"}
        return groups.get(dbt_resource_props.get("schema"), "marts")


translator = ClvDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


@dbt_assets(manifest=dbt_project.manifest_path, dagster_dbt_translator=translator, project=dbt_project)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    settings = warehouse.settings()
    window, _ = warehouse.run_window(context)
    with warehouse.connect() as con:
        plan = plan_build(con, window, context.run_id, settings)
    context.log.info(plan.describe(window.as_of))
    target = target_path(settings)
    with dbt_environment(settings):
        _build_missing_unselected(context, dbt, warehouse, target)
        # dbt holds the warehouse file while it runs: the events wait for the end of the build, then every model's
        # materialization gets its row count and a preview from one read of the warehouse.
        events = []
        try:
            for event in dbt.cli(plan.args, context=context, target_path=target).stream():
                events.append(event)
        except Exception:
            yield from _with_table_metadata(context, warehouse, events)
            raise
    with warehouse.connect() as con:
        record_build(con, context.run_id, plan)
    yield from _with_table_metadata(context, warehouse, events)


PREVIEW_ROWS = 5


def _build_missing_unselected(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource, target
) -> None:
    """A run of some models only (the refresh after a raw/orders load: not the spend and cart views) on a warehouse
    that never had the others (a fresh one) would fail on the missing relations: those are created first."""
    unselected = set(context.assets_def.keys) - set(context.selected_asset_keys)
    if not unselected:
        return
    with warehouse.connect(read_only=True) as con:
        missing = missing_relations(con, [tuple(key.path) for key in unselected])
    if missing:
        context.log.info(
            "Not in this run's selection but missing from the warehouse, built first: " + ", ".join(missing)
        )
        dbt.cli(
            ["run", "--select", *missing],
            manifest=dbt_project.manifest_path,
            dagster_dbt_translator=translator,
            target_path=target,
        ).wait()


def _with_table_metadata(context: dg.AssetExecutionContext, warehouse: WarehouseResource, events: Iterable) -> Iterator:
    """The events, each model's Output with `dagster/row_count` and a preview of its first rows."""
    events = list(events)
    outputs = [e for e in events if isinstance(e, dg.Output)]
    figures: dict[str, dict] = {}
    if outputs:
        try:
            with warehouse.connect(read_only=True) as con:
                for output in outputs:
                    key = context.asset_key_for_output(output.output_name)
                    figures[output.output_name] = _relation_metadata(con, key)
        except duckdb.Error as exc:  # never fail a build for its metadata
            context.log.warning(f"Row counts of the dbt models not read: {exc}")
    for event in events:
        if isinstance(event, dg.Output) and figures.get(event.output_name):
            event = event.with_metadata({**event.metadata, **figures[event.output_name]})
        yield event


def _relation_metadata(con: duckdb.DuckDBPyConnection, key: dg.AssetKey) -> dict:
    try:
        rows, preview = relation_figures(con, list(key.path), PREVIEW_ROWS)
    except duckdb.Error:
        return {}
    return {
        "dagster/row_count": rows,
        "preview": dg.MetadataValue.md(frame_to_markdown(preview, max_rows=PREVIEW_ROWS)),
    }
