"""columns.yml: how to read exports that are not in the contract's format, without changing them.

A mapping file in the raw directory names, for all files or per file-name pattern, which source column is which
contract column and how the file is written (delimiter, decimal and thousands separators, encoding, date format,
time zone, status values). It is validated as a whole before anything is read: a mistake fails the run with one
line naming the mapping file and the key. docs/bring_your_own_data.md is the reference.
"""

from __future__ import annotations

import codecs
import fnmatch
import zoneinfo
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import yaml

from pipelines.sources.formats.dialect import FormatError

MAPPING_FILE_NAMES = ("columns.yml", "columns.yaml")
TABLES = ("orders", "marketing_spend", "cart_events")
OPTION_KEYS = (
    "columns",
    "delimiter",
    "decimal_separator",
    "thousands_separator",
    "encoding",
    "date_format",
    "timezone",
    "status_values",
)
DELIMITER_WORDS = {"comma": ",", "semicolon": ";", "tab": "\t", "\\t": "\t"}
THOUSANDS = (".", ",", " ", "'")


@dataclass(frozen=True)
class FileFormat:
    """How one file is read: the mapping's settings for it (all None: the contract's own format)."""

    source: str = "columns.yml"  # where the settings come from, for messages
    columns: tuple[tuple[str, tuple[str, ...]], ...] = ()  # source column -> contract column(s), in file order
    delimiter: str | None = None
    decimal: str | None = None
    thousands: str | None = None
    encoding: str | None = None
    date_format: str | None = None
    timezone: str | None = None
    status_values: tuple[tuple[str, str], ...] = ()

    def columns_for(self, table_columns: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
        """The mapped source columns whose targets belong to this table, with those targets."""
        found = {}
        for source, targets in self.columns:
            mine = tuple(t for t in targets if t in table_columns)
            if mine:
                found[source] = mine
        return found


@dataclass(frozen=True)
class FileRule:
    pattern: str
    table: str | None
    format: FileFormat


@dataclass(frozen=True)
class Mapping:
    path: Path | None = None
    defaults: FileFormat = field(default_factory=FileFormat)
    rules: tuple[FileRule, ...] = ()

    def rule_for(self, file_name: str) -> FileRule | None:
        return next((r for r in self.rules if fnmatch.fnmatch(file_name.lower(), r.pattern.lower())), None)

    def format_for(self, file_name: str) -> FileFormat:
        rule = self.rule_for(file_name)
        return rule.format if rule is not None else self.defaults

    def table_for(self, file_name: str) -> str | None:
        """The table a file belongs to by the mapping (`table:` of its entry), None when the mapping does not say."""
        rule = self.rule_for(file_name)
        return rule.table if rule is not None else None


NO_MAPPING = Mapping()


def mapping_file(directory: Path) -> Path | None:
    found = (
        sorted(p for p in directory.iterdir() if p.is_file() and p.name.lower() in MAPPING_FILE_NAMES)
        if directory.is_dir()
        else []
    )
    if len(found) > 1:
        raise FormatError(f"{directory}: two mapping files ({', '.join(p.name for p in found)}): keep one")
    return found[0] if found else None


def load_mapping(directory: Path, contract: dict[str, tuple[str, ...]]) -> Mapping:
    """The directory's mapping, validated; NO_MAPPING without a mapping file. FormatError names file and key."""
    path = mapping_file(directory)
    if path is None:
        return NO_MAPPING
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FormatError(f"{path}: not valid YAML ({where}{problem})") from None
    except UnicodeDecodeError:
        raise FormatError(f"{path}: not UTF-8 text (save the mapping file as UTF-8)") from None
    if document is None:
        return Mapping(path)
    checker = _Checker(path, contract)
    if not isinstance(document, dict):
        checker.fail(
            "", f"must be a mapping of settings ({', '.join(OPTION_KEYS)}, files), not a {type(document).__name__}"
        )
    checker.keys("", document, (*OPTION_KEYS, "files"))
    defaults = checker.format("", document)
    rules = []
    files = document.get("files") or []
    if not isinstance(files, list):
        checker.fail("files", "must be a list of entries, each with a 'match' file name pattern")
    for i, entry in enumerate(files, start=1):
        where = f"files[{i}]"
        if not isinstance(entry, dict):
            checker.fail(where, "must be a mapping with 'match' and the settings for those files")
        checker.keys(where, entry, (*OPTION_KEYS, "match", "table"))
        pattern = entry.get("match")
        if not isinstance(pattern, str) or not pattern.strip():
            checker.fail(where, "'match' (a file name pattern, e.g. 'zamowienia_*.csv') is missing")
        table = entry.get("table")
        if table is not None and table not in TABLES:
            checker.fail(f"{where}.table", f"'{table}' is not one of {', '.join(TABLES)}")
        # A file entry's settings replace the top-level ones key by key (its columns replace theirs as a whole).
        own = checker.format(where, entry)
        merged = replace(
            defaults,
            **{k: v for k, v in vars(own).items() if k != "source" and v not in (None, ())},
            source=f"{path.name} ({where})",
        )
        rules.append(FileRule(pattern.strip(), table, merged))
    return Mapping(path, replace(defaults, source=path.name), tuple(rules))


class _Checker:
    def __init__(self, path: Path, contract: dict[str, tuple[str, ...]]):
        self.path = path
        self.contract = contract
        self.all_columns = {c for columns in contract.values() for c in columns}

    def fail(self, where: str, problem: str):
        raise FormatError(f"{self.path}: {where + ': ' if where else ''}{problem}")

    def keys(self, where: str, entry: dict, known: tuple[str, ...]) -> None:
        for key in entry:
            if key not in known:
                self.fail(where, f"unknown key '{key}' (known: {', '.join(known)})")

    def text(self, where: str, value) -> str | None:
        if value is None:
            return None
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            self.fail(where, f"must be text, not {type(value).__name__}")
        return str(value)

    def format(self, prefix: str, entry: dict) -> FileFormat:
        def at(key: str) -> str:
            return f"{prefix}.{key}" if prefix else key

        delimiter = self.text(at("delimiter"), entry.get("delimiter"))
        if delimiter is not None:
            delimiter = DELIMITER_WORDS.get(delimiter.lower(), delimiter)
            if len(delimiter) != 1 or delimiter in '"\r\n':
                self.fail(at("delimiter"), f"'{delimiter}' must be one character (',', ';', tab, ...)")
        decimal = self.text(at("decimal_separator"), entry.get("decimal_separator"))
        if decimal is not None and decimal not in (".", ","):
            self.fail(at("decimal_separator"), f"'{decimal}' must be '.' or ','")
        thousands = self.text(at("thousands_separator"), entry.get("thousands_separator"))
        if thousands == "":
            thousands = None
        if thousands is not None:
            if thousands not in THOUSANDS:
                self.fail(at("thousands_separator"), f"'{thousands}' must be one of '.', ',', ' ', \"'\" (or empty)")
            if thousands == (decimal or "."):
                self.fail(at("thousands_separator"), f"'{thousands}' is the decimal separator too")
        encoding = self.text(at("encoding"), entry.get("encoding"))
        if encoding is not None:
            try:
                encoding = codecs.lookup(encoding).name
            except LookupError:
                self.fail(
                    at("encoding"),
                    f"'{encoding}' is not an encoding Python knows (e.g. utf-8, cp1250, cp1252, latin-1, utf-16)",
                )
        date_format = self.text(at("date_format"), entry.get("date_format"))
        if date_format is not None:
            self.date_format(at("date_format"), date_format)
        tz = self.text(at("timezone"), entry.get("timezone"))
        if tz is not None:
            try:
                zoneinfo.ZoneInfo(tz)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                self.fail(at("timezone"), f"'{tz}' is not a time zone (e.g. Europe/Warsaw, UTC)")
        return FileFormat(
            columns=self.columns(at("columns"), entry.get("columns")),
            delimiter=delimiter,
            decimal=decimal,
            thousands=thousands,
            encoding=encoding,
            date_format=date_format,
            timezone=tz,
            status_values=self.values(at("status_values"), entry.get("status_values")),
        )

    def date_format(self, where: str, fmt: str) -> None:
        probe = datetime(2031, 12, 28, 21, 43, 56, tzinfo=timezone(timedelta(hours=2)))
        try:
            text = probe.strftime(fmt)
            back = datetime.strptime(text, fmt)
        except ValueError:
            self.fail(where, f"'{fmt}' is not a valid date format (use %d %m %Y %H %M %S, e.g. '%d.%m.%Y %H:%M')")
        if (back.year, back.month, back.day) != (2031, 12, 28):
            self.fail(where, f"'{fmt}' does not read day, month and year (%d, %m and %Y or %y)")
        zoned = "%z" in fmt
        parsed = pl.Series([text]).str.to_datetime(fmt, strict=False, **({"time_zone": "UTC"} if zoned else {}))
        if parsed.is_null().all():
            self.fail(where, f"'{fmt}' is not a date format the loader can read (use %d %m %Y %H %M %S)")

    def columns(self, where: str, value) -> tuple[tuple[str, tuple[str, ...]], ...]:
        if value is None:
            return ()
        if not isinstance(value, dict):
            self.fail(where, "must map source column names to contract column names (Source name: order_id)")
        seen: dict[str, str] = {}
        found = []
        for source, targets in value.items():
            source = self.text(where, source)
            if isinstance(targets, str):
                targets = [targets]
            if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
                self.fail(where, f"'{source}' must map to a contract column or a list of them")
            for target in targets:
                if target not in self.all_columns:
                    known = "; ".join(f"{t}: {', '.join(c)}" for t, c in self.contract.items())
                    self.fail(where, f"'{source}': '{target}' is not a contract column ({known})")
                if target in seen:
                    self.fail(where, f"'{seen[target]}' and '{source}' both map to {target}")
                seen[target] = source
            found.append((source, tuple(targets)))
        return tuple(found)

    def values(self, where: str, value) -> tuple[tuple[str, str], ...]:
        if value is None:
            return ()
        if not isinstance(value, dict):
            self.fail(where, "must map values in the file to values of the contract (Anulowane: cancelled)")
        return tuple((self.text(where, k), self.text(where, v)) for k, v in value.items())
