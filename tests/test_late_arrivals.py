"""A refund booked days after its order is picked up by the daily run: inside the look-back window by the window's
reload, older ones because the export that carries them is new since the last load (change detection)."""

from pathlib import Path

from pipeline_runner import run_clv

HEADER = (
    "order_id,customer_id,ordered_at,net_revenue,refunded_amount,refunded_at,cost,channel,status,product_category\n"
)


def _write(path: Path, rows: list[str]) -> None:
    path.write_text(HEADER + "".join(r + "\n" for r in rows))


def _revenue(run, order_id: str) -> float:
    with run.connect() as con:
        return con.execute("select revenue from marts.fct_orders where order_id = ?", [order_id]).fetchone()[0]


def test_lookback_window_picks_up_late_refunds(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    data = tmp_path / "data"
    env = {"CLV_START_DATE": "2025-03-01", "CLV_LOOKBACK_DAYS": "7"}
    _write(
        raw / "orders_2025-03-20.csv",
        [
            "A1,c1,2025-03-02 10:00:00,50.00,0,,20.00,email,completed,shoes",  # 18 days before the re-run day
            "B1,c2,2025-03-15 10:00:00,80.00,0,,30.00,email,completed,shoes",  # 5 days before it
            "C1,c3,2025-03-20 09:00:00,40.00,0,,10.00,organic,completed,beauty",
        ],
    )
    first = run_clv(
        data,
        "backfill",
        "--start",
        "2025-03-01",
        "--end",
        "2025-03-20",
        "--source",
        "files",
        "--raw-dir",
        str(raw),
        **env,
    )
    assert _revenue(first, "A1") == 50.0 and _revenue(first, "B1") == 80.0

    # The next day's export repeats both older orders with refunds booked on 2025-03-21.
    _write(
        raw / "orders_2025-03-21.csv",
        [
            "A1,c1,2025-03-02 10:00:00,50.00,50.00,2025-03-21 08:00:00,20.00,email,completed,shoes",
            "B1,c2,2025-03-15 10:00:00,80.00,30.00,2025-03-21 08:00:00,30.00,email,completed,shoes",
            "D1,c4,2025-03-21 11:00:00,25.00,0,,10.00,organic,completed,kids",
        ],
    )
    daily = run_clv(
        data,
        "backfill",
        "--start",
        "2025-03-21",
        "--end",
        "2025-03-21",
        "--source",
        "files",
        "--raw-dir",
        str(raw),
        **env,
    )
    assert _revenue(daily, "B1") == 50.0  # inside the 7-day look-back: refund picked up
    assert _revenue(daily, "A1") == 0.0  # older than the look-back: found in the new export all the same
    assert _revenue(daily, "D1") == 25.0

    backfill = run_clv(
        data,
        "backfill",
        "--start",
        "2025-03-02",
        "--end",
        "2025-03-02",
        "--source",
        "files",
        "--raw-dir",
        str(raw),
        **env,
    )
    assert _revenue(backfill, "A1") == 0.0  # a backfill of the order's day keeps it
    with backfill.connect() as con:
        # the re-loaded versions superseded the first ones; nothing is counted twice
        assert con.execute("select count(*) from marts.fct_orders").fetchone()[0] == 4
        assert str(con.execute("select max(order_date) from marts.fct_orders").fetchone()[0]) == "2025-03-21"
