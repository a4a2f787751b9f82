"""Real exports at the edges of the files source (issue 12): names in any case, files that are not loaded, later
corrections, multi-line fields, refunds before orders, repeated headers, encodings and disguised formats."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from pipelines.sources import files as src

WINDOW = src.Window(start=date(2025, 1, 1), end=date(2025, 3, 31), as_of=date(2025, 3, 31))
TODAY = date(2025, 4, 2)
HEADER = "order_id,customer_id,ordered_at,net_revenue"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def load(*paths: Path) -> src.LoadResult:
    return src.load_orders(list(paths), WINDOW, today=TODAY)


def by_line(result: src.LoadResult) -> dict[tuple[str, int], dict]:
    return {(r["source_file"], r["source_line"]): r for r in result.rejected.iter_rows(named=True)}


# ---------------------------------------------------------------- which files are read
def test_file_names_match_in_any_case_and_everything_else_is_named(tmp_path):
    for name in ("orders_a.csv", "Orders_b.csv", "orders_c.CSV", "ORDERS_d.Parquet", "Marketing_Spend.csv"):
        (tmp_path / name).write_text("x")
    for name in ("notes.txt", "orders.xlsx", "customers.csv"):
        (tmp_path / name).write_text("x")
    (tmp_path / "old").mkdir()
    assert [p.name for p in src.discover(tmp_path, "orders")] == [
        "orders_a.csv",
        "Orders_b.csv",
        "orders_c.CSV",
        "ORDERS_d.Parquet",
    ]
    assert [p.name for p in src.discover(tmp_path, "marketing_spend")] == ["Marketing_Spend.csv"]
    unloaded = src.unloaded_files(tmp_path)
    assert [u.split(" ")[0] for u in unloaded] == ["customers.csv", "notes.txt", "old/", "orders.xlsx"]
    assert "unsupported file type" in unloaded[-1]


def test_rows_of_files_in_other_cases_are_all_loaded(tmp_path):
    files = []
    for i, name in enumerate(("orders_a.csv", "Orders_b.csv", "orders_c.CSV")):
        rows = [f"{name[7]}{n},C{n},2025-03-{1 + n:02d},{10 * (i + 1)}" for n in range(10 + 10 * i)]
        files.append(write(tmp_path / name, HEADER + "\n" + "\n".join(rows) + "\n"))
    result = load(*src.discover(tmp_path, "orders"))
    assert result.valid.height == 10 + 20 + 30
    assert result.valid["net_revenue"].sum() == pytest.approx(10 * 10 + 20 * 20 + 30 * 30)


# ---------------------------------------------------------------- later corrections win
def test_numbered_exports_are_ordered_by_number_not_by_text(tmp_path):
    header = HEADER + ",refunded_amount"
    write(tmp_path / "orders_9.csv", header + "\nR1,C1,2025-02-01,100,0\n")
    write(tmp_path / "orders_10.csv", header + "\nR1,C1,2025-02-01,100,40\n")  # the refund, exported later
    result = load(*src.discover(tmp_path, "orders"))
    assert result.valid.select("order_id", "refunded_amount", "source_file").rows() == [("R1", 40.0, "orders_10.csv")]
    assert result.rejected.select("source_file", "kind").rows() == [("orders_9.csv", "superseded")]
    assert "orders_10.csv:2" in result.rejected["reason"][0]


def test_the_latest_updated_at_wins_whatever_the_file_names(tmp_path):
    header = HEADER + ",refunded_amount,updated_at"
    write(
        tmp_path / "orders_new.csv",
        header + "\nU1,C1,2025-02-01,100,40,2025-02-20T10:00:00Z\nU2,C2,2025-02-02,50,0,2025-02-02\n",
    )
    write(
        tmp_path / "orders_old.csv",
        header + "\nU1,C1,2025-02-01,100,0,2025-02-01T10:00:00Z\nU2,C2,2025-02-02,50,0,2025-02-01\n",
    )
    result = load(*src.discover(tmp_path, "orders"))
    got = {r["order_id"]: (r["refunded_amount"], r["source_file"]) for r in result.valid.iter_rows(named=True)}
    # orders_old sorts after orders_new by name, but its versions are older by updated_at
    assert got == {"U1": (40.0, "orders_new.csv"), "U2": (0.0, "orders_new.csv")}
    assert sorted(result.rejected["source_file"].to_list()) == ["orders_old.csv", "orders_old.csv"]


def test_natural_key_orders_numbers_by_value():
    names = ["orders_10.csv", "orders_9.csv", "Orders_2.csv", "orders_2025-01-10.csv", "orders_2025-01-9.csv"]
    assert sorted(names, key=src.natural_key) == [
        "Orders_2.csv",
        "orders_9.csv",
        "orders_10.csv",
        "orders_2025-01-9.csv",
        "orders_2025-01-10.csv",
    ]


# ---------------------------------------------------------------- no silent mis-parse
def test_field_count_is_checked_even_with_a_multi_line_field(tmp_path):
    path = write(
        tmp_path / "orders.csv",
        HEADER + ",product_category\n"
        "O001,C02,2025-02-11T12:00:00,11,50,x\n"  # line 2: one field too many (a shifted row)
        'O002,C01,2025-02-11,12,"two\nlines"\n'  # lines 3-4: one record
        "\n"  # line 5: blank, skipped
        "O003,C01,2025-02-12,13,ok\n"  # line 6
        "O004,C01,2025-02-12\n",
    )  # line 7: too few
    result = load(path)
    rejected = by_line(result)
    assert set(rejected) == {("orders.csv", 2), ("orders.csv", 7)}
    assert rejected[("orders.csv", 2)]["reason"] == "too many fields (6 of 5)"
    assert rejected[("orders.csv", 7)]["reason"] == "too few fields (3 of 5)"
    assert result.valid.select("order_id", "source_line", "product_category").rows() == [
        ("O002", 3, "two\nlines"),
        ("O003", 6, "ok"),
    ]


def test_an_unclosed_quote_names_its_line(tmp_path):
    path = write(tmp_path / "orders.csv", HEADER + '\nO1,C1,2025-02-01,10\nO2,"C2,2025-02-01,10\nO3,C3,2025-02-01,10\n')
    with pytest.raises(src.SourceFileError, match=r"orders.csv: line 3: a quote"):
        load(path)


def test_a_refund_dated_before_its_order_is_rejected(tmp_path):
    path = write(
        tmp_path / "orders.csv",
        HEADER + ",refunded_amount,refunded_at\n"
        "F1,C1,2025-02-10T12:00:00,10,5,2025-02-09\n"
        "F2,C1,2025-02-10T12:00:00,10,5,2025-02-10T08:00:00\n",
    )  # same day, earlier hour: date granularity
    result = load(path)
    assert result.valid["order_id"].to_list() == ["F2"]
    assert "refunded_at '2025-02-09' is before ordered_at" in by_line(result)[("orders.csv", 2)]["reason"]


def test_the_same_column_twice_in_a_header_is_named(tmp_path):
    path = write(
        tmp_path / "orders.csv", "order_id,customer_id,ordered_at,net_revenue,NET_REVENUE\nA,B,2025-02-01,1,2\n"
    )
    with pytest.raises(
        src.SourceFileError,
        match=r"orders.csv: the header names the same column more than once "
        r"\(net_revenue, NET_REVENUE",
    ):
        load(path)


def test_utf16_and_bom_text_loads(tmp_path):
    text = HEADER + ",product_category\nZ1,C1,2025-02-01,10,żółw\n"
    (tmp_path / "orders_16.csv").write_bytes(text.encode("utf-16"))
    (tmp_path / "orders_bom.csv").write_bytes(b"\xef\xbb\xbf" + text.replace("Z1", "Z2").encode())
    (tmp_path / "orders_gz.csv.gz").write_bytes(gzip.compress(text.replace("Z1", "Z3").encode("utf-16")))
    result = load(*src.discover(tmp_path, "orders"))
    assert result.rejected.height == 0
    assert sorted(result.valid.select("order_id", "product_category").rows()) == [
        ("Z1", "żółw"),
        ("Z2", "żółw"),
        ("Z3", "żółw"),
    ]


def test_utf16_without_a_byte_order_mark_loads(tmp_path):
    # some exporters write UTF-16 with no BOM: every other byte of the (ASCII) header is NUL
    text = HEADER + ",product_category\nZ1,C1,2025-02-01,10,żółw\n"
    (tmp_path / "orders_le.csv").write_bytes(text.encode("utf-16-le"))
    (tmp_path / "orders_be.csv").write_bytes(text.replace("Z1", "Z2").encode("utf-16-be"))
    result = load(*src.discover(tmp_path, "orders"))
    assert result.rejected.height == 0
    assert sorted(result.valid.select("order_id", "product_category").rows()) == [("Z1", "żółw"), ("Z2", "żółw")]


def test_text_that_is_not_utf8_names_the_line(tmp_path):
    # Windows-1250 text (Polish Excel) is decoded (tests/sources/test_spreadsheet_csv.py); these bytes are not a
    # letter in any code page the reader knows
    (tmp_path / "orders.csv").write_bytes(
        (HEADER + ",product_category\nA,C,2025-02-01,1,ok\n").encode() + b"B,C,2025-02-01,1,\x81\x90\n"
    )
    with pytest.raises(src.SourceFileError, match=r"orders.csv: line 3: byte 0x81"):
        load(tmp_path / "orders.csv")


def test_parquet_named_csv_is_read_as_parquet_and_a_workbook_is_named(tmp_path):
    pl.DataFrame(
        {"order_id": ["P1"], "customer_id": ["C1"], "ordered_at": ["2025-02-01"], "net_revenue": [3.5]}
    ).write_parquet(tmp_path / "orders.csv")
    result = load(tmp_path / "orders.csv")
    assert result.valid.select("order_id", "net_revenue").rows() == [("P1", 3.5)]
    (tmp_path / "orders_x.csv").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(src.SourceFileError, match=r"orders_x.csv: is an Excel workbook or a zip archive"):
        load(tmp_path / "orders_x.csv")


def test_a_folder_with_only_a_workbook_says_so_in_the_error(tmp_path):
    import duckdb

    from pipelines.privacy import HashKey
    from pipelines.raw_layer import RAW_TABLES, load_into

    (tmp_path / "orders.xlsx").write_bytes(b"PK\x03\x04 a workbook")
    with pytest.raises(src.SourceFileError) as failed:
        load_into(duckdb.connect(), RAW_TABLES["orders"], tmp_path, WINDOW, TODAY, "files", hash_key=HashKey(bytes(32)))
    assert str(failed.value) == (
        f"no orders*.csv|parquet file found in {tmp_path}; not loaded: orders.xlsx (unsupported file type: save it "
        "as .csv or .parquet)"
    )
