"""Gamma-Gamma likelihood / closed form and the discounted CLV."""

import clv_reference as ref
import numpy as np
import pytest

from pipelines.clv.bgnbd import BgNbdFit
from pipelines.clv.gamma_gamma import (
    GammaGammaFit,
    _GammaGammaLikelihood,
    conditional_expected_order_value,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood_terms,
)
from pipelines.clv.lifetime_value import predicted_clv
from pipelines.clv.simulate import BgNbdParams, GammaGammaParams, simulate_rfm

BG = BgNbdFit(0.243, 4.414, 0.793, 2.426, np.nan, True, 0, 0, "")
GG = GammaGammaFit(6.25, 3.74, 15.44, np.nan, True, 0, 0, "")


def test_log_likelihood_matches_naive_density():
    for x, m in [(1, 10.0), (3, 22.5), (12, 40.0)]:
        ll, _ = gamma_gamma_log_likelihood_terms(GG.params, [x], [m])
        assert ll[0] == pytest.approx(ref.naive_gamma_gamma_log_likelihood(*GG.params, x, m), rel=1e-12)


def test_gradient_matches_finite_differences_and_aggregated_evaluator():
    rfm = simulate_rfm(400, BgNbdParams(0.5, 4.0, 0.8, 2.4), GammaGammaParams(6.25, 3.74, 15.44), seed=7)
    keep = rfm.frequency > 0
    x = np.append(rfm.frequency[keep].astype(float), 500.0)
    m = np.append(rfm.monetary_value[keep], 31.0)
    params = np.array([4.0, 2.5, 11.0])

    ll, gradient = gamma_gamma_log_likelihood_terms(params, x, m)
    assert np.all(np.isfinite(ll)) and np.all(np.isfinite(gradient))
    numeric = np.empty(3)
    for i in range(3):
        h = 1e-6 * params[i]
        up, down = params.copy(), params.copy()
        up[i] += h
        down[i] -= h
        numeric[i] = (
            gamma_gamma_log_likelihood_terms(up, x, m)[0].sum() - gamma_gamma_log_likelihood_terms(down, x, m)[0].sum()
        ) / (2 * h)
    np.testing.assert_allclose(gradient.sum(axis=0), numeric, rtol=1e-6)

    weights = np.linspace(1.0, 3.0, x.size)
    total, aggregated_gradient = _GammaGammaLikelihood(x, m, weights)(params)
    assert total == pytest.approx(float(weights @ ll), rel=1e-12)
    np.testing.assert_allclose(aggregated_gradient, weights @ gradient, rtol=1e-9)


def test_fit_skips_customers_without_positive_repeat_spend():
    rfm = simulate_rfm(5000, BgNbdParams(0.5, 4.0, 0.8, 2.4), GammaGammaParams(6.25, 3.74, 15.44), seed=8)
    base = fit_gamma_gamma(rfm.frequency, rfm.monetary_value)
    padded = fit_gamma_gamma(np.append(rfm.frequency, [3, 0]), np.append(rfm.monetary_value, [0.0, 0.0]))
    assert base.converged and base.n_customers == int((rfm.frequency > 0).sum())
    assert padded.n_customers == base.n_customers
    np.testing.assert_allclose(padded.params, base.params, rtol=1e-10)
    with pytest.raises(ValueError):
        fit_gamma_gamma([0, 2], [0.0, 0.0])


@pytest.mark.parametrize("x, m", [(1, 10.0), (4, 35.0), (40, 18.0)])
def test_conditional_expected_order_value_matches_posterior_integration(x, m):
    expected = ref.conditional_expected_order_value(*GG.params, x, m)
    assert float(conditional_expected_order_value(GG, x, m)) == pytest.approx(expected, rel=1e-7)


def test_conditional_expected_order_value_without_repeat_is_population_mean():
    population_mean = 6.25 * 15.44 / (3.74 - 1)
    values = conditional_expected_order_value(GG, np.array([0, 0]), np.array([0.0, np.nan]))
    np.testing.assert_allclose(values, population_mean, rtol=1e-12)


def _reference_order_value(x, m):
    p, q, gamma = GG.params
    return ((q - 1) / (p * x + q - 1)) * (p * gamma / (q - 1)) + (p * x / (p * x + q - 1)) * m


def test_predicted_clv_matches_monthly_discounted_sum():
    x, t_x, T, m = 2, 30.43, 38.86, 22.35
    step = 52.0 / 12
    expected_value = _reference_order_value(x, m)
    cumulative = [0.0] + [ref.conditional_expected_purchases(*BG.params, x, t_x, T, step * i) for i in range(1, 13)]
    discounted = sum((cumulative[i] - cumulative[i - 1]) * 1.10 ** (-(step * i) / 52.0) for i in range(1, 13))
    clv = predicted_clv(BG, GG, [x], [t_x], [T], [m], margin_rate=0.3, horizon_weeks=52, step_weeks=step)
    assert clv[0] == pytest.approx(discounted * expected_value * 0.3, rel=1e-7)


def test_predicted_clv_without_discount_telescopes_and_scales_with_margin():
    x = np.array([0, 2, 10])
    t_x = np.array([0.0, 30.43, 20.0])
    T = np.array([38.86, 38.86, 38.86])
    m = np.array([0.0, 22.35, 15.0])
    undiscounted = predicted_clv(BG, GG, x, t_x, T, m, annual_discount_rate=0.0, horizon_weeks=52)
    purchases_in_a_year = [ref.conditional_expected_purchases(*BG.params, *c, 52.0) for c in zip(x, t_x, T)]
    reference = np.array(purchases_in_a_year) * np.array([_reference_order_value(*c) for c in zip(x, m)])
    np.testing.assert_allclose(undiscounted, reference, rtol=1e-7)

    margins = np.array([0.1, 0.5, 1.0])
    discounted = predicted_clv(BG, GG, x, t_x, T, m, margin_rate=margins)
    np.testing.assert_allclose(discounted / margins, predicted_clv(BG, GG, x, t_x, T, m), rtol=1e-12)
    assert np.all(discounted / margins < undiscounted)
    assert np.all(predicted_clv(BG, GG, x, t_x, T, m, horizon_weeks=104) > predicted_clv(BG, GG, x, t_x, T, m))
