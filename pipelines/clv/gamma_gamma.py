"""Gamma-Gamma spend model (Fader & Hardie 2013, "The Gamma-Gamma model of
monetary value"; Colombo & Jiang 1999).

Each transaction value of a customer is Gamma(p, nu), with nu ~ Gamma(q, gamma)
across customers. Inputs: x = frequency (number of repeat purchases) and
m = monetary_value, the mean value of those repeat purchases (currency units).

Fitting uses only customers with x > 0 AND m > 0: a customer without repeat
purchases carries no spend information, and a mean of exactly 0 has zero
density under a Gamma law (ln m = -inf). Such customers are valid buyers; they
are simply left out of the *fit*, and :func:`conditional_expected_order_value`
still scores them.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import digamma, gammaln

from pipelines.clv._mle import FitResult, collapse_identical_rows, factorize, fit_by_maximum_likelihood, row_dot


class GammaGammaFit(FitResult):  # a frozen dataclass: these parameters, then FitResult's fields
    p: float
    q: float
    gamma: float  # currency units
    # log_likelihood and n_customers: over the customers actually used (x > 0 and m > 0)


def gamma_gamma_log_likelihood_terms(
    params: ArrayLike, frequency: ArrayLike, monetary_value: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Per-customer log density of the mean repeat value, and gradient wrt (p, q, gamma).

    Fader & Hardie (2013) eq. (3):
        ln f = lnG(px+q) - lnG(px) - lnG(q) + q ln(gamma) + (px-1) ln(m) + px ln(x)
               - (px+q) ln(gamma + m x)
    Requires x > 0 and m > 0 for every row.
    """
    p, q, gamma = (float(v) for v in params)
    x = np.asarray(frequency, dtype=np.float64)
    m = np.asarray(monetary_value, dtype=np.float64)
    px = p * x
    log_m = np.log(m)
    log_x = np.log(x)
    log_gamma_mx = np.log(gamma + m * x)
    psi_px_q = digamma(px + q)
    log_likelihood = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1.0) * log_m
        + px * log_x
        - (px + q) * log_gamma_mx
    )
    gradient = np.empty((x.shape[0], 3))
    gradient[:, 0] = x * (psi_px_q - digamma(px) + log_m + log_x - log_gamma_mx)
    gradient[:, 1] = psi_px_q - digamma(q) + np.log(gamma) - log_gamma_mx
    gradient[:, 2] = q / gamma - (px + q) / (gamma + m * x)
    return log_likelihood, gradient


class _GammaGammaLikelihood:
    """Total Gamma-Gamma log-likelihood and gradient over weighted rows.

    Equal to summing :func:`gamma_gamma_log_likelihood_terms`; the terms in
    ln m and ln x are linear in the parameters, so their sums are computed
    once, and the lnG terms once per distinct x. Only ln(gamma + m x) needs a
    pass over the rows at every evaluation.
    """

    def __init__(self, x: np.ndarray, m: np.ndarray, weights: np.ndarray) -> None:
        self.n_customers = float(weights.sum())
        self.x_values, x_code = factorize(x)
        self.weight_per_x = np.bincount(x_code, weights=weights, minlength=self.x_values.size)
        log_m = np.log(m)
        self.sum_log_m = row_dot(weights, log_m)
        self.sum_x_log_m_x = row_dot(weights * x, log_m + np.log(x))
        self.weights = weights
        self.weighted_x = weights * x
        self.spend = m * x  # total repeat spend of each row

    def __call__(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        p, q, gamma = (float(v) for v in params)
        px = p * self.x_values
        n = self.n_customers
        log_gamma_spend = np.log(gamma + self.spend)
        inverse_gamma_spend = 1.0 / (gamma + self.spend)
        sum_log = row_dot(self.weights, log_gamma_spend)
        sum_x_log = row_dot(self.weighted_x, log_gamma_spend)
        psi_px_q = digamma(px + q)

        total = (
            self.weight_per_x @ (gammaln(px + q) - gammaln(px))
            + n * (q * np.log(gamma) - gammaln(q))
            + p * self.sum_x_log_m_x
            - self.sum_log_m
            - p * sum_x_log
            - q * sum_log
        )
        gradient = np.array(
            [
                self.weight_per_x @ (self.x_values * (psi_px_q - digamma(px))) + self.sum_x_log_m_x - sum_x_log,
                self.weight_per_x @ psi_px_q - n * digamma(q) + n * np.log(gamma) - sum_log,
                n * q / gamma
                - p * row_dot(self.weighted_x, inverse_gamma_spend)
                - q * row_dot(self.weights, inverse_gamma_spend),
            ]
        )
        return float(total), gradient


def fit_gamma_gamma(
    frequency: ArrayLike,
    monetary_value: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    penalizer: float = 0.0,
    initial_params: tuple[float, float, float] | None = None,
    tolerance: float = 1e-12,
    covariance: bool = True,
) -> GammaGammaFit:
    """Maximum-likelihood Gamma-Gamma fit; customers with x == 0 or m <= 0 are skipped.

    ``weights`` (optional) = number of customers each row stands for.
    ``penalizer`` adds ``penalizer * (p^2 + q^2 + gamma^2)`` to the mean negative
    log-likelihood (0 = plain MLE).
    """
    x = np.asarray(frequency, dtype=np.float64)
    m = np.asarray(monetary_value, dtype=np.float64)
    if x.shape != m.shape or x.ndim != 1:
        raise ValueError("frequency and monetary_value must be 1-D arrays of equal length")
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    usable = (x > 0) & (m > 0) & np.isfinite(m)
    if not usable.any():
        raise ValueError("Gamma-Gamma needs at least one customer with frequency > 0 and monetary_value > 0")
    rows = collapse_identical_rows(x[usable], m[usable], weights=w[usable])
    likelihood = _GammaGammaLikelihood(*rows.columns, rows.weights)
    if initial_params is None:
        # p = q = 2 keeps the mean spend p*gamma/(q-1) finite; gamma then
        # matches the observed average spend.
        mean_spend = float(rows.weights @ rows.columns[1]) / likelihood.n_customers
        initial_params = (2.0, 2.0, max(mean_spend / 2.0, 1e-6))
    return fit_by_maximum_likelihood(
        GammaGammaFit,
        likelihood,
        likelihood.n_customers,
        initial_params,
        penalizer=penalizer,
        tolerance=tolerance,
        covariance=covariance,
    )


def conditional_expected_order_value(fit: GammaGammaFit, frequency: ArrayLike, monetary_value: ArrayLike) -> np.ndarray:
    """E[value of a future purchase | x, m] (Fader & Hardie 2013 eq. (5)):

        (q - 1) / (p x + q - 1) * p gamma / (q - 1)  +  p x / (p x + q - 1) * m
      = p (gamma + m x) / (p x + q - 1)

    a credibility-weighted mix of the population mean p*gamma/(q-1) and the
    customer's own mean; for x == 0 it is the population mean. Needs q > 1.
    """
    p, q, gamma = fit.params
    if q <= 1.0:
        raise ValueError(f"Gamma-Gamma mean spend is infinite for q <= 1 (q={q:.4g})")
    x = np.asarray(frequency, dtype=np.float64)
    # m is irrelevant (and may be NaN or 0) without repeat purchases.
    m = np.where(x > 0, np.asarray(monetary_value, dtype=np.float64), 0.0)
    return p * (gamma + m * x) / (p * x + q - 1.0)


# The Gamma-Gamma model assumes a customer's spend per purchase is independent of how often they buy; Fader &
# Hardie (2013) check it with the correlation of frequency and mean repeat value. From |rho| >= this the
# assumption is doubtful and the run and the report say so.
SPEARMAN_WARNING_THRESHOLD = 0.3


def frequency_value_spearman(frequency: ArrayLike, monetary_value: ArrayLike) -> float | None:
    """Spearman rank correlation of frequency (repeat purchases) and mean repeat purchase value over the customers
    Gamma-Gamma is fitted on (x > 0 and m > 0): the Pearson correlation of their average ranks (ties share the mean
    of their ranks). None with fewer than 3 such customers, or when either column is constant."""
    x = np.asarray(frequency, dtype=np.float64)
    m = np.asarray(monetary_value, dtype=np.float64)
    usable = (x > 0) & (m > 0) & np.isfinite(m)
    if int(usable.sum()) < 3:
        return None
    import polars as pl  # the ranks of a million values: polars' parallel rank, not a Python loop

    ranks = pl.DataFrame({"x": x[usable], "m": m[usable]}).select(
        pl.col("x").rank("average"), pl.col("m").rank("average")
    )
    rho = ranks.select(pl.corr("x", "m")).item()
    return None if rho is None or not np.isfinite(rho) else float(rho)


def spearman_warning(rho: float | None) -> str | None:
    """The run log's warning when the frequency-value correlation puts the Gamma-Gamma assumption in doubt."""
    if rho is None or abs(rho) < SPEARMAN_WARNING_THRESHOLD:
        return None
    return (
        f"purchase frequency and mean repeat order value are correlated (Spearman rho = {rho:.2f}, "
        f"|rho| >= {SPEARMAN_WARNING_THRESHOLD}): Gamma-Gamma assumes they are independent, so expected order "
        "values (and CLV) may be biased"
    )
