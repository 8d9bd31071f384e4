"""Discrimination and calibration metrics for binary and survival prediction models.

Follows OHDSI PatientLevelPrediction's evaluation set (SCIENCE.md, "Prediction model
evaluation"):

- binary: AUC, Brier and scaled Brier, calibration-in-the-large (observed/expected and
  the intercept with the logit of p as offset), calibration slope and intercept
  (logistic regression of y on logit p), ICI and E50/E90/Emax (Austin & Steyerberg 2019);
- survival: Harrell's C, **with the convention that a higher score means higher risk**
  (the one :class:`oncorwe.models.estimators.SurvivalModel` uses), and calibration at a
  horizon by risk group (observed survival from
  :func:`oncorwe.models.kaplan_meier.weighted_kaplan_meier` vs mean predicted survival);
  beside Harrell's C, which depends on the censoring and flatters a model under the heavy
  censoring at a data cut, the censoring-adjusted measures of scikit-survival: Uno's C,
  the cumulative/dynamic time-dependent AUC and the integrated Brier score, each weighted
  by the inverse probability of staying uncensored (Kaplan-Meier of the censoring times
  of a training part).

Logistic fits are plain Newton-Raphson on two parameters (no statsmodels, no penalty).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from lifelines.utils import concordance_index
from scipy import special
from sklearn.metrics import roc_auc_score

from oncorwe.models.kaplan_meier import weighted_kaplan_meier

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "BINARY_METRICS",
    "auc",
    "binary_metrics",
    "brier",
    "calibration_in_the_large",
    "calibration_slope_intercept",
    "evaluation_times",
    "harrell_c",
    "integrated_brier",
    "survival_metrics",
    "time_dependent_auc",
    "uno_c",
    "ici",
    "loess_calibration_curve",
    "metrics_by_group",
    "scaled_brier",
    "survival_calibration_at_horizon",
]

_P_CLIP = 1e-12

# Keys of binary_metrics, in report order.
BINARY_METRICS = (
    "auc",
    "brier",
    "scaled_brier",
    "observed_expected",
    "citl_intercept",
    "calibration_slope",
    "calibration_intercept",
    "ici",
    "e50",
    "e90",
    "emax",
)


def binary_inputs(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    y_arr = np.asarray(y, dtype=float).ravel()
    p_arr = np.asarray(p, dtype=float).ravel()
    if y_arr.shape != p_arr.shape:
        raise ValueError(f"y has {y_arr.shape[0]} rows but p has {p_arr.shape[0]}")
    if not np.isin(y_arr, (0.0, 1.0)).all():
        raise ValueError("y must be 0/1")
    if not (np.isfinite(p_arr).all() and (p_arr >= 0).all() and (p_arr <= 1).all()):
        raise ValueError("p must be probabilities in [0, 1]")
    return y_arr, p_arr


def _logit(p: np.ndarray) -> np.ndarray:
    return special.logit(np.clip(p, _P_CLIP, 1 - _P_CLIP))


def _logistic_newton(
    y: np.ndarray, design: np.ndarray, offset: np.ndarray, max_iter: int = 100, tol: float = 1e-10
) -> np.ndarray:
    """Maximum-likelihood logistic coefficients for ``y ~ design + offset(offset)``."""
    beta = np.zeros(design.shape[1])

    def loglik(b: np.ndarray) -> float:
        eta = offset + design @ b
        return float(np.sum(y * eta - np.logaddexp(0.0, eta)))

    ll = loglik(beta)
    for _ in range(max_iter):
        mu = special.expit(offset + design @ beta)
        grad = design.T @ (y - mu)
        hess = (design * (mu * (1 - mu))[:, None]).T @ design
        step = np.linalg.solve(hess + 1e-12 * np.eye(len(beta)), grad)
        # step-halving keeps Newton monotone when the start is far from the optimum
        t = 1.0
        while True:
            cand = beta + t * step
            ll_new = loglik(cand)
            if ll_new >= ll - 1e-12 or t < 1e-8:
                break
            t /= 2
        beta, converged = cand, abs(ll_new - ll) < tol
        ll = ll_new
        if converged:
            break
    return beta


# --------------------------------------------------------------------------- binary
def auc(y: Any, p: Any) -> float:
    """Area under the ROC curve; NaN when ``y`` has a single class."""
    y_arr, p_arr = binary_inputs(y, p)
    if np.unique(y_arr).size < 2:
        return float("nan")
    return float(roc_auc_score(y_arr, p_arr))


def brier(y: Any, p: Any) -> float:
    """Brier score ``mean((p - y)^2)``."""
    y_arr, p_arr = binary_inputs(y, p)
    return float(np.mean((p_arr - y_arr) ** 2))


def scaled_brier(y: Any, p: Any) -> float:
    """Scaled Brier ``1 - Brier / (ybar (1 - ybar))``: 0 for the prevalence, 1 perfect."""
    y_arr, p_arr = binary_inputs(y, p)
    ybar = y_arr.mean()
    if ybar in (0.0, 1.0):
        return float("nan")
    return float(1.0 - np.mean((p_arr - y_arr) ** 2) / (ybar * (1.0 - ybar)))


def calibration_in_the_large(y: Any, p: Any) -> dict[str, float]:
    """Calibration-in-the-large.

    Returns
    -------
    dict
        ``observed_expected``: ``sum(y) / sum(p)`` (1 is perfect);
        ``intercept``: ``a`` in ``logit P(y=1) = a + logit(p)`` (slope fixed at 1 as an
        offset; 0 is perfect, > 0 means the model under-predicts).

    Examples
    --------
    >>> out = calibration_in_the_large([0, 1, 1, 0], [0.5, 0.5, 0.5, 0.5])
    >>> round(out["observed_expected"], 6), round(out["intercept"], 6)
    (1.0, 0.0)
    """
    y_arr, p_arr = binary_inputs(y, p)
    oe = float(y_arr.sum() / p_arr.sum()) if p_arr.sum() > 0 else float("nan")
    if np.unique(y_arr).size < 2:
        return {"observed_expected": oe, "intercept": float("nan")}
    a = _logistic_newton(y_arr, np.ones((y_arr.size, 1)), _logit(p_arr))[0]
    return {"observed_expected": oe, "intercept": float(a)}


def calibration_slope_intercept(y: Any, p: Any) -> dict[str, float]:
    """Calibration slope and intercept: ``logit P(y=1) = a + b logit(p)``.

    Perfectly calibrated probabilities give ``b = 1`` and ``a = 0``; ``b < 1`` means
    predictions too extreme (overfitting). This is the "weak recalibration" fit.

    Returns
    -------
    dict with ``slope`` (b) and ``intercept`` (a); NaN when ``y`` has one class.
    """
    y_arr, p_arr = binary_inputs(y, p)
    if np.unique(y_arr).size < 2:
        return {"slope": float("nan"), "intercept": float("nan")}
    lp = _logit(p_arr)
    design = np.column_stack([np.ones_like(lp), lp])
    a, b = _logistic_newton(y_arr, design, np.zeros_like(lp))
    return {"slope": float(b), "intercept": float(a)}


def _loess_at(x: np.ndarray, y: np.ndarray, x0: np.ndarray, span: float, degree: int) -> np.ndarray:
    n = x.size
    k = max(int(np.ceil(span * n)), degree + 1)
    out = np.empty(x0.size)
    for i, g in enumerate(x0):
        d = np.abs(x - g)
        if k < n:
            h = np.partition(d, k - 1)[k - 1]
        else:
            # span >= 1: R's loess widens the window to span times the farthest distance
            h = d.max() * span
        h = max(h, 1e-12)
        sel = d < h
        if sel.sum() <= degree:
            sel = d <= h
        u = d[sel] / h
        w = np.clip(1 - u**3, 0, None) ** 3
        dx = x[sel] - g
        design = np.vander(dx, degree + 1, increasing=True)
        sw = np.sqrt(w)
        coef, *_ = np.linalg.lstsq(design * sw[:, None], y[sel] * sw, rcond=None)
        out[i] = coef[0]
    return out


def loess_calibration_curve(
    y: Any,
    p: Any,
    *,
    span: float = 0.75,
    degree: int = 2,
    n_grid: int = 101,
    max_points: int = 200_000,
    random_state: int = 0,
) -> np.ndarray:
    """Smoothed observed risk at each prediction: a loess of ``y`` on ``p``.

    The smoother is local polynomial regression (``degree`` 2 by default) with tricube
    weights over the nearest ``span`` share of points: R's ``loess(y ~ p)`` defaults,
    gaussian family, no robustness iterations, as in Austin & Steyerberg (2019). Like
    R's ``surface="interpolate"`` it is evaluated on ``n_grid`` quantiles of ``p`` and
    linearly interpolated; above ``max_points`` rows a fixed random subsample fits it.

    Returns
    -------
    ndarray of shape (n,)
        Smoothed observed probability at each ``p_i`` (not clipped to [0, 1]).
    """
    y_arr, p_arr = binary_inputs(y, p)
    xf, yf = p_arr, y_arr
    if p_arr.size > max_points:
        idx = np.random.default_rng(random_state).choice(p_arr.size, max_points, replace=False)
        xf, yf = p_arr[idx], y_arr[idx]
    grid = np.unique(np.quantile(p_arr, np.linspace(0, 1, n_grid)))
    if grid.size == 1:
        return np.full(p_arr.shape, yf.mean())
    fitted = _loess_at(xf, yf, grid, span, degree)
    return np.interp(p_arr, grid, fitted)


def ici(y: Any, p: Any, **loess_kwargs: Any) -> dict[str, float]:
    """Integrated calibration index and E-statistics (Austin & Steyerberg 2019).

    With ``c_i`` the loess-smoothed observed risk at ``p_i``
    (:func:`loess_calibration_curve`), the absolute errors ``|c_i - p_i|`` give
    ``ici`` (mean), ``e50`` (median), ``e90`` (90th percentile) and ``emax`` (max).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.05, 0.95, 5000)
    >>> y = (rng.random(5000) < p).astype(int)
    >>> ici(y, p)["ici"] < 0.03
    True
    """
    _, p_arr = binary_inputs(y, p)
    err = np.abs(loess_calibration_curve(y, p, **loess_kwargs) - p_arr)
    return {
        "ici": float(err.mean()),
        "e50": float(np.median(err)),
        "e90": float(np.quantile(err, 0.9)),
        "emax": float(err.max()),
    }


def roc_points(y: Any, p: Any, n_grid: int = 101) -> pd.DataFrame:
    """The ROC curve as ``tpr`` at ``n_grid`` evenly spaced false-positive rates (the
    step curve of :func:`sklearn.metrics.roc_curve`, read at each rate): a curve to plot
    whose points are rates, never a patient's score or a threshold.

    >>> roc_points([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], n_grid=3)["tpr"].tolist()
    [0.5, 1.0, 1.0]
    """
    from sklearn.metrics import roc_curve

    y_arr, p_arr = binary_inputs(y, p)
    fpr, tpr, _ = roc_curve(y_arr, p_arr)
    grid = np.linspace(0.0, 1.0, n_grid)
    # the highest tpr reached at each false-positive rate (the curve's upper step)
    idx = np.searchsorted(fpr, grid, side="right") - 1
    return pd.DataFrame({"fpr": grid, "tpr": tpr[idx]})


def calibration_bins(y: Any, p: Any, n_bins: int = 10, *, min_cell: int) -> pd.DataFrame:
    """Observed against predicted risk in ``n_bins`` equal-count bins of the prediction
    (the calibration plot's points): each bin's mean prediction, observed rate and rows.
    A bin under ``min_cell`` rows, or with fewer than ``min_cell`` events or non-events,
    is withheld whole (its rate would point at a few patients).

    >>> t = calibration_bins([0, 1] * 50, np.linspace(0.01, 0.99, 100), 2, min_cell=11)
    >>> t[["predicted", "observed", "rows"]].round(2).values.tolist()
    [[0.25, 0.5, 50.0], [0.75, 0.5, 50.0]]
    >>> calibration_bins([0] * 95 + [1] * 5, np.linspace(0, 1, 100), 1, min_cell=11)["rows"].isna()[0]
    np.True_
    """
    y_arr, p_arr = binary_inputs(y, p)
    order = np.argsort(p_arr, kind="stable")
    bins = np.array_split(order, n_bins)
    rows = []
    for b in bins:
        n, k = len(b), int(y_arr[b].sum())
        ok = n >= min_cell and min(k, n - k) >= min_cell
        rows.append(
            {
                "predicted": float(p_arr[b].mean()) if n else np.nan,
                "observed": float(k / n) if ok else np.nan,
                "rows": n if ok else np.nan,
            }
        )
    return pd.DataFrame(rows)


def binary_metrics(y: Any, p: Any) -> dict[str, float]:
    """Every binary metric of this module in one dict (one row of a report)."""
    y_arr, p_arr = binary_inputs(y, p)
    citl = calibration_in_the_large(y_arr, p_arr)
    slope = calibration_slope_intercept(y_arr, p_arr)
    return {
        "auc": auc(y_arr, p_arr),
        "brier": brier(y_arr, p_arr),
        "scaled_brier": scaled_brier(y_arr, p_arr),
        "observed_expected": citl["observed_expected"],
        "citl_intercept": citl["intercept"],
        "calibration_slope": slope["slope"],
        "calibration_intercept": slope["intercept"],
        **ici(y_arr, p_arr),
    }


def metrics_by_group(y: Any, p: Any, groups: Any, *, min_cell: int = 20) -> pd.DataFrame:
    """Binary metrics per group, with small groups suppressed.

    Parameters
    ----------
    y, p : array-like of shape (n,)
        Outcomes (0/1) and predicted probabilities.
    groups : array-like of shape (n,)
        Group label per row (site, subgroup, calendar year...).
    min_cell : int, default 20
        Groups with fewer rows are suppressed: the row is kept (the group exists) with
        ``suppressed=True`` and every count and metric missing, so that neither a small
        count nor a metric computed on it leaves the database.

    Returns
    -------
    DataFrame
        One row per group (sorted): ``group, n, events, suppressed`` and the columns of
        :func:`binary_metrics`.
    """
    y_arr, p_arr = binary_inputs(y, p)
    g = np.asarray(groups)
    if g.shape[0] != y_arr.shape[0]:
        raise ValueError(f"groups has {g.shape[0]} rows; expected {y_arr.shape[0]}")
    rows = []
    for label in pd.unique(g):
        sel = g == label
        n = int(sel.sum())
        if n < min_cell:
            rows.append({"group": label, "n": np.nan, "events": np.nan, "suppressed": True})
            continue
        rows.append(
            {
                "group": label,
                "n": n,
                "events": int(y_arr[sel].sum()),
                "suppressed": False,
                **binary_metrics(y_arr[sel], p_arr[sel]),
            }
        )
    cols = ["group", "n", "events", "suppressed", *BINARY_METRICS]
    out = pd.DataFrame(rows).reindex(columns=cols)
    out["n"] = out["n"].astype("Int64")
    out["events"] = out["events"].astype("Int64")
    return out.sort_values("group", kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- survival
def harrell_c(event: Any, time: Any, risk: Any) -> float:
    """Harrell's concordance index, **higher ``risk`` = higher risk = shorter survival**.

    A comparable pair (the shorter time is an event) is concordant when the row that
    failed first has the higher risk; ties in risk count one half. lifelines'
    ``concordance_index`` expects the opposite sign (higher = longer survival), so the
    score is negated before the call.

    Examples
    --------
    >>> harrell_c([1, 1, 1], [1.0, 2.0, 3.0], [3.0, 2.0, 1.0])
    1.0
    """
    ev = np.asarray(event, dtype=float).ravel()
    tm = np.asarray(time, dtype=float).ravel()
    rk = np.asarray(risk, dtype=float).ravel()
    if not (ev.shape == tm.shape == rk.shape):
        raise ValueError("event, time and risk must have the same length")
    return float(concordance_index(tm, -rk, ev))


def _surv(event: Any, time: Any) -> np.ndarray:
    """scikit-survival's structured outcome array (``event`` as bool, ``time`` as float)."""
    from sksurv.util import Surv

    return Surv.from_arrays(np.asarray(event).astype(bool), np.asarray(time, dtype=float))


def evaluation_times(
    train_time: Any, event: Any, time: Any, *, horizon: float | None = None, n: int = 9
) -> np.ndarray:
    """The times at which a survival model is judged: ``n`` quantiles (10 %..90 %) of the
    observed event times, kept below ``horizon`` and strictly inside both parts' follow-up
    (the censoring weights are undefined past a part's last time)."""
    ev = np.asarray(event).astype(bool)
    tm = np.asarray(time, dtype=float)
    if ev.sum() < 2:
        return np.array([])
    grid = np.quantile(tm[ev], np.linspace(0.1, 0.9, n))
    upper = min(float(np.max(train_time)), float(tm.max()))
    if horizon is not None:
        upper = min(upper, float(horizon))
    grid = np.unique(grid[(grid > tm.min()) & (grid < upper)])
    return grid


#: Rows of a test part Uno's C is computed on: scikit-survival's estimator compares every
#: event with every row (46 s at 120,000 rows here), so a larger part is judged on a fixed
#: seeded sample of this many rows (standard error about 0.003 at this size).
UNO_C_MAX_ROWS = 20_000


def uno_c(
    train_event: Any,
    train_time: Any,
    event: Any,
    time: Any,
    risk: Any,
    tau: float,
    *,
    max_rows: int = UNO_C_MAX_ROWS,
) -> float:
    """Uno's concordance up to ``tau`` (higher ``risk`` = shorter survival): Harrell's
    pairs weighted by the inverse squared probability of staying uncensored, estimated
    on the training part, so that it does not depend on how much follow-up the data cut
    left (Uno et al., Stat Med 2011; scikit-survival's ``concordance_index_ipcw``). A test
    part over ``max_rows`` is judged on a seeded sample of that many rows (the same rows
    on every run)."""
    from sksurv.metrics import concordance_index_ipcw

    ev, tm, rk = (np.asarray(a) for a in (event, time, risk))
    if len(ev) > max_rows:
        keep = np.sort(np.random.default_rng(0).choice(len(ev), max_rows, replace=False))
        ev, tm, rk = ev[keep], tm[keep], rk[keep]
    out = concordance_index_ipcw(
        _surv(train_event, train_time), _surv(ev, tm), rk.astype(float), tau=tau
    )
    return float(out[0])


def time_dependent_auc(
    train_event: Any, train_time: Any, event: Any, time: Any, risk: Any, times: Any
) -> tuple[np.ndarray, float]:
    """Cumulative/dynamic AUC at each of ``times`` (cases: an event by t; controls: event
    free after t), censoring-weighted, and its mean weighted by the change in the
    Kaplan-Meier estimate (scikit-survival's ``cumulative_dynamic_auc``; Lambert &
    Chevret 2016)."""
    from sksurv.metrics import cumulative_dynamic_auc

    auc_t, mean = cumulative_dynamic_auc(
        _surv(train_event, train_time),
        _surv(event, time),
        np.asarray(risk, float),
        np.asarray(times, float),
    )
    return np.asarray(auc_t, float), float(mean)


def integrated_brier(
    train_event: Any, train_time: Any, event: Any, time: Any, surv: Any, times: Any
) -> float:
    """The integrated Brier score of predicted survival ``surv`` (shape ``(n,
    len(times))``) over ``times``: the censoring-weighted mean squared error of ``S(t|x)``
    against the status at t, averaged over time (Graf et al. 1999; scikit-survival's
    ``integrated_brier_score``). 0 is perfect; a model no better than the marginal
    survival curve scores about ``mean S(t)(1 - S(t))``."""
    from sksurv.metrics import integrated_brier_score

    return float(
        integrated_brier_score(
            _surv(train_event, train_time),
            _surv(event, time),
            np.asarray(surv, float),
            np.asarray(times, float),
        )
    )


def survival_metrics(
    train_event: Any,
    train_time: Any,
    event: Any,
    time: Any,
    risk: Any,
    *,
    survival: Callable[[np.ndarray], np.ndarray] | None = None,
    horizon: float | None = None,
) -> dict[str, float | None]:
    """A survival model judged on a test part: Harrell's C and, at
    :func:`evaluation_times`, Uno's C, the mean time-dependent AUC and (when
    ``survival(times)`` gives the predicted ``S(t|x)``) the integrated Brier score.

    A measure that cannot be computed on this part (too few events, no time inside both
    parts' follow-up) is None, never a number made of too little.
    """
    ev, tm, rk = (np.asarray(a) for a in (event, time, risk))
    out: dict[str, float | None] = {
        "c_index": float(harrell_c(ev, tm, rk)) if ev.sum() > 1 else None,
        "uno_c": None,
        "mean_auc": None,
        "ibs": None,
    }
    times = evaluation_times(train_time, ev, tm, horizon=horizon)
    if len(times) < 2:
        return out
    try:
        out["uno_c"] = uno_c(train_event, train_time, ev, tm, rk, tau=float(times[-1]))
        out["mean_auc"] = time_dependent_auc(train_event, train_time, ev, tm, rk, times)[1]
        if survival is not None:
            out["ibs"] = integrated_brier(train_event, train_time, ev, tm, survival(times), times)
    except ValueError:  # scikit-survival: no case or no control at some time, G(t) = 0
        return out
    return {k: (v if v is None or np.isfinite(v) else None) for k, v in out.items()}


def survival_calibration_at_horizon(
    event: Any, time: Any, surv_pred: Any, horizon: float, *, n_groups: int = 10
) -> pd.DataFrame:
    """Observed vs predicted survival at ``horizon`` by predicted-risk group.

    Rows are cut into ``n_groups`` quantile groups of predicted risk ``1 - S(horizon|x)``
    (group 1 = lowest risk); in each, the Kaplan-Meier estimate at ``horizon`` is
    compared with the mean predicted ``S(horizon | x)``.

    Parameters
    ----------
    event, time : array-like of shape (n,)
    surv_pred : array-like of shape (n,)
        Predicted survival at ``horizon`` (e.g. ``SurvivalModel.predict_survival(X,
        [horizon])[:, 0]``).
    horizon : float
    n_groups : int, default 10 (deciles)

    Returns
    -------
    DataFrame
        ``group, n, events, predicted, observed, difference`` (observed - predicted).
    """
    ev = np.asarray(event, dtype=float).ravel()
    tm = np.asarray(time, dtype=float).ravel()
    sp = np.asarray(surv_pred, dtype=float).ravel()
    if not (ev.shape == tm.shape == sp.shape):
        raise ValueError("event, time and surv_pred must have the same length")
    risk_rank = pd.Series(1.0 - sp).rank(method="first").to_numpy()
    grp = pd.qcut(risk_rank, n_groups, labels=False) + 1
    rows = []
    for k in range(1, n_groups + 1):
        sel = grp == k
        obs = float(weighted_kaplan_meier(ev[sel], tm[sel]).at(horizon)[0])
        pred = float(sp[sel].mean())
        rows.append(
            {
                "group": k,
                "n": int(sel.sum()),
                "events": int(ev[sel].sum()),
                "predicted": pred,
                "observed": obs,
                "difference": obs - pred,
            }
        )
    return pd.DataFrame(rows)
