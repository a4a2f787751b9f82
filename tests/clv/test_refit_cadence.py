"""Which earlier fit a run may reuse (pipelines/clv/marts.py: recent_fit): converged, made by a real fit
(fitted_on = as_of_date), at most CLV_REFIT_DAYS − 1 days before the as-of date and never after it."""

from contextlib import contextmanager
from datetime import date

import duckdb
import pytest

from pipelines.clv.bgnbd import BgNbdFit
from pipelines.clv.gamma_gamma import GammaGammaFit
from pipelines.clv.marts import recent_fit
from pipelines.clv.scoring import model_fit_rows


class _Warehouse:
    def __init__(self, path):
        self.path = path

    @contextmanager
    def connect(self, read_only=False):
        con = duckdb.connect(str(self.path), read_only=read_only)
        try:
            yield con
        finally:
            con.close()


def _fit_block(as_of: date, fitted_on: date, r: float, converged: bool = True):
    bg = BgNbdFit(r, 4.0, 0.8, 2.4, -1.0, converged, 100, 10, "")
    gg = GammaGammaFit(6.0, 3.7, 15.0, -1.0, True, 50, 10, "")
    return model_fit_rows(as_of, bg, gg, {}).to_arrow(), fitted_on


@pytest.fixture
def history(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema marts")
    blocks = [
        _fit_block(date(2025, 3, 1), date(2025, 3, 1), r=0.1),
        _fit_block(date(2025, 3, 4), date(2025, 3, 1), r=0.1),  # a day that reused the 1 March fit
        _fit_block(date(2025, 3, 10), date(2025, 3, 10), r=0.3, converged=False),  # a fit that did not converge
        _fit_block(date(2025, 3, 20), date(2025, 3, 20), r=0.5),  # a later fit (backfills must not see it)
    ]
    for i, (rows, fitted_on) in enumerate(blocks):  # noqa: B007 - `rows` is read by DuckDB below
        verb = "create table marts.clv_model_fit as" if i == 0 else "insert into marts.clv_model_fit"
        con.execute(f"{verb} select *, ?::date as fitted_on from rows", [fitted_on])
    con.close()
    return _Warehouse(tmp_path / "w.duckdb")


@pytest.mark.parametrize(
    "as_of, refit_days, expected",
    [
        (date(2025, 3, 1), 7, (date(2025, 3, 1), 0.1)),  # a re-run of the fit day reuses its own fit
        (date(2025, 3, 7), 7, (date(2025, 3, 1), 0.1)),  # 6 days later: still within 7 days
        (date(2025, 3, 8), 7, None),  # 7 days later: refit
        (date(2025, 3, 5), 3, None),  # the 4 March block is a reuse, not a fit: not a base
        (date(2025, 3, 12), 7, None),  # the 10 March fit did not converge
        (date(2025, 3, 21), 7, (date(2025, 3, 20), 0.5)),
        (date(2025, 3, 19), 30, (date(2025, 3, 1), 0.1)),  # never a fit from after the as-of date
        (date(2025, 3, 1), 1, None),  # CLV_REFIT_DAYS=1: refit every run
    ],
)
def test_reusable_fit(history, as_of, refit_days, expected):
    found = recent_fit(history, as_of, refit_days)
    if expected is None:
        assert found is None
    else:
        fitted_on, bg, gg = found
        assert (fitted_on, bg.r) == expected and gg.q == 3.7


def test_no_history_means_fit(tmp_path):
    duckdb.connect(str(tmp_path / "w.duckdb")).execute("create schema marts").close()
    assert recent_fit(_Warehouse(tmp_path / "w.duckdb"), date(2025, 3, 1), 7) is None


def test_the_reused_fit_is_the_model_selected_on_the_fit_day(tmp_path):
    """The fit day chose Pareto/NBD: the days reusing it score with Pareto/NBD, with its standard errors, and keep the
    fit day's back-test errors and Spearman check."""
    import numpy as np

    from pipelines.clv.marts import carried_rows, recent_fit_rows
    from pipelines.clv.paretonbd import ParetoNbdFit

    covariance = np.diag([0.01, 0.04, 0.0025, 0.09])
    pareto = ParetoNbdFit(0.55, 10.6, 0.61, 11.7, -1.0, True, 100, 10, "", covariance=covariance)
    bg = BgNbdFit(0.24, 4.4, 0.79, 2.4, -1.0, True, 100, 10, "")
    gg = GammaGammaFit(6.0, 3.7, 15.0, -1.0, True, 50, 10, "")
    rows = model_fit_rows(  # noqa: F841 - read by DuckDB's replacement scan below
        date(2025, 3, 1),
        {"bg_nbd": bg, "pareto_nbd": pareto, "mbg_nbd": None},
        gg,
        {"pareto_nbd": {"holdout_mae_per_customer": 0.41}, "gamma_gamma": {"spearman_frequency_value": 0.12}},
        selected="pareto_nbd",
    ).to_arrow()
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema marts")
    con.execute("create table marts.clv_model_fit as select *, ?::date as fitted_on from rows", [date(2025, 3, 1)])
    con.close()
    fitted_on, fit, reused_gg = recent_fit(_Warehouse(tmp_path / "w.duckdb"), date(2025, 3, 5), 7)
    assert fitted_on == date(2025, 3, 1) and isinstance(fit, ParetoNbdFit) and fit.params == pareto.params
    np.testing.assert_allclose(fit.covariance, covariance, rtol=1e-12)
    assert reused_gg.q == 3.7
    _, stored = recent_fit_rows(_Warehouse(tmp_path / "w.duckdb"), date(2025, 3, 5), 7)
    assert carried_rows(stored) == {
        "pareto_nbd": {"holdout_mae_per_customer": 0.41},
        "gamma_gamma": {"spearman_frequency_value": 0.12},
    }
