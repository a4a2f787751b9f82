"""CAC payback per cohort month × channel, observed and predicted from the CLV model."""

import dagster as dg
import polars as pl

from pipelines.defs.assets.clv import CUSTOMER_CLV, MODEL_FIT
from pipelines.defs.assets.common import marts_as_of, table_metadata
from pipelines.defs.resources import WarehouseResource
from pipelines.payback.marts import build_cac_payback

PAYBACK = dg.AssetKey(["marts", "cac_payback"])
CURVE = dg.AssetKey(["marts", "cac_payback_curve"])


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
    summary, curve = build_cac_payback(warehouse, warehouse.settings(), as_of)
    paid = summary.filter(pl.col("payback_months").is_not_null())
    context.log.info(
        f"{summary.height} cohort × channel rows; {paid.height} paid back; "
        f"{summary.filter(pl.col('cac').is_null()).height} without known spend."
    )
    yield dg.MaterializeResult(
        asset_key=PAYBACK, metadata=table_metadata(summary.sort("cohort_month", descending=True), rows=15)
    )
    yield dg.MaterializeResult(asset_key=CURVE, metadata=table_metadata(curve))
