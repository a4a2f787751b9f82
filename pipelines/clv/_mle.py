"""Maximum-likelihood plumbing shared by the purchase-model (BG/NBD, Pareto/NBD, MBG/NBD) and Gamma-Gamma fitters.

Every model is fitted the same way: identical customers are collapsed into
weighted rows, the mean negative log-likelihood is minimised over the
*logarithms* of the parameters (so every parameter stays positive without
bounds), with L-BFGS-B and an analytic gradient. At the optimum the standard
errors come from the observed information: the Hessian of the total
log-likelihood by central differences of the same analytic gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # an environment installed before it was a dependency: BLAS keeps its threads
    threadpool_limits = None

# Gradient of the *mean* objective wrt log-parameters: below this, moving any
# parameter by 1e-5 relative changes the mean log-likelihood by < 1e-10.
CONVERGED_GRADIENT_NORM = 1e-5

# Frequencies are integers and times are weeks computed from whole days
# (days / 7): such columns are factorised by counting instead of sorting.
_GRID_STEPS_PER_UNIT = (1.0, 7.0)


def factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, codes) with ``uniques[codes] == values``.

    Integers and whole-day week values (days / 7) take an O(n) counting path;
    anything else falls back to ``np.unique(return_inverse=True)`` (a sort).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values.copy(), np.zeros(0, dtype=np.int64)
    for steps_per_unit in _GRID_STEPS_PER_UNIT:
        steps = np.rint(values * steps_per_unit)
        lowest, highest = float(steps.min()), float(steps.max())
        if highest - lowest > 4 * values.size + 1024 or not np.array_equal(steps / steps_per_unit, values):
            continue
        grid_codes = (steps - lowest).astype(np.int64)
        present = np.bincount(grid_codes) > 0
        dense_code = np.cumsum(present) - 1
        uniques = (np.flatnonzero(present) + lowest) / steps_per_unit
        return uniques, dense_code[grid_codes]
    uniques, codes = np.unique(values, return_inverse=True)
    return uniques, codes.reshape(-1).astype(np.int64)


def row_dot(weights: np.ndarray, values: np.ndarray) -> float:
    """sum(weights * values) over customer rows, without BLAS.

    ``a @ b`` on long vectors goes to a multi-threaded BLAS ddot whose threads
    spin against any other busy process on a 2-core machine (measured 2-3x
    slower fits); einsum's own single-threaded loop is steady and as fast.
    """
    return float(np.einsum("i,i->", weights, values))


@dataclass(frozen=True)
class CollapsedRows:
    """Distinct rows of the input columns and the total weight of each."""

    columns: tuple[np.ndarray, ...]
    weights: np.ndarray


def collapse_identical_rows(*columns: np.ndarray, weights: np.ndarray | None = None) -> CollapsedRows:
    """Collapse customers with identical statistics into weighted rows.

    The likelihood of a customer depends only on its summary statistics, so
    one row per distinct tuple, weighted by its multiplicity, gives exactly the
    same total log-likelihood at a fraction of the cost. Each column is
    factorised separately and the codes are combined into one integer key
    (much faster than ``np.unique(axis=0)`` on float rows); small key ranges
    are counted with ``np.bincount``, large ones by sorting the keys.
    """
    n_rows = len(columns[0])
    weights = np.ones(n_rows) if weights is None else np.asarray(weights, dtype=np.float64)
    factorised = [factorize(column) for column in columns]
    sizes = [max(uniques.size, 1) for uniques, _ in factorised]
    key_range = math.prod(sizes)

    if key_range <= 4 * n_rows + 1024:
        key = np.ravel_multi_index([codes for _, codes in factorised], sizes)
        present = np.flatnonzero(np.bincount(key, minlength=key_range))
        collapsed_weights = np.bincount(key, weights=weights, minlength=key_range)[present]
        present_codes = np.unravel_index(present, sizes)
        return CollapsedRows(
            columns=tuple(uniques[codes] for (uniques, _), codes in zip(factorised, present_codes)),
            weights=collapsed_weights,
        )

    key = np.zeros(n_rows, dtype=np.int64)
    for (_, codes), size in zip(factorised, sizes):
        if int(key.max(initial=0)) + 1 > np.iinfo(np.int64).max // size:
            # Re-number the partial key densely so the product cannot overflow.
            _, key = np.unique(key, return_inverse=True)
            key = key.reshape(-1).astype(np.int64)
        key = key * size + codes
    order = np.argsort(key)
    sorted_key = key[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_key[1:] != sorted_key[:-1])))
    first_row = order[starts]
    return CollapsedRows(
        columns=tuple(np.asarray(c, dtype=np.float64)[first_row] for c in columns),
        weights=np.add.reduceat(weights[order], starts),
    )


@dataclass(frozen=True)
class OptimisationOutcome:
    params: np.ndarray  # natural (positive) parameters
    total_log_likelihood: float  # sum over customers, without penalty
    converged: bool
    iterations: int
    message: str
    gradient_norm: float  # sup-norm of the mean objective's gradient, log space
    # Asymptotic covariance of the natural parameters (inverse observed information), None when it cannot be
    # computed (see observed_information_covariance).
    covariance: np.ndarray | None = None

    def fit_fields(self, n_customers: float) -> dict:
        """The fields every fit result (a :class:`FitResult`: BgNbdFit, ParetoNbdFit, MbgNbdFit, GammaGammaFit)
        takes from the optimum, beside its own parameters."""
        return {
            "log_likelihood": self.total_log_likelihood,
            "converged": self.converged,
            "n_customers": int(round(n_customers)),
            "iterations": self.iterations,
            "message": self.message,
            "gradient_norm": self.gradient_norm,
            "covariance": self.covariance,
        }


TotalLogLikelihood = Callable[[np.ndarray], tuple[float, np.ndarray]]
"""params -> (sum of weighted log-likelihoods, its gradient wrt params)."""


class FitResult:
    """A fitted model (BgNbdFit, MbgNbdFit, ParetoNbdFit, GammaGammaFit): its parameters, then what every
    maximum-likelihood fit reports.

    A subclass declares only its parameters, in the order of ``params``, as annotated class attributes; it becomes
    a frozen dataclass whose fields are those parameters followed by
        log_likelihood: float  total over the customers fitted, without penalty
        converged: bool
        n_customers: int  customers fitted
        iterations: int
        message: str
        gradient_norm: float = nan  sup-norm of the mean objective's gradient, log-parameters
        covariance: np.ndarray | None = None  asymptotic covariance of the parameters, in the order of ``params``:
            inverse observed information at the optimum (observed_information_covariance); None when not
            available. Neither compared nor shown by repr.
    so a fit is built positionally as ``BgNbdFit(r, alpha, a, b, log_likelihood, converged, n_customers,
    iterations, message)``.
    """

    parameter_names: ClassVar[tuple[str, ...]]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__bases__ != (FitResult,):  # the shared fields would be declared twice, out of order
            raise TypeError(f"{cls.__name__}: a fit result derives from FitResult alone")
        parameters = dict(cls.__dict__.get("__annotations__", {}))
        cls.parameter_names = tuple(parameters)
        cls.__annotations__ = {
            **parameters,
            "log_likelihood": "float",
            "converged": "bool",
            "n_customers": "int",
            "iterations": "int",
            "message": "str",
            "gradient_norm": "float",
            "covariance": "np.ndarray | None",
        }
        cls.gradient_norm = float("nan")
        cls.covariance = field(default=None, compare=False, repr=False)
        dataclass(frozen=True)(cls)

    @property
    def params(self) -> tuple[float, ...]:
        return tuple(getattr(self, name) for name in self.parameter_names)

    @property
    def std_errors(self) -> tuple[float, ...] | None:
        return None if self.covariance is None else tuple(float(v) for v in np.sqrt(np.diag(self.covariance)))


Fit = TypeVar("Fit", bound=FitResult)


def fit_by_maximum_likelihood(
    fit_type: type[Fit],
    likelihood: TotalLogLikelihood,
    n_customers: float,
    initial_params: ArrayLike,
    *,
    penalizer: float,
    tolerance: float,
    covariance: bool,
) -> Fit:
    """``fit_type`` at the maximum of ``likelihood`` (see :func:`maximise_log_likelihood`) from ``initial_params``."""
    outcome = maximise_log_likelihood(
        likelihood,
        n_customers,
        np.asarray(initial_params, dtype=np.float64),
        penalizer=penalizer,
        tolerance=tolerance,
        covariance=covariance,
    )
    return fit_type(*(float(v) for v in outcome.params), **outcome.fit_fields(n_customers))


def maximise_log_likelihood(
    total_log_likelihood: TotalLogLikelihood,
    n_customers: float,
    initial_params: np.ndarray,
    *,
    penalizer: float = 0.0,
    tolerance: float = 1e-12,
    max_iterations: int = 2000,
    covariance: bool = True,
) -> OptimisationOutcome:
    """Minimise  -total_ll(params) / n_customers + penalizer * sum(params**2)  over log(params).

    Dividing by the number of customers keeps the objective O(1) whatever the
    sample size, so one tolerance suits 2k and 10M customers alike. With
    ``covariance`` (and convergence) the outcome carries the asymptotic
    covariance of the parameters (2k more gradient evaluations).
    """
    with one_blas_thread():
        return _maximise(
            total_log_likelihood, n_customers, initial_params, penalizer, tolerance, max_iterations, covariance
        )


@contextmanager
def one_blas_thread():
    """BLAS on one thread while a model is fitted. scipy's L-BFGS-B (1.15+, written in C over BLAS) calls BLAS on
    its small matrices at every iteration, and OpenBLAS wakes its threads for them: on a 2-core machine busy with
    anything else each call then waits for a core (measured with two busy processes beside it: 68 ms per 8-step
    minimisation instead of 3.7 ms; a 1 M-customer pipeline fit lost ~3 ms per iteration). The likelihoods
    themselves avoid multi-threaded BLAS already (row_dot, paretonbd's tiled products)."""
    with threadpool_limits(limits=1, user_api="blas") if threadpool_limits else nullcontext():
        yield


def _maximise(
    total_log_likelihood, n_customers, initial_params, penalizer, tolerance, max_iterations, covariance
) -> OptimisationOutcome:
    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(log_params)
        total, gradient = total_log_likelihood(params)
        value = -total / n_customers + penalizer * float(params @ params)
        gradient_natural = -gradient / n_customers + 2.0 * penalizer * params
        # Chain rule for theta = exp(phi): d/dphi = theta * d/dtheta.
        return value, gradient_natural * params

    result = minimize(
        objective,
        np.log(np.asarray(initial_params, dtype=np.float64)),
        jac=True,
        method="L-BFGS-B",
        options={"ftol": tolerance, "gtol": tolerance, "maxiter": max_iterations, "maxcor": 20},
    )
    params = np.exp(result.x)
    _, final_gradient = objective(result.x)
    gradient_norm = float(np.max(np.abs(final_gradient)))
    total, _ = total_log_likelihood(params)
    # With tight tolerances L-BFGS-B may end on "ABNORMAL_TERMINATION_IN_LNSRCH"
    # at the optimum (float64 cannot decrease the objective further). The
    # gradient norm is what certifies a stationary point, so it decides; the
    # optimizer's own verdict is kept in the message.
    converged = bool(np.isfinite(total) and np.all(np.isfinite(params)) and gradient_norm < CONVERGED_GRADIENT_NORM)
    message = str(result.message) if result.success else f"optimizer did not report success: {result.message}"
    return OptimisationOutcome(
        params=params,
        total_log_likelihood=float(total),
        converged=converged,
        iterations=int(result.nit),
        message=message,
        gradient_norm=gradient_norm,
        covariance=(
            observed_information_covariance(total_log_likelihood, params) if converged and covariance else None
        ),
    )


# Central-difference step of the analytic gradient, relative to each parameter: the truncation error is
# O(step^2) ~ 1e-8 relative, the rounding error O(eps / step) ~ 1e-11: far below what a standard error needs.
HESSIAN_RELATIVE_STEP = 1e-4


def log_likelihood_hessian(
    total_log_likelihood: TotalLogLikelihood, params: np.ndarray, relative_step: float = HESSIAN_RELATIVE_STEP
) -> np.ndarray:
    """Hessian of the total log-likelihood wrt the natural parameters, by central differences of its analytic
    gradient: column j = (g(theta + h_j e_j) - g(theta - h_j e_j)) / (2 h_j), h_j = relative_step * theta_j
    (2k gradient evaluations for k parameters), symmetrised."""
    params = np.asarray(params, dtype=np.float64)
    k = params.size
    hessian = np.empty((k, k))
    for j in range(k):
        step = relative_step * params[j]
        up, down = params.copy(), params.copy()
        up[j] += step
        down[j] -= step
        gradient_up, gradient_down = total_log_likelihood(up)[1], total_log_likelihood(down)[1]
        hessian[:, j] = (np.asarray(gradient_up) - np.asarray(gradient_down)) / (2 * step)
    return 0.5 * (hessian + hessian.T)


def observed_information_covariance(total_log_likelihood: TotalLogLikelihood, params: np.ndarray) -> np.ndarray | None:
    """Asymptotic covariance of the maximum-likelihood estimates: the inverse of the observed information
    (minus the Hessian of the total log-likelihood at the optimum), in natural parameters. Standard errors are
    the square roots of its diagonal. None when the information is not positive definite (a flat direction:
    a parameter running to a boundary) or not finite."""
    hessian = log_likelihood_hessian(total_log_likelihood, params)
    if not np.all(np.isfinite(hessian)):
        return None
    information = -hessian
    try:
        np.linalg.cholesky(information)
        covariance = np.linalg.inv(information)
    except np.linalg.LinAlgError:
        return None
    covariance = 0.5 * (covariance + covariance.T)
    return covariance if np.all(np.isfinite(covariance)) and np.all(np.diag(covariance) > 0) else None


def log_parameter_covariance(params, covariance) -> np.ndarray:
    """Covariance of log(theta) from that of theta (delta method: d log theta = d theta / theta); the
    asymptotic normal the parametric bootstrap draws from."""
    params = np.asarray(params, dtype=np.float64)
    return np.asarray(covariance, dtype=np.float64) / np.outer(params, params)


def collapse_rfm_rows(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray) -> CollapsedRows:
    """Distinct (x, t_x, T) rows with their total weights, the input of the purchase models' likelihoods.
    Non-repeat buyers differ only by T (few values): they are collapsed apart from the repeat buyers, so they
    never go through a sort."""
    repeat = x > 0
    no_repeat_rows = collapse_identical_rows(T[~repeat], weights=weights[~repeat])
    repeat_rows = collapse_identical_rows(x[repeat], t_x[repeat], T[repeat], weights=weights[repeat])
    n_no_repeat = no_repeat_rows.weights.size
    return CollapsedRows(
        columns=(
            np.concatenate([np.zeros(n_no_repeat), repeat_rows.columns[0]]),
            np.concatenate([np.zeros(n_no_repeat), repeat_rows.columns[1]]),
            np.concatenate([no_repeat_rows.columns[0], repeat_rows.columns[2]]),
        ),
        weights=np.concatenate([no_repeat_rows.weights, repeat_rows.weights]),
    )


def observed_rate_scale(rows: CollapsedRows) -> float:
    """Total exposure / total repeat purchases (weeks) of collapsed (x, t_x, T) rows: with r = 1 the starting
    alpha that makes the prior mean purchase rate r / alpha the observed one."""
    return max(float((rows.weights @ rows.columns[2]) / max(rows.weights @ rows.columns[0], 1.0)), 1e-3)


def validate_rfm(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> None:
    """The purchase models' inputs: 1-D frequency, recency and T of equal length, at least one customer,
    frequency >= 0, 0 <= recency <= T, and recency 0 without repeat purchases."""
    if not (x.shape == t_x.shape == T.shape) or x.ndim != 1:
        raise ValueError("frequency, recency and T must be 1-D arrays of equal length")
    if x.size == 0:
        raise ValueError("cannot fit a model on zero customers")
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > T + 1e-9):
        raise ValueError("need frequency >= 0 and 0 <= recency <= T")
    if np.any((x == 0) & (t_x != 0)):
        raise ValueError("customers with frequency 0 must have recency 0")


def rfm_model_fitter(
    name: str,
    fit_type: type[Fit],
    likelihood_type: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], TotalLogLikelihood],
    starting_params: Callable[[CollapsedRows], tuple[float, ...]],
    doc: str,
) -> Callable[..., Fit]:
    """The maximum-likelihood fit function of a purchase model (``fit_bgnbd``, ``fit_mbgnbd``, ``fit_paretonbd``:
    one signature for all, so the models are interchangeable), as the public function ``name`` of the module
    that defines ``fit_type``.

    ``likelihood_type(x, t_x, T, weights)`` is the model's total log-likelihood over collapsed weighted rows, with
    an ``n_customers`` attribute; ``starting_params(rows)`` the parameters the optimiser starts from when the caller
    gives none; ``doc`` the function's docstring.
    """

    def fit(
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        *,
        weights: ArrayLike | None = None,
        penalizer: float = 0.0,
        initial_params: tuple[float, float, float, float] | None = None,
        tolerance: float = 1e-12,
        covariance: bool = True,
    ):
        x = np.asarray(frequency, dtype=np.float64)
        t_x = np.asarray(recency, dtype=np.float64)
        T_arr = np.asarray(T, dtype=np.float64)
        validate_rfm(x, t_x, T_arr)
        w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
        rows = collapse_rfm_rows(x, t_x, T_arr, w)
        likelihood = likelihood_type(*rows.columns, rows.weights)
        return fit_by_maximum_likelihood(
            fit_type,
            likelihood,
            likelihood.n_customers,
            starting_params(rows) if initial_params is None else initial_params,
            penalizer=penalizer,
            tolerance=tolerance,
            covariance=covariance,
        )

    fit.__name__ = fit.__qualname__ = name
    fit.__module__ = fit_type.__module__
    fit.__doc__ = doc
    fit.__annotations__["return"] = fit_type
    return fit
