"""A model fit that fails or does not converge is recorded as such, its columns are null, and the rest of the run
completes with the reason in the run and the report (issue 18)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from pipeline_runner import run_clv

from pipelines.clv.models import fit_or_reason


@dataclass
class _Fit:
    converged: bool
    message: str = "ABNORMAL_TERMINATION_IN_LNSRCH"


def test_a_fit_that_raises_or_does_not_converge_is_not_used():
    def divides_by_zero(*_):
        return 1.0 / 0.0

    assert fit_or_reason("Gamma-Gamma", divides_by_zero) == (
        None,
        "Gamma-Gamma fit failed (ZeroDivisionError: float division by zero)",
    )
    assert fit_or_reason("BG/NBD", lambda: _Fit(False)) == (
        None,
        "BG/NBD fit did not converge (ABNORMAL_TERMINATION_IN_LNSRCH)",
    )
    fit = _Fit(True)
    assert fit_or_reason("BG/NBD", lambda: fit) == (fit, None)


@pytest.mark.slow
def test_a_shop_whose_order_values_never_vary_still_publishes(tmp_path):
    """Every order is worth 50.00: Gamma-Gamma has no spend heterogeneity to estimate and does not converge."""
    raw = tmp_path / "raw"
    raw.mkdir()
    start = date(2025, 1, 1)
    rng = random.Random(3)
    lines = ["order_id,customer_id,ordered_at,net_revenue"]
    for c in range(120):
        day = start + timedelta(days=rng.randrange(200))
        for k in range(1 + rng.randrange(5)):  # most customers buy again, at irregular intervals
            lines.append(f"O{c:03d}{k},C{c:03d},{day},50.00")
            day += timedelta(days=1 + rng.randrange(60))
    (raw / "orders.csv").write_text("\n".join(lines) + "\n")
    run = run_clv(
        tmp_path / "data",
        "run",
        "--as-of",
        "2025-12-31",
        "--source",
        "files",
        "--raw-dir",
        str(raw),
        CLV_START_DATE=start.isoformat(),
    )
    con = run.connect()
    try:
        notes = dict(con.execute("select model, any_value(note) from marts.clv_model_fit group by model").fetchall())
        converged = dict(
            con.execute("select model, value from marts.clv_model_fit where parameter = 'converged'").fetchall()
        )
        values, customers = con.execute(
            "select count(expected_order_value) + count(predicted_clv_365d), count(*) from marts.customer_clv"
        ).fetchall()[0]
    finally:
        con.close()
    assert converged["gamma_gamma"] == 0 and "Gamma-Gamma fit did not converge" in notes["gamma_gamma"]
    assert values == 0 and customers == 120  # every customer scored, the spend columns null
    assert (run.data_dir / "published" / "warehouse.duckdb").exists()
    report = (run.data_dir / "report" / "index.html").read_text()
    assert "Not in the predictions this run: Gamma-Gamma fit did not converge" in report
