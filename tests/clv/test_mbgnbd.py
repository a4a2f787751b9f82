"""MBG/NBD: CDNOW estimates, likelihood and gradient, closed forms against independent computations.

The references here never call ``pipelines.clv.mbgnbd``: integrals over the dropout probability p are done by
numerical quadrature (no Beta-function or hypergeometric closed form; lambda is integrated out by its Gamma
moment-generating function), and the expected purchases are also checked by Monte-Carlo simulation of the model's
generative story.
"""

import datetime
import inspect
import math

import numpy as np
import polars as pl
import pytest
from clv_reference import load_cdnow_orders
from scipy import integrate
from scipy.special import betaln, gammaln

from pipelines.clv import bgnbd, mbgnbd, rfm_summary
from pipelines.clv._mle import collapse_identical_rows
from pipelines.clv.mbgnbd import (
    MbgNbdFit,
    _MbgNbdLikelihood,
    conditional_expected_purchases,
    discounted_expected_purchases,
    expected_purchases_new_customer,
    fit_mbgnbd,
    mbgnbd_log_likelihood_terms,
    p_alive,
)

CALIBRATION_END = datetime.date(1997, 9, 30)  # as tests/clv/test_cdnow_published_fits.py: 39-week calibration

# lifetimes 0.11.3 ModifiedBetaGeoFitter().fit(frequency, recency, T) on the same 2357 (x, t_x, T) rows as the
# fixture below (its default BFGS, tol 1e-7): quoted as r 0.525, alpha 6.18, a 0.891, b 1.614, and all digits.
QUOTED = {"r": 0.525, "alpha": 6.18, "a": 0.891, "b": 1.614}
LIFETIMES = {"r": 0.5248429031495564, "alpha": 6.183081764399018, "a": 0.8913595172712881, "b": 1.6140029311985986}

PARAMS = (0.525, 6.18, 0.891, 1.614)
PARAMETER_POINTS = [PARAMS, (1.7, 12.0, 0.6, 0.9), (0.3, 2.0, 3.5, 8.0), (5.0, 0.5, 1.3, 0.2)]

CUSTOMERS = [  # (x, t_x, T) in weeks
    (0, 0.0, 38.86),
    (1, 1.71, 38.86),
    (2, 30.43, 38.86),
    (7, 35.0, 36.0),
    (7, 5.0, 36.0),
    (60, 50.0, 52.0),
    (400, 100.0, 104.0),
    (1000, 4990.0, 5000.0),  # large x and T
    (1000, 4000.0, 5000.0),  # large x, silent for 1000 weeks: P(alive) underflows to 0
]


def _fit(r, alpha, a, b) -> MbgNbdFit:
    return MbgNbdFit(r, alpha, a, b, log_likelihood=np.nan, converged=True, n_customers=0, iterations=0, message="")


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


# --- CDNOW ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cdnow():
    calibration = rfm_summary(pl.LazyFrame(load_cdnow_orders()), CALIBRATION_END).collect().sort("customer_id")
    return tuple(calibration[c].to_numpy() for c in ("frequency", "recency", "T"))


def test_reproduces_lifetimes_cdnow_fit(cdnow):
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


def test_fit_is_invariant_to_row_order(cdnow):
    order = np.random.default_rng(3).permutation(cdnow[0].size)
    a = fit_mbgnbd(*cdnow)
    b = fit_mbgnbd(*(column[order] for column in cdnow))
    np.testing.assert_allclose(a.params, b.params, rtol=1e-9)


# --- likelihood and gradient ------------------------------------------------------------------------------------


@pytest.mark.parametrize("params", PARAMETER_POINTS)
def test_log_likelihood_matches_quadrature(params):
    x, t_x, T = (np.array([c[k] for c in CUSTOMERS], dtype=float) for k in range(3))
    ll, gradient = mbgnbd_log_likelihood_terms(params, x, t_x, T)
    expected = [reference_log_likelihood(*params, *customer) for customer in CUSTOMERS]
    # atol: an absolute error in ln L is a relative error in L.
    np.testing.assert_allclose(ll, expected, rtol=1e-10, atol=1e-10)
    assert np.all(np.isfinite(gradient))


def _richardson_gradient(function, params, step=1e-4):
    """Central differences at relative steps h and 2h, Richardson-extrapolated: O(h^4) truncation error."""
    params = np.asarray(params, dtype=float)
    gradient = np.empty_like(params)
    for i in range(params.size):

        def central(h, i=i):
            up, down = params.copy(), params.copy()
            up[i] *= 1.0 + h
            down[i] *= 1.0 - h
            return (function(up) - function(down)) / (2.0 * h * params[i])

        gradient[i] = (4.0 * central(step) - central(2.0 * step)) / 3.0
    return gradient


def _gradient_sample():
    x, t_x, T, _, _ = simulate_mbgnbd(300, *PARAMS, seed=1)
    return (
        np.append(x, [500, 25, 1000]).astype(float),
        np.append(t_x, [90.0, 3.0, 4000.0]),
        np.append(T, [104.0, 104.0, 5000.0]),
    )


@pytest.mark.parametrize("params", PARAMETER_POINTS)
def test_gradient_matches_finite_differences(params):
    x, t_x, T = _gradient_sample()
    _, per_row_gradient = mbgnbd_log_likelihood_terms(params, x, t_x, T)
    numeric = _richardson_gradient(lambda p: mbgnbd_log_likelihood_terms(p, x, t_x, T)[0].sum(), params)
    np.testing.assert_allclose(per_row_gradient.sum(axis=0), numeric, rtol=1e-7)


@pytest.mark.parametrize("params", PARAMETER_POINTS)
def test_weighted_evaluator_matches_per_row_sum(params):
    x, t_x, T = _gradient_sample()
    weights = np.arange(1, x.size + 1, dtype=float)
    total, gradient = _MbgNbdLikelihood(x, t_x, T, weights)(np.asarray(params))
    ll, per_row_gradient = mbgnbd_log_likelihood_terms(params, x, t_x, T)
    assert total == pytest.approx(float(weights @ ll), rel=1e-12)
    np.testing.assert_allclose(gradient, weights @ per_row_gradient, rtol=1e-9)


def test_weighted_distinct_rows_give_exactly_the_same_fit_as_every_customer():
    x, t_x, T, _, _ = simulate_mbgnbd(3000, *PARAMS, seed=2)
    t_x = np.ceil(t_x * 7.0) / 7.0  # whole days, as real data: customers share rows
    rows = collapse_identical_rows(x, t_x, T)
    assert rows.weights.sum() == x.size and rows.weights.size < x.size
    every_customer = fit_mbgnbd(x, t_x, T)
    from_weights = fit_mbgnbd(*rows.columns, weights=rows.weights)
    assert every_customer.converged and from_weights.converged
    assert from_weights.params == every_customer.params
    assert from_weights.log_likelihood == every_customer.log_likelihood
    assert from_weights.n_customers == every_customer.n_customers == x.size
    ll, _ = mbgnbd_log_likelihood_terms(every_customer.params, x, t_x, T)
    assert every_customer.log_likelihood == pytest.approx(ll.sum(), rel=1e-12)
    halves = fit_mbgnbd(*(np.concatenate([c, c]) for c in rows.columns), weights=np.tile(rows.weights / 2, 2))
    np.testing.assert_allclose(halves.params, every_customer.params, rtol=1e-9)


def test_fit_recovers_simulated_parameters_and_reports_convergence():
    truth = (0.5, 6.0, 0.9, 3.0)
    x, t_x, T, _, _ = simulate_mbgnbd(40_000, *truth, seed=5)
    fit = fit_mbgnbd(x, t_x, T)
    assert fit.converged and fit.gradient_norm < 1e-5
    np.testing.assert_allclose(fit.params, truth, rtol=0.15)
    assert not fit_mbgnbd(x, t_x, T, tolerance=1e-1).converged


def test_penalizer_shrinks_parameters():
    x, t_x, T, _, _ = simulate_mbgnbd(2000, *PARAMS, seed=4)
    plain = fit_mbgnbd(x, t_x, T)
    penalised = fit_mbgnbd(x, t_x, T, penalizer=0.1)
    assert np.sum(np.square(penalised.params)) < np.sum(np.square(plain.params))
    assert penalised.log_likelihood < plain.log_likelihood


def test_fit_rejects_inconsistent_rfm():
    with pytest.raises(ValueError):
        fit_mbgnbd([1, 0], [5.0, 1.0], [10.0, 10.0])  # x = 0 with recency > 0
    with pytest.raises(ValueError):
        fit_mbgnbd([1], [11.0], [10.0])  # recency > T


# --- P(alive) and expected purchases ----------------------------------------------------------------------------


@pytest.mark.parametrize("params", PARAMETER_POINTS)
def test_p_alive_matches_quadrature(params):
    x, t_x, T = (np.array([c[k] for c in CUSTOMERS], dtype=float) for k in range(3))
    alive = p_alive(_fit(*params), x, t_x, T)
    expected = [reference_p_alive(*params, *customer) for customer in CUSTOMERS]
    np.testing.assert_allclose(alive, expected, rtol=1e-10, atol=1e-300)
    assert alive[0] < 1.0  # unlike the BG/NBD, a customer without repeat purchases may be gone
    assert alive[-1] < 1e-20  # 1000 purchases, then silent for 1000 weeks: gone


@pytest.mark.parametrize("params", PARAMETER_POINTS)
@pytest.mark.parametrize("t", [1.0, 39.0, 260.0])
def test_conditional_expected_purchases_matches_quadrature(params, t):
    x, t_x, T = (np.array([c[k] for c in CUSTOMERS], dtype=float) for k in range(3))
    actual = conditional_expected_purchases(_fit(*params), t, x, t_x, T)
    expected = [reference_conditional_expected_purchases(*params, *customer, t) for customer in CUSTOMERS]
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("params", PARAMETER_POINTS)
@pytest.mark.parametrize("t", [0.5, 52.0, 520.0])
def test_expected_purchases_new_customer_matches_quadrature(params, t):
    r, alpha, a, b = params
    # Not dropped at the first purchase (1 - p), then (1 - (alpha/(alpha + p t))^r) / p.
    expected = math.exp(
        _log_p_integral(a, b, lambda p, w: math.log(w) + math.log(-math.expm1(-r * math.log1p(p * t / alpha)) / p), 0.0)
    )
    assert float(expected_purchases_new_customer(_fit(*params), t)) == pytest.approx(expected, rel=1e-9)


def test_monte_carlo_of_the_generative_story():
    """Simulated customers: among those with x = k, the mean P(alive) is the share still alive at T and the mean
    E[Y(t) | x, t_x, T] the mean of their simulated purchases in (T, T + t] (law of total expectation); the mean
    E[X(t)] of new customers is the simulated mean. Tolerances: 4.5 standard errors."""
    params, horizon = (0.5, 6.0, 0.9, 3.0), 26.0
    fit = _fit(*params)
    x, t_x, T, alive, future = simulate_mbgnbd(300_000, *params, seed=11, horizon=horizon)
    predicted_alive = p_alive(fit, x, t_x, T)
    predicted_future = conditional_expected_purchases(fit, horizon, x, t_x, T)
    for group in (x == 0, x == 1, (x >= 2) & (x < 6), x >= 6, np.ones_like(alive)):
        n = group.sum()
        gap = alive[group] - predicted_alive[group]
        assert abs(gap.mean()) < 4.5 * gap.std() / math.sqrt(n)
        gap = future[group] - predicted_future[group]
        assert abs(gap.mean()) < 4.5 * gap.std() / math.sqrt(n)

    rng = np.random.default_rng(12)
    rate = rng.gamma(params[0], 1.0 / params[1], size=400_000)
    survived = rng.geometric(np.clip(rng.beta(params[2], params[3], size=rate.size), 1e-12, 1.0)) - 1
    purchases = np.minimum(rng.poisson(rate * horizon), survived)
    predicted = float(expected_purchases_new_customer(fit, horizon))
    assert abs(purchases.mean() - predicted) < 4.5 * purchases.std() / math.sqrt(rate.size)


def test_closed_forms_broadcast_like_bgnbd():
    """scoring.py passes horizons of shape (k, 1) and customers of shape (1, n)."""
    fit = _fit(*PARAMS)
    x, t_x, T = (np.array([c[k] for c in CUSTOMERS], dtype=float) for k in range(3))
    horizons = np.array([1.0, 39.0, 260.0])
    grid = conditional_expected_purchases(fit, horizons[:, None], x[None, :], t_x[None, :], T[None, :])
    assert grid.shape == (3, len(CUSTOMERS))
    for h, t in enumerate(horizons):
        np.testing.assert_allclose(grid[h], conditional_expected_purchases(fit, t, x, t_x, T), rtol=1e-14)
    assert np.all(np.diff(conditional_expected_purchases(fit, [1.0, 10.0, 100.0], 3, 10.0, 20.0)) > 0)


@pytest.mark.parametrize("customers", [7, 60_000])  # below and above bgnbd's de-duplication threshold
def test_discounted_purchases_are_the_discounted_sum_of_step_increments(customers):
    fit = _fit(*PARAMS)
    picks = np.arange(customers) % 7
    x, t_x, T = (np.array([CUSTOMERS[i][k] for i in picks], dtype=float) for k in range(3))
    steps = np.array([4.35, 8.7, 13.0, 26.0, 52.0])
    discount = 1.1 ** (-steps / 52.0)
    got = discounted_expected_purchases(fit, steps, discount, x, t_x, T)
    assert got.shape == (customers,)
    for i, customer in enumerate(CUSTOMERS[:7]):
        cumulative = [reference_conditional_expected_purchases(*PARAMS, *customer, t) for t in steps]
        expected = sum(d * (c - prev) for d, c, prev in zip(discount, cumulative, [0.0] + cumulative[:-1]))
        np.testing.assert_allclose(got[picks == i], expected, rtol=1e-9)


# --- stability --------------------------------------------------------------------------------------------------


# (The expectations share bgnbd's hypergeometric code, which scipy's hyp2f1 can fail on (nan) for extreme
# parameters such as alpha = 1e-3 with b = 1e4; the likelihood and P(alive) have no such limit.)
@pytest.mark.parametrize("params", PARAMETER_POINTS + [(1e-3, 1e4, 1e-3, 1e-4)])
def test_finite_for_large_frequency_and_age(params):
    x = np.array([0, 0, 1, 10, 100, 1000, 1000, 1000, 1000], dtype=float)
    t_x = np.array([0.0, 0.0, 0.5, 4000.0, 10.0, 4999.0, 1.0, 5000.0, 2500.0])
    T = np.array([0.01, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0])
    ll, gradient = mbgnbd_log_likelihood_terms(params, x, t_x, T)
    assert np.all(np.isfinite(ll)) and np.all(np.isfinite(gradient))
    total, aggregated_gradient = _MbgNbdLikelihood(x, t_x, T, np.ones_like(x))(np.asarray(params))
    assert np.isfinite(total) and np.all(np.isfinite(aggregated_gradient))
    fit = _fit(*params)
    alive = p_alive(fit, x, t_x, T)
    expected = conditional_expected_purchases(fit, [[1.0], [52.0], [5000.0]], x, t_x, T)
    discounted = discounted_expected_purchases(fit, [4.0, 52.0], [0.99, 0.9], x, t_x, T)
    for values in (alive, expected, discounted):
        assert np.all(np.isfinite(values)) and np.all(values >= 0)
    assert np.all(alive <= 1.0)
    assert np.all(np.isfinite(expected_purchases_new_customer(fit, [0.0, 1.0, 5000.0])))


def test_fit_with_extreme_customers_stays_finite():
    x, t_x, T, _, _ = simulate_mbgnbd(5000, *PARAMS, seed=6)
    x = np.append(x, [1000, 1000, 300])
    t_x = np.append(t_x, [4999.0, 20.0, 5000.0])
    T = np.append(T, [5000.0, 5000.0, 5000.0])
    fit = fit_mbgnbd(x, t_x, T)
    assert fit.converged, fit.message
    assert np.all(np.isfinite(fit.params)) and np.isfinite(fit.log_likelihood)


# --- interchangeable with the BG/NBD ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["p_alive", "conditional_expected_purchases", "expected_purchases_new_customer", "discounted_expected_purchases"],
)
def test_public_functions_take_the_same_arguments_as_bgnbd(name):
    ours = list(inspect.signature(getattr(mbgnbd, name)).parameters)
    theirs = list(inspect.signature(getattr(bgnbd, name)).parameters)
    assert ours == theirs


def test_fit_takes_the_same_arguments_as_fit_bgnbd():
    ours = inspect.signature(fit_mbgnbd).parameters
    theirs = inspect.signature(bgnbd.fit_bgnbd).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == [
        (p.name, p.kind, p.default) for p in theirs.values()
    ]
