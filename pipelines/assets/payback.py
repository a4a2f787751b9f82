"""CAC payback per cohort month × channel, observed and predicted from the CLV model."""

import dagster as dg
import polars as pl

from pipelines import warehouse as wh
from pipelines.assets.clv import CUSTOMER_CLV, MODEL_FIT
from pipelines.assets.common import marts_as_of, read, table_metadata
from pipelines.clv.bgnbd import BgNbdFit
from pipelines.clv.scoring import expected_margin_by_horizon, fits_from_rows
from pipelines.payback.cac import KEYS, cac_by_cohort, payback_curve, payback_summary
from pipelines.resources import WarehouseResource

PAYBACK = dg.AssetKey(["marts", "cac_payback"])
CURVE = dg.AssetKey(["marts", "cac_payback_curve"])
PREDICTION_HORIZON_MONTHS = range(1, 37)


def _fitted_bgnbd(warehouse: WarehouseResource, as_of) -> BgNbdFit | None:
    """The BG/NBD parameters customer_clv was scored with at this as-of date."""
    rows = read(warehouse, "select model, parameter, value from marts.clv_model_fit where as_of_date = ?", [as_of])
    return fits_from_rows(rows)[0]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(PAYBACK, deps=[CUSTOMER_CLV, MODEL_FIT], group_name="payback", kinds={"polars"},
                     description="Per cohort month × acquisition channel: new customers, spend, CAC, payback month "
                                 "(observed; null while not reached), predicted payback month, LTV:CAC at 12 months, ROMI."),
        dg.AssetSpec(CURVE, deps=[CUSTOMER_CLV], group_name="payback", kinds={"polars"},
                     description="Per cohort × channel × month since acquisition: cumulative gross margin per customer vs CAC."),
    ],
)
def cac_payback(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    as_of = marts_as_of(context, warehouse)
    customers = read(warehouse, "select customer_id, cohort_month, acquisition_channel from marts.dim_customers").lazy()
    orders = read(warehouse, "select customer_id, order_date, gross_margin from marts.fct_orders").lazy()
    spend = read(warehouse, "select spend_date, channel, spend from staging.stg_marketing_spend where spend_date <= ?", [as_of]).lazy()
    cac = cac_by_cohort(customers, spend)
    curve = payback_curve(customers, orders, cac, as_of.replace(day=1))
    scored = read(warehouse, "select customer_id, cohort_month, acquisition_channel, frequency, recency, \"T\", "
                             "expected_order_value, margin_rate from marts.customer_clv")
    bg = _fitted_bgnbd(warehouse, as_of)
    projected = expected_margin_by_horizon(scored, bg, KEYS, PREDICTION_HORIZON_MONTHS) if bg else None
    summary = payback_summary(curve, cac, projected).with_columns(as_of_date=pl.lit(as_of))
    with warehouse.connect() as con:
        wh.replace_table(con, "marts.cac_payback", summary)
        wh.replace_table(con, "marts.cac_payback_curve", curve)
    paid = summary.filter(pl.col("payback_months").is_not_null())
    context.log.info(f"{summary.height} cohort × channel rows; {paid.height} paid back; "
                     f"{summary.filter(pl.col('cac').is_null()).height} without known spend.")
    yield dg.MaterializeResult(asset_key=PAYBACK, metadata=table_metadata(summary.sort("cohort_month", descending=True), rows=15))
    yield dg.MaterializeResult(asset_key=CURVE, metadata=table_metadata(curve))
