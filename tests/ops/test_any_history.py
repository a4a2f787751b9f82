"""History starts where the data does: the 1997–98 CDNOW purchase log builds every mart with no flag but --as-of.

The CDNOW sample (tests/data/CDNOW_sample.txt: 2,357 customers, 6,919 purchases, 1997-01-01..1998-06-30) is
written as an orders CSV of the data contract, one order per purchase line. Expected figures are computed here
from the text file itself, not from the pipeline's code.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from pipeline_runner import PROJECT_ROOT, pipeline_env, run_clv

from pipelines import contract

CDNOW = Path(__file__).resolve().parent.parent / "data" / "CDNOW_sample.txt"
MARTS = contract.MARTS


def _cdnow_purchases() -> list[tuple[str, date, float]]:
    purchases = []
    for line in CDNOW.read_text().splitlines():
        customer, _, day, _, amount = line.split()
        purchases.append((f"C{customer}", date(int(day[:4]), int(day[4:6]), int(day[6:])), float(amount)))
    return purchases


def _write_orders(directory: Path, purchases) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["order_id,customer_id,ordered_at,net_revenue"]
    lines += [
        f"P{i:05d},{customer},{day.isoformat()},{amount:.2f}" for i, (customer, day, amount) in enumerate(purchases)
    ]
    (directory / "orders_cdnow.csv").write_text("\n".join(lines) + "\n")
    return directory


@pytest.fixture(scope="module")
def cdnow_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("cdnow")
    raw = _write_orders(base / "raw", _cdnow_purchases())
    return run_clv(base / "data", "run", "--source", "files", "--raw-dir", str(raw), "--as-of", "1998-06-30")


def test_1997_history_builds_every_mart_without_a_start_date(cdnow_run):
    purchases = _cdnow_purchases()
    positive = [p for p in purchases if p[2] > 0]  # CDNOW has zero-value lines: kept, they are valid orders
    with cdnow_run.connect() as con:
        n, revenue, first, last = con.execute(
            "select count(*), sum(revenue), min(order_date), max(order_date) from marts.fct_orders"
        ).fetchall()[0]
        assert n == len(purchases), "every 1997-98 purchase is an order"
        assert revenue == pytest.approx(sum(p[2] for p in purchases))
        assert (first, last) == (min(p[1] for p in purchases), max(p[1] for p in purchases))
        assert con.execute("select count(*) from raw.rejected_orders").fetchall()[0][0] == 0
        customers = con.execute("select count(*) from marts.dim_customers").fetchall()[0][0]
        assert customers == len({p[0] for p in purchases}) == 2357
        cohorts = [
            str(m)
            for (m,) in con.execute("select distinct cohort_month from marts.cohort_retention order by 1").fetchall()
        ]
        assert cohorts == ["1997-01-01", "1997-02-01", "1997-03-01"]  # CDNOW's first-quarter-1997 customers
        empty = [m for m in MARTS if con.execute(f"select count(*) from marts.{m}").fetchall()[0][0] == 0]
    assert positive
    # cac_payback needs marketing spend, which CDNOW has not: every other mart holds rows
    assert set(empty) <= {"cac_payback", "cac_payback_curve"}, empty


def test_the_first_partition_follows_the_data(cdnow_run):
    recorded = (cdnow_run.data_dir / "warehouse.duckdb.history-start").read_text().strip()
    assert recorded == "1997-01-01"
    # Dagster's daily partitions (what the UI shows) start there too, in a fresh process as `dagster dev` loads them.
    env = pipeline_env(cdnow_run.data_dir, CLV_SOURCE="files", CLV_RAW_DIR=str(cdnow_run.data_dir))
    code = "from pipelines.defs.partitions import daily_partitions as p; print(p.get_first_partition_key())"
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "1997-01-01", out.stderr[-2000:]


def test_an_explicit_later_start_quarantines_earlier_orders_and_says_so(tmp_path):
    purchases = _cdnow_purchases()
    raw = _write_orders(tmp_path / "raw", purchases)
    run = run_clv(
        tmp_path / "data",
        "run",
        "--source",
        "files",
        "--raw-dir",
        str(raw),
        "--as-of",
        "1998-06-30",
        CLV_START_DATE="1997-03-01",
    )  # a setting, not bad input: no --accept-bad-input needed
    before = sum(1 for p in purchases if p[1] < date(1997, 3, 1))
    last_line = run.stdout.strip().splitlines()[-1]
    assert f"{before:,} orders dated before the first partition 1997-03-01" in last_line, run.stdout[-1500:]
    with run.connect() as con:
        reasons = con.execute("select reason from raw.rejected_orders").fetchall()
        assert len(reasons) == before
        assert all("is before the first partition 1997-03-01" in r for (r,) in reasons)
        assert con.execute("select min(order_date) from marts.fct_orders").fetchall()[0][0] >= date(1997, 3, 1)


def test_only_genuinely_impossible_dates_are_rejected(tmp_path):
    from pipelines.sources import files as src

    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "orders.csv").write_text(
        "order_id,customer_id,ordered_at,net_revenue\n"
        "A1,C1,1950-06-01,10\n"  # old mail-order history: kept
        "A2,C1,1997-01-01T10:00:00,20\n"
        "A3,C2,0001-01-01,30\n"  # a placeholder date: impossible
        "A4,C2,2999-01-01,40\n"
    )  # the future: impossible
    assert src.earliest_order_date(raw, today=date(2025, 1, 1)) == date(1950, 6, 1)
    window = src.Window(
        start=date(1950, 1, 1), end=date(2024, 12, 31), as_of=date(2024, 12, 31), first_partition=date(1950, 1, 1)
    )
    result = src.load_orders(src.discover(raw, "orders"), window, today=date(2025, 1, 1))
    assert sorted(result.valid["order_id"]) == ["A1", "A2"]
    assert dict(zip(result.rejected["source_line"], result.rejected["reason"])) == {
        4: "impossible ordered_at '0001-01-01'",
        5: "impossible ordered_at '2999-01-01'",
    }
