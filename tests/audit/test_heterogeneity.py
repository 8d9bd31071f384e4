"""Subgroup effects and Cochran's Q: a hand computation, planted effects and the null."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from oncorwe.audit import cochran_q, effect_by_group
from oncorwe.effects import aipw_scores

GROUPS = np.array(["a", "b", "c", "d"])


def test_q_matches_a_hand_computation():
    # A = [1,2,3]: mean 2, sd 1, se 1/sqrt3, w 3;  B = [4,5,6]: mean 5, w 3;
    # C = [0,2,4]: mean 2, sd 2, w 3/4.  pooled = (6 + 15 + 1.5) / 6.75 = 10/3
    # Q = 3 (4/3)^2 + 3 (5/3)^2 + 0.75 (4/3)^2 = (48 + 75 + 12) / 9 = 15, df 2
    # chi-square(2) tail: exp(-Q/2);  I^2 = (15 - 2) / 15
    # (R: metafor::rma(yi = c(2,5,2), sei = c(1,1,2)/sqrt(3), method = "FE")$QE = 15)
    res = effect_by_group([1, 2, 3, 4, 5, 6, 0, 2, 4], {"arm": list("AAABBBCCC")}, min_cell=1)
    test = res.tests.iloc[0]
    assert test.q == pytest.approx(15.0)
    assert test.df == 2
    assert test.p_value == pytest.approx(math.exp(-7.5))
    assert test.i2 == pytest.approx(13 / 15)
    assert test.pooled == pytest.approx(10 / 3)
    assert test.pooled_se == pytest.approx(1 / math.sqrt(6.75))
    groups = res.groups.set_index("group")
    assert groups.se.tolist() == pytest.approx(
        [1 / math.sqrt(3), 1 / math.sqrt(3), 2 / math.sqrt(3)]
    )
    assert groups.loc["C", "ci_low"] == pytest.approx(2 - 1.959964 * 2 / math.sqrt(3), rel=1e-6)


def test_cochran_q_is_zero_for_equal_estimates():
    out = cochran_q([0.3, 0.3, 0.3], [0.1, 0.2, 0.05])
    assert out["q"] == 0 and out["i2"] == 0 and out["p_value"] == pytest.approx(1.0)


def _aipw_sample(rng: np.random.Generator, effects: dict[str, float], n: int = 2000):
    """Confounded binary-outcome data with true nuisances; risk difference per group."""
    g = rng.choice(GROUPS, n, p=[0.4, 0.3, 0.2, 0.1])
    x = rng.normal(size=n)
    e = expit(0.8 * x)
    t = (rng.random(n) < e).astype(int)
    m0 = expit(-0.5 + 0.7 * x)
    m1 = np.clip(m0 + pd.Series(g).map(effects).to_numpy(), 0, 1)
    y = (rng.random(n) < np.where(t == 1, m1, m0)).astype(int)
    return aipw_scores(y, t, e, m1, m0), g


def test_q_rejects_at_its_level_when_every_group_has_the_same_effect():
    rng = np.random.default_rng(20)
    pvals = []
    for _ in range(400):
        psi, g = _aipw_sample(rng, {k: 0.1 for k in GROUPS})
        pvals.append(effect_by_group(psi, g).tests.p_value.iloc[0])
    pvals = np.asarray(pvals)
    # measured on this seed: 0.0425 rejected at 0.05, mean p-value 0.508, P(p < 0.5) 0.505
    assert 0.02 <= (pvals < 0.05).mean() <= 0.09
    assert abs(pvals.mean() - 0.5) < 0.05
    assert 0.4 <= (pvals < 0.5).mean() <= 0.6


def test_q_rejects_when_groups_differ_and_recovers_each_effect():
    rng = np.random.default_rng(21)
    effects = {"a": 0.0, "b": 0.1, "c": 0.2, "d": 0.3}
    psi, g = _aipw_sample(rng, effects, n=20_000)
    res = effect_by_group(psi, {"population": g})
    assert res.tests.rejected.iloc[0] and res.tests.p_value.iloc[0] < 1e-6
    assert res.tests.i2.iloc[0] > 0.8
    groups = res.groups.set_index("group")
    inside = (groups.ci_low <= pd.Series(effects)) & (pd.Series(effects) <= groups.ci_high)
    assert inside.all()


def test_cluster_robust_se_counts_duplicated_rows_once():
    # every row twice, the copies one cluster: the CR1 SE equals the SE of the originals
    rng = np.random.default_rng(22)
    psi = rng.normal(0.2, 1.0, 300)
    g = rng.choice(GROUPS[:2], 300)
    ids = np.arange(300)
    base = effect_by_group(psi, g).groups.set_index("group")
    dup = effect_by_group(np.tile(psi, 2), np.tile(g, 2), cluster=np.tile(ids, 2))
    dup = dup.groups.set_index("group")
    naive = effect_by_group(np.tile(psi, 2), np.tile(g, 2)).groups.set_index("group")
    assert dup.se.to_numpy() == pytest.approx(base.se.to_numpy(), rel=1e-12)
    assert dup.effect.to_numpy() == pytest.approx(base.effect.to_numpy())
    assert (naive.se < dup.se).all()
    assert (dup.n == 2 * base.n).all() and (dup.n_clusters == base.n).all()


def test_small_groups_are_suppressed_and_left_out_of_q():
    rng = np.random.default_rng(23)
    psi = rng.normal(size=210)
    g = np.array(["a"] * 100 + ["b"] * 100 + ["c"] * 10)
    res = effect_by_group(psi, {"site": g}, min_cell=11)
    c = res.groups.set_index("group").loc["c"]
    assert c.suppressed and pd.isna(c.n) and np.isnan(c.effect) and np.isnan(c.se)
    assert res.tests.n_groups.iloc[0] == 2 and res.tests.df.iloc[0] == 1


def test_effect_by_group_names_bad_input():
    with pytest.raises(ValueError, match="psi"):
        effect_by_group([0.1, np.nan], ["a", "b"])
    with pytest.raises(ValueError, match="groups\\['site'\\]"):
        effect_by_group([0.1, 0.2], {"site": ["a"]})
    with pytest.raises(ValueError, match="cluster"):
        effect_by_group([0.1, 0.2], ["a", "b"], cluster=[1])
