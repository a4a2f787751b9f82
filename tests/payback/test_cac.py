"""CAC and payback on a hand-made cohort set; every expected number is worked out in the comments."""

from datetime import date

import polars as pl
import pytest

from pipelines.payback.cac import cac_by_cohort, payback_curve, payback_summary

D = date


@pytest.fixture
def shop():
    customers = pl.DataFrame({
        "customer_id": ["c1", "c2", "c3", "c4", "c5"],
        "cohort_month": [D(2025, 1, 1), D(2025, 1, 1), D(2025, 2, 1), D(2025, 1, 1), D(2025, 3, 1)],
        "acquisition_channel": ["paid_search", "paid_search", "paid_search", "organic", "paid_social"],
    })
    spend = pl.DataFrame({
        "spend_date": [D(2025, 1, 3), D(2025, 1, 20), D(2025, 2, 7), D(2025, 1, 9), D(2025, 3, 2)],
        "channel": ["paid_search", "paid_search", "paid_search", "affiliate", "paid_social"],
        "spend": [60.0, 40.0, 50.0, 30.0, 80.0],
    })
    orders = pl.DataFrame({
        "customer_id": ["c1", "c1", "c2", "c2", "c3", "c4", "c5"],
        "order_date": [D(2025, 1, 5), D(2025, 2, 10), D(2025, 1, 20), D(2025, 3, 1), D(2025, 2, 3), D(2025, 1, 2), D(2025, 3, 10)],
        "gross_margin": [20.0, 40.0, 10.0, 30.0, 60.0, 5.0, 20.0],
    })
    return customers, spend, orders


def test_cac_is_monthly_channel_spend_over_new_customers(shop):
    customers, spend, _ = shop
    cac = cac_by_cohort(customers.lazy(), spend.lazy())
    rows = {(r["cohort_month"], r["acquisition_channel"]): r for r in cac.iter_rows(named=True)}
    assert rows[(D(2025, 1, 1), "paid_search")]["cac"] == pytest.approx(50.0)   # (60 + 40) / 2
    assert rows[(D(2025, 2, 1), "paid_search")]["cac"] == pytest.approx(50.0)   # 50 / 1
    assert rows[(D(2025, 1, 1), "organic")]["cac"] is None                        # no spend known
    assert rows[(D(2025, 1, 1), "affiliate")]["new_customers"] == 0               # spend kept, never dropped
    assert rows[(D(2025, 1, 1), "affiliate")]["spend"] == pytest.approx(30.0)
    assert rows[(D(2025, 1, 1), "affiliate")]["cac"] is None


def test_payback_curve_and_months(shop):
    customers, spend, orders = shop
    cac = cac_by_cohort(customers.lazy(), spend.lazy())
    curve = payback_curve(customers.lazy(), orders.lazy(), cac, D(2025, 3, 1))
    jan = curve.filter((pl.col("cohort_month") == D(2025, 1, 1)) & (pl.col("acquisition_channel") == "paid_search"))
    # month 0: (20 + 10) / 2 = 15; month 1: + 40 → 70 / 2 = 35; month 2: + 30 → 100 / 2 = 50 ≥ CAC 50
    assert jan["cumulative_margin_per_customer"].to_list() == pytest.approx([15.0, 35.0, 50.0])
    assert jan["is_paid_back"].to_list() == [False, False, True]
    feb = curve.filter((pl.col("cohort_month") == D(2025, 2, 1)) & (pl.col("acquisition_channel") == "paid_search"))
    assert feb["cumulative_margin_per_customer"].to_list() == pytest.approx([60.0, 60.0])   # dense: month 1 has no orders
    organic = curve.filter(pl.col("acquisition_channel") == "organic")
    assert organic["is_paid_back"].to_list() == [None, None, None]

    projected = pl.DataFrame({
        "cohort_month": [D(2025, 3, 1)] * 3, "acquisition_channel": ["paid_social"] * 3,
        "horizon_months": [1, 2, 3], "expected_margin": [10.0, 30.0, 70.0],
    })
    summary = payback_summary(curve, cac, projected)
    rows = {(r["cohort_month"], r["acquisition_channel"]): r for r in summary.iter_rows(named=True)}
    assert rows[(D(2025, 1, 1), "paid_search")]["payback_months"] == 2
    assert rows[(D(2025, 1, 1), "paid_search")]["romi"] == pytest.approx(0.0)          # (50 × 2 − 100) / 100
    assert rows[(D(2025, 2, 1), "paid_search")]["payback_months"] == 0
    assert rows[(D(2025, 2, 1), "paid_search")]["romi"] == pytest.approx(0.2)          # (60 − 50) / 50
    social = rows[(D(2025, 3, 1), "paid_social")]
    assert social["payback_months"] is None                                             # 20 < 80 so far
    # projected per customer: month 1 → 20 + 10 = 30, month 2 → 50, month 3 → 90 ≥ 80
    assert social["predicted_payback_months"] == 3
    assert rows[(D(2025, 1, 1), "paid_search")]["predicted_payback_months"] == 2        # observed wins
    assert rows[(D(2025, 1, 1), "organic")]["payback_months"] is None
    assert rows[(D(2025, 1, 1), "affiliate")]["cac"] is None
