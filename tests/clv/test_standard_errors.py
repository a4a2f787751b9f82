"""Standard errors of every fit: the inverse observed information at the optimum (pipelines/clv/_mle.py), checked
against independent computations: the Hessian of log-likelihoods written here from the papers (second differences
of the value, not the production gradient), a model whose information is known in closed form, and the standard
errors lifetimes 0.11.3 prints for the same CDNOW data."""

from __future__ import annotations

import datetime
import math

import numpy as np
import polars as pl
import pytest
from clv_reference import load_cdnow_orders
from scipy.special import gammaln, hyp2f1

from pipelines.clv import rfm_summary
from pipelines.clv._mle import log_parameter_covariance, maximise_log_likelihood, observed_information_covariance
from pipelines.clv.bgnbd import fit_bgnbd
from pipelines.clv.gamma_gamma import fit_gamma_gamma
from pipelines.clv.mbgnbd import fit_mbgnbd
from pipelines.clv.paretonbd import fit_paretonbd
from pipelines.clv.scoring import model_fit_rows, purchase_fits_from_rows

CALIBRATION_END = datetime.date(1997, 9, 30)

# lifetimes 0.11.3 (BetaGeoFitter, ModifiedBetaGeoFitter, GammaGammaFitter with default settings) on the same CDNOW
# calibration summary, column se(coef) of `.summary`, all printed digits (run in a scratch venv: /tmp/lt-venv, pip
# install lifetimes==0.11.3 with the numeric stack of benchmarks/requirements-lifetimes.txt). Its ParetoNBDFitter
# has no standard errors (`summary` raises AttributeError: no standard_errors_).
LIFETIMES_SE = {
    "bg_nbd": (0.012557379181029464, 0.3782241012650533, 0.1857337496972365, 0.7054138496771996),
    "mbg_nbd": (0.083268, 0.695620, 0.154790, 0.537495),
    "gamma_gamma": (1.190055, 0.290133, 4.159423),
}


@pytest.fixture(scope="module")
def cdnow() -> pl.DataFrame:
    return rfm_summary(pl.LazyFrame(load_cdnow_orders()), CALIBRATION_END).collect().sort("customer_id")


def _columns(cdnow):
    return tuple(cdnow[c].to_numpy().astype(float) for c in ("frequency", "recency", "T"))


def hessian_of_values(log_likelihood, params, relative_step=1e-4) -> np.ndarray:
    """Second derivatives of a scalar function by central differences of its VALUES (four evaluations per entry)."""
    params = np.asarray(params, dtype=float)
    k = params.size
    steps = relative_step * params
    out = np.empty((k, k))
    for i in range(k):
        for j in range(i, k):

            def at(di, dj, i=i, j=j):
                shifted = params.copy()
                shifted[i] += di * steps[i]
                shifted[j] += dj * steps[j]
                return log_likelihood(shifted)

            out[i, j] = out[j, i] = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / (4 * steps[i] * steps[j])
    return out


def standard_errors_from(log_likelihood, params) -> np.ndarray:
    return np.sqrt(np.diag(np.linalg.inv(-hessian_of_values(log_likelihood, params))))


# ---------------------------------------------------------------- independent log-likelihoods (from the papers)


def bgnbd_total_log_likelihood(params, x, t_x, T) -> float:
    """FHL 2005 eq. (6), summed over customers."""
    r, alpha, a, b = params
    beta_ratio_alive = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    alive = beta_ratio_alive - (r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore"):
        dropped = np.where(
            x > 0,
            np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) + beta_ratio_alive - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return float(np.sum(common + np.logaddexp(alive, dropped)))


def paretonbd_total_log_likelihood(params, x, t_x, T) -> float:
    """Fader, Hardie & Lee (2005) "A note on deriving the Pareto/NBD model", eq. (22) with A_0 of eqs. (23)-(24),
    by scipy's hyp2f1 (the production code uses neither: a series with an Euler transformation and quadrature)."""
    r, alpha, s, beta = params
    a1 = r + s + x
    if alpha >= beta:

        def tail(t):
            return hyp2f1(a1, s + 1, a1 + 1, (alpha - beta) / (alpha + t)) / (alpha + t) ** a1
    else:

        def tail(t):
            return hyp2f1(a1, r + x, a1 + 1, (beta - alpha) / (beta + t)) / (beta + t) ** a1

    a0 = tail(t_x) - tail(T)
    alive = 1.0 / ((alpha + T) ** (r + x) * (beta + T) ** s)
    log_c = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    return float(np.sum(log_c + np.log(alive + s / a1 * a0)))


def mbgnbd_total_log_likelihood(params, x, t_x, T) -> float:
    """Batislam, Denizel & Filiztekin (2007) eq. (3)."""
    r, alpha, a, b = params
    common = (
        gammaln(r + x)
        - gammaln(r)
        + r * np.log(alpha)
        + gammaln(a + b)
        + gammaln(b + x + 1)
        - gammaln(b)
        - gammaln(a + b + x + 1)
    )
    log_alive = -(r + x) * np.log(alpha + T)
    log_dropped = np.log(a) - np.log(b + x) - (r + x) * np.log(alpha + t_x)
    return float(np.sum(common + np.logaddexp(log_alive, log_dropped)))


def gamma_gamma_total_log_likelihood(params, x, m) -> float:
    """Fader & Hardie (2013) eq. (3) for the repeat customers."""
    p, q, gamma = params
    px = p * x
    return float(
        np.sum(
            gammaln(px + q)
            - gammaln(px)
            - gammaln(q)
            + q * np.log(gamma)
            + (px - 1) * np.log(m)
            + px * np.log(x)
            - (px + q) * np.log(gamma + m * x)
        )
    )


# ---------------------------------------------------------------- the generic computation


def test_poisson_rate_standard_error_is_the_closed_form():
    """Poisson counts: the observed information of the rate at its MLE is n / lambda_hat, so se = sqrt(mean / n)."""
    counts = np.array([0, 3, 1, 4, 2, 2, 5, 1, 0, 3], dtype=float)

    def total(params):
        rate = params[0]
        return float(np.sum(counts * np.log(rate) - rate)), np.array([counts.sum() / rate - counts.size])

    outcome = maximise_log_likelihood(total, counts.size, np.array([1.0]))
    assert outcome.converged and outcome.params[0] == pytest.approx(counts.mean(), rel=1e-8)
    assert math.sqrt(outcome.covariance[0, 0]) == pytest.approx(math.sqrt(counts.mean() / counts.size), rel=1e-7)


def test_a_flat_direction_gives_no_covariance():
    def flat(params):  # depends on the first parameter only: the second is not identified
        return float(-((params[0] - 2.0) ** 2)), np.array([-2.0 * (params[0] - 2.0), 0.0])

    assert observed_information_covariance(flat, np.array([2.0, 1.0])) is None


def test_log_parameter_covariance_is_the_delta_method():
    params = np.array([2.0, 0.5])
    covariance = np.array([[0.04, 0.01], [0.01, 0.0025]])
    expected = np.array([[0.04 / 4, 0.01 / 1], [0.01 / 1, 0.0025 / 0.25]])
    np.testing.assert_allclose(log_parameter_covariance(params, covariance), expected)


# ---------------------------------------------------------------- every model on CDNOW


def test_bgnbd_standard_errors_match_lifetimes_and_an_independent_hessian(cdnow):
    x, t_x, T = _columns(cdnow)
    fit = fit_bgnbd(x, t_x, T)
    np.testing.assert_allclose(fit.std_errors, LIFETIMES_SE["bg_nbd"], rtol=1e-3)
    independent = standard_errors_from(lambda p: bgnbd_total_log_likelihood(p, x, t_x, T), fit.params)
    np.testing.assert_allclose(fit.std_errors, independent, rtol=1e-4)
    # The task's reference figures (r 0.243 se 0.013, alpha 4.414 se 0.378, b 2.426 se 0.705) to their digits; its
    # "a 0.793 se 0.193" is not what lifetimes prints for these data (0.1857, as here).
    assert tuple(round(v, 3) for v in np.array(fit.std_errors)[[0, 1, 3]]) == (0.013, 0.378, 0.705)


def test_paretonbd_standard_errors_match_an_independent_hessian(cdnow):
    x, t_x, T = _columns(cdnow)
    fit = fit_paretonbd(x, t_x, T)
    independent = standard_errors_from(lambda p: paretonbd_total_log_likelihood(p, x, t_x, T), fit.params)
    np.testing.assert_allclose(fit.std_errors, independent, rtol=1e-3)
    # the values, for the record: r 0.553 (0.048), alpha 10.58 (0.84), s 0.606 (0.19), beta 11.67 (6.2)
    np.testing.assert_allclose(fit.std_errors, (0.0476, 0.8427, 0.1873, 6.2111), rtol=2e-3)


def test_mbgnbd_standard_errors_match_lifetimes_and_an_independent_hessian(cdnow):
    x, t_x, T = _columns(cdnow)
    fit = fit_mbgnbd(x, t_x, T)
    np.testing.assert_allclose(fit.std_errors, LIFETIMES_SE["mbg_nbd"], rtol=1e-3)
    independent = standard_errors_from(lambda p: mbgnbd_total_log_likelihood(p, x, t_x, T), fit.params)
    np.testing.assert_allclose(fit.std_errors, independent, rtol=1e-4)


def test_gamma_gamma_standard_errors_match_lifetimes_and_an_independent_hessian(cdnow):
    x = cdnow["frequency"].to_numpy().astype(float)
    m = cdnow["monetary_value"].to_numpy()
    fit = fit_gamma_gamma(x, m)
    np.testing.assert_allclose(fit.std_errors, LIFETIMES_SE["gamma_gamma"], rtol=1e-3)
    repeat = x > 0
    independent = standard_errors_from(lambda p: gamma_gamma_total_log_likelihood(p, x[repeat], m[repeat]), fit.params)
    np.testing.assert_allclose(fit.std_errors, independent, rtol=1e-4)


def test_standard_errors_shrink_like_one_over_root_n(cdnow):
    """The same customers counted four times (weights): the information quadruples, the standard errors halve."""
    x, t_x, T = _columns(cdnow)
    once = fit_bgnbd(x, t_x, T)
    four = fit_bgnbd(x, t_x, T, weights=np.full(x.size, 4.0))
    np.testing.assert_allclose(np.array(four.std_errors) * 2, once.std_errors, rtol=1e-4)


def test_standard_errors_and_correlations_round_trip_through_clv_model_fit(cdnow):
    x, t_x, T = _columns(cdnow)
    fits = {"bg_nbd": fit_bgnbd(x, t_x, T), "pareto_nbd": fit_paretonbd(x, t_x, T), "mbg_nbd": None}
    gg = fit_gamma_gamma(cdnow["frequency"].to_numpy().astype(float), cdnow["monetary_value"].to_numpy())
    rows = model_fit_rows(datetime.date(1997, 9, 30), fits, gg, {}, selected="pareto_nbd")
    se_rows = rows.filter(pl.col("std_error").is_not_null())
    assert set(zip(se_rows["model"], se_rows["parameter"])) == {("bg_nbd", p) for p in ("r", "alpha", "a", "b")} | {
        ("pareto_nbd", p) for p in ("r", "alpha", "s", "beta")
    } | {("gamma_gamma", p) for p in ("p", "q", "gamma")}
    back, selected, gg_back = purchase_fits_from_rows(rows)
    assert selected == "pareto_nbd" and set(back) == {"bg_nbd", "pareto_nbd"}
    for name in ("bg_nbd", "pareto_nbd"):
        np.testing.assert_allclose(back[name].covariance, fits[name].covariance, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gg_back.covariance, gg.covariance, rtol=1e-12)
    assert rows.filter((pl.col("model") == "mbg_nbd") & (pl.col("parameter") == "converged"))["value"].item() == 0.0
