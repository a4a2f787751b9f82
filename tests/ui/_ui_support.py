"""Helpers of the browser tests: the running `dagster dev` (webserver + daemon), its GraphQL API, the `clv` CLI in
the same instance and warehouse, and the few UI gestures the tests repeat."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipelines.report.pdf import BROWSER_ARGS

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = BROWSER_ARGS
LOCATION = "clv_warehouse"
JOB = "clv_pipeline"
STARTUP_TIMEOUT_S = 90
RUN_TIMEOUT_S = 300
SMALL_SHOP_CUSTOMERS = "1000"
TERMINAL = ("SUCCESS", "FAILURE", "CANCELED")


@dataclass
class DagsterUI:
    url: str
    home: Path
    data_dir: Path
    log: Path
    process: subprocess.Popen
    env: dict = field(default_factory=dict)

    @property
    def warehouse(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise AssertionError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def runs(self) -> list[dict]:
        """Every run, newest first: id, status, job, tags (as a dict), asset selection (user strings)."""
        results = self.graphql(RUNS_QUERY)["runsOrError"]["results"]
        return [
            {
                **r,
                "tags": {t["key"]: t["value"] for t in r["tags"]},
                "assets": ["/".join(a["path"]) for a in (r.get("assetSelection") or [])],
            }
            for r in results
        ]

    def run(self, run_id: str) -> dict:
        return next(r for r in self.runs() if r["runId"] == run_id)

    def clv(self, *args: str, **popen) -> subprocess.Popen:
        """`clv <args>` against this UI's instance and warehouse (recorded: it shows in the UI)."""
        return subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args], cwd=PROJECT_ROOT, env=self.env, **popen)

    def wait_for_runs(self, predicate, timeout: float = RUN_TIMEOUT_S, poll: float = 3.0, what: str = "runs"):
        """Polls the run list until `predicate(runs)` returns something truthy; returns it."""
        deadline = time.monotonic() + timeout
        runs = []
        while time.monotonic() < deadline:
            runs = self.runs()
            found = predicate(runs)
            if found:
                return found
            time.sleep(poll)
        summary = [(r["runId"][:8], r["status"], r["tags"].get("clv/trigger"), len(r["assets"])) for r in runs]
        pytest.fail(f"{what} not reached after {timeout:.0f}s; runs: {summary}\n{self.log_tail()}")


RUNS_QUERY = (
    "{ runsOrError { ... on Runs { results { runId status jobName tags { key value } assetSelection { path } } } } }"
)
RUN_QUERY = """
query ($runId: ID!) { runOrError(runId: $runId) { __typename
    ... on Run { runId status jobName tags { key value } } } }
"""
LOCATION_STATUS = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def default_interrupt_signals() -> None:
    # A shell that starts jobs in the background ignores SIGINT, and children inherit that; `dagster dev` maps SIGTERM
    # onto the SIGINT handler, so restore the defaults or it would ignore SIGTERM and never shut down cleanly.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def stop(process: subprocess.Popen) -> None:
    """Stop the whole process group (dagster dev, webserver, daemon, code server, run workers)."""
    try:
        pgid = os.getpgid(process.pid)
    except ProcessLookupError:
        return
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    time.sleep(1)  # let the children follow
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def wait_until_ready(ui: DagsterUI) -> None:
    """The port answers and the code location has loaded (or failed: then fail with its error)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = "the port never answered"
    while time.monotonic() < deadline:
        if ui.process.poll() is not None:
            pytest.fail(f"dagster dev exited with {ui.process.returncode}:\n{ui.log_tail()}")
        try:
            entries = ui.graphql(LOCATION_STATUS)["workspaceOrError"].get("locationEntries", [])
        except (urllib.error.URLError, ConnectionError, OSError, AssertionError, ValueError) as exc:
            last = repr(exc)
            time.sleep(1)
            continue
        entry = next((e for e in entries if e["name"] == LOCATION), None)
        if entry and entry["loadStatus"] == "LOADED":
            error = entry["locationOrLoadError"]
            if error and error["__typename"] == "PythonError":
                pytest.fail(f"code location {LOCATION} failed to load: {error['message']}\n{ui.log_tail()}")
            return
        last = f"location entries: {entries}"
        time.sleep(1)
    pytest.fail(f"Dagster UI not ready after {STARTUP_TIMEOUT_S}s ({last}):\n{ui.log_tail()}")


def open_page(page, ui: DagsterUI, path: str) -> None:
    page.goto(f"{ui.url}{path}", wait_until="domcontentloaded")
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(state="visible", timeout=3_000)
        skip.click()
    except Exception:  # no dialog (already dismissed, or not shown on this instance)
        pass


def show_all_partitions(dialog) -> None:
    """A launch dialog shows the last 90 days by default."""
    show_all = dialog.get_by_text("Show all partitions")
    try:
        show_all.wait_for(state="visible", timeout=10_000)
        show_all.click()
    except Exception:  # fewer partitions than the dialog's default range: all are shown already
        pass


def select_partitions(dialog, text: str) -> None:
    """In a launch dialog: show every partition, then type a key or a range (`[2025-10-01...2025-10-10]`)."""
    show_all_partitions(dialog)
    partitions = dialog.locator("input[type=text]").first
    partitions.fill(text)
    partitions.press("Enter")


def launch_job_partition(page, ui: DagsterUI, partition: str, screenshot: Path | None = None) -> None:
    """Jobs → clv_pipeline → Materialize all → one partition → Launch 1 run (the run queues)."""
    from playwright.sync_api import expect

    open_page(page, ui, f"/locations/{LOCATION}/jobs/{JOB}")
    expect(page.get_by_text(JOB, exact=True).first).to_be_visible()
    page.get_by_role("button", name="Materialize all").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Partition selection")).to_be_visible()
    select_partitions(dialog, partition)
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    launch = dialog.get_by_role("button", name="Launch 1 run")
    expect(launch).to_be_enabled()
    if screenshot:
        page.screenshot(path=str(screenshot))
    launch.click()
    expect(dialog).to_be_hidden(timeout=60_000)
