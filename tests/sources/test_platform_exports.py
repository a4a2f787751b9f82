"""Shop platforms' own order exports load as they are downloaded (issue 13, item 2): Shopify's "Export orders" CSV and
WooCommerce's "Advanced Order Export" CSV are recognised by their header, their line items are grouped into orders,
and their totals are turned into the contract's net revenue. Every expected value below is computed by hand from
the fixture files in tests/data/exports/ (see the comments), not taken from the code."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest
from pipeline_runner import TEST_HASH_KEY

from pipelines.raw_layer import RAW_TABLES, load_into
from pipelines.sources import files as src

EXPORTS = Path(__file__).resolve().parents[1] / "data" / "exports"
SHOPIFY = EXPORTS / "shopify_orders_export.csv"
WOO = EXPORTS / "woocommerce_orders.csv"
WINDOW = src.Window(
    start=date(2025, 1, 1), end=date(2025, 3, 31), as_of=date(2025, 3, 31), first_partition=date(2025, 1, 1)
)
TODAY = date(2025, 4, 2)
CB, PS = "ceramika bolesławiec", "pracownia świec"

# (order_id, customer_id, ordered_at in UTC, net_revenue, currency, discount_amount, discount_code, refunded_amount,
#  status, product_category, source_line)
SHOPIFY_ORDERS = [
    # 2 x 25.00 + 40.00 = 90.00 - 9.00 (WIOSNA10) = Subtotal 81.00; Total 114.63 = 81 + 15 shipping + 18.63 tax
    (
        "#1001",
        "anna.nowak@example.com",
        datetime(2025, 3, 4, 9, 15),
        81.00,
        "PLN",
        9.00,
        "WIOSNA10",
        0.0,
        "paid",
        CB,
        2,
    ),
    # prices include tax: Total 123.00 = Subtotal 123.00 + shipping 0, so net = 123.00 - 23.00 tax = 100.00;
    # refunded 61.50 of 123.00 paid = half of the order: 50.00 of its net; 00:30 +01:00 is 23:30 UTC the day before
    (
        "#1002",
        "jan.kowalski@example.com",
        datetime(2025, 3, 5, 23, 30),
        100.00,
        "PLN",
        0.0,
        None,
        50.00,
        "partially_refunded",
        "szkło krosno",
        4,
    ),
    # Cancelled at set (financial status voided): loaded as status 'cancelled', which the marts exclude
    (
        "#1003",
        "bartosz.wisniewski@example.com",
        datetime(2025, 3, 7, 11, 0),
        50.00,
        "PLN",
        0.0,
        None,
        0.0,
        "cancelled",
        CB,
        5,
    ),
    # paid through Shopify's Bogus Gateway and tagged 'test': a test order, excluded like a cancelled one
    ("#1004", "qa.team@example.com", datetime(2025, 3, 8, 8, 0), 10.00, "PLN", 0.0, None, 0.0, "test", CB, 6),
    # fully refunded (55.35 = 45.00 + 10.35 tax): the whole net revenue 45.00 is refunded; its note spans lines 7-8
    (
        "#1005",
        "ewa.zielinska@example.com",
        datetime(2025, 3, 10, 17, 45),
        45.00,
        "PLN",
        0.0,
        None,
        45.00,
        "refunded",
        PS,
        7,
    ),
    # 60.00 + 2 x 19.99 + 5.50 = 105.48; 08:00 -05:00 is 13:00 UTC
    ("#1006", "Anna.Nowak@Example.com", datetime(2025, 3, 20, 13, 0), 105.48, "PLN", 0.0, None, 0.0, "paid", CB, 10),
    ("#1007", "jan.kowalski@example.com", datetime(2025, 1, 15, 13, 0), 30.00, "PLN", 0.0, None, 0.0, "paid", CB, 13),
]

WOO_ORDERS = [
    # Order Subtotal Amount 100.00 (2 x 30.00 + 40.00, without tax) - Cart Discount Amount 10.00 (coupon rabat10)
    (
        "812",
        "marek.lewandowski@example.com",
        datetime(2025, 2, 10, 14, 5),
        90.00,
        "PLN",
        10.00,
        "rabat10",
        0.0,
        "completed",
        "herbata",
        2,
    ),
    (
        "813",
        "zofia.wojcik@example.com",
        datetime(2025, 2, 11, 9, 0),
        50.00,
        "PLN",
        0.0,
        None,
        0.0,
        "processing",
        "kawa",
        4,
    ),
    # status Refunded: the whole net revenue is refunded
    (
        "814",
        "marek.lewandowski@example.com",
        datetime(2025, 2, 12, 10, 0),
        40.00,
        "PLN",
        0.0,
        None,
        40.00,
        "refunded",
        "kawa",
        5,
    ),
    # Cancelled, Failed and Pending payment are not sales: loaded as 'cancelled', excluded from the marts
    (
        "815",
        "piotr.kaminski@example.com",
        datetime(2025, 2, 13, 11, 11),
        30.00,
        "PLN",
        0.0,
        None,
        0.0,
        "cancelled",
        "herbata",
        6,
    ),
    (
        "816",
        "piotr.kaminski@example.com",
        datetime(2025, 2, 14, 12, 0),
        30.00,
        "PLN",
        0.0,
        None,
        0.0,
        "cancelled",
        "herbata",
        7,
    ),
    (
        "817",
        "piotr.kaminski@example.com",
        datetime(2025, 2, 15, 13, 0),
        30.00,
        "PLN",
        0.0,
        None,
        0.0,
        "cancelled",
        "herbata",
        8,
    ),
    # refund 61.50 of the 246.00 paid (200.00 + 46.00 tax): 61.50 x 200 / 246 = 50.00 of the net revenue
    (
        "818",
        "zofia.wojcik@example.com",
        datetime(2025, 2, 20, 16, 30),
        200.00,
        "PLN",
        0.0,
        None,
        50.00,
        "completed",
        "zestawy",
        9,
    ),
    (
        "819",
        "tomasz.mazur@example.com",
        datetime(2025, 2, 21, 8, 15),
        80.00,
        "PLN",
        0.0,
        None,
        0.0,
        "on-hold",
        "kawa",
        11,
    ),
]

COLUMNS = (
    "order_id",
    "customer_id",
    "ordered_at",
    "net_revenue",
    "currency",
    "discount_amount",
    "discount_code",
    "refunded_amount",
    "status",
    "product_category",
    "source_line",
)
# Personal data in the fixtures besides the e-mails: none of it may be stored anywhere.
PERSONAL = [
    "Anna Nowak",
    "Piotrkowska",
    "+48 600 100 200",
    "Kowalski",
    "Lewandowski",
    "Wójcik",
    "Kwiatowa",
    "+48 500 600 700",
    "5260250274",
]


def load(*paths: Path) -> src.LoadResult:
    return src.load_orders(list(paths), WINDOW, today=TODAY)


def pseudonym(email: str) -> str:
    return "hmac:" + hmac.new(TEST_HASH_KEY.key, email.strip().lower().encode(), hashlib.sha256).hexdigest()[:24]


def email_hmac(email: str) -> str:
    return hmac.new(TEST_HASH_KEY.key, email.strip().lower().encode(), hashlib.sha256).hexdigest()


def copy(source: Path, directory: Path, name: str | None = None) -> Path:
    directory.mkdir(exist_ok=True)
    target = directory / (name or source.name)
    target.write_bytes(source.read_bytes())
    return target


def leaks(con, database: Path | None, needles: list[str]) -> list[str]:
    """Every text value of every table holding an '@' or one of `needles`, and the needles found in the file."""
    found = []
    for schema, table, column in con.execute(
        "select table_schema, table_name, column_name from information_schema.columns where data_type = 'VARCHAR'"
    ).fetchall():
        for (value,) in con.execute(
            f'select "{column}" from "{schema}"."{table}" where "{column}" is not null'
        ).fetchall():
            if "@" in value or any(n in value for n in needles):
                found.append(f"{schema}.{table}.{column}: {value}")
    if database is not None:
        con.close()
        data = database.read_bytes()
        found += [f"{database.name} bytes: {n}" for n in needles if n.encode() in data]
    return found


# ---------------------------------------------------------------- Shopify
def test_a_shopify_export_becomes_one_contract_row_per_order():
    result = load(SHOPIFY)
    assert result.rejected.height == 0, result.rejected.to_dicts()
    assert result.valid.select(COLUMNS).rows() == SHOPIFY_ORDERS
    assert result.valid["refunded_at"].null_count() == result.valid.height  # the export has no refund date
    assert result.valid["email"].to_list() == [o[1].lower() for o in SHOPIFY_ORDERS]
    assert result.file_rows == {"shopify_orders_export.csv": 7}  # orders, the base of the reject rate
    assert any("Shopify" in note and "11 line items" in note and "7 orders" in note for note in result.notes), (
        result.notes
    )


def test_a_shopify_export_loads_into_the_warehouse_without_personal_data(tmp_path):
    raw = tmp_path / "raw"
    copy(SHOPIFY, raw, "orders_export_1.csv")  # the name Shopify gives the download
    database = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(database))
    summary = load_into(con, RAW_TABLES["orders"], raw, WINDOW, TODAY, "files", hash_key=TEST_HASH_KEY)
    assert summary.rows_loaded == 7 and summary.rejected.height == 0 and summary.unloaded == []
    got = con.execute("""select order_id, customer_id, ordered_at, net_revenue, discount_amount, refunded_amount,
                                status, email_hmac, source_line from raw.orders order by source_line""").fetchall()
    assert got == [
        (o[0], pseudonym(o[1]), o[2], o[3], o[5], o[7], o[8], email_hmac(o[1]), o[10]) for o in SHOPIFY_ORDERS
    ]
    # #1001 and #1006 are the same customer (the address in another case)
    assert got[0][1] == got[5][1]
    emails = sorted({o[1] for o in SHOPIFY_ORDERS} | {o[1].lower() for o in SHOPIFY_ORDERS})
    assert leaks(con, database, emails + PERSONAL) == []


def test_a_broken_line_item_rejects_its_order_and_names_the_line(tmp_path):
    lines = SHOPIFY.read_text().splitlines(keepends=True)
    lines[10] = lines[10].rstrip("\n") + ",shifted\n"  # line 11: the second line item of #1006 has a field too many
    path = tmp_path / "orders_export.csv"
    path.write_text("".join(lines))
    result = load(path)
    assert result.rejected.select("source_line", "kind", "reason").rows() == [
        (10, "invalid", "line 11 (a line item of this order): too many fields (80 of 79)")
    ]
    assert "#1006" not in result.valid["order_id"].to_list() and result.valid.height == 6


def test_a_shopify_order_without_an_email_is_rejected_and_no_address_is_kept(tmp_path):
    text = SHOPIFY.read_text().replace("#1002,jan.kowalski@example.com,", "#1002,,")
    path = tmp_path / "orders_export.csv"
    path.write_text(text)
    result = load(path)
    rejected = result.rejected.select("source_line", "reason", "record").rows()
    assert [(line, reason) for line, reason, _ in rejected] == [(4, "missing customer_id")]
    assert "@" not in rejected[0][2] and "Kowalski" not in rejected[0][2]


def test_a_shopify_export_resaved_by_a_polish_excel_loads_the_same(tmp_path):
    """Excel in a Polish locale saves ';'-separated CSV with decimal commas: the same orders come out."""
    rows = list(csv.reader(io.StringIO(SHOPIFY.read_text())))
    money = {
        i
        for i, name in enumerate(rows[0])
        if name in ("Subtotal", "Shipping", "Taxes", "Total", "Discount Amount", "Refunded Amount", "Lineitem price")
    }
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(rows[0])
    for row in rows[1:]:
        writer.writerow([v.replace(".", ",") if i in money else v for i, v in enumerate(row)])
    path = tmp_path / "orders_export.csv"
    path.write_text(out.getvalue())
    result = load(path)
    assert result.rejected.height == 0, result.rejected.to_dicts()
    assert result.valid.select(COLUMNS).rows() == SHOPIFY_ORDERS


# ---------------------------------------------------------------- WooCommerce
def test_a_woocommerce_export_becomes_one_contract_row_per_order():
    result = load(WOO)
    assert result.rejected.height == 0, result.rejected.to_dicts()
    assert result.valid.select(COLUMNS).rows() == WOO_ORDERS
    assert any("WooCommerce" in note and "8 orders" in note for note in result.notes), result.notes


def test_a_woocommerce_export_loads_into_the_warehouse_without_personal_data(tmp_path):
    raw = tmp_path / "raw"
    copy(WOO, raw, "orders-2025-02-28-10-00-00.csv")  # the plugin's default file name
    database = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(database))
    summary = load_into(con, RAW_TABLES["orders"], raw, WINDOW, TODAY, "files", hash_key=TEST_HASH_KEY)
    assert summary.rows_loaded == 8 and summary.rejected.height == 0
    got = con.execute("""select order_id, customer_id, net_revenue, refunded_amount, status, email_hmac
                         from raw.orders order by source_line""").fetchall()
    assert got == [(o[0], pseudonym(o[1]), o[3], o[7], o[8], email_hmac(o[1])) for o in WOO_ORDERS]
    assert leaks(con, database, sorted({o[1] for o in WOO_ORDERS}) + PERSONAL) == []


@pytest.mark.parametrize(
    "status, expected",
    [
        ("Completed", "completed"),
        ("wc-processing", "processing"),
        ("On hold", "on-hold"),
        ("Refunded", "refunded"),
        ("Cancelled", "cancelled"),
        ("Failed", "cancelled"),
        ("Pending payment", "cancelled"),
        ("pending", "cancelled"),
        ("Trash", "cancelled"),
        ("checkout-draft", "cancelled"),
    ],
)
def test_woocommerce_statuses(tmp_path, status, expected):
    path = tmp_path / "orders.csv"
    path.write_text(
        "Order Number,Order Status,Order Date,Email (Billing),Order Subtotal Amount,Cart Discount Amount,"
        f"Order Total Amount\n900,{status},2025-02-01 10:00,a.b@example.com,10.00,0.00,12.30\n"
    )
    result = load(path)
    assert result.valid.select("order_id", "status", "net_revenue").rows() == [("900", expected, 10.0)]


def test_an_unknown_woocommerce_status_is_loaded_and_named_in_the_notes(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(
        "Order Number,Order Status,Order Date,Email (Billing),Order Subtotal Amount,Cart Discount Amount,"
        "Order Total Amount\n900,Zrealizowane,2025-02-01 10:00,a.b@example.com,10.00,0.00,12.30\n"
    )
    result = load(path)
    assert result.valid["status"].to_list() == ["zrealizowane"]
    assert any("'zrealizowane'" in note and "status_values" in note for note in result.notes), result.notes


def test_a_woocommerce_guest_without_an_email_is_keyed_by_its_user_id(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(
        "Order ID,Order Status,Order Date,Customer User ID,Email (Billing),Order Subtotal Amount,"
        "Cart Discount Amount,Order Total Amount\n"
        "900,Completed,2025-02-01 10:00,31,,10.00,0.00,12.30\n"
        "901,Completed,2025-02-01 11:00,0,,10.00,0.00,12.30\n"
    )
    result = load(path)
    assert result.valid.select("order_id", "customer_id").rows() == [("900", "user:31")]
    assert result.rejected.select("source_line", "reason").rows() == [(3, "missing customer_id")]
