"""Separate virtual environments for the clients a BI user has (an older DuckDB, SQLAlchemy + duckdb-engine, ...),
never installed into the project's own venv.

Each lives in tests/.venvs/<name> (git-ignored), is created once with `python -m venv` + pip from PyPI, and is
reused while its requirements are the same. A test using one skips, with the reason, only when PyPI cannot be
reached; any other install failure fails it.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

VENVS_DIR = Path(__file__).resolve().parents[1] / ".venvs"
PYPI_PROBE = "https://pypi.org/simple/pip/"


def pypi_reachable(timeout: float = 10) -> bool:
    try:
        with urllib.request.urlopen(PYPI_PROBE, timeout=timeout):
            return True
    except (urllib.error.URLError, OSError):
        return False


def side_venv(name: str, requirements: list[str]) -> Path:
    """The python of tests/.venvs/<name> with `requirements` installed (created on first use)."""
    venv = VENVS_DIR / name
    python = venv / "bin" / "python"
    stamp = venv / ".requirements.json"
    wanted = json.dumps(sorted(requirements))
    VENVS_DIR.mkdir(parents=True, exist_ok=True)
    with open(VENVS_DIR / f".{name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test sessions at once: one builds, the other waits and reuses
        if python.exists() and stamp.exists() and stamp.read_text() == wanted:
            return python
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            if not pypi_reachable():
                pytest.skip(f"PyPI is unreachable: cannot install {' '.join(requirements)} into {venv}")
            pytest.fail(
                f"pip install {' '.join(requirements)} into {venv} failed:\n{done.stdout[-2000:]}\n"
                f"{done.stderr[-3000:]}"
            )
        stamp.write_text(wanted)
    return python


def run_json(python: Path, script: str, *args: str, timeout: float = 300):
    """Run `script` (Python source that prints one JSON document last) with `python`; its parsed output."""
    done = subprocess.run([str(python), "-c", script, *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{python} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])
