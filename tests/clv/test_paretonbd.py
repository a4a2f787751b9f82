"""Pareto/NBD: CDNOW estimates, likelihood and gradient, closed forms against independent computations.

The references here never call ``pipelines.clv.paretonbd``: the likelihood and P(alive) come from numerical
quadrature over the time of death (lambda and mu integrated out by their Gamma moment-generating functions, no
hypergeometric function), and the expected purchases from quadrature over the future horizon, or from
Monte-Carlo simulation of the model's generative story.
"""

import datetime
import inspect
import math

import numpy as np
import polars as pl
import pytest
from clv_reference import load_cdnow_orders
from scipy import integrate
from scipy.special import gammaln

from pipelines.clv import bgnbd, paretonbd, rfm_summary
from pipelines.clv._mle import collapse_identical_rows
from pipelines.clv.paretonbd import (
    ParetoNbdFit,
    _log_tail_integral_by_series,
    _log_tail_integral_near_z_one,
    _ParetoNbdLikelihood,
    conditional_expected_purchases,
    discounted_expected_purchases,
    expected_purchases_new_customer,
    fit_paretonbd,
    p_alive,
    paretonbd_log_likelihood_terms,
)

CALIBRATION_END = datetime.date(1997, 9, 30)  # as tests/clv/test_cdnow_published_fits.py: 39-week calibration

# The published Pareto/NBD fit of this calibration period (Fader, Hardie & Lee 2005, next to their BG/NBD), to
# three significant figures: r 0.553, alpha 10.58, s 0.606, beta 11.67; alpha = 10.578 and beta = 11.669 to four
# figures, LL -9595.0 to one decimal.
PUBLISHED = {"r": 0.553, "alpha": 10.58, "s": 0.606, "beta": 11.67}
PUBLISHED_FOUR_FIGURES = {"alpha": 10.578, "beta": 11.669}
PUBLISHED_LOG_LIKELIHOOD = -9595.0
# lifetimes 0.11.3 ParetoNBDFitter().fit(frequency, recency, T) on the same 2357 (x, t_x, T) rows as the fixture
# below (its default Nelder-Mead, tol 1e-7), all digits it printed.
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


def _fit(r, alpha, s, beta) -> ParetoNbdFit:
    return ParetoNbdFit(
        r, alpha, s, beta, log_likelihood=np.nan, converged=True, n_customers=0, iterations=0, message=""
    )


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


# --- CDNOW ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cdnow():
    calibration = rfm_summary(pl.LazyFrame(load_cdnow_orders()), CALIBRATION_END).collect().sort("customer_id")
    return tuple(calibration[c].to_numpy() for c in ("frequency", "recency", "T"))


def test_reproduces_published_and_lifetimes_cdnow_fit(cdnow):
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


def test_fit_is_invariant_to_row_order(cdnow):
    order = np.random.default_rng(3).permutation(cdnow[0].size)
    a = fit_paretonbd(*cdnow)
    b = fit_paretonbd(*(column[order] for column in cdnow))
    np.testing.assert_allclose(a.params, b.params, rtol=1e-9)


# --- likelihood and gradient ------------------------------------------------------------------------------------


@pytest.mark.parametrize("params", PARAMETER_POINTS)
def test_log_likelihood_matches_quadrature(params):
    x, t_x, T = (np.array([c[k] for c in CUSTOMERS], dtype=float) for k in range(3))
    ll, gradient = paretonbd_log_likelihood_terms(params, x, t_x, T)
    expected = [reference_log_likelihood(*params, *customer) for customer in CUSTOMERS]
    # atol: an absolute error in ln L is a relative error in L (ln L is ~0 for some rows).
    np.testing.assert_allclose(ll, expected, rtol=1e-11, atol=1e-10)
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
    x, t_x, T, _, _ = simulate_paretonbd(300, *PARAMS, seed=1)
    return (
        np.append(x, [500, 25, 1000]).astype(float),
        np.append(t_x, [90.0, 3.0, 4000.0]),
        np.append(T, [104.0, 104.0, 5000.0]),
    )


@pytest.mark.parametrize("params", PARAMETER_POINTS)
def test_gradient_matches_finite_differences(params):
    x, t_x, T = _gradient_sample()
    _, per_row_gradient = paretonbd_log_likelihood_terms(params, x, t_x, T)
    numeric = _richardson_gradient(lambda p: paretonbd_log_likelihood_terms(p, x, t_x, T)[0].sum(), params)
    np.testing.assert_allclose(per_row_gradient.sum(axis=0), numeric, rtol=1e-6)


@pytest.mark.parametrize("params", PARAMETER_POINTS)
def test_weighted_evaluator_matches_per_row_sum(params):
    x, t_x, T = _gradient_sample()
    weights = np.arange(1, x.size + 1, dtype=float)
    total, gradient = _ParetoNbdLikelihood(x, t_x, T, weights)(np.asarray(params))
    ll, per_row_gradient = paretonbd_log_likelihood_terms(params, x, t_x, T)
    assert total == pytest.approx(float(weights @ ll), rel=1e-12)
    np.testing.assert_allclose(gradient, weights @ per_row_gradient, rtol=1e-9)


def test_weighted_distinct_rows_give_exactly_the_same_fit_as_every_customer():
    x, t_x, T, _, _ = simulate_paretonbd(3000, *PARAMS, seed=2)
    t_x = np.ceil(t_x * 7.0) / 7.0  # whole days, as real data: customers share rows
    rows = collapse_identical_rows(x, t_x, T)
    assert rows.weights.sum() == x.size and rows.weights.size < x.size
    every_customer = fit_paretonbd(x, t_x, T)
    from_weights = fit_paretonbd(*rows.columns, weights=rows.weights)
    assert every_customer.converged and from_weights.converged
    assert from_weights.params == every_customer.params
    assert from_weights.log_likelihood == every_customer.log_likelihood
    assert from_weights.n_customers == every_customer.n_customers == x.size
    # The reported likelihood is the plain sum over all customers.
    ll, _ = paretonbd_log_likelihood_terms(every_customer.params, x, t_x, T)
    assert every_customer.log_likelihood == pytest.approx(ll.sum(), rel=1e-12)
    # Rows split into two halves of their weight: the same fit up to the rounding of the sums.
    halves = fit_paretonbd(*(np.concatenate([c, c]) for c in rows.columns), weights=np.tile(rows.weights / 2, 2))
    np.testing.assert_allclose(halves.params, every_customer.params, rtol=1e-9)


def test_fit_recovers_simulated_parameters_and_reports_convergence():
    truth = (0.8, 8.0, 0.5, 20.0)
    x, t_x, T, _, _ = simulate_paretonbd(40_000, *truth, seed=5)
    fit = fit_paretonbd(x, t_x, T)
    assert fit.converged and fit.gradient_norm < 1e-5
    np.testing.assert_allclose(fit.params, truth, rtol=0.2)
    assert not fit_paretonbd(x, t_x, T, tolerance=1e-1).converged


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


def test_penalizer_shrinks_parameters():
    x, t_x, T, _, _ = simulate_paretonbd(2000, *PARAMS, seed=4)
    plain = fit_paretonbd(x, t_x, T)
    penalised = fit_paretonbd(x, t_x, T, penalizer=0.1)
    assert np.sum(np.square(penalised.params)) < np.sum(np.square(plain.params))
    assert penalised.log_likelihood < plain.log_likelihood


def test_fit_rejects_inconsistent_rfm():
    with pytest.raises(ValueError):
        fit_paretonbd([1, 0], [5.0, 1.0], [10.0, 10.0])  # x = 0 with recency > 0
    with pytest.raises(ValueError):
        fit_paretonbd([1], [11.0], [10.0])  # recency > T


# --- P(alive) and expected purchases ----------------------------------------------------------------------------


@pytest.mark.parametrize("params", PARAMETER_POINTS)
def test_p_alive_matches_quadrature(params):
    x, t_x, T = (np.array([c[k] for c in CUSTOMERS], dtype=float) for k in range(3))
    alive = p_alive(_fit(*params), x, t_x, T)
    expected = [reference_p_alive(*params, *customer) for customer in CUSTOMERS]
    np.testing.assert_allclose(alive, expected, rtol=1e-10, atol=1e-300)
    assert alive[-1] < 1e-20  # 1000 purchases, then silent for 1000 weeks: gone


@pytest.mark.parametrize("params", PARAMETER_POINTS)
@pytest.mark.parametrize("t", [1.0, 39.0, 260.0])
def test_conditional_expected_purchases_matches_quadrature(params, t):
    x, t_x, T = (np.array([c[k] for c in CUSTOMERS], dtype=float) for k in range(3))
    actual = conditional_expected_purchases(_fit(*params), t, x, t_x, T)
    expected = [reference_conditional_expected_purchases(*params, *customer, t) for customer in CUSTOMERS]
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("params", [PARAMS, (2.0, 1.0, 1.0, 30.0), (0.5, 20.0, 2.0, 1.0)])  # s = 1: log limit
@pytest.mark.parametrize("t", [0.5, 52.0, 520.0])
def test_expected_purchases_new_customer_matches_quadrature(params, t):
    r, alpha, s, beta = params
    survival, _ = integrate.quad(lambda u: (beta / (beta + u)) ** s, 0.0, t, epsabs=0.0, epsrel=1e-13)
    assert float(expected_purchases_new_customer(_fit(*params), t)) == pytest.approx(r / alpha * survival, rel=1e-10)


def test_monte_carlo_of_the_generative_story():
    """Simulated customers: among those with x = k, the mean P(alive) is the share still alive at T and the mean
    E[Y(t) | x, t_x, T] the mean of their simulated purchases in (T, T + t] (law of total expectation); the mean
    E[X(t)] of new customers is the simulated mean. Tolerances: 4.5 standard errors."""
    params, horizon = (0.8, 8.0, 0.5, 20.0), 26.0
    fit = _fit(*params)
    x, t_x, T, alive, future = simulate_paretonbd(300_000, *params, seed=11, horizon=horizon)
    predicted_alive = p_alive(fit, x, t_x, T)
    predicted_future = conditional_expected_purchases(fit, horizon, x, t_x, T)
    for group in (x == 0, x == 1, (x >= 2) & (x < 6), x >= 6, np.ones_like(alive)):
        n = group.sum()
        gap = alive[group] - predicted_alive[group]
        assert abs(gap.mean()) < 4.5 * gap.std() / math.sqrt(n) + 1e-12
        gap = future[group] - predicted_future[group]
        assert abs(gap.mean()) < 4.5 * gap.std() / math.sqrt(n)

    rng = np.random.default_rng(12)
    rate = rng.gamma(params[0], 1.0 / params[1], size=400_000)
    lifetime = rng.exponential(1.0 / rng.gamma(params[2], 1.0 / params[3], size=rate.size))
    purchases = rng.poisson(rate * np.minimum(lifetime, horizon))
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
    assert p_alive(fit, x[None, :], t_x[None, :], T[None, :]).shape == (1, len(CUSTOMERS))


def test_discounted_purchases_are_the_discounted_sum_of_step_increments():
    fit = _fit(*PARAMS)
    picks = np.arange(5000) % len(CUSTOMERS)
    x, t_x, T = (np.array([CUSTOMERS[i][k] for i in picks], dtype=float) for k in range(3))
    steps = np.array([4.35, 8.7, 13.0, 26.0, 52.0])
    discount = 1.1 ** (-steps / 52.0)
    got = discounted_expected_purchases(fit, steps, discount, x, t_x, T)
    assert got.shape == (picks.size,)
    for i, customer in enumerate(CUSTOMERS):
        cumulative = [reference_conditional_expected_purchases(*PARAMS, *customer, t) for t in steps]
        expected = sum(d * (c - prev) for d, c, prev in zip(discount, cumulative, [0.0] + cumulative[:-1]))
        np.testing.assert_allclose(got[picks == i], expected, rtol=1e-10, atol=1e-300)


# --- stability --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("params", PARAMETER_POINTS + [(50.0, 1e-3, 30.0, 1e4), (1e-3, 1e4, 1e-3, 1e-4)])
def test_finite_for_large_frequency_and_age(params):
    x = np.array([0, 0, 1, 10, 100, 1000, 1000, 1000, 1000], dtype=float)
    t_x = np.array([0.0, 0.0, 0.5, 4000.0, 10.0, 4999.0, 1.0, 5000.0, 2500.0])
    T = np.array([0.01, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0])
    ll, gradient = paretonbd_log_likelihood_terms(params, x, t_x, T)
    assert np.all(np.isfinite(ll)) and np.all(np.isfinite(gradient))
    fit = _fit(*params)
    alive = p_alive(fit, x, t_x, T)
    expected = conditional_expected_purchases(fit, [[1.0], [52.0], [5000.0]], x, t_x, T)
    discounted = discounted_expected_purchases(fit, [4.0, 52.0], [0.99, 0.9], x, t_x, T)
    for values in (alive, expected, discounted):
        assert np.all(np.isfinite(values)) and np.all(values >= 0)
    assert np.all(alive <= 1.0)
    assert np.all(np.isfinite(expected_purchases_new_customer(fit, [0.0, 1.0, 5000.0])))


def test_fit_with_extreme_customers_stays_finite():
    x, t_x, T, _, _ = simulate_paretonbd(5000, *PARAMS, seed=6)
    x = np.append(x, [1000, 1000, 300])
    t_x = np.append(t_x, [4999.0, 20.0, 5000.0])
    T = np.append(T, [5000.0, 5000.0, 5000.0])
    fit = fit_paretonbd(x, t_x, T)
    assert fit.converged, fit.message
    assert np.all(np.isfinite(fit.params)) and np.isfinite(fit.log_likelihood)


# --- interchangeable with the BG/NBD ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["p_alive", "conditional_expected_purchases", "expected_purchases_new_customer", "discounted_expected_purchases"],
)
def test_public_functions_take_the_same_arguments_as_bgnbd(name):
    ours = list(inspect.signature(getattr(paretonbd, name)).parameters)
    theirs = list(inspect.signature(getattr(bgnbd, name)).parameters)
    assert ours == theirs


def test_fit_takes_the_same_arguments_as_fit_bgnbd():
    ours = inspect.signature(fit_paretonbd).parameters
    theirs = inspect.signature(bgnbd.fit_bgnbd).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == [
        (p.name, p.kind, p.default) for p in theirs.values()
    ]
    x, t_x, T, _, _ = simulate_paretonbd(500, *PARAMS, seed=9)
    fit = fit_paretonbd(x, t_x, T)
    assert {"log_likelihood", "converged", "n_customers", "iterations", "message", "gradient_norm"} <= set(vars(fit))
