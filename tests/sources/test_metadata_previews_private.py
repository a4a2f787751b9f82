"""Dagster's metadata previews never show an address (issue 12): a file name with an address in a dbt model's
preview, and a customer id that contains one in the raw/orders preview (the table stores its keyed pseudonym)."""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl

from pipelines.markdown import frame_to_markdown
from pipelines.privacy import REDACTED, HashKey
from pipelines.raw_layer import RAW_TABLES, load_into
from pipelines.sources import files as src


def test_a_preview_redacts_addresses_in_every_cell():
    frame = pl.DataFrame({"source_file": ["orders_anna.export@example.com.csv"], "note": ["ok"], "n": [1]})
    preview = frame_to_markdown(frame)
    assert "example.com" not in preview and REDACTED in preview and "ok" in preview


def test_the_raw_preview_hides_a_customer_id_that_contains_an_address(tmp_path):
    (tmp_path / "orders.csv").write_text(
        "order_id,customer_id,ordered_at,net_revenue\n"
        "O1,Anna Nowak <anna.display@example.com>,2025-02-01,10.00\n"
        "O2,C2,2025-02-02,12.00\n"
    )
    window = src.Window(
        start=date(2025, 1, 1), end=date(2025, 3, 31), as_of=date(2025, 3, 31), first_partition=date(2025, 1, 1)
    )
    summary = load_into(
        duckdb.connect(), RAW_TABLES["orders"], tmp_path, window, date(2025, 4, 2), "files", hash_key=HashKey(bytes(32))
    )
    ids = summary.preview["customer_id"].to_list()
    assert ids == [REDACTED, "C2"]
