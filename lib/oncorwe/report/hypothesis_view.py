"""Tables for the track 1 notebook, from the ``hypothesis`` stage's outputs.

Everything here reads the aggregate files the stage wrote (``hypotheses.json``,
``summary.json``); the bias audit reads the analysis table and keeps only aggregates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from oncorwe.report import figures

ENDPOINT_LABEL = {
    "response": "Response: risk difference",
    "pfs": "PFS: RMST difference (months)",
    "toxicity": "Grade >= 3 toxicity: risk difference",
}


def load_results(hypothesis_dir: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The ranked hypotheses and the stage summary."""
    d = Path(hypothesis_dir)
    hyps = json.loads((d / "hypotheses.json").read_text())["hypotheses"]
    summary = json.loads((d / "summary.json").read_text())
    return hyps, summary


def headline(hyps: list[dict], summary: dict) -> dict[str, Any]:
    """The numbers a reader sees first (and the notebook test checks)."""
    confirmed = [h for h in hyps if h["confirmed"]]
    return {
        "candidates": summary["n_candidates"],
        "confirmed": len(confirmed),
        "drugs_with_confirmed": sorted({h["drug"] for h in confirmed}),
        "response_auc": summary["models"].get("response", {}).get("overall", {}).get("auc"),
        "pfs_c_index": summary["models"].get("pfs", {}).get("overall", {}).get("c_index"),
        "horizon_months": summary["horizon_months"],
    }


def _fmt(res: dict | None) -> str:
    if not res or "effect" not in res:
        return ""
    q = res.get("q_value", res.get("p_value"))
    tag = "q" if "q_value" in res else "p"
    return f"{res['effect']:+.3f} [{res['ci_low']:+.3f}, {res['ci_high']:+.3f}] {tag}={q:.3g}"


def hypotheses_table(hyps: list[dict], top: int = 30) -> pd.DataFrame:
    """One row per hypothesis: rank, drug, subgroup, status and the three effects. A
    blinded hypothesis (failed diagnostics) shows its status, never its estimates."""
    rows = []
    for h in hyps[:top]:
        c = {} if h.get("blinded") else h.get("confirmation", {})
        rows.append(
            {
                "rank": h["rank"],
                "drug": h["drug"],
                "subgroup": h["subgroup"],
                "confirmed": "blinded" if h.get("blinded") else "yes" if h["confirmed"] else "no",
                "primary": h.get("primary_endpoint") or "",
                "response RD": _fmt(c.get("response")),
                "PFS RMST diff": _fmt(c.get("pfs")),
                "toxicity RD": _fmt(c.get("toxicity")),
                "drivers of benefit": ", ".join(
                    f["feature"] for f in h.get("top_features", [])[:3]
                ),
                "poor overlap": "yes" if h.get("overlap", {}).get("poor_overlap") else "",
            }
        )
    return pd.DataFrame(rows)


def overlap_table(summary: dict) -> pd.DataFrame:
    """Propensity overlap of each comparison: the share of its rows whose estimated
    probability of the drug (against the comparator) is outside ``[eps, 1 - eps]``, per
    data part, and the covariates the cancer type's propensity model leans on most
    (share of its gain). Flagged comparisons first. A share made from fewer rows than
    the suppression threshold shows as ``<NA>``."""
    ov = summary.get("overlap", {})
    rows = []
    for c in ov.get("comparisons", []):
        disc, conf = c.get("discovery", {}), c.get("confirmation", {})
        rows.append(
            {
                "cancer": c["group"],
                "drug": c["drug"],
                "lines": conf.get("rows"),
                "outside, discovery": disc.get("outside_share"),
                "outside, confirmation": conf.get("outside_share"),
                "poor overlap": "yes"
                if disc.get("poor_overlap") or conf.get("poor_overlap")
                else "",
                "propensity leans on": ", ".join(
                    f"{d['feature']} ({d['gain_share']:.0%})"
                    for d in c.get("propensity_drivers", [])
                ),
            }
        )
    cols = [
        "cancer",
        "drug",
        "lines",
        "outside, discovery",
        "outside, confirmation",
        "poor overlap",
        "propensity leans on",
    ]
    out = pd.DataFrame(rows, columns=cols)
    out["lines"] = out["lines"].astype("Int64")
    for c in ("outside, discovery", "outside, confirmation"):
        out[c] = out[c].astype("Float64")
    return out.sort_values(
        ["poor overlap", "outside, confirmation"], ascending=False, na_position="last"
    ).reset_index(drop=True)


def not_testable_table(hypothesis_dir: str | Path) -> pd.DataFrame:
    """Signals the discovery screen found but the confirmation part cannot test: too
    few patients in an arm of the subgroup. Leads for more data, not findings.
    Suppressed counts show as ``<NA>``."""
    d = Path(hypothesis_dir)
    items = json.loads((d / "hypotheses.json").read_text()).get("not_testable", [])
    rows = []
    for h in items:
        disc = h.get("discovery", {})
        arms = h.get("confirmation_arms", {})
        # the screen's own estimate and nominal p, no interval: it was selected for being
        # large, so an interval around it would over-state (the winner's curse)
        est = (
            f"{disc['effect']:+.3f} (screening p={disc['p_value']:.3g})" if "effect" in disc else ""
        )
        rows.append(
            {
                "drug": h["drug"],
                "subgroup": h["subgroup"],
                "primary": h.get("primary_endpoint") or "",
                "discovery estimate": est,
                "confirmation rows on drug": arms.get("treated"),
                "confirmation rows on comparator": arms.get("control"),
                "rows needed per arm": h["min_arm_rows"],
            }
        )
    cols = [
        "drug",
        "subgroup",
        "primary",
        "discovery estimate",
        "confirmation rows on drug",
        "confirmation rows on comparator",
        "rows needed per arm",
    ]
    out = pd.DataFrame(rows, columns=cols)
    for c in ("confirmation rows on drug", "confirmation rows on comparator"):
        out[c] = out[c].astype("Int64")
    return out


def forest_rows(hyps: list[dict], endpoint: str, *, confirmed_only: bool = True) -> pd.DataFrame:
    """Rows for :func:`oncorwe.report.figures.forest_plot` on one endpoint."""
    rows = []
    for h in hyps:
        if (confirmed_only and not h["confirmed"]) or h.get("blinded"):
            continue
        res = h.get("confirmation", {}).get(endpoint)
        if not res or "ci_low" not in res:
            continue
        rows.append(
            {
                "label": f"#{h['rank']} {h['drug']}: {h['subgroup']}",
                "estimate": res["effect"],
                "ci_low": res["ci_low"],
                "ci_high": res["ci_high"],
                "group": h["drug"],
            }
        )
    return pd.DataFrame(rows, columns=["label", "estimate", "ci_low", "ci_high", "group"])


def shap_frame(summary: dict, model: str, top: int = 15) -> pd.DataFrame:
    """Mean |SHAP| per feature of one response model (largest first)."""
    rows = summary.get("shap", {}).get(model, [])[:top]
    return pd.DataFrame(rows, columns=["feature", "mean_abs_shap"])


def calibration_by(summary: dict, model: str = "response", by: str = "population") -> pd.DataFrame:
    """Per-group metrics of a binary model (suppressed groups keep their row, blank)."""
    rows = summary.get("models", {}).get(model, {}).get(f"by_{by}", [])
    df = pd.DataFrame(rows)
    keep = [
        c
        for c in (
            "group",
            "n",
            "auc",
            "observed_expected",
            "calibration_slope",
            "calibration_intercept",
            "ici",
            "brier",
        )
        if c in df.columns
    ]
    return df[keep] if len(df) else df


def effect_distribution(summary: dict) -> pd.DataFrame:
    """Histogram counts of the predicted effects, one row per (drug, bin)."""
    rows = []
    for d in summary.get("effect_distribution", []):
        edges = d["bin_edges"]
        for i, c in enumerate(d["counts"]):
            rows.append(
                {
                    "comparison": f"{d['drug']} ({d['group']}, {d['outcome']})",
                    "effect": round((edges[i] + edges[i + 1]) / 2, 3),
                    "lines": c,
                }
            )
    return pd.DataFrame(rows, columns=["comparison", "effect", "lines"])


def population_effects(hyps: list[dict], top: int = 8) -> pd.DataFrame:
    """Forest rows of each confirmed hypothesis' effect per population, with the unit of
    its primary endpoint (``endpoint``: months and risk differences never share an axis)."""
    rows = []
    for h in [h for h in hyps if h["confirmed"]][:top]:
        for p in h.get("effect_by_population", []):
            if p.get("effect") is None:
                continue
            rows.append(
                {
                    "label": f"#{h['rank']} {h['drug']} | {p['population']}",
                    "estimate": p["effect"],
                    "ci_low": p["ci_low"],
                    "ci_high": p["ci_high"],
                    "group": h["drug"],
                    "endpoint": h.get("primary_endpoint") or "response",
                }
            )
    return pd.DataFrame(
        rows, columns=["label", "estimate", "ci_low", "ci_high", "group", "endpoint"]
    )


# --------------------------------------------------------------------------- figures
# The notebook's figures, built here so that every one of them is checked (tests/report).

FOREST_TITLE = {
    "pfs": "Progression-free survival gained (months) against the comparator",
    "response": "Response rate difference against the comparator",
    "toxicity": "Severe toxicity difference against the comparator (positive = more toxic)",
}


def forest_figure(hyps: list[dict], endpoint: str):
    """Forest plot of the confirmed hypotheses on one endpoint (a note when none)."""
    return figure_or_note(
        forest_rows(hyps, endpoint),
        lambda rows: figures.forest_plot(
            rows,
            null_value=0,
            x_title=ENDPOINT_LABEL[endpoint],
            title=FOREST_TITLE[endpoint],
        ),
        "No confirmed hypothesis to show.",
    )


def shap_figures(summary: dict) -> list:
    """One mean-|SHAP| bar chart per outcome model."""
    return [
        figures.bar_counts(
            shap_frame(summary, model),
            x="feature",
            y="mean_abs_shap",
            horizontal=True,
            title=f"{model} model: mean |SHAP|",
            x_title="Characteristic",
            y_title="Mean |SHAP| (log-odds or log-hazard)",
        )
        for model in summary.get("shap", {})
    ]


def observed_expected_figure(summary: dict):
    """Observed / expected responses of the response model per population."""
    return figure_or_note(
        calibration_by(summary, "response", "population"),
        lambda rows: figures.bar_counts(
            rows,
            x="group",
            y="observed_expected",
            title="Response model: observed / expected by population",
            x_title="Population",
            y_title="Observed / expected",
        ),
        "No population metrics.",
    )


def auc_by_hospital_figure(summary: dict):
    """AUC of the response model per hospital."""
    return figure_or_note(
        calibration_by(summary, "response", "hospital"),
        lambda rows: figures.bar_counts(
            rows,
            x="group",
            y="auc",
            horizontal=True,
            title="Response model: AUC by hospital",
            x_title="Hospital",
            y_title="AUC",
        ),
        "No hospital metrics.",
    )


def effect_distribution_figure(summary: dict, min_cell: int):
    """Histogram of the predicted effects, one panel per comparison."""
    return figure_or_note(
        effect_distribution(summary),
        lambda rows: figures.bar_counts(
            rows,
            x="effect",
            y="lines",
            facet="comparison",
            min_cell=min_cell,
            title="Predicted effect per line",
            x_title="Predicted effect",
            y_title="Lines",
        ),
        "No effect model was fitted (no hypothesis reached confirmation).",
    )


def population_figures(hyps: list[dict], top: int = 8) -> list:
    """Effect by population: one forest plot per endpoint unit (a note when none)."""
    rows = population_effects(hyps, top)
    if rows.empty:
        return [figure_or_note(rows, None, "No confirmed hypothesis with population estimates.")]
    return [
        figures.forest_plot(
            part.drop(columns="endpoint"),
            null_value=0,
            x_title=ENDPOINT_LABEL.get(endpoint, endpoint),
            title=f"Effect by population ({ENDPOINT_LABEL.get(endpoint, endpoint)})",
        )
        for endpoint, part in rows.groupby("endpoint", sort=False)
    ]


def figure_or_note(rows: pd.DataFrame, make, note: str = "Nothing to show: no rows."):
    """``make(rows)`` when there are rows, else a short note (an empty run still renders)."""
    if rows is None or len(rows) == 0:
        from IPython.display import Markdown

        return Markdown(f"*{note}*")
    return make(rows)
