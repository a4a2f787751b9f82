"""A run killed at any point (SIGKILL of the whole process group: the CLI and its dbt child) leaves the previous
marts intact and readable, the published snapshot complete, the run lock free, and the next run succeeds.

One warehouse (a private copy of the small shop, complete marts as of 2025-12-31) is killed at several stages, in
order; each killed run starts on what the previous kill left behind."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from _ops_support import AS_OF, differences, root_conftest, row_counts, snapshot, snapshot_con

pytestmark = pytest.mark.slow

# (name, marker in the run's log, seconds to wait after the marker before the kill)
KILL_POINTS = [
    ("ingest", "raw__orders - STEP_START", 0.2),             # while raw.orders is being replaced
    ("dbt_start", "Running dbt command", 1.5),              # dbt has started building staging/marts
    ("dbt_marts", "Running dbt command", 7.0),              # dbt is (re)building the mart tables
    ("clv_models", "BG/NBD", 0.0),                          # the polars models are being written
    ("publish", "reporting__published_marts - STEP_START", 0.05),  # the snapshot is being built
]


@pytest.fixture(scope="module")
def crash_shop(shop_copy_factory):
    data_dir = shop_copy_factory("crash")
    warehouse = data_dir / "warehouse.duckdb"
    return {
        "dir": data_dir,
        "warehouse": warehouse,
        "marts": snapshot(warehouse),
        "raw": snapshot(warehouse, "raw"),
        "published": snapshot(data_dir / "published" / "warehouse.duckdb"),
        "killed": [],
    }


def _run_and_kill(data_dir: Path, marker: str, delay: float, log_path: Path, timeout: float = 240) -> str:
    env = root_conftest().pipeline_env(data_dir, PYTHONUNBUFFERED="1")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", "--as-of", AS_OF],
                                cwd=root_conftest().PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while marker not in log_path.read_text(errors="replace"):
            if proc.poll() is not None:
                raise AssertionError(f"the run ended ({proc.returncode}) before '{marker}':\n{log_path.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no '{marker}' after {timeout} s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.05)
        time.sleep(delay)
        assert proc.poll() is None, f"the run finished before it could be killed at '{marker}'"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the CLI and dbt, like a power cut
        proc.wait(timeout=30)
    # nothing of the group survives (an orphaned dbt would keep writing the warehouse)
    for _ in range(100):
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("processes of the killed run are still alive")
    return log_path.read_text(errors="replace")


def _assert_intact(shop: dict, where: str) -> None:
    before = shop["marts"]
    con = duckdb.connect(str(shop["warehouse"]), read_only=True)  # opens (replaying the WAL if any)
    try:
        after = snapshot_con(con)
        for table in before:  # every mart is readable
            con.execute(f"select * from marts.{table} limit 5").fetchall()
    finally:
        con.close()
    assert row_counts(after) == row_counts(before), where
    assert differences(before, after) == [], where
    raw = {t: n for t, n in row_counts(snapshot(shop["warehouse"], "raw")).items() if t != "load_log"}  # append-only log
    assert raw == {t: n for t, n in row_counts(shop["raw"]).items() if t != "load_log"}, where
    published = snapshot(shop["dir"] / "published" / "warehouse.duckdb")
    assert row_counts(published) == row_counts(shop["published"]), where
    assert differences(shop["published"], published) == [], where


def _lock_is_free(warehouse: Path) -> bool:
    with open(f"{warehouse}.run-lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def test_baseline_is_complete(crash_shop):
    counts = row_counts(crash_shop["marts"])
    assert len(counts) >= 14 and all(n > 0 for n in counts.values()), counts
    assert row_counts(crash_shop["published"]) == counts


@pytest.mark.parametrize(("name", "marker", "delay"), KILL_POINTS, ids=[k[0] for k in KILL_POINTS])
def test_kill_leaves_previous_marts_intact(crash_shop, tmp_path, name, marker, delay):
    log = _run_and_kill(crash_shop["dir"], marker, delay, tmp_path / f"{name}.log")
    crash_shop["killed"].append(name)
    assert "Marts (rows):" not in log  # it really died before the end of the run
    _assert_intact(crash_shop, f"after a kill at {name}")
    assert _lock_is_free(crash_shop["warehouse"])


def test_next_run_after_the_kills_succeeds(crash_shop):
    assert crash_shop["killed"] == [k[0] for k in KILL_POINTS]
    run = root_conftest().run_clv(crash_shop["dir"], "run", "--as-of", AS_OF)
    assert "waiting" not in run.stderr + run.stdout
    assert "Marts (rows): fct_orders" in run.stdout
    _assert_intact(crash_shop, "after the recovery run")
