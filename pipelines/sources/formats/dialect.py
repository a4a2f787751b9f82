"""How a CSV file is written: its delimiter, text encoding, number format and date format.

Spreadsheets write CSV the way the computer's locale says: Excel in Poland or Germany separates fields with ';'
and writes decimal commas (`12,50`), saves "ANSI" text in the Windows code page (Windows-1250 for Central
European letters, Windows-1252 in Western Europe) and dates day first. Nothing here guesses silently: a value that
could be read two ways is rejected with a reason that says what to declare in columns.yml, and every assumption
(an encoding, a decimal comma) is said in the run's notes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import polars as pl

DELIMITERS = (",", ";", "\t")
DELIMITER_NAMES = {",": "','", ";": "';'", "\t": "tab"}
EXACT = pl.Decimal(38, 6)  # amounts as exact decimals: sub-cent digits are kept until the contract's rounding
LEGACY_ENCODINGS = {
    "cp1250": "Windows-1250 (Central European)",
    "cp1252": "Windows-1252 (Western European, a superset of Latin-1)",
}


class FormatError(ValueError):
    """A mapping file or an export that cannot be read as declared (one line, naming the file)."""


@dataclass
class ReadInfo:
    """What reading one CSV file needs (from columns.yml) and found (delimiter, encoding, notes for the run)."""

    delimiter: str | None = None
    encoding: str | None = None
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- delimiter
def detect_delimiter(head: bytes) -> str:
    """The delimiter of the header line: the most frequent of ',', ';' and tab outside quotes (',' on a tie)."""
    line = head.split(b"\n", 1)[0]
    line = re.sub(rb'"[^"]*"', b"", line)
    counts = {d: line.count(d.encode()) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])  # max keeps the first of equals: ',' wins ties
    return best if counts[best] else ","


# ---------------------------------------------------------------- encodings
def _byte_counts(data: bytes) -> list[int]:
    try:
        import numpy as np

        return np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256).tolist()
    except ImportError:  # pragma: no cover - numpy comes with scipy
        counts = [0] * 256
        for b in data:
            counts[b] += 1
        return counts


def guess_legacy_encoding(data: bytes) -> str | None:
    """'cp1250' or 'cp1252' for text that is not UTF-8; None when neither reads every byte.

    Both code pages agree on ASCII and on many letters (ä ö ü ß é ó); they differ on the rest. For each differing
    byte the code page that reads it as a letter scores its occurrences: Polish text in Windows-1250 reads `ł ą ż ś`
    where Windows-1252 reads `³ ¹ ¿` and control codes, so it wins clearly; French `è à` read as `č ŕ` are letters
    in both, and a tie is read as Windows-1252. The run's notes say which was assumed."""
    counts = _byte_counts(data)
    scores: dict[str, int] = {}
    for encoding in ("cp1250", "cp1252"):
        score = 0
        for byte in range(0x80, 0x100):
            if not counts[byte]:
                continue
            try:
                char = bytes([byte]).decode(encoding)
            except UnicodeDecodeError:
                break
            other = bytes([byte]).decode("cp1252" if encoding == "cp1250" else "cp1250", errors="replace")
            if char != other and char.isalpha():
                score += counts[byte]
        else:
            scores[encoding] = score
    if not scores:
        return None
    if "cp1250" in scores and scores["cp1250"] > scores.get("cp1252", -1):
        return "cp1250"
    return "cp1252" if "cp1252" in scores else "cp1250"


def encoding_note(file_name: str, encoding: str, declared: bool) -> str:
    if declared:
        return f"{file_name}: read as {encoding}, as columns.yml declares"
    name = LEGACY_ENCODINGS.get(encoding, encoding)
    return (
        f"{file_name}: not UTF-8 text; read as {name}. If letters look wrong, declare the file's encoding in "
        "columns.yml (encoding: cp1250, cp1252, latin-1, ...) or save it as 'CSV UTF-8'"
    )


def decode_declared(data: bytes, encoding: str) -> bytes:
    """UTF-8 bytes of `data` read in the declared encoding; FormatError naming the line that does not decode."""
    try:
        return data.decode(encoding).encode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FormatError(
            f"line {line}: byte 0x{data[exc.start]:02x} cannot be read as {encoding}, the encoding columns.yml declares"
        ) from None


# ---------------------------------------------------------------- numbers
def amount_text(expr: pl.Expr, name: str, decimal: str, thousands: str | None) -> tuple[pl.Expr, pl.Expr]:
    """(`expr` as a plain number text such as `1234.56`, a reason when it cannot be read without guessing).

    With the default format (decimal point, no thousands separator) the text is left exactly as it is. Otherwise
    a value written in the file's format is rewritten; a value that is a number only in another format (`12.50`
    or `1.234,56` in a decimal-comma file without a declared thousands separator) is rejected with a reason, never
    read as something else; anything else (`abc`) is left for the usual 'non-numeric' reason."""
    none = pl.lit(None, pl.String)
    if decimal == "." and not thousands:
        return expr, none
    text = expr.cast(pl.String).str.strip_chars()
    if thousands == " ":  # Excel writes a no-break space (or a narrow one) between thousands
        text = text.str.replace_all("[\u00a0\u202f]", " ")
    d = re.escape(decimal)
    if thousands:
        t = re.escape(thousands)
        pattern = rf"^[+-]?(\d{{1,3}}({t}\d{{3}})+|\d+)({d}\d+)?$"
    else:
        pattern = rf"^[+-]?\d+({d}\d+)?$"
    plain = text
    if thousands:
        plain = plain.str.replace_all(thousands, "", literal=True)
    plain = plain.str.replace(decimal, ".", literal=True)
    ok = text.str.contains(pattern)
    looks_numeric = text.str.contains(r"^[+-]?[\d.,' \u00a0]*\d[\d.,' \u00a0]*$")
    separator = "decimal comma" if decimal == "," else "decimal point"
    declared = f"thousands separator '{thousands}'" if thousands else "no thousands separator"
    problem = pl.when(~ok & looks_numeric).then(
        pl.format(
            f"{name} '{{}}' is not a number with {separator} and {declared}: declare decimal_separator and "
            "thousands_separator in columns.yml",
            text,
        )
    )
    return pl.when(ok).then(plain).otherwise(expr.cast(pl.String)), problem.otherwise(none)


# ---------------------------------------------------------------- dates
OFFSET_AFTER_SPACE = r"^(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s+([+-]\d{2}:?\d{2})$"
_ISO_NAIVE = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d")
_OUT = "%Y-%m-%d %H:%M:%S%.f"


def join_offset(expr: pl.Expr) -> pl.Expr:
    """`2025-03-04 10:15:00 +0100` (Shopify) as `2025-03-04 10:15:00+0100`, which the contract's parser reads."""
    return expr.str.strip_chars().str.replace(OFFSET_AFTER_SPACE, "${1}${2}")


def _has_zone(fmt: str) -> bool:
    return any(z in fmt for z in ("%z", "%:z", "%#z"))


def date_text(
    expr: pl.Expr, name: str, date_format: str | None, timezone: str | None, source: str = "columns.yml"
) -> tuple[pl.Expr, pl.Expr]:
    """(`expr` rewritten as an ISO timestamp text, a reason when it does not match the declared `date_format`).

    Without a declared format or time zone the text is left as it is (the contract's ISO parser reads it). Local
    times of a declared `timezone` are converted to UTC (an hour that a clock change skips is rejected, a repeated
    one is read as its first occurrence); values with an explicit offset keep it, and a date without a time stays
    that day. A value that does not match the declared format is left as written, with the reason."""
    none = pl.lit(None, pl.String)
    if not date_format and not timezone:
        return expr, none
    text = expr.cast(pl.String).str.strip_chars()
    blank = text.is_null() | (text == "")
    if date_format:
        zoned_format = _has_zone(date_format)
        zone = {"time_zone": "UTC"} if zoned_format else {"time_unit": "us"}
        parsed = text.str.to_datetime(date_format, strict=False, **zone)
        if zoned_format:
            parsed = parsed.dt.replace_time_zone(None)
        absolute = pl.lit(zoned_format)
    else:
        iso = text.str.replace("T", " ")
        parsed = pl.coalesce([iso.str.to_datetime(f, strict=False, time_unit="us") for f in _ISO_NAIVE])
        absolute = iso.str.contains(r"(Z|[+-]\d{2}:?\d{2})$").fill_null(False)  # the contract's parser reads those
    converted, skipped = parsed, pl.lit(False)
    if timezone:
        timed = text.str.contains(r"\d:\d{2}").fill_null(False) & ~absolute
        local = parsed.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
        utc = local.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        converted = pl.when(timed).then(utc).otherwise(parsed)
        skipped = timed & parsed.is_not_null() & utc.is_null()
    keep_text = absolute & pl.lit(not date_format)  # an ISO value with an offset: left to the contract's parser
    rewritten = (
        pl.when(keep_text).then(text).when(converted.is_not_null()).then(converted.dt.strftime(_OUT)).otherwise(text)
    )
    problem = pl.when(pl.lit(False)).then(none)
    if date_format:
        problem = problem.when(~blank & parsed.is_null()).then(
            pl.format(f"{name} '{{}}' does not match the date_format '{date_format}' of {source}", text)
        )
    if timezone:
        problem = problem.when(skipped).then(
            pl.format(f"{name} '{{}}' is a local time that the clock change in {timezone} skips", text)
        )
    return rewritten, problem.otherwise(none)


def map_values(expr: pl.Expr, values: dict[str, str] | None) -> pl.Expr:
    """Text values renamed by a case-insensitive lookup (columns.yml `status_values`); others unchanged."""
    if not values:
        return expr
    lowered = {k.strip().lower(): v for k, v in values.items()}
    key = expr.cast(pl.String).str.strip_chars().str.to_lowercase()
    return key.replace_strict(lowered, default=expr.cast(pl.String), return_dtype=pl.String)
