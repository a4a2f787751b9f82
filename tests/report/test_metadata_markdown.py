"""The report's figures as markdown in Dagster's metadata: the same cells as the page's tables."""

from __future__ import annotations

from types import SimpleNamespace

from pipelines.markdown import markdown_table
from pipelines.report.metadata import payback_markdown

ROW = {
    "acquisition_channel": "email",
    "cohorts": 12,
    "new_customers": 1234,
    "spend": 5000.4,
    "cac": 4.05,
    "cohorts_paid_back": 9,
    "median_payback_months": 2,
    "median_predicted_payback_months": None,
    "pooled_payback_month": 3,
    "ltv_to_cac_12m": 2.5,
    "breakeven_cac_36m": 30.125,
    "affordable_cac": 10.0,
    "target_ltv_to_cac": 3.0,
}


def test_markdown_table_aligns_columns():
    assert markdown_table(["a", "b"], [["x", "1"]], "lr") == "| a | b |\n|---|---:|\n| x | 1 |"
    assert markdown_table(["a"], [], None) == "| a |\n|---|"


def test_payback_markdown_is_the_page_table():
    lines = payback_markdown(SimpleNamespace(payback=[ROW])).split("\n")
    assert lines[0].startswith("| channel | cohorts | new customers | spend | CAC |")
    assert lines[0].endswith("| affordable CAC (LTV:CAC 3×) |")
    assert lines[1] == "|---" + "|---:" * 11 + "|"
    assert lines[2] == "| email | 12 | 1,234 | 5,000 | 4.05 | 9 / 12 | 2 | – | 3 | 2.50 | 30.12 | 10.00 |"
    assert payback_markdown(SimpleNamespace(payback=[])) == "_no channel with known marketing spend_"
