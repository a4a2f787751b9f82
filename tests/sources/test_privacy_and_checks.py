"""No e-mail in clear anywhere the loader writes, keyed hashes, and the blocking data checks that keep a bad
export out of raw.orders (issue 12). Each expectation is computed here by hand or with Python's hmac module."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipelines import warehouse as wh
from pipelines.data_checks import DataCheckFailed, Thresholds
from pipelines.privacy import REDACTED, HashKey, load_key, redact
from pipelines.raw_layer import RAW_TABLES, load_into
from pipelines.sources import files as src

WINDOW = src.Window(
    start=date(2025, 1, 1), end=date(2025, 3, 31), as_of=date(2025, 3, 31), first_partition=date(2025, 1, 1)
)
TODAY = date(2025, 4, 2)
KEY = HashKey(bytes(range(32)))
STRICT = Thresholds(reject_rate=0.05, row_drop=0.5)


def good_rows(n: int, prefix: str = "G") -> list[str]:
    return [f"{prefix}{i},C{i % 4},2025-02-{1 + i % 28:02d},{10 + i}.00,Person.{i}@Example.com" for i in range(n)]


def write(path: Path, lines: list[str], header: str = "order_id,customer_id,ordered_at,net_revenue,email") -> Path:
    path.write_text(header + "\n" + "\n".join(lines) + "\n")
    return path


def load(directory: Path, con, window=WINDOW, **kwargs):
    return load_into(con, RAW_TABLES["orders"], directory, window, TODAY, "files", hash_key=KEY, **kwargs)


def text_values_with_at_sign(con) -> list[str]:
    """Every text value in every table of the database that contains an '@'."""
    found = []
    for schema, table, column in con.execute(
        "select table_schema, table_name, column_name from information_schema.columns where data_type = 'VARCHAR'"
    ).fetchall():
        hits = con.execute(f'select "{column}" from "{schema}"."{table}" where "{column}" like \'%@%\'').fetchall()
        found += [f"{schema}.{table}.{column}: {v}" for (v,) in hits]
    return found


# ---------------------------------------------------------------- redaction
def test_redact_hides_addresses_and_keeps_the_rest():
    assert (
        redact("unparseable ordered_at 'jan.kowalski+shop@poczta.example.pl'") == f"unparseable ordered_at '{REDACTED}'"
    )
    assert redact("O1,C1,a@b.co,12") == f"O1,C1,{REDACTED},12"
    assert redact("no address @ here, price 10@2") == "no address @ here, price 10@2"


def test_rejected_rows_never_keep_an_address(tmp_path):
    header = "order_id,customer_id,ordered_at,net_revenue,email,billing_email"
    path = write(
        tmp_path / "orders.csv",
        [
            "S1,C1,shifted.person@example.com,2025-02-01,10,x@example.org",  # shifted: the address is in ordered_at
            "S2,C1,2025-02-01,swapped@example.com,10,y@example.org",  # swapped: the address is in net_revenue
            ",C1,2025-02-01,10,z@example.com,billing@example.com",  # unknown column billing_email
        ],
        header=header,
    )
    result = src.load_orders([path], WINDOW, today=TODAY)
    assert result.rejected.height == 3
    for row in result.rejected.iter_rows(named=True):
        assert "@" not in row["record"] + row["reason"], row
    assert f"unparseable ordered_at '{REDACTED}'" in result.rejected["reason"].to_list()


# ---------------------------------------------------------------- keyed hashes
def test_emails_are_stored_as_hmac_with_the_installation_key(tmp_path):
    write(tmp_path / "orders.csv", good_rows(3))
    con = duckdb.connect()
    load(tmp_path, con)
    got = dict(con.execute("select order_id, email_hmac from raw.orders").fetchall())
    expected = {
        f"G{i}": hmac.new(bytes(range(32)), f"person.{i}@example.com".encode(), hashlib.sha256).hexdigest()
        for i in range(3)
    }
    assert got == expected
    assert hashlib.sha256(b"person.0@example.com").hexdigest() not in got.values()  # not the unkeyed hash
    assert text_values_with_at_sign(con) == []


def test_a_customer_id_that_is_an_address_becomes_a_keyed_pseudonym(tmp_path):
    write(
        tmp_path / "orders.csv",
        ["E1,Guest.One@Example.com,2025-02-01,10,", "E2,guest.one@example.com ,2025-02-03,5,", "E3,C77,2025-02-03,5,"],
    )
    con = duckdb.connect()
    load(tmp_path, con)
    ids = dict(con.execute("select order_id, customer_id from raw.orders").fetchall())
    pseudonym = "hmac:" + hmac.new(bytes(range(32)), b"guest.one@example.com", hashlib.sha256).hexdigest()[:24]
    assert ids == {"E1": pseudonym, "E2": pseudonym, "E3": "C77"}  # the same customer, whatever the case


def test_the_key_file_is_created_once_private_and_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("CLV_HASH_KEY", raising=False)
    key_file = tmp_path / "config" / "clv" / "email_hash.key"
    first = load_key(key_file)
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert len(first.key) == 32 and load_key(key_file) == first
    monkeypatch.setenv("CLV_HASH_KEY", "ab" * 32)
    assert load_key(key_file).key == bytes.fromhex("ab" * 32)


def test_a_rotated_key_needs_a_full_reload(tmp_path):
    write(tmp_path / "orders.csv", good_rows(5))
    con = duckdb.connect()
    load(tmp_path, con)
    daily = src.Window(
        start=date(2025, 2, 1), end=date(2025, 2, 8), as_of=date(2025, 2, 8), first_partition=date(2025, 1, 1)
    )
    rotated = HashKey(b"\x07" * 32)
    with pytest.raises(src.SourceFileError, match="another e-mail hash key"):
        load_into(con, RAW_TABLES["orders"], tmp_path, daily, TODAY, "files", hash_key=rotated)
    load_into(con, RAW_TABLES["orders"], tmp_path, WINDOW, TODAY, "files", hash_key=rotated)  # full reload: re-hashed
    hashes = {r[0] for r in con.execute("select email_hmac from raw.orders where order_id = 'G0'").fetchall()}
    assert hashes == {hmac.new(b"\x07" * 32, b"person.0@example.com", hashlib.sha256).hexdigest()}


def test_an_old_warehouse_loses_its_unkeyed_hashes(tmp_path):
    con = duckdb.connect()
    con.execute("create schema raw")
    con.execute(
        "create table raw.orders (order_id varchar, order_date date, email_sha256 varchar, source_file varchar)"
    )
    con.execute("insert into raw.orders values ('X', '2025-01-01', sha256('a@b.com'), 'orders_10.csv')")
    wh.ensure_raw_schema(con)
    columns = [
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns where table_name = 'orders'"
        ).fetchall()
    ]
    assert "email_sha256" not in columns and "email_hmac" in columns
    assert con.execute("select source_sort_key from raw.orders").fetchone()[0] == src.natural_key("orders_10.csv")


# ---------------------------------------------------------------- blocking data checks
def _state(con):
    return (
        con.execute("select * exclude (loaded_at, load_id) from raw.orders order by order_id").fetchall(),
        con.execute("select * exclude (rejected_at) from raw.rejected_orders order by all").fetchall(),
    )


@pytest.mark.parametrize("staged", [False, True], ids=["one transaction", "chunked build-and-swap"])
def test_a_mostly_bad_export_leaves_raw_orders_untouched(tmp_path, staged):
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    write(good / "orders.csv", good_rows(50))
    excel = [line.replace("2025-02-", "").split(",") for line in good_rows(50)]
    # Excel re-saved 49 of 50 dates as 'DD/MM/YYYY HH:MM'
    lines = [good_rows(1)[0]] + [f"{r[0]},{r[1]},{r[2]}/02/2025 12:00,{r[3]},{r[4]}" for r in excel[1:]]
    write(bad / "orders.csv", lines)
    con = duckdb.connect()
    chunks = {"chunk_days": 7} if staged else {}
    load(good, con, thresholds=STRICT, **chunks)
    before = _state(con)
    assert len(before[0]) == 50
    with pytest.raises(DataCheckFailed) as failed:
        load(bad, con, thresholds=STRICT, **chunks)
    message = str(failed.value)
    assert "49 of 50 rows rejected (98.0%" in message
    assert (
        "unparseable ordered_at '02/02/2025 12:00' (a day/month date: declare its date_format in columns.yml, "
        "e.g. '%d.%m.%Y %H:%M' or '%m/%d/%Y') (49 rows, e.g. line 3)"
    ) in message
    assert "--accept-bad-input" in message
    assert _state(con) == before
    assert (
        con.execute("select count(*) from information_schema.tables where table_name like '%__loading'").fetchone()[0]
        == 0
    )
    summary = load(bad, con, thresholds=STRICT, accept_bad_input=True, **chunks)  # deliberately
    assert summary.rows_loaded == 1 and summary.warnings


def test_a_truncated_export_is_a_collapse(tmp_path):
    write(tmp_path / "orders.csv", good_rows(40))
    con = duckdb.connect()
    load(tmp_path, con, thresholds=STRICT)
    write(tmp_path / "orders.csv", good_rows(12))  # a clean file, but 12 orders where 40 were
    with pytest.raises(DataCheckFailed, match=r"would hold 12 rows of raw.orders instead of 40"):
        load(tmp_path, con, thresholds=STRICT)
    assert con.execute("select count(*) from raw.orders").fetchone()[0] == 40


def test_an_export_with_no_valid_row_is_blocked_and_a_few_bad_rows_are_not(tmp_path):
    con = duckdb.connect()
    write(tmp_path / "orders.csv", [f"B{i},C1,someday,1," for i in range(3)])
    with pytest.raises(DataCheckFailed, match="3 of 3 rows rejected"):
        load(tmp_path, con, thresholds=STRICT)
    write(tmp_path / "orders.csv", good_rows(100) + ["B1,C1,someday,1,", "B2,,2025-02-01,1,"])  # 2 of 102: 2 %
    assert load(tmp_path, con, thresholds=STRICT).rows_loaded == 100


# ---------------------------------------------------------------- leaks found by an adversarial test (F3-F6)
def _pseudonym(value: str, key: bytes = bytes(range(32))) -> str:
    return "hmac:" + hmac.new(key, value.strip().lower().encode(), hashlib.sha256).hexdigest()[:24]


def test_a_header_less_export_does_not_print_its_addresses(tmp_path):
    """A file without a header row fails with 'missing required column(s) ...; found <the first row>': the first
    row's addresses are redacted from that message (stderr, the run log, Dagster's run storage)."""
    path = tmp_path / "orders.csv"
    path.write_text(
        "P0000,C000,2025-01-01T10:00:00,20.00,good0@planted-mail.com,cat0,bill0@planted-mail.com,web,\n"
        "P0001,C001,2025-02-04T10:00:00,21.00,good1@planted-mail.com,cat1,bill1@planted-mail.com,web,\n"
    )
    with pytest.raises(src.SourceFileError, match="missing required column") as failed:
        src.load_orders([path], WINDOW, today=TODAY)
    assert "@" not in str(failed.value) and REDACTED in str(failed.value)


def test_file_names_with_an_address_are_redacted_in_what_the_run_says(tmp_path):
    """A file named after the person who exported it: the names in the load's summary (logs, Dagster metadata,
    the `Not loaded from` line) are redacted."""
    from pipelines.defs.assets.ingest import _files_metadata

    write(tmp_path / "orders_anna.export@planted-mail.com.csv", good_rows(5))
    (tmp_path / "from_bob.sender@planted-mail.com.txt").write_text("hi\n")
    con = duckdb.connect()
    summary = load(tmp_path, con)
    assert summary.rows_loaded == 5
    said = [*summary.unloaded, *summary.notes, *_files_metadata(summary).values()]
    assert not [s for s in said if "@" in str(s)], said
    assert _files_metadata(summary)["files"] == REDACTED  # the pattern takes the whole name as an address
    assert src.unloaded_files(tmp_path)[0].startswith(f"{REDACTED} (the name does not start")
    # A daily run reads the changed file whole, and says so: redacted too.
    os.utime(tmp_path / "orders_anna.export@planted-mail.com.csv", ns=(1, 1))
    daily = src.Window(
        start=date(2025, 2, 20), end=date(2025, 2, 21), as_of=date(2025, 2, 21), first_partition=date(2025, 1, 1)
    )
    metadata = _files_metadata(load(tmp_path, con, window=daily))
    assert metadata["files_read_whole"] == REDACTED


FREE_TEXT_HEADER = "order_id,customer_id,ordered_at,net_revenue,email,product_category,channel,discount_code,status"


def test_addresses_in_free_text_columns_of_valid_rows_are_redacted_at_ingest(tmp_path):
    """A valid order with an address in a free-text column loads (it is not rejected), without the address."""
    rows = [
        "V1,C010,2025-03-04,16.00,x@y.z,valid.category@planted-mail.com,newsletter valid.channel@planted-mail.com,"
        "CODE-valid.code@planted-mail.com,paid by st@tus.example.com",
        "V2,C011,2025-03-05,17.00,,shoes,web,SPRING,",
    ]
    write(tmp_path / "orders.csv", rows, header=FREE_TEXT_HEADER)
    con = duckdb.connect()
    summary = load(tmp_path, con)
    assert summary.rows_loaded == 2 and summary.rejected.height == 0
    got = con.execute(
        "select product_category, channel, discount_code, status from raw.orders order by order_id"
    ).fetchall()
    assert got == [
        (REDACTED, f"newsletter {REDACTED}", REDACTED, f"paid by {REDACTED}"),  # `CODE-valid.code` is the local part
        ("shoes", "web", "SPRING", None),
    ]
    assert text_values_with_at_sign(con) == []
    # A daily re-run of the same (touched) file finds nothing changed: the comparison is made on redacted values.
    os.utime(tmp_path / "orders.csv", ns=(1, 1))
    daily = src.Window(
        start=date(2025, 3, 30), end=date(2025, 3, 31), as_of=date(2025, 3, 31), first_partition=date(2025, 1, 1)
    )
    again = load(tmp_path, con, window=daily)
    assert again.changed_files == ["orders.csv"] and again.changed_rows == 0


def test_addresses_in_marketing_spend_channels_are_redacted_at_ingest(tmp_path):
    (tmp_path / "orders.csv").write_text("order_id,customer_id,ordered_at,net_revenue\nO1,C1,2025-02-01,10\n")
    (tmp_path / "marketing_spend.csv").write_text(
        "date,channel,spend\n2025-02-01,partner ann@planted-mail.com,12.5\n2025-02-01,web,3\n"
    )
    con = duckdb.connect()
    load(tmp_path, con)
    summary = load_into(con, RAW_TABLES["marketing_spend"], tmp_path, WINDOW, TODAY, "files", hash_key=KEY)
    assert summary.rows_loaded == 2
    assert sorted(r[0] for r in con.execute("select channel from raw.marketing_spend").fetchall()) == [
        f"partner {REDACTED}",
        "web",
    ]
    assert text_values_with_at_sign(con) == []
    assert not [n for n in summary.notes if "@" in n]


def test_a_customer_id_containing_an_address_becomes_a_keyed_pseudonym(tmp_path):
    """Not only a whole address: a display name with an address, a mailto: link. The whole trimmed, lower-cased
    value is hashed, so a whole address keeps the pseudonym it always had."""
    write(
        tmp_path / "orders.csv",
        [
            'K0,"Anna Nowak <anna.display@planted-mail.com>",2025-01-10,10.00,',
            "K1,mailto:bob.mailto@planted-mail.com,2025-02-11,11.00,",
            "K2,MAILTO:Bob.Mailto@planted-mail.com ,2025-02-12,11.00,",
            "K3,guest.one@example.com,2025-02-13,5,",
            "K4,C77,2025-02-13,5,",
        ],
    )
    (tmp_path / "cart_events.csv").write_text(
        "customer_id,event_at,event_type\nmailto:bob.mailto@planted-mail.com,2025-02-10,add_to_cart\n"
    )
    con = duckdb.connect()
    load(tmp_path, con)
    load_into(con, RAW_TABLES["cart_events"], tmp_path, WINDOW, TODAY, "files", hash_key=KEY)
    ids = dict(con.execute("select order_id, customer_id from raw.orders").fetchall())
    assert ids == {
        "K0": _pseudonym("Anna Nowak <anna.display@planted-mail.com>"),
        "K1": _pseudonym("mailto:bob.mailto@planted-mail.com"),
        "K2": _pseudonym("mailto:bob.mailto@planted-mail.com"),
        "K3": _pseudonym("guest.one@example.com"),  # as before: existing warehouses keep their pseudonyms
        "K4": "C77",
    }
    assert con.execute("select customer_id from raw.cart_events").fetchall() == [(ids["K1"],)]
    assert text_values_with_at_sign(con) == []
