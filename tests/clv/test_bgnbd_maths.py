"""BG/NBD likelihood, gradient and closed forms against independent computations."""

import clv_reference as ref
import numpy as np
import purchase_model_checks
import pytest
from purchase_model_checks import FitCase, FitChecks, hand_fit

from pipelines.clv._mle import collapse_identical_rows
from pipelines.clv.bgnbd import (
    BgNbdFit,
    _BgNbdLikelihood,
    bgnbd_log_likelihood_terms,
    conditional_expected_purchases,
    discounted_expected_purchases,
    expected_purchases_new_customer,
    fit_bgnbd,
    p_alive,
)
from pipelines.clv.simulate import BgNbdParams, GammaGammaParams, simulate_rfm

PUBLISHED = (0.243, 4.414, 0.793, 2.426)  # FHL 2005 CDNOW estimates

CUSTOMERS = purchase_model_checks.CUSTOMERS[:7]  # (x, t_x, T) in weeks, up to x = 400


def _fit(r, alpha, a, b) -> BgNbdFit:
    return hand_fit(BgNbdFit, r, alpha, a, b)


def simulate_bgnbd(n: int, *params: float, seed: int):
    """(x, t_x, T) of n customers simulated by pipelines.clv.simulate."""
    rfm = simulate_rfm(n, BgNbdParams(*params), GammaGammaParams(6.0, 4.0, 15.0), seed=seed)
    return rfm.frequency, rfm.recency, rfm.T


class TestBgNbdFit(FitChecks):
    case = FitCase(
        fit=fit_bgnbd, simulate=simulate_bgnbd, params=PUBLISHED, truth=(0.5, 6.0, 0.9, 3.0), recovery_rtol=0.15
    )


@pytest.mark.parametrize("x, t_x, T", CUSTOMERS)
def test_p_alive_matches_posterior_integration(x, t_x, T):
    expected = ref.p_alive(*PUBLISHED, x, t_x, T)
    assert float(p_alive(_fit(*PUBLISHED), x, t_x, T)) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("x, t_x, T", CUSTOMERS)
@pytest.mark.parametrize("t", [1.0, 39.0, 260.0])
def test_conditional_expected_purchases_matches_quadrature(x, t_x, T, t):
    expected = ref.conditional_expected_purchases(*PUBLISHED, x, t_x, T, t)
    actual = float(conditional_expected_purchases(_fit(*PUBLISHED), t, x, t_x, T))
    assert actual == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize("params", [PUBLISHED, (2.0, 10.0, 3.0, 5.0), (0.5, 0.5, 0.4, 8.0)])
@pytest.mark.parametrize("t", [0.5, 52.0, 520.0])
def test_expected_purchases_new_customer_matches_quadrature(params, t):
    expected = ref.expected_purchases_new_customer(*params, t)
    assert float(expected_purchases_new_customer(_fit(*params), t)) == pytest.approx(expected, rel=1e-7)


def test_closed_forms_are_vectorised_and_finite_for_extreme_customers():
    fit = _fit(*PUBLISHED)
    x = np.array([0, 3, 500, 5000, 5000])
    t_x = np.array([0.0, 10.0, 100.0, 1000.0, 5.0])
    T = np.array([10.0, 20.0, 104.0, 1040.0, 1040.0])
    expected = conditional_expected_purchases(fit, 52.0, x, t_x, T)
    alive = p_alive(fit, x, t_x, T)
    assert expected.shape == alive.shape == (5,)
    assert np.all(np.isfinite(expected)) and np.all(expected >= 0)
    assert alive[-1] < 1e-300 and expected[-1] < 1e-300  # 5000 purchases, silent for 1035 weeks: gone
    assert np.all(np.diff(conditional_expected_purchases(fit, [1.0, 10.0, 100.0], 3, 10.0, 20.0)) > 0)


def test_log_likelihood_matches_naive_formula():
    for params in (PUBLISHED, (1.3, 2.0, 1.5, 0.7)):
        for x, t_x, T in [(0, 0.0, 5.0), (1, 2.0, 5.0), (4, 20.0, 30.0), (12, 11.5, 40.0)]:
            ll, _ = bgnbd_log_likelihood_terms(params, [x], [t_x], [T])
            assert ll[0] == pytest.approx(ref.naive_bgnbd_log_likelihood(*params, x, t_x, T), rel=1e-12)


def _random_customers(seed: int, n: int = 300):
    return simulate_bgnbd(n, *PUBLISHED, seed=seed)


def _central_difference(function, params, step=1e-6):
    params = np.asarray(params, dtype=float)
    gradient = np.empty_like(params)
    for i in range(params.size):
        h = step * params[i]
        up, down = params.copy(), params.copy()
        up[i] += h
        down[i] -= h
        gradient[i] = (function(up) - function(down)) / (2 * h)
    return gradient


@pytest.mark.parametrize("params", [PUBLISHED, (1.7, 12.0, 0.6, 0.9)])
def test_gradient_matches_finite_differences(params):
    x, t_x, T = _random_customers(seed=1)
    x = np.append(x, [500, 25])  # include very heavy buyers
    t_x = np.append(t_x, [90.0, 3.0])
    T = np.append(T, [104.0, 104.0])

    _, per_row_gradient = bgnbd_log_likelihood_terms(params, x, t_x, T)
    numeric = _central_difference(lambda p: bgnbd_log_likelihood_terms(p, x, t_x, T)[0].sum(), params)
    np.testing.assert_allclose(per_row_gradient.sum(axis=0), numeric, rtol=1e-6)

    weights = np.arange(1, x.size + 1, dtype=float)  # the fitter's aggregated evaluator, weighted rows
    aggregated = _BgNbdLikelihood(x.astype(float), t_x, T, weights)
    total, gradient = aggregated(np.asarray(params))
    ll, _ = bgnbd_log_likelihood_terms(params, x, t_x, T)
    assert total == pytest.approx(float(weights @ ll), rel=1e-12)
    np.testing.assert_allclose(gradient, weights @ per_row_gradient, rtol=1e-9)


def test_heavy_buyer_has_finite_likelihood_and_gradient():
    ll, gradient = bgnbd_log_likelihood_terms(PUBLISHED, [500, 5000], [50.0, 100.0], [52.0, 2000.0])
    assert np.all(np.isfinite(ll)) and np.all(np.isfinite(gradient))


def test_collapsed_rows_give_the_same_fit_as_every_customer():
    x, t_x, T = _random_customers(seed=2, n=3000)
    rows = collapse_identical_rows(x, t_x, T)
    assert rows.weights.sum() == x.size and rows.weights.size < x.size
    # Every distinct customer appears once, with its multiplicity.
    distinct, counts = np.unique(np.column_stack([x, t_x, T]), axis=0, return_counts=True)
    order = np.lexsort(tuple(reversed(rows.columns)))
    np.testing.assert_array_equal(np.column_stack(rows.columns)[order], distinct)
    np.testing.assert_array_equal(rows.weights[order], counts)

    every_customer = fit_bgnbd(x, t_x, T)
    from_weights = fit_bgnbd(*rows.columns, weights=rows.weights)
    np.testing.assert_allclose(every_customer.params, from_weights.params, rtol=1e-8)
    assert from_weights.n_customers == every_customer.n_customers == x.size
    # The reported likelihood is the plain sum over all customers.
    ll, _ = bgnbd_log_likelihood_terms(every_customer.params, x, t_x, T)
    assert every_customer.log_likelihood == pytest.approx(ll.sum(), rel=1e-12)


def test_collapse_handles_off_grid_values():
    monetary = np.array([12.34, 12.34, 5.0, 12.34, np.pi])
    frequency = np.array([1, 1, 1, 2, 1])
    rows = collapse_identical_rows(frequency, monetary)
    got = sorted(zip(*(c.tolist() for c in rows.columns), rows.weights.tolist()))
    assert got == [(1.0, np.pi, 1.0), (1.0, 5.0, 1.0), (1.0, 12.34, 2.0), (2.0, 12.34, 1.0)]


def test_large_populations_score_each_distinct_customer_like_the_quadrature():
    """Above the de-duplication threshold the hypergeometric term is evaluated once per distinct (x, T): every
    customer must still get the value of its own (x, t_x, T), for one horizon and for a grid of horizons."""
    fit = _fit(*PUBLISHED)
    picks = np.random.default_rng(3).integers(0, len(CUSTOMERS), 60_000)  # above the threshold, 7 distinct rows
    x, t_x, T = (np.array([CUSTOMERS[i][k] for i in picks], dtype=float) for k in range(3))
    horizons = np.array([1.0, 39.0, 260.0])
    one_horizon = conditional_expected_purchases(fit, 39.0, x, t_x, T)
    grid = conditional_expected_purchases(fit, horizons[:, None], x[None, :], t_x[None, :], T[None, :])
    assert grid.shape == (3, len(picks))
    for i, (cx, ctx, cT) in enumerate(CUSTOMERS):
        rows = picks == i
        assert one_horizon[rows] == pytest.approx(
            ref.conditional_expected_purchases(*PUBLISHED, cx, ctx, cT, 39.0), rel=1e-7
        )
        for h, t in enumerate(horizons):
            assert grid[h, rows] == pytest.approx(
                ref.conditional_expected_purchases(*PUBLISHED, cx, ctx, cT, t), rel=1e-7
            )


@pytest.mark.parametrize("customers", [7, 60_000])  # below and above the de-duplication threshold
def test_discounted_purchases_are_the_discounted_sum_of_step_increments(customers):
    """Σ_k d_k (E[Y(t_k)] − E[Y(t_(k−1))]), each E from the quadrature reference, for every customer."""
    fit = _fit(*PUBLISHED)
    picks = np.arange(customers) % len(CUSTOMERS)
    x, t_x, T = (np.array([CUSTOMERS[i][k] for i in picks], dtype=float) for k in range(3))
    steps = np.array([4.35, 8.7, 13.0, 26.0, 52.0])
    discount = 1.1 ** (-steps / 52.0)
    got = discounted_expected_purchases(fit, steps, discount, x, t_x, T)
    assert got.shape == (customers,)
    for i, (cx, ctx, cT) in enumerate(CUSTOMERS):
        cumulative = [ref.conditional_expected_purchases(*PUBLISHED, cx, ctx, cT, t) for t in steps]
        expected = sum(d * (c - prev) for d, c, prev in zip(discount, cumulative, [0.0] + cumulative[:-1]))
        assert got[picks == i] == pytest.approx(expected, rel=1e-7)
