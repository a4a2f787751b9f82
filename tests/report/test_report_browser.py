"""Open the CLV report and the dbt docs in headless Chromium, as a reader would: every chart is found by its title and
drawn, no two tick labels of a chart overlap (measured on the SVG text in the page), nothing is fetched from the
network and the console stays free of errors."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipelines.contract import MARTS as MART_TABLES  # noqa: E402
from pipelines.report import build_report  # noqa: E402
from pipelines.report.pdf import BROWSER_ARGS  # noqa: E402
from pipelines.warehouse import connect, marts_path  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = BROWSER_ARGS
TITLES = [
    "Cohort retention",
    "Cumulative revenue and margin per customer by cohort (LTV curves)",
    "CAC payback by acquisition channel",
    "Distribution of predicted 365-day CLV",
    "P(alive) by recency and frequency",
    "Back-test: the purchase models side by side",
    "Survival by cohort: the model vs what was observed",
    "Customer segments: size and value",
    "LTV drivers",
    "Monthly KPI trends",
    "Model parameters over time",
]
# Every tick label of every chart as the polygon it covers on screen (text may be rotated: its box is mapped through
# the text element's own transform), from the SVG's text elements.
TICK_LABELS_JS = """
(svg) => {
  const out = [];
  for (const tick of svg.querySelectorAll('g[id*="-xtick_"], g[id*="-ytick_"]')) {
    for (const text of tick.querySelectorAll('text')) {
      if (!text.textContent.trim()) continue;
      const box = text.getBBox(), m = text.getScreenCTM();
      const corners = [[box.x, box.y], [box.x + box.width, box.y], [box.x + box.width, box.y + box.height],
                       [box.x, box.y + box.height]];
      out.push({tick: tick.id, text: text.textContent,
                points: corners.map(([x, y]) => [m.a * x + m.c * y + m.e, m.b * x + m.d * y + m.f])});
    }
  }
  return out;
}
"""


def _overlap(a: list[list[float]], b: list[list[float]], tolerance: float = 1.0) -> bool:
    """Two convex quadrilaterals intersect by more than `tolerance` pixels (separating axis theorem)."""
    for polygon in (a, b):
        for i in range(4):
            (x1, y1), (x2, y2) = polygon[i], polygon[(i + 1) % 4]
            normal = (y1 - y2, x2 - x1)
            length = (normal[0] ** 2 + normal[1] ** 2) ** 0.5 or 1.0
            project_a = [(p[0] * normal[0] + p[1] * normal[1]) / length for p in a]
            project_b = [(p[0] * normal[0] + p[1] * normal[1]) / length for p in b]
            if min(max(project_a), max(project_b)) - max(min(project_a), min(project_b)) <= tolerance:
                return False
    return True


def overlapping_tick_labels(page) -> list[str]:
    problems = []
    for section in page.locator("section[data-chart]").all():
        chart = section.get_attribute("data-chart")
        labels = section.locator("figure.chart > svg").evaluate(TICK_LABELS_JS)
        assert labels, f"{chart}: no tick label found in the SVG"
        for i, first in enumerate(labels):
            for second in labels[i + 1 :]:
                if _overlap(first["points"], second["points"]):
                    problems.append(
                        f"{chart}: {first['text']!r} ({first['tick']}) overlaps {second['text']!r} ({second['tick']})"
                    )
    return problems


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield sync_api, browser
        finally:
            browser.close()


def _open(browser, url: str, requests: list[str], console: list[str]):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("request", lambda request: requests.append(request.url))
    page.on(
        "console",
        lambda message: (
            console.append(f"{message.type}: {message.text}") if message.type in ("error", "warning") else None
        ),
    )
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    page.goto(url)
    page.wait_for_load_state("load")
    return page


@pytest.mark.browser
def test_report_in_chromium(small_shop, tmp_path, chromium):
    sync_api, browser = chromium
    result = build_report(small_shop.warehouse, tmp_path / "report", pdf=False)
    requests: list[str] = []
    console: list[str] = []
    page = _open(browser, result.path.as_uri(), requests, console)
    assert page.title() == "Customer lifetime value: the answers at a glance"
    for title in TITLES:
        heading = page.get_by_role("heading", name=title, exact=True)
        sync_api.expect(heading).to_have_count(1)
        section = page.locator("section").filter(has=heading)
        chart = section.locator("figure.chart > svg")
        sync_api.expect(chart).to_have_count(1)
        chart.scroll_into_view_if_needed()
        box = chart.bounding_box()
        assert box["width"] > 600 and box["height"] > 150, f"{title!r} is drawn too small: {box}"
        assert chart.locator("text").count() > 5, f"{title!r} has no text in its SVG"
    # The payback table is a real table with a header and one row per paid channel.
    assert page.locator("#payback-curves table tbody tr").count() == len(result.payback) > 0
    # Nothing but the file itself (and its data: URIs) was requested.
    assert all(url.startswith(("file://", "data:")) for url in requests), requests
    # No horizontal scrolling at a laptop width.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert not overlapping_tick_labels(page)
    shot = tmp_path / "report-full.png"
    page.screenshot(path=str(shot), full_page=True)
    assert not console, console
    assert shot.stat().st_size > 50_000


@pytest.mark.browser
def test_tick_labels_stay_apart_for_a_big_shop(small_shop, tmp_path, chromium):
    """Money in the millions (the segment-value chart once read "750,0001,000,0001,250,000"): compact ticks."""
    _, browser = chromium
    warehouse = tmp_path / "big.duckdb"
    shutil.copy(small_shop.warehouse, warehouse)
    shutil.copy(marts_path(small_shop.warehouse), marts_path(warehouse))
    with connect(warehouse) as con:
        for table, columns in {
            "segment_clv": ["historical_revenue", "historical_margin", "predicted_clv_365d"],
            "ltv_drivers": ["value_90d_per_customer", "value_365d_per_customer"],
            "customer_clv": ["predicted_clv_365d"],
            "cohort_retention": ["cumulative_revenue_per_customer", "cumulative_margin_per_customer"],
            "cac_payback_curve": ["cumulative_margin_per_customer", "cac"],
        }.items():
            con.execute(f"update marts.{table} set " + ", ".join(f"{c} = {c} * 1000" for c in columns))
    result = build_report(warehouse, tmp_path / "report", pdf=False)
    console: list[str] = []
    page = _open(browser, result.path.as_uri(), [], console)
    assert "M" in page.locator("#segments svg").text_content()  # 1M, 1.5M, ... on the value axis
    assert not overlapping_tick_labels(page)
    assert not console, console


@pytest.mark.browser
def test_dbt_docs_from_a_file_without_console_errors(small_shop, chromium):
    """data/docs/index.html opened from disk: every page, the lineage graph, all 14 marts, not one console error
    (dbt-docs' own page logged ~300 from file://; fixed in reporting/dbt_docs)."""
    _, browser = chromium
    docs = small_shop.data_dir / "docs" / "index.html"
    requests: list[str] = []
    console: list[str] = []
    page = _open(browser, docs.as_uri() + "#!/overview", requests, console)
    assert page.title() == "dbt Docs"
    page.goto(docs.as_uri() + "#!/exposure/exposure.clv_warehouse.bi_dashboard")
    page.wait_for_timeout(500)
    names = set()
    for tab in ("Models", "Nodes"):  # dbt docs lists the models and the other nodes (sources) of an exposure apart
        page.locator("reference-list").get_by_text(tab, exact=True).click()
        page.wait_for_timeout(300)
        names |= set(page.locator("body").inner_text().split())
    assert set(MART_TABLES) <= names, set(MART_TABLES) - names
    page.locator(".launcher-btn").first.click()  # the lineage graph
    page.wait_for_timeout(1500)
    page.goto(docs.as_uri() + "#!/source/source.clv_warehouse.marts_polars.customer_clv")
    page.wait_for_timeout(800)
    assert "Probability that the customer has not silently churned" in page.locator("body").inner_text()
    page.goto(docs.as_uri() + "#!/model/model.clv_warehouse.dim_customers")
    page.wait_for_timeout(800)
    assert "Acquisition cohort: first day of the month" in page.locator("body").inner_text()
    assert all(url.startswith(("file://", "data:")) for url in requests), [u for u in requests if "file" not in u]
    assert not console, console[:10]
