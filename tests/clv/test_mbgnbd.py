"""MBG/NBD: CDNOW estimates, likelihood and gradient, closed forms against independent computations.

The references here never call ``pipelines.clv.mbgnbd``: integrals over the dropout probability p are done by
numerical quadrature (no Beta-function or hypergeometric closed form; lambda is integrated out by its Gamma
moment-generating function), and the expected purchases are also checked by Monte-Carlo simulation of the model's
generative story.
"""

import math

import numpy as np
import pytest
from purchase_model_checks import PurchaseModelCase, PurchaseModelChecks, cdnow_rfm, customer_columns, hand_fit
from scipy import integrate
from scipy.special import betaln, gammaln

from pipelines.clv import bgnbd, mbgnbd
from pipelines.clv.mbgnbd import (
    MbgNbdFit,
    _MbgNbdLikelihood,
    expected_purchases_new_customer,
    fit_mbgnbd,
    mbgnbd_log_likelihood_terms,
    p_alive,
)

# lifetimes 0.11.3 ModifiedBetaGeoFitter().fit(frequency, recency, T) on the same 2357 CDNOW (x, t_x, T) rows
# (purchase_model_checks.cdnow_rfm; its default BFGS, tol 1e-7): quoted as r 0.525, alpha 6.18, a 0.891, b 1.614,
# and all digits.
QUOTED = {"r": 0.525, "alpha": 6.18, "a": 0.891, "b": 1.614}
LIFETIMES = {"r": 0.5248429031495564, "alpha": 6.183081764399018, "a": 0.8913595172712881, "b": 1.6140029311985986}

PARAMS = (0.525, 6.18, 0.891, 1.614)
PARAMETER_POINTS = [PARAMS, (1.7, 12.0, 0.6, 0.9), (0.3, 2.0, 3.5, 8.0), (5.0, 0.5, 1.3, 0.2)]
TRUTH = (0.5, 6.0, 0.9, 3.0)


# --- independent references -------------------------------------------------------------------------------


def _log_p_integral(a, b, log_factor, x):
    """ln of int_0^1 exp(log_factor(p, 1-p)) Beta(p; a, b) dp by quadrature, scaled by the integrand's largest
    value: in p on [0, 1/2] (break points at the scale 1/(b+x) where (1-p)^x falls) and in w = 1-p on [0, 1/2]
    (break points at 10^-k), so that both end-point singularities are approached without rounding."""

    def log_integrand(p, w):
        return (a - 1.0) * math.log(p) + (b - 1.0) * math.log(w) + log_factor(p, w) - betaln(a, b)

    low = sorted({min(0.5, k / (b + x + 1.0)) for k in (0.01, 0.1, 1.0, 10.0, 100.0)} | {0.5})
    high = sorted({10.0**-k for k in range(1, 12)} | {0.5})
    probes = [log_integrand(p, 1.0 - p) for p in np.linspace(low[0], 0.5, 200)]
    probes += [log_integrand(1.0 - w, w) for w in np.geomspace(high[0], 0.5, 200)]
    scale = max(probes)

    def piece(function, lo, hi):
        return integrate.quad(function, lo, hi, epsabs=0.0, epsrel=1e-13, limit=200)[0]

    total = sum(
        piece(lambda p: math.exp(log_integrand(p, 1.0 - p) - scale), lo, hi) for lo, hi in zip([0.0] + low, low)
    )
    total += sum(
        piece(lambda w: math.exp(log_integrand(1.0 - w, w) - scale), lo, hi) for lo, hi in zip([0.0] + high, high)
    )
    return scale + math.log(total)


def _log_alive_and_dropped_mass(r, alpha, a, b, x, t_x, T):
    """Alive at T: lambda^x e^{-lambda T} (1-p)^(x+1); dropped right after the last purchase (the first, at
    x = 0): lambda^x e^{-lambda t_x} p (1-p)^x. E[lambda^x e^{-lambda v}] is proportional to (alpha+v)^-(r+x)."""
    log_alive = _log_p_integral(a, b, lambda p, w: (x + 1.0) * math.log(w), x) - (r + x) * math.log(alpha + T)
    log_dropped = _log_p_integral(a, b, lambda p, w: math.log(p) + x * math.log(w), x) - (r + x) * math.log(alpha + t_x)
    return log_alive, log_dropped


def reference_log_likelihood(r, alpha, a, b, x, t_x, T):
    log_alive, log_dropped = _log_alive_and_dropped_mass(r, alpha, a, b, x, t_x, T)
    return gammaln(r + x) - gammaln(r) + r * math.log(alpha) + np.logaddexp(log_alive, log_dropped)


def reference_p_alive(r, alpha, a, b, x, t_x, T):
    log_alive, log_dropped = _log_alive_and_dropped_mass(r, alpha, a, b, x, t_x, T)
    return math.exp(log_alive - np.logaddexp(log_alive, log_dropped))


def reference_conditional_expected_purchases(r, alpha, a, b, x, t_x, T, t):
    """Alive at T with (lambda, p): E[Y(t)] = (1 - e^{-lambda p t}) / p; lambda | alive ~ Gamma(r+x, alpha+T)
    gives (1 - ((alpha+T)/(alpha+T+p t))^(r+x)) / p, and p | alive has density proportional to
    (1-p)^(x+1) Beta(p; a, b): both integrals by quadrature."""

    def growth(p):
        return -math.expm1(-(r + x) * math.log1p(p * t / (alpha + T))) / p

    log_weight = _log_p_integral(a, b, lambda p, w: (x + 1.0) * math.log(w), x)
    log_expected = _log_p_integral(a, b, lambda p, w: (x + 1.0) * math.log(w) + math.log(growth(p)), x)
    return reference_p_alive(r, alpha, a, b, x, t_x, T) * math.exp(log_expected - log_weight)


def simulate_mbgnbd(n, r, alpha, a, b, *, seed, max_age_days=728, horizon=0.0):
    """The generative story, vectorised: J ~ Geometric(p) - 1 purchases survived (0: gone right after the first
    purchase); N ~ Poisson(lambda T) purchase opportunities in [0, T]; x = min(N, J), alive iff J > N; t_x the
    x-th of the N uniform arrival times. Also returns the purchases in (T, T + horizon]: min(M, J - N) for the
    alive, M ~ Poisson(lambda horizon)."""
    rng = np.random.default_rng(seed)
    T = rng.integers(1, max_age_days + 1, size=n) / 7.0
    rate = rng.gamma(r, 1.0 / alpha, size=n)
    survived = rng.geometric(np.clip(rng.beta(a, b, size=n), 1e-12, 1.0)) - 1
    arrivals = rng.poisson(rate * T)
    x = np.minimum(arrivals, survived)
    t_x = np.zeros(n)
    repeat = x > 0
    t_x[repeat] = T[repeat] * rng.beta(x[repeat], arrivals[repeat] - x[repeat] + 1)
    alive = survived > arrivals
    future = np.where(alive, np.minimum(rng.poisson(rate * horizon), survived - arrivals), 0)
    return x, t_x, T, alive, future


# --- the checks every purchase model passes ----------------------------------------------------------------------


class TestMbgNbd(PurchaseModelChecks):
    case = PurchaseModelCase(
        fit=fit_mbgnbd,
        simulate=simulate_mbgnbd,
        params=PARAMS,
        truth=TRUTH,
        recovery_rtol=0.15,
        module=mbgnbd,
        fit_type=MbgNbdFit,
        log_likelihood_terms=mbgnbd_log_likelihood_terms,
        likelihood=_MbgNbdLikelihood,
        reference_log_likelihood=reference_log_likelihood,
        reference_p_alive=reference_p_alive,
        reference_conditional_expected_purchases=reference_conditional_expected_purchases,
        parameter_points=tuple(PARAMETER_POINTS),
        # (The expectations share bgnbd's hypergeometric code, which scipy's hyp2f1 can fail on (nan) for extreme
        # parameters such as alpha = 1e-3 with b = 1e4; the likelihood and P(alive) have no such limit.)
        extreme_points=((1e-3, 1e4, 1e-3, 1e-4),),
        log_likelihood_rtol=1e-10,
        gradient_rtol=1e-7,
        expectation_rtol=1e-9,
        discount_populations=(7, 60_000),  # below and above bgnbd's de-duplication threshold
        discount_customers=7,
    )


# --- CDNOW ------------------------------------------------------------------------------------------------------


def test_reproduces_lifetimes_cdnow_fit():
    cdnow = cdnow_rfm()
    fit = fit_mbgnbd(*cdnow)
    assert fit.converged, fit.message
    assert fit.n_customers == 2357
    estimates = {"r": fit.r, "alpha": fit.alpha, "a": fit.a, "b": fit.b}
    for name, quoted in QUOTED.items():
        # Quoted to three or four significant figures: within half a unit of the last digit given.
        decimals = len(repr(quoted).split(".")[1])
        assert abs(estimates[name] - quoted) <= 0.5 * 10.0**-decimals, (name, estimates[name], quoted)
        # lifetimes' full digits: 1e-3 relative (in fact both optimisers agree to ~1e-6).
        assert estimates[name] == pytest.approx(LIFETIMES[name], rel=1e-3), name
    # Our optimum is at least as likely as lifetimes' estimates.
    ll_at_lifetimes, _ = mbgnbd_log_likelihood_terms(tuple(LIFETIMES.values()), *cdnow)
    assert fit.log_likelihood >= ll_at_lifetimes.sum() - 1e-9
    # The MBG/NBD has one more way to drop out than the BG/NBD: on CDNOW it fits a little better.
    assert fit.log_likelihood > bgnbd.fit_bgnbd(*cdnow).log_likelihood


# --- P(alive) and expected purchases ----------------------------------------------------------------------------


@pytest.mark.parametrize("params", PARAMETER_POINTS)
def test_a_customer_without_repeat_purchases_may_be_gone(params):
    alive = p_alive(hand_fit(MbgNbdFit, *params), *customer_columns())
    assert alive[0] < 1.0  # unlike the BG/NBD: the first purchase is a chance to drop out too


@pytest.mark.parametrize("params", PARAMETER_POINTS)
@pytest.mark.parametrize("t", [0.5, 52.0, 520.0])
def test_expected_purchases_new_customer_matches_quadrature(params, t):
    r, alpha, a, b = params
    # Not dropped at the first purchase (1 - p), then (1 - (alpha/(alpha + p t))^r) / p.
    expected = math.exp(
        _log_p_integral(a, b, lambda p, w: math.log(w) + math.log(-math.expm1(-r * math.log1p(p * t / alpha)) / p), 0.0)
    )
    assert float(expected_purchases_new_customer(hand_fit(MbgNbdFit, *params), t)) == pytest.approx(expected, rel=1e-9)


def test_monte_carlo_of_new_customers():
    """The mean E[X(t)] of new customers is the mean of their simulated purchases (4.5 standard errors); the
    customers already seen: TestMbgNbd.test_monte_carlo_of_the_generative_story."""
    params, horizon = TRUTH, 26.0
    rng = np.random.default_rng(12)
    rate = rng.gamma(params[0], 1.0 / params[1], size=400_000)
    survived = rng.geometric(np.clip(rng.beta(params[2], params[3], size=rate.size), 1e-12, 1.0)) - 1
    purchases = np.minimum(rng.poisson(rate * horizon), survived)
    predicted = float(expected_purchases_new_customer(hand_fit(MbgNbdFit, *params), horizon))
    assert abs(purchases.mean() - predicted) < 4.5 * purchases.std() / math.sqrt(rate.size)
