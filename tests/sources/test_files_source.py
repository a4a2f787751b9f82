"""The `files` source: validation of orders*.csv|parquet (unit level, on small files written to tmp_path), plus
two end-to-end runs of `clv run --source files` (good + bad rows; a file that is not a table)."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from pipeline_runner import run_clv  # noqa: E402

from pipelines.sources import files as src
from pipelines.sources.synthetic import SyntheticShopConfig, generate_shop

HEADER = "order_id,customer_id,ordered_at,net_revenue,discount_amount,refunded_amount"
TODAY = date(2025, 3, 5)
WINDOW = src.Window(start=date(2025, 1, 1), end=date(2025, 3, 31), as_of=date(2025, 3, 31))


def write_csv(path: Path, lines: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "\n" + "\n".join(lines) + "\n")
    return path


def load(files: list[Path], window: src.Window = WINDOW, today: date = TODAY) -> src.LoadResult:
    return src.load_orders(files, window, today=today)


def rejected_rows(result: src.LoadResult) -> dict[tuple[str, int], dict]:
    return {(r["source_file"], r["source_line"]): r for r in result.rejected.iter_rows(named=True)}


# ---------------------------------------------------------------- good files
def test_good_csv_loads_every_row(tmp_path):
    lines = [f"O{i},C{i % 7},2025-02-{1 + i % 28:02d},{10 + i}.50,1.00,0" for i in range(50)]
    result = load([write_csv(tmp_path / "orders.csv", lines)])
    assert result.rejected.height == 0
    assert result.rows_read == 50
    assert result.valid.height == 50
    assert sorted(result.valid["order_id"].to_list()) == sorted(f"O{i}" for i in range(50))
    assert result.valid["net_revenue"].sum() == pytest.approx(sum(10.5 + i for i in range(50)))
    assert result.valid["discount_amount"].sum() == pytest.approx(50.0)
    # CSV lines: the header is line 1, so the data rows are lines 2..51
    assert sorted(result.valid["source_line"].to_list()) == list(range(2, 52))
    assert set(result.valid["source_file"]) == {"orders.csv"}
    assert result.valid["order_date"].min() == date(2025, 2, 1)


def test_good_parquet_loads_every_row(tmp_path):
    n = 40
    frame = pl.DataFrame(
        {
            "order_id": [f"P{i}" for i in range(n)],
            "customer_id": [f"C{i % 5}" for i in range(n)],
            "ordered_at": [datetime(2025, 2, 1, 12) + timedelta(hours=7 * i) for i in range(n)],
            "net_revenue": [5.0 + i for i in range(n)],
            "refunded_amount": [0.0] * n,
            "cost": [1.0] * n,
            "status": ["completed"] * n,
        }
    )
    frame.write_parquet(tmp_path / "orders.parquet")
    result = load([tmp_path / "orders.parquet"])
    assert result.rejected.height == 0
    assert result.valid.height == n
    assert result.valid["net_revenue"].sum() == pytest.approx(frame["net_revenue"].sum())
    assert result.valid["ordered_at"].to_list() == frame["ordered_at"].to_list()
    # Parquet rows are numbered from 1
    assert result.valid["source_line"].to_list() == list(range(1, n + 1))


# ---------------------------------------------------------------- each kind of bad row
GOOD = "G1,C1,2025-03-01,10.00,0,0"
BAD_ROWS = [  # (line, words the reason must contain)
    ("  ,C1,2025-03-01,10.00,0,0", ["missing", "order_id"]),
    ("B2,,2025-03-01,10.00,0,0", ["missing", "customer_id"]),
    ("B3,C1,2025-13-45,10.00,0,0", ["unparseable", "ordered_at"]),
    ("B4,C1,not a date,10.00,0,0", ["unparseable", "ordered_at"]),
    ("B5,C1,1899-01-01,10.00,0,0", ["impossible", "ordered_at", "1899-01-01"]),
    ("B6,C1,2025-03-09,10.00,0,0", ["impossible", "ordered_at", "2025-03-09"]),  # after tomorrow (TODAY + 4)
    ("B7,C1,2025-03-01,abc,0,0", ["non-numeric", "net_revenue", "abc"]),
    ("B8,C1,2025-03-01,-5.00,0,0", ["negative", "net_revenue"]),
    ("B9,C1,2025-03-01,NaN,0,0", ["net_revenue", "non-finite"]),
    ("B10,C1,2025-03-01,inf,0,0", ["net_revenue", "non-finite"]),
    ("B11,C1,2025-03-01,10.00,0", ["too few fields"]),
    ("B12,C1,2025-03-01,10.00,0,0,surplus", ["too many fields"]),
    ("B13,C1,2025-03-01,10.00,0,12.00", ["refunded_amount", "net_revenue"]),
    ("B14,C1,2025-03-01,10.00,ten,0", ["non-numeric", "discount_amount", "ten"]),
    ("B15,C1,2025-03-01,10.00,-1,0", ["negative", "discount_amount"]),
]


@pytest.mark.parametrize(("row", "words"), BAD_ROWS, ids=[r[0].split(",")[0].strip() or "blank_id" for r in BAD_ROWS])
def test_bad_row_is_rejected_with_file_line_and_reason(tmp_path, row, words):
    path = write_csv(
        tmp_path / "orders_2025.csv", [GOOD, "G2,C2,2025-03-02,20.00,0,0", row, "G3,C3,2025-03-03,30.00,0,0"]
    )
    result = load([path])
    assert sorted(result.valid["order_id"].to_list()) == ["G1", "G2", "G3"]
    assert result.rejected.height == 1, result.rejected
    bad = result.rejected.row(0, named=True)
    assert bad["source_table"] == "orders"
    assert bad["source_file"] == "orders_2025.csv"
    assert bad["source_line"] == 4  # header 1, G1 2, G2 3, the bad row 4
    assert bad["kind"] == "invalid"
    for word in words:
        assert word in bad["reason"], (word, bad["reason"])
    # the raw record is kept for the analyst
    assert row.split(",")[2] in bad["record"]


def test_bad_parquet_rows_are_rejected_with_row_numbers(tmp_path):
    frame = pl.DataFrame(
        {
            "order_id": ["P1", None, "P3", "P4", "P5", "P6", "P7"],
            "customer_id": ["C1", "C1", "C1", "C1", "C1", " ", "C1"],
            "ordered_at": [datetime(2025, 3, 1, 10, tzinfo=UTC)] * 6 + [datetime(1899, 1, 1, tzinfo=UTC)],
            "net_revenue": [10.0, 10.0, float("nan"), -1.0, float("inf"), 5.0, 5.0],
        }
    )
    frame.write_parquet(tmp_path / "orders_p.parquet")
    result = load([tmp_path / "orders_p.parquet"])
    assert result.valid["order_id"].to_list() == ["P1"]
    reasons = {r["source_line"]: r["reason"] for r in result.rejected.iter_rows(named=True)}
    assert set(reasons) == {2, 3, 4, 5, 6, 7}
    assert "missing order_id" in reasons[2]
    assert "non-finite" in reasons[3] and "net_revenue" in reasons[3]
    assert "negative net_revenue" in reasons[4]
    assert "non-finite" in reasons[5]
    assert "missing customer_id" in reasons[6]
    assert "impossible ordered_at" in reasons[7]
    assert set(result.rejected["source_file"]) == {"orders_p.parquet"}


def test_mixed_file_loads_every_valid_row(tmp_path):
    good = [f"M{i},C{i % 9},2025-03-{1 + i % 4:02d},{i}.25,0,0" for i in range(1, 61)]
    lines: list[str] = []
    bad_lines: set[int] = set()
    bad_iter = iter([row for row, _ in BAD_ROWS] * 2)
    for i, row in enumerate(good):
        lines.append(row)
        if i % 3 == 0:
            lines.append(next(bad_iter))
            bad_lines.add(len(lines) + 1)  # physical line (header is line 1)
    result = load([write_csv(tmp_path / "orders_mixed.csv", lines)])
    assert result.rows_read == len(lines)
    assert result.valid.height == len(good) == 60
    assert sorted(result.valid["order_id"].to_list()) == sorted(f"M{i}" for i in range(1, 61))
    assert result.valid["net_revenue"].sum() == pytest.approx(sum(i + 0.25 for i in range(1, 61)))
    assert set(result.rejected["source_line"].to_list()) == bad_lines
    assert result.rejected.height == len(bad_lines) == 20
    assert result.valid.height + result.rejected.height == result.rows_read  # nothing silently disappears


def test_exact_duplicate_is_loaded_once_and_recorded(tmp_path):
    dup = "D1,C1,2025-03-01 10:00:00,10.00,1.00,0"
    path = write_csv(tmp_path / "orders.csv", [dup, "D2,C2,2025-03-02,5.00,0,0", dup])
    result = load([path])
    assert sorted(result.valid["order_id"].to_list()) == ["D1", "D2"]
    assert result.valid.filter(pl.col("order_id") == "D1")["source_line"].to_list() == [2]
    assert result.rejected.height == 1
    rec = result.rejected.row(0, named=True)
    assert (rec["kind"], rec["source_file"], rec["source_line"]) == ("duplicate", "orders.csv", 4)
    assert "duplicate" in rec["reason"] and "orders.csv:2" in rec["reason"]


def test_exact_duplicate_across_files_is_loaded_once(tmp_path):
    row = "D1,C1,2025-03-01,10.00,0,0"
    a = write_csv(tmp_path / "orders_a.csv", [row])
    b = write_csv(tmp_path / "orders_b.csv", ["D2,C1,2025-03-02,3.00,0,0", row])
    result = load([a, b])
    assert sorted(result.valid["order_id"].to_list()) == ["D1", "D2"]
    assert result.rejected.select("source_file", "source_line", "kind").rows() == [("orders_b.csv", 3, "duplicate")]


def test_later_file_supersedes_earlier_version_of_an_order(tmp_path):
    old = write_csv(tmp_path / "orders_2025_03_01.csv", ["V1,C1,2025-03-01,10.00,0,0", "V2,C2,2025-03-01,7.00,0,0"])
    new = write_csv(tmp_path / "orders_2025_03_02.csv", ["V1,C1,2025-03-01,10.00,0,4.00"])  # refund booked later
    for files in ([old, new], [new, old]):  # file name order decides, not argument order
        result = load(files)
        v1 = result.valid.filter(pl.col("order_id") == "V1")
        assert v1.height == 1
        assert v1.row(0, named=True)["refunded_amount"] == 4.0
        assert v1.row(0, named=True)["source_file"] == "orders_2025_03_02.csv"
        assert result.valid.height == 2
        rec = result.rejected.row(0, named=True)
        assert result.rejected.height == 1
        assert (rec["kind"], rec["source_file"], rec["source_line"]) == ("superseded", "orders_2025_03_01.csv", 2)


def test_copy_version_and_bad_row_of_one_order_are_told_apart(tmp_path):
    # One order_id four times: a first row, its exact copy, a row that fails validation, and a later version.
    first = "V1,C1,2025-03-01,10.00,0,0"
    a = write_csv(tmp_path / "orders_1.csv", [first, first, "V1,C1,not a date,1.00,0,0", "V2,C2,2025-03-01,7.00,0,0"])
    b = write_csv(tmp_path / "orders_2.csv", ["V1,C1,2025-03-01,10.00,0,4.00"])
    result = load([a, b])
    assert sorted(result.valid.select("order_id", "source_file", "source_line").rows()) == [
        ("V1", "orders_2.csv", 2),
        ("V2", "orders_1.csv", 5),
    ]
    kinds = {(r["source_file"], r["source_line"]): (r["kind"], r["reason"]) for r in result.rejected.to_dicts()}
    assert kinds.keys() == {("orders_1.csv", 2), ("orders_1.csv", 3), ("orders_1.csv", 4)}
    assert kinds[("orders_1.csv", 2)] == ("superseded", "superseded by orders_2.csv:2")
    assert kinds[("orders_1.csv", 3)] == ("duplicate", "exact duplicate of orders_1.csv:2")
    assert kinds[("orders_1.csv", 4)][0] == "invalid"


# ---------------------------------------------------------------- files that are not tables
def _garbage(path: Path) -> Path:
    path.write_bytes(bytes(range(256)) * 8 + os.urandom(1024))
    return path


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _corrupt_parquet(path: Path) -> Path:
    pl.DataFrame(
        {
            "order_id": ["a"] * 100,
            "customer_id": ["c"] * 100,
            "ordered_at": ["2025-03-01"] * 100,
            "net_revenue": [1.0] * 100,
        }
    ).write_parquet(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _wrong_columns(path: Path) -> Path:
    path.write_text("id,customer,date,amount\n1,2,2025-03-01,4\n")
    return path


@pytest.mark.parametrize(
    ("name", "make", "words"),
    [
        ("orders_x.csv", _garbage, []),
        ("orders_empty.csv", _empty, []),
        ("orders_broken.parquet", _corrupt_parquet, ["Parquet"]),
        ("orders_export.csv", _wrong_columns, ["missing required column", "order_id", "net_revenue"]),
    ],
    ids=["binary_garbage", "empty", "corrupt_parquet", "missing_columns"],
)
def test_file_that_is_not_a_table_raises_naming_the_file(tmp_path, name, make, words):
    good = write_csv(tmp_path / "orders_a.csv", [GOOD])
    bad = make(tmp_path / name)
    with pytest.raises(src.SourceFileError) as info:
        load([good, bad])
    message = str(info.value)
    assert name in message
    for word in words:
        assert word in message


def test_header_only_csv_is_an_empty_table(tmp_path):
    path = tmp_path / "orders_quiet_day.csv"
    path.write_text(HEADER + "\n")
    result = load([write_csv(tmp_path / "orders_a.csv", [GOOD]), path])
    assert result.valid["order_id"].to_list() == ["G1"]
    assert result.rejected.height == 0


def test_empty_parquet_with_the_columns_loads_zero_rows(tmp_path):
    pl.DataFrame(
        schema={
            "order_id": pl.String,
            "customer_id": pl.String,
            "ordered_at": pl.Datetime("us"),
            "net_revenue": pl.Float64,
        }
    ).write_parquet(tmp_path / "orders_none.parquet")
    result = load([write_csv(tmp_path / "orders_a.csv", [GOOD]), tmp_path / "orders_none.parquet"])
    assert result.valid["order_id"].to_list() == ["G1"]


# ---------------------------------------------------------------- timestamps, windows, point in time
def test_iso_timestamps_parse_to_utc(tmp_path):
    lines = [
        "T1,C1,2025-03-01,1,0,0",
        "T2,C1,2025-03-01 10:15:00,1,0,0",
        "T3,C1,2025-03-01T10:15:00,1,0,0",
        "T4,C1,2025-03-01T10:15:00Z,1,0,0",
        "T5,C1,2025-03-01T10:15:00.250Z,1,0,0",
        "T6,C1,2025-03-01T12:15:00+02:00,1,0,0",
        "T7,C1,2025-03-01T22:15:00-05:00,1,0,0",  # next day in UTC
        "T8,C1,2025-03-01 10:15,1,0,0",
    ]
    result = load([write_csv(tmp_path / "orders.csv", lines)])
    assert result.rejected.height == 0, result.rejected
    got = dict(result.valid.select("order_id", "ordered_at").rows())
    assert got == {
        "T1": datetime(2025, 3, 1),
        "T2": datetime(2025, 3, 1, 10, 15),
        "T3": datetime(2025, 3, 1, 10, 15),
        "T4": datetime(2025, 3, 1, 10, 15),
        "T5": datetime(2025, 3, 1, 10, 15, 0, 250000),
        "T6": datetime(2025, 3, 1, 10, 15),
        "T7": datetime(2025, 3, 2, 3, 15),
        "T8": datetime(2025, 3, 1, 10, 15),
    }
    dates = dict(result.valid.select("order_id", "order_date").rows())
    assert dates["T7"] == date(2025, 3, 2)


def test_timezone_aware_parquet_timestamps_become_utc(tmp_path):
    local = datetime(2025, 3, 1, 23, 30)
    pl.DataFrame({"order_id": ["Z1"], "customer_id": ["C1"], "ordered_at": [local], "net_revenue": [1.0]}).with_columns(
        pl.col("ordered_at").dt.replace_time_zone("America/New_York")
    ).write_parquet(tmp_path / "orders.parquet")
    result = load([tmp_path / "orders.parquet"])
    assert result.valid["ordered_at"].to_list() == [datetime(2025, 3, 2, 4, 30)]
    assert result.valid["order_date"].to_list() == [date(2025, 3, 2)]


def test_rows_outside_the_window_are_not_valid_but_undated_rejects_are_kept(tmp_path):
    lines = [
        "W1,C1,2025-01-31,1,0,0",  # before the window
        "W2,C1,2025-02-01,2,0,0",  # first day
        "W3,C1,2025-02-14 23:59:59,3,0,0",
        "W4,C1,2025-02-15,4,0,0",  # last day
        "W5,C1,2025-02-16,5,0,0",  # after the window
        "W6,C1,garbage,6,0,0",  # invalid, undated: belongs to no window, must be returned
        "W7,C1,,7,0,0",  # missing date
    ]
    window = src.Window(start=date(2025, 2, 1), end=date(2025, 2, 15), as_of=date(2025, 2, 15))
    result = load([write_csv(tmp_path / "orders.csv", lines)], window=window)
    assert sorted(result.valid["order_id"].to_list()) == ["W2", "W3", "W4"]
    assert result.valid["order_date"].min() >= window.start and result.valid["order_date"].max() <= window.end
    rejected = rejected_rows(result)
    assert ("orders.csv", 7) in rejected and "unparseable ordered_at" in rejected[("orders.csv", 7)]["reason"]
    assert ("orders.csv", 8) in rejected and "missing ordered_at" in rejected[("orders.csv", 8)]["reason"]
    assert rejected[("orders.csv", 7)]["event_date"] is None
    assert not {("orders.csv", 2), ("orders.csv", 6)} & set(rejected)


def test_rows_before_the_first_partition_are_rejected_not_lost(tmp_path):
    window = src.Window(
        start=date(2025, 1, 1), end=date(2025, 3, 31), as_of=date(2025, 3, 31), first_partition=date(2025, 1, 1)
    )
    result = load(
        [write_csv(tmp_path / "orders.csv", ["E1,C1,2024-12-31,1,0,0", "E2,C1,2025-01-01,1,0,0"])], window=window
    )
    assert result.valid["order_id"].to_list() == ["E2"]
    assert result.rejected.height == 1
    assert "first partition" in result.rejected["reason"][0]


def test_refunds_after_as_of_are_not_known_yet(tmp_path):
    header = HEADER + ",refunded_at"
    lines = [
        "R1,C1,2025-03-01,10.00,0,4.00,2025-03-10 09:00:00",  # refund on the as-of day: known
        "R2,C1,2025-03-01,10.00,0,4.00,2025-03-11T00:00:01Z",  # the day after: not known yet
        "R3,C1,2025-03-01,10.00,0,4.00,",  # no refund date: keep the amount
    ]
    window = src.Window(start=date(2025, 3, 1), end=date(2025, 3, 10), as_of=date(2025, 3, 10))
    result = load([write_csv(tmp_path / "orders.csv", lines, header=header)], window=window, today=date(2025, 3, 20))
    got = {r["order_id"]: (r["refunded_amount"], r["refunded_at"]) for r in result.valid.iter_rows(named=True)}
    assert got == {
        "R1": (4.0, datetime(2025, 3, 10, 9)),
        "R2": (0.0, None),
        "R3": (4.0, None),
    }


def test_optional_blank_amounts_are_zero_and_text_is_normalised(tmp_path):
    header = "order_id,customer_id,ordered_at,net_revenue,discount_amount,refunded_amount,channel,status,email"
    result = load(
        [
            write_csv(
                tmp_path / "orders.csv",
                [" N1 , C1 ,2025-03-01, 12.5 ,,, Paid_Search ,CANCELLED,A@B.com"],
                header=header,
            )
        ]
    )
    row = result.valid.row(0, named=True)
    assert (row["order_id"], row["customer_id"], row["net_revenue"]) == ("N1", "C1", 12.5)
    assert (row["discount_amount"], row["refunded_amount"]) == (0.0, 0.0)
    assert (row["channel"], row["status"], row["email"]) == ("paid_search", "cancelled", "a@b.com")


def test_rejected_record_never_contains_the_email(tmp_path):
    header = HEADER + ",email"
    result = load(
        [write_csv(tmp_path / "orders.csv", ["X1,,2025-03-01,1,0,0,secret.person@example.com"], header=header)]
    )
    assert result.rejected.height == 1
    assert "secret.person" not in result.rejected["record"][0]


# ---------------------------------------------------------------- end to end: clv run --source files
E2E_AS_OF = date(2025, 6, 30)
E2E_START = date(2025, 1, 1)
E2E_BAD = [  # rows of orders_zz_manual.csv after its good rows; (row, reason words)
    ("", "C9001", "2025-05-01", "10.00", ["missing order_id"]),
    ("ZB2", "", "2025-05-01", "10.00", ["missing customer_id"]),
    ("ZB3", "C9001", "2025-02-30", "10.00", ["unparseable ordered_at"]),
    ("ZB4", "C9001", "1899-01-01", "10.00", ["impossible ordered_at"]),
    ("ZB5", "C9001", "2025-05-01", "abc", ["non-numeric net_revenue"]),
    ("ZB6", "C9001", "2025-05-01", "-3", ["negative net_revenue"]),
    ("ZB7", "C9001", "2025-05-01", "NaN", ["non-finite net_revenue"]),
]


@pytest.fixture(scope="module")
def files_shop(tmp_path_factory):
    """A synthetic shop exported as files, plus a hand-written CSV with good and bad rows."""
    raw = tmp_path_factory.mktemp("raw_files")
    shop = generate_shop(
        SyntheticShopConfig(n_customers=400, start_date=E2E_START, end_date=E2E_AS_OF, seed=5, dirty_rows=0)
    )
    orders = (
        shop.orders.drop("refunded_at")
        .with_columns(  # no point-in-time refund logic in the expected counts
            refunded_amount=pl.lit(0.0)
        )
        .filter(pl.col("ordered_at").dt.date() <= E2E_AS_OF)
    )
    orders.write_parquet(raw / "orders.parquet")
    shop.marketing_spend.write_parquet(raw / "marketing_spend.parquet")
    good = [f"ZG{i},C9{i:03d},2025-0{1 + i % 6}-1{i % 10}T12:00:00Z,{20 + i}.00" for i in range(12)]
    bad = [",".join(row[:4]) for row in E2E_BAD]
    write_csv(raw / "orders_zz_manual.csv", good + bad, header="order_id,customer_id,ordered_at,net_revenue")
    expected_bad = {len(good) + 2 + i: row[4] for i, row in enumerate(E2E_BAD)}
    return raw, orders, good, expected_bad


@pytest.fixture(scope="module")
def files_run(files_shop, tmp_path_factory):
    raw, *_ = files_shop
    return run_clv(
        tmp_path_factory.mktemp("files_run"),
        "run",
        "--as-of",
        E2E_AS_OF.isoformat(),
        "--source",
        "files",
        "--raw-dir",
        str(raw),
        CLV_START_DATE=E2E_START.isoformat(),
    )


@pytest.mark.slow
def test_e2e_files_run_loads_exactly_the_valid_rows(files_shop, files_run):
    _, orders, good, _ = files_shop
    with files_run.connect() as con:
        loaded = {r[0] for r in con.execute("select order_id from raw.orders").fetchall()}
        n_rows = con.execute("select count(*) from raw.orders").fetchone()[0]
        revenue = con.execute("select sum(net_revenue) from raw.orders").fetchone()[0]
        mart_orders = con.execute("select count(*) from marts.fct_orders").fetchone()[0]
    expected = set(orders["order_id"].to_list()) | {f"ZG{i}" for i in range(len(good))}
    assert n_rows == len(expected) == orders.height + len(good)
    assert loaded == expected
    assert revenue == pytest.approx(orders["net_revenue"].sum() + sum(20 + i for i in range(len(good))), abs=0.01)
    assert 0 < mart_orders <= n_rows  # cancelled/test orders are excluded from the marts


@pytest.mark.slow
def test_e2e_files_run_quarantines_the_bad_rows(files_shop, files_run):
    _, _, _, expected_bad = files_shop
    with files_run.connect() as con:
        rows = con.execute(
            "select source_file, source_line, kind, reason from raw.rejected_orders where source_table = 'orders' "
            "order by source_line"
        ).fetchall()
    assert {(f, line) for f, line, _, _ in rows} == {("orders_zz_manual.csv", line) for line in expected_bad}
    for _source_file, line, kind, reason in rows:
        assert kind == "invalid"
        for word in expected_bad[line]:
            assert word in reason, (line, reason)
    assert "quarantined" in files_run.stdout


@pytest.mark.slow
def test_e2e_files_run_fails_on_a_file_that_is_not_a_table(files_shop, tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw_not_a_table")
    good_raw, *_ = files_shop
    (raw / "orders.parquet").write_bytes((good_raw / "orders.parquet").read_bytes())
    _garbage(raw / "orders_x.csv")
    run = run_clv(
        tmp_path_factory.mktemp("bad_run"),
        "run",
        "--as-of",
        E2E_AS_OF.isoformat(),
        "--source",
        "files",
        "--raw-dir",
        str(raw),
        check=False,
        CLV_START_DATE=E2E_START.isoformat(),
    )
    assert run.returncode != 0
    last_line = run.stderr.strip().splitlines()[-1]
    assert "orders_x.csv" in last_line and "the run failed at step raw__orders" in last_line
    assert "Traceback" not in run.stderr + run.stdout
