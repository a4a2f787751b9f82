"""CAC and payback on a hand-made cohort set; every expected number is worked out in the comments."""

from datetime import date

import polars as pl
import pytest

from pipelines.payback.cac import breakeven_cac, cac_by_cohort, payback_curve, payback_summary

D = date


@pytest.fixture
def shop():
    customers = pl.DataFrame(
        {
            "customer_id": ["c1", "c2", "c3", "c4", "c5"],
            "cohort_month": [D(2025, 1, 1), D(2025, 1, 1), D(2025, 2, 1), D(2025, 1, 1), D(2025, 3, 1)],
            "acquisition_channel": ["paid_search", "paid_search", "paid_search", "organic", "paid_social"],
        }
    )
    spend = pl.DataFrame(
        {
            "spend_date": [D(2025, 1, 3), D(2025, 1, 20), D(2025, 2, 7), D(2025, 1, 9), D(2025, 3, 2)],
            "channel": ["paid_search", "paid_search", "paid_search", "affiliate", "paid_social"],
            "spend": [60.0, 40.0, 50.0, 30.0, 80.0],
        }
    )
    orders = pl.DataFrame(
        {
            "customer_id": ["c1", "c1", "c2", "c2", "c3", "c4", "c5"],
            "order_date": [
                D(2025, 1, 5),
                D(2025, 2, 10),
                D(2025, 1, 20),
                D(2025, 3, 1),
                D(2025, 2, 3),
                D(2025, 1, 2),
                D(2025, 3, 10),
            ],
            "gross_margin": [20.0, 40.0, 10.0, 30.0, 60.0, 5.0, 20.0],
        }
    )
    return customers, spend, orders


def test_cac_is_monthly_channel_spend_over_new_customers(shop):
    customers, spend, _ = shop
    cac = cac_by_cohort(customers.lazy(), spend.lazy())
    rows = {(r["cohort_month"], r["acquisition_channel"]): r for r in cac.iter_rows(named=True)}
    assert rows[(D(2025, 1, 1), "paid_search")]["cac"] == pytest.approx(50.0)  # (60 + 40) / 2
    assert rows[(D(2025, 2, 1), "paid_search")]["cac"] == pytest.approx(50.0)  # 50 / 1
    assert rows[(D(2025, 1, 1), "organic")]["cac"] is None  # no spend known
    assert rows[(D(2025, 1, 1), "affiliate")]["new_customers"] == 0  # spend kept, never dropped
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
    assert feb["cumulative_margin_per_customer"].to_list() == pytest.approx(
        [60.0, 60.0]
    )  # dense: month 1 has no orders
    organic = curve.filter(pl.col("acquisition_channel") == "organic")
    assert organic["is_paid_back"].to_list() == [None, None, None]

    projected = pl.DataFrame(
        {
            "cohort_month": [D(2025, 3, 1)] * 3,
            "acquisition_channel": ["paid_social"] * 3,
            "horizon_months": [1, 2, 3],
            "expected_margin": [10.0, 30.0, 70.0],
        }
    )
    summary = payback_summary(curve, cac, projected)
    rows = {(r["cohort_month"], r["acquisition_channel"]): r for r in summary.iter_rows(named=True)}
    assert rows[(D(2025, 1, 1), "paid_search")]["payback_months"] == 2
    assert rows[(D(2025, 1, 1), "paid_search")]["romi"] == pytest.approx(0.0)  # (50 × 2 − 100) / 100
    assert rows[(D(2025, 2, 1), "paid_search")]["payback_months"] == 0
    assert rows[(D(2025, 2, 1), "paid_search")]["romi"] == pytest.approx(0.2)  # (60 − 50) / 50
    social = rows[(D(2025, 3, 1), "paid_social")]
    assert social["payback_months"] is None  # 20 < 80 so far
    # projected per customer: month 1 → 20 + 10 = 30, month 2 → 50, month 3 → 90 ≥ 80
    assert social["predicted_payback_months"] == 3
    assert rows[(D(2025, 1, 1), "paid_search")]["predicted_payback_months"] == 2  # observed wins
    assert rows[(D(2025, 1, 1), "organic")]["payback_months"] is None
    assert rows[(D(2025, 1, 1), "affiliate")]["cac"] is None


# ---------------------------------------------------------------- break-even and affordable CAC, by hand

V = 1.1 ** (-1 / 12)  # one month's discount factor at CLV_ANNUAL_DISCOUNT_RATE 0.10


def _curve(shop, as_of):
    customers, spend, orders = shop
    cac = cac_by_cohort(customers.lazy(), spend.lazy())
    return payback_curve(customers.lazy(), orders.lazy(), cac, as_of.replace(day=1))


PROJECTED = pl.DataFrame(
    {  # expected margin (whole cohort) in each calendar month from the as-of month on
        "cohort_month": [D(2025, 1, 1)] * 3 + [D(2025, 2, 1)] * 3 + [D(2025, 3, 1)] * 4 + [D(2025, 1, 1)] * 3,
        "acquisition_channel": ["paid_search"] * 6 + ["paid_social"] * 4 + ["organic"] * 3,
        "month_offset": [0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 0, 1, 2],
        "expected_margin": [4.0, 6.0, 8.0, 3.0, 5.0, 7.0, 2.0, 10.0, 12.0, 14.0, 1.0, 1.0, 1.0],
    }
)


def test_breakeven_cac_adds_the_projection_to_what_was_observed(shop):
    """As of 2025-03-15, horizons of 2 and 4 months (months 0..1 and 0..3 since acquisition), month m discounted by
    V^m. Observed margin per cohort and month (the shop above): Jan paid_search (2 customers) 30, 40, 30 (March so
    far); Feb paid_search (1) 60, 0; Mar paid_social (1) 20; Jan organic (1) 5, 0, 0. The projection's month
    offset 0 is the rest of March, i.e. month 2 of a January cohort, 1 of February's, 0 of March's."""
    as_of = D(2025, 3, 15)
    result = breakeven_cac(
        _curve(shop, as_of), PROJECTED, as_of, annual_discount_rate=0.10, target_ltv_to_cac=2.0, horizons=(2, 4)
    )
    rows = {(r["cohort_month"], r["acquisition_channel"]): r for r in result.iter_rows(named=True)}
    jan = rows[(D(2025, 1, 1), "paid_search")]
    # 2 months: January and February are over: observed only
    assert jan["breakeven_cac_2m"] == pytest.approx((30 + 40 * V) / 2)
    assert jan["breakeven_cac_2m_is_projected"] is False
    # 4 months: + March so far (30) + the rest of March (4) at V^2 + April (6) at V^3
    assert jan["breakeven_cac_4m"] == pytest.approx((30 + 40 * V + (30 + 4) * V**2 + 6 * V**3) / 2)
    assert jan["breakeven_cac_4m_is_projected"] is True
    assert jan["affordable_cac"] == pytest.approx(jan["breakeven_cac_4m"] / 2.0) and jan["target_ltv_to_cac"] == 2.0
    feb = rows[(D(2025, 2, 1), "paid_search")]
    assert feb["breakeven_cac_2m"] == pytest.approx(60 + 0 * V + 3 * V)  # March is month 1
    assert feb["breakeven_cac_4m"] == pytest.approx(60 + 3 * V + 5 * V**2 + 7 * V**3)
    social = rows[(D(2025, 3, 1), "paid_social")]
    assert social["breakeven_cac_2m"] == pytest.approx(20 + 2 + 10 * V)
    assert social["breakeven_cac_4m"] == pytest.approx(20 + 2 + 10 * V + 12 * V**2 + 14 * V**3)
    organic = rows[(D(2025, 1, 1), "organic")]  # no CAC, but a break-even
    assert organic["breakeven_cac_4m"] == pytest.approx(5 + 1 * V**2 + 1 * V**3)
    assert (D(2025, 1, 1), "affiliate") not in rows  # nobody acquired


def test_without_a_model_only_fully_observed_horizons_have_a_breakeven(shop):
    as_of = D(2025, 3, 31)  # the last day of March: a horizon ending with March is fully observed
    result = breakeven_cac(
        _curve(shop, as_of), None, as_of, annual_discount_rate=0.10, target_ltv_to_cac=3.0, horizons=(2, 4)
    )
    rows = {(r["cohort_month"], r["acquisition_channel"]): r for r in result.iter_rows(named=True)}
    assert rows[(D(2025, 1, 1), "paid_search")]["breakeven_cac_2m"] == pytest.approx((30 + 40 * V) / 2)
    assert rows[(D(2025, 2, 1), "paid_search")]["breakeven_cac_2m"] == pytest.approx(60.0)
    assert rows[(D(2025, 2, 1), "paid_search")]["breakeven_cac_2m_is_projected"] is False
    assert rows[(D(2025, 3, 1), "paid_social")]["breakeven_cac_2m"] is None  # April is still to come
    assert rows[(D(2025, 1, 1), "paid_search")]["breakeven_cac_4m"] is None
    assert rows[(D(2025, 1, 1), "paid_search")]["affordable_cac"] is None


def _fhl_expected_purchases(params, t, x, t_x, T):
    """FHL 2005 eq. (10) with scipy's hyp2f1, as printed."""
    from scipy.special import hyp2f1

    r, alpha, a, b = params
    bracket = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
    dropped = a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x) if x > 0 else 0.0
    return (a + b + x - 1) / (a - 1) * bracket / (1 + dropped)


def test_expected_margin_by_calendar_month_uses_exact_month_ends():
    """As of 2025-03-15: the rest of March is 16 days (to the 31st), April ends 46 days later, May 77, June 107."""
    from pipelines.clv.bgnbd import BgNbdFit
    from pipelines.clv.scoring import expected_margin_by_calendar_month

    fit = BgNbdFit(0.243, 4.414, 0.793, 2.426, -1.0, True, 3, 1, "hand")
    scored = pl.DataFrame(
        {
            "cohort_month": [D(2025, 1, 1), D(2025, 1, 1), D(2025, 2, 1)],
            "acquisition_channel": ["a", "a", "b"],
            "frequency": [0, 3, 1],
            "recency": [0.0, 6.0, 2.0],
            "T": [10.0, 10.0, 5.0],
            "expected_order_value": [40.0, 55.0, 30.0],
            "margin_rate": [0.5, 0.4, 0.25],
        }
    )
    got = expected_margin_by_calendar_month(scored, fit, ["cohort_month", "acquisition_channel"], D(2025, 3, 15), 4)
    ends_days = [16, 46, 77, 107]
    for group, members in (("a", [0, 1]), ("b", [2])):
        previous = 0.0
        for j, days in enumerate(ends_days):
            cumulative = sum(
                _fhl_expected_purchases(
                    fit.params, days / 7, scored["frequency"][i], scored["recency"][i], scored["T"][i]
                )
                * scored["expected_order_value"][i]
                * scored["margin_rate"][i]
                for i in members
            )
            value = got.filter((pl.col("acquisition_channel") == group) & (pl.col("month_offset") == j))
            assert value["expected_margin"].item() == pytest.approx(cumulative - previous, rel=1e-9)
            previous = cumulative
