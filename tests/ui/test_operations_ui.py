"""Operating the warehouse from the Dagster UI the way engineers do (issue 16), in headless Chromium against
`dagster dev` (tests/ui/conftest.py: one instance for the browser suite).

In order, each on what the previous left: `clv run` over the history, then the partitions page tells the truth;
a backfill of raw/orders from its asset page refreshes everything downstream; dbt assets show row counts, previews
and the grain check; a `clv` run killed with SIGKILL does not block a run launched from the UI; the raw-files sensor
is off, one toggle turns it on.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import time
from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest
from _ui_support import TERMINAL, launch_job_partition, open_page, select_partitions, show_all_partitions
from pipeline_runner import open_warehouse

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FIRST = date(2024, 1, 1)
AS_OF = date(2025, 9, 30)  # `clv run --as-of`: history up to here
RANGE = (date(2025, 10, 1), date(2025, 10, 10))  # then reloaded from the asset page
UI_PARTITION = "2025-10-05"  # launched from the UI behind a killed CLI run
SWEEP_WITHIN_S = 120  # a dead run is marked failed within this


def _days(first: date, last: date) -> int:
    return (last - first).days + 1


def _state(ui) -> dict:
    """What BI sees and what the marts say: newest order and as-of of the marts, the snapshot, the report."""
    state = {}
    if ui.warehouse.exists():
        with open_warehouse(ui.warehouse) as con:
            state["fct_orders"] = con.execute("select max(order_date), count(*) from marts.fct_orders").fetchone()
            state["customer_clv"] = con.execute(
                "select max(as_of_date), count(*), sum(predicted_clv_365d) from marts.customer_clv"
            ).fetchone()
    snapshot = ui.data_dir / "published" / "warehouse.duckdb"
    if snapshot.exists():
        state["snapshot_mtime"] = snapshot.stat().st_mtime_ns
        with duckdb.connect(str(snapshot), read_only=True) as con:
            state["snapshot_fct_orders"] = con.execute("select max(order_date) from marts.fct_orders").fetchone()[0]
    report = ui.data_dir / "report" / "index.html"
    if report.exists():
        state["report"] = hashlib.sha256(report.read_bytes()).hexdigest()
    return state


def test_partitions_tell_the_truth_after_clv_run(dagster_ui, page, tmp_path):
    from playwright.sync_api import expect

    cli = dagster_ui.clv(
        "run", "--as-of", AS_OF.isoformat(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output, _ = cli.communicate(timeout=900)
    assert cli.returncode == 0, output[-4000:]
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    loaded, missing = _days(FIRST, AS_OF), _days(AS_OF + timedelta(days=1), yesterday)

    open_page(page, dagster_ui, "/assets/raw/orders?view=partitions")
    expect(page.get_by_text(f"Materialized ({loaded:,})")).to_be_visible(timeout=60_000)
    expect(page.get_by_text(f"Missing ({missing:,})")).to_be_visible()
    page.screenshot(path=str(tmp_path / "raw_orders_partitions.png"))
    # "Missing" in the launch dialog selects only the days after the as-of date, which nothing loaded
    page.locator("button", has_text="Materialize").first.click()
    dialog = page.get_by_role("dialog")
    show_all_partitions(dialog)
    dialog.get_by_text("Missing", exact=True).click()
    expect(dialog.get_by_text(f"{missing:,} partitions", exact=True)).to_be_visible()
    page.screenshot(path=str(tmp_path / "missing_selection.png"))
    dialog.get_by_role("button", name="Cancel", exact=True).click()


def test_backfill_of_raw_orders_from_its_asset_page_refreshes_everything_downstream(dagster_ui, page, tmp_path):
    from playwright.sync_api import expect

    before = _state(dagster_ui)
    known = {r["runId"] for r in dagster_ui.runs()}
    start, end = RANGE
    open_page(page, dagster_ui, "/assets/raw/orders")
    page.locator("button", has_text="Materialize").first.click()
    dialog = page.get_by_role("dialog")
    select_partitions(dialog, f"[{start}...{end}]")
    expect(dialog.get_by_text(f"{_days(start, end)} partitions", exact=True)).to_be_visible()
    expect(dialog.get_by_text("Backfills all partitions in a single run.")).to_be_visible()
    page.screenshot(path=str(tmp_path / "backfill_dialog.png"))
    dialog.get_by_role("button", name="Launch backfill").click()
    expect(dialog).to_be_hidden(timeout=60_000)

    def new(runs):
        return [r for r in runs if r["runId"] not in known]

    # One run loads the range (raw/orders alone: what the dialog asked for) ...
    load = dagster_ui.wait_for_runs(
        lambda runs: next((r for r in new(runs) if r["assets"] == ["raw/orders"] and r["status"] in TERMINAL), None),
        what="the backfill's run",
    )
    assert load["status"] == "SUCCESS", load
    assert (
        load["tags"].get("dagster/asset_partition_range_start"),
        load["tags"].get("dagster/asset_partition_range_end"),
    ) == (start.isoformat(), end.isoformat())
    # ... then the automation sensor launches ONE run of everything downstream, which refreshes it all.
    refresh = dagster_ui.wait_for_runs(
        lambda runs: next(
            (r for r in new(runs) if r["tags"].get("clv/trigger") == "automation" and r["status"] in TERMINAL), None
        ),
        timeout=480,
        what="the refresh run",
    )
    assert refresh["status"] == "SUCCESS", f"{refresh}\n{dagster_ui.log_tail()}"
    assert {"marts/fct_orders", "marts/customer_clv", "reporting/published_marts", "reporting/report"} <= set(
        refresh["assets"]
    ), (
        sorted(refresh["assets"]),
        [(r["status"], r["tags"].get("clv/trigger"), r["assets"]) for r in new(dagster_ui.runs())],
    )
    assert "raw/orders" not in refresh["assets"]
    time.sleep(35)  # one more tick of the sensor: nothing else is launched
    assert len(new(dagster_ui.runs())) == 2, [(r["status"], r["assets"][:3]) for r in new(dagster_ui.runs())]

    after = _state(dagster_ui)
    assert after["fct_orders"][0] == end and after["fct_orders"] != before.get("fct_orders")
    assert after["customer_clv"][0] == end and after["customer_clv"] != before.get("customer_clv")
    assert after["snapshot_fct_orders"] == end and after["snapshot_mtime"] != before.get("snapshot_mtime")
    assert after["report"] != before.get("report")
    open_page(page, dagster_ui, f"/runs/{refresh['runId']}")
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    page.screenshot(path=str(tmp_path / "refresh_run.png"))


def test_dbt_assets_show_row_counts_previews_and_the_grain_check(dagster_ui, page, tmp_path):
    from playwright.sync_api import expect

    with open_warehouse(dagster_ui.warehouse) as con:
        rows = con.execute("select count(*) from marts.fct_orders").fetchone()[0]
    open_page(page, dagster_ui, "/assets/marts/fct_orders")
    expect(page.get_by_text("Row count", exact=True)).to_be_visible()
    expect(page.get_by_text(f"{rows:,}", exact=True).first).to_be_visible()
    preview = page.locator("tr").filter(has_text=re.compile(r"^\s*preview"))
    preview.get_by_text("[Show Markdown]").click()
    shown = page.get_by_role("dialog")
    expect(shown.locator("th", has_text="order_id").first).to_be_visible()
    page.screenshot(path=str(tmp_path / "fct_orders_preview.png"))
    page.keyboard.press("Escape")

    open_page(page, dagster_ui, "/assets/intermediate/int_customer_months?view=checks")
    expect(page.get_by_text("int_customer_months_grain").first).to_be_visible()
    expect(page.get_by_text("Passed").first).to_be_visible()
    page.screenshot(path=str(tmp_path / "grain_check.png"))


def test_a_killed_cli_run_does_not_block_a_run_launched_from_the_ui(dagster_ui, page, tmp_path):
    from playwright.sync_api import expect

    known = {r["runId"] for r in dagster_ui.runs()}
    console = tmp_path / "killed_cli.log"
    with open(console, "w") as out:
        victim = dagster_ui.clv(
            "backfill",
            "--start",
            "2025-10-02",
            "--end",
            "2025-10-03",
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        killed = dagster_ui.wait_for_runs(
            lambda runs: next(
                (
                    r
                    for r in runs
                    if r["runId"] not in known
                    and r["status"] == "STARTED"
                    and r["tags"].get("clv/owner_pid") == str(victim.pid)
                ),
                None,
            ),
            timeout=180,
            poll=0.5,
            what="the CLI run started",
        )
        time.sleep(2)
    finally:
        os.killpg(victim.pid, signal.SIGKILL)  # kill -9: the CLI and its dbt child, mid-way
        victim.wait(10)
    killed_at = time.monotonic()
    assert dagster_ui.run(killed["runId"])["status"] == "STARTED"  # Dagster alone would wait on it forever

    launch_job_partition(page, dagster_ui, UI_PARTITION, screenshot=tmp_path / "launch_behind_dead_run.png")
    queued = dagster_ui.wait_for_runs(
        lambda runs: next(
            (
                r
                for r in runs
                if r["runId"] not in known | {killed["runId"]} and r["tags"].get("dagster/from_ui") == "true"
            ),
            None,
        ),
        what="the UI's run",
    )
    failed = dagster_ui.wait_for_runs(
        lambda runs: next((r for r in runs if r["runId"] == killed["runId"] and r["status"] in TERMINAL), None),
        timeout=SWEEP_WITHIN_S,
        what="the killed run marked failed",
    )
    assert failed["status"] == "FAILURE"
    swept_after = time.monotonic() - killed_at
    done = dagster_ui.wait_for_runs(
        lambda runs: next((r for r in runs if r["runId"] == queued["runId"] and r["status"] in TERMINAL), None),
        what="the UI's run finished",
    )
    assert done["status"] == "SUCCESS", f"{done}\n{dagster_ui.log_tail()}"
    open_page(page, dagster_ui, f"/runs/{killed['runId']}")
    expect(page.get_by_text("is gone (killed or crashed)").first).to_be_visible()
    page.screenshot(path=str(tmp_path / "dead_run_marked_failed.png"))
    print(f"\nkilled run marked failed {swept_after:.0f}s after the kill")


SENSOR_STATUS = """{ sensorOrError(sensorSelector: {repositoryLocationName: "clv_warehouse",
    repositoryName: "__repository__", sensorName: "raw_files_sensor"}) { ... on Sensor { sensorState { status } } } }"""


def test_the_raw_files_sensor_is_off_and_one_toggle_turns_it_on(dagster_ui, page, tmp_path):
    from playwright.sync_api import expect

    def status():
        return dagster_ui.graphql(SENSOR_STATUS)["sensorOrError"]["sensorState"]["status"]

    assert status() == "STOPPED"
    open_page(page, dagster_ui, "/automation")
    row = page.locator("[data-index]").filter(has_text="raw_files_sensor")
    expect(row).to_be_visible()
    switch = row.locator("input[type=checkbox]").last
    expect(switch).not_to_be_checked()
    row.locator("label").last.click()
    expect(switch).to_be_checked()
    deadline = time.monotonic() + 30
    while status() != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert status() == "RUNNING"
    page.screenshot(path=str(tmp_path / "raw_files_sensor_on.png"))
    row.locator("label").last.click()  # and off again, as shipped
    expect(switch).not_to_be_checked()
    deadline = time.monotonic() + 30
    while status() != "STOPPED" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert status() == "STOPPED"
