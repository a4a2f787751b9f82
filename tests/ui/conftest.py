"""One `dagster dev` (webserver + daemon) for the whole browser suite, in a temporary DAGSTER_HOME (with the shipped
dagster.yaml) and a temporary CLV_DATA_DIR, so nothing touches ./data or ./dagster_home; and a headless Chromium
page per test. The tests share the instance: each states what it needs relative to what is loaded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _ui_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PROJECT_ROOT,
    SMALL_SHOP_CUSTOMERS,
    DagsterUI,
    default_interrupt_signals,
    free_port,
    stop,
    wait_until_ready,
)


@pytest.fixture(scope="session")
def dagster_ui(tmp_path_factory) -> DagsterUI:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api")
    if not (PROJECT_ROOT / "dbt_project" / "target" / "manifest.json").exists():
        pytest.fail("dbt manifest missing: run `cd dbt_project && ../.venv/bin/dbt parse` (or `make install`)")
    from pipeline_runner import TEST_HASH_KEY_HEX

    root = tmp_path_factory.mktemp("dagster_ui")
    home, data_dir = root / "dagster_home", root / "data"
    home.mkdir()
    data_dir.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")

    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLV_", "DAGSTER_"))}
    env.update(
        {
            "DAGSTER_HOME": str(home),
            "CLV_DATA_DIR": str(data_dir),
            "CLV_SYNTHETIC_CUSTOMERS": SMALL_SHOP_CUSTOMERS,
            "CLV_HASH_KEY": TEST_HASH_KEY_HEX,  # no key file written into ~/.config
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            # dagster-dbt's DbtProject.prepare_if_dev() (run under `dagster dev`) looks for `dbt` on PATH, not next to
            # the interpreter: without the venv on PATH the code location fails to load.
            "PATH": os.pathsep.join([str(bin_dir), env.get("PATH", "")]),
        }
    )
    port = free_port()
    log = root / "dagster_dev.log"
    dagster = bin_dir / "dagster"
    command = [str(dagster)] if dagster.exists() else [sys.executable, "-m", "dagster"]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*command, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=default_interrupt_signals,
        )
    ui = DagsterUI(
        url=f"http://127.0.0.1:{port}",
        home=home,
        data_dir=data_dir,
        log=log,
        process=process,
        env={**env, "CLV_UI_URL": f"http://127.0.0.1:{port}"},
    )
    try:
        wait_until_ready(ui)
        yield ui
    finally:
        stop(process)


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
            page.add_locator_handler(
                page.get_by_text("Join the Dagster community"), lambda: page.get_by_role("button", name="Skip").click()
            )
            yield page
        finally:
            browser.close()
