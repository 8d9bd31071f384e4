"""Weighted Cox models for trial emulation: hazard ratios, coefficients, baseline hazards.

All functions use the library's one survival convention ``(event, time)``: ``event`` is 1
when the event was observed at ``time`` and 0 when the row was censored there; ``time``
is finite and > 0 (months in this project). The weighted Kaplan-Meier curve and its RMST
live in :mod:`oncorwe.models.kaplan_meier` (one estimator for every layer).

- :func:`cox_hazard_ratio`: a one-covariate (arm) weighted Cox model through lifelines'
  ``CoxPHFitter`` (Efron ties), with the robust (sandwich) variance, clustered when
  clusters are given.
- :func:`cox_coefficient`: a one-covariate weighted Cox model by a vectorized numpy
  Newton solver with Breslow ties, for bootstrap replicates and calibration slopes,
  where lifelines' per-fit overhead dominates.
- :func:`breslow_baseline`: the Breslow cumulative baseline hazard of a fixed linear
  predictor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from scipy import stats

from oncorwe.models.estimators import validate_survival
from oncorwe.models.kaplan_meier import validate_weights

__all__ = [
    "CoxResult",
    "breslow_baseline",
    "cox_coefficient",
    "cox_hazard_ratio",
    "cumulative_hazard_at",
]


@dataclass(frozen=True)
class CoxResult:
    """Hazard ratio of the arm indicator from a one-covariate Cox model.

    Attributes
    ----------
    hazard_ratio, ci_low, ci_high : float
        ``exp(beta)`` and ``exp(beta -/+ z_{1-alpha/2} se)``.
    log_hr, se : float
    p_value : float
        Two-sided Wald test of ``beta = 0``.
    """

    hazard_ratio: float
    ci_low: float
    ci_high: float
    log_hr: float
    se: float
    p_value: float


def cox_hazard_ratio(
    event: Any,
    time: Any,
    arm: Any,
    *,
    weight: Any = None,
    cluster: Any = None,
    robust: bool | None = None,
    alpha: float = 0.05,
) -> CoxResult:
    """Weighted Cox hazard ratio of ``arm`` (1 vs 0) with lifelines' ``CoxPHFitter``.

    Fits ``h(t | a) = h0(t) exp(beta a)`` by weighted partial likelihood (Efron ties)
    through ``CoxPHFitter(...).fit(df, weights_col=..., robust=..., cluster_col=...)``.

    Parameters
    ----------
    event, time : array-like of shape (n,)
    arm : array-like of shape (n,)
        1 = treated, 0 = control.
    weight : array-like of shape (n,), optional
        Case weights (e.g. stabilized IPTW); ``None`` = unweighted.
    cluster : array-like of shape (n,), optional
        Cluster label (patient) for the clustered sandwich variance.
    robust : bool, optional
        Sandwich (Lin & Wei 1989) variance. Default: True when ``weight`` or ``cluster``
        is given (model-based variance is wrong for non-integer weights), else False.
    alpha : float, default 0.05

    Returns
    -------
    CoxResult

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = np.repeat([0, 1], 500)
    >>> t = rng.exponential(np.where(a == 1, 2.0, 1.0))
    >>> res = cox_hazard_ratio(np.ones(1000), t, a)
    >>> 0.4 < res.hazard_ratio < 0.6
    True
    """
    ev, tm = validate_survival(event, time)
    a = np.asarray(arm, dtype=float).ravel()
    if a.shape != tm.shape:
        raise ValueError(f"arm has {a.shape[0]} rows; expected {tm.shape[0]}")
    df = pd.DataFrame({"T": tm, "E": ev, "arm": a})
    kwargs: dict[str, Any] = {}
    if weight is not None:
        df["w"] = validate_weights(weight, tm.shape[0])
        df = df[df["w"] > 0]
        kwargs["weights_col"] = "w"
    if cluster is not None:
        c = np.asarray(cluster).ravel()
        if c.shape[0] != tm.shape[0]:
            raise ValueError(f"cluster has {c.shape[0]} rows; expected {tm.shape[0]}")
        df["cluster"] = pd.factorize(c)[0][df.index.to_numpy()]
        kwargs["cluster_col"] = "cluster"
    if robust is None:
        robust = weight is not None or cluster is not None
    cph = CoxPHFitter(alpha=alpha)
    cph.fit(df, duration_col="T", event_col="E", robust=robust, **kwargs)
    beta = float(cph.params_["arm"])
    se = float(cph.standard_errors_["arm"])
    z = stats.norm.ppf(1 - alpha / 2)
    return CoxResult(
        hazard_ratio=float(np.exp(beta)),
        ci_low=float(np.exp(beta - z * se)),
        ci_high=float(np.exp(beta + z * se)),
        log_hr=beta,
        se=se,
        p_value=float(2 * stats.norm.sf(abs(beta / se))) if se > 0 else float("nan"),
    )


def cox_coefficient(
    event: Any, time: Any, x: Any, weight: Any = None, *, max_iter: int = 50, tol: float = 1e-9
) -> tuple[float, float]:
    """Weighted one-covariate Cox coefficient and its model-based SE (Breslow ties), in numpy.

    Maximizes the partial log-likelihood ``l(b) = sum_k [b X_k - D_k log S0_k(b)]`` over
    the distinct event times ``t_k``: ``D_k`` the weighted events at ``t_k``, ``X_k`` their
    weighted sum of ``x``, and ``S_r,k(b) = sum_{i: t_i >= t_k} w_i x_i^r exp(b x_i)``.
    Newton steps with step-halving; ``se = I(b)^(-1/2)`` with the observed information
    ``I(b) = sum_k D_k (S2_k / S0_k - (S1_k / S0_k)^2)``. All risk-set sums are reversed
    cumulative sums over the sorted distinct times, so a fit is O(n log n): about 100
    times faster than a lifelines fit, for bootstrap replicates and calibration slopes.
    It differs from :func:`cox_hazard_ratio` (Efron ties) only through tied event times.

    Parameters
    ----------
    event, time : array-like of shape (n,)
    x : array-like of shape (n,)
        The covariate (an arm indicator, a linear predictor).
    weight : array-like of shape (n,), optional

    Returns
    -------
    beta, se : float
        ``nan`` when there is no event or ``x`` does not vary among the risk sets.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = np.repeat([0, 1], 2000)
    >>> t = rng.exponential(np.where(a == 1, 2.0, 1.0))
    >>> beta, se = cox_coefficient(np.ones(4000), t, a)
    >>> round(float(np.exp(beta)), 1)
    0.5
    """
    ev, tm = validate_survival(event, time)
    xv = np.asarray(x, dtype=float).ravel()
    if xv.shape != tm.shape or not np.isfinite(xv).all():
        raise ValueError(f"x must be finite with {tm.shape[0]} rows")
    w = validate_weights(weight, tm.shape[0])
    uniq, inv = np.unique(tm, return_inverse=True)
    dw = w * ev
    d = np.bincount(inv, weights=dw, minlength=uniq.size)
    xd = np.bincount(inv, weights=dw * xv, minlength=uniq.size)
    k = d > 0
    if not k.any():
        return float("nan"), float("nan")
    d, xd = d[k], xd[k]

    def revcum(v: np.ndarray) -> np.ndarray:
        return np.cumsum(np.bincount(inv, weights=v, minlength=uniq.size)[::-1])[::-1][k]

    def parts(b: float) -> tuple[float, float, float]:
        z = b * xv
        shift = z.max()  # exp overflow guard; cancels in every ratio
        r = w * np.exp(z - shift)
        s0, s1, s2 = revcum(r), revcum(r * xv), revcum(r * xv * xv)
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = float(np.sum(b * xd - d * (np.log(s0) + shift)))
            m1 = s1 / s0
            grad = float(np.sum(xd - d * m1))
            info = float(np.sum(d * (s2 / s0 - m1 * m1)))
        return ll, grad, info

    b = 0.0
    ll, grad, info = parts(b)
    for _ in range(max_iter):
        if not info > 0:
            return float("nan"), float("nan")
        step = grad / info
        t = 1.0
        while True:
            ll_new, g_new, i_new = parts(b + t * step)
            if ll_new >= ll - 1e-12 or t < 1e-6:
                break
            t /= 2
        b += t * step
        ll, grad, info = ll_new, g_new, i_new
        if abs(t * step) < tol:
            break
    return float(b), float(1.0 / np.sqrt(info)) if info > 0 else float("nan")


def breslow_baseline(event: Any, time: Any, lp: Any) -> tuple[np.ndarray, np.ndarray]:
    """Breslow cumulative baseline hazard for a fixed linear predictor.

    ``H0(t) = sum_{t_k <= t} D_k / sum_{i: t_i >= t_k} exp(lp_i)``, so that
    ``H(t | x) = H0(t) exp(lp(x))`` and ``S(t | x) = exp(-H(t | x))``.

    Parameters
    ----------
    event, time, lp : array-like of shape (n,)

    Returns
    -------
    times, cumhazard : ndarray
        Distinct event times and ``H0`` just after each (a right-continuous step).

    Examples
    --------
    >>> breslow_baseline([1, 1], [1.0, 2.0], [0.0, 0.0])[1].tolist()
    [0.5, 1.5]
    """
    ev, tm = validate_survival(event, time)
    lpv = np.asarray(lp, dtype=float).ravel()
    if lpv.shape != tm.shape:
        raise ValueError(f"lp has {lpv.shape[0]} rows; expected {tm.shape[0]}")
    uniq, inv = np.unique(tm, return_inverse=True)
    shift = lpv.max()
    r = np.exp(lpv - shift)
    s0 = np.cumsum(np.bincount(inv, weights=r, minlength=uniq.size)[::-1])[::-1]
    d = np.bincount(inv, weights=ev, minlength=uniq.size)
    k = d > 0
    return uniq[k], np.cumsum(d[k] / s0[k]) * np.exp(-shift)


def cumulative_hazard_at(times: np.ndarray, cumhazard: np.ndarray, t: Any) -> np.ndarray:
    """Evaluate a right-continuous step cumulative hazard at ``t`` (0 before the first
    time)."""
    tt = np.asarray(t, dtype=float)
    idx = np.searchsorted(times, tt, side="right") - 1
    return np.where(idx >= 0, cumhazard[np.clip(idx, 0, None)], 0.0)
