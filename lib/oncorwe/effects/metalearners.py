"""Conditional average treatment effect (CATE) learners: T-learner and DR-learner.

Both follow EconML's API: ``fit(Y, T, *, X, W=None, groups=None)`` returns ``self``;
``effect(X)`` returns the CATE per row. ``T`` may hold several labels, one of them the
``control`` (a constructor argument); effects are each treatment vs the control, in
the order of ``treatments_``.

The DR-learner (Kennedy 2023) regresses, for each treatment k, the doubly robust
pseudo-outcome built from cross-fitted nuisances::

    psi_k,i = m_k(x_i) - m_0(x_i) + 1{T_i=k} (Y_i - m_k(x_i)) / e_k(x_i)
              - 1{T_i=0} (Y_i - m_0(x_i)) / e_0(x_i)

on X, where ``e_a(x) = P(T=a | x)`` (multinomial propensity) and
``m_a(x) = E[Y | T=a, x]``. The pseudo-outcomes are very noisy, so the default final
model is a heavily regularized XGBoost regressor (depth 2, ``min_child_weight=100``,
``reg_lambda=50``, 50 rounds at rate 0.05): an untuned depth-6 learner chases the
noise and estimates rare effects worse than predicting zero.

Tuning should use an effect-aware loss on held-out rows: :func:`dr_pseudo_outcome_loss`
(``mean (psi - tau_hat)^2``) or :func:`r_loss` (Nie & Wager's R-loss).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from oncorwe.compute.crossfit import OutcomeData, predict_nuisances, predict_outcome
from oncorwe.effects.aipw import (
    EffectInference,
    aipw_effect,
    combine_features,
    crossfit_estimators,
    default_outcome_model,
    is_binary_outcome,
    nuisance_models,
)
from oncorwe.models.estimators import OutcomeRegressor, fit_grouped

__all__ = [
    "DRLearner",
    "TLearner",
    "default_final_model",
    "dr_pseudo_outcome_loss",
    "r_loss",
]


def default_final_model(random_state: int | None = 0) -> OutcomeRegressor:
    """The DR-learner's final regressor: shallow, strongly regularized, few rounds."""
    return OutcomeRegressor(
        n_estimators=50,
        learning_rate=0.05,
        max_depth=2,
        min_child_weight=100.0,
        subsample=0.8,
        colsample_bytree=1.0,
        reg_lambda=50.0,
        random_state=random_state,
    )


def dr_pseudo_outcome_loss(psi: Any, tau: Any) -> float:
    """Held-out DR loss ``mean((psi - tau_hat)^2)``.

    ``psi`` must be pseudo-outcomes whose nuisances were not fitted on these rows
    (:meth:`DRLearner.pseudo_outcomes` on a held-out set, or the out-of-fold
    ``DRLearner.pseudo_outcomes_``). Up to a constant not depending on ``tau_hat`` it
    estimates ``mean((tau - tau_hat)^2)``, so it ranks CATE models.

    Parameters
    ----------
    psi, tau : array-like of shape (n,) or (n, k)

    Examples
    --------
    >>> dr_pseudo_outcome_loss([1.0, -1.0], [0.0, 0.0])
    1.0
    """
    p = np.asarray(psi, dtype=float)
    t = np.asarray(tau, dtype=float)
    if p.shape != t.shape:
        raise ValueError(f"psi has shape {p.shape} but tau has shape {t.shape}")
    return float(np.mean((p - t) ** 2))


def r_loss(y: Any, t: Any, tau: Any, *, e: Any, m: Any) -> float:
    """R-loss (Nie & Wager 2021) for a binary treatment.

    ``mean(((Y - m(x)) - (T - e(x)) tau_hat(x))^2)`` with ``m(x) = E[Y | x]`` (the
    outcome mean over both arms) and ``e(x) = P(T=1 | x)``, both cross-fitted. For a
    treatment k among several, use the rows with ``T`` in {control, k}, ``t = 1{T=k}``
    and ``e = e_k / (e_k + e_0)``.

    Parameters
    ----------
    y, t, tau, e, m : array-like of shape (n,)

    Examples
    --------
    >>> r_loss([1.0, 0.0], [1, 0], [0.5, 0.5], e=[0.5, 0.5], m=[0.5, 0.5])
    0.0625
    """
    arrays = [np.asarray(a, dtype=float).ravel() for a in (y, t, tau, e, m)]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError("y, t, tau, e and m must have the same length")
    y_, t_, tau_, e_, m_ = arrays
    return float(np.mean(((y_ - m_) - (t_ - e_) * tau_) ** 2))


def _encode_arms(T: Any, control: Any) -> tuple[np.ndarray, list[Any]]:
    """Arm codes (0 = control, 1.. = treatments in sorted order) and the treatment labels."""
    T_arr = np.asarray(T).ravel()
    labels = pd.unique(T_arr)
    if control not in set(labels.tolist()):
        raise ValueError(
            f"control={control!r} does not occur in T (labels: {sorted(labels.tolist())[:10]})"
        )
    treatments = sorted(lbl for lbl in labels.tolist() if lbl != control)
    if not treatments:
        raise ValueError("T holds only the control label; nothing to compare")
    lookup = {control: 0, **{lbl: i + 1 for i, lbl in enumerate(treatments)}}
    codes = np.array([lookup[v] for v in T_arr.tolist()], dtype=np.int64)
    return codes, treatments


class _CateMixin:
    treatments_: list[Any]

    def _cate(self, X: Any) -> np.ndarray:  # (n, k)
        raise NotImplementedError

    def effect(self, X: Any, *, treatment: Any = None) -> np.ndarray:
        """CATE of each treatment vs control.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n, p)
        treatment : label, optional
            Return only this treatment's effect, shape (n,).

        Returns
        -------
        ndarray
            Shape (n,) for one treatment (or when ``treatment`` is given), else (n, k)
            with columns in ``treatments_`` order.
        """
        if not hasattr(self, "treatments_"):
            raise AttributeError(f"this {type(self).__name__} is not fitted yet; call fit first")
        tau = self._cate(X)
        if treatment is not None:
            if treatment not in self.treatments_:
                raise ValueError(f"unknown treatment {treatment!r}; fitted: {self.treatments_}")
            return tau[:, self.treatments_.index(treatment)]
        return tau[:, 0] if tau.shape[1] == 1 else tau

    def effect_frame(self, X: Any) -> pd.DataFrame:
        """CATE as a DataFrame with one column per treatment label."""
        tau = self._cate(X)
        return pd.DataFrame(tau, columns=[str(t) for t in self.treatments_])


class TLearner(_CateMixin):
    """T-learner: one outcome model per arm, ``tau_k(x) = m_k(x) - m_control(x)``.

    Parameters
    ----------
    outcome_model : estimator, optional
        Classifier (0/1 Y; ``predict_proba``) or regressor, cloned per arm. Default
        :func:`oncorwe.effects.aipw.default_outcome_model`.
    control : label, default 0
        The value of T that marks the control arm.
    outcome_type : {"auto", "binary", "continuous"}, default "auto"
    random_state : int, default 0

    Attributes
    ----------
    treatments_ : list
    models_ : dict of label to fitted estimator (control included)
    binary_outcome_ : bool

    Examples
    --------
    >>> import numpy as np
    >>> from oncorwe.models import OutcomeRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(600, 2)); T = rng.integers(0, 2, 600)
    >>> Y = X[:, 0] + 2.0 * T + rng.normal(size=600)
    >>> reg = OutcomeRegressor(n_estimators=50, max_depth=2, n_jobs=1, device="cpu")
    >>> tl = TLearner(outcome_model=reg).fit(Y, T, X=X)
    >>> bool(abs(tl.effect(X).mean() - 2.0) < 0.3)
    True
    """

    def __init__(
        self,
        *,
        outcome_model: Any = None,
        control: Any = 0,
        outcome_type: str = "auto",
        random_state: int = 0,
    ) -> None:
        self.outcome_model = outcome_model
        self.control = control
        self.outcome_type = outcome_type
        self.random_state = random_state

    def fit(self, Y: Any, T: Any, *, X: Any, W: Any = None, groups: Any = None) -> TLearner:
        """Fit one outcome model per arm on X.

        ``W`` is not supported (the models' effect is read at X alone; put confounders
        in X). ``groups`` is passed to the models' grouped early stopping.
        """
        if W is not None:
            raise ValueError("TLearner uses X only: put the controls W into X")
        Y_arr = np.asarray(Y, dtype=float).ravel()
        codes, treatments = _encode_arms(T, self.control)
        F = combine_features(X)
        if not (Y_arr.shape[0] == codes.shape[0] == F.shape[0]):
            raise ValueError("Y, T and X must have the same number of rows")
        binary = is_binary_outcome(Y_arr, self.outcome_type)
        base = (
            default_outcome_model(binary, self.random_state)
            if self.outcome_model is None
            else self.outcome_model
        )
        g = None if groups is None else np.asarray(groups)
        models = {}
        for a, label in enumerate([self.control, *treatments]):
            rows = np.flatnonzero(codes == a)
            models[label] = fit_grouped(
                clone(base), F.iloc[rows], Y_arr[rows], groups=None if g is None else g[rows]
            )
        self.models_ = models
        self.treatments_ = treatments
        self.binary_outcome_ = binary
        return self

    def _cate(self, X: Any) -> np.ndarray:
        F = combine_features(X)
        m0 = predict_outcome(self.models_[self.control], F, self.binary_outcome_)
        return np.column_stack(
            [
                predict_outcome(self.models_[k], F, self.binary_outcome_) - m0
                for k in self.treatments_
            ]
        )


class DRLearner(_CateMixin):
    """Doubly robust learner with cross-fitted, patient-grouped nuisances.

    See the module docstring for the pseudo-outcome. Nuisances (multinomial propensity
    on X and W; outcome models per arm, or pooled) are cross-fitted over ``n_splits``
    folds that keep each ``groups`` value in one fold; a regularized final model per
    treatment regresses the out-of-fold pseudo-outcome on X.

    Parameters
    ----------
    propensity_model : classifier, optional
        Fitted to the arm codes (0 = control); multiclass when there are several
        treatments. Default :func:`oncorwe.effects.aipw.default_propensity_model`.
    outcome_model : estimator, optional
        Default :func:`oncorwe.effects.aipw.default_outcome_model`.
    final_model : regressor, optional
        Default :func:`default_final_model`.
    control : label, default 0
    outcome_mode : {"separate", "pooled"}, default "separate"
    outcome_type : {"auto", "binary", "continuous"}, default "auto"
    n_splits : int, default 5
    eps : float, default 0.01
        Propensities are clipped to ``[eps, 1 - eps]`` in the pseudo-outcome.
    random_state : int, default 0

    Attributes
    ----------
    treatments_ : list
        Treatment labels (T's labels other than ``control``), sorted.
    pseudo_outcomes_ : ndarray of shape (n, k)
        Out-of-fold pseudo-outcomes.
    propensities_ : ndarray of shape (n, k + 1)
        Out-of-fold ``P(T=a | x)``, column 0 the control.
    outcome_predictions_ : ndarray of shape (n, k + 1)
        Out-of-fold ``E[Y | T=a, x]``.
    fold_ids_ : ndarray of shape (n,)
    nuisance_models_ : list of dict (per fold)
    final_models_ : dict of label to fitted regressor

    Examples
    --------
    >>> import numpy as np
    >>> from oncorwe.models import OutcomeRegressor, ResponseClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(2000, 2)); T = rng.integers(0, 2, 2000)
    >>> Y = X[:, 0] + 1.0 * T * (X[:, 1] > 0) + rng.normal(size=2000)
    >>> clf = ResponseClassifier(n_estimators=20, max_depth=2, n_jobs=1, device="cpu")
    >>> reg = OutcomeRegressor(n_estimators=50, max_depth=2, n_jobs=1, device="cpu")
    >>> dr = DRLearner(propensity_model=clf, outcome_model=reg, n_splits=2).fit(Y, T, X=X)
    >>> tau = dr.effect(X)
    >>> bool(tau[X[:, 1] > 0].mean() > tau[X[:, 1] <= 0].mean())
    True
    """

    def __init__(
        self,
        *,
        propensity_model: Any = None,
        outcome_model: Any = None,
        final_model: Any = None,
        control: Any = 0,
        outcome_mode: str = "separate",
        outcome_type: str = "auto",
        n_splits: int = 5,
        eps: float = 0.01,
        random_state: int = 0,
    ) -> None:
        self.propensity_model = propensity_model
        self.outcome_model = outcome_model
        self.final_model = final_model
        self.control = control
        self.outcome_mode = outcome_mode
        self.outcome_type = outcome_type
        self.n_splits = n_splits
        self.eps = eps
        self.random_state = random_state

    def _pseudo(self, Y: np.ndarray, codes: np.ndarray, e: np.ndarray, m: np.ndarray) -> np.ndarray:
        # the same clipping as aipw_scores, so a binary T gives exactly its scores
        e = np.clip(e, self.eps, 1.0 - self.eps)
        k = e.shape[1] - 1
        y0 = (codes == 0) * (Y - m[:, 0]) / e[:, 0]
        return np.column_stack(
            [
                m[:, a] - m[:, 0] + (codes == a) * (Y - m[:, a]) / e[:, a] - y0
                for a in range(1, k + 1)
            ]
        )

    def fit(self, Y: Any, T: Any, *, X: Any, W: Any = None, groups: Any = None) -> DRLearner:
        """Cross-fit the nuisances, build pseudo-outcomes, fit the final models.

        Parameters
        ----------
        Y : array-like of shape (n,)
        T : array-like of shape (n,)
            Arm labels, including ``control``.
        X : array-like or DataFrame of shape (n, p)
            Effect modifiers (nuisances and final model).
        W : array-like or DataFrame of shape (n, q), optional
            Further confounders (nuisances only).
        groups : array-like of shape (n,), optional
            Patient id: a patient's rows share a fold.

        Returns
        -------
        self
        """
        Y_arr = np.asarray(Y, dtype=float).ravel()
        codes, treatments = _encode_arms(T, self.control)
        Xf = combine_features(X)
        F = combine_features(X, W)
        if not (Y_arr.shape[0] == codes.shape[0] == F.shape[0]):
            raise ValueError("Y, T and X must have the same number of rows")
        binary = is_binary_outcome(Y_arr, self.outcome_type)
        prop, outm = nuisance_models(
            self.propensity_model, self.outcome_model, binary, self.random_state
        )
        final = (
            default_final_model(self.random_state) if self.final_model is None else self.final_model
        )
        n_arms = len(treatments) + 1
        nuis = crossfit_estimators(
            F,
            codes,
            n_arms,
            OutcomeData("y", Y_arr, binary),
            propensity_model=prop,
            outcome_model=outm,
            outcome_mode=self.outcome_mode,
            groups=groups,
            n_splits=self.n_splits,
            seed=self.random_state,
        )
        psi = self._pseudo(Y_arr, codes, nuis.e, nuis.m["y"])
        self.final_models_ = {
            label: fit_grouped(clone(final), Xf, psi[:, j], groups=groups)
            for j, label in enumerate(treatments)
        }
        self.treatments_ = treatments
        self.pseudo_outcomes_ = psi
        self.propensities_ = nuis.e
        self.outcome_predictions_ = nuis.m["y"]
        self.fold_ids_ = nuis.fold_ids
        self.nuisance_models_ = nuis.models
        self.groups_ = None if groups is None else np.asarray(groups)
        self.binary_outcome_ = binary
        self.n_arms_ = n_arms
        return self

    def _cate(self, X: Any) -> np.ndarray:
        Xf = combine_features(X)
        return np.column_stack([self.final_models_[k].predict(Xf) for k in self.treatments_])

    def pseudo_outcomes(self, Y: Any, T: Any, *, X: Any, W: Any = None) -> np.ndarray:
        """Pseudo-outcomes on new rows, nuisances averaged over the fold models, (n, k).

        The rows must contain only labels seen at ``fit``.
        """
        Y_arr = np.asarray(Y, dtype=float).ravel()
        T_arr = np.asarray(T).ravel()
        lookup = {self.control: 0, **{lbl: i + 1 for i, lbl in enumerate(self.treatments_)}}
        unknown = set(pd.unique(T_arr).tolist()) - set(lookup)
        if unknown:
            raise ValueError(f"T holds labels not seen at fit: {sorted(unknown)[:5]}")
        codes = np.array([lookup[v] for v in T_arr.tolist()], dtype=np.int64)
        e, m = predict_nuisances(
            self.nuisance_models_,
            combine_features(X, W),
            self.n_arms_,
            outcome="y",
            binary=self.binary_outcome_,
        )
        return self._pseudo(Y_arr, codes, e, m)

    def score(self, Y: Any, T: Any, *, X: Any, W: Any = None) -> float:
        """Held-out DR loss of the fitted CATE (lower is better), mean over treatments."""
        psi = self.pseudo_outcomes(Y, T, X=X, W=W)
        return dr_pseudo_outcome_loss(psi, self._cate(X))

    def effect_inference(
        self, mask: Any = None, *, treatment: Any = None, alpha: float = 0.05
    ) -> EffectInference:
        """AIPW average effect over a subgroup of the fitted rows (cluster-robust SE).

        The mean of the out-of-fold pseudo-outcomes of ``treatment`` (default: the only
        or first treatment) over ``mask``; see :func:`oncorwe.effects.aipw.aipw_effect`.
        """
        if not hasattr(self, "pseudo_outcomes_"):
            raise AttributeError("this DRLearner is not fitted yet; call fit first")
        label = self.treatments_[0] if treatment is None else treatment
        if label not in self.treatments_:
            raise ValueError(f"unknown treatment {label!r}; fitted: {self.treatments_}")
        j = self.treatments_.index(label)
        return aipw_effect(self.pseudo_outcomes_[:, j], mask, groups=self.groups_, alpha=alpha)
