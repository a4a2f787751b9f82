"""The CAC payback marts, cac_payback and cac_payback_curve, with their queries: observed payback per cohort month ×
channel and the purchase model's projection of it. No Dagster here (pipelines/defs/assets/payback.py)."""

from __future__ import annotations

from datetime import date

import polars as pl

from pipelines import warehouse as wh
from pipelines.clv.scoring import expected_margin_by_calendar_month, fits_from_rows
from pipelines.payback.cac import KEYS, breakeven_cac, cac_by_cohort, payback_curve, payback_summary
from pipelines.settings import Settings

# The model's margin is projected over the as-of month's remainder and the 36 calendar months after it.
PREDICTION_MONTHS = 37


def _fitted_purchase_model(warehouse: wh.WarehouseHandle, as_of: date):
    """The purchase model customer_clv was scored with at this as-of date (the selected one of clv_model_fit)."""
    rows = wh.query(warehouse, "select * from marts.clv_model_fit where as_of_date = ?", [as_of])
    return fits_from_rows(rows)[0]


def build_cac_payback(
    warehouse: wh.WarehouseHandle, settings: Settings, as_of: date
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(cac_payback, cac_payback_curve) as of `as_of`, written to the marts."""
    customers = wh.query(
        warehouse, "select customer_id, cohort_month, acquisition_channel from marts.dim_customers"
    ).lazy()
    orders = wh.query(warehouse, "select customer_id, order_date, gross_margin from marts.fct_orders").lazy()
    spend = wh.query(
        warehouse, "select spend_date, channel, spend from staging.stg_marketing_spend where spend_date <= ?", [as_of]
    ).lazy()
    cac = cac_by_cohort(customers, spend)
    curve = payback_curve(customers, orders, cac, as_of.replace(day=1))
    scored = wh.query(
        warehouse,
        'select customer_id, cohort_month, acquisition_channel, frequency, recency, "T", '
        "expected_order_value, margin_rate from marts.customer_clv",
    )
    fit = _fitted_purchase_model(warehouse, as_of)
    # The margin the purchase model expects from each cohort × channel in every calendar month ahead (none without a
    # model, or without expected order values): the predicted payback month, the projected 12-month LTV and the
    # break-even CAC. payback_summary's horizon h is the as-of month + h: the cumulative margin to its end.
    monthly = (
        expected_margin_by_calendar_month(scored, fit, KEYS, as_of, PREDICTION_MONTHS)
        if fit and scored["expected_order_value"].null_count() < scored.height
        else None
    )
    projected = (
        None
        if monthly is None
        else monthly.sort(*KEYS, "month_offset").select(
            *KEYS, horizon_months="month_offset", expected_margin=pl.col("expected_margin").cum_sum().over(KEYS)
        )
    )
    affordable = breakeven_cac(
        curve,
        monthly,
        as_of,
        annual_discount_rate=settings.annual_discount_rate,
        target_ltv_to_cac=settings.target_ltv_to_cac,
    )
    summary = (
        payback_summary(curve, cac, projected)
        .join(affordable, on=KEYS, how="left")
        .with_columns(as_of_date=pl.lit(as_of))
    )
    with warehouse.connect() as con:
        wh.replace_table(con, "marts.cac_payback", summary)
        wh.replace_table(con, "marts.cac_payback_curve", curve)
    return summary, curve
