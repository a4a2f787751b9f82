"""CLV_DEFAULT_MARGIN_RATE reaches every mart that uses margin (dbt's and polars' alike).

The hand shop (tests/marts/test_hand_fixture.py) with a default margin rate of 0.25 instead of 0.40. Orders without
a cost get cost = revenue kept × (1 − 0.25); the others keep their own cost:

  estimated    revenue   margin at 0.40   margin at 0.25
  O002 (C1)     60        24               15
  O003 (C1)     25        10                6.25
  O009 (C2)     70        28               17.5
  O015 (C4)    150        60               37.5      (200 − refund 50)
  O018 (C5)     55        22               13.75
  sum                    144               90

Total margin 495 − 144 + 90 = 441. Per customer: C1 179 − 34 + 21.25 = 166.25; C2 90 − 28 + 17.5 = 79.5;
C3 60; C4 115 − 60 + 37.5 = 92.5; C5 37 − 22 + 13.75 = 28.75; C6 14.
"""

from __future__ import annotations

import pytest
from hand_shop_data import connect_built, run_hand_shop

MARGIN_BY_CUSTOMER = {"C1": 166.25, "C2": 79.5, "C3": 60.0, "C4": 92.5, "C5": 28.75, "C6": 14.0}
REVENUE_BY_CUSTOMER = {"C1": 425.0, "C2": 225.0, "C3": 150.0, "C4": 260.0, "C5": 95.0, "C6": 35.0}


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    run = run_hand_shop(tmp_path_factory.mktemp("margin_rate"), CLV_DEFAULT_MARGIN_RATE="0.25")
    connection = connect_built(run)
    yield connection
    connection.close()


def test_every_margin_mart_uses_the_configured_rate(con):
    totals = {
        "fct_orders": "select sum(gross_margin) from marts.fct_orders",
        "dim_customers": "select sum(gross_margin) from marts.dim_customers",
        "cohort_retention": "select sum(gross_margin) from marts.cohort_retention",
        "cohort_retention_by_channel": "select sum(gross_margin) from marts.cohort_retention_by_channel",
        "cac_payback_curve": "select sum(margin * new_customers) from marts.cac_payback_curve",
        "customer_clv": "select sum(historical_margin) from marts.customer_clv",
    }
    got = {name: con.execute(sql).fetchall()[0][0] for name, sql in totals.items()}
    assert all(v == pytest.approx(441.0) for v in got.values()), got


def test_estimated_costs_use_the_configured_rate(con):
    rows = dict(con.execute("select order_id, cost from marts.fct_orders where margin_is_estimated").fetchall())
    assert rows == pytest.approx({"O002": 45.0, "O003": 18.75, "O009": 52.5, "O015": 112.5, "O018": 41.25})


def test_customer_margins_and_rates(con):
    dim = dict(con.execute("select customer_id, gross_margin from marts.dim_customers").fetchall())
    assert dim == pytest.approx(MARGIN_BY_CUSTOMER)
    clv = {
        c: (m, r)
        for c, m, r in con.execute(
            "select customer_id, historical_margin, margin_rate from marts.customer_clv"
        ).fetchall()
    }
    for customer, margin in MARGIN_BY_CUSTOMER.items():
        assert clv[customer][0] == pytest.approx(margin), customer
        assert clv[customer][1] == pytest.approx(margin / REVENUE_BY_CUSTOMER[customer]), customer


def test_windowed_ltv_margin_uses_the_configured_rate(con):
    # Only fully observed windows count (see test_hand_fixture's WINDOWED_LTV). 30 days: 2024-01 O001 45 + O008 18,
    # 2024-03 O012 60 + O014 30, 2025-01 O018 13.75 -> 166.75. 90 days: 2024-01 O001 45 + O002 15 + O008 18 +
    # O009 17.5 = 95.5; 2024-03 O012 60 + O014 30 + O015 37.5 = 127.5.
    total_30 = con.execute("select sum(gross_margin) from marts.windowed_ltv where window_days = 30").fetchall()[0][0]
    assert total_30 == pytest.approx(166.75)
    by_cohort_90 = {
        str(m): v
        for m, v in con.execute(
            "select cohort_month, gross_margin from marts.windowed_ltv where window_days = 90"
        ).fetchall()
    }
    assert by_cohort_90 == pytest.approx({"2024-01-01": 95.5, "2024-03-01": 127.5})
