"""CSV as spreadsheets and other shop systems write it (issue 13, items 3 and 4): ';' or tab delimiters, decimal
commas, Windows code pages, day-first dates, and a columns.yml mapping for any other export. Amounts keep their
cents exactly. Expected values are written out by hand."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest
from pipeline_runner import TEST_HASH_KEY

from pipelines.raw_layer import RAW_TABLES, load_into
from pipelines.sources import files as src

WINDOW = src.Window(
    start=date(2025, 1, 1), end=date(2025, 3, 31), as_of=date(2025, 3, 31), first_partition=date(2025, 1, 1)
)
TODAY = date(2025, 4, 2)


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def load(*paths: Path) -> src.LoadResult:
    return src.load_orders(list(paths), WINDOW, today=TODAY)


def reasons(result: src.LoadResult) -> dict[int, str]:
    return dict(result.rejected.select("source_line", "reason").rows())


# ---------------------------------------------------------------- exact money
def test_amounts_keep_their_cents_and_half_cents_round_up(tmp_path):
    """Before: amounts were parsed as binary floats and rounded half-to-even on the binary value, so 12.345 became
    12.34, 0.125 became 0.12 and 1.005 became 1.0 (sub-cent digits silently rounded down). Now the text is read as
    an exact decimal and rounded half away from zero to the cent."""
    path = write(
        tmp_path / "orders.csv",
        "order_id,customer_id,ordered_at,net_revenue,discount_amount,cost\n"
        "M1,C1,2025-02-01,12.345,0.125,1.005\n"
        "M2,C1,2025-02-01,2.675,0.004,19.99\n"
        "M3,C1,2025-02-01,0.1,0.2,0.3\n",
    )
    result = load(path)
    assert result.valid.select("order_id", "net_revenue", "discount_amount", "cost").rows() == [
        ("M1", 12.35, 0.13, 1.01),
        ("M2", 2.68, 0.0, 19.99),
        ("M3", 0.1, 0.2, 0.3),
    ]


def test_exact_cents_reach_the_warehouse(tmp_path):
    write(
        tmp_path / "orders.csv",
        "order_id,customer_id,ordered_at,net_revenue\nM1,C1,2025-02-01,12.345\n"
        "M2,C1,2025-02-01,1.005\nM3,C1,2025-02-01,0.10\n",
    )
    con = duckdb.connect()
    load_into(con, RAW_TABLES["orders"], tmp_path, WINDOW, TODAY, "files", hash_key=TEST_HASH_KEY)
    assert con.execute("select order_id, round(net_revenue * 100)::bigint from raw.orders order by 1").fetchall() == [
        ("M1", 1235),
        ("M2", 101),
        ("M3", 10),
    ]
    assert str(con.execute("select sum(net_revenue)::decimal(18, 2) from raw.orders").fetchone()[0]) == "13.46"


def test_a_tiny_negative_amount_is_still_negative(tmp_path):
    path = write(tmp_path / "orders.csv", "order_id,customer_id,ordered_at,net_revenue\nN1,C1,2025-02-01,-0.004\n")
    assert reasons(load(path)) == {2: "negative net_revenue"}


# ---------------------------------------------------------------- delimiters and decimal commas
def test_a_semicolon_file_reads_decimal_commas_and_says_so(tmp_path):
    path = write(
        tmp_path / "orders.csv",
        "order_id;customer_id;ordered_at;net_revenue;discount_amount\n"
        "S1;C1;2025-02-01;12,50;0,5\n"
        'S2;"Kowal; Jan";2025-02-02;7;\n'  # a quoted ';' is not a delimiter
        "S3;C3;2025-02-03;1.234,56;0\n"  # a thousands dot nobody declared: not guessed
        "S4;C4;2025-02-04;12.50;0\n"  # a decimal point in a decimal-comma file: not guessed
        "S5;C5;2025-02-05;10;0;x\n",
    )  # one field too many, counted with ';'
    result = load(path)
    assert result.valid.select("order_id", "customer_id", "net_revenue", "discount_amount").rows() == [
        ("S1", "C1", 12.5, 0.5),
        ("S2", "Kowal; Jan", 7.0, 0.0),
    ]
    got = reasons(result)
    assert got[6] == "too many fields (6 of 5)"
    for line, value in ((4, "1.234,56"), (5, "12.50")):
        assert got[line].startswith(f"net_revenue '{value}' is not a number with decimal comma"), got[line]
        assert "thousands_separator" in got[line] and "columns.yml" in got[line]
    assert any("orders.csv" in n and "';'" in n and "decimal comma" in n for n in result.notes), result.notes


def test_a_tab_separated_file_loads(tmp_path):
    path = write(
        tmp_path / "orders.csv",
        "order_id\tcustomer_id\tordered_at\tnet_revenue\nT1\tC1\t2025-02-01\t10.50\nT2\tC1\t2025-02-01\t3\textra\n",
    )
    result = load(path)
    assert result.valid.select("order_id", "net_revenue").rows() == [("T1", 10.5)]
    assert reasons(result) == {3: "too many fields (5 of 4)"}


def test_thousands_and_decimal_separators_from_the_mapping(tmp_path):
    write(tmp_path / "columns.yml", "decimal_separator: ','\nthousands_separator: '.'\n")
    path = write(
        tmp_path / "orders.csv",
        "order_id;customer_id;ordered_at;net_revenue\n"
        "K1;C1;2025-02-01;1.234,56\nK2;C1;2025-02-01;12,5\nK3;C1;2025-02-01;1.23,4\n",
    )
    result = load(path)
    assert result.valid.select("order_id", "net_revenue").rows() == [("K1", 1234.56), ("K2", 12.5)]
    assert reasons(result)[4].startswith("net_revenue '1.23,4' is not a number with decimal comma")


def test_space_thousands_as_excel_writes_them(tmp_path):
    write(tmp_path / "columns.yml", "thousands_separator: ' '\n")
    path = write(
        tmp_path / "orders.csv",
        "order_id;customer_id;ordered_at;net_revenue\nK1;C1;2025-02-01;1\u00a0234,56\nK2;C1;2025-02-01;12 345\n",
    )
    assert load(path).valid["net_revenue"].to_list() == [1234.56, 12345.0]


# ---------------------------------------------------------------- encodings
def test_windows_1250_text_is_decoded_and_the_notes_say_so(tmp_path):
    text = (
        "order_id;customer_id;ordered_at;net_revenue;product_category\n"
        "E1;Müller;2025-02-01;10;Łódź\nE2;Wiśniewska;2025-02-02;20,5;żółte kubki\n"
    )
    path = write(tmp_path / "orders.csv", text, "cp1250")
    result = load(path)
    assert result.valid.select("customer_id", "product_category").rows() == [
        ("Müller", "łódź"),
        ("Wiśniewska", "żółte kubki"),
    ]
    assert any("orders.csv" in n and "Windows-1250" in n for n in result.notes), result.notes


def test_western_windows_text_is_decoded_as_windows_1252(tmp_path):
    text = "order_id,customer_id,ordered_at,net_revenue,product_category\nE1,Müller,2025-02-01,10,crème brûlée\n"
    path = write(tmp_path / "orders.csv", text, "latin-1")
    result = load(path)
    assert result.valid.select("customer_id", "product_category").rows() == [("Müller", "crème brûlée")]
    assert any("Windows-1252" in n and "columns.yml" in n for n in result.notes), result.notes


def test_the_mapping_encoding_wins_over_the_guess(tmp_path):
    # 'ń' alone is 'ñ' in Windows-1252, a letter too: the bytes cannot tell, so the guess is Western and says so...
    text = "order_id,customer_id,ordered_at,net_revenue,product_category\nE1,C1,2025-02-01,10,Gdańsk\n"
    path = write(tmp_path / "a" / "orders.csv", text, "cp1250")
    result = load(path)
    assert result.valid["product_category"].to_list() == ["gdañsk"]
    assert any("Windows-1252" in n and "encoding" in n for n in result.notes)
    # ...and the mapping settles it
    write(tmp_path / "b" / "columns.yml", "encoding: cp1250\n")
    path = write(tmp_path / "b" / "orders.csv", text, "cp1250")
    assert load(path).valid["product_category"].to_list() == ["gdańsk"]


def test_bytes_that_no_code_page_reads_still_fail_the_file_with_their_line(tmp_path):
    (tmp_path / "orders.csv").write_bytes(
        b"order_id,customer_id,ordered_at,net_revenue\nA,C,2025-02-01,1\nB,C\x81\x90,2025-02-01,1\n"
    )
    with pytest.raises(
        src.SourceFileError,
        match=r"orders.csv: line 3: byte 0x81 is not UTF-8 text; save the file "
        r"as 'CSV UTF-8'.*encoding.*columns.yml",
    ):
        load(tmp_path / "orders.csv")


# ---------------------------------------------------------------- dates
def test_a_day_first_date_without_a_mapping_is_rejected_with_what_to_do(tmp_path):
    path = write(
        tmp_path / "orders.csv",
        "order_id,customer_id,ordered_at,net_revenue\nD1,C1,03/04/2025,10\nD2,C1,13.02.2025 10:00,10\n",
    )
    got = reasons(load(path))
    assert (
        got[2].startswith("unparseable ordered_at '03/04/2025'") and "date_format" in got[2] and "columns.yml" in got[2]
    ), got[2]
    assert got[3].startswith("unparseable ordered_at '13.02.2025 10:00'") and "columns.yml" in got[3], got[3]


@pytest.mark.parametrize(
    "date_format, expected", [("%d/%m/%Y", datetime(2025, 2, 3)), ("%m/%d/%Y", datetime(2025, 3, 2))]
)
def test_the_mapping_date_format_decides(tmp_path, date_format, expected):
    write(tmp_path / "columns.yml", f"date_format: '{date_format}'\n")
    path = write(tmp_path / "orders.csv", "order_id,customer_id,ordered_at,net_revenue\nD1,C1,03/02/2025,10\n")
    assert load(path).valid["ordered_at"].to_list() == [expected]


def test_a_date_that_does_not_match_the_declared_format_names_it(tmp_path):
    write(tmp_path / "columns.yml", "date_format: '%d.%m.%Y %H:%M'\n")
    path = write(
        tmp_path / "orders.csv",
        "order_id,customer_id,ordered_at,net_revenue,refunded_amount,refunded_at\n"
        "D1,C1,04.03.2025 10:15,10,5,05.03.2025 08:00\nD2,C1,31.02.2025 10:00,10,,\n",
    )
    result = load(path)
    assert result.valid.select("ordered_at", "refunded_at").rows() == [
        (datetime(2025, 3, 4, 10, 15), datetime(2025, 3, 5, 8, 0))
    ]
    assert reasons(result) == {
        3: "ordered_at '31.02.2025 10:00' does not match the date_format '%d.%m.%Y %H:%M' of columns.yml"
    }


def test_local_times_of_a_declared_time_zone_are_stored_in_utc(tmp_path):
    write(tmp_path / "columns.yml", "timezone: Europe/Warsaw\n")
    path = write(
        tmp_path / "orders.csv",
        "order_id,customer_id,ordered_at,net_revenue\nZ1,C1,2025-02-01 00:30,10\nZ2,C1,2025-03-01T12:00:00+00:00,10\n",
    )
    assert load(path).valid["ordered_at"].to_list() == [datetime(2025, 1, 31, 23, 30), datetime(2025, 3, 1, 12, 0)]


# ---------------------------------------------------------------- a mapping file for any other export
BASELINKER = (
    "Numer zamówienia;Data złożenia;Status;Imię i nazwisko;Adres;Telefon;E-mail;Wartość produktów;"
    "Rabat;Koszt dostawy;Waluta;Kod rabatowy\n"
    "BL-1;04.03.2025 10:15;Wysłane;Józef Gałązka;ul. Leśna 1, Łódź;+48 511 222 333;jozef.galazka@example.pl;"
    "1 234,50;34,50;15,00;PLN;WIOSNA\n"
    "BL-2;05.03.2025 08:00;Anulowane;Zdzisława Żądło;ul. Polna 2, Kraków;+48 511 444 555;"
    "zdzislawa@example.pl;99,99;0;0;PLN;\n"
)
MAPPING = """\
# How our BaseLinker export maps to the warehouse contract
files:
  - match: "zamowienia_*.csv"
    table: orders
    encoding: cp1250
    delimiter: ";"
    decimal_separator: ","
    thousands_separator: " "
    date_format: "%d.%m.%Y %H:%M"
    timezone: Europe/Warsaw
    columns:
      Numer zamówienia: order_id
      E-mail: [customer_id, email]
      Data złożenia: ordered_at
      Wartość produktów: net_revenue
      Rabat: discount_amount
      Waluta: currency
      Kod rabatowy: discount_code
      Status: status
    status_values:
      Anulowane: cancelled
"""


def test_an_export_of_another_system_loads_through_columns_yml(tmp_path):
    raw = tmp_path / "raw"
    write(raw / "columns.yml", MAPPING)
    write(raw / "zamowienia_2025-03.csv", BASELINKER, "cp1250")
    assert src.unloaded_files(raw) == []  # neither the mapping nor the mapped export is "not loaded"
    assert [p.name for p in src.discover(raw, "orders")] == ["zamowienia_2025-03.csv"]
    database = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(database))
    summary = load_into(con, RAW_TABLES["orders"], raw, WINDOW, TODAY, "files", hash_key=TEST_HASH_KEY)
    assert summary.rejected.height == 0, summary.rejected.to_dicts()
    assert con.execute("""select order_id, ordered_at, net_revenue, discount_amount, discount_code, currency, status,
                                 customer_id like 'hmac:%', email_hmac is not null
                          from raw.orders order by 1""").fetchall() == [
        # 1 234,50 is the product value after the 34,50 discount; 10:15 in Warsaw (winter) is 09:15 UTC
        ("BL-1", datetime(2025, 3, 4, 9, 15), 1234.5, 34.5, "WIOSNA", "PLN", "wysłane", True, True),
        ("BL-2", datetime(2025, 3, 5, 7, 0), 99.99, 0.0, None, "PLN", "cancelled", True, True),
    ]
    found = []
    for schema, table, column in con.execute(
        "select table_schema, table_name, column_name from information_schema.columns where data_type = 'VARCHAR'"
    ).fetchall():
        found += [
            v
            for (v,) in con.execute(f'select "{column}" from "{schema}"."{table}"').fetchall()
            if v and any(s in v for s in ("@", "Gałązka", "Leśna", "+48 511", "Żądło"))
        ]
    con.close()
    assert found == []
    assert b"galazka@example.pl" not in database.read_bytes()


def test_a_mapping_for_all_files_renames_contract_columns(tmp_path):
    write(
        tmp_path / "columns.yml",
        "columns:\n  Nr: order_id\n  Klient: customer_id\n  Data: ordered_at\n  Netto: net_revenue\n",
    )
    path = write(tmp_path / "orders.csv", "Nr,Klient,Data,Netto,Notatka\nX1,C1,2025-02-01,10,prywatne\n")
    result = load(path)
    assert result.valid.select("order_id", "customer_id", "net_revenue").rows() == [("X1", "C1", 10.0)]


@pytest.mark.parametrize(
    "mapping, message",
    [
        ("columns: [unclosed\n", r"columns.yml: not valid YAML \(line \d+, column \d+: "),
        ("- just\n- a list\n", r"columns.yml: must be a mapping of settings \(columns, delimiter, "),
        ("delimeter: ';'\n", r"columns.yml: unknown key 'delimeter' \(known: columns, "),
        (
            "columns:\n  Kwota: net_revenu\n",
            r"columns.yml: columns: 'Kwota': 'net_revenu' is not a contract column "
            r"\(orders: order_id, customer_id, ",
        ),
        (
            "columns:\n  Kwota brutto: net_revenue\n",
            r"orders.csv: columns.yml maps 'Kwota brutto' \(to net_revenue\) "
            r"but the file has no such column; its columns: order_id, ",
        ),
        ("date_format: '%d.%m'\n", r"columns.yml: date_format: '%d.%m' does not read day, month and year"),
        ("date_format: '%d.%Q.%Y'\n", r"columns.yml: date_format: '%d.%Q.%Y' is not a valid date format"),
        ("decimal_separator: ';'\n", r"columns.yml: decimal_separator: ';' must be '.' or ','"),
        ("thousands_separator: ','\ndecimal_separator: ','\n", r"columns.yml: thousands_separator: ',' is the decimal"),
        ("delimiter: '||'\n", r"columns.yml: delimiter: '\|\|' must be one character"),
        ("encoding: klingon\n", r"columns.yml: encoding: 'klingon' is not an encoding Python knows"),
        ("timezone: Mars/Olympus\n", r"columns.yml: timezone: 'Mars/Olympus' is not a time zone"),
        (
            "files:\n  - table: orders\n",
            r"columns.yml: files\[1\]: 'match' \(a file name pattern, e.g. "
            r"'zamowienia_\*.csv'\) is missing",
        ),
        (
            "files:\n  - match: 'x*.csv'\n    table: order\n",
            r"columns.yml: files\[1\].table: 'order' is not one of "
            r"orders, marketing_spend, cart_events",
        ),
        ("columns:\n  A: order_id\n  B: order_id\n", r"columns.yml: columns: 'A' and 'B' both map to order_id"),
    ],
)
def test_a_bad_mapping_fails_the_run_with_one_line_naming_it(tmp_path, mapping, message):
    write(tmp_path / "columns.yml", mapping)
    write(tmp_path / "orders.csv", "order_id,customer_id,ordered_at,net_revenue\nX1,C1,2025-02-01,10\n")
    con = duckdb.connect()
    with pytest.raises(src.SourceFileError, match=message) as failed:
        load_into(con, RAW_TABLES["orders"], tmp_path, WINDOW, TODAY, "files", hash_key=TEST_HASH_KEY)
    message = str(failed.value)
    assert "\n" not in message and (str(tmp_path / "columns.yml") in message or str(tmp_path / "orders.csv") in message)


def test_two_mapping_files_are_one_too_many(tmp_path):
    write(tmp_path / "columns.yml", "delimiter: ';'\n")
    write(tmp_path / "columns.yaml", "delimiter: ','\n")
    write(tmp_path / "orders.csv", "order_id,customer_id,ordered_at,net_revenue\nX1,C1,2025-02-01,10\n")
    with pytest.raises(src.SourceFileError, match=r"two mapping files \(columns.yaml, columns.yml\): keep one"):
        src.discover(tmp_path, "orders")
