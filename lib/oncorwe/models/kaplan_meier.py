"""The library's one Kaplan-Meier estimator: weighted, with its step curve and RMST.

Every layer reads survival curves from here (the cohort report, the metrics' calibration
at a horizon, trial emulation and transportability), so that one product-limit estimator
and one tie rule serve them all. Inputs follow the library's one survival convention
``(event, time)``: ``event`` is 1 when the event was observed at ``time`` and 0 when the
row was censored there; ``time`` is finite and > 0.

- :func:`weighted_kaplan_meier`: ``S(t) = prod_{t_k <= t} (1 - d_k / n_k)`` with weighted
  event counts ``d_k = sum_{i: t_i = t_k, event_i = 1} w_i`` and weighted risk sets
  ``n_k = sum_{i: t_i >= t_k} w_i``. Unit weights give the ordinary Kaplan-Meier curve.
- :class:`SurvivalCurve`: the right-continuous step function it returns; ``curve.at(t)``
  reads ``S(t)`` (1 before the first time), ``curve.rmst(tau)`` its area.
- :func:`restricted_mean_survival_time`: ``RMST(tau) = int_0^tau S(t) dt``.
- :func:`validate_weights`: the check of case weights shared with the Cox fits of
  :mod:`oncorwe.trials.survival`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from oncorwe.models.estimators import validate_survival

__all__ = [
    "SurvivalCurve",
    "restricted_mean_survival_time",
    "validate_weights",
    "weighted_kaplan_meier",
]


def validate_weights(weight: Any, n: int, name: str = "weight") -> np.ndarray:
    """Case weights as a float array of ``n`` finite values >= 0; ``None`` = unit weights.

    Examples
    --------
    >>> validate_weights(None, 2).tolist()
    [1.0, 1.0]
    >>> validate_weights([1, -1], 2)
    Traceback (most recent call last):
    ...
    ValueError: weight must be finite and >= 0
    """
    if weight is None:
        return np.ones(n)
    w = np.asarray(weight, dtype=float).ravel()
    if w.shape[0] != n:
        raise ValueError(f"{name} has {w.shape[0]} rows; expected {n}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"{name} must be finite and >= 0")
    return w


@dataclass(frozen=True)
class SurvivalCurve:
    """A right-continuous step survival function.

    Attributes
    ----------
    times : ndarray of shape (k,)
        Distinct observed times (events and censorings), increasing.
    survival : ndarray of shape (k,)
        ``S(times[j])``, the survival just after ``times[j]``; ``S(t) = 1`` before
        ``times[0]``.
    at_risk : ndarray of shape (k,)
        Weighted number at risk just before each time.
    events : ndarray of shape (k,)
        Weighted number of events at each time.
    """

    times: np.ndarray
    survival: np.ndarray
    at_risk: np.ndarray
    events: np.ndarray

    def at(self, t: Any) -> np.ndarray:
        """``S(t)`` at each requested time, shape like ``np.atleast_1d(t)``.

        Examples
        --------
        >>> curve = weighted_kaplan_meier([1, 1], [1.0, 2.0])
        >>> curve.at([0.5, 1.0, 1.5, 2.0]).tolist()
        [1.0, 0.5, 0.5, 0.0]
        """
        tt = np.atleast_1d(np.asarray(t, dtype=float))
        idx = np.searchsorted(self.times, tt, side="right") - 1
        return np.where(idx >= 0, self.survival[np.clip(idx, 0, None)], 1.0)

    def rmst(self, horizon: float) -> float:
        """Restricted mean survival time up to ``horizon``; see
        :func:`restricted_mean_survival_time`."""
        return restricted_mean_survival_time(self, horizon)


def weighted_kaplan_meier(event: Any, time: Any, weight: Any = None) -> SurvivalCurve:
    """Weighted Kaplan-Meier (product-limit) estimator.

    ``S(t) = prod_{t_k <= t} (1 - d_k / n_k)`` with ``d_k`` the weighted events at the
    distinct time ``t_k`` and ``n_k`` the weighted number at risk (``t_i >= t_k``); with
    inverse-probability weights this is the adjusted survival curve of Xie & Liu (2005).
    Censored rows at ``t_k`` count in its risk set (events precede censorings at ties).

    Parameters
    ----------
    event : array-like of shape (n,)
        1 = event, 0 = censored.
    time : array-like of shape (n,)
        Follow-up times, > 0.
    weight : array-like of shape (n,), optional
        Non-negative weights; ``None`` = unit weights (the ordinary estimator).

    Returns
    -------
    SurvivalCurve
        Survival at a horizon is ``curve.at(horizon)[0]``; with ``[0]`` and ``[1]``
        prepended to ``times`` and ``survival`` (and ``n`` to ``at_risk``) the arrays are
        lifelines' ``KaplanMeierFitter().fit(time, event).survival_function_`` and the
        ``at_risk`` column of its ``event_table``.

    Examples
    --------
    >>> curve = weighted_kaplan_meier([1, 0, 1], [1.0, 2.0, 3.0])
    >>> curve.survival.round(4).tolist()
    [0.6667, 0.6667, 0.0]
    >>> curve.at_risk.tolist()
    [3.0, 2.0, 1.0]
    >>> round(float(curve.at(2.5)[0]), 4)
    0.6667
    """
    ev, tm = validate_survival(event, time)
    w = validate_weights(weight, tm.shape[0])
    uniq, inv = np.unique(tm, return_inverse=True)
    d = np.bincount(inv, weights=w * ev, minlength=uniq.size)
    leaving = np.bincount(inv, weights=w, minlength=uniq.size)
    # weighted risk set at t_k: everything leaving at t_k or later (reverse cumulative sum)
    n_at_risk = np.cumsum(leaving[::-1])[::-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        hazard = np.where(n_at_risk > 0, d / n_at_risk, 0.0)
    surv = np.cumprod(1.0 - hazard)
    return SurvivalCurve(times=uniq, survival=surv, at_risk=n_at_risk, events=d)


def restricted_mean_survival_time(curve: SurvivalCurve, horizon: float) -> float:
    """Area under a step survival curve from 0 to ``horizon``.

    ``RMST(tau) = int_0^tau S(t) dt = sum_j S(t_{j-1}) (min(t_j, tau) - t_{j-1})`` over the
    steps below ``tau`` (``t_0 = 0``, ``S(t_0) = 1``), plus the last level up to ``tau``.
    Beyond the last observed time the curve is carried forward flat.

    Parameters
    ----------
    curve : SurvivalCurve
    horizon : float
        ``tau`` > 0, in the time unit of the curve.

    Returns
    -------
    float

    Examples
    --------
    >>> curve = weighted_kaplan_meier([1, 1], [1.0, 2.0])
    >>> restricted_mean_survival_time(curve, 3.0)  # 1 * 1 + 0.5 * 1 + 0 * 1
    1.5
    """
    if not np.isfinite(horizon) or horizon <= 0:
        raise ValueError(f"horizon must be finite and > 0; got {horizon!r}")
    knots = curve.times[curve.times < horizon]
    left = np.concatenate([[0.0], knots])
    right = np.concatenate([knots, [horizon]])
    level = np.concatenate([[1.0], curve.survival[: knots.size]])
    return float(np.sum(level * (right - left)))
