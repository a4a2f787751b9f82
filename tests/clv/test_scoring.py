"""customer_clv assembly: formula CLV, churn-based lifespan, deciles and payback projections, checked by hand."""

from datetime import date

import numpy as np
import polars as pl
import pytest

from pipelines.clv.bgnbd import BgNbdFit, conditional_expected_purchases
from pipelines.clv.gamma_gamma import GammaGammaFit
from pipelines.clv.scoring import annual_churn_rate, expected_margin_by_horizon, model_fit_rows, score_customers

BG = BgNbdFit(
    r=0.243,
    alpha=4.414,
    a=0.793,
    b=2.426,
    log_likelihood=-1.0,
    converged=True,
    n_customers=4,
    iterations=1,
    message="hand",
)
GG = GammaGammaFit(
    p=6.25, q=3.74, gamma=15.44, log_likelihood=-1.0, converged=True, n_customers=2, iterations=1, message="hand"
)


def test_annual_churn_compares_the_last_two_years():
    orders = pl.DataFrame(
        {
            "customer_id": ["e", "a", "a", "b", "c", "c", "d"],
            "order_date": [
                date(2023, 12, 1),
                date(2024, 2, 1),
                date(2025, 3, 1),
                date(2024, 5, 1),
                date(2024, 6, 1),
                date(2024, 7, 1),
                date(2025, 6, 1),
            ],
        }
    )
    # two full years of history: the year before (2024-01-01 .. 2024-12-31) has a, b, c; this year a, d
    # (e is older than both). retention = 1/3 (only a came back) → churn = 2/3
    assert annual_churn_rate(orders.lazy(), date(2025, 12, 31)) == pytest.approx(2 / 3)
    # 700 days of history (without e): two 350-day periods, same customers, retention annualised: 1 − (1/3)^(365/350)
    shorter = orders.filter(pl.col("customer_id") != "e").lazy()
    assert annual_churn_rate(shorter, date(2025, 12, 31)) == pytest.approx(1 - (1 / 3) ** (365 / 350))


def _frames():
    rfm = pl.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "frequency": [0, 2, 5, 1],
            "recency": [0.0, 10.0, 40.0, 3.0],
            "T": [20.0, 30.0, 52.0, 60.0],
            "monetary_value": [0.0, 40.0, 55.0, 30.0],
        }
    )
    customers = pl.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "cohort_month": [date(2025, 1, 1)] * 4,
            "acquisition_channel": ["paid_search", "paid_search", "organic", "email"],
            "orders_count": [1, 3, 6, 2],
            "net_revenue": [50.0, 120.0, 330.0, 0.0],
            "gross_margin": [20.0, 60.0, 99.0, -5.0],
            "aov": [50.0, 40.0, 55.0, 0.0],
            "tenure_days": [140, 210, 730, 420],
        }
    )
    cac = pl.DataFrame({"cohort_month": [date(2025, 1, 1)], "acquisition_channel": ["paid_search"], "cac": [30.0]})
    return rfm, customers, cac


def test_formula_clv_margin_rate_cac_and_decile():
    rfm, customers, cac = _frames()
    scored = score_customers(
        rfm, customers, BG, GG, annual_discount_rate=0.1, default_margin_rate=0.4, lifespan_years=2.5, cac=cac
    )
    row = {r["customer_id"]: r for r in scored.iter_rows(named=True)}
    # a: tenure 140 d < 1 year counts as one year → 50 × 1 × 2.5
    assert row["a"]["formula_clv"] == pytest.approx(125.0)
    # c: 6 orders over 730/365.25 years → 55 × 6 / 1.99863 × 2.5
    assert row["c"]["formula_clv"] == pytest.approx(55 * 6 / (730 / 365.25) * 2.5)
    assert row["b"]["margin_rate"] == pytest.approx(0.5)  # 60 / 120
    assert row["d"]["margin_rate"] == pytest.approx(0.4)  # no revenue → the default
    assert row["b"]["cac"] == 30.0 and row["c"]["cac"] is None
    assert row["b"]["net_clv"] == pytest.approx(row["b"]["predicted_clv_365d"] - 30.0)
    assert row["a"]["formula_clv_net_of_cac"] == pytest.approx(95.0)
    by_value = sorted(row, key=lambda c: -row[c]["predicted_clv_365d"])
    assert [row[c]["clv_decile"] for c in by_value] == [1, 3, 6, 8]  # (rank − 1) × 10 // 4 + 1
    assert row["b"]["p_alive"] < 1.0 and row["a"]["p_alive"] == pytest.approx(1.0)


def test_without_models_the_predictive_columns_are_null():
    rfm, customers, cac = _frames()
    scored = score_customers(
        rfm, customers, None, None, annual_discount_rate=0.1, default_margin_rate=0.4, lifespan_years=None, cac=cac
    )
    assert scored["p_alive"].null_count() == 4 and scored["predicted_clv_365d"].null_count() == 4
    assert scored["historical_revenue"].to_list() == [50.0, 120.0, 330.0, 0.0]
    rows = model_fit_rows(date(2025, 1, 1), None, None, {})
    assert rows.filter(pl.col("parameter") == "converged")["value"].to_list() == [0.0, 0.0]


def test_projection_sums_expected_margin_per_group():
    rfm, customers, cac = _frames()
    scored = score_customers(
        rfm, customers, BG, GG, annual_discount_rate=0.1, default_margin_rate=0.4, lifespan_years=2.5, cac=cac
    )
    projected = expected_margin_by_horizon(scored, BG, ["acquisition_channel"], range(1, 4))
    got = projected.filter((pl.col("acquisition_channel") == "paid_search") & (pl.col("horizon_months") == 3))[
        "expected_margin"
    ][0]
    # independently: customer by customer, 3 months = 3 × 365.25 / 12 / 7 weeks
    expected = 0.0
    for r in scored.filter(pl.col("acquisition_channel") == "paid_search").iter_rows(named=True):
        purchases = conditional_expected_purchases(
            BG, 3 * 365.25 / 12 / 7, np.array([r["frequency"]]), np.array([r["recency"]]), np.array([r["T"]])
        )[0]
        expected += purchases * r["expected_order_value"] * r["margin_rate"]
    assert got == pytest.approx(expected)


def test_months_between_knots_are_interpolated_close_to_exact():
    rfm, customers, cac = _frames()
    scored = score_customers(
        rfm, customers, BG, GG, annual_discount_rate=0.1, default_margin_rate=0.4, lifespan_years=2.5, cac=cac
    )
    interpolated = expected_margin_by_horizon(scored, BG, ["acquisition_channel"], range(1, 13))
    exact = expected_margin_by_horizon(scored, BG, ["acquisition_channel"], range(1, 13), knots=tuple(range(1, 13)))
    joined = interpolated.join(exact, on=["acquisition_channel", "horizon_months"], suffix="_exact")
    five = joined.filter(pl.col("horizon_months") == 5)
    # between the knots 4 and 6, linear interpolation of a concave curve: slightly below, within 2 %
    assert (five["expected_margin"] <= five["expected_margin_exact"] + 1e-9).all()
    assert ((five["expected_margin_exact"] - five["expected_margin"]) <= 0.02 * five["expected_margin_exact"]).all()
    knots = joined.filter(pl.col("horizon_months").is_in([1, 2, 3, 4, 6, 9, 12]))
    assert knots["expected_margin"].to_list() == pytest.approx(knots["expected_margin_exact"].to_list())


def test_fits_round_trip_through_the_fit_history_rows():
    from pipelines.clv.scoring import fits_from_rows

    rows = model_fit_rows(date(2025, 1, 1), BG, GG, {"formula": {"annual_churn_rate": 0.3}})
    bg, gg = fits_from_rows(rows)
    assert (bg.r, bg.alpha, bg.a, bg.b, bg.converged, bg.n_customers) == (
        BG.r,
        BG.alpha,
        BG.a,
        BG.b,
        BG.converged,
        BG.n_customers,
    )
    assert (gg.p, gg.q, gg.gamma, gg.converged, gg.n_customers) == (GG.p, GG.q, GG.gamma, GG.converged, GG.n_customers)
    assert fits_from_rows(model_fit_rows(date(2025, 1, 1), None, None, {})) == (None, None)


def test_scoring_takes_any_purchase_model_and_names_it():
    from pipelines.clv import paretonbd
    from pipelines.clv.paretonbd import ParetoNbdFit

    rfm, customers, cac = _frames()
    pareto = ParetoNbdFit(0.553, 10.58, 0.606, 11.67, -1.0, True, 4, 1, "hand")
    scored = score_customers(
        rfm, customers, pareto, GG, annual_discount_rate=0.1, default_margin_rate=0.4, lifespan_years=2.5, cac=cac
    )
    assert scored["purchase_model"].to_list() == ["pareto_nbd"] * 4
    x, t_x, T = (rfm[c].to_numpy().astype(float) for c in ("frequency", "recency", "T"))
    np.testing.assert_allclose(scored["p_alive"].to_numpy(), paretonbd.p_alive(pareto, x, t_x, T))
    np.testing.assert_allclose(
        scored["expected_purchases_90d"].to_numpy(), paretonbd.conditional_expected_purchases(pareto, 90 / 7, x, t_x, T)
    )
    assert (
        score_customers(
            rfm, customers, BG, GG, annual_discount_rate=0.1, default_margin_rate=0.4, lifespan_years=2.5, cac=cac
        )["purchase_model"].to_list()
        == ["bg_nbd"] * 4
    )
    assert (
        score_customers(
            rfm, customers, None, None, annual_discount_rate=0.1, default_margin_rate=0.4, lifespan_years=2.5, cac=cac
        )["purchase_model"].null_count()
        == 4
    )


def test_the_selected_model_comes_back_from_the_fit_rows():
    from pipelines.clv.mbgnbd import MbgNbdFit
    from pipelines.clv.scoring import fits_from_rows, purchase_fits_from_rows

    mbg = MbgNbdFit(0.52, 6.18, 0.89, 1.61, -1.0, True, 4, 1, "hand")
    rows = model_fit_rows(
        date(2025, 1, 1), {"bg_nbd": BG, "pareto_nbd": None, "mbg_nbd": mbg}, GG, {}, selected="mbg_nbd"
    )
    selected = dict(rows.filter(pl.col("parameter") == "selected").select("model", "value").iter_rows())
    assert selected == {"bg_nbd": 0.0, "pareto_nbd": 0.0, "mbg_nbd": 1.0}
    fit, gg = fits_from_rows(rows)
    assert isinstance(fit, MbgNbdFit) and fit.params == mbg.params and gg.params == GG.params
    fits, name, _ = purchase_fits_from_rows(rows)
    assert name == "mbg_nbd" and set(fits) == {"bg_nbd", "mbg_nbd"}
    # a block written before the models were compared (no 'selected' rows): BG/NBD was the model used
    legacy = rows.filter(pl.col("parameter") != "selected").drop("std_error")
    assert fits_from_rows(legacy)[0].params == BG.params


def test_cohort_survival_by_hand():
    from pipelines.clv.scoring import cohort_survival_table

    scored = pl.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "cohort_month": [date(2025, 1, 1)] * 3 + [date(2025, 6, 1)],
            "p_alive": [0.9, 0.5, 0.1, 1.0],
            "expected_purchases_365d": [3.0, 1.0, 0.2, 2.0],
            "purchase_model": ["bg_nbd"] * 4,
        }
    )
    customers = pl.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            # as of 2025-06-30, the last 90 days are 2025-04-02 .. 2025-06-30
            "last_order_date": [date(2025, 6, 1), date(2025, 4, 2), date(2025, 4, 1), date(2025, 6, 20)],
        }
    )
    table = cohort_survival_table(scored, customers, date(2025, 6, 30))
    jan, jun = table.rows(named=True)
    assert (jan["customers"], jan["months_since_acquisition"], jan["active_customers_last_90d"]) == (3, 5, 2)
    assert jan["mean_p_alive"] == pytest.approx(0.5) and jan["expected_alive_customers"] == pytest.approx(1.5)
    assert jan["active_share_last_90d"] == pytest.approx(2 / 3)
    assert jan["expected_purchases_365d_per_customer"] == pytest.approx(4.2 / 3)
    assert (jun["customers"], jun["months_since_acquisition"], jun["active_share_last_90d"]) == (1, 0, 1.0)
