"""Reproduce the published CDNOW fits from raw transactions (FHL 2005; Fader-Hardie 2013)."""

import datetime
import hashlib

import numpy as np
import polars as pl
import pytest
from clv_reference import CDNOW_PATH, load_cdnow_orders

from pipelines.clv import conditional_expected_purchases, fit_bgnbd, fit_gamma_gamma, rfm_summary

CALIBRATION_END = datetime.date(1997, 9, 30)


def _three_significant_figures(value: float) -> float:
    return float(f"{value:.3g}")


@pytest.fixture(scope="module")
def cdnow_calibration() -> pl.DataFrame:
    orders = pl.LazyFrame(load_cdnow_orders())
    return rfm_summary(orders, CALIBRATION_END).collect().sort("customer_id")


def test_cdnow_file_is_the_documented_copy():
    assert hashlib.sha256(CDNOW_PATH.read_bytes()).hexdigest() == (
        "6fae10155c0b0ba363c2c386e30f77990d22328220efd862a5edd1443420d94a"
    )


def test_cdnow_calibration_summary(cdnow_calibration):
    assert cdnow_calibration.height == 2357
    assert int((cdnow_calibration["frequency"] > 0).sum()) == 946
    # Customer 4 (first row of the file) is FHL's example: x = 2, t_x = 30.43, T = 38.86.
    first = cdnow_calibration.filter(pl.col("customer_id") == 4).row(0, named=True)
    assert (first["frequency"], round(first["recency"], 2), round(first["T"], 2)) == (2, 30.43, 38.86)


def test_bgnbd_reproduces_fhl_2005(cdnow_calibration):
    fit = fit_bgnbd(
        cdnow_calibration["frequency"].to_numpy(),
        cdnow_calibration["recency"].to_numpy(),
        cdnow_calibration["T"].to_numpy(),
    )
    assert fit.converged, fit.message
    assert fit.n_customers == 2357
    estimates = tuple(_three_significant_figures(v) for v in (fit.r, fit.alpha, fit.a, fit.b))
    assert estimates == (0.243, 4.41, 0.793, 2.43)
    # The paper reports alpha = 4.414 and b = 2.426 (four figures).
    assert (round(fit.alpha, 3), round(fit.b, 3)) == (4.414, 2.426)
    assert fit.log_likelihood == pytest.approx(-9582.4, abs=0.05)
    # FHL 2005 section 5: this customer is expected to buy 1.226 times in the next 39 weeks.
    assert float(conditional_expected_purchases(fit, 39, 2, 30.43, 38.86)) == pytest.approx(1.226, abs=5e-4)


def test_gamma_gamma_reproduces_fader_hardie_note(cdnow_calibration):
    fit = fit_gamma_gamma(cdnow_calibration["frequency"].to_numpy(), cdnow_calibration["monetary_value"].to_numpy())
    assert fit.converged, fit.message
    assert fit.n_customers == 946
    assert (round(fit.p, 2), round(fit.q, 2), round(fit.gamma, 2)) == (6.25, 3.74, 15.44)


def test_fit_is_invariant_to_row_order(cdnow_calibration):
    shuffled = cdnow_calibration.sample(fraction=1.0, shuffle=True, seed=3)
    a = fit_bgnbd(*(cdnow_calibration[c].to_numpy() for c in ("frequency", "recency", "T")))
    b = fit_bgnbd(*(shuffled[c].to_numpy() for c in ("frequency", "recency", "T")))
    np.testing.assert_allclose(a.params, b.params, rtol=1e-7)
