"""A hand-made shop small enough to compute every mart by hand (see test_hand_fixture.py for the arithmetic).

Six customers C1..C6 over 2024-01 .. 2025-03, as of 2025-02-28 (CLV_START_DATE 2024-01-01).
"""

from pathlib import Path

import pytest
from pipeline_runner import PipelineRun, run_clv

AS_OF = "2025-02-28"
START_DATE = "2024-01-01"

ORDER_HEADER = (
    "order_id,customer_id,ordered_at,net_revenue,discount_amount,discount_code,refunded_amount,"
    "refunded_at,cost,channel,status,product_category"
)

# CSV line numbers (header = line 1) are in the comments: the rejected rows are checked by file and line.
ORDERS_2024 = (
    "\n".join(
        [
            ORDER_HEADER,  # line 1
            "O001,C1,2024-01-05 10:00:00,100.00,0,,0,,55.00,paid_search,completed,apparel",  # 2
            "O008,C2,2024-01-20T14:00:00Z,45.00,5.00,WELCOME10,0,,27.00,paid_social,completed,beauty",  # 3
            "O002,C1,2024-02-14 12:00:00,60.00,0,,0,,,paid_search,completed,shoes",  # 4 no cost
            "O013,C4,2024-02-20 10:00:00,90.00,0,,0,,50.00,paid_social,cancelled,shoes",  # 5 cancelled
            "O012,C3,2024-03-10,150.00,,,,,90.00,organic,completed,home",  # 6 date only
            "O014,C4,2024-03-15 10:00:00,60.00,6.00,SPRING10,0,,30.00,paid_search,completed,shoes",  # 7
            "O009,C2,2024-04-02 10:00:00,70.00,14.00,SALE20,0,,,paid_social,completed,beauty",  # 8 no cost
            "X001,C2,2024-04-03 10:00:00,-10.00,0,,0,,,paid_social,completed,beauty",  # 9 BAD: negative
            "O004,C1,2024-05-10 09:00:00,40.00,0,,0,,20.00,organic,completed,beauty",  # 10 same day,
            "O003,C1,2024-05-10 18:30:00,25.00,0,,0,,,organic,completed,beauty",  # 11 later, smaller id
            "O015,C4,2024-06-01 10:00:00,200.00,0,,50.00,2024-06-10 12:00:00,,paid_search,completed,apparel",  # noqa: E501  12 refund
            "X002,C3,2024-13-45,30.00,0,,0,,,organic,completed,home",  # 13 BAD: date
            "O010,C2,2024-08-15 10:00:00,30.00,0,,0,,18.00,organic,completed,home",  # 14
            "O016,C4,2024-09-30 10:00:00,50.00,0,,0,,25.00,paid_search,completed,shoes",  # 15
            "O005,C1,2024-11-20 11:00:00,120.00,0,,0,,70.00,email,completed,apparel",  # 16
            "O017,C5,2024-12-15 10:00:00,999.00,0,,0,,,email,Test,beauty",  # 17 test order
        ]
    )
    + "\n"
)

ORDERS_2025 = (
    "\n".join(
        [
            ORDER_HEADER,  # line 1
            "O018,C5,2025-01-10 10:00:00,55.00,5.50,WELCOME10,0,,,email,completed,beauty",  # 2 no cost
            "X003,,2025-01-15 10:00:00,20.00,0,,0,,,email,completed,beauty",  # 3 BAD: no customer
            "O020,C6,2025-02-03 10:00:00,35.00,0,,0,,21.00,paid_social,,accessories",  # 4 blank status
            "O011,C2,2025-02-10 13:00:00,80.00,8.00,SALE20,80.00,2025-03-10 09:00:00,48.00,email,completed,beauty",  # noqa: E501  5 late refund
            "O019,C5,2025-02-20 10:00:00,40.00,0,,0,,25.00,email,completed,apparel",  # 6
            "O006,C1,2025-02-25 16:00:00,80.00,0,,0,,50.00,paid_search,completed,home",  # 7
            "O007,C1,2025-03-05 10:00:00,500.00,0,,0,,300.00,paid_search,completed,apparel",  # 8 after as-of
        ]
    )
    + "\n"
)

MARKETING_SPEND = (
    "\n".join(
        [
            "date,channel,spend",
            "2024-01-03,paid_search,60.00",
            "2024-01-20,paid_search,40.00",
            "2024-01-10,paid_social,150.00",
            "2024-02-15,paid_social,80.00",  # a month without new paid_social customers
            "2024-03-05,paid_search,25.00",
            "2024-03-20,paid_search,35.00",
            "2025-02-01,paid_social,10.00",
            "2025-02-15,paid_social,20.00",
            "2025-03-01,paid_search,999.00",  # after the as-of date
        ]
    )
    + "\n"
)

CART_EVENTS = (
    "\n".join(
        [
            "customer_id,event_at,event_type,cart_value",
            "C3,2025-02-20 11:00:00,add_to_cart,49.90",  # in the last 30 days, no order since 2024-03-10
            "C5,2025-02-15 09:00:00,add_to_cart,65.00",  # ordered after it (2025-02-20)
            "C4,2025-01-05 10:00:00,checkout_started,80.00",  # older than 30 days
            "C1,2025-02-26 10:00:00,add_to_cart,30.00",  # after the last order (2025-02-25 16:00)
            "C6,2025-03-02 10:00:00,add_to_cart,20.00",  # after the as-of date
        ]
    )
    + "\n"
)

FILES = {
    "orders_2024.csv": ORDERS_2024,
    "orders_2025.csv": ORDERS_2025,
    "marketing_spend.csv": MARKETING_SPEND,
    "cart_events.csv": CART_EVENTS,
}

# The tiny shop's 3 deliberately bad rows are 13 % of its rows, above the default blocking reject rate (5 %).
HAND_REJECT_RATE_THRESHOLD = "0.2"


def run_hand_shop(base: Path, as_of: str = AS_OF, **env) -> PipelineRun:
    """`clv run` of the hand shop's files (written under `base/raw`) into `base/data`. check=False: the marts are
    built before the reporting steps; whether the whole run succeeds is its own test."""
    raw = base / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, text in FILES.items():
        (raw / name).write_text(text)
    env = {"CLV_START_DATE": START_DATE, "CLV_REJECT_RATE_THRESHOLD": HAND_REJECT_RATE_THRESHOLD, **env}
    return run_clv(
        base / "data", "run", "--as-of", as_of, "--source", "files", "--raw-dir", str(raw), check=False, **env
    )


def connect_built(run: PipelineRun):
    """A connection to the run's warehouse; the test fails with the run's output when none was built."""
    if not run.warehouse.exists():
        pytest.fail(f"the run built no warehouse:\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}")
    return run.connect()
