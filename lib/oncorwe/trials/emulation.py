"""Target-trial emulation of a two-arm comparison on an analysis table.

The emulated trial (SCIENCE.md, "Trial emulation"): **eligibility** is a row mask;
**treatment strategies** are two values of one treatment column; **time zero** is each
row's index date (the start of a line of therapy: a new-user design, so no prevalent-user
bias); **follow-up** and **outcome** are the ``(event, time)`` columns and an optional
binary ``response``; the **causal contrast** is the average treatment effect in the
eligible population (IPTW) or the effect in the matched population (matching); the
**analysis plan** is the one of :func:`emulate`:

1. Propensity ``e(x) = P(T = treated | x)``, cross-fitted over grouped folds (a patient's
   rows in one fold), by XGBoost (:class:`~oncorwe.models.estimators.ResponseClassifier`)
   or a logistic regression on one-hot, standardized covariates.
2. Trimming, then stabilized ATE weights ``w_i = P / e_i`` (treated) and
   ``(1 - P) / (1 - e_i)`` (control), ``P`` the treated share; or 1:1 nearest-neighbour
   matching on ``logit e`` within a caliper of 0.2 SD of ``logit e``, without replacement.
3. Diagnostics (OHDSI CohortMethod's): standardized mean differences of every covariate
   before and after, equipoise (preference score in [0.3, 0.7]), Kish effective sample
   sizes, the propensity and preference-score distributions (binned per arm), the
   minimum detectable hazard ratio; each with its threshold in ``diagnostics``.
4. Outcomes: weighted Kaplan-Meier curves with their pointwise band, weighted Cox hazard
   ratio with a robust (sandwich, clustered by patient) or bootstrap CI, RMST difference
   at a horizon, weighted risk difference of ``response``; the unadjusted HR and RD
   beside them; the numbers at risk, events and censorings at regular times.

The result holds the counts a report needs (arms before and after trimming, histogram
bins, numbers at risk, covariate levels) as they are: suppressing the small ones is the
publishing stage's job (:mod:`oncorwe.pipeline.validation`), with its threshold.

Results should be read only when ``diagnostics_pass`` (SCIENCE.md, "Study diagnostics"):
otherwise the result is ``blinded`` (OHDSI practice), its estimates kept for audit only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from oncorwe.compute.crossfit import crossfit_nuisances
from oncorwe.compute.trainer import EstimatorTrainer
from oncorwe.core.io import jsonable
from oncorwe.core.roles import MAX_ABS_COVARIATE, absurd_values, horizon_refusal
from oncorwe.models.encoding import CovariateEncoder
from oncorwe.models.kaplan_meier import at_risk_counts, weighted_kaplan_meier
from oncorwe.models.sensitivity import e_values_hr
from oncorwe.models.splits import grouped_fold_ids
from oncorwe.trials.design import minimum_detectable_hr
from oncorwe.trials.survival import (
    cox_coefficient,
    cox_hazard_ratio,
)

__all__ = [
    "BalanceRow",
    "EmulationResult",
    "effective_sample_size",
    "emulate",
    "equipoise",
    "match_nearest",
    "preference_score",
    "standardized_mean_differences",
    "weighted_risk_difference",
]

PROPENSITY_MODELS = ("xgboost", "logistic")
METHODS = ("iptw", "matching")
TRIM_KINDS = ("absolute", "percentile")
# CohortMethod's thresholds (SCIENCE.md, "Study diagnostics").
MAX_SMD = 0.1
MIN_EQUIPOISE = 0.2
EQUIPOISE_BOUNDS = (0.3, 0.7)
CALIPER_SD = 0.2
_E_CLIP = 1e-6
#: Bins of the published propensity and preference-score histograms (width 0.05).
SCORE_BINS = 20
#: Steps (months) the at-risk table may take: the first giving at most 8 intervals.
AT_RISK_STEPS = (1.0, 2.0, 3.0, 6.0, 12.0, 24.0, 60.0)


# --------------------------------------------------------------------------- diagnostics
@dataclass(frozen=True)
class BalanceRow:
    """One row of the baseline table: a covariate (or one level of a categorical, or a
    missing indicator), its arm means before weighting (the eligible rows) and after
    (the analysed rows, weighted), and the standardized mean differences.

    ``n_treated`` / ``n_control`` are the eligible rows of each arm where the covariate
    is observed, ``n_level_treated`` / ``n_level_control`` those of them with the value
    1 when the column holds only 0/1 (a level, an indicator; None otherwise): the
    counts behind a proportion, which a publishing stage needs to withhold small ones.
    """

    covariate: str
    mean_treated_before: float
    mean_control_before: float
    smd_before: float
    smd_after: float
    mean_treated_after: float = float("nan")
    mean_control_after: float = float("nan")
    n_treated: int = 0
    n_control: int = 0
    n_level_treated: int | None = None
    n_level_control: int | None = None


def _nan_wmean(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Column means of ``x`` (n, k) with weights ``w`` (n,), ignoring NaNs."""
    ok = ~np.isnan(x)
    ww = ok * w[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nansum(np.where(ok, x, 0.0) * w[:, None], axis=0) / ww.sum(axis=0)


def _nan_var(x: np.ndarray) -> np.ndarray:
    cnt = (~np.isnan(x)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(x, axis=0) / cnt
        return np.nansum((x - mean) ** 2, axis=0) / np.maximum(cnt - 1, 1)


def standardized_mean_differences(
    x: Any, treated: Any, weight_after: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardized mean differences before and after weighting, CohortMethod-style.

    ``SMD_j = (m1_j - m0_j) / sqrt((s1_j^2 + s0_j^2) / 2)``: ``m`` the arm means
    (unweighted before, weighted after), ``s^2`` the *unweighted* within-arm variances in
    both cases, so that before and after share one denominator. Missing values are left
    out of a column's means and variances.

    Parameters
    ----------
    x : array-like of shape (n, k)
    treated : array-like of bool of shape (n,)
    weight_after : array-like of shape (n,), optional
        Weights of the adjusted comparison (IPTW, or 0/1 for matching); ``None`` gives
        ``smd_after = smd_before``.

    Returns
    -------
    smd_before, smd_after, mean_treated, mean_control : ndarray of shape (k,)
        ``inf`` where both variances are 0 and the means differ, 0 where they agree.

    Examples
    --------
    >>> x = np.array([[0.0], [1.0], [1.0], [2.0]])
    >>> before, after, *_ = standardized_mean_differences(x, [True, True, False, False])
    >>> round(float(before[0]), 4)
    -1.4142
    """
    xa = np.asarray(x, dtype=float)
    if xa.ndim == 1:
        xa = xa[:, None]
    t = np.asarray(treated, dtype=bool).ravel()
    ones = np.ones(t.shape[0])
    m1, m0 = _nan_wmean(xa[t], ones[t]), _nan_wmean(xa[~t], ones[~t])
    sd = np.sqrt((_nan_var(xa[t]) + _nan_var(xa[~t])) / 2)

    def smd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        diff = a - b
        with np.errstate(invalid="ignore", divide="ignore"):
            out = diff / sd
        return np.where(sd > 0, out, np.where(np.abs(diff) > 1e-12, np.inf, 0.0))

    before = smd(m1, m0)
    if weight_after is None:
        return before, before.copy(), m1, m0
    w = np.asarray(weight_after, dtype=float).ravel()
    after = smd(_nan_wmean(xa[t], w[t]), _nan_wmean(xa[~t], w[~t]))
    return before, after, m1, m0


def preference_score(e: Any, treated_share: float) -> np.ndarray:
    """Walker et al. (2013) preference score: ``logit F = logit e - logit P``.

    The propensity rescaled so that a row with ``e`` equal to the treated share ``P`` has
    ``F = 0.5``, whatever the arms' sizes.

    Examples
    --------
    >>> preference_score([0.2], 0.2).round(6).tolist()
    [0.5]
    """
    ea = np.clip(np.asarray(e, dtype=float), _E_CLIP, 1 - _E_CLIP)
    return special.expit(special.logit(ea) - special.logit(treated_share))


def equipoise(e: Any, treated: Any, bounds: tuple[float, float] = EQUIPOISE_BOUNDS) -> float:
    """Share of rows whose preference score lies in ``bounds`` (CohortMethod: > 0.2 is
    adequate equipoise).

    Examples
    --------
    >>> equipoise([0.5, 0.5, 0.9, 0.1], [1, 0, 1, 0])
    0.5
    """
    t = np.asarray(treated, dtype=float)
    f = preference_score(e, float(t.mean()))
    return float(np.mean((f >= bounds[0]) & (f <= bounds[1])))


def effective_sample_size(w: Any) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2``.

    Examples
    --------
    >>> effective_sample_size([1, 1, 1, 1])
    4.0
    """
    wa = np.asarray(w, dtype=float)
    s2 = float(np.sum(wa**2))
    return float(np.sum(wa) ** 2 / s2) if s2 > 0 else 0.0


def match_nearest(logit_e: Any, treated: Any, *, caliper: float, seed: int = 0) -> np.ndarray:
    """Greedy 1:1 nearest-neighbour matching on ``logit e`` without replacement.

    Each row of the smaller arm, in a seeded random order, takes the nearest still
    available row of the other arm when it lies within ``caliper``; otherwise it stays
    unmatched. With sorted candidates and "next available" pointers (path-halving) each
    search is nearly O(log n).

    Parameters
    ----------
    logit_e : array-like of shape (n,)
    treated : array-like of bool of shape (n,)
    caliper : float
        Largest allowed ``|logit e_i - logit e_j|`` (CohortMethod: 0.2 SD of logit e).
    seed : int, default 0

    Returns
    -------
    ndarray of int of shape (n,)
        Pair id (0, 1, ...) of each matched row, -1 for unmatched rows.

    Examples
    --------
    >>> match_nearest([0.0, 0.1, 1.0, 3.0], [1, 0, 0, 1], caliper=0.5).tolist()
    [0, 0, -1, -1]
    """
    le = np.asarray(logit_e, dtype=float).ravel()
    t = np.asarray(treated, dtype=bool).ravel()
    small, large = (np.flatnonzero(t), np.flatnonzero(~t))
    if small.size > large.size:
        small, large = large, small
    order = np.argsort(le[large], kind="stable")
    cand = large[order]
    vals = le[cand]
    m = cand.size
    # right[j]: first available index >= j (m = none); left[j+1]: last available <= j
    right = np.arange(m + 1)
    left = np.arange(m + 1)  # shifted by one: left[j + 1] for index j, left[0] = none

    def find(parent: np.ndarray, j: int) -> int:
        while parent[j] != j:
            parent[j] = parent[parent[j]]
            j = parent[j]
        return j

    pair = np.full(le.shape[0], -1, dtype=np.int64)
    rng = np.random.default_rng(seed)
    next_id = 0
    for i in small[rng.permutation(small.size)]:
        pos = int(np.searchsorted(vals, le[i]))
        r = find(right, pos)
        lft = find(left, pos) - 1  # last available index <= pos - 1
        best, dist = -1, np.inf
        if r < m and abs(vals[r] - le[i]) < dist:
            best, dist = r, abs(vals[r] - le[i])
        if lft >= 0 and abs(vals[lft] - le[i]) < dist:
            best, dist = lft, abs(vals[lft] - le[i])
        if best < 0 or dist > caliper:
            continue
        right[best] = best + 1
        left[best + 1] = best
        pair[i] = pair[cand[best]] = next_id
        next_id += 1
    return pair


def weighted_risk_difference(
    y: Any, treated: Any, weight: Any = None, groups: Any = None, alpha: float = 0.05
) -> dict[str, float]:
    """Weighted (Hajek) risk difference with a sandwich CI, clustered by ``groups``.

    ``mu_a = sum_{T_i = a} w_i Y_i / sum_{T_i = a} w_i`` and ``RD = mu_1 - mu_0``. With
    the weights held fixed, the influence of row i is
    ``D_i = T_i w_i (Y_i - mu_1) / W_1 - (1 - T_i) w_i (Y_i - mu_0) / W_0``
    (``W_a`` the arm's weight total), and ``Var(RD) = sum_g (sum_{i in g} D_i)^2`` over
    clusters ``g`` (rows when ``groups`` is None). Holding estimated propensity weights
    fixed is conservative for the ATE (Lunceford & Davidian 2004).

    Returns
    -------
    dict with ``risk_difference, ci_low, ci_high, se, risk_treated, risk_control, n``.

    Examples
    --------
    >>> out = weighted_risk_difference([1, 0, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0])
    >>> round(out["risk_difference"], 4)
    0.3333
    """
    ya = np.asarray(y, dtype=float).ravel()
    t = np.asarray(treated, dtype=bool).ravel()
    w = np.ones_like(ya) if weight is None else np.asarray(weight, dtype=float).ravel()
    w1, w0 = w * t, w * ~t
    W1, W0 = w1.sum(), w0.sum()
    mu1, mu0 = float(np.sum(w1 * ya) / W1), float(np.sum(w0 * ya) / W0)
    infl = w1 * (ya - mu1) / W1 - w0 * (ya - mu0) / W0
    if groups is not None:
        _, inv = np.unique(np.asarray(groups), return_inverse=True)
        infl = np.bincount(inv.ravel(), weights=infl)
    se = float(np.sqrt(np.sum(infl**2)))
    rd = mu1 - mu0
    z = stats.norm.ppf(1 - alpha / 2)
    return {
        "risk_difference": rd,
        "ci_low": rd - z * se,
        "ci_high": rd + z * se,
        "se": se,
        "risk_treated": mu1,
        "risk_control": mu0,
        "n": int(ya.size),
    }


# --------------------------------------------------------------------------- result
def _internal() -> Any:
    return field(default=None, repr=False, metadata={"export": False})


@dataclass
class EmulationResult:
    """Everything :func:`emulate` estimated, with its diagnostics.

    Hazard ratios are treated vs control (< 1: the treated arm progresses later); risk
    and RMST differences are treated minus control. ``to_dict`` gives a JSON-safe dict
    (NaN and inf become ``None``) without the per-row arrays.

    Attributes
    ----------
    hazard_ratio, ci_low, ci_high, p_value : float
        Adjusted (weighted or matched) Cox HR and its CI (``ci_method``).
    e_value, e_value_ci : float
        How strongly (risk-ratio scale) an unmeasured confounder would have to be
        associated with both the strategy and PFS to explain the hazard ratio, and its CI
        bound nearer 1, away (:func:`oncorwe.models.sensitivity.e_values_hr`, PFS taken
        as a common outcome); 1 for a CI that includes 1.
    unadjusted_hazard_ratio, unadjusted_ci_low, unadjusted_ci_high : float
    rmst_treated, rmst_control, rmst_difference : float
        Restricted mean survival (months) to ``horizon_months`` from the adjusted KM
        curves; ``rmst_ci_low/high`` only with ``bootstrap > 0`` (else None).
    risk_difference, rd_ci_low, rd_ci_high, risk_treated, risk_control : float
        Adjusted response risk difference (None without ``response``).
    unadjusted_risk_difference, unadjusted_rd_ci_low, unadjusted_rd_ci_high : float
    n_eligible, n_trimmed, n_treated, n_control, n_response : int
        Eligible rows of the two arms; rows removed by trimming (or left unmatched); rows
        analysed per arm; rows with a non-missing response among them.
    n_eligible_treated, n_eligible_control : int
        Eligible rows per arm (before trimming or matching): the attrition's middle step.
    events, events_treated, events_control : int
    max_abs_smd_before, max_abs_smd_after : float
    balance : list of BalanceRow
    equipoise : float
    effective_sample_size, ess_treated, ess_control : float
        Kish ESS of the weights per arm; the total is their sum.
    propensity_summary : dict
    score_histogram : dict
        ``bin_edges`` (``SCORE_BINS`` bins over [0, 1]) and per arm the eligible rows'
        ``propensity_counts`` and ``preference_counts`` per bin (before trimming, as
        CohortMethod plots them); ``equipoise_bounds``.
    km : dict
        ``{"treated": {"times", "survival", "lower", "upper", "n_at_risk"},
        "control": {...}}`` on a grid: the weighted curve, its pointwise ``1 - alpha``
        band (:meth:`~oncorwe.models.kaplan_meier.SurvivalCurve.confidence_interval`)
        and the analysed rows at risk at each grid time.
    at_risk : dict
        ``times`` (0, then every ``at_risk_step`` months within the grid) and per arm
        :func:`~oncorwe.models.kaplan_meier.at_risk_counts` of the analysed rows:
        ``n_at_risk`` at each time, ``events`` and ``n_censored`` until the next.
    mdrr : float
        Minimum detectable hazard ratio of the analysed events (two-sided alpha,
        80 % power, the arms' ratio; :func:`~oncorwe.trials.design.minimum_detectable_hr`).
    diagnostics : list of dict
        One per diagnostic: ``code`` (``max_abs_smd``, ``equipoise``, ``mdrr``,
        ``effective_sample_size``), ``value``, ``threshold`` and ``passes`` (``"below"``
        or ``"above"``; None for one only reported), ``passed`` (None when reported),
        and ``covariate`` (the worst one, for ``max_abs_smd``).
    diagnostics_pass : bool
        ``max_abs_smd_after < 0.1 and equipoise > 0.2``; ``diagnostic_reasons`` says why
        not.
    blinded : bool
        ``not diagnostics_pass`` (OHDSI practice): the estimates stay in the result for
        audit but are not to be read or shown.
    blinded_reason : str or None
        Why, e.g. ``"diagnostics failed (equipoise 0.00 < 0.20; max |SMD| 0.41 > 0.10 on
        'x')"``; None when not blinded.
    analysed_index : pandas.Index
        Index labels (of the input frame) of the analysed rows (not exported).
    treated, weights, propensity : ndarray
        Per analysed row (not exported).
    """

    treatment: str
    treated_value: Any
    control_value: Any
    method: str
    propensity_model: str
    estimand: str
    horizon_months: float
    ci_method: str
    hazard_ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    log_hr_se: float
    e_value: float
    e_value_ci: float
    unadjusted_hazard_ratio: float
    unadjusted_ci_low: float
    unadjusted_ci_high: float
    rmst_treated: float
    rmst_control: float
    rmst_difference: float
    rmst_ci_low: float
    rmst_ci_high: float
    unadjusted_rmst_difference: float
    risk_difference: float
    rd_ci_low: float
    rd_ci_high: float
    risk_treated: float
    risk_control: float
    unadjusted_risk_difference: float
    unadjusted_rd_ci_low: float
    unadjusted_rd_ci_high: float
    n_eligible: int
    n_eligible_treated: int
    n_eligible_control: int
    n_trimmed: int
    n_treated: int
    n_control: int
    n_response: int
    events: int
    events_treated: int
    events_control: int
    max_abs_smd_before: float
    max_abs_smd_after: float
    balance: list[BalanceRow]
    equipoise: float
    effective_sample_size: float
    ess_treated: float
    ess_control: float
    propensity_summary: dict[str, Any]
    score_histogram: dict[str, Any]
    km: dict[str, dict[str, list[float]]]
    at_risk: dict[str, Any]
    mdrr: float
    diagnostics: list[dict[str, Any]]
    bootstrap: int
    diagnostics_pass: bool
    diagnostic_reasons: list[str]
    blinded: bool
    blinded_reason: str | None
    analysed_index: pd.Index = _internal()
    treated: np.ndarray = _internal()
    weights: np.ndarray = _internal()
    propensity: np.ndarray = _internal()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of the exported fields (floats, ints, lists; NaN -> None)."""
        out = {
            f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("export", True)
        }
        out["treated_value"] = str(self.treated_value)
        out["control_value"] = str(self.control_value)
        return jsonable(out)


# --------------------------------------------------------------------------- checks
def _require_columns(frame: pd.DataFrame, named: dict[str, Sequence[str]]) -> None:
    for role, cols in named.items():
        for col in cols:
            if col not in frame.columns:
                raise ValueError(f"column {col!r} ({role}) is not in the frame")


def _check_outcomes(sub: pd.DataFrame, time: str, event: str) -> tuple[np.ndarray, np.ndarray]:
    tm = pd.to_numeric(sub[time], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(tm) | (tm <= 0)
    if bad.any():
        raise ValueError(
            f"column {time!r} (time) must be finite and > 0 in every analysed row; "
            f"{int(bad.sum())} row(s) are not (first: {tm[bad][:3].tolist()})"
        )
    ev = pd.to_numeric(sub[event], errors="coerce").to_numpy(dtype=float)
    if not np.isin(ev, (0.0, 1.0)).all():
        raise ValueError(f"column {event!r} (event) must be 0/1 in every analysed row")
    return ev, tm


def _check_covariates(sub: pd.DataFrame, numeric: Sequence[str]) -> None:
    """Refuse infinite or absurdly large numeric covariates (NaN is missing: allowed)."""
    for col in numeric:
        x = sub[col].astype(float).to_numpy()
        bad = absurd_values(x)
        if bad.any():
            raise ValueError(
                f"column {col!r} (covariates) has {int(bad.sum())} infinite or absurd "
                f"value(s) (|x| > {MAX_ABS_COVARIATE:.3g}) in the eligible rows "
                f"(first: {x[bad][:3].tolist()}); fix or blank them (missing is allowed)"
            )


def _check_identified(
    ev: np.ndarray,
    tm: np.ndarray,
    t: np.ndarray,
    *,
    treatment: str,
    treated_value: Any,
    control_value: Any,
    time: str,
    event: str,
    rows: str,
) -> None:
    """Refuse outcomes that leave the hazard ratio unidentified.

    Without events in an arm the Cox fit drifts to an HR of 0 or inf with a tiny CI, and
    with one event time there is a single risk set: both give numbers that look like
    findings (HR 3e-9, p = 0; HR 1.00 [0.90, 1.11]) and mean nothing.
    """
    counts = {
        value: (int(arm.sum()), int(ev[arm].sum()))
        for value, arm in ((treated_value, t), (control_value, ~t))
    }
    summary = ", ".join(f"arm {v!r}: {n} row(s), {k} event(s)" for v, (n, k) in counts.items())
    for value, (n, k) in counts.items():
        if k == 0:
            raise ValueError(
                f"column {event!r} (event): arm {value!r} of column {treatment!r} has no "
                f"events in its {n} {rows} row(s); a hazard ratio needs events in both "
                f"arms ({summary})"
            )
    event_times = np.unique(tm[ev == 1])
    if event_times.size < 2:
        raise ValueError(
            f"column {time!r} (time): all {int(ev.sum())} events of the {rows} rows are at "
            f"the same time ({event_times[0]:g}); with no variation in event times the "
            f"hazard ratio is not identified"
        )


def _blinded_reason(equip: float, max_after: float, worst: str | None) -> str | None:
    """The reason a design is blinded, in the thresholds' terms; None when it is not."""
    parts = []
    if not equip > MIN_EQUIPOISE:
        parts.append(f"equipoise {equip:.2f} < {MIN_EQUIPOISE:.2f}")
    if not max_after < MAX_SMD:
        on = f" on {worst!r}" if worst is not None else ""
        parts.append(f"max |SMD| {max_after:.2f} > {MAX_SMD:.2f}{on}")
    return f"diagnostics failed ({'; '.join(parts)})" if parts else None


# --------------------------------------------------------------------------- propensity
# Shallow, shrunken, regularized trees: a propensity model should smooth, not separate;
# extreme scores inflate weights more than they remove bias. A federated or Dask trainer
# leaves out the subsampling (its backends train the same trees).
XGBOOST_PROPENSITY = {
    "n_estimators": 150,
    "learning_rate": 0.05,
    "max_depth": 3,
    "min_child_weight": 5.0,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "reg_lambda": 5.0,
    "device": "cpu",
}


def _crossfit_propensity(
    encoder: CovariateEncoder,
    sub: pd.DataFrame,
    t: np.ndarray,
    folds: np.ndarray,
    model: str,
    seed: int,
    n_jobs: int,
    trainer: Any = None,
) -> np.ndarray:
    """Out-of-fold ``P(treated | x)`` from the one cross-fitter
    (:func:`~oncorwe.effects.aipw.crossfit_nuisances`): XGBoost through the stage's
    trainer, or an L2 logistic regression on the standardized design in this process."""
    if model == "xgboost":
        trainer = EstimatorTrainer() if trainer is None else trainer
        X = encoder.xgboost_frame(sub)
        params = {**XGBOOST_PROPENSITY, "n_jobs": n_jobs}
    else:
        X = pd.DataFrame(encoder.standardizer(sub)(sub)).rename(columns=lambda j: f"x{j}")
        # Newton-Cholesky: exact and fast when rows far outnumber columns
        logistic = LogisticRegression(C=1.0, solver="newton-cholesky", max_iter=200)
        trainer, params = EstimatorTrainer(logistic), {}
    site = trainer.site_column
    fit = crossfit_nuisances(
        X.reset_index(drop=True),
        t.astype(int),
        2,
        folds=folds,
        trainer=trainer,
        propensity_params=params,
        propensity_kind="binary",
        sites=sub[site].astype(str).to_numpy() if site in sub.columns else None,
        seed=seed,
    )
    return np.clip(fit.e[:, 1], _E_CLIP, 1 - _E_CLIP)


def _trim_mask(e: np.ndarray, t: np.ndarray, trim: Any, kind: str) -> np.ndarray:
    if trim is None:
        return np.ones(e.shape[0], dtype=bool)
    lo, hi = float(trim[0]), float(trim[1])
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"trim must be (low, high) with 0 <= low < high <= 1; got {trim!r}")
    if kind == "absolute":
        return (e >= lo) & (e <= hi)
    # Stürmer et al. (2010) asymmetric trimming: drop rows below the low quantile of the
    # treated's propensities and above the high quantile of the controls'.
    return (e >= np.quantile(e[t], lo)) & (e <= np.quantile(e[~t], hi))


def _ps_summary(e: np.ndarray, t: np.ndarray) -> dict[str, Any]:
    qs = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
    out: dict[str, Any] = {}
    for name, sel in (("treated", t), ("control", ~t)):
        out[name] = {f"q{int(q * 100):02d}": float(np.quantile(e[sel], q)) for q in qs}
    out["auc"] = float(roc_auc_score(t.astype(int), e)) if np.unique(t).size == 2 else None
    return out


def _score_histogram(e: np.ndarray, t: np.ndarray) -> dict[str, Any]:
    """Eligible rows per bin of the propensity and of the preference score, per arm
    (:data:`SCORE_BINS` equal bins over [0, 1]): the distributions CohortMethod plots,
    as counts a report can suppress and draw, never the scores themselves."""
    edges = np.linspace(0.0, 1.0, SCORE_BINS + 1)
    pref = preference_score(e, float(t.mean()))
    out: dict[str, Any] = {"bin_edges": edges.tolist(), "equipoise_bounds": list(EQUIPOISE_BOUNDS)}
    for name, arm in (("treated", t), ("control", ~t)):
        out[name] = {
            "propensity_counts": np.histogram(e[arm], bins=edges)[0].astype(int).tolist(),
            "preference_counts": np.histogram(pref[arm], bins=edges)[0].astype(int).tolist(),
        }
    return out


def _baseline_rows(
    bal: pd.DataFrame,
    t: np.ndarray,
    w_after: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    m1: np.ndarray,
    m0: np.ndarray,
) -> list[BalanceRow]:
    """The baseline table: each balance column's arm means before (unweighted, eligible
    rows) and after (``w_after``, the analysed rows weighted; the same weighted mean as
    the SMD after), its SMDs, and the counts behind a proportion."""
    x = bal.to_numpy(dtype=float)
    a1, a0 = _nan_wmean(x[t], w_after[t]), _nan_wmean(x[~t], w_after[~t])
    seen = ~np.isnan(x)
    binary = np.all(np.isin(x, (0.0, 1.0)) | ~seen, axis=0)
    n1, n0 = seen[t].sum(axis=0), seen[~t].sum(axis=0)
    ones1, ones0 = np.nansum(x[t], axis=0), np.nansum(x[~t], axis=0)
    rows = []
    for j, col in enumerate(bal.columns):
        rows.append(
            BalanceRow(
                str(col),
                float(m1[j]),
                float(m0[j]),
                float(before[j]),
                float(after[j]),
                mean_treated_after=float(a1[j]),
                mean_control_after=float(a0[j]),
                n_treated=int(n1[j]),
                n_control=int(n0[j]),
                n_level_treated=int(ones1[j]) if binary[j] else None,
                n_level_control=int(ones0[j]) if binary[j] else None,
            )
        )
    return rows


def _km_on_grid(
    curve: Any, ev: np.ndarray, tm: np.ndarray, grid: np.ndarray, alpha: float
) -> dict[str, list[float]]:
    """One arm's curve as published: ``S``, its band and the rows at risk on ``grid``."""
    lower, upper = curve.confidence_interval(grid, alpha=alpha)
    n_at_risk = at_risk_counts(ev, tm, grid)["n_at_risk"] if np.all(np.diff(grid) > 0) else None
    out = {
        "times": grid.tolist(),
        "survival": curve.at(grid).tolist(),
        "lower": lower.tolist(),
        "upper": upper.tolist(),
    }
    if n_at_risk is not None:
        out["n_at_risk"] = n_at_risk.tolist()
    return out


def _at_risk_times(end: float, step: float | None) -> np.ndarray:
    """0, step, 2 step, ... up to ``end``: the at-risk table's times (the first step of
    :data:`AT_RISK_STEPS` giving at most 8 intervals by default)."""
    if step is None:
        step = next((s for s in AT_RISK_STEPS if end / s <= 8), AT_RISK_STEPS[-1])
    if not (math.isfinite(step) and step > 0):
        raise ValueError(f"at_risk_step must be a finite number > 0; got {step!r}")
    return np.arange(0.0, end + 1e-9, step)


# --------------------------------------------------------------------------- outcomes
@dataclass
class _Outcomes:
    log_hr: float
    rmst1: float
    rmst0: float
    rd: float


def _point_outcomes(
    ev: np.ndarray,
    tm: np.ndarray,
    t: np.ndarray,
    w: np.ndarray,
    y: np.ndarray | None,
    horizon: float,
) -> _Outcomes:
    """Bootstrap-cheap point estimates (numpy Cox with Breslow ties)."""
    km1 = weighted_kaplan_meier(ev[t], tm[t], w[t])
    km0 = weighted_kaplan_meier(ev[~t], tm[~t], w[~t])
    rd = float("nan")
    if y is not None:
        ok = ~np.isnan(y)
        w1, w0 = (w * ok)[t], (w * ok)[~t]
        if w1.sum() > 0 and w0.sum() > 0:
            y0 = np.where(ok, y, 0.0)
            rd = float(np.sum(w1 * y0[t]) / w1.sum() - np.sum(w0 * y0[~t]) / w0.sum())
    return _Outcomes(
        log_hr=cox_coefficient(ev, tm, t.astype(float), w)[0],
        rmst1=km1.rmst(horizon),
        rmst0=km0.rmst(horizon),
        rd=rd,
    )


def _stabilized_weights(e: np.ndarray, t: np.ndarray, mult: np.ndarray | None = None) -> np.ndarray:
    m = np.ones(t.shape[0]) if mult is None else mult
    p = float(np.sum(m * t) / np.sum(m))
    return np.where(t, p / e, (1 - p) / (1 - e))


# --------------------------------------------------------------------------- emulate
def emulate(
    frame: pd.DataFrame,
    *,
    treatment: str,
    treated_value: Any,
    control_value: Any,
    time: str,
    event: str,
    covariates: Sequence[str],
    categorical: Sequence[str] = (),
    response: str | None = None,
    groups: str | None = None,
    eligible: Any = None,
    propensity: str = "xgboost",
    n_splits: int = 5,
    trim: tuple[float, float] | None = (0.01, 0.99),
    trim_kind: str = "absolute",
    stabilized: bool = True,
    method: str = "iptw",
    horizon_months: float = 12.0,
    bootstrap: int = 0,
    km_grid: Any = None,
    at_risk_step: float | None = None,
    min_arm_rows: int = 20,
    alpha: float = 0.05,
    n_jobs: int = 2,
    seed: int = 0,
    trainer: Any = None,
) -> EmulationResult:
    """Emulate a two-arm target trial of ``treated_value`` vs ``control_value``.

    Rows are line starts (time zero = the index date); those with ``eligible`` true and
    ``frame[treatment]`` in ``{treated_value, control_value}`` are the trial's population
    (new users of either strategy). See the module docstring for the analysis plan.

    Parameters
    ----------
    frame : DataFrame of shape (n, ...)
        One row per candidate (e.g. the feature stage's analysis table).
    treatment : str
        Column holding the received treatment.
    treated_value, control_value
        The two strategies compared (hazard ratio = treated vs control).
    time, event : str
        Follow-up in months (> 0) and event indicator (1 = event, 0 = censored).
    covariates : sequence of str
        Baseline confounders (measured before time zero).
    categorical : sequence of str, default ()
        Covariates to one-hot encode whatever their dtype (object columns always are).
    response : str, optional
        Binary outcome (1/0, missing allowed: complete cases) for the risk difference.
    groups : str, optional
        Patient column: cross-fitting folds, clustered variance and bootstrap resampling
        keep a patient's rows together.
    eligible : array-like of bool of shape (n,), optional
        Eligibility mask; ``None`` = every row.
    propensity : {"xgboost", "logistic"}, default "xgboost"
        Cross-fitted propensity model. ``"logistic"``: L2 (C=1) logistic regression on
        one-hot categoricals and standardized numerics, median-imputed with missing
        indicators. ``"xgboost"``: 150 depth-3 trees (learning rate 0.05, lambda 5,
        min_child_weight 5), categoricals native, missing values native, 2 threads.
    n_splits : int, default 5
        Cross-fitting folds (grouped by ``groups``).
    trim : (float, float) or None, default (0.01, 0.99)
        Rows with propensity outside the bounds are removed before weighting (IPTW only;
        matching has its caliper). ``None`` disables trimming.
    trim_kind : {"absolute", "percentile"}, default "absolute"
        ``"absolute"``: keep ``trim[0] <= e <= trim[1]`` (Crump-style bounds).
        ``"percentile"``: keep rows between the ``trim[0]`` quantile of the treated's
        ``e`` and the ``trim[1]`` quantile of the controls' ``e`` (Stürmer et al. 2010).
    stabilized : bool, default True
        Stabilized ATE weights ``P / e`` and ``(1 - P) / (1 - e)`` (``P`` the treated
        share); else ``1 / e`` and ``1 / (1 - e)``.
    method : {"iptw", "matching"}, default "iptw"
        ``"matching"``: greedy 1:1 nearest neighbour on ``logit e`` within 0.2 SD of
        ``logit e``, without replacement, the smaller arm matched into the larger
        (the estimand is the effect in the matched population, close to the smaller
        arm's); the matched rows get weight 1, others 0.
    horizon_months : float, default 12
        RMST horizon: > 0 and within the longest follow-up of the eligible rows.
    bootstrap : int, default 0
        0: Wald CIs from the robust sandwich variance (Cox: lifelines ``robust=True``,
        clustered by ``groups``; risk difference: the weighted-mean influence function,
        clustered), and no RMST CI. ``B > 0``: ``B`` replicates resampling patients
        (``groups``) with replacement; the standard errors of log HR (Breslow-ties
        numpy Cox), RMST difference and risk difference are the replicates' SDs and the
        CIs are Wald intervals around the full-data estimates. The propensity scores
        (and matches) are held fixed across replicates (conservative for the ATE,
        Lunceford & Davidian 2004); the stabilization is recomputed.
    km_grid : array-like, optional
        Times of the reported KM curves; default 61 points from 0 to the shorter arm's
        longest follow-up.
    at_risk_step : float, optional
        Months between the times of the at-risk table (from 0 to the grid's end);
        default the first of :data:`AT_RISK_STEPS` giving at most 8 intervals.
    min_arm_rows : int, default 20
        Fewest eligible, and fewest analysed, rows per arm.
    alpha : float, default 0.05
    n_jobs : int, default 2
        XGBoost threads (1 is faster on a busy machine).
    seed : int, default 0
        Folds, XGBoost, matching order and bootstrap.
    trainer : oncorwe.compute.trainer.Trainer, optional
        Train the ``"xgboost"`` propensity models through it (``compute.training``:
        pooled, federated or Dask; the frame must hold its site column), with the same
        trees but no row or column subsampling. Default: in-process XGBoost.

    Returns
    -------
    EmulationResult
        The unadjusted HR, RD and RMST difference use every eligible row of the two arms
        (before trimming or matching), unweighted, with patient-clustered robust CIs.

    Raises
    ------
    ValueError
        Naming the column (and the arm by its value): a missing column, a treatment value
        absent among the eligible rows, an arm under ``min_arm_rows`` (before or after
        trimming / matching) or too small to cross-fit, a time <= 0 or missing, an event
        not 0/1, an arm without events, a single event time, an infinite or absurd
        (``|x| > 3.4e38``, past float32) covariate, ``horizon_months`` <= 0 or beyond
        the longest follow-up. A design that runs but fails its diagnostics is not
        refused: it is returned ``blinded``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> n = 600
    >>> x = rng.normal(size=n)
    >>> arm = np.where(rng.random(n) < 1 / (1 + np.exp(-x)), "new", "old")
    >>> t = rng.exponential(np.exp(-0.5 * x) * np.where(arm == "new", 1.5, 1.0))
    >>> df = pd.DataFrame({"arm": arm, "x": x, "t": t, "e": 1})
    >>> res = emulate(df, treatment="arm", treated_value="new", control_value="old",
    ...               time="t", event="e", covariates=["x"], propensity="logistic")
    >>> res.max_abs_smd_after < res.max_abs_smd_before
    True
    """
    if propensity not in PROPENSITY_MODELS:
        raise ValueError(f"propensity must be one of {PROPENSITY_MODELS}; got {propensity!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if trim_kind not in TRIM_KINDS:
        raise ValueError(f"trim_kind must be one of {TRIM_KINDS}; got {trim_kind!r}")
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0; got {bootstrap}")
    if not (math.isfinite(float(horizon_months)) and horizon_months > 0):
        raise ValueError(f"horizon_months must be a finite number > 0; got {horizon_months!r}")
    covariates = list(covariates)
    if not covariates:
        raise ValueError("covariates must name at least one column")
    extra = [c for c in categorical if c not in covariates]
    if extra:
        raise ValueError(f"categorical column {extra[0]!r} is not among the covariates")
    _require_columns(
        frame,
        {
            "treatment": [treatment],
            "time": [time],
            "event": [event],
            "covariates": covariates,
            "response": [response] if response is not None else [],
            "groups": [groups] if groups is not None else [],
        },
    )

    # ---- the trial population
    keep = np.ones(len(frame), dtype=bool)
    if eligible is not None:
        elig = np.asarray(eligible)
        if elig.shape != (len(frame),):
            raise ValueError(f"eligible has shape {elig.shape}; expected ({len(frame)},)")
        keep &= elig.astype(bool)
    arm_col = frame[treatment].to_numpy()
    for value, role in ((treated_value, "treated_value"), (control_value, "control_value")):
        if not np.any(keep & (arm_col == value)):
            raise ValueError(
                f"column {treatment!r} (treatment) has no eligible row with {role} {value!r}"
            )
    keep &= (arm_col == treated_value) | (arm_col == control_value)
    sub = frame.loc[keep]
    t_all = sub[treatment].to_numpy() == treated_value
    for value, n_arm in ((treated_value, t_all.sum()), (control_value, (~t_all).sum())):
        if n_arm < min_arm_rows:
            raise ValueError(
                f"column {treatment!r} (treatment): arm {value!r} has {int(n_arm)} eligible "
                f"row(s); at least {min_arm_rows} are needed"
            )
    ev_all, tm_all = _check_outcomes(sub, time, event)
    names = dict(
        treatment=treatment,
        treated_value=treated_value,
        control_value=control_value,
        time=time,
        event=event,
    )
    _check_identified(ev_all, tm_all, t_all, rows="eligible", **names)
    refusal = horizon_refusal(
        horizon_months, tm_all, key="horizon_months", column=time, where=" of the eligible rows"
    )
    if refusal:
        raise ValueError(refusal)
    grp_all = None
    if groups is not None:
        if sub[groups].isna().any():
            raise ValueError(f"column {groups!r} (groups) has missing values")
        grp_all = pd.factorize(sub[groups])[0]
    y_all = None
    if response is not None:
        y_all = pd.to_numeric(sub[response], errors="coerce").to_numpy(dtype=float)
        obs = y_all[~np.isnan(y_all)]
        if not np.isin(obs, (0.0, 1.0)).all():
            raise ValueError(f"column {response!r} (response) must be 0/1 or missing")

    # ---- propensity (cross-fitted by patient)
    encoder = CovariateEncoder(covariates, categorical).fit(sub)
    _check_covariates(sub, encoder.numeric_)
    units = grp_all if grp_all is not None else np.arange(len(sub))
    unit_word = "patient(s)" if grp_all is not None else "row(s)"
    sizes = ", ".join(
        f"arm {v!r}: {int(a.sum())} row(s), {np.unique(units[a]).size} {unit_word}"
        for v, a in ((treated_value, t_all), (control_value, ~t_all))
    )
    if np.unique(units).size < n_splits:
        raise ValueError(
            f"column {treatment!r} (treatment): too few eligible {unit_word} for "
            f"{n_splits}-fold cross-fitting of the propensity ({sizes})"
        )
    folds = grouped_fold_ids(len(sub), grp_all, n_splits=n_splits, seed=seed)
    for k in np.unique(folds):
        train = folds != k
        for value, arm in ((treated_value, t_all), (control_value, ~t_all)):
            if not np.any(train & arm):
                # a propensity model trained without one arm predicts nothing
                raise ValueError(
                    f"column {treatment!r} (treatment): arm {value!r} is too small for "
                    f"{n_splits}-fold cross-fitting of the propensity: one fold holds all "
                    f"its rows ({sizes})"
                )
    e_all = _crossfit_propensity(encoder, sub, t_all, folds, propensity, seed, n_jobs, trainer)
    equip = equipoise(e_all, t_all)

    # ---- trimming / matching -> analysed rows and weights
    if method == "iptw":
        sel = _trim_mask(e_all, t_all, trim, trim_kind)
        t = t_all[sel]
        if t.sum() < min_arm_rows or (~t).sum() < min_arm_rows:
            raise ValueError(
                f"column {treatment!r} (treatment): after propensity trimming arm "
                f"{treated_value!r} has {int(t.sum())} row(s) and arm {control_value!r} "
                f"has {int((~t).sum())}; at least {min_arm_rows} per arm are needed"
            )
        e = e_all[sel]
        w = _stabilized_weights(e, t) if stabilized else np.where(t, 1 / e, 1 / (1 - e))
        pair = None
        estimand = "ATE"
    else:
        logit_e = special.logit(e_all)
        caliper = CALIPER_SD * float(np.std(logit_e, ddof=1))
        pair_all = match_nearest(logit_e, t_all, caliper=caliper, seed=seed)
        sel = pair_all >= 0
        t = t_all[sel]
        if t.sum() < min_arm_rows:
            raise ValueError(
                f"column {treatment!r} (treatment): only {int(t.sum())} pairs of arm "
                f"{treated_value!r} and arm {control_value!r} matched; at least "
                f"{min_arm_rows} are needed"
            )
        e = e_all[sel]
        w = np.ones(int(sel.sum()))
        pair = pair_all[sel]
        estimand = "matched"
    ev, tm = ev_all[sel], tm_all[sel]
    # trimming or matching can take an arm's events (or all but one event time) away
    _check_identified(
        ev, tm, t, rows="analysed (after trimming)" if method == "iptw" else "matched", **names
    )
    grp = None if grp_all is None else grp_all[sel]
    y = None if y_all is None else y_all[sel]

    # ---- balance
    bal = encoder.balance_matrix(sub)
    w_after = np.zeros(len(sub))
    w_after[sel] = w
    # "before" = the eligible population as it was; "after" = the analysed, weighted one
    before, after, m1, m0 = standardized_mean_differences(bal.to_numpy(), t_all, w_after)
    balance = _baseline_rows(bal, t_all, w_after, before, after, m1, m0)
    # NaN: a column never observed in one arm (no SMD to take); inf stays and fails
    max_before = float(np.max(np.abs(before[~np.isnan(before)]), initial=0.0))
    max_after = float(np.max(np.abs(after[~np.isnan(after)]), initial=0.0))

    # ---- outcomes
    cluster = grp if grp is not None else pair
    cox = cox_hazard_ratio(
        ev, tm, t.astype(float), weight=w, cluster=cluster, robust=True, alpha=alpha
    )
    cox_u = cox_hazard_ratio(
        ev_all,
        tm_all,
        t_all.astype(float),
        cluster=grp_all,
        robust=grp_all is not None,
        alpha=alpha,
    )
    km1 = weighted_kaplan_meier(ev[t], tm[t], w[t])
    km0 = weighted_kaplan_meier(ev[~t], tm[~t], w[~t])
    rmst1, rmst0 = km1.rmst(horizon_months), km0.rmst(horizon_months)
    km1u = weighted_kaplan_meier(ev_all[t_all], tm_all[t_all])
    km0u = weighted_kaplan_meier(ev_all[~t_all], tm_all[~t_all])
    grid = (
        np.linspace(0.0, min(tm[t].max(), tm[~t].max()), 61)
        if km_grid is None
        else np.asarray(km_grid, dtype=float)
    )
    km_out = {
        name: _km_on_grid(curve, ev[arm], tm[arm], grid, alpha)
        for name, curve, arm in (("treated", km1, t), ("control", km0, ~t))
    }
    risk_times = _at_risk_times(float(grid.max()), at_risk_step)
    at_risk = {"times": risk_times.tolist()}
    for name, arm in (("treated", t), ("control", ~t)):
        at_risk[name] = {
            k: v.tolist() for k, v in at_risk_counts(ev[arm], tm[arm], risk_times).items()
        }
    nan = float("nan")
    rd = {"risk_difference": nan, "ci_low": nan, "ci_high": nan, "risk_treated": nan,
          "risk_control": nan, "n": 0, "se": nan}  # fmt: skip
    rd_u = dict(rd)
    if y is not None:
        ok = ~np.isnan(y)
        if np.any(ok & t) and np.any(ok & ~t):
            rd = weighted_risk_difference(
                y[ok], t[ok], w[ok], None if cluster is None else cluster[ok], alpha
            )
        ok_u = ~np.isnan(y_all)
        if np.any(ok_u & t_all) and np.any(ok_u & ~t_all):
            rd_u = weighted_risk_difference(
                y_all[ok_u], t_all[ok_u], None, None if grp_all is None else grp_all[ok_u], alpha
            )

    log_hr, se_hr = cox.log_hr, cox.se
    z = stats.norm.ppf(1 - alpha / 2)
    rmst_ci = (nan, nan)
    rd_lo, rd_hi = rd["ci_low"], rd["ci_high"]
    ci_method = "robust"
    if bootstrap > 0:
        ci_method = "bootstrap"
        # patients are the resampling unit (pairs when matching without patient ids)
        unit = grp if grp is not None else (pair if pair is not None else np.arange(t.size))
        _, unit_inv = np.unique(unit, return_inverse=True)
        n_units = int(unit_inv.max()) + 1
        rng = np.random.default_rng([seed, 7])
        reps = []
        for _ in range(bootstrap):
            mult = np.bincount(rng.integers(0, n_units, n_units), minlength=n_units)[unit_inv]
            mult = mult.astype(float)
            if method == "iptw":
                wb = (_stabilized_weights(e, t, mult) if stabilized else w) * mult
            else:
                wb = mult
            reps.append(_point_outcomes(ev, tm, t, wb, y, horizon_months))
        lh = np.array([r.log_hr for r in reps])
        dr = np.array([r.rmst1 - r.rmst0 for r in reps])
        rr = np.array([r.rd for r in reps])
        se_hr = float(np.nanstd(lh, ddof=1))
        se_rmst = float(np.nanstd(dr, ddof=1))
        rmst_ci = (rmst1 - rmst0 - z * se_rmst, rmst1 - rmst0 + z * se_rmst)
        if y is not None and np.isfinite(rd["risk_difference"]):
            se_rd = float(np.nanstd(rr, ddof=1))
            rd_lo = rd["risk_difference"] - z * se_rd
            rd_hi = rd["risk_difference"] + z * se_rd
    hr_lo, hr_hi = float(np.exp(log_hr - z * se_hr)), float(np.exp(log_hr + z * se_hr))
    p_value = float(2 * stats.norm.sf(abs(log_hr / se_hr))) if se_hr > 0 else nan

    # ---- diagnostics
    ess1, ess0 = effective_sample_size(w[t]), effective_sample_size(w[~t])
    reasons = []
    worst = None
    if not max_after < MAX_SMD:
        # the worst covariate, inf counting as the worst (a level absent from one arm)
        worst = max(balance, key=lambda b: abs(b.smd_after) if not np.isnan(b.smd_after) else -1)
        reasons.append(
            f"max |SMD| after adjustment {max_after:.3f} >= {MAX_SMD} (worst: {worst.covariate})"
        )
    if not equip > MIN_EQUIPOISE:
        reasons.append(f"equipoise {equip:.3f} <= {MIN_EQUIPOISE}")
    ps_summary = _ps_summary(e_all, t_all)
    ps_summary["n_trimmed"] = int((~sel).sum())
    worst_any = max(balance, key=lambda b: abs(b.smd_after) if not np.isnan(b.smd_after) else -1)
    mdrr = (
        minimum_detectable_hr(float(ev.sum()), alpha=alpha, allocation=t.sum() / (~t).sum())
        if ev.sum() > 0
        else nan
    )
    diagnostics = [
        {"code": "max_abs_smd", "value": max_after, "threshold": MAX_SMD, "passes": "below",
         "passed": bool(max_after < MAX_SMD), "covariate": worst_any.covariate},
        {"code": "equipoise", "value": equip, "threshold": MIN_EQUIPOISE, "passes": "above",
         "passed": bool(equip > MIN_EQUIPOISE), "covariate": None},
        {"code": "mdrr", "value": mdrr, "threshold": None, "passes": None, "passed": None,
         "covariate": None},
        {"code": "effective_sample_size", "value": ess1 + ess0, "threshold": None,
         "passes": None, "passed": None, "covariate": None},
    ]  # fmt: skip

    return EmulationResult(
        treatment=treatment,
        treated_value=treated_value,
        control_value=control_value,
        method=method,
        propensity_model=propensity,
        estimand=estimand,
        horizon_months=float(horizon_months),
        ci_method=ci_method,
        hazard_ratio=float(np.exp(log_hr)),
        ci_low=hr_lo,
        ci_high=hr_hi,
        p_value=p_value,
        log_hr_se=float(se_hr),
        **e_values_hr(float(np.exp(log_hr)), hr_lo, hr_hi, rare=False),
        unadjusted_hazard_ratio=cox_u.hazard_ratio,
        unadjusted_ci_low=cox_u.ci_low,
        unadjusted_ci_high=cox_u.ci_high,
        rmst_treated=rmst1,
        rmst_control=rmst0,
        rmst_difference=rmst1 - rmst0,
        rmst_ci_low=float(rmst_ci[0]),
        rmst_ci_high=float(rmst_ci[1]),
        unadjusted_rmst_difference=km1u.rmst(horizon_months) - km0u.rmst(horizon_months),
        risk_difference=float(rd["risk_difference"]),
        rd_ci_low=float(rd_lo),
        rd_ci_high=float(rd_hi),
        risk_treated=float(rd["risk_treated"]),
        risk_control=float(rd["risk_control"]),
        unadjusted_risk_difference=float(rd_u["risk_difference"]),
        unadjusted_rd_ci_low=float(rd_u["ci_low"]),
        unadjusted_rd_ci_high=float(rd_u["ci_high"]),
        n_eligible=int(len(sub)),
        n_eligible_treated=int(t_all.sum()),
        n_eligible_control=int((~t_all).sum()),
        n_trimmed=int((~sel).sum()),
        n_treated=int(t.sum()),
        n_control=int((~t).sum()),
        n_response=int(rd["n"]),
        events=int(ev.sum()),
        events_treated=int(ev[t].sum()),
        events_control=int(ev[~t].sum()),
        max_abs_smd_before=max_before,
        max_abs_smd_after=max_after,
        balance=balance,
        equipoise=equip,
        effective_sample_size=ess1 + ess0,
        ess_treated=ess1,
        ess_control=ess0,
        propensity_summary=ps_summary,
        score_histogram=_score_histogram(e_all, t_all),
        km=km_out,
        at_risk=at_risk,
        mdrr=float(mdrr),
        diagnostics=diagnostics,
        bootstrap=int(bootstrap),
        diagnostics_pass=not reasons,
        diagnostic_reasons=reasons,
        blinded=bool(reasons),
        blinded_reason=_blinded_reason(
            equip, max_after, worst.covariate if worst is not None else None
        ),
        analysed_index=sub.index[sel],
        treated=t,
        weights=w,
        propensity=e,
    )
