"""Back-test on a simulated BG/NBD population, and the simulator itself."""

import datetime

import numpy as np
import polars as pl
import pytest

from pipelines.clv.backtest import calibration_holdout_backtest, default_backtest_split
from pipelines.clv.bgnbd import BgNbdFit, expected_purchases_new_customer
from pipelines.clv.simulate import BgNbdParams, GammaGammaParams, simulate_orders, simulate_rfm

BG_TRUTH = BgNbdParams(0.243, 4.414, 0.793, 2.426)
GG_TRUTH = GammaGammaParams(6.25, 3.74, 15.44)
START, CALIBRATION_END, HOLDOUT_END = datetime.date(2020, 1, 1), datetime.date(2020, 9, 30), datetime.date(2021, 6, 30)


@pytest.fixture(scope="module")
def simulated_orders() -> pl.DataFrame:
    return simulate_orders(20_000, BG_TRUTH, GG_TRUTH, start=START, acquisition_days=84, end=HOLDOUT_END, seed=11)


def test_backtest_on_simulated_population(simulated_orders):
    result = calibration_holdout_backtest(simulated_orders.lazy(), CALIBRATION_END, HOLDOUT_END)
    overall = result.overall.row(0, named=True)
    assert overall["customers"] == 20_000
    assert abs(overall["aggregate_pct_error"]) < 0.05
    assert overall["predicted_total"] == pytest.approx(result.per_customer["predicted"].sum())
    assert overall["mae_per_customer"] > 0

    buckets = result.by_frequency
    assert buckets["frequency_bucket"].to_list() == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert buckets["customers"].sum() == 20_000
    # Heavier calibration buyers are expected, and observed, to buy more.
    assert np.all(np.diff(buckets["mean_predicted"].to_numpy()) > 0)
    assert buckets["mean_actual"][-1] > buckets["mean_actual"][0]


def test_backtest_counts_holdout_purchase_days(simulated_orders):
    extra = pl.DataFrame(  # two orders on one hold-out day + a customer first seen in the hold-out
        {
            "customer_id": [0, 0, 10**9],
            "order_date": [datetime.date(2021, 1, 5)] * 3,
            "revenue": [1.0, 2.0, 3.0],
        }
    )
    orders = pl.concat([simulated_orders, extra])
    result = calibration_holdout_backtest(orders.lazy(), CALIBRATION_END, HOLDOUT_END)
    per_customer = result.per_customer
    assert 10**9 not in per_customer["customer_id"].to_list()

    in_holdout = [
        (c, d)
        for c, d in zip(orders["customer_id"].to_list(), orders["order_date"].to_list())
        if CALIBRATION_END < d <= HOLDOUT_END
    ]
    for customer in (0, 1, 2, 3, 17):
        expected = len({d for c, d in in_holdout if c == customer})
        actual = per_customer.filter(pl.col("customer_id") == customer)["actual"].item()
        assert actual == expected


def test_default_split_uses_26_weeks_or_a_third_of_short_histories():
    as_of = datetime.date(2024, 6, 30)
    assert default_backtest_split(datetime.date(2020, 1, 1), as_of) == (as_of - datetime.timedelta(weeks=26), as_of)
    calibration_end, holdout_end = default_backtest_split(as_of - datetime.timedelta(days=90), as_of)
    assert (holdout_end - calibration_end).days == 30
    with pytest.raises(ValueError):
        default_backtest_split(as_of, as_of)


def test_simulated_frequencies_match_unconditional_expectation():
    rfm = simulate_rfm(200_000, BG_TRUTH, GG_TRUTH, max_age_days=364, seed=3)
    truth = BgNbdFit(BG_TRUTH.r, BG_TRUTH.alpha, BG_TRUTH.a, BG_TRUTH.b, np.nan, True, 0, 0, "")
    expected = expected_purchases_new_customer(truth, rfm.T).mean()
    standard_error = rfm.frequency.std() / np.sqrt(rfm.frequency.size)
    assert abs(rfm.frequency.mean() - expected) < 4 * standard_error
    assert np.all(rfm.recency <= rfm.T) and np.all(rfm.recency[rfm.frequency == 0] == 0)
    assert np.all(rfm.monetary_value[rfm.frequency == 0] == 0) and np.all(rfm.monetary_value[rfm.frequency > 0] > 0)
