"""`clv`: run or backfill the same Dagster job the UI and the schedule run (no second code path).

Flags set the `CLV_*` environment variables, which is all the job reads; the run is recorded in the Dagster
instance under DAGSTER_HOME (default: ./dagster_home), so it shows in the UI's run history.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

from pipelines import contract
from pipelines.run_window import as_of_problem
from pipelines.settings import PROJECT_ROOT, Settings, recorded_history_start, yesterday_utc


class _Parser(argparse.ArgumentParser):
    """argparse's usage errors in one line like every other user error (exit code 2); --help is unchanged. The
    subparsers are of the same class (argparse makes them with the main parser's)."""

    def error(self, message: str):
        self.exit(2, f"clv: error: {' '.join(message.split())}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="clv", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--source",
            choices=["synthetic", "files", "postgres"],
            help="input source (CLV_SOURCE; default synthetic; postgres reads CLV_DATABASE_URL)",
        )
        p.add_argument("--raw-dir", help="directory of orders*/marketing_spend*/cart_events* files (CLV_RAW_DIR)")
        p.add_argument("--warehouse", help="DuckDB file (CLV_WAREHOUSE; default data/warehouse.duckdb)")
        p.add_argument(
            "--start-date",
            help="first partition / first day of history (CLV_START_DATE; default: the first order date of the data)",
        )

    run = sub.add_parser("run", help="load every partition up to the as-of date and rebuild every asset")
    common(run)
    run.add_argument(
        "--as-of", help="point in time, YYYY-MM-DD: nothing after it is used (CLV_AS_OF; default yesterday UTC)"
    )
    backfill = sub.add_parser(
        "backfill", help="reload the partitions START..END (inclusive) in one run and refresh everything downstream"
    )
    common(backfill)
    backfill.add_argument("--start", required=True, help="first partition, YYYY-MM-DD")
    backfill.add_argument("--end", required=True, help="last partition, YYYY-MM-DD")
    backfill.add_argument("--as-of", help="point in time for the marts (default: the newest loaded day)")
    for command in (run, backfill):
        command.add_argument(
            "--accept-bad-input",
            action="store_true",
            help="load even when a blocking data check fails (reject rate, no valid rows, a "
            "collapsed row count); CLV_ACCEPT_BAD_INPUT=1",
        )
    return parser


class UsageError(Exception):
    """A mistake in the command line or the configuration: one line on stderr, exit code 2."""


def _date_flag(flag: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{flag} {value!r} is not a date: expected YYYY-MM-DD, e.g. 2025-01-05") from None


def _apply_flags(args: argparse.Namespace) -> None:
    # Dates are checked here, in the flags' words, before the settings read them from the environment.
    for flag, value in (("--as-of", getattr(args, "as_of", None)), ("--start-date", getattr(args, "start_date", None))):
        if value:
            _date_flag(flag, value)
    if args.raw_dir and not Path(args.raw_dir).is_dir():
        what = "a file" if Path(args.raw_dir).exists() else "missing"
        raise UsageError(f"--raw-dir {args.raw_dir}: {what}, not a directory of orders*/marketing_spend* files")
    if args.warehouse and Path(args.warehouse).is_dir():
        raise UsageError(
            f"--warehouse {args.warehouse}: a directory; give the DuckDB file, "
            f"e.g. {Path(args.warehouse) / 'warehouse.duckdb'}"
        )
    for flag, env in (
        ("source", "CLV_SOURCE"),
        ("raw_dir", "CLV_RAW_DIR"),
        ("warehouse", "CLV_WAREHOUSE"),
        ("start_date", "CLV_START_DATE"),
        ("as_of", "CLV_AS_OF"),
    ):
        value = getattr(args, flag, None)
        if value:
            os.environ[env] = str(Path(value).resolve()) if flag in ("raw_dir", "warehouse") else value
    if getattr(args, "accept_bad_input", False):
        os.environ["CLV_ACCEPT_BAD_INPUT"] = "1"
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / "dagster_home"))
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")


def _failure_cause(error) -> str:
    """The innermost cause of a step failure, in one line, without Dagster's wrapper or the exception's module."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    cls = error.cls_name or ""
    message = " ".join(error.message.split())
    head, sep, rest = message.partition(": ")  # Dagster prefixes the (qualified) class name
    if sep and head.split(".")[-1] == cls:
        message = rest
    return message if cls == "Failure" else f"{cls}: {message}"


@contextmanager
def _output_to(log_path: Path) -> Iterator:
    """Everything the run prints (Dagster's event stream, dbt) goes to the log file, descriptors included; yields
    a stream to the terminal (the progress lines)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        console = os.fdopen(os.dup(saved[0]), "w", buffering=1)
        try:
            yield console
        finally:
            console.close()
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def execute(
    start: date,
    end: date,
    as_of: date | None,
    load_start: date | None = None,
    *,
    lock_held: bool = False,
    progress=None,
) -> str | None:
    """Run the pipeline job for partitions start..end in this process, recorded in the Dagster instance.
    `load_start` widens the order dates the run reloads beyond its partitions (full-history `clv run`).
    Returns None on success, else the failed step and its cause in one line. `lock_held`: the caller holds the
    warehouse's run lock already (the run's resource must not wait for it). `progress`: called with each event
    of the run as it is stored (pipelines/progress.py)."""
    from dagster import DagsterInstance
    from dagster._core.utils import make_new_run_id

    from pipelines import run_health
    from pipelines.defs.definitions import defs
    from pipelines.run_window import AS_OF_TAG, LOAD_START_TAG, PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG

    if start == end:
        tags = {PARTITION_TAG: start.isoformat()}
    else:
        tags = {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()}
    if as_of:
        tags[AS_OF_TAG] = as_of.isoformat()
    if load_start:
        tags[LOAD_START_TAG] = load_start.isoformat()
    job = defs.resolve_job_def("clv_pipeline")
    # Recording in DAGSTER_HOME shows the run in the UI; an ephemeral instance skips Dagster's per-partition
    # bookkeeping in SQLite (two events per partition, batched: pipelines/event_storage.py), which tests skip.
    record = os.environ.get("CLV_RECORD_RUNS", "1") != "0"
    # This process owns the run: if it dies, the run is marked failed (pipelines/run_health.py), so queued runs
    # never wait behind it; runs of earlier `clv` processes that died are marked failed here.
    tags.update(run_health.owner_tags())
    run_id = make_new_run_id()
    with DagsterInstance.get() if record else DagsterInstance.ephemeral() as instance:
        run_health.sweep(instance, log=lambda m: progress.write(f"{m}\n") if progress is not None else print(m))
        if progress is not None:
            instance.add_event_listener(run_id, progress)
        run_config = {"resources": {"warehouse": {"config": {"hold_run_lock": False}}}} if lock_held else None
        result = job.execute_in_process(
            instance=instance, tags=tags, raise_on_error=False, run_config=run_config, run_id=run_id
        )
    if result.success:
        return None
    failures = [event for event in result.all_events if event.is_step_failure]
    if not failures:
        return "the start of the run (no step reported a failure; see the log)."
    first = failures[0]
    cause = _failure_cause(first.step_failure_data.error).rstrip(".")
    return f"step {first.step_key}: {cause}."


def summary(settings: Settings) -> str:
    from pipelines.sources.files import BEFORE_FIRST_PARTITION
    from pipelines.warehouse import connect, marts_path, reporting_currency, table_names

    with connect(settings.warehouse, read_only=True) as con:
        # customers from dim_customers (one row each): a distinct count over every order costs 0.5 s at 10 M
        customers, orders, revenue, margin, first, last = con.execute(
            "select (select count(*) from marts.dim_customers), count(*), sum(revenue), sum(gross_margin), "
            "min(order_date), max(order_date) from marts.fct_orders"
        ).fetchone()
        rejected = con.execute("select count(*) from raw.rejected_orders where kind = 'invalid'").fetchone()[0]
        before_start = con.execute(
            "select count(*) from raw.rejected_orders where kind = 'invalid' and source_table = 'orders' "
            "and contains(reason, ?)",
            [BEFORE_FIRST_PARTITION],
        ).fetchall()[0][0]
        currency = reporting_currency(con)
        existing = table_names(con, "marts")
        counts = [
            (t, con.execute(f"select count(*) from marts.{t}").fetchone()[0]) for t in contract.MARTS if t in existing
        ]
    lines = [
        f"Warehouse: {settings.warehouse} (live marts: {marts_path(settings.warehouse).name} beside it)",
        f"BI snapshot (read-only): {settings.published_dir / 'warehouse.duckdb'}",
        f"Parquet exports: {settings.exports_dir}/<mart>.parquet (fct_orders/<YYYY-MM>.parquet)    "
        f"Report: {settings.report_dir / 'index.html'}",
        (f"Orders {first} .. {last}: " if orders else "Orders: none in the marts; ")
        + f"{orders:,} orders, {customers:,} customers, revenue {revenue or 0:,.2f}, "
        f"gross margin {margin or 0:,.2f}{' ' + currency if currency else ''}; "
        f"{rejected} input rows quarantined in raw.rejected_orders",
        "Marts (rows): " + ", ".join(f"{t} {n:,}" for t, n in counts),
    ]
    if settings.source == "files" and settings.raw_dir is not None:
        from pipelines.privacy import redact
        from pipelines.sources.files import unloaded_files

        unloaded = unloaded_files(settings.raw_dir)
        if unloaded:
            lines.append(redact(f"Not loaded from {settings.raw_dir}: " + "; ".join(unloaded)))
    if before_start:  # last: what this run left out because of a setting
        lines.append(
            f"{before_start:,} orders dated before the first partition {settings.start_date} "
            "(CLV_START_DATE) are quarantined in raw.rejected_orders: set it earlier, or unset it to start "
            "at the data's first order"
        )
    return "\n".join(lines)


def _history_from_data(settings: Settings) -> Settings:
    """A full run of real data starts its partitions at the data's first order date (unless CLV_START_DATE is set):
    recorded beside the warehouse for the daily runs and the UI, which read it through Settings."""
    if settings.start_date_explicit or settings.source == "synthetic":
        return settings
    from pipelines.settings import record_history_start

    if settings.source == "postgres":
        from pipelines.sources.postgres import earliest_order_date

        first = earliest_order_date(settings)
    else:
        from pipelines.sources.files import earliest_order_date

        first = earliest_order_date(settings.raw_dir)
    if first is None or first == settings.start_date:
        return settings
    record_history_start(settings.warehouse, first)
    return Settings.from_env()


def _undo_history_start(warehouse: Path, before: date | None) -> None:
    """After a failed run: the history start recorded for it (`_history_from_data`) stands only if raw.orders took
    the new history, i.e. holds orders and none before it. A load that was blocked leaves the old orders, so what
    was recorded before is put back (or nothing, if nothing was): the first partition never moves past the
    data the warehouse holds."""
    from pipelines import warehouse as wh
    from pipelines.settings import forget_history_start, record_history_start

    recorded = recorded_history_start(warehouse)
    if recorded is None or recorded == before:
        return
    first = None
    if warehouse.exists():
        with wh.connect(warehouse, read_only=True) as con:
            if "orders" in wh.table_names(con, "raw"):
                first = con.execute("select min(order_date) from raw.orders").fetchone()[0]
    if first is not None and first >= recorded:
        return
    if before is None:
        forget_history_start(warehouse)
    else:
        record_history_start(warehouse, before)


def _plan(args: argparse.Namespace, settings: Settings) -> tuple[date, date, date | None, date | None]:
    """(first partition, last partition, explicit as-of, first order date to reload) of the command. The explicit
    as-of is --as-of or CLV_AS_OF (the flag sets the variable): the same checks, said in the words it came in."""
    today = datetime.now(UTC).date()
    explicit = settings.as_of
    named = f"--as-of {explicit}" if args.as_of else f"CLV_AS_OF={explicit}"
    if args.command == "run":
        # Every partition up to the as-of day, in one run: the UI then shows each loaded day as materialized.
        as_of = explicit or yesterday_utc()
        problem = as_of_problem(as_of, named if explicit else f"--as-of {as_of}", settings.start_date)
        if problem:
            raise UsageError(problem)
        return settings.start_date, as_of, as_of, None
    start, end = _date_flag("--start", args.start), _date_flag("--end", args.end)
    if start > end:
        raise UsageError(f"--start {start} is after --end {end}")
    if start < settings.start_date:
        raise UsageError(f"--start {start} is before the first partition {settings.start_date} (--start-date)")
    if end > today:
        raise UsageError(f"--end {end} is in the future (today is {today} UTC)")
    problem = explicit and as_of_problem(explicit, named, settings.start_date, start, "--start")
    if problem:
        raise UsageError(problem)
    return start, end, explicit, None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _apply_flags(args)
        settings = Settings.from_env()
        settings.hash_key()  # created on the first run; a damaged key file is a configuration error
        if settings.source == "postgres":  # unreachable, wrong password, missing relation or column: say so now
            from pipelines.sources.postgres import check_source

            check_source(settings)
        history_before = recorded_history_start(settings.warehouse)
        if args.command == "run":
            settings = _history_from_data(settings)
        start, end, explicit, load_start = _plan(args, settings)
    except (UsageError, ValueError) as exc:
        print(f"clv: {exc}", file=sys.stderr)
        return 2
    log_path = settings.data_dir / "logs" / f"clv-{args.command}-{datetime.now():%Y%m%dT%H%M%S}-{os.getpid()}.log"
    print(
        f"clv {args.command}: partitions {start}..{end}, order dates from {load_start or start}, "
        f"source {settings.source}, as of {explicit or 'the newest loaded day'}"
    )
    print(f"Full log: {log_path}", flush=True)
    from pipelines.progress import StepProgress
    from pipelines.warehouse import exclusive_warehouse

    started = datetime.now()
    # The CLI takes the run lock itself, so a wait for another run is said here, not only in the log.
    with exclusive_warehouse(settings.warehouse, log=lambda message: print(message, flush=True)):
        with _output_to(log_path) as console:
            progress = StepProgress(console.write)  # one line per finished step on the terminal
            try:
                failure = execute(start, end, explicit, load_start, lock_held=True, progress=progress)
            except Exception as exc:  # outside any step (Dagster itself): the traceback goes to the log
                traceback.print_exc()
                failure = f"the start of the run: {type(exc).__name__}: {' '.join(str(exc).split())}."
    if failure:
        _undo_history_start(settings.warehouse, history_before)
        published = (settings.published_dir / "warehouse.duckdb").exists()
        kept = "BI still reads the last complete run" if published else "there is no complete run yet"
        print(
            f"clv: the run failed at {failure} Nothing was published; {kept}. Full log: {log_path}",
            file=sys.stderr,
        )
        return 1
    print(f"clv {args.command}: done in {(datetime.now() - started).total_seconds():.0f} s ({progress.summary()}).")
    print(summary(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
