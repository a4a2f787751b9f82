"""The CLV report renders every chart, and each chart's embedded JSON is exactly what the marts say; its PDF holds
the key figures and every chart.

The expected values are recomputed here from the warehouse with plain SQL (and a little Python), independently of
pipelines/report, so a wrong join, filter or weighting in the report shows up as a mismatch.
"""

from __future__ import annotations

import html
import json
import math
import re
import statistics
import sys
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bi.side_venv import run_json, side_venv  # noqa: E402

from pipelines.report import METADATA_CHARTS, build_report  # noqa: E402
from pipelines.report.pdf import find_chromium  # noqa: E402

EXPECTED_CHARTS = {
    "cohort-retention": "Cohort retention",
    "ltv-curves": "Cumulative revenue and margin per customer by cohort (LTV curves)",
    "payback-curves": "CAC payback by acquisition channel",
    "clv-distribution": "Distribution of predicted 365-day CLV",
    "p-alive-matrix": "P(alive) by recency and frequency",
    "backtest": "Back-test: the purchase models side by side",
    "cohort-survival": "Survival by cohort: the model vs what was observed",
    "segments": "Customer segments: size and value",
    "ltv-drivers": "LTV drivers",
    "kpi-trends": "Monthly KPI trends",
    "model-drift": "Model parameters over time",
}


# ---------------------------------------------------------------- helpers


def _plain(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def query(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [{n: _plain(v) for n, v in zip(names, row)} for row in cursor.fetchall()]


def assert_same(actual, expected, path: str = "data") -> None:
    """Structural equality with floats compared to 1e-9 relative (JSON round-trips floats exactly; sums may differ
    in the last bits when added in another order)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        assert set(actual) == set(expected), f"{path}: keys {sorted(actual)} != {sorted(expected)}"
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected a list, got {actual!r}"
        assert len(actual) == len(expected), f"{path}: {len(actual)} items, expected {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{path}[{i}]")
    elif isinstance(expected, float) or (
        isinstance(actual, float) and isinstance(expected, int) and not isinstance(expected, bool)
    ):
        assert actual == pytest.approx(expected, rel=1e-9, abs=1e-9), f"{path}: {actual!r} != {expected!r}"
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def weighted(rows: list[dict], value: str, weight: str) -> float:
    return sum(r[value] * r[weight] for r in rows) / sum(r[weight] for r in rows)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def report(small_shop, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("report")
    result = build_report(small_shop.warehouse, out_dir, warn=lambda message: None)
    page = result.path.read_text(encoding="utf-8")
    blocks = {
        m.group(1): json.loads(m.group(2))
        for m in re.finditer(r'<script type="application/json" id="([^"]+)">(.*?)</script>', page, re.S)
    }
    return result, page, blocks


@pytest.fixture(scope="module")
def con(small_shop):
    connection = small_shop.connect()
    yield connection
    connection.close()


# ---------------------------------------------------------------- the page


def test_report_renders_self_contained(report, small_shop):
    result, page, blocks = report
    assert result.path == result.path.parent / "index.html" and result.path.exists()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not list(result.path.parent.glob(".index.html*")), "the temporary file of the atomic write was left behind"
    # Nothing to fetch: no external scripts, styles, images or fonts.
    assert not re.search(r'(src|href)="(https?:)?//', page), "the report references the network"
    assert "<link" not in page and "@import" not in page
    assert "<img" not in page
    # Every chart is an inline SVG whose text is text (tick labels can be read and measured), whose ids are its own.
    svgs = re.findall(r'<figure class="chart"[^>]*>(<svg .*?</svg>)</figure>', page, re.S)
    assert len(svgs) == len(EXPECTED_CHARTS)
    ids = re.findall(r'\bid="([^"]+)"', "".join(svgs))
    assert len(ids) == len(set(ids)), "two elements of the page share an id"
    for chart_id, svg in zip(EXPECTED_CHARTS, svgs):
        assert "<text" in svg and "<?xml" not in svg and "<metadata" not in svg
        assert all(i.startswith(f"{chart_id}-") for i in re.findall(r'\bid="([^"]+)"', svg)), chart_id
        referenced = re.findall(r'(?:href="#|url\(#)([^")]+)', svg)
        assert all(r.startswith(f"{chart_id}-") for r in referenced), chart_id
    assert [c.id for c in result.charts] == list(EXPECTED_CHARTS)
    for chart in result.charts:  # PNGs only for Dagster's metadata
        if chart.id in METADATA_CHARTS:
            assert chart.png[:8] == b"\x89PNG\r\n\x1a\n" and len(chart.png) > 5_000
        else:
            assert chart.png is None
    assert set(blocks) >= {f"data-{chart_id}" for chart_id in EXPECTED_CHARTS} | {"data-key-figures"}


def test_every_chart_has_its_title_and_caption(report):
    result, page, _ = report
    headings = [html.unescape(h) for h in re.findall(r"<h2>(.*?)</h2>", page)]
    assert headings == list(EXPECTED_CHARTS.values())
    for chart_id, title in EXPECTED_CHARTS.items():
        section = re.search(rf'<section id="{chart_id}".*?</section>', page, re.S)
        assert section, chart_id
        assert f"<h2>{html.escape(title)}</h2>" in section.group(0)
        caption = re.search(r'<p class="caption">(.*?)</p>', section.group(0), re.S)
        assert caption and len(caption.group(1)) > 80, f"{chart_id}: caption missing or too short"
        assert f'id="data-{chart_id}"' in section.group(0)
        assert result.chart(chart_id).title == title


def test_rebuild_replaces_the_report(report, small_shop):
    result, page, _ = report
    again = build_report(small_shop.warehouse, result.path.parent)
    assert again.path == result.path
    assert [c.id for c in again.charts] == [c.id for c in result.charts]


# ---------------------------------------------------------------- the data of each chart equals the marts


def test_key_figures(report, con):
    _, _, blocks = report
    orders = query(
        con,
        "select count(distinct customer_id) as customers, count(*) as orders, sum(revenue) as revenue, "
        "sum(gross_margin) as gross_margin, min(order_date) as first_order, max(order_date) as last_order "
        "from marts.fct_orders",
    )[0]
    clv = query(
        con,
        "select max(as_of_date) as as_of_date, count(*) as scored_customers, avg(p_alive) as mean_p_alive, "
        "sum(predicted_clv_365d) as predicted_clv_365d_total, avg(predicted_clv_365d) as predicted_clv_365d_mean "
        "from marts.customer_clv",
    )[0]
    counts = [r["orders_count"] for r in query(con, "select orders_count from marts.dim_customers")]
    paid = query(
        con, "select spend, new_customers, cac from marts.cac_payback where cac is not null and new_customers > 0"
    )
    overall = query(
        con,
        "select aggregate_pct_error, mae_per_customer from marts.clv_backtest "
        "where frequency_bucket = 'all' and selected order by as_of_date desc limit 1",
    )[0]
    latest = query(
        con,
        "select model, selected, revenue_aggregate_pct_error from marts.clv_backtest where frequency_bucket = 'all'",
    )  # the small shop has one as-of date
    total = query(con, "select * from marts.segment_clv where segment_kind = 'total'")[0]
    rho = query(
        con,
        "select value from marts.clv_model_fit where model = 'gamma_gamma' and parameter = 'spearman_frequency_value'",
    )[0]["value"]
    expected = {
        **orders,
        **clv,
        "lifetime_repeat_customer_rate": sum(c > 1 for c in counts) / len(counts),
        "paid_spend": sum(r["spend"] for r in paid),
        "paid_new_customers": sum(r["new_customers"] for r in paid),
        "blended_cac": weighted(paid, "cac", "new_customers"),
        "backtest_aggregate_pct_error": overall["aggregate_pct_error"],
        "backtest_mae_per_customer": overall["mae_per_customer"],
        "purchase_model": query(con, "select distinct purchase_model from marts.customer_clv")[0]["purchase_model"],
        "expected_purchases_365d_total": total["expected_purchases_365d"],
        **{
            k: total[k]
            for k in (
                "expected_purchases_365d_p05",
                "expected_purchases_365d_p95",
                "predicted_clv_365d_p05",
                "predicted_clv_365d_p95",
            )
        },
        "formula_revenue_aggregate_pct_error": next(
            r["revenue_aggregate_pct_error"] for r in latest if r["model"] == "formula"
        ),
        "selected_revenue_aggregate_pct_error": next(r["revenue_aggregate_pct_error"] for r in latest if r["selected"]),
        "spearman_frequency_value": rho,
        "spearman_warning": abs(rho) >= 0.3,
        "assumption_warnings": [] if abs(rho) < 0.3 else blocks["data-key-figures"]["assumption_warnings"],
        # why a model is not used this run: both fits converge on the small shop
        "model_notes": [r["note"] for r in query(con, "select note from marts.clv_model_fit where note is not null")],
        # the marts' one currency: the synthetic shop sells in EUR
        "currency": query(con, "select currency from raw.reporting_currency")[0]["currency"],
    }
    assert expected["currency"] == "EUR"
    assert expected["model_notes"] == []
    assert_same(blocks["data-key-figures"], expected)
    assert blocks["data-key-figures"]["as_of_date"] == "2025-12-31"


def test_cohort_retention_data(report, con):
    _, _, blocks = report
    expected = query(
        con,
        "select cohort_month, months_since_first_order, cohort_size, active_customers, retention_rate, "
        "is_complete_month from marts.cohort_retention order by 1, 2",
    )
    assert expected, "the small shop should have cohorts"
    assert_same(blocks["data-cohort-retention"], {"rows": expected})


def test_ltv_curves_data(report, con):
    _, _, blocks = report
    rows = query(
        con,
        "select cohort_month, months_since_first_order, cohort_size, cumulative_revenue_per_customer, "
        "cumulative_margin_per_customer from marts.cohort_retention order by 1, 2",
    )
    payback = query(con, "select acquisition_channel, new_customers, cac from marts.cac_payback")
    by_channel = defaultdict(list)
    for r in payback:
        if r["cac"] is not None and r["new_customers"] > 0:
            by_channel[r["acquisition_channel"]].append(r)
    cac = [
        {
            "acquisition_channel": ch,
            "new_customers": sum(r["new_customers"] for r in rs),
            "mean_cac": weighted(rs, "cac", "new_customers"),
        }
        for ch, rs in sorted(by_channel.items())
    ]
    assert cac, "the synthetic shop has paid channels"
    assert_same(blocks["data-ltv-curves"], {"rows": rows, "cac": cac})


def _month_is_over(cohort_month: str, months: int, as_of: date) -> bool:
    year, month = divmod(date.fromisoformat(cohort_month).month - 1 + months + 1, 12)
    first_of_next = date(date.fromisoformat(cohort_month).year + year, month + 1, 1)
    return first_of_next <= as_of + timedelta(days=1)


def test_payback_curves_and_table_data(report, con):
    _, _, blocks = report
    as_of = con.execute("select max(as_of_date) from marts.cac_payback").fetchall()[0][0]
    curve = query(
        con,
        "select acquisition_channel, cohort_month, months_since_acquisition, new_customers, cac, "
        "cumulative_margin_per_customer from marts.cac_payback_curve",
    )
    cohorts = defaultdict(dict)  # (channel, cohort) -> {month: cumulative margin per customer}; months that are over
    meta = {}
    for r in curve:
        if (
            r["cac"] is not None
            and r["cac"] > 0
            and r["new_customers"] > 0
            and _month_is_over(r["cohort_month"], r["months_since_acquisition"], as_of)
        ):
            cohorts[(r["acquisition_channel"], r["cohort_month"])][r["months_since_acquisition"]] = r[
                "cumulative_margin_per_customer"
            ]
            meta[(r["acquisition_channel"], r["cohort_month"])] = (r["new_customers"], r["cac"])
    expected = []
    for channel in sorted({c for c, _ in cohorts}):
        mine = {k: v for k, v in cohorts.items() if k[0] == channel}
        n_all = sum(meta[k][0] for k in mine if 0 in mine[k])
        cac = sum(meta[k][0] * meta[k][1] for k in mine if 0 in mine[k]) / n_all
        cumulative, month = 0.0, 0
        while True:
            reached = [k for k in mine if month in mine[k]]
            if len(reached) < 3:  # the line stops where fewer than 3 cohorts have completed the month
                break
            n = sum(meta[k][0] for k in reached)
            gain = sum(meta[k][0] * (mine[k][month] - mine[k].get(month - 1, 0.0)) for k in reached) / n
            cumulative += gain
            expected.append(
                {
                    "acquisition_channel": channel,
                    "months_since_acquisition": month,
                    "cohorts": len(reached),
                    "new_customers": n,
                    "margin_per_customer": gain,
                    "cumulative_margin_per_customer": cumulative,
                    "cac": cac,
                    "payback_ratio": cumulative / cac,
                }
            )
            month += 1
    assert expected and max(r["months_since_acquisition"] for r in expected) >= 12
    assert_same(blocks["data-payback-curves"], {"min_cohorts": 3, "rows": expected})
    # Chain-linked cumulative margin never falls (margins here are positive): a marketer reads it as money earned.
    for channel in {r["acquisition_channel"] for r in expected}:
        values = [r["cumulative_margin_per_customer"] for r in expected if r["acquisition_channel"] == channel]
        assert values == sorted(values), channel

    pooled = {}
    for r in expected:
        if r["payback_ratio"] >= 1:
            pooled.setdefault(r["acquisition_channel"], r["months_since_acquisition"])
    summary = query(con, "select * from marts.cac_payback where cac > 0 and new_customers > 0")
    by_channel = defaultdict(list)
    for r in summary:
        by_channel[r["acquisition_channel"]].append(r)

    def median(values):
        values = [v for v in values if v is not None]
        return float(statistics.median(values)) if values else None

    table = []
    for channel, rs in sorted(by_channel.items()):
        with_ltv = [r for r in rs if r["ltv_to_cac_12m"] is not None]
        table.append(
            {
                "acquisition_channel": channel,
                "cohorts": len(rs),
                "new_customers": sum(r["new_customers"] for r in rs),
                "spend": sum(r["spend"] for r in rs),
                "cac": weighted(rs, "cac", "new_customers"),
                "cohorts_paid_back": sum(r["payback_months"] is not None for r in rs),
                "median_payback_months": median([r["payback_months"] for r in rs]),
                "median_predicted_payback_months": median([r["predicted_payback_months"] for r in rs]),
                "ltv_to_cac_12m": weighted(with_ltv, "ltv_to_cac_12m", "new_customers") if with_ltv else None,
                "pooled_payback_month": pooled.get(channel),
                "breakeven_cac_36m": weighted(
                    [r for r in rs if r["breakeven_cac_36m"] is not None], "breakeven_cac_36m", "new_customers"
                ),
                "affordable_cac": weighted(
                    [r for r in rs if r["affordable_cac"] is not None], "affordable_cac", "new_customers"
                ),
                "target_ltv_to_cac": 3.0,
            }
        )
    assert_same(blocks["data-payback-curves-table"], {"rows": table})
    # The HTML table shows one row per channel with its CAC.
    section = re.search(r'<section id="payback-curves".*?</section>', report[1], re.S).group(0)
    assert section.count("<tr>") == len(table) + 1
    for row in table:
        assert f"<td>{row['acquisition_channel']}</td>" in section
        assert f"<td>{row['cac']:,.2f}</td>" in section
        assert f"<td>{row['affordable_cac']:,.2f}</td>" in section
    assert "<th>affordable CAC (LTV:CAC 3×)</th>" in section
    # Month counts read the same in every column: 1 (or 2.5, a median of two), never "1.0" beside "1".
    table_html = section[section.index("<table>") :]
    cells = re.findall(r"<td>([^<]*)</td>", table_html)
    assert not [c for c in cells if re.fullmatch(r"\d+\.0", c)], cells
    for row in table:
        for key in ("median_payback_months", "median_predicted_payback_months", "pooled_payback_month"):
            value = row[key]
            text = "–" if value is None else (f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}")
            assert f"<td>{text}</td>" in table_html, (row["acquisition_channel"], key, value)


def test_clv_distribution_data(report, con):
    _, _, blocks = report
    data = blocks["data-clv-distribution"]
    stats = query(
        con,
        "select count(*) as customers, sum(predicted_clv_365d) as total, avg(predicted_clv_365d) as mean, "
        "median(predicted_clv_365d) as median, quantile_cont(predicted_clv_365d, 0.9) as p90, "
        "quantile_cont(predicted_clv_365d, 0.99) as p99, min(predicted_clv_365d) as min, "
        "max(predicted_clv_365d) as max from marts.customer_clv where predicted_clv_365d is not null",
    )[0]
    assert_same({k: v for k, v in data.items() if k != "bins"}, stats)
    bins = data["bins"]
    assert bins[0]["lo"] == min(0.0, stats["min"]) and bins[-1]["hi"] is None
    assert bins[-1]["lo"] == pytest.approx(stats["p99"]) and bins[-2]["hi"] == bins[-1]["lo"]
    assert bins[-1]["customers"] == pytest.approx(0.01 * stats["customers"], abs=2)  # the top 1 %
    for i, b in enumerate(bins):
        # The first bin also holds anything below its edge, the last (overflow) bin everything from its edge up.
        lower = float("-inf") if i == 0 else b["lo"]
        upper = float("inf") if b["hi"] is None else b["hi"]
        count = con.execute(
            "select count(*) from marts.customer_clv where predicted_clv_365d >= ? and predicted_clv_365d < ?",
            [lower, upper],
        ).fetchall()[0][0]
        assert b["customers"] == count, f"bin {b}: {count} customers in the mart"
    assert sum(b["customers"] for b in bins) == stats["customers"]


def test_p_alive_matrix_data(report, con):
    _, _, blocks = report
    data = blocks["data-p-alive-matrix"]
    assert data["frequency_cap"] == 20 and data["recency_bin_weeks"] == 4
    cells = defaultdict(list)
    for frequency, recency, p_alive in con.execute(
        "select frequency, recency, p_alive from marts.customer_clv"
    ).fetchall():
        cells[(min(frequency, 20), int(math.floor(recency / 4) * 4))].append(p_alive)
    expected = [
        {"frequency": f, "recency_weeks": w, "customers": len(v), "mean_p_alive": sum(v) / len(v)}
        for (f, w), v in sorted(cells.items())
    ]
    assert_same(data["rows"], expected)


def test_backtest_data(report, con):
    _, page, blocks = report
    latest = con.execute("select max(as_of_date) from marts.clv_backtest").fetchall()[0][0]
    order = ["bg_nbd", "pareto_nbd", "mbg_nbd", "formula"]
    rows = query(
        con,
        f"select model, frequency_bucket, customers, mean_predicted, mean_actual from marts.clv_backtest "
        f"where as_of_date = '{latest}' and frequency_bucket <> 'all'",
    )
    rows.sort(key=lambda r: (order.index(r["model"]), int(r["frequency_bucket"].rstrip("+"))))
    models = query(
        con,
        f"select model, selected, customers, predicted_total, actual_total, aggregate_pct_error, "
        f"mae_per_customer, revenue_predicted_total, revenue_actual_total, revenue_aggregate_pct_error, "
        f"revenue_mae_per_customer from marts.clv_backtest "
        f"where as_of_date = '{latest}' and frequency_bucket = 'all'",
    )
    models.sort(key=lambda r: order.index(r["model"]))
    overall = query(
        con,
        f"select as_of_date, calibration_end, holdout_end, model, customers, predicted_total, actual_total, "
        f"aggregate_pct_error, mae_per_customer from marts.clv_backtest "
        f"where as_of_date = '{latest}' and frequency_bucket = 'all' and selected",
    )[0]
    assert rows and rows[-1]["frequency_bucket"].endswith("+") and [m["model"] for m in models] == order
    assert overall["model"] == min(models[:3], key=lambda m: m["mae_per_customer"])["model"]
    assert_same(blocks["data-backtest"], {"overall": overall, "models": models, "rows": rows})
    # the table under the chart: one row per model, the selected one marked
    section = re.search(r'<section id="backtest".*?</section>', page, re.S).group(0)
    assert section.count("<tr>") == len(models) + 1 and section.count("(selected)</td>") == 1
    for m in models:
        assert f"<td>{m['mae_per_customer']:.3f}</td>" in section


def test_cohort_survival_data(report, con):
    _, _, blocks = report
    rows = query(
        con,
        "select cohort_month, customers, mean_p_alive, active_share_last_90d, purchase_model "
        "from marts.cohort_survival order by cohort_month",
    )
    assert len(rows) == 24
    assert_same(blocks["data-cohort-survival"], {"rows": rows})


def test_segments_data(report, con):
    _, _, blocks = report
    rows = query(
        con,
        "select segment, customers, share_of_customers, historical_revenue, predicted_clv_365d, "
        "predicted_clv_365d_per_customer, share_of_predicted_clv, mean_p_alive from marts.segment_clv "
        "where segment_kind = 'rfm_segment'",
    )
    rows.sort(key=lambda r: (-r["predicted_clv_365d"], r["segment"]))
    assert rows
    assert_same(blocks["data-segments"], {"rows": rows})
    total = con.execute("select count(*) from marts.customer_segments").fetchall()[0][0]
    assert sum(r["customers"] for r in blocks["data-segments"]["rows"]) == total


def test_ltv_drivers_data(report, con):
    _, _, blocks = report
    rows = query(
        con,
        "select driver, driver_value, customers, repeat_rate, customers_90d_observed, value_90d_per_customer, "
        "customers_365d_observed, value_365d_per_customer from marts.ltv_drivers",
    )
    rows.sort(
        key=lambda r: (
            r["driver"],
            r["value_365d_per_customer"] is None,
            -(r["value_365d_per_customer"] or 0),
            r["driver_value"],
        )
    )
    data = blocks["data-ltv-drivers"]
    assert_same(data["rows"], rows)
    assert data["min_customers"] == 30
    # What the chart draws: per driver, values with 30+ customers, the smaller ones as one 'other' row (dropped
    # when still under 30), and a window's value only when 30+ customers were observed for it.
    shown = []
    for driver in sorted({r["driver"] for r in rows}):
        values = [r for r in rows if r["driver"] == driver]
        big = [dict(r, grouped_values=1) for r in values if r["customers"] >= 30]
        small = [r for r in values if r["customers"] < 30]
        if small and sum(r["customers"] for r in small) >= 30:

            def pooled(value, weight, small=small):
                with_value = [r for r in small if r[value] is not None]
                total = sum(r[weight] for r in with_value)
                return sum(r[value] * r[weight] for r in with_value) / total if total else None

            big.append(
                {
                    "driver": driver,
                    "driver_value": f"other ({len(small)} values)",
                    "customers": sum(r["customers"] for r in small),
                    "grouped_values": len(small),
                    "repeat_rate": pooled("repeat_rate", "customers"),
                    "customers_90d_observed": sum(r["customers_90d_observed"] for r in small),
                    "customers_365d_observed": sum(r["customers_365d_observed"] for r in small),
                    "value_90d_per_customer": pooled("value_90d_per_customer", "customers_90d_observed"),
                    "value_365d_per_customer": pooled("value_365d_per_customer", "customers_365d_observed"),
                }
            )
        for r in big:
            for window in (90, 365):
                if r[f"customers_{window}d_observed"] < 30:
                    r[f"value_{window}d_per_customer"] = None
        shown += big
    assert_same(data["shown"], shown)
    assert len({r["driver"] for r in rows}) >= 2
    # The small shop's one BF30 customer is never a bar of its own.
    assert [r for r in rows if r["customers"] < 30] and all(r["customers"] >= 30 for r in data["shown"])


def test_kpi_trends_data(report, con):
    _, _, blocks = report
    rows = query(
        con,
        "select month, customers, new_customers, returning_customers, orders, revenue, aov, purchase_frequency, "
        "repeat_customer_rate, retention_rate, churn_rate, month_over_month_retention_rate "
        "from marts.retention_kpis order by month",
    )
    assert len(rows) == 24  # 2024-01 .. 2025-12
    assert_same(blocks["data-kpi-trends"], {"rows": rows})


def test_model_drift_data(report, con):
    _, _, blocks = report
    rows = query(con, "select as_of_date, model, parameter, value, std_error from marts.clv_model_fit")
    selected = next(r["model"] for r in rows if r["parameter"] == "selected" and r["value"] == 1)
    parameters = {
        "bg_nbd": {"r", "alpha", "a", "b"},
        "mbg_nbd": {"r", "alpha", "a", "b"},
        "pareto_nbd": {"r", "alpha", "s", "beta"},
    }[selected]
    wanted = {selected: parameters | {"n_customers"}, "gamma_gamma": {"p", "q", "gamma", "n_customers"}}
    expected = sorted(
        (r for r in rows if r["parameter"] in wanted.get(r["model"], ())),
        key=lambda r: (r["model"], r["parameter"], r["as_of_date"]),
    )
    assert len(expected) == 9 and all(r["std_error"] > 0 for r in expected if r["parameter"] != "n_customers")
    assert_same(blocks["data-model-drift"], {"purchase_model": selected, "rows": expected})


def test_a_failed_assumption_check_is_said_at_the_top():
    from pipelines.report.charts import assumption_warnings
    from pipelines.report.html import render_page

    figures = {"spearman_frequency_value": -0.42, "spearman_warning": True, "model_notes": []}
    warnings = assumption_warnings(figures)
    assert len(warnings) == 1 and "rho = -0.42" in warnings[0]
    page = render_page([], [], {**figures, "assumption_warnings": warnings}, "subtitle")
    assert '<p class="notice">Assumption check: purchase frequency and order value are correlated' in page
    assert assumption_warnings({"spearman_frequency_value": 0.1, "spearman_warning": False}) == []


def test_key_figure_tiles_for_the_page_and_for_dagster(report):
    from pipelines.report import key_figure_tiles

    result, page, blocks = report
    tiles = re.findall(r'<div class="label">([^<]*)</div><div class="value">([^<]*)</div>', page)
    assert [(html.unescape(label), html.unescape(value)) for label, value in tiles] == key_figure_tiles(
        result.key_figures
    )
    figures = {**result.key_figures, "spearman_frequency_value": -0.42, "spearman_warning": True}
    page_tiles, metadata = dict(key_figure_tiles(figures)), dict(key_figure_tiles(figures, verbose=True))
    assert "predicted CLV, next 365 d" in page_tiles and "predicted CLV, next 365 d (total)" in metadata
    assert page_tiles["frequency–value correlation (Spearman)"] == "-0.42"  # the page says it in a notice
    assert metadata["frequency–value correlation (Spearman)"] == "-0.42 ⚠ Gamma-Gamma assumption in doubt"
    empty = dict(key_figure_tiles(dict.fromkeys(result.key_figures), verbose=True))
    assert set(empty.values()) == {"–"}


def test_two_repeat_rates_have_two_names(report):
    result, page, blocks = report
    tiles = dict(re.findall(r'<div class="label">([^<]*)</div><div class="value">([^<]*)</div>', page))
    assert "customers with 2+ orders (lifetime)" in tiles and "repeat customer rate" not in tiles
    kpi = re.search(r'<section id="kpi-trends".*?</section>', page, re.S).group(0)
    assert "customers with 2+ orders within the month" in kpi and "repeat customer rate" not in kpi
    assert "lifetime_repeat_customer_rate" in blocks["data-key-figures"]


def _pdf_text(pdf_path: Path) -> tuple[int, str]:
    """(pages, text) with pypdf: the project's own if installed, else in a venv of its own."""
    try:
        import pypdf
    except ImportError:
        python = side_venv("pypdf", ["pypdf==7.1.1"])
        script = (
            "import json, sys, pypdf\nr = pypdf.PdfReader(sys.argv[1])\n"
            "print(json.dumps([len(r.pages), '\\n'.join(p.extract_text() for p in r.pages)]))"
        )
        pages, text = run_json(python, script, str(pdf_path))
        return pages, text
    reader = pypdf.PdfReader(str(pdf_path))
    return len(reader.pages), "\n".join(p.extract_text() for p in reader.pages)


def test_the_pdf_summary_has_the_key_figures_and_every_chart(report):
    result, _, blocks = report
    if find_chromium() is None:
        assert result.pdf_path is None and "no Chromium" in result.pdf_problem
        assert not (result.path.parent / "report.pdf").exists()
        pytest.skip("no Chromium on this machine: the report says so and writes no PDF")
    assert result.pdf_path == result.path.parent / "report.pdf" and result.pdf_path.exists()
    assert result.pdf_path.read_bytes()[:5] == b"%PDF-"
    assert not list(result.path.parent.glob(".report.pdf*")), "the scratch file of the atomic write was left behind"
    pages, text = _pdf_text(result.pdf_path)
    assert len(EXPECTED_CHARTS) <= pages <= 3 * len(EXPECTED_CHARTS), pages  # about one page per chart
    flat = " ".join(text.split())
    k = blocks["data-key-figures"]
    for figure in (
        f"{k['customers']:,}",
        f"{k['orders']:,}",
        f"{k['revenue']:,.0f}",
        f"{k['gross_margin']:,.0f}",
        f"{k['predicted_clv_365d_total']:,.0f}",
        f"{k['lifetime_repeat_customer_rate']:.1%}",
    ):
        assert figure in flat, figure
    for title in EXPECTED_CHARTS.values():
        assert title in flat, title
    # Chart text is text in the PDF too (inline SVG), e.g. the payback table's channels and an axis label.
    assert "months since acquisition" in flat


def test_without_chromium_one_warning_and_the_html_still_written(small_shop, tmp_path, monkeypatch):
    monkeypatch.setenv("CLV_CHROMIUM", str(tmp_path / "no-such-chromium"))
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.pdf").write_bytes(b"%PDF- from an earlier run")
    warnings: list[str] = []
    result = build_report(small_shop.warehouse, tmp_path / "report", warn=warnings.append)
    assert result.path.exists() and result.pdf_path is None
    assert len(warnings) == 1 and "no PDF report" in warnings[0] and "\n" not in warnings[0]
    assert not (tmp_path / "report" / "report.pdf").exists(), "a PDF of another run beside this page"
