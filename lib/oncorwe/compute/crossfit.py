"""Cross-fitting: the one routine every analysis fits its nuisance models with.

For each fold k the propensity and outcome models are fitted on the other folds' rows and
predict fold k's, so no row's nuisance prediction comes from a model that saw it (a
patient's rows share a fold). The backend is one argument of the routine, the trainer
(in-process estimators, a federation or a Dask cluster), as EconML's ``_OrthoLearner``
makes the models one argument of its cross-fitting. It lives here, above the trainer and
below both tracks: the effect estimators of track 1 (:mod:`oncorwe.effects.aipw`) and
the target-trial emulation of track 2 (:mod:`oncorwe.trials.emulation`) call it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from oncorwe.compute.trainer import EstimatorTrainer

__all__ = [
    "ARM_COLUMN",
    "CrossFit",
    "OutcomeData",
    "crossfit_nuisances",
    "predict_nuisances",
    "predict_outcome",
]

ARM_COLUMN = "__arm__"


def predict_outcome(model: Any, F: pd.DataFrame, binary: bool) -> np.ndarray:
    if binary:
        return model.predict_proba(F)[:, 1]
    return model.predict(F)


@dataclass
class OutcomeData:
    """One outcome for the cross-fitter: its values (NaN = not observed) and its kind."""

    name: str
    y: np.ndarray
    binary: bool


@dataclass
class CrossFit:
    """What :func:`crossfit_nuisances` returns.

    Attributes
    ----------
    e : ndarray of shape (n, n_arms)
        Out-of-fold propensities (0 for an arm absent from a row's training folds).
    m : dict of str to ndarray of shape (n, n_arms)
        Per outcome, out-of-fold predictions with the arm set to each level (NaN where a
        fold could not fit that outcome).
    fold_ids : ndarray of shape (n,)
    models : list of dict
        Per fold: ``propensity`` and ``outcomes`` (name -> one pooled model, or a list
        per arm).
    propensity_gain : dict of str to float
        Each feature's share of the propensity models' total gain over the folds (models
        that expose a booster, i.e. the in-process ones).
    """

    e: np.ndarray
    m: dict[str, np.ndarray]
    fold_ids: np.ndarray
    models: list[dict[str, Any]]
    propensity_gain: dict[str, float]


def _with_arm(F: pd.DataFrame, rows: np.ndarray, arm: Any, n_arms: int) -> pd.DataFrame:
    """``F``'s ``rows`` with the arm as a categorical feature (last), levels 0..n_arms-1."""
    codes = np.broadcast_to(np.asarray(arm), (len(rows),))
    return F.iloc[rows].assign(**{ARM_COLUMN: pd.Categorical(codes, categories=range(n_arms))})


def crossfit_nuisances(
    F: pd.DataFrame,
    arm: np.ndarray,
    n_arms: int,
    outcomes: Sequence[OutcomeData] = (),
    *,
    folds: np.ndarray,
    trainer: Any = None,
    outcome_trainer: Any = None,
    propensity_params: Mapping[str, Any] | None = None,
    outcome_params: Mapping[str, Any] | None = None,
    propensity_kind: str = "multiclass",
    outcome_mode: str = "pooled",
    groups: Any = None,
    sites: Any = None,
    seed: int = 0,
    strict: bool = True,
    min_outcome_rows: int = 1,
) -> CrossFit:
    """Cross-fit the propensity and outcome models: the one routine every analysis of the
    platform fits its nuisances with, the backend one argument of it (EconML's
    ``_OrthoLearner`` idea).

    For each fold k, the models are fitted on the other folds' rows through ``trainer``
    (anything with :meth:`oncorwe.compute.trainer.Trainer.fit`: in-process estimators,
    a federation or a Dask cluster; default the in-process
    :class:`~oncorwe.compute.trainer.EstimatorTrainer`) and predict fold k's rows, so no
    row's nuisance comes from a model that saw it. Fold k's propensity model is seeded
    ``seed + k``, its outcome models ``seed + 100 + k``.

    Parameters
    ----------
    F : DataFrame of shape (n, p)
        Nuisance features.
    arm : ndarray of int of shape (n,)
        0 = control, 1..n_arms-1 the other arms.
    n_arms : int
    outcomes : sequence of OutcomeData
        Rows with a missing value are left out of that outcome's models only.
    folds : ndarray of int of shape (n,)
        Fold of each row (:func:`oncorwe.models.splits.grouped_fold_ids`: a patient's rows
        share one).
    trainer, outcome_trainer : trainer, optional
        ``outcome_trainer`` defaults to ``trainer``.
    propensity_params, outcome_params : mapping, optional
        The models' parameters (scikit-learn spelling); a binned backend leaves out what
        is its own (:data:`oncorwe.compute.trainer.BACKEND_OWNED`).
    propensity_kind : {"multiclass", "binary"}
    outcome_mode : {"pooled", "separate"}
        One outcome model with the arm as a categorical feature, predicted with the arm
        set to each level; or one model per arm on that arm's rows.
    groups, sites : array-like of shape (n,), optional
        Patient ids (for an estimator's early-stopping split) and each row's site (for
        a federated or Dask trainer).
    strict : bool, default True
        Raise when a training fold lacks an arm or an outcome cannot be fitted. With
        False an absent arm gets propensity 0 in that fold and such an outcome is left
        NaN (the caller drops those rows).
    min_outcome_rows : int, default 1
        Fewer labelled training rows than this: the outcome cannot be fitted.

    Returns
    -------
    CrossFit
    """
    if outcome_mode not in ("separate", "pooled"):
        raise ValueError(f"outcome_mode must be 'separate' or 'pooled'; got {outcome_mode!r}")
    trainer = EstimatorTrainer() if trainer is None else trainer
    outcome_trainer = trainer if outcome_trainer is None else outcome_trainer
    n, A = len(arm), n_arms
    g = None if groups is None else np.asarray(groups)
    site = trainer.site_column
    # each row's site beside the features, unless it is one of them (a hospital covariate)
    base = F if sites is None or site in F.columns else F.assign(**{site: np.asarray(sites)})
    model_columns = {*F.columns, ARM_COLUMN}  # a model's features: F's, and the arm
    e = np.full((n, A), np.nan)
    m = {o.name: np.full((n, A), np.nan) for o in outcomes}
    F_arm = _with_arm(base, np.arange(n), arm, A) if outcome_mode == "pooled" else None
    models: list[dict[str, Any]] = []
    gain: dict[str, float] = {}

    def fit(tr, kind, frame, label, params, seed_k, rows):
        return tr.fit(
            kind,
            frame,
            features=[c for c in frame.columns if c in model_columns],
            label=label,
            params={**dict(params or {}), "random_state": seed_k},
            groups=None if g is None else g[rows],
            **({"num_class": int(frame[label].max()) + 1} if kind == "multiclass" else {}),
        )

    for k in (int(v) for v in np.unique(folds)):
        tr, te = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        present = np.bincount(arm[tr], minlength=A) > 0
        if strict and not present.all():
            raise ValueError(
                f"training part of fold {k} lacks arm(s) {np.flatnonzero(~present).tolist()}; "
                "use fewer folds or check the treatment column"
            )
        if present.sum() < 2:
            raise ValueError(f"fold {k} has fewer than two arms; too few rows per arm")
        # arms absent from a training fold get propensity 0 there (rows dropped later)
        codes = np.cumsum(present) - 1
        frame = base.iloc[tr].assign(_arm_code=codes[arm[tr]])
        prop = fit(trainer, propensity_kind, frame, "_arm_code", propensity_params, seed + k, tr)
        booster = getattr(prop, "booster_", None)
        if booster is not None:
            for f, v in booster.get_score(importance_type="total_gain").items():
                gain[f] = gain.get(f, 0.0) + v
        pk = prop.predict_proba(F.iloc[te])
        e[np.ix_(te, np.flatnonzero(present))] = pk
        e[np.ix_(te, np.flatnonzero(~present))] = 0.0
        fitted: dict[str, Any] = {}
        for o in outcomes:
            kind = "binary" if o.binary else "regression"
            arms_rows = [tr] if outcome_mode == "pooled" else [tr[arm[tr] == a] for a in range(A)]
            per_arm = []
            for rows in arms_rows:
                ok = rows[~np.isnan(o.y[rows])]
                if len(ok) < min_outcome_rows or (o.binary and np.unique(o.y[ok]).size < 2):
                    if strict:
                        raise ValueError(
                            f"outcome {o.name!r} cannot be fitted in the training part of fold "
                            f"{k} ({len(ok)} labelled row(s), or a single value); use "
                            "outcome_mode='pooled' or fewer folds"
                        )
                    break
                src = F_arm if F_arm is not None else base
                per_arm.append(
                    fit(
                        outcome_trainer,
                        kind,
                        src.iloc[ok].assign(_y=o.y[ok]),
                        "_y",
                        outcome_params,
                        seed + 100 + k,
                        ok,
                    )
                )
            else:
                fitted[o.name] = per_arm[0] if outcome_mode == "pooled" else per_arm
                for a in range(A):
                    if outcome_mode == "pooled":
                        model, X_te = per_arm[0], _with_arm(F, te, a, A)
                    else:
                        model, X_te = per_arm[a], F.iloc[te]
                    m[o.name][te, a] = predict_outcome(model, X_te, o.binary)
        models.append({"propensity": prop, "outcomes": fitted})
    total = sum(gain.values())
    shares = {f: v / total for f, v in sorted(gain.items(), key=lambda kv: -kv[1])} if total else {}
    return CrossFit(e=e, m=m, fold_ids=np.asarray(folds), models=models, propensity_gain=shares)


def predict_nuisances(
    models: list[dict[str, Any]], F: pd.DataFrame, n_arms: int, *, outcome: str, binary: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Propensities and ``outcome``'s predictions on new rows, averaged over the fold
    models of a :class:`CrossFit`.

    Returns
    -------
    e, m : ndarray of shape (n, n_arms)
    """
    e = np.zeros((F.shape[0], n_arms))
    m = np.zeros((F.shape[0], n_arms))
    rows = np.arange(F.shape[0])
    for fold in models:
        e += fold["propensity"].predict_proba(F)
        out = fold["outcomes"][outcome]
        for a in range(n_arms):
            if isinstance(out, list):
                m[:, a] += predict_outcome(out[a], F, binary)
            else:
                m[:, a] += predict_outcome(out, _with_arm(F, rows, a, n_arms), binary)
    return e / len(models), m / len(models)
