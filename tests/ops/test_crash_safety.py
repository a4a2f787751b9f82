"""A run killed at any point (SIGKILL of the whole process group: the CLI and its dbt child) leaves every mart
readable and either as it was or completely rebuilt (never missing, never half-written), the published snapshot
complete, the run lock free, and the next run succeeds.

One warehouse (a private copy of the small shop, complete marts as of 2025-12-31) is killed at several stages, in
order, by runs as of a LATER day (NEW_AS_OF: a month more orders, so a finished table differs from the old one);
each killed run starts on what the previous kill left behind. A last, complete run as of NEW_AS_OF gives the
"new" state that every half-way table is compared with."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pipeline_runner
import pytest
from _ops_support import differences, row_counts, snapshot, snapshot_con
from pipeline_runner import open_warehouse

from pipelines.publish import DBT_SCRATCH_SUFFIXES

pytestmark = pytest.mark.slow

# (name, marker in the run's log, seconds to wait after the marker before the kill)
NEW_AS_OF = "2026-01-31"
RAW_DATA = ("orders", "rejected_orders", "marketing_spend", "cart_events")
KILL_POINTS = [
    ("ingest", "raw__orders - STEP_START", 0.2),  # raw.orders being replaced
    ("dbt_fct_orders", "START sql incremental model marts_db.marts.fct_orders", 0.2),  # incremental delete + insert
    ("dbt_table_swap", "START sql table model marts_db.marts.dim_customers", 0.2),  # build-and-rename of a table
    ("clv_models", "BG/NBD", 0.0),  # polars marts being written
    ("publish", "reporting__published_marts - STEP_START", 0.05),  # the snapshot being built
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
        "killed": {},
    }


def _output(console_log: Path) -> str:
    """What the run printed, and its full log (Dagster's events, dbt), whose path `clv` prints first."""
    text = console_log.read_text(errors="replace")
    full_log = next(
        (line.removeprefix("Full log: ") for line in text.splitlines() if line.startswith("Full log: ")), None
    )
    if full_log and Path(full_log).exists():
        text += Path(full_log).read_text(errors="replace")
    return text


def _run_and_kill(data_dir: Path, marker: str, delay: float, log_path: Path, timeout: float = 240) -> str:
    env = pipeline_runner.pipeline_env(data_dir, PYTHONUNBUFFERED="1")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "run", "--as-of", NEW_AS_OF],
            cwd=pipeline_runner.PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout
        while marker not in _output(log_path):
            if proc.poll() is not None:
                raise AssertionError(
                    f"the run ended ({proc.returncode}) before '{marker}':\n{_output(log_path)[-4000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no '{marker}' after {timeout} s:\n{_output(log_path)[-4000:]}")
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
    return _output(log_path)


def _state(shop: dict) -> dict:
    """Snapshots after a kill: the warehouse opens read-only (replaying its WAL) and every mart is readable. dbt's
    scratch tables are set apart: a kill between a table swap's commit and the drop of the old table leaves
    `<model>__dbt_backup` behind (seen on a busy machine), which the model's next build drops and the
    publish never copies."""
    con = open_warehouse(shop["warehouse"])
    try:
        marts = {t: s for t, s in snapshot_con(con).items() if not t.endswith(DBT_SCRATCH_SUFFIXES)}
        for table in shop["marts"]:
            con.execute(f"select * from marts.{table} limit 5").fetchall()
        raw = snapshot_con(con, "raw")
    finally:
        con.close()
    return {"marts": marts, "raw": raw, "published": snapshot(shop["dir"] / "published" / "warehouse.duckdb")}


def _tables_old_or_new(state: dict, old: dict, new: dict, where: str) -> None:
    assert set(state) == set(old), f"{where}: tables {sorted(set(old) ^ set(state))} missing or new"
    for table, summary in state.items():
        assert not differences({table: old[table]}, {table: summary}) or not differences(
            {table: new[table]}, {table: summary}
        ), f"{where}: {table} is neither the old nor the new table: {summary[0]} rows"


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
def test_kill_leaves_every_mart_readable(crash_shop, tmp_path, name, marker, delay):
    log = _run_and_kill(crash_shop["dir"], marker, delay, tmp_path / f"{name}.log")
    assert "Marts (rows):" not in log  # it really died before the end of the run
    state = _state(crash_shop)
    crash_shop["killed"][name] = state
    assert set(state["marts"]) == set(crash_shop["marts"]), "a mart is missing"
    assert all(n > 0 for n in row_counts(state["marts"]).values())
    # BI readers: the snapshot is only swapped by a complete publish, so it is still the old one here
    if name != "publish":
        assert differences(crash_shop["published"], state["published"]) == []
    assert _lock_is_free(crash_shop["warehouse"])


def test_next_run_after_the_kills_succeeds_and_every_killed_state_was_old_or_new(crash_shop):
    assert list(crash_shop["killed"]) == [k[0] for k in KILL_POINTS]
    run = pipeline_runner.run_clv(crash_shop["dir"], "run", "--as-of", NEW_AS_OF)
    assert "waiting" not in run.stderr + run.stdout
    assert "Marts (rows): fct_orders" in run.stdout
    new = _state(crash_shop)
    old = crash_shop
    # the next build dropped every scratch table a kill left, and none reached the snapshot
    assert [t for t in snapshot(crash_shop["warehouse"]) if t.endswith(DBT_SCRATCH_SUFFIXES)] == []
    assert row_counts(new["marts"])["fct_orders"] > row_counts(old["marts"])["fct_orders"]  # the runs change things
    assert differences(new["marts"], new["published"]) == []  # the snapshot is the new, complete marts
    for name, state in crash_shop["killed"].items():
        _tables_old_or_new(state["marts"], old["marts"], new["marts"], f"after a kill at {name} (marts)")
        # the loaded data (not raw.load_log, an append-only log, nor per-run bookkeeping tables)
        _tables_old_or_new(
            {t: state["raw"][t] for t in RAW_DATA},
            {t: old["raw"][t] for t in RAW_DATA},
            new["raw"],
            f"after a kill at {name} (raw)",
        )
        published = state["published"]
        assert not differences(old["published"], published) or not differences(new["published"], published), (
            f"after a kill at {name}: the published snapshot is neither the old nor the new one"
        )
