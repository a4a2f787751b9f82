"""No address in clear after a whole `clv run --source files` (the CLI, the Dagster job, dbt, the exports, the
report): addresses in a file's name, in free-text columns of valid orders and inside customer ids (adversarial
findings F3-F6). The inputs are made here; every text output of the run is searched for the planted domain."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest
from pipeline_runner import run_clv  # noqa: E402

DOMAIN = "planted-mail.com"
HEADER = "order_id,customer_id,ordered_at,net_revenue,email,product_category,channel,discount_code"
CUSTOMERS = [f"C{i:03d}" for i in range(18)] + [
    f'"Anna Nowak <anna.display@{DOMAIN}>"',
    f"mailto:bob.mailto@{DOMAIN}",
]


def _orders() -> list[str]:
    rows = []
    for i in range(80):
        customer = CUSTOMERS[i % len(CUSTOMERS)]
        day = f"2025-{1 + i % 11:02d}-{1 + i % 27:02d}"
        category, channel, code = f"cat{i % 3}", "web" if i % 2 else "ads", ""
        if i % 10 == 3:
            category = f"note for prev{i}@{DOMAIN}"
        if i % 10 == 5:
            channel = f"newsletter valid.channel{i}@{DOMAIN}"
        if i % 10 == 7:
            code = f"CODE-valid.code{i}@{DOMAIN}"
        rows.append(f"Q{i:04d},{customer},{day}T10:00:00,{20 + i % 30}.00,good{i}@{DOMAIN},{category},{channel},{code}")
    return rows


# The file a raw row came from keeps its real name (raw.*, staging: the working warehouse, never published or
# exported): a redacted name could merge two files into one, and rejects are kept one per (file, line).
FILE_NAME_COLUMNS = ("source_file", "source_sort_key", "file_name")


def _texts_with_domain(con: duckdb.DuckDBPyConnection) -> list[str]:
    found = []
    for schema, table, column in con.execute(
        "select table_schema, table_name, column_name from information_schema.columns where data_type = 'VARCHAR'"
    ).fetchall():
        if column in FILE_NAME_COLUMNS:
            continue
        hits = con.execute(
            f'select "{column}" from "{schema}"."{table}" where contains(lower("{column}"), ?) limit 3', [DOMAIN]
        ).fetchall()
        found += [f"{schema}.{table}.{column}: {v}" for (v,) in hits]
    return found


@pytest.fixture(scope="module")
def leaky_run(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw_leaky")
    (raw / f"orders_anna.export@{DOMAIN}.csv").write_text(HEADER + "\n" + "\n".join(_orders()) + "\n")
    (raw / f"from_bob.sender@{DOMAIN}.txt").write_text("hi\n")
    return run_clv(
        tmp_path_factory.mktemp("leaky_run"), "run", "--as-of", "2025-12-31", "--source", "files", "--raw-dir", str(raw)
    )


@pytest.mark.slow
def test_e2e_the_run_prints_and_logs_no_address(leaky_run):
    assert DOMAIN not in leaky_run.stdout + leaky_run.stderr
    assert "Not loaded from" in leaky_run.stdout  # the .txt file is named, redacted
    for log in (leaky_run.data_dir / "logs").rglob("*"):
        if log.is_file():
            assert DOMAIN not in log.read_text(errors="replace"), log


@pytest.mark.slow
def test_e2e_valid_rows_with_addresses_load_and_no_table_holds_one(leaky_run):
    with leaky_run.connect() as con:
        assert con.execute("select count(*) from raw.orders").fetchone()[0] == 80  # none rejected
        assert con.execute("select count(*) from marts.fct_orders").fetchone()[0] == 80
        assert _texts_with_domain(con) == []
    with duckdb.connect(str(leaky_run.data_dir / "published" / "warehouse.duckdb"), read_only=True) as con:
        assert _texts_with_domain(con) == []


@pytest.mark.slow
def test_e2e_no_export_report_or_doc_holds_an_address(leaky_run):
    files = [p for d in ("exports", "report", "docs") for p in (leaky_run.data_dir / d).rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files)
    for path in files:
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
            text = frame.select(pl.col(pl.String)).write_csv()
        elif path.suffix == ".pdf":
            continue  # drawn from the same chart data as the page
        else:
            text = path.read_text(errors="replace")
        assert DOMAIN not in text.lower(), path


@pytest.mark.slow
def test_e2e_a_header_less_export_fails_without_printing_its_addresses(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "orders.csv").write_text("\n".join(_orders()[:20]) + "\n")
    run = run_clv(
        tmp_path / "data", "run", "--as-of", "2025-12-31", "--source", "files", "--raw-dir", str(raw), check=False
    )
    assert run.returncode != 0
    assert "missing required column" in run.stderr
    assert DOMAIN not in run.stdout + run.stderr
    for log in (tmp_path / "data" / "logs").rglob("*"):
        if log.is_file():
            assert DOMAIN not in log.read_text(errors="replace"), log
