"""The publish step and the CLV back-test, old code beside new, on a warehouse built by benchmarks/pipeline.py.

    .venv/bin/python benchmarks/pipeline.py --orders 10000000 --workdir /tmp/bench10m    # once (~90 s+)
    .venv/bin/python benchmarks/publish_and_clv.py --workdir /tmp/bench10m --repeats 5

"Old" is each module as of ``--baseline`` (a git revision, read with ``git show``; default: the commit before
this round's changes), "new" the working tree's. Both run in this one process, alternately (old, new, old, new,
...), so that a busy machine (2 cores shared with other people's test runs) slows both alike; the figures are
medians of wall and CPU seconds (CPU of every thread of the process: DuckDB's and polars' pools included).

Stages:

- ``backtest``: :func:`pipelines.clv.backtest.calibration_holdout_backtest` of every purchase model and the
  formula on the warehouse's ``marts.fct_orders``, split as the pipeline splits it (its as-of from
  ``raw.run_context``). Checked: every calibration fit identical to the last bit (parameters, log-likelihood,
  iterations), every customer's predicted and actual hold-out purchases identical; the aggregate errors equal to
  1e-12 relative (they are sums over customers in the order of a polars group-by, which differs from run to run:
  the last bits differ between two runs of the old code too), the revenue columns to 1e-9 (the back-test's
  Gamma-Gamma fit sees spend sums whose last bits also vary from run to run).
- ``publish``: :func:`pipelines.publish.publish` of the warehouse into a fresh directory (a full run: every
  month of ``fct_orders`` exported). When the two versions differ, their snapshots are compared table by table
  in row order with their comments, and their exports file by file (rows in any order: the monthly files' row
  order depends on thread scheduling already).

A stage whose module is the same in both versions is timed once per repetition and reported without a ratio.
Last line: ``<stage>_new_vs_old=R`` for each stage compared (median wall, new / old).
"""

from __future__ import annotations

import argparse
import math
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The last commit before this round's publish/back-test changes.
DEFAULT_BASELINE = "c2d8c04"
STAGES = ("backtest", "publish")
MODULES = {"backtest": "pipelines/clv/backtest.py", "publish": "pipelines/publish.py"}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def baseline_module(revision: str, path: str, name: str) -> types.ModuleType | None:
    """The module at `path` as of `revision`, imported under `name`; None when the working tree has it unchanged."""
    source = subprocess.run(
        ["git", "show", f"{revision}:{path}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    if source == (ROOT / path).read_text():
        return None
    module = types.ModuleType(name)
    module.__file__ = f"{revision}:{path}"
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def timed(function: Callable[[], object]) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = function()
    return time.perf_counter() - wall, cpu_seconds() - cpu, result


# ---------------------------------------------------------------- back-test


def backtest_inputs(warehouse: Path):
    import duckdb
    import polars as pl

    from pipelines.clv.backtest import default_backtest_split
    from pipelines.warehouse import attach_marts

    con = duckdb.connect(str(warehouse), read_only=True)
    attach_marts(con, warehouse, read_only=True)
    try:
        orders = pl.from_arrow(
            con.sql("select customer_id, order_date, revenue from marts.fct_orders").to_arrow_table()
        ).lazy()
        as_of = con.execute("select max(as_of) from raw.run_context").fetchall()[0][0]
        first = con.execute("select min(first_order_date) from intermediate.int_customer_totals").fetchall()[0][0]
    finally:
        con.close()
    calibration_end, holdout_end = default_backtest_split(first, as_of)
    return orders, calibration_end, holdout_end


def run_backtest(module, inputs):
    from pipelines.clv.models import PURCHASE_MODELS

    orders, calibration_end, holdout_end = inputs
    return module.calibration_holdout_backtest(
        orders, calibration_end, holdout_end, models=tuple(PURCHASE_MODELS), formula=True, min_repeat_customers=20
    )


def _close(a, b, rtol: float) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isfinite(a) and math.isfinite(b) and abs(a - b) <= rtol * max(abs(a), abs(b)))


def compare_backtests(old, new) -> list[str]:
    """What differs beyond the run-to-run noise described in the module docstring (empty: nothing)."""
    problems = []
    if list(old.by_model) != list(new.by_model) or old.notes.keys() != new.notes.keys():
        return [f"models {list(old.by_model)} / {list(new.by_model)}, notes {old.notes} / {new.notes}"]
    for name, a in old.by_model.items():
        b = new.by_model[name]
        if (a.fit is None) != (b.fit is None) or (
            a.fit is not None
            and (a.fit.params, a.fit.log_likelihood, a.fit.iterations, a.fit.n_customers)
            != (b.fit.params, b.fit.log_likelihood, b.fit.iterations, b.fit.n_customers)
        ):
            problems.append(f"{name}: fit {a.fit} / {b.fit}")
        pa, pb = a.per_customer.sort("customer_id"), b.per_customer.sort("customer_id")
        for column in ("customer_id", "frequency", "predicted", "actual", "frequency_bucket"):
            if not pa[column].equals(pb[column]):
                problems.append(f"{name}: per-customer {column} differs")
        for column in a.overall.columns:
            rtol = 1e-9 if "revenue" in column else 1e-12
            if not _close(a.overall[column][0], b.overall[column][0], rtol):
                problems.append(f"{name}: {column} {a.overall[column][0]!r} / {b.overall[column][0]!r}")
    return problems


# ---------------------------------------------------------------- publish


def run_publish(module, warehouse: Path, scratch: Path, label: str) -> Path:
    target = scratch / label
    shutil.rmtree(target, ignore_errors=True)
    module.publish(warehouse, target / "published", target / "exports")
    return target


def compare_publishes(old: Path, new: Path) -> list[str]:
    import duckdb
    import polars as pl

    problems = []
    old_files = sorted(p.relative_to(old / "exports") for p in (old / "exports").rglob("*.parquet"))
    new_files = sorted(p.relative_to(new / "exports") for p in (new / "exports").rglob("*.parquet"))
    if old_files != new_files:
        return [f"export files differ: {set(old_files) ^ set(new_files)}"]
    for relative in old_files:
        a, b = pl.read_parquet(old / "exports" / relative), pl.read_parquet(new / "exports" / relative)
        if a.schema != b.schema or not a.sort(a.columns).equals(b.sort(b.columns)):
            problems.append(f"export {relative} differs")
    con = duckdb.connect()
    try:
        con.execute(f"attach '{old / 'published' / 'warehouse.duckdb'}' as old_snapshot (read_only)")
        con.execute(f"attach '{new / 'published' / 'warehouse.duckdb'}' as new_snapshot (read_only)")
        catalog = (
            "select schema_name, table_name, comment from duckdb_tables() where database_name = ? order by all",
            "select table_name, column_name, data_type, comment from duckdb_columns() where database_name = ? "
            "order by table_name, column_index",
        )
        for query in catalog:
            if con.execute(query, ["old_snapshot"]).fetchall() != con.execute(query, ["new_snapshot"]).fetchall():
                problems.append(f"snapshot catalog differs: {query}")
        for (table,) in con.execute(
            "select table_name from duckdb_tables() where database_name = 'old_snapshot' order by 1"
        ).fetchall():
            a = pl.from_arrow(con.sql(f'select * from old_snapshot.marts."{table}"').to_arrow_table())
            b = pl.from_arrow(con.sql(f'select * from new_snapshot.marts."{table}"').to_arrow_table())
            if not a.equals(b):  # row order included: the snapshot keeps the warehouse's insertion order
                problems.append(f"snapshot table {table} differs")
    finally:
        con.close()
    return problems


# ---------------------------------------------------------------- driver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a data directory of benchmarks/pipeline.py --workdir")
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision of the old code")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, of {', '.join(STAGES)}")
    args = parser.parse_args()
    warehouse = Path(args.workdir) / "warehouse.duckdb"
    stages = [s for s in args.stages.split(",") if s]
    unknown = set(stages) - set(STAGES)
    if unknown:
        parser.error(f"unknown stages {sorted(unknown)}")

    import pipelines.clv.backtest as new_backtest
    import pipelines.publish as new_publish

    new_modules = {"backtest": new_backtest, "publish": new_publish}
    old_modules = {s: baseline_module(args.baseline, MODULES[s], f"_baseline_{s}") for s in stages}
    scratch = Path(tempfile.mkdtemp(prefix="publish-and-clv-", dir=args.workdir))
    inputs = backtest_inputs(warehouse) if "backtest" in stages else None
    print(f"warehouse {warehouse}; old = {args.baseline}, new = working tree; {args.repeats} repetitions, alternating")
    ratios = {}
    try:
        for stage in stages:
            variants = {"new": new_modules[stage]}
            if old_modules[stage] is not None:
                variants = {"old": old_modules[stage], "new": new_modules[stage]}
            times: dict[str, list[tuple[float, float]]] = {label: [] for label in variants}
            results: dict[str, object] = {}
            for _ in range(args.repeats):
                for label, module in variants.items():
                    if stage == "backtest":
                        wall, cpu, results[label] = timed(lambda m=module: run_backtest(m, inputs))
                    else:
                        wall, cpu, results[label] = timed(
                            lambda m=module, x=label: run_publish(m, warehouse, scratch, x)
                        )
                    times[label].append((wall, cpu))
            print(f"\n{stage}" + ("" if "old" in variants else f" (unchanged since {args.baseline}: timed once)"))
            for label, runs in times.items():
                walls = " ".join(f"{w:.2f}" for w, _ in runs)
                print(
                    f"  {label}: wall median {statistics.median(w for w, _ in runs):6.2f} s  [{walls}]   "
                    f"CPU median {statistics.median(c for _, c in runs):6.2f} s"
                )
            if "old" in variants:
                wall = {k: statistics.median(w for w, _ in v) for k, v in times.items()}
                cpu = {k: statistics.median(c for _, c in v) for k, v in times.items()}
                ratios[stage] = wall["new"] / wall["old"]
                print(f"  new / old: wall {ratios[stage]:.3f}, CPU {cpu['new'] / cpu['old']:.3f}")
                compare = compare_backtests if stage == "backtest" else compare_publishes
                problems = compare(results["old"], results["new"])
                print("  results: " + ("the same (see the module docstring)" if not problems else "DIFFERENT"))
                for problem in problems:
                    print(f"    {problem}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(" ".join(f"{stage}_new_vs_old={ratio:.3f}" for stage, ratio in ratios.items()) or "nothing compared")


if __name__ == "__main__":
    main()
