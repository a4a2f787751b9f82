"""The refresh after a raw load (pipelines/defs/jobs.py), on a small graph of the pipeline's shape: a daily
partitioned raw table, a model below it, a CLV mart below that and a report at the end, with the pipeline's own
condition. Runs are recorded as Dagster records them: whole-pipeline runs carry the job's tag, runs launched from an
asset page or by the sensor carry their asset selection. The sensor ticks every 30 s, so one tick can see a whole run
finish and a raw load after it; the refresh must still reach every asset below the raw table."""

from __future__ import annotations

import dagster as dg

from pipelines.defs.jobs import RAW_GROUP, WHOLE_PIPELINE_TAGS, with_refresh_after_raw_load
from pipelines.run_window import RANGE_END_TAG, RANGE_START_TAG

DAYS = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_date="2025-01-11")
RAW = dg.AssetKey(["raw", "orders"])
STG = dg.AssetKey(["staging", "stg_orders"])
CLV = dg.AssetKey(["marts", "customer_clv"])
REPORT = dg.AssetKey(["reporting", "report"])
DOWNSTREAM = {STG, CLV, REPORT}


@dg.asset(key=RAW, group_name=RAW_GROUP, partitions_def=DAYS)
def raw_orders() -> None: ...


@dg.asset(key=STG, deps=[RAW], group_name="staging")
def stg_orders() -> None: ...


@dg.asset(key=CLV, deps=[STG], group_name="clv")
def customer_clv() -> None: ...


@dg.asset(key=REPORT, deps=[CLV], group_name="reporting")
def report() -> None: ...


class Shop:
    """An instance, the pipeline's graph and its automation ticks."""

    def __init__(self, instance: dg.DagsterInstance, assets: list | None = None):
        self.instance = instance
        self.defs = dg.Definitions(
            assets=with_refresh_after_raw_load(assets or [raw_orders, stg_orders, customer_clv, report])
        )
        self.cursor = None
        # An instance in use: Dagster compares each tick's updates with the previous tick's last event id, and a
        # brand-new instance has none until its first event (pipelines/defs/jobs.py).
        instance.report_runless_asset_event(dg.AssetObservation(asset_key="instance_in_use"))

    def tick(self) -> set[dg.AssetKey]:
        result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        return {r.key for r in result.results if r.true_subset.size}

    def run(self, keys, days: tuple[str, str] | None = None, tags: dict | None = None) -> bool:
        """One run of `keys`; `days`: the first and last partition of raw/orders it loads (one run for a range,
        as `clv run` and the single-run backfill policy do)."""
        job = self.defs.resolve_implicit_global_asset_job_def()
        if days:
            tags = {**(tags or {}), RANGE_START_TAG: days[0], RANGE_END_TAG: days[1]}
        return job.execute_in_process(
            instance=self.instance, asset_selection=sorted(keys), tags=tags, raise_on_error=False
        ).success

    def whole_pipeline(self, first: str, last: str, keys=(RAW, *DOWNSTREAM)) -> bool:
        return self.run(keys, (first, last), WHOLE_PIPELINE_TAGS)

    def raw_load(self, first: str, last: str) -> bool:  # Assets → raw/orders → Materialize → a range
        return self.run([RAW], (first, last))


def test_a_raw_load_alone_requests_everything_below_it_once():
    with dg.DagsterInstance.ephemeral() as instance:
        shop = Shop(instance)
        assert shop.whole_pipeline("2025-01-01", "2025-01-05")
        assert shop.tick() == set()
        assert shop.raw_load("2025-01-02", "2025-01-03")
        assert shop.tick() == DOWNSTREAM
        assert shop.tick() == set()  # requested: not again while its run is queued or running
        assert shop.run(DOWNSTREAM, tags={"clv/trigger": "automation"})
        assert shop.tick() == set()  # the refresh's own updates trigger nothing: no loop


def test_a_tick_that_sees_a_whole_run_and_then_a_raw_load_refreshes_everything_below():
    """Seen in CI: the tick before the reload fell inside `clv run`, after the dbt models but before the CLV models
    and the report; the next tick saw those finish AND the raw load. The refresh rebuilt the dbt models and left
    customer_clv, the snapshot and the report stale."""
    with dg.DagsterInstance.ephemeral() as instance:
        shop = Shop(instance)
        assert shop.tick() == set()
        assert shop.whole_pipeline("2025-01-01", "2025-01-05")  # finished after the previous tick ...
        assert shop.raw_load("2025-01-02", "2025-01-03")  # ... and so did the reload of an older day
        assert shop.tick() == DOWNSTREAM


def test_a_backfill_that_rebuilds_what_is_below_in_a_second_run_needs_no_refresh_after_it():
    """Materialize all over a range from the asset graph: an asset backfill, whose first run loads raw/orders and
    whose second run (queued meanwhile) rebuilds everything below. The sensor waits for it, and then has nothing to
    do."""
    with dg.DagsterInstance.ephemeral() as instance:
        shop = Shop(instance)
        assert shop.whole_pipeline("2025-01-01", "2025-01-05")
        assert shop.tick() == set()
        assert shop.raw_load("2025-01-02", "2025-01-03")
        queued = instance.create_run_for_job(  # the backfill's second run, started: what it targets is in progress
            shop.defs.resolve_implicit_global_asset_job_def(),
            asset_selection=frozenset(DOWNSTREAM),
            status=dg.DagsterRunStatus.STARTED,
        )
        assert shop.tick() == set()  # waits for it
        instance.report_run_canceled(queued)  # stands aside for the run below, which does its work
        assert shop.run(DOWNSTREAM)
        assert shop.tick() == set()


def test_a_whole_run_requests_nothing_even_when_a_tick_falls_inside_it():
    """The daily run takes minutes: the sensor ticks while it has loaded raw/orders and built the models, not yet
    the CLV mart and the report; nothing is requested then or after."""
    with dg.DagsterInstance.ephemeral() as instance:
        shop = Shop(instance)
        assert shop.tick() == set()
        assert shop.whole_pipeline("2025-01-01", "2025-01-05", keys=[RAW, STG])
        assert shop.tick() == set()
        assert shop.run([CLV, REPORT], tags=WHOLE_PIPELINE_TAGS)
        assert shop.tick() == set()
        assert shop.whole_pipeline("2025-01-06", "2025-01-06")
        assert shop.tick() == set()


def test_a_model_rebuilt_by_hand_refreshes_only_what_is_below_it():
    with dg.DagsterInstance.ephemeral() as instance:
        shop = Shop(instance)
        assert shop.whole_pipeline("2025-01-01", "2025-01-05")
        assert shop.tick() == set()
        assert shop.run([STG])  # Materialize on its asset page
        assert shop.tick() == {CLV, REPORT}


def test_a_whole_run_that_failed_after_its_load_is_not_rerun_by_the_sensor():
    """A whole run that loaded raw/orders and then failed (a dbt test, the CLV fit): the run shows failed (a
    scheduled one is alerted, pipelines/alerts.py) and the next run retries; the sensor launches no attempt of its
    own."""

    @dg.asset(key=STG, deps=[RAW], group_name="staging")
    def refused() -> None:
        raise RuntimeError("a dbt test failed")

    with dg.DagsterInstance.ephemeral() as instance:
        shop = Shop(instance, [raw_orders, refused, customer_clv, report])
        assert shop.tick() == set()
        assert not shop.whole_pipeline("2025-01-01", "2025-01-05")
        assert shop.tick() == set()
