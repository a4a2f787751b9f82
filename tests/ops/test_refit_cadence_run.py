"""The refit cadence in real runs: a daily run within CLV_REFIT_DAYS of the last fit rescores every customer with
that fit (recorded in clv_model_fit.fitted_on, no new back-test); CLV_REFIT_DAYS=1 refits."""

from datetime import date

import numpy as np
import pipeline_runner
import pytest
from _ops_support import AS_OF

pytestmark = pytest.mark.slow

FIT_DAY = date.fromisoformat(AS_OF)  # the small shop's run fitted the models as of this day


def _block(con, as_of: date) -> dict:
    rows = con.execute(
        "select model, parameter, value, fitted_on from marts.clv_model_fit where as_of_date = ?", [as_of]
    ).fetchall()
    return {(m, p): (v, f) for m, p, v, f in rows}


def _p_alive(r, alpha, a, b, x, t_x, T):
    """FHL 2005 eq. (13), written out directly: 1 / (1 + [x > 0] a/(b+x−1) ((alpha+T)/(alpha+t_x))^(r+x))."""
    odds = np.where(x > 0, a / (b + np.maximum(x, 1) - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0)
    return 1.0 / (1.0 + odds)


def test_daily_runs_reuse_the_fit_until_it_is_due(shop_copy_factory):
    data_dir = shop_copy_factory("refit")
    # The fit day chose its purchase model by the back-test; these days are told to score with BG/NBD
    # (CLV_PURCHASE_MODEL), which the fit day fitted too: the reused block then names BG/NBD as selected.
    daily = pipeline_runner.run_clv(
        data_dir, "backfill", "--start", "2026-01-01", "--end", "2026-01-02", CLV_PURCHASE_MODEL="bg_nbd"
    )
    with daily.connect() as con:
        fitted, reused = _block(con, FIT_DAY), _block(con, date(2026, 1, 2))
        for key in (
            [(m, p) for m in ("bg_nbd", "mbg_nbd") for p in ("r", "alpha", "a", "b")]
            + [("pareto_nbd", p) for p in ("r", "alpha", "s", "beta")]
            + [("gamma_gamma", p) for p in ("p", "q", "gamma")]
        ):
            assert reused[key] == (fitted[key][0], FIT_DAY), key
        assert fitted[("bg_nbd", "r")][1] == FIT_DAY
        assert reused[("bg_nbd", "selected")][0] == 1.0 and reused[("pareto_nbd", "selected")][0] == 0.0
        # what belongs to the fit (its back-test errors, the Spearman check) is carried to the days reusing it
        for key in (("gamma_gamma", "spearman_frequency_value"), ("bg_nbd", "holdout_mae_per_customer")):
            assert reused[key][0] == fitted[key][0], key
        assert con.execute("select distinct purchase_model from marts.customer_clv").fetchall() == [("bg_nbd",)]
        backtests = [
            d for (d,) in con.execute("select distinct as_of_date from marts.clv_backtest order by 1").fetchall()
        ]
        assert backtests == [FIT_DAY]
        x, t_x, T, p_alive, as_of = (
            np.array(c)
            for c in zip(
                *con.execute('select frequency, recency, "T", p_alive, as_of_date from marts.customer_clv').fetchall()
            )
        )
    assert set(as_of) == {date(2026, 1, 2)}
    r, alpha, a, b = (fitted[("bg_nbd", p)][0] for p in ("r", "alpha", "a", "b"))
    assert np.allclose(
        p_alive.astype(float),
        _p_alive(r, alpha, a, b, x.astype(float), t_x.astype(float), T.astype(float)),
        rtol=1e-9,
        atol=0,
    )

    refit = pipeline_runner.run_clv(
        data_dir, "backfill", "--start", "2026-01-03", "--end", "2026-01-03", CLV_REFIT_DAYS="1"
    )
    with refit.connect() as con:
        fresh = _block(con, date(2026, 1, 3))
        assert {f for _, f in fresh.values()} == {date(2026, 1, 3)}
        assert fresh[("bg_nbd", "r")][0] != fitted[("bg_nbd", "r")][0]
        assert (
            con.execute("select count(*) from marts.clv_backtest where as_of_date = '2026-01-03'").fetchall()[0][0] > 0
        )
