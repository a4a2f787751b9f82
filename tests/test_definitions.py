"""The code location as Dagster sees it: assets, the one job, the daily schedule, backfill policy and checks.

Fast: nothing is materialised. Needs the dbt manifest (`cd dbt_project && ../.venv/bin/dbt parse`, or `make install`).
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent

ORDERS = dg.AssetKey(["raw", "orders"])
FCT_ORDERS = dg.AssetKey(["marts", "fct_orders"])


@pytest.fixture(scope="module")
def defs(tmp_path_factory) -> dg.Definitions:
    """Import the code location with a throw-away data dir and a small shop, like the other tests."""
    if not (PROJECT_ROOT / "dbt_project" / "target" / "manifest.json").exists():
        pytest.fail("dbt manifest missing: run `cd dbt_project && ../.venv/bin/dbt parse` (or `make install`)")
    mp = pytest.MonkeyPatch()
    mp.setenv("CLV_DATA_DIR", str(tmp_path_factory.mktemp("defs_data")))
    mp.setenv("CLV_SYNTHETIC_CUSTOMERS", "1000")
    mp.delenv("CLV_START_DATE", raising=False)  # partitions start on the default 2024-01-01
    mp.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    module = importlib.import_module("pipelines.defs.definitions")
    yield module.defs
    mp.undo()


@pytest.fixture(scope="module")
def asset_graph(defs):
    return defs.resolve_asset_graph()


def test_definitions_load(defs, asset_graph):
    keys = asset_graph.get_all_asset_keys()
    for key in (
        ["raw", "orders"],
        ["raw", "marketing_spend"],
        ["raw", "cart_events"],
        ["marts", "fct_orders"],
        ["marts", "customer_clv"],
        ["marts", "cac_payback"],
    ):
        assert dg.AssetKey(key) in keys, f"{'/'.join(key)} missing from the code location"
    # The whole location validates (resources bound, no dangling deps) the way `dagster dev` would load it.
    dg.Definitions.validate_loadable(defs)


def test_job_contains_every_asset(defs, asset_graph):
    job = defs.resolve_job_def("clv_pipeline")
    in_job = set(job.asset_layer.executable_asset_keys)
    executable = {key for key in asset_graph.get_all_asset_keys() if asset_graph.get(key).is_executable}
    assert executable, "no executable assets"
    assert executable - in_job == set(), f"assets missing from clv_pipeline: {sorted(executable - in_job)}"
    assert job.partitions_def is not None
    assert job.executor_def.name == dg.in_process_executor.name


def test_raw_orders_is_daily_partitioned_from_start_date(asset_graph):
    partitions = asset_graph.get(ORDERS).partitions_def
    assert isinstance(partitions, dg.DailyPartitionsDefinition)
    assert partitions.timezone == "UTC"
    assert partitions.get_first_partition_key() == "2024-01-01"
    # Everything downstream is unpartitioned.
    partitioned = {key for key in asset_graph.get_all_asset_keys() if asset_graph.get(key).partitions_def is not None}
    assert partitioned == {ORDERS}


def test_raw_orders_backfills_in_a_single_run(asset_graph):
    policy = asset_graph.get(ORDERS).backfill_policy
    assert policy is not None, "raw/orders has no backfill policy"
    assert policy.policy_type.value == "SINGLE_RUN"
    assert policy.max_partitions_per_run is None
    assert policy == dg.BackfillPolicy.single_run()


def test_daily_schedule_runs_at_two_utc(defs):
    schedule = defs.resolve_schedule_def("daily_clv_refresh")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.job_name == "clv_pipeline"


def test_daily_schedule_requests_yesterdays_partition(defs):
    schedule = defs.resolve_schedule_def("daily_clv_refresh")
    tick = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    with dg.build_schedule_context(scheduled_execution_time=tick) as context:
        result = schedule.evaluate_tick(context)
    requests = result.run_requests or []
    assert len(requests) == 1, f"expected one run request, got {requests!r} (skip: {result.skip_message!r})"
    assert requests[0].partition_key == "2026-11-24"


def test_dbt_tests_are_asset_checks(asset_graph):
    checks = {(key.asset_key, key.name) for key in asset_graph.asset_check_keys}
    on_fct_orders = {name for asset, name in checks if asset == FCT_ORDERS}
    assert {
        "not_null_fct_orders_order_id",
        "unique_since_window_start_fct_orders_order_id__order_date",
    } <= on_fct_orders, sorted(on_fct_orders)


def test_ingest_checks_exist(asset_graph):
    on_orders = {key.name for key in asset_graph.asset_check_keys if key.asset_key == ORDERS}
    assert {"orders_are_fresh", "reject_rate_below_threshold", "no_row_count_drop"} <= on_orders, sorted(on_orders)


def test_job_runs_the_checks(defs, asset_graph):
    job = defs.resolve_job_def("clv_pipeline")
    in_job = set(job.asset_layer.asset_graph.asset_check_keys)
    missing = set(asset_graph.asset_check_keys) - in_job
    assert not missing, f"checks not executed by clv_pipeline: {sorted(k.to_user_string() for k in missing)}"


def test_dbt_resource_skips_only_start_up_hooks_that_dagster_dbt_still_has():
    """The resource overrides two private hooks of dagster-dbt (pinned); if an upgrade renames them, the override
    silently stops saving time: fail here instead. The version it reports must be what `dbt --version` says."""
    import subprocess
    from functools import cached_property

    from dagster_dbt import DbtCliResource

    from pipelines.defs.resources import dbt_resource

    assert isinstance(DbtCliResource.__dict__["_cli_version"], cached_property)
    assert callable(DbtCliResource.__dict__["_initialize_dbt_core_adapter"])
    resource = dbt_resource()
    assert resource._initialize_dbt_core_adapter(["build"]) is None
    reported = subprocess.check_output([resource.dbt_executable, "--version"], text=True)
    assert f"installed: {resource._cli_version}" in reported
