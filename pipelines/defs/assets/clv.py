"""Predictive CLV, its fit history and back-test, segment value with intervals, and survival by cohort: the assets
wire the warehouse and the settings to pipelines.clv.marts and report what was written."""

import dagster as dg

from pipelines.clv.marts import (
    SPEARMAN_PARAMETER,
    build_clv_models,
    build_cohort_survival,
    build_segment_clv,
    segment_interval_figures,
)
from pipelines.defs.assets.common import marts_as_of, table_metadata
from pipelines.defs.resources import WarehouseResource

CUSTOMER_CLV = dg.AssetKey(["marts", "customer_clv"])
MODEL_FIT = dg.AssetKey(["marts", "clv_model_fit"])
BACKTEST = dg.AssetKey(["marts", "clv_backtest"])
COHORT_SURVIVAL = dg.AssetKey(["marts", "cohort_survival"])
MART_DEPS = [
    dg.AssetKey(["marts", "fct_orders"]),
    dg.AssetKey(["marts", "dim_customers"]),
    dg.AssetKey(["intermediate", "int_customer_totals"]),
    dg.AssetKey(["staging", "stg_marketing_spend"]),
]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            CUSTOMER_CLV,
            deps=MART_DEPS,
            group_name="clv",
            kinds={"polars", "scipy"},
            description="Per customer at the as-of date: RFM (weeks), P(alive), expected purchases, expected "
            "order value, discounted 365-day predicted CLV on gross margin, formula CLV, CAC, net CLV, decile.",
        ),
        dg.AssetSpec(
            MODEL_FIT,
            deps=MART_DEPS,
            group_name="clv",
            kinds={"scipy"},
            description="Purchase models and Gamma-Gamma estimates per as-of date (long format), kept across runs "
            "for drift.",
        ),
        dg.AssetSpec(
            BACKTEST,
            deps=MART_DEPS,
            group_name="clv",
            kinds={"scipy"},
            description="Calibration/holdout back-test: predicted vs actual repeat purchases, overall and by "
            "frequency.",
        ),
    ],
)
def clv_models(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    result = build_clv_models(warehouse, warehouse.settings(), marts_as_of(context, warehouse), context.log)
    scored = result.scored
    yield dg.MaterializeResult(
        asset_key=CUSTOMER_CLV,
        metadata={
            **table_metadata(scored.sort("predicted_clv_365d", descending=True, nulls_last=True)),
            "as_of": str(result.as_of),
            "purchase_model": result.selected or "none",
            "mean_predicted_clv_365d": float(scored["predicted_clv_365d"].mean() or 0.0),
            "mean_p_alive": float(scored["p_alive"].mean() or 0.0),
        },
    )
    yield dg.MaterializeResult(
        asset_key=MODEL_FIT,
        metadata={
            **table_metadata(result.fit_rows, rows=30),
            "fitted_on": str(result.fitted_on),
            "refit_this_run": result.refit,
            "selected_model": result.selected or "none",
            **{f"{name}_converged": converged for name, converged in result.converged.items()},
            **({SPEARMAN_PARAMETER: float(result.spearman)} if result.spearman is not None else {}),
            "models_not_used": "\n".join(f"{m}: {n}" for m, n in result.notes.items()) or "none",
        },
    )
    yield dg.MaterializeResult(
        asset_key=BACKTEST, metadata={**table_metadata(result.backtest_rows), **result.backtest_figures()}
    )


@dg.asset(
    key=dg.AssetKey(["marts", "segment_clv"]),
    deps=[CUSTOMER_CLV, dg.AssetKey(["marts", "customer_segments"])],
    group_name="clv",
    kinds={"duckdb"},
    description="Customers, historical and predicted value per RFM segment, per segment flag and in total, "
    "with 90 % intervals of the predicted totals (parametric bootstrap over the parameters).",
)
def segment_clv(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    summary = build_segment_clv(warehouse, warehouse.settings(), context.log)
    return dg.MaterializeResult(metadata={**table_metadata(summary, rows=20), **segment_interval_figures(summary)})


@dg.asset(
    key=COHORT_SURVIVAL,
    deps=[CUSTOMER_CLV, dg.AssetKey(["marts", "dim_customers"])],
    group_name="clv",
    kinds={"polars"},
    description="Per acquisition cohort month as of the run: mean P(alive) from the purchase model beside the "
    "observed share of the cohort that ordered in the last 90 days.",
)
def cohort_survival(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    table = build_cohort_survival(warehouse, marts_as_of(context, warehouse))
    return dg.MaterializeResult(metadata=table_metadata(table, rows=20))
