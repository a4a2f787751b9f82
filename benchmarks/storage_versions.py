"""What DuckDB 1.1's storage format costs where the marts are written: the biggest dbt marts copied into a new file in
v1.1 storage (the marts file's format, for BI clients from DuckDB 1.1 on), in DuckDB 2.0's own format, and in v1.1
without FSST string compression; variants alternated (A, B, C, C, B, A, ...), medians of wall seconds and sizes.

    .venv/bin/python benchmarks/pipeline.py --orders 10000000 --workdir /tmp/bench10m    # once (~90 s)
    .venv/bin/python benchmarks/storage_versions.py --workdir /tmp/bench10m --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipelines import warehouse as wh  # noqa: E402

TABLES = ("fct_orders", "dim_customers", "customer_segments", "windowed_ltv")
# name -> (storage version, or None for DuckDB's own; compression methods switched off)
VARIANTS = {
    "v1.1 (the marts file)": ("v1.1.0", None),
    "DuckDB 2.0's own": (None, None),
    "v1.1 without FSST": ("v1.1.0", "fsst"),
}


def write(warehouse: Path, target: Path, version: str | None, disabled: str | None) -> float:
    target.unlink(missing_ok=True)
    with wh.connect(warehouse) as con:
        if disabled:
            con.execute(f"set disabled_compression_methods = {wh.sql_string(disabled)}")
        options = f" (storage_version {wh.sql_string(version)})" if version else ""
        con.execute(f"attach {wh.sql_string(target)} as copied{options}")
        try:
            con.execute("create schema copied.marts")
            started = time.perf_counter()
            for table in TABLES:
                con.execute(f"create table copied.marts.{table} as select * from marts.{table}")
            con.execute("checkpoint copied")
            return time.perf_counter() - started
        finally:
            con.execute("detach copied")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="the --workdir of a benchmarks/pipeline.py run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warehouse = Path(args.workdir) / "warehouse.duckdb"
    scratch = Path(tempfile.mkdtemp(prefix="clv-storage-"))
    seconds: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}
    names = list(VARIANTS)
    for repeat in range(args.repeats):
        for name in names if repeat % 2 == 0 else reversed(names):
            target = scratch / f"variant{names.index(name)}.duckdb"
            wall = write(warehouse, target, *VARIANTS[name])
            seconds.setdefault(name, []).append(wall)
            sizes[name] = target.stat().st_size
            print(f"  {name:<24} {wall:6.2f} s  {sizes[name] / 1e6:,.0f} MB", flush=True)
            target.unlink()
    print(f"\nmedians of {args.repeats}, {', '.join(TABLES)}:")
    for name in names:
        print(f"  {name:<24} {statistics.median(seconds[name]):6.2f} s  {sizes[name] / 1e6:,.0f} MB")
    scratch.rmdir()


if __name__ == "__main__":
    main()
