"""Every purchase model back-tested on the same split, the formula beside them, and the selection rule
(pipelines/clv/models.py, pipelines/clv/backtest.py), against numbers recomputed here from the raw orders."""

from __future__ import annotations

import datetime
import math
from collections import defaultdict

import clv_reference as ref
import numpy as np
import polars as pl
import pytest

from pipelines.clv.backtest import FORMULA, backtest_table, calibration_holdout_backtest
from pipelines.clv.models import PURCHASE_MODELS, fit_or_reason, model_of, purchase_model, select_purchase_model
from pipelines.clv.rfm import rfm_summary
from pipelines.clv.simulate import BgNbdParams, GammaGammaParams, simulate_orders
from pipelines.settings import PURCHASE_MODEL_NAMES

D = datetime.date
ALL = ("bg_nbd", "pareto_nbd", "mbg_nbd")


# ---------------------------------------------------------------- the rule on constructed errors


def test_the_lowest_holdout_error_wins():
    chosen = select_purchase_model(ALL, {"bg_nbd": 0.52, "pareto_nbd": 0.47, "mbg_nbd": 0.49})
    assert chosen.model == "pareto_nbd" and not chosen.overridden
    assert "Pareto/NBD 0.47" in chosen.reason and "BG/NBD 0.52" in chosen.reason


def test_a_tie_goes_to_the_earlier_model():
    assert select_purchase_model(ALL, {"bg_nbd": 0.5, "pareto_nbd": 0.4, "mbg_nbd": 0.4}).model == "pareto_nbd"
    assert select_purchase_model(ALL, {"bg_nbd": 0.4, "pareto_nbd": 0.4, "mbg_nbd": 0.4}).model == "bg_nbd"


def test_a_model_that_did_not_converge_is_left_out():
    # MBG/NBD has the lowest error but its fit on the whole history did not converge: not a candidate
    assert (
        select_purchase_model(("bg_nbd", "pareto_nbd"), {"bg_nbd": 0.5, "pareto_nbd": 0.6, "mbg_nbd": 0.1}).model
        == "bg_nbd"
    )
    # converged on the whole history but not back-tested (its calibration fit failed): not compared
    assert select_purchase_model(ALL, {"bg_nbd": 0.5, "mbg_nbd": 0.45}).model == "mbg_nbd"
    assert select_purchase_model((), {"bg_nbd": 0.5}).model is None


def test_without_a_backtest_the_default_order_decides():
    assert select_purchase_model(ALL, {}).model == "bg_nbd"
    assert select_purchase_model(("mbg_nbd", "pareto_nbd"), {}).model == "pareto_nbd"
    assert select_purchase_model(ALL, {"bg_nbd": None, "pareto_nbd": math.nan}).model == "bg_nbd"


def test_the_override_wins_when_it_converged():
    chosen = select_purchase_model(ALL, {"bg_nbd": 0.4, "pareto_nbd": 0.5}, override="mbg_nbd")
    assert (chosen.model, chosen.overridden) == ("mbg_nbd", True)
    fallback = select_purchase_model(("bg_nbd", "pareto_nbd"), {"bg_nbd": 0.5, "pareto_nbd": 0.4}, override="mbg_nbd")
    assert (fallback.model, fallback.overridden) == ("pareto_nbd", False)
    assert fallback.reason.startswith("CLV_PURCHASE_MODEL=mbg_nbd did not converge")
    with pytest.raises(ValueError, match="unknown purchase model"):
        select_purchase_model(ALL, {}, override="pareto")


def test_the_registry_and_the_settings_name_the_same_models():
    assert tuple(PURCHASE_MODELS) == PURCHASE_MODEL_NAMES
    for name, model in PURCHASE_MODELS.items():
        assert purchase_model(name) is model and model.name == name
        assert len(model.parameter_names) == 4


def test_fit_or_reason_keeps_the_reason():
    assert fit_or_reason("X", lambda: 1 / 0)[1] == "X fit failed (ZeroDivisionError: division by zero)"


# ---------------------------------------------------------------- the back-test of every model


START, CALIBRATION_END, HOLDOUT_END = D(2020, 1, 1), D(2020, 9, 30), D(2021, 6, 30)


def simulated_shop(customers: int) -> pl.DataFrame:
    """A BG/NBD shop (the CDNOW estimates) acquiring customers over 12 weeks, observed to the hold-out's end."""
    return simulate_orders(
        customers,
        BgNbdParams(0.243, 4.414, 0.793, 2.426),
        GammaGammaParams(6.25, 3.74, 15.44),
        start=START,
        acquisition_days=84,
        end=HOLDOUT_END,
        seed=5,
    )


@pytest.fixture(scope="module")
def orders() -> pl.DataFrame:
    return simulated_shop(4_000)


@pytest.fixture(scope="module")
def backtest(orders):
    return calibration_holdout_backtest(orders.lazy(), CALIBRATION_END, HOLDOUT_END, models=ALL, formula=True)


def _holdout_by_hand(orders: pl.DataFrame) -> tuple[dict, dict, set]:
    """(purchase days, revenue) of each calibration customer in the hold-out, counted in plain Python."""
    days, revenue, calibration_customers = defaultdict(set), defaultdict(float), set()
    for customer, day, value in orders.select("customer_id", "order_date", "revenue").iter_rows():
        if day <= CALIBRATION_END:
            calibration_customers.add(customer)
        elif day <= HOLDOUT_END:
            days[customer].add(day)
            revenue[customer] += value
    return days, revenue, calibration_customers


def test_every_model_is_backtested_and_the_errors_are_recomputed(orders, backtest):
    assert set(backtest.by_model) == {*ALL, FORMULA} and not backtest.notes
    days, revenue, customers = _holdout_by_hand(orders)
    errors = {}
    for name, result in backtest.by_model.items():
        per_customer = result.per_customer
        assert set(per_customer["customer_id"].to_list()) == customers
        actual = {c: len(days.get(c, ())) for c in customers}
        got = dict(zip(per_customer["customer_id"].to_list(), per_customer["actual"].to_list()))
        assert got == actual
        actual_revenue = dict(zip(per_customer["customer_id"].to_list(), per_customer["actual_revenue"].to_list()))
        assert all(actual_revenue[c] == pytest.approx(revenue.get(c, 0.0)) for c in customers)
        predicted = per_customer["predicted"].to_numpy()
        observed = per_customer["actual"].to_numpy()
        mae = float(np.mean(np.abs(predicted - observed)))
        overall = result.overall.row(0, named=True)
        assert overall["mae_per_customer"] == pytest.approx(mae, rel=1e-12)
        assert overall["aggregate_pct_error"] == pytest.approx(predicted.sum() / observed.sum() - 1, rel=1e-12)
        predicted_revenue = per_customer["predicted_revenue"].to_numpy()
        assert overall["revenue_aggregate_pct_error"] == pytest.approx(
            predicted_revenue.sum() / sum(revenue.values()) - 1, rel=1e-12
        )
        if name != FORMULA:
            errors[name] = mae
    assert backtest.purchase_mae() == pytest.approx(errors)
    # the rule picks the argmin of the errors recomputed here
    assert select_purchase_model(ALL, backtest.purchase_mae()).model == min(errors, key=errors.get)


def test_predictions_of_the_backtest_match_the_reference_quadrature(orders, backtest):
    """BG/NBD's hold-out prediction and the revenue (× Gamma-Gamma expected order value) of a few customers, by
    numerical integration over the mixing distributions (tests/clv/clv_reference.py), from the calibration fits."""
    result = backtest.by_model["bg_nbd"]
    bg, gg = result.fit, backtest.gamma_gamma
    holdout_weeks = (HOLDOUT_END - CALIBRATION_END).days / 7
    calibration = orders.filter(pl.col("order_date") <= CALIBRATION_END)
    per_day = calibration.group_by("customer_id", "order_date").agg(pl.col("revenue").sum()).sort("order_date")
    rows = {r["customer_id"]: r for r in result.per_customer.iter_rows(named=True)}
    checked = 0
    for customer, group in per_day.group_by("customer_id", maintain_order=True):
        dates, values = group["order_date"].to_list(), group["revenue"].to_list()
        x = len(dates) - 1
        if x < 1 or checked >= 4:
            continue
        t_x, T = (dates[-1] - dates[0]).days / 7, (CALIBRATION_END - dates[0]).days / 7
        m = sum(values[1:]) / x
        expected = ref.conditional_expected_purchases(*bg.params, x, t_x, T, holdout_weeks)
        value = ref.conditional_expected_order_value(*gg.params, x, m)
        row = rows[customer[0]]
        assert row["predicted"] == pytest.approx(expected, rel=1e-7)
        assert row["predicted_revenue"] == pytest.approx(expected * value, rel=1e-7)
        checked += 1
    assert checked == 4


@pytest.mark.parametrize("customers", [4_000, 60_000])  # below and above 50 k: the models deduplicate (x, T) there
def test_the_backtest_fits_and_predicts_as_a_fit_on_every_calibration_customer(customers):
    """The back-test fits each model to the distinct (x, t_x, T) rows, weighted, and predicts them once each: the
    fits and every customer's prediction are those of the model fitted to, and predicting, every customer, to the
    last bit."""
    orders = simulated_shop(customers)
    result = calibration_holdout_backtest(orders.lazy(), CALIBRATION_END, HOLDOUT_END, models=ALL, revenue=False)
    summary = rfm_summary(orders.lazy(), CALIBRATION_END).collect()
    x, t_x, T = (summary[c].to_numpy().astype(np.float64) for c in ("frequency", "recency", "T"))
    holdout_weeks = (HOLDOUT_END - CALIBRATION_END).days / 7
    for name in ALL:
        model = PURCHASE_MODELS[name]
        fit = model.fit(x, t_x, T, covariance=False)
        got = result.by_model[name]
        assert (got.fit.params, got.fit.log_likelihood, got.fit.iterations, got.fit.n_customers) == (
            fit.params,
            fit.log_likelihood,
            fit.iterations,
            fit.n_customers,
        ), name
        expected = dict(
            zip(summary["customer_id"], model.conditional_expected_purchases(fit, holdout_weeks, x, t_x, T))
        )
        per_customer = got.per_customer
        assert per_customer["predicted"].to_list() == [expected[c] for c in per_customer["customer_id"]], name


def test_the_backtest_table_has_one_block_per_model(backtest):
    table = backtest_table(backtest)
    assert table.group_by("model").len().sort("model").rows() == sorted((m, 9) for m in (*ALL, FORMULA))
    overall = table.filter(pl.col("frequency_bucket") == "all")
    for row in overall.iter_rows(named=True):
        assert row["mean_predicted"] == pytest.approx(row["predicted_total"] / row["customers"])
        assert row["mean_actual_revenue"] == pytest.approx(row["revenue_actual_total"] / row["customers"])


def test_the_first_model_is_the_result_of_a_single_model_backtest(orders, backtest):
    single = calibration_holdout_backtest(orders.lazy(), CALIBRATION_END, HOLDOUT_END)
    assert set(single.by_model) == {"bg_nbd"} and model_of(single.fit).name == "bg_nbd"
    for key, value in backtest.by_model["bg_nbd"].overall.row(0, named=True).items():
        assert single.overall[key][0] == pytest.approx(value, rel=1e-9), key


# ---------------------------------------------------------------- the formula, by hand


def test_the_formula_backtest_by_hand():
    """Three customers, calibration to 2024-06-30, hold-out to 2024-12-31 (184 days = 184/365.25 years).

    Churn from the calibration period: 182 days of history, so two periods of 91 days; active in the first
    (to 2024-03-31): A, B, C; of them in the second: C -> retention 1/3, annual churn 1 - (1/3)^(365/91),
    lifespan = 1/churn (1.012 years) > the hold-out, so each customer keeps their rate for the whole hold-out.
    Rates are purchase days per year over a tenure of at least one year (all tenures here are under a year):
      A: days 01-01, 03-01 -> 2/year, 75 per purchase day (150 / 2); hold-out: 1 day, 60
      B: day 02-01 -> 1/year, 40; hold-out: nothing
      C: days 01-15 (two orders, 50), 05-01 (70) -> 2/year, 60; hold-out: 07-10 (two orders, 15), 09-01 (25)
    """
    orders = pl.DataFrame(
        {
            "customer_id": ["A", "A", "A", "B", "C", "C", "C", "C", "C", "C"],
            "order_date": [
                D(2024, 1, 1),
                D(2024, 3, 1),
                D(2024, 8, 1),
                D(2024, 2, 1),
                D(2024, 1, 15),
                D(2024, 1, 15),
                D(2024, 5, 1),
                D(2024, 7, 10),
                D(2024, 7, 10),
                D(2024, 9, 1),
            ],
            "revenue": [100.0, 50.0, 60.0, 40.0, 30.0, 20.0, 70.0, 10.0, 5.0, 25.0],
        }
    )
    result = calibration_holdout_backtest(
        orders.lazy(), D(2024, 6, 30), D(2024, 12, 31), models=(), formula=True, revenue=False
    )
    h = 184 / 365.25
    churn = 1 - (1 / 3) ** (365 / 91)
    assert 1 / churn > h
    block = result.by_model[FORMULA]
    rows = {r["customer_id"]: r for r in block.per_customer.iter_rows(named=True)}
    expected = {"A": (2 * h, 150 * h, 1, 60.0), "B": (h, 40 * h, 0, 0.0), "C": (2 * h, 120 * h, 2, 40.0)}
    for customer, (purchases, revenue, actual, actual_revenue) in expected.items():
        assert rows[customer]["predicted"] == pytest.approx(purchases)
        assert rows[customer]["predicted_revenue"] == pytest.approx(revenue)
        assert (rows[customer]["actual"], rows[customer]["actual_revenue"]) == (actual, pytest.approx(actual_revenue))
    overall = block.overall.row(0, named=True)
    assert overall["mae_per_customer"] == pytest.approx((abs(2 * h - 1) + h + abs(2 * h - 2)) / 3)
    assert overall["revenue_aggregate_pct_error"] == pytest.approx(310 * h / 100 - 1)
    assert overall["aggregate_pct_error"] == pytest.approx(5 * h / 3 - 1)


def test_every_model_is_p_alive_times_purchases_if_alive():
    """The factorisation the group totals rely on (scoring.expected_margin_by_calendar_month): for every model
    E[Y(t) | x, t_x, T] = P(alive | x, t_x, T) × E[Y(t) | alive, x, T]."""
    from pipelines.clv.bgnbd import BgNbdFit
    from pipelines.clv.mbgnbd import MbgNbdFit
    from pipelines.clv.paretonbd import ParetoNbdFit

    fits = {
        "bg_nbd": BgNbdFit(0.243, 4.414, 0.793, 2.426, 0.0, True, 0, 0, ""),
        "pareto_nbd": ParetoNbdFit(0.553, 10.58, 0.606, 11.67, 0.0, True, 0, 0, ""),
        "mbg_nbd": MbgNbdFit(0.525, 6.183, 0.891, 1.614, 0.0, True, 0, 0, ""),
    }
    x, t_x, T = np.array([0.0, 1, 3, 10, 40]), np.array([0.0, 5, 20, 30, 50]), np.array([10.0, 20, 40, 50, 52])
    t = np.array([[4.0], [26.0], [52.0]])
    for name, fit in fits.items():
        model = PURCHASE_MODELS[name]
        assert model_of(fit) is model
        product = model.p_alive(fit, x, t_x, T) * model.expected_purchases_if_alive(fit, t, x[None], T[None])
        np.testing.assert_allclose(
            product, model.conditional_expected_purchases(fit, t, x[None], t_x[None], T[None]), rtol=1e-12
        )
