"""Tables for the track 2 notebook, from the ``validation`` stage's ``validation.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oncorwe.core.paths import resolve
from oncorwe.report import figures
from oncorwe.report.hypothesis_view import figure_or_note
from oncorwe.report.labels import label, subgroup_label


def load_validation(path: str | Path) -> dict[str, Any]:
    """The validation stage's result (``validation.json``); ``path`` is resolved against
    the project root when relative."""
    return json.loads(resolve(path).read_text())


def headline(res: dict[str, Any]) -> dict[str, Any]:
    hyps = res["hypotheses"]
    return {
        "validated": len(hyps),
        "go": sum(h.get("decision") == "go" for h in hyps),
        "go_drugs": sorted({h["drug"] for h in hyps if h.get("decision") == "go"}),
    }


def title(h: dict[str, Any]) -> str:
    """``#rank drug: subgroup`` in readable names (headings, figure rows)."""
    subgroup = subgroup_label(h.get("conditions"), h.get("subgroup", ""))
    return f"#{h['rank']} {label(h['drug'])}: {subgroup}"


def _ci(v, lo, hi, fmt="{:.2f}") -> str:
    if v is None or lo is None or hi is None:
        return ""
    return f"{fmt.format(v)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def _number(v, decimals: int) -> str:
    """A measured value with the decimals it deserves (``36.0``, not ``36.000000``)."""
    return "" if v is None else f"{v:,.{decimals}f}"


def _e_value(point, ci) -> str:
    """``2.35 (1.91)``: the E-value of the estimate and of its CI bound nearer the null."""
    return "" if point is None or ci is None else f"{point:.2f} ({ci:.2f})"


def _count(v) -> str:
    return "" if v is None else f"{int(v):,}"


def decision_table(res: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for h in res["hypotheses"]:
        em, trial = h.get("emulation", {}), h.get("trial", {})
        rows.append(
            {
                "rank": h["rank"],
                "drug": label(h["drug"]),
                "subgroup": subgroup_label(h.get("conditions"), h.get("subgroup", "")),
                "decision": h["decision"],
                "emulated HR": _ci(em.get("hazard_ratio"), em.get("ci_low"), em.get("ci_high")),
                # how strong an unmeasured confounder would have to be to explain the HR
                # (and its CI bound nearer 1) away, on the risk-ratio scale
                "E-value (CI)": _e_value(em.get("e_value"), em.get("e_value_ci")),
                "response RD": _ci(
                    em.get("risk_difference"), em.get("rd_ci_low"), em.get("rd_ci_high"), "{:+.3f}"
                ),
                "trial N (80% power)": _count(trial.get("sample_size")),
                "duration (months)": _number(trial.get("median_duration_months"), 1),
                "reasons": "; ".join(h.get("reasons", [])),
            }
        )
    return pd.DataFrame(rows)


def hr_forest(res: dict[str, Any]) -> pd.DataFrame:
    """Adjusted and unadjusted hazard ratios per validated hypothesis."""
    rows = []
    for h in res["hypotheses"]:
        em = h.get("emulation")
        if not em:
            continue
        name = title(h)
        rows.append(
            {
                "label": name,
                "estimate": em["hazard_ratio"],
                "ci_low": em["ci_low"],
                "ci_high": em["ci_high"],
                "group": "weighted (emulation)",
            }
        )
        if em.get("unadjusted_hazard_ratio") is not None:
            rows.append(
                {
                    "label": name,
                    "estimate": em["unadjusted_hazard_ratio"],
                    "ci_low": em["unadjusted_ci_low"],
                    "ci_high": em["unadjusted_ci_high"],
                    "group": "unadjusted",
                }
            )
    return pd.DataFrame(rows, columns=["label", "estimate", "ci_low", "ci_high", "group"])


def km_curves(h: dict[str, Any]) -> dict[str, tuple[list[float], list[float]]]:
    km = h.get("emulation", {}).get("km", {})
    names = {"treated": label(h["drug"]), "control": "comparator"}
    return {names.get(arm, arm): (v["times"], v["survival"]) for arm, v in km.items()}


def balance_rows(
    h: dict[str, Any], top: int | None = None, *, threshold: float = 0.1
) -> pd.DataFrame:
    """The emulation's balance table, or its ``top`` rows that matter most.

    Kept first: every covariate still imbalanced after weighting (``|SMD| >= threshold``),
    largest first, so the covariate that failed a no-go's balance diagnostic is always
    shown; then the largest imbalances before or after weighting. Rows keep the file's
    order (the plot sorts them). A missing SMD (a level absent from the weighted arms)
    counts as smallest, an infinite one as largest, as the diagnostic counts them.
    """
    df = pd.DataFrame(h.get("emulation", {}).get("balance", []))
    if top is None or len(df) <= top:
        return df
    after = pd.to_numeric(df["smd_after"], errors="coerce").abs().fillna(-1.0)
    before = pd.to_numeric(df["smd_before"], errors="coerce").abs().fillna(-1.0)
    order = pd.DataFrame(
        {"failing": after >= threshold, "after": after, "largest": np.maximum(before, after)}
    )
    order["key"] = np.where(order["failing"], order["after"], order["largest"])
    keep = order.sort_values(["failing", "key"], ascending=False, kind="stable").index[:top]
    return df.loc[sorted(keep)].reset_index(drop=True)


def power_table(res: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for h in res["hypotheses"]:
        t = h.get("trial", {})
        if not t.get("sample_size"):
            continue
        rows.append(
            {
                "hypothesis": f"#{h['rank']} {label(h['drug'])}",
                "HR": t["hazard_ratio"],
                "control median (months)": t["control_median_months"],
                "N (simulation)": t["sample_size"],
                "N (Schoenfeld)": t["formula_patients"],
                "simulated power": t["power"],
                "Schoenfeld power at simulated events": t["formula_power_at_simulated_events"],
                "mean events": t["mean_events"],
            }
        )
    return pd.DataFrame(rows)


def adaptive_rows(res: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for h in res["hypotheses"]:
        a = h.get("adaptive", {})
        if not a.get("available"):
            continue
        for sig, p in zip(a["signatures"], a["prob_graduation"], strict=False):
            rows.append(
                {
                    "hypothesis": f"#{h['rank']} {label(h['drug'])}",
                    "signature": sig,
                    "P(graduate)": p,
                }
            )
    return pd.DataFrame(rows, columns=["hypothesis", "signature", "P(graduate)"])


def transport_table(res: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for h in res["hypotheses"]:
        t = h.get("transport", {})
        if not t.get("available"):
            continue
        rows.append(
            {
                "hypothesis": f"#{h['rank']} {label(h['drug'])}",
                "developed in": label(t["train_population"]),
                "validated in": label(t["test_population"]),
                "C-index": t["c_index"],
                "calibration slope": t["calibration_slope"],
                "observed / expected": t["calibration_in_the_large"],
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- figures
# The notebook's figures, built here so that every one of them is checked (tests/report).


def hr_figure(res: dict[str, Any]):
    """Weighted and unadjusted hazard ratios (a note when nothing was validated)."""
    return figure_or_note(
        hr_forest(res),
        lambda rows: figures.forest_plot(
            rows,
            null_value=1,
            x_title="Hazard ratio (95% CI)",
            title="Progression-free survival: drug vs comparator",
        ),
        "No hypothesis was validated (track 1 confirmed none).",
    )


def km_figure(h: dict[str, Any]):
    return figures.km_plot(km_curves(h), title="Weighted progression-free survival")


def balance_figure(h: dict[str, Any], top: int = 40):
    rows = balance_rows(h, top)
    if len(rows):
        rows = rows.assign(covariate=rows["covariate"].map(label))
    return figures.balance_plot(rows, title="Covariate balance (largest differences)")


def adaptive_figure(res: dict[str, Any]):
    return figure_or_note(
        adaptive_rows(res),
        lambda rows: figures.bar_counts(
            rows,
            x="hypothesis",
            y="P(graduate)",
            color="signature",
            percent=True,
            title="Probability of graduation by signature",
            y_title="P(graduate)",
        ),
        "No adaptive design was simulated.",
    )
