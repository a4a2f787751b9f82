"""Open the CLV report in headless Chromium: every chart is found by its title, its image loaded, the page screenshots."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipelines.report import build_report  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
TITLES = [
    "Cohort retention",
    "Cumulative revenue and margin per customer by cohort (LTV curves)",
    "CAC payback by acquisition channel",
    "Distribution of predicted 365-day CLV",
    "P(alive) by recency and frequency",
    "Back-test: predicted vs actual repeat purchases",
    "Customer segments: size and value",
    "LTV drivers",
    "Monthly KPI trends",
    "BG/NBD and Gamma-Gamma parameters over time",
]


@pytest.mark.browser
def test_report_in_chromium(small_shop, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    result = build_report(small_shop.warehouse, tmp_path / "report")
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.goto(result.path.as_uri())
            page.wait_for_load_state("load")
            assert page.title() == "Customer lifetime value: the answers at a glance"
            for title in TITLES:
                heading = page.get_by_role("heading", name=title, exact=True)
                sync_api.expect(heading).to_have_count(1)
                section = page.locator("section").filter(has=heading)
                image = section.locator("img")
                sync_api.expect(image).to_have_count(1)
                image.scroll_into_view_if_needed()
                loaded = image.evaluate("img => img.complete && img.naturalWidth > 0 && img.naturalHeight > 0")
                assert loaded, f"the image of {title!r} did not load"
                assert image.bounding_box()["width"] > 600, f"{title!r} is drawn too small"
            # The payback table is a real table with a header and one row per paid channel.
            assert page.locator("#payback-curves table tbody tr").count() == len(result.payback) > 0
            # Nothing but the file itself (and its data: URIs) was requested.
            assert all(url.startswith(("file://", "data:")) for url in requests), requests
            # No horizontal scrolling at a laptop width.
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            shot = tmp_path / "report-full.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 50_000
