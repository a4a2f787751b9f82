"""The published snapshot opens read-only in DuckDB 1.1, the oldest client we promise (BI drivers lag behind the
DuckDB the pipeline writes with), and holds every mart with the warehouse's row counts."""

from __future__ import annotations

from bi.side_venv import run_json, side_venv
from pipeline_runner import PipelineRun

from pipelines.contract import MARTS as MART_TABLES

OLD_DUCKDB = "1.1.3"
READ_SNAPSHOT = """
import json, sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
tables = [r[0] for r in con.execute("select table_name from information_schema.tables "
                                    "where table_schema = 'marts' order by 1").fetchall()]
counts = {t: con.execute(f'select count(*) from marts."{t}"').fetchall()[0][0] for t in tables}
described = con.execute("select count(*) from duckdb_tables() where schema_name = 'marts' "
                        "and coalesce(comment, '') <> ''").fetchall()[0][0]
try:
    con.execute("create table marts.written_by_a_reader (x integer)")
    writable = True
except duckdb.Error:
    writable = False
print(json.dumps({"version": duckdb.__version__, "counts": counts, "described_tables": described,
                  "writable": writable}))
"""


def test_duckdb_1_1_opens_the_snapshot_and_reads_every_mart(small_shop: PipelineRun):
    python = side_venv(f"duckdb-{OLD_DUCKDB}", [f"duckdb=={OLD_DUCKDB}"])
    snapshot = small_shop.data_dir / "published" / "warehouse.duckdb"
    seen = run_json(python, READ_SNAPSHOT, str(snapshot))
    assert seen["version"] == OLD_DUCKDB
    con = small_shop.connect()
    try:
        expected = {t: con.execute(f"select count(*) from marts.{t}").fetchall()[0][0] for t in MART_TABLES}
    finally:
        con.close()
    assert seen["counts"] == expected
    assert all(n > 0 for n in expected.values()), expected
    assert seen["described_tables"] == len(MART_TABLES)  # the COMMENTs survive in the old format too
    assert not seen["writable"]
