"""Helpers shared by the polars assets: the run's as-of date and the metadata of a written table."""

from datetime import date

import dagster as dg
import polars as pl

from pipelines import warehouse as wh
from pipelines.defs.resources import WarehouseResource
from pipelines.markdown import frame_to_markdown


def marts_as_of(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> date:
    """The same point in time dbt used: the run's as-of, else the newest order in fct_orders."""
    window, _ = warehouse.run_window(context)
    as_of = window.as_of
    if as_of is None:
        with warehouse.connect(read_only=True) as con:
            as_of = wh.newest_order_date(con)
    if as_of is None:
        raise dg.Failure("marts.fct_orders is empty: there is nothing to model yet.")
    return as_of


def table_metadata(frame: pl.DataFrame, rows: int = 10) -> dict:
    return {"dagster/row_count": frame.height, "preview": dg.MetadataValue.md(frame_to_markdown(frame, max_rows=rows))}
