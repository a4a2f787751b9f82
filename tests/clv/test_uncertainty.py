"""90 % intervals of predicted totals by a parametric bootstrap (pipelines/clv/uncertainty.py), against a bootstrap
written here with plain numpy/scipy: its own draws (numpy's multivariate normal), FHL 2005's closed form for the
expected purchases and Fader-Hardie 2013's for the order value, straight from the papers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import hyp2f1

from pipelines.clv.bgnbd import fit_bgnbd
from pipelines.clv.gamma_gamma import fit_gamma_gamma
from pipelines.clv.simulate import BgNbdParams, GammaGammaParams, simulate_rfm
from pipelines.clv.uncertainty import bootstrap_group_totals, draw_parameters, evaluation_sample

BG_TRUTH = BgNbdParams(0.243, 4.414, 0.793, 2.426)
GG_TRUTH = GammaGammaParams(6.25, 3.74, 15.44)
HORIZON_WEEKS = 365 / 7
DISCOUNT_RATE = 0.10


def expected_purchases(params, t, x, t_x, T):
    """FHL 2005 eq. (10), E[Y(t) | x, t_x, T], with scipy's hyp2f1 as printed in the paper."""
    r, alpha, a, b = params
    z = t / (alpha + T + t)
    bracket = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
    dropped = np.where(x > 0, a / np.where(x > 0, b + x - 1, 1.0) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0)
    return (a + b + x - 1) / (a - 1) * bracket / (1 + dropped)


def order_value(params, x, m):
    p, q, gamma = params
    return p * (gamma + m * x) / (p * x + q - 1)


def monthly_steps():
    ends = np.minimum(np.arange(1, 13) * 365.25 / 12 / 7, HORIZON_WEEKS)
    return ends, (1 + DISCOUNT_RATE) ** (-ends / 52)


def totals_at(bg_params, gg_params, x, t_x, T, m, margin, groups):
    ends, discount = monthly_steps()
    cumulative = np.stack([expected_purchases(bg_params, t, x, t_x, T) for t in ends])
    discounted = discount @ np.diff(cumulative, axis=0, prepend=0.0)
    clv = discounted * order_value(gg_params, x, np.where(x > 0, m, 0.0)) * margin
    return cumulative[-1] @ groups, clv @ groups


def independent_bootstrap(bg, gg, x, t_x, T, m, margin, groups, draws, seed=99):
    rng = np.random.default_rng(seed)
    log_bg = rng.multivariate_normal(np.log(bg.params), bg.covariance / np.outer(bg.params, bg.params), draws)
    log_gg = rng.multivariate_normal(np.log(gg.params), gg.covariance / np.outer(gg.params, gg.params), draws)
    results = [totals_at(np.exp(b), np.exp(g), x, t_x, T, m, margin, groups) for b, g in zip(log_bg, log_gg)]
    return np.array([r[0] for r in results]), np.array([r[1] for r in results])


def _population(n, seed):
    rfm = simulate_rfm(n, BG_TRUTH, GG_TRUTH, max_age_days=728, seed=seed)
    x, t_x, T, m = rfm.frequency.astype(float), rfm.recency, rfm.T, rfm.monetary_value
    bg = fit_bgnbd(x, t_x, T)
    gg = fit_gamma_gamma(x, m)
    margin = np.linspace(0.2, 0.6, n)
    groups = np.column_stack([np.ones(n, dtype=bool), x > 0, x == 0])
    return x, t_x, T, m, margin, groups, bg, gg


@pytest.fixture(scope="module")
def small():
    return _population(600, seed=4)


def test_draws_follow_the_asymptotic_normal_of_the_log_parameters(small):
    *_, bg, _ = small
    draws = draw_parameters(bg.params, bg.covariance, 40_000, np.random.default_rng(1))
    logs = np.log(draws)
    expected = bg.covariance / np.outer(bg.params, bg.params)
    tolerance = 4 * np.sqrt(np.diag(expected) / 40_000)
    np.testing.assert_array_less(np.abs(logs.mean(axis=0) - np.log(bg.params)), tolerance)
    np.testing.assert_allclose(np.cov(logs.T), expected, rtol=0.05, atol=0.05 * np.abs(expected).max())


def test_intervals_match_an_independent_bootstrap(small):
    x, t_x, T, m, margin, groups, bg, gg = small
    got = bootstrap_group_totals(
        bg,
        gg,
        x,
        t_x,
        T,
        m,
        margin,
        groups,
        horizon_weeks=HORIZON_WEEKS,
        annual_discount_rate=DISCOUNT_RATE,
        max_customers=10_000,
    )
    assert got.customers_evaluated == 600 and got.draws == 200
    point_purchases, point_clv = totals_at(bg.params, gg.params, x, t_x, T, m, margin, groups)
    scaled = got.scaled(point_purchases, point_clv)
    purchases, clv = independent_bootstrap(bg, gg, x, t_x, T, m, margin, groups, draws=1_500)
    for low, high, drawn in (
        (scaled["purchases_low"], scaled["purchases_high"], purchases),
        (scaled["clv_low"], scaled["clv_high"], clv),
    ):
        expected_low, expected_high = np.percentile(drawn, [5, 95], axis=0)
        spread = drawn.std(axis=0)
        # 200 draws estimate a 5 % / 95 % quantile to about 0.15 standard deviations: allow 0.4
        np.testing.assert_array_less(np.abs(low - expected_low), 0.4 * spread)
        np.testing.assert_array_less(np.abs(high - expected_high), 0.4 * spread)


def test_the_interval_contains_the_point_and_narrows_with_more_customers():
    widths = []
    for n in (2_000, 32_000):
        x, t_x, T, m, margin, groups, bg, gg = _population(n, seed=7)
        got = bootstrap_group_totals(
            bg, gg, x, t_x, T, m, margin, groups, horizon_weeks=HORIZON_WEEKS, annual_discount_rate=DISCOUNT_RATE
        )
        for low, high in ((got.purchases_low, got.purchases_high), (got.clv_low, got.clv_high)):
            assert np.all(low < 1.0) and np.all(high > 1.0)  # multipliers of the point estimate
        widths.append(got.purchases_high[0] - got.purchases_low[0])
    # 16 times the customers: the parameters' standard errors shrink about 4 times, so does the interval
    assert 2.5 < widths[0] / widths[1] < 6.5


def test_a_sample_of_the_customers_gives_the_interval_of_all_of_them():
    x, t_x, T, m, margin, groups, bg, gg = _population(6_000, seed=9)
    kwargs = dict(horizon_weeks=HORIZON_WEEKS, annual_discount_rate=DISCOUNT_RATE)
    everyone = bootstrap_group_totals(bg, gg, x, t_x, T, m, margin, groups, max_customers=10_000, **kwargs)
    sampled = bootstrap_group_totals(bg, gg, x, t_x, T, m, margin, groups, **kwargs)
    assert everyone.customers_evaluated == 6_000 and sampled.customers_evaluated < 1_000
    for name in ("purchases_low", "purchases_high", "clv_low", "clv_high"):
        half_width = np.abs(getattr(everyone, name) - 1.0)
        np.testing.assert_array_less(np.abs(getattr(sampled, name) - getattr(everyone, name)), 0.15 * half_width)


def test_reruns_agree_and_no_covariance_gives_no_interval(small):
    x, t_x, T, m, margin, groups, bg, gg = small
    kwargs = dict(horizon_weeks=HORIZON_WEEKS, annual_discount_rate=DISCOUNT_RATE)
    first = bootstrap_group_totals(bg, gg, x, t_x, T, m, margin, groups, **kwargs)
    second = bootstrap_group_totals(bg, gg, x, t_x, T, m, margin, groups, **kwargs)
    np.testing.assert_array_equal(first.clv_high, second.clv_high)
    from dataclasses import replace

    none = bootstrap_group_totals(replace(bg, covariance=None), gg, x, t_x, T, m, margin, groups, **kwargs)
    assert np.isnan(none.purchases_low).all() and none.draws == 0
    no_spend = bootstrap_group_totals(bg, None, x, t_x, T, m, margin, groups, **kwargs)
    assert np.isfinite(no_spend.purchases_low).all() and np.isnan(no_spend.clv_low).all()


def test_the_sample_keeps_every_small_group():
    groups = np.zeros((5_000, 2), dtype=bool)
    groups[:, 0] = True
    groups[[10, 20, 30], 1] = True  # a group of three customers
    sample = evaluation_sample(groups, max_customers=100, min_per_group=50)
    assert {10, 20, 30} <= set(sample.tolist()) and 100 <= sample.size <= 103
    np.testing.assert_array_equal(evaluation_sample(groups[:80], max_customers=100), np.arange(80))
