"""The Spark half of `make test-spark` (runs in .venv-spark: pyspark + dbt-spark, not the project's venv).

One JVM for every step: the Spark session is created here with the `spark` target's settings from
dbt_project/profiles.yml, and dbt-spark (method: session) reuses it. A step:
  1. loads a raw snapshot (Parquet files exported from the DuckDB warehouse, one per raw table) into Spark's raw.*,
  2. runs `dbt build --target spark` (with --full-refresh or incremental, as the step says),
  3. exports every mart and intermediate table dbt built, and the customer-level summaries the polars steps
     read, to Parquet for the comparison (scripts/spark/compare.py, in the project's venv).

Usage: spark_side.py STEP_JSON...   or   spark_side.py -   (one STEP_JSON per line on stdin, run as they come)
each STEP_JSON: {"name", "raw_dir", "out_dir", "full_refresh": bool}. Prints one JSON line per step (timings, dbt
results by status, rows loaded and exported), also written to <out_dir>/_step.json; stops at the first failed
build. dbt's console output goes to stdout too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[2]
DBT_DIR = PROJECT / "dbt_project"


def spark_conf() -> dict[str, str]:
    """server_side_parameters of the profile's spark output, with env_var('X', 'default') resolved as dbt does."""
    profile = yaml.safe_load((DBT_DIR / "profiles.yml").read_text())["clv_warehouse"]["outputs"]["spark"]

    def render(value: str) -> str:
        def env(match: re.Match) -> str:
            return os.environ.get(match.group(1), match.group(3) or "")

        return re.sub(r"\{\{\s*env_var\('([^']+)'(\s*,\s*'([^']*)')?\)\s*\}\}", env, str(value))

    return {key: render(value) for key, value in profile["server_side_parameters"].items()}


def session():
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.enableHiveSupport()
    for key, value in spark_conf().items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def load_raw(spark, raw_dir: Path) -> dict[str, int]:
    """raw.<table> from <raw_dir>/<table>.parquet, replacing what was there."""
    spark.sql("create database if not exists raw")
    rows = {}
    for path in sorted(raw_dir.glob("*.parquet")):
        frame = spark.read.parquet(str(path))
        frame.write.mode("overwrite").format("parquet").saveAsTable(f"raw.{path.stem}")
        rows[path.stem] = spark.table(f"raw.{path.stem}").count()
    return rows


def dbt_build(full_refresh: bool, log_dir: Path) -> tuple[bool, dict[str, int]]:
    from dbt.cli.main import dbtRunner

    args = [
        "build",
        "--target",
        "spark",
        "--project-dir",
        str(DBT_DIR),
        "--profiles-dir",
        str(DBT_DIR),
        "--target-path",
        str(DBT_DIR / "target" / "spark"),
        "--log-path",
        str(log_dir),
    ]
    if full_refresh:
        args.append("--full-refresh")
    result = dbtRunner().invoke(args)
    counts: dict[str, int] = {}
    failed = []
    for node in result.result or []:
        status = str(node.status)
        kind = node.node.resource_type
        counts[f"{kind}:{status}"] = counts.get(f"{kind}:{status}", 0) + 1
        if status not in ("success", "pass"):
            failed.append(f"{node.node.unique_id}: {status} {node.message}")
    for line in failed:
        print(line, file=sys.stderr)
    return bool(result.success), counts


# Customer-level activity for the formula CLV's churn rate (pipelines.clv.scoring.annual_churn_rate compares the
# customers active in the two periods before the as-of date): per customer, the last order date in each period.
ACTIVITY_SQL = """
select customer_id,
       max(case when order_date > date_sub(date'{as_of}', {period}) then order_date end) as last_order_in_period,
       max(case when order_date <= date_sub(date'{as_of}', {period})
                 and order_date > date_sub(date'{as_of}', {twice}) then order_date end) as last_order_in_previous_period
from marts.fct_orders
group by customer_id
"""


def export(spark, out_dir: Path) -> dict[str, int]:
    """Every table dbt built in marts and intermediate, plus the summaries the polars steps read, as Parquet."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampType

    out_dir.mkdir(parents=True, exist_ok=True)
    relations = {}
    for schema in ("marts", "intermediate"):
        for row in spark.sql(f"show tables in {schema}").collect():
            if row.isTemporary:
                continue
            kind = spark.sql(f"describe table extended {schema}.{row.tableName}").where("col_name = 'Type'").collect()
            if kind and kind[0].data_type == "VIEW":
                continue
            relations[f"{schema}.{row.tableName}"] = spark.table(f"{schema}.{row.tableName}")
    # what the polars steps need besides int_customer_totals and dim_customers: marketing spend (daily × channel)
    # and a customer-level activity summary for the churn rate
    relations["staging.stg_marketing_spend"] = spark.table("staging.stg_marketing_spend")
    context = spark.sql("select * from raw.run_context").collect()[0]
    as_of = context.as_of or spark.sql("select max(order_date) from marts.fct_orders").collect()[0][0]
    first = spark.sql("select min(first_order_date) from intermediate.int_customer_totals").collect()[0][0]
    period = min(365, ((as_of - first).days + 1) // 2)
    relations["summary.customer_activity"] = spark.sql(
        ACTIVITY_SQL.format(as_of=as_of.isoformat(), period=period, twice=2 * period)
    )
    rows = {}
    for name, frame in relations.items():
        # Spark's timestamps are instants; the warehouse's are naive UTC (the session time zone is UTC)
        frame = frame.select(
            [
                F.col(f.name).cast("timestamp_ntz").alias(f.name)
                if isinstance(f.dataType, TimestampType)
                else F.col(f.name)
                for f in frame.schema.fields
            ]
        )
        frame.coalesce(1).write.mode("overwrite").parquet(str(out_dir / name))
        rows[name] = frame.count()
    (out_dir / "_summary.json").write_text(json.dumps({"as_of": as_of.isoformat(), "churn_period_days": period}))
    return rows


def run_step(spark, step: dict) -> dict:
    started = time.monotonic()
    loaded = load_raw(spark, Path(step["raw_dir"]))
    load_seconds = time.monotonic() - started
    success, counts = dbt_build(step["full_refresh"], Path(step["out_dir"]) / "dbt_logs")
    run_results = DBT_DIR / "target" / "spark" / "run_results.json"
    if run_results.exists():  # each model's and test's time, for scripts/spark/bench.py
        shutil.copy(run_results, Path(step["out_dir"]) / "run_results.json")
    build_seconds = time.monotonic() - started - load_seconds
    exported = export(spark, Path(step["out_dir"])) if success else {}
    partitions = len(spark.sql("show partitions marts.fct_orders").collect()) if success else None
    return {
        "step": step["name"],
        "full_refresh": step["full_refresh"],
        "seconds": round(time.monotonic() - started, 1),
        "load_seconds": round(load_seconds, 1),
        "build_seconds": round(build_seconds, 1),
        "export_seconds": round(time.monotonic() - started - load_seconds - build_seconds, 1),
        "dbt_success": success,
        "results": counts,
        "raw_rows": loaded,
        "exported": exported,
        "partitions": partitions,
    }


def main(args: list[str]) -> int:
    spark = session()  # the JVM starts now, while the caller may still be preparing the first step
    steps = (json.loads(line) for line in sys.stdin if line.strip()) if args == ["-"] else map(json.loads, args)
    ok = True
    for step in steps:
        result = run_step(spark, step)
        print(json.dumps(result), flush=True)
        Path(step["out_dir"]).mkdir(parents=True, exist_ok=True)
        (Path(step["out_dir"]) / "_step.json").write_text(json.dumps(result))
        ok = ok and result["dbt_success"]
        if not ok:
            break
    spark.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
