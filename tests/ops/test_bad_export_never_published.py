"""A merchant's real directory, end to end through `clv` (issue 12): files in any case are loaded and the others
named; e-mails appear nowhere in clear (warehouse, snapshot, exports, report, logs, Dagster's event log); a mostly
bad or all bad export stops the run before anything BI reads changes, with one line that says why. The data
directory and the warehouse file carry a quote, spaces and non-ASCII letters in their names."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import duckdb
import pytest
from _ops_support import snapshot
from pipeline_runner import open_warehouse, run_clv

from pipelines.warehouse import marts_path

pytestmark = pytest.mark.slow

AS_OF = "2025-06-30"
START = "2025-01-01"
DOMAIN = b"example.com"  # every address in these files is at this domain
HEADER = "order_id,customer_id,ordered_at,net_revenue,email,billing_email"


def _rows(first: int, n: int) -> list[str]:
    rows = []
    for i in range(first, first + n):
        customer = f"guest{i % 3}@example.com" if i % 10 == 0 else f"C{i % 15:02d}"  # guest checkouts: id = address
        rows.append(
            f"O{i:03d},{customer},2025-{1 + i % 6:02d}-{1 + i % 27:02d}T12:00:00,{10 + i}.50,"
            f"cust{i % 15}@example.com,billing{i}@example.com"
        )
    return rows


def _write(path: Path, rows: list[str]) -> None:
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")


def _excel_dates(rows: list[str], keep_first: bool) -> list[str]:
    """What Excel writes back: ISO timestamps re-typed as DD/MM/YYYY HH:MM."""
    out = []
    for i, row in enumerate(rows):
        f = row.split(",")
        if i or not keep_first:
            y, m, d = f[2][:10].split("-")
            f[2] = f"{d}/{m}/{y} 12:00"
        out.append(",".join(f))
    return out


def _digest(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("edges") / "it's a shop ü"
    raw = root / "exports from the shop"
    raw.mkdir(parents=True)
    _write(raw / "orders_a.csv", _rows(0, 20))
    _write(raw / "Orders_b.csv", _rows(20, 15))
    _write(raw / "orders_c.CSV", _rows(35, 15))
    (raw / "notes.txt").write_text("not data")
    (raw / "orders.xlsx").write_bytes(b"PK\x03\x04")
    data = root / "data"
    args = (
        "--source",
        "files",
        "--raw-dir",
        str(raw),
        "--as-of",
        AS_OF,
        "--start-date",
        START,
        "--warehouse",
        str(root / "o'brien shop.duckdb"),
    )
    env = {"CLV_RECORD_RUNS": "1"}  # a real Dagster instance (in data/dagster_home): its event log is checked too
    good = run_clv(data, "run", *args, **env)
    return root, raw, data, args, env, good


def _warehouse(root: Path) -> Path:
    return root / "o'brien shop.duckdb"


def _bi_state(root: Path, data: Path) -> tuple:
    return (
        _digest(data / "published"),
        _digest(data / "exports"),
        _digest(data / "report"),
        snapshot(_warehouse(root)),
    )


def test_files_in_any_case_are_loaded_and_the_others_named(shop):
    root, _, data, _, _, good = shop
    con = open_warehouse(_warehouse(root))
    try:
        assert con.execute("select count(*), sum(net_revenue) from marts.fct_orders").fetchone() == (
            50,
            pytest.approx(sum(10.5 + i for i in range(50))),
        )
        files = {r[0] for r in con.execute("select distinct source_file from raw.orders").fetchall()}
    finally:
        con.close()
    assert files == {"orders_a.csv", "Orders_b.csv", "orders_c.CSV"}
    assert (
        "Not loaded from" in good.stdout
        and "notes.txt" in good.stdout
        and "orders.xlsx (unsupported file type" in good.stdout
    )
    log = next((data / "logs").glob("clv-run-*.log")).read_text()
    assert "Not loaded: notes.txt" in log and "Not loaded: orders.xlsx" in log


def test_no_address_in_clear_anywhere(shop):
    root, _, data, _, _, _ = shop
    leaks = []
    for path in dict.fromkeys([_warehouse(root), marts_path(_warehouse(root)), *data.rglob("*")]):
        if not path.is_file():
            continue
        if path.suffix in (".duckdb", ".parquet"):
            if path == _warehouse(root):  # its views over the marts need the marts file attached
                con = open_warehouse(path)
            else:
                con = duckdb.connect(str(path), read_only=True) if path.suffix == ".duckdb" else duckdb.connect()
            try:
                relations = (
                    [
                        (f'"{d}"."{s}"."{t}"', c)
                        for d, s, t, c in con.execute(
                            "select table_catalog, table_schema, table_name, column_name "
                            "from information_schema.columns where data_type = 'VARCHAR'"
                        ).fetchall()
                    ]
                    if path.suffix == ".duckdb"
                    else [
                        (f"read_parquet('{path.as_posix().replace(chr(39), chr(39) * 2)}')", c)
                        for c, t, *_ in con.execute(
                            f"describe select * from read_parquet('{path.as_posix().replace(chr(39), chr(39) * 2)}')"
                        ).fetchall()
                        if t == "VARCHAR"
                    ]
                )
                for relation, column in relations:
                    n = con.execute(
                        f"select count(*) from {relation} where \"{column}\" like '%example.com%'"
                    ).fetchone()[0]
                    if n:
                        leaks.append(f"{path.name}: {relation}.{column} ({n} rows)")
            finally:
                con.close()
        elif path.suffix not in (".wal",) and DOMAIN in path.read_bytes():
            leaks.append(str(path.relative_to(data)))
    assert leaks == []
    con = duckdb.connect(str(data / "published" / "warehouse.duckdb"), read_only=True)
    try:  # BI gets the marts, nothing else (no raw rows, rejected records or hashes)
        assert {
            r[0] for r in con.execute("select distinct table_schema from information_schema.tables").fetchall()
        } == {"marts"}
    finally:
        con.close()


@pytest.mark.parametrize("keep_first", [True, False], ids=["mostly bad export", "all bad export"])
def test_a_bad_export_never_reaches_bi(shop, tmp_path, keep_first):
    root, raw, data, args, env, _ = shop
    before = _bi_state(root, data)
    bad_raw = tmp_path / "bad"
    bad_raw.mkdir()
    _write(bad_raw / "orders.csv", _excel_dates(_rows(0, 50), keep_first))
    bad_args = tuple(str(bad_raw) if a == str(raw) else a for a in args)
    run = run_clv(data, "run", *bad_args, check=False, **env)
    assert run.returncode == 1
    assert "Traceback" not in run.stdout + run.stderr
    last = run.stderr.strip().splitlines()[-1]
    rejected = 49 if keep_first else 50
    assert f"{rejected} of 50 rows rejected" in last and "orders.csv" in last, last
    assert "most frequent reason: unparseable ordered_at" in last and "e.g. line" in last, last
    assert "--accept-bad-input" in last and "step raw__orders" in last and "Full log: " in last, last
    assert _bi_state(root, data) == before  # snapshot, exports, report and every mart as they were
    log = Path(last.split("Full log: ", 1)[1]).read_bytes()
    assert DOMAIN not in log


def test_a_deliberate_override_loads_and_the_models_survive_an_empty_shop(shop, tmp_path):
    root, raw, data, args, env, _ = shop
    copy = tmp_path / "copy"
    shutil.copytree(data, copy / "data")
    shutil.copy(_warehouse(root), copy / "o'brien shop.duckdb")
    shutil.copy(marts_path(_warehouse(root)), marts_path(copy / "o'brien shop.duckdb"))
    bad_raw = tmp_path / "bad"
    bad_raw.mkdir()
    _write(bad_raw / "orders.csv", _excel_dates(_rows(0, 50), keep_first=False))
    bad_args = tuple(
        str(bad_raw) if a == str(raw) else str(copy / "o'brien shop.duckdb") if a == str(_warehouse(root)) else a
        for a in args
    )
    run = run_clv(copy / "data", "run", *bad_args, "--accept-bad-input", **env)
    assert "0 orders" in run.stdout
