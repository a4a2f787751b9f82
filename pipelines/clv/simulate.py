"""Vectorised simulation of BG/NBD + Gamma-Gamma customer populations.

Used by the back-test tests and by ``benchmarks/clv_fit.py``. Process (FHL 2005):
lambda ~ Gamma(r, rate alpha) purchases/week while alive; after each *repeat*
purchase the customer drops out with probability p ~ Beta(a, b), so the number
of repeat purchases before dropping out is J ~ Geometric(p) on {1, 2, ...}.
Each purchase value ~ Gamma(shape p_gg, rate nu) with nu ~ Gamma(q, rate gamma).

No per-customer Python loop: with N ~ Poisson(lambda T) arrivals on [0, T],
x = min(N, J) and the x-th arrival time is T * Beta(x, N - x + 1) (order
statistics of uniforms), which gives (x, t_x) directly.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.clv.rfm import DAYS_PER_WEEK


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float  # weeks
    a: float
    b: float


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    gamma: float


@dataclass(frozen=True)
class SimulatedRfm:
    frequency: np.ndarray
    recency: np.ndarray  # weeks, whole days / 7
    T: np.ndarray  # weeks, whole days / 7
    monetary_value: np.ndarray  # mean repeat purchase value, 0 when frequency == 0


def _draw_latent(n: int, bg: BgNbdParams, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    purchase_rate = rng.gamma(bg.r, 1.0 / bg.alpha, size=n)
    dropout_probability = rng.beta(bg.a, bg.b, size=n)
    # Beta draws can underflow to exactly 0 for small a; geometric needs p > 0.
    dropout_probability = np.clip(dropout_probability, 1e-12, 1.0)
    return purchase_rate, dropout_probability


def simulate_rfm(
    n_customers: int,
    bg: BgNbdParams,
    gg: GammaGammaParams,
    *,
    max_age_days: int = 2 * 364,
    seed: int = 0,
) -> SimulatedRfm:
    """Summary statistics of ``n_customers`` customers whose ages are uniform on
    1..max_age_days days. Times are rounded up to whole days, as real daily
    order data would be (same-day collisions are negligible for the rates used).
    """
    rng = np.random.default_rng(seed)
    age_days = rng.integers(1, max_age_days + 1, size=n_customers)
    T = age_days / DAYS_PER_WEEK
    purchase_rate, dropout_probability = _draw_latent(n_customers, bg, rng)
    arrivals = rng.poisson(purchase_rate * T)
    repeats_before_dropout = rng.geometric(dropout_probability)
    frequency = np.minimum(arrivals, repeats_before_dropout)

    has_repeat = frequency > 0
    last_arrival_fraction = np.zeros(n_customers)
    last_arrival_fraction[has_repeat] = rng.beta(
        frequency[has_repeat], arrivals[has_repeat] - frequency[has_repeat] + 1
    )
    recency_days = np.where(has_repeat, np.ceil(last_arrival_fraction * age_days), 0.0)
    recency_days = np.minimum(recency_days, age_days)

    spend_rate = rng.gamma(gg.q, 1.0 / gg.gamma, size=n_customers)
    monetary_value = np.zeros(n_customers)
    # Sum of x Gamma(p, nu) values is Gamma(p x, nu): its mean is Gamma(p x, nu x).
    monetary_value[has_repeat] = rng.gamma(
        gg.p * frequency[has_repeat], 1.0 / (spend_rate[has_repeat] * frequency[has_repeat])
    )
    return SimulatedRfm(
        frequency=frequency.astype(np.int64),
        recency=recency_days / DAYS_PER_WEEK,
        T=T,
        monetary_value=monetary_value,
    )


def simulate_orders(
    n_customers: int,
    bg: BgNbdParams,
    gg: GammaGammaParams,
    *,
    start: datetime.date,
    acquisition_days: int,
    end: datetime.date,
    seed: int = 0,
) -> pl.DataFrame:
    """Order lines (customer_id, order_date, revenue) of a simulated population.

    Customers make their first purchase uniformly within ``acquisition_days``
    after ``start``; repeat purchases follow the BG/NBD process until ``end``.
    """
    rng = np.random.default_rng(seed)
    total_days = (end - start).days
    first_day = rng.integers(0, acquisition_days, size=n_customers)
    horizon_weeks = (total_days - first_day) / DAYS_PER_WEEK
    purchase_rate, dropout_probability = _draw_latent(n_customers, bg, rng)
    arrivals = rng.poisson(purchase_rate * horizon_weeks)
    repeats = np.minimum(arrivals, rng.geometric(dropout_probability))

    # Arrival times: the first `repeats` order statistics of `arrivals` uniforms.
    owner = np.repeat(np.arange(n_customers), arrivals)
    arrival_weeks = rng.uniform(0.0, 1.0, size=owner.size) * horizon_weeks[owner]
    order = np.lexsort((arrival_weeks, owner))
    owner, arrival_weeks = owner[order], arrival_weeks[order]
    rank = np.arange(owner.size) - np.repeat(np.cumsum(arrivals) - arrivals, arrivals)
    kept = rank < repeats[owner]
    owner, arrival_weeks = owner[kept], arrival_weeks[kept]

    customers = np.concatenate([np.arange(n_customers), owner])
    day_offsets = np.concatenate(
        [first_day, first_day[owner] + np.floor(arrival_weeks * DAYS_PER_WEEK).astype(np.int64)]
    )
    spend_rate = rng.gamma(gg.q, 1.0 / gg.gamma, size=n_customers)
    revenue = rng.gamma(gg.p, 1.0 / spend_rate[customers])
    orders = pl.DataFrame({"customer_id": customers, "day_offset": day_offsets, "revenue": revenue})
    return orders.select(
        "customer_id",
        (pl.lit(start, dtype=pl.Date) + pl.duration(days=pl.col("day_offset"))).alias("order_date"),
        "revenue",
    ).filter(pl.col("order_date") <= pl.lit(end, dtype=pl.Date))
