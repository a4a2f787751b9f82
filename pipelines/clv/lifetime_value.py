"""Discounted predicted customer lifetime value from a purchase model (BG/NBD, Pareto/NBD or MBG/NBD) + Gamma-Gamma.

CLV = sum_i  (E[Y(t_i)] - E[Y(t_{i-1})]) * E[order value] * margin * (1 + d)^(-t_i / 52)

with t_i = i * step (weeks, the last step capped at the horizon), E[Y(t)] the purchase model's
conditional expectation (BG/NBD: FHL 2005 eq. 10) and E[order value] the
Gamma-Gamma conditional mean (Fader & Hardie 2013 eq. 5). Discounting each
month's purchases at the end of the month follows the usual discrete-time
approximation of Fader, Hardie & Lee (2005, "RFM and CLV").
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from pipelines.clv.gamma_gamma import GammaGammaFit, conditional_expected_order_value
from pipelines.clv.models import model_of

# Discounting counts a year as 52 weeks, (1 + d)^(-t / 52): the convention of the formula the tests reproduce.
WEEKS_PER_YEAR = 52.0
WEEKS_PER_MONTH = 365.25 / 12.0 / 7.0  # 4.348 weeks


def discount_schedule(
    horizon_weeks: float, annual_discount_rate: float, step_weeks: float = WEEKS_PER_MONTH
) -> tuple[np.ndarray, np.ndarray]:
    """(step ends in weeks, discount factor of each step): steps of ``step_weeks``, the last one capped at the
    horizon; each step's purchases discounted at its end, (1 + d)^(-t / 52)."""
    if horizon_weeks <= 0 or step_weeks <= 0:
        raise ValueError("horizon_weeks and step_weeks must be positive")
    n_steps = math.ceil(horizon_weeks / step_weeks - 1e-9)
    step_ends = np.minimum(np.arange(1, n_steps + 1) * step_weeks, horizon_weeks)
    return step_ends, (1.0 + annual_discount_rate) ** (-step_ends / WEEKS_PER_YEAR)


def predicted_clv(
    purchase_fit,
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

    ``purchase_fit`` is the fitted purchase model (any of pipelines.clv.models). ``margin_rate`` may be a scalar or one
    value per customer. Returns one value per customer, in the currency of ``monetary_value``.
    """
    step_ends, discount = discount_schedule(horizon_weeks, annual_discount_rate, step_weeks)
    x = np.asarray(frequency, dtype=np.float64)
    t_x = np.asarray(recency, dtype=np.float64)
    T_arr = np.asarray(T, dtype=np.float64)
    margin = (
        np.ones_like(x) if margin_rate is None else np.broadcast_to(np.asarray(margin_rate, dtype=np.float64), x.shape)
    )

    discounted_purchases = model_of(purchase_fit).discounted_expected_purchases(
        purchase_fit, step_ends, discount, x, t_x, T_arr
    )
    order_value = conditional_expected_order_value(gg, x, monetary_value)
    return discounted_purchases * order_value * margin
