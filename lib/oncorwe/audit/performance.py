"""Does a prediction model work equally well for every population and hospital?

A model validated overall can still be miscalibrated for a minority population or a
hospital with another case mix. These audits compute, per group, the evaluation set of
OHDSI PatientLevelPrediction (SCIENCE.md, "Prediction model evaluation") with the
functions of :mod:`oncorwe.models.metrics`, set each group against the overall row and
flag the groups that fall short:

- binary models (:func:`performance_by_group`): AUC more than ``auc_gap`` below the
  overall AUC, or calibration-in-the-large (observed / expected) outside
  ``oe_range`` (default [0.8, 1.25], symmetric on the log scale);
- survival models (:func:`survival_performance_by_group`): Harrell's C more than
  ``c_gap`` below the overall C, **higher risk score = higher risk**.

A group is suppressed (row kept, counts and metrics missing, never flagged) when it has
fewer than ``min_cell`` rows, events or non-events: any of those counts could be read
off its metrics (observed / expected times the summed predictions is the event count).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from oncorwe.core.privacy import DEFAULT_MIN_CELL, check_min_cell
from oncorwe.models.metrics import (
    BINARY_METRICS,
    binary_inputs,
    binary_metrics,
    harrell_c,
    metrics_by_group,
)

__all__ = ["performance_by_group", "survival_performance_by_group"]

_OVERALL = ("overall", "all")


def _group_arrays(groups: Any, n: int) -> dict[str, np.ndarray]:
    """``{grouping name: labels}``, each of length ``n``; a bare array is one grouping."""
    if groups is None:
        return {}
    if not isinstance(groups, Mapping):
        groups = {"group": groups}
    out = {}
    for name, labels in groups.items():
        arr = np.asarray(labels, dtype=object).ravel()
        if arr.shape[0] != n:
            raise ValueError(f"groups[{name!r}] has {arr.shape[0]} rows; expected {n}")
        out[str(name)] = arr
    return out


def _suppress_small(n: np.ndarray, events: np.ndarray, min_cell: int) -> np.ndarray:
    return (n < min_cell) | (events < min_cell) | (n - events < min_cell)


def performance_by_group(
    y: Any,
    p: Any,
    groups: Mapping[str, Any] | Any,
    *,
    min_cell: int = DEFAULT_MIN_CELL,
    auc_gap: float = 0.05,
    oe_range: tuple[float, float] = (0.8, 1.25),
) -> pd.DataFrame:
    """Discrimination and calibration of a binary model per group, with flags.

    For each grouping (population, site...) and each of its groups, the metrics of
    :func:`oncorwe.models.metrics.binary_metrics`: AUC, Brier and scaled Brier,
    calibration-in-the-large ``O/E = sum(y) / sum(p)`` and its intercept, calibration
    slope and intercept, ICI and E50/E90/Emax. A group is flagged when::

        auc < auc_overall - auc_gap      (discrimination gap)
        O/E < oe_range[0]  or  O/E > oe_range[1]       (miscalibrated in the large)

    Parameters
    ----------
    y : array-like of shape (n,)
        Observed outcomes, 0/1.
    p : array-like of shape (n,)
        Predicted probabilities.
    groups : mapping name -> array-like of shape (n,), or one array-like of shape (n,)
        Group labels per row, one array per grouping (e.g. ``{"population":
        frame.population, "site": frame.site}``); rows with a missing label are left out
        of that grouping. A bare array is the grouping ``"group"``.
    min_cell : int, default 11
        Groups with fewer rows, events or non-events are suppressed: the row stays,
        ``suppressed=True``, counts and metrics missing, flags ``False``.
    auc_gap : float, default 0.05
    oe_range : (float, float), default (0.8, 1.25)

    Returns
    -------
    DataFrame
        The overall row (``grouping="overall"``, ``group="all"``) first, then one row per
        group sorted within each grouping: ``grouping, group, n, events`` (``Int64``),
        ``suppressed``, the columns of :data:`oncorwe.models.metrics.BINARY_METRICS`,
        ``auc_gap`` (overall AUC minus the group's), ``flag_auc, flag_calibration,
        flagged`` (bool).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.1, 0.9, 4000)
    >>> pop = np.repeat(["a", "b"], 2000)
    >>> y = (rng.random(4000) < np.where(pop == "b", 0.5 * p, p)).astype(int)
    >>> out = performance_by_group(y, p, {"population": pop})
    >>> out[["grouping", "group", "observed_expected", "flagged"]].round(2)
         grouping group  observed_expected  flagged
    0     overall   all               0.77     True
    1  population     a               1.00    False
    2  population     b               0.53     True
    """
    min_cell = check_min_cell(min_cell)
    if not (isinstance(auc_gap, int | float) and auc_gap >= 0):
        raise ValueError(f"auc_gap must be a non-negative number, got {auc_gap!r}")
    lo, hi = oe_range
    if not 0 < lo <= 1 <= hi:
        raise ValueError(
            f"oe_range must be (low, high) with 0 < low <= 1 <= high, got {oe_range!r}"
        )
    y_arr, p_arr = binary_inputs(y, p)
    if y_arr.size == 0:
        raise ValueError("y is empty")
    grouping = _group_arrays(groups, y_arr.size)

    overall = pd.DataFrame(
        [{"group": _OVERALL[1], "n": y_arr.size, "events": int(y_arr.sum()), "suppressed": False}]
    )
    overall = overall.assign(**binary_metrics(y_arr, p_arr))
    overall.insert(0, "grouping", _OVERALL[0])
    parts = [overall]
    for name, labels in grouping.items():
        keep = ~pd.isna(labels)
        # metrics_by_group already suppresses groups under min_cell rows
        tab = metrics_by_group(y_arr[keep], p_arr[keep], labels[keep], min_cell=min_cell)
        tab.insert(0, "grouping", name)
        parts.append(tab)
    cols = ["grouping", "group", "n", "events", "suppressed", *BINARY_METRICS]
    out = pd.concat([t.reindex(columns=cols) for t in parts], ignore_index=True)
    n = out["n"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    ev = out["events"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    small = np.where(np.isnan(n), True, _suppress_small(n, ev, min_cell))
    small[0] = False  # the overall row is the whole (already released) network total
    out["suppressed"] = small | out["suppressed"].astype(bool).to_numpy()
    out.loc[out["suppressed"], ["n", "events", *BINARY_METRICS]] = np.nan
    out["n"] = out["n"].astype("Float64").round().astype("Int64")
    out["events"] = out["events"].astype("Float64").round().astype("Int64")
    for c in BINARY_METRICS:
        out[c] = out[c].astype(float)

    out["auc_gap"] = out.loc[0, "auc"] - out["auc"]
    out["flag_auc"] = (out["auc_gap"] > auc_gap).to_numpy()
    oe = out["observed_expected"]
    out["flag_calibration"] = ((oe < lo) | (oe > hi)).to_numpy()
    out["flagged"] = out["flag_auc"] | out["flag_calibration"]
    return out


def survival_performance_by_group(
    event: Any,
    time: Any,
    risk: Any,
    groups: Mapping[str, Any] | Any,
    *,
    min_cell: int = DEFAULT_MIN_CELL,
    c_gap: float = 0.05,
) -> pd.DataFrame:
    """Harrell's C of a survival model per group, **higher ``risk`` = higher risk**.

    ``C = P(risk_i > risk_j | T_i < T_j, i had the event)`` over comparable pairs within
    the group (:func:`oncorwe.models.metrics.harrell_c`; ties in risk count one half).
    A group is flagged when ``C < C_overall - c_gap``.

    Parameters
    ----------
    event : array-like of shape (n,)
        1 = event, 0 = censored.
    time : array-like of shape (n,)
    risk : array-like of shape (n,)
        Predicted risk score (e.g. the linear predictor of a Cox model).
    groups : mapping name -> array-like of shape (n,), or one array-like of shape (n,)
        As in :func:`performance_by_group`.
    min_cell : int, default 11
        Groups with fewer rows, events or censored rows are suppressed.
    c_gap : float, default 0.05

    Returns
    -------
    DataFrame
        The overall row first, then per group: ``grouping, group, n, events``
        (``Int64``), ``suppressed``, ``c_index``, ``c_gap``, ``flagged``.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> risk = rng.normal(size=3000)
    >>> time = rng.exponential(np.exp(-risk))
    >>> site = np.repeat(["H1", "H2"], 1500)
    >>> shown = np.where(site == "H2", rng.normal(size=3000), risk)   # H2: noise
    >>> event = (rng.random(3000) < 0.8).astype(int)
    >>> out = survival_performance_by_group(event, time, shown, {"site": site})
    >>> out[["group", "flagged"]].to_dict("list")
    {'group': ['all', 'H1', 'H2'], 'flagged': [False, False, True]}
    """
    min_cell = check_min_cell(min_cell)
    if not (isinstance(c_gap, int | float) and c_gap >= 0):
        raise ValueError(f"c_gap must be a non-negative number, got {c_gap!r}")
    ev = np.asarray(event, dtype=float).ravel()
    tm = np.asarray(time, dtype=float).ravel()
    rk = np.asarray(risk, dtype=float).ravel()
    for name, arr in (("time", tm), ("risk", rk)):
        if arr.shape != ev.shape:
            raise ValueError(f"{name} has {arr.shape[0]} rows; event has {ev.shape[0]}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} must be finite")
    if not np.isin(ev, (0.0, 1.0)).all():
        raise ValueError("event must be 0/1")
    grouping = _group_arrays(groups, ev.size)

    rows = [
        {
            "grouping": _OVERALL[0],
            "group": _OVERALL[1],
            "n": ev.size,
            "events": int(ev.sum()),
            "suppressed": False,
            "c_index": harrell_c(ev, tm, rk) if ev.sum() > 0 else np.nan,
        }
    ]
    for name, labels in grouping.items():
        keep = ~pd.isna(labels)
        lab = labels[keep]
        e, t, r = ev[keep], tm[keep], rk[keep]
        for label in sorted(pd.unique(lab), key=str):
            sel = lab == label
            n, d = int(sel.sum()), int(e[sel].sum())
            small = bool(_suppress_small(np.array(n), np.array(d), min_cell))
            rows.append(
                {
                    "grouping": name,
                    "group": label,
                    "n": None if small else n,
                    "events": None if small else d,
                    "suppressed": small,
                    "c_index": np.nan if small else harrell_c(e[sel], t[sel], r[sel]),
                }
            )
    out = pd.DataFrame(rows)
    out["n"] = out["n"].astype("Int64")
    out["events"] = out["events"].astype("Int64")
    out["c_index"] = out["c_index"].astype(float)
    out["c_gap"] = out.loc[0, "c_index"] - out["c_index"]
    out["flagged"] = (out["c_gap"] > c_gap).to_numpy()
    return out
