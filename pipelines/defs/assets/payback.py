"""CAC payback per cohort month × channel, observed and predicted from the CLV model."""

import dagster as dg
import polars as pl

from pipelines import warehouse as wh
from pipelines.clv.scoring import expected_margin_by_calendar_month, fits_from_rows
from pipelines.defs.assets.clv import CUSTOMER_CLV, MODEL_FIT
from pipelines.defs.assets.common import marts_as_of, read, table_metadata
from pipelines.defs.resources import WarehouseResource
from pipelines.payback.cac import KEYS, breakeven_cac, cac_by_cohort, payback_curve, payback_summary

PAYBACK = dg.AssetKey(["marts", "cac_payback"])
CURVE = dg.AssetKey(["marts", "cac_payback_curve"])
# The model's margin is projected over the as-of month's remainder and the 36 calendar months after it.
PREDICTION_MONTHS = 37


def _fitted_purchase_model(warehouse: WarehouseResource, as_of):
    """The purchase model customer_clv was scored with at this as-of date (the selected one of clv_model_fit)."""
    rows = read(warehouse, "select * from marts.clv_model_fit where as_of_date = ?", [as_of])
    return fits_from_rows(rows)[0]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            PAYBACK,
            deps=[CUSTOMER_CLV, MODEL_FIT],
            group_name="payback",
            kinds={"polars"},
            description="Per cohort month × acquisition channel: new customers, spend, CAC, payback month "
            "(observed; null while not reached), predicted payback month, LTV:CAC at 12 months, ROMI, "
            "break-even CAC over 12 and 36 months and the affordable CAC at the target LTV:CAC.",
        ),
        dg.AssetSpec(
            CURVE,
            deps=[CUSTOMER_CLV],
            group_name="payback",
            kinds={"polars"},
            description="Per cohort × channel × month since acquisition: cumulative gross margin per customer vs CAC.",
        ),
    ],
)
def cac_payback(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    as_of = marts_as_of(context, warehouse)
    customers = read(warehouse, "select customer_id, cohort_month, acquisition_channel from marts.dim_customers").lazy()
    orders = read(warehouse, "select customer_id, order_date, gross_margin from marts.fct_orders").lazy()
    spend = read(
        warehouse, "select spend_date, channel, spend from staging.stg_marketing_spend where spend_date <= ?", [as_of]
    ).lazy()
    cac = cac_by_cohort(customers, spend)
    curve = payback_curve(customers, orders, cac, as_of.replace(day=1))
    scored = read(
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
    settings = warehouse.settings()
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
    paid = summary.filter(pl.col("payback_months").is_not_null())
    context.log.info(
        f"{summary.height} cohort × channel rows; {paid.height} paid back; "
        f"{summary.filter(pl.col('cac').is_null()).height} without known spend."
    )
    yield dg.MaterializeResult(
        asset_key=PAYBACK, metadata=table_metadata(summary.sort("cohort_month", descending=True), rows=15)
    )
    yield dg.MaterializeResult(asset_key=CURVE, metadata=table_metadata(curve))
