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
- :meth:`SurvivalCurve.confidence_interval`: the pointwise log-log (lifelines'
  "exponential Greenwood") band, each weighted risk set counted at its Kish effective
  size, so that inverse-probability weights do not pass for more patients than there are.
- :func:`at_risk_counts`: the numbers at risk at chosen times, and the events and
  censorings in between (the table under a published Kaplan-Meier figure).
- :func:`validate_weights`: the check of case weights shared with the Cox fits of
  :mod:`oncorwe.trials.survival`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from oncorwe.models.estimators import validate_survival

__all__ = [
    "SurvivalCurve",
    "at_risk_counts",
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
    greenwood : ndarray of shape (k,), optional
        ``Var(log S(times[j]))``: Greenwood's sum ``sum_{t_k <= t} d_k / (n_k (n_k - d_k))``
        with each risk set taken at its Kish effective size ``m_k = (sum w)^2 / sum w^2``
        (the weighted counts scaled by ``m_k / n_k``); unit weights give Greenwood's
        formula itself. ``inf`` once a risk set has all its weight failing.
    """

    times: np.ndarray
    survival: np.ndarray
    at_risk: np.ndarray
    events: np.ndarray
    greenwood: np.ndarray | None = None

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

    def confidence_interval(self, t: Any, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise ``1 - alpha`` confidence limits of ``S(t)`` at each requested time.

        The log-log interval (Kalbfleisch & Prentice; lifelines' default, "exponential
        Greenwood"): with ``v = Var(log S)`` (:attr:`greenwood`),
        ``S^exp(+z sqrt(v) / |log S|)`` and ``S^exp(-z sqrt(v) / |log S|)``; it stays
        inside [0, 1]. Where ``S = 1`` (before the first event) both limits are 1; where
        ``S = 0`` both are 0.

        Returns
        -------
        lower, upper : ndarray, shaped like ``np.atleast_1d(t)``

        Examples
        --------
        >>> curve = weighted_kaplan_meier([1, 0, 1, 1], [1.0, 2.0, 3.0, 4.0])
        >>> lo, hi = curve.confidence_interval([0.5, 1.0])
        >>> lo.round(4).tolist(), hi.round(4).tolist()
        ([1.0, 0.1279], [1.0, 0.9605])
        """
        if self.greenwood is None:
            raise ValueError("this curve has no variance: build it with weighted_kaplan_meier")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1); got {alpha!r}")
        tt = np.atleast_1d(np.asarray(t, dtype=float))
        idx = np.searchsorted(self.times, tt, side="right") - 1
        s = np.where(idx >= 0, self.survival[np.clip(idx, 0, None)], 1.0)
        v = np.where(idx >= 0, self.greenwood[np.clip(idx, 0, None)], 0.0)
        z = float(stats.norm.ppf(1 - alpha / 2))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            log_s = np.log(s)
            half = z * np.sqrt(v) / np.abs(log_s)
            lower = np.power(s, np.exp(half))
            upper = np.power(s, np.exp(-half))
        inner = (s > 0) & (s < 1) & np.isfinite(v)
        lower = np.where(inner, lower, np.where(s >= 1, 1.0, 0.0))
        upper = np.where(inner, upper, np.where(s >= 1, 1.0, 0.0))
        return lower, upper

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
    sq_at_risk = np.cumsum(np.bincount(inv, weights=w**2, minlength=uniq.size)[::-1])[::-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        hazard = np.where(n_at_risk > 0, d / n_at_risk, 0.0)
        # Greenwood on the effective risk set: d/(n(n-d)) with d, n scaled by m/n
        scale = np.where(sq_at_risk > 0, n_at_risk / sq_at_risk, 1.0)  # m_k / n_k
        term = np.where(
            d > 0, d / (scale * n_at_risk * (n_at_risk - d)), 0.0
        )  # inf where n_k = d_k
    surv = np.cumprod(1.0 - hazard)
    return SurvivalCurve(
        times=uniq, survival=surv, at_risk=n_at_risk, events=d, greenwood=np.cumsum(term)
    )


def at_risk_counts(event: Any, time: Any, times: Any) -> dict[str, np.ndarray]:
    """Numbers at risk at ``times`` and the events and censorings between them.

    The table lifelines' ``add_at_risk_counts`` draws under a Kaplan-Meier figure, per
    interval rather than cumulated: ``n_at_risk[k]`` rows with ``time >= times[k]``;
    ``events[k]`` and ``n_censored[k]`` the rows that leave in
    ``[times[k], times[k + 1])``, the last interval open to the right, so that
    ``n_at_risk[k] - n_at_risk[k + 1] = events[k] + n_censored[k]`` and the events sum to
    every event after ``times[0]``. Counts of rows: weights play no part (a reader
    counts patients).

    Parameters
    ----------
    event, time : array-like of shape (n,)
    times : array-like of shape (k,)
        Increasing times (0 first, usually).

    Returns
    -------
    dict of ``n_at_risk``, ``events``, ``n_censored``: int arrays of shape (k,)

    Examples
    --------
    >>> out = at_risk_counts([1, 0, 1, 0], [1.0, 2.0, 3.5, 5.0], [0.0, 2.0, 4.0])
    >>> {k: v.tolist() for k, v in out.items()}
    {'n_at_risk': [4, 3, 1], 'events': [1, 1, 0], 'n_censored': [0, 1, 1]}
    """
    ev, tm = validate_survival(event, time)
    grid = np.asarray(times, dtype=float).ravel()
    if grid.size == 0 or np.any(np.diff(grid) <= 0) or not np.isfinite(grid).all():
        raise ValueError("times must be finite and strictly increasing")
    n_at_risk = (tm[None, :] >= grid[:, None]).sum(axis=1)
    # interval of each row's exit: k with times[k] <= t < times[k + 1]; before times[0]: -1
    k = np.searchsorted(grid, tm, side="right") - 1
    seen = k >= 0
    events = np.bincount(k[seen], weights=ev[seen], minlength=grid.size)
    left = np.bincount(k[seen], minlength=grid.size)
    return {
        "n_at_risk": n_at_risk.astype(int),
        "events": events.astype(int),
        "n_censored": (left - events).astype(int),
    }


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
