"""The checks every purchase model's tests share, written once.

A model's test module subclasses :class:`FitChecks` (BG/NBD) or :class:`PurchaseModelChecks` (MBG/NBD, Pareto/NBD)
as a ``Test...`` class whose ``case`` names the model's functions, its independent references (which never call
the model's module) and the tolerances its maths reaches; pytest collects the checks there, once per model.
"""

from __future__ import annotations

import datetime
import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import polars as pl
import pytest
from clv_reference import load_cdnow_orders

from pipelines.clv import bgnbd, rfm_summary
from pipelines.clv._mle import collapse_identical_rows

CALIBRATION_END = datetime.date(1997, 9, 30)  # as tests/clv/test_cdnow_published_fits.py: 39-week calibration

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


def customer_columns(customers=CUSTOMERS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T) arrays of a list of (x, t_x, T) customers."""
    return tuple(np.array([c[k] for c in customers], dtype=float) for k in range(3))


@functools.cache
def cdnow_rfm() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frequency, recency, T) of the 2357 CDNOW customers over the calibration period, by customer id."""
    calibration = rfm_summary(pl.LazyFrame(load_cdnow_orders()), CALIBRATION_END).collect().sort("customer_id")
    columns = tuple(calibration[c].to_numpy().copy() for c in ("frequency", "recency", "T"))
    for column in columns:  # shared by every test that asks: none may change them
        column.flags.writeable = False
    return columns


def hand_fit(fit_type: type, *params: float):
    """A fit of ``fit_type`` with the given parameters, as if from an optimiser (for the closed forms)."""
    return fit_type(*params, log_likelihood=np.nan, converged=True, n_customers=0, iterations=0, message="")


def richardson_gradient(function, params, step=1e-4):
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


@dataclass(frozen=True, kw_only=True)
class FitCase:
    """What :class:`FitChecks` needs of a model."""

    fit: Callable  # fit_bgnbd, ...
    simulate: Callable  # (n, *params, seed=) -> (x, t_x, T, ...) of n customers from the model's generative story
    params: tuple  # typical parameters
    truth: tuple  # 40 000 customers simulated with these: the fit recovers them within recovery_rtol
    recovery_rtol: float


class FitChecks:
    """The fit function's behaviour: recovers simulated parameters, reports convergence, shrinks under a
    penalizer, rejects inconsistent RFM."""

    case: FitCase

    def _sample(self, n, params, seed):
        return self.case.simulate(n, *params, seed=seed)[:3]

    def test_fit_recovers_simulated_parameters_and_reports_convergence(self):
        x, t_x, T = self._sample(40_000, self.case.truth, seed=5)
        fit = self.case.fit(x, t_x, T)
        assert fit.converged and fit.gradient_norm < 1e-5
        np.testing.assert_allclose(fit.params, self.case.truth, rtol=self.case.recovery_rtol)
        assert not self.case.fit(x, t_x, T, tolerance=1e-1).converged

    def test_penalizer_shrinks_parameters(self):
        x, t_x, T = self._sample(2000, self.case.params, seed=4)
        plain = self.case.fit(x, t_x, T)
        penalised = self.case.fit(x, t_x, T, penalizer=0.1)
        assert np.sum(np.square(penalised.params)) < np.sum(np.square(plain.params))
        assert penalised.log_likelihood < plain.log_likelihood

    def test_fit_rejects_inconsistent_rfm(self):
        with pytest.raises(ValueError):
            self.case.fit([1, 0], [5.0, 1.0], [10.0, 10.0])  # x = 0 with recency > 0
        with pytest.raises(ValueError):
            self.case.fit([1], [11.0], [10.0])  # recency > T


@dataclass(frozen=True, kw_only=True)
class PurchaseModelCase(FitCase):
    """What :class:`PurchaseModelChecks` needs of a model; its ``simulate(n, *params, seed=, horizon=0.0)`` also
    returns who is alive at T and the purchases in (T, T + horizon]: (x, t_x, T, alive, future)."""

    module: ModuleType  # its p_alive, conditional_expected_purchases, ... (the signatures of pipelines.clv.bgnbd)
    fit_type: type
    log_likelihood_terms: Callable  # (params, x, t_x, T) -> (ll per row, gradient per row)
    likelihood: type  # the fitter's aggregated evaluator: (x, t_x, T, weights)(params) -> (total, gradient)
    # Independent references, (*params, x, t_x, T[, t]) -> float.
    reference_log_likelihood: Callable
    reference_p_alive: Callable
    reference_conditional_expected_purchases: Callable
    parameter_points: tuple  # where the likelihood and the closed forms are checked
    extreme_points: tuple  # more, where they only need to stay finite
    log_likelihood_rtol: float
    gradient_rtol: float
    expectation_rtol: float  # conditional and discounted expected purchases against the quadrature
    discount_populations: tuple[int, ...]  # customer counts of the discounted-purchases check
    discount_customers: int  # how many of CUSTOMERS it repeats


class PurchaseModelChecks(FitChecks):
    """A purchase model against its independent references: CDNOW fit, likelihood and gradient, P(alive) and
    expected purchases, a Monte-Carlo of the generative story, stability, and interchangeability with the BG/NBD."""

    case: PurchaseModelCase

    def pytest_generate_tests(self, metafunc):
        if "params" in metafunc.fixturenames:
            metafunc.parametrize("params", self.case.parameter_points)
        if "finite_params" in metafunc.fixturenames:
            metafunc.parametrize("finite_params", self.case.parameter_points + self.case.extreme_points)
        if "customers" in metafunc.fixturenames:
            metafunc.parametrize("customers", self.case.discount_populations)

    def _fit(self, params):
        return hand_fit(self.case.fit_type, *params)

    def _gradient_sample(self):
        x, t_x, T = self._sample(300, self.case.params, seed=1)
        return (
            np.append(x, [500, 25, 1000]).astype(float),
            np.append(t_x, [90.0, 3.0, 4000.0]),
            np.append(T, [104.0, 104.0, 5000.0]),
        )

    # --- CDNOW

    def test_fit_is_invariant_to_row_order(self):
        cdnow = cdnow_rfm()
        order = np.random.default_rng(3).permutation(cdnow[0].size)
        a = self.case.fit(*cdnow)
        b = self.case.fit(*(column[order] for column in cdnow))
        np.testing.assert_allclose(a.params, b.params, rtol=1e-9)

    # --- likelihood and gradient

    def test_log_likelihood_matches_quadrature(self, params):
        ll, gradient = self.case.log_likelihood_terms(params, *customer_columns())
        expected = [self.case.reference_log_likelihood(*params, *customer) for customer in CUSTOMERS]
        # atol: an absolute error in ln L is a relative error in L (ln L is ~0 for some rows).
        np.testing.assert_allclose(ll, expected, rtol=self.case.log_likelihood_rtol, atol=1e-10)
        assert np.all(np.isfinite(gradient))

    def test_gradient_matches_finite_differences(self, params):
        x, t_x, T = self._gradient_sample()
        terms = self.case.log_likelihood_terms
        _, per_row_gradient = terms(params, x, t_x, T)
        numeric = richardson_gradient(lambda p: terms(p, x, t_x, T)[0].sum(), params)
        np.testing.assert_allclose(per_row_gradient.sum(axis=0), numeric, rtol=self.case.gradient_rtol)

    def test_weighted_evaluator_matches_per_row_sum(self, params):
        x, t_x, T = self._gradient_sample()
        weights = np.arange(1, x.size + 1, dtype=float)
        total, gradient = self.case.likelihood(x, t_x, T, weights)(np.asarray(params))
        ll, per_row_gradient = self.case.log_likelihood_terms(params, x, t_x, T)
        assert total == pytest.approx(float(weights @ ll), rel=1e-12)
        np.testing.assert_allclose(gradient, weights @ per_row_gradient, rtol=1e-9)

    def test_weighted_distinct_rows_give_exactly_the_same_fit_as_every_customer(self):
        fit = self.case.fit
        x, t_x, T = self._sample(3000, self.case.params, seed=2)
        t_x = np.ceil(t_x * 7.0) / 7.0  # whole days, as real data: customers share rows
        rows = collapse_identical_rows(x, t_x, T)
        assert rows.weights.sum() == x.size and rows.weights.size < x.size
        every_customer = fit(x, t_x, T)
        from_weights = fit(*rows.columns, weights=rows.weights)
        assert every_customer.converged and from_weights.converged
        assert from_weights.params == every_customer.params
        assert from_weights.log_likelihood == every_customer.log_likelihood
        assert from_weights.n_customers == every_customer.n_customers == x.size
        # The reported likelihood is the plain sum over all customers.
        ll, _ = self.case.log_likelihood_terms(every_customer.params, x, t_x, T)
        assert every_customer.log_likelihood == pytest.approx(ll.sum(), rel=1e-12)
        # Rows split into two halves of their weight: the same fit up to the rounding of the sums.
        halves = fit(*(np.concatenate([c, c]) for c in rows.columns), weights=np.tile(rows.weights / 2, 2))
        np.testing.assert_allclose(halves.params, every_customer.params, rtol=1e-9)

    # --- P(alive) and expected purchases

    def test_p_alive_matches_quadrature(self, params):
        alive = self.case.module.p_alive(self._fit(params), *customer_columns())
        expected = [self.case.reference_p_alive(*params, *customer) for customer in CUSTOMERS]
        np.testing.assert_allclose(alive, expected, rtol=1e-10, atol=1e-300)
        assert alive[-1] < 1e-20  # 1000 purchases, then silent for 1000 weeks: gone

    @pytest.mark.parametrize("t", [1.0, 39.0, 260.0])
    def test_conditional_expected_purchases_matches_quadrature(self, params, t):
        actual = self.case.module.conditional_expected_purchases(self._fit(params), t, *customer_columns())
        reference = self.case.reference_conditional_expected_purchases
        expected = [reference(*params, *customer, t) for customer in CUSTOMERS]
        np.testing.assert_allclose(actual, expected, rtol=self.case.expectation_rtol, atol=1e-300)

    def test_monte_carlo_of_the_generative_story(self):
        """Simulated customers: among those with x = k, the mean P(alive) is the share still alive at T and the
        mean E[Y(t) | x, t_x, T] the mean of their simulated purchases in (T, T + t] (law of total expectation).
        Tolerances: 4.5 standard errors (+1e-12 for a group whose P(alive) is 1 for everyone: no spread)."""
        horizon = 26.0
        fit = self._fit(self.case.truth)
        x, t_x, T, alive, future = self.case.simulate(300_000, *self.case.truth, seed=11, horizon=horizon)
        predicted_alive = self.case.module.p_alive(fit, x, t_x, T)
        predicted_future = self.case.module.conditional_expected_purchases(fit, horizon, x, t_x, T)
        for group in (x == 0, x == 1, (x >= 2) & (x < 6), x >= 6, np.ones_like(alive)):
            n = group.sum()
            gap = alive[group] - predicted_alive[group]
            assert abs(gap.mean()) < 4.5 * gap.std() / math.sqrt(n) + 1e-12
            gap = future[group] - predicted_future[group]
            assert abs(gap.mean()) < 4.5 * gap.std() / math.sqrt(n)

    def test_closed_forms_broadcast_like_bgnbd(self):
        """scoring.py passes horizons of shape (k, 1) and customers of shape (1, n)."""
        model = self.case.module
        fit = self._fit(self.case.params)
        x, t_x, T = customer_columns()
        horizons = np.array([1.0, 39.0, 260.0])
        grid = model.conditional_expected_purchases(fit, horizons[:, None], x[None, :], t_x[None, :], T[None, :])
        assert grid.shape == (3, len(CUSTOMERS))
        for h, t in enumerate(horizons):
            np.testing.assert_allclose(grid[h], model.conditional_expected_purchases(fit, t, x, t_x, T), rtol=1e-14)
        assert np.all(np.diff(model.conditional_expected_purchases(fit, [1.0, 10.0, 100.0], 3, 10.0, 20.0)) > 0)
        assert model.p_alive(fit, x[None, :], t_x[None, :], T[None, :]).shape == (1, len(CUSTOMERS))

    def test_discounted_purchases_are_the_discounted_sum_of_step_increments(self, customers):
        params = self.case.params
        picks = np.arange(customers) % self.case.discount_customers
        x, t_x, T = customer_columns([CUSTOMERS[i] for i in picks])
        steps = np.array([4.35, 8.7, 13.0, 26.0, 52.0])
        discount = 1.1 ** (-steps / 52.0)
        got = self.case.module.discounted_expected_purchases(self._fit(params), steps, discount, x, t_x, T)
        assert got.shape == (customers,)
        for i, customer in enumerate(CUSTOMERS[: self.case.discount_customers]):
            cumulative = [self.case.reference_conditional_expected_purchases(*params, *customer, t) for t in steps]
            expected = sum(d * (c - prev) for d, c, prev in zip(discount, cumulative, [0.0] + cumulative[:-1]))
            np.testing.assert_allclose(got[picks == i], expected, rtol=self.case.expectation_rtol, atol=1e-300)

    # --- stability

    def test_finite_for_large_frequency_and_age(self, finite_params):
        model = self.case.module
        x = np.array([0, 0, 1, 10, 100, 1000, 1000, 1000, 1000], dtype=float)
        t_x = np.array([0.0, 0.0, 0.5, 4000.0, 10.0, 4999.0, 1.0, 5000.0, 2500.0])
        T = np.array([0.01, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0])
        ll, gradient = self.case.log_likelihood_terms(finite_params, x, t_x, T)
        assert np.all(np.isfinite(ll)) and np.all(np.isfinite(gradient))
        total, aggregated_gradient = self.case.likelihood(x, t_x, T, np.ones_like(x))(np.asarray(finite_params))
        assert np.isfinite(total) and np.all(np.isfinite(aggregated_gradient))
        fit = self._fit(finite_params)
        alive = model.p_alive(fit, x, t_x, T)
        expected = model.conditional_expected_purchases(fit, [[1.0], [52.0], [5000.0]], x, t_x, T)
        discounted = model.discounted_expected_purchases(fit, [4.0, 52.0], [0.99, 0.9], x, t_x, T)
        for values in (alive, expected, discounted):
            assert np.all(np.isfinite(values)) and np.all(values >= 0)
        assert np.all(alive <= 1.0)
        assert np.all(np.isfinite(model.expected_purchases_new_customer(fit, [0.0, 1.0, 5000.0])))

    def test_fit_with_extreme_customers_stays_finite(self):
        x, t_x, T = self._sample(5000, self.case.params, seed=6)
        x = np.append(x, [1000, 1000, 300])
        t_x = np.append(t_x, [4999.0, 20.0, 5000.0])
        T = np.append(T, [5000.0, 5000.0, 5000.0])
        fit = self.case.fit(x, t_x, T)
        assert fit.converged, fit.message
        assert np.all(np.isfinite(fit.params)) and np.isfinite(fit.log_likelihood)

    # --- interchangeable with the BG/NBD

    @pytest.mark.parametrize(
        "name",
        [
            "p_alive",
            "conditional_expected_purchases",
            "expected_purchases_new_customer",
            "discounted_expected_purchases",
        ],
    )
    def test_public_functions_take_the_same_arguments_as_bgnbd(self, name):
        ours = list(inspect.signature(getattr(self.case.module, name)).parameters)
        theirs = list(inspect.signature(getattr(bgnbd, name)).parameters)
        assert ours == theirs

    def test_fit_takes_the_same_arguments_as_fit_bgnbd(self):
        ours = inspect.signature(self.case.fit).parameters
        theirs = inspect.signature(bgnbd.fit_bgnbd).parameters
        assert [(p.name, p.kind, p.default) for p in ours.values()] == [
            (p.name, p.kind, p.default) for p in theirs.values()
        ]
        x, t_x, T = self._sample(500, self.case.params, seed=9)
        fit = self.case.fit(x, t_x, T)
        assert {"log_likelihood", "converged", "n_customers", "iterations", "message", "gradient_norm"} <= set(
            vars(fit)
        )
