"""BG/NBD model (Fader, Hardie & Lee 2005, "Counting your customers the easy way:
an alternative to the Pareto/NBD model", Marketing Science 24(2)).

While alive a customer buys at Poisson rate lambda ~ Gamma(r, alpha) per week;
after each repeat purchase they drop out with probability p ~ Beta(a, b).
Inputs per customer: frequency x (repeat purchases), recency t_x and age T,
both in weeks (see :mod:`pipelines.clv.rfm`). ``alpha`` is therefore in weeks.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import digamma, gammaln, hyp2f1

from pipelines.clv._mle import (
    CollapsedRows,
    FitResult,
    factorize,
    observed_rate_scale,
    rfm_model_fitter,
    row_dot,
)


class BgNbdFit(FitResult):  # a frozen dataclass: these parameters, then FitResult's fields
    r: float
    alpha: float  # weeks
    a: float
    b: float


def bgnbd_log_likelihood_terms(
    params: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Per-customer log-likelihood and its gradient wrt (r, alpha, a, b).

    FHL 2005 eq. (6), written as in their implementation note:
        ln L = A1 + A2 + ln(exp(A3) + [x > 0] exp(A4))
        A1 = lnG(r+x) - lnG(r) + r ln(alpha)
        A2 = lnG(a+b) + lnG(b+x) - lnG(b) - lnG(a+b+x)
        A3 = -(r+x) ln(alpha+T)
        A4 = ln(a) - ln(b+x-1) - (r+x) ln(alpha+t_x)
    The two last terms are combined with logaddexp so that large x or T never
    overflow. Returns (ll of shape (n,), gradient of shape (n, 4)).
    """
    r, alpha, a, b = (float(v) for v in params)
    x = np.asarray(frequency, dtype=np.float64)
    t_x = np.asarray(recency, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    repeat_buyer = x > 0
    # b + x - 1 only matters for repeat buyers; keep the log argument valid.
    b_x_minus_1 = np.where(repeat_buyer, b + x - 1.0, 1.0)

    log_alpha_T = np.log(alpha + T)
    log_alpha_tx = np.log(alpha + t_x)
    A1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    A2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    A3 = -(r + x) * log_alpha_T
    A4 = np.where(repeat_buyer, np.log(a) - np.log(b_x_minus_1) - (r + x) * log_alpha_tx, -np.inf)
    log_sum = np.logaddexp(A3, A4)
    log_likelihood = A1 + A2 + log_sum

    # Posterior weights of "still alive" (A3) vs "dropped after t_x" (A4).
    weight_alive = np.exp(A3 - log_sum)
    weight_dropped = 1.0 - weight_alive

    psi_a_b = digamma(a + b)
    psi_a_b_x = digamma(a + b + x)
    gradient = np.empty((x.shape[0], 4))
    gradient[:, 0] = (
        digamma(r + x) - digamma(r) + np.log(alpha) - weight_alive * log_alpha_T - weight_dropped * log_alpha_tx
    )
    gradient[:, 1] = r / alpha - (r + x) * (weight_alive / (alpha + T) + weight_dropped / (alpha + t_x))
    gradient[:, 2] = psi_a_b - psi_a_b_x + weight_dropped / a
    gradient[:, 3] = psi_a_b + digamma(b + x) - digamma(b) - psi_a_b_x - weight_dropped / b_x_minus_1
    return log_likelihood, gradient


class _BgNbdLikelihood:
    """Total BG/NBD log-likelihood and gradient over weighted rows, aggregated.

    Same value as summing :func:`bgnbd_log_likelihood_terms` (a test checks
    it), but organised so that a million customers cost a few milliseconds:
    A1 + A2 depend only on x, and A3 only on (x, T), so they are summed per
    distinct x / T; only the "dropped out after t_x" correction
        ln(exp(A3) + exp(A4)) - A3 = softplus(D),
        D = ln a - ln(b+x-1) + (r+x) (ln(alpha+T) - ln(alpha+t_x)),
    needs one pass over the repeat buyers.

    The MBG/NBD's (:class:`pipelines.clv.mbgnbd._MbgNbdLikelihood`) is this with ``dropout_at_first_purchase``:
    b + x + 1 in place of b + x in A2, b + x in place of b + x - 1 in D, and the correction for every row.
    """

    # MBG/NBD: a customer may drop out right after the first purchase too, so customers without repeat purchases
    # may be gone as well.
    dropout_at_first_purchase = False

    def __init__(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray) -> None:
        self.n_customers = float(weights.sum())
        self.x_values, x_code = factorize(x)
        self.weight_per_x = np.bincount(x_code, weights=weights, minlength=self.x_values.size)
        self.T_values, T_code = factorize(T)
        self.customers_per_T = np.bincount(T_code, weights=weights, minlength=self.T_values.size)
        self.purchases_per_T = np.bincount(T_code, weights=weights * x, minlength=self.T_values.size)
        # The rows that may have dropped out after their last purchase: repeat buyers (all of them: MBG/NBD).
        may_drop = slice(None) if self.dropout_at_first_purchase else x > 0
        self.recency_values, self.recency_code = factorize(t_x[may_drop])
        self.dropout_x_code = x_code[may_drop]
        self.dropout_T_code = T_code[may_drop]
        self.dropout_weights = weights[may_drop]

    def __call__(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        r, alpha, a, b = (float(v) for v in params)
        xs = self.x_values
        r_x = r + xs
        # Alive at T, a customer survived x chances to drop out (x + 1: MBG/NBD): b + x (+ 1) in A2.
        survived = 1.0 if self.dropout_at_first_purchase else 0.0
        b_x_alive = b + xs + survived
        if self.dropout_at_first_purchase:
            b_x_dropped = b + xs
        else:  # b + x - 1: only x >= 1 rows ever index it; keep x = 0 entries finite.
            b_x_dropped = np.where(xs > 0, b + xs - 1.0, 1.0)

        per_x = (
            gammaln(r_x)
            - gammaln(r)
            + r * np.log(alpha)
            + gammaln(a + b)
            + gammaln(b_x_alive)
            - gammaln(b)
            - gammaln(a + b + xs + survived)
        )
        log_alpha_T = np.log(alpha + self.T_values)
        exposure = r * self.customers_per_T + self.purchases_per_T  # sum of (r + x) per T
        total = float(self.weight_per_x @ per_x - exposure @ log_alpha_T)

        psi_a_b = digamma(a + b)
        psi_a_b_x = digamma(a + b + xs + survived)
        gradient = np.array(
            [
                self.weight_per_x @ (digamma(r_x) - digamma(r) + np.log(alpha)) - self.customers_per_T @ log_alpha_T,
                self.n_customers * r / alpha - exposure @ (1.0 / (alpha + self.T_values)),
                self.weight_per_x @ (psi_a_b - psi_a_b_x),
                self.weight_per_x @ (psi_a_b + digamma(b_x_alive) - digamma(b) - psi_a_b_x),
            ]
        )
        if self.dropout_weights.size == 0:
            return total, gradient

        log_alpha_tx = np.log(alpha + self.recency_values)
        log_ratio = log_alpha_T[self.dropout_T_code] - log_alpha_tx[self.recency_code]
        r_x_rows = r_x[self.dropout_x_code]
        D = (np.log(a) - np.log(b_x_dropped))[self.dropout_x_code] + r_x_rows * log_ratio
        # softplus(D) and sigmoid(D) from one exp, stable for any sign of D.
        e = np.exp(-np.abs(D))
        softplus = np.maximum(D, 0.0) + np.log1p(e)
        dropped = np.where(D >= 0, 1.0, e) / (1.0 + e)  # P(dropped out after t_x | data)
        weighted_dropped = self.dropout_weights * dropped

        total += row_dot(self.dropout_weights, softplus)
        inverse_gap = (1.0 / (alpha + self.T_values))[self.dropout_T_code] - (1.0 / (alpha + self.recency_values))[
            self.recency_code
        ]
        dropped_per_x = np.bincount(self.dropout_x_code, weights=weighted_dropped, minlength=xs.size)
        gradient += np.array(
            [
                row_dot(weighted_dropped, log_ratio),
                row_dot(weighted_dropped * r_x_rows, inverse_gap),
                dropped_per_x.sum() / a,
                -(dropped_per_x @ (1.0 / b_x_dropped)),
            ]
        )
        return total, gradient


def _starting_params(rows: CollapsedRows) -> tuple[float, float, float, float]:
    """r = 1 and alpha = total exposure / total repeat purchases: the observed purchase rate; a = b = 1."""
    return (1.0, observed_rate_scale(rows), 1.0, 1.0)


fit_bgnbd = rfm_model_fitter(
    "fit_bgnbd",
    BgNbdFit,
    _BgNbdLikelihood,
    _starting_params,
    """Maximum-likelihood BG/NBD fit on frequency / recency / T (weeks).

    ``weights`` (optional) = number of customers each row stands for.
    ``penalizer`` adds ``penalizer * (r^2 + alpha^2 + a^2 + b^2)`` to the mean
    negative log-likelihood (an L2 shrinkage; 0 = plain MLE).
    ``covariance``: compute the parameters' asymptotic covariance (standard
    errors) at the optimum; off where only the estimates are needed.
    """,
)


def p_alive(fit: BgNbdFit, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> np.ndarray:
    """P(customer still alive at T | x, t_x, T) (FHL 2008 note "Computing P(alive)"):

        1 / (1 + [x > 0] * a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x))

    evaluated as exp(-log1p(exp(.))) so that large x cannot overflow.
    """
    return np.exp(-_log_inverse_p_alive(fit, frequency, recency, T))


def conditional_expected_purchases(
    fit: BgNbdFit, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """Expected repeat purchases in the next ``t`` weeks, given (x, t_x, T). FHL 2005 eq. (10):

        E[Y(t)] = (a+b+x-1)/(a-1)
                  * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))]
                  * P(alive)

    The bracket is evaluated through two Pfaff transformations,
        (1-z)^(r+x) 2F1(r+x, b+x; c; z) = (1+u)^(1-a) 2F1(a+b-1-r, a-1; c; u/(1+u)),
        u = t/(alpha+T),  u/(1+u) = z = t/(alpha+T+t),
    which leaves only small upper parameters and an argument in [0, 1): the
    series then converges fast however large x, T or t are, instead of
    multiplying a vanishing power by an exploding 2F1.
    The result is clipped to [0, largest finite float].
    """
    return _conditional_expected_purchases(fit, t, frequency, recency, T, p_alive, b_offset=0.0)


def expected_purchases_new_customer(fit: BgNbdFit, t: ArrayLike) -> np.ndarray:
    """Unconditional E[X(t)]: expected repeat purchases in ``t`` weeks after the first one.

    FHL 2005 eq. (9): (a+b-1)/(a-1) * [1 - (alpha/(alpha+t))^r 2F1(r, b; a+b-1; t/(alpha+t))],
    with the same transformation as :func:`conditional_expected_purchases`
    (it is that expression with x = 0 and T = 0).
    """
    r, alpha, a, b = fit.params
    t_arr = np.asarray(t, dtype=np.float64)
    expected = _expected_purchases_while_alive(r, alpha, a, b, np.zeros_like(t_arr), np.zeros_like(t_arr), t_arr)
    return _clip_finite(expected)


def expected_purchases_if_alive(fit: BgNbdFit, t: ArrayLike, frequency: ArrayLike, T: ArrayLike) -> np.ndarray:
    """Expected repeat purchases in the next ``t`` weeks of a customer alive at T, given x and T: the bracket of
    :func:`conditional_expected_purchases`, which is this × P(alive). It depends on the customer only through
    (x, T), so group totals can weight it by P(alive) × value summed per distinct (x, T). Broadcasts like
    :func:`conditional_expected_purchases`."""
    return _expected_purchases_if_alive(fit, t, frequency, T, b_offset=0.0)


def discounted_expected_purchases(
    fit: BgNbdFit, step_ends: ArrayLike, discount: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """Σ_k discount_k · E[purchases in (t_(k−1), t_k]] per customer (t_0 = 0): the purchase count behind a
    discounted CLV. E[Y(t)] = A(x, T, t) · P(alive), with P(alive) free of t, so the sum is
    P(alive) · Σ_k discount_k · (A(t_k) − A(t_(k−1))); the bracket depends on the customer only through (x, T) and
    is computed once per distinct pair (12 steps × 58 k pairs instead of 12 × 1.6 M customers)."""
    return _discounted_expected_purchases(fit, step_ends, discount, frequency, recency, T, p_alive, b_offset=0.0)


# The three functions below serve the MBG/NBD too (pipelines.clv.mbgnbd). Alive at T after x repeat purchases, a
# customer's dropout probability has the posterior Beta(a, b + x) under the BG/NBD and Beta(a, b + x + 1) under the
# MBG/NBD (the chance to drop out right after the first purchase was survived as well): its expected purchases
# while alive are the BG/NBD's with b + b_offset in place of b, b_offset = 0 or 1. ``alive_probability`` is the
# model's p_alive.


def _conditional_expected_purchases(fit, t, frequency, recency, T, alive_probability, b_offset: float) -> np.ndarray:
    r, alpha, a, b = fit.params
    x = np.asarray(frequency, dtype=np.float64)
    T_arr = np.asarray(T, dtype=np.float64)
    t_arr = np.asarray(t, dtype=np.float64)
    while_alive = _expected_purchases_while_alive(r, alpha, a, b + b_offset, x, T_arr, t_arr)
    return _clip_finite(while_alive * alive_probability(fit, x, recency, T_arr))


def _expected_purchases_if_alive(fit, t, frequency, T, b_offset: float) -> np.ndarray:
    r, alpha, a, b = fit.params
    x = np.asarray(frequency, dtype=np.float64)
    T_arr = np.asarray(T, dtype=np.float64)
    return _clip_finite(
        _expected_purchases_while_alive(r, alpha, a, b + b_offset, x, T_arr, np.asarray(t, dtype=np.float64))
    )


def _discounted_expected_purchases(
    fit, step_ends, discount, frequency, recency, T, alive_probability, b_offset: float
) -> np.ndarray:
    r, alpha, a, b = fit.params
    x = np.asarray(frequency, dtype=np.float64)
    T_arr = np.asarray(T, dtype=np.float64)
    steps = np.asarray(step_ends, dtype=np.float64).reshape(-1, 1)
    distinct = _distinct_pairs(x, T_arr)
    pair_x, pair_T = (distinct[0], distinct[1]) if distinct else (x, T_arr)
    cumulative = _expected_purchases_while_alive_direct(
        r, alpha, a, b + b_offset, pair_x[None, :], pair_T[None, :], steps
    )
    while_alive = np.asarray(discount, dtype=np.float64) @ np.diff(cumulative, axis=0, prepend=0.0)
    if distinct:
        while_alive = while_alive[distinct[2]]
    return _clip_finite(while_alive * alive_probability(fit, x, recency, T_arr))


# Below this many customers the direct evaluation is cheaper than finding the distinct (x, T) pairs.
_DEDUPLICATE_FROM = 50_000


def _distinct_pairs(x: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(x, T) of the distinct pairs among 1-D customer arrays and each customer's index into them; None when
    there are too few customers for it to pay. One complex key per customer: np.unique sorts it (real, then
    imaginary part) in a single 1-D pass (`unique(axis=1)` on stacked pairs is 9× slower)."""
    if x.size < _DEDUPLICATE_FROM:
        return None
    pairs, inverse = np.unique((x + 1j * T).reshape(-1), return_inverse=True)
    return pairs.real, pairs.imag, inverse.reshape(-1)


def _expected_purchases_while_alive(
    r: float, alpha: float, a: float, b: float, x: np.ndarray, T: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """(a+b+x-1)/(a-1) * [1 - (1+u)^(1-a) 2F1(a+b-1-r, a-1; a+b+x-1; u/(1+u))], u = t/(alpha+T).

    The hypergeometric function dominates scoring (1.6 M customers x 15 horizons: 7 s), and it depends on the
    customer only through (x, T), which customers share (1.6 M customers, 58 k distinct pairs): with customers
    on the last axis (x and T of shape (..., 1, n), t the same for every customer), it is evaluated once per
    distinct pair and indexed back."""
    x, T = np.broadcast_arrays(x, T)
    t_constant_per_customer = np.ndim(t) == 0 or np.shape(t)[-1] == 1
    if x.shape[:-1] == (1,) * (x.ndim - 1) and t_constant_per_customer:
        distinct = _distinct_pairs(x.reshape(-1), T.reshape(-1))
        if distinct:
            shape = x.shape[:-1] + (distinct[0].size,)
            values = _expected_purchases_while_alive_direct(
                r, alpha, a, b, distinct[0].reshape(shape), distinct[1].reshape(shape), t
            )
            return values[..., distinct[2]]
    return _expected_purchases_while_alive_direct(r, alpha, a, b, x, T, t)


def _expected_purchases_while_alive_direct(
    r: float, alpha: float, a: float, b: float, x: np.ndarray, T: np.ndarray, t: np.ndarray
) -> np.ndarray:
    c = a + b + x - 1.0
    horizon_ratio = t / (alpha + T)
    hypergeometric = hyp2f1(a + b - 1.0 - r, a - 1.0, c, horizon_ratio / (1.0 + horizon_ratio))
    bracket = 1.0 - np.exp((1.0 - a) * np.log1p(horizon_ratio)) * hypergeometric
    return c / (a - 1.0) * bracket


def _log_inverse_p_alive(fit: BgNbdFit, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> np.ndarray:
    r, alpha, a, b = fit.params
    x = np.asarray(frequency, dtype=np.float64)
    t_x = np.asarray(recency, dtype=np.float64)
    T_arr = np.asarray(T, dtype=np.float64)
    repeat_buyer = x > 0
    safe_b_x_minus_1 = np.where(repeat_buyer, b + x - 1.0, 1.0)
    log_odds_dropped = np.where(
        repeat_buyer,
        np.log(a) - np.log(safe_b_x_minus_1) + (r + x) * (np.log(alpha + T_arr) - np.log(alpha + t_x)),
        -np.inf,
    )
    return np.logaddexp(0.0, log_odds_dropped)


def _clip_finite(values: np.ndarray) -> np.ndarray:
    largest = np.finfo(np.float64).max
    return np.clip(np.nan_to_num(values, nan=np.nan, posinf=largest, neginf=0.0), 0.0, largest)
