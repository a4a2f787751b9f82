"""The `postgres` source (issue 13, item 6) against a REAL PostgreSQL server (tests/pg_server.py; `.ci/run` installs
Debian's postgresql, so these tests only skip where its binaries are missing).

- a full load equals a files-source load of the same rows (raw.orders content and rejects), typed and as text;
- a daily run reads only its window (the SQL issued and the rows read), plus rows whose date will be rejected;
- late changes: with updated_at a daily run applies changes of any age; without it the full run does (and the
  daily run says so); deletions are removed by a full run and recorded;
- invalid rows are quarantined with reasons; re-runs are idempotent; the blocking data checks stop a bad load;
- configuration errors are one line and exit code 2 from `clv`, never with the password; a whole `clv run
  --source postgres` works and leaves the password in no output, log or table.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pg_server
import polars as pl
import pytest
from pipeline_runner import PROJECT_ROOT, TEST_HASH_KEY, pipeline_env, run_clv

from pipelines.data_checks import DataCheckFailed, Thresholds
from pipelines.raw_layer import RAW_TABLES, load_into
from pipelines.sources import files as src
from pipelines.sources import postgres as pg
from pipelines.sources.synthetic import SyntheticShopConfig, generate_shop

START = date(2025, 1, 1)
END = date(2025, 3, 31)
TODAY = date(2025, 4, 2)
FULL = src.Window(start=START, end=END, as_of=END, first_partition=START)
DAY = src.Window(start=date(2025, 3, 24), end=END, as_of=END, first_partition=START)  # a day plus 7 days back
VOLATILE = {"loaded_at", "rejected_at", "load_id", "deleted_at"}
WHERE_ROWS_CAME_FROM = {"source_file", "source_sort_key", "source_line"}


# ---------------------------------------------------------------- the server and its data
@pytest.fixture(scope="module")
def server():
    if pg_server.find_bin_dir() is None:
        pytest.skip(pg_server.MISSING_REASON)
    running = pg_server.start()
    yield running
    running.stop()


_databases = iter(range(1, 10_000))


@pytest.fixture
def db(server) -> str:
    """A fresh database of the test server (owned by the test user); returns its URL (with the password)."""
    name = f"shop_{next(_databases)}"
    server.psql(f"create database {name} owner {pg_server.USER}", database="postgres")
    return server.url_with(database=name)


def put(url: str, name: str, frame: pl.DataFrame) -> None:
    """(Re)create table `name` from `frame` (Arrow types: String -> text, Float64 -> float8, Datetime -> timestamp)."""
    import adbc_driver_postgresql.dbapi as adbc

    with adbc.connect(url) as conn:
        with conn.cursor() as cur:
            cur.adbc_ingest(name, frame.to_arrow(), mode="replace")
        conn.commit()


def sql(url: str, statement: str) -> None:
    import adbc_driver_postgresql.dbapi as adbc

    with adbc.connect(url) as conn:
        with conn.cursor() as cur:
            cur.adbc_statement.set_sql_query(statement)
            cur.adbc_statement.execute_update()
        conn.commit()


def source(url: str, log=None, **specs: str | None) -> pg.PostgresSource:
    values = {"orders": None, "marketing_spend": None, "cart_events": None, **specs}
    return pg.PostgresSource(
        url, {t: pg.table_spec(t, v) for t, v in values.items()}, log=log if log is not None else (lambda message: None)
    )


def load_pg(
    con,
    url: str,
    window: src.Window = FULL,
    *,
    table: str = "orders",
    chunk_days: int | None = 30,
    thresholds: Thresholds | None = None,
    log=None,
    **specs,
):
    with source(url, log, **specs) as database:
        summary = load_into(
            con,
            RAW_TABLES[table],
            database,
            window,
            TODAY,
            "postgres",
            chunk_days=chunk_days,
            hash_key=TEST_HASH_KEY,
            thresholds=thresholds,
        )
    return summary, database.queries


def load_files(con, directory: Path, window: src.Window = FULL, *, table: str = "orders", chunk_days: int | None = 30):
    return load_into(
        con, RAW_TABLES[table], directory, window, TODAY, "files", chunk_days=chunk_days, hash_key=TEST_HASH_KEY
    )


def shop(n_customers: int = 250, seed: int = 11):
    return generate_shop(SyntheticShopConfig(n_customers=n_customers, start_date=START, end_date=END, seed=seed))


def reads(queries: list[str]) -> list[str]:
    """The statements that read rows (not the lookups, the column probe, the count or the newest updated_at)."""
    return [q for q in queries if q.startswith('select "') or q.startswith("select case")]


def table_rows(con, table: str, drop=VOLATILE) -> list[tuple]:
    columns = [
        c
        for (c,) in con.execute(
            "select column_name from information_schema.columns where table_schema = 'raw' and table_name = ? "
            "order by ordinal_position",
            [table],
        ).fetchall()
        if c not in drop
    ]
    return sorted(con.execute(f"select {', '.join(columns)} from raw.{table}").fetchall(), key=repr)


def rejects(con) -> list[tuple]:
    """(table, kind, reason with the file:line it names replaced, record, event date), sorted."""
    rows = con.execute("select source_table, kind, reason, record, event_date from raw.rejected_orders").fetchall()
    # The record of a duplicate or superseded version ends with the file and line it came from
    return sorted(
        (
            (
                t,
                k,
                re.sub(r"(of|by) \S+:\d+$", r"\1 <row>", r),
                re.sub(r",[^,]+,-?\d+$", ",<row>", rec) if k != "invalid" else rec,
                d,
            )
            for t, k, r, rec, d in rows
        ),
        key=repr,
    )


def typed_orders() -> pl.DataFrame:
    """The synthetic shop's orders (typed) with updated_at, plus typed bad rows, an exact duplicate and a later
    version of an order."""
    orders = shop().orders.with_columns(updated_at=pl.col("ordered_at"))
    first = orders.row(0, named=True)
    bad = pl.DataFrame(
        [
            {**first, "order_id": "NEG", "net_revenue": -3.0},
            {**first, "order_id": "NOCUST", "customer_id": None},
            {**first, "order_id": "NODATE", "ordered_at": None},
            {**first, "order_id": "OLD", "ordered_at": datetime(2024, 12, 31, 23, 59)},  # before the first partition
            {**first, "order_id": "FUTURE", "ordered_at": datetime(2031, 1, 1)},  # impossible
            {**first, "order_id": "REFUND>NET", "refunded_amount": first["net_revenue"] + 1},
            orders.row(5, named=True),  # an exact duplicate
            {
                **orders.row(7, named=True),
                "refunded_amount": 1.0,  # a later version
                "updated_at": orders.row(7, named=True)["updated_at"] + timedelta(days=3),
            },
        ],
        schema=orders.schema,
    )
    return pl.concat([orders, bad])


# ---------------------------------------------------------------- configuration without a server
def test_urls_are_shown_and_scrubbed_without_the_password():
    url = "postgresql://shop:p%40ss:w0rd@db.example:5433/prod?sslmode=require&password=other"
    shown = pg.display_url(url)
    assert shown == "postgresql://shop@db.example:5433/prod?sslmode=require"
    text = f"cannot connect to {url}: p@ss:w0rd other"
    assert "w0rd" not in pg.scrub(text, url) and "other" not in pg.scrub(text, url)
    assert "p%40ss" not in pg.scrub(text, url)


@pytest.mark.parametrize(
    "value, relation, query",
    [
        (None, "orders", None),
        ("shop.Orders", "shop.Orders", None),
        ('"Shop"."My Orders"', '"Shop"."My Orders"', None),
        ("select id as order_id from t;", None, "select id as order_id from t"),
        ("WITH x as (select 1) select * from x", None, "WITH x as (select 1) select * from x"),
    ],
)
def test_a_table_is_a_relation_or_a_query(value, relation, query):
    spec = pg.table_spec("orders", value)
    assert (spec.relation, spec.query, spec.explicit) == (relation, query, value is not None)


@pytest.mark.parametrize(
    "url, env, words",
    [
        (None, {}, "CLV_SOURCE=postgres needs CLV_DATABASE_URL"),
        ("mysql://u:topsecret@h/db", {}, "CLV_DATABASE_URL mysql://u@h/db: expected a postgresql:// URL"),
        ("postgresql://u:topsecret@h:port/db", {}, "not a valid URL"),
        ("postgresql://u:topsecret@h/db", {"CLV_PG_ORDERS": "orders; drop table x"}, "CLV_PG_ORDERS="),
        ("postgresql://u:topsecret@h/db", {"CLV_PG_ORDERS": "none"}, "orders cannot be switched off"),
    ],
)
def test_bad_settings_are_one_line_without_the_password(monkeypatch, url, env, words):
    from pipelines.settings import Settings

    for name in ("CLV_DATABASE_URL", *pg.SPEC_ENV.values()):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLV_SOURCE", "postgres")
    if url:
        monkeypatch.setenv("CLV_DATABASE_URL", url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as raised:
        Settings.from_env()
    assert words in str(raised.value) and "topsecret" not in str(raised.value) and "\n" not in str(raised.value)


def test_settings_never_show_the_url():
    from pipelines.settings import Settings

    assert "topsecret" not in repr(Settings(source="postgres", database_url="postgresql://u:topsecret@h/db"))


# ---------------------------------------------------------------- loads against the server
def test_full_load_equals_a_files_load_of_the_same_typed_rows(db, tmp_path):
    orders = typed_orders()
    orders.write_parquet(tmp_path / "orders.parquet")
    put(db, "orders", orders)
    from_files, from_pg = duckdb.connect(), duckdb.connect()
    files_summary = load_files(from_files, tmp_path)
    pg_summary, queries = load_pg(from_pg, db)
    assert table_rows(from_pg, "orders", VOLATILE | WHERE_ROWS_CAME_FROM) == table_rows(
        from_files, "orders", VOLATILE | WHERE_ROWS_CAME_FROM
    )
    assert pg_summary.rows_loaded == files_summary.rows_loaded == orders.height - 6 - 2
    assert rejects(from_pg) == rejects(from_files)
    assert {kind for _, kind, *_ in rejects(from_pg)} == {"invalid", "duplicate", "superseded"}
    assert set(from_pg.execute("select distinct source_file from raw.orders").fetchall()) == {("postgres:orders",)}
    # The window went into the queries, in 30-day chunks
    issued = reads(queries)
    assert len(issued) == len(FULL.split(30)) and all("where (" in q for q in issued)


def test_full_load_equals_a_files_load_of_the_same_text_rows_with_dirty_ones(db, tmp_path):
    """A table of text columns (a staging table copied from exports) is validated like the CSV itself: the same
    rejects with the same reasons and records (unparseable dates, non-numeric amounts, NaN, missing ids...)."""
    generated = shop(seed=5)
    text = pl.concat(
        [generated.orders.select(pl.all().cast(pl.String)), generated.dirty_orders.select(generated.orders.columns)]
    )
    text.write_csv(tmp_path / "orders.csv")
    put(db, "orders", text)
    from_files, from_pg = duckdb.connect(), duckdb.connect()
    load_files(from_files, tmp_path)
    _, queries = load_pg(from_pg, db)
    assert table_rows(from_pg, "orders", VOLATILE | WHERE_ROWS_CAME_FROM) == table_rows(
        from_files, "orders", VOLATILE | WHERE_ROWS_CAME_FROM
    )
    assert rejects(from_pg) == rejects(from_files)
    reasons = " | ".join(r for _, _, r, *_ in rejects(from_pg))
    for words in (
        "missing order_id",
        "missing customer_id",
        "unparseable ordered_at",
        "non-numeric net_revenue",
        "negative net_revenue",
    ):
        assert words in reasons
    # A text date cannot be compared as a date in the query: read once, whole (no chunks), and said so
    assert len(reads(queries)) == 1
    assert "where" not in reads(queries)[0]


def test_a_daily_run_reads_only_its_window_and_the_rows_its_dates_reject(db):
    orders = typed_orders()
    put(db, "orders", orders)
    con, said = duckdb.connect(), []
    load_pg(con, db)
    summary, queries = load_pg(con, db, DAY, log=said.append)
    issued = reads(queries)
    assert len(issued) == 1 and 'updated_at" >=' not in issued[0]  # nothing changed since the full load
    assert (
        "\"ordered_at\" >= timestamp '2025-03-24 00:00:00.000000' and "
        "\"ordered_at\" < timestamp '2025-04-01 00:00:00.000000'"
    ) in issued[0]
    day = pl.col("ordered_at").dt.date()
    latest = TODAY + timedelta(days=1)  # orders up to the end of tomorrow are plausible
    expected = orders.filter(day.is_null() | day.is_between(DAY.start, DAY.end) | (day < START) | (day > latest))
    assert summary.rows_read == expected.height < orders.height / 5
    assert any(f"read {expected.height:,} rows" in line for line in said)


def test_a_zoned_timestamp_column_is_cut_at_utc_midnight(db, tmp_path):
    """timestamptz: 2025-03-23 23:30-05:00 is 2025-03-24 04:30 UTC, so it belongs to the daily window of the 24th."""
    rows = pl.DataFrame(
        {
            "order_id": ["late-evening-ny", "before-window"],
            "customer_id": ["c1", "c2"],
            "ordered_at": [
                datetime(2025, 3, 24, 4, 30, tzinfo=UTC),
                datetime(2025, 3, 23, 23, 59, tzinfo=UTC),
            ],
            "net_revenue": [10.0, 20.0],
            "shipping_address": ["1 Main St", "2 Main St"],  # not in the contract: never read
        }
    )
    put(db, "orders", rows)
    con = duckdb.connect()
    load_pg(con, db, FULL)
    summary, queries = load_pg(con, db, DAY)
    assert summary.rows_read == 1 and "timestamptz '2025-03-24 00:00:00.000000+00'" in reads(queries)[0]
    assert not any("shipping_address" in q for q in reads(queries))
    assert con.execute("select order_id, ordered_at from raw.orders order by 1").fetchall() == [
        ("before-window", datetime(2025, 3, 23, 23, 59)),
        ("late-evening-ny", datetime(2025, 3, 24, 4, 30)),
    ]


@pytest.mark.parametrize("tracked", [True, False], ids=["with updated_at", "without updated_at"])
def test_late_changes_and_deletions(db, tracked):
    """A refund booked weeks late, an order that arrived late for an old date and an order deleted from the
    database: with updated_at the daily run applies the first two (the deletion waits for a full run); without
    it the daily run says that only the full run will, and the full run does."""
    orders = typed_orders().filter(~pl.col("order_id").is_in(["NODATE", "OLD", "FUTURE"]))
    if not tracked:
        orders = orders.drop("updated_at")
    put(db, "orders", orders)
    con, said = duckdb.connect(), []
    load_pg(con, db)
    january = orders.filter(
        (pl.col("ordered_at").dt.month() == 1)
        & pl.col("order_id").str.starts_with("O")
        & ~pl.col("order_id").is_duplicated()
    ).sort("ordered_at")
    refunded, deleted = january["order_id"][3], january["order_id"][4]
    touch = ", updated_at = now()" if tracked else ""
    sql(db, f"update orders set refunded_amount = 1.5, refunded_at = '2025-03-25'{touch} where order_id = '{refunded}'")
    sql(db, f"delete from orders where order_id = '{deleted}'")
    columns = "order_id, customer_id, ordered_at, net_revenue" + (", updated_at" if tracked else "")
    values = "'LATE', 'c9', '2025-01-20 10:00', 12.5" + (", now()" if tracked else "")
    sql(db, f"insert into orders ({columns}) values ({values})")

    summary, queries = load_pg(con, db, DAY, log=said.append)
    refund = con.execute("select refunded_amount from raw.orders where order_id = ?", [refunded]).fetchall()
    late = con.execute("select count(*) from raw.orders where order_id = 'LATE'").fetchall()[0][0]
    kept = con.execute("select count(*) from raw.orders where order_id = ?", [deleted]).fetchall()[0][0]
    if tracked:
        assert refund == [(1.5,)] and late == 1 and summary.changed_rows == 2
        assert summary.changed_from == min(january["ordered_at"][3].date(), date(2025, 1, 20))
        assert any('"updated_at" >= timestamp' in q for q in queries)
        assert summary.missing_kept == {}  # rows updated in a database are no export to compare with
    else:
        assert refund == [(0.0,)] and late == 0 and summary.changed_rows == 0
        assert any("no updated_at" in line and "clv run" in line for line in said)
    assert kept == 1  # a daily run cannot see that an order outside its window was deleted

    summary, _ = load_pg(con, db, FULL)
    assert con.execute("select refunded_amount from raw.orders where order_id = ?", [refunded]).fetchall() == [(1.5,)]
    assert con.execute("select count(*) from raw.orders where order_id = 'LATE'").fetchall() == [(1,)]
    assert summary.deleted == 1
    assert con.execute("select order_id, source_file from raw.deleted_orders").fetchall() == [
        (deleted, "postgres:orders")
    ]


def test_reruns_are_idempotent(db):
    put(db, "orders", typed_orders())
    con = duckdb.connect()

    def state():
        return table_rows(con, "orders"), table_rows(con, "rejected_orders"), table_rows(con, "deleted_orders")

    load_pg(con, db)
    after_full = state()
    load_pg(con, db)
    assert state() == after_full
    load_pg(con, db, DAY)
    assert state() == after_full
    load_pg(con, db, DAY)
    assert state() == after_full


def test_marketing_spend_and_cart_events_are_optional_relations(db):
    generated = shop()
    put(db, "orders", generated.orders)
    con = duckdb.connect()
    load_pg(con, db)
    said = []
    spend, _ = load_pg(con, db, table="marketing_spend", log=said.append)
    assert spend.files == [] and spend.rows_loaded == 0
    assert any("no relation marketing_spend" in line for line in said)
    put(db, "marketing_spend", generated.marketing_spend)
    put(
        db,
        "cart_events",
        generated.cart_events.with_columns(
            event_type=pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("wishlist")).otherwise("event_type")
        ),
    )
    spend, _ = load_pg(con, db, table="marketing_spend")
    carts, _ = load_pg(con, db, table="cart_events")
    in_window = pl.col("date").is_between(START, END)
    assert spend.rows_loaded == generated.marketing_spend.filter(in_window).height > 0
    assert carts.rows_loaded == generated.cart_events.filter(pl.col("event_at").dt.date() <= END).height - 1
    assert carts.rejected["reason"].to_list() == [
        "unknown event_type 'wishlist' (expected add_to_cart or checkout_started)"
    ]
    assert carts.rejected["source_file"].to_list() == ["postgres:cart_events"]
    off, _ = load_pg(con, db, table="cart_events", cart_events="none")
    assert off.files == []
    with pytest.raises(pg.PostgresSourceError, match="relation shop.spend does not exist"):
        load_pg(con, db, table="marketing_spend", marketing_spend="shop.spend")


def test_a_query_can_map_the_shops_own_columns(db):
    """CLV_PG_ORDERS as a query: the shop's column names and types (money, a numeric id, an enum) are mapped in
    SQL; the date window is still pushed down (around the query)."""
    sql(
        db,
        """create type order_state as enum ('paid', 'cancelled');
               create table shop_orders (id numeric(20, 0) primary key, buyer text, placed timestamp,
                                         total money, state order_state, secret_note text);
               insert into shop_orders values (1001, 'b1', '2025-03-25 10:00', '12.50', 'paid', 'x'),
                                              (1002, 'b2', '2025-01-05 10:00', '7.25', 'cancelled', 'y'),
                                              (1003, 'b3', 'infinity', '1.00', 'paid', 'z')""",
    )
    query = (
        "select id as order_id, buyer as customer_id, placed as ordered_at, total as net_revenue, "
        "state as status from shop_orders"
    )
    con = duckdb.connect()
    summary, queries = load_pg(con, db, orders=query)
    assert con.execute("select order_id, net_revenue, status from raw.orders order by 1").fetchall() == [
        ("1001", 12.5, "paid"),
        ("1002", 7.25, "cancelled"),
    ]
    assert [r for r in summary.rejected["reason"]] == ["missing ordered_at"]  # 'infinity' cannot be a date
    summary, queries = load_pg(con, db, DAY, orders=query)
    assert summary.rows_read == 2 and "from (select id as order_id" in reads(queries)[0]


def test_the_blocking_checks_stop_a_bad_load(db):
    orders = shop().orders
    put(db, "orders", orders)
    con = duckdb.connect()
    load_pg(con, db, thresholds=Thresholds(reject_rate=0.05, row_drop=0.5))
    before = table_rows(con, "orders")
    sql(db, "update orders set net_revenue = -1 where ordered_at >= '2025-02-01'")
    with pytest.raises(DataCheckFailed, match="postgres:orders"):
        load_pg(con, db, thresholds=Thresholds(reject_rate=0.05, row_drop=0.5))
    assert table_rows(con, "orders") == before


def test_a_missing_column_or_relation_is_one_line_naming_it(db):
    put(db, "orders", pl.DataFrame({"order_id": ["a"], "customer_id": ["c"], "ordered_at": [datetime(2025, 3, 1)]}))
    with pytest.raises(pg.PostgresSourceError) as raised:
        load_pg(duckdb.connect(), db)
    assert str(raised.value).startswith("postgres:orders: missing required column(s) net_revenue in relation orders")
    with pytest.raises(pg.PostgresSourceError, match="relation nope does not exist"):
        load_pg(duckdb.connect(), db, orders="nope")
    with pytest.raises(pg.PostgresSourceError, match='column "nope" does not exist'):
        load_pg(duckdb.connect(), db, orders="select nope from orders")


# ---------------------------------------------------------------- the CLI
def _clv(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=pipeline_env(tmp_path / "data", **env),
    )


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "case, words",
    [
        (
            "unreachable",
            "cannot connect to postgresql://clv@127.0.0.1:{port}/shop: connection to server at "
            '"127.0.0.1", port {port} failed: Connection refused',
        ),
        ("wrong password", 'password authentication failed for user "clv"'),
        ("no database", 'database "nowhere" does not exist'),
        ("missing relation", "postgres:orders: relation shop.orders does not exist"),
        ("missing column", "postgres:orders: missing required column(s) net_revenue"),
    ],
)
def test_clv_says_a_database_problem_in_one_line_with_exit_code_2(server, tmp_path, case, words):
    port = _closed_port() if case == "unreachable" else server.port
    password = "wrong-" + pg_server.PASSWORD if case == "wrong password" else pg_server.PASSWORD
    url = server.url_with(password=password, port=port, database="nowhere" if case == "no database" else "shop")
    env = {"CLV_DATABASE_URL": url}
    if case == "missing relation":
        env["CLV_PG_ORDERS"] = "shop.orders"
    if case == "missing column":
        put(server.url, "no_revenue", pl.DataFrame({"order_id": ["a"], "customer_id": ["c"], "ordered_at": ["x"]}))
        env["CLV_PG_ORDERS"] = "no_revenue"
    done = _clv(tmp_path, "run", "--source", "postgres", **env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clv: ") and words.format(port=port) in lines[0], done.stderr
    assert pg_server.PASSWORD not in done.stderr + done.stdout and done.stdout == ""


@pytest.mark.slow
def test_clv_run_from_postgres_end_to_end_without_the_password_anywhere(server, tmp_path):
    """`clv run --source postgres` builds the warehouse; a late refund then reaches it through a one-day backfill
    (the change path, in Dagster); the password is in no output, log, Dagster event or table."""
    url = server.url_with(database="e2e")
    server.psql(f"create database e2e owner {pg_server.USER}", database="postgres")
    end = date(2025, 6, 30)
    generated = generate_shop(SyntheticShopConfig(n_customers=300, start_date=START, end_date=end, seed=3))
    orders = generated.orders.with_columns(updated_at=pl.col("ordered_at"))
    put(url, "orders", orders)
    put(url, "marketing_spend", generated.marketing_spend)
    put(url, "cart_events", generated.cart_events)
    env = {"CLV_DATABASE_URL": url, "CLV_START_DATE": START.isoformat()}
    data = tmp_path / "data"
    first = run_clv(data, "run", "--source", "postgres", "--as-of", end.isoformat(), **env)
    with first.connect() as con:
        valid = orders.filter(pl.col("ordered_at").dt.date() <= end).height
        assert con.execute("select count(*) from raw.orders").fetchone()[0] == valid
        assert con.execute("select distinct source from raw.load_log").fetchall() == [("postgres",)]
        assert con.execute("select count(*) from marts.fct_orders").fetchone()[0] > 0

    target = orders.filter(
        (pl.col("ordered_at").dt.month() == 2) & (pl.col("refunded_amount") == 0) & (pl.col("status") == "completed")
    )["order_id"][0]
    sql(
        url,
        f"update orders set refunded_amount = 2.0, refunded_at = '2025-06-30', updated_at = now() "
        f"where order_id = '{target}'",
    )
    second = run_clv(
        data, "backfill", "--source", "postgres", "--start", end.isoformat(), "--end", end.isoformat(), **env
    )
    with second.connect() as con:
        refunded = con.execute("select refunded_amount from marts.fct_orders where order_id = ?", [target]).fetchall()
        assert refunded == [(2.0,)]

    outputs = first.stdout + first.stderr + second.stdout + second.stderr
    logs = "".join(p.read_text(errors="replace") for p in (data / "logs").glob("*.log"))
    assert "postgres:orders: read" in logs and "also reading rows updated since" in logs
    assert pg_server.PASSWORD not in outputs + logs
    for warehouse in (
        data / "warehouse.duckdb",
        data / "warehouse.marts.duckdb",
        data / "published" / "warehouse.duckdb",
    ):
        assert pg_server.PASSWORD not in _all_text(warehouse), warehouse


def _all_text(path: Path) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        # base tables only: the views hold no data of their own (and the warehouse's read the marts' file)
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE'"
        ).fetchall()
        return "\n".join(str(con.execute(f'select * from "{s}"."{t}"').fetchall()) for s, t in tables)
    finally:
        con.close()


def test_dagster_events_and_metadata_never_hold_the_password(db, tmp_path, monkeypatch):
    """The ingest assets in Dagster: a successful load's events and metadata, and a failed one's, without the
    password (the URL appears only without it)."""
    import dagster as dg

    from pipelines.defs.assets.ingest import raw_cart_events, raw_marketing_spend, raw_orders
    from pipelines.defs.resources import WarehouseResource
    from pipelines.run_window import LOAD_START_TAG

    put(db, "orders", typed_orders())
    for name, value in {
        "CLV_SOURCE": "postgres",
        "CLV_DATABASE_URL": db,
        "CLV_DATA_DIR": str(tmp_path / "data"),
        "CLV_START_DATE": START.isoformat(),
        "CLV_AS_OF": END.isoformat(),
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("CLV_WAREHOUSE", *pg.SPEC_ENV.values()):
        monkeypatch.delenv(name, raising=False)

    def materialize():
        return dg.materialize(
            [raw_orders, raw_marketing_spend, raw_cart_events],
            partition_key=END.isoformat(),
            resources={"warehouse": WarehouseResource(hold_run_lock=False)},
            tags={LOAD_START_TAG: START.isoformat()},
            raise_on_error=False,
        )

    ok = materialize()
    assert ok.success
    metadata = [m.metadata for m in ok.asset_materializations_for_node("raw__orders")]
    assert metadata and metadata[0]["files"].value == "postgres:orders"
    monkeypatch.setenv("CLV_PG_ORDERS", "missing_relation")
    failed = materialize()
    assert not failed.success
    text = repr(ok.all_events) + repr(failed.all_events)
    assert "relation missing_relation does not exist" in text and pg.display_url(db) in text
    assert pg_server.PASSWORD not in text


def test_history_starts_at_the_first_plausible_order(db):
    """earliest_order_date: where history starts without CLV_START_DATE (typed: asked of the database; text: parsed
    like a CSV); implausible dates (before 1900, in the future) do not count."""
    from pipelines.settings import Settings

    typed = pl.DataFrame(
        {
            "order_id": ["a", "b", "c"],
            "customer_id": ["c"] * 3,
            "net_revenue": [1.0] * 3,
            "ordered_at": [datetime(1899, 12, 31), datetime(2024, 5, 6, 7), datetime(2025, 1, 1)],
        }
    )
    put(db, "orders", typed)
    settings = Settings(source="postgres", database_url=db)
    assert pg.earliest_order_date(settings) == date(2024, 5, 6)
    put(db, "orders", typed.with_columns(pl.col("ordered_at").cast(pl.String)))
    assert pg.earliest_order_date(settings) == date(2024, 5, 6)
