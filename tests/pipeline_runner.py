"""Runs the real pipeline (the `clv` CLI → the Dagster job → dbt → polars) in a subprocess, against a temporary
data directory, so tests never touch ./data and never share state by accident. Importable from any test as
`pipeline_runner` (pytest puts tests/ on sys.path; see pyproject)."""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipelines import warehouse as wh
from pipelines.privacy import HashKey

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SMALL_SHOP_CUSTOMERS = 1500
SMALL_SHOP_AS_OF = "2025-12-31"
# One e-mail hash key for every test run (CLV_HASH_KEY), so copies of a data directory keep comparable hashes
# and no test writes a key into the real ~/.config.
TEST_HASH_KEY_HEX = "5e" * 32
TEST_HASH_KEY = HashKey(bytes.fromhex(TEST_HASH_KEY_HEX))


@dataclass
class PipelineRun:
    data_dir: Path
    returncode: int
    stdout: str
    stderr: str

    @property
    def warehouse(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    def connect(self) -> duckdb.DuckDBPyConnection:
        return open_warehouse(self.warehouse)


def open_warehouse(path: Path, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """A connection as the pipeline's (the same settings, which DuckDB requires of every connection to one file in
    a process): the marts' own file attached, `marts.<table>` resolving there."""
    return wh.open_warehouse(path, read_only=read_only)


def pipeline_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLV_")}
    env.update(
        {
            "CLV_DATA_DIR": str(data_dir),
            "CLV_RECORD_RUNS": "0",  # ephemeral Dagster instance: no DAGSTER_HOME needed
            "CLV_SYNTHETIC_CUSTOMERS": str(SMALL_SHOP_CUSTOMERS),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DAGSTER_HOME": str(data_dir / "dagster_home"),
            "CLV_HASH_KEY": TEST_HASH_KEY_HEX,
        }
    )
    env.update(extra)
    return env


def run_clv(data_dir: Path, *args: str, check: bool = True, timeout: float = 600, **env: str) -> PipelineRun:
    """`clv <args>` in a subprocess; extra keyword arguments become environment variables."""
    data_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=PROJECT_ROOT,
        env=pipeline_env(data_dir, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    run = PipelineRun(data_dir, done.returncode, done.stdout, done.stderr)
    if check and done.returncode != 0:
        raise AssertionError(
            f"clv {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
        )
    return run
