"""CLV_PURCHASE_MODEL and CLV_TARGET_LTV_TO_CAC (pipelines/settings.py): a bad value is one clear line on stderr and
exit code 2 from the CLI, as every configuration error."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pipeline_runner import PROJECT_ROOT, pipeline_env

from pipelines.settings import Settings


def test_defaults_and_accepted_values(monkeypatch):
    monkeypatch.delenv("CLV_PURCHASE_MODEL", raising=False)
    monkeypatch.delenv("CLV_TARGET_LTV_TO_CAC", raising=False)
    settings = Settings.from_env()
    assert settings.purchase_model is None and settings.target_ltv_to_cac == 3.0
    monkeypatch.setenv("CLV_PURCHASE_MODEL", " Pareto_NBD ")
    monkeypatch.setenv("CLV_TARGET_LTV_TO_CAC", "2.5")
    settings = Settings.from_env()
    assert settings.purchase_model == "pareto_nbd" and settings.target_ltv_to_cac == 2.5


@pytest.mark.parametrize(
    "env, words",
    [
        ({"CLV_PURCHASE_MODEL": "pareto"}, "CLV_PURCHASE_MODEL='pareto': expected bg_nbd, pareto_nbd or mbg_nbd"),
        ({"CLV_TARGET_LTV_TO_CAC": "0"}, "CLV_TARGET_LTV_TO_CAC='0' must be a number above 0"),
        ({"CLV_TARGET_LTV_TO_CAC": "three"}, "CLV_TARGET_LTV_TO_CAC='three' is not a number"),
    ],
)
def test_a_bad_value_is_one_line_and_exit_code_2(tmp_path, env, words):
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=pipeline_env(tmp_path / "data", **env),
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clv: ") and words in lines[0], done.stderr
