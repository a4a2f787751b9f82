"""The `files` source: a directory of CSV or Parquet files, validated in polars (vectorised, no row loops).

Contract (README "Data contract"): `orders*.csv|parquet` (required), `marketing_spend*`, `cart_events*`.
Every row either lands in the valid frame or in the rejected frame with file, line and reason; nothing is dropped
silently. A file that cannot be read as a table raises `SourceFileError` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

ORDER_REQUIRED = ("order_id", "customer_id", "ordered_at", "net_revenue")
ORDER_OPTIONAL = (
    "currency", "discount_amount", "discount_code", "refunded_amount", "refunded_at", "cost",
    "channel", "status", "product_category", "email",
)
SPEND_REQUIRED = ("date", "channel", "spend")
CART_REQUIRED = ("customer_id", "event_at", "event_type")
CART_OPTIONAL = ("cart_value",)

# Before this nobody ran an online shop with our data; after tomorrow is the future. Either is a typo, not an order.
EARLIEST_PLAUSIBLE = datetime(2000, 1, 1)

REJECTED_SCHEMA = {
    "source_table": pl.String,
    "source_file": pl.String,
    "source_line": pl.Int64,
    "kind": pl.String,          # invalid | duplicate | superseded
    "reason": pl.String,
    "record": pl.String,
    "event_date": pl.Date,
}

RAW_ORDERS_SCHEMA = {
    "order_id": pl.String,
    "customer_id": pl.String,
    "ordered_at": pl.Datetime("us"),
    "order_date": pl.Date,
    "net_revenue": pl.Float64,
    "currency": pl.String,
    "discount_amount": pl.Float64,
    "discount_code": pl.String,
    "refunded_amount": pl.Float64,
    "refunded_at": pl.Datetime("us"),
    "cost": pl.Float64,
    "channel": pl.String,
    "status": pl.String,
    "product_category": pl.String,
    "email": pl.String,  # hashed by the warehouse writer (DuckDB sha256); never stored in clear
    "source_file": pl.String,
    "source_line": pl.Int64,
}


class SourceFileError(ValueError):
    """A source file is not a usable table (unreadable, empty, or missing required columns)."""


@dataclass(frozen=True)
class Window:
    """Inclusive range of order dates a run loads; `as_of` is what the source is allowed to know."""

    start: date
    end: date
    as_of: date
    first_partition: date = date(2000, 1, 1)  # rows dated before it belong to no partition: rejected, not lost

    def split(self, days: int) -> list["Window"]:
        """Consecutive sub-windows of at most `days` order dates each, covering this window."""
        starts = [self.start + timedelta(days=d) for d in range(0, (self.end - self.start).days + 1, days)]
        return [replace(self, start=s, end=min(s + timedelta(days=days - 1), self.end)) for s in starts]


@dataclass
class LoadResult:
    valid: pl.DataFrame
    rejected: pl.DataFrame
    files: list[str]
    rows_read: int


def discover(raw_dir: Path, prefix: str) -> list[Path]:
    if not raw_dir.is_dir():
        raise SourceFileError(f"{raw_dir}: raw directory does not exist")
    found = [
        p for p in sorted(raw_dir.iterdir())
        if p.is_file() and p.name.startswith(prefix)
        and (p.suffix in (".csv", ".parquet") or p.name.endswith(".csv.gz"))
    ]
    return found


# ---------------------------------------------------------------- reading
def _read_csv(path: Path) -> pl.DataFrame:
    """All columns as strings (nothing is lost to type sniffing), with the physical line number of each row."""
    try:
        frame = pl.read_csv(
            path, infer_schema=False, truncate_ragged_lines=True, row_index_name="_line", row_index_offset=2,
        )
    except Exception as exc:  # polars raises several exception types for non-tables
        raise SourceFileError(f"{path}: not a readable CSV table ({type(exc).__name__}: {exc})") from exc
    if frame.width <= 1:
        raise SourceFileError(f"{path}: not a CSV table (no header with named columns)")
    expected_fields = frame.width - 1
    if frame.height == 0:  # a header and no rows: an empty day, not an error
        return frame.with_columns(pl.col("_line").cast(pl.Int64), _fields=pl.lit(0, pl.Int64), _expected=pl.lit(0, pl.Int64))
    # A second, cheap pass over raw lines counts fields, to reject rows with too few/many of them.
    lines = pl.read_csv(path, has_header=False, separator="\x1f", quote_char=None, new_columns=["_raw"],
                        infer_schema=False, skip_rows=1)
    if lines.height == frame.height:
        raw = lines["_raw"]
        field_count = raw.str.replace_all(r'"[^"]*"', "").str.count_matches(",").fill_null(0) + 1
        frame = frame.with_columns(_fields=field_count.cast(pl.Int64), _expected=pl.lit(expected_fields, pl.Int64),
                                   _blank_line=raw.is_null() | (raw.str.strip_chars() == ""))
        # Empty lines (often at the end of an export) carry no data: skipped, not rejected.
        frame = frame.filter(~pl.col("_blank_line")).drop("_blank_line")
    else:  # quoted multi-line fields: line alignment is unknowable, skip the field-count check
        frame = frame.with_columns(_fields=pl.lit(expected_fields, pl.Int64), _expected=pl.lit(expected_fields, pl.Int64))
    return frame.with_columns(pl.col("_line").cast(pl.Int64))


def _read_parquet(path: Path, date_col: str | None = None, keep: "DateFilter | None" = None) -> pl.DataFrame:
    try:
        lazy = pl.scan_parquet(path, row_index_name="_line", row_index_offset=1)
        dtype = lazy.collect_schema().get(date_col) if date_col else None
        if keep is not None and isinstance(dtype, (pl.Datetime, pl.Date)):
            # Typed dates let a daily run read only the window's row groups. Rows that would be rejected for their
            # date (null, impossible, before the first partition) are read too, so they are never silently skipped.
            day = pl.col(date_col).cast(pl.Date)
            lazy = lazy.filter(day.is_null() | day.is_between(keep.start, keep.end)
                               | (day < keep.first_partition) | (day > keep.latest))
        frame = lazy.collect()
    except Exception as exc:
        raise SourceFileError(f"{path}: not a readable Parquet table ({type(exc).__name__}: {exc})") from exc
    return frame.with_columns(pl.col("_line").cast(pl.Int64), _fields=pl.lit(0, pl.Int64), _expected=pl.lit(0, pl.Int64))


@dataclass(frozen=True)
class DateFilter:
    start: date
    end: date
    first_partition: date
    latest: date


def read_table(path: Path, required: tuple[str, ...], date_col: str | None = None, keep: DateFilter | None = None) -> pl.DataFrame:
    frame = _read_parquet(path, date_col, keep) if path.suffix == ".parquet" else _read_csv(path)
    frame = frame.rename({c: c.strip().lower() for c in frame.columns if not c.startswith("_")})
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise SourceFileError(f"{path}: missing required column(s) {', '.join(missing)}; found {', '.join(c for c in frame.columns if not c.startswith('_'))}")
    return frame.with_columns(_file=pl.lit(path.name))


# ---------------------------------------------------------------- parsing expressions
def parse_timestamp(col: str, dtype: pl.DataType) -> pl.Expr:
    """Naive UTC timestamp from ISO dates/timestamps (with optional 'T', fraction, 'Z' or offset)."""
    if dtype == pl.Date:
        return pl.col(col).cast(pl.Datetime("us"))
    if isinstance(dtype, pl.Datetime):
        expr = pl.col(col)
        if dtype.time_zone is not None:
            expr = expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return expr.cast(pl.Datetime("us"))
    text = pl.col(col).cast(pl.String).str.strip_chars().str.replace("T", " ").str.replace(r"Z$", "+00:00")
    with_offset = text.str.to_datetime("%Y-%m-%d %H:%M:%S%.f%z", strict=False, time_zone="UTC")
    return pl.coalesce(
        with_offset.dt.replace_time_zone(None),
        text.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us"),
        text.str.to_datetime("%Y-%m-%d %H:%M", strict=False, time_unit="us"),
        text.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us")),
    )


def _field_count_problem() -> pl.Expr:
    return (
        pl.when(pl.col("_fields") < pl.col("_expected")).then(pl.format("too few fields ({} of {})", "_fields", "_expected"))
        .when(pl.col("_fields") > pl.col("_expected")).then(pl.format("too many fields ({} of {})", "_fields", "_expected"))
        .otherwise(pl.lit(None, pl.String))
    )


def _first_problem(problems: list[pl.Expr]) -> pl.Expr:
    return pl.coalesce(problems)


def _record(columns: list[str]) -> pl.Expr:
    return pl.concat_str([pl.col(c).cast(pl.String).fill_null("") for c in columns], separator=",")


@dataclass(frozen=True)
class _Fields:
    """Parsing expressions for the columns of one file: text columns (CSV, string Parquet) are trimmed and a blank
    string counts as missing; typed Parquet columns are used as they are, without a round trip through text."""

    text: frozenset[str]

    def blank(self, col: str) -> pl.Expr:
        if col not in self.text:  # typed Parquet columns: only null is blank
            return pl.col(col).is_null()
        return pl.col(col).is_null() | (pl.col(col).str.strip_chars() == "")

    def amount(self, col: str) -> pl.Expr:
        if col not in self.text:
            return pl.col(col).cast(pl.Float64, strict=False)
        return pl.col(col).str.strip_chars().cast(pl.Float64, strict=False)

    def optional_text(self, col: str) -> pl.Expr:
        if col not in self.text:
            return pl.col(col).cast(pl.String)
        text = pl.col(col).str.strip_chars()
        return pl.when(text == "").then(None).otherwise(text)

    def amount_problem(self, col: str, required: bool) -> pl.Expr:
        """Reason text for a bad amount, null when fine. Optional amounts may be blank (read as 0)."""
        value = self.amount(col)
        missing = pl.lit(f"missing {col}") if required else pl.lit(None, pl.String)
        return (
            pl.when(self.blank(col)).then(missing)
            .when(value.is_null()).then(pl.format(f"non-numeric {col} '{{}}'", pl.col(col).cast(pl.String)))
            .when(value.is_nan() | value.is_infinite()).then(pl.lit(f"non-finite {col}"))
            .when(value < 0).then(pl.lit(f"negative {col}"))
            .otherwise(pl.lit(None, pl.String))
        )

    def date_problem(self, col: str, parsed: pl.Expr, latest: datetime, first_partition: date | None = None) -> pl.Expr:
        problem = (
            pl.when(self.blank(col)).then(pl.lit(f"missing {col}"))
            .when(parsed.is_null()).then(pl.format(f"unparseable {col} '{{}}'", pl.col(col).cast(pl.String)))
            .when((parsed < EARLIEST_PLAUSIBLE) | (parsed > latest)).then(pl.format(f"impossible {col} '{{}}'", pl.col(col).cast(pl.String)))
        )
        if first_partition is not None:
            problem = problem.when(parsed.dt.date() < first_partition).then(
                pl.format(f"{col} '{{}}' is before the first partition {first_partition} (set CLV_START_DATE earlier)",
                          pl.col(col).cast(pl.String)))
        return problem.otherwise(pl.lit(None, pl.String))


def _ensure_columns(frame: pl.DataFrame, columns: tuple[str, ...]) -> tuple[pl.DataFrame, _Fields]:
    """Adds absent optional columns (as null text); returns the frame and the parsers for its columns."""
    absent = [c for c in columns if c not in frame.columns]
    frame = frame.with_columns([pl.lit(None, pl.String).alias(c) for c in absent]) if absent else frame
    return frame, _Fields(frozenset(c for c, t in frame.schema.items() if t == pl.String))


# ---------------------------------------------------------------- orders
def _validate_orders_file(frame: pl.DataFrame, latest: datetime, first_partition: date) -> pl.DataFrame:
    # The rejected record keeps every field but the e-mail, which must not be stored in clear anywhere.
    data_cols = [c for c in frame.columns if not c.startswith("_") and c != "email"]
    frame, f = _ensure_columns(frame, ORDER_OPTIONAL)
    ordered_at = parse_timestamp("ordered_at", frame.schema["ordered_at"])
    refunded_at = parse_timestamp("refunded_at", frame.schema["refunded_at"])
    problems = [
        _field_count_problem(),
        pl.when(f.blank("order_id")).then(pl.lit("missing order_id")),
        pl.when(f.blank("customer_id")).then(pl.lit("missing customer_id")),
        f.date_problem("ordered_at", ordered_at, latest, first_partition),
        f.amount_problem("net_revenue", required=True),
        f.amount_problem("discount_amount", required=False),
        f.amount_problem("refunded_amount", required=False),
        f.amount_problem("cost", required=False),
        pl.when(~f.blank("refunded_at") & refunded_at.is_null()).then(
            pl.format("unparseable refunded_at '{}'", pl.col("refunded_at").cast(pl.String))),
        pl.when(f.amount("refunded_amount").fill_null(0) > f.amount("net_revenue") + 0.005).then(
            pl.lit("refunded_amount exceeds net_revenue")),
    ]
    frame = frame.with_columns(_problem=_first_problem(problems))
    # The rejected record (text of the original fields) is only built for the few rows that need it.
    records = frame.filter(pl.col("_problem").is_not_null()).select("_line", _record=_record(data_cols))
    parsed = frame.select(
        order_id=pl.col("order_id").cast(pl.String).str.strip_chars(),
        customer_id=pl.col("customer_id").cast(pl.String).str.strip_chars(),
        ordered_at=ordered_at,
        net_revenue=f.amount("net_revenue").round(2),
        currency=f.optional_text("currency"),
        discount_amount=f.amount("discount_amount").fill_null(0.0).round(2),
        discount_code=f.optional_text("discount_code"),
        refunded_amount=f.amount("refunded_amount").fill_null(0.0).round(2),
        refunded_at=refunded_at,
        cost=f.amount("cost").round(2),
        channel=f.optional_text("channel").str.to_lowercase(),
        status=f.optional_text("status").str.to_lowercase(),
        product_category=f.optional_text("product_category").str.to_lowercase(),
        email=pl.col("email"),
        source_file=pl.col("_file"),
        source_line=pl.col("_line"),
        _problem=pl.col("_problem"),
    )
    return parsed.join(records, left_on="source_line", right_on="_line", how="left")


def _latest_plausible(today: date | None) -> datetime:
    """Orders up to the end of tomorrow are plausible (sources in time zones ahead of UTC); later ones are not."""
    return datetime.combine((today or date.today()) + timedelta(days=2), datetime.min.time()) - timedelta(microseconds=1)


def load_orders(files: list[Path], window: Window, today: date | None = None) -> LoadResult:
    """Valid orders dated inside `window`, and every rejected row that belongs to it (or to no date at all)."""
    latest = _latest_plausible(today)
    keep = DateFilter(window.start, window.end, window.first_partition, latest.date())
    files = sorted(files, key=lambda p: p.name)  # a later export (by name) supersedes an earlier one
    parts = [_validate_orders_file(read_table(p, ORDER_REQUIRED, "ordered_at", keep), latest, window.first_partition)
             for p in files]
    if not parts:
        raise SourceFileError("no orders*.csv|parquet file found")
    rows_read = sum(part.height for part in parts)
    order_date = pl.col("ordered_at").dt.date()
    in_window = order_date.is_between(window.start, window.end)
    # Point in time: a refund booked after the as-of date is not known yet.
    late_refund = pl.col("refunded_at").is_not_null() & (pl.col("refunded_at").dt.date() > window.as_of)
    # Files are concatenated in name order and each keeps its line order, so row order is (file, line) order.
    rows = pl.concat(parts, how="vertical_relaxed").lazy().filter(in_window | pl.col("_problem").is_not_null())
    del parts
    content_cols = [c for c in RAW_ORDERS_SCHEMA if c not in ("order_date", "source_file", "source_line")]
    rows = rows.with_columns(
        refunded_amount=pl.when(late_refund).then(0.0).otherwise(pl.col("refunded_amount")),
        refunded_at=pl.when(late_refund).then(None).otherwise(pl.col("refunded_at")),
    ).with_columns(
        _row=pl.int_range(pl.len(), dtype=pl.UInt32),
        # A 64-bit hash of the content finds candidate duplicates cheaply; candidates are then compared exactly.
        _hash=pl.when(pl.col("_problem").is_null()).then(pl.struct(content_cols).hash()),
    ).collect()
    invalid = rows.filter(pl.col("_problem").is_not_null())

    # Exact duplicates count once; the other copies are recorded (kind 'duplicate'), not loaded.
    candidates = rows.filter(pl.col("_problem").is_null() & pl.col("_hash").is_duplicated())
    first_copy = pl.struct(content_cols).is_first_distinct()
    copies = candidates.filter(~first_copy)
    originals = candidates.filter(first_copy).select(*content_cols, _first_file="source_file", _first_line="source_line")
    duplicates = copies.join(originals, on=content_cols, how="left", nulls_equal=True).with_columns(
        _problem=pl.format("exact duplicate of {}:{}", "_first_file", "_first_line"), _kind=pl.lit("duplicate"))
    # Same order_id, different content: a later export (file name order, then line) supersedes earlier versions.
    is_valid = pl.col("_problem").is_null() & ~pl.col("_row").is_in(copies["_row"].implode())
    latest = rows.filter(is_valid).select("order_id", "source_file", "source_line", "_row").filter(
        pl.col("order_id").is_duplicated())
    old_rows = latest.filter(~pl.col("order_id").is_last_distinct())
    newest = latest.filter(pl.col("order_id").is_last_distinct()).select(
        "order_id", _latest_file="source_file", _latest_line="source_line")
    superseded = rows.filter(pl.col("_row").is_in(old_rows["_row"].implode())).join(newest, on="order_id", how="left").with_columns(
        _problem=pl.format("superseded by {}:{}", "_latest_file", "_latest_line"), _kind=pl.lit("superseded"))

    rejected = pl.concat([
        _as_rejected(invalid.with_columns(_kind=pl.lit("invalid")), "orders"),
        _as_rejected(duplicates, "orders"),
        _as_rejected(superseded, "orders"),
    ])
    email = pl.col("email").cast(pl.String).str.strip_chars().str.to_lowercase()
    valid = rows.lazy().filter(is_valid & ~pl.col("_row").is_in(old_rows["_row"].implode())).with_columns(
        order_date=order_date, email=pl.when(email == "").then(None).otherwise(email),
    ).select([pl.col(c).cast(t) for c, t in RAW_ORDERS_SCHEMA.items()]).collect()
    return LoadResult(valid=valid, rejected=rejected, files=[p.name for p in files], rows_read=rows_read)


def _as_rejected(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    date_col = "ordered_at" if "ordered_at" in frame.columns else "event_at"
    event_date = pl.col(date_col).dt.date() if date_col in frame.columns else pl.lit(None, pl.Date)
    return frame.select(
        source_table=pl.lit(table),
        source_file=pl.col("source_file"),
        source_line=pl.col("source_line"),
        kind=pl.col("_kind"),
        reason=pl.col("_problem"),
        # Duplicates and superseded versions were valid rows: their record is rebuilt from the parsed fields.
        record=pl.coalesce(pl.col("_record"), _record([c for c in RAW_ORDERS_SCHEMA if c in frame.columns and c != "email"])),
        event_date=event_date,
    ).cast(REJECTED_SCHEMA)


# ---------------------------------------------------------------- marketing spend and cart events
def _load_events(files: list[Path], window: Window, today: date | None, *, table: str, required: tuple[str, ...],
                 optional: tuple[str, ...], date_col: str, columns, problems, output: list, schema: dict) -> LoadResult:
    """The smaller tables (spend, cart events): validate each file, keep the window's rows, reject the rest.
    `columns` and `problems` take the file's parsers (_Fields), which depend on which of its columns are text."""
    latest = _latest_plausible(today)
    keep = DateFilter(window.start, window.end, window.first_partition, latest.date())
    parts = []
    for path in sorted(files, key=lambda p: p.name):
        frame, f = _ensure_columns(read_table(path, required, date_col, keep), optional)
        data_cols = [c for c in frame.columns if not c.startswith("_")]
        event_at = parse_timestamp(date_col, frame.schema[date_col])
        frame = frame.with_columns(_problem=_first_problem(
            [_field_count_problem(), f.date_problem(date_col, event_at, latest, window.first_partition), *problems(f)]))
        records = frame.filter(pl.col("_problem").is_not_null()).select("_line", _record=_record(data_cols))
        parts.append(frame.select(
            event_at=event_at, **columns(f), source_file=pl.col("_file"), source_line=pl.col("_line"), _problem="_problem",
        ).join(records, left_on="source_line", right_on="_line", how="left"))
    if not parts:
        return LoadResult(pl.DataFrame(schema=schema), pl.DataFrame(schema=REJECTED_SCHEMA), [], 0)
    rows = pl.concat(parts, how="vertical_relaxed").filter(
        pl.col("event_at").dt.date().is_between(window.start, window.end) | pl.col("_problem").is_not_null())
    rejected = _as_rejected(rows.filter(pl.col("_problem").is_not_null()).with_columns(_kind=pl.lit("invalid")), table)
    valid = rows.filter(pl.col("_problem").is_null()).with_columns(_date=pl.col("event_at").dt.date())
    return LoadResult(valid.select(output).cast(schema), rejected, [p.name for p in files], sum(p.height for p in parts))


def load_marketing_spend(files: list[Path], window: Window, today: date | None = None) -> LoadResult:
    return _load_events(
        files, window, today, table="marketing_spend", required=SPEND_REQUIRED, optional=(), date_col="date",
        columns=lambda f: {"channel": f.optional_text("channel").str.to_lowercase(), "spend": f.amount("spend").round(2)},
        problems=lambda f: [pl.when(f.blank("channel")).then(pl.lit("missing channel")), f.amount_problem("spend", required=True)],
        output=[pl.col("_date").alias("date"), "channel", "spend", "source_file", "source_line"],
        schema={"date": pl.Date, "channel": pl.String, "spend": pl.Float64, "source_file": pl.String, "source_line": pl.Int64},
    )


def load_cart_events(files: list[Path], window: Window, today: date | None = None) -> LoadResult:
    return _load_events(
        files, window, today, table="cart_events", required=CART_REQUIRED, optional=CART_OPTIONAL, date_col="event_at",
        columns=lambda f: {"customer_id": pl.col("customer_id").cast(pl.String).str.strip_chars(),
                           "event_type": f.optional_text("event_type").str.to_lowercase(),
                           "cart_value": f.amount("cart_value").round(2)},
        problems=lambda f: [pl.when(f.blank("customer_id")).then(pl.lit("missing customer_id")),
                            pl.when(f.blank("event_type")).then(pl.lit("missing event_type")),
                            f.amount_problem("cart_value", required=False)],
        output=["customer_id", "event_at", pl.col("_date").alias("event_date"), "event_type", "cart_value",
                "source_file", "source_line"],
        schema={"customer_id": pl.String, "event_at": pl.Datetime("us"), "event_date": pl.Date, "event_type": pl.String,
                "cart_value": pl.Float64, "source_file": pl.String, "source_line": pl.Int64},
    )
