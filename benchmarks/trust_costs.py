"""What issue 12's safeguards cost in `make bench` today: each switched off in the current code, side by side.

    .venv/bin/python benchmarks/pipeline.py --orders 10000000 --workdir /tmp/bench10m    # once (~90 s)
    .venv/bin/python benchmarks/trust_costs.py --workdir /tmp/bench10m --repeats 3

`make bench` beside the commit before issue 12 (`benchmarks/abba_pipeline.sh 76c6f5c`) also carries every later
issue's features (three purchase models and their back-tests, intervals, the PDF, the v1.1 snapshot, ...). This
script isolates what issue 12 itself added to the two stages it touched, on the landing and warehouse of a
`benchmarks/pipeline.py` run, in one process, variants alternated (A, B, B, A, ...) so a drifting machine slows
both alike; the figures are medians of wall and CPU seconds (every thread of the process).

- ``ingest``: the orders load of the whole history into a fresh warehouse (``raw_layer.load_into``, as
  ``raw__orders`` runs it) with the keyed hashes (an HMAC per distinct address, keyed pseudonyms for e-mail
  customer ids) against the insert as before issue 12 (an unkeyed sha256 of each row's address, customer ids as
  given) and today's insert with an unkeyed sha256 per distinct address (what the key alone costs). The blocking
  data checks (``blocking_problems``, the hash-key check) are timed inside the keyed runs.
- ``snapshot``: the published snapshot as written today (a byte copy of the marts' own file, kept in DuckDB's v1.1
  storage), against the marts rewritten table by table into a new v1.1 file (session 8's snapshot, and today's
  fallback for a marts file in DuckDB 2.0's format), the whole warehouse copied byte for byte after a checkpoint
  (before issue 12; DuckDB 1.1 clients cannot open it, which issue 14 requires) and the whole warehouse in v1.1
  storage (what issue 14 would need without issue 12).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from pipelines import privacy, publish, raw_layer  # noqa: E402
from pipelines import warehouse as wh  # noqa: E402
from pipelines.data_checks import Thresholds  # noqa: E402
from pipelines.privacy import HashKey  # noqa: E402
from pipelines.run_window import Window  # noqa: E402
from pipelines.warehouse import sql_string  # noqa: E402

KEYED_ORDERS = raw_layer.RAW_TABLES["orders"]
# The orders insert as it was before issue 12 (76c6f5c's raw_layer: a sha256 per row), into today's columns.
UNKEYED_ORDERS = dataclasses.replace(
    KEYED_ORDERS,
    select_sql="* exclude (email), sha256(email) as email_hmac, $load_id as load_id",
    from_sql="incoming",
)
# Today's insert (each distinct address hashed once) with an unkeyed sha256 and customer ids as given: what the
# key alone costs.
UNKEYED_DISTINCT_ORDERS = dataclasses.replace(
    KEYED_ORDERS,
    select_sql="* exclude (email, _email), $load_id as load_id",
    from_sql=KEYED_ORDERS.from_sql.replace(privacy.hmac_sql("email"), "sha256(email)"),
)
assert UNKEYED_DISTINCT_ORDERS.from_sql != KEYED_ORDERS.from_sql


def timed(function: Callable[[], object]) -> tuple[float, float]:
    started, cpu = time.perf_counter(), os.times()
    function()
    after = os.times()
    return time.perf_counter() - started, (after.user + after.system) - (cpu.user + cpu.system)


class CheckClock:
    """Seconds spent in the blocking checks of a load (wrapping the functions raw_layer calls)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        for name in ("blocking_problems", "_check_hash_key"):
            original = getattr(raw_layer, name)
            setattr(raw_layer, name, self._wrap(original))

    def _wrap(self, function: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        return wrapper


def load_orders(table: raw_layer.RawTable, landing: Path, window: Window, scratch: Path) -> None:
    with wh.connect(_fresh(scratch / "ingest.duckdb")) as con:
        raw_layer.load_into(
            con,
            table,
            landing,
            window,
            window.as_of,
            "files",
            chunk_days=92,
            hash_key=HashKey(bytes(range(32))),
            thresholds=Thresholds(reject_rate=0.05, row_drop=0.5),
            run_id="bench",
        )


def snapshot_today(warehouse: Path, target: Path) -> None:
    with wh.connect(warehouse) as con:
        publish._write_snapshot(con, warehouse, target)


def marts_rewritten(warehouse: Path, target: Path) -> None:
    """Session 8's snapshot: the marts written table by table into a new file in v1.1 storage, with comments."""
    with wh.connect(warehouse) as con:
        tables = publish.mart_tables(con)
        docs = catalog_docs(con, wh.MARTS_CATALOG, tables)
        con.execute(f"attach {sql_string(target)} as rewritten (storage_version 'v1.1.0')")
        try:
            con.execute("create schema rewritten.marts")
            for table in tables:
                con.execute(f"create table rewritten.marts.{table} as select * from marts.{table}")
            publish.comment_marts(con, docs, "rewritten")
        finally:
            con.execute("detach rewritten")


def catalog_docs(con: duckdb.DuckDBPyConnection, catalog: str, tables: list[str]) -> publish.TableDocs:
    """The table and column COMMENTs of `catalog`.marts (those dbt's persist_docs and `comment_marts` wrote)."""
    comments = {
        t: c
        for t, c in con.execute(
            "select table_name, comment from duckdb_tables() where database_name = ? and schema_name = 'marts'",
            [catalog],
        ).fetchall()
    }
    columns: dict[str, dict[str, str]] = {}
    for table, column, comment in con.execute(
        "select table_name, column_name, comment from duckdb_columns() where database_name = ? "
        "and schema_name = 'marts' and comment is not null",
        [catalog],
    ).fetchall():
        columns.setdefault(table, {})[column] = comment
    return {t: (comments.get(t) or "", columns.get(t, {})) for t in tables}


def byte_copy(warehouse: Path, target: Path) -> None:
    """Both files (the warehouse and the marts' own), as one file held both before issue 12."""
    with wh.connect(warehouse) as con:
        con.execute("checkpoint")
        con.execute(f"checkpoint {wh.MARTS_CATALOG}")
    shutil.copyfile(warehouse, target)
    shutil.copyfile(wh.marts_path(warehouse), wh.marts_path(target))


def whole_in_v11(warehouse: Path, target: Path) -> None:
    with wh.connect(warehouse) as con:
        source = con.execute("select current_database()").fetchall()[0][0]
        con.execute(f"attach {sql_string(target)} as whole (storage_version 'v1.1.0')")
        try:
            con.execute(f"copy from database {wh.sql_identifier(source)} to whole")
            con.execute(f"copy from database {wh.MARTS_CATALOG} to whole")
        finally:
            con.execute("detach whole")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="the --workdir of a benchmarks/pipeline.py run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stages", default="ingest,snapshot")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    landings = [p.parent for p in (workdir / "landing").glob("*/_complete")]
    if len(landings) != 1:
        sys.exit(f"expected one synthetic landing in {workdir / 'landing'}, found {len(landings)}")
    landing = landings[0]
    warehouse = workdir / "warehouse.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        first, last = con.execute("select min(order_date), max(order_date) from raw.orders").fetchall()[0]
    window = Window(first, last, last, first_partition=first, partition_start=first)
    scratch = Path(tempfile.mkdtemp(prefix="clv-trust-"))
    clock = CheckClock()
    variants: dict[str, dict[str, Callable[[], object]]] = {
        "ingest": {
            "keyed (today)": lambda: load_orders(KEYED_ORDERS, landing, window, scratch),
            "unkeyed, per row (before issue 12)": lambda: load_orders(UNKEYED_ORDERS, landing, window, scratch),
            "unkeyed, per distinct address": lambda: load_orders(UNKEYED_DISTINCT_ORDERS, landing, window, scratch),
        },
        "snapshot": {
            "marts file, byte copy (today)": lambda: snapshot_today(warehouse, _fresh(scratch / "snapshot.duckdb")),
            "marts rewritten in v1.1 (session 8)": lambda: marts_rewritten(warehouse, _fresh(scratch / "mv11.duckdb")),
            "both files, byte copy (before issue 12)": lambda: byte_copy(warehouse, _fresh(scratch / "copy.duckdb")),
            "everything in v1.1": lambda: whole_in_v11(warehouse, _fresh(scratch / "whole.duckdb")),
        },
    }
    results: dict[str, dict[str, list[tuple[float, float]]]] = {}
    check_seconds: list[float] = []
    try:
        for stage in args.stages.split(","):
            names = list(variants[stage])
            for repeat in range(args.repeats):
                for name in names if repeat % 2 == 0 else reversed(names):
                    clock.seconds = 0.0
                    wall, cpu = timed(variants[stage][name])
                    results.setdefault(stage, {}).setdefault(name, []).append((wall, cpu))
                    if name == "keyed (today)":
                        check_seconds.append(clock.seconds)
                    print(f"  {stage:<9} {name:<42} {wall:6.2f} s wall {cpu:6.2f} s CPU", flush=True)
            if stage == "snapshot":
                print(
                    "  sizes: "
                    + ", ".join(f"{p.name} {p.stat().st_size / 1e6:,.0f} MB" for p in scratch.glob("*.duckdb"))
                )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"\nmedians of {args.repeats} ({os.cpu_count()} cores):")
    for stage, by_name in results.items():
        baseline = None
        for name, runs in by_name.items():
            wall = statistics.median(w for w, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            baseline = baseline or wall
            print(f"  {stage:<9} {name:<42} {wall:6.2f} s wall {cpu:6.2f} s CPU  ({wall / baseline:.2f}x)")
    if check_seconds:
        print(f"  blocking checks inside the keyed load: {statistics.median(check_seconds):.3f} s")


def _fresh(path: Path) -> Path:
    for stale in (path, Path(f"{path}.wal")):
        stale.unlink(missing_ok=True)
    return path


if __name__ == "__main__":
    main()
