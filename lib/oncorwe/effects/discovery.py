"""Honest subgroup discovery: candidates on one part of the data, confirmation on another.

For every drug against each row's comparator (the standard of care of the row's cancer
and line), within the strata where the drug is used:

1. **Nuisances** are cross-fitted by patient on the part at hand: a multinomial
   propensity over the stratum group's arms and one pooled outcome model per outcome
   (arm as a categorical feature), all XGBoost.
2. **Scores**: the doubly robust (AIPW) score of each row for drug ``a`` against control,
   ``psi = m_a - m_0 + T_a (Y - m_a) / e - T_0 (Y - m_0) / (1 - e)``, with
   ``e = e_a / (e_a + e_0)`` the propensity within the two-arm comparison; a subgroup's
   effect is the mean of ``psi`` over its rows.
3. **Candidates** (discovery part): rules over the stratum group and the subgroup fields
   (markers, population, line; singles and pairs) plus rules proposed by a shallow tree
   fitted to the scores. Candidates whose discovery p-value is small and whose effect is
   at least ``min_effect`` are kept, near-duplicates removed.
4. **Confirmation** (a held-out part, split by patient): fresh nuisances, fresh scores,
   the AIPW effect with a cluster-robust CI per endpoint, and Benjamini–Hochberg
   q-values over every efficacy test sent to confirmation.

Outcomes: response (risk difference), PFS as the restricted mean survival time up to a
horizon (an inverse-probability-of-censoring weighted outcome, so the same AIPW applies;
difference in months, positive = longer PFS), toxicity (risk difference, positive = more
grade >= 3 events).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.tree import DecisionTreeRegressor

from oncorwe.compute.crossfit import CrossFit, OutcomeData, crossfit_nuisances
from oncorwe.core.errors import OncorweError
from oncorwe.core.privacy import suppress
from oncorwe.core.rules import Clause, Condition
from oncorwe.effects.aipw import aipw_effect, aipw_scores, outside_bounds
from oncorwe.effects.multiplicity import bh_qvalues
from oncorwe.models.encoding import feature_frame
from oncorwe.models.splits import grouped_fold_ids

EFFICACY = ("response", "pfs")
#: The endpoints of the safety family: a subgroup where a drug raises grade >= 3
#: toxicity above its comparator is a finding of its own (own screen, own BH family).
SAFETY = ("toxicity",)


# --------------------------------------------------------------------------- outcomes
def ipcw_rmst(
    time: np.ndarray,
    event: np.ndarray,
    horizon: float,
    strata: np.ndarray | None = None,
    min_followup: float = 0.05,
) -> np.ndarray:
    """IPCW outcome whose conditional mean is the RMST up to ``horizon``.

    ``Y* = min(T, tau) * D / G(min(T, tau)-)`` with ``D = 1`` when the event was seen or
    follow-up reached ``tau``, and ``G`` the Kaplan–Meier survival of the censoring time.
    ``E[Y* | X] = E[min(T*, tau) | X]`` when censoring is independent of the outcome
    within each level of ``strata`` (one KM per level; without ``strata``, one for all).
    A pooled KM is biased wherever follow-up differs by subgroup: rows that started
    near the data cut-off, or in later lines, are censored sooner than average, and
    their RMST (and an effect within them) is underestimated.

    A level whose censoring survival at the horizon is under ``min_followup`` cannot
    reach it (e.g. lines started in the last year of data): its rows get NaN, so they
    leave the PFS analysis (not the others). Elsewhere ``G`` is floored there.

    Parameters
    ----------
    time : ndarray (n,), > 0
    event : ndarray (n,), 1 = event, 0 = censored
    horizon : float
    strata : ndarray (n,), optional
        Censoring strata (any hashable labels).
    min_followup : float, default 0.05

    Returns
    -------
    ndarray (n,)

    Examples
    --------
    >>> ipcw_rmst(np.array([1.0, 2.0, 30.0]), np.array([1, 1, 0]), 12.0).round(2).tolist()
    [1.0, 2.0, 12.0]
    """
    time = np.asarray(time, float)
    event = np.asarray(event, float)
    if strata is None:
        return _ipcw_rmst_one(time, event, horizon, min_followup)
    out = np.full(len(time), np.nan)
    codes = pd.factorize(pd.Series(strata), use_na_sentinel=False)[0]
    for k in np.unique(codes):
        rows = np.flatnonzero(codes == k)
        out[rows] = _ipcw_rmst_one(time[rows], event[rows], horizon, min_followup)
    return out


def _ipcw_rmst_one(
    time: np.ndarray, event: np.ndarray, horizon: float, min_followup: float
) -> np.ndarray:
    t = np.minimum(time, horizon)
    seen = (event == 1) | (time >= horizon)
    # KM of censoring: censoring "events" are the rows with event == 0 before the horizon
    cens = (event == 0) & (time < horizon)
    order = np.argsort(time, kind="stable")
    ts = time[order]
    uniq, first = np.unique(ts, return_index=True)
    at_risk = len(ts) - first
    n_cens = np.add.reduceat(cens[order].astype(float), first)
    surv = np.cumprod(1.0 - n_cens / at_risk)
    # G evaluated just before t: the product over censoring times strictly below t
    idx = np.searchsorted(uniq, t, side="left") - 1
    g = np.where(idx >= 0, surv[np.clip(idx, 0, None)], 1.0)
    at_h = np.searchsorted(uniq, horizon, side="left") - 1
    if at_h >= 0 and surv[at_h] < min_followup:
        return np.full(len(time), np.nan)  # follow-up does not reach the horizon here
    g = np.maximum(g, min_followup)  # bound the weights where follow-up is thin
    return np.where(seen, t / g, 0.0)


NUISANCE_DEFAULTS = {
    "n_estimators": 120,
    "learning_rate": 0.1,
    "max_depth": 4,
    "min_child_weight": 5.0,
    "reg_lambda": 1.0,
    "max_bin": 64,
    "n_jobs": 1,  # many small fits: one thread each avoids OpenMP oversubscription stalls
    "device": "auto",
}


def nuisance_params(params: dict[str, Any]) -> dict[str, Any]:
    """Discovery's nuisance models: :data:`NUISANCE_DEFAULTS` updated by the keys of
    ``params`` it names (``hypothesis.nuisance``), with row and column subsampling (a
    federated or Dask trainer leaves those out: its backends train the same trees)."""
    kw = {**NUISANCE_DEFAULTS, **{k: v for k, v in params.items() if k in NUISANCE_DEFAULTS}}
    return {"subsample": 0.8, "colsample_bytree": 0.8, **kw}


def fit_nuisances(
    F: pd.DataFrame,
    arm: np.ndarray,
    arms: list[str],
    outcomes: list[OutcomeData],
    groups: np.ndarray,
    *,
    n_splits: int,
    seed: int,
    model_params: dict[str, Any],
    trainer: Any = None,
    sites: np.ndarray | None = None,
) -> CrossFit:
    """Cross-fit (grouped by patient) the propensity and the pooled outcome models of one
    stratum group with :func:`~oncorwe.effects.aipw.crossfit_nuisances`.

    Parameters
    ----------
    F : DataFrame (n, p)
        Covariates (confounders and effect modifiers; categoricals as category dtype).
    arm : ndarray of int (n,)
        0 = control, 1..A-1 the other arms of ``arms``.
    outcomes : list of OutcomeData
        Rows with a missing outcome are left out of that outcome's model only; an outcome
        a fold cannot fit (under 20 labelled rows, or one class) stays NaN there.
    groups : ndarray (n,)
        Patient ids: a patient's rows share a fold.
    trainer : trainer, optional
        Where the models train (``params.yaml`` ``compute.training``; default in this
        process); ``sites`` gives each row's site. An arm absent from a training fold gets
        propensity 0 there (its rows are dropped later).
    """
    params = nuisance_params(model_params)
    return crossfit_nuisances(
        F,
        arm,
        len(arms),
        outcomes,
        folds=grouped_fold_ids(len(arm), groups, n_splits=n_splits, seed=seed),
        trainer=trainer,
        propensity_params=params,
        outcome_params=params,
        propensity_kind="multiclass",
        outcome_mode="pooled",
        groups=groups,
        sites=sites,
        seed=seed,
        strict=False,
        min_outcome_rows=20,
    )


def aipw_psi(
    y: np.ndarray, arm: np.ndarray, a: int, e: np.ndarray, m: np.ndarray, *, eps: float = 0.01
) -> np.ndarray:
    """AIPW scores (:func:`~oncorwe.effects.aipw.aipw_scores`) of arm ``a`` vs control on
    the rows of those two arms (NaN elsewhere).

    ``e`` and ``m`` are (n, A); the propensity is :func:`two_arm_propensity`, clipped to
    ``[eps, 1 - eps]``. Rows whose outcome is missing get NaN.
    """
    two = (arm == a) | (arm == 0)
    t = (arm == a).astype(float)
    psi = aipw_scores(y, t, two_arm_propensity(e, a), m[:, a], m[:, 0], eps=eps)
    ok = two & ~np.isnan(y) & ~np.isnan(psi)
    return np.where(ok, psi, np.nan)


def two_arm_propensity(e: np.ndarray, a: int) -> np.ndarray:
    """``P(arm a | x, arm in {a, control})`` from the multi-arm propensities ``e`` (n, A):
    ``e_a / (e_a + e_0)``."""
    return e[:, a] / np.maximum(e[:, a] + e[:, 0], 1e-12)


# --------------------------------------------------------------------------- candidates
def cut_specs(x: pd.Series, cuts: list[float] | dict[str, int]) -> list[dict[str, float]]:
    """Intervals a numeric field's cut points make: ``[65, 75]`` gives ``< 65``,
    ``65 to < 75`` and ``>= 75``; ``{"quantiles": k}`` takes the cut points at the k-quantiles
    of ``x`` (the discovery part, never the confirmation part), at 3 significant digits so a
    rule reads as a clinician would write it. The intervals neither overlap nor leave a gap.

    >>> cut_specs(pd.Series([50, 70, 80]), [65, 75])
    [{'below': 65.0}, {'min': 65.0, 'below': 75.0}, {'min': 75.0}]
    >>> [s.get("min") for s in cut_specs(pd.Series(range(1, 101)), {"quantiles": 4})]
    [None, 25.8, 50.5, 75.2]
    """
    if isinstance(cuts, dict):
        k = int(cuts["quantiles"])
        qs = np.nanquantile(x.to_numpy(dtype=float), np.arange(1, k) / k)
        points = sorted({float(f"{q:.3g}") for q in qs})
    else:
        points = sorted(float(c) for c in cuts)
    edges = [None, *points, None]
    specs: list[dict[str, float]] = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        spec = {}
        if lo is not None:
            spec["min"] = lo
        if hi is not None:
            spec["below"] = hi
        specs.append(spec)
    return specs


def clause_specs(
    frame: pd.DataFrame,
    fields: list[str],
    min_rows: int,
    cuts: dict[str, list[float] | dict[str, int]] | None = None,
) -> list[tuple[str, Any]]:
    """Single clauses worth trying for each subgroup field (as ``(field, spec)``); a numeric
    field with ``cuts`` is split into the intervals of :func:`cut_specs`."""
    out: list[tuple[str, Any]] = []
    cols = frame.columns
    cuts = cuts or {}
    for fld in fields:
        col = Clause(fld).column(cols)
        if col not in cols:
            continue
        x = frame[col]
        if fld in cuts:
            specs = cut_specs(x, cuts[fld])
        elif fld == "line":
            specs = [1, {"min": 2}]
        elif pd.api.types.is_numeric_dtype(x):
            vals = x.dropna().unique()
            if len(vals) == 0:
                continue
            if set(np.unique(vals)) <= {0.0, 1.0}:
                specs = ["positive", "negative"]
            elif np.nanmax(vals) > 1 and fld.isupper():
                specs = [{"min": 50}, {"min": 1, "max": 49}, {"max": 0}]  # TPS tiers
            elif len(vals) <= 5 and np.all(vals == np.round(vals)):
                # a low-cardinality integer code (1/2, ECOG 0-4): one rule per level
                specs = [{"min": float(v), "max": float(v)} for v in np.sort(vals)]
            else:
                continue
        else:
            levels = x.dropna().astype(str).value_counts()
            specs = [lvl for lvl, c in levels.items() if c >= min_rows][:12]
        for spec in specs:
            cond = Condition.parse({fld: spec})
            if cond.mask(frame).sum() >= min_rows:
                out.append((fld, spec))
    return out


def tree_rules(
    clause_masks: np.ndarray,
    names: list[tuple[str, Any]],
    target: np.ndarray,
    *,
    min_leaf: int,
    depth: int = 3,
) -> list[dict[str, Any]]:
    """Conjunctions proposed by a shallow regression tree on binary clause features.

    Only the "clause holds" branches are kept, so each node becomes a conjunction of the
    clauses on its path (a superset of the node where a "does not hold" branch was taken).
    """
    ok = ~np.isnan(target)
    if ok.sum() < 2 * min_leaf or clause_masks.shape[1] == 0:
        return []
    tree = DecisionTreeRegressor(max_depth=depth, min_samples_leaf=min_leaf, random_state=0)
    tree.fit(clause_masks[ok].astype(np.float32), target[ok])
    t = tree.tree_
    rules: list[dict[str, Any]] = []

    def walk(node: int, path: list[int]) -> None:
        if path:
            spec: dict[str, Any] = {}
            for j in path:
                fld, val = names[j]
                if fld in spec:  # two levels of one field: contradictory, skip
                    return
                spec[fld] = val
            rules.append(spec)
        if t.children_left[node] == -1:
            return
        j = int(t.feature[node])
        walk(int(t.children_left[node]), path)  # clause <= 0.5: does not hold
        walk(int(t.children_right[node]), [*path, j])

    walk(0, [])
    return rules


# --------------------------------------------------------------------------- screening
def _screen(psi: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorized mean, SE (sd / sqrt(n)) and n of ``psi`` over each mask row."""
    ok = ~np.isnan(psi)
    p = np.where(ok, psi, 0.0)
    w = masks & ok[None, :]
    n = w.sum(axis=1).astype(float)
    s1 = w @ p
    s2 = w @ (p * p)
    mean = np.divide(s1, n, out=np.zeros_like(s1), where=n > 0)
    var = np.divide(s2 - n * mean**2, n - 1, out=np.full_like(s1, np.inf), where=n > 1)
    se = np.sqrt(np.maximum(var, 0) / np.maximum(n, 1))
    return mean, se, n


@dataclass(frozen=True)
class DiscoveryConfig:
    """Discovery and confirmation settings (``hypothesis.discovery`` in params.yaml);
    frozen: a stage makes a changed copy with ``dataclasses.replace``, never edits one."""

    min_effect: dict[str, float] = field(
        default_factory=lambda: {"response": 0.05, "pfs": 0.5, "toxicity": 0.05}
    )
    discovery_p: float = 0.01
    q: float = 0.05
    min_arm_rows: int = 30  # per arm in a subgroup, in each part
    min_drug_rows: int = 50  # a drug's rows in a stratum before it is compared there
    max_candidates: int = 60
    max_per_comparison: int = 4  # so one strong drug cannot crowd out the others
    max_overlap: float = 0.6
    pairs: bool = True
    tree_depth: int = 3
    n_splits: int = 3
    eps: float = 0.01
    overlap_warn: float = 0.05  # flag a comparison with more rows outside [eps, 1 - eps]
    # nuisance fits run one XGBoost thread each (many small fits: more threads stall in
    # OpenMP); a stratum group of at least parallel_rows rows fits with `threads` (1.43x
    # with 2 threads at 192k rows, 1.02x at 19k: benchmarks/bench_nuisance_threads.py)
    threads: int = 1
    parallel_rows: int = 100_000
    seed: int = 0
    model_params: dict[str, Any] = field(default_factory=dict)
    # numeric subgroup fields split at cut points, or at {"quantiles": k} of the discovery part
    subgroup_cuts: dict[str, Any] = field(default_factory=dict)


@dataclass
class Comparison:
    """Drug ``drug`` against the comparator within one stratum group of one data part."""

    group: str
    drug: str
    arm: int
    rows: np.ndarray  # bool over the part's rows: in strata where the drug is used, arm in {a, 0}
    psi: dict[str, np.ndarray]
    # bool over the part's rows: the comparison's rows whose two-arm propensity (before
    # clipping) is outside [eps, 1 - eps], where AIPW extrapolates from the outcome models
    outside: np.ndarray

    def overlap(self, warn: float, mask: np.ndarray | None = None, min_cell: int = 0) -> dict:
        """Rows of the comparison (within ``mask``), how many are outside the propensity
        bounds, and whether their share exceeds ``warn``. Counts under ``min_cell``
        (zero included) are withheld as None, and so is the share computed from them."""
        rows = self.rows if mask is None else self.rows & mask
        n = int(rows.sum())
        k = int((rows & self.outside).sum())
        return {
            "rows": suppress(n, min_cell),
            "outside_rows": suppress(k, min_cell),
            "outside_share": float(k / n) if n and k >= min_cell else None,
            "poor_overlap": bool(n and k / n > warn),
        }


class PartAnalysis:
    """Nuisances and AIPW scores for every (group, drug) comparison of one data part."""

    def __init__(
        self,
        frame: pd.DataFrame,
        *,
        treatment: str,
        comparator: pd.Series,
        group_col: str | None,
        strata: list[str],
        covariates: list[str],
        outcomes: list[OutcomeData],
        id_col: str,
        cfg: DiscoveryConfig,
        drugs_by_group: dict[str, list[str]] | None = None,
        trainer: Any = None,
        site_col: str | None = None,
    ):
        self.frame = frame.reset_index(drop=True)
        self.comparisons: list[Comparison] = []
        self.drugs_by_group: dict[str, list[str]] = {}
        self.strata_by_drug: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.propensity_gain: dict[str, dict[str, float]] = {}  # group -> covariate -> share
        treat = self.frame[treatment].astype(str).to_numpy()
        comp = comparator.reset_index(drop=True).astype(str).to_numpy()
        is_ctl = treat == comp
        groups = (
            self.frame[group_col].astype(str).to_numpy()
            if group_col
            else np.full(len(self.frame), "all", dtype=object)
        )
        ids = self.frame[id_col].to_numpy()
        site_vals = None if site_col is None else self.frame[site_col].astype(str).to_numpy()
        F = feature_frame(self.frame, covariates)
        stratum_key = (
            self.frame[strata].astype(str).agg("|".join, axis=1).to_numpy()
            if strata
            else np.full(len(self.frame), "", dtype=object)
        )
        for g in sorted(set(groups)):
            gi = np.flatnonzero(groups == g)
            t_g, ctl_g, key_g = treat[gi], is_ctl[gi], stratum_key[gi]
            if drugs_by_group is not None:
                drugs = [d for d in drugs_by_group.get(g, []) if (t_g == d).sum() > 0]
            else:
                counts = pd.Series(t_g[~ctl_g]).value_counts()
                drugs = sorted(d for d, c in counts.items() if c >= cfg.min_drug_rows)
            if not drugs or ctl_g.sum() < cfg.min_drug_rows:
                continue
            arms = ["<comparator>", *drugs]
            arm = arm_codes(t_g, ctl_g, drugs)
            keep = arm >= 0  # rows on a drug not compared here leave the group's models
            rows = gi[keep]
            arm_k = arm[keep]
            params = cfg.model_params
            if len(rows) >= cfg.parallel_rows and cfg.threads > 1:
                params = {**params, "n_jobs": cfg.threads}  # a binned backend keeps one
            fit = fit_nuisances(
                F.iloc[rows].reset_index(drop=True),
                arm_k,
                arms,
                [OutcomeData(o.name, o.y[rows], o.binary) for o in outcomes],
                ids[rows],
                n_splits=cfg.n_splits,
                seed=cfg.seed,
                model_params=params,
                trainer=trainer,
                sites=None if site_vals is None else site_vals[rows],
            )
            self.drugs_by_group[g] = drugs
            self.propensity_gain[g] = fit.propensity_gain
            for j, d in enumerate(drugs, start=1):
                # strata where the drug is used: compare only there (positivity)
                used = pd.Series(key_g[keep][arm_k == j]).value_counts()
                ok_strata = set(used.index[used >= max(1, cfg.min_drug_rows // 5)])
                in_strata = np.isin(key_g[keep], list(ok_strata))
                two = ((arm_k == j) | (arm_k == 0)) & in_strata
                mask = np.zeros(len(self.frame), dtype=bool)
                mask[rows[two]] = True
                outside = np.zeros(len(self.frame), dtype=bool)
                outside[rows[two]] = outside_bounds(two_arm_propensity(fit.e, j)[two], cfg.eps)
                psi = {}
                for o in outcomes:
                    full = np.full(len(self.frame), np.nan)
                    sc = aipw_psi(o.y[rows], arm_k, j, fit.e, fit.m[o.name], eps=cfg.eps)
                    full[rows] = np.where(two, sc, np.nan)
                    psi[o.name] = full
                self.comparisons.append(Comparison(g, d, j, mask, psi, outside))
                self.strata_by_drug[(g, d)] = (
                    [dict(zip(strata, s.split("|"), strict=True)) for s in sorted(ok_strata)]
                    if strata
                    else []
                )
        self.is_treated = {(c.group, c.drug): (treat == c.drug) & c.rows for c in self.comparisons}
        self.ids = ids

    def comparison(self, group: str, drug: str) -> Comparison | None:
        for c in self.comparisons:
            if c.group == group and c.drug == drug:
                return c
        return None


def arm_codes(treatment: np.ndarray, is_control: np.ndarray, drugs: list[str]) -> np.ndarray:
    """Each row's arm in a comparison: 0 the comparator, j the j-th of ``drugs``, -1 a drug
    not compared here."""
    arm = np.full(len(treatment), -1)
    arm[is_control] = 0
    for j, d in enumerate(drugs, start=1):
        arm[(treatment == d) & ~is_control] = j
    return arm


# --------------------------------------------------------------------------- discovery
@dataclass
class Hypothesis:
    drug: str
    group: str
    condition: Condition
    source: str
    discovery: dict[str, dict[str, float]]
    confirmation: dict[str, dict[str, float]] = field(default_factory=dict)
    confirmed: bool = False
    primary: str | None = None
    strata: list[dict[str, Any]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    # why the estimate failed its diagnostics (OHDSI's blinding): kept for audit, never
    # confirmed, never shown as a finding
    blinded: str | None = None
    # "efficacy" (a benefit or harm on response / PFS) or "safety" (more toxicity)
    kind: str = "efficacy"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "drug": self.drug,
            "group": self.group,
            "subgroup": self.condition.describe(),
            "conditions": self.condition.to_spec(),
            "source": self.source,
            "strata": self.strata,
            "confirmed": self.confirmed,
            "blinded": self.blinded is not None,
            "blinded_reason": self.blinded,
            "primary_endpoint": self.primary,
            "discovery": self.discovery,
            "confirmation": self.confirmation,
            **self.extras,
        }


@dataclass(frozen=True)
class HypothesisRecord:
    """A ranked hypothesis as track 1 writes it (``hypotheses.json``: :meth:`Hypothesis.to_dict`
    and its rank) and track 2 reads it back: typed, so a missing key is named where the
    file is read, not deep inside an emulation.

    >>> r = HypothesisRecord.from_dict({"rank": 1, "drug": "d", "subgroup": "cancer = liver",
    ...     "conditions": {"cancer": "liver", "bm_x": "positive"}, "confirmed": True,
    ...     "primary_endpoint": "pfs", "confirmation": {"pfs": {"effect": 1.2}}})
    >>> r.cancer, r.confirmed_effect("pfs")
    ({'cancer': 'liver'}, 1.2)
    """

    rank: int
    drug: str
    subgroup: str
    conditions: dict[str, Any]
    confirmed: bool
    primary_endpoint: str | None = None
    blinded: bool = False
    strata: tuple[dict[str, Any], ...] = ()
    confirmation: dict[str, dict[str, Any]] = field(default_factory=dict)

    REQUIRED = ("rank", "drug", "subgroup", "conditions", "confirmed")

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "hypotheses.json") -> HypothesisRecord:
        """Read one entry of ``source``; a missing key is an error that names it."""
        missing = [k for k in cls.REQUIRED if k not in d]
        if missing:
            raise OncorweError(
                f"{source}: hypothesis {d.get('rank', '?')} lacks {missing} (expected the "
                "hypothesis stage's output; rerun it)"
            )
        return cls(
            rank=int(d["rank"]),
            drug=str(d["drug"]),
            subgroup=str(d["subgroup"]),
            conditions=dict(d["conditions"]),
            confirmed=bool(d["confirmed"]),
            primary_endpoint=d.get("primary_endpoint"),
            blinded=bool(d.get("blinded", False)),
            strata=tuple(d.get("strata") or ()),
            confirmation=dict(d.get("confirmation") or {}),
        )

    @property
    def cancer(self) -> dict[str, Any]:
        """The cancer-type clause of the subgroup alone (empty when it names none)."""
        return {k: v for k, v in self.conditions.items() if k == "cancer"}

    def confirmed_effect(self, endpoint: str) -> float:
        """The confirmation part's estimate on ``endpoint``."""
        return float(self.confirmation[endpoint]["effect"])

    def summary(self) -> dict[str, Any]:
        """What every track 2 entry repeats of its hypothesis."""
        return {
            "rank": self.rank,
            "drug": self.drug,
            "subgroup": self.subgroup,
            "conditions": self.conditions,
            "primary_endpoint": self.primary_endpoint,
        }


def _stats(mean: float, se: float, n: float) -> dict[str, float]:
    z = mean / se if se > 0 else 0.0
    return {
        "effect": float(mean),
        "se": float(se),
        "n": int(n),
        "z": float(z),
        "p_value": float(2 * stats.norm.sf(abs(z))),
    }


def _arm_counts(h: Hypothesis, part: PartAnalysis) -> tuple[np.ndarray, int, int] | None:
    """The hypothesis' rows in ``part`` (its comparison and subgroup) and the treated
    and control counts; None when ``part`` has no such comparison."""
    comp = part.comparison(h.group, h.drug)
    if comp is None:
        return None
    mask = comp.rows & h.condition.mask(part.frame)
    treated = part.is_treated[(h.group, h.drug)]
    return mask, int((mask & treated).sum()), int((mask & ~treated).sum())


def confirmable(h: Hypothesis, part: PartAnalysis, cfg: DiscoveryConfig) -> bool:
    """Whether ``part`` holds at least ``min_arm_rows`` rows per arm in the hypothesis'
    subgroup: :func:`confirm` estimates nothing otherwise. Reads the arms only, never
    an outcome, so checking it before selection reveals nothing about the effect."""
    counts = _arm_counts(h, part)
    return counts is not None and min(counts[1], counts[2]) >= cfg.min_arm_rows


def discover(
    part: PartAnalysis,
    *,
    group_col: str | None,
    fields: list[str],
    cfg: DiscoveryConfig,
    confirm_part: PartAnalysis | None = None,
    untestable: list[Hypothesis] | None = None,
    screen: dict[str, Any] | None = None,
    endpoints: tuple[str, ...] = EFFICACY,
) -> list[Hypothesis]:
    """Screen every candidate rule on the discovery part; return the selected ones.

    ``endpoints`` are the effects a rule is scored on: :data:`EFFICACY` (either
    direction: a benefit, or a harm on response or PFS), or :data:`SAFETY`, where only an
    increase counts (more grade >= 3 toxicity than the comparator) and the candidates are
    ``kind="safety"``.

    With ``screen`` (a dict), records what was looked at, so that an empty answer can
    say why: ``rules`` screened, ``rules_large_enough`` (``min_arm_rows`` per arm) and
    ``min_p`` the smallest two-sided discovery p-value among them (None when none).

    With ``confirm_part``, a candidate the confirmation part cannot estimate (too few
    rows per arm, :func:`confirmable`) gives its place to the next one of its
    comparison: a slot spent on it could only be a miss (a rare subgroup whose broader
    rule is confirmable would otherwise never be tested). Such a candidate is appended
    to ``untestable`` (when given) with its confirmation arm counts in
    ``extras["confirmation_arms"]``: a signal the data cannot yet test is reported, not
    dropped in silence."""
    frame = part.frame
    selected: list[Hypothesis] = []
    for comp in part.comparisons:
        rows = np.flatnonzero(comp.rows)
        sub = frame.iloc[rows]
        treated = part.is_treated[(comp.group, comp.drug)][rows]
        base = {group_col: comp.group} if group_col else {}
        singles = clause_specs(
            sub, [f for f in fields if f != group_col], cfg.min_arm_rows, cfg.subgroup_cuts
        )
        single_masks = np.array(
            [Condition.parse({f: s}).mask(sub) for f, s in singles], dtype=bool
        ).reshape(len(singles), len(sub))
        specs: list[dict[str, Any]] = [dict(base)]
        specs += [{**base, f: s} for f, s in singles]
        if cfg.pairs:
            for i, j in combinations(range(len(singles)), 2):
                if singles[i][0] == singles[j][0]:
                    continue
                both = single_masks[i] & single_masks[j]
                if (both & treated).sum() >= cfg.min_arm_rows and (
                    both & ~treated
                ).sum() >= cfg.min_arm_rows:
                    specs.append(
                        {**base, singles[i][0]: singles[i][1], singles[j][0]: singles[j][1]}
                    )
        sources = ["grid"] * len(specs)
        for name in endpoints:
            if name not in comp.psi:
                continue
            target = comp.psi[name][rows]
            for rule in tree_rules(
                single_masks.T, singles, target, min_leaf=2 * cfg.min_arm_rows, depth=cfg.tree_depth
            ):
                spec = {**base, **rule}
                if spec not in specs:
                    specs.append(spec)
                    sources.append("tree")
        conds = [Condition.parse(s) for s in specs]
        masks = np.array([c.mask(sub) for c in conds], dtype=bool).reshape(len(conds), len(sub))
        # rules that select the same rows are one candidate: keep the simplest (specs are
        # in order of complexity: the whole group, single clauses, pairs, tree rules)
        first: dict[bytes, int] = {}
        for i in range(len(conds)):
            first.setdefault(np.packbits(masks[i]).tobytes(), i)
        uniq = sorted(first.values())
        conds = [conds[i] for i in uniq]
        sources = [sources[i] for i in uniq]
        masks = masks[uniq]
        n_t = (masks & treated[None, :]).sum(axis=1)
        n_c = (masks & ~treated[None, :]).sum(axis=1)
        big = (n_t >= cfg.min_arm_rows) & (n_c >= cfg.min_arm_rows)
        res = {}
        for name in comp.psi:
            res[name] = _screen(comp.psi[name][rows], masks)
        score = np.zeros(len(conds))
        best = np.array([None] * len(conds), dtype=object)
        safety = endpoints == SAFETY
        for name in endpoints:
            if name not in res:
                continue
            mean, se, _ = res[name]
            z = np.divide(mean, se, out=np.zeros_like(mean), where=se > 0)
            worth = (mean if safety else np.abs(mean)) >= cfg.min_effect[name]
            pz = np.where(worth, np.abs(z), 0.0)
            better = pz > score
            score = np.where(better, pz, score)
            best = np.where(better, name, best)
        thresh = stats.norm.isf(cfg.discovery_p / 2)
        if screen is not None:
            screen["rules"] = screen.get("rules", 0) + len(conds)
            screen["rules_large_enough"] = screen.get("rules_large_enough", 0) + int(big.sum())
            if big.any():
                p_min = float(2 * stats.norm.sf(np.max(score[big])))
                old_p = screen.get("min_p")
                screen["min_p"] = p_min if old_p is None else min(old_p, p_min)
        for i in np.flatnonzero(big & (score >= thresh)):
            disc = {name: _stats(res[name][0][i], res[name][1][i], res[name][2][i]) for name in res}
            selected.append(
                Hypothesis(
                    drug=comp.drug,
                    group=comp.group,
                    condition=conds[i],
                    source=sources[i],
                    discovery=disc,
                    primary=str(best[i]),
                    strata=part.strata_by_drug.get((comp.group, comp.drug), []),
                    kind="safety" if safety else "efficacy",
                    extras={"_score": float(score[i]), "_rows": rows[masks[i]]},
                )
            )
    # greedy de-duplication: strongest first; drop a same-drug rule overlapping a kept one.
    # Scores are compared to 9 significant digits, so that floating-point noise (models
    # trained on another backend sum in another order) cannot reorder near-equal rules.
    selected.sort(key=lambda h: -float(f"{h.extras['_score']:.9g}"))
    kept: list[Hypothesis] = []
    per_comp: dict[tuple[str, str], int] = {}
    skipped: list[Hypothesis] = []

    def overlaps(h: Hypothesis, others: list[Hypothesis]) -> bool:
        rows_h = h.extras["_rows_set"]
        for k in others:
            if k.drug != h.drug or k.group != h.group:
                continue
            rows_k = k.extras["_rows_set"]
            if len(rows_h & rows_k) / max(1, len(rows_h | rows_k)) > cfg.max_overlap:
                return True
        return False

    for h in selected:
        if per_comp.get((h.group, h.drug), 0) >= cfg.max_per_comparison:
            continue
        h.extras["_rows_set"] = set(h.extras["_rows"].tolist())
        if overlaps(h, kept):
            continue
        if confirm_part is not None and not confirmable(h, confirm_part, cfg):
            if untestable is not None and not overlaps(h, skipped):
                counts = _arm_counts(h, confirm_part)
                h.extras["confirmation_arms"] = (
                    {"treated": 0, "control": 0}
                    if counts is None
                    else {"treated": counts[1], "control": counts[2]}
                )
                skipped.append(h)
            continue
        kept.append(h)
        per_comp[(h.group, h.drug)] = per_comp.get((h.group, h.drug), 0) + 1
        if len(kept) >= cfg.max_candidates:
            break
    for h in [*kept, *skipped]:
        for k in ("_rows", "_rows_set"):
            h.extras.pop(k, None)
    if untestable is not None:
        untestable.extend(skipped)
    return kept


def _estimate_on(h: Hypothesis, part: PartAnalysis, cfg: DiscoveryConfig, alpha: float) -> None:
    """Each endpoint's AIPW estimate of ``h`` on ``part`` (``h.confirmation``), its arm
    counts and its overlap diagnostic (``h.blinded``); nothing when an arm is too small."""
    h.confirmation = {}
    counts = _arm_counts(h, part)
    if counts is None:
        return
    comp = part.comparison(h.group, h.drug)
    mask, n_t, n_c = counts
    h.extras["n_treated"] = n_t
    h.extras["n_control"] = n_c
    if n_t < cfg.min_arm_rows or n_c < cfg.min_arm_rows:
        return
    h.blinded = overlap_failure(comp, mask, cfg)
    for name, psi in comp.psi.items():
        ok = mask & ~np.isnan(psi)
        if ok.sum() < 2 * cfg.min_arm_rows:
            continue
        inf = aipw_effect(psi[ok], groups=part.ids[ok], alpha=alpha)
        h.confirmation[name] = {
            "effect": float(inf.effect),
            "se": float(inf.se),
            "ci_low": float(inf.ci_lower),
            "ci_high": float(inf.ci_upper),
            "p_value": float(inf.p_value),
            "n": int(inf.n),
        }


def _bh(hyps: list[Hypothesis], endpoints: tuple[str, ...]) -> None:
    """Benjamini-Hochberg q-values over every estimate of ``endpoints`` in ``hyps`` (one
    family), written beside each p-value."""
    tests = [(h, n) for h in hyps for n in endpoints if n in h.confirmation]
    if not tests:
        return
    q = bh_qvalues(np.array([h.confirmation[n]["p_value"] for h, n in tests]))
    for (h, n), qv in zip(tests, q, strict=True):
        h.confirmation[n]["q_value"] = float(qv)


def confirm(
    hyps: list[Hypothesis],
    part: PartAnalysis,
    *,
    cfg: DiscoveryConfig,
    alpha: float = 0.05,
) -> list[Hypothesis]:
    """Estimate each hypothesis on the confirmation part; BH over the efficacy tests (and,
    as a family of its own, over their toxicity estimates)."""
    for h in hyps:
        _estimate_on(h, part, cfg, alpha)
    _bh(hyps, EFFICACY)
    _bh(hyps, SAFETY)
    for h in hyps:
        best = None
        for name in EFFICACY:
            c, d = h.confirmation.get(name), h.discovery.get(name)
            if not c or not d or "q_value" not in c:
                continue
            same_sign = np.sign(c["effect"]) == np.sign(d["effect"])
            if (
                c["q_value"] < cfg.q
                and same_sign
                and (best is None or c["q_value"] < h.confirmation[best]["q_value"])
            ):
                best = name
        # a blinded estimate still counts in BH's family (it was tested), but is no finding
        h.confirmed = best is not None and h.blinded is None
        if best is not None:
            h.primary = best
    return hyps


def confirm_safety(
    hyps: list[Hypothesis],
    part: PartAnalysis,
    *,
    cfg: DiscoveryConfig,
    alpha: float = 0.05,
) -> list[Hypothesis]:
    """Test the safety candidates on the confirmation part: BH over their toxicity
    estimates, a family of its own (a safety screen must not spend the efficacy
    family's error rate, nor hide behind it). A safety hypothesis is confirmed when its
    toxicity increase has ``q < cfg.q`` and was an increase in discovery too, and its
    overlap diagnostic passes (a blinded one is kept for audit)."""
    for h in hyps:
        _estimate_on(h, part, cfg, alpha)
    _bh(hyps, SAFETY)
    for h in hyps:
        c, d = h.confirmation.get("toxicity"), h.discovery.get("toxicity")
        up = bool(c and d and "q_value" in c and c["effect"] > 0 and d["effect"] > 0)
        h.confirmed = up and c["q_value"] < cfg.q and h.blinded is None
        h.primary = "toxicity"
    return hyps


def overlap_failure(comp: Comparison, mask: np.ndarray, cfg: DiscoveryConfig) -> str | None:
    """The blinding reason of a subgroup whose confirmation rows fail the overlap
    diagnostic, or None. More than ``overlap_warn`` of them with a two-arm propensity
    outside ``[eps, 1 - eps]`` (before clipping) means AIPW's estimate there is the
    outcome models' extrapolation: a covariate that records the treatment gives 100 %."""
    # the same rule as the overlap the report shows (Comparison.overlap), counts unsuppressed
    ov = comp.overlap(cfg.overlap_warn, mask)
    if not ov["poor_overlap"]:
        return None
    share = ov["outside_share"]
    return (
        f"diagnostics failed (overlap: {share:.0%} of the subgroup's confirmation rows have a "
        f"propensity outside [{cfg.eps:g}, {1 - cfg.eps:g}], more than {cfg.overlap_warn:.0%})"
    )
