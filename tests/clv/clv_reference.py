"""Independent reference computations for the CLV tests.

Nothing here imports ``pipelines.clv``: expectations are obtained by direct
numerical integration over the mixing distributions instead of the closed
forms (Gauss hypergeometric functions) used by the production code.
"""

from __future__ import annotations

import datetime
import math
from pathlib import Path

import numpy as np
from scipy import integrate, stats
from scipy.special import betaln

CDNOW_PATH = Path(__file__).resolve().parents[1] / "data" / "CDNOW_sample.txt"


def load_cdnow_orders() -> dict[str, list]:
    """CDNOW sample: customer id, sample id, date YYYYMMDD, CDs, dollar value."""
    customers, dates, values = [], [], []
    for line in CDNOW_PATH.read_text().splitlines():
        if not line.strip():
            continue
        customer, _sample_id, day, _cds, value = line.split()
        customers.append(int(customer))
        dates.append(datetime.datetime.strptime(day, "%Y%m%d").date())
        values.append(float(value))
    return {"customer_id": customers, "order_date": dates, "revenue": values}


def _posterior_pieces(r, alpha, a, b, x, t_x, T):
    """Relative posterior masses of 'alive at T' and 'dropped after t_x'.

    The rate lambda is integrated analytically,
        int lambda^x e^{-lambda s} Gamma(lambda; r, alpha) d lambda  proportional to  (alpha + s)^-(r+x),
    and everything is scaled by (alpha + T)^(r+x) so large x does not underflow.
    The p-integrals of (1-p)^x and p (1-p)^(x-1) against Beta(a, b) are Beta functions.
    """
    log_alive = betaln(a, b + x) - betaln(a, b)
    if x == 0:
        return log_alive, -math.inf
    log_dropped = betaln(a + 1, b + x - 1) - betaln(a, b) + (r + x) * (math.log(alpha + T) - math.log(alpha + t_x))
    return log_alive, log_dropped


def p_alive(r, alpha, a, b, x, t_x, T) -> float:
    log_alive, log_dropped = _posterior_pieces(r, alpha, a, b, x, t_x, T)
    return 1.0 / (1.0 + math.exp(log_dropped - log_alive)) if log_dropped > -math.inf else 1.0


def conditional_expected_purchases(r, alpha, a, b, x, t_x, T, t) -> float:
    """E[Y(t) | x, t_x, T] by quadrature over the dropout probability p.

    Alive at T with (lambda, p): expected purchases in (T, T+t] = (1 - e^{-lambda p t}) / p.
    Integrating lambda against its posterior Gamma(r+x, alpha+T) gives
    (1 - ((alpha+T)/(alpha+T+p t))^(r+x)) / p; p then follows Beta(a, b+x).
    """
    posterior_p = stats.beta(a, b + x)

    def integrand(p: float) -> float:
        if p <= 0.0:
            return (r + x) * t / (alpha + T)  # limit p -> 0
        return -math.expm1(-(r + x) * math.log1p(p * t / (alpha + T))) / p * posterior_p.pdf(p)

    upper = posterior_p.ppf(1.0 - 1e-14)
    value, _ = integrate.quad(integrand, 0.0, upper, limit=400, points=[posterior_p.mean()], epsabs=1e-13, epsrel=1e-11)
    return value * p_alive(r, alpha, a, b, x, t_x, T)


def expected_purchases_new_customer(r, alpha, a, b, t) -> float:
    """E[X(t)] = int (1 - (alpha/(alpha + p t))^r) / p  Beta(p; a, b) dp, by quadrature."""
    prior_p = stats.beta(a, b)

    def integrand(p: float) -> float:
        return -math.expm1(-r * math.log1p(p * t / alpha)) / p * prior_p.pdf(p)

    value, _ = integrate.quad(integrand, 0.0, 1.0, limit=400, epsabs=1e-13, epsrel=1e-11)
    return value


def naive_bgnbd_log_likelihood(r, alpha, a, b, x, t_x, T) -> float:
    """FHL 2005 eq. (6) in plain floats (small x only)."""
    beta = lambda u, v: math.gamma(u) * math.gamma(v) / math.gamma(u + v)  # noqa: E731
    common = math.gamma(r + x) * alpha**r / math.gamma(r)
    alive = beta(a, b + x) / beta(a, b) * common / (alpha + T) ** (r + x)
    dropped = beta(a + 1, b + x - 1) / beta(a, b) * common / (alpha + t_x) ** (r + x) if x > 0 else 0.0
    return math.log(alive + dropped)


def naive_gamma_gamma_log_likelihood(p, q, gamma, x, m) -> float:
    """Fader-Hardie (2013) density of the mean of x Gamma(p, nu) values, nu ~ Gamma(q, gamma)."""
    density = (
        math.gamma(p * x + q)
        / (math.gamma(p * x) * math.gamma(q))
        * gamma**q
        * m ** (p * x - 1)
        * x ** (p * x)
        / (gamma + m * x) ** (p * x + q)
    )
    return math.log(density)


def conditional_expected_order_value(p, q, gamma, x, m) -> float:
    """E[p / nu | data] by quadrature over nu (x > 0): the mean of x values is Gamma(p x, nu x)."""
    prior = stats.gamma(q, scale=1.0 / gamma)
    likelihood = stats.gamma(p * x, scale=1.0)

    def weight(nu: float) -> float:
        return likelihood.pdf(m * nu * x) * nu * x * prior.pdf(nu)

    numerator, _ = integrate.quad(lambda nu: p / nu * weight(nu), 0.0, np.inf, limit=400, epsrel=1e-11)
    denominator, _ = integrate.quad(weight, 0.0, np.inf, limit=400, epsrel=1e-11)
    return numerator / denominator
