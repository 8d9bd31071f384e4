"""The pieces of subgroup discovery, against analytic truths."""

from __future__ import annotations

import numpy as np
import pandas as pd

from oncorwe.effects.aipw import aipw_scores
from oncorwe.effects.discovery import aipw_psi, clause_specs, ipcw_rmst, tree_rules


def test_ipcw_rmst_is_unbiased_for_the_exponential_rmst():
    rng = np.random.default_rng(0)
    n, lam, mu, tau = 200_000, 0.1, 0.03, 12.0
    t = rng.exponential(1 / lam, n)
    c = rng.exponential(1 / mu, n)
    y = ipcw_rmst(np.minimum(t, c), (t <= c).astype(float), tau)
    truth = (1 - np.exp(-lam * tau)) / lam  # int_0^tau exp(-lam t) dt
    se = y.std() / np.sqrt(n)
    assert abs(y.mean() - truth) < 4 * se
    # ignoring censoring would be biased downwards
    naive = np.minimum(np.minimum(t, c), tau).mean()
    assert naive < truth - 10 * se


def test_aipw_psi_equals_the_two_arm_formula():
    rng = np.random.default_rng(1)
    n = 500
    arm = rng.integers(0, 3, n)
    e = rng.dirichlet([2, 2, 2], n)
    m = rng.random((n, 3))
    y = rng.integers(0, 2, n).astype(float)
    psi = aipw_psi(y, arm, 2, e, m, eps=0.01)
    two = (arm == 2) | (arm == 0)
    e2 = np.clip(e[:, 2] / (e[:, 2] + e[:, 0]), 0.01, 0.99)
    ref = aipw_scores(
        y[two], (arm[two] == 2).astype(float), e2[two], m[two, 2], m[two, 0], eps=0.01
    )
    np.testing.assert_allclose(psi[two], ref)
    assert np.isnan(psi[~two]).all()


def test_missing_outcomes_get_no_score():
    y = np.array([1.0, np.nan, 0.0])
    psi = aipw_psi(y, np.array([1, 1, 0]), 1, np.full((3, 2), 0.5), np.full((3, 2), 0.5))
    assert np.isnan(psi[1]) and not np.isnan(psi[0]) and not np.isnan(psi[2])


def test_clause_specs_reads_markers_tiers_lines_and_categories():
    frame = pd.DataFrame(
        {
            "bm_egfr": [1.0, 0.0, np.nan] * 40,
            "bm_pdl1_tps": [80.0, 10.0, 0.0] * 40,
            "population": ["a", "b", "a"] * 40,
            "line": [1, 2, 3] * 40,
        }
    )
    specs = clause_specs(frame, ["EGFR", "PDL1_TPS", "population", "line"], min_rows=20)
    assert ("EGFR", "positive") in specs and ("EGFR", "negative") in specs
    assert ("PDL1_TPS", {"min": 50}) in specs and ("PDL1_TPS", {"max": 0}) in specs
    assert ("population", "a") in specs and ("line", {"min": 2}) in specs


def test_tree_rules_propose_the_planted_conjunction():
    rng = np.random.default_rng(2)
    n = 4000
    X = rng.random((n, 4)) < 0.5
    target = 2.0 * (X[:, 0] & X[:, 2]) + rng.normal(0, 0.5, n)
    names = [("A", "positive"), ("B", "positive"), ("C", "positive"), ("D", "positive")]
    rules = tree_rules(X, names, target, min_leaf=100, depth=2)
    assert {"A": "positive", "C": "positive"} in rules
