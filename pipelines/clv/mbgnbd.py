"""MBG/NBD model (Batislam, Denizel & Filiztekin 2007, "Empirical validation and comparison of models for
customer base analysis", International Journal of Research in Marketing 24(3); lifetimes' ModifiedBetaGeoFitter).

The BG/NBD story (:mod:`pipelines.clv.bgnbd`) with one more chance to drop out: right after the first purchase
as well as after each repeat purchase, with probability p ~ Beta(a, b). A customer without repeat purchases
may therefore already be gone, and P(alive) < 1 for x = 0 too. Same inputs (x, t_x, T in weeks) and the same
public functions as :mod:`pipelines.clv.bgnbd`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import digamma, expit, gammaln

from pipelines.clv._mle import collapse_rfm_rows, factorize, maximise_log_likelihood, observed_rate_scale, row_dot
from pipelines.clv.bgnbd import (
    _clip_finite,
    _distinct_pairs,
    _expected_purchases_while_alive,
    _expected_purchases_while_alive_direct,
    _validate_rfm,
)


@dataclass(frozen=True)
class MbgNbdFit:
    r: float
    alpha: float  # weeks
    a: float
    b: float
    log_likelihood: float  # total over all customers, without penalty
    converged: bool
    n_customers: int
    iterations: int
    message: str
    gradient_norm: float = float("nan")  # sup-norm, mean objective, log-params
    # Asymptotic covariance of the parameters, in the order of `params`: inverse observed information at the
    # optimum (pipelines.clv._mle.observed_information_covariance); None when not available.
    covariance: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def std_errors(self) -> tuple[float, ...] | None:
        return None if self.covariance is None else tuple(float(v) for v in np.sqrt(np.diag(self.covariance)))

    @property
    def params(self) -> tuple[float, float, float, float]:
        return (self.r, self.alpha, self.a, self.b)


def mbgnbd_log_likelihood_terms(
    params: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Per-customer log-likelihood and its gradient wrt (r, alpha, a, b).

    Batislam et al. (2007) eq. (3), in the form of lifetimes' ModifiedBetaGeoFitter:
        ln L = A1 + A2 + A3 + ln(1 + exp(A4))
        A1 = lnG(r+x) - lnG(r) + r ln(alpha)
        A2 = lnG(a+b) + lnG(b+x+1) - lnG(b) - lnG(a+b+x+1)
        A3 = -(r+x) ln(alpha+T)
        A4 = ln(a) - ln(b+x) + (r+x) (ln(alpha+T) - ln(alpha+t_x))
    for every x, x = 0 included (t_x = 0: dropped out right after the first purchase). ln(1 + exp(A4)) is a
    softplus, stable for any A4. Returns (ll of shape (n,), gradient of shape (n, 4)).
    """
    r, alpha, a, b = (float(v) for v in params)
    x = np.asarray(frequency, dtype=np.float64)
    t_x = np.asarray(recency, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    log_alpha_T = np.log(alpha + T)
    log_alpha_tx = np.log(alpha + t_x)
    A1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    A2 = gammaln(a + b) + gammaln(b + x + 1.0) - gammaln(b) - gammaln(a + b + x + 1.0)
    A3 = -(r + x) * log_alpha_T
    A4 = np.log(a) - np.log(b + x) + (r + x) * (log_alpha_T - log_alpha_tx)
    log_likelihood = A1 + A2 + A3 + np.logaddexp(0.0, A4)
    dropped = expit(A4)  # posterior P(dropped out after the last purchase)

    psi_a_b = digamma(a + b)
    psi_a_b_x = digamma(a + b + x + 1.0)
    gradient = np.empty((x.shape[0], 4))
    gradient[:, 0] = digamma(r + x) - digamma(r) + np.log(alpha) - log_alpha_T + dropped * (log_alpha_T - log_alpha_tx)
    gradient[:, 1] = r / alpha - (r + x) / (alpha + T) + dropped * (r + x) * (1.0 / (alpha + T) - 1.0 / (alpha + t_x))
    gradient[:, 2] = psi_a_b - psi_a_b_x + dropped / a
    gradient[:, 3] = psi_a_b + digamma(b + x + 1.0) - digamma(b) - psi_a_b_x - dropped / (b + x)
    return log_likelihood, gradient


class _MbgNbdLikelihood:
    """Total MBG/NBD log-likelihood and gradient over weighted rows, aggregated as the BG/NBD one.

    Same value as summing :func:`mbgnbd_log_likelihood_terms` (a test checks it): A1 + A2 are summed per
    distinct x, A3 per distinct T, and only the correction softplus(A4) needs one pass over the rows (all of
    them: here customers without repeat purchases may have dropped out too).
    """

    def __init__(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray) -> None:
        self.n_customers = float(weights.sum())
        self.x_values, self.x_code = factorize(x)
        self.weight_per_x = np.bincount(self.x_code, weights=weights, minlength=self.x_values.size)
        self.T_values, self.T_code = factorize(T)
        self.customers_per_T = np.bincount(self.T_code, weights=weights, minlength=self.T_values.size)
        self.purchases_per_T = np.bincount(self.T_code, weights=weights * x, minlength=self.T_values.size)
        self.recency_values, self.recency_code = factorize(t_x)
        self.weights = weights

    def __call__(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        r, alpha, a, b = (float(v) for v in params)
        xs = self.x_values
        r_x = r + xs
        per_x = (
            gammaln(r_x)
            - gammaln(r)
            + r * np.log(alpha)
            + gammaln(a + b)
            + gammaln(b + xs + 1.0)
            - gammaln(b)
            - gammaln(a + b + xs + 1.0)
        )
        log_alpha_T = np.log(alpha + self.T_values)
        exposure = r * self.customers_per_T + self.purchases_per_T  # sum of (r + x) per T
        total = float(self.weight_per_x @ per_x - exposure @ log_alpha_T)

        psi_a_b = digamma(a + b)
        psi_a_b_x = digamma(a + b + xs + 1.0)
        gradient = np.array(
            [
                self.weight_per_x @ (digamma(r_x) - digamma(r) + np.log(alpha)) - self.customers_per_T @ log_alpha_T,
                self.n_customers * r / alpha - exposure @ (1.0 / (alpha + self.T_values)),
                self.weight_per_x @ (psi_a_b - psi_a_b_x),
                self.weight_per_x @ (psi_a_b + digamma(b + xs + 1.0) - digamma(b) - psi_a_b_x),
            ]
        )

        log_alpha_tx = np.log(alpha + self.recency_values)
        log_ratio = log_alpha_T[self.T_code] - log_alpha_tx[self.recency_code]
        r_x_rows = r_x[self.x_code]
        D = (np.log(a) - np.log(b + xs))[self.x_code] + r_x_rows * log_ratio
        # softplus(D) and sigmoid(D) from one exp, stable for any sign of D.
        e = np.exp(-np.abs(D))
        softplus = np.maximum(D, 0.0) + np.log1p(e)
        weighted_dropped = self.weights * (np.where(D >= 0, 1.0, e) / (1.0 + e))

        total += row_dot(self.weights, softplus)
        inverse_gap = (1.0 / (alpha + self.T_values))[self.T_code] - (1.0 / (alpha + self.recency_values))[
            self.recency_code
        ]
        dropped_per_x = np.bincount(self.x_code, weights=weighted_dropped, minlength=xs.size)
        gradient += np.array(
            [
                row_dot(weighted_dropped, log_ratio),
                row_dot(weighted_dropped * r_x_rows, inverse_gap),
                dropped_per_x.sum() / a,
                -(dropped_per_x @ (1.0 / (b + xs))),
            ]
        )
        return total, gradient


def fit_mbgnbd(
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    penalizer: float = 0.0,
    initial_params: tuple[float, float, float, float] | None = None,
    tolerance: float = 1e-12,
    covariance: bool = True,
) -> MbgNbdFit:
    """Maximum-likelihood MBG/NBD fit on frequency / recency / T (weeks); same arguments as
    :func:`pipelines.clv.bgnbd.fit_bgnbd` (``weights`` = customers per row; ``penalizer`` adds
    ``penalizer * (r^2 + alpha^2 + a^2 + b^2)`` to the mean negative log-likelihood)."""
    x = np.asarray(frequency, dtype=np.float64)
    t_x = np.asarray(recency, dtype=np.float64)
    T_arr = np.asarray(T, dtype=np.float64)
    _validate_rfm(x, t_x, T_arr)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    rows = collapse_rfm_rows(x, t_x, T_arr, w)
    likelihood = _MbgNbdLikelihood(*rows.columns, rows.weights)
    if initial_params is None:
        # As fit_bgnbd: r = 1 and alpha = exposure / repeat purchases match the observed purchase rate.
        initial_params = (1.0, observed_rate_scale(rows), 1.0, 1.0)
    outcome = maximise_log_likelihood(
        likelihood,
        likelihood.n_customers,
        np.asarray(initial_params, dtype=np.float64),
        penalizer=penalizer,
        tolerance=tolerance,
        covariance=covariance,
    )
    r, alpha, a, b = (float(v) for v in outcome.params)
    return MbgNbdFit(r=r, alpha=alpha, a=a, b=b, **outcome.fit_fields(likelihood.n_customers))


def p_alive(fit: MbgNbdFit, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> np.ndarray:
    """P(customer still alive at T | x, t_x, T) (Batislam et al. 2007; lifetimes' ModifiedBetaGeoFitter):

        1 / (1 + a / (b + x) * ((alpha + T) / (alpha + t_x))^(r + x)),   x = 0 included,

    evaluated as exp(-log1p(exp(.))) so that large x cannot overflow.
    """
    return np.exp(-_log_inverse_p_alive(fit, frequency, recency, T))


def conditional_expected_purchases(
    fit: MbgNbdFit, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """Expected repeat purchases in the next ``t`` weeks, given (x, t_x, T):

        E[Y(t)] = (a+b+x)/(a-1)
                  * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x+1; a+b+x; t/(alpha+T+t))]
                  * P(alive)

    i.e. the BG/NBD expression with b + 1 in place of b (alive at T, the dropout probability's posterior is
    Beta(a, b+x+1) instead of Beta(a, b+x)), evaluated by the same transformed, de-duplicated hypergeometric
    code as :func:`pipelines.clv.bgnbd.conditional_expected_purchases`; the same broadcasting rules apply.
    """
    r, alpha, a, b = fit.params
    x = np.asarray(frequency, dtype=np.float64)
    T_arr = np.asarray(T, dtype=np.float64)
    t_arr = np.asarray(t, dtype=np.float64)
    expected = _expected_purchases_while_alive(r, alpha, a, b + 1.0, x, T_arr, t_arr) * p_alive(fit, x, recency, T_arr)
    return _clip_finite(expected)


def expected_purchases_new_customer(fit: MbgNbdFit, t: ArrayLike) -> np.ndarray:
    """Unconditional E[X(t)]: expected repeat purchases in ``t`` weeks after the first one (Batislam et al.):

        b/(a-1) * [1 - (alpha/(alpha+t))^r 2F1(r, b+1; a+b; t/(alpha+t))]

    = P(no dropout at the first purchase) = b/(a+b) times the BG/NBD "while alive" expression with b + 1.
    """
    r, alpha, a, b = fit.params
    t_arr = np.asarray(t, dtype=np.float64)
    zeros = np.zeros_like(t_arr)
    return _clip_finite(b / (a + b) * _expected_purchases_while_alive(r, alpha, a, b + 1.0, zeros, zeros, t_arr))


def expected_purchases_if_alive(fit: MbgNbdFit, t: ArrayLike, frequency: ArrayLike, T: ArrayLike) -> np.ndarray:
    """Expected repeat purchases in the next ``t`` weeks of a customer alive at T, given x and T: the bracket of
    :func:`conditional_expected_purchases` (which is this × P(alive)); see
    :func:`pipelines.clv.bgnbd.expected_purchases_if_alive`."""
    r, alpha, a, b = fit.params
    return _clip_finite(
        _expected_purchases_while_alive(
            r,
            alpha,
            a,
            b + 1.0,
            np.asarray(frequency, dtype=np.float64),
            np.asarray(T, dtype=np.float64),
            np.asarray(t, dtype=np.float64),
        )
    )


def discounted_expected_purchases(
    fit: MbgNbdFit, step_ends: ArrayLike, discount: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """Σ_k discount_k · E[purchases in (t_(k−1), t_k]] per customer (t_0 = 0), as
    :func:`pipelines.clv.bgnbd.discounted_expected_purchases`: P(alive) is free of t, and the bracket depends on
    the customer only through (x, T), so it is computed once per distinct pair."""
    r, alpha, a, b = fit.params
    x = np.asarray(frequency, dtype=np.float64)
    T_arr = np.asarray(T, dtype=np.float64)
    steps = np.asarray(step_ends, dtype=np.float64).reshape(-1, 1)
    distinct = _distinct_pairs(x, T_arr)
    pair_x, pair_T = (distinct[0], distinct[1]) if distinct else (x, T_arr)
    cumulative = _expected_purchases_while_alive_direct(r, alpha, a, b + 1.0, pair_x[None, :], pair_T[None, :], steps)
    while_alive = np.asarray(discount, dtype=np.float64) @ np.diff(cumulative, axis=0, prepend=0.0)
    if distinct:
        while_alive = while_alive[distinct[2]]
    return _clip_finite(while_alive * p_alive(fit, x, recency, T_arr))


def _log_inverse_p_alive(fit: MbgNbdFit, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> np.ndarray:
    r, alpha, a, b = fit.params
    x = np.asarray(frequency, dtype=np.float64)
    t_x = np.asarray(recency, dtype=np.float64)
    T_arr = np.asarray(T, dtype=np.float64)
    log_odds_dropped = np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + T_arr) - np.log(alpha + t_x))
    return np.logaddexp(0.0, log_odds_dropped)
