import dagster as dg

# Every asset in one job (partitioned by raw/orders' daily partitions), run in-process: DuckDB has one writer, dbt
# is started once per run, and the warehouse lock (WarehouseResource) is held for the whole run.
# Every run of the job carries this tag, however it was launched (schedule, `clv run`, the job's page, a job
# backfill): what such a run updated never triggers the refresh below, it refreshed everything itself.
WHOLE_PIPELINE_TAGS = {"clv/scope": "whole-pipeline"}
clv_pipeline_job = dg.define_asset_job(
    name="clv_pipeline",
    selection=dg.AssetSelection.all(),
    executor_def=dg.in_process_executor,
    tags=WHOLE_PIPELINE_TAGS,
    description="Ingest the day's orders (plus look-back), rebuild the dbt marts, fit CLV, payback, publish, report.",
)

# ---------------------------------------------------------------- a raw load refreshes everything downstream
# Engineers reload raw tables from their asset page (Assets → raw/orders → Materialize → a range → Launch
# backfill). Dagster runs exactly what was selected: raw/orders alone, in one run (single-run backfill policy),
# leaving the marts, the models, the snapshot, the exports and the report stale. Declarative automation closes the
# gap: every asset below the raw tables carries this condition, and the automation sensor (on by default) requests,
# once the load has finished, ONE run of everything downstream (the unpartitioned assets share a run): two runs in
# all, the fewest the single-run policy allows for a UI backfill of one asset. A run that already refreshed an
# asset (the daily schedule, `clv run`, a job backfill: the whole job in one run) does not trigger it. Not
# `eager()`: that waits while any partition of raw/orders is missing, which a fresh instance (or the night before
# 02:00) always has.
# The refresh run loads nothing: it reads the window to rebuild from the warehouse (pipelines/defs/assets/dbt.py) and
# is as of the newest loaded day, so reloading an old range never rolls the marts back in time.
# The trigger: a dep updated by a run that neither targeted this asset nor was a whole-pipeline run, or a dep
# requested in this very tick. Handled (reset) by the asset's own request or update, as Dagster's
# `since_last_handled()`, except on a tick where the trigger holds too: there the trigger wins. Dagster's own rule
# lets the update win when the trigger carries no timestamp (one through `&`, or a requested dep), so a tick that saw
# a whole run finish and then a raw load rebuilt the dbt models and left CLV, the snapshot and the report stale
# (tests/ops/test_refresh_condition.py; seen in CI). Whole runs are recognised by their tag on every update since
# the last tick, not by `executed_with_root_target()` (nor `executed_with_tags()`): those look at the run of the
# asset's latest materialization only, so of a range of raw/orders partitions all but the last looked updated
# elsewhere. (Dagster counts updates from the previous tick's last event; on a brand-new instance, which has none
# yet, the first whole run may be followed by one needless refresh.)
_DEP_UPDATED_ELSEWHERE = dg.AutomationCondition.any_deps_match(
    dg.AutomationCondition.newly_updated()
    & ~dg.AutomationCondition.executed_with_root_target()
    & ~dg.AutomationCondition.all_new_updates_have_run_tags(tag_values=WHOLE_PIPELINE_TAGS)
).with_label("a dep updated by a run that did not include this asset")
_DEP_REQUESTED_NOW = dg.AutomationCondition.any_deps_match(dg.AutomationCondition.will_be_requested()).with_label(
    "a dep requested in this tick"
)
_TRIGGER = (_DEP_UPDATED_ELSEWHERE | _DEP_REQUESTED_NOW).with_label("a dep changed without this asset")
_HANDLED = (
    dg.AutomationCondition.newly_requested()
    | dg.AutomationCondition.newly_updated()
    | dg.AutomationCondition.initial_evaluation()
).with_label("handled")
REFRESH_AFTER_RAW_LOAD = (
    _TRIGGER.since(_HANDLED & ~_TRIGGER)
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("refresh after a raw load that did not include it")
RAW_GROUP = "ingest"


def with_refresh_after_raw_load(assets: list) -> list:
    """The assets, those outside the raw (ingest) group carrying REFRESH_AFTER_RAW_LOAD."""

    def condition(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.group_name == RAW_GROUP:
            return spec
        return spec.replace_attributes(automation_condition=REFRESH_AFTER_RAW_LOAD)

    return [a.map_asset_specs(condition) if isinstance(a, dg.AssetsDefinition) else a for a in assets]


AUTOMATION_SENSOR = "refresh_after_raw_load"
automation_sensor = dg.AutomationConditionSensorDefinition(
    AUTOMATION_SENSOR,
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    run_tags={"clv/trigger": "automation"},
    description="After raw tables were reloaded without what depends on them (a backfill of raw/orders from its "
    "asset page), one run refreshes every downstream asset: marts, CLV, payback, snapshot, report.",
)
