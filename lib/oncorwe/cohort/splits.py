"""Deterministic data splits by patient (or by hospital): discovery, confirmation, validation.

A patient's rows always land in one part, so no estimate is confirmed on a patient it was
discovered on, and track 2 emulates on patients neither part of track 1 saw.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PARTS = ("discovery", "confirmation", "validation")


def _uniform(values: pd.Series, seed: int) -> np.ndarray:
    """A reproducible pseudo-random number in [0, 1) per value (keyed hash)."""
    key = f"{seed:016d}"[-16:]
    h = pd.util.hash_array(values.astype(str).to_numpy(dtype=object), hash_key=key)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def assign_splits(
    ids: pd.Series,
    fractions: dict[str, float],
    *,
    seed: int,
    hospitals: pd.Series | None = None,
) -> np.ndarray:
    """Assign each row to a part by hashing its patient id (or its hospital).

    Parameters
    ----------
    ids : Series (n,)
        Patient ids; rows of one id share a part.
    fractions : dict
        Part -> share (summing to 1), e.g. ``{"discovery": 0.5, "confirmation": 0.25,
        "validation": 0.25}``.
    hospitals : Series (n,), optional
        Split by hospital instead: whole hospitals go to one part (external validation).

    Returns
    -------
    ndarray of str (n,)

    Examples
    --------
    >>> parts = assign_splits(pd.Series(["a", "a", "b"]), {"x": 0.5, "y": 0.5}, seed=1)
    >>> parts[0] == parts[1]
    True
    """
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6 or any(v < 0 for v in fractions.values()):
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    unit = hospitals if hospitals is not None else ids
    u = _uniform(unit.reset_index(drop=True), seed)
    names = list(fractions)
    edges = np.cumsum([fractions[k] for k in names])
    idx = np.minimum(np.searchsorted(edges, u, side="right"), len(names) - 1)
    return np.array(names, dtype=object)[idx]
