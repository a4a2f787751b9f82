"""Runtime settings, read from `CLV_*` environment variables (the CLI flags set the same variables).

One place for every knob, so the CLI, `dagster dev`, the schedule and the tests agree on defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
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


def yesterday_utc() -> date:
    return datetime.now(timezone.utc).date() - timedelta(days=1)


@dataclass(frozen=True)
class Settings:
    source: str = "synthetic"
    raw_dir: Path | None = None
    warehouse: Path = PROJECT_ROOT / "data" / "warehouse.duckdb"
    data_dir: Path = PROJECT_ROOT / "data"
    start_date: date = date(2024, 1, 1)
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
    hash_key_file: Path = Path.home() / ".config" / "clv" / "email_hash.key"
    accept_bad_input: bool = False

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
    def from_env(cls) -> "Settings":
        data_dir = Path(_env("CLV_DATA_DIR", str(PROJECT_ROOT / "data"))).resolve()
        source = _env("CLV_SOURCE", "synthetic")
        if source not in ("synthetic", "files"):
            raise ValueError(f"CLV_SOURCE={source!r}: expected 'synthetic' or 'files'")
        raw_dir = os.environ.get("CLV_RAW_DIR")
        if source == "files" and not raw_dir:
            raise ValueError("CLV_SOURCE=files needs CLV_RAW_DIR (or --raw-dir): the directory of orders*/marketing_spend* files")
        return cls(
            source=source,
            raw_dir=Path(raw_dir).resolve() if raw_dir else None,
            warehouse=Path(_env("CLV_WAREHOUSE", str(data_dir / "warehouse.duckdb"))).resolve(),
            data_dir=data_dir,
            start_date=_parse_date("CLV_START_DATE", _env("CLV_START_DATE", "2024-01-01")),
            lookback_days=_number("CLV_LOOKBACK_DAYS", "7"),
            synthetic_customers=_number("CLV_SYNTHETIC_CUSTOMERS", "10000"),
            synthetic_seed=_number("CLV_SYNTHETIC_SEED", "42"),
            synthetic_end_date=_parse_date("CLV_SYNTHETIC_END", _env("CLV_SYNTHETIC_END", "2026-12-31")),
            default_margin_rate=_number("CLV_DEFAULT_MARGIN_RATE", "0.40", float),
            annual_discount_rate=_number("CLV_ANNUAL_DISCOUNT_RATE", "0.10", float),
            reject_rate_threshold=_number("CLV_REJECT_RATE_THRESHOLD", "0.05", float),
            freshness_hours=_number("CLV_FRESHNESS_HOURS", "36", float),
            row_drop_threshold=_number("CLV_ROW_DROP_THRESHOLD", "0.5", float),
            duckdb_threads=_number("CLV_DUCKDB_THREADS", "2"),
            duckdb_memory_limit=_env("CLV_DUCKDB_MEMORY_LIMIT", "2GB"),
            ingest_chunk_days=_number("CLV_INGEST_CHUNK_DAYS", "92"),
            clv_refit_days=max(1, _number("CLV_REFIT_DAYS", "7")),
            hash_key_file=Path(_env("CLV_HASH_KEY_FILE", str(default_key_file()))).expanduser().resolve(),
            accept_bad_input=_env("CLV_ACCEPT_BAD_INPUT", "0").lower() in ("1", "true", "yes"),
        )

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(reject_rate=self.reject_rate_threshold, row_drop=self.row_drop_threshold)

    def hash_key(self) -> HashKey:
        return load_key(self.hash_key_file)


def explicit_as_of() -> date | None:
    value = os.environ.get("CLV_AS_OF", "").strip()
    return _parse_date("CLV_AS_OF", value) if value else None
