"""Gamma-Gamma's assumption check: Spearman rank correlation of frequency and mean repeat value over the repeat
customers (pipelines/clv/gamma_gamma.py), against scipy.stats.spearmanr, and the warning from |rho| >= 0.3."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from pipelines.clv.gamma_gamma import SPEARMAN_WARNING_THRESHOLD, frequency_value_spearman, spearman_warning


def test_spearman_equals_scipy_with_ties_and_only_repeat_customers():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 8, 5_000).astype(float)  # many ties in x
    m = np.round(rng.gamma(3.0, 10.0, 5_000) * (1 + 0.1 * x), 0)  # ties in m too, and a dependence on x
    m[x == 0] = 0.0
    m[:10] = 0.0  # repeat customers with a mean of 0: left out
    repeat = (x > 0) & (m > 0)
    expected = spearmanr(x[repeat], m[repeat]).statistic
    assert frequency_value_spearman(x, m) == pytest.approx(expected, rel=1e-12)
    assert frequency_value_spearman(x, m) > 0.05


def test_independent_values_give_a_small_rho_and_dependent_ones_a_warning():
    rng = np.random.default_rng(5)
    x = rng.integers(1, 10, 20_000).astype(float)
    independent = rng.gamma(4.0, 10.0, 20_000)
    rho = frequency_value_spearman(x, independent)
    assert abs(rho) < 0.03 and spearman_warning(rho) is None
    dependent = independent * x
    rho = frequency_value_spearman(x, dependent)
    assert rho == pytest.approx(spearmanr(x, dependent).statistic, rel=1e-12)
    assert rho >= SPEARMAN_WARNING_THRESHOLD and "rho = " in spearman_warning(rho)
    assert spearman_warning(-0.31) is not None and spearman_warning(0.299) is None and spearman_warning(None) is None


def test_too_few_or_constant_values_give_none():
    assert frequency_value_spearman([1, 2], [5.0, 6.0]) is None
    assert frequency_value_spearman([1, 2, 3], [5.0, 5.0, 5.0]) is None
