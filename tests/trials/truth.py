"""True marginal effects from the generator's truth tables, the oracle of the emulation tests.

Hazard ratios are not collapsible (SCIENCE.md, "Treatment effects"): with a planted
conditional log-hazard ``beta`` and a heterogeneous baseline ``eta_0(x)``, the marginal
HR of a randomized trial on the same rows lies between ``exp(beta)`` and 1. The truth of
an emulated trial is therefore what a Cox model estimates on a simulated randomized
trial of the analysed rows, each row contributing both of its potential outcomes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from oncorwe.core.pseudonym import pseudonym
from oncorwe.features.build import DEV_KEY


def line_key(line_id: int, key: str = DEV_KEY) -> str:
    """The feature stage's pseudonymous ``line_key`` of a generator ``line_id``."""
    return pseudonym(key, "line", line_id)


def weibull_shape(world: Path) -> float:
    """``kappa`` of the world's Weibull PFS, from ``truth/world.json``."""
    return float(json.loads((Path(world) / "truth" / "world.json").read_text())["weibull_shape"])


def potential_outcomes(
    truth_po: pd.DataFrame, line_keys: pd.Series, drug: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Truth rows of ``drug`` and of the line's standard of care, aligned to ``line_keys``.

    Parameters
    ----------
    truth_po : DataFrame
        ``truth/potential_outcomes.parquet``.
    line_keys : Series of str
        Feature rows' ``line_key`` (the analysed rows, in order).
    drug : str
        The experimental drug; it must be a candidate of every row.

    Returns
    -------
    treated, control : DataFrame
        One row per ``line_keys`` entry, in its order, with ``p_response``,
        ``pfs_log_hazard`` and ``p_toxicity``.
    """
    ids = truth_po["line_id"].to_numpy()
    uniq, inv = np.unique(ids, return_inverse=True)
    keys_of = np.array([line_key(int(i)) for i in uniq], dtype=object)
    keyed = truth_po.assign(line_key=keys_of[inv.ravel()])
    cols = ["line_key", "p_response", "pfs_log_hazard", "p_toxicity"]
    treated = keyed.loc[keyed["drug"] == drug, cols].set_index("line_key")
    control = keyed.loc[keyed["is_standard"], cols].set_index("line_key")
    keys = pd.Index(line_keys)
    missing = keys.difference(treated.index).size + keys.difference(control.index).size
    if missing:
        raise KeyError(f"{missing} analysed rows lack a {drug} or standard-of-care truth row")
    return treated.loc[keys].reset_index(), control.loc[keys].reset_index()


def true_marginal_hr(
    eta_treated: np.ndarray,
    eta_control: np.ndarray,
    kappa: float,
    *,
    seed: int = 0,
    n_rep: int = 10,
    censor_at: float = 36.0,
) -> float:
    """Marginal hazard ratio of a simulated randomized trial on the given rows.

    Every row enters both arms (its two potential outcomes, drawn from one ``E`` per row
    and replicate), ``n_rep`` times: Weibull times ``T = (E / exp(eta))^(1 / kappa)``
    with ``E ~ Exp(1)``, i.e.
    ``S(t) = exp(-exp(eta) t^kappa)`` (months), administratively censored at
    ``censor_at``; a Cox model of the arm indicator on the stacked trial gives the HR.

    Parameters
    ----------
    eta_treated, eta_control : ndarray of shape (n,)
        Each row's PFS log-hazard under the drug and under the comparator.
    kappa : float
        Weibull shape.
    seed, n_rep, censor_at
        Monte Carlo seed, replicates of every row, censoring time (months).

    Returns
    -------
    float
    """
    e1 = np.tile(np.asarray(eta_treated, dtype=float), n_rep)
    e0 = np.tile(np.asarray(eta_control, dtype=float), n_rep)
    rng = np.random.default_rng(seed)
    # Common random numbers: one E per row and replicate drives both potential outcomes.
    # The Cox estimator's limit depends only on each arm's marginal law, so the coupling
    # leaves the target unchanged and removes most of the Monte Carlo noise.
    draw = rng.exponential(1.0, e1.size)
    t1 = (draw / np.exp(e1)) ** (1.0 / kappa)
    t0 = (draw / np.exp(e0)) ** (1.0 / kappa)
    t = np.concatenate([t1, t0])
    arm = np.repeat([1.0, 0.0], e1.size)
    return float(np.exp(cox_arm_coefficient(np.minimum(t, censor_at), t <= censor_at, arm)))


def cox_arm_coefficient(time: np.ndarray, event: np.ndarray, arm: np.ndarray) -> float:
    """Cox partial-likelihood coefficient of a 0/1 ``arm`` (Breslow ties), by Newton.

    ``l(b) = sum_k [b D1_k - D_k log(R0_k + R1_k e^b)]`` over distinct event times, with
    ``D_k`` (``D1_k``) the events (in arm 1) at ``t_k`` and ``R0_k, R1_k`` the arms' risk
    sets. Written here, apart from the library, so that the oracle does not share code
    with what it checks; ``test_truth_cox_matches_lifelines`` ties it to lifelines.
    """
    t = np.asarray(time, dtype=float)
    d = np.asarray(event, dtype=float)
    a = np.asarray(arm, dtype=float)
    uniq, inv = np.unique(t, return_inverse=True)
    n1 = np.bincount(inv, weights=a, minlength=uniq.size)
    n0 = np.bincount(inv, weights=1 - a, minlength=uniq.size)
    r1, r0 = np.cumsum(n1[::-1])[::-1], np.cumsum(n0[::-1])[::-1]
    dk = np.bincount(inv, weights=d, minlength=uniq.size)
    d1 = np.bincount(inv, weights=d * a, minlength=uniq.size)
    k = dk > 0
    r1, r0, dk, d1 = r1[k], r0[k], dk[k], d1[k]
    b = 0.0
    for _ in range(100):
        p = r1 * np.exp(b) / (r0 + r1 * np.exp(b))
        step = np.sum(d1 - dk * p) / np.sum(dk * p * (1 - p))
        b += step
        if abs(step) < 1e-10:
            break
    return float(b)


def true_risk_difference(p_treated: np.ndarray, p_control: np.ndarray) -> float:
    """Marginal response risk difference ``mean(p1 - p0)`` over the given rows."""
    return float(np.mean(np.asarray(p_treated, float) - np.asarray(p_control, float)))


# --------------------------------------------------------------------------- scenarios
# Baseline covariates of the NSCLC comparisons: the confounders of the generator's
# treatment policy (ECOG, stage, line, earlier drugs, tested markers) and the prognostic
# index's inputs (labs, age, comorbidities).
NSCLC_COVARIATES = [
    "age",
    "sex",
    "population",
    "stage",
    "line",
    "prior_drug",
    "months_since_diagnosis",
    "bm_egfr_status",
    "bm_alk_status",
    "lab_ecog",
    "lab_albumin",
    "lab_ldh",
    "lab_nlr",
    "lab_creatinine",
    "comorb_diabetes",
    "comorb_copd",
    "comorb_chronic_kidney_disease",
    "comorb_cardiovascular_disease",
    "comorb_hepatitis_b",
]


def nsclc_spec(spec, *, null: bool = False):
    """``spec`` restricted to NSCLC (share 1), optionally without planted effects.

    Every other parameter is the spec's own: the NSCLC rows of such a world follow the
    same model as the NSCLC rows of the full world, at a sixth of the cost per row.
    """
    update = {"cancers": {"nsclc": spec.cancers["nsclc"].model_copy(update={"share": 1.0})}}
    if null:
        update["planted_effects"] = []
    return spec.model_copy(update=update)


def with_standard_arm(features: pd.DataFrame, drug: str) -> pd.DataFrame:
    """NSCLC rows with ``arm`` = ``drug``, ``"standard"`` (the line's standard of care:
    platinum doublet in line 1, docetaxel later) or ``"other"``."""
    rows = features[features["cancer"] == "nsclc"].copy()
    soc = np.where(rows["line"] == 1, "platinum_doublet", "docetaxel")
    rows["arm"] = np.where(
        rows["treatment"] == drug, drug, np.where(rows["treatment"] == soc, "standard", "other")
    )
    return rows


def true_effects(
    truth_po: pd.DataFrame,
    analysed: pd.DataFrame,
    drug: str,
    kappa: float,
    *,
    seed: int = 0,
    n_rep: int = 20,
) -> dict[str, float]:
    """True marginal HR and response RD of ``drug`` vs the standard over ``analysed`` rows."""
    treated, control = potential_outcomes(truth_po, analysed["line_key"], drug)
    return {
        "hr": true_marginal_hr(
            treated["pfs_log_hazard"].to_numpy(),
            control["pfs_log_hazard"].to_numpy(),
            kappa,
            seed=seed,
            n_rep=n_rep,
        ),
        "rd": true_risk_difference(treated["p_response"], control["p_response"]),
    }
