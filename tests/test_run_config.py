"""One configuration path: CLV_* variables, overridden for one run by the warehouse resource's config (the
launchpad), resolved once per run into the settings and the run window every step uses."""

from __future__ import annotations

import re
from datetime import date

import pytest

from pipelines.defs.definitions import defs
from pipelines.defs.resources import WarehouseResource
from pipelines.run_window import AS_OF_TAG, PARTITION_TAG, resolve


def test_the_launchpad_shows_the_run_settings():
    job = defs.resolve_job_def("clv_pipeline")
    resources = job.run_config_schema.config_type.fields["resources"].config_type.fields
    fields = resources["warehouse"].config_type.fields["config"].config_type.fields
    assert {"as_of", "lookback_days", "refit_days", "purchase_model", "default_margin_rate"} <= set(fields)


def test_resource_config_overrides_the_environment(monkeypatch):
    monkeypatch.setenv("CLV_AS_OF", "2025-03-01")
    monkeypatch.setenv("CLV_DEFAULT_MARGIN_RATE", "0.3")
    assert WarehouseResource().settings().as_of == date(2025, 3, 1)
    settings = WarehouseResource(as_of="2025-01-31", default_margin_rate=0.25, refit_days=0).settings()
    assert (settings.as_of, settings.default_margin_rate, settings.clv_refit_days) == (date(2025, 1, 31), 0.25, 1)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"as_of": "2025-13-45"}, "not an ISO date"),
        ({"purchase_model": "bgnbd"}, "expected bg_nbd"),
        # 40 meant as 40 %: the variables refuse it, and so does the launchpad (CLVs forty times off otherwise)
        ({"default_margin_rate": 40.0}, r"default_margin_rate=40.0 .*share between 0 and 1"),
        ({"annual_discount_rate": -0.1}, r"annual_discount_rate=-0.1 .*share between 0 and 1"),
        ({"lookback_days": -3}, r"lookback_days=-3 .*0 or more"),
    ],
)
def test_bad_resource_config_is_one_clear_error(config, message):
    with pytest.raises(ValueError, match=message):
        WarehouseResource(**config).settings()


def test_the_run_window_takes_the_as_of_from_the_tag_then_the_settings(monkeypatch):
    monkeypatch.delenv("CLV_AS_OF", raising=False)
    settings = WarehouseResource(as_of="2025-02-01").settings()
    day = {PARTITION_TAG: "2025-01-10"}
    assert resolve(day, settings, latest_loaded=date(2025, 1, 20)).as_of == date(2025, 2, 1)
    assert resolve({**day, AS_OF_TAG: "2025-01-15"}, settings, date(2025, 1, 20)).as_of == date(2025, 1, 15)
    plain = WarehouseResource().settings()
    window = resolve(day, plain, latest_loaded=date(2025, 1, 20))
    assert (window.partition_start, window.as_of, window.start) == (
        date(2025, 1, 10),
        date(2025, 1, 20),
        date(2025, 1, 3),
    )


def test_every_step_of_a_run_sees_the_settings_resolved_at_its_start(monkeypatch, tmp_path):
    import dagster as dg

    monkeypatch.setenv("CLV_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CLV_LOOKBACK_DAYS", "3")
    seen = []

    @dg.asset
    def first(warehouse: WarehouseResource):
        seen.append(warehouse.settings().lookback_days)
        monkeypatch.setenv("CLV_LOOKBACK_DAYS", "9")  # changed while the run goes on

    @dg.asset(deps=[first])
    def second(warehouse: WarehouseResource):
        seen.append(warehouse.settings().lookback_days)

    dg.materialize([first, second], resources={"warehouse": WarehouseResource(hold_run_lock=False)})
    assert seen == [3, 3]
    dg.materialize([second], resources={"warehouse": WarehouseResource(hold_run_lock=False)})
    assert seen[-1] == 9  # the next run reads the environment again


@pytest.mark.parametrize(
    "tags, config, words",
    [
        ({PARTITION_TAG: "2025-01-10"}, {"as_of": "2099-01-01"}, "as-of 2099-01-01 (CLV_AS_OF or the warehouse"),
        ({PARTITION_TAG: "2025-01-10", AS_OF_TAG: "2099-01-01"}, {}, "as-of 2099-01-01 (the run's clv/as_of tag)"),
        ({}, {"as_of": "2023-06-30"}, "is before the first partition 2024-01-01"),
        ({PARTITION_TAG: "2025-01-10", AS_OF_TAG: "2025-01-09"}, {}, "is before the run's first partition 2025-01-10"),
    ],
)
def test_the_run_window_refuses_an_as_of_the_run_cannot_use(monkeypatch, tags, config, words):
    """The launchpad's as_of, CLV_AS_OF for the schedule or the UI, or a hand-set tag: the one place the run's as-of
    is resolved refuses it (the run fails at its first step, before anything is loaded or published)."""
    monkeypatch.delenv("CLV_AS_OF", raising=False)
    monkeypatch.delenv("CLV_START_DATE", raising=False)
    monkeypatch.setenv("CLV_SOURCE", "synthetic")
    with pytest.raises(ValueError, match=re.escape(words)):
        resolve(tags, WarehouseResource(**config).settings(), latest_loaded=date(2025, 1, 20))
    if "future" in words or "2099" in words:
        with pytest.raises(ValueError, match="is in the future"):
            resolve(tags, WarehouseResource(**config).settings(), latest_loaded=date(2025, 1, 20))
