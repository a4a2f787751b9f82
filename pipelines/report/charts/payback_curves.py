"""CAC payback by acquisition channel: the chain-linked payback curves (margin per customer ÷ CAC by months since
acquisition) and, under the chart, the per-channel payback table (its data also `ReportResult.payback`)."""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from pipelines.report.charts.common import (
    ChartSpec,
    Table,
    channel_colour,
    distinct,
    figure,
    format_months,
    format_number,
    money_axis,
    no_data,
    num,
)
from pipelines.report.charts.sql import has_column, records

MIN_PAYBACK_COHORTS = 3  # a month is drawn while at least this many cohorts have completed it
PAYBACK_CURVE_SQL = f"""
with as_of as (select max(as_of_date) as as_of_date from marts.cac_payback),
paid as (   -- cohorts with a CAC; only calendar months that are over at the as-of date
    select c.acquisition_channel, c.cohort_month, c.months_since_acquisition, c.new_customers, c.cac,
           c.cumulative_margin_per_customer - coalesce(lag(c.cumulative_margin_per_customer) over (
               partition by c.acquisition_channel, c.cohort_month order by c.months_since_acquisition), 0)
               as margin_per_customer
    from marts.cac_payback_curve c, as_of
    where c.cac > 0 and c.new_customers > 0
      and last_day(c.cohort_month + to_months(c.months_since_acquisition)) <= as_of.as_of_date
),
channel_cac as (   -- the channel's CAC over every cohort in the curve (those that completed month 0)
    select acquisition_channel, sum(cac * new_customers) / sum(new_customers) as cac
    from paid where months_since_acquisition = 0 group by acquisition_channel
),
monthly as (   -- each month's margin per customer over the cohorts that completed that month
    select acquisition_channel, months_since_acquisition, count(*) as cohorts, sum(new_customers) as new_customers,
           sum(margin_per_customer * new_customers) / sum(new_customers) as margin_per_customer
    from paid group by acquisition_channel, months_since_acquisition
    having count(*) >= {MIN_PAYBACK_COHORTS}
),
chained as (
    select m.*, sum(m.margin_per_customer) over (partition by m.acquisition_channel
               order by m.months_since_acquisition) as cumulative_margin_per_customer,
           -- months in an unbroken run from 0: the line stops at the first month with too few cohorts
           m.months_since_acquisition = row_number() over (partition by m.acquisition_channel
               order by m.months_since_acquisition) - 1 as unbroken
    from monthly m
)
select c.acquisition_channel, c.months_since_acquisition, c.cohorts, c.new_customers, c.margin_per_customer,
       c.cumulative_margin_per_customer, k.cac, c.cumulative_margin_per_customer / k.cac as payback_ratio
from chained c join channel_cac k using (acquisition_channel)
where c.unbroken
order by c.acquisition_channel, c.months_since_acquisition
"""


def load_payback_curves(con) -> dict:
    """Per channel × month since acquisition, chain-linked: month m adds the margin per customer earned in month m
    by the cohorts that have completed month m (weighted by their new customers), so later months are not dragged
    down when only the older cohorts are left in the average; CAC is the channel's over all its cohorts."""
    return {"min_cohorts": MIN_PAYBACK_COHORTS, "rows": records(con, PAYBACK_CURVE_SQL)}


def load_payback_table(con) -> dict:
    rows = records(
        con,
        "select acquisition_channel, count(*) as cohorts, sum(new_customers) as new_customers, "
        "sum(spend) as spend, sum(cac * new_customers) / sum(new_customers) as cac, "
        "count(payback_months) as cohorts_paid_back, "
        "median(payback_months) as median_payback_months, "
        "median(predicted_payback_months) as median_predicted_payback_months, "
        "sum(ltv_to_cac_12m * new_customers) / sum(new_customers) "
        "filter (where ltv_to_cac_12m is not null) as ltv_to_cac_12m"
        + (
            ", sum(breakeven_cac_36m * new_customers) / sum(new_customers) "
            "filter (where breakeven_cac_36m is not null) as breakeven_cac_36m, "
            "sum(affordable_cac * new_customers) / sum(new_customers) "
            "filter (where affordable_cac is not null) as affordable_cac, "
            "any_value(target_ltv_to_cac) as target_ltv_to_cac"
            if has_column(con, "cac_payback", "affordable_cac")
            else ", null as breakeven_cac_36m, null as affordable_cac, null as target_ltv_to_cac"
        )
        + " from marts.cac_payback where cac > 0 and new_customers > 0 "
        "group by acquisition_channel order by acquisition_channel",
    )
    return {"rows": rows}


def pooled_payback_months(curves: dict) -> dict[str, int | None]:
    """Per channel: the first month where its curve (`load_payback_curves`) reaches 1×, None when it never does."""
    out: dict[str, int | None] = {}
    for r in curves["rows"]:
        channel = r["acquisition_channel"]
        out.setdefault(channel, None)
        if out[channel] is None and r["payback_ratio"] is not None and r["payback_ratio"] >= 1:
            out[channel] = r["months_since_acquisition"]
    return out


def draw_payback_curves(data: dict) -> Figure:
    rows = data["rows"]
    fig = figure(11, 4.4)
    axes = fig.subplots(1, 2)
    channels = distinct([r["acquisition_channel"] for r in rows])
    if not rows:
        for ax in axes:
            no_data(ax, f"no channel with known marketing spend and {data['min_cohorts']}+ cohorts")
        return fig
    for k, channel in enumerate(channels):
        points = [r for r in rows if r["acquisition_channel"] == channel]
        x = [p["months_since_acquisition"] for p in points]
        colour = channel_colour(channel, k)
        axes[0].plot(x, [num(p["payback_ratio"]) for p in points], color=colour, linewidth=1.6, label=channel)
        axes[1].plot(
            x, [num(p["cumulative_margin_per_customer"]) for p in points], color=colour, linewidth=1.6, label=channel
        )
        axes[1].plot(x, [num(p["cac"]) for p in points], color=colour, linewidth=1, linestyle=":")
    axes[0].axhline(1.0, color="#444444", linewidth=1.4, linestyle="--")
    axes[0].text(
        1.0,
        1.0,
        "paid back (margin = CAC) ",
        color="#444444",
        fontsize=8,
        va="bottom",
        ha="right",
        transform=axes[0].get_yaxis_transform(),
    )
    ratios = [r["payback_ratio"] for r in rows if r["payback_ratio"] is not None and r["payback_ratio"] > 0]
    if ratios and max(ratios) / min(ratios) > 20:
        axes[0].set_yscale("log")  # a cheap channel at 40× would flatten the others against the 1× line
        axes[0].yaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: f"{v:g}×" if str(f"{v:g}")[0] in "25" else ""))
        axes[0].set_title("cumulative margin per customer ÷ CAC (log scale)")
    else:
        axes[0].set_title("cumulative margin per customer ÷ CAC")
    axes[0].set_xlabel(f"months since acquisition (while {data['min_cohorts']}+ cohorts have completed the month)")
    axes[0].yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}×"))
    axes[0].legend(loc="upper left")
    axes[1].set_title("cumulative margin per customer (solid) vs CAC (dotted)")
    axes[1].set_xlabel("months since acquisition")
    money_axis(axes[1])
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))
    return fig


def payback_table(data: dict) -> Table:
    """Per channel: the payback figures of `cac_payback` (`data` from load_payback_table, with the pooled month
    added)."""
    rows = [
        [
            r["acquisition_channel"],
            f"{r['cohorts']:,}",
            f"{r['new_customers']:,}",
            format_number(r["spend"], ",.0f"),
            format_number(r["cac"], ",.2f"),
            f"{r['cohorts_paid_back']:,} / {r['cohorts']:,}",
            format_months(r["median_payback_months"]),
            format_months(r["median_predicted_payback_months"]),
            format_months(r["pooled_payback_month"]),
            format_number(r["ltv_to_cac_12m"], ".2f"),
            format_number(r["breakeven_cac_36m"], ",.2f"),
            format_number(r["affordable_cac"], ",.2f"),
        ]
        for r in data["rows"]
    ]
    target = next((r["target_ltv_to_cac"] for r in data["rows"] if r["target_ltv_to_cac"] is not None), None)
    return Table(
        [
            "channel",
            "cohorts",
            "new customers",
            "spend",
            "CAC",
            "cohorts paid back",
            "median payback month",
            "median predicted payback month",
            "payback month of the curve",
            "LTV:CAC 12 m",
            "break-even CAC 36 m",
            "affordable CAC" + (f" (LTV:CAC {target:g}×)" if target else ""),
        ],
        rows,
    )


SPEC = ChartSpec(
    "payback-curves",
    "CAC payback by acquisition channel",
    "Left: cumulative gross margin per acquired customer divided by CAC, by months since acquisition; "
    "the channel has paid back where its line crosses 1× (dashed). Right: the same margin and CAC in "
    "money. Each month adds the margin per customer that the cohorts which have completed that month "
    "earned in it (weighted by their new customers), so the curve uses every cohort for the early months "
    "and is not pulled down later when only the older cohorts are left; CAC is the channel's over all its "
    f"cohorts. A line stops where fewer than {MIN_PAYBACK_COHORTS} cohorts have completed the month (the "
    "month in progress never counts). Channels without marketing spend (organic, referral) have no CAC and "
    "are left out. The table gives per channel the observed payback month (median over the cohorts that "
    "paid back), the model's predicted payback month, the month where the curve crosses 1×, the "
    "12-month LTV:CAC, the break-even CAC (the discounted margin an acquired customer is expected to bring in "
    "36 months: paying more loses money) and the affordable CAC (break-even ÷ the target LTV:CAC, "
    "CLV_TARGET_LTV_TO_CAC): a channel whose CAC is above it is buying customers too dear.",
    load_payback_curves,
    draw_payback_curves,
)
