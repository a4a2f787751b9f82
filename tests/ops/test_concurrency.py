"""DuckDB has one writer: runs on one warehouse queue behind a run lock (and Dagster's run queue, max 1 run)."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pipeline_runner
import pytest
import yaml
from _ops_support import AS_OF, differences, row_counts, snapshot

from pipelines import warehouse as wh

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FORK = multiprocessing.get_context("fork")


# ---------------------------------------------------------------- exclusive_warehouse, two processes
def _hold_lock(warehouse: str, acquired, release, events) -> None:
    with wh.exclusive_warehouse(Path(warehouse), log=lambda m: events.put(("holder-log", m)), poll_seconds=0.02):
        events.put(("holder-acquired", time.monotonic()))
        acquired.set()
        release.wait(30)
        events.put(("holder-releasing", time.monotonic()))
    events.put(("holder-released", time.monotonic()))


def _wait_for_lock(warehouse: str, events) -> None:
    events.put(("waiter-started", time.monotonic()))
    with wh.exclusive_warehouse(Path(warehouse), log=lambda m: events.put(("waiter-log", m)), poll_seconds=0.02):
        events.put(("waiter-acquired", time.monotonic()))


def _drain(events, n: int, timeout: float = 30) -> list[tuple]:
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        try:
            got.append(events.get(timeout=0.5))
        except Exception:  # queue.Empty
            pass
    return got


def test_exclusive_warehouse_second_process_blocks_until_first_releases(tmp_path):
    warehouse = str(tmp_path / "warehouse.duckdb")
    acquired, release, events = FORK.Event(), FORK.Event(), FORK.Queue()
    holder = FORK.Process(target=_hold_lock, args=(warehouse, acquired, release, events))
    holder.start()
    assert acquired.wait(20)
    waiter = FORK.Process(target=_wait_for_lock, args=(warehouse, events))
    waiter.start()
    time.sleep(1.0)
    assert waiter.is_alive(), "the second process got the lock while the first held it"
    release.set()
    waiter.join(20)
    holder.join(20)
    assert (holder.exitcode, waiter.exitcode) == (0, 0)
    log = _drain(events, 6)
    kinds = [k for k, _ in log]
    times = {k: t for k, t in log if k != "waiter-log" and k != "holder-log"}
    assert "holder-log" not in kinds  # the first one never waited
    messages = [m for k, m in log if k == "waiter-log"]
    assert len(messages) == 1 and "waiting" in messages[0] and f"{warehouse}.run-lock" in messages[0]
    assert times["waiter-acquired"] >= times["holder-releasing"]
    assert times["waiter-acquired"] - times["waiter-started"] >= 0.9
    # the lock file records its holder
    assert Path(f"{warehouse}.run-lock").read_text().startswith("pid=")


def _hold_forever(warehouse: str, acquired) -> None:
    with wh.exclusive_warehouse(Path(warehouse), poll_seconds=0.02):
        acquired.set()
        time.sleep(600)


def test_exclusive_warehouse_is_released_when_the_holder_is_killed(tmp_path):
    warehouse = str(tmp_path / "warehouse.duckdb")
    acquired, events = FORK.Event(), FORK.Queue()
    holder = FORK.Process(target=_hold_forever, args=(warehouse, acquired))
    holder.start()
    assert acquired.wait(20)
    waiter = FORK.Process(target=_wait_for_lock, args=(warehouse, events))
    waiter.start()
    time.sleep(0.5)
    assert waiter.is_alive()
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    waiter.join(20)
    assert waiter.exitcode == 0
    assert "waiter-acquired" in [k for k, _ in _drain(events, 3)]


# ---------------------------------------------------------------- Dagster's run queue (shipped instance config)
def test_shipped_dagster_instance_queues_one_run_at_a_time(tmp_path, monkeypatch):
    from dagster import DagsterInstance
    from dagster._core.run_coordinator import QueuedRunCoordinator

    shipped = PROJECT_ROOT / "dagster_home" / "dagster.yaml"
    config = yaml.safe_load(shipped.read_text())
    assert config["concurrency"]["runs"]["max_concurrent_runs"] == 1
    # Load the shipped file as an instance (in a scratch home, so the project's run history is not touched).
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(shipped, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # the shipped storage lives under DAGSTER_HOME
    with DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        # the queue daemon reads the instance's concurrency config
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 1


# ---------------------------------------------------------------- two `clv run` at once
@pytest.mark.slow
def test_two_runs_at_once_both_succeed_one_after_the_other(shop_copy_factory, tmp_path):
    data_dir = shop_copy_factory("concurrency")
    before = snapshot(data_dir / "warehouse.duckdb")
    procs = []
    for i in range(2):
        log = open(tmp_path / f"run{i}.log", "w")
        procs.append(
            (
                subprocess.Popen(
                    [sys.executable, "-m", "pipelines.cli", "run", "--as-of", AS_OF],
                    cwd=pipeline_runner.PROJECT_ROOT,
                    env=pipeline_runner.pipeline_env(data_dir, PYTHONUNBUFFERED="1"),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                ),
                log,
            )
        )
        time.sleep(0.5)
    try:
        codes = [p.wait(timeout=600) for p, _ in procs]
    finally:
        for p, log in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            log.close()
    logs = [(tmp_path / f"run{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], "\n\n".join(x[-3000:] for x in logs)
    waited = [i for i, text in enumerate(logs) if "waiting for it to finish" in text]
    assert len(waited) == 1, "exactly one of the two runs must have waited for the other"
    assert all("Marts (rows): fct_orders" in text for text in logs)
    after = snapshot(data_dir / "warehouse.duckdb")
    assert row_counts(after) == row_counts(before)
    assert differences(before, after) == []
    assert row_counts(snapshot(data_dir / "published" / "warehouse.duckdb")) == row_counts(before)
