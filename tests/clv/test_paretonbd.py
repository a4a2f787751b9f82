"""Pareto/NBD: CDNOW estimates, likelihood and gradient, closed forms against independent computations.

The references here never call ``pipelines.clv.paretonbd``: the likelihood and P(alive) come from numerical
quadrature over the time of death (lambda and mu integrated out by their Gamma moment-generating functions, no
hypergeometric function), and the expected purchases from quadrature over the future horizon, or from
Monte-Carlo simulation of the model's generative story.
"""

import math

import numpy as np
import pytest
from purchase_model_checks import PurchaseModelCase, PurchaseModelChecks, cdnow_rfm, hand_fit
from scipy import integrate
from scipy.special import gammaln

from pipelines.clv import bgnbd, paretonbd
from pipelines.clv.paretonbd import (
    ParetoNbdFit,
    _log_tail_integral_by_series,
    _log_tail_integral_near_z_one,
    _ParetoNbdLikelihood,
    expected_purchases_new_customer,
    fit_paretonbd,
    paretonbd_log_likelihood_terms,
)

# The published Pareto/NBD fit of the CDNOW calibration period (purchase_model_checks.cdnow_rfm; Fader, Hardie & Lee
# 2005, next to their BG/NBD), to three significant figures: r 0.553, alpha 10.58, s 0.606, beta 11.67;
# alpha = 10.578 and beta = 11.669 to four figures, LL -9595.0 to one decimal.
PUBLISHED = {"r": 0.553, "alpha": 10.58, "s": 0.606, "beta": 11.67}
PUBLISHED_FOUR_FIGURES = {"alpha": 10.578, "beta": 11.669}
PUBLISHED_LOG_LIKELIHOOD = -9595.0
# lifetimes 0.11.3 ParetoNBDFitter().fit(frequency, recency, T) on the same 2357 (x, t_x, T) rows (its default
# Nelder-Mead, tol 1e-7), all digits it printed.
LIFETIMES = {"r": 0.5532858964021248, "alpha": 10.577796408992086, "s": 0.6062082918914262, "beta": 11.667783315639934}

PARAMS = (0.553, 10.58, 0.606, 11.67)
PARAMETER_POINTS = [
    PARAMS,
    (0.5, 20.0, 2.0, 1.0),  # alpha > beta
    (2.0, 1.0, 0.3, 30.0),  # alpha < beta
    (0.3, 5.0, 1.0, 5.0),  # alpha = beta: z = 0
    (0.3, 100.0, 0.5, 0.5),  # beta / alpha = 0.5%: z near 1 for small tau, those rows go to the quadrature
    (3.0, 5000.0, 4.0, 0.05),  # beta / alpha = 1e-5, large r and s
    (0.2, 0.01, 0.1, 2000.0),  # alpha / beta = 5e-6, small r and s
]
TRUTH = (0.8, 8.0, 0.5, 20.0)


# --- independent references -------------------------------------------------------------------------------


def _log_alive_and_dropout_mass(r, alpha, s, beta, x, t_x, T):
    """(ln of the alive term, ln of the death-in-(t_x, T] term, up to the same constant), by quadrature.

    Given (lambda, mu): alive at T contributes lambda^x e^{-lambda T} e^{-mu T}; death at u in (t_x, T] with no
    purchase after t_x contributes lambda^x e^{-lambda u} mu e^{-mu u}. The Gamma expectations are
        E[lambda^x e^{-lambda v}] proportional to (alpha+v)^-(r+x),  E[mu e^{-mu u}] = s beta^s (beta+u)^-(s+1),
    and the death time u is integrated numerically, in v = ln((alpha+u)/(alpha+t_x)) on pieces of geometric
    length (the integrand falls like e^{-(r+s+x) v}), scaled by its largest value.
    """
    log_alive = -(r + x) * math.log(alpha + T) - s * math.log(beta + T)
    if T <= t_x:
        return log_alive, -math.inf

    def log_integrand(u):
        return -(r + x) * math.log(alpha + u) - (s + 1.0) * math.log(beta + u)

    scale = max(log_alive, log_integrand(t_x))
    end = math.log((alpha + T) / (alpha + t_x))
    edges = [0.0] + [2.0**j / (r + s + x) for j in range(-3, 60) if 2.0**j / (r + s + x) < end] + [end]

    def in_v(v):
        u = (alpha + t_x) * math.exp(v) - alpha
        return math.exp(log_integrand(u) - scale) * (alpha + u)

    mass = sum(integrate.quad(in_v, lo, hi, epsabs=0.0, epsrel=1e-13, limit=200)[0] for lo, hi in zip(edges, edges[1:]))
    return log_alive, scale + math.log(s * mass) if mass > 0 else -math.inf


def reference_log_likelihood(r, alpha, s, beta, x, t_x, T):
    log_alive, log_dropout = _log_alive_and_dropout_mass(r, alpha, s, beta, x, t_x, T)
    log_c = gammaln(r + x) - gammaln(r) + r * math.log(alpha) + s * math.log(beta)
    return log_c + np.logaddexp(log_alive, log_dropout)


def reference_p_alive(r, alpha, s, beta, x, t_x, T):
    log_alive, log_dropout = _log_alive_and_dropout_mass(r, alpha, s, beta, x, t_x, T)
    return math.exp(log_alive - np.logaddexp(log_alive, log_dropout))


def reference_conditional_expected_purchases(r, alpha, s, beta, x, t_x, T, t):
    """Alive at T: lambda ~ Gamma(r+x, alpha+T), mu ~ Gamma(s, beta+T), independent, so
    E[Y(t)] = E[lambda] E[min(remaining lifetime, t)] = (r+x)/(alpha+T) * int_0^t E[e^{-mu u}] du."""
    survival, _ = integrate.quad(lambda u: ((beta + T) / (beta + T + u)) ** s, 0.0, t, epsabs=0.0, epsrel=1e-13)
    return reference_p_alive(r, alpha, s, beta, x, t_x, T) * (r + x) / (alpha + T) * survival


def simulate_paretonbd(n, r, alpha, s, beta, *, seed, max_age_days=728, horizon=0.0):
    """The generative story, vectorised: ages uniform on whole days; x ~ Poisson(lambda * time alive in [0, T]),
    t_x the last of x uniform arrival times in that span. Also returns alive-at-T flags and the purchases in
    (T, T + horizon]."""
    rng = np.random.default_rng(seed)
    T = rng.integers(1, max_age_days + 1, size=n) / 7.0
    rate = rng.gamma(r, 1.0 / alpha, size=n)
    lifetime = rng.exponential(1.0 / rng.gamma(s, 1.0 / beta, size=n))
    active = np.minimum(lifetime, T)
    x = rng.poisson(rate * active)
    t_x = np.where(x > 0, active * rng.beta(np.maximum(x, 1), 1.0), 0.0)
    future = rng.poisson(rate * np.clip(lifetime - T, 0.0, horizon))
    return x, t_x, T, lifetime > T, future


# --- the checks every purchase model passes ----------------------------------------------------------------------


class TestParetoNbd(PurchaseModelChecks):
    case = PurchaseModelCase(
        fit=fit_paretonbd,
        simulate=simulate_paretonbd,
        params=PARAMS,
        truth=TRUTH,
        recovery_rtol=0.2,
        module=paretonbd,
        fit_type=ParetoNbdFit,
        log_likelihood_terms=paretonbd_log_likelihood_terms,
        likelihood=_ParetoNbdLikelihood,
        reference_log_likelihood=reference_log_likelihood,
        reference_p_alive=reference_p_alive,
        reference_conditional_expected_purchases=reference_conditional_expected_purchases,
        parameter_points=tuple(PARAMETER_POINTS),
        extreme_points=((50.0, 1e-3, 30.0, 1e4), (1e-3, 1e4, 1e-3, 1e-4)),
        log_likelihood_rtol=1e-11,
        gradient_rtol=1e-6,
        expectation_rtol=1e-10,
        discount_populations=(5000,),
        discount_customers=9,
    )


# --- CDNOW ------------------------------------------------------------------------------------------------------


def test_reproduces_published_and_lifetimes_cdnow_fit():
    cdnow = cdnow_rfm()
    fit = fit_paretonbd(*cdnow)
    assert fit.converged, fit.message
    assert fit.n_customers == 2357
    estimates = {"r": fit.r, "alpha": fit.alpha, "s": fit.s, "beta": fit.beta}
    for name, published in PUBLISHED.items():
        # Quoted to three significant figures: within half a unit of the last digit given.
        half_unit = 0.5 * 10.0 ** (math.floor(math.log10(published)) - 2)
        assert abs(estimates[name] - published) <= half_unit, (name, estimates[name], published)
        # lifetimes' full digits: 1e-3 relative (its Nelder-Mead stops ~1e-4 from the optimum).
        assert estimates[name] == pytest.approx(LIFETIMES[name], rel=1e-3), name
    for name, published in PUBLISHED_FOUR_FIGURES.items():
        assert abs(estimates[name] - published) <= 0.0005, (name, estimates[name], published)
    assert fit.log_likelihood == pytest.approx(PUBLISHED_LOG_LIKELIHOOD, abs=0.05)
    # The Pareto/NBD fits CDNOW slightly worse than the BG/NBD (-9582.4), as FHL report.
    assert fit.log_likelihood < bgnbd.fit_bgnbd(*cdnow).log_likelihood


# --- likelihood by series and by quadrature ---------------------------------------------------------------------


def test_fit_where_lifetimes_are_long_goes_through_the_quadrature_and_recovers_the_truth():
    """beta / alpha = 300: for customers younger than ~100 weeks z > 0.73, beyond the series' reach."""
    truth = (2.0, 1.0, 0.3, 300.0)
    x, t_x, T, _, _ = simulate_paretonbd(20_000, *truth, seed=7)
    t_x = np.ceil(t_x * 7.0) / 7.0
    fit = fit_paretonbd(x, t_x, T)
    assert fit.converged, fit.message
    np.testing.assert_allclose((fit.r, fit.alpha), truth[:2], rtol=0.1)
    # s and beta are weakly identified apart (few deaths observed); the mean death rate s / beta is not.
    assert fit.s / fit.beta == pytest.approx(truth[2] / truth[3], rel=0.2)


def test_series_and_near_one_quadrature_agree_where_both_apply():
    """The two ways of computing ln K and ln G (and gradients), on taus where 1/2 < z < 0.72."""
    rng = np.random.default_rng(0)
    xs = np.array([0.0, 1.0, 3.0, 10.0, 100.0, 1000.0])
    for _ in range(40):
        r, s = np.exp(rng.uniform(np.log(0.05), np.log(20.0), 2))
        larger = np.exp(rng.uniform(np.log(0.1), np.log(1e4)))
        smaller = larger * np.exp(rng.uniform(np.log(0.05), np.log(0.45)))
        alpha, beta = (larger, smaller) if rng.random() < 0.5 else (smaller, larger)
        taus = np.sort(rng.uniform(max(0.0, (larger - smaller) / 0.72 - larger), larger - 2.0 * smaller, 5))
        x_code, tau_code = (c.ravel() for c in np.meshgrid(np.arange(xs.size), np.arange(taus.size), indexing="ij"))
        for alive in (True, False):
            args = (r, alpha, s, beta, xs, taus, x_code, tau_code, alive, True)
            series, series_grad = _log_tail_integral_by_series(*args)
            quadrature, quadrature_grad = _log_tail_integral_near_z_one(*args)
            np.testing.assert_allclose(quadrature, series, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(quadrature_grad, series_grad, rtol=1e-9, atol=1e-9)


# --- expected purchases -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [PARAMS, (2.0, 1.0, 1.0, 30.0), (0.5, 20.0, 2.0, 1.0)])  # s = 1: log limit
@pytest.mark.parametrize("t", [0.5, 52.0, 520.0])
def test_expected_purchases_new_customer_matches_quadrature(params, t):
    r, alpha, s, beta = params
    survival, _ = integrate.quad(lambda u: (beta / (beta + u)) ** s, 0.0, t, epsabs=0.0, epsrel=1e-13)
    assert float(expected_purchases_new_customer(hand_fit(ParetoNbdFit, *params), t)) == pytest.approx(
        r / alpha * survival, rel=1e-10
    )


def test_monte_carlo_of_new_customers():
    """The mean E[X(t)] of new customers is the mean of their simulated purchases (4.5 standard errors); the
    customers already seen: TestParetoNbd.test_monte_carlo_of_the_generative_story."""
    params, horizon = TRUTH, 26.0
    rng = np.random.default_rng(12)
    rate = rng.gamma(params[0], 1.0 / params[1], size=400_000)
    lifetime = rng.exponential(1.0 / rng.gamma(params[2], 1.0 / params[3], size=rate.size))
    purchases = rng.poisson(rate * np.minimum(lifetime, horizon))
    predicted = float(expected_purchases_new_customer(hand_fit(ParetoNbdFit, *params), horizon))
    assert abs(purchases.mean() - predicted) < 4.5 * purchases.std() / math.sqrt(rate.size)
