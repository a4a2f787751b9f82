"""A user error at the CLI is one line on stderr and exit code 2, never a traceback (issue 12)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pytest
from pipeline_runner import PROJECT_ROOT, pipeline_env

from pipelines.cli import UsageError

# A day still in the future when the suite crosses midnight UTC between collecting and running this module (tomorrow
# failed a run that started at 23:53).
FUTURE_DAY = (datetime.now(UTC).date() + timedelta(days=2)).isoformat()


def _clv(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=pipeline_env(tmp_path / "data", **env),
    )


@pytest.mark.parametrize(
    "args, env, words",
    [
        (["run", "--as-of", "2024-13-45"], {}, "--as-of '2024-13-45' is not a date: expected YYYY-MM-DD"),
        (["backfill", "--start", "2025-01-01", "--end", "2025-1-5"], {}, "--end '2025-1-5' is not a date"),
        (
            ["backfill", "--start", "2025-02-01", "--end", "2025-01-05"],
            {},
            "--start 2025-02-01 is after --end 2025-01-05",
        ),
        (["run", "--as-of", FUTURE_DAY], {}, f"--as-of {FUTURE_DAY} is in the future"),
        (["backfill", "--start", "2025-01-01", "--end", FUTURE_DAY], {}, f"--end {FUTURE_DAY} is in the future"),
        (["run", "--as-of", "2023-12-31"], {}, "before the first partition 2024-01-01"),
        (["run", "--source", "files", "--raw-dir", "RAW_FILE"], {}, "a file, not a directory"),
        (["run", "--source", "files", "--raw-dir", "MISSING"], {}, "missing, not a directory"),
        (["run", "--source", "files"], {}, "CLV_SOURCE=files needs CLV_RAW_DIR"),
        (["run"], {"CLV_LOOKBACK_DAYS": "a week"}, "CLV_LOOKBACK_DAYS='a week' is not a whole number"),
        (["run"], {"CLV_START_DATE": "01.01.2024"}, "CLV_START_DATE='01.01.2024' is not an ISO date"),
        (["run"], {"CLV_HASH_KEY": "not-hex"}, "CLV_HASH_KEY must be at least 32 hex digits"),
        # CLV_AS_OF is --as-of: the same checks, in the variable's words
        (["run"], {"CLV_AS_OF": FUTURE_DAY}, f"CLV_AS_OF={FUTURE_DAY} is in the future"),
        (["run"], {"CLV_AS_OF": "2023-12-31"}, "CLV_AS_OF=2023-12-31 is before the first partition 2024-01-01"),
        (
            ["backfill", "--start", "2025-01-01", "--end", "2025-01-05"],
            {"CLV_AS_OF": FUTURE_DAY},
            f"CLV_AS_OF={FUTURE_DAY} is in the future",
        ),
        (
            ["backfill", "--start", "2025-01-01", "--end", "2025-01-05", "--as-of", "2024-12-01"],
            {},
            "--as-of 2024-12-01 is before --start 2025-01-01",
        ),
        # thresholds are shares; the warehouse is a file, whether named by the variable or the flag
        (
            ["run"],
            {"CLV_REJECT_RATE_THRESHOLD": "-1"},
            "CLV_REJECT_RATE_THRESHOLD='-1' must be a share between 0 and 1",
        ),
        (["run"], {"CLV_ROW_DROP_THRESHOLD": "2"}, "CLV_ROW_DROP_THRESHOLD='2' must be a share between 0 and 1"),
        (["run"], {"CLV_WAREHOUSE": "A_DIR"}, "a directory; give the DuckDB file"),
        (["run", "--warehouse", "A_DIR"], {}, "a directory; give the DuckDB file"),
        # argparse's own errors: one line too, without the usage block
        (["run", "--source", "file"], {}, "clv: error: argument --source: invalid choice: 'file'"),
        (["backfill", "--start", "2025-01-01"], {}, "clv: error: the following arguments are required: --end"),
        (["run", "--bogus"], {}, "clv: error: unrecognized arguments: --bogus"),
        ([], {}, "clv: error: the following arguments are required: command"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_user_error_is_one_line_and_exit_code_2(tmp_path, args, env, words):
    (tmp_path / "a_file.csv").write_text("x")
    places = {"RAW_FILE": tmp_path / "a_file.csv", "MISSING": tmp_path / "nope", "A_DIR": tmp_path}
    args = [str(places.get(a, a)) for a in args]
    env = {name: str(places.get(value, value)) for name, value in env.items()}
    done = _clv(tmp_path, *args, **env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clv: ") and words in lines[0], done.stderr
    assert done.stdout == ""


def test_a_damaged_key_file_is_a_configuration_error(tmp_path):
    key_file = tmp_path / "email_hash.key"
    key_file.write_text("this is not a key")
    done = _clv(tmp_path, "run", CLV_HASH_KEY="", CLV_HASH_KEY_FILE=str(key_file))
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"clv: {key_file}: not a hex key (delete it to create a new one, then run `clv run`)"
    ]


def test_help_still_prints_the_usage(tmp_path):
    done = _clv(tmp_path, "backfill", "--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: clv backfill") and "--as-of" in done.stdout


def test_clv_run_honours_clv_as_of(monkeypatch):
    from pipelines.cli import _parser, _plan
    from pipelines.settings import Settings

    monkeypatch.setenv("CLV_AS_OF", "2025-09-30")
    settings = Settings.from_env()
    assert _plan(_parser().parse_args(["run"]), settings) == (
        settings.start_date,
        date(2025, 9, 30),
        date(2025, 9, 30),
        None,
    )
    monkeypatch.setenv("CLV_AS_OF", FUTURE_DAY)
    with pytest.raises(UsageError, match=f"CLV_AS_OF={FUTURE_DAY} is in the future"):
        _plan(_parser().parse_args(["backfill", "--start", "2025-01-01", "--end", "2025-01-02"]), Settings.from_env())


@pytest.mark.parametrize(
    "name, value",
    [
        ("CLV_REJECT_RATE_THRESHOLD", "-1"),
        ("CLV_REJECT_RATE_THRESHOLD", "1.5"),
        ("CLV_ROW_DROP_THRESHOLD", "2"),
        ("CLV_ROW_DROP_THRESHOLD", "-0.1"),
        ("CLV_ROW_DROP_THRESHOLD", "nan"),
        ("CLV_DEFAULT_MARGIN_RATE", "40"),  # a percentage where a share is meant
        ("CLV_DEFAULT_MARGIN_RATE", "-0.2"),
        ("CLV_ANNUAL_DISCOUNT_RATE", "10"),
        ("CLV_ANNUAL_DISCOUNT_RATE", "-1"),
    ],
)
def test_thresholds_are_shares(monkeypatch, name, value):
    from pipelines.settings import Settings

    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"{name}='{value}' must be a share between 0 and 1"):
        Settings.from_env()


def test_lookback_days_are_not_negative(monkeypatch):
    from pipelines.settings import Settings

    monkeypatch.setenv("CLV_LOOKBACK_DAYS", "-2")
    with pytest.raises(ValueError, match="CLV_LOOKBACK_DAYS='-2' must be a number of days, 0 or more"):
        Settings.from_env()


def test_clv_warehouse_must_not_be_a_directory(monkeypatch, tmp_path):
    from pipelines.settings import Settings

    monkeypatch.setenv("CLV_WAREHOUSE", str(tmp_path))
    with pytest.raises(ValueError, match="a directory; give the DuckDB file"):
        Settings.from_env()
