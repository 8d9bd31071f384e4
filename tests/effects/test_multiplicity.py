"""Benjamini-Hochberg and Holm against scipy, R's p.adjust and the global null."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import false_discovery_control

from oncorwe.effects import bh_qvalues, bh_reject, holm_adjust, holm_reject

P = [0.01, 0.04, 0.03, 0.005]


@pytest.mark.parametrize("m", [1, 5, 37, 500])
def test_bh_matches_scipy_false_discovery_control(m):
    rng = np.random.default_rng(m)
    p = np.concatenate([rng.uniform(size=m - m // 5), rng.uniform(0, 1e-3, m // 5)])
    np.testing.assert_allclose(bh_qvalues(p), false_discovery_control(p, method="bh"))


def test_bh_known_values_from_r():
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "BH") -> 0.02 0.04 0.04 0.02
    np.testing.assert_allclose(bh_qvalues(P), [0.02, 0.04, 0.04, 0.02])


def test_bh_qvalues_are_monotone_in_p_and_capped_at_one():
    p = np.random.default_rng(0).uniform(size=200) ** 0.3
    q = bh_qvalues(p)
    order = np.argsort(p)
    assert np.all(np.diff(q[order]) >= 0)
    assert q.max() <= 1.0
    assert np.all(q >= p)


def test_holm_known_values_from_r():
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") -> 0.03 0.06 0.06 0.02
    np.testing.assert_allclose(holm_adjust(P), [0.03, 0.06, 0.06, 0.02])


def test_holm_is_capped_at_one():
    assert holm_adjust([0.5, 0.9]).tolist() == [1.0, 1.0]


def test_holm_rejects_a_subset_of_bh():
    p = np.random.default_rng(1).uniform(size=100) ** 3
    assert not np.any(holm_reject(p, 0.05) & ~bh_reject(p, 0.05))


def test_missing_p_values_stay_missing_and_are_not_counted():
    q = bh_qvalues([0.01, np.nan, 0.04])
    assert np.isnan(q[1])
    np.testing.assert_allclose(q[[0, 2]], bh_qvalues([0.01, 0.04]))
    assert not bh_reject([np.nan])[0]


def test_bh_any_discovery_rate_under_global_null_is_q():
    # all nulls true and independent: FDR = P(any discovery) = q exactly
    rng = np.random.default_rng(2)
    reps, m, q = 4000, 20, 0.10
    rate = np.mean([bh_reject(rng.uniform(size=m), q).any() for _ in range(reps)])
    assert rate == pytest.approx(q, abs=0.015)  # binomial SE 0.0047


def test_rejects_p_values_outside_unit_interval():
    with pytest.raises(ValueError, match="p-values"):
        bh_qvalues([0.1, 1.2])
