"""The `postgres` source: the shop's own PostgreSQL database (`CLV_DATABASE_URL`), read into the same validation,
quarantine, blocking data checks and idempotent window replacement as the `files` source.

Design: a relation reads itself as the frame `files.read_table` returns for a file
----------------------------------------------------------------------------------
`PostgresSource.discover(table)` stands where `files.discover(directory, table)` stands and returns `Relation`s in
place of paths (zero or one per table). A Relation's `read_table()` returns what `files.read_table` returns for a
typed Parquet file: the contract's columns (typed as the database gives them, or text) plus `_line`, `_fields`,
`_expected`, `_file` (`postgres:orders`) and `_sort_key`. So `files.load_orders` / `_validate_orders_file` /
`load_marketing_spend` / `load_cart_events` run unchanged (two one-line hooks in files.py hand a non-path to the
relation), and so do raw_layer's chunked full loads, the blocking data checks and the warehouse's window replace.

Why not land Parquet files per window: raw_layer tells changes by file signature and, for a changed file, compares
the whole file with the warehouse: a landing file holding only the window's rows would look "changed" every day,
its missing history would be reported as "orders no longer in orders.parquet" every day, and a large landing file
would turn a daily run into a full reload that removes every order outside the window. Row numbers of a landing
file would also change from run to run. Reading the database directly avoids all of it and a disk round trip.

What a load reads (the date window is pushed into the query)
-----------------------------------------------------------
Only the contract's columns are selected (never names, addresses or blobs the table may hold beside them). With a
typed date column (`date`, `timestamp`, `timestamptz`; `timestamp` without time zone is taken as UTC, as in files)
each query carries the run's window, mirroring `files._read_parquet`'s DateFilter:

    where ordered_at is null or (ordered_at >= start and ordered_at < end + 1 day)
       or ordered_at < first_partition or ordered_at >= latest_plausible + 1 day

so a daily run reads the window's days (the day plus the look-back) and the rows that will be rejected for their
date (null, before CLV_START_DATE, in the future) - never silently skipped. A full run reads everything, in
CLV_INGEST_CHUNK_DAYS chunks like Parquet files (an index on the date column makes each chunk a range scan). A
text date column cannot be compared as dates: it is read whole (said in the log) and parsed like CSV. Every query
of one load runs in one REPEATABLE READ, READ ONLY transaction: the chunks of a full load see one state of the
database, and the load never writes to it. Infinite timestamps are read as missing (rejected, not a crash).

Late changes (the rule)
-----------------------
- With an `updated_at` column (date or timestamp), a daily run of orders also reads the rows whose `updated_at` is
  at or after the newest `updated_at` of the previous load minus one day (the overlap covers transactions that
  committed late and clock skew; re-read unchanged rows cost a comparison, nothing else). Those dated outside the
  window go through raw_layer's change path, exactly like rows of a changed export: a late refund, a cancellation,
  a correction of any age reaches the marts, which rebuild from the earliest date touched. The newest `updated_at`
  is kept in raw.source_files (as `mtime_ns`; `size` is 0) and never moves past the database's clock.
- Without `updated_at` (or with a text one), a daily run reads only its window: changes to older orders arrive
  with the next full run (`clv run`). The log says so on every daily run.
- A row deleted from the database (not cancelled) is removed from the warehouse by a run whose window holds its
  date, or by a full run; both record it in raw.deleted_orders and say so. Schedule a full run (weekly, say) to
  catch deletions and, without `updated_at`, late changes. Marketing spend and cart events follow their window,
  as with files.

Rejected rows: file and line
----------------------------
`source_file` is `postgres:<table>` (orders, marketing_spend, cart_events), whatever relation or query feeds it.
`source_line` is NOT a position: a database has no line numbers, and a position would change with every insert and
differ between the chunks of one load, which re-read undated rows. It is a 63-bit fingerprint of the row's
content as read (a hash of its contract fields; identical rows get consecutive numbers): the same row gets the same
number in every query of every load, and two versions of an order never share one (the warehouse tells versions
apart by file and line). To find a rejected row in the database, use its `record` (it holds the order_id). The
fingerprint is stable within a polars version; after an upgrade, rows without a usable date that were rejected
before may be recorded once more under a new number.

Client library: ADBC (adbc-driver-postgresql)
---------------------------------------------
Measured on this machine (2 cores shared, 1 M orders of 15 columns, numeric amounts cast to float8 in the query):
ADBC 1.5 s, connectorx 1.1-1.3 s, psycopg 3 COPY (CSV text into polars) 2.1 s plus 6 s more validation of text
than of typed columns, psycopg 3 binary COPY rows into polars 9.7 s. ADBC hands Arrow (typed columns) straight to
polars; it is an Apache Arrow project with a stable 1.x API and builds on libpq, so every libpq connection
feature works as with psql (PGPASSWORD, ~/.pgpass, sslmode, service files). connectorx was about 25 % faster but
speaks the protocol with its own Rust client (fewer authentication and TLS options) and is maintained by a small
team; psycopg is the best-supported driver but yields Python rows (about 7x slower here). DuckDB's postgres
extension would have to be downloaded at run time, which fails here.

Errors (one line, never the password)
-------------------------------------
An unreachable server, a bad URL, a wrong password, a missing relation or column raise PostgresSourceError (a
SourceFileError): `clv` checks them before a run (`check_source`, exit code 2); inside a Dagster run they fail the
ingest step with the same line. Messages show the URL without its password (`display_url`) and the password is
scrubbed from any text the driver returns.
"""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl

from pipelines import contract
from pipelines.sources import files as src

if TYPE_CHECKING:
    from pipelines.settings import Settings


class PostgresSourceError(src.SourceFileError):
    """The database cannot be read as configured (connection, relation, columns): one line, no password."""


@dataclass(frozen=True)
class Contract:
    """A raw table of the contract (pipelines/contract.py) and which of its columns are amounts and dates."""

    table: contract.Table
    date_col: str
    amounts: tuple[str, ...]
    required_input: bool = False  # orders: the run cannot do without it

    @property
    def required(self) -> tuple[str, ...]:
        return self.table.required

    @property
    def optional(self) -> tuple[str, ...]:
        return self.table.optional


AMOUNTS = ("net_revenue", "discount_amount", "refunded_amount", "cost")
CONTRACTS = {
    "orders": Contract(contract.ORDERS, "ordered_at", AMOUNTS, required_input=True),
    "marketing_spend": Contract(contract.MARKETING_SPEND, "date", ("spend",)),
    "cart_events": Contract(contract.CART_EVENTS, "event_at", ("cart_value",)),
}
# Where each table comes from: a relation name (`orders`, `shop.orders`) or a query (`select ... from ...`).
SPEC_ENV = {"orders": "CLV_PG_ORDERS", "marketing_spend": "CLV_PG_MARKETING_SPEND", "cart_events": "CLV_PG_CART_EVENTS"}
OFF = "none"  # CLV_PG_CART_EVENTS=none: the database's cart_events is not ours to read
SOURCE_PREFIX = "postgres:"

# Types read as they come (Arrow maps them to polars types); numeric and money amounts become float8 (raw stores
# doubles); anything else (uuid, enum, json, numeric ids, ...) is read as text and validated like CSV text.
NATIVE_TYPES = frozenset(
    {"int2", "int4", "int8", "float4", "float8", "text", "varchar", "bpchar", "date", "timestamp", "timestamptz"}
)
DATE_TYPES = frozenset({"date", "timestamp", "timestamptz"})
# Rows changed since the previous load are read from this long before its newest updated_at.
CHANGE_OVERLAP = timedelta(days=1)
EPOCH = datetime(1970, 1, 1)
LINE_MASK = (1 << 63) - 1


# ---------------------------------------------------------------- configuration (no connection needed)
def _split_netloc(url: str) -> tuple[urllib.parse.SplitResult, str, str | None, str]:
    """(parts, user, password, host:port) without trusting urllib on odd user info (an '@' in a password)."""
    parts = urllib.parse.urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at:
        userinfo, hostport = "", parts.netloc
    user, colon, password = userinfo.partition(":")
    return parts, urllib.parse.unquote(user), urllib.parse.unquote(password) if colon else None, hostport


def display_url(url: str) -> str:
    """The URL without its password (in the user info or a `password=` parameter): safe for logs and messages."""
    try:
        parts, user, _, hostport = _split_netloc(url)
    except ValueError:
        return "<unparseable URL>"
    query = urllib.parse.urlencode(
        [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k.lower() != "password"]
    )
    netloc = f"{urllib.parse.quote(user, safe='')}@{hostport}" if user else hostport
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _secrets(url: str) -> list[str]:
    """The password as it may appear in text: decoded and as written in the URL."""
    try:
        parts, _, password, _ = _split_netloc(url)
    except ValueError:
        return []
    found = [password] if password else []
    found += [v for k, v in urllib.parse.parse_qsl(parts.query) if k.lower() == "password" and v]
    raw = parts.netloc.rpartition("@")[0].partition(":")[2]
    return sorted({s for s in found + [raw] if s}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return text


def check_url(url: str | None) -> str:
    """A usable postgresql:// URL, else ValueError in one line (without the password)."""
    if not url:
        raise ValueError(
            "CLV_SOURCE=postgres needs CLV_DATABASE_URL, e.g. postgresql://user@host:5432/shop "
            "(the password in PGPASSWORD or ~/.pgpass, or in the URL)"
        )
    shown = display_url(url)
    try:
        parts, _, _, hostport = _split_netloc(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(f"CLV_DATABASE_URL {shown}: not a valid URL (postgresql://user@host:5432/database)") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(
            f"CLV_DATABASE_URL {shown}: expected a postgresql:// URL, e.g. postgresql://user@host:5432/shop"
        )
    if not hostport and "host=" not in parts.query:
        raise ValueError(f"CLV_DATABASE_URL {shown}: names no host (postgresql://user@host:5432/database)")
    return url


_IDENT = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")'
_RELATION = re.compile(rf"^\s*({_IDENT})(?:\s*\.\s*({_IDENT}))?\s*$")
_QUERY = re.compile(r"^\s*(select|with|values|table)\b", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class TableSpec:
    table: str  # the contract's name: orders, marketing_spend, cart_events
    relation: str | None  # `schema.name` as SQL (unquoted parts fold to lower case, as in PostgreSQL)
    query: str | None
    explicit: bool  # set in CLV_PG_*: a missing relation is then an error, not an absent input

    @property
    def from_sql(self) -> str:
        return self.relation if self.relation else f"({self.query})"

    def describe(self) -> str:
        return f"relation {self.relation}" if self.relation else f"the query in {SPEC_ENV[self.table]}"


def table_spec(table: str, value: str | None) -> TableSpec | None:
    """What CLV_PG_<TABLE> says (None: switched off), else ValueError naming the variable."""
    explicit = bool(value and value.strip())
    value = value.strip().rstrip(";").strip() if explicit else table
    if value.lower() == OFF:
        if CONTRACTS[table].required_input:
            raise ValueError(f"{SPEC_ENV[table]}=none: orders cannot be switched off")
        return None
    match = _RELATION.match(value)
    if match:
        return TableSpec(table, ".".join(p for p in match.groups() if p), None, explicit)
    if _QUERY.match(value):
        return TableSpec(table, None, value, explicit)
    raise ValueError(
        f"{SPEC_ENV[table]}={value[:60]!r}: expected a relation name (orders, shop.orders) or a query "
        f"starting with SELECT or WITH, or '{OFF}'"
    )


def check_settings(url: str | None, specs: dict[str, str | None]) -> None:
    """Settings.from_env's check of the postgres settings (ValueError, one line)."""
    check_url(url)
    for table, value in specs.items():
        table_spec(table, value)


# ---------------------------------------------------------------- the connection
def _one_line(message: str) -> str:
    """The driver's message reduced to PostgreSQL's own words: no ADBC prefixes, no echoed query, one line."""
    text = message.split("Query was:")[0]
    found = re.search(r"(?:ERROR|FATAL):\s+(.*)", text)
    if found:
        text = found.group(1).splitlines()[0]
        before = message.split("Query was:")[0][: found.start()]
        where = re.search(r"(connection to server at .*? failed):?\s*$", before.strip())
        if where:
            text = f"{where.group(1)}: {text}"
    else:
        text = re.sub(r"^[A-Z_]+: (\[libpq\] )?(Failed to connect: )?", "", text.strip())
        text = text.splitlines()[0] if text.strip() else message.strip()
    return " ".join(text.split())


class _Session:
    """One ADBC connection holding one REPEATABLE READ, READ ONLY transaction (one snapshot) until closed."""

    def __init__(self, url: str, queries: list[str]):
        import adbc_driver_manager
        import adbc_driver_postgresql.dbapi as adbc

        self._errors = (adbc_driver_manager.Error,)
        self.url, self.queries = url, queries
        try:
            self.conn = adbc.connect(_with_application_name(url))
        except self._errors as exc:
            problem = f"cannot connect to {display_url(url)}: {_one_line(str(exc))}"
            raise PostgresSourceError(scrub(problem, url)) from None
        except Exception as exc:  # a URL libpq cannot even parse
            raise PostgresSourceError(
                scrub(f"cannot connect to {display_url(url)}: {type(exc).__name__}: {_one_line(str(exc))}", url)
            ) from None
        try:
            self._begin()
        except self._errors as exc:
            self.conn.close()
            problem = f"cannot start a read-only transaction on {display_url(url)}: {_one_line(str(exc))}"
            raise PostgresSourceError(scrub(problem, url)) from None

    def _begin(self) -> None:
        # ADBC opens the transaction with the first statement; this must be that statement.
        with self.conn.cursor() as cur:
            cur.adbc_statement.set_sql_query("set transaction isolation level repeatable read, read only")
            cur.adbc_statement.execute_update()

    def arrow(self, sql: str, what: str):
        self.queries.append(sql)
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetch_arrow_table()
        except self._errors as exc:
            try:  # a failed statement aborts the transaction: start a new snapshot for what may follow
                self.conn.rollback()
                self._begin()
            except self._errors:
                pass  # the connection itself is gone: the error below says why
            raise PostgresSourceError(scrub(f"{what}: {_one_line(str(exc))}", self.url)) from None

    def scalar(self, sql: str, what: str):
        table = self.arrow(sql, what)
        return table.column(0)[0].as_py() if table.num_rows else None

    def close(self) -> None:
        try:
            self.conn.rollback()  # read only: nothing to keep
            self.conn.close()
        except self._errors:
            pass  # a connection the server already closed


def _with_application_name(url: str) -> str:
    """Tag the connection (pg_stat_activity shows `clv`), unless the URL names an application itself."""
    parts = urllib.parse.urlsplit(url)
    if "application_name" in urllib.parse.parse_qs(parts.query):
        return url
    query = "&".join(p for p in (parts.query, "application_name=clv") if p)
    return urllib.parse.urlunsplit(parts._replace(query=query))


# ---------------------------------------------------------------- the source and its relations
class PostgresSource:
    """The database as a source of raw tables: `discover(table)` returns its Relation (or none). Holds one
    connection (and snapshot) from the first discover to `close()`; use it as a context manager."""

    def __init__(self, url: str, specs: dict[str, TableSpec | None], log: Callable[[str], None] = print):
        self.url, self.specs, self.log = url, specs, log
        self.queries: list[str] = []  # every statement issued (tests, and the log of what a run read)
        self._session: _Session | None = None

    @classmethod
    def from_settings(cls, settings: Settings, log: Callable[[str], None] = print) -> PostgresSource:
        values = {
            "orders": settings.pg_orders,
            "marketing_spend": settings.pg_marketing_spend,
            "cart_events": settings.pg_cart_events,
        }
        return cls(check_url(settings.database_url), {t: table_spec(t, v) for t, v in values.items()}, log)

    def __repr__(self) -> str:
        return f"PostgresSource({display_url(self.url)})"

    @property
    def where(self) -> str:
        return display_url(self.url)

    def session(self) -> _Session:
        if self._session is None:
            self._session = _Session(self.url, self.queries)
        return self._session

    def discover(self, table: str) -> list[Relation]:
        """The table's relation, or [] when it is switched off or (not explicitly configured and optional) absent."""
        spec = self.specs.get(table)
        if spec is None:
            return []
        if spec.relation is not None:
            literal = "'" + spec.relation.replace("'", "''") + "'"
            exists = self.session().scalar(
                f"select to_regclass({literal}) is not null",
                f"{SOURCE_PREFIX}{table}: looking up relation {spec.relation}",
            )
            if not exists:
                if spec.explicit or CONTRACTS[table].required_input:
                    raise PostgresSourceError(
                        f"{SOURCE_PREFIX}{table}: relation {spec.relation} does not exist in {self.where} "
                        f"(or this user cannot see it); set {SPEC_ENV[table]} to the table or view that holds "
                        f"the {table}, or to a query"
                    )
                self.log(
                    f"{SOURCE_PREFIX}{table}: no relation {spec.relation} in {self.where}: no {table} loaded "
                    f"(like a missing file; {SPEC_ENV[table]} names another relation or a query)"
                )
                return []
        return [Relation(self, spec)]

    def unloaded(self) -> list[str]:
        return []  # a database has no stray files

    def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            session.close()

    def __enter__(self) -> PostgresSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _literal(day: date | datetime, pg_type: str) -> str:
    if pg_type == "date":
        return f"date '{(day.date() if isinstance(day, datetime) else day).isoformat()}'"
    moment = day if isinstance(day, datetime) else datetime.combine(day, datetime.min.time())
    text = moment.strftime("%Y-%m-%d %H:%M:%S.%f")
    return f"timestamptz '{text}+00'" if pg_type == "timestamptz" else f"timestamp '{text}'"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Relation:
    """One raw table's rows in the database, read the way files.read_table reads a file (see the module doc).
    `changed_since`: only rows whose updated_at is at or after it (raw_layer's change path of a daily run);
    `whole`: no updated_at condition (a relation this warehouse has not loaded from before)."""

    def __init__(
        self,
        source: PostgresSource,
        spec: TableSpec,
        *,
        changed_since: datetime | None = None,
        columns: dict[str, tuple[str, str]] | None = None,
        shared: dict | None = None,
    ):
        self.source, self.spec, self.changed_since = source, spec, changed_since
        self.contract = CONTRACTS[spec.table]
        self.name = f"{SOURCE_PREFIX}{spec.table}"
        self._shared = shared if shared is not None else {}  # row count and signature, per load
        self.columns = columns if columns is not None else self._probe()

    def __repr__(self) -> str:
        return f"Relation({self.name} <- {self.spec.describe()} in {self.source.where})"

    # ---- columns
    def _probe(self) -> dict[str, tuple[str, str]]:
        """{contract column: (name in the database, PostgreSQL type)}; checks the required columns."""
        schema = (
            self.source.session()
            .arrow(f"select * from {self.spec.from_sql} as q limit 0", f"{self.name}: reading {self.spec.describe()}")
            .schema
        )
        found: dict[str, list[tuple[str, str]]] = {}
        for column in schema:
            metadata = column.metadata or {}
            pg_type = (metadata.get(b"POSTGRESQL:type") or b"").decode() or _type_from_arrow(column.type)
            found.setdefault(column.name.strip().lower(), []).append((column.name, pg_type))
        repeated = sorted(n for n, same in found.items() if len(same) > 1)
        if repeated:
            raise PostgresSourceError(
                f"{self.name}: {self.spec.describe()} has the column "
                f"{', '.join(repeated)} more than once (column names are case-insensitive)"
            )
        missing = [c for c in self.contract.required if c not in found]
        if missing:
            raise PostgresSourceError(
                f"{self.name}: missing required column(s) {', '.join(missing)} in {self.spec.describe()}; found "
                f"{', '.join(name for same in found.values() for name, _ in same) or 'no columns'} (rename them in "
                f"a view, or select them AS {', '.join(missing)} in {SPEC_ENV[self.spec.table]})"
            )
        wanted = (*self.contract.required, *self.contract.optional)
        return {c: found[c][0] for c in wanted if c in found}

    def _expression(self, column: str) -> str:
        name, pg_type = self.columns[column]
        quoted = _quote(name)
        if pg_type in ("numeric", "money"):
            expression = f"{quoted}::numeric::float8" if column in self.contract.amounts else f"{quoted}::text"
        elif pg_type in DATE_TYPES:
            expression = f"case when isfinite({quoted}) then {quoted} end"  # 'infinity' cannot become Arrow
        elif pg_type in NATIVE_TYPES:
            expression = quoted
        else:
            expression = f"{quoted}::text"
        return f"{expression} as {column}"

    def _typed(self, column: str) -> str | None:
        """The column's date type when it can be compared as a date in the query, else None."""
        if column not in self.columns:
            return None
        pg_type = self.columns[column][1]
        return pg_type if pg_type in DATE_TYPES else None

    @property
    def tracks_changes(self) -> bool:
        return self._typed("updated_at") is not None

    # ---- reading
    def _conditions(self, date_col: str | None, keep: src.DateFilter | None) -> tuple[list[str], str]:
        conditions, said = [], "every row"
        pg_type = self._typed(date_col) if date_col else None
        if keep is not None and pg_type:
            col = _quote(self.columns[date_col][0])
            one_day = timedelta(days=1)
            conditions.append(
                f"({col} is null or ({col} >= {_literal(keep.start, pg_type)} and "
                f"{col} < {_literal(keep.end + one_day, pg_type)}) or {col} < {_literal(keep.first_partition, pg_type)}"
                f" or {col} >= {_literal(keep.latest + one_day, pg_type)})"
            )
            said = f"{date_col} {keep.start}..{keep.end} and rows whose date will be rejected"
        elif keep is not None and date_col in self.columns:
            said = (
                f"every row: {date_col} is {self.columns[date_col][1]}, not a date or timestamp, so the run's "
                "dates cannot be pushed into the query"
            )
        if self.changed_since is not None:
            updated = _quote(self.columns["updated_at"][0])
            conditions.append(f"{updated} >= {_literal(self.changed_since, self._typed('updated_at'))}")
            said += f", updated_at from {self.changed_since:%Y-%m-%d %H:%M:%S}"
        return conditions, said

    def read_table(
        self, required: tuple[str, ...], date_col: str | None = None, keep: src.DateFilter | None = None
    ) -> pl.DataFrame:
        """The rows of `keep`'s dates (all rows without it) as files.read_table would return them."""
        conditions, said = self._conditions(date_col, keep)
        if not conditions and "every row" in self._shared:
            # Dates that cannot be compared in the query: every chunk of a full load would read every row again
            # (as every chunk re-reads a CSV file); read once, then each chunk validates its dates.
            return self._shared["every row"]
        sql = f"select {', '.join(self._expression(c) for c in self.columns)} from {self.spec.from_sql} as q" + (
            f" where {' and '.join(conditions)}" if conditions else ""
        )
        started = time.perf_counter()
        frame = pl.from_arrow(self.source.session().arrow(sql, f"{self.name}: reading {self.spec.describe()}"))
        assert isinstance(frame, pl.DataFrame)
        self.source.log(
            f"{self.name}: read {frame.height:,} rows in {time.perf_counter() - started:.1f} s "
            f"({said}) from {self.spec.describe()} in {self.source.where}"
        )
        if keep is not None and keep.start <= keep.first_partition:
            self._shared["full"] = True  # the first chunk of a full load: the later chunks are no daily run
        elif (
            keep is not None
            and self.spec.table == "orders"
            and not self.tracks_changes
            and not self._shared.get("full")
            and not self._shared.get("said")
        ):
            self._shared["said"] = True
            self.source.log(
                f"{self.name}: {self.spec.describe()} has no updated_at date or timestamp column, so this daily run "
                f"reads only order dates {keep.start}..{keep.end}: refunds, cancellations and corrections of older "
                "orders, and deleted orders, reach the warehouse with the next full run (`clv run`; schedule one "
                "weekly), or add updated_at (docs/postgres_source.md)"
            )
        frame = _with_lines(frame, self.name)
        if not conditions:
            self._shared["every row"] = frame
        return frame

    def data_rows(self, frame: pl.DataFrame) -> int:
        """Rows of the whole relation (the reject-rate base, as a Parquet file counts its rows when a daily read
        skipped row groups): counted once per load."""
        if "rows" not in self._shared:
            self._shared["rows"] = self.source.session().scalar(
                f"select count(*) from {self.spec.from_sql} as q", f"{self.name}: counting rows"
            )
        return self._shared["rows"]

    # ---- change detection (raw_layer: _file_signature, _changed_files)
    def signature(self) -> tuple[int, int]:
        """(0, the newest updated_at in nanoseconds since 1970, capped at the database's clock), or (0, 0)
        without a usable updated_at: what raw.source_files keeps for the relation."""
        if "signature" not in self._shared:
            newest = None
            pg_type = self._typed("updated_at")
            if pg_type:
                col = _quote(self.columns["updated_at"][0])
                now = {
                    "date": "(now() at time zone 'UTC')::date",
                    "timestamp": "(now() at time zone 'UTC')",
                    "timestamptz": "now()",
                }[pg_type]
                newest = self.source.session().scalar(
                    f"select max({col}) from {self.spec.from_sql} as q where {col} <= {now} and isfinite({col})",
                    f"{self.name}: reading the newest updated_at",
                )
            self._shared["signature"] = (0, _nanoseconds(newest) if newest is not None else 0)
        return self._shared["signature"]

    def changes_since(self, known: tuple[int, int] | None) -> Relation:
        """The relation as raw_layer's change path reads it in a daily run: the rows updated since the previous
        load's newest updated_at (less CHANGE_OVERLAP); every row when this warehouse has not loaded it before."""
        since = None
        if known is not None and self.tracks_changes:
            since = EPOCH + timedelta(microseconds=known[1] // 1000) - CHANGE_OVERLAP
            self.source.log(
                f"{self.name}: also reading rows updated since {since:%Y-%m-%d %H:%M:%S} (the previous "
                "load's newest updated_at less one day): changes to orders of any date reach the warehouse"
            )
        return Relation(self.source, self.spec, changed_since=since, columns=self.columns, shared=self._shared)


def _type_from_arrow(arrow_type) -> str:
    """A PostgreSQL type name for a column whose metadata does not name one (older drivers)."""
    import pyarrow as pa

    if pa.types.is_timestamp(arrow_type):
        return "timestamptz" if arrow_type.tz else "timestamp"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_integer(arrow_type):
        return "int8"
    if pa.types.is_floating(arrow_type):
        return "float8"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "text"
    return "unknown"


def _nanoseconds(value: date | datetime) -> int:
    if not isinstance(value, datetime):
        value = datetime.combine(value, datetime.min.time())
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _with_lines(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """files.read_table's bookkeeping columns; `_line` is the row's content fingerprint (module doc)."""
    fingerprint = (pl.struct(frame.columns).hash() & LINE_MASK).cast(pl.Int64) if frame.width else pl.lit(0, pl.Int64)
    frame = frame.with_columns(_line=fingerprint)
    # Identical rows (exact duplicates) get consecutive numbers, so each keeps its own (file, line).
    frame = frame.with_columns(
        _line=pl.when(pl.col("_line").is_duplicated())
        .then(pl.col("_line") + pl.int_range(pl.len(), dtype=pl.Int64).over("_line"))
        .otherwise(pl.col("_line"))
    )
    return frame.with_columns(
        _fields=pl.lit(0, pl.Int64),
        _expected=pl.lit(0, pl.Int64),
        _file=pl.lit(name),
        _sort_key=pl.lit(src.natural_key(name)),
    )


def earliest_order_date(settings: Settings, today: date | None = None) -> date | None:
    """The first plausible order date in the orders relation (None when there is none), like
    files.earliest_order_date for a directory: where history starts when CLV_START_DATE is not set."""
    with PostgresSource.from_settings(settings, log=lambda message: None) as source:
        relations = source.discover("orders")
        if not relations:
            return None
        relation = relations[0]
        latest = src._latest_plausible(today)
        pg_type = relation._typed("ordered_at")
        if pg_type:  # a typed column: the database answers (an index on ordered_at makes it a lookup)
            col = _quote(relation.columns["ordered_at"][0])
            first = source.session().scalar(
                f"select min({col}) from {relation.spec.from_sql} as q where {col} >= "
                f"{_literal(src.EARLIEST_PLAUSIBLE, pg_type)} and {col} <= {_literal(latest, pg_type)}",
                f"{relation.name}: reading the first order date",
            )
            if isinstance(first, datetime) and first.tzinfo is not None:
                first = first.astimezone(UTC)
            return first.date() if isinstance(first, datetime) else first
        frame = relation.read_table(src.ORDER_REQUIRED)
        parsed = frame.lazy().select(ordered_at=src.parse_timestamp("ordered_at", frame.schema["ordered_at"]))
        day = (
            parsed.filter(pl.col("ordered_at").is_between(src.EARLIEST_PLAUSIBLE, latest))
            .select(pl.col("ordered_at").min())
            .collect()
            .item()
        )
        return day.date() if day is not None else None


# ---------------------------------------------------------------- the CLI's check before a run
def check_source(settings: Settings) -> None:
    """Connect and look at every configured relation (exists, required columns) before a run starts: `clv` turns
    a PostgresSourceError (a ValueError) into one line and exit code 2."""
    with PostgresSource.from_settings(settings, log=lambda message: None) as source:
        for table in CONTRACTS:
            source.discover(table)
