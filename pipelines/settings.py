"""Runtime settings, read from `CLV_*` environment variables (the CLI flags set the same variables).

One place for every knob, so the CLI, `dagster dev`, the schedule and the tests agree on defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pipelines.data_checks import Thresholds
from pipelines.privacy import HashKey, default_key_file, load_key

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "")
    return value if value.strip() else default


def _parse_date(name: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{name}={value!r} is not an ISO date (YYYY-MM-DD)") from exc


def _number(name: str, default: str, kind: type = int):
    value = _env(name, default)
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not {'a whole number' if kind is int else 'a number'}") from None


# The first partition before any history is known, and the synthetic shop's first day.
DEFAULT_START_DATE = date(2024, 1, 1)


def history_start_file(warehouse: Path) -> Path:
    """Where a full load records the first order date of the data (read when CLV_START_DATE is not set). A file
    beside the warehouse, not a table in it: Dagster's webserver reads it for the partitions while a run holds
    the warehouse open for writing."""
    return warehouse.with_name(warehouse.name + ".history-start")


def recorded_history_start(warehouse: Path) -> date | None:
    try:
        return date.fromisoformat(history_start_file(warehouse).read_text().strip())
    except (OSError, ValueError):
        return None


def record_history_start(warehouse: Path, first_day: date) -> None:
    target = history_start_file(warehouse)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(target.name + f".{os.getpid()}.tmp")
    scratch.write_text(f"{first_day.isoformat()}\n")
    os.replace(scratch, target)


def forget_history_start(warehouse: Path) -> None:
    history_start_file(warehouse).unlink(missing_ok=True)


def _currency_code(value: str) -> str | None:
    code = value.strip().upper()
    if code and not (len(code) == 3 and code.isalpha() and code.isascii()):
        raise ValueError(f"CLV_REPORTING_CURRENCY={value!r} is not a three-letter currency code such as EUR")
    return code or None


# CLV_PURCHASE_MODEL: the purchase models a run may be told to use (pipelines/clv/models.py PURCHASE_MODELS).
PURCHASE_MODEL_NAMES = ("bg_nbd", "pareto_nbd", "mbg_nbd")


def _purchase_model(value: str) -> str | None:
    name = value.strip().lower()
    if name and name not in PURCHASE_MODEL_NAMES:
        raise ValueError(
            f"CLV_PURCHASE_MODEL={value!r}: expected {', '.join(PURCHASE_MODEL_NAMES[:-1])} or "
            f"{PURCHASE_MODEL_NAMES[-1]} (unset: the model with the lowest back-test error)"
        )
    return name or None


def _positive(name: str, default: str) -> float:
    value = _number(name, default, float)
    if not value > 0:
        raise ValueError(f"{name}={_env(name, default)!r} must be a number above 0")
    return value


def _share(name: str, default: str) -> float:
    """A share, 0..1: a threshold of rows (a negative one, or one above 1, would block every load or none), a margin
    or a yearly discount rate (`40` for 40 % would make every CLV forty times too large, or too small)."""
    return _checked_share(f"{name}={_env(name, default)!r}", _number(name, default, float), default)


def _checked_share(said: str, value: float, example: str) -> float:
    if not 0 <= value <= 1:
        raise ValueError(f"{said} must be a share between 0 and 1 (e.g. {example})")
    return value


def _checked_days(said: str, value: int) -> int:
    if value < 0:
        raise ValueError(f"{said} must be a number of days, 0 or more")
    return value


def _warehouse(value: str) -> Path:
    path = Path(value).resolve()
    if path.is_dir():
        raise ValueError(f"CLV_WAREHOUSE={value}: a directory; give the DuckDB file, e.g. {path / 'warehouse.duckdb'}")
    return path


def _refit_days(days: int) -> int:
    """At least 1 (a refit every run)."""
    return max(1, days)


def yesterday_utc() -> date:
    return datetime.now(UTC).date() - timedelta(days=1)


@dataclass(frozen=True)
class Settings:
    source: str = "synthetic"
    raw_dir: Path | None = None
    warehouse: Path = PROJECT_ROOT / "data" / "warehouse.duckdb"
    data_dir: Path = PROJECT_ROOT / "data"
    start_date: date = DEFAULT_START_DATE  # the first partition: see `start_date_explicit`
    start_date_explicit: bool = False  # CLV_START_DATE set; else the data's first order date (or the default)
    lookback_days: int = 7
    synthetic_customers: int = 10_000
    synthetic_seed: int = 42
    synthetic_end_date: date = date(2026, 12, 31)
    default_margin_rate: float = 0.40
    annual_discount_rate: float = 0.10
    reject_rate_threshold: float = 0.05
    freshness_hours: float = 36.0
    row_drop_threshold: float = 0.5
    duckdb_threads: int = 2
    duckdb_memory_limit: str = "2GB"
    ingest_chunk_days: int = 92
    clv_refit_days: int = 7
    purchase_model: str | None = None  # CLV_PURCHASE_MODEL; None = the back-test's choice
    target_ltv_to_cac: float = 3.0  # CLV_TARGET_LTV_TO_CAC: affordable CAC = break-even CAC 36 m / this
    hash_key_file: Path = Path.home() / ".config" / "clv" / "email_hash.key"
    accept_bad_input: bool = False
    as_of: date | None = None  # CLV_AS_OF; None: the newest loaded day (pipelines/run_window.py)
    reporting_currency: str | None = None  # CLV_REPORTING_CURRENCY; None: the currency most orders are in
    # The `postgres` source (pipelines/sources/postgres.py). The URL may hold a password: never in repr or logs.
    database_url: str | None = field(default=None, repr=False)
    pg_orders: str | None = None  # CLV_PG_ORDERS: relation or query; None = the relation `orders`
    pg_marketing_spend: str | None = None  # CLV_PG_MARKETING_SPEND; None = `marketing_spend` if it exists
    pg_cart_events: str | None = None  # CLV_PG_CART_EVENTS; None = `cart_events` if it exists; 'none' = off

    @property
    def published_dir(self) -> Path:
        return self.data_dir / "published"

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"

    @property
    def report_dir(self) -> Path:
        return self.data_dir / "report"

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @classmethod
    def from_env(cls) -> Settings:
        data_dir = Path(_env("CLV_DATA_DIR", str(PROJECT_ROOT / "data"))).resolve()
        source = _env("CLV_SOURCE", "synthetic")
        if source not in ("synthetic", "files", "postgres"):
            raise ValueError(f"CLV_SOURCE={source!r}: expected 'synthetic', 'files' or 'postgres'")
        raw_dir = os.environ.get("CLV_RAW_DIR")
        if source == "files" and not raw_dir:
            raise ValueError(
                "CLV_SOURCE=files needs CLV_RAW_DIR (or --raw-dir): the directory of orders*/marketing_spend* files"
            )
        database_url = os.environ.get("CLV_DATABASE_URL", "").strip() or None
        pg = {
            table: os.environ.get(f"CLV_PG_{table.upper()}", "").strip() or None
            for table in ("orders", "marketing_spend", "cart_events")
        }
        if source == "postgres":
            from pipelines.sources.postgres import check_settings

            check_settings(database_url, pg)
        warehouse = _warehouse(_env("CLV_WAREHOUSE", str(data_dir / "warehouse.duckdb")))
        explicit_start = _env("CLV_START_DATE", "")
        # History starts where the data does (recorded by the last full load of real data); the synthetic shop
        # starts on its configured first day.
        recorded = recorded_history_start(warehouse) if source != "synthetic" else None
        return cls(
            source=source,
            raw_dir=Path(raw_dir).resolve() if raw_dir else None,
            warehouse=warehouse,
            data_dir=data_dir,
            start_date=(
                _parse_date("CLV_START_DATE", explicit_start) if explicit_start else recorded or DEFAULT_START_DATE
            ),
            start_date_explicit=bool(explicit_start),
            lookback_days=_checked_days(
                f"CLV_LOOKBACK_DAYS={_env('CLV_LOOKBACK_DAYS', '7')!r}", _number("CLV_LOOKBACK_DAYS", "7")
            ),
            synthetic_customers=_number("CLV_SYNTHETIC_CUSTOMERS", "10000"),
            synthetic_seed=_number("CLV_SYNTHETIC_SEED", "42"),
            synthetic_end_date=_parse_date("CLV_SYNTHETIC_END", _env("CLV_SYNTHETIC_END", "2026-12-31")),
            default_margin_rate=_share("CLV_DEFAULT_MARGIN_RATE", "0.40"),
            annual_discount_rate=_share("CLV_ANNUAL_DISCOUNT_RATE", "0.10"),
            reject_rate_threshold=_share("CLV_REJECT_RATE_THRESHOLD", "0.05"),
            freshness_hours=_number("CLV_FRESHNESS_HOURS", "36", float),
            row_drop_threshold=_share("CLV_ROW_DROP_THRESHOLD", "0.5"),
            duckdb_threads=_number("CLV_DUCKDB_THREADS", "2"),
            duckdb_memory_limit=_env("CLV_DUCKDB_MEMORY_LIMIT", "2GB"),
            ingest_chunk_days=_number("CLV_INGEST_CHUNK_DAYS", "92"),
            clv_refit_days=_refit_days(_number("CLV_REFIT_DAYS", "7")),
            purchase_model=_purchase_model(_env("CLV_PURCHASE_MODEL", "")),
            target_ltv_to_cac=_positive("CLV_TARGET_LTV_TO_CAC", "3"),
            hash_key_file=Path(_env("CLV_HASH_KEY_FILE", str(default_key_file()))).expanduser().resolve(),
            accept_bad_input=_env("CLV_ACCEPT_BAD_INPUT", "0").lower() in ("1", "true", "yes"),
            as_of=_parse_date("CLV_AS_OF", _env("CLV_AS_OF", "")) if _env("CLV_AS_OF", "") else None,
            reporting_currency=_currency_code(_env("CLV_REPORTING_CURRENCY", "")),
            database_url=database_url,
            pg_orders=pg["orders"],
            pg_marketing_spend=pg["marketing_spend"],
            pg_cart_events=pg["cart_events"],
        )

    def with_overrides(self, **overrides) -> Settings:
        """These settings with the given values (None: keep), validated like their variables: the run config of
        the launchpad (pipelines/defs/resources.py)."""
        given = {name: value for name, value in overrides.items() if value is not None}
        if isinstance(given.get("as_of"), str):
            given["as_of"] = _parse_date("as_of", given["as_of"])
        if "purchase_model" in given:
            given["purchase_model"] = _purchase_model(given["purchase_model"])
        if "clv_refit_days" in given:
            given["clv_refit_days"] = _refit_days(given["clv_refit_days"])
        for name, example in (("default_margin_rate", "0.40"), ("annual_discount_rate", "0.10")):
            if name in given:
                given[name] = _checked_share(f"{name}={given[name]!r} (the run's configuration)", given[name], example)
        if "lookback_days" in given:
            given["lookback_days"] = _checked_days(
                f"lookback_days={given['lookback_days']!r} (the run's configuration)", given["lookback_days"]
            )
        return replace(self, **given) if given else self

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(reject_rate=self.reject_rate_threshold, row_drop=self.row_drop_threshold)

    def hash_key(self) -> HashKey:
        return load_key(self.hash_key_file)
