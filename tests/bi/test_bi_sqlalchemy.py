"""SQL clients built on SQLAlchemy (Superset, notebooks, dbt-less tools) reflect the snapshot's tables and columns
with the versions docs/bi_clients.md pins: duckdb-engine 0.17.0 with SQLAlchemy 1.4 or 2.0. SQLAlchemy 2.1's
PostgreSQL column reflection reads pg_catalog.pg_collation, which DuckDB does not have (checked: it fails)."""

from __future__ import annotations

import pytest
from bi.side_venv import run_json, side_venv
from pipeline_runner import PipelineRun

# (venv name, requirements): the two pins of docs/bi_clients.md, each with a DuckDB the snapshot must open
CLIENTS = [
    ("sqlalchemy-1.4", ["sqlalchemy==1.4.54", "duckdb-engine==0.17.0", "duckdb==1.1.3"]),
    ("sqlalchemy-2.0", ["sqlalchemy==2.0.58", "duckdb-engine==0.17.0", "duckdb==2.0.1"]),
]
REFLECT = """
import json, sys
from sqlalchemy import create_engine, inspect, text
path = sys.argv[1]
out = {}
for how, engine in (("url", create_engine(f"duckdb:///{path}?access_mode=read_only")),
                    ("connect_args", create_engine(f"duckdb:///{path}", connect_args={"read_only": True}))):
    inspector = inspect(engine)
    columns = inspector.get_columns("customer_clv", schema="marts")
    with engine.connect() as con:
        rows = con.execute(text("select count(*) from marts.customer_clv")).scalar()
        try:
            con.execute(text("create table marts.written_by_a_reader (x integer)"))
            writable = True
        except Exception:
            writable = False
    out[how] = {"tables": sorted(inspector.get_table_names(schema="marts")),
                "columns": [[c["name"], str(c["type"]), c.get("comment")] for c in columns],
                "table_comment": inspector.get_table_comment("customer_clv", schema="marts")["text"],
                "rows": rows, "writable": writable}
    engine.dispose()
print(json.dumps(out))
"""


@pytest.mark.parametrize("name,requirements", CLIENTS, ids=[name for name, _ in CLIENTS])
def test_sqlalchemy_reflects_the_snapshot(small_shop: PipelineRun, name, requirements):
    python = side_venv(name, requirements)
    snapshot = small_shop.data_dir / "published" / "warehouse.duckdb"
    seen = run_json(python, REFLECT, str(snapshot))
    con = small_shop.connect()
    try:
        expected = con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'marts' and table_name = 'customer_clv' "
            "order by ordinal_position"
        ).fetchall()
        rows = con.execute("select count(*) from marts.customer_clv").fetchall()[0][0]
        tables = sorted(
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            ).fetchall()
        )
    finally:
        con.close()
    for how, result in seen.items():
        assert [c[0] for c in result["columns"]] == [c[0] for c in expected], how
        assert all(c[2] for c in result["columns"]), f"{how}: a column without its comment"
        assert result["table_comment"], how
        assert result["tables"] == tables, how
        assert result["rows"] == rows, how
        assert not result["writable"], how
