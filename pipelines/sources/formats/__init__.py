"""Exports that are not written in the contract's format, read without the user changing them (issue 13).

- Platform exports are recognised by their header (`PLATFORMS`: header signature -> adapter): Shopify's "Export
  orders" CSV and WooCommerce's order export become contract columns, one row per order.
- Any other export loads through a mapping file in the raw directory, `columns.yml` (mapping.py): source column ->
  contract column, delimiter, decimal and thousands separators, encoding, date format, time zone, status values.
- Spreadsheet CSV (dialect.py): ';' or tab delimiters, decimal commas, Windows code pages, declared date formats.

The hook is `to_contract`, called by files.read_table on the raw string frame of each file: its result has the
contract's column names and keeps `_line` (the first physical line of each row, of an order's first line item),
`_fields` and `_expected`, so that field-count problems are still found; problems found while reading a value in
the file's format are in `_format_problem`, which the validation reports like any other reason.
"""

from __future__ import annotations

import os

import polars as pl

from pipelines.sources.formats import shopify, woocommerce
from pipelines.sources.formats.dialect import (
    DELIMITER_NAMES,
    EXACT,
    FormatError,
    ReadInfo,
    amount_text,
    date_text,
    decode_declared,
    detect_delimiter,
    encoding_note,
    guess_legacy_encoding,
    map_values,
)
from pipelines.sources.formats.mapping import (
    MAPPING_FILE_NAMES,
    NO_MAPPING,
    FileFormat,
    Mapping,
    load_mapping,
    mapping_file,
)
from pipelines.sources.formats.platform import Export, Platform

PLATFORMS: tuple[Platform, ...] = (shopify.PLATFORM, woocommerce.PLATFORM)

# The contract's amount and date columns (pipelines/sources/files.py): read in the file's number and date format.
AMOUNT_COLUMNS = ("net_revenue", "discount_amount", "refunded_amount", "cost", "spend", "cart_value")
DATE_COLUMNS = ("ordered_at", "refunded_at", "updated_at", "date", "event_at")

__all__ = [
    "EXACT",
    "FormatError",
    "ReadInfo",
    "FileFormat",
    "Mapping",
    "NO_MAPPING",
    "MAPPING_FILE_NAMES",
    "PLATFORMS",
    "load_mapping",
    "mapping_file",
    "recognise",
    "to_contract",
    "detect_delimiter",
    "decode_declared",
    "guess_legacy_encoding",
    "encoding_note",
]


def recognise(columns: list[str]) -> Platform | None:
    """The platform whose header signature the file's header contains (names compared trimmed, in lower case)."""
    names = {c.strip().lower() for c in columns if not c.startswith("_")}
    return next((p for p in PLATFORMS if p.signature <= names), None)


def to_contract(
    frame: pl.DataFrame, file_name: str, fmt: FileFormat, read: ReadInfo, table: str, table_columns: tuple[str, ...]
) -> tuple[pl.DataFrame, list[str]]:
    """The file's frame with contract columns, and notes for the run (what was recognised or assumed)."""
    notes, name = [], os.path.basename(file_name)
    decimal = fmt.decimal or ("," if read.delimiter == ";" else ".")
    if read.delimiter == ";" and fmt.decimal is None:
        notes.append(
            f"{name}: {DELIMITER_NAMES[';']}-separated, so amounts are read with a decimal comma "
            "(12,50); declare decimal_separator: '.' in columns.yml if they use a point"
        )
    mapped = fmt.columns_for(table_columns)
    if mapped:
        frame = _rename(frame, mapped, table_columns, file_name, fmt)
        notes.append(f"{name}: columns renamed as {fmt.source} says")
    elif table == "orders" and (platform := recognise(frame.columns)) is not None:
        contract, platform_notes = platform.adapt(Export(frame, fmt, decimal, name))
        return contract, notes + platform_notes
    return _normalise(frame, fmt, decimal), notes


def _rename(
    frame: pl.DataFrame,
    mapped: dict[str, tuple[str, ...]],
    table_columns: tuple[str, ...],
    file_name: str,
    fmt: FileFormat,
) -> pl.DataFrame:
    """Only the mapped columns (and those already named as contract columns) are kept: whatever else the export
    holds (names, addresses, phone numbers) is never read."""
    names = {c.strip().lower(): c for c in frame.columns if not c.startswith("_")}
    missing = [s for s in mapped if s.strip().lower() not in names]
    if missing:
        spelled = ", ".join(f"'{s}' (to {', '.join(mapped[s])})" for s in missing)
        raise FormatError(
            f"{file_name}: {fmt.source} maps {spelled} but the file has no such column; its columns: "
            f"{', '.join(names.values())}"
        )
    targets = {t: s for s, ts in mapped.items() for t in ts}
    selected = []
    for name, column in names.items():
        if name in table_columns and name not in {s.strip().lower() for s in mapped}:
            if name in targets:
                raise FormatError(
                    f"{file_name}: {fmt.source} maps '{targets[name]}' to {name}, but the file also has "
                    f"a column '{column}': map only one of them"
                )
            selected.append(pl.col(column).alias(name))
    for source, contract_names in mapped.items():
        selected += [pl.col(names[source.strip().lower()]).alias(t) for t in contract_names]
    return frame.select(*selected, *[c for c in frame.columns if c.startswith("_")])


def _normalise(frame: pl.DataFrame, fmt: FileFormat, decimal: str) -> pl.DataFrame:
    """Amounts, dates and status values of contract columns read in the file's format; unchanged without one."""
    changes, problems = {}, []
    for column, dtype in frame.schema.items():
        name = column.strip().lower()
        if dtype != pl.String:
            continue
        if name in AMOUNT_COLUMNS:
            text, problem = amount_text(pl.col(column), name, decimal, fmt.thousands)
        elif name in DATE_COLUMNS:
            text, problem = date_text(pl.col(column), name, fmt.date_format, fmt.timezone, fmt.source)
        elif name == "status" and fmt.status_values:
            text, problem = map_values(pl.col(column), dict(fmt.status_values)), None
        else:
            continue
        if not text.meta.eq(pl.col(column)):
            changes[column] = text
        if problem is not None and not problem.meta.eq(pl.lit(None, pl.String)):
            problems.append(problem)
    if not changes and not problems:
        return frame
    if problems:
        existing = [pl.col("_format_problem")] if "_format_problem" in frame.columns else []
        frame = frame.with_columns(_format_problem=pl.coalesce(existing + problems))
    return frame.with_columns(**changes)
