"""Runs whose process died (kill -9, OOM killer, a closed laptop lid) are marked failed, so the run queue moves on.

Dagster records a run as STARTED when it begins and as finished when it ends; a process killed in between never
writes the end, and with `max_concurrent_runs: 1` (dagster_home/dagster.yaml) every queued run then waits behind it
forever. Dagster's run monitoring cannot see it here: the local run launcher has no worker health check (it covers
runs stuck STARTING, enabled in dagster.yaml), and `clv run` executes in its own process, launched by no launcher.
So each run records its owner process (host, pid and the process's start time, which tells a reused pid apart) in
its tags: `clv` when it creates the run, a launched run worker when its warehouse resource starts. A run in
progress whose owner is gone is marked failed by `sweep` — from the `dead_run_sweeper` sensor (every 30 s, on by
default) and at the start of every `clv` command.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

OWNER_HOST_TAG = "clv/owner_host"
OWNER_PID_TAG = "clv/owner_pid"
OWNER_STARTED_TAG = "clv/owner_started"  # the process's start time (clock ticks since boot, /proc/<pid>/stat)


def _process_started(pid: int) -> str | None:
    """The start time of a live process ('' where there is no /proc to say it), None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
        fields = None
    except OSError:
        fields = None
    if fields is None:  # no /proc (macOS): is there a process with that pid at all
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""
    if fields[0] in ("Z", "X"):  # a zombie: dead, not yet reaped by its parent
        return None
    return fields[19]


def owner_tags(pid: int | None = None) -> dict[str, str]:
    pid = pid or os.getpid()
    return {
        OWNER_HOST_TAG: socket.gethostname(),
        OWNER_PID_TAG: str(pid),
        OWNER_STARTED_TAG: _process_started(pid) or "",
    }


def owner_is_gone(tags: dict) -> bool:
    """True only when the run's recorded owner process certainly no longer runs (same host, pid gone or reused)."""
    if tags.get(OWNER_HOST_TAG) != socket.gethostname() or not tags.get(OWNER_PID_TAG, "").isdigit():
        return False
    started = _process_started(int(tags[OWNER_PID_TAG]))
    if started is None:
        return True
    recorded = tags.get(OWNER_STARTED_TAG, "")
    return bool(recorded and started and recorded != started)


def sweep(instance, log=None) -> list[str]:
    """Marks failed every run in progress whose owner process is gone; returns their ids."""
    from dagster import DagsterRunStatus, RunsFilter

    in_progress = [DagsterRunStatus.STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.CANCELING]
    marked = []
    for run in instance.get_runs(RunsFilter(statuses=in_progress)):
        if not owner_is_gone(run.tags):
            continue
        # The run may have finished between the query and now: only a run still in progress is marked.
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.status not in in_progress:
            continue
        message = (
            f"The process running this run (pid {run.tags[OWNER_PID_TAG]} on {run.tags[OWNER_HOST_TAG]}) "
            "is gone (killed or crashed): the run is marked failed so queued runs can start. The warehouse "
            "keeps its last complete tables; re-run the partition(s)."
        )
        instance.report_run_failed(current, message)
        marked.append(run.run_id)
        if log:
            log(f"Run {run.run_id}: {message}")
    return marked
