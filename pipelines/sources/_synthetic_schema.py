"""The synthetic shop's export schemas, derived from the contract (``pipelines/contract.py``).

Apart from the generator so that ``_synthetic_dirty`` can use the column order without importing ``synthetic``
(which imports it); ``pipelines.sources.synthetic`` re-exports the schemas.
"""

from __future__ import annotations

import polars as pl

from pipelines import contract

# The columns of the synthetic orders export: the contract's input columns but updated_at.
ORDER_COLUMNS: tuple[str, ...] = tuple(c for c in contract.ORDERS.names(input=True) if c != "updated_at")

ORDERS_SCHEMA: dict[str, pl.DataType] = {name: contract.ORDERS.schema()[name] for name in ORDER_COLUMNS}
MARKETING_SPEND_SCHEMA = contract.MARKETING_SPEND.schema(input=True, stored=True)
CART_EVENTS_SCHEMA = contract.CART_EVENTS.schema(input=True)
