"""How sure are the predictions: 90 % intervals for group totals by a parametric bootstrap over the parameters.

The maximum-likelihood estimates are asymptotically normal around the true parameters with the covariance of the
fit (inverse observed information, :func:`pipelines.clv._mle.observed_information_covariance`). Parameters are
positive, so the draws are taken on the log scale: log(theta) ~ N(log(theta_hat), Sigma_log) with
Sigma_log = Sigma / (theta_hat theta_hat^T) (delta method), for the purchase model and, independently (a separate
fit on separate data), for Gamma-Gamma. Each draw re-predicts every customer's expected purchases over the horizon
and discounted CLV with the same functions as the point estimate; the 5th and 95th percentiles of the group totals
over the draws make the interval. The draws come from a generator with a fixed seed: re-runs agree.

Cost. The predictions of a customer depend on (x, t_x, T) only, so each draw is evaluated once per distinct row.
Shops with more than ``max_customers`` customers evaluate the draws on a fixed random sample of them (at least
``min_per_group`` of every group, or all of a smaller group) and scale: interval = exact point total × the
percentiles of (sample total at the draw / sample total at the estimate). The ratio moves with the parameters in
the same way for the whole group, so a few thousand customers give it precisely (the interval reflects the
parameters' uncertainty, which comes from every customer through the fit), and the cost stays a fraction of a
second however many customers there are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.clv._mle import log_parameter_covariance
from pipelines.clv.gamma_gamma import GammaGammaFit, conditional_expected_order_value
from pipelines.clv.lifetime_value import discount_schedule
from pipelines.clv.models import model_of

BOOTSTRAP_DRAWS = 200
BOOTSTRAP_SEED = 20240917
INTERVAL_LEVEL = 0.90
MAX_CUSTOMERS = 600
MIN_PER_GROUP = 60


@dataclass(frozen=True)
class GroupIntervals:
    """Per group (columns of the membership matrix): the 5th and 95th percentiles of the total expected purchases
    and of the total discounted CLV over the horizon, as multipliers of the point totals (interval = point total ×
    multiplier; with every customer evaluated, exactly the percentiles of the drawn totals). NaN where no interval
    can be given: no covariance for the purchase model; for CLV also without a usable Gamma-Gamma fit, or when
    more than 5 % of its draws have q <= 1 (an unbounded mean spend)."""

    purchases_low: np.ndarray
    purchases_high: np.ndarray
    clv_low: np.ndarray
    clv_high: np.ndarray
    draws: int
    customers_evaluated: int

    def scaled(self, point_purchases, point_clv) -> dict[str, np.ndarray]:
        """The intervals in money and purchases for the given point totals."""
        point_purchases = np.asarray(point_purchases, dtype=np.float64)
        point_clv = np.asarray(point_clv, dtype=np.float64)
        return {
            "purchases_low": point_purchases * self.purchases_low,
            "purchases_high": point_purchases * self.purchases_high,
            "clv_low": point_clv * self.clv_low,
            "clv_high": point_clv * self.clv_high,
        }


def draw_parameters(params, covariance, draws: int, rng: np.random.Generator) -> np.ndarray:
    """(draws, k) parameter vectors: exp of draws from N(log(params), Sigma_log)."""
    params = np.asarray(params, dtype=np.float64)
    log_covariance = log_parameter_covariance(params, covariance)
    # eigh, not cholesky: a covariance that is only positive semi-definite in float64 still gives draws.
    values, vectors = np.linalg.eigh(0.5 * (log_covariance + log_covariance.T))
    root = vectors * np.sqrt(np.clip(values, 0.0, None))
    return np.exp(np.log(params) + rng.standard_normal((draws, params.size)) @ root.T)


def evaluation_sample(
    groups: np.ndarray,
    max_customers: int = MAX_CUSTOMERS,
    min_per_group: int = MIN_PER_GROUP,
    seed: int = BOOTSTRAP_SEED,
) -> np.ndarray:
    """Sorted indices of the customers the draws are evaluated on: all of them up to `max_customers`; else a fixed
    random sample of `max_customers`, topped up so that every group has min(its size, `min_per_group`)."""
    n = groups.shape[0]
    if n <= max_customers:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    chosen = np.zeros(n, dtype=bool)
    chosen[rng.choice(n, size=max_customers, replace=False)] = True
    short = np.flatnonzero(groups[chosen].sum(axis=0) < min_per_group)
    for g in short:  # small groups only: a few passes over the membership column
        members = np.flatnonzero(groups[:, g] & ~chosen)
        missing = min_per_group - int((groups[:, g] & chosen).sum())
        if missing > 0 and members.size:
            chosen[rng.choice(members, size=min(missing, members.size), replace=False)] = True
    return np.flatnonzero(chosen)


def bootstrap_group_totals(
    purchase_fit,
    gamma_gamma: GammaGammaFit | None,
    frequency,
    recency,
    T,
    monetary_value,
    margin_rate,
    groups: np.ndarray,
    *,
    horizon_weeks: float,
    annual_discount_rate: float,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = BOOTSTRAP_SEED,
    max_customers: int = MAX_CUSTOMERS,
    min_per_group: int = MIN_PER_GROUP,
    level: float = INTERVAL_LEVEL,
) -> GroupIntervals:
    """Intervals of the group totals of expected purchases and discounted CLV over `horizon_weeks` (as multipliers
    of the point totals: see GroupIntervals).

    `groups`: boolean membership (customers, groups), a customer may be in several groups. The point totals are
    the sums of the customers' predictions at the fitted parameters (as scored in customer_clv): predicted
    purchases = conditional expected purchases over the horizon; CLV = discounted expected purchases (monthly steps,
    as :func:`pipelines.clv.lifetime_value.predicted_clv`) × Gamma-Gamma expected order value × margin rate.
    """
    groups = np.asarray(groups, dtype=bool)
    n_groups = groups.shape[1]
    nan = np.full(n_groups, np.nan)
    if purchase_fit is None or purchase_fit.covariance is None or groups.shape[0] == 0:
        return GroupIntervals(nan, nan, nan, nan, 0, 0)
    model = model_of(purchase_fit)
    sample = evaluation_sample(groups, max_customers, min_per_group, seed)
    x = np.asarray(frequency, dtype=np.float64)[sample]
    t_x = np.asarray(recency, dtype=np.float64)[sample]
    big_t = np.asarray(T, dtype=np.float64)[sample]
    m = np.where(x > 0, np.asarray(monetary_value, dtype=np.float64)[sample], 0.0)
    margin = np.broadcast_to(np.asarray(margin_rate, dtype=np.float64), np.shape(frequency))[sample]
    membership = groups[sample].astype(np.float64)
    rows, inverse = np.unique(np.column_stack([x, t_x, big_t]), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    steps, discount = discount_schedule(horizon_weeks, annual_discount_rate)
    if not np.isclose(steps[-1], horizon_weeks):
        raise ValueError("the discount schedule must end at the horizon")

    rng = np.random.default_rng(seed)
    purchase_draws = draw_parameters(purchase_fit.params, purchase_fit.covariance, draws, rng)
    spend_usable = gamma_gamma is not None and gamma_gamma.covariance is not None and gamma_gamma.q > 1
    spend_draws = draw_parameters(gamma_gamma.params, gamma_gamma.covariance, draws, rng) if spend_usable else None

    def totals(fit, spend) -> tuple[np.ndarray, np.ndarray]:
        # One evaluation at the monthly step ends gives both: the last step ends at the horizon (purchases over it),
        # and the discounted purchases are sum_k discount_k (E(t_k) - E(t_k-1)), as discounted_expected_purchases.
        cumulative = model.conditional_expected_purchases(
            fit, steps[:, None], rows[None, :, 0], rows[None, :, 1], rows[None, :, 2]
        )
        purchases_total = cumulative[-1][inverse] @ membership
        if spend is None:
            return purchases_total, nan
        if spend.q <= 1:
            return purchases_total, np.full(n_groups, np.inf)
        discounted = discount @ np.diff(cumulative, axis=0, prepend=0.0)
        value = discounted[inverse] * conditional_expected_order_value(spend, x, m) * margin
        return purchases_total, value @ membership

    point_purchases, point_clv = totals(purchase_fit, gamma_gamma if spend_usable else None)
    drawn_purchases = np.empty((draws, n_groups))
    drawn_clv = np.empty((draws, n_groups))
    for k in range(draws):
        fit = model.with_params(purchase_fit, purchase_draws[k])
        spend = None
        if spend_draws is not None:
            p, q, gamma = spend_draws[k]
            spend = GammaGammaFit(p, q, gamma, np.nan, True, 0, 0, "bootstrap draw")
        drawn_purchases[k], drawn_clv[k] = totals(fit, spend)

    tails = (100 * (1 - level) / 2, 100 * (1 + level) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        purchase_ratio = np.percentile(drawn_purchases / point_purchases, tails, axis=0)
        clv_ratio = np.percentile(drawn_clv / point_clv, tails, axis=0, method="linear")
    clv_ratio = np.where(np.isfinite(clv_ratio), clv_ratio, np.nan)
    return GroupIntervals(
        purchases_low=purchase_ratio[0],
        purchases_high=purchase_ratio[1],
        clv_low=clv_ratio[0],
        clv_high=clv_ratio[1],
        draws=draws,
        customers_evaluated=int(sample.size),
    )


__all__ = [
    "BOOTSTRAP_DRAWS",
    "BOOTSTRAP_SEED",
    "GroupIntervals",
    "bootstrap_group_totals",
    "draw_parameters",
    "evaluation_sample",
]
