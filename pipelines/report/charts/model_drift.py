"""Model parameters over time: the purchase model in use and Gamma-Gamma at each as-of date, with ± 2 standard
errors."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from pipelines.report.charts.common import MODEL_LABELS, PALETTE, ChartSpec, date_axis, figure, no_data, num
from pipelines.report.charts.sql import has_column, records

PURCHASE_PARAMETERS = {
    "bg_nbd": ("r", "alpha", "a", "b"),
    "pareto_nbd": ("r", "alpha", "s", "beta"),
    "mbg_nbd": ("r", "alpha", "a", "b"),
}
GAMMA_GAMMA_PARAMETERS = ("p", "q", "gamma")


def load_model_drift(con) -> dict:
    """The parameters over time of the purchase model used at the latest as-of date (BG/NBD in warehouses from
    before the models were compared) and of Gamma-Gamma, with their standard errors where recorded."""
    model = records(
        con,
        "select model from marts.clv_model_fit where parameter = 'selected' and value = 1 "
        "and as_of_date = (select max(as_of_date) from marts.clv_model_fit)",
    )
    model = model[0]["model"] if model else "bg_nbd"
    names = ", ".join(f"'{p}'" for p in (*PURCHASE_PARAMETERS[model], *GAMMA_GAMMA_PARAMETERS, "n_customers"))
    error = "std_error" if has_column(con, "clv_model_fit", "std_error") else "null as std_error"
    return {
        "purchase_model": model,
        "rows": records(
            con,
            f"select as_of_date, model, parameter, value, {error} from marts.clv_model_fit "
            f"where model in ('{model}', 'gamma_gamma') and parameter in ({names}) "
            "order by model, parameter, as_of_date",
        ),
    }


def draw_model_drift(data: dict) -> Figure:
    rows = data["rows"]
    purchase = data.get("purchase_model", "bg_nbd")
    fig = figure(11, 4.6)
    axes = fig.subplots(2, 4).ravel()
    panels = (
        [(purchase, p) for p in PURCHASE_PARAMETERS[purchase]]
        + [("gamma_gamma", p) for p in GAMMA_GAMMA_PARAMETERS]
        + [("n_customers", "customers fitted")]
    )
    for ax, (model, parameter) in zip(axes, panels):
        if model == "n_customers":
            for k, name in enumerate((purchase, "gamma_gamma")):
                points = [r for r in rows if r["model"] == name and r["parameter"] == "n_customers"]
                dates = [np.datetime64(p["as_of_date"]) for p in points]
                ax.plot(
                    dates,
                    [num(p["value"]) for p in points],
                    marker="o",
                    color=PALETTE[k],
                    label=MODEL_LABELS.get(name, name),
                )
                if dates:
                    date_axis(ax, dates)
            ax.set_title(parameter)
            ax.legend(loc="best")
        else:
            points = [r for r in rows if r["model"] == model and r["parameter"] == parameter]
            colour = PALETTE[0] if model != "gamma_gamma" else PALETTE[1]
            dates = [np.datetime64(p["as_of_date"]) for p in points]
            ax.plot(dates, [num(p["value"]) for p in points], marker="o", color=colour)
            with_error = [(d, p) for d, p in zip(dates, points) if p.get("std_error") is not None]
            if with_error:  # ± 2 standard errors: about 95 % of the estimate's sampling spread
                ax.errorbar(
                    [d for d, _ in with_error],
                    [num(p["value"]) for _, p in with_error],
                    yerr=[2 * num(p["std_error"]) for _, p in with_error],
                    fmt="none",
                    ecolor=colour,
                    elinewidth=1,
                    capsize=3,
                    alpha=0.6,
                )
            if dates:
                date_axis(ax, dates)
            label = MODEL_LABELS.get(model, model)
            ax.set_title(f"{label} {parameter}")
            if len(points) == 1:
                ax.annotate(
                    f"{points[0]['value']:.4g}",
                    (np.datetime64(points[0]["as_of_date"]), points[0]["value"]),
                    textcoords="offset points",
                    xytext=(6, 4),
                    fontsize=8,
                )
            if not points:
                no_data(ax)
        ax.tick_params(axis="x", labelsize=7)
    return fig


SPEC = ChartSpec(
    "model-drift",
    "Model parameters over time",
    "The fitted parameters of the purchase model in use and of Gamma-Gamma at each as-of date the pipeline has "
    "run for (kept across runs), with ± 2 standard errors. Stable values mean the model sees the same customer "
    "behaviour; a jump larger than the error bars after new data is worth a look before trusting the CLV "
    "figures. Purchase model: r, alpha shape the purchase rate; a, b (BG/NBD, MBG/NBD) the dropout "
    "probability, s, beta (Pareto/NBD) the lifetime; Gamma-Gamma: p, q, gamma the spend per order. With one "
    "as-of date each panel shows a single point.",
    load_model_drift,
    draw_model_drift,
)
