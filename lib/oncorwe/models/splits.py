"""Grouped K-fold splits for cross-fitting: a patient's rows are always in one fold.

Cross-fitted nuisance predictions for a row must come from models that never saw that
row *or any other row of the same patient*; otherwise the patient's own outcome leaks
into its nuisance prediction and the doubly robust estimate is biased toward the naive
one. Folds are built from a seeded permutation of the distinct groups, so they are
identical across runs and machines.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["grouped_fold_ids", "grouped_kfold"]


def grouped_fold_ids(n: int, groups: Any = None, *, n_splits: int = 5, seed: int = 0) -> np.ndarray:
    """Fold number (0 .. n_splits-1) of each row; rows of one group share a fold.

    Distinct groups are shuffled with ``numpy.random.default_rng(seed)`` and dealt to
    folds in turn, so each fold holds ``floor`` or ``ceil`` of ``n_groups / n_splits``
    groups.

    Parameters
    ----------
    n : int
        Number of rows.
    groups : array-like of shape (n,), optional
        Group (patient) label per row; ``None``: each row is its own group.
    n_splits : int, default 5
        Number of folds, at least 2 and at most the number of groups.
    seed : int, default 0

    Returns
    -------
    ndarray of int of shape (n,)

    Examples
    --------
    >>> ids = grouped_fold_ids(6, ["a", "a", "b", "b", "c", "c"], n_splits=3)
    >>> bool(ids[0] == ids[1] and ids[2] == ids[3] and ids[4] == ids[5])
    True
    """
    g = np.arange(n) if groups is None else np.asarray(groups)
    if g.shape[0] != n:
        raise ValueError(f"groups has {g.shape[0]} rows; expected {n}")
    uniq, inv = np.unique(g, return_inverse=True)
    if not 2 <= n_splits <= uniq.size:
        raise ValueError(
            f"n_splits must be between 2 and the number of groups ({uniq.size}); got {n_splits}"
        )
    perm = np.random.default_rng(seed).permutation(uniq.size)
    fold_of_group = np.empty(uniq.size, dtype=np.int64)
    fold_of_group[perm] = np.arange(uniq.size) % n_splits
    return fold_of_group[inv.ravel()]


def grouped_kfold(
    n: int, groups: Any = None, *, n_splits: int = 5, seed: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(train_idx, test_idx)`` for each of ``n_splits`` grouped folds.

    See :func:`grouped_fold_ids`; every row is in exactly one ``test_idx``.

    Examples
    --------
    >>> [len(te) for _, te in grouped_kfold(6, [1, 1, 2, 2, 3, 3], n_splits=3)]
    [2, 2, 2]
    """
    ids = grouped_fold_ids(n, groups, n_splits=n_splits, seed=seed)
    for k in range(n_splits):
        yield np.flatnonzero(ids != k), np.flatnonzero(ids == k)
