"""The contract registry (pipelines/contract.py) against what is written elsewhere: dbt's sources, the warehouse."""

from __future__ import annotations

import duckdb
import yaml

from pipelines import contract
from pipelines import warehouse as wh
from pipelines.settings import DBT_PROJECT_DIR


def _dbt_source_columns() -> dict[str, list[str]]:
    sources = yaml.safe_load((DBT_PROJECT_DIR / "models" / "staging" / "_sources.yml").read_text())["sources"]
    return {
        f"{source['name']}.{table['name']}": [c["name"] for c in table.get("columns", [])]
        for source in sources
        for table in source["tables"]
    }


def test_dbt_sources_declare_every_stored_column_of_the_contract():
    declared = _dbt_source_columns()
    for table in contract.SOURCE_TABLES.values():
        assert sorted(declared[table.name]) == sorted(table.names(stored=True)), table.name


def test_the_warehouse_tables_have_the_contract_columns_in_order(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    wh.ensure_raw_schema(con)
    for table in contract.RAW_TABLES:
        schema, name = table.name.split(".")
        rows = con.execute(
            "select column_name, data_type, is_nullable from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [schema, name],
        ).fetchall()
        expected = [(c.name, c.sql_type.upper(), "NO" if c.not_null else "YES") for c in table.columns if c.stored]
        assert rows == expected, table.name


def test_the_e_mail_in_clear_is_read_but_never_stored():
    assert "email" in contract.ORDERS.input_columns
    assert "email" not in contract.ORDERS.names(stored=True)
    assert "email_hmac" in contract.ORDERS.names(stored=True)
    assert "email_hmac" not in contract.ORDERS.input_columns


def test_required_input_columns_come_first_and_marts_are_listed_once():
    for table in contract.SOURCE_TABLES.values():
        assert table.input_columns[: len(table.required)] == table.required
    assert len(set(contract.MARTS)) == len(contract.MARTS)
