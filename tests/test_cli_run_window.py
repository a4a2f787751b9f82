"""The run's as-of date and history start on a real warehouse: an as-of the CLI refuses is refused whether it comes
from --as-of or CLV_AS_OF, a refused backfill publishes nothing, and a blocked run does not move the recorded
history start (issue 12's adversarial findings F1, F2, X1)."""

from __future__ import annotations

import shutil
from datetime import date, timedelta

import pytest
from pipeline_runner import run_clv

from pipelines.settings import history_start_file

FIRST_DAY = date(2025, 1, 1)


def _orders(excel_dates: bool = False) -> str:
    """50 orders of 16 customers, 2025-01-01 .. 2025-09-30. `excel_dates`: all but the last saved by Excel as
    DD/MM/YYYY (a blocked export whose one valid date, 2025-02-08, is after the history's first day)."""
    lines = ["order_id,customer_id,ordered_at,net_revenue,email,product_category"]
    for i in range(50):
        day = FIRST_DAY + timedelta(days=(i * 215) % 273)
        ordered_at = f"{day:%d/%m/%Y} 12:00" if excel_dates and i < 49 else f"{day.isoformat()}T12:00:00"
        lines.append(
            f"O{i:04d},C{i % 16:03d},{ordered_at},{10.5 + i % 13:.2f},cust{i % 16}@shop-example.com,cat{i % 4}"
        )
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def good_shop(tmp_path_factory):
    """A warehouse built by `clv run --as-of 2025-09-30` from a good export (history from 2025-01-01)."""
    root = tmp_path_factory.mktemp("good_shop")
    raw = root / "raw"
    raw.mkdir()
    (raw / "orders.csv").write_text(_orders())
    run_clv(root / "data", "run", "--source", "files", "--raw-dir", str(raw), "--as-of", "2025-09-30")
    return root


def _copy(good_shop, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(good_shop / "data", data)
    return data, good_shop / "raw"


def _published_state(data):
    """What BI reads: the snapshot's and the exports' modification times."""
    files = [data / "published" / "warehouse.duckdb", *sorted((data / "exports").rglob("*.parquet"))]
    assert len(files) > 1
    return {str(f.relative_to(data)): f.stat().st_mtime_ns for f in files}


def _one_line(run, words):
    assert run.returncode == 2, (run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clv: ") and words in lines[0], run.stderr


@pytest.mark.parametrize(
    "as_of, env, words",
    [
        ("2024-12-01", {}, "--as-of 2024-12-01 is before --start 2025-09-01"),
        ("2025-06-30", {}, "--as-of 2025-06-30 is before --start 2025-09-01"),
        (None, {"CLV_AS_OF": "2024-12-01"}, "CLV_AS_OF=2024-12-01 is before --start 2025-09-01"),
        (None, {"CLV_AS_OF": "2030-01-01"}, "CLV_AS_OF=2030-01-01 is in the future"),
    ],
)
def test_a_backfill_as_of_the_run_cannot_use_is_refused_and_publishes_nothing(good_shop, tmp_path, as_of, env, words):
    data, raw = _copy(good_shop, tmp_path)
    before = _published_state(data)
    args = ["backfill", "--source", "files", "--raw-dir", str(raw), "--start", "2025-09-01", "--end", "2025-09-16"]
    run = run_clv(data, *args, *(["--as-of", as_of] if as_of else []), check=False, **env)
    _one_line(run, words)
    assert _published_state(data) == before


def test_a_blocked_run_does_not_move_the_history_start(good_shop, tmp_path):
    data, _ = _copy(good_shop, tmp_path)
    history_start = history_start_file(data / "warehouse.duckdb")
    assert history_start.read_text().strip() == "2025-01-01"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "orders.csv").write_text(_orders(excel_dates=True))
    run = run_clv(data, "run", "--source", "files", "--raw-dir", str(bad), "--as-of", "2025-09-30", check=False)
    assert run.returncode == 1 and "raw__orders" in run.stderr, run.stderr
    # raw.orders still holds January: the history still starts there, so a backfill of January is accepted
    assert history_start.read_text().strip() == "2025-01-01"


def test_a_blocked_first_run_records_no_history_start(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "orders.csv").write_text(_orders(excel_dates=True))
    run = run_clv(
        tmp_path / "data", "run", "--source", "files", "--raw-dir", str(bad), "--as-of", "2025-09-30", check=False
    )
    assert run.returncode == 1, run.stderr
    assert not history_start_file(tmp_path / "data" / "warehouse.duckdb").exists()
    # nothing has ever been published: the last line does not promise BI a last complete run
    last = run.stderr.strip().splitlines()[-1]
    assert "Nothing was published; there is no complete run yet." in last and "BI still reads" not in last


def test_the_summary_of_empty_marts_says_none_instead_of_none_dates(tmp_path, monkeypatch):
    import duckdb

    from pipelines.cli import summary
    from pipelines.settings import Settings

    monkeypatch.setenv("CLV_DATA_DIR", str(tmp_path))
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("create schema marts; create schema raw")
    con.execute("create table marts.fct_orders (order_date date, revenue double, gross_margin double)")
    con.execute("create table marts.dim_customers (customer_id varchar)")
    con.execute("create table raw.rejected_orders (kind varchar, source_table varchar, reason varchar)")
    con.close()
    orders_line = next(line for line in summary(Settings.from_env()).splitlines() if line.startswith("Orders"))
    assert orders_line.startswith("Orders: none in the marts; 0 orders, 0 customers") and "None" not in orders_line
