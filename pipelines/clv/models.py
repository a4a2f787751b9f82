"""The purchase models side by side: one registry entry per model, the same functions for each.

BG/NBD (:mod:`pipelines.clv.bgnbd`), Pareto/NBD (:mod:`pipelines.clv.paretonbd`) and MBG/NBD
(:mod:`pipelines.clv.mbgnbd`) answer the same questions from the same inputs (frequency x, recency t_x and age T, in
weeks): fit, P(alive), expected purchases of a customer in the next t weeks, of a new customer, and the discounted
purchase count behind a CLV. Each module exposes them under the same names; this registry maps a model name (as
stored in ``clv_model_fit.model`` and ``customer_clv.purchase_model``) to them, so that fitting, back-testing,
selection, scoring and the bootstrap take "a model" rather than branching on its name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from types import ModuleType

import numpy as np

from pipelines.clv import bgnbd, mbgnbd, paretonbd


@dataclass(frozen=True)
class PurchaseModel:
    """A purchase model's name, parameters and functions (all with the signatures of :mod:`pipelines.clv.bgnbd`):
    fit(frequency, recency, T, *, weights=None, penalizer=0.0, initial_params=None, covariance=True) -> fit;
    p_alive(fit, frequency, recency, T); conditional_expected_purchases(fit, t, frequency, recency, T);
    expected_purchases_new_customer(fit, t); discounted_expected_purchases(fit, step_ends, discount, frequency,
    recency, T); expected_purchases_if_alive(fit, t, frequency, T), the factor of P(alive) in
    conditional_expected_purchases (which is P(alive) × it), a function of (x, T) only."""

    name: str  # 'bg_nbd', as in clv_model_fit.model
    label: str  # 'BG/NBD', for people
    parameter_names: tuple[str, ...]  # in the order of fit.params
    fit_type: type
    fit: Callable
    p_alive: Callable
    conditional_expected_purchases: Callable
    expected_purchases_new_customer: Callable
    discounted_expected_purchases: Callable
    expected_purchases_if_alive: Callable

    def with_params(self, fit, params) -> object:
        """A copy of `fit` with other parameter values (the bootstrap's draws); diagnostics are kept as they are."""
        return replace(fit, **dict(zip(self.parameter_names, (float(v) for v in params))))

    def from_values(self, values: dict[str, float], covariance: np.ndarray | None = None) -> object:
        """The fit back from stored values: its parameters, log_likelihood, n_customers, converged, iterations."""
        return self.fit_type(
            **{p: float(values[p]) for p in self.parameter_names},
            log_likelihood=float(values.get("log_likelihood", float("nan"))),
            converged=bool(values.get("converged", 0.0)),
            n_customers=int(values.get("n_customers", 0)),
            iterations=int(values.get("iterations", 0)),
            message="from clv_model_fit",
            covariance=covariance,
        )


def _entry(
    name: str, label: str, parameter_names: tuple[str, ...], module: ModuleType, fit_type: type, fit: Callable
) -> PurchaseModel:
    return PurchaseModel(
        name,
        label,
        parameter_names,
        fit_type,
        fit,
        module.p_alive,
        module.conditional_expected_purchases,
        module.expected_purchases_new_customer,
        module.discounted_expected_purchases,
        module.expected_purchases_if_alive,
    )


# In this order when nothing else decides (ties in the back-test, the default without one).
PURCHASE_MODELS: dict[str, PurchaseModel] = {
    model.name: model
    for model in (
        _entry("bg_nbd", "BG/NBD", ("r", "alpha", "a", "b"), bgnbd, bgnbd.BgNbdFit, bgnbd.fit_bgnbd),
        _entry(
            "pareto_nbd",
            "Pareto/NBD",
            ("r", "alpha", "s", "beta"),
            paretonbd,
            paretonbd.ParetoNbdFit,
            paretonbd.fit_paretonbd,
        ),
        _entry("mbg_nbd", "MBG/NBD", ("r", "alpha", "a", "b"), mbgnbd, mbgnbd.MbgNbdFit, mbgnbd.fit_mbgnbd),
    )
}
# Without a back-test to choose by (short history), the reference model of the literature is used.
DEFAULT_PURCHASE_MODEL = "bg_nbd"
GAMMA_GAMMA_PARAMETERS = ("p", "q", "gamma")


# A fit can fail numerically (a spend distribution with no heterogeneity drives Gamma-Gamma's q and gamma to
# infinity): the model is then left out, with the reason, and the rest of the run completes.
FIT_FAILURES = (ArithmeticError, ValueError, np.linalg.LinAlgError)


def fit_or_reason(label: str, fit: Callable, *args, **kwargs):
    """(the fit, None) when it converged; (None, why not) when it raised a numerical error or did not converge."""
    try:
        result = fit(*args, **kwargs)
    except FIT_FAILURES as exc:
        return None, f"{label} fit failed ({type(exc).__name__}: {exc})"
    if not result.converged:
        return None, f"{label} fit did not converge ({result.message})"
    return result, None


def purchase_model(name: str) -> PurchaseModel:
    try:
        return PURCHASE_MODELS[name]
    except KeyError:
        raise ValueError(f"unknown purchase model {name!r}: expected one of {', '.join(PURCHASE_MODELS)}") from None


@dataclass(frozen=True)
class Selection:
    model: str | None  # None: no purchase model converged
    reason: str  # in words, for the run log and clv_model_fit's note
    overridden: bool = False


def select_purchase_model(
    converged: Iterable[str], holdout_mae: Mapping[str, float | None], override: str | None = None
) -> Selection:
    """Which purchase model scores the customers.

    Candidates are the models whose fit on the whole history converged. Among those that could also be
    back-tested (``holdout_mae``: per-customer mean absolute error of the hold-out purchases, from a fit on the
    calibration period), the lowest error wins; a tie goes to the earlier model of PURCHASE_MODELS (BG/NBD,
    Pareto/NBD, MBG/NBD). Without any back-test (a short history), BG/NBD, else the first candidate.
    ``override`` (CLV_PURCHASE_MODEL) is used whenever it converged; when it did not, the rule above decides
    and the reason says so.
    """
    candidates = [name for name in PURCHASE_MODELS if name in set(converged)]
    if not candidates:
        return Selection(None, "no purchase model converged")
    prefix = ""
    if override is not None:
        purchase_model(override)  # an unknown name is an error, not a silent fallback
        if override in candidates:
            return Selection(override, f"CLV_PURCHASE_MODEL={override}", overridden=True)
        prefix = f"CLV_PURCHASE_MODEL={override} did not converge; instead "
    tested = [name for name in candidates if holdout_mae.get(name) is not None and math.isfinite(holdout_mae[name])]
    if tested:
        best = min(tested, key=lambda name: holdout_mae[name])  # the first of equal errors: registry order
        others = ", ".join(f"{PURCHASE_MODELS[n].label} {holdout_mae[n]:.4g}" for n in tested if n != best)
        return Selection(
            best,
            prefix + f"lowest hold-out error per customer ({PURCHASE_MODELS[best].label} "
            f"{holdout_mae[best]:.4g} purchases" + (f"; {others}" if others else "") + ")",
        )
    chosen = DEFAULT_PURCHASE_MODEL if DEFAULT_PURCHASE_MODEL in candidates else candidates[0]
    return Selection(chosen, prefix + "no back-test to choose by: the default order (BG/NBD, Pareto/NBD, MBG/NBD)")


def model_of(fit) -> PurchaseModel:
    """The registry entry of a fitted purchase model (by the fit's type)."""
    for model in PURCHASE_MODELS.values():
        if isinstance(fit, model.fit_type):
            return model
    raise TypeError(f"not a purchase model fit: {type(fit).__name__}")


__all__ = [
    "DEFAULT_PURCHASE_MODEL",
    "FIT_FAILURES",
    "GAMMA_GAMMA_PARAMETERS",
    "PURCHASE_MODELS",
    "PurchaseModel",
    "Selection",
    "fit_or_reason",
    "model_of",
    "purchase_model",
    "select_purchase_model",
]
