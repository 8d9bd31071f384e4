"""Small stage outputs (``hypotheses.json``, ``summary.json``, ``validation.json``) shaped
as the hypothesis and validation stages write them, at the scales the default run shows:
SHAP values of a few hundredths, observed / expected near 1, AUCs near 0.7, q-values
down to ``1e-169`` and 0, nested subgroups of one drug, a confirmed harm, and a no-go
whose deciding covariate sits past the 40th row of its balance table.
"""

from __future__ import annotations

import json
from pathlib import Path

POPULATIONS = ("korean", "east_asian_other", "european")


def _ci(effect, half, q=None, p=None, n=400):
    out = {"effect": effect, "ci_low": effect - half, "ci_high": effect + half, "n": n}
    if q is not None:
        out["q_value"] = q
    if p is not None:
        out["p_value"] = p
    return out


def _hyp(rank, drug, group, conditions, primary, effect, q, *, confirmed=True, **extra):
    clauses = []
    for field, spec in conditions.items():
        if field == "cancer":
            clauses.append(f"cancer = {spec}")
        elif spec in ("positive", "negative"):
            clauses.append(f"{field} {spec}")
        elif isinstance(spec, list):
            clauses.append(f"{field} in {{{', '.join(map(str, spec))}}}")
        else:
            clauses.append(f"{field} = {spec}")
    half = 0.6 if primary == "pfs" else 0.04
    conf = {primary: _ci(effect, half, q=q)}
    other = "response" if primary == "pfs" else "pfs"
    conf[other] = _ci(
        0.05 if other == "response" else 0.4, 0.03 if other == "response" else 0.5, q=0.2
    )
    conf["toxicity"] = _ci(0.01, 0.02, p=0.6)
    scale = 1.0 if primary == "pfs" else 0.05
    return {
        "rank": rank,
        "drug": drug,
        "group": group,
        "subgroup": " and ".join(clauses),
        "conditions": conditions,
        "confirmed": confirmed,
        "blinded": False,
        "blinded_reason": None,
        "primary_endpoint": primary,
        "confirmation": conf,
        "top_features": [
            {"feature": "bm_hr_status=positive", "mean_shap_on_effect": 0.03},
            {"feature": "lab_nlr", "mean_shap_on_effect": -0.02},
            {"feature": "ecog", "mean_shap_on_effect": 0.01},
        ],
        "overlap": {
            "rows": 500,
            "outside_rows": None,
            "outside_share": None,
            "poor_overlap": False,
        },
        "effect_by_population": [
            {
                "population": p,
                "n": 200,
                "effect": effect + i * 0.1 * scale,
                "ci_low": effect - 2 * half + i * 0.1 * scale,
                "ci_high": effect + 2 * half,
            }
            for i, p in enumerate(POPULATIONS)
        ],
        **extra,
    }


def hypotheses() -> list[dict]:
    return [
        _hyp(
            1,
            "pembrolizumab",
            "nsclc",
            {"cancer": "nsclc", "bm_pdl1_tps_status": [">=50"]},
            "pfs",
            2.4,
            1.76e-169,
        ),
        _hyp(
            2,
            "osimertinib",
            "nsclc",
            {"cancer": "nsclc", "bm_egfr_status": "positive"},
            "response",
            0.21,
            0.0,
        ),
        _hyp(
            3,
            "pembrolizumab",
            "nsclc",
            {"cancer": "nsclc", "bm_pdl1_tps_status": [">=50"], "line": 1},
            "pfs",
            2.6,
            3e-40,
        ),
        _hyp(
            4,
            "tamoxifen",
            "breast",
            {"cancer": "breast", "bm_her2_status": "positive"},
            "response",
            -0.12,
            2e-5,
        ),
        _hyp(
            5,
            "pembrolizumab",
            "nsclc",
            {"cancer": "nsclc", "bm_pdl1_tps_status": [">=50"], "sex": "F"},
            "pfs",
            2.2,
            0.004,
        ),
        _hyp(
            6,
            "pembrolizumab",
            "nsclc",
            {"cancer": "nsclc", "bm_pdl1_tps_status": ["<1"]},
            "pfs",
            0.9,
            0.03,
        ),
        _hyp(
            7,
            "olaparib",
            "ovarian",
            {"cancer": "ovarian", "bm_brca_status": "positive"},
            "pfs",
            1.1,
            0.3,
            confirmed=False,
        ),
    ]


def summary() -> dict:
    features = [
        "treatment=pembrolizumab",
        "bm_pdl1_tps",
        "lab_nlr",
        "ecog",
        "age",
        "bm_hr_status=positive",
        "stage=IV",
        "lab_albumin",
    ]
    shap = {
        model: [
            {"feature": f, "mean_abs_shap": round(0.31 * 0.7**i * k, 4)}
            for i, f in enumerate(features)
        ]
        for model, k in (("response", 1.0), ("pfs", 0.4), ("toxicity", 0.1))
    }

    def group(name, auc, oe, n=400):
        return {
            "group": name,
            "n": n,
            "auc": auc,
            "observed_expected": oe,
            "calibration_slope": 0.95,
            "calibration_intercept": 0.02,
            "ici": 0.01,
            "brier": 0.2,
        }

    edges = [round(-0.1 + 0.02 * i, 3) for i in range(21)]
    counts = [
        None,
        None,
        14,
        30,
        61,
        90,
        120,
        150,
        133,
        101,
        80,
        60,
        41,
        22,
        12,
        None,
        None,
        None,
        None,
        None,
    ]
    return {
        "n_candidates": 12,
        "n_confirmed": 6,
        "horizon_months": 12.0,
        "models": {
            "response": {
                "overall": {"auc": 0.71},
                "by_population": [
                    group(p, 0.7 + 0.01 * i, 0.97 + 0.03 * i) for i, p in enumerate(POPULATIONS)
                ],
                "by_hospital": [group(f"H{i:02d}", 0.66 + 0.01 * i, 1.0) for i in range(12)],
            },
            "pfs": {"overall": {"c_index": 0.68}},
        },
        "shap": shap,
        "effect_distribution": [
            {
                "group": "nsclc",
                "drug": "pembrolizumab",
                "outcome": "response",
                "bin_edges": edges,
                "counts": counts,
            },
            {
                "group": "nsclc",
                "drug": "osimertinib",
                "outcome": "response",
                "bin_edges": edges,
                "counts": counts[::-1],
            },
        ],
        "overlap": {"eps": 0.01, "warn_share": 0.05, "comparisons": []},
    }


def balance(worst_at: int = 50, n: int = 60) -> list[dict]:
    """``n`` covariates in file order; the worst after weighting (the no-go's reason)
    is row ``worst_at``, whose imbalance before weighting is small."""
    rows = []
    for i in range(n):
        before = 0.02 + 0.3 * ((i * 7) % n) / n
        rows.append(
            {
                "covariate": f"lab_x{i}",
                "mean_treated_before": 0.5,
                "mean_control_before": 0.5,
                "smd_before": before,
                "smd_after": before / 5,
            }
        )
    rows[worst_at].update(covariate="bm_hr_status=positive", smd_before=0.05, smd_after=0.18)
    return rows


def _km(median):
    times = [0.0, 2.0, 4.0, 6.0, 9.0, 12.0, 18.0]
    return {"times": times, "survival": [0.5 ** (t / median) for t in times]}


def validation() -> dict:
    def em(hr, rd, bal, passed, reasons=()):
        return {
            "hazard_ratio": hr,
            "ci_low": hr * 0.8,
            "ci_high": hr * 1.25,
            "unadjusted_hazard_ratio": hr * 0.9,
            "unadjusted_ci_low": hr * 0.72,
            "unadjusted_ci_high": hr * 1.12,
            "risk_difference": rd,
            "rd_ci_low": rd - 0.05,
            "rd_ci_high": rd + 0.05,
            "km": {"treated": _km(9.0), "control": _km(6.0)},
            "balance": bal,
            "diagnostics_pass": passed,
            "diagnostic_reasons": list(reasons),
        }

    trial = {
        "feasible": True,
        "sample_size": 420,
        "hazard_ratio": 0.7,
        "control_median_months": 6.0,
        "formula_patients": 410,
        "power": 0.81,
        "formula_power_at_simulated_events": 0.8,
        "mean_events": 300.0,
        "median_duration_months": 36.0,
    }
    return {
        "hypotheses": [
            {
                "rank": 1,
                "drug": "pembrolizumab",
                "subgroup": "cancer = nsclc and bm_pdl1_tps_status in {>=50}",
                "primary_endpoint": "pfs",
                "decision": "go",
                "reasons": ["emulated PFS hazard ratio CI [0.56, 0.88]"],
                "emulation": em(0.7, 0.1, balance()[:30], True),
                "trial": trial,
                "adaptive": {
                    "available": True,
                    "signatures": ["subgroup", "rest"],
                    "prob_graduation": [0.91, 0.012],
                },
                "transport": {"available": False},
            },
            {
                "rank": 2,
                "drug": "osimertinib",
                "subgroup": "cancer = nsclc and bm_egfr_status positive",
                "primary_endpoint": "response",
                "decision": "no-go",
                "reasons": [
                    "emulated response risk difference CI [0.050, 0.150]",
                    "diagnostic: max |SMD| after adjustment 0.180 >= 0.1 "
                    "(worst: bm_hr_status=positive)",
                ],
                "emulation": em(
                    0.8,
                    0.1,
                    balance(),
                    False,
                    ["max |SMD| after adjustment 0.180 >= 0.1 (worst: bm_hr_status=positive)"],
                ),
                "trial": {**trial, "median_duration_months": 30.5},
                "adaptive": {"available": False},
                "transport": {"available": False},
            },
        ]
    }


def write(base: Path) -> dict[str, Path]:
    """The three files under ``base`` as the stages lay them out."""
    hyp_dir, val_dir = base / "hypothesis", base / "validation"
    hyp_dir.mkdir(parents=True, exist_ok=True)
    val_dir.mkdir(parents=True, exist_ok=True)
    (hyp_dir / "hypotheses.json").write_text(
        json.dumps({"hypotheses": hypotheses(), "not_testable": []})
    )
    (hyp_dir / "summary.json").write_text(json.dumps(summary()))
    (val_dir / "validation.json").write_text(json.dumps(validation()))
    return {"hypothesis": hyp_dir, "validation": val_dir / "validation.json"}
