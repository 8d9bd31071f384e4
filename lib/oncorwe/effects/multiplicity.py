"""Multiple-testing adjustments: Benjamini-Hochberg q-values and Holm's step-down.

Missing p-values (NaN) stay missing and do not count toward the number of tests ``m``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["bh_qvalues", "bh_reject", "holm_adjust", "holm_reject"]


def _pvalues(p: Any) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(p, dtype=float)
    ok = ~np.isnan(arr)
    if ((arr[ok] < 0) | (arr[ok] > 1)).any():
        raise ValueError("p-values must lie in [0, 1]")
    return arr, ok


def bh_qvalues(p: Any) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values).

    With the ``m`` p-values sorted, ``p_(1) <= ... <= p_(m)``,
    ``q_(i) = min(1, min_{j >= i} m p_(j) / j)``: monotone in ``p`` and capped at 1.
    Rejecting ``q <= alpha`` is the BH step-up procedure at FDR ``alpha`` (equal to
    ``scipy.stats.false_discovery_control(p, method="bh")`` and R's
    ``p.adjust(p, "BH")``).

    Parameters
    ----------
    p : array-like
        P-values, any shape; NaN allowed.

    Returns
    -------
    ndarray of the same shape

    Examples
    --------
    >>> bh_qvalues([0.01, 0.04, 0.03, 0.005]).round(4).tolist()
    [0.02, 0.04, 0.04, 0.02]
    """

    def step_up(x: np.ndarray) -> np.ndarray:
        m = x.size
        scaled = x * m / np.arange(1, m + 1)
        # running minimum from the largest p down makes q monotone in p
        return np.minimum.accumulate(scaled[::-1])[::-1]

    return _adjust(p, step_up)


def _adjust(p: Any, on_sorted) -> np.ndarray:
    """Apply ``on_sorted`` (sorted p-values -> adjusted, same order) to the finite
    p-values of ``p``; cap at 1, put them back in place, NaN elsewhere."""
    arr, ok = _pvalues(p)
    out = np.full(arr.shape, np.nan)
    x = arr[ok]
    if x.size == 0:
        return out
    order = np.argsort(x, kind="stable")
    adj = np.empty(x.size)
    adj[order] = np.minimum(on_sorted(x[order]), 1.0)
    out[ok] = adj
    return out


def bh_reject(p: Any, q: float = 0.05) -> np.ndarray:
    """Boolean mask of the hypotheses BH rejects at FDR ``q`` (NaN -> False)."""
    qv = bh_qvalues(p)
    return np.where(np.isnan(qv), False, qv <= q)


def holm_adjust(p: Any) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error control).

    ``p_adj_(i) = min(1, max_{j <= i} (m - j + 1) p_(j))`` on the sorted p-values,
    as R's ``p.adjust(p, "holm")``.

    Examples
    --------
    >>> holm_adjust([0.01, 0.04, 0.03, 0.005]).round(4).tolist()
    [0.03, 0.06, 0.06, 0.02]
    """

    def step_down(x: np.ndarray) -> np.ndarray:
        return np.maximum.accumulate(x * (x.size - np.arange(x.size)))

    return _adjust(p, step_down)


def holm_reject(p: Any, alpha: float = 0.05) -> np.ndarray:
    """Boolean mask of the hypotheses Holm rejects at family-wise level ``alpha``."""
    adj = holm_adjust(p)
    return np.where(np.isnan(adj), False, adj <= alpha)
