"""One materialisation of the whole graph on a small synthetic shop (the `small_shop` fixture runs `clv run`)."""

import duckdb
import polars as pl
import pytest

from pipelines.contract import MARTS as MART_TABLES


def test_every_mart_is_built_and_summarised(small_shop):
    assert "Warehouse:" in small_shop.stdout and "Marts (rows):" in small_shop.stdout
    with small_shop.connect() as con:
        built = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            ).fetchall()
        }
        assert set(MART_TABLES) <= built
        for table in MART_TABLES:
            assert con.execute(f"select count(*) from marts.{table}").fetchone()[0] > 0, table
        # nothing after the as-of date
        assert str(con.execute("select max(order_date) from marts.fct_orders").fetchone()[0]) <= "2025-12-31"


def test_clv_models_converge_on_the_synthetic_shop(small_shop):
    with small_shop.connect() as con:
        converged = con.execute(
            "select model, value from marts.clv_model_fit where parameter = 'converged' order by model"
        ).fetchall()
    assert converged == [("bg_nbd", 1.0), ("gamma_gamma", 1.0), ("mbg_nbd", 1.0), ("pareto_nbd", 1.0)]


@pytest.mark.parametrize("table", MART_TABLES)
def test_published_snapshot_and_parquet_exports_equal_the_marts(small_shop, table):
    with small_shop.connect() as con:
        live = pl.from_arrow(con.sql(f"select * from marts.{table}").to_arrow_table())
    snapshot = duckdb.connect(str(small_shop.data_dir / "published" / "warehouse.duckdb"), read_only=True)
    try:
        published = pl.from_arrow(snapshot.sql(f"select * from marts.{table}").to_arrow_table())
    finally:
        snapshot.close()
    exports = small_shop.data_dir / "exports"
    # fct_orders is exported one file per order month (pipelines/publish.py), the other marts one file each.
    exported = pl.read_parquet(exports / table / "*.parquet" if table == "fct_orders" else exports / f"{table}.parquet")
    order = list(live.columns)
    assert published.sort(order).equals(live.sort(order))
    assert exported.sort(order).equals(live.sort(order))


def test_no_email_in_clear_anywhere(small_shop):
    with small_shop.connect() as con:
        text_columns = con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where data_type = 'VARCHAR' and table_schema in ('raw', 'marts', 'staging', 'intermediate')"
        ).fetchall()
        for schema, table, column in text_columns:
            hits = con.execute(f'select count(*) from {schema}."{table}" where "{column}" like \'%@%\'').fetchone()[0]
            assert hits == 0, f"{schema}.{table}.{column} holds e-mail-like text"
