"""Network-style evaluation: each site sends aggregates, the coordinator combines them.

As in an OHDSI network study, no patient-level prediction leaves a hospital. Each site
runs :func:`site_aggregates` on its own outcomes ``y`` and predicted risks ``p`` and
sends two things:

- ``counts`` (publishable): rows and events, each ``None`` when below ``min_cell``;
- ``stats`` (sufficient statistics, for the coordinator only, never published):
  a score histogram by outcome on a fixed grid of ``n_bins`` equal-width bins of
  ``p`` in [0, 1] (for the AUC), and per calibration risk bin (fixed edges, default
  tenths of risk) the row count, the sum of ``p`` and the sum of ``y``; plus the sum of
  squared errors and ``n`` (for the Brier score).

:func:`combine_aggregates` adds the statistics over sites and returns the overall AUC,
Brier score, observed/expected ratio and calibration table, and the same metrics per
site; every count or metric that rests on fewer than ``min_cell`` rows, events or
non-events is suppressed (``None``).

The AUC approximation
---------------------
From the merged histograms (``pos[b]``, ``neg[b]`` per score bin, ``P`` and ``N``
totals), ``AUC = (sum_b pos[b] * neg[< b] + 0.5 * sum_b pos[b] * neg[b]) / (P N)``:
exact for every pair of rows in different bins, and a pair in the same bin counts as a
tie (one half). The error is therefore at most half the share of
(positive, negative) pairs that share a bin, ``tie_bound = 0.5 * sum_b pos[b] neg[b] /
(P N)``, which is reported with the AUC; with 1,000 bins it is a few thousandths when
the predicted risks are spread over [0, 1], and larger when they crowd into a few
bins (then raise ``n_bins``). The Brier score, O/E and calibration sums are exact.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> p = rng.random(400); y = (rng.random(400) < p).astype(int)
>>> a = site_aggregates(y[:200], p[:200], site="A", min_cell=5)
>>> b = site_aggregates(y[200:], p[200:], site="B", min_cell=5)
>>> out = combine_aggregates([a, b], min_cell=5)
>>> round(out["overall"]["brier"], 4) == round(float(np.mean((p - y) ** 2)), 4)
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from oncorwe.core.privacy import DEFAULT_MIN_CELL

__all__ = ["CALIBRATION_EDGES", "combine_aggregates", "site_aggregates"]

CALIBRATION_EDGES = tuple(np.round(np.linspace(0.0, 1.0, 11), 10).tolist())
AGGREGATE_VERSION = 1


def _check(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    ya = np.asarray(y, dtype=float).ravel()
    pa = np.asarray(p, dtype=float).ravel()
    if ya.shape != pa.shape:
        raise ValueError(f"y has {ya.shape[0]} rows but p has {pa.shape[0]}")
    if not np.isin(ya, (0.0, 1.0)).all():
        raise ValueError("y must be 0/1 with no missing values")
    if not (np.isfinite(pa) & (pa >= 0) & (pa <= 1)).all():
        raise ValueError("p must be probabilities in [0, 1]")
    return ya, pa


def _cell(k: float, min_cell: int) -> int | None:
    return int(k) if k >= min_cell else None


def site_aggregates(
    y: Any,
    p: Any,
    *,
    site: str,
    min_cell: int = DEFAULT_MIN_CELL,
    n_bins: int = 1000,
    calibration_edges: Sequence[float] = CALIBRATION_EDGES,
) -> dict[str, Any]:
    """One site's aggregates for the network evaluation of a binary risk model.

    Parameters
    ----------
    y : array-like of shape (n,)
        Observed outcome, 0/1.
    p : array-like of shape (n,)
        Predicted risk in [0, 1].
    site : str
    min_cell : int, default 11
        Counts below this are suppressed in ``counts``.
    n_bins : int, default 1000
        Equal-width score bins over [0, 1] for the AUC histogram; every site of a
        network must use the same value.
    calibration_edges : sequence of float
        Risk-bin edges for calibration, from 0 to 1; shared by the network.

    Returns
    -------
    dict
        ``{"site", "version", "counts": {"n", "events"}, "stats": {...}}``,
        JSON-serializable.
    """
    ya, pa = _check(y, p)
    b = np.minimum((pa * n_bins).astype(np.int64), n_bins - 1)
    pos = np.bincount(b[ya == 1], minlength=n_bins)
    neg = np.bincount(b[ya == 0], minlength=n_bins)
    edges = np.asarray(calibration_edges, dtype=float)
    if edges[0] != 0.0 or edges[-1] != 1.0 or not (np.diff(edges) > 0).all():
        raise ValueError("calibration_edges must increase from 0 to 1")
    cb = np.clip(np.searchsorted(edges, pa, side="right") - 1, 0, edges.size - 2)
    k = edges.size - 1
    n = int(ya.size)
    events = int(ya.sum())
    return {
        "site": str(site),
        "version": AGGREGATE_VERSION,
        "counts": {"n": _cell(n, min_cell), "events": _cell(events, min_cell)},
        "stats": {
            "n": n,
            "events": events,
            "n_bins": int(n_bins),
            # sparse: most of the 1,000 bins are empty at a small site
            "hist_pos": {str(i): int(v) for i, v in enumerate(pos) if v},
            "hist_neg": {str(i): int(v) for i, v in enumerate(neg) if v},
            "calibration_edges": edges.tolist(),
            "cal_n": np.bincount(cb, minlength=k).astype(int).tolist(),
            "cal_sum_p": np.bincount(cb, weights=pa, minlength=k).tolist(),
            "cal_sum_y": np.bincount(cb, weights=ya, minlength=k).tolist(),
            "sum_p": float(pa.sum()),
            "sse": float(np.sum((pa - ya) ** 2)),
        },
    }


def _dense(hist: Mapping[str, int], n_bins: int) -> np.ndarray:
    out = np.zeros(n_bins)
    for i, v in hist.items():
        out[int(i)] += v
    return out


def _auc_from_hist(pos: np.ndarray, neg: np.ndarray) -> tuple[float | None, float | None]:
    P, N = pos.sum(), neg.sum()
    if P == 0 or N == 0:
        return None, None
    below = np.cumsum(neg) - neg  # negatives in lower bins
    ties = float(np.sum(pos * neg))
    auc = (float(np.sum(pos * below)) + 0.5 * ties) / (P * N)
    return auc, 0.5 * ties / (P * N)


def _metrics(stats: Sequence[Mapping[str, Any]], min_cell: int) -> dict[str, Any]:
    n_bins = int(stats[0]["n_bins"])
    edges = list(stats[0]["calibration_edges"])
    for s in stats:
        if int(s["n_bins"]) != n_bins or list(s["calibration_edges"]) != edges:
            raise ValueError("sites used different score bins or calibration edges")
    n = sum(int(s["n"]) for s in stats)
    events = sum(int(s["events"]) for s in stats)
    pos = sum(_dense(s["hist_pos"], n_bins) for s in stats)
    neg = sum(_dense(s["hist_neg"], n_bins) for s in stats)
    cal_n = np.sum([s["cal_n"] for s in stats], axis=0)
    cal_p = np.sum([s["cal_sum_p"] for s in stats], axis=0)
    cal_y = np.sum([s["cal_sum_y"] for s in stats], axis=0)
    sum_p = sum(float(s["sum_p"]) for s in stats)
    sse = sum(float(s["sse"]) for s in stats)
    enough = n >= min_cell and events >= min_cell and n - events >= min_cell
    auc, bound = _auc_from_hist(pos, neg)
    calibration = []
    for i in range(len(edges) - 1):
        ok = cal_n[i] >= min_cell
        calibration.append(
            {
                "bin": [edges[i], edges[i + 1]],
                "n": _cell(cal_n[i], min_cell),
                "expected": float(cal_p[i]) if ok else None,
                "observed": float(cal_y[i]) if ok else None,
                "mean_p": float(cal_p[i] / cal_n[i]) if ok else None,
                "observed_rate": float(cal_y[i] / cal_n[i]) if ok else None,
            }
        )
    return {
        "n": _cell(n, min_cell),
        "events": _cell(events, min_cell),
        "auc": auc if enough else None,
        "auc_tie_bound": bound if enough else None,
        "brier": sse / n if enough else None,
        "observed_expected": events / sum_p if enough and sum_p > 0 else None,
        "calibration": calibration,
    }


def combine_aggregates(
    aggregates: Sequence[Mapping[str, Any]], *, min_cell: int = DEFAULT_MIN_CELL
) -> dict[str, Any]:
    """Combine the sites' :func:`site_aggregates` into overall and per-site metrics.

    Parameters
    ----------
    aggregates : sequence of dict
        One per site, all with the same ``n_bins`` and calibration edges.
    min_cell : int, default 11
        A metric is reported only when its rows, events and non-events each reach
        ``min_cell``; counts below it and calibration bins with fewer rows are ``None``.

    Returns
    -------
    dict
        ``{"overall": {n, events, auc, auc_tie_bound, brier, observed_expected,
        calibration}, "sites": [{"site", ...same keys...}, ...]}``.
    """
    if not aggregates:
        raise ValueError("no site aggregates to combine")
    overall = _metrics([a["stats"] for a in aggregates], min_cell)
    sites = [{"site": a["site"], **_metrics([a["stats"]], min_cell)} for a in aggregates]
    return {"overall": overall, "sites": sites}
