"""Tables for the track 1 notebook, from the ``hypothesis`` stage's outputs.

Everything here reads the aggregate files the stage wrote (``hypotheses.json``,
``summary.json``); the bias audit reads the analysis table and keeps only aggregates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from oncorwe.core.paths import resolve
from oncorwe.report import figures
from oncorwe.report.labels import label, subgroup_label

ENDPOINT_LABEL = {
    "response": "Response: risk difference",
    "pfs": "PFS: RMST difference (months)",
    "toxicity": "Grade >= 3 toxicity: risk difference",
}


def load_results(hypothesis_dir: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The ranked hypotheses and the stage summary.

    ``hypothesis_dir`` is resolved against the project root when relative.
    """
    d = resolve(hypothesis_dir)
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


def p_text(value: float | None, tag: str = "q") -> str:
    """A q- or p-value as a reader compares it: ``q<0.001`` for anything below (a printed
    ``1.76e-169`` or ``0`` claims a precision no model has), else two significant digits.

    >>> p_text(1.76e-169), p_text(0.0), p_text(0.0123), p_text(0.01, "p")
    ('q<0.001', 'q<0.001', 'q=0.012', 'p=0.01')
    """
    if value is None:
        return ""
    number = p_number(value)
    return f"{tag}{number}" if number.startswith("<") else f"{tag}={number}"


def p_number(value: float | None) -> str:
    """A q- or p-value alone: ``<0.001``, or two significant digits (``0.012``)."""
    if value is None:
        return ""
    return "<0.001" if value < 0.001 else f"{value:.2g}"


def _fmt(res: dict | None) -> str:
    if not res or "effect" not in res:
        return ""
    tag = "q" if "q_value" in res else "p"
    q = res.get("q_value", res.get("p_value"))
    return f"{res['effect']:+.3f} [{res['ci_low']:+.3f}, {res['ci_high']:+.3f}] {p_text(q, tag)}"


def effect_text(res: dict | None, endpoint: str) -> str:
    """An effect and its 95 % CI in the endpoint's unit: months of PFS, percentage
    points of response or toxicity.

    >>> effect_text({"effect": 2.4, "ci_low": 1.8, "ci_high": 3.0}, "pfs")
    '+2.4 months [+1.8, +3.0]'
    >>> effect_text({"effect": 0.21, "ci_low": 0.17, "ci_high": 0.25}, "response")
    '+21.0 points [+17.0, +25.0]'
    """
    if not res or res.get("effect") is None:
        return ""
    k, unit = (1.0, "months") if endpoint == "pfs" else (100.0, "points")
    e, lo, hi = (k * res[c] for c in ("effect", "ci_low", "ci_high"))
    return f"{e:+.1f} {unit} [{lo:+.1f}, {hi:+.1f}]"


def primary(h: dict) -> str:
    return h.get("primary_endpoint") or "response"


def is_harm(h: dict) -> bool:
    """The confirmed effect on the primary endpoint goes the harmful way (less response
    or PFS, more severe toxicity)."""
    res = h.get("confirmation", {}).get(primary(h)) or {}
    effect = res.get("effect")
    if effect is None:
        return False
    return effect > 0 if primary(h) == "toxicity" else effect < 0


def _values(spec: Any) -> tuple[str, Any]:
    """A condition's kind and the set or interval of values it admits."""
    if isinstance(spec, dict):
        lo = spec.get("min", float("-inf"))
        hi = spec.get("max", spec.get("below", float("inf")))
        return "range", (float(lo), float(hi), "below" in spec)
    return "set", {str(v) for v in (spec if isinstance(spec, list) else [spec])}


def _disjoint(a: dict, b: dict) -> bool:
    """Two subgroups cannot share a patient: a field both restrict, to values or
    intervals that do not meet (EGFR positive against EGFR negative)."""
    for field in set(a) & set(b):
        (ka, va), (kb, vb) = _values(a[field]), _values(b[field])
        if ka == kb == "set" and not va & vb:
            return True
        if ka == kb == "range":
            (lo1, hi1, open1), (lo2, hi2, open2) = va, vb
            if hi1 < lo2 or hi2 < lo1 or (open1 and hi1 == lo2) or (open2 and hi2 == lo1):
                return True
    return False


def findings(hyps: list[dict], *, harms: bool = False) -> list[dict[str, Any]]:
    """Confirmed hypotheses grouped into findings: the nested or overlapping subgroups of
    one drug and cancer, with effects in one direction, are one finding whose headline
    is its best-ranked subgroup and whose other subgroups are its variants. ``harms``
    selects the findings whose effect is harmful (never listed among benefits).

    Returns
    -------
    list of dict
        ``{"headline": hypothesis, "variants": [hypotheses]}`` in rank order.
    """
    chosen = [
        h
        for h in sorted(hyps, key=lambda h: h["rank"])
        if h["confirmed"] and not h.get("blinded") and is_harm(h) == harms
    ]
    groups: list[list[dict]] = []
    for h in chosen:
        cond = h.get("conditions") or {}
        joined = [
            g
            for g in groups
            if g[0]["drug"] == h["drug"]
            and g[0].get("group") == h.get("group")
            and any(not _disjoint(cond, o.get("conditions") or {}) for o in g)
        ]
        if not joined:
            groups.append([h])
            continue
        first = joined[0]
        first.append(h)
        for g in joined[1:]:  # h bridges two findings: they become one
            first.extend(g)
            groups.remove(g)
        first.sort(key=lambda x: x["rank"])
    groups.sort(key=lambda g: g[0]["rank"])
    return [{"headline": g[0], "variants": g[1:]} for g in groups]


def _subgroup(h: dict) -> str:
    return subgroup_label(h.get("conditions"), h.get("subgroup", ""))


def _drivers(h: dict, k: int = 3) -> str:
    return ", ".join(label(f["feature"]) for f in h.get("top_features", [])[:k])


FINDING_COLUMNS = [
    "rank",
    "drug",
    "subgroup",
    "endpoint",
    "effect [95% CI]",
    "q",
    "severe toxicity [95% CI]",
    "drivers of benefit",
    "poor overlap",
    "variants",
]


def findings_table(hyps: list[dict], *, harms: bool = False) -> pd.DataFrame:
    """One row per finding (:func:`findings`): the headline subgroup's primary effect in
    its unit, its q-value, its severe toxicity, what drives the benefit, and the
    variant subgroups with their ranks."""
    rows = []
    for f in findings(hyps, harms=harms):
        h = f["headline"]
        conf = h.get("confirmation", {})
        res = conf.get(primary(h)) or {}
        rows.append(
            {
                "rank": h["rank"],
                "drug": label(h["drug"]),
                "subgroup": _subgroup(h),
                "endpoint": label(primary(h)),
                "effect [95% CI]": effect_text(res, primary(h)),
                "q": p_number(res.get("q_value", res.get("p_value"))),
                "severe toxicity [95% CI]": effect_text(conf.get("toxicity"), "toxicity"),
                "drivers of benefit": _drivers(h),
                "poor overlap": "yes" if h.get("overlap", {}).get("poor_overlap") else "",
                "variants": "; ".join(f"#{v['rank']} {_subgroup(v)}" for v in f["variants"]),
            }
        )
    return pd.DataFrame(rows, columns=FINDING_COLUMNS)


def hypotheses_table(hyps: list[dict], top: int = 30) -> pd.DataFrame:
    """One row per hypothesis: rank, drug, subgroup, status and the three effects. A
    blinded hypothesis (failed diagnostics) shows its status, never its estimates."""
    rows = []
    for h in hyps[:top]:
        c = {} if h.get("blinded") else h.get("confirmation", {})
        rows.append(
            {
                "rank": h["rank"],
                "drug": label(h["drug"]),
                "subgroup": _subgroup(h),
                "confirmed": "blinded" if h.get("blinded") else "yes" if h["confirmed"] else "no",
                "primary": label(h.get("primary_endpoint") or ""),
                "response RD": _fmt(c.get("response")),
                "PFS RMST diff": _fmt(c.get("pfs")),
                "toxicity RD": _fmt(c.get("toxicity")),
                "drivers of benefit": _drivers(h),
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
                "cancer": label(c["group"]),
                "drug": label(c["drug"]),
                "lines": conf.get("rows"),
                "outside, discovery": disc.get("outside_share"),
                "outside, confirmation": conf.get("outside_share"),
                "poor overlap": "yes"
                if disc.get("poor_overlap") or conf.get("poor_overlap")
                else "",
                "propensity leans on": ", ".join(
                    f"{label(d['feature'])} ({d['gain_share']:.0%})"
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
    Suppressed counts show as ``<NA>``; ``hypothesis_dir`` is resolved against the
    project root when relative."""
    d = resolve(hypothesis_dir)
    items = json.loads((d / "hypotheses.json").read_text()).get("not_testable", [])
    rows = []
    for h in items:
        disc = h.get("discovery", {})
        arms = h.get("confirmation_arms", {})
        # the screen's own estimate and nominal p, no interval: it was selected for being
        # large, so an interval around it would over-state (the winner's curse)
        est = (
            f"{disc['effect']:+.3f} (screening {p_text(disc['p_value'], 'p')})"
            if "effect" in disc
            else ""
        )
        rows.append(
            {
                "drug": label(h["drug"]),
                "subgroup": _subgroup(h),
                "primary": label(h.get("primary_endpoint") or ""),
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


SAFETY_COLUMNS = ["rank", "drug", "subgroup", "severe toxicity [95% CI]", "q", "status"]


def safety_table(hypothesis_dir: str | Path) -> pd.DataFrame:
    """The safety hypotheses (subgroups where the drug raised grade >= 3 toxicity above
    its comparator in discovery), confirmed ones first: the confirmation estimate of the
    toxicity risk difference and its q-value within the safety family. A blinded one
    (failed overlap) shows its status, never its estimate. Empty for a file written
    before safety hypotheses were."""
    d = resolve(hypothesis_dir)
    items = json.loads((d / "hypotheses.json").read_text()).get("safety", [])
    rows = []
    for h in items:
        blinded = bool(h.get("blinded"))
        res = {} if blinded else h.get("confirmation", {}).get("toxicity") or {}
        rows.append(
            {
                "rank": h["rank"],
                "drug": label(h["drug"]),
                "subgroup": _subgroup(h),
                "severe toxicity [95% CI]": effect_text(res, "toxicity") if res else "",
                "q": p_number(res.get("q_value")) if res else "",
                "status": "blinded"
                if blinded
                else "confirmed"
                if h["confirmed"]
                else "not confirmed",
            }
        )
    return pd.DataFrame(rows, columns=SAFETY_COLUMNS)


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
                "label": f"#{h['rank']} {label(h['drug'])}: {_subgroup(h)}",
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
    out = pd.DataFrame(rows, columns=["feature", "mean_abs_shap"])
    out["feature"] = out["feature"].map(label)
    return out


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
    if not len(df):
        return df
    return df[keep].assign(group=df["group"].map(label)) if "group" in keep else df[keep]


def effect_distribution(summary: dict) -> pd.DataFrame:
    """Histogram counts of the predicted effects, one row per (drug, bin)."""
    rows = []
    for d in summary.get("effect_distribution", []):
        edges = d["bin_edges"]
        for i, c in enumerate(d["counts"]):
            rows.append(
                {
                    "comparison": f"{label(d['drug'])} ({label(d['group'])}, {label(d['outcome'])})",
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
                    "label": f"#{h['rank']} {label(h['drug'])} | {label(p['population'])}",
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
