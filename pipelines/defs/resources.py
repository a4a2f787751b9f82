"""Dagster resources: the DuckDB warehouse (with the one-writer run lock) and the dbt CLI."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path

import duckdb
from dagster import ConfigurableResource, InitResourceContext
from dagster_dbt import DbtCliResource
from packaging import version
from pydantic import Field, PrivateAttr

from pipelines import run_health
from pipelines import warehouse as wh
from pipelines.run_window import Window, resolve
from pipelines.settings import DBT_PROJECT_DIR, Settings


class WarehouseResource(ConfigurableResource):
    """Settings come from `CLV_*` variables at run time, so the CLI flags, the UI and the schedule agree. The
    optional fields below show in the launchpad (Resources → warehouse): set for one run, they override the
    variable named in their description."""

    hold_run_lock: bool = True
    as_of: str | None = Field(
        default=None, description="Point in time YYYY-MM-DD (CLV_AS_OF; default: the newest loaded day)"
    )
    lookback_days: int | None = Field(
        default=None, description="Days reloaded before the partitions (CLV_LOOKBACK_DAYS, default 7)"
    )
    refit_days: int | None = Field(
        default=None, description="Refit the CLV models every N days (CLV_REFIT_DAYS, default 7)"
    )
    purchase_model: str | None = Field(
        default=None, description="bg_nbd, pareto_nbd or mbg_nbd (CLV_PURCHASE_MODEL; default: the back-test's choice)"
    )
    default_margin_rate: float | None = Field(
        default=None, description="Gross margin where an order has no cost (CLV_DEFAULT_MARGIN_RATE, default 0.40)"
    )
    annual_discount_rate: float | None = Field(
        default=None, description="CLV discount rate per year (CLV_ANNUAL_DISCOUNT_RATE, default 0.10)"
    )
    accept_bad_input: bool | None = Field(
        default=None, description="Load despite failed blocking data checks (CLV_ACCEPT_BAD_INPUT)"
    )
    # Resolved once per run (the in-process executor initialises resources once per run): every step agrees.
    _settings: Settings | None = PrivateAttr(default=None)
    _window: tuple[Window, date | None] | None = PrivateAttr(default=None)

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.from_env().with_overrides(
                as_of=self.as_of,
                lookback_days=self.lookback_days,
                clv_refit_days=self.refit_days,
                purchase_model=self.purchase_model,
                default_margin_rate=self.default_margin_rate,
                annual_discount_rate=self.annual_discount_rate,
                accept_bad_input=self.accept_bad_input,
            )
        return self._settings

    @contextmanager
    def yield_for_execution(self, context: InitResourceContext) -> Iterator[WarehouseResource]:
        _record_run_owner(context)
        if not self.hold_run_lock:
            yield self
            return
        log = context.log.info if context.log else print
        with wh.exclusive_warehouse(self.settings().warehouse, log=log):
            yield self

    def run_window(self, context) -> tuple[Window, date | None]:
        """This run's window and point in time (from its tags and what earlier runs loaded), and the newest
        loaded day. Every asset of a run resolves it the same way, so they agree on one as-of date."""
        if self._window is None:
            with self.connect() as con:
                wh.ensure_raw_schema(con)
                latest = wh.latest_loaded_day(con)
            self._window = resolve(dict(context.run.tags), self.settings(), latest), latest
        return self._window

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        settings = self.settings()
        with wh.connect(
            settings.warehouse,
            read_only=read_only,
            threads=settings.duckdb_threads,
            memory_limit=settings.duckdb_memory_limit,
        ) as con:
            yield con


def _record_run_owner(context: InitResourceContext) -> None:
    """A run worker records its process in the run's tags (`clv` does at creation): a run whose process dies is
    then marked failed (pipelines/run_health.py) instead of blocking the run queue forever."""
    run = getattr(context, "dagster_run", None)
    if run is None or context.instance is None or run_health.OWNER_PID_TAG in run.tags:
        return
    context.instance.add_run_tags(run.run_id, run_health.owner_tags())


class WarehouseDbtCliResource(DbtCliResource):
    """dagster-dbt's resource without two start-up costs this project does not use (3 s of every run, measured
    with py-spy): `dbt --version` in a subprocess (1.9 s), when the dbt is the one installed beside this
    interpreter and its version is known without starting it; and an in-process dbt adapter (1.3 s), which
    dagster-dbt opens only for `fetch_row_counts()` / `fetch_column_metadata()` — this project never calls them
    (pipelines/defs/assets/dbt.py counts rows itself, after the build: dbt holds the warehouse's lock while it runs).
    tests/test_definitions.py fails if dagster-dbt renames either hook."""

    @cached_property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable) == Path(sys.executable).parent / "dbt":
            return version.parse(installed_version("dbt-core"))
        return super()._cli_version

    def _initialize_dbt_core_adapter(self, args):  # noqa: ANN001 - dagster-dbt's private hook
        return None


def dbt_resource() -> DbtCliResource:
    # The dbt next to this interpreter (the project's venv), whether or not the venv is on PATH.
    executable = Path(sys.executable).parent / "dbt"
    return WarehouseDbtCliResource(
        project_dir=str(DBT_PROJECT_DIR),
        profiles_dir=str(DBT_PROJECT_DIR),
        dbt_executable=str(executable) if executable.exists() else "dbt",
    )
