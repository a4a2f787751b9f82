"""Deliberately bad order rows for the synthetic shop (each row has exactly one problem)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from pipelines.sources._synthetic_schema import ORDER_COLUMNS

if TYPE_CHECKING:  # pragma: no cover
    from pipelines.sources.synthetic import SyntheticShopConfig

#: problems in the order they are cycled through
DIRTY_PROBLEMS: tuple[str, ...] = (
    "missing_order_id",
    "missing_customer_id",
    "unparseable_date",  # "2025-13-45"
    "unparseable_date_text",  # "not a date"
    "impossible_date",  # "1899-01-01"
    "non_numeric_revenue",  # "abc"
    "negative_revenue",  # "-5.00"
    "nan_revenue",  # "NaN"
    "inf_revenue",  # "inf"
    "exact_duplicate",
    "non_numeric_discount",  # "ten"
)

TS_FORMAT = "%Y-%m-%d %H:%M:%S"
_FLOAT_COLUMNS = ("net_revenue", "discount_amount", "refunded_amount", "cost")
_TS_COLUMNS = ("ordered_at", "refunded_at")


def format_order_row(row: dict) -> dict[str, str | None]:
    """Stringify one clean order row (ISO ``YYYY-MM-DD HH:MM:SS``, floats with 2 decimals)."""
    out: dict[str, str | None] = {}
    for col in ORDER_COLUMNS:
        v = row[col]
        if v is None:
            out[col] = None
        elif col in _TS_COLUMNS:
            out[col] = v.strftime(TS_FORMAT)
        elif col in _FLOAT_COLUMNS:
            out[col] = f"{v:.2f}"
        else:
            out[col] = str(v)
    return out


def make_dirty_orders(
    orders: pl.DataFrame,
    config: SyntheticShopConfig,
    rng: np.random.Generator,
    id_width: int,
) -> pl.DataFrame:
    """Dirty rows stage: ``config.dirty_rows`` string rows, each with exactly one problem (DIRTY_PROBLEMS, cycled).

    Each starts from an ordinary completed, unrefunded order of ``orders``; all but exact duplicates get a new
    order id (``id_width`` digits, after the clean ones) and a time shifted by up to 3 days (within the window).
    """
    schema = {c: pl.String for c in ORDER_COLUMNS}
    n_dirty = int(config.dirty_rows)
    if n_dirty <= 0 or orders.height == 0:
        return pl.DataFrame(schema=schema)

    # base rows: ordinary completed, unrefunded orders (sampled, then filtered)
    sample = np.unique(rng.integers(0, orders.height, 20 * n_dirty + 100))
    rng.shuffle(sample)
    ok = (
        orders[sample.tolist()]
        .select((pl.col("status") == "completed") & pl.col("refunded_at").is_null())
        .to_series()
        .to_numpy()
    )
    candidates = sample[ok] if ok.any() else sample
    picks = candidates[np.arange(n_dirty) % candidates.size]
    base_rows = orders[picks.tolist()].to_dicts()

    window_start = datetime.combine(config.start_date, datetime.min.time())
    window_end = datetime.combine(config.end_date, datetime.max.time()).replace(microsecond=0)
    shifts = rng.integers(-3 * 86_400, 3 * 86_400, n_dirty)

    rows = []
    next_id = orders.height + 1
    for i, base in enumerate(base_rows):
        problem = DIRTY_PROBLEMS[i % len(DIRTY_PROBLEMS)]
        if problem == "exact_duplicate":
            rows.append(format_order_row(base))
            continue
        row = dict(base)
        row["order_id"] = "O" + str(next_id).zfill(id_width)
        next_id += 1
        shifted = row["ordered_at"] + timedelta(seconds=int(shifts[i]))
        row["ordered_at"] = min(max(shifted, window_start), window_end)
        s = format_order_row(row)
        if problem == "missing_order_id":
            s["order_id"] = None
        elif problem == "missing_customer_id":
            s["customer_id"] = None
        elif problem == "unparseable_date":
            s["ordered_at"] = "2025-13-45"
        elif problem == "unparseable_date_text":
            s["ordered_at"] = "not a date"
        elif problem == "impossible_date":
            s["ordered_at"] = "1899-01-01"
        elif problem == "non_numeric_revenue":
            s["net_revenue"] = "abc"
        elif problem == "negative_revenue":
            s["net_revenue"] = "-5.00"
        elif problem == "nan_revenue":
            s["net_revenue"] = "NaN"
        elif problem == "inf_revenue":
            s["net_revenue"] = "inf"
        elif problem == "non_numeric_discount":
            s["discount_amount"] = "ten"
        rows.append(s)
    return pl.DataFrame(rows, schema=schema)
