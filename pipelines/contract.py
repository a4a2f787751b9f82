"""The data contract, once: every raw table's columns, and the marts BI reads.

The raw DDL (pipelines/warehouse.py), the polars schemas of the sources (pipelines/sources/) and the synthetic shop,
the input columns a file or PostgreSQL table must or may have, and the mart list of the CLI, the Dagster assets and
the publisher are all derived from here. tests/test_contract.py checks dbt's `_sources.yml` against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

SQL_TYPES = {pl.String: "varchar", pl.Date: "date", pl.Datetime: "timestamp", pl.Float64: "double", pl.Int64: "bigint"}


@dataclass(frozen=True)
class Column:
    name: str
    dtype: pl.DataType
    required: bool = False  # an input column every export must have
    input: bool = True  # read from the export (else derived by the source, or written by the warehouse)
    loaded: bool = True  # in the frame a source hands to the warehouse writer
    stored: bool = True  # in the raw table (the e-mail in clear never is: the writer stores its keyed hash)
    not_null: bool = False

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.dtype.base_type()]


def _derived(name: str, dtype: pl.DataType, **kwargs) -> Column:
    """A column the source computes while loading (order date, file and line)."""
    return Column(name, dtype, input=False, **kwargs)


def _written(name: str, dtype: pl.DataType) -> Column:
    """A column the warehouse writer adds (load time, load id, the e-mail's keyed hash)."""
    return Column(name, dtype, input=False, loaded=False)


STRING, DATE, TIMESTAMP, DOUBLE, BIGINT = pl.String(), pl.Date(), pl.Datetime("us"), pl.Float64(), pl.Int64()
PROVENANCE = (_derived("source_file", STRING), _derived("source_line", BIGINT), _written("loaded_at", TIMESTAMP))


@dataclass(frozen=True)
class Table:
    name: str  # schema.table in the warehouse
    columns: tuple[Column, ...]

    @property
    def short_name(self) -> str:
        return self.name.split(".", 1)[1]

    def _pick(self, **flags: bool) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if all(getattr(c, flag) == value for flag, value in flags.items()))

    def names(self, **flags: bool) -> tuple[str, ...]:
        """Column names, in table order, of the columns whose flags match (`input=True`, `stored=True`, ...)."""
        return tuple(c.name for c in self._pick(**flags))

    def schema(self, **flags: bool) -> dict[str, pl.DataType]:
        """The polars schema of the columns whose flags match."""
        return {c.name: c.dtype for c in self._pick(**flags)}

    @property
    def required(self) -> tuple[str, ...]:
        return self.names(input=True, required=True)

    @property
    def optional(self) -> tuple[str, ...]:
        return self.names(input=True, required=False)

    @property
    def input_columns(self) -> tuple[str, ...]:
        """Every column an export may carry, the required ones first (columns.yml maps export columns to these)."""
        return self.required + self.optional

    def ddl_columns(self) -> str:
        return ", ".join(f"{c.name} {c.sql_type}{' not null' if c.not_null else ''}" for c in self._pick(stored=True))


ORDERS = Table(
    "raw.orders",
    (
        Column("order_id", STRING, required=True, not_null=True),
        Column("customer_id", STRING, required=True, not_null=True),
        Column("ordered_at", TIMESTAMP, required=True, not_null=True),
        _derived("order_date", DATE, not_null=True),
        Column("net_revenue", DOUBLE, required=True, not_null=True),
        Column("currency", STRING),
        Column("discount_amount", DOUBLE, not_null=True),
        Column("discount_code", STRING),
        Column("refunded_amount", DOUBLE, not_null=True),
        Column("refunded_at", TIMESTAMP),
        Column("cost", DOUBLE),
        Column("channel", STRING),
        Column("status", STRING),
        Column("product_category", STRING),
        Column("email", STRING, stored=False),
        _written("email_hmac", STRING),
        Column("updated_at", TIMESTAMP),  # the platform's last change of the order: the latest version wins
        _derived("fx_rate", DOUBLE),  # the rate that converted the amounts to the reporting currency; null: none
        _derived("source_file", STRING),
        _derived("source_sort_key", STRING),  # natural_key(source_file): orders_10 is later than orders_9
        _derived("source_line", BIGINT),
        _written("loaded_at", TIMESTAMP),
        _written("load_id", BIGINT),
    ),
)

MARKETING_SPEND = Table(
    "raw.marketing_spend",
    (
        Column("date", DATE, required=True, not_null=True),
        Column("channel", STRING, required=True, not_null=True),
        Column("spend", DOUBLE, required=True, not_null=True),
        Column("currency", STRING, stored=False),  # converted to the reporting currency while loading
        *PROVENANCE,
    ),
)

CART_EVENTS = Table(
    "raw.cart_events",
    (
        Column("customer_id", STRING, required=True, not_null=True),
        Column("event_at", TIMESTAMP, required=True, not_null=True),
        _derived("event_date", DATE, not_null=True),
        Column("event_type", STRING, required=True, not_null=True),
        Column("cart_value", DOUBLE),
        *PROVENANCE,
    ),
)

# Every input row that did not make it into the tables above, with file, line and reason (never an e-mail in clear).
REJECTED_ORDERS = Table(
    "raw.rejected_orders",
    (
        _derived("source_table", STRING),
        _derived("source_file", STRING),
        _derived("source_line", BIGINT),
        _derived("kind", STRING),  # invalid | duplicate | superseded
        _derived("reason", STRING),
        _derived("record", STRING),
        _derived("event_date", DATE),
        _written("rejected_at", TIMESTAMP),
    ),
)

# The tables a source loads, by the file-name prefix of their exports.
SOURCE_TABLES = {t.short_name: t for t in (ORDERS, MARKETING_SPEND, CART_EVENTS)}
RAW_TABLES = (*SOURCE_TABLES.values(), REJECTED_ORDERS)

# The marts BI reads, in the order the CLI lists them: built by dbt, then by the polars assets. The snapshot and the
# Parquet exports hold exactly these.
DBT_MARTS = (
    "fct_orders",
    "dim_customers",
    "cohort_retention",
    "cohort_retention_by_channel",
    "retention_kpis",
    "customer_segments",
    "windowed_ltv",
    "ltv_drivers",
)
POLARS_MARTS = (
    "customer_clv",
    "clv_model_fit",
    "clv_backtest",
    "segment_clv",
    "cac_payback",
    "cac_payback_curve",
    "cohort_survival",
)
MARTS = DBT_MARTS + POLARS_MARTS
