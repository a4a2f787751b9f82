"""Benchmark: BG/NBD + Gamma-Gamma fit, this project vs lifetimes 0.11.3, same data, one run.

lifetimes is NOT a project dependency; this script runs in its own environment:

    python3.11 -m venv benchmarks/.venv-lifetimes
    benchmarks/.venv-lifetimes/bin/pip install -r benchmarks/requirements-lifetimes.txt
    # `pip install -e .` also works but drags Dagster/dbt in; the script puts
    # the repository root on sys.path itself, and pipelines.clv needs only
    # numpy, scipy and polars.
    benchmarks/.venv-lifetimes/bin/python benchmarks/clv_fit.py --customers 1000000

It simulates N customers from a known BG/NBD + Gamma-Gamma process (seeded,
vectorised), fits both models with ``pipelines.clv`` and with lifetimes'
BetaGeoFitter / GammaGammaFitter (penalizer 0 on both sides, identical arrays),
checks that every parameter agrees to 1e-3 relative, and prints as its last
line ``speedup_vs_lifetimes=X`` = lifetimes fit seconds / ours (BG/NBD + GG).
Each side's time is the best of ``--repeats`` runs. Exit status 1 if the
estimates disagree.

It also fits the two other purchase models of ``pipelines.clv`` (Pareto/NBD,
MBG/NBD) to the same customers and prints their seconds and the ratio to our
BG/NBD fit (line ``ratio_to_bgnbd``; target: each within 3x). These need no
lifetimes: ``--skip-lifetimes`` runs only our three fits, from the project venv:

    .venv/bin/python benchmarks/clv_fit.py --customers 1000000 --skip-lifetimes
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.clv.bgnbd import fit_bgnbd  # noqa: E402
from pipelines.clv.gamma_gamma import fit_gamma_gamma  # noqa: E402
from pipelines.clv.mbgnbd import fit_mbgnbd  # noqa: E402
from pipelines.clv.paretonbd import fit_paretonbd  # noqa: E402
from pipelines.clv.simulate import BgNbdParams, GammaGammaParams, simulate_rfm  # noqa: E402

# CDNOW-like population (FHL 2005 and Fader-Hardie 2013 estimates).
TRUE_BG = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
TRUE_GG = GammaGammaParams(p=6.25, q=3.74, gamma=15.44)
AGREEMENT_RTOL = 1e-3
# lifetimes' own default (BFGS, tol=1e-7 on the mean objective). Tighter
# values make its BFGS stop on "precision loss" and raise ConvergenceError;
# at 1e-7 both optimisers already agree far below AGREEMENT_RTOL.
LIFETIMES_TOL = 1e-7


def _best_time(function, repeats: int):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def _compare_purchase_models(rfm, bgnbd_seconds: float, bgnbd_fit, repeats: int) -> None:
    """Pareto/NBD and MBG/NBD on the same customers as the BG/NBD: seconds (best of ``repeats``), estimates,
    log-likelihoods, and the time ratio to the BG/NBD fit."""
    pareto_s, pareto = _best_time(lambda: fit_paretonbd(rfm.frequency, rfm.recency, rfm.T), repeats)
    mbg_s, mbg = _best_time(lambda: fit_mbgnbd(rfm.frequency, rfm.recency, rfm.T), repeats)
    for name, fit in (("bgnbd", bgnbd_fit), ("paretonbd", pareto), ("mbgnbd", mbg)):
        values = " ".join(
            f"{field}={getattr(fit, field):.6g}"
            for field in fit.__dataclass_fields__
            if field not in ("log_likelihood", "converged", "n_customers", "iterations", "message", "gradient_norm")
        )
        print(
            f"{name:>9}: {values} log_likelihood={fit.log_likelihood:.2f} converged={fit.converged} "
            f"({fit.iterations} it)"
        )
    print(f"purchase_model_seconds bgnbd={bgnbd_seconds:.3f} paretonbd={pareto_s:.3f} mbgnbd={mbg_s:.3f}")
    print(f"ratio_to_bgnbd paretonbd={pareto_s / bgnbd_seconds:.2f} mbgnbd={mbg_s / bgnbd_seconds:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="runs per fitter; the fastest counts")
    parser.add_argument(
        "--skip-lifetimes",
        action="store_true",
        help="only time our BG/NBD, Pareto/NBD and MBG/NBD fits (no lifetimes needed)",
    )
    args = parser.parse_args()

    if not args.skip_lifetimes:
        try:
            from lifetimes import BetaGeoFitter, GammaGammaFitter
        except ImportError:
            sys.exit(
                "lifetimes is not installed here: run this script from benchmarks/.venv-lifetimes "
                "(see docstring), or pass --skip-lifetimes"
            )

    rfm = simulate_rfm(args.customers, TRUE_BG, TRUE_GG, seed=args.seed)
    repeat = rfm.frequency > 0
    print(f"customers={args.customers} repeat_buyers={int(repeat.sum())} seed={args.seed}")

    ours_bg_s, ours_bg = _best_time(lambda: fit_bgnbd(rfm.frequency, rfm.recency, rfm.T), args.repeats)
    _compare_purchase_models(rfm, ours_bg_s, ours_bg, args.repeats)
    if args.skip_lifetimes:
        return 0
    ours_gg_s, ours_gg = _best_time(lambda: fit_gamma_gamma(rfm.frequency, rfm.monetary_value), args.repeats)

    # Same arrays for lifetimes; GG gets the same x > 0 customers ours selects.
    lt_bg_s, lt_bg = _best_time(
        lambda: BetaGeoFitter(penalizer_coef=0.0).fit(rfm.frequency, rfm.recency, rfm.T, tol=LIFETIMES_TOL),
        args.repeats,
    )
    lt_gg_s, lt_gg = _best_time(
        lambda: GammaGammaFitter(penalizer_coef=0.0).fit(
            rfm.frequency[repeat], rfm.monetary_value[repeat], tol=LIFETIMES_TOL
        ),
        args.repeats,
    )

    ours = {
        "r": ours_bg.r,
        "alpha": ours_bg.alpha,
        "a": ours_bg.a,
        "b": ours_bg.b,
        "p": ours_gg.p,
        "q": ours_gg.q,
        "gamma": ours_gg.gamma,
    }
    theirs = {
        "r": lt_bg.params_["r"],
        "alpha": lt_bg.params_["alpha"],
        "a": lt_bg.params_["a"],
        "b": lt_bg.params_["b"],
        "p": lt_gg.params_["p"],
        "q": lt_gg.params_["q"],
        "gamma": lt_gg.params_["v"],
    }
    truth = {
        "r": TRUE_BG.r,
        "alpha": TRUE_BG.alpha,
        "a": TRUE_BG.a,
        "b": TRUE_BG.b,
        "p": TRUE_GG.p,
        "q": TRUE_GG.q,
        "gamma": TRUE_GG.gamma,
    }

    print(f"{'param':>6} {'truth':>10} {'ours':>12} {'lifetimes':>12} {'rel_diff':>10}")
    worst = 0.0
    for name in ours:
        relative = abs(ours[name] - theirs[name]) / abs(theirs[name])
        worst = max(worst, relative)
        print(f"{name:>6} {truth[name]:>10.4f} {ours[name]:>12.6f} {theirs[name]:>12.6f} {relative:>10.2e}")
    print(
        f"ours converged: bgnbd={ours_bg.converged} ({ours_bg.iterations} it) "
        f"gamma_gamma={ours_gg.converged} ({ours_gg.iterations} it)"
    )
    print(f"ours_seconds bgnbd={ours_bg_s:.3f} gamma_gamma={ours_gg_s:.3f} total={ours_bg_s + ours_gg_s:.3f}")
    print(f"lifetimes_seconds bgnbd={lt_bg_s:.3f} gamma_gamma={lt_gg_s:.3f} total={lt_bg_s + lt_gg_s:.3f}")
    agree = worst <= AGREEMENT_RTOL
    print(f"max_relative_parameter_difference={worst:.2e} agree_within_{AGREEMENT_RTOL:g}={agree}")
    print(f"speedup_vs_lifetimes={(lt_bg_s + lt_gg_s) / (ours_bg_s + ours_gg_s):.1f}")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
