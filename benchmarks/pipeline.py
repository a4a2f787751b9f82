"""End-to-end benchmark: the whole pipeline on a synthetic shop of N orders, beside DuckDB's own floor.

    .venv/bin/python benchmarks/pipeline.py --orders 10000000                  # full run
    .venv/bin/python benchmarks/pipeline.py --orders 10000000 --mode incremental

Full mode: generates the shop (timed apart: it stands in for the source system), runs `clv run` (the real Dagster
job in a subprocess) and reports wall time and peak RSS of the process tree per stage (ingest, dbt, CLV fit and
scoring, payback, publish). In the same run it measures the floor: a bare DuckDB pass over the same raw order
files (read, aggregate per customer and per cohort month). Last line: `seconds=S peak_rss_mb=M`.

Incremental mode: a full run as of day D−1, then the daily run for partition D (one new day on top of the history,
plus the look-back window); prints `incremental_vs_full=Y`. With `--changed-export`, the daily run again after the
history export file changed (change detection reads it whole): prints `changed_export_vs_daily=Z`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ORDERS_PER_CUSTOMER = 6.25  # the synthetic shop's average over a 3-year window (measured)
START, END = date(2023, 1, 1), date(2025, 12, 31)
STAGES = {
    "raw__": "ingest",
    "dbt_models": "dbt",
    "clv_models": "clv",
    "marts__segment_clv": "clv",
    "marts__cohort_survival": "clv",
    "cac_payback": "payback",
    "reporting__": "publish",
}
STEP_START = re.compile(r'STEP_START - Started execution of step "([^"]+)"')
STEP_DONE = re.compile(r'STEP_SUCCESS - Finished execution of step "([^"]+)" in ([0-9.]+)(ms|s|m)')


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (dbt runs in a child process)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
        todo += children.get(current, [])
    return total / 1024


@dataclass
class Measured:
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    stage_seconds: dict = field(default_factory=dict)
    stage_peak_mb: dict = field(default_factory=dict)


def stage_of(step: str) -> str:
    return next((stage for prefix, stage in STAGES.items() if step.startswith(prefix)), "other")


def run_measured(args: list[str], env: dict) -> Measured:
    """Runs `clv`, following the Dagster event stream in the run's log file (`clv` prints its path) for stages."""
    result = Measured()
    current = {"stage": "startup"}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    done = threading.Event()
    log = {"path": None, "offset": 0, "pending": ""}

    def follow_log() -> None:
        if log["path"] is None or not log["path"].exists():
            return
        with open(log["path"], errors="replace") as handle:
            handle.seek(log["offset"])
            text = log["pending"] + handle.read()
            log["offset"] = handle.tell()
        *lines, log["pending"] = text.split("\n")
        for line in lines:
            if m := STEP_START.search(line):
                current["stage"] = stage_of(m.group(1))
            elif m := STEP_DONE.search(line):
                value = float(m.group(2)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(3)]
                stage = stage_of(m.group(1))
                result.stage_seconds[stage] = result.stage_seconds.get(stage, 0.0) + value

    def sample() -> None:
        while not done.is_set():
            follow_log()
            rss = tree_rss_mb(proc.pid)
            result.peak_rss_mb = max(result.peak_rss_mb, rss)
            stage = current["stage"]
            result.stage_peak_mb[stage] = max(result.stage_peak_mb.get(stage, 0.0), rss)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        tail = (tail + [line])[-60:]
        if line.startswith("Full log: "):
            log["path"] = Path(line.removeprefix("Full log: ").strip())
    proc.wait()
    done.set()
    sampler.join()
    follow_log()
    result.seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit("pipeline failed:\n" + "".join(tail))
    return result


def floor_seconds(landing: Path, threads: int) -> float:
    """What DuckDB alone needs: read the raw orders, aggregate per customer and per cohort month."""
    import duckdb

    con = duckdb.connect(config={"threads": threads})
    started = time.perf_counter()
    con.execute(f"""
        create temp table per_customer as
        select customer_id, min(ordered_at) as first_order, count(*) as orders,
               sum(net_revenue - refunded_amount) as revenue, sum(net_revenue - refunded_amount - cost) as margin
        from read_parquet('{landing}/orders.parquet') where status not in ('cancelled', 'test')
        group by customer_id""")
    con.execute("""
        select date_trunc('month', first_order) as cohort_month, count(*), sum(orders), sum(revenue), sum(margin)
        from per_customer group by 1 order by 1""").fetchall()
    return time.perf_counter() - started


def print_profile(title: str, m: Measured) -> None:
    print(f"\n{title}: {m.seconds:.1f} s wall, peak RSS {m.peak_rss_mb:,.0f} MB (process tree)")
    accounted = sum(m.stage_seconds.values())
    for stage in ("ingest", "dbt", "clv", "payback", "publish", "other"):
        if stage in m.stage_seconds:
            print(f"  {stage:<8} {m.stage_seconds[stage]:7.1f} s   peak {m.stage_peak_mb.get(stage, 0):7,.0f} MB")
    print(f"  {'overhead':<8} {m.seconds - accounted:7.1f} s   (process start, Dagster planning, imports)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000_000)
    parser.add_argument("--mode", choices=["full", "incremental"], default="full")
    parser.add_argument("--workdir", help="keep the data here (default: a temporary directory)")
    parser.add_argument(
        "--changed-export",
        action="store_true",
        help="incremental mode: also time a daily run after the history export changed",
    )
    args = parser.parse_args()
    if args.workdir:
        run_benchmark(args, Path(args.workdir))
        return
    workdir = Path(tempfile.mkdtemp(prefix="clv-bench-"))
    try:
        run_benchmark(args, workdir)
    finally:
        # About 4 GB at 10 M orders (landing files, warehouse, snapshot, exports): ten runs filled the disk.
        shutil.rmtree(workdir, ignore_errors=True)


def run_benchmark(args: argparse.Namespace, workdir: Path) -> None:
    from pipelines.settings import Settings
    from pipelines.sources.landing import ensure_synthetic_landing

    customers = max(1000, round(args.orders / ORDERS_PER_CUSTOMER))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CLV_")},
        "CLV_DATA_DIR": str(workdir),
        "CLV_RECORD_RUNS": "0",
        "CLV_START_DATE": START.isoformat(),
        "CLV_SYNTHETIC_END": END.isoformat(),
        "CLV_SYNTHETIC_CUSTOMERS": str(customers),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    os.environ.update(env)
    settings = Settings.from_env()
    print(f"machine: {os.cpu_count()} cores; {customers:,} customers; history {START}..{END}; data in {workdir}")

    started = time.perf_counter()
    landing = ensure_synthetic_landing(settings, log=lambda *_: None)
    generated = (landing / "_complete").read_text().strip()
    print(f"generate: {time.perf_counter() - started:.1f} s ({generated}; not part of the pipeline figures)")

    if args.mode == "full":
        full = run_measured(["run", "--as-of", END.isoformat()], env)
        print_profile("pipeline (clv run, full history)", full)
        floor = floor_seconds(landing, settings.duckdb_threads)
        print(f"\nfloor (bare DuckDB: read + aggregate per customer and cohort month): {floor:.2f} s")
        print(f"pipeline_vs_floor={full.seconds / floor:.1f}")
        print(f"seconds={full.seconds:.1f} peak_rss_mb={full.peak_rss_mb:.0f}")
    else:
        day = END
        full = run_measured(["run", "--as-of", (day - timedelta(days=1)).isoformat()], env)
        print_profile(f"full run as of {day - timedelta(days=1)}", full)
        daily = run_measured(["backfill", "--start", day.isoformat(), "--end", day.isoformat()], env)
        print_profile(f"daily run for partition {day} (+{settings.lookback_days}-day look-back)", daily)
        print(f"incremental_vs_full={daily.seconds / full.seconds:.3f}")
        print(f"seconds={daily.seconds:.1f} peak_rss_mb={daily.peak_rss_mb:.0f}")
        if args.changed_export:
            # The worst case of change detection: the whole history export changed (touched), so the daily run
            # reads all of it and compares every order with the warehouse (no order actually differs).
            os.utime(landing / "orders.parquet")
            again = run_measured(["backfill", "--start", day.isoformat(), "--end", day.isoformat()], env)
            print_profile(f"daily run for partition {day}, the 10 M-order export changed since the last load", again)
            print(f"changed_export_vs_daily={again.seconds / daily.seconds:.3f}")


if __name__ == "__main__":
    main()
