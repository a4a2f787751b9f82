"""Ingest: source files (or the synthetic shop) → validated raw.* tables, one daily partition per order date."""

from contextlib import closing, nullcontext
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import polars as pl

from pipelines.data_checks import (
    DataCheckFailed,
    TableCheck,
    orders_freshness,
    orders_per_day,
    orders_reject_rate,
    orders_row_count_drop,
)
from pipelines.defs.partitions import daily_partitions, single_run_backfill
from pipelines.defs.resources import WarehouseResource
from pipelines.markdown import frame_to_markdown
from pipelines.privacy import redact
from pipelines.raw_layer import RAW_TABLES, load_into
from pipelines.run_window import Window
from pipelines.sources import files as src
from pipelines.sources.landing import source_directory

ORDERS = dg.AssetKey(["raw", "orders"])
SPEND = dg.AssetKey(["raw", "marketing_spend"])
CART = dg.AssetKey(["raw", "cart_events"])


def _window(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> Window:
    """The order dates this run (re)loads. raw/orders reads its partition range; the smaller raw tables are not
    partitioned (Dagster's bookkeeping per partition and asset would cost more than loading them) and follow the
    same range from the run's tags, or reload everything when the run loads no partition."""
    settings = warehouse.settings()
    window, latest = warehouse.run_window(context)
    end = window.end or window.as_of or latest
    if end is None:
        raise dg.Failure(
            "Nothing to load: this run names no partition and no day has been loaded yet. "
            "Materialise raw/orders for a partition range first (or run `clv run`)."
        )
    load = window.bounded(settings.start_date, end)
    context.log.info(
        f"Loading order dates {load.start}..{load.end} (partitions {window.partition_start or load.start}..{load.end} "
        f"plus a {settings.lookback_days}-day look-back); the source is read as known on {load.as_of}."
    )
    return load


def _preview(frame: pl.DataFrame, rows: int = 5) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame_to_markdown(frame, max_rows=rows))


@dg.asset(
    key=ORDERS,
    group_name="ingest",
    kinds={"duckdb", "polars"},
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    description="Valid orders (raw.orders), partitioned by order date; rows that fail validation go to "
    "raw.rejected_orders with file, line and reason (see this asset's metadata).",
)
def raw_orders(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    result, load, settings = _load(context, warehouse, "orders")
    keys = context.partition_keys
    with warehouse.connect(read_only=True) as con:
        total, per_day = orders_per_day(con, date.fromisoformat(keys[0]), date.fromisoformat(keys[-1]))
    by_kind = result.rejected.group_by("kind").len().sort("kind")
    counts = {row["kind"]: row["len"] for row in by_kind.iter_rows(named=True)}
    context.log.info(
        f"Read {result.rows_read:,} rows from {len(result.files)} file(s); loaded {result.rows_loaded:,} valid orders "
        f"dated {load.start}..{load.end}; quarantined {counts.get('invalid', 0)} invalid rows, "
        f"{counts.get('duplicate', 0)} exact duplicates and {counts.get('superseded', 0)} superseded versions."
    )
    # One materialization per partition of the run (the UI's partition status): each says its own day's orders;
    # the run's details ride on its last day only (`clv run` covers ~1,100 days), which the asset page shows.
    for key in keys:
        context.add_asset_metadata({"dagster/row_count": per_day.get(date.fromisoformat(key), 0)}, partition_key=key)
    details = {
        **_files_metadata(result),
        "table_rows": total,
        "preview": _preview(result.preview),
        "rejected_invalid": counts.get("invalid", 0),
        "rejected_exact_duplicates": counts.get("duplicate", 0),
        "superseded_versions": counts.get("superseded", 0),
        "rejection_reasons": _preview(result.rejected.group_by("reason").len().sort("len", descending=True), rows=15),
    }
    context.add_asset_metadata(details, partition_key=keys[-1])
    return dg.MaterializeResult(
        metadata={
            "rows_loaded_this_run": result.rows_loaded,
            "window": f"{load.start}..{load.end}",
            "as_of": str(load.as_of),
            "source": settings.source,
        }
    )


def _load(context: dg.AssetExecutionContext, warehouse: WarehouseResource, table: str):
    settings = warehouse.settings()
    load = _window(context, warehouse)
    directory, today = source_directory(settings, log=context.log.info)
    try:
        with warehouse.connect() as con, nullcontext() if isinstance(directory, Path) else closing(directory):
            result = load_into(
                con,
                RAW_TABLES[table],
                directory,
                load,
                today,
                settings.source,
                chunk_days=settings.ingest_chunk_days,
                hash_key=settings.hash_key(),
                thresholds=settings.thresholds,
                accept_bad_input=settings.accept_bad_input,
                run_id=context.run_id,
                reporting_currency=settings.reporting_currency,
            )
    except DataCheckFailed as failed:
        for problem in failed.problems:
            context.log.error(redact(f"Blocking data check failed on raw.{table}: {problem}"))
        raise dg.Failure(
            description=redact(str(failed)),
            metadata={"blocking_problems": redact("\n".join(failed.problems))},
            allow_retries=False,
        ) from None
    except src.SourceFileError as bad_file:
        raise dg.Failure(description=redact(str(bad_file)), allow_retries=False) from None
    # File names are redacted wherever they are said: a file may be named after the person who exported it.
    for name in result.unloaded:
        context.log.warning(redact(f"Not loaded: {name}"))
    if result.changed_files:
        context.log.info(
            f"New or changed since the last load, read whole: {redact(', '.join(result.changed_files))}; "
            f"{result.changed_rows} rows dated before the window changed"
            + (f" (the marts rebuild from {result.changed_from})." if result.changed_from else ".")
        )
    if result.deleted:
        context.log.warning(f"Removed {result.deleted} orders that no source file holds any more (raw.deleted_orders).")
    for note in result.notes:
        context.log.warning(redact(f"raw.{table}: {note}"))
    for name, missing in result.missing_kept.items():
        context.log.warning(
            f"{missing} orders are no longer in {redact(name)}; they are kept until a full reload "
            "(`clv run`), which removes orders no file holds."
        )
    for problem in result.warnings:
        context.log.warning(redact(f"Loaded despite a failed data check (CLV_ACCEPT_BAD_INPUT): {problem}"))
    return result, load, settings


def _files_metadata(result) -> dict:
    """The load's files for the asset's metadata, names redacted."""
    return {
        "files": redact(", ".join(result.files)) or "none supplied",
        "files_read_whole": redact(", ".join(result.changed_files)) or "none (no file changed since the last load)",
        "changed_rows_before_window": result.changed_rows,
        "changes_rebuild_from": str(result.changed_from or "-"),
        "orders_removed": result.deleted,
        "orders_missing_kept_until_full_reload": sum(result.missing_kept.values()),
        "files_not_loaded": redact("\n".join(result.unloaded)) or "none",
        "data_checks_overridden": redact("\n".join(result.warnings)) or "none",
        "notes": redact("\n".join(result.notes)) or "none",
    }


def _small_table_result(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, table: str
) -> dg.MaterializeResult:
    result, load, _ = _load(context, warehouse, table)
    context.log.info(
        f"Loaded {result.rows_loaded:,} rows of {table} dated {load.start}..{load.end}; "
        f"quarantined {result.rejected.height}."
    )
    return dg.MaterializeResult(
        metadata={
            "rows_loaded_this_run": result.rows_loaded,
            "rows_rejected_this_run": result.rejected.height,
            **_files_metadata(result),
        }
    )


@dg.asset(
    key=SPEND,
    group_name="ingest",
    kinds={"duckdb"},
    description="Daily marketing spend per channel (optional input), reloaded for the run's order dates.",
)
def raw_marketing_spend(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    return _small_table_result(context, warehouse, "marketing_spend")


@dg.asset(
    key=CART,
    group_name="ingest",
    kinds={"duckdb"},
    description="Cart events (optional input) for the cart-abandoner segment, reloaded for the run's dates.",
)
def raw_cart_events(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    return _small_table_result(context, warehouse, "cart_events")


# ---------------------------------------------------------------- checks
# Warnings, not errors: the blocking checks run inside the load, before anything is committed
# (pipelines/data_checks.py); these describe the loaded table (a historical backfill is not fresh, and says so).
WARN = dg.AssetCheckSeverity.WARN


def _check_result(check: TableCheck) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=check.passed, severity=WARN, metadata=check.metadata, description=check.description
    )


@dg.asset_check(asset=ORDERS, description="The newest order is at most CLV_FRESHNESS_HOURS old (default 36 h).")
def orders_are_fresh(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect(read_only=True) as con:
        check = orders_freshness(con, warehouse.settings().freshness_hours, datetime.now(UTC).replace(tzinfo=None))
    return _check_result(check)


@dg.asset_check(
    asset=ORDERS,
    description="Invalid rows of the whole table stay below CLV_REJECT_RATE_THRESHOLD "
    "(a load above it is stopped before it is committed).",
)
def reject_rate_below_threshold(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect(read_only=True) as con:
        return _check_result(orders_reject_rate(con, warehouse.settings().reject_rate_threshold))


@dg.asset_check(
    asset=ORDERS,
    description="The day's row count did not drop by more than CLV_ROW_DROP_THRESHOLD "
    "against the average of the previous 7 loaded days.",
)
def no_row_count_drop(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect(read_only=True) as con:
        return _check_result(orders_row_count_drop(con, warehouse.settings().row_drop_threshold))
