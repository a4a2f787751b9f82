"""Predictive customer-lifetime-value maths: RFM summary, the purchase models (BG/NBD, Pareto/NBD, MBG/NBD: see
pipelines.clv.models), Gamma-Gamma, back-test, standard errors and intervals (pipelines.clv.uncertainty).

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
from pipelines.clv.models import PURCHASE_MODELS, model_of, select_purchase_model
from pipelines.clv.rfm import rfm_from_customer_totals, rfm_summary

__all__ = [
    "PURCHASE_MODELS",
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
    "model_of",
    "p_alive",
    "predicted_clv",
    "rfm_from_customer_totals",
    "rfm_summary",
    "select_purchase_model",
]
