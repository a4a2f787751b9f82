"""Discounted predicted customer lifetime value from BG/NBD + Gamma-Gamma.

CLV = sum_i  (E[Y(t_i)] - E[Y(t_{i-1})]) * E[order value] * margin * (1 + d)^(-t_i / 52)

with t_i = i * step (weeks, the last step capped at the horizon), E[Y(t)] the
BG/NBD conditional expectation (FHL 2005 eq. 10) and E[order value] the
Gamma-Gamma conditional mean (Fader & Hardie 2013 eq. 5). Discounting each
month's purchases at the end of the month follows the usual discrete-time
approximation of Fader, Hardie & Lee (2005, "RFM and CLV").
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from pipelines.clv.bgnbd import BgNbdFit, discounted_expected_purchases
from pipelines.clv.gamma_gamma import GammaGammaFit, conditional_expected_order_value

WEEKS_PER_YEAR = 52.0
WEEKS_PER_MONTH = 365.25 / 12.0 / 7.0  # 4.348 weeks


def predicted_clv(
    bg: BgNbdFit,
    gg: GammaGammaFit,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    monetary_value: ArrayLike,
    *,
    margin_rate: float | ArrayLike | None = None,
    horizon_weeks: float = 52.0,
    annual_discount_rate: float = 0.10,
    step_weeks: float = WEEKS_PER_MONTH,
) -> np.ndarray:
    """Discounted expected margin (or revenue when ``margin_rate`` is None) over the horizon.

    ``margin_rate`` may be a scalar or one value per customer. Returns one value
    per customer, in the currency of ``monetary_value``.
    """
    if horizon_weeks <= 0 or step_weeks <= 0:
        raise ValueError("horizon_weeks and step_weeks must be positive")
    x = np.asarray(frequency, dtype=np.float64)
    t_x = np.asarray(recency, dtype=np.float64)
    T_arr = np.asarray(T, dtype=np.float64)
    margin = np.ones_like(x) if margin_rate is None else np.broadcast_to(np.asarray(margin_rate, dtype=np.float64), x.shape)

    n_steps = math.ceil(horizon_weeks / step_weeks - 1e-9)
    step_ends = np.minimum(np.arange(1, n_steps + 1) * step_weeks, horizon_weeks)
    discount = (1.0 + annual_discount_rate) ** (-step_ends / WEEKS_PER_YEAR)
    discounted_purchases = discounted_expected_purchases(bg, step_ends, discount, x, t_x, T_arr)
    order_value = conditional_expected_order_value(gg, x, monetary_value)
    return discounted_purchases * order_value * margin
