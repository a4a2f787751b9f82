"""Every mart of a hand-made shop against numbers computed by hand from ../shared/SPEC.md.

The shop (tests/marts/hand_shop_data.py), as of 2025-02-28, CLV_START_DATE 2024-01-01, default margin rate 0.40:

  id    cust date              net     refund       cost    status     channel      category
  O001  C1  2024-01-05 10:00  100.00                 55.00  completed  paid_search  apparel
  O008  C2  2024-01-20 14:00   45.00 (WELCOME10 -5)  27.00  completed  paid_social  beauty
  O002  C1  2024-02-14 12:00   60.00                 blank  completed  paid_search  shoes
  O013  C4  2024-02-20 10:00   90.00                 50.00  CANCELLED  paid_social  shoes    -> excluded
  O012  C3  2024-03-10 (date)  150.00                90.00  completed  organic      home
  O014  C4  2024-03-15 10:00   60.00 (SPRING10 -6)   30.00  completed  paid_search  shoes
  O009  C2  2024-04-02 10:00   70.00 (SALE20 -14)    blank  completed  paid_social  beauty
  O004  C1  2024-05-10 09:00   40.00                 20.00  completed  organic      beauty   same day as O003,
  O003  C1  2024-05-10 18:30   25.00                 blank  completed  organic      beauty   later (smaller id)
  O015  C4  2024-06-01 10:00  200.00  50 on 06-10    blank  completed  paid_search  apparel
  O010  C2  2024-08-15 10:00   30.00                 18.00  completed  organic      home
  O016  C4  2024-09-30 10:00   50.00                 25.00  completed  paid_search  shoes
  O005  C1  2024-11-20 11:00  120.00                 70.00  completed  email        apparel
  O017  C5  2024-12-15 10:00  999.00                 blank  Test       email        beauty   -> excluded
  O018  C5  2025-01-10 10:00   55.00 (WELCOME10)     blank  completed  email        beauty
  O020  C6  2025-02-03 10:00   35.00                 21.00  (blank)    paid_social  accessories
  O011  C2  2025-02-10 13:00   80.00 (SALE20) 80 on 2025-03-10 (after as-of -> 0)  48.00  email  beauty
  O019  C5  2025-02-20 10:00   40.00                 25.00  completed  email        apparel
  O006  C1  2025-02-25 16:00   80.00                 50.00  completed  paid_search  home
  O007  C1  2025-03-05 10:00  500.00                300.00  completed  (after as-of -> not loaded)
  + 3 bad rows: X001 negative net_revenue, X002 ordered_at '2024-13-45', X003 no customer_id.

Per valid order: revenue = net − refund known at the as-of date; cost = given, else the default margin rate applied
to the revenue kept: (net − refund known at the as-of date) × (1 − 0.40); margin = revenue − cost.
Blank cost AND a known refund: only O015 (O011's refund is after the as-of date, and O011 has a cost anyway).
  O001 100-55=45 | O002 60-36=24 | O004 40-20=20 | O003 25-15=10 | O005 120-70=50 | O006 80-50=30   C1: 425 / 179
  O008 45-27=18  | O009 70-42=28 | O010 30-18=12 | O011 80-48=32 (late refund ignored)              C2: 225 / 90
  O012 150-90=60                                                                                   C3: 150 / 60
  O014 60-30=30  | O015 (200-50)=150, cost 150*0.6=90 -> 60 | O016 50-25=25                          C4: 260 / 115
  O018 55-33=22  | O019 40-25=15                                                                    C5:  95 / 37
  O020 35-21=14                                                                                    C6:  35 / 14
  Total revenue 425+225+150+260+95+35 = 1190; total margin 179+90+60+115+37+14 = 495.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import pytest
from _marts_support import diff_rows, rows, same
from hand_shop_data import AS_OF, connect_built, run_hand_shop

D = date.fromisoformat


@pytest.fixture(scope="module")
def hand_run(tmp_path_factory):
    return run_hand_shop(tmp_path_factory.mktemp("hand_shop"))


@pytest.fixture(scope="module")
def con(hand_run):
    connection = connect_built(hand_run)
    yield connection
    connection.close()


def assert_no_diff(problems):
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- raw layer
def test_bad_rows_are_quarantined_with_file_line_and_reason(con):
    rejected = rows(con, "select * from raw.rejected_orders order by source_file, source_line")
    got = [(r["source_table"], r["source_file"], r["source_line"], r["kind"]) for r in rejected]
    assert got == [
        ("orders", "orders_2024.csv", 9, "invalid"),  # X001: net_revenue -10.00
        ("orders", "orders_2024.csv", 13, "invalid"),  # X002: ordered_at 2024-13-45
        ("orders", "orders_2025.csv", 3, "invalid"),  # X003: empty customer_id
    ]
    reasons = [r["reason"].lower() for r in rejected]
    assert "negative" in reasons[0] and "net_revenue" in reasons[0]
    assert "ordered_at" in reasons[1] and "2024-13-45" in reasons[1]
    assert "customer_id" in reasons[2] and "missing" in reasons[2]
    assert [r["record"].split(",")[0] for r in rejected] == ["X001", "X002", "X003"]


def test_every_valid_row_is_loaded_and_nothing_after_as_of(con):
    loaded = rows(
        con, "select order_id, source_file, source_line, status, refunded_amount from raw.orders order by order_id"
    )
    # 20 well-formed rows minus O007 (2025-03-05, after the as-of date); cancelled/test rows are loaded
    # (excluded later).
    assert [r["order_id"] for r in loaded] == [
        "O001",
        "O002",
        "O003",
        "O004",
        "O005",
        "O006",
        "O008",
        "O009",
        "O010",
        "O011",
        "O012",
        "O013",
        "O014",
        "O015",
        "O016",
        "O017",
        "O018",
        "O019",
        "O020",
    ]
    by_id = {r["order_id"]: r for r in loaded}
    assert (by_id["O015"]["source_file"], by_id["O015"]["source_line"]) == ("orders_2024.csv", 12)
    assert (by_id["O006"]["source_file"], by_id["O006"]["source_line"]) == ("orders_2025.csv", 7)
    assert by_id["O017"]["status"] == "test"  # 'Test' normalised
    spend = con.execute("select count(*), sum(spend) from raw.marketing_spend").fetchall()[0]
    assert spend == (8, pytest.approx(60 + 40 + 150 + 80 + 25 + 35 + 10 + 20))  # the 2025-03-01 row is after as-of
    carts = con.execute("select customer_id from raw.cart_events order by 1").fetchall()
    assert carts == [("C1",), ("C3",), ("C4",), ("C5",)]  # C6's event is after as-of


# --------------------------------------------------------------------------- fct_orders
FCT_ORDERS = [
    # order_id, customer, date, net, discount, code, refunded, revenue, cost, margin, estimated, channel, number, first
    ("O001", "C1", "2024-01-05", 100.0, 0.0, None, 0.0, 100.0, 55.0, 45.0, False, "paid_search", 1, True),
    ("O002", "C1", "2024-02-14", 60.0, 0.0, None, 0.0, 60.0, 36.0, 24.0, True, "paid_search", 2, False),  # 60*0.6
    ("O004", "C1", "2024-05-10", 40.0, 0.0, None, 0.0, 40.0, 20.0, 20.0, False, "organic", 3, False),  # 09:00
    ("O003", "C1", "2024-05-10", 25.0, 0.0, None, 0.0, 25.0, 15.0, 10.0, True, "organic", 4, False),  # 18:30
    ("O005", "C1", "2024-11-20", 120.0, 0.0, None, 0.0, 120.0, 70.0, 50.0, False, "email", 5, False),
    ("O006", "C1", "2025-02-25", 80.0, 0.0, None, 0.0, 80.0, 50.0, 30.0, False, "paid_search", 6, False),
    ("O008", "C2", "2024-01-20", 45.0, 5.0, "WELCOME10", 0.0, 45.0, 27.0, 18.0, False, "paid_social", 1, True),
    ("O009", "C2", "2024-04-02", 70.0, 14.0, "SALE20", 0.0, 70.0, 42.0, 28.0, True, "paid_social", 2, False),
    ("O010", "C2", "2024-08-15", 30.0, 0.0, None, 0.0, 30.0, 18.0, 12.0, False, "organic", 3, False),
    (
        "O011",
        "C2",
        "2025-02-10",
        80.0,
        8.0,
        "SALE20",
        0.0,
        80.0,
        48.0,
        32.0,
        False,
        "email",
        4,
        False,
    ),  # late refund, cost given
    ("O012", "C3", "2024-03-10", 150.0, 0.0, None, 0.0, 150.0, 90.0, 60.0, False, "organic", 1, True),
    ("O014", "C4", "2024-03-15", 60.0, 6.0, "SPRING10", 0.0, 60.0, 30.0, 30.0, False, "paid_search", 1, True),
    # O015: no cost, refund 50 known (06-10 <= as-of): cost (200 - 50) * 0.6 = 90, margin 150 - 90 = 60
    ("O015", "C4", "2024-06-01", 200.0, 0.0, None, 50.0, 150.0, 90.0, 60.0, True, "paid_search", 2, False),
    ("O016", "C4", "2024-09-30", 50.0, 0.0, None, 0.0, 50.0, 25.0, 25.0, False, "paid_search", 3, False),
    ("O018", "C5", "2025-01-10", 55.0, 5.5, "WELCOME10", 0.0, 55.0, 33.0, 22.0, True, "email", 1, True),
    ("O019", "C5", "2025-02-20", 40.0, 0.0, None, 0.0, 40.0, 25.0, 15.0, False, "email", 2, False),
    ("O020", "C6", "2025-02-03", 35.0, 0.0, None, 0.0, 35.0, 21.0, 14.0, False, "paid_social", 1, True),
]
FCT_COLUMNS = (
    "order_id",
    "customer_id",
    "order_date",
    "net_revenue",
    "discount_amount",
    "discount_code",
    "refunded_amount",
    "revenue",
    "cost",
    "gross_margin",
    "margin_is_estimated",
    "channel",
    "order_number",
    "is_first_order",
)


def _expected(table, columns, date_columns=()):
    out = []
    for values in table:
        row = dict(zip(columns, values))
        for c in date_columns:
            if row[c] is not None:
                row[c] = D(row[c])
        out.append(row)
    return out


def test_fct_orders_every_row(con):
    actual = rows(con, "select * from marts.fct_orders")
    expected = _expected(FCT_ORDERS, FCT_COLUMNS, ("order_date",))
    assert_no_diff(diff_rows(actual, expected, ("order_id",)))
    # not in it: O013 cancelled, O017 test, O007 after as-of, X001..X003 rejected
    ordered_at = {r["order_id"]: r["ordered_at"] for r in actual}
    assert ordered_at["O008"] == datetime(2024, 1, 20, 14, 0)  # '2024-01-20T14:00:00Z' is UTC already
    assert ordered_at["O012"] == datetime(2024, 3, 10)  # a date alone is midnight


def test_fct_orders_totals(con):
    n, revenue, margin = con.execute(
        "select count(*), sum(revenue), sum(gross_margin) from marts.fct_orders"
    ).fetchall()[0]
    assert n == 17
    assert revenue == pytest.approx(1190.0)
    assert margin == pytest.approx(495.0)  # 179 + 90 + 60 + 115 + 37 + 14


# --------------------------------------------------------------------------- dim_customers
DIM_COLUMNS = (
    "customer_id",
    "first_order_date",
    "last_order_date",
    "cohort_month",
    "acquisition_channel",
    "first_product_category",
    "first_order_discounted",
    "first_order_discount_code",
    "orders_count",
    "purchase_days",
    "discounted_orders",
    "net_revenue",
    "gross_margin",
    "aov",
    "tenure_days",
    "days_since_last_order",
)
# tenure_days = as_of − first order; days_since_last_order = as_of − last order (2024 is a leap year):
#   C1 2024-01-05 -> 2025-01-05 = 366, +31 (to 02-05) +23 = 420;   2025-02-25 -> 02-28 = 3
#   C2 2024-01-20 -> 2025-01-20 = 366, +31 +8 = 405;               2025-02-10 -> 02-28 = 18
#   C3 2024-03-10 -> 2025-03-10 = 365, −10 = 355;                  same day = 355
#   C4 2024-03-15 -> 2025-03-15 = 365, −15 = 350;                  2024-09-30 -> 2025-02-28 = 31+30+31+31+28 = 151
#   C5 2025-01-10 -> 02-10 = 31, +18 = 49;                         2025-02-20 -> 02-28 = 8
#   C6 2025-02-03 -> 02-28 = 25
# C4's first order is O014 (March, paid_search), not the cancelled O013 (February, paid_social);
# C5's first order is O018 (2025-01), not the test order O017 (2024-12).
DIM_CUSTOMERS = [
    (
        "C1",
        "2024-01-05",
        "2025-02-25",
        "2024-01-01",
        "paid_search",
        "apparel",
        False,
        None,
        6,
        5,
        0,
        425.0,
        179.0,
        425.0 / 6,
        420,
        3,
    ),  # 6 orders on 5 days (two on 2024-05-10)
    (
        "C2",
        "2024-01-20",
        "2025-02-10",
        "2024-01-01",
        "paid_social",
        "beauty",
        True,
        "WELCOME10",
        4,
        4,
        3,
        225.0,
        90.0,
        56.25,
        405,
        18,
    ),  # discounted: O008, O009, O011
    (
        "C3",
        "2024-03-10",
        "2024-03-10",
        "2024-03-01",
        "organic",
        "home",
        False,
        None,
        1,
        1,
        0,
        150.0,
        60.0,
        150.0,
        355,
        355,
    ),
    (
        "C4",
        "2024-03-15",
        "2024-09-30",
        "2024-03-01",
        "paid_search",
        "shoes",
        True,
        "SPRING10",
        3,
        3,
        1,
        260.0,
        115.0,
        260.0 / 3,
        350,
        151,
    ),  # margin O014 30 + O015 60 + O016 25
    (
        "C5",
        "2025-01-10",
        "2025-02-20",
        "2025-01-01",
        "email",
        "beauty",
        True,
        "WELCOME10",
        2,
        2,
        1,
        95.0,
        37.0,
        47.5,
        49,
        8,
    ),
    (
        "C6",
        "2025-02-03",
        "2025-02-03",
        "2025-02-01",
        "paid_social",
        "accessories",
        False,
        None,
        1,
        1,
        0,
        35.0,
        14.0,
        35.0,
        25,
        25,
    ),
]


def test_dim_customers_every_column(con):
    actual = rows(con, "select * from marts.dim_customers")
    expected = _expected(DIM_CUSTOMERS, DIM_COLUMNS, ("first_order_date", "last_order_date", "cohort_month"))
    assert_no_diff(diff_rows(actual, expected, ("customer_id",)))


# --------------------------------------------------------------------------- cohort_retention
CR_COLUMNS = (
    "cohort_month",
    "months_since_first_order",
    "calendar_month",
    "cohort_size",
    "active_customers",
    "retention_rate",
    "orders",
    "revenue",
    "gross_margin",
    "cumulative_revenue_per_customer",
    "cumulative_margin_per_customer",
    "is_complete_month",
)
# is_complete_month: the calendar month ended on or before the as-of date. The as-of date 2025-02-28 is the last day
# of February, so February 2025 has ended too: every row, up to and including calendar month 2025-02, is complete.
COHORT_RETENTION = [
    # Cohort 2024-01 = {C1, C2}, size 2. Cumulative revenue / margin are divided by 2.
    ("2024-01-01", 0, "2024-01-01", 2, 2, 1.0, 2, 145.0, 63.0, 145 / 2, 63 / 2, True),  # O001 100/45 + O008 45/18
    ("2024-01-01", 1, "2024-02-01", 2, 1, 0.5, 1, 60.0, 24.0, 205 / 2, 87 / 2, True),  # O002
    ("2024-01-01", 2, "2024-03-01", 2, 0, 0.0, 0, 0.0, 0.0, 205 / 2, 87 / 2, True),
    ("2024-01-01", 3, "2024-04-01", 2, 1, 0.5, 1, 70.0, 28.0, 275 / 2, 115 / 2, True),  # O009
    ("2024-01-01", 4, "2024-05-01", 2, 1, 0.5, 2, 65.0, 30.0, 340 / 2, 145 / 2, True),  # O004 + O003 (one customer)
    ("2024-01-01", 5, "2024-06-01", 2, 0, 0.0, 0, 0.0, 0.0, 340 / 2, 145 / 2, True),
    ("2024-01-01", 6, "2024-07-01", 2, 0, 0.0, 0, 0.0, 0.0, 340 / 2, 145 / 2, True),
    ("2024-01-01", 7, "2024-08-01", 2, 1, 0.5, 1, 30.0, 12.0, 370 / 2, 157 / 2, True),  # O010
    ("2024-01-01", 8, "2024-09-01", 2, 0, 0.0, 0, 0.0, 0.0, 370 / 2, 157 / 2, True),
    ("2024-01-01", 9, "2024-10-01", 2, 0, 0.0, 0, 0.0, 0.0, 370 / 2, 157 / 2, True),
    ("2024-01-01", 10, "2024-11-01", 2, 1, 0.5, 1, 120.0, 50.0, 490 / 2, 207 / 2, True),  # O005
    ("2024-01-01", 11, "2024-12-01", 2, 0, 0.0, 0, 0.0, 0.0, 490 / 2, 207 / 2, True),
    ("2024-01-01", 12, "2025-01-01", 2, 0, 0.0, 0, 0.0, 0.0, 490 / 2, 207 / 2, True),
    ("2024-01-01", 13, "2025-02-01", 2, 2, 1.0, 2, 160.0, 62.0, 650 / 2, 269 / 2, True),  # O006 80/30 + O011 80/32
    # Cohort 2024-03 = {C3, C4}, size 2 (C4's cancelled February order does not make it a February customer).
    ("2024-03-01", 0, "2024-03-01", 2, 2, 1.0, 2, 210.0, 90.0, 210 / 2, 90 / 2, True),  # O012 150/60 + O014 60/30
    ("2024-03-01", 1, "2024-04-01", 2, 0, 0.0, 0, 0.0, 0.0, 210 / 2, 90 / 2, True),
    ("2024-03-01", 2, "2024-05-01", 2, 0, 0.0, 0, 0.0, 0.0, 210 / 2, 90 / 2, True),
    # O015 after refund: revenue 200 − 50 = 150, cost 150 × 0.6 = 90, margin 60; cumulative 90 + 60 = 150
    ("2024-03-01", 3, "2024-06-01", 2, 1, 0.5, 1, 150.0, 60.0, 360 / 2, 150 / 2, True),
    ("2024-03-01", 4, "2024-07-01", 2, 0, 0.0, 0, 0.0, 0.0, 360 / 2, 150 / 2, True),
    ("2024-03-01", 5, "2024-08-01", 2, 0, 0.0, 0, 0.0, 0.0, 360 / 2, 150 / 2, True),
    ("2024-03-01", 6, "2024-09-01", 2, 1, 0.5, 1, 50.0, 25.0, 410 / 2, 175 / 2, True),  # O016; 150 + 25 = 175
    ("2024-03-01", 7, "2024-10-01", 2, 0, 0.0, 0, 0.0, 0.0, 410 / 2, 175 / 2, True),
    ("2024-03-01", 8, "2024-11-01", 2, 0, 0.0, 0, 0.0, 0.0, 410 / 2, 175 / 2, True),
    ("2024-03-01", 9, "2024-12-01", 2, 0, 0.0, 0, 0.0, 0.0, 410 / 2, 175 / 2, True),
    ("2024-03-01", 10, "2025-01-01", 2, 0, 0.0, 0, 0.0, 0.0, 410 / 2, 175 / 2, True),
    ("2024-03-01", 11, "2025-02-01", 2, 0, 0.0, 0, 0.0, 0.0, 410 / 2, 175 / 2, True),
    # Cohort 2025-01 = {C5} (the December test order does not count), cohort 2025-02 = {C6}.
    ("2025-01-01", 0, "2025-01-01", 1, 1, 1.0, 1, 55.0, 22.0, 55.0, 22.0, True),
    ("2025-01-01", 1, "2025-02-01", 1, 1, 1.0, 1, 40.0, 15.0, 95.0, 37.0, True),
    ("2025-02-01", 0, "2025-02-01", 1, 1, 1.0, 1, 35.0, 14.0, 35.0, 14.0, True),
]


def test_cohort_retention_every_row(con):
    actual = rows(con, "select * from marts.cohort_retention")
    expected = _expected(COHORT_RETENTION, CR_COLUMNS, ("cohort_month", "calendar_month"))
    assert len(actual) == 14 + 12 + 2 + 1  # dense: every month from the cohort month to the as-of month
    assert_no_diff(diff_rows(actual, expected, ("cohort_month", "months_since_first_order")))


# Per customer (each is alone in its cohort × channel): month since first order -> (orders, revenue, margin).
CUSTOMER_MONTHS = {
    ("2024-01-01", "paid_search", 14): {
        0: (1, 100.0, 45.0),
        1: (1, 60.0, 24.0),
        4: (2, 65.0, 30.0),
        10: (1, 120.0, 50.0),
        13: (1, 80.0, 30.0),
    },  # C1
    ("2024-01-01", "paid_social", 14): {
        0: (1, 45.0, 18.0),
        3: (1, 70.0, 28.0),
        7: (1, 30.0, 12.0),
        13: (1, 80.0, 32.0),
    },  # C2
    ("2024-03-01", "organic", 12): {0: (1, 150.0, 60.0)},  # C3
    ("2024-03-01", "paid_search", 12): {
        0: (1, 60.0, 30.0),
        3: (1, 150.0, 60.0),
        6: (1, 50.0, 25.0),
    },  # C4 (O015 150/60)
    ("2025-01-01", "email", 2): {0: (1, 55.0, 22.0), 1: (1, 40.0, 15.0)},  # C5
    ("2025-02-01", "paid_social", 1): {0: (1, 35.0, 14.0)},  # C6
}


def _add_months(first_of_month: date, n: int) -> date:
    index = first_of_month.year * 12 + first_of_month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def _month_is_complete(calendar_month: date) -> bool:
    """The calendar month ended on or before the as-of date: its last day (the day before the next 1st) <= as-of."""
    return _add_months(calendar_month, 1) - timedelta(days=1) <= D(AS_OF)


def _by_channel_expected():
    expected = []
    for (cohort, channel, months), activity in CUSTOMER_MONTHS.items():
        cum_rev = cum_margin = 0.0
        for m in range(months):
            orders, revenue, margin = activity.get(m, (0, 0.0, 0.0))
            cum_rev += revenue
            cum_margin += margin
            expected.append(
                {
                    "cohort_month": D(cohort),
                    "acquisition_channel": channel,
                    "months_since_first_order": m,
                    "cohort_size": 1,
                    "active_customers": 1 if orders else 0,
                    "retention_rate": 1.0 if orders else 0.0,
                    "orders": orders,
                    "revenue": revenue,
                    "gross_margin": margin,
                    "cumulative_revenue_per_customer": cum_rev,
                    "cumulative_margin_per_customer": cum_margin,
                    # as-of 2025-02-28 ends February: every month through 2025-02 is complete, the last one too
                    "is_complete_month": _month_is_complete(_add_months(D(cohort), m)),
                }
            )
    return expected


def test_cohort_retention_by_channel_every_row(con):
    actual = rows(con, "select * from marts.cohort_retention_by_channel")
    expected = _by_channel_expected()
    assert len(expected) == 55
    assert all(r["is_complete_month"] for r in expected)  # as-of = last day of the last month (see above)
    assert_no_diff(diff_rows(actual, expected, ("cohort_month", "acquisition_channel", "months_since_first_order")))
    # spot-check the literal end points of the curves: C1 425 / 179, C4 260 / 115 (30 + 60 + 25)
    last = {(r["cohort_month"], r["acquisition_channel"]): r for r in actual if r["calendar_month"] == D("2025-02-01")}
    assert last[(D("2024-01-01"), "paid_search")]["cumulative_revenue_per_customer"] == pytest.approx(425.0)
    assert last[(D("2024-03-01"), "paid_search")]["cumulative_margin_per_customer"] == pytest.approx(115.0)


# --------------------------------------------------------------------------- retention_kpis
KPI_COLUMNS = (
    "month",
    "customers",
    "new_customers",
    "returning_customers",
    "orders",
    "revenue",
    "aov",
    "purchase_frequency",
    "repeat_customer_rate",
    "customer_value",
    "customers_before",
    "retention_rate",
    "churn_rate",
    "customers_retained_from_previous_month",
    "month_over_month_retention_rate",
)
# retention_rate(m) = active in m and first order before m / customers whose first order was before m.
RETENTION_KPIS = [
    # month      cust new ret ord revenue aov    freq rep   value  before retention churn  kept mom
    ("2024-01-01", 2, 2, 0, 2, 145.0, 72.5, 1.0, 0.0, 72.5, 0, None, None, 0, None),  # C1, C2 new
    ("2024-02-01", 1, 0, 1, 1, 60.0, 60.0, 1.0, 0.0, 60.0, 2, 0.5, 0.5, 1, 0.5),  # C1 (O013 cancelled)
    ("2024-03-01", 2, 2, 0, 2, 210.0, 105.0, 1.0, 0.0, 105.0, 2, 0.0, 1.0, 0, 0.0),  # C3, C4 new
    ("2024-04-01", 1, 0, 1, 1, 70.0, 70.0, 1.0, 0.0, 70.0, 4, 0.25, 0.75, 0, 0.0),  # C2
    ("2024-05-01", 1, 0, 1, 2, 65.0, 32.5, 2.0, 1.0, 65.0, 4, 0.25, 0.75, 0, 0.0),  # C1 twice on one day
    ("2024-06-01", 1, 0, 1, 1, 150.0, 150.0, 1.0, 0.0, 150.0, 4, 0.25, 0.75, 0, 0.0),  # C4 (200 − 50)
    ("2024-07-01", 0, 0, 0, 0, 0.0, None, None, None, None, 4, 0.0, 1.0, 0, 0.0),  # nobody
    ("2024-08-01", 1, 0, 1, 1, 30.0, 30.0, 1.0, 0.0, 30.0, 4, 0.25, 0.75, 0, None),  # C2; July had nobody
    ("2024-09-01", 1, 0, 1, 1, 50.0, 50.0, 1.0, 0.0, 50.0, 4, 0.25, 0.75, 0, 0.0),  # C4
    ("2024-10-01", 0, 0, 0, 0, 0.0, None, None, None, None, 4, 0.0, 1.0, 0, 0.0),
    ("2024-11-01", 1, 0, 1, 1, 120.0, 120.0, 1.0, 0.0, 120.0, 4, 0.25, 0.75, 0, None),  # C1
    ("2024-12-01", 0, 0, 0, 0, 0.0, None, None, None, None, 4, 0.0, 1.0, 0, 0.0),  # O017 is a test order
    ("2025-01-01", 1, 1, 0, 1, 55.0, 55.0, 1.0, 0.0, 55.0, 4, 0.0, 1.0, 0, None),  # C5 new
    # C1 80 + C2 80 + C5 40 + C6 35 = 235 over 4 orders; returning C1, C2, C5 of 5 earlier customers; C5 kept from Jan
    ("2025-02-01", 4, 1, 3, 4, 235.0, 58.75, 1.0, 0.0, 58.75, 5, 0.6, 0.4, 1, 1.0),
]


def test_retention_kpis_every_row(con):
    actual = rows(con, "select * from marts.retention_kpis")
    expected = _expected(RETENTION_KPIS, KPI_COLUMNS, ("month",))
    assert_no_diff(diff_rows(actual, expected, ("month",)))


# --------------------------------------------------------------------------- customer_segments
def test_customer_segment_flags(con):
    actual = {r["customer_id"]: r for r in rows(con, "select * from marts.customer_segments")}
    assert set(actual) == {"C1", "C2", "C3", "C4", "C5", "C6"}
    flags = {
        # orders: C1 6, C2 4, C3 1, C4 3, C5 2, C6 1
        "is_first_time_buyer": {"C3", "C6"},
        "is_repeat_buyer": {"C1", "C2", "C4", "C5"},
        # discounted share ≥ 0.5: C2 3/4, C5 1/2 (C4 1/3 is not); full price = no discounted order
        "is_discount_shopper": {"C2", "C5"},
        "is_full_price_buyer": {"C1", "C3", "C6"},
        # days since last order ≥ 120: C3 355, C4 151 (C1 3, C2 18, C5 8, C6 25)
        "is_at_risk": {"C3", "C4"},
        # ≥ 4 orders and an order within 90 days: C1 (6, 3 days), C2 (4, 18 days)
        "is_vip": {"C1", "C2"},
        # revenue 35, 95, 150, 225, 260, 425: the 0.9 quantile is 342.5 (interpolated) or 425 (nearest rank)
        "is_big_spender": {"C1"},
        # AOV 35, 47.5, 56.25, 70.83, 86.67, 150: the 0.9 quantile is 118.33 or 150
        "is_high_aov": {"C3"},
        # cart activity in (2025-01-29, 2025-02-28] after the last order: C3 (02-20), C1 (02-26 after 02-25);
        # not C5 (ordered 02-20 after its 02-15 cart), not C4 (01-05 is too old), not C6 (event after as-of)
        "is_cart_abandoner": {"C1", "C3"},
    }
    problems = []
    for flag, members in flags.items():
        for customer, row in actual.items():
            want = customer in members
            if row[flag] is not want:
                problems.append(f"{customer} {flag}: expected {want}, got {row[flag]!r}")
    assert_no_diff(problems)
    assert {c: (r["orders_count"], r["days_since_last_order"]) for c, r in actual.items()} == {
        "C1": (6, 3),
        "C2": (4, 18),
        "C3": (1, 355),
        "C4": (3, 151),
        "C5": (2, 8),
        "C6": (1, 25),
    }


def test_every_customer_has_exactly_one_valid_segment(con):
    allowed = {"champions", "loyal", "new", "potential_loyalists", "at_risk", "lost", "hibernating", "needs_attention"}
    got = con.execute(
        "select customer_id, count(*), min(segment), max(segment) from marts.customer_segments group by 1"
    ).fetchall()
    assert len(got) == 6
    for customer, n, low, high in got:
        assert n == 1 and low == high and low in allowed, (customer, n, low, high)
    scores = con.execute(
        "select min(least(recency_score, frequency_score, monetary_score)), "
        "max(greatest(recency_score, frequency_score, monetary_score)) from marts.customer_segments"
    ).fetchall()[0]
    assert 1 <= scores[0] and scores[1] <= 5
    # C6: its only order 25 days ago (≤ rfm_recent_days 90) -> 'new'. It cannot be champion/loyal first: those need
    # F ≥ 4, and C6 is one of the two single-order customers of six, at the bottom of the frequency ranking.
    seg = dict(con.execute("select customer_id, segment from marts.customer_segments").fetchall())
    assert seg["C6"] == "new"


# --------------------------------------------------------------------------- windowed_ltv
WLTV_COLUMNS = (
    "cohort_month",
    "window_days",
    "customers",
    "revenue",
    "gross_margin",
    "revenue_per_customer",
    "margin_per_customer",
    "repeat_rate_in_window",
)
# Window N = order dates first_order .. first_order + N − 1; observed when first + N − 1 ≤ 2025-02-28.
#   2024-01 {C1 01-05, C2 01-20}: all windows observed (C2: 01-20 + 364 = 2025-01-18).
#     30: C1 <02-04 O001 100/45; C2 <02-19 O008 45/18                          -> 145 / 63, repeat 0
#     60: C1 <03-05 +O002 160/69; C2 <03-20 45/18                               -> 205 / 87, repeat 1/2
#     90: C1 <04-04 160/69; C2 <04-19 +O009 115/46                              -> 275 / 115, repeat 2/2
#    180: C1 <07-03 +O004+O003 225/99; C2 <07-18 115/46                         -> 340 / 145, repeat 1
#    365: C1 <2025-01-04 +O005 345/149; C2 <2025-01-19 +O010 145/58            -> 490 / 207, repeat 1
#   2024-03 {C3 03-10, C4 03-15}: 365 not observed (C4: 03-15 + 364 = 2025-03-14 > as-of).
#     30/60: O012 150/60 + O014 60/30                                           -> 210 / 90, repeat 0
#     90: C4 <06-13 +O015 150/60 (cost (200−50)×0.6 = 90)                       -> 360 / 150, repeat 1/2
#    180: C4 <09-11 (O016 on 09-30 is outside)                                  -> 360 / 150, repeat 1/2
#   2025-01 {C5 01-10}: only 30 observed (01-10 + 29 = 02-08): O018 55/22 (O019 on 02-20 is day 41)
#   2025-02 {C6 02-03}: no window observed (02-03 + 29 = 03-04 > as-of)
WINDOWED_LTV = [
    ("2024-01-01", 30, 2, 145.0, 63.0, 72.5, 31.5, 0.0),
    ("2024-01-01", 60, 2, 205.0, 87.0, 102.5, 43.5, 0.5),
    ("2024-01-01", 90, 2, 275.0, 115.0, 137.5, 57.5, 1.0),
    ("2024-01-01", 180, 2, 340.0, 145.0, 170.0, 72.5, 1.0),
    ("2024-01-01", 365, 2, 490.0, 207.0, 245.0, 103.5, 1.0),
    ("2024-03-01", 30, 2, 210.0, 90.0, 105.0, 45.0, 0.0),
    ("2024-03-01", 60, 2, 210.0, 90.0, 105.0, 45.0, 0.0),
    ("2024-03-01", 90, 2, 360.0, 150.0, 180.0, 75.0, 0.5),  # margin 90 + 60 = 150, / 2 = 75
    ("2024-03-01", 180, 2, 360.0, 150.0, 180.0, 75.0, 0.5),
    ("2025-01-01", 30, 1, 55.0, 22.0, 55.0, 22.0, 0.0),
]


def test_windowed_ltv_only_fully_observed_cohorts(con):
    actual = rows(con, "select * from marts.windowed_ltv")
    expected = _expected(WINDOWED_LTV, WLTV_COLUMNS, ("cohort_month",))
    assert_no_diff(diff_rows(actual, expected, ("cohort_month", "window_days")))


# --------------------------------------------------------------------------- ltv_drivers
LTV_COLUMNS = (
    "driver",
    "driver_value",
    "customers",
    "repeat_rate",
    "customers_90d_observed",
    "value_90d_per_customer",
    "margin_90d_per_customer",
    "customers_365d_observed",
    "value_365d_per_customer",
    "margin_365d_per_customer",
)
# 90-day window observed when first order ≤ 2024-12-01: C1 160/69, C2 115/46, C3 150/60, C4 210/90 (O014 30 + O015 60)
# (C5, C6 not).
# 365-day window observed when first order ≤ 2024-03-01: C1 345/149, C2 145/58.
LTV_DRIVERS = [
    ("acquisition_channel", "paid_search", 2, 1.0, 2, (160 + 210) / 2, (69 + 90) / 2, 1, 345.0, 149.0),  # C1, C4
    ("acquisition_channel", "paid_social", 2, 0.5, 1, 115.0, 46.0, 1, 145.0, 58.0),  # C2, C6
    ("acquisition_channel", "organic", 1, 0.0, 1, 150.0, 60.0, 0, None, None),  # C3
    ("acquisition_channel", "email", 1, 1.0, 0, None, None, 0, None, None),  # C5
    ("first_product_category", "apparel", 1, 1.0, 1, 160.0, 69.0, 1, 345.0, 149.0),  # C1
    ("first_product_category", "beauty", 2, 1.0, 1, 115.0, 46.0, 1, 145.0, 58.0),  # C2, C5
    ("first_product_category", "home", 1, 0.0, 1, 150.0, 60.0, 0, None, None),  # C3
    ("first_product_category", "shoes", 1, 1.0, 1, 210.0, 90.0, 0, None, None),  # C4
    ("first_product_category", "accessories", 1, 0.0, 0, None, None, 0, None, None),  # C6
    ("first_order_discount", "discounted", 3, 1.0, 2, (115 + 210) / 2, (46 + 90) / 2, 1, 145.0, 58.0),  # C2, C4, C5
    ("first_order_discount", "full price", 3, 1 / 3, 2, (160 + 150) / 2, (69 + 60) / 2, 1, 345.0, 149.0),  # C1, C3, C6
    ("first_order_discount_code", "WELCOME10", 2, 1.0, 1, 115.0, 46.0, 1, 145.0, 58.0),  # C2, C5
    ("first_order_discount_code", "SPRING10", 1, 1.0, 1, 210.0, 90.0, 0, None, None),  # C4
    ("first_order_discount_code", "none", 3, 1 / 3, 2, (160 + 150) / 2, (69 + 60) / 2, 1, 345.0, 149.0),
]


def test_ltv_drivers_every_row(con):
    actual = rows(con, "select * from marts.ltv_drivers")
    expected = _expected(LTV_DRIVERS, LTV_COLUMNS)
    assert_no_diff(diff_rows(actual, expected, ("driver", "driver_value")))


# --------------------------------------------------------------------------- CAC payback
# Spend by month × channel (2025-03-01 is after as-of): 2024-01 paid_search 60+40 = 100, paid_social 150;
# 2024-02 paid_social 80 (no new paid_social customer that month); 2024-03 paid_search 25+35 = 60;
# 2025-02 paid_social 10+20 = 30. CAC = spend / new customers of the channel that month.
# Payback = first month where cumulative margin per customer ≥ CAC:
#   2024-01 paid_search (C1): 45, 69, 69, 69, 99, ..., 99, 149 at month 10 ≥ 100                -> 10
#   2024-01 paid_social (C2): 18, .., 46 (m3), .., 58 (m7), .., 90 (m13) < 150                     -> null
#   2024-03 paid_search (C4): 30, 30, 30, 90 at month 3 ≥ 60 (O015 now 60: (200−50)×0.6 = 90 cost)  -> 3
#     (unchanged month: months 0..2 stay at 30 < 60; before the rule change month 3 was exactly 60 = CAC)
#   2025-02 paid_social (C6): 14 < 30                                                              -> null
CAC_PAYBACK = [
    # cohort, channel, new, spend, cac, months_observed, cum margin/customer, payback, ltv_12m (= cum at month 11)
    ("2024-01-01", "paid_search", 1, 100.0, 100.0, 13, 179.0, 10, 149.0),
    ("2024-01-01", "paid_social", 1, 150.0, 150.0, 13, 90.0, None, 58.0),
    ("2024-02-01", "paid_social", 0, 80.0, None, None, None, None, None),
    ("2024-03-01", "organic", 1, None, None, 11, 60.0, None, 60.0),
    ("2024-03-01", "paid_search", 1, 60.0, 60.0, 11, 115.0, 3, 115.0),  # 30 + 60 + 25; ltv_to_cac 115 / 60
    ("2025-01-01", "email", 1, None, None, 1, 37.0, None, "model"),
    ("2025-02-01", "paid_social", 1, 30.0, 30.0, 0, 14.0, None, "model"),
]


def test_cac_payback_every_row(con):
    actual = {(r["cohort_month"], r["acquisition_channel"]): r for r in rows(con, "select * from marts.cac_payback")}
    problems = []
    assert len(actual) == len(CAC_PAYBACK), sorted(actual)
    for cohort, channel, new, spend, cac, observed, cum, payback, ltv12 in CAC_PAYBACK:
        row = actual.get((D(cohort), channel))
        if row is None:
            problems.append(f"missing {cohort} {channel}")
            continue
        want = {
            "new_customers": new,
            "spend": spend,
            "cac": cac,
            "months_observed": observed,
            "cumulative_margin_per_customer": cum,
            "payback_months": payback,
        }
        if ltv12 != "model":  # later cohorts have no observed month 11: projected by the CLV model
            want["ltv_12m_per_customer"] = ltv12
            want["ltv_to_cac_12m"] = None if cac is None or ltv12 is None else ltv12 / cac
        problems += [
            f"{cohort} {channel} {k}: expected {v!r}, got {row[k]!r}" for k, v in want.items() if not same(row[k], v)
        ]
    assert_no_diff(problems)
    # observed payback is also the prediction once reached
    assert actual[(D("2024-01-01"), "paid_search")]["predicted_payback_months"] == 10
    assert actual[(D("2024-03-01"), "paid_search")]["predicted_payback_months"] == 3
    # ROMI = (cumulative margin × new customers − spend) / spend: (179 − 100) / 100, (115 − 60) / 60
    assert actual[(D("2024-01-01"), "paid_search")]["romi"] == pytest.approx(0.79)
    assert actual[(D("2024-03-01"), "paid_search")]["romi"] == pytest.approx(55 / 60)


# Break-even CAC over 12 months = the margin of months 0..11 since acquisition per customer, month m discounted by
# v^m, v = 1.1^(−1/12) (CLV_ANNUAL_DISCOUNT_RATE 0.10). As of 2025-02-28 the cohorts of 2024-01 (months 0..11 =
# 2024-01..2024-12) and 2024-03 (2024-03..2025-02, ending on the as-of date) are fully observed; margins from
# CUSTOMER_MONTHS. The younger cohorts, and every 36-month horizon, need the purchase model, which this shop has too
# few repeat customers to fit: null.
V = 1.1 ** (-1 / 12)
BREAKEVEN_12M = {
    ("2024-01-01", "paid_search"): 45 + 24 * V + 30 * V**4 + 50 * V**10,  # O013 (month 13) is past the horizon
    ("2024-01-01", "paid_social"): 18 + 28 * V**3 + 12 * V**7,
    ("2024-03-01", "organic"): 60.0,
    ("2024-03-01", "paid_search"): 30 + 60 * V**3 + 25 * V**6,
    ("2025-01-01", "email"): None,
    ("2025-02-01", "paid_social"): None,
    ("2024-02-01", "paid_social"): None,  # nobody acquired
}


def test_breakeven_cac_of_the_fully_observed_cohorts(con):
    actual = {(r["cohort_month"], r["acquisition_channel"]): r for r in rows(con, "select * from marts.cac_payback")}
    problems = []
    for (cohort, channel), want in BREAKEVEN_12M.items():
        row = actual[(D(cohort), channel)]
        if not same(row["breakeven_cac_12m"], want):
            problems.append(
                f"{cohort} {channel} breakeven_cac_12m: expected {want!r}, got {row['breakeven_cac_12m']!r}"
            )
        if row["breakeven_cac_36m"] is not None or row["affordable_cac"] is not None:
            problems.append(f"{cohort} {channel}: a 36-month figure without a model")
        if row["new_customers"] and row["target_ltv_to_cac"] != 3.0:
            problems.append(f"{cohort} {channel} target_ltv_to_cac {row['target_ltv_to_cac']!r}")
    assert_no_diff(problems)
    assert actual[(D("2024-03-01"), "organic")]["breakeven_cac_12m_is_projected"] is False
    assert actual[(D("2025-01-01"), "email")]["breakeven_cac_12m_is_projected"] is True


def test_cohort_survival_without_a_model(con):
    """Orders in the 90 days to 2025-02-28 (after 2024-11-30): C1, C2, C5, C6; not C3 (2024-03-10) nor C4
    (2024-09-30). No purchase model on this shop: mean P(alive) is null."""
    got = {r["cohort_month"]: r for r in rows(con, "select * from marts.cohort_survival")}
    expected = {"2024-01-01": (2, 2, 13), "2024-03-01": (2, 0, 11), "2025-01-01": (1, 1, 1), "2025-02-01": (1, 1, 0)}
    assert set(got) == {D(c) for c in expected}
    for cohort, (customers, active, months) in expected.items():
        row = got[D(cohort)]
        assert (row["customers"], row["active_customers_last_90d"], row["months_since_acquisition"]) == (
            customers,
            active,
            months,
        )
        assert row["active_share_last_90d"] == pytest.approx(active / customers)
        assert row["mean_p_alive"] is None and row["expected_alive_customers"] is None


CURVE_CAC = {
    ("2024-01-01", "paid_search"): 100.0,
    ("2024-01-01", "paid_social"): 150.0,
    ("2024-03-01", "organic"): None,
    ("2024-03-01", "paid_search"): 60.0,
    ("2025-01-01", "email"): None,
    ("2025-02-01", "paid_social"): 30.0,
}


def test_cac_payback_curve_every_row(con):
    actual = rows(con, "select * from marts.cac_payback_curve")
    expected = []
    for (cohort, channel, months), activity in CUSTOMER_MONTHS.items():
        cac = CURVE_CAC[(cohort, channel)]
        cumulative = 0.0
        for m in range(months):
            cumulative += activity.get(m, (0, 0.0, 0.0))[2]
            expected.append(
                {
                    "cohort_month": D(cohort),
                    "acquisition_channel": channel,
                    "months_since_acquisition": m,
                    "new_customers": 1,
                    "cac": cac,
                    "margin": activity.get(m, (0, 0.0, 0.0))[2],
                    "cumulative_margin_per_customer": cumulative,
                    "is_paid_back": None if cac is None else cumulative >= cac,
                }
            )
    assert len(expected) == 55  # the 2024-02 paid_social spend brought nobody: no curve
    assert_no_diff(diff_rows(actual, expected, ("cohort_month", "acquisition_channel", "months_since_acquisition")))
    first_paid = {}
    for r in sorted(actual, key=lambda r: r["months_since_acquisition"]):
        if r["is_paid_back"]:
            first_paid.setdefault((r["cohort_month"], r["acquisition_channel"]), r["months_since_acquisition"])
    assert first_paid == {(D("2024-01-01"), "paid_search"): 10, (D("2024-03-01"), "paid_search"): 3}


# --------------------------------------------------------------------------- customer_clv (non-model columns)
# Purchases are customer-days (O004 + O003 on 2024-05-10 are one purchase of 65):
#   frequency = purchase days − 1; recency = (last − first day) / 7 weeks; T = (as-of − first day) / 7 weeks;
#   monetary_value = mean value of the repeat purchase days.
CLV_EXPECTED = {
    #      freq  recency        T          monetary             revenue margin cac
    "C1": (4, (420 - 3) / 7, 420 / 7, (60 + 65 + 120 + 80) / 4, 425.0, 179.0, 100.0),
    "C2": (3, (405 - 18) / 7, 405 / 7, (70 + 30 + 80) / 3, 225.0, 90.0, 150.0),
    "C3": (0, 0.0, 355 / 7, 0.0, 150.0, 60.0, None),
    "C4": (2, (350 - 151) / 7, 350 / 7, (150 + 50) / 2, 260.0, 115.0, 60.0),
    "C5": (1, (49 - 8) / 7, 49 / 7, 40.0, 95.0, 37.0, None),
    "C6": (0, 0.0, 25 / 7, 0.0, 35.0, 14.0, 30.0),
}
# Formula CLV = AOV × purchases per year × lifespan; per year = orders / tenure in years (365.25 days), a tenure
# under one year counting as one year (the first year's orders): C1 6 / (420/365.25), C2 4 / (405/365.25), else orders.
ORDERS_PER_YEAR = {"C1": 6 / (420 / 365.25), "C2": 4 / (405 / 365.25), "C3": 1.0, "C4": 3.0, "C5": 2.0, "C6": 1.0}
AOV = {"C1": 425 / 6, "C2": 56.25, "C3": 150.0, "C4": 260 / 3, "C5": 47.5, "C6": 35.0}


def test_customer_clv_historical_columns(con):
    actual = {r["customer_id"]: r for r in rows(con, "select * from marts.customer_clv")}
    assert set(actual) == set(CLV_EXPECTED)
    problems = []
    for customer, (freq, recency, big_t, monetary, revenue, margin, cac) in CLV_EXPECTED.items():
        want = {
            "frequency": freq,
            "recency": recency,
            "T": big_t,
            "monetary_value": monetary,
            "historical_revenue": revenue,
            "historical_margin": margin,
            "cac": cac,
            # own margin rate = margin / revenue (all revenues > 0): C4 115 / 260 = 23 / 52, C2, C3, C6 0.4
            "margin_rate": margin / revenue,
            "as_of_date": D(AS_OF),
            "orders_count": {"C1": 6, "C2": 4, "C3": 1, "C4": 3, "C5": 2, "C6": 1}[customer],
        }
        problems += [
            f"{customer} {k}: expected {v!r}, got {actual[customer][k]!r}"
            for k, v in want.items()
            if not same(actual[customer][k], v)
        ]
    assert_no_diff(problems)


def test_customer_clv_formula_clv(con):
    fit = dict(
        ((m, p), v)
        for m, p, v in con.execute(
            "select model, parameter, value from marts.clv_model_fit where as_of_date = ?", [D(AS_OF)]
        ).fetchall()
    )
    lifespan = fit.get(("formula", "lifespan_years"))
    assert lifespan is not None and 0 < lifespan <= 10
    actual = {r["customer_id"]: r for r in rows(con, "select * from marts.customer_clv")}
    problems = []
    for customer, per_year in ORDERS_PER_YEAR.items():
        want = AOV[customer] * per_year * lifespan
        got = actual[customer]["formula_clv"]
        if not same(got, want):
            problems.append(f"{customer} formula_clv: expected {want!r}, got {got!r}")
        cac = CLV_EXPECTED[customer][6]
        net = actual[customer]["formula_clv_net_of_cac"]
        if not same(net, None if cac is None else want - cac):
            problems.append(f"{customer} formula_clv_net_of_cac: expected {want} - {cac}, got {net!r}")
    assert_no_diff(problems)


def test_formula_lifespan_from_annual_churn(con):
    """The documented churn (scoring.annual_churn_rate): history 2024-01-05..2025-02-28 = 421 days, so two periods of
    210 days: (2024-01-05, 2024-08-02] and (2024-08-02, 2025-02-28]. Active in the first: C1, C2, C3, C4; of them
    active in the second: C1, C2, C4 -> retention 3/4 over 210 days, annual churn 1 − 0.75^(365/210)."""
    fit = dict(
        ((m, p), v)
        for m, p, v in con.execute(
            "select model, parameter, value from marts.clv_model_fit where as_of_date = ?", [D(AS_OF)]
        ).fetchall()
    )
    churn = 1 - 0.75 ** (365 / 210)
    assert fit[("formula", "annual_churn_rate")] == pytest.approx(churn, rel=1e-9)
    assert fit[("formula", "lifespan_years")] == pytest.approx(min(10.0, 1 / churn), rel=1e-9)


# --------------------------------------------------------------------------- invariants
def test_revenue_reconciles_across_marts(con):
    totals = {
        "fct_orders": "select sum(revenue) from marts.fct_orders",
        "dim_customers": "select sum(net_revenue) from marts.dim_customers",
        "cohort_retention": "select sum(revenue) from marts.cohort_retention",
        "cohort_retention_by_channel": "select sum(revenue) from marts.cohort_retention_by_channel",
        "retention_kpis": "select sum(revenue) from marts.retention_kpis",
        "customer_clv": "select sum(historical_revenue) from marts.customer_clv",
    }
    got = {name: con.execute(sql).fetchall()[0][0] for name, sql in totals.items()}
    assert all(v == pytest.approx(1190.0) for v in got.values()), got


def test_margin_reconciles_across_marts(con):
    # 179 + 90 + 60 + 115 + 37 + 14 = 495 (C4 115 with O015's cost on the revenue kept: (200 − 50) × 0.6 = 90)
    totals = {
        "fct_orders": "select sum(gross_margin) from marts.fct_orders",
        "dim_customers": "select sum(gross_margin) from marts.dim_customers",
        "cohort_retention": "select sum(gross_margin) from marts.cohort_retention",
        "cohort_retention_by_channel": "select sum(gross_margin) from marts.cohort_retention_by_channel",
        "cac_payback_curve": "select sum(margin * new_customers) from marts.cac_payback_curve",
        "customer_clv": "select sum(historical_margin) from marts.customer_clv",
    }
    got = {name: con.execute(sql).fetchall()[0][0] for name, sql in totals.items()}
    assert all(v == pytest.approx(495.0) for v in got.values()), got


# --------------------------------------------------------------------------- a tiny shop runs end to end
def _failed_steps(run) -> str:
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("FAILED ") or "Error" in line]
    return "\n".join(lines[-15:])


def test_tiny_shop_run_succeeds(hand_run, con):
    # Too few repeat customers: the back-test is skipped, marts.clv_backtest gets its full schema and no rows, and the
    # report (load_key_figures) reads it without error (this run once exited 1 in reporting__report on a Binder Error).
    assert hand_run.returncode == 0, _failed_steps(hand_run)
    cur = con.execute("select * from marts.clv_backtest")
    assert {"frequency_bucket", "aggregate_pct_error", "mae_per_customer", "as_of_date"} <= {
        d[0] for d in cur.description
    }
    assert cur.fetchall() == []


# --------------------------------------------------------------------------- a tiny shop builds every mart
def test_tiny_shop_builds_every_mart(con):
    """Four repeat customers are too few for BG/NBD + Gamma-Gamma; the run must still build every mart (a 6-customer
    shop once failed the whole clv_models step, with cac_payback and customer_clv, on a Gamma-Gamma fit with q <= 1)."""
    counts = {
        t: con.execute(f"select count(*) from marts.{t}").fetchall()[0][0]
        for t in (
            "fct_orders",
            "dim_customers",
            "cohort_retention",
            "cohort_retention_by_channel",
            "retention_kpis",
            "customer_segments",
            "windowed_ltv",
            "ltv_drivers",
            "customer_clv",
            "cac_payback",
            "cac_payback_curve",
            "segment_clv",
            "cohort_survival",
        )
    }
    assert counts == {
        "fct_orders": 17,
        "dim_customers": 6,
        "cohort_retention": 29,
        "cohort_retention_by_channel": 55,
        "retention_kpis": 14,
        "customer_segments": 6,
        "windowed_ltv": 10,
        "ltv_drivers": 14,
        "customer_clv": 6,
        "cac_payback": 7,
        "cac_payback_curve": 55,
        "segment_clv": counts["segment_clv"],
        "cohort_survival": 4,
    }
    # model outputs are either absent (null) or proper numbers, never NaN/inf or out of range
    for customer, p_alive, clv in con.execute(
        "select customer_id, p_alive, predicted_clv_365d from marts.customer_clv"
    ).fetchall():
        assert p_alive is None or 0 <= p_alive <= 1, (customer, p_alive)
        assert clv is None or math.isfinite(clv), (customer, clv)


# --------------------------------------------------------------------------- the same shop as of 2024-06-09
# A second, earlier as-of date covers the two branches the 2025-02-28 run cannot:
#   * a blank-cost order whose refund is booked AFTER the as-of date: O015 (refund 50 on 2024-06-10 > 2024-06-09) ->
#     refund not known, revenue 200, cost = (200 − 0) × 0.6 = 120, margin 200 − 120 = 80;
#   * an as-of date inside its month: June 2024 ends on 06-30 > 06-09 -> incomplete; May 2024 and earlier complete.
EARLY_AS_OF = "2024-06-09"


@pytest.fixture(scope="module")
def early_con(tmp_path_factory):
    connection = connect_built(run_hand_shop(tmp_path_factory.mktemp("hand_shop_early"), EARLY_AS_OF))
    yield connection
    connection.close()


def test_early_as_of_late_refund_keeps_cost_on_net_revenue(early_con):
    got = rows(
        early_con,
        "select order_id, refunded_amount, revenue, cost, gross_margin, margin_is_estimated "
        "from marts.fct_orders where order_id in ('O002', 'O015') order by order_id",
    )
    assert_no_diff(
        diff_rows(
            got,
            [
                # O002 (no cost, no refund): 60 × 0.6 = 36, margin 24 — as in the 2025-02-28 run
                {
                    "order_id": "O002",
                    "refunded_amount": 0.0,
                    "revenue": 60.0,
                    "cost": 36.0,
                    "gross_margin": 24.0,
                    "margin_is_estimated": True,
                },
                # O015: refund after the as-of date -> 0; cost 200 × 0.6 = 120; margin 200 − 120 = 80
                {
                    "order_id": "O015",
                    "refunded_amount": 0.0,
                    "revenue": 200.0,
                    "cost": 120.0,
                    "gross_margin": 80.0,
                    "margin_is_estimated": True,
                },
            ],
            ("order_id",),
        )
    )


def test_early_as_of_current_month_is_incomplete(early_con):
    actual = rows(
        early_con,
        "select cohort_month, months_since_first_order, calendar_month, gross_margin, "
        "cumulative_margin_per_customer, is_complete_month from marts.cohort_retention",
    )
    # cohorts 2024-01 {C1, C2}: months 0..5 (Jan..Jun); 2024-03 {C3, C4}: months 0..3 (Mar..Jun)
    assert len(actual) == 6 + 4
    for r in actual:
        assert r["is_complete_month"] is (r["calendar_month"] <= D("2024-05-01")), r
    june = {r["cohort_month"]: r for r in actual if r["calendar_month"] == D("2024-06-01")}
    # 2024-03 cohort in June: O015 margin 80; cumulative (O012 60 + O014 30 + 80) / 2 = 85
    assert june[D("2024-03-01")]["gross_margin"] == pytest.approx(80.0)
    assert june[D("2024-03-01")]["cumulative_margin_per_customer"] == pytest.approx(170 / 2)
    by_channel = rows(early_con, "select calendar_month, is_complete_month from marts.cohort_retention_by_channel")
    assert by_channel and all(r["is_complete_month"] is (r["calendar_month"] <= D("2024-05-01")) for r in by_channel)
    assert any(not r["is_complete_month"] for r in by_channel)
