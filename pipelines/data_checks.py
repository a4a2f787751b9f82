"""Blocking data checks on a load, decided before the load is committed: a run whose input cannot be trusted
stops before it replaces raw rows, so the live marts, the snapshot, the exports and the report stay as they were.

- reject rate: invalid rows above CLV_REJECT_RATE_THRESHOLD of the data rows of the table's files, or more than
  half (or the threshold, if higher) of any one file of at least MIN_FILE_ROWS rows (an Excel re-save that turned
  dates into `12/03/2025 12:00`, a shifted column);
- no valid rows: a full-history load that finds no valid row at all;
- collapse: the reloaded dates hold fewer than (1 − CLV_ROW_DROP_THRESHOLD) of the rows they held before (a
  truncated or wrong export replacing a good one).

`CLV_ACCEPT_BAD_INPUT=1` (`clv --accept-bad-input`) loads anyway; the problems are then logged as warnings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import duckdb
import polars as pl

from pipelines.sources.files import BEFORE_FIRST_PARTITION

OVERRIDE_HINT = (
    "to load it anyway, rerun with --accept-bad-input (CLV_ACCEPT_BAD_INPUT=1) or raise "
    "CLV_REJECT_RATE_THRESHOLD / CLV_ROW_DROP_THRESHOLD"
)


# A file with more invalid than valid rows was mis-saved (Excel re-typed its dates, a column shifted) or belongs
# to another shop, however small it is next to the rest of the input. Below MIN_FILE_ROWS data rows a file says too
# little to tell (a one-row correction with a typo): its bad rows are quarantined like any, and the whole input's
# reject rate still applies. A CLV_REJECT_RATE_THRESHOLD above MOSTLY_BAD_FILE relaxes this rule too, as the
# message tells the user.
MOSTLY_BAD_FILE = 0.5
MIN_FILE_ROWS = 10


class DataCheckFailed(Exception):
    """The load was rolled back: `problems` says why, in words (no personal data: reasons are redacted)."""

    def __init__(self, table: str, problems: list[str]):
        self.table = table
        self.problems = problems
        more = f" (and {len(problems) - 1} more problem(s), in the log)" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{more}; raw.{table} was left unchanged; {OVERRIDE_HINT}")


@dataclass(frozen=True)
class Thresholds:
    reject_rate: float
    row_drop: float


def _most_frequent_reason(rejected: pl.DataFrame) -> str:
    """The commonest kind of problem (reasons with their quoted values removed), with one example."""
    kinds = rejected.with_columns(_kind=pl.col("reason").str.replace_all(r"'[^']*'", "…"))
    top = (
        kinds.group_by("_kind")
        .agg(n=pl.len(), line=pl.col("source_line").min())
        .sort(["n", "line"], descending=[True, False])
        .row(0, named=True)
    )
    example = kinds.filter((pl.col("_kind") == top["_kind"]) & (pl.col("source_line") == top["line"]))["reason"][0]
    return f"most frequent reason: {example} ({top['n']} rows, e.g. line {top['line']})"


def blocking_problems(
    table: str,
    *,
    file_rows: dict[str, int],
    rejected: pl.DataFrame,
    rows_before: int,
    rows_after: int,
    full_history: bool,
    thresholds: Thresholds,
) -> list[str]:
    """Problems that must stop the load, worst first; empty when the load may be committed."""
    problems = []
    if "kind" not in rejected.columns:  # nothing was rejected
        rejected = pl.DataFrame(
            schema={"source_file": pl.String, "source_line": pl.Int64, "kind": pl.String, "reason": pl.String}
        )
    # Rows before an explicit CLV_START_DATE were left out on purpose; the run's summary counts them.
    deliberate = pl.col("reason").str.contains(BEFORE_FIRST_PARTITION, literal=True).fill_null(False)
    invalid = rejected.filter((pl.col("kind") == "invalid") & ~deliberate).unique(["source_file", "source_line"])
    per_file = sorted(invalid.group_by("source_file").len().iter_rows(), key=lambda r: (-r[1], r[0]))
    total_rows = max(sum(file_rows.values()), invalid.height)
    if total_rows and invalid.height / total_rows > thresholds.reject_rate:
        worst, n_worst = per_file[0]
        problems.append(
            f"{invalid.height:,} of {total_rows:,} rows rejected ({invalid.height / total_rows:.1%}, above "
            f"CLV_REJECT_RATE_THRESHOLD {thresholds.reject_rate:.1%}); {n_worst:,} of them in {worst}; "
            + _most_frequent_reason(invalid.filter(pl.col("source_file") == worst))
        )
    for source_file, n_invalid in per_file:
        rows = max(file_rows.get(source_file, 0), n_invalid)
        mostly_bad = rows >= MIN_FILE_ROWS and n_invalid / rows > max(MOSTLY_BAD_FILE, thresholds.reject_rate)
        if mostly_bad and not (problems and source_file in problems[0]):
            problems.append(
                f"{source_file}: {n_invalid:,} of its {rows:,} rows rejected ({n_invalid / rows:.1%}: a file "
                "this bad was mis-saved or is not an export of this shop); "
                + _most_frequent_reason(invalid.filter(pl.col("source_file") == source_file))
            )
    if full_history and rows_after == 0 and table == "orders":
        problems.append(f"no valid {table} rows in any file ({sum(file_rows.values()):,} data rows read)")
    if rows_before and rows_after < (1 - thresholds.row_drop) * rows_before:
        problems.append(
            f"the reloaded dates would hold {rows_after:,} rows of raw.{table} instead of {rows_before:,} "
            f"({rows_after / rows_before - 1:.0%}, beyond CLV_ROW_DROP_THRESHOLD {thresholds.row_drop:.0%}): "
            "is the export truncated or from another shop?"
        )
    return problems


# ---------------------------------------------------------------- checks of the loaded table (warnings)
# They describe raw.orders after a load: a historical backfill is not fresh, and says so. Dagster shows them as
# asset checks of raw/orders (pipelines/defs/assets/ingest.py).
@dataclass(frozen=True)
class TableCheck:
    passed: bool
    metadata: dict
    description: str | None = None


def orders_freshness(con: duckdb.DuckDBPyConnection, freshness_hours: float, now: datetime) -> TableCheck:
    """The newest order is at most `freshness_hours` old (`now` in UTC, naive)."""
    newest = con.execute("select max(ordered_at) from raw.orders").fetchall()[0][0]
    if newest is None:
        return TableCheck(False, {}, "raw.orders is empty")
    age_hours = (now - newest).total_seconds() / 3600
    return TableCheck(
        age_hours <= freshness_hours,
        {"newest_order": str(newest), "age_hours": round(age_hours, 1), "threshold_hours": freshness_hours},
    )


def orders_reject_rate(con: duckdb.DuckDBPyConnection, threshold: float) -> TableCheck:
    """Invalid rows of the whole table stay below `threshold`."""
    invalid = con.execute(
        "select count(*) from raw.rejected_orders where source_table = 'orders' and kind = 'invalid'"
    ).fetchall()[0][0]
    valid = con.execute("select count(*) from raw.orders").fetchall()[0][0]
    rate = invalid / (invalid + valid) if invalid + valid else 0.0
    metadata = {"invalid_rows": invalid, "valid_rows": valid, "reject_rate": round(rate, 6), "threshold": threshold}
    return TableCheck(rate <= threshold, metadata)


def orders_row_count_drop(con: duckdb.DuckDBPyConnection, threshold: float) -> TableCheck:
    """The newest day's row count did not drop by more than `threshold` against the 7 days before it."""
    rows = con.execute(
        """select order_date, count(*) from raw.orders
           where order_date > (select max(order_date) from raw.orders) - interval 8 day
           group by 1 order by 1"""
    ).fetchall()
    if len(rows) < 2:
        return TableCheck(True, {}, "not enough history to compare")
    latest_day, latest = rows[-1]
    previous = [n for _, n in rows[:-1]]
    baseline = sum(previous) / len(previous)
    drop = 1 - latest / baseline if baseline else 0.0
    metadata = {
        "day": str(latest_day),
        "rows": latest,
        "baseline_rows": round(baseline, 1),
        "drop": round(drop, 3),
        "threshold": threshold,
    }
    return TableCheck(drop <= threshold, metadata)


def orders_per_day(con: duckdb.DuckDBPyConnection, start: date, end: date) -> tuple[int, dict[date, int]]:
    """(rows of raw.orders, {order date: rows} for start..end)."""
    total = con.execute("select count(*) from raw.orders").fetchall()[0][0]
    per_day = con.execute(
        "select order_date, count(*) from raw.orders where order_date between ? and ? group by 1", [start, end]
    ).fetchall()
    return total, dict(per_day)
