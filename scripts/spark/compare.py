"""Spark's tables (Parquet written by scripts/spark/spark_side.py) against the DuckDB warehouse, row by row; and the
polars CLV steps run on the customer-level summary the Spark build exported. Runs in the project's venv."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

# doubles agree to this relative tolerance (Spark and DuckDB sum in different orders: the last bits move)
REL_TOL = 1e-9
RAW_TABLES = ("orders", "marketing_spend", "cart_events", "run_context")


def export_raw(warehouse: Path, out_dir: Path) -> None:
    """The raw tables the dbt sources read, one Parquet file each, as Spark's loader expects them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        for table in RAW_TABLES:
            target = str(out_dir / f"{table}.parquet").replace("'", "''")
            con.execute(f"copy (select * from raw.{table}) to '{target}' (format parquet)")
    finally:
        con.close()


@dataclass
class Comparison:
    table: str
    rows_duckdb: int = 0
    rows_spark: int = 0
    only_duckdb: int = 0
    only_spark: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return (
            not self.problems and self.only_duckdb == 0 and self.only_spark == 0 and self.rows_duckdb == self.rows_spark
        )

    def line(self) -> str:
        state = "equal" if self.equal else "DIFFERENT"
        extra = (
            ""
            if self.equal
            else (
                f" (only in DuckDB {self.only_duckdb}, only in Spark {self.only_spark}"
                + "".join(f"; {p}" for p in self.problems)
                + ")"
            )
        )
        return f"  {self.table:<42} {self.rows_duckdb:>7} rows  {state}{extra}"


def _type_family(data_type: str) -> str:
    """Integers of any width are one family (Spark's int is DuckDB's integer); doubles must stay doubles."""
    return "integer" if data_type in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT") else data_type


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def compare_relation(con: duckdb.DuckDBPyConnection, duck_sql: str, spark_sql: str, name: str) -> Comparison:
    """Rows of two relations (SQL over the same DuckDB connection) matched on every non-double column (every mart
    has its grain among them); doubles equal to REL_TOL. Column names must match; Spark's types are cast to
    DuckDB's (Spark's int is DuckDB's integer, its string varchar)."""
    result = Comparison(name)
    duck_cols = con.execute(f"describe {duck_sql}").fetchall()
    spark_cols = {c[0]: c[1] for c in con.execute(f"describe {spark_sql}").fetchall()}
    names = [c[0] for c in duck_cols]
    missing = [n for n in names if n not in spark_cols]
    extra = [n for n in spark_cols if n not in names]
    if missing:
        result.problems.append(f"columns missing on Spark: {missing}")
    if extra:
        result.problems.append(f"columns only on Spark: {extra}")
    if missing:
        return result
    doubles = {n for n, t, *_ in duck_cols if t in ("DOUBLE", "FLOAT")}
    for n, t, *_ in duck_cols:
        if _type_family(t) != _type_family(spark_cols[n]):
            result.problems.append(f"{n}: {t} in DuckDB, {spark_cols[n]} on Spark")
    select = ", ".join(f"cast(s.{_quote(n)} as {t}) as {_quote(n)}" for n, t, *_ in duck_cols)
    con.execute(f"create or replace temp view _d as select * from ({duck_sql})")
    con.execute(f"create or replace temp view _s as select {select} from ({spark_sql}) as s")
    close = " and ".join(
        f"(a.{_quote(n)} is not distinct from b.{_quote(n)} or abs(a.{_quote(n)} - b.{_quote(n)}) <= "
        f"{REL_TOL} * greatest(1, abs(a.{_quote(n)}), abs(b.{_quote(n)})))"
        if n in doubles
        else f"a.{_quote(n)} is not distinct from b.{_quote(n)}"
        for n in names
    )
    result.rows_duckdb = con.execute("select count(*) from _d").fetchall()[0][0]
    result.rows_spark = con.execute("select count(*) from _s").fetchall()[0][0]
    result.only_duckdb = con.execute(f"select count(*) from _d as a anti join _s as b on {close}").fetchall()[0][0]
    result.only_spark = con.execute(f"select count(*) from _s as a anti join _d as b on {close}").fetchall()[0][0]
    return result


def compare_dbt_tables(warehouse: Path, spark_dir: Path, tables: list[str]) -> list[Comparison]:
    """Every `schema.table` of the warehouse against Spark's export of it."""
    from pipelines.warehouse import attach_marts

    con = duckdb.connect(str(warehouse), read_only=True)
    attach_marts(con, warehouse, read_only=True)
    try:
        results = []
        for table in tables:
            files = spark_dir / table
            if not files.exists():
                results.append(Comparison(table, problems=["not built on Spark"]))
                continue
            pattern = str(files / "*.parquet").replace("'", "''")
            results.append(
                compare_relation(con, f"select * from {table}", f"select * from read_parquet('{pattern}')", table)
            )
        return results
    finally:
        con.close()


# ------------------------------------------------------------------------------------------------ the polars steps


def _read_spark(spark_dir: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(str(spark_dir / name / "*.parquet"))


# The purchase model the DuckDB runs are told to score with (CLV_PURCHASE_MODEL): without it the pipeline picks one
# by a calibration/holdout back-test, which reads every order (not a customer-level summary).
PURCHASE_MODEL = "bg_nbd"


def clv_from_spark_summary(spark_dir: Path, annual_discount_rate: float, default_margin_rate: float):
    """customer_clv, the models' fitted parameters and segment_clv, computed by the pipeline's own polars/scipy code
    from the customer-level tables the Spark build exported (one row per customer: int_customer_totals,
    dim_customers, customer_segments, an activity summary for the churn rate) and the daily marketing spend; no
    order-level table is read. Returns (scored, fits {(model, parameter): value}, segment_clv)."""
    from pipelines.clv import PURCHASE_MODELS, fit_gamma_gamma, rfm_from_customer_totals
    from pipelines.clv.marts import MIN_REPEAT_CUSTOMERS  # the same threshold the pipeline applies
    from pipelines.clv.scoring import MAX_LIFESPAN_YEARS, annual_churn_rate, score_customers
    from pipelines.payback.cac import cac_by_cohort

    summary = json.loads((spark_dir / "_summary.json").read_text())
    as_of = date.fromisoformat(summary["as_of"])
    totals = _read_spark(spark_dir, "intermediate.int_customer_totals")
    rfm = rfm_from_customer_totals(totals.lazy(), as_of).collect()
    repeaters = rfm.filter((pl.col("frequency") > 0) & (pl.col("monetary_value") > 0))
    if repeaters.height < MIN_REPEAT_CUSTOMERS:
        raise RuntimeError(f"only {repeaters.height} repeat customers: too small a shop to compare the CLV fit")
    model = PURCHASE_MODELS[PURCHASE_MODEL]
    purchases = model.fit(rfm["frequency"].to_numpy(), rfm["recency"].to_numpy(), rfm["T"].to_numpy())
    gg = fit_gamma_gamma(repeaters["frequency"].to_numpy(), repeaters["monetary_value"].to_numpy())
    # annual_churn_rate reads (customer_id, order_date) rows; each customer's last order in each of its two periods
    # and their first order give the same answer with at most three rows per customer
    activity = _read_spark(spark_dir, "summary.customer_activity")
    orders_like = pl.concat(
        [
            totals.select("customer_id", pl.col("first_order_date").alias("order_date")),
            activity.select("customer_id", pl.col("last_order_in_period").alias("order_date")),
            activity.select("customer_id", pl.col("last_order_in_previous_period").alias("order_date")),
        ]
    ).drop_nulls()
    churn = annual_churn_rate(orders_like.lazy(), as_of)
    lifespan = min(MAX_LIFESPAN_YEARS, 1.0 / churn) if churn else None
    customers = _read_spark(spark_dir, "marts.dim_customers").select(
        "customer_id",
        "cohort_month",
        "acquisition_channel",
        "orders_count",
        "net_revenue",
        "gross_margin",
        "aov",
        "tenure_days",
    )
    spend = (
        _read_spark(spark_dir, "staging.stg_marketing_spend")
        .filter(pl.col("spend_date") <= as_of)
        .select("spend_date", "channel", "spend")
    )
    cac = cac_by_cohort(customers.lazy(), spend.lazy())
    usable_gg = gg if gg.converged and gg.q > 1 else None
    scored = score_customers(
        rfm,
        customers,
        purchases if purchases.converged else None,
        usable_gg,
        annual_discount_rate=annual_discount_rate,
        default_margin_rate=default_margin_rate,
        lifespan_years=lifespan,
        cac=cac,
    ).with_columns(as_of_date=pl.lit(as_of))
    fits = {(PURCHASE_MODEL, p): getattr(purchases, p) for p in model.parameter_names}
    fits.update({("gamma_gamma", p): getattr(gg, p) for p in ("p", "q", "gamma")})
    fits[("formula", "annual_churn_rate")] = churn
    segments = _read_spark(spark_dir, "marts.customer_segments")
    return scored, fits, segment_clv(segments, scored)


SEGMENT_FLAGS = [
    "is_first_time_buyer",
    "is_repeat_buyer",
    "is_big_spender",
    "is_high_aov",
    "is_discount_shopper",
    "is_full_price_buyer",
    "is_vip",
    "is_at_risk",
    "is_cart_abandoner",
]


def segment_clv(segments: pl.DataFrame, scored: pl.DataFrame) -> pl.DataFrame:
    """The sums and counts of marts.segment_clv (pipelines/clv/marts.py): all customers, each RFM segment, each
    flag. Its bootstrap intervals are not recomputed."""
    joined = segments.select("customer_id", "segment", *SEGMENT_FLAGS).join(
        scored.select(
            "customer_id",
            "historical_revenue",
            "historical_margin",
            "predicted_clv_365d",
            "p_alive",
            "expected_purchases_365d",
        ),
        on="customer_id",
    )
    long = pl.concat(
        [
            joined.with_columns(segment_kind=pl.lit("total"), segment=pl.lit("all_customers")),
            joined.with_columns(segment_kind=pl.lit("rfm_segment")),
            *[
                joined.filter(pl.col(f)).with_columns(
                    segment_kind=pl.lit("flag"), segment=pl.lit(f.removeprefix("is_"))
                )
                for f in SEGMENT_FLAGS
            ],
        ]
    )
    return long.group_by("segment_kind", "segment").agg(
        customers=pl.len().cast(pl.Int64),
        historical_revenue=pl.col("historical_revenue").sum(),
        historical_margin=pl.col("historical_margin").sum(),
        predicted_clv_365d=pl.col("predicted_clv_365d").sum(),
        mean_p_alive=pl.col("p_alive").mean(),
        expected_purchases_365d=pl.col("expected_purchases_365d").sum(),
    )


def compare_polars(
    warehouse: Path, spark_dir: Path, annual_discount_rate: float, default_margin_rate: float, rel_tol: float = 1e-6
) -> list[Comparison]:
    """customer_clv, clv_model_fit (the fitted parameters) and segment_clv from the Spark summary against the
    DuckDB run's. The fit is an optimisation: inputs that differ in the last bits move the estimates by ~1e-8,
    so values are compared to 1e-6 (relative)."""
    from pipelines.warehouse import attach_marts, read_frame

    scored, fits, segments = clv_from_spark_summary(spark_dir, annual_discount_rate, default_margin_rate)
    con = duckdb.connect(str(warehouse), read_only=True)
    attach_marts(con, warehouse, read_only=True)
    try:
        as_of = scored["as_of_date"][0]
        duck_scored = read_frame(con, "select * from marts.customer_clv")
        duck_fits = {
            (m, p): v
            for m, p, v in con.execute(
                "select model, parameter, value from marts.clv_model_fit where as_of_date = ?", [as_of]
            ).fetchall()
        }
        duck_segments = read_frame(con, "select * from marts.segment_clv")
    finally:
        con.close()
    results = [
        _compare_frames("marts.customer_clv (polars, from Spark)", duck_scored, scored, ["customer_id"], rel_tol),
        _compare_frames(
            "marts.segment_clv (polars, from Spark)", duck_segments, segments, ["segment_kind", "segment"], rel_tol
        ),
    ]
    fit = Comparison("marts.clv_model_fit (polars, from Spark)", rows_duckdb=len(fits), rows_spark=len(fits))
    for key, value in fits.items():
        expected = duck_fits.get(key)
        if not _close(expected, value, rel_tol):
            fit.problems.append(f"{key[0]}.{key[1]}: DuckDB {expected!r}, Spark {value!r}")
    results.append(fit)
    return results


def _close(a, b, rel_tol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) <= rel_tol * max(1.0, abs(float(a)), abs(float(b)))
    return a == b


def _compare_frames(name: str, duck: pl.DataFrame, spark: pl.DataFrame, key: list[str], rel_tol: float) -> Comparison:
    """Rows matched on `key`; every column the Spark-side frame has is compared (floats to rel_tol)."""
    result = Comparison(name, rows_duckdb=duck.height, rows_spark=spark.height)
    columns = [c for c in spark.columns if c in duck.columns and c not in key]
    absent = [c for c in spark.columns if c not in duck.columns]
    if absent:
        result.problems.append(f"columns not in DuckDB's table: {absent}")
    joined = duck.select(key + columns).join(
        spark.select(key + columns), on=key, how="full", suffix="_spark", coalesce=True, nulls_equal=True
    )
    result.only_duckdb = duck.join(spark.select(key), on=key, how="anti", nulls_equal=True).height
    result.only_spark = spark.join(duck.select(key), on=key, how="anti", nulls_equal=True).height
    for column in columns:
        a, b = joined[column].to_list(), joined[f"{column}_spark"].to_list()
        bad = sum(1 for x, y in zip(a, b) if not _close(x, y, rel_tol))
        if bad:
            result.problems.append(f"{column}: {bad} rows differ")
    return result
