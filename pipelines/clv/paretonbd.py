"""Pareto/NBD model (Schmittlein, Morrison & Colombo 1987, "Counting your customers: who are they and what will
they do next?", Management Science 33(1)); likelihood as in Fader, Hardie & Lee (2005), "A note on deriving the
Pareto/NBD model and related expressions".

While alive a customer buys at Poisson rate lambda ~ Gamma(r, alpha) per week; the lifetime is exponential with
rate mu ~ Gamma(s, beta), independent of lambda. Inputs per customer: frequency x (repeat purchases), recency t_x
and age T, in weeks (see :mod:`pipelines.clv.rfm`), as for :mod:`pipelines.clv.bgnbd`, whose public functions
this module mirrors.

Likelihood. Integrating lambda and mu out of
    lambda^x e^{-lambda t_x} [e^{-(lambda+mu) T}  +  integral_{t_x}^{T} mu e^{-mu u} e^{-lambda (u - t_x)} du]
gives, with F(p, q; tau) = integral_tau^inf (alpha+u)^-p (beta+u)^-q du,
    L = Gamma(r+x) alpha^r beta^s / Gamma(r) * [(alpha+T)^-(r+x) (beta+T)^-s + s (G(t_x) - G(T))],
    G = F(r+x, s+1),  K = F(r+x+1, s).
FHL's s/(r+s+x) A_0 is s (G(t_x) - G(T)): for alpha >= beta, G(tau) = (alpha+tau)^-(r+s+x) / (r+s+x) *
2F1(r+s+x, s+1; r+s+x+1; (alpha-beta)/(alpha+tau)), and the beta form for alpha < beta. Integrating
d/du [(alpha+u)^-(r+x) (beta+u)^-s] from T to infinity shows (alpha+T)^-(r+x) (beta+T)^-s = (r+x) K(T) + s G(T),
so the bracket is the sum of two positive terms, with no subtraction:
    L = Gamma(r+x) alpha^r beta^s / Gamma(r) * [(r+x) K(T) + s G(t_x)],
and ln L = ln C + logaddexp(ln((r+x) K(T)), ln(s G(t_x))), the same shape as the BG/NBD likelihood: one term per
distinct (x, T), one per distinct (x, t_x), combined per distinct (x, t_x, T).

Both integrals are computed as exp(E(tau)) (1-z)^e / (r+s+x) * S, with E(tau) = -(r+x) ln(alpha+tau)
- s ln(beta+tau), z = |alpha-beta| / (max(alpha, beta)+tau) in [0, 1), e in {0, 1} and S = 2F1(1, b; r+s+x+1; z),
b in {r+x, r+x+1, s+1, s} (FHL's functions after an Euler transformation, which works for alpha >= beta and
alpha < beta alike). S is a series of positive terms whose ratio is below z, so it is summed to full precision
with its derivatives in b, c and z (the analytic gradient); its coefficients depend on x only and its powers of z
on tau only. Where z is too close to 1 for the series to be cheap (z > ~0.73: min(alpha, beta) + tau below ~27%
of max(alpha, beta), as when a fit runs to s, beta -> infinity), the integral up to the tau where z = 1/2 is taken by
Gauss-Legendre quadrature on panels adapted to the (log-concave) integrand instead, its analytic gradient from the
same nodes; a series at z = 1/2 gives the rest.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import digamma, expit, gammaln

from pipelines.clv._mle import CollapsedRows, FitResult, factorize, observed_rate_scale, rfm_model_fitter, row_dot
from pipelines.clv.bgnbd import _clip_finite


class ParetoNbdFit(FitResult):  # a frozen dataclass: these parameters, then FitResult's fields
    r: float
    alpha: float  # weeks
    s: float
    beta: float  # weeks


# Series truncation: the terms left out are below this fraction of the sum.
_SERIES_EPSILON = 1e-17
_MIN_SERIES_TERMS = 8
# Beyond this many terms (z > ~0.73) the pairs go to the quadrature of _log_tail_integral_near_z_one instead
# (which needs z > 1/2), cheaper there.
_MAX_SERIES_TERMS = 128
# Quadrature there: panels of equal lambda = |change of the log-integrand| + 2 |change of v| (so at most 6 and 3),
# 16 Gauss-Legendre nodes each (8 for pieces of lambda <= 1); nothing where the integrand is below e^-45
# (~3e-20) of the largest value it takes for any pair that integrates over it.
_NEAR_ONE_PANEL = 6.0
_NEAR_ONE_V_WEIGHT = 2.0
_NEAR_ONE_NODES = 16
_NEAR_ONE_SHORT = 1.0
_NEAR_ONE_SHORT_NODES = 8
_NEAR_ONE_DROP = 45.0
# Per-pair evaluation chunk: pairs x terms x 4 coefficients held at once.
_CHUNK_ELEMENTS = 1 << 21
# The series are evaluated on the whole (tau x x) grid by matrix products while it has at most this many cells
# per pair actually needed (a product costs ~1/8 of a gathered per-pair sum), else pair by pair.
_GRID_DENSITY = 8
_SINGLE_THREAD_GEMM = 1 << 18


def paretonbd_log_likelihood_terms(
    params: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Per-customer log-likelihood and its gradient wrt (r, alpha, s, beta): (ll of shape (n,), gradient (n, 4))."""
    x = np.asarray(frequency, dtype=np.float64).reshape(-1)
    t_x = np.asarray(recency, dtype=np.float64).reshape(-1)
    T_arr = np.asarray(T, dtype=np.float64).reshape(-1)
    likelihood = _ParetoNbdLikelihood(x, t_x, T_arr, np.ones_like(x))
    return likelihood.per_row(np.asarray(params, dtype=np.float64))


class _ParetoNbdLikelihood:
    """Total Pareto/NBD log-likelihood and gradient over weighted rows (x, t_x, T).

    ln L_i = ln C_x + k(x, T) + softplus(g(x, t_x) - k(x, T)),
        ln C_x = lnG(r+x) - lnG(r) + r ln(alpha) + s ln(beta)   (per distinct x),
        k = ln((r+x) K(T))   (per distinct (x, T): "still alive at T"),
        g = ln(s G(t_x))     (per distinct (x, t_x): "died between t_x and T").
    The gradient of the softplus splits between k and g by sigmoid(g - k) = P(died | data), so only two weighted
    bincounts run over the rows.
    """

    def __init__(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray) -> None:
        self.weights = weights
        self.n_customers = float(weights.sum())
        self.x_values, x_code = factorize(x)
        self.weight_per_x = np.bincount(x_code, weights=weights, minlength=self.x_values.size)
        self.T_values, T_code = factorize(T)
        self.recency_values, recency_code = factorize(t_x)
        self.alive_pairs = _PairIndex(x_code, self.x_values.size, T_code, self.T_values.size)
        self.dropout_pairs = _PairIndex(x_code, self.x_values.size, recency_code, self.recency_values.size)
        self.weight_per_alive_pair = np.bincount(
            self.alive_pairs.row_code, weights=weights, minlength=self.alive_pairs.size
        )

    def _pair_terms(self, params: np.ndarray, gradient: bool):
        # numpy scalars: a parameter that underflows to 0 in a line search gives inf / nan, not an exception.
        r, alpha, s, beta = (np.float64(v) for v in params)
        k, k_grad = _log_tail_integral(
            r, alpha, s, beta, self.x_values, self.T_values, self.alive_pairs, alive=True, gradient=gradient
        )
        g, g_grad = _log_tail_integral(
            r, alpha, s, beta, self.x_values, self.recency_values, self.dropout_pairs, alive=False, gradient=gradient
        )
        xs = self.x_values
        log_c = gammaln(r + xs) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        log_c_grad = None
        if gradient:
            log_c_grad = np.empty((xs.size, 4))
            log_c_grad[:, 0] = digamma(r + xs) - digamma(r) + np.log(alpha)
            log_c_grad[:, 1] = r / alpha
            log_c_grad[:, 2] = np.log(beta)
            log_c_grad[:, 3] = s / beta
        return log_c, log_c_grad, k, k_grad, g, g_grad

    def __call__(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        log_c, log_c_grad, k, k_grad, g, g_grad = self._pair_terms(params, gradient=True)
        D = g[self.dropout_pairs.row_code] - k[self.alive_pairs.row_code]
        # softplus(D) and sigmoid(D) from one exp, stable for any sign of D.
        e = np.exp(-np.abs(D))
        softplus = np.maximum(D, 0.0) + np.log1p(e)
        weighted_died = self.weights * (np.where(D >= 0, 1.0, e) / (1.0 + e))
        # einsum / row_dot rather than BLAS on the long vectors (see row_dot).
        total = (
            row_dot(self.weight_per_x, log_c) + row_dot(self.weight_per_alive_pair, k) + row_dot(self.weights, softplus)
        )
        died_per_alive_pair = np.bincount(
            self.alive_pairs.row_code, weights=weighted_died, minlength=self.alive_pairs.size
        )
        died_per_dropout_pair = np.bincount(
            self.dropout_pairs.row_code, weights=weighted_died, minlength=self.dropout_pairs.size
        )
        gradient = (
            np.einsum("i,ij->j", self.weight_per_x, log_c_grad)
            + np.einsum("i,ij->j", self.weight_per_alive_pair - died_per_alive_pair, k_grad)
            + np.einsum("i,ij->j", died_per_dropout_pair, g_grad)
        )
        return total, gradient

    def per_row(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unweighted ln L and gradient of every row (for tests and diagnostics)."""
        log_c, log_c_grad, k, k_grad, g, g_grad = self._pair_terms(params, gradient=True)
        x_code = self.alive_pairs.first_code[self.alive_pairs.row_code]
        k_rows, g_rows = k[self.alive_pairs.row_code], g[self.dropout_pairs.row_code]
        died = expit(g_rows - k_rows)
        log_likelihood = log_c[x_code] + np.logaddexp(k_rows, g_rows)
        gradient = (
            log_c_grad[x_code]
            + (1.0 - died)[:, None] * k_grad[self.alive_pairs.row_code]
            + died[:, None] * g_grad[self.dropout_pairs.row_code]
        )
        return log_likelihood, gradient


class _PairIndex:
    """Distinct (first, second) code pairs among rows and each row's index into them."""

    def __init__(self, first: np.ndarray, first_size: int, second: np.ndarray, second_size: int) -> None:
        key = first.astype(np.int64) * second_size + second
        key_range = first_size * second_size
        if key_range <= 4 * key.size + 1024:
            present = np.bincount(key, minlength=key_range) > 0
            distinct = np.flatnonzero(present)
            self.row_code = (np.cumsum(present) - 1)[key]
        else:
            distinct, row_code = np.unique(key, return_inverse=True)
            self.row_code = row_code.reshape(-1)
        self.first_code = distinct // second_size
        self.second_code = distinct % second_size
        self.size = distinct.size


def _log_tail_integral(
    r: float,
    alpha: float,
    s: float,
    beta: float,
    x_values: np.ndarray,
    taus: np.ndarray,
    pairs: _PairIndex,
    *,
    alive: bool,
    gradient: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per pair (x, tau): ln((r+x) K(tau)) if ``alive`` else ln(s G(tau)), and its gradient wrt (r, alpha, s, beta)
    (shape (pairs, 4), None unless ``gradient``). By the series (:func:`_log_tail_integral_by_series`), except for
    the taus whose z is too close to 1 for it (:func:`_log_tail_integral_near_z_one`)."""
    larger, smaller = max(alpha, beta), min(alpha, beta)
    near_one = _series_terms_needed((larger - smaller) / (larger + taus)) > _MAX_SERIES_TERMS
    x_code, tau_code = pairs.first_code, pairs.second_code
    if not near_one.any():
        return _log_tail_integral_by_series(r, alpha, s, beta, x_values, taus, x_code, tau_code, alive, gradient)
    by_quadrature = near_one[tau_code]
    by_series = ~by_quadrature
    value = np.empty(x_code.size)
    grad = np.empty((x_code.size, 4)) if gradient else None
    value[by_series], series_grad = _log_tail_integral_by_series(
        r, alpha, s, beta, x_values, taus, x_code[by_series], tau_code[by_series], alive, gradient
    )
    value[by_quadrature], quadrature_grad = _log_tail_integral_near_z_one(
        r, alpha, s, beta, x_values, taus, x_code[by_quadrature], tau_code[by_quadrature], alive, gradient
    )
    if gradient:
        grad[by_series] = series_grad
        grad[by_quadrature] = quadrature_grad
    return value, grad


def _log_tail_integral_by_series(
    r: float,
    alpha: float,
    s: float,
    beta: float,
    xs: np.ndarray,
    taus: np.ndarray,
    x_code: np.ndarray,
    tau_code: np.ndarray,
    alive: bool,
    gradient: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`_log_tail_integral` for pairs (xs[x_code], taus[tau_code]) by the hypergeometric series:

    ln F = E(tau) - ln(r+s+x) + ln S(b, c, z) + e ln(1-z), c = r+s+x+1, z = |alpha-beta| / (max(alpha,beta)+tau):
        alpha >= beta:  K: b = r+x+1, e = 1;   G: b = r+x, e = 0
        alpha <  beta:  K: b = s,     e = 0;   G: b = s+1, e = 1
    with ln(1-z) = ln(min(alpha,beta)+tau) - ln(max(alpha,beta)+tau).
    """
    alpha_larger = alpha >= beta
    larger, smaller = (alpha, beta) if alpha_larger else (beta, alpha)
    log_alpha_tau = np.log(alpha + taus)
    log_beta_tau = np.log(beta + taus)
    z_tau = (larger - smaller) / (larger + taus)
    a = r + s + xs
    c = a + 1.0
    if alpha_larger:
        b = r + xs + 1.0 if alive else r + xs
        b_depends_on_r = True
    else:
        b = np.full_like(xs, s if alive else s + 1.0)
        b_depends_on_r = False
    uses_one_minus_z = alpha_larger == alive

    log_s, dlog_s = _log_hyp2f1_one(b, c, z_tau, x_code, tau_code, gradient)
    x_p = xs[x_code]
    r_x = r + x_p
    log_alpha_p = log_alpha_tau[tau_code]
    log_beta_p = log_beta_tau[tau_code]
    head = np.log(r_x) if alive else np.log(s)
    value = head - r_x * log_alpha_p - s * log_beta_p - np.log(a[x_code]) + log_s
    if uses_one_minus_z:
        value += (log_beta_p - log_alpha_p) if alpha_larger else (log_alpha_p - log_beta_p)
    if not gradient:
        return value, None

    d_b, d_c, d_z = dlog_s
    inverse_alpha = 1.0 / (alpha + taus)[tau_code]
    inverse_beta = 1.0 / (beta + taus)[tau_code]
    inverse_a = 1.0 / a[x_code]
    grad = np.empty((x_code.size, 4))
    grad[:, 0] = -log_alpha_p - inverse_a + d_c + (d_b if b_depends_on_r else 0.0)
    grad[:, 1] = -r_x * inverse_alpha
    grad[:, 2] = -log_beta_p - inverse_a + d_c + (0.0 if b_depends_on_r else d_b)
    grad[:, 3] = -s * inverse_beta
    if alpha_larger:  # z = (alpha-beta)/(alpha+tau)
        grad[:, 1] += d_z * (beta + taus)[tau_code] * inverse_alpha**2
        grad[:, 3] -= d_z * inverse_alpha
    else:  # z = (beta-alpha)/(beta+tau)
        grad[:, 1] -= d_z * inverse_beta
        grad[:, 3] += d_z * (alpha + taus)[tau_code] * inverse_beta**2
    if uses_one_minus_z:
        sign = 1.0 if alpha_larger else -1.0  # ln(1-z) = +-(ln(beta+tau) - ln(alpha+tau))
        grad[:, 1] -= sign * inverse_alpha
        grad[:, 3] += sign * inverse_beta
    if alive:
        grad[:, 0] += 1.0 / r_x
    else:
        grad[:, 2] += 1.0 / s
    return value, grad


def _log_tail_integral_near_z_one(
    r: float,
    alpha: float,
    s: float,
    beta: float,
    xs: np.ndarray,
    taus: np.ndarray,
    x_code: np.ndarray,
    tau_code: np.ndarray,
    alive: bool,
    gradient: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`_log_tail_integral` where z(tau) is close to 1, i.e. min(alpha,beta) + tau << max(alpha,beta).

    F(tau) = integral_tau^tau1 + F(tau1), tau1 = max - 2 min (where z = 1/2): F(tau1) by the series (once per x);
    the near part by Gauss-Legendre quadrature in v = ln(min(alpha,beta) + u), where the log-integrand
        phi(v) = (1 - e_min) v - e_max ln(delta + e^v),   delta = |alpha - beta|,
    (e_min, e_max the exponents of the smaller and larger of alpha+u, beta+u) depends on x but not on tau, which
    only sets the lower limit v0 = ln(min + tau). So, per x, [min v0, ln(delta)] is cut into panels of equal
    lambda = |phi(peak) - phi(v)| + 2 |v - peak| (phi is concave, so no panel holds more than a small change of
    phi, nor a long stretch of v), the panels are split again at every v0 of that x, pieces where the integrand
    is negligible for every pair that covers them are skipped, and the integral from each v0 is a reverse
    cumulative log-sum over the pieces. The gradient at fixed tau1 (the
    split point cancels out of the sum) takes the derivatives of the log-integrand, -ln(alpha+u), -p/(alpha+u),
    -ln(beta+u), -q/(beta+u), as weighted means over the same nodes, accumulated the same way.
    """
    alpha_larger = alpha >= beta
    larger, smaller = (alpha, beta) if alpha_larger else (beta, alpha)
    log_delta = float(np.log(larger - smaller))
    x_used, pair_x = np.unique(x_code, return_inverse=True)
    x = xs[x_used]
    p = r + x + (1.0 if alive else 0.0)  # exponent of (alpha + u)
    q = s if alive else s + 1.0  # exponent of (beta + u)
    e_min, e_max = (np.full_like(x, q), p) if alpha_larger else (p, np.full_like(x, q))
    slope0 = 1.0 - e_min

    def phi(v, which):  # which: index into the x used, broadcastable against v
        return slope0[which] * v - e_max[which] * (log_delta + np.log1p(np.exp(v - log_delta)))

    def dphi(v, which):
        return slope0[which] - e_max[which] * expit(v - log_delta)

    v0 = np.log(smaller + taus[tau_code])  # per pair
    v_low = np.full(x.size, np.inf)
    np.minimum.at(v_low, pair_x, v0)
    v_last = np.full(x.size, -np.inf)
    np.maximum.at(v_last, pair_x, v0)
    v_high = np.full(x.size, log_delta)
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma_peak = slope0 / e_max
        v_peak = log_delta + np.log(sigma_peak / (1.0 - sigma_peak))
    v_peak = np.clip(np.where(sigma_peak > 0.0, v_peak, v_low), v_low, v_high)
    phi_peak = phi(v_peak, slice(None))
    everything = slice(None)
    # Nothing below the peak by more than _NEAR_ONE_DROP counts (left side), nor beyond the point where phi has
    # dropped that much below its value at the last lower limit of the x (right side): the panels stop there.
    left_target = phi_peak - _NEAR_ONE_DROP
    v_left = np.where(
        phi(v_low, everything) >= left_target,
        v_low,
        _solve_increasing(lambda v: phi(v, everything) - left_target, lambda v: dphi(v, everything), v_low, v_peak),
    )
    right_target = phi(np.maximum(v_last, v_peak), everything) - _NEAR_ONE_DROP
    v_right = np.where(
        phi(v_high, everything) >= right_target,
        v_high,
        _solve_increasing(
            lambda v: right_target - phi(v, everything),
            lambda v: -dphi(v, everything),
            np.maximum(v_last, v_peak),
            v_high,
        ),
    )

    # Panel edges: equal steps of lambda on each side of the peak, solved for the distance d from the peak.
    edge_v, edge_x = [v_peak, v_left, v_right], [np.arange(x.size)] * 3
    for direction, end in ((1.0, v_right), (-1.0, v_left)):
        length = np.abs(end - v_peak)

        def measure(d, which, direction=direction):
            return phi_peak[which] - phi(v_peak[which] + direction * d, which) + _NEAR_ONE_V_WEIGHT * d

        total = measure(length, everything)
        n_panels = np.ceil(np.maximum(total, 0.0) / _NEAR_ONE_PANEL).astype(np.int64)
        which = np.repeat(np.arange(x.size), np.maximum(n_panels - 1, 0))
        if which.size == 0:
            continue
        # k / n_panels for k = 1 .. n_panels - 1 within each x
        k = np.arange(which.size) - np.repeat(np.cumsum(n_panels - 1) - (n_panels - 1), np.maximum(n_panels - 1, 0))
        fraction = (k + 1.0) / n_panels[which]
        inner = _solve_increasing(
            lambda d, which=which, total=total, fraction=fraction: measure(d, which) - total[which] * fraction,
            lambda d, which=which, direction=direction: (
                _NEAR_ONE_V_WEIGHT - direction * dphi(v_peak[which] + direction * d, which)
            ),
            length[which] * fraction,  # below the root: lambda is convex with lambda(0) = 0
            length[which],
        )
        edge_v.append(v_peak[which] + direction * inner)
        edge_x.append(which)
    # Break points: panel edges and every pair's lower limit, sorted per x; segment i runs to break point i+1.
    point_v = np.concatenate(edge_v + [v0])
    point_x = np.concatenate(edge_x + [pair_x])
    order = np.lexsort((point_v, point_x))
    point_v, point_x = point_v[order], point_x[order]
    position = np.empty(point_v.size, dtype=np.int64)
    position[order] = np.arange(point_v.size)
    pair_point = position[point_v.size - v0.size :]  # where each pair's v0 landed
    is_start = np.zeros(point_v.size, dtype=bool)
    is_start[pair_point] = True

    # A segment counts if it is within _NEAR_ONE_DROP of the largest integrand any pair starting at or before it
    # sees: left of the peak, the peak; right of it, phi at the last start before the segment (phi decreases).
    same_x = point_x[1:] == point_x[:-1]
    seg_x = point_x[:-1]
    last_start = np.maximum.accumulate(np.where(is_start, np.arange(point_v.size), -1))[:-1]
    has_start = (last_start >= 0) & (point_x[np.maximum(last_start, 0)] == seg_x)
    seg_start, seg_end = point_v[:-1], point_v[1:]
    right_of_peak = seg_start >= v_peak[seg_x]
    seen_max = np.where(
        right_of_peak, phi(np.maximum(point_v[np.maximum(last_start, 0)], v_peak[seg_x]), seg_x), phi_peak[seg_x]
    )
    seg_max = phi(np.where(right_of_peak, seg_start, seg_end), seg_x)
    counted = np.flatnonzero(same_x & has_start & (seg_end > seg_start) & (seg_max >= seen_max - _NEAR_ONE_DROP))

    # ln(min + u) = v, ln(max + u) = ln(delta + e^v); the logs enter shifted to be >= 0 (their means are summed
    # in log space), their shift added back after.
    shift_smaller = float(v0.min())
    shift_larger = float(log_delta + np.log1p(np.exp(shift_smaller - log_delta)))
    shift_alpha, shift_beta = (shift_larger, shift_smaller) if alpha_larger else (shift_smaller, shift_larger)
    seg_logs = [np.full(point_v.size, -np.inf) for _ in range(5 if gradient else 1)]
    # Short segments (between close lower limits: most of them with many customers) get fewer nodes.
    span = np.abs(phi(seg_end[counted], seg_x[counted]) - phi(seg_start[counted], seg_x[counted]))
    short = span + _NEAR_ONE_V_WEIGHT * (seg_end[counted] - seg_start[counted]) <= _NEAR_ONE_SHORT
    for selected, n_nodes in ((counted[short], _NEAR_ONE_SHORT_NODES), (counted[~short], _NEAR_ONE_NODES)):
        nodes, node_weights = np.polynomial.legendre.leggauss(n_nodes)
        half = 0.5 * (seg_end[selected] - seg_start[selected])
        v = (seg_start[selected] + half)[:, None] + half[:, None] * nodes  # (segments, nodes)
        log_f = phi(v, seg_x[selected][:, None])
        reference = log_f.max(axis=1, keepdims=True)
        weights = np.exp(log_f - reference) * (half[:, None] * node_weights)
        seg_logs[0][selected] = np.log(weights.sum(axis=1)) + reference[:, 0]
        if not gradient:
            continue
        log_larger_u = log_delta + np.log1p(np.exp(v - log_delta))
        log_alpha_u, log_beta_u = (log_larger_u, v) if alpha_larger else (v, log_larger_u)
        multipliers = (log_alpha_u - shift_alpha, np.exp(-log_alpha_u), log_beta_u - shift_beta, np.exp(-log_beta_u))
        with np.errstate(divide="ignore"):
            for out, multiplier in zip(seg_logs[1:], multipliers):
                out[selected] = np.log(np.maximum((weights * multiplier).sum(axis=1), 0.0)) + reference[:, 0]
    # Reverse cumulative log-sums within each x: from every break point to v = ln(delta).
    group_start = np.flatnonzero(np.concatenate(([True], ~same_x)))
    group_end = np.append(group_start[1:], point_v.size)
    cumulative = [np.empty(point_v.size) for _ in seg_logs]
    for first, last in zip(group_start, group_end):
        for out, values in zip(cumulative, seg_logs):
            out[first:last] = np.logaddexp.accumulate(values[first:last][::-1])[::-1]
    log_near = cumulative[0][pair_point]

    far_value, far_grad = _log_tail_integral_by_series(
        r, alpha, s, beta, xs, np.array([larger - 2.0 * smaller]), x_used, np.zeros_like(x_used), alive, gradient
    )
    head = np.log(r + x[pair_x]) if alive else np.full(pair_x.size, np.log(s))
    near_value = head + log_near
    value = np.logaddexp(near_value, far_value[pair_x])
    if not gradient:
        return value, None

    with np.errstate(invalid="ignore"):
        means = [np.exp(c[pair_point] - log_near) for c in cumulative[1:]]
    near_grad = np.empty((pair_x.size, 4))
    near_grad[:, 0] = -(means[0] + shift_alpha)
    near_grad[:, 1] = -p[pair_x] * means[1]
    near_grad[:, 2] = -(means[2] + shift_beta)
    near_grad[:, 3] = -q * means[3]
    if alive:
        near_grad[:, 0] += 1.0 / (r + x[pair_x])
    else:
        near_grad[:, 2] += 1.0 / s
    near_share = np.exp(near_value - value)[:, None]
    return value, near_share * near_grad + (1.0 - near_share) * far_grad[pair_x]


def _solve_increasing(function, derivative, low, high):
    """Elementwise root of increasing functions with function(low) <= 0 <= function(high): Newton's method,
    with a bisection step whenever Newton would leave the bracket."""
    low, high = np.array(low, dtype=np.float64), np.array(high, dtype=np.float64)
    d = 0.5 * (low + high)
    for _ in range(100):
        value = function(d)
        low = np.where(value <= 0.0, d, low)
        high = np.where(value >= 0.0, d, high)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = d - value / derivative(d)
        new = np.where((newton > low) & (newton < high), newton, 0.5 * (low + high))
        if np.all((np.abs(new - d) <= 1e-14 * (1.0 + np.abs(d))) | (high - low <= 1e-14 * (1.0 + np.abs(d)))):
            return new
        d = new
    return d


def _series_terms_needed(z: np.ndarray) -> np.ndarray:
    """Terms after which the remainder of sum_n (b)_n/(c)_n z^n (b < c, term ratio < z) is below epsilon."""
    with np.errstate(divide="ignore"):
        needed = np.log(_SERIES_EPSILON * (1.0 - z)) / np.log(z)
    return np.where(z > 0.0, np.ceil(np.nan_to_num(needed, nan=0.0, posinf=np.inf)) + 2.0, 2.0)


def _log_hyp2f1_one(
    b: np.ndarray, c: np.ndarray, z_tau: np.ndarray, x_code: np.ndarray, tau_code: np.ndarray, gradient: bool
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
    """ln S and (d ln S/db, d ln S/dc, d ln S/dz) per pair, S = 2F1(1, b; c; z) = sum_n (b)_n / (c)_n z^n.

    b and c are given per x (indexed by ``x_code``), z per tau (``tau_code``). Pairs are summed in blocks of a
    common power-of-two number of terms, from the z of their tau (at most _MAX_SERIES_TERMS: the caller sends
    the others to the quadrature).
    """
    needed = np.minimum(_series_terms_needed(z_tau), _MAX_SERIES_TERMS)
    blocks = np.maximum(np.ceil(np.log2(np.maximum(needed, 1.0))), np.log2(_MIN_SERIES_TERMS))
    sums = np.ones((x_code.size, 4))
    pair_block = blocks[tau_code]
    block_values = np.unique(pair_block)
    for block in block_values:
        n_terms = int(2.0**block)
        if block_values.size == 1:
            sums[:] = _series_sums(b, c, z_tau, x_code, tau_code, n_terms)
        else:
            selected = pair_block == block
            sums[selected] = _series_sums(b, c, z_tau, x_code[selected], tau_code[selected], n_terms)
    log_s = np.log(sums[:, 0])
    derivatives = None
    if gradient:
        derivatives = (sums[:, 1] / sums[:, 0], sums[:, 2] / sums[:, 0], sums[:, 3] / sums[:, 0])
    return log_s, derivatives


def _series_sums(
    b: np.ndarray, c: np.ndarray, z_tau: np.ndarray, x_code: np.ndarray, tau_code: np.ndarray, n_terms: int
) -> np.ndarray:
    """(S, dS/db, dS/dc, dS/dz) per pair from the first ``n_terms`` terms: four polynomials in z whose
    coefficients depend on x only, evaluated on the full (tau x x) grid by one matrix product when the pairs
    fill it densely, else pair by pair."""
    xs_used, x_local = np.unique(x_code, return_inverse=True) if x_code.size else (x_code, x_code)
    taus_used, tau_local = np.unique(tau_code, return_inverse=True) if tau_code.size else (tau_code, tau_code)
    b_used = b[xs_used][:, None]
    c_used = c[xs_used][:, None]
    k = np.arange(n_terms - 1, dtype=np.float64)
    coefficients = np.empty((xs_used.size, n_terms, 4))
    # (b)_n/(c)_n, and the sums of 1/(b+k), 1/(c+k) over k < n (their log-derivatives).
    pochhammer_ratio = coefficients[:, :, 0]
    pochhammer_ratio[:, 0] = 1.0
    np.cumprod((b_used + k) / (c_used + k), axis=1, out=pochhammer_ratio[:, 1:])
    harmonic = np.zeros((xs_used.size, n_terms))
    np.cumsum(1.0 / (b_used + k), axis=1, out=harmonic[:, 1:])
    coefficients[:, :, 1] = pochhammer_ratio * harmonic
    np.cumsum(1.0 / (c_used + k), axis=1, out=harmonic[:, 1:])
    coefficients[:, :, 2] = -pochhammer_ratio * harmonic
    coefficients[:, :-1, 3] = pochhammer_ratio[:, 1:] * np.arange(1, n_terms)
    coefficients[:, -1, 3] = 0.0

    powers = np.empty((taus_used.size, n_terms))
    powers[:, 0] = 1.0
    np.cumprod(np.broadcast_to(z_tau[taus_used][:, None], (taus_used.size, n_terms - 1)), axis=1, out=powers[:, 1:])

    n_pairs = x_code.size
    if taus_used.size * xs_used.size <= _GRID_DENSITY * n_pairs + 1024:
        grid = _single_thread_matmul(powers, coefficients.transpose(1, 0, 2).reshape(n_terms, -1))
        return grid.reshape(taus_used.size, xs_used.size, 4)[tau_local, x_local]
    out = np.empty((n_pairs, 4))
    chunk = max(1, _CHUNK_ELEMENTS // (4 * n_terms))
    for start in range(0, n_pairs, chunk):
        part = slice(start, start + chunk)
        out[part] = np.einsum("pn,pnj->pj", powers[tau_local[part]], coefficients[x_local[part]])
    return out


def _single_thread_matmul(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """left @ right in tiles small enough for OpenBLAS to run each on one thread (it threads products of more
    than m*n*k = 2^18 per core): on a shared 2-core machine its threads spin against the other busy processes and
    one whole product can take 10x longer than the tiles."""
    rows, inner = left.shape
    out = np.empty((rows, right.shape[1]))
    row_tile = max(1, min(rows, _SINGLE_THREAD_GEMM // (inner * 64)))
    column_tile = max(1, _SINGLE_THREAD_GEMM // (row_tile * inner))
    for row in range(0, rows, row_tile):
        for column in range(0, right.shape[1], column_tile):
            out[row : row + row_tile, column : column + column_tile] = (
                left[row : row + row_tile] @ right[:, column : column + column_tile]
            )
    return out


def _starting_params(rows: CollapsedRows) -> tuple[float, float, float, float]:
    """r = 1 and alpha = exposure / repeat purchases match the observed purchase rate; s = 1, beta = alpha (z = 0
    everywhere at the start)."""
    alpha0 = observed_rate_scale(rows)
    return (1.0, alpha0, 1.0, alpha0)


fit_paretonbd = rfm_model_fitter(
    "fit_paretonbd",
    ParetoNbdFit,
    _ParetoNbdLikelihood,
    _starting_params,
    """Maximum-likelihood Pareto/NBD fit on frequency / recency / T (weeks); same arguments as
    :func:`pipelines.clv.bgnbd.fit_bgnbd` (``weights`` = customers per row; ``penalizer`` adds
    ``penalizer * (r^2 + alpha^2 + s^2 + beta^2)`` to the mean negative log-likelihood).""",
)


def _log_p_alive_flat(fit: ParetoNbdFit, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """ln P(alive at T | x, t_x, T) for 1-D customer arrays:
    P(alive) = (alpha+T)^-(r+x) (beta+T)^-s / [(r+x) K(T) + s G(t_x)], terms per distinct (x, T) / (x, t_x)."""
    r, alpha, s, beta = fit.params
    x_values, x_code = factorize(x)
    T_values, T_code = factorize(T)
    recency_values, recency_code = factorize(t_x)
    alive_pairs = _PairIndex(x_code, x_values.size, T_code, T_values.size)
    dropout_pairs = _PairIndex(x_code, x_values.size, recency_code, recency_values.size)
    k, _ = _log_tail_integral(r, alpha, s, beta, x_values, T_values, alive_pairs, alive=True, gradient=False)
    g, _ = _log_tail_integral(r, alpha, s, beta, x_values, recency_values, dropout_pairs, alive=False, gradient=False)
    log_alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    return log_alive - np.logaddexp(k[alive_pairs.row_code], g[dropout_pairs.row_code])


def p_alive(fit: ParetoNbdFit, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> np.ndarray:
    """P(customer still alive at T | x, t_x, T) (Fader, Hardie & Lee 2005 note):

        1 / (1 + s/(r+s+x) (alpha+T)^(r+x) (beta+T)^s A_0),

    computed as (alpha+T)^-(r+x) (beta+T)^-s / [(r+x) K(T) + s G(t_x)] in logs (see the module docstring), which
    stays finite and in [0, 1] for any x and T. Broadcasts its arguments.
    """
    x, t_x, T_arr = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (frequency, recency, T)))
    shape = x.shape
    log_p = _log_p_alive_flat(fit, x.reshape(-1), t_x.reshape(-1), T_arr.reshape(-1))
    return np.minimum(np.exp(log_p), 1.0).reshape(shape)


def _purchases_per_unit_rate(s: float, scale: np.ndarray, t: np.ndarray) -> np.ndarray:
    """scale * (1 - (scale/(scale+t))^(s-1)) / (s-1) = integral_0^t (scale/(scale+u))^s du  (log1p form at s = 1):
    the expected lifetime within the next t weeks of a customer alive now, mu ~ Gamma(s, scale)."""
    log_growth = np.log1p(t / scale)
    if s == 1.0:
        return scale * log_growth
    return scale * -np.expm1((1.0 - s) * log_growth) / (s - 1.0)


def conditional_expected_purchases(
    fit: ParetoNbdFit, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """Expected repeat purchases in the next ``t`` weeks, given (x, t_x, T) (Fader, Hardie & Lee 2005 note):

        E[Y(t)] = (r+x)(beta+T) / ((alpha+T)(s-1)) * [1 - ((beta+T)/(beta+T+t))^(s-1)] * P(alive)

    (the s -> 1 limit (r+x)(beta+T)/(alpha+T) ln(1 + t/(beta+T)) P(alive) at s = 1). Broadcasts like
    :func:`pipelines.clv.bgnbd.conditional_expected_purchases` (e.g. t of shape (k, 1), customers (1, n)).
    """
    r, alpha, s, beta = fit.params
    x, t_x, T_arr = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (frequency, recency, T)))
    alive = p_alive(fit, x, t_x, T_arr)
    t_arr = np.asarray(t, dtype=np.float64)
    expected = alive * (r + x) / (alpha + T_arr) * _purchases_per_unit_rate(s, beta + T_arr, t_arr)
    return _clip_finite(expected)


def expected_purchases_new_customer(fit: ParetoNbdFit, t: ArrayLike) -> np.ndarray:
    """Unconditional E[X(t)]: expected repeat purchases in ``t`` weeks after the first one (Fader, Hardie & Lee
    2005 note): r beta / (alpha (s-1)) [1 - (beta/(beta+t))^(s-1)] (r/alpha beta ln(1 + t/beta) at s = 1)."""
    r, alpha, s, beta = fit.params
    t_arr = np.asarray(t, dtype=np.float64)
    return _clip_finite(r / alpha * _purchases_per_unit_rate(s, np.full_like(t_arr, beta), t_arr))


def expected_purchases_if_alive(fit: ParetoNbdFit, t: ArrayLike, frequency: ArrayLike, T: ArrayLike) -> np.ndarray:
    """Expected repeat purchases in the next ``t`` weeks of a customer alive at T, given x and T:
    (r+x)/(alpha+T) × (beta+T)/(s−1) [1 − ((beta+T)/(beta+T+t))^(s−1)], the factor of P(alive) in
    :func:`conditional_expected_purchases`; see :func:`pipelines.clv.bgnbd.expected_purchases_if_alive`."""
    r, alpha, s, beta = fit.params
    x = np.asarray(frequency, dtype=np.float64)
    T_arr = np.asarray(T, dtype=np.float64)
    return _clip_finite(
        (r + x) / (alpha + T_arr) * _purchases_per_unit_rate(s, beta + T_arr, np.asarray(t, dtype=np.float64))
    )


def discounted_expected_purchases(
    fit: ParetoNbdFit, step_ends: ArrayLike, discount: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """Σ_k discount_k · E[purchases in (t_(k−1), t_k]] per customer (t_0 = 0), as
    :func:`pipelines.clv.bgnbd.discounted_expected_purchases`. E[Y(t)] = P(alive) (r+x)/(alpha+T) B(T, t), so the
    sum is P(alive) (r+x)/(alpha+T) Σ_k discount_k (B(T, t_k) − B(T, t_(k−1))), the bracket computed once per
    distinct T."""
    r, alpha, s, beta = fit.params
    x = np.asarray(frequency, dtype=np.float64)
    T_arr = np.asarray(T, dtype=np.float64)
    steps = np.asarray(step_ends, dtype=np.float64).reshape(-1, 1)
    T_values, T_code = factorize(T_arr.reshape(-1))
    cumulative = _purchases_per_unit_rate(s, beta + T_values[None, :], steps)
    per_T = np.asarray(discount, dtype=np.float64) @ np.diff(cumulative, axis=0, prepend=0.0)
    rate = (r + x) / (alpha + T_arr)
    return _clip_finite(p_alive(fit, x, recency, T_arr) * rate * per_T[T_code].reshape(T_arr.shape))
