"""What the platform adapters share: reading an export's columns by name, grouping its line-item rows into one row
per order, and the money rules (net revenue before tax and shipping, the net share of a refund)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from pipelines.sources.formats.dialect import EXACT, amount_text, date_text, join_offset
from pipelines.sources.formats.mapping import FileFormat

NONE = pl.lit(None, pl.String)


@dataclass(frozen=True)
class Platform:
    name: str
    signature: frozenset[str]  # header names (lower case) that must all be present for the export to be this one
    adapt: Callable[[Export], tuple[pl.DataFrame, list[str]]]  # contract frame and notes


class Export:
    """One export file's raw string frame, its format settings and the decimal separator in force."""

    def __init__(self, frame: pl.DataFrame, fmt: FileFormat, decimal: str, file_name: str):
        self.frame = frame
        self.fmt = fmt
        self.decimal = decimal
        self.file_name = file_name
        self.names = {c.strip().lower(): c for c in frame.columns if not c.startswith("_")}

    def text(self, *names: str) -> pl.Expr:
        """The first present column of `names`, trimmed, blank as null; null when none is present."""
        for name in names:
            if name in self.names:
                value = pl.col(self.names[name]).cast(pl.String).str.strip_chars()
                return pl.when(value == "").then(None).otherwise(value)
        return NONE

    def amount(self, name: str, column: str) -> tuple[pl.Expr, pl.Expr]:
        """(plain number text of a grouped order's field, reason when it is not a number in this file's format).
        The reason names the platform's field (`non-numeric Subtotal 'abc'`), which the shop owner can find."""
        text, problem = amount_text(pl.col(column), name, self.decimal, self.fmt.thousands)
        garbage = pl.when(text.is_not_null() & exact(text).is_null()).then(
            pl.format(f"non-numeric {name} '{{}}'", pl.col(column))
        )
        return text, pl.coalesce(problem, garbage.otherwise(NONE))

    def timestamp(self, name: str, column: str) -> tuple[pl.Expr, pl.Expr]:
        return date_text(join_offset(pl.col(column)), name, self.fmt.date_format, self.fmt.timezone, self.fmt.source)


def group_orders(
    export: Export, key: pl.Expr, order_level: dict[str, pl.Expr], first_item: dict[str, pl.Expr]
) -> pl.DataFrame:
    """One row per order from an export with one row per line item.

    `key` names the order of a row. A row with no key and none of the `order_level` fields continues the order
    above it (exports that write order fields on the first row only); a row with no key but order fields is an
    order of its own (then rejected for its missing id). Order-level fields are the first non-blank value of the
    order's rows; `first_item` fields are those of its first line item that has them. The order keeps the first
    physical line and field count of its first row; a field-count problem on any other of its rows becomes the
    order's `_format_problem`, naming that line, so a shifted line item rejects the whole order."""
    frame = export.frame
    has_order_fields = (
        pl.any_horizontal([e.is_not_null() for e in order_level.values()]) if order_level else pl.lit(False)
    )
    rows = frame.with_columns(_own_key=key, _has_fields=has_order_fields).with_columns(
        _key=pl.when(pl.col("_own_key").is_null() & ~pl.col("_has_fields"))
        .then(None)
        .otherwise(pl.coalesce("_own_key", pl.format("line {}", "_line")))
        .forward_fill()
    )
    rows = rows.with_columns(_key=pl.coalesce("_key", pl.format("line {}", "_line")))
    bad = pl.col("_fields") != pl.col("_expected")
    later = pl.col("_line") != pl.col("_line").first()
    grouped = rows.group_by("_key", maintain_order=True).agg(
        *[expr.drop_nulls().first().alias(name) for name, expr in {**order_level, **first_item}.items()],
        pl.col("_line").first(),
        pl.col("_fields").first(),
        pl.col("_expected").first(),
        _items=pl.len(),
        _bad_line=pl.col("_line").filter(bad & later).first(),
        _bad_fields=pl.col("_fields").filter(bad & later).first(),
        _bad_expected=pl.col("_expected").filter(bad & later).first(),
    )
    many = (
        pl.when(pl.col("_bad_fields") > pl.col("_bad_expected")).then(pl.lit("too many")).otherwise(pl.lit("too few"))
    )
    return grouped.with_columns(
        _format_problem=pl.when(pl.col("_bad_line").is_not_null()).then(
            pl.format(
                "line {} (a line item of this order): {} fields ({} of {})",
                "_bad_line",
                many,
                "_bad_fields",
                "_bad_expected",
            )
        )
    ).drop("_bad_line", "_bad_fields", "_bad_expected")


def exact(text: pl.Expr) -> pl.Expr:
    return text.cast(EXACT, strict=False)


def money_text(value: pl.Expr) -> pl.Expr:
    """An exact amount as the plain text the contract's parser reads (it rounds to the cent, half up)."""
    return value.cast(pl.String)


def net_share_of_refund(refund: pl.Expr, net: pl.Expr, total: pl.Expr, fully_refunded: pl.Expr) -> pl.Expr:
    """The part of a refund that was net revenue.

    Platforms report the money refunded, which includes the refunded tax and shipping; the contract's
    refunded_amount is compared with net revenue (before tax and shipping). A fully refunded order refunds its
    whole net revenue; a partial refund counts the net revenue's share of what was paid (refund x net / total),
    at most the net revenue, rounded half up to the cent."""
    refund_f, net_f, total_f = (e.cast(pl.Float64) for e in (refund, net, total))
    share = (
        pl.when(fully_refunded)
        .then(net_f)
        .when(refund_f.fill_null(0) == 0)
        .then(pl.lit(0.0))
        .when(total_f > 0)
        .then(pl.min_horizontal(refund_f * net_f / total_f, net_f))
        .otherwise(refund_f)
    )
    return share.round(2, mode="half_away_from_zero").cast(pl.String)


def first_problem(*problems: pl.Expr) -> pl.Expr:
    return pl.coalesce(list(problems))


def contract_frame(orders: pl.DataFrame, problems: list[pl.Expr], **columns: pl.Expr) -> pl.DataFrame:
    """The grouped orders as the contract's columns, with the reader's bookkeeping (line, field counts) and each
    order's first format problem: its own, or one of `problems`."""
    return orders.select(
        **columns,
        _line=pl.col("_line"),
        _fields=pl.col("_fields"),
        _expected=pl.col("_expected"),
        _format_problem=first_problem(pl.col("_format_problem"), *problems),
    )
