"""Does a treatment effect differ between populations or hospitals?

Given per-row doubly robust (AIPW) scores ``psi`` (SCIENCE.md, "Treatment effects";
:func:`oncorwe.effects.aipw.aipw_scores`), a group's effect is the mean of its scores and
its standard error their standard deviation over ``sqrt(n)``; the groups are then
compared with Cochran's Q, the fixed-effect meta-analysis test of homogeneity, and the
share of the spread beyond chance is summarized by I^2 (Higgins & Thompson 2002).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from oncorwe.core.privacy import DEFAULT_MIN_CELL, check_min_cell

__all__ = ["EffectHeterogeneity", "cochran_q", "effect_by_group"]


class EffectHeterogeneity(NamedTuple):
    """Result of :func:`effect_by_group`: per-group effects and one test per grouping."""

    groups: pd.DataFrame
    tests: pd.DataFrame


def cochran_q(effect: Any, se: Any) -> dict[str, float]:
    """Cochran's Q test that independent estimates share one true value, and I^2.

    With weights ``w_g = 1 / se_g^2`` and the fixed-effect pooled estimate
    ``theta_bar = sum w_g theta_g / sum w_g``::

        Q   = sum_g w_g (theta_g - theta_bar)^2  ~  chi-square(G - 1)  under homogeneity
        I^2 = max(0, (Q - (G - 1)) / Q)

    Estimates with a missing or zero standard error are left out.

    Parameters
    ----------
    effect, se : array-like of shape (G,)

    Returns
    -------
    dict
        ``n_groups`` (G used), ``q``, ``df``, ``p_value``, ``i2``, ``pooled`` (theta_bar)
        and ``pooled_se`` (``1 / sqrt(sum w)``); NaN statistics when G < 2.

    Examples
    --------
    >>> out = cochran_q([2.0, 5.0, 2.0], [1 / 3**0.5, 1 / 3**0.5, 2 / 3**0.5])
    >>> round(out["q"], 6), out["df"], round(out["i2"], 4)
    (15.0, 2, 0.8667)
    """
    th = np.asarray(effect, dtype=float).ravel()
    s = np.asarray(se, dtype=float).ravel()
    if th.shape != s.shape:
        raise ValueError(f"effect has {th.size} values but se has {s.size}")
    ok = np.isfinite(th) & np.isfinite(s) & (s > 0)
    th, w = th[ok], 1.0 / s[ok] ** 2
    g = int(th.size)
    if g == 0:
        return {
            "n_groups": 0, "q": np.nan, "df": 0, "p_value": np.nan, "i2": np.nan,
            "pooled": np.nan, "pooled_se": np.nan,
        }  # fmt: skip
    pooled = float(np.sum(w * th) / np.sum(w))
    pooled_se = float(1.0 / np.sqrt(np.sum(w)))
    if g < 2:
        return {
            "n_groups": g, "q": np.nan, "df": 0, "p_value": np.nan, "i2": np.nan,
            "pooled": pooled, "pooled_se": pooled_se,
        }  # fmt: skip
    q = float(np.sum(w * (th - pooled) ** 2))
    df = g - 1
    return {
        "n_groups": g,
        "q": q,
        "df": df,
        "p_value": float(stats.chi2.sf(q, df)),
        "i2": float(max(0.0, (q - df) / q)) if q > 0 else 0.0,
        "pooled": pooled,
        "pooled_se": pooled_se,
    }


def _group_stats(
    psi: np.ndarray, labels: np.ndarray, cluster: np.ndarray | None
) -> dict[str, np.ndarray]:
    """Per label (sorted): ``n``, ``n_clusters``, ``effect`` (mean psi) and ``se``."""
    codes, uniques = pd.factorize(labels, sort=False)
    k = len(uniques)
    n = np.bincount(codes, minlength=k)
    effect = np.bincount(codes, weights=psi, minlength=k) / n
    resid = psi - effect[codes]
    if cluster is None:
        n_clusters = n
        with np.errstate(divide="ignore", invalid="ignore"):
            var = np.bincount(codes, weights=resid**2, minlength=k) / ((n - 1) * n)
        var = np.where(n > 1, var, np.nan)
    else:
        # cluster-robust (CR1) variance of a mean: residuals summed within each cluster,
        # so that a patient's several lines count as one independent unit
        c_codes, c_uniq = pd.factorize(cluster, sort=False)
        pair = np.unique(codes * len(c_uniq) + c_codes, return_inverse=True)[1].ravel()
        n_pairs = int(pair.max()) + 1 if pair.size else 0
        sums = np.bincount(pair, weights=resid, minlength=n_pairs)
        group_of_pair = np.zeros(n_pairs, dtype=np.int64)
        group_of_pair[pair] = codes
        n_clusters = np.bincount(group_of_pair, minlength=k)
        with np.errstate(divide="ignore", invalid="ignore"):
            var = (
                n_clusters
                / (n_clusters - 1)
                * np.bincount(group_of_pair, weights=sums**2, minlength=k)
                / n**2
            )
        var = np.where(n_clusters > 1, var, np.nan)
    order = np.argsort(np.asarray(uniques, dtype=object).astype(str), kind="stable")
    return {
        "group": np.asarray(uniques, dtype=object)[order],
        "n": n[order],
        "n_clusters": n_clusters[order],
        "effect": effect[order],
        "se": np.sqrt(var)[order],
    }


def effect_by_group(
    psi: Any,
    groups: Mapping[str, Any] | Any,
    *,
    min_cell: int = DEFAULT_MIN_CELL,
    alpha: float = 0.05,
    cluster: Any = None,
) -> EffectHeterogeneity:
    """Subgroup effects from doubly robust scores, and a test that they are equal.

    For group ``g`` with ``n_g`` rows::

        effect_g = mean(psi_i, i in g)
        se_g     = sd(psi_i, i in g) / sqrt(n_g)                    (rows independent)
        se_g     = sqrt(C/(C-1) sum_c (sum_{i in c} (psi_i - effect_g))^2) / n_g
                                                   (``cluster``: C clusters in g, CR1)
        CI       = effect_g -/+ z_{1-alpha/2} se_g

    then, per grouping, Cochran's Q over the unsuppressed groups (:func:`cochran_q`):
    ``Q = sum w_g (effect_g - pooled)^2``, ``w_g = 1/se_g^2``, chi-square with ``G - 1``
    degrees of freedom, and ``I^2 = max(0, (Q - (G-1)) / Q)``. Q treats the group
    estimates as independent: it is exact when every cluster (patient) falls in one
    group (population, site), approximate when a patient's lines span groups (line).

    Parameters
    ----------
    psi : array-like of shape (n,)
        Doubly robust scores, one per row (line).
    groups : mapping name -> array-like of shape (n,), or one array-like of shape (n,)
        Group labels, one array per grouping (``{"population": ..., "site": ...}``);
        rows with a missing label are left out of that grouping. A bare array is the
        grouping ``"group"``.
    min_cell : int, default 11
        Groups with fewer rows (or, with ``cluster``, fewer clusters) are suppressed:
        the row stays with missing counts and estimates and does not enter Q.
    alpha : float, default 0.05
        Level of the confidence intervals and of ``rejected`` in the tests.
    cluster : array-like of shape (n,), optional
        Cluster ids (e.g. ``person_key``) for cluster-robust standard errors.

    Returns
    -------
    EffectHeterogeneity
        ``groups``: one row per group, sorted within each grouping: ``grouping, group,
        n, n_clusters`` (``Int64``), ``suppressed``, ``effect, se, ci_low, ci_high,
        p_value`` (two-sided, effect = 0).
        ``tests``: one row per grouping: ``grouping, n_groups, q, df, p_value, i2,
        pooled, pooled_se, rejected`` (``p_value < alpha``).

    Examples
    --------
    >>> psi = [1, 2, 3, 4, 5, 6, 0, 2, 4]
    >>> res = effect_by_group(psi, {"arm": list("AAABBBCCC")}, min_cell=1)
    >>> res.groups[["group", "effect"]].to_dict("list")
    {'group': ['A', 'B', 'C'], 'effect': [2.0, 5.0, 2.0]}
    >>> res.tests[["q", "df", "i2"]].round(4).to_dict("records")
    [{'q': 15.0, 'df': 2, 'i2': 0.8667}]
    """
    min_cell = check_min_cell(min_cell)
    if not (isinstance(alpha, float) and 0 < alpha < 1):
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    psi_arr = np.asarray(psi, dtype=float).ravel()
    if not np.isfinite(psi_arr).all():
        raise ValueError("psi must be finite (drop or impute the rows first)")
    n = psi_arr.size
    cl = None
    if cluster is not None:
        cl = np.asarray(cluster, dtype=object).ravel()
        if cl.shape[0] != n:
            raise ValueError(f"cluster has {cl.shape[0]} rows; psi has {n}")
        if pd.isna(cl).any():
            raise ValueError("cluster has missing ids")
    if not isinstance(groups, Mapping):
        groups = {"group": groups}
    z = float(stats.norm.ppf(1 - alpha / 2))

    parts: dict[str, list[np.ndarray]] = {}
    tests = []
    for name, labels in groups.items():
        lab = np.asarray(labels, dtype=object).ravel()
        if lab.shape[0] != n:
            raise ValueError(f"groups[{name!r}] has {lab.shape[0]} rows; psi has {n}")
        keep = ~pd.isna(lab)
        st = _group_stats(psi_arr[keep], lab[keep], None if cl is None else cl[keep])
        small = (st["n"] < min_cell) | (st["n_clusters"] < min_cell)
        effect = np.where(small, np.nan, st["effect"])
        se = np.where(small, np.nan, st["se"])
        with np.errstate(divide="ignore", invalid="ignore"):
            p_value = 2 * stats.norm.sf(np.abs(effect / se))
        columns = {
            "grouping": np.full(small.size, str(name), dtype=object),
            "group": st["group"],
            "n": st["n"],
            "n_clusters": st["n_clusters"],
            "suppressed": small,
            "effect": effect,
            "se": se,
            "ci_low": effect - z * se,
            "ci_high": effect + z * se,
            "p_value": p_value,
        }
        for col, values in columns.items():
            parts.setdefault(col, []).append(values)
        q = cochran_q(effect, se)
        tests.append({"grouping": str(name), **q, "rejected": bool(q["p_value"] < alpha)})
    group_cols = [
        "grouping", "group", "n", "n_clusters", "suppressed",
        "effect", "se", "ci_low", "ci_high", "p_value",
    ]  # fmt: skip
    test_cols = [
        "grouping",
        "n_groups",
        "q",
        "df",
        "p_value",
        "i2",
        "pooled",
        "pooled_se",
        "rejected",
    ]
    cols = {c: np.concatenate(parts[c]) if parts else np.array([]) for c in group_cols}
    hidden = cols["suppressed"].astype(bool)
    for c in ("n", "n_clusters"):
        cols[c] = pd.arrays.IntegerArray(cols[c].astype("int64"), hidden)
    cols["suppressed"] = hidden
    out_groups = pd.DataFrame(cols, columns=group_cols)
    return EffectHeterogeneity(groups=out_groups, tests=pd.DataFrame(tests, columns=test_cols))
