"""MBG/NBD model (Batislam, Denizel & Filiztekin 2007, "Empirical validation and comparison of models for
customer base analysis", International Journal of Research in Marketing 24(3); lifetimes' ModifiedBetaGeoFitter).

The BG/NBD story (:mod:`pipelines.clv.bgnbd`) with one more chance to drop out: right after the first purchase
as well as after each repeat purchase, with probability p ~ Beta(a, b). A customer without repeat purchases
may therefore already be gone, and P(alive) < 1 for x = 0 too. Same inputs (x, t_x, T in weeks) and the same
public functions as :mod:`pipelines.clv.bgnbd`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import digamma, expit, gammaln

from pipelines.clv._mle import FitResult, rfm_model_fitter
from pipelines.clv.bgnbd import (
    _BgNbdLikelihood,
    _clip_finite,
    _conditional_expected_purchases,
    _discounted_expected_purchases,
    _expected_purchases_if_alive,
    _expected_purchases_while_alive,
    _starting_params,
)


class MbgNbdFit(FitResult):  # a frozen dataclass: these parameters, then FitResult's fields
    r: float
    alpha: float  # weeks
    a: float
    b: float


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


class _MbgNbdLikelihood(_BgNbdLikelihood):
    """Total MBG/NBD log-likelihood and gradient over weighted rows, aggregated as the BG/NBD one.

    Same value as summing :func:`mbgnbd_log_likelihood_terms` (a test checks it): A1 + A2 are summed per
    distinct x, A3 per distinct T, and only the correction softplus(A4) needs one pass over the rows (all of
    them: here customers without repeat purchases may have dropped out too).
    """

    dropout_at_first_purchase = True


fit_mbgnbd = rfm_model_fitter(
    "fit_mbgnbd",
    MbgNbdFit,
    _MbgNbdLikelihood,
    _starting_params,  # as fit_bgnbd: r = 1 and alpha = exposure / repeat purchases match the observed rate
    """Maximum-likelihood MBG/NBD fit on frequency / recency / T (weeks); same arguments as
    :func:`pipelines.clv.bgnbd.fit_bgnbd` (``weights`` = customers per row; ``penalizer`` adds
    ``penalizer * (r^2 + alpha^2 + a^2 + b^2)`` to the mean negative log-likelihood).""",
)


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
    return _conditional_expected_purchases(fit, t, frequency, recency, T, p_alive, b_offset=1.0)


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
    return _expected_purchases_if_alive(fit, t, frequency, T, b_offset=1.0)


def discounted_expected_purchases(
    fit: MbgNbdFit, step_ends: ArrayLike, discount: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """Σ_k discount_k · E[purchases in (t_(k−1), t_k]] per customer (t_0 = 0), as
    :func:`pipelines.clv.bgnbd.discounted_expected_purchases`: P(alive) is free of t, and the bracket depends on
    the customer only through (x, T), so it is computed once per distinct pair."""
    return _discounted_expected_purchases(fit, step_ends, discount, frequency, recency, T, p_alive, b_offset=1.0)


def _log_inverse_p_alive(fit: MbgNbdFit, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> np.ndarray:
    r, alpha, a, b = fit.params
    x = np.asarray(frequency, dtype=np.float64)
    t_x = np.asarray(recency, dtype=np.float64)
    T_arr = np.asarray(T, dtype=np.float64)
    log_odds_dropped = np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + T_arr) - np.log(alpha + t_x))
    return np.logaddexp(0.0, log_odds_dropped)
