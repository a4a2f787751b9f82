"""The postgres source's raw load against the same orders as one Parquet file (the files source).

    .venv/bin/python benchmarks/postgres_source.py --orders 1000000

Generates the synthetic shop (about N orders over 2023-2025), writes its orders as the synthetic landing does
(one Parquet file sorted by order time, 256k-row groups with statistics) and loads the same rows into a throwaway
PostgreSQL server (tests/pg_server.py: Debian's postgresql package) as a shop database would hold them: amounts
`numeric(12,2)`, times `timestamp`, an index on `ordered_at`. Then it times `clv`'s raw load of orders
(raw_layer.load_into: read, validate, hash e-mails, insert into a fresh DuckDB warehouse; full history in
CLV_INGEST_CHUNK_DAYS chunks) from each source, and a daily load (the last day plus the 7-day look-back) on top.
Each figure is the best of `--repeat` runs. Last line: `postgres_full_s=.. parquet_full_s=.. postgres_daily_s=..
parquet_daily_s=..`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

ORDERS_PER_CUSTOMER = 6.25  # the synthetic shop's average over a 3-year window (benchmarks/pipeline.py)
START, END = date(2023, 1, 1), date(2025, 12, 31)
TODAY = END + timedelta(days=1)
CHUNK_DAYS = 92


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--amounts",
        choices=["numeric", "float8"],
        default="numeric",
        help="PostgreSQL type of the amount columns (numeric is what shop databases use)",
    )
    args = parser.parse_args()

    import adbc_driver_postgresql.dbapi as adbc
    import duckdb
    import pg_server

    from pipelines.privacy import HashKey
    from pipelines.raw_layer import RAW_TABLES, load_into
    from pipelines.sources import files as src
    from pipelines.sources import postgres as pg
    from pipelines.sources.synthetic import SyntheticShopConfig, generate_shop

    started = time.perf_counter()
    shop = generate_shop(
        SyntheticShopConfig(
            n_customers=int(args.orders / ORDERS_PER_CUSTOMER), start_date=START, end_date=END, seed=42, dirty_rows=0
        )
    )
    orders = shop.orders.sort("ordered_at")
    print(f"generated {orders.height:,} orders in {time.perf_counter() - started:.1f} s", flush=True)

    key = HashKey(bytes.fromhex("5e" * 32))
    full = src.Window(start=START, end=END, as_of=END, first_partition=START)
    daily = src.Window(start=END - timedelta(days=7), end=END, as_of=END, first_partition=START)
    quiet = lambda message: None  # noqa: E731

    with tempfile.TemporaryDirectory(prefix="clv-bench-pg-") as scratch:
        raw = Path(scratch) / "raw"
        raw.mkdir()
        orders.write_parquet(raw / "orders.parquet", row_group_size=256_000, statistics=True)
        server = pg_server.start()
        try:
            started = time.perf_counter()
            with adbc.connect(server.url) as conn:
                with conn.cursor() as cur:
                    cur.adbc_ingest("orders", orders.to_arrow(), mode="create")
                conn.commit()
            amounts = ("net_revenue", "discount_amount", "refunded_amount", "cost")
            if args.amounts == "numeric":
                server.psql(
                    "alter table orders " + ", ".join(f"alter column {a} type numeric(12,2)" for a in amounts),
                    database=pg_server.DATABASE,
                )
            server.psql("create index on orders (ordered_at); analyze orders", database=pg_server.DATABASE)
            print(
                f"loaded them into PostgreSQL ({args.amounts} amounts, index on ordered_at) in "
                f"{time.perf_counter() - started:.1f} s",
                flush=True,
            )

            def one_load(kind: str, window, con) -> tuple[float, int]:
                began = time.perf_counter()
                if kind == "postgres":
                    specs = {t: pg.table_spec(t, None) for t in pg.CONTRACTS}
                    with pg.PostgresSource(server.url, specs, log=quiet) as database:
                        summary = load_into(
                            con,
                            RAW_TABLES["orders"],
                            database,
                            window,
                            TODAY,
                            "postgres",
                            chunk_days=CHUNK_DAYS,
                            hash_key=key,
                        )
                else:
                    summary = load_into(
                        con, RAW_TABLES["orders"], raw, window, TODAY, "files", chunk_days=CHUNK_DAYS, hash_key=key
                    )
                return time.perf_counter() - began, summary.rows_loaded

            figures: dict[str, list[float]] = {}
            rows: dict[str, int] = {}
            for attempt in range(args.repeat):
                for kind in ("postgres", "parquet"):
                    path = Path(scratch) / f"{kind}-{attempt}.duckdb"
                    con = duckdb.connect(str(path), config={"threads": 2, "memory_limit": "2GB"})
                    try:
                        seconds, rows[f"{kind}_full"] = one_load(kind, full, con)
                        figures.setdefault(f"{kind}_full", []).append(seconds)
                        seconds, rows[f"{kind}_daily"] = one_load(kind, daily, con)
                        figures.setdefault(f"{kind}_daily", []).append(seconds)
                    finally:
                        con.close()
                        path.unlink()
                    print(
                        f"  run {attempt + 1} {kind}: full {figures[f'{kind}_full'][-1]:.2f} s, "
                        f"daily {figures[f'{kind}_daily'][-1]:.2f} s",
                        flush=True,
                    )
            assert rows["postgres_full"] == rows["parquet_full"], rows
        finally:
            server.stop()

    print(
        f"\n{rows['postgres_full']:,} orders loaded from each source; best of {args.repeat} "
        f"(median in brackets), seconds:"
    )
    for name in ("postgres_full", "parquet_full", "postgres_daily", "parquet_daily"):
        print(f"  {name:16} {min(figures[name]):6.2f}  ({statistics.median(figures[name]):.2f})  rows {rows[name]:,}")
    print(" ".join(f"{name}_s={min(values):.2f}" for name, values in figures.items()))


if __name__ == "__main__":
    main()
