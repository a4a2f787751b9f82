"""The Dagster UI for real: `dagster dev` (webserver + daemon) on localhost, driven by headless Chromium.

The shipped instance (dagster_home/dagster.yaml) queues runs (QueuedRunCoordinator, one at a time), so the daemon
must run for a run launched from the UI to start: `dagster dev` starts both. The instance lives in a temporary
DAGSTER_HOME and the warehouse in a temporary CLV_DATA_DIR, so nothing touches ./data or ./dagster_home.

Run with: .venv/bin/python -m pytest -m browser tests/ui -q   (needs /usr/bin/chromium and the dbt manifest)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
LOCATION = "clv_warehouse"
JOB = "clv_pipeline"
PARTITION = "2025-06-30"           # one day of the synthetic shop; the run loads it plus the 7-day look-back
STARTUP_TIMEOUT_S = 90
RUN_TIMEOUT_S = 300
SMALL_SHOP_CUSTOMERS = "1000"


@dataclass
class DagsterUI:
    url: str
    home: Path
    data_dir: Path
    log: Path
    process: subprocess.Popen

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _default_interrupt_signals() -> None:
    # A shell that starts jobs in the background ignores SIGINT, and children inherit that; `dagster dev` maps SIGTERM
    # onto the SIGINT handler, so restore the defaults or it would ignore SIGTERM and never shut down cleanly.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _stop(process: subprocess.Popen) -> None:
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


LOCATION_STATUS = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def _wait_until_ready(ui: DagsterUI) -> None:
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


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory) -> DagsterUI:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api")
    if not (PROJECT_ROOT / "dbt_project" / "target" / "manifest.json").exists():
        pytest.fail("dbt manifest missing: run `cd dbt_project && ../.venv/bin/dbt parse` (or `make install`)")
    root = tmp_path_factory.mktemp("dagster_ui")
    home, data_dir = root / "dagster_home", root / "data"
    home.mkdir()
    data_dir.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")

    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLV_", "DAGSTER_"))}
    env.update({
        "DAGSTER_HOME": str(home),
        "CLV_DATA_DIR": str(data_dir),
        "CLV_SYNTHETIC_CUSTOMERS": SMALL_SHOP_CUSTOMERS,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        # dagster-dbt's DbtProject.prepare_if_dev() (run under `dagster dev`) looks for `dbt` on PATH, not next to
        # the interpreter: without the venv on PATH the code location fails to load.
        "PATH": os.pathsep.join([str(bin_dir), env.get("PATH", "")]),
    })
    port = _free_port()
    log = root / "dagster_dev.log"
    dagster = bin_dir / "dagster"
    command = [str(dagster)] if dagster.exists() else [sys.executable, "-m", "dagster"]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*command, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_default_interrupt_signals,
        )
    ui = DagsterUI(url=f"http://127.0.0.1:{port}", home=home, data_dir=data_dir, log=log, process=process)
    try:
        _wait_until_ready(ui)
        yield ui
    finally:
        _stop(process)


@pytest.fixture
def page(dagster_ui):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1600, "height": 1000})
            context.set_default_timeout(30_000)
            page = context.new_page()
            # A fresh instance greets with a "Join the Dagster community" dialog: skip it whenever it shows up.
            page.add_locator_handler(page.get_by_text("Join the Dagster community"),
                                     lambda: page.get_by_role("button", name="Skip").click())
            yield page
        finally:
            browser.close()


def _open(page, ui: DagsterUI, path: str) -> None:
    page.goto(f"{ui.url}{path}", wait_until="domcontentloaded")
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(state="visible", timeout=3_000)
        skip.click()
    except Exception:  # no dialog (already dismissed, or not shown on this instance)
        pass


RUN_QUERY = """
query ($runId: ID!) { runOrError(runId: $runId) { __typename
    ... on Run { runId status jobName tags { key value } } } }
"""
RUNS_QUERY = "{ runsOrError { ... on Runs { results { runId status jobName tags { key value } } } } }"


def test_asset_graph_shows_the_assets(dagster_ui, page, tmp_path):
    from playwright.sync_api import expect

    _open(page, dagster_ui, "/asset-groups")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    for group in ("ingest", "staging", "marts", "clv", "payback", "reporting"):
        expect(page.get_by_text(group, exact=True).first).to_be_visible()
    page.wait_for_timeout(1_000)  # let the graph lay out before the screenshot
    page.screenshot(path=str(tmp_path / "asset_graph_global.png"))

    for group, assets in (("ingest", ["orders", "marketing_spend"]), ("clv", ["customer_clv", "clv_model_fit"])):
        _open(page, dagster_ui, f"/locations/{LOCATION}/asset-groups/{group}")
        for name in assets:
            expect(page.get_by_text(name, exact=True).first).to_be_visible()
        page.wait_for_timeout(1_000)
        page.screenshot(path=str(tmp_path / f"asset_graph_{group}.png"))


def test_materialise_one_partition_from_the_ui(dagster_ui, page, tmp_path):
    from playwright.sync_api import expect

    started = time.monotonic()
    _open(page, dagster_ui, f"/locations/{LOCATION}/jobs/{JOB}")
    expect(page.get_by_text(JOB, exact=True).first).to_be_visible()
    page.get_by_role("button", name="Materialize all").first.click()

    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Partition selection")).to_be_visible()
    # The dialog shows the last 90 days by default; the partition we want is older.
    show_all = dialog.get_by_text("Show all partitions")
    try:
        show_all.wait_for(state="visible", timeout=10_000)
        show_all.click()
    except Exception:  # fewer partitions than the dialog's default range: all are shown already
        pass
    partitions = dialog.locator("input[type=text]").first
    partitions.fill(PARTITION)
    partitions.press("Enter")
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    launch = dialog.get_by_role("button", name="Launch 1 run")
    expect(launch).to_be_enabled()
    page.screenshot(path=str(tmp_path / "launch_dialog.png"))
    launch.click()
    expect(dialog).to_be_hidden(timeout=60_000)

    # The job page now links its latest run: open it by clicking, as a user would.
    run_link = page.locator('a[href^="/runs/"]').first
    try:
        run_link.wait_for(state="visible", timeout=30_000)
        run_link.click()
        page.wait_for_url("**/runs/*", timeout=30_000)
    except Exception:
        runs = dagster_ui.graphql(RUNS_QUERY)["runsOrError"]["results"]
        assert runs, f"no run was created by the launch:\n{dagster_ui.log_tail()}"
        _open(page, dagster_ui, f"/runs/{runs[0]['runId']}")
    run_id = page.url.rstrip("/").split("/runs/")[1].split("?")[0].split("/")[0]
    expect(page.get_by_text(f"partition: {PARTITION}").first).to_be_visible()

    # Wait for the run page to show a terminal status (the queue daemon starts the run; the page updates live).
    deadline = time.monotonic() + RUN_TIMEOUT_S
    status = None
    while time.monotonic() < deadline:
        for label in ("Success", "Failure", "Canceled"):
            if page.get_by_text(label, exact=True).first.is_visible():
                status = label
                break
        if status:
            break
        page.wait_for_timeout(3_000)
    page.screenshot(path=str(tmp_path / "run_page.png"), full_page=True)
    elapsed = time.monotonic() - started

    # The same run, seen through the API: launched from the UI, one partition, succeeded.
    run = dagster_ui.graphql(RUN_QUERY, {"runId": run_id})["runOrError"]
    assert run["__typename"] == "Run", run
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert status == "Success", (
        f"run {run_id} shows {status or 'no terminal status'} after {elapsed:.0f}s (API: {run['status']}); "
        f"screenshots in {tmp_path}\n{dagster_ui.log_tail()}")
    assert run["status"] == "SUCCESS"
    assert run["jobName"] == JOB
    assert tags.get("dagster/partition") == PARTITION
    assert tags.get("dagster/from_ui") == "true"

    # And in the warehouse: the partition plus its look-back were loaded, and the whole job ran downstream.
    with duckdb.connect(str(dagster_ui.data_dir / "warehouse.duckdb"), read_only=True) as con:
        first, last, rows = con.execute("select min(order_date), max(order_date), count(*) from raw.orders").fetchone()
        clv_rows = con.execute("select count(*) from marts.customer_clv").fetchone()[0]
    assert rows > 0 and str(last) == PARTITION and str(first) == "2025-06-23", (first, last, rows)
    assert clv_rows > 0
