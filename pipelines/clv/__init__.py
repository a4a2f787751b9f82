"""Predictive customer-lifetime-value maths: RFM summary, BG/NBD, Gamma-Gamma, back-test.

Pure functions over polars / numpy (no orchestration imports); time unit: weeks.
"""

from pipelines.clv.backtest import BacktestResult, calibration_holdout_backtest, default_backtest_split
from pipelines.clv.bgnbd import (
    BgNbdFit,
    conditional_expected_purchases,
    expected_purchases_new_customer,
    fit_bgnbd,
    p_alive,
)
from pipelines.clv.gamma_gamma import GammaGammaFit, conditional_expected_order_value, fit_gamma_gamma
from pipelines.clv.lifetime_value import predicted_clv
from pipelines.clv.rfm import rfm_from_customer_totals, rfm_summary

__all__ = [
    "BacktestResult",
    "BgNbdFit",
    "GammaGammaFit",
    "calibration_holdout_backtest",
    "conditional_expected_order_value",
    "conditional_expected_purchases",
    "default_backtest_split",
    "expected_purchases_new_customer",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "p_alive",
    "predicted_clv",
    "rfm_from_customer_totals",
    "rfm_summary",
]
