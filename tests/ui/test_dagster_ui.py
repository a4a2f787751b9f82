"""The Dagster UI for real: `dagster dev` (webserver + daemon) on localhost, driven by headless Chromium.

The shipped instance (dagster_home/dagster.yaml) queues runs (QueuedRunCoordinator, one at a time), so the daemon
must run for a run launched from the UI to start: `dagster dev` starts both (tests/ui/conftest.py: one for the
whole browser suite, in a temporary DAGSTER_HOME and CLV_DATA_DIR, so nothing touches ./data or ./dagster_home).

Run with: .venv/bin/python -m pytest -m browser tests/ui -q   (needs /usr/bin/chromium and the dbt manifest)
"""

from __future__ import annotations

import time

import pytest
from _ui_support import JOB, LOCATION, RUN_QUERY, RUN_TIMEOUT_S, launch_job_partition, open_page
from pipeline_runner import open_warehouse

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PARTITION = "2025-06-30"  # one day of the synthetic shop; the run loads it plus the 7-day look-back


def test_asset_graph_shows_the_assets(dagster_ui, page, tmp_path):
    from playwright.sync_api import expect

    open_page(page, dagster_ui, "/asset-groups")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    for group in ("ingest", "staging", "marts", "clv", "payback", "reporting"):
        expect(page.get_by_text(group, exact=True).first).to_be_visible()
    page.wait_for_timeout(1_000)  # let the graph lay out before the screenshot
    page.screenshot(path=str(tmp_path / "asset_graph_global.png"))

    for group, assets in (("ingest", ["orders", "marketing_spend"]), ("clv", ["customer_clv", "clv_model_fit"])):
        open_page(page, dagster_ui, f"/locations/{LOCATION}/asset-groups/{group}")
        for name in assets:
            expect(page.get_by_text(name, exact=True).first).to_be_visible()
        page.wait_for_timeout(1_000)
        page.screenshot(path=str(tmp_path / f"asset_graph_{group}.png"))


def test_materialise_one_partition_from_the_ui(dagster_ui, page, tmp_path):
    from playwright.sync_api import expect

    started = time.monotonic()
    launch_job_partition(page, dagster_ui, PARTITION, screenshot=tmp_path / "launch_dialog.png")

    # The job page now links its latest run: open it by clicking, as a user would.
    run_link = page.locator('a[href^="/runs/"]').first
    try:
        run_link.wait_for(state="visible", timeout=30_000)
        run_link.click()
        page.wait_for_url("**/runs/*", timeout=30_000)
    except Exception:
        runs = dagster_ui.runs()
        assert runs, f"no run was created by the launch:\n{dagster_ui.log_tail()}"
        open_page(page, dagster_ui, f"/runs/{runs[0]['runId']}")
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
        f"screenshots in {tmp_path}\n{dagster_ui.log_tail()}"
    )
    assert run["status"] == "SUCCESS"
    assert run["jobName"] == JOB
    assert tags.get("dagster/partition") == PARTITION
    assert tags.get("dagster/from_ui") == "true"

    # And in the warehouse: the partition plus its look-back were loaded, and the whole job ran downstream.
    with open_warehouse(dagster_ui.data_dir / "warehouse.duckdb") as con:
        first, last, rows = con.execute(
            "select window_start, window_end, rows_loaded from raw.load_log where run_id = ? and asset = 'orders'",
            [run_id],
        ).fetchone()
        clv_rows = con.execute("select count(*) from marts.customer_clv").fetchone()[0]
    assert rows > 0 and str(last) == PARTITION and str(first) == "2025-06-23", (first, last, rows)
    assert clv_rows > 0
