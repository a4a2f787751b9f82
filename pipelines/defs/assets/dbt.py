"""The dbt project as Dagster assets: sources map onto the ingest assets, tests become asset checks."""

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets

from pipelines import warehouse as wh
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
        con.execute(BUILDS_DDL)
        loads_through = con.execute("select max(loaded_at) from raw.load_log").fetchall()[0][0]
        if window.load_start is not None:
            # Late changes the load found before its window (a refund a month late) widen what the models rebuild.
            rebuild_from = wh.rebuild_start(con, window.load_start, context.run_id)
        else:
            rebuild_from = _unbuilt_loads_start(con)
        wh.set_run_context(con, window.as_of, rebuild_from, settings.default_margin_rate)
    # dbt runs in a subprocess: hand it the same warehouse and engine limits.
    os.environ["CLV_WAREHOUSE"] = str(settings.warehouse)
    os.environ["CLV_DUCKDB_THREADS"] = str(settings.duckdb_threads)
    os.environ["CLV_DUCKDB_MEMORY_LIMIT"] = settings.duckdb_memory_limit
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    # A run that reloads all history rebuilds the incremental models from scratch (--full-refresh): the same
    # rows, and it is how a changed model or dbt var (new ltv_windows columns, say) reaches them.
    full_history = rebuild_from is None or rebuild_from <= settings.start_date
    context.log.info(
        f"dbt build as of {window.as_of or 'the newest loaded day'}; the incremental models rebuild "
        + ("everything (full refresh)." if full_history else f"order dates from {rebuild_from}.")
    )
    # One target directory per warehouse: dbt's partial-parse state survives from run to run (the profile
    # names the warehouse, and a changed profile forces a full parse).
    target = DBT_PROJECT_DIR / "target" / f"runs-{hashlib.sha1(str(settings.warehouse).encode()).hexdigest()[:12]}"
    args = ["build", "--full-refresh"] if full_history else ["build"]
    _build_missing_unselected(context, dbt, warehouse, target)
    # dbt holds the warehouse file while it runs: the events wait for the end of the build, then every model's
    # materialization gets its row count and a preview from one read of the warehouse.
    events = []
    try:
        for event in dbt.cli(args, context=context, target_path=target).stream():
            events.append(event)
    except Exception:
        yield from _with_table_metadata(context, warehouse, events)
        raise
    with warehouse.connect() as con:
        con.execute(
            "insert into raw.dbt_builds values (?, ?, ?, current_timestamp)",
            [context.run_id, rebuild_from, loads_through],
        )
    yield from _with_table_metadata(context, warehouse, events)


# The loads each successful build has taken in (load_log.loaded_at up to loads_through): a run that loads nothing
# itself (the refresh after a UI backfill of raw/orders, pipelines/defs/jobs.py) rebuilds from the earliest date loaded
# since, so its incremental models redo that range only.
BUILDS_DDL = (
    "create table if not exists raw.dbt_builds (run_id varchar, rebuilt_from date, "
    "loads_through timestamp, built_at timestamp)"
)
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
        existing = set(con.execute("select table_schema, table_name from information_schema.tables").fetchall())
    missing = sorted(key.path[-1] for key in unselected if tuple(key.path) not in existing)
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


def _unbuilt_loads_start(con: duckdb.DuckDBPyConnection) -> date | None:
    """The first order date loaded (or changed) since the last successful build. None (rebuild everything, as a
    hand-started run of the models always did) when there was no build yet or nothing was loaded since."""
    built = con.execute("select max(loads_through) from raw.dbt_builds").fetchall()[0][0]
    if built is None:
        return None
    return con.execute(
        "select min(least(window_start, coalesce(changed_from, window_start))) from raw.load_log where loaded_at > ?",
        [built],
    ).fetchall()[0][0]


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
                    figures[output.output_name] = _relation_figures(con, key)
        except duckdb.Error as exc:  # never fail a build for its metadata
            context.log.warning(f"Row counts of the dbt models not read: {exc}")
    for event in events:
        if isinstance(event, dg.Output) and figures.get(event.output_name):
            event = event.with_metadata({**event.metadata, **figures[event.output_name]})
        yield event


def _relation_figures(con: duckdb.DuckDBPyConnection, key: dg.AssetKey) -> dict:
    relation = ".".join('"' + part.replace('"', '""') + '"' for part in key.path)
    try:
        rows = con.execute(f"select count(*) from {relation}").fetchall()[0][0]
        preview = wh.read_frame(con, f"select * from {relation} limit {PREVIEW_ROWS}")
    except duckdb.Error:
        return {}
    return {
        "dagster/row_count": rows,
        "preview": dg.MetadataValue.md(frame_to_markdown(preview, max_rows=PREVIEW_ROWS)),
    }
