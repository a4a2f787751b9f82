"""Where each source's files are: the `files` source is a directory; the synthetic shop is generated once per
configuration into a landing directory of the same shape, so both go through the same validation."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from pipelines.settings import Settings
from pipelines.sources.synthetic import SyntheticShopConfig, generate_shop

if TYPE_CHECKING:
    from pipelines.sources.postgres import PostgresSource


def synthetic_config(settings: Settings) -> SyntheticShopConfig:
    return SyntheticShopConfig(
        n_customers=settings.synthetic_customers,
        start_date=settings.start_date,
        end_date=settings.synthetic_end_date,
        seed=settings.synthetic_seed,
    )


# Bumped when the files of a landing change shape: an older landing is then generated anew.
LANDING_LAYOUT = 2
# The deliberately bad rows arrive the way real bad rows do: inside a hand-kept CSV export (orders_manual.csv) among
# this many good orders per bad one, not as a file of nothing but bad rows, which the blocking data checks refuse.
GOOD_ROWS_PER_DIRTY_ROW = 10


def synthetic_landing_dir(settings: Settings) -> Path:
    config = synthetic_config(settings)
    name = (
        f"synthetic-n{config.n_customers}-s{config.seed}-{config.start_date}-{config.end_date}-d{config.dirty_rows}"
        f"-v{LANDING_LAYOUT}"
    )
    return settings.landing_dir / name


def ensure_synthetic_landing(settings: Settings, log=print) -> Path:
    """Generate the shop once per configuration (it is deterministic), written atomically by a directory rename."""
    target = synthetic_landing_dir(settings)
    if (target / "_complete").exists():
        return target
    log(
        f"Generating the synthetic shop ({settings.synthetic_customers:,} customers, "
        f"seed {settings.synthetic_seed}) into {target}"
    )
    shop = generate_shop(synthetic_config(settings))
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    orders = shop.orders.sort("ordered_at").with_row_index("_row")
    manual = pl.DataFrame(schema=orders.schema)
    if shop.dirty_orders.height:
        n_manual = min(orders.height, GOOD_ROWS_PER_DIRTY_ROW * shop.dirty_orders.height)
        step = max(1, orders.height // max(1, n_manual))
        manual = orders.filter(pl.col("_row") % step == 0).head(n_manual)
        text = manual.drop("_row").select(pl.all().cast(pl.String))
        pl.concat([text, shop.dirty_orders.select(text.columns)]).write_csv(staging / "orders_manual.csv")
    orders.filter(~pl.col("_row").is_in(manual["_row"].implode())).drop("_row").write_parquet(
        staging / "orders.parquet", row_group_size=256_000, statistics=True
    )
    shop.marketing_spend.write_parquet(staging / "marketing_spend.parquet")
    shop.cart_events.sort("event_at").write_parquet(staging / "cart_events.parquet", statistics=True)
    (staging / "_complete").write_text(f"orders={shop.orders.height}\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    log(f"Synthetic shop ready: {shop.orders.height:,} orders, {shop.dirty_orders.height} deliberately dirty rows")
    return target


def source_directory(settings: Settings, log=print) -> tuple[Path | PostgresSource, date | None]:
    """The directory to read, and the 'today' that bounds plausible dates (the simulation's own calendar for
    the synthetic shop; the wall clock for real files). The `postgres` source is a database that raw_layer reads
    like a directory (its relations stand for the files); close it after the load."""
    if settings.source == "synthetic":
        return ensure_synthetic_landing(settings, log), settings.synthetic_end_date
    if settings.source == "postgres":
        from pipelines.sources.postgres import PostgresSource

        return PostgresSource.from_settings(settings, log=log), None
    assert settings.raw_dir is not None
    return settings.raw_dir, None
