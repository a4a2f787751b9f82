"""Several currencies, one reporting currency: orders are converted at ingest with the shop's own exchange rates.

Input: `fx_rates*.csv|parquet` in the source directory, columns `date, currency, rate`, where `rate` is the value
of ONE unit of `currency` in the reporting currency (EUR reporting: `2025-03-03,PLN,0.2315`). An order in another
currency than the reporting one takes the latest rate of its currency dated on or before its order date; an order
with no such rate is quarantined with the reason. The reporting currency is CLV_REPORTING_CURRENCY, else the
currency most orders are in. Amounts (net revenue, discount, refund, cost) are converted and rounded to the cent;
`currency` keeps the order's own currency and `fx_rate` the rate used (null: no conversion).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

FX_PREFIX = "fx_rates"
FX_COLUMNS = ("date", "currency", "rate")
AMOUNTS = ("net_revenue", "discount_amount", "refunded_amount", "cost")
RATES_SCHEMA = {"date": pl.Date, "currency": pl.String, "rate": pl.Float64}


def load_fx_rates(raw_dir: Path | None) -> pl.DataFrame:
    """Every rate of the directory's fx_rates files. A bad rate would convert orders wrongly without a trace,
    so any invalid row stops the load with its file and line (SourceFileError)."""
    from pipelines.sources import files as src

    parts = []
    for path in src.discover(raw_dir, FX_PREFIX) if raw_dir is not None else []:
        frame = src.read_table(path, FX_COLUMNS)
        parsed = frame.select(
            "_line",
            date=src.parse_timestamp("date", frame.schema["date"]).dt.date(),
            currency=pl.col("currency").cast(pl.String).str.strip_chars().str.to_uppercase(),
            rate=pl.col("rate").cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False),
            _text=pl.concat_str([pl.col(c).cast(pl.String).fill_null("") for c in FX_COLUMNS], separator=","),
        )
        bad = parsed.filter(
            pl.col("date").is_null()
            | ~pl.col("currency").str.contains(r"^[A-Z]{3}$").fill_null(False)
            | pl.col("rate").is_null()
            | ~pl.col("rate").is_finite().fill_null(False)
            | (pl.col("rate") <= 0)
        )
        if bad.height:
            line, text = bad.row(0)[0], bad["_text"][0]
            raise src.SourceFileError(
                f"{path}: line {line}: '{text}' is not a rate (expected date YYYY-MM-DD, a three-letter currency "
                f"code and a positive number: the value of one unit of that currency in the reporting currency); "
                f"{bad.height} such row(s)"
            )
        parts.append(parsed.select(*RATES_SCHEMA))
    if not parts:
        return pl.DataFrame(schema=RATES_SCHEMA)
    # The same currency and date twice: the later file (natural name order) wins, as for orders.
    return pl.concat(parts).unique(["currency", "date"], keep="last", maintain_order=True).sort("currency", "date")


def reporting_currency(configured: str | None, shop_currency: str | None, files: list) -> str | None:
    """CLV_REPORTING_CURRENCY, else the warehouse's usual currency, else the most common one of the order files:
    decided once per load, so every chunk of a long load converts to the same currency."""
    if configured:
        return configured.strip().upper()
    return shop_currency or currency_mode(files)


def convert(rows: pl.DataFrame, rates: pl.DataFrame, reporting: str | None) -> pl.DataFrame:
    """`rows` (validated orders with `_problem`) with amounts in `reporting`, `fx_rate` set, and a `_problem` for
    each valid order whose currency has no rate on or before its date."""
    if (
        reporting is None
        or rows.select((pl.col("currency").is_null() | (pl.col("currency") == reporting)).all()).item()
    ):
        # One currency, already the reporting one (a shop's usual case: 10 M orders, 1 s saved)
        return rows.with_columns(fx_rate=pl.lit(None, pl.Float64))
    currency = pl.col("currency").str.to_uppercase()
    rows = rows.with_columns(currency=currency, _row_fx=pl.int_range(pl.len(), dtype=pl.UInt32))
    foreign = rows.filter(
        pl.col("_problem").is_null()
        & pl.col("currency").is_not_null()
        & (pl.col("currency") != pl.lit(reporting, pl.String))
    )
    if reporting is None or foreign.is_empty():
        return rows.drop("_row_fx").with_columns(fx_rate=pl.lit(None, pl.Float64))
    looked_up = (
        foreign.select("_row_fx", "currency", _day=pl.col("ordered_at").dt.date())
        .sort("_day")
        .join_asof(
            rates.rename({"date": "_rate_day"}),
            left_on="_day",
            right_on="_rate_day",
            by="currency",
            strategy="backward",
            check_sortedness=False,
        )
    )
    rows = rows.join(looked_up.select("_row_fx", "_day", "rate"), on="_row_fx", how="left")
    needs_rate = pl.col("_day").is_not_null()
    missing = needs_rate & pl.col("rate").is_null()
    return (
        rows.with_columns(
            _problem=pl.when(missing)
            .then(
                pl.format(
                    f"no exchange rate for {{}} on or before {{}} in {FX_PREFIX}* files "
                    f"(reporting currency {reporting}): "
                    "add the rate, or set CLV_REPORTING_CURRENCY",
                    "currency",
                    "_day",
                )
            )
            .otherwise(pl.col("_problem")),
            **{
                amount: pl.when(needs_rate & ~missing)
                .then((pl.col(amount) * pl.col("rate")).round(2))
                .otherwise(pl.col(amount))
                for amount in AMOUNTS
            },
            fx_rate=pl.col("rate"),
        )
        .sort("_row_fx")
        .drop("_row_fx", "_day", "rate")
    )


def currency_mode(files: list) -> str | None:
    """The most common order currency over whole files (a first load, before the warehouse knows the shop)."""
    from pipelines.sources import files as src

    counts = []
    for path in files:
        if not isinstance(path, Path):
            continue  # a database relation: its rows decide once loaded
        try:
            if path.name.lower().endswith(".parquet"):
                column = pl.scan_parquet(path).select("currency")
            else:
                column = src.read_table(path, ()).lazy().select("currency")
            counts.append(
                column.select(pl.col("currency").cast(pl.String).str.strip_chars().str.to_uppercase())
                .group_by("currency")
                .len()
                .collect()
            )
        except (src.SourceFileError, pl.exceptions.PolarsError):
            continue  # no currency column, or a file the load itself will report
    if not counts:
        return None
    total = (
        pl.concat(counts).drop_nulls().filter(pl.col("currency") != "").group_by("currency").agg(pl.col("len").sum())
    )
    return total.sort(["len", "currency"], descending=[True, False])["currency"][0] if total.height else None
