"""The key figures at the top of the report: read from the marts (`load_key_figures`), the failed assumption
checks in words (`assumption_warnings`) and the (label, formatted value) tiles (`key_figure_tiles`, also the key
figures of the `reporting/report` asset's metadata in Dagster)."""

from __future__ import annotations

import duckdb

from pipelines.report.charts.common import MODEL_LABELS, format_number
from pipelines.report.charts.sql import has_column, records
from pipelines.warehouse import reporting_currency

SPEARMAN_WARNING_THRESHOLD = 0.3  # as pipelines.clv.gamma_gamma: |rho| from here puts Gamma-Gamma in doubt


def load_key_figures(con: duckdb.DuckDBPyConnection) -> dict:
    # customers from dim_customers (one row each): a distinct count over every order costs 0.5 s at 10 M
    orders = records(
        con,
        "select (select count(*) from marts.dim_customers) as customers, count(*) as orders, sum(revenue) as revenue, "
        "sum(gross_margin) as gross_margin, min(order_date) as first_order, max(order_date) as last_order "
        "from marts.fct_orders",
    )[0]
    clv = records(
        con,
        "select max(as_of_date) as as_of_date, count(*) as scored_customers, avg(p_alive) as mean_p_alive, "
        "sum(predicted_clv_365d) as predicted_clv_365d_total, avg(predicted_clv_365d) as predicted_clv_365d_mean "
        "from marts.customer_clv",
    )[0]
    # Share of all customers ever with 2+ orders (lifetime); retention_kpis.repeat_customer_rate is another
    # number: the share of one month's buyers who ordered 2+ times within that month.
    repeat = records(
        con,
        "select avg(case when orders_count > 1 then 1.0 else 0.0 end) "
        "as lifetime_repeat_customer_rate from marts.dim_customers",
    )[0]
    cac = records(
        con,
        "select sum(spend) as paid_spend, sum(new_customers) as paid_new_customers, "
        "sum(cac * new_customers) / nullif(sum(new_customers), 0) as blended_cac "
        "from marts.cac_payback where cac is not null and new_customers > 0",
    )[0]
    # The latest back-test of the model that scored the customers (older warehouses: BG/NBD, the only one).
    selected = "coalesce(selected, true)" if has_column(con, "clv_backtest", "selected") else "true"
    backtest = records(
        con,
        "select aggregate_pct_error as backtest_aggregate_pct_error, mae_per_customer as backtest_mae_per_customer "
        f"from marts.clv_backtest where frequency_bucket = 'all' and {selected} "
        "order by as_of_date desc limit 1",
    )
    # Why a model is not used this run (a failed or unconverged fit): said at the top of the report.
    notes = (
        [
            r["note"]
            for r in records(
                con,
                "select distinct model, note from marts.clv_model_fit where note is not null "
                "and as_of_date = (select max(as_of_date) from marts.clv_model_fit) "
                "order by model",
            )
        ]
        if has_column(con, "clv_model_fit", "note")
        else []
    )
    return {
        **orders,
        **clv,
        **repeat,
        **cac,
        "model_notes": notes,
        "currency": reporting_currency(con),
        **(backtest[0] if backtest else {"backtest_aggregate_pct_error": None, "backtest_mae_per_customer": None}),
        **load_model_figures(con),
    }


def load_model_figures(con: duckdb.DuckDBPyConnection) -> dict:
    """The trust figures of the latest run: the purchase model used, the 90 % intervals of the total predicted
    purchases and CLV (segment_clv's 'total' row), how far the articles' formula CLV was from the hold-out
    (revenue, latest back-test) and Gamma-Gamma's assumption check (Spearman rho of frequency and value)."""
    figures = {
        "purchase_model": None,
        "expected_purchases_365d_total": None,
        "expected_purchases_365d_p05": None,
        "expected_purchases_365d_p95": None,
        "predicted_clv_365d_p05": None,
        "predicted_clv_365d_p95": None,
        "formula_revenue_aggregate_pct_error": None,
        "selected_revenue_aggregate_pct_error": None,
        "spearman_frequency_value": None,
        "spearman_warning": False,
    }
    if has_column(con, "customer_clv", "purchase_model"):
        figures["purchase_model"] = records(con, "select any_value(purchase_model) as m from marts.customer_clv")[0][
            "m"
        ]
    if has_column(con, "segment_clv", "predicted_clv_365d_p05"):
        total = records(
            con,
            "select expected_purchases_365d as expected_purchases_365d_total, expected_purchases_365d_p05, "
            "expected_purchases_365d_p95, predicted_clv_365d_p05, predicted_clv_365d_p95 "
            "from marts.segment_clv where segment_kind = 'total'",
        )
        figures.update(total[0] if total else {})
    if has_column(con, "clv_backtest", "model"):
        latest = records(
            con,
            "select model, selected, revenue_aggregate_pct_error from marts.clv_backtest "
            "where frequency_bucket = 'all' and as_of_date = (select max(as_of_date) from marts.clv_backtest)",
        )
        for r in latest:
            if r["model"] == "formula":
                figures["formula_revenue_aggregate_pct_error"] = r["revenue_aggregate_pct_error"]
            elif r["selected"]:
                figures["selected_revenue_aggregate_pct_error"] = r["revenue_aggregate_pct_error"]
    rho = records(
        con,
        "select value from marts.clv_model_fit where model = 'gamma_gamma' "
        "and parameter = 'spearman_frequency_value' "
        "and as_of_date = (select max(as_of_date) from marts.clv_model_fit)",
    )
    if rho and rho[0]["value"] is not None:
        figures["spearman_frequency_value"] = rho[0]["value"]
        figures["spearman_warning"] = abs(rho[0]["value"]) >= SPEARMAN_WARNING_THRESHOLD
    return figures


def assumption_warnings(key_figures: dict) -> list[str]:
    """Checks of the models' assumptions that failed this run, in words (shown at the top of the report)."""
    warnings = []
    if key_figures.get("spearman_warning"):
        warnings.append(
            f"purchase frequency and order value are correlated (Spearman rho = "
            f"{key_figures['spearman_frequency_value']:.2f}, |rho| >= {SPEARMAN_WARNING_THRESHOLD}): the "
            "Gamma-Gamma spend model assumes they are independent, so expected order values and CLV may be "
            "biased"
        )
    return warnings


def key_figure_tiles(key_figures: dict, *, verbose: bool = False) -> list[tuple[str, str]]:
    """(label, formatted value) per key figure, in the order shown: the tiles at the top of the page, or with
    `verbose` the table of the asset's metadata in Dagster, whose labels spell out "(total)" and which flags the
    Gamma-Gamma assumption check next to its figure (the page says it in a notice at the top instead)."""
    k = key_figures
    total = " (total)" if verbose else ""
    backtest = "back-test error (total repeat purchases)" if verbose else "back-test error (total)"
    spearman = format_number(k["spearman_frequency_value"], "+.2f")
    if verbose and k["spearman_warning"]:
        spearman += " ⚠ Gamma-Gamma assumption in doubt"
    return [
        ("as of", str(k["as_of_date"] or "–")),
        ("customers", format_number(k["customers"], ",d")),
        ("orders", format_number(k["orders"], ",d")),
        ("revenue", format_number(k["revenue"], ",.0f")),
        ("gross margin", format_number(k["gross_margin"], ",.0f")),
        ("customers with 2+ orders (lifetime)", format_number(k["lifetime_repeat_customer_rate"], ".1%")),
        (f"predicted CLV, next 365 d{total}", format_number(k["predicted_clv_365d_total"], ",.0f")),
        (
            "90 % interval of the predicted CLV",
            _interval(k["predicted_clv_365d_p05"], k["predicted_clv_365d_p95"], ",.0f"),
        ),
        (f"expected purchases, next 365 d{total}", format_number(k["expected_purchases_365d_total"], ",.0f")),
        (
            "90 % interval of the purchases",
            _interval(k["expected_purchases_365d_p05"], k["expected_purchases_365d_p95"], ",.0f"),
        ),
        ("predicted CLV per customer", format_number(k["predicted_clv_365d_mean"], ",.2f")),
        ("mean P(alive)", format_number(k["mean_p_alive"], ".1%")),
        ("blended CAC (paid channels)", format_number(k["blended_cac"], ",.2f")),
        ("purchase model (chosen by the back-test)", MODEL_LABELS.get(k["purchase_model"] or "", "–")),
        (backtest, format_number(k["backtest_aggregate_pct_error"], "+.1%")),
        ("formula CLV vs hold-out revenue", format_number(k["formula_revenue_aggregate_pct_error"], "+.1%")),
        ("frequency–value correlation (Spearman)", spearman),
    ]


def _interval(low, high, pattern: str) -> str:
    return "–" if low is None or high is None else f"{format(low, pattern)} – {format(high, pattern)}"
