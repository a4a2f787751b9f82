"""The `files` source: a directory of CSV or Parquet files, validated in polars (vectorised, no row loops).

Contract (README "Data contract"): `orders*.csv|parquet` (required), `marketing_spend*`, `cart_events*`.
Every row either lands in the valid frame or in the rejected frame with file, line and reason; nothing is dropped
silently. A file that cannot be read as a table raises `SourceFileError` naming it.
"""

from __future__ import annotations

import gzip
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from pipelines import contract
from pipelines.privacy import redact, redact_expr
from pipelines.run_window import Window
from pipelines.sources import formats, fx

ORDER_REQUIRED, ORDER_OPTIONAL = contract.ORDERS.required, contract.ORDERS.optional
SPEND_REQUIRED = contract.MARKETING_SPEND.required
CART_REQUIRED, CART_OPTIONAL = contract.CART_EVENTS.required, contract.CART_EVENTS.optional
# Every table's contract columns, by file-name prefix (columns.yml maps export columns to these).
CONTRACT = {name: table.input_columns for name, table in contract.SOURCE_TABLES.items()}

# History may start at any date (the CDNOW purchase log of this field is from 1997): only a date no shop's records
# hold is impossible: before 1900 (placeholders such as 0001-01-01) or after tomorrow (the future).
EARLIEST_PLAUSIBLE = datetime(1900, 1, 1)
# The reason of a row dated before an explicit CLV_START_DATE: a setting's choice, not bad input (the blocking
# reject-rate check leaves these rows out).
BEFORE_FIRST_PARTITION = "is before the first partition"

REJECTED_SCHEMA = contract.REJECTED_ORDERS.schema(loaded=True)
# The frame a load hands to the warehouse writer: the e-mail still in clear (the writer stores its keyed hash).
RAW_ORDERS_SCHEMA = contract.ORDERS.schema(loaded=True)
# Which version of an order wins, in the files and in the warehouse: the latest updated_at (when the export has
# one), then the later file in natural name order, then the later line.
VERSION_ORDER = ("updated_at", "source_sort_key", "source_line")
# The fields a rejected duplicate or superseded version is recorded with (never the e-mail).
RECORD_COLUMNS = [c for c in RAW_ORDERS_SCHEMA if c not in ("email", "source_sort_key", "fx_rate")]


class SourceFileError(ValueError):
    """A source file is not a usable table (unreadable, empty, or missing required columns).

    The message names the file and often quotes it (a header-less file's first row as its "columns"): e-mail
    addresses in it are redacted, since it reaches stderr, the run log and Dagster's run storage."""

    def __init__(self, message: str = "", *args) -> None:
        super().__init__(redact(str(message)), *args)


@dataclass
class LoadResult:
    valid: pl.DataFrame
    rejected: pl.DataFrame
    files: list[str]
    rows_read: int
    file_rows: dict[str, int] = field(default_factory=dict)  # data rows in each whole file (the reject-rate base)
    notes: list[str] = field(default_factory=list)  # what reading assumed or recognised (encoding, platform export)


def _file_data_rows(path: Path, frame: pl.DataFrame) -> int:
    """Data rows of the whole file: a Parquet read may have skipped the row groups outside the window."""
    if not isinstance(path, Path):  # a database relation (pipelines/sources/postgres.py) counts its own rows
        return path.data_rows(frame)
    with open(path, "rb") as handle:
        is_parquet = handle.read(4) == b"PAR1"
    return pl.scan_parquet(path).select(pl.len()).collect().item() if is_parquet else frame.height


SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".parquet")
SOURCE_PREFIXES = ("orders", "marketing_spend", "cart_events", "fx_rates")
# Files a source directory may hold that are ours, not the shop's (the synthetic landing's completion marker).
OWN_FILES = frozenset({"_complete"})


def natural_key(name: str) -> str:
    """Sort key for export file names: case-insensitive, numbers by value (`orders_9` before `orders_10`)."""
    return re.sub(r"\d+", lambda m: m.group().zfill(20), name.lower())


def _supported(name: str) -> bool:
    return name.lower().endswith(SUPPORTED_SUFFIXES)


def _mapping(raw_dir: Path) -> formats.Mapping:
    """The directory's columns.yml, validated (SourceFileError with one line naming the file and the key)."""
    try:
        return formats.load_mapping(raw_dir, CONTRACT)
    except formats.FormatError as exc:
        raise SourceFileError(str(exc)) from None


def _table_of(name: str, mapping: formats.Mapping) -> str | None:
    """The table a file feeds: the `table` of its columns.yml entry, else the prefix of its name."""
    return mapping.table_for(name) or next((t for t in SOURCE_PREFIXES if name.lower().startswith(t)), None)


def discover(raw_dir: Path, prefix: str) -> list[Path]:
    """The table's files: names starting with `prefix`, in any case, or matched by a columns.yml entry for the
    table, in natural name order."""
    if not raw_dir.is_dir():
        raise SourceFileError(f"{raw_dir}: raw directory does not exist or is not a directory")
    mapping = _mapping(raw_dir)
    found = [
        p for p in raw_dir.iterdir() if p.is_file() and _table_of(p.name, mapping) == prefix and _supported(p.name)
    ]
    return sorted(found, key=lambda p: natural_key(p.name))


def unloaded_files(raw_dir: Path) -> list[str]:
    """Every entry of the directory that no table reads, with why: the run names them instead of skipping them
    (redacted: a file may be named after the person who exported it)."""
    unloaded = []
    try:
        mapping = formats.load_mapping(raw_dir, CONTRACT)
    except formats.FormatError:  # the run names a bad mapping itself; here it only decides which files are read
        mapping = formats.NO_MAPPING
    for entry in sorted(raw_dir.iterdir(), key=lambda p: natural_key(p.name)):
        name = entry.name
        if name in OWN_FILES or (entry.is_file() and name.lower() in formats.MAPPING_FILE_NAMES):
            continue
        if entry.is_dir():
            unloaded.append(f"{name}/ (a directory: sub-directories are not read)")
        elif _table_of(name, mapping) is None:
            unloaded.append(f"{name} (the name does not start with {', '.join(SOURCE_PREFIXES)})")
        elif not _supported(name):
            unloaded.append(f"{name} (unsupported file type: save it as .csv or .parquet)")
    return [redact(entry) for entry in unloaded]


# ---------------------------------------------------------------- reading
def _sniff(path: Path) -> tuple[str, bytes | None, bool]:
    """What the file really is, whatever its name says: ('parquet' | 'csv', decoded UTF-8 bytes when the text had
    to be re-encoded (or the text inside a gzip file), whether a byte-order mark settled the text's encoding).
    Raises SourceFileError for formats that are not a CSV table."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    data = None
    if head.startswith(b"\x1f\x8b"):  # .csv.gz: look at the text inside
        try:
            data = gzip.decompress(path.read_bytes())
        except (OSError, EOFError) as exc:
            raise SourceFileError(f"{path}: a damaged gzip file ({exc})") from exc
        head = data[:4]
    if head == b"PAR1" and data is None:
        return "parquet", None, False
    if head.startswith(b"PK\x03\x04"):
        raise SourceFileError(
            f"{path}: is an Excel workbook or a zip archive, not CSV text: "
            "save it from Excel as 'CSV UTF-8' (or as Parquet)"
        )
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return "csv", (data or path.read_bytes()).decode("utf-16").encode("utf-8"), True
        except UnicodeDecodeError as exc:
            raise SourceFileError(
                f"{path}: starts like UTF-16 text but cannot be decoded as UTF-16 ({exc.reason})"
            ) from exc
    if head.startswith(b"\xef\xbb\xbf"):
        return "csv", (data or path.read_bytes())[3:], True
    bom_less = _bom_less_utf16(head)
    if bom_less:
        try:
            return "csv", (data or path.read_bytes()).decode(bom_less).encode("utf-8"), True
        except UnicodeDecodeError:
            pass  # not UTF-16 after all: read as text, which names the first bad byte
    return "csv", data, False


def _bom_less_utf16(head: bytes) -> str | None:
    """UTF-16 written without a byte-order mark, told by its NUL bytes: a header starts with ASCII letters, which
    UTF-16 stores as the letter and a NUL (little-endian: letter first). NUL is never in CSV text otherwise."""
    if len(head) == 4 and head[1] == head[3] == 0 and head[0] and head[2]:
        return "utf-16-le"
    if len(head) == 4 and head[0] == head[2] == 0 and head[1] and head[3]:
        return "utf-16-be"
    return None


def _not_utf8(path: Path, data: bytes | None) -> str:
    data = data if data is not None else path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return (
            f"{path}: line {line}: byte 0x{data[exc.start]:02x} is not UTF-8 text; save the file as 'CSV UTF-8' "
            "(Excel: File > Save As > CSV UTF-8), or declare its encoding in columns.yml (encoding: cp1250)"
        )
    return f"{path}: not a readable CSV table"


def _record_field_counts(source, header_fields: int, separator: str = ",") -> pl.DataFrame:
    """One row per CSV record (after the header): its first physical line, field count and blankness.

    A quoted field may span lines, so records are found from physical lines by quote parity: a line that starts
    inside an open quote continues the previous record. Separators inside quotes do not count."""
    lines = pl.read_csv(
        source,
        has_header=False,
        separator="\x1f",
        quote_char=None,
        new_columns=["_raw"],
        infer_schema=False,
        skip_rows=1,
    )
    raw = pl.col("_raw").fill_null("")
    lines = lines.with_columns(
        _physical=pl.int_range(pl.len(), dtype=pl.Int64) + 2, _quotes=raw.str.count_matches('"').fill_null(0)
    )
    open_before = ((pl.col("_quotes").cum_sum() - pl.col("_quotes")) % 2) == 1
    records = (
        lines.with_columns(_record=(~open_before).cast(pl.Int64).cum_sum() - 1)
        .group_by("_record", maintain_order=True)
        .agg(_line=pl.col("_physical").first(), _text=raw.str.join("\n"), _unbalanced=pl.col("_quotes").sum() % 2 == 1)
    )
    unbalanced = records.filter(pl.col("_unbalanced"))
    if unbalanced.height:
        raise SourceFileError(
            f'line {unbalanced["_line"][0]}: a quote (") opens a field that never closes; '
            "every line after it would be read as part of that field"
        )
    fields = pl.col("_text").str.replace_all(r'"[^"]*"', "").str.count_matches(separator, literal=True) + 1
    return records.select(
        "_line",
        _fields=fields.cast(pl.Int64),
        _expected=pl.lit(header_fields, pl.Int64),
        _blank=pl.col("_text").str.strip_chars() == "",
    )


class _NotUtf8(Exception):
    pass


def _parse_csv(path: Path, decoded: bytes | None, separator: str):
    """(string frame, its source) of CSV text; _NotUtf8 when polars finds bytes that are not UTF-8."""
    source = io.BytesIO(decoded) if decoded is not None else path
    try:
        return pl.read_csv(source, separator=separator, infer_schema=False, truncate_ragged_lines=True), source
    except Exception as exc:  # polars raises several exception types for non-tables
        if "utf-8" in str(exc).lower():
            raise _NotUtf8() from exc
        if decoded is not None:
            source.seek(0)
        try:  # an unbalanced quote is the usual cause: name its line
            _record_field_counts(source, 0, separator)
        except SourceFileError as quote_problem:
            raise SourceFileError(f"{path}: {quote_problem}") from None
        except Exception:
            pass
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceFileError(f"{path}: not a readable CSV table ({first_line})") from exc


def _read_csv(path: Path, read: formats.ReadInfo | None = None) -> pl.DataFrame:
    """All columns as strings (nothing is lost to type sniffing), with the physical line number of each row.

    `read` brings what columns.yml declares (delimiter, encoding) and takes back what was found: the delimiter,
    else the commonest of ',', ';' and tab in the header line; for text that is not UTF-8 (nor marked as UTF-16),
    the Windows code page it was read in, with a note for the run (formats.dialect.guess_legacy_encoding); bytes
    that no code page reads fail the file, naming their line."""
    read = read if read is not None else formats.ReadInfo()
    kind, decoded, marked = _sniff(path)
    if kind == "parquet":
        return _read_parquet(path)
    if read.encoding and not marked and read.encoding not in ("utf-8", "utf-8-sig"):
        try:
            decoded = formats.decode_declared(decoded if decoded is not None else path.read_bytes(), read.encoding)
        except formats.FormatError as exc:
            raise SourceFileError(f"{path}: {exc}") from None
        read.notes.append(formats.encoding_note(path.name, read.encoding, declared=True))
    if decoded is not None:
        head = decoded[:65536]
    else:
        with open(path, "rb") as handle:
            head = handle.read(65536)
    read.delimiter = read.delimiter or formats.detect_delimiter(head)
    try:
        frame, source = _parse_csv(path, decoded, read.delimiter)
    except _NotUtf8:
        raw = decoded if decoded is not None else path.read_bytes()
        guess = None if read.encoding else formats.guess_legacy_encoding(raw)
        if guess is None:
            raise SourceFileError(_not_utf8(path, decoded)) from None
        decoded, read.encoding = raw.decode(guess).encode("utf-8"), guess
        read.notes.append(formats.encoding_note(path.name, guess, declared=False))
        frame, source = _parse_csv(path, decoded, read.delimiter)
    if frame.width <= 1:
        raise SourceFileError(
            f"{path}: not a CSV table (no header with named columns; the delimiter must be a comma, "
            "semicolon or tab, or be declared in columns.yml)"
        )
    if frame.height == 0:  # a header and no rows: an empty day, not an error
        return frame.with_columns(_line=pl.lit(0, pl.Int64), _fields=pl.lit(0, pl.Int64), _expected=pl.lit(0, pl.Int64))
    if decoded is not None:
        source.seek(0)
    try:
        records = _record_field_counts(source, frame.width, read.delimiter)
    except SourceFileError as exc:
        raise SourceFileError(f"{path}: {exc}") from None
    if records.height != frame.height:
        raise SourceFileError(
            f"{path}: {records.height} records by line but {frame.height} parsed rows: "
            "the file mixes line endings or quoting in a way that cannot be checked line by line"
        )
    # Empty lines (often at the end of an export) carry no data: skipped, not rejected.
    return pl.concat([frame, records], how="horizontal").filter(~pl.col("_blank")).drop("_blank")


def _read_parquet(path: Path, date_col: str | None = None, keep: DateFilter | None = None) -> pl.DataFrame:
    try:
        lazy = pl.scan_parquet(path, row_index_name="_line", row_index_offset=1)
        dtype = lazy.collect_schema().get(date_col) if date_col else None
        if keep is not None and isinstance(dtype, (pl.Datetime, pl.Date)):
            # Typed dates let a daily run read only the window's row groups. Rows that would be rejected for their
            # date (null, impossible, before the first partition) are read too, so they are never silently skipped.
            lazy = lazy.filter(_date_filter(pl.col(date_col), dtype, keep))
        frame = lazy.collect()
    except Exception as exc:
        raise SourceFileError(f"{path}: not a readable Parquet table ({type(exc).__name__}: {exc})") from exc
    return frame.with_columns(
        pl.col("_line").cast(pl.Int64), _fields=pl.lit(0, pl.Int64), _expected=pl.lit(0, pl.Int64)
    )


@dataclass(frozen=True)
class DateFilter:
    start: date
    end: date
    first_partition: date
    latest: date


def _date_filter(col: pl.Expr, dtype: pl.DataType, keep: DateFilter) -> pl.Expr:
    """The rows of `keep`'s dates, as comparisons on the column itself: Parquet statistics can then skip row groups
    (a cast to Date hides them: 10 M orders in 92-day chunks read 0.57 s per chunk instead of 0.06 s)."""
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:  # the UTC date of a zoned timestamp
        day = col.dt.convert_time_zone("UTC").dt.date()
        return day.is_null() | day.is_between(keep.start, keep.end) | (day < keep.first_partition) | (day > keep.latest)

    def bound(day: date):
        return day if dtype == pl.Date else datetime.combine(day, datetime.min.time())

    def before(day: date) -> pl.Expr:  # dated before `day`
        return col < bound(day)

    one_day = timedelta(days=1)
    return (
        col.is_null()
        | (~before(keep.start) & before(keep.end + one_day))
        | before(keep.first_partition)
        | ~before(keep.latest + one_day)
    )


def read_table(
    path: Path,
    required: tuple[str, ...],
    date_col: str | None = None,
    keep: DateFilter | None = None,
    notes: list[str] | None = None,
) -> pl.DataFrame:
    """The file as contract columns (text, or Parquet's types), with `_line`, `_fields`, `_expected`, `_file` and
    `_sort_key`. Platform exports and files described by columns.yml are turned into contract columns here
    (formats.to_contract); what that assumed or recognised is appended to `notes`."""
    if not isinstance(path, Path):  # a database relation (pipelines/sources/postgres.py) reads itself
        return path.read_table(required, date_col, keep)
    table = next((t for t, columns in CONTRACT.items() if columns[: len(required)] == required), None)
    fmt = _mapping(path.parent).format_for(path.name) if table else formats.FileFormat()
    read = formats.ReadInfo(delimiter=fmt.delimiter, encoding=fmt.encoding)
    frame = _read_parquet(path, date_col, keep) if path.name.lower().endswith(".parquet") else _read_csv(path, read)
    if table:
        try:
            frame, found = formats.to_contract(frame, str(path), fmt, read, table, CONTRACT[table])
        except formats.FormatError as exc:
            raise SourceFileError(str(exc)) from None
        if notes is not None:
            notes.extend(n for n in read.notes + found if n not in notes)
    names = [c for c in frame.columns if not c.startswith("_")]
    normalised = [re.sub(r"_duplicated_\d+$", "", c).strip().lower() for c in names]
    repeated = sorted({n for n in normalised if normalised.count(n) > 1})
    if repeated:
        spelled = "; ".join(
            ", ".join(re.sub(r"_duplicated_\d+$", "", c) for c, n in zip(names, normalised) if n == r) for r in repeated
        )
        raise SourceFileError(
            f"{path}: the header names the same column more than once ({spelled}; column names "
            "are case-insensitive): keep one of them"
        )
    frame = frame.rename(dict(zip(names, normalised)))
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise SourceFileError(
            f"{path}: missing required column(s) {', '.join(missing)}; "
            f"found {', '.join(c for c in frame.columns if not c.startswith('_'))}"
        )
    return frame.with_columns(_file=pl.lit(path.name), _sort_key=pl.lit(natural_key(path.name)))


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
        pl.when(pl.col("_fields") < pl.col("_expected"))
        .then(pl.format("too few fields ({} of {})", "_fields", "_expected"))
        .when(pl.col("_fields") > pl.col("_expected"))
        .then(pl.format("too many fields ({} of {})", "_fields", "_expected"))
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
    decimal: frozenset[str] = frozenset()  # Parquet decimal columns

    def blank(self, col: str) -> pl.Expr:
        if col not in self.text:  # typed Parquet columns: only null is blank
            return pl.col(col).is_null()
        return pl.col(col).is_null() | (pl.col(col).str.strip_chars() == "")

    def amount(self, col: str) -> pl.Expr:
        """The amount in cents exactly: text (and Parquet decimals) is read as a decimal number and rounded half
        away from zero to the cent, so `12.345` is 12.35 and `1.005` is 1.01 (read as binary floats and rounded,
        they were 12.34 and 1.0). Text that is no plain decimal (`1e3`, `NaN`) is read as a float."""
        if col in self.decimal:
            return pl.col(col).round(2, mode="half_away_from_zero").cast(pl.Float64)
        if col not in self.text:
            return pl.col(col).cast(pl.Float64, strict=False)
        text = pl.col(col).str.strip_chars()
        cents = text.cast(formats.EXACT, strict=False).round(2, mode="half_away_from_zero").cast(pl.Float64)
        return pl.coalesce(cents, text.cast(pl.Float64, strict=False))

    def _value(self, col: str) -> pl.Expr:  # unrounded, for the checks: -0.004 is negative, not 0
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
        value = self._value(col)
        missing = pl.lit(f"missing {col}") if required else pl.lit(None, pl.String)
        return (
            pl.when(self.blank(col))
            .then(missing)
            .when(value.is_null())
            .then(pl.format(f"non-numeric {col} '{{}}'", pl.col(col).cast(pl.String)))
            .when(value.is_nan() | value.is_infinite())
            .then(pl.lit(f"non-finite {col}"))
            .when(value < 0)
            .then(pl.lit(f"negative {col}"))
            .otherwise(pl.lit(None, pl.String))
        )

    def date_problem(self, col: str, parsed: pl.Expr, latest: datetime, first_partition: date | None = None) -> pl.Expr:
        problem = (
            pl.when(self.blank(col))
            .then(pl.lit(f"missing {col}"))
            .when(parsed.is_null() & _day_first(pl.col(col)))
            .then(
                pl.format(
                    f"unparseable {col} '{{}}' (a day/month date: declare its date_format in columns.yml, e.g. "
                    "'%d.%m.%Y %H:%M' or '%m/%d/%Y')",
                    pl.col(col).cast(pl.String),
                )
            )
            .when(parsed.is_null())
            .then(pl.format(f"unparseable {col} '{{}}'", pl.col(col).cast(pl.String)))
            .when((parsed < EARLIEST_PLAUSIBLE) | (parsed > latest))
            .then(pl.format(f"impossible {col} '{{}}'", pl.col(col).cast(pl.String)))
        )
        if first_partition is not None:
            problem = problem.when(parsed.dt.date() < first_partition).then(
                pl.format(
                    f"{col} '{{}}' {BEFORE_FIRST_PARTITION} {first_partition} (set CLV_START_DATE earlier)",
                    pl.col(col).cast(pl.String),
                )
            )
        return problem.otherwise(pl.lit(None, pl.String))


def _day_first(text: pl.Expr) -> pl.Expr:
    """`03/04/2025` or `13.02.2025 10:00`: a date whose day/month order only the export's author knows."""
    return text.cast(pl.String).str.strip_chars().str.contains(r"^\d{1,2}[./-]\d{1,2}[./-]\d{2,4}\b").fill_null(False)


def _ensure_columns(frame: pl.DataFrame, columns: tuple[str, ...]) -> tuple[pl.DataFrame, _Fields]:
    """Adds absent optional columns (as null text); returns the frame and the parsers for its columns."""
    absent = [c for c in columns if c not in frame.columns]
    frame = frame.with_columns([pl.lit(None, pl.String).alias(c) for c in absent]) if absent else frame
    return frame, _Fields(
        frozenset(c for c, t in frame.schema.items() if t == pl.String),
        frozenset(c for c, t in frame.schema.items() if isinstance(t, pl.Decimal)),
    )


def _format_problem(frame: pl.DataFrame) -> pl.Expr:
    """A value the file's format (formats.to_contract) could not read without guessing, or a platform export's
    line item with the wrong number of fields: a reason like any other."""
    return pl.col("_format_problem") if "_format_problem" in frame.columns else pl.lit(None, pl.String)


# ---------------------------------------------------------------- orders
def _validate_orders_file(frame: pl.DataFrame, latest: datetime, first_partition: date) -> pl.DataFrame:
    # The rejected record keeps every field but the e-mail, which must not be stored in clear anywhere.
    data_cols = [c for c in frame.columns if not c.startswith("_") and c != "email"]
    frame, f = _ensure_columns(frame, ORDER_OPTIONAL)
    ordered_at = parse_timestamp("ordered_at", frame.schema["ordered_at"])
    refunded_at = parse_timestamp("refunded_at", frame.schema["refunded_at"])
    updated_at = parse_timestamp("updated_at", frame.schema["updated_at"])
    problems = [
        _field_count_problem(),
        _format_problem(frame),
        pl.when(f.blank("order_id")).then(pl.lit("missing order_id")),
        pl.when(f.blank("customer_id")).then(pl.lit("missing customer_id")),
        f.date_problem("ordered_at", ordered_at, latest, first_partition),
        f.amount_problem("net_revenue", required=True),
        f.amount_problem("discount_amount", required=False),
        f.amount_problem("refunded_amount", required=False),
        f.amount_problem("cost", required=False),
        pl.when(~f.blank("refunded_at") & refunded_at.is_null()).then(
            pl.format("unparseable refunded_at '{}'", pl.col("refunded_at").cast(pl.String))
        ),
        pl.when(refunded_at.dt.date() < ordered_at.dt.date()).then(
            pl.format(
                "refunded_at '{}' is before ordered_at '{}'",
                pl.col("refunded_at").cast(pl.String),
                pl.col("ordered_at").cast(pl.String),
            )
        ),
        pl.when(~f.blank("updated_at") & updated_at.is_null()).then(
            pl.format("unparseable updated_at '{}'", pl.col("updated_at").cast(pl.String))
        ),
        pl.when(f.amount("refunded_amount").fill_null(0) > f.amount("net_revenue") + 0.005).then(
            pl.lit("refunded_amount exceeds net_revenue")
        ),
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
        updated_at=updated_at,
        source_file=pl.col("_file"),
        source_sort_key=pl.col("_sort_key"),
        source_line=pl.col("_line"),
        _problem=pl.col("_problem"),
    )
    return parsed.join(records, left_on="source_line", right_on="_line", how="left")


def earliest_order_date(raw_dir: Path, today: date | None = None) -> date | None:
    """The first plausible order date in the directory's order files (None when there is none), read the way the
    load reads them; unreadable files are left to the load to report."""
    latest = _latest_plausible(today)
    first: list[datetime] = []
    for path in discover(raw_dir, "orders"):
        try:
            if path.name.lower().endswith(".parquet"):
                dates = pl.scan_parquet(path).select("ordered_at")
                dtype = dates.collect_schema()["ordered_at"]
                dates = dates.select(ordered_at=parse_timestamp("ordered_at", dtype))
            else:
                frame = read_table(path, ORDER_REQUIRED)
                dates = frame.lazy().select(ordered_at=parse_timestamp("ordered_at", frame.schema["ordered_at"]))
            # Parquet statistics answer a typed column's min without reading it.
            day = (
                dates.filter(pl.col("ordered_at").is_between(EARLIEST_PLAUSIBLE, latest))
                .select(pl.col("ordered_at").min())
                .collect()
                .item()
            )
        except (SourceFileError, pl.exceptions.PolarsError):
            continue
        if day is not None:
            first.append(day)
    return min(first).date() if first else None


def _latest_plausible(today: date | None) -> datetime:
    """Orders up to the end of tomorrow are plausible (sources in time zones ahead of UTC); later ones are not."""
    return datetime.combine((today or date.today()) + timedelta(days=2), datetime.min.time()) - timedelta(
        microseconds=1
    )


def load_orders(
    files: list[Path],
    window: Window,
    today: date | None = None,
    *,
    fx_rates: pl.DataFrame | None = None,
    reporting_currency: str | None = None,
) -> LoadResult:
    """Valid orders dated inside `window`, and every rejected row that belongs to it (or to no date at all).
    Orders in another currency than `reporting_currency` are converted with `fx_rates` (pipelines/sources/fx.py)."""
    latest = _latest_plausible(today)
    keep = DateFilter(window.start, window.end, window.first_partition, latest.date())
    files = sorted(files, key=lambda p: natural_key(p.name))
    parts, file_rows, notes = [], {}, []
    for path in files:
        frame = read_table(path, ORDER_REQUIRED, "ordered_at", keep, notes)
        file_rows[path.name] = _file_data_rows(path, frame)
        parts.append(_validate_orders_file(frame, latest, window.first_partition))
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
    content_cols = [
        c for c in RAW_ORDERS_SCHEMA if c not in ("order_date", "source_file", "source_sort_key", "source_line")
    ]
    rows = (
        rows.with_columns(
            refunded_amount=pl.when(late_refund).then(0.0).otherwise(pl.col("refunded_amount")),
            refunded_at=pl.when(late_refund).then(None).otherwise(pl.col("refunded_at")),
        )
        .with_columns(_row=pl.int_range(pl.len(), dtype=pl.UInt32))
        .collect()
    )
    rows = fx.convert(
        rows, fx_rates if fx_rates is not None else pl.DataFrame(schema=fx.RATES_SCHEMA), reporting_currency
    )
    invalid = rows.filter(pl.col("_problem").is_not_null())
    candidates = _repeat_candidates(rows, content_cols, key="order_id")
    duplicates = _exact_duplicates(candidates, content_cols)
    # Same order_id, different content: the latest version (VERSION_ORDER) supersedes the others. Only candidates
    # can share an order_id: looked for among them, not in a copy of every valid row (10 M orders: 1.6 s saved).
    not_duplicate = ~pl.col("_row").is_in(duplicates["_row"].implode())
    is_valid = pl.col("_problem").is_null() & not_duplicate
    latest = (
        candidates.filter(not_duplicate)
        .select("order_id", *VERSION_ORDER, "source_file", "_row")
        .filter(pl.col("order_id").is_duplicated())
        .sort(list(VERSION_ORDER), nulls_last=False, maintain_order=True)
    )
    old_rows = latest.filter(~pl.col("order_id").is_last_distinct())
    newest = latest.filter(pl.col("order_id").is_last_distinct()).select(
        "order_id", _latest_file="source_file", _latest_line="source_line"
    )
    superseded = (
        rows.filter(pl.col("_row").is_in(old_rows["_row"].implode()))
        .join(newest, on="order_id", how="left")
        .with_columns(
            _problem=pl.format("superseded by {}:{}", "_latest_file", "_latest_line"), _kind=pl.lit("superseded")
        )
    )

    rejected = pl.concat(
        [
            _as_rejected(invalid.with_columns(_kind=pl.lit("invalid")), "orders"),
            _as_rejected(duplicates, "orders"),
            _as_rejected(superseded, "orders"),
        ]
    )
    email = pl.col("email").cast(pl.String).str.strip_chars().str.to_lowercase()
    valid = (
        rows.lazy()
        .filter(is_valid & ~pl.col("_row").is_in(old_rows["_row"].implode()))
        .with_columns(
            order_date=order_date,
            email=pl.when(email == "").then(None).otherwise(email),
        )
        .select([pl.col(c).cast(t) for c, t in RAW_ORDERS_SCHEMA.items()])
        .collect()
    )
    return LoadResult(
        valid=valid,
        rejected=rejected,
        files=[p.name for p in files],
        rows_read=rows_read,
        file_rows=file_rows,
        notes=notes,
    )


def _repeat_candidates(rows: pl.DataFrame, content: list[str], key: str | None = None) -> pl.DataFrame:
    """The valid rows (`_problem` null) that may share their `key` (a content column that copies and versions
    share and other rows rarely do: order_id), else their whole `content`, with another valid row: the only rows
    that can be an exact duplicate or an older version. Found by a 64-bit hash of the key or content, so a
    collision only adds a candidate, which the exact comparisons that follow drop (10 M orders in 92-day chunks:
    0.6 s on the hashes of order_id, 1.6 s on the order_id strings themselves)."""
    valid = pl.col("_problem").is_null()
    # Invalid rows are nulled out rather than filtered away first: one filter copies only the candidates.
    repeated = pl.when(valid).then((pl.col(key) if key else pl.struct(content)).hash()).is_duplicated()
    return rows.filter(valid & repeated)


def _exact_duplicates(candidates: pl.DataFrame, content: list[str]) -> pl.DataFrame:
    """The `candidates` (_repeat_candidates) whose `content` repeats an earlier row's, as rejects of kind
    'duplicate' naming the first copy: exact duplicates count once. The rows carry `_row`, a row number."""
    first_copy = pl.struct(content).is_first_distinct()
    originals = candidates.filter(first_copy).select(*content, _first_file="source_file", _first_line="source_line")
    return (
        candidates.filter(~first_copy)
        .join(originals, on=content, how="left", nulls_equal=True)
        .with_columns(
            _problem=pl.format("exact duplicate of {}:{}", "_first_file", "_first_line"), _kind=pl.lit("duplicate")
        )
    )


def _as_rejected(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    date_col = "ordered_at" if "ordered_at" in frame.columns else "event_at"
    event_date = pl.col(date_col).dt.date() if date_col in frame.columns else pl.lit(None, pl.Date)
    return frame.select(
        source_table=pl.lit(table),
        source_file=pl.col("source_file"),
        source_line=pl.col("source_line"),
        kind=pl.col("_kind"),
        reason=redact_expr(pl.col("_problem")),
        # Duplicates and superseded versions were valid rows: their record is rebuilt from the parsed fields.
        record=redact_expr(pl.coalesce(pl.col("_record"), _record([c for c in RECORD_COLUMNS if c in frame.columns]))),
        event_date=event_date,
    ).cast(REJECTED_SCHEMA)


# ---------------------------------------------------------------- marketing spend and cart events
def _load_events(
    files: list[Path],
    window: Window,
    today: date | None,
    *,
    table: str,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    date_col: str,
    columns,
    problems,
    output: list,
    schema: dict,
    table_problems=None,
) -> LoadResult:
    """The smaller tables (spend, cart events): validate each file, keep the window's rows, reject the rest.
    `columns` and `problems` take the file's parsers (_Fields), which depend on which of its columns are text;
    `table_problems` takes the parsed rows of every file (checks across files, such as one currency). Exact
    duplicate rows are loaded once, the copies recorded with kind 'duplicate', as for orders."""
    latest = _latest_plausible(today)
    keep = DateFilter(window.start, window.end, window.first_partition, latest.date())
    parts, file_rows, notes = [], {}, []
    for path in sorted(files, key=lambda p: natural_key(p.name)):
        frame, f = _ensure_columns(read_table(path, required, date_col, keep, notes), optional)
        file_rows[path.name] = _file_data_rows(path, frame)
        data_cols = [c for c in frame.columns if not c.startswith("_")]
        event_at = parse_timestamp(date_col, frame.schema[date_col])
        frame = frame.with_columns(
            _problem=_first_problem(
                [
                    _field_count_problem(),
                    _format_problem(frame),
                    f.date_problem(date_col, event_at, latest, window.first_partition),
                    *problems(f),
                ]
            )
        )
        records = frame.filter(pl.col("_problem").is_not_null()).select("_line", _record=_record(data_cols))
        parts.append(
            frame.select(
                event_at=event_at,
                **columns(f),
                source_file=pl.col("_file"),
                source_line=pl.col("_line"),
                _problem="_problem",
            ).join(records, left_on="source_line", right_on="_line", how="left")
        )
    if not parts:
        return LoadResult(pl.DataFrame(schema=schema), pl.DataFrame(schema=REJECTED_SCHEMA), [], 0)
    rows = pl.concat(parts, how="vertical_relaxed")
    if table_problems is not None:
        rows = rows.with_columns(_problem=pl.coalesce("_problem", table_problems(rows)))
    rows = rows.filter(
        pl.col("event_at").dt.date().is_between(window.start, window.end) | pl.col("_problem").is_not_null()
    )
    content = [c for c in rows.columns if not c.startswith("_") and c not in ("source_file", "source_line")]
    rows = rows.with_columns(_row=pl.int_range(pl.len(), dtype=pl.UInt32))
    duplicates = _exact_duplicates(_repeat_candidates(rows, content), content)
    rejected = pl.concat(
        [
            _as_rejected(rows.filter(pl.col("_problem").is_not_null()).with_columns(_kind=pl.lit("invalid")), table),
            _as_rejected(duplicates, table),
        ]
    )
    valid = rows.filter(
        pl.col("_problem").is_null() & ~pl.col("_row").is_in(duplicates["_row"].implode())
    ).with_columns(_date=pl.col("event_at").dt.date())
    return LoadResult(
        valid.select(output).cast(schema),
        rejected,
        [p.name for p in files],
        sum(p.height for p in parts),
        file_rows,
        notes,
    )


def load_marketing_spend(
    files: list[Path], window: Window, today: date | None = None, shop_currency: str | None = None
) -> LoadResult:
    """Spend in another currency than the shop's (the orders' most common currency, else the spend's own) is
    rejected: summing EUR into PLN would be wrong, and fx rates are not supported yet."""

    def one_currency(rows: pl.DataFrame) -> pl.Expr:
        spend_currencies = rows["currency"].drop_nulls()
        reference = shop_currency or (spend_currencies.mode().sort()[0] if spend_currencies.len() else None)
        if reference is None:
            return pl.lit(None, pl.String)
        return pl.when(pl.col("currency").is_not_null() & (pl.col("currency") != reference)).then(
            pl.format(f"currency '{{}}' is not the shop's currency {reference} (convert the spend first)", "currency")
        )

    return _load_events(
        files,
        window,
        today,
        table="marketing_spend",
        required=SPEND_REQUIRED,
        optional=contract.MARKETING_SPEND.optional,
        date_col="date",
        columns=lambda f: {
            "channel": f.optional_text("channel").str.to_lowercase(),
            "spend": f.amount("spend").round(2),
            "currency": f.optional_text("currency").str.to_uppercase(),
        },
        problems=lambda f: [
            pl.when(f.blank("channel")).then(pl.lit("missing channel")),
            f.amount_problem("spend", required=True),
        ],
        table_problems=one_currency,
        output=[pl.col("_date").alias("date"), "channel", "spend", "source_file", "source_line"],
        schema={
            "date": pl.Date,
            "channel": pl.String,
            "spend": pl.Float64,
            "source_file": pl.String,
            "source_line": pl.Int64,
        },
    )


CART_EVENT_TYPES = ("add_to_cart", "checkout_started")


def load_cart_events(files: list[Path], window: Window, today: date | None = None) -> LoadResult:
    event_type = pl.col("event_type").cast(pl.String).str.strip_chars().str.to_lowercase()
    return _load_events(
        files,
        window,
        today,
        table="cart_events",
        required=CART_REQUIRED,
        optional=CART_OPTIONAL,
        date_col="event_at",
        columns=lambda f: {
            "customer_id": pl.col("customer_id").cast(pl.String).str.strip_chars(),
            "event_type": f.optional_text("event_type").str.to_lowercase(),
            "cart_value": f.amount("cart_value").round(2),
        },
        problems=lambda f: [
            pl.when(f.blank("customer_id")).then(pl.lit("missing customer_id")),
            pl.when(f.blank("event_type")).then(pl.lit("missing event_type")),
            pl.when(~event_type.is_in(CART_EVENT_TYPES)).then(
                pl.format(f"unknown event_type '{{}}' (expected {' or '.join(CART_EVENT_TYPES)})", event_type)
            ),
            f.amount_problem("cart_value", required=False),
        ],
        output=[
            "customer_id",
            "event_at",
            pl.col("_date").alias("event_date"),
            "event_type",
            "cart_value",
            "source_file",
            "source_line",
        ],
        schema={
            "customer_id": pl.String,
            "event_at": pl.Datetime("us"),
            "event_date": pl.Date,
            "event_type": pl.String,
            "cart_value": pl.Float64,
            "source_file": pl.String,
            "source_line": pl.Int64,
        },
    )
