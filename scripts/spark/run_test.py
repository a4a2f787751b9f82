"""`make test-spark`: the dbt models on a local Spark (dbt-spark, method: session) equal DuckDB's, full and daily.

A small synthetic shop goes through the normal pipeline (`clv`, DuckDB) as files, in four runs:
  A  full run as of D                                    (history export orders_1.csv)
  B  daily run of D+1 on a copy of A: a new export orders_2.csv with the day's orders, a refund booked 40 days
     late, a cancellation 100 days late, every order of day D-75 cancelled (before the look-back: the window widens)
     and every order of D-2 cancelled; every order of D-3 deleted from orders_1.csv (inside the look-back window)
  C  full rebuild as of D+1 on a copy of A with the same files     (what B must equal)
  R  B moved back to as of D (`clv backfill --start D --end D --as-of D`): the month of D+1 leaves the marts
After A, B and R, the raw tables the dbt sources read are exported to Parquet and loaded into Spark's raw.*, and
dbt builds every model and runs every test on Spark: A with --full-refresh, B and R incrementally on top of the
previous Spark build, as the pipeline runs dbt on DuckDB. Every mart and incremental intermediate Spark built is
compared row by row with DuckDB's (A with A, B with C, R with R), and the CLV fit and scoring (polars, scipy) run on
the customer-level summary Spark exported are compared with the DuckDB run's customer_clv, clv_model_fit and
segment_clv. Spark runs in one JVM beside the DuckDB runs (scripts/spark/spark_side.py, in .venv-spark).

The last line is `marts: N passed, M failed` — N tables equal out of N + M compared. Exit code 0 only if all are.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(PROJECT))

import compare  # noqa: E402

from pipelines.contract import DBT_MARTS  # noqa: E402
from pipelines.sources.synthetic import SyntheticShopConfig, generate_shop  # noqa: E402

SPARK_PYTHON = PROJECT / ".venv-spark" / "bin" / "python"
START, D = date(2024, 7, 1), date(2025, 6, 30)
NEXT = D + timedelta(days=1)
TABLES = [f"marts.{t}" for t in DBT_MARTS] + ["intermediate.int_customer_totals", "intermediate.int_customer_months"]
HASH_KEY_HEX = "5e" * 32  # a fixed e-mail hash key: nothing is written to ~/.config
ANNUAL_DISCOUNT_RATE, DEFAULT_MARGIN_RATE = 0.10, 0.40


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------------------------------------- the DuckDB side


def run_clv(data_dir: Path, raw_dir: Path, *args: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLV_")}
    env.update(
        {
            "CLV_DATA_DIR": str(data_dir),
            "CLV_RECORD_RUNS": "0",
            "DAGSTER_HOME": str(data_dir / "dagster_home"),
            "CLV_HASH_KEY": HASH_KEY_HEX,
            "CLV_START_DATE": START.isoformat(),
            "CLV_SOURCE": "files",
            "CLV_RAW_DIR": str(raw_dir),
            "CLV_REFIT_DAYS": "1",  # every run fits: Spark's side fits too
            # the model a back-test over every order would pick otherwise (compare.PURCHASE_MODEL)
            "CLV_PURCHASE_MODEL": compare.PURCHASE_MODEL,
            "CLV_ANNUAL_DISCOUNT_RATE": str(ANNUAL_DISCOUNT_RATE),
            "CLV_DEFAULT_MARGIN_RATE": str(DEFAULT_MARGIN_RATE),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise SystemExit(
            f"clv {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return time.monotonic() - started


def copy_data(source: Path, target: Path) -> Path:
    shutil.copytree(
        source,
        target,
        ignore=shutil.ignore_patterns("dagster_home", "*.run-lock", "published", "exports", "report", "docs", "logs"),
    )
    return target


def as_text(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(pl.all().cast(pl.String))


def write_shop(work: Path, customers: int) -> tuple[Path, Path, dict]:
    """(raw dir as of D, raw dir as of D+1, the edge cases) as files the `files` source reads."""
    shop = generate_shop(
        SyntheticShopConfig(n_customers=customers, start_date=START, end_date=NEXT, seed=11, dirty_rows=0)
    )
    day = pl.col("ordered_at").dt.date()
    orders = shop.orders
    # the history export as of D knows no refund booked after D
    history = orders.filter(day <= D).with_columns(
        refunded_amount=pl.when(pl.col("refunded_at").dt.date() > D).then(0.0).otherwise(pl.col("refunded_amount")),
        refunded_at=pl.when(pl.col("refunded_at").dt.date() > D).then(None).otherwise(pl.col("refunded_at")),
    )
    first = work / "raw_d"
    first.mkdir()
    as_text(history).write_csv(first / "orders_1.csv")
    shop.marketing_spend.filter(pl.col("date") <= D).write_parquet(first / "marketing_spend.parquet")
    shop.cart_events.filter(pl.col("event_at").dt.date() <= D).write_parquet(first / "cart_events.parquet")

    plain = (pl.col("status") == "completed") & (pl.col("refunded_amount") == 0)
    refund = history.filter(plain & (day >= D - timedelta(days=40))).sort("ordered_at").row(0, named=True)
    cancel = history.filter(plain & (day >= D - timedelta(days=100))).sort("ordered_at").row(0, named=True)
    cases = {
        "day cancelled before the window": D - timedelta(days=75),
        "day cancelled in the window": D - timedelta(days=2),
        "day deleted in the window": D - timedelta(days=3),
    }
    for name, when in cases.items():
        assert history.filter(day == when).height, f"no orders on {when} ({name})"
    changed = pl.concat(
        [
            history.filter(pl.col("order_id") == refund["order_id"]).with_columns(
                refunded_amount=pl.lit(round(refund["net_revenue"] / 2, 2)),
                refunded_at=pl.lit(refund["ordered_at"].replace(year=NEXT.year, month=NEXT.month, day=NEXT.day)),
            ),
            history.filter(pl.col("order_id") == cancel["order_id"]).with_columns(status=pl.lit("cancelled")),
            history.filter(
                day.is_in([cases["day cancelled before the window"], cases["day cancelled in the window"]])
            ).with_columns(status=pl.lit("cancelled")),
            orders.filter(day == NEXT),
        ]
    )
    second = work / "raw_next"
    second.mkdir()
    as_text(history.filter(day != cases["day deleted in the window"])).write_csv(second / "orders_1.csv")
    as_text(changed).write_csv(second / "orders_2.csv")
    shop.marketing_spend.write_parquet(second / "marketing_spend.parquet")
    shop.cart_events.write_parquet(second / "cart_events.parquet")
    return first, second, {**cases, "late refund": refund["order_id"], "late cancellation": cancel["order_id"]}


# ----------------------------------------------------------------------------------------------- the Spark side


def tree_rss_mb(pid: int) -> dict[str, float]:
    """Resident memory (MB) of a process and all its descendants by command name (the JVM is a child of the
    Spark-side Python). Proportional set sizes (Pss): the JVM forks short-lived helpers (Hadoop's shell calls) whose
    RSS would count its pages twice."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    by_name: dict[str, float] = {}
    stack = [pid]
    while stack:
        current = stack.pop()
        stack.extend(children.get(current, []))
        try:
            name = Path(f"/proc/{current}/comm").read_text().strip()
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        rss = next((int(line.split()[1]) for line in rollup if line.startswith("Pss:")), 0)
        by_name[name] = by_name.get(name, 0.0) + rss / 1024
    return by_name


class SparkSide:
    """scripts/spark/spark_side.py in .venv-spark, fed one step per line; its peak memory sampled."""

    def __init__(self, work: Path):
        env = {**os.environ, "CLV_SPARK_DIR": str(work / "spark"), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
        self.log_path = work / "spark_side.log"
        self.out_dirs: list[Path] = []
        with open(self.log_path, "w") as output:  # dbt's and Spark's console output
            self.proc = subprocess.Popen(
                [str(SPARK_PYTHON), str(HERE / "spark_side.py"), "-"],
                cwd=PROJECT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self.started = time.monotonic()
        self.peak_mb = 0.0
        self.peak_by_process: dict[str, float] = {}
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while self.proc.poll() is None:
            sample = tree_rss_mb(self.proc.pid)
            if sum(sample.values()) > self.peak_mb:
                self.peak_mb, self.peak_by_process = sum(sample.values()), sample
            time.sleep(0.2)

    def peak(self) -> str:
        parts = ", ".join(f"{name} {mb:,.0f}" for name, mb in sorted(self.peak_by_process.items(), key=lambda i: -i[1]))
        return f"peak RSS {self.peak_mb:,.0f} MB ({parts})"

    def submit(self, name: str, raw_dir: Path, out_dir: Path, full_refresh: bool) -> None:
        self.out_dirs.append(out_dir)
        try:
            self.proc.stdin.write(
                json.dumps(
                    {"name": name, "raw_dir": str(raw_dir), "out_dir": str(out_dir), "full_refresh": full_refresh}
                )
                + "\n"
            )
            self.proc.stdin.flush()
        except BrokenPipeError:  # it stopped (a failed build): finish() reports it
            pass

    def finish(self) -> tuple[list[dict], int, float]:
        self.proc.stdin.close()
        code = self.proc.wait()
        results = [json.loads((d / "_step.json").read_text()) for d in self.out_dirs if (d / "_step.json").exists()]
        self._sampler.join()
        return results, code, time.monotonic() - self.started


# ---------------------------------------------------------------------------------------------------- the test


def fct_orders_days(spark_dir: Path, days: list[date]) -> dict[date, int]:
    frame = pl.read_parquet(str(spark_dir / "marts.fct_orders" / "*.parquet"))
    return {d: frame.filter(pl.col("order_date") == d).height for d in days}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1500)
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temporary directory, removed)")
    args = parser.parse_args()
    if not SPARK_PYTHON.exists():
        raise SystemExit(f"{SPARK_PYTHON} is missing: run scripts/spark/setup.sh (make test-spark does)")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="clv-spark-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        return run(work, args.customers, started)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, customers: int, started: float) -> int:
    spark = SparkSide(work)  # the JVM starts while DuckDB builds the shop
    raw_d, raw_next, cases = write_shop(work, customers)
    seconds = {}
    a = work / "A" / "data"
    seconds["A full as of D"] = run_clv(a, raw_d, "run", "--as-of", D.isoformat())
    compare.export_raw(a / "warehouse.duckdb", work / "raw_A")
    spark.submit("A", work / "raw_A", work / "spark_A", full_refresh=True)
    log(f"DuckDB A (full run as of {D}) in {seconds['A full as of D']:.0f} s; Spark builds it (--full-refresh)")

    b = copy_data(a, work / "B" / "data")
    seconds["B daily D+1"] = run_clv(b, raw_next, "backfill", "--start", NEXT.isoformat(), "--end", NEXT.isoformat())
    compare.export_raw(b / "warehouse.duckdb", work / "raw_B")
    spark.submit("B", work / "raw_B", work / "spark_B", full_refresh=False)
    con = duckdb.connect(str(b / "warehouse.duckdb"), read_only=True)
    as_of, window_start = con.execute("select as_of, window_start from raw.run_context").fetchall()[0]
    con.close()
    log(
        f"DuckDB B (daily run of {NEXT}) in {seconds['B daily D+1']:.0f} s: the models rebuild from {window_start} "
        f"(as of {as_of}); Spark runs the same incremental build"
    )

    c = copy_data(a, work / "C" / "data")
    seconds["C full as of D+1"] = run_clv(c, raw_next, "run", "--as-of", NEXT.isoformat())
    log(f"DuckDB C (full rebuild as of {NEXT}) in {seconds['C full as of D+1']:.0f} s")

    r = copy_data(b, work / "R" / "data")
    seconds["R as-of back to D"] = run_clv(
        r, raw_next, "backfill", "--start", D.isoformat(), "--end", D.isoformat(), "--as-of", D.isoformat()
    )
    compare.export_raw(r / "warehouse.duckdb", work / "raw_R")
    spark.submit("R", work / "raw_R", work / "spark_R", full_refresh=False)
    log(f"DuckDB R (B moved back to as of {D}) in {seconds['R as-of back to D']:.0f} s; Spark follows")

    steps, code, spark_seconds = spark.finish()
    by_name = {s["step"]: s for s in steps}
    for step in steps:
        log(
            f"Spark step {step['step']}: load {step['load_seconds']} s, dbt build {step['build_seconds']} s "
            f"({'--full-refresh' if step['full_refresh'] else 'incremental'}; {step['results']}), export "
            f"{step['export_seconds']} s; fct_orders month partitions {step['partitions']}"
        )
    if code != 0 or set(by_name) != {"A", "B", "R"} or not all(s["dbt_success"] for s in steps):
        print((work / "spark_side.log").read_text()[-6000:], file=sys.stderr)
        print(f"Spark build failed (exit {code}); see above")
        print("marts: 0 passed, 1 failed")
        return 1

    results: list[tuple[str, compare.Comparison]] = []
    for label, spark_dir, warehouse in (
        ("A full, Spark vs DuckDB", work / "spark_A", a),
        ("B daily on Spark vs DuckDB full rebuild C", work / "spark_B", c),
        ("R as-of moved back, Spark vs DuckDB", work / "spark_R", r),
    ):
        comparisons = compare.compare_dbt_tables(warehouse / "warehouse.duckdb", spark_dir, TABLES)
        comparisons += compare.compare_polars(
            warehouse / "warehouse.duckdb", spark_dir, ANNUAL_DISCOUNT_RATE, DEFAULT_MARGIN_RATE
        )
        print(f"{label}:")
        for comparison in comparisons:
            print(comparison.line())
            results.append((label, comparison))

    # the edge cases really are in the data: their days had orders before, none after the daily run on Spark
    days = [
        cases["day cancelled before the window"],
        cases["day cancelled in the window"],
        cases["day deleted in the window"],
        NEXT,
    ]
    before, after, back = (fct_orders_days(work / s, days) for s in ("spark_A", "spark_B", "spark_R"))
    print("Spark fct_orders rows per day (A full as of D → B daily → R as of D again):")
    for name, day in list(
        zip(("day cancelled before the window", "day cancelled in the window", "day deleted in the window"), days)
    ) + [("the new day D+1", NEXT)]:
        print(f"  {day} {name:<32} {before[day]:>3} → {after[day]:>3} → {back[day]:>3}")
    cleared = all(before[d] > 0 and after[d] == 0 for d in days[:3]) and after[NEXT] > 0 and back[NEXT] == 0
    if not cleared:
        results.append(("edge cases", compare.Comparison("edge-case days", problems=["not cleared as expected"])))

    equal = sum(1 for _, c in results if c.equal)
    total_seconds = time.monotonic() - started
    print("DuckDB runs: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    print(
        f"Spark (one JVM, local[2]): {spark_seconds:.0f} s in all, {spark.peak()}; "
        f"test-spark total {total_seconds:.0f} s"
    )
    print(
        f"{len(results)} tables compared (8 dbt marts, 2 incremental intermediates, 3 polars marts; × 3 builds): "
        f"{equal} equal"
    )
    print(f"marts: {equal} passed, {len(results) - equal} failed")
    return 0 if equal == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
