"""Where each source's files are: the `files` source is a directory; the synthetic shop is generated once per
configuration into a landing directory of the same shape, so both go through the same validation."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

from pipelines.settings import Settings
from pipelines.sources.synthetic import SyntheticShopConfig, generate_shop


def synthetic_config(settings: Settings) -> SyntheticShopConfig:
    return SyntheticShopConfig(
        n_customers=settings.synthetic_customers,
        start_date=settings.start_date,
        end_date=settings.synthetic_end_date,
        seed=settings.synthetic_seed,
    )


def synthetic_landing_dir(settings: Settings) -> Path:
    config = synthetic_config(settings)
    name = f"synthetic-n{config.n_customers}-s{config.seed}-{config.start_date}-{config.end_date}-d{config.dirty_rows}"
    return settings.landing_dir / name


def ensure_synthetic_landing(settings: Settings, log=print) -> Path:
    """Generate the shop once per configuration (it is deterministic), written atomically by a directory rename."""
    target = synthetic_landing_dir(settings)
    if (target / "_complete").exists():
        return target
    log(f"Generating the synthetic shop ({settings.synthetic_customers:,} customers, seed {settings.synthetic_seed}) into {target}")
    shop = generate_shop(synthetic_config(settings))
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shop.orders.sort("ordered_at").write_parquet(staging / "orders.parquet", row_group_size=256_000, statistics=True)
    if shop.dirty_orders.height:
        shop.dirty_orders.write_csv(staging / "orders_dirty.csv")
    shop.marketing_spend.write_parquet(staging / "marketing_spend.parquet")
    shop.cart_events.sort("event_at").write_parquet(staging / "cart_events.parquet", statistics=True)
    (staging / "_complete").write_text(f"orders={shop.orders.height}\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    log(f"Synthetic shop ready: {shop.orders.height:,} orders, {shop.dirty_orders.height} deliberately dirty rows")
    return target


def source_directory(settings: Settings, log=print) -> tuple[Path, date | None]:
    """The directory to read, and the 'today' that bounds plausible dates (the simulation's own calendar for
    the synthetic shop; the wall clock for real files)."""
    if settings.source == "synthetic":
        return ensure_synthetic_landing(settings, log), settings.synthetic_end_date
    assert settings.raw_dir is not None
    return settings.raw_dir, None
