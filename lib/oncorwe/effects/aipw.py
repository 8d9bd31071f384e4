"""Augmented inverse-propensity-weighted (doubly robust) effect estimates.

With propensity ``e(x) = P(T=1 | x)`` and outcome models ``m1(x) = E[Y | T=1, x]``,
``m0(x) = E[Y | T=0, x]``, the AIPW score of row i is (SCIENCE.md, "Treatment effects")::

    psi_i = m1(x_i) - m0(x_i) + T_i (Y_i - m1(x_i)) / e(x_i)
            - (1 - T_i) (Y_i - m0(x_i)) / (1 - e(x_i))

and the effect in a subgroup S is ``mean_{i in S} psi_i``, with standard error
``sd(psi) / sqrt(n_S)``. For a binary Y this is a risk difference. The estimate is
consistent when either the propensity or the outcome models are right, and
``sqrt(n)``-normal when the nuisances are cross-fitted (each row's nuisance predictions
come from models fitted on other folds, a patient's rows kept in one fold) and
converge fast enough.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from oncorwe.compute.crossfit import (
    CrossFit,
    OutcomeData,
    crossfit_nuisances,
)
from oncorwe.models.estimators import OutcomeRegressor, ResponseClassifier
from oncorwe.models.splits import grouped_fold_ids

__all__ = [
    "AIPWEstimator",
    "EffectInference",
    "aipw_effect",
    "aipw_scores",
    "combine_features",
    "crossfit_estimators",
    "default_outcome_model",
    "default_propensity_model",
    "nuisance_models",
    "outside_bounds",
]


@dataclass(frozen=True)
class EffectInference:
    """A point estimate with its normal-approximation inference.

    Attributes
    ----------
    effect : float
    se : float
    ci_lower, ci_upper : float
        ``effect -/+ z_{1-alpha/2} se``.
    p_value : float
        Two-sided, against an effect of 0.
    n : int
        Rows averaged.
    alpha : float
    """

    effect: float
    se: float
    ci_lower: float
    ci_upper: float
    p_value: float
    n: int
    alpha: float

    def to_dict(self) -> dict[str, float]:
        """The fields as a dict (one row of a results table)."""
        return asdict(self)


def aipw_scores(y: Any, t: Any, e: Any, m1: Any, m0: Any, *, eps: float = 0.01) -> np.ndarray:
    """AIPW scores ``psi_i`` (see the module docstring), shape (n,).

    Parameters
    ----------
    y : array-like of shape (n,)
        Outcome (0/1 for a risk difference, or real).
    t : array-like of shape (n,)
        Treatment, 0/1.
    e : array-like of shape (n,)
        Propensity ``P(T=1 | x)``; clipped to ``[eps, 1 - eps]`` so a few near-certain
        assignments cannot dominate the mean (a bias-variance trade: trimming bias is
        small when few rows are clipped; report how many were).
    m1, m0 : array-like of shape (n,)
        Outcome predictions under treatment and under control.
    eps : float, default 0.01
        Propensity clipping bound, in [0, 0.5).

    Returns
    -------
    ndarray of shape (n,)

    Examples
    --------
    >>> aipw_scores([1, 0], [1, 0], [0.5, 0.5], [0.6, 0.6], [0.4, 0.4]).round(3).tolist()
    [1.0, 1.0]
    """
    if not 0.0 <= eps < 0.5:
        raise ValueError(f"eps must be in [0, 0.5); got {eps!r}")
    arrays = [np.asarray(a, dtype=float).ravel() for a in (y, t, e, m1, m0)]
    n = arrays[0].shape[0]
    for name, a in zip(("y", "t", "e", "m1", "m0"), arrays, strict=True):
        if a.shape[0] != n:
            raise ValueError(f"{name} has {a.shape[0]} rows; expected {n}")
    y_, t_, e_, m1_, m0_ = arrays
    if not np.isin(t_, (0.0, 1.0)).all():
        raise ValueError("t must be 0/1")
    e_ = np.clip(e_, eps, 1.0 - eps)
    return m1_ - m0_ + t_ * (y_ - m1_) / e_ - (1.0 - t_) * (y_ - m0_) / (1.0 - e_)


def outside_bounds(e: Any, eps: float) -> np.ndarray:
    """Rows whose propensity is outside ``[eps, 1 - eps]``: where :func:`aipw_scores`
    clips it, and the scores lean on the outcome models (no overlap)."""
    e = np.asarray(e, dtype=float)
    return (e < eps) | (e > 1.0 - eps)


def aipw_effect(
    psi: Any, mask: Any = None, *, groups: Any = None, alpha: float = 0.05
) -> EffectInference:
    """Mean of the scores over a subgroup, with SE, normal CI and two-sided p-value.

    ``effect = mean(psi_S)``; ``se = sd(psi_S) / sqrt(n_S)`` (``ddof=1``). With
    ``groups`` (patients with several rows), the cluster-robust
    ``se = sqrt(G / (G - 1) * sum_g (sum_{i in g} (psi_i - effect))^2) / n_S`` is used
    instead, since a patient's rows are not independent.

    Parameters
    ----------
    psi : array-like of shape (n,)
    mask : array-like of bool of shape (n,), optional
        The subgroup; ``None`` = all rows.
    groups : array-like of shape (n,), optional
    alpha : float, default 0.05

    Returns
    -------
    EffectInference

    Examples
    --------
    >>> r = aipw_effect([0.1, 0.3, 0.2, 0.2])
    >>> round(r.effect, 3), round(r.se, 4)
    (0.2, 0.0408)
    """
    psi_arr = np.asarray(psi, dtype=float).ravel()
    sel = np.ones(psi_arr.shape[0], bool) if mask is None else np.asarray(mask, bool).ravel()
    if sel.shape[0] != psi_arr.shape[0]:
        raise ValueError(f"mask has {sel.shape[0]} rows; expected {psi_arr.shape[0]}")
    x = psi_arr[sel]
    n = x.size
    if n < 2:
        raise ValueError(f"the subgroup has {n} row(s); need at least 2")
    est = float(x.mean())
    if groups is None:
        se = float(x.std(ddof=1) / np.sqrt(n))
    else:
        g = np.asarray(groups).ravel()
        if g.shape[0] != psi_arr.shape[0]:
            raise ValueError(f"groups has {g.shape[0]} rows; expected {psi_arr.shape[0]}")
        _, inv = np.unique(g[sel], return_inverse=True)
        sums = np.bincount(inv.ravel(), weights=x - est)
        n_groups = sums.size
        if n_groups < 2:
            raise ValueError("the subgroup holds a single group; no cluster-robust SE")
        se = float(np.sqrt(n_groups / (n_groups - 1) * np.sum(sums**2)) / n)
    z = float(stats.norm.ppf(1 - alpha / 2))
    if se > 0:
        p = float(2 * stats.norm.sf(abs(est) / se))
    else:
        p = 1.0 if est == 0.0 else 0.0
    return EffectInference(est, se, est - z * se, est + z * se, p, int(n), float(alpha))


# --------------------------------------------------------------------------- nuisances
def default_propensity_model(random_state: int | None = 0) -> ResponseClassifier:
    """Propensity classifier: moderately shallow, slow-learning trees."""
    return ResponseClassifier(
        n_estimators=200,
        learning_rate=0.05,
        max_depth=3,
        min_child_weight=5.0,
        subsample=0.8,
        colsample_bytree=0.8,
        random_state=random_state,
    )


def default_outcome_model(
    binary: bool, random_state: int | None = 0
) -> ResponseClassifier | OutcomeRegressor:
    """Outcome model: a classifier for a 0/1 outcome, a regressor otherwise."""
    cls = ResponseClassifier if binary else OutcomeRegressor
    return cls(
        n_estimators=200,
        learning_rate=0.05,
        max_depth=3,
        min_child_weight=5.0,
        subsample=0.8,
        colsample_bytree=0.8,
        random_state=random_state,
    )


def nuisance_models(
    propensity_model: Any, outcome_model: Any, binary: bool, random_state: int | None
) -> tuple[Any, Any]:
    """The given propensity and outcome models, or the defaults where one is None."""
    prop = default_propensity_model(random_state) if propensity_model is None else propensity_model
    outm = default_outcome_model(binary, random_state) if outcome_model is None else outcome_model
    return prop, outm


def _as_frame(A: Any, prefix: str) -> pd.DataFrame:
    if isinstance(A, pd.DataFrame):
        out = A.reset_index(drop=True)
        out.columns = [str(c) for c in out.columns]
        return out
    arr = np.asarray(A)
    if arr.ndim == 1:
        arr = arr[:, None]
    return pd.DataFrame(arr, columns=[f"{prefix}{j}" for j in range(arr.shape[1])])


def combine_features(X: Any, W: Any = None) -> pd.DataFrame:
    """X and the controls W side by side as one DataFrame (names x0.., w0.. for arrays)."""
    Xf = _as_frame(X, "x")
    if W is None:
        return Xf
    Wf = _as_frame(W, "w")
    if Wf.shape[0] != Xf.shape[0]:
        raise ValueError(f"W has {Wf.shape[0]} rows but X has {Xf.shape[0]}")
    clash = set(Xf.columns) & set(Wf.columns)
    if clash:
        raise ValueError(f"X and W share column names: {sorted(clash)[:5]}")
    return pd.concat([Xf, Wf], axis=1)


def is_binary_outcome(Y: np.ndarray, outcome_type: str) -> bool:
    """Resolve ``outcome_type`` ("auto", "binary", "continuous") against the data."""
    if outcome_type == "auto":
        return bool(np.isin(Y, (0.0, 1.0)).all())
    if outcome_type == "binary":
        if not np.isin(Y, (0.0, 1.0)).all():
            raise ValueError("outcome_type='binary' but Y is not 0/1")
        return True
    if outcome_type == "continuous":
        return False
    raise ValueError(f"outcome_type must be 'auto', 'binary' or 'continuous'; got {outcome_type!r}")


def crossfit_estimators(
    F: pd.DataFrame,
    arm: np.ndarray,
    n_arms: int,
    outcome: OutcomeData,
    *,
    propensity_model: Any,
    outcome_model: Any,
    outcome_mode: str,
    groups: Any,
    n_splits: int,
    seed: int,
) -> CrossFit:
    """:func:`crossfit_nuisances` with model objects (the estimators' API): each fold fits
    a clone of ``propensity_model`` and of ``outcome_model`` in this process, over
    ``n_splits`` folds that keep a patient's (``groups``) rows together."""
    from oncorwe.compute.trainer import EstimatorTrainer

    return crossfit_nuisances(
        F,
        arm,
        n_arms,
        [outcome],
        folds=grouped_fold_ids(F.shape[0], groups, n_splits=n_splits, seed=seed),
        trainer=EstimatorTrainer(propensity_model),
        outcome_trainer=EstimatorTrainer(outcome_model),
        propensity_kind="binary" if n_arms == 2 else "multiclass",
        outcome_mode=outcome_mode,
        groups=groups,
        seed=seed,
    )


# --------------------------------------------------------------------------- estimator
class AIPWEstimator:
    """Cross-fitted AIPW estimate of a binary treatment's effect (EconML-style API).

    Nuisances are XGBoost models by default (:func:`default_propensity_model`,
    :func:`default_outcome_model`), cross-fitted over ``n_splits`` folds that keep a
    patient's rows together (``groups``). ``effect(mask)`` averages the out-of-fold
    AIPW scores over a subgroup of the fitted rows; for a 0/1 outcome it is a risk
    difference (treated minus control). With ``groups``, inference is cluster-robust.

    Parameters
    ----------
    propensity_model : classifier, optional
        Fitted to T; needs ``predict_proba``. Default :func:`default_propensity_model`.
    outcome_model : estimator, optional
        Classifier (binary Y, ``predict_proba``) or regressor. Default
        :func:`default_outcome_model`.
    outcome_mode : {"separate", "pooled"}, default "separate"
        m1 and m0 fitted on treated and control rows separately, or one model with T as
        a feature.
    outcome_type : {"auto", "binary", "continuous"}, default "auto"
        "auto": binary when Y is 0/1.
    n_splits : int, default 5
    eps : float, default 0.01
        Propensity clipping, see :func:`aipw_scores`.
    alpha : float, default 0.05
    random_state : int, default 0
        Seeds the folds and the default models.

    Attributes
    ----------
    psi_ : ndarray of shape (n,)
        Out-of-fold AIPW scores.
    propensity_ : ndarray of shape (n,)
        Out-of-fold ``P(T=1 | x)`` before clipping.
    mu0_, mu1_ : ndarray of shape (n,)
        Out-of-fold outcome predictions under control and treatment.
    fold_ids_ : ndarray of shape (n,)
    n_clipped_ : int
        Rows whose propensity was clipped.
    models_ : list of dict
        Fitted nuisance models per fold.

    Examples
    --------
    >>> import numpy as np
    >>> from oncorwe.models import ResponseClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(2000, 3))
    >>> T = (rng.random(2000) < 1 / (1 + np.exp(-X[:, 0]))).astype(int)
    >>> Y = (rng.random(2000) < 0.3 + 0.2 * T).astype(int)  # true risk difference 0.2
    >>> small = ResponseClassifier(n_estimators=30, max_depth=2, n_jobs=1, device="cpu")
    >>> est = AIPWEstimator(propensity_model=small, outcome_model=small, n_splits=2)
    >>> r = est.fit(Y, T, X=X).effect_inference()
    >>> round(r.effect, 2), round(r.se, 3)
    (0.24, 0.021)
    """

    def __init__(
        self,
        *,
        propensity_model: Any = None,
        outcome_model: Any = None,
        outcome_mode: str = "separate",
        outcome_type: str = "auto",
        n_splits: int = 5,
        eps: float = 0.01,
        alpha: float = 0.05,
        random_state: int = 0,
    ) -> None:
        self.propensity_model = propensity_model
        self.outcome_model = outcome_model
        self.outcome_mode = outcome_mode
        self.outcome_type = outcome_type
        self.n_splits = n_splits
        self.eps = eps
        self.alpha = alpha
        self.random_state = random_state

    def fit(self, Y: Any, T: Any, *, X: Any, W: Any = None, groups: Any = None) -> AIPWEstimator:
        """Cross-fit the nuisances and compute the scores.

        Parameters
        ----------
        Y : array-like of shape (n,)
        T : array-like of shape (n,)
            0/1 treatment.
        X : array-like or DataFrame of shape (n, p)
            Effect modifiers (the subgroups are defined on them).
        W : array-like or DataFrame of shape (n, q), optional
            Further confounders, used by the nuisance models only.
        groups : array-like of shape (n,), optional
            Patient id: a patient's rows share a fold; inference is cluster-robust.

        Returns
        -------
        self
        """
        Y_arr = np.asarray(Y, dtype=float).ravel()
        T_arr = np.asarray(T, dtype=float).ravel()
        if not np.isin(T_arr, (0.0, 1.0)).all():
            raise ValueError("T must be 0/1 (binary treatment)")
        F = combine_features(X, W)
        if not (Y_arr.shape[0] == T_arr.shape[0] == F.shape[0]):
            raise ValueError("Y, T and X must have the same number of rows")
        binary = is_binary_outcome(Y_arr, self.outcome_type)
        prop, outm = nuisance_models(
            self.propensity_model, self.outcome_model, binary, self.random_state
        )
        nuis = crossfit_estimators(
            F,
            T_arr.astype(np.int64),
            2,
            OutcomeData("y", Y_arr, binary),
            propensity_model=prop,
            outcome_model=outm,
            outcome_mode=self.outcome_mode,
            groups=groups,
            n_splits=self.n_splits,
            seed=self.random_state,
        )
        self.propensity_ = nuis.e[:, 1]
        self.mu0_, self.mu1_ = nuis.m["y"][:, 0], nuis.m["y"][:, 1]
        self.psi_ = aipw_scores(Y_arr, T_arr, self.propensity_, self.mu1_, self.mu0_, eps=self.eps)
        self.n_clipped_ = int(outside_bounds(self.propensity_, self.eps).sum())
        self.fold_ids_ = nuis.fold_ids
        self.models_ = nuis.models
        self.groups_ = None if groups is None else np.asarray(groups)
        self.binary_outcome_ = binary
        return self

    def effect_inference(self, mask: Any = None, *, alpha: float | None = None) -> EffectInference:
        """Effect in the subgroup ``mask`` of the fitted rows, with inference."""
        if not hasattr(self, "psi_"):
            raise AttributeError("this AIPWEstimator is not fitted yet; call fit first")
        return aipw_effect(
            self.psi_, mask, groups=self.groups_, alpha=self.alpha if alpha is None else alpha
        )

    def effect(self, mask: Any = None) -> float:
        """Point estimate in the subgroup ``mask`` (all rows when None)."""
        return self.effect_inference(mask).effect
