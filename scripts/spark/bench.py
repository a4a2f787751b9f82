"""Spark's cost for the incremental strategy on a larger warehouse (the figures in docs/spark.md):

    .venv/bin/python benchmarks/pipeline.py --orders 1000000 --workdir /tmp/bench1m      # a DuckDB warehouse
    .venv/bin/python scripts/spark/bench.py --warehouse /tmp/bench1m/data/warehouse.duckdb

Loads its raw tables into a local Spark (scripts/spark/spark_side.py, one JVM), then runs
  full    dbt build --full-refresh                       (every table rebuilt: what a table-only strategy costs daily)
  daily   dbt build, incremental, window = the last 7 days of the as-of date (a daily run with its look-back:
          fct_orders and int_customer_months replace their month partitions from the window's month on,
          int_customer_totals is rebuilt whole)
and prints wall time, the dbt build's time and the three large models' times for each, and the process tree's
peak RSS. Same raw data for both: the difference is the strategy, not the data.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import compare  # noqa: E402
from run_test import SparkSide  # noqa: E402

LARGE_MODELS = ("fct_orders", "int_customer_totals", "int_customer_months")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--lookback-days", type=int, default=7)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="clv-spark-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        compare.export_raw(args.warehouse, work / "raw_full")
        con = duckdb.connect()
        context = str(work / "raw_full" / "run_context.parquet").replace("'", "''")
        orders_file = str(work / "raw_full" / "orders.parquet").replace("'", "''")
        as_of, margin = con.execute(
            f"select coalesce(as_of, (select max(order_date) from read_parquet("
            f"'{orders_file}'))), default_margin_rate "
            f"from read_parquet('{context}')"
        ).fetchall()[0]
        window_start = as_of - timedelta(days=args.lookback_days - 1)
        shutil.copytree(work / "raw_full", work / "raw_daily")
        daily_context = str(work / "raw_daily" / "run_context.parquet").replace("'", "''")
        con.execute(
            f"copy (select cast(? as date) as as_of, cast(? as date) as window_start, "
            f"cast(? as double) as default_margin_rate) to '{daily_context}' (format parquet)",
            [as_of, window_start, margin],
        )
        orders = con.execute(f"select count(*) from read_parquet('{orders_file}')").fetchall()[0][0]
        con.close()
        spark = SparkSide(work)
        spark.submit("full", work / "raw_full", work / "out_full", full_refresh=True)
        spark.submit("daily", work / "raw_daily", work / "out_daily", full_refresh=False)
        steps, code, seconds = spark.finish()
        print(f"{orders:,} raw orders, as of {as_of}; daily window from {window_start}")
        for step in steps:
            timings = json.loads((work / f"out_{step['step']}" / "run_results.json").read_text())
            models = {r["unique_id"].rsplit(".", 1)[1]: r["execution_time"] for r in timings["results"]}
            print(
                f"{step['step']:>5}: dbt build {step['build_seconds']} s ({step['results']}); "
                + ", ".join(f"{m} {models[m]:.1f} s" for m in LARGE_MODELS)
                + f"; load {step['load_seconds']} s, export {step['export_seconds']} s"
            )
        print(f"Spark process tree: {seconds:.0f} s in all, {spark.peak()}; exit {code}")
        return code
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
