"""AIPW scores, inference, cross-fitted estimator and grouped folds, on planted effects."""

from __future__ import annotations

import numpy as np
import pytest

from oncorwe.effects import AIPWEstimator, aipw_effect, aipw_scores
from oncorwe.models import OutcomeRegressor
from oncorwe.models.splits import grouped_fold_ids, grouped_kfold

from . import simulate_binary, small_classifier

N_SEEDS = 10


@pytest.fixture(scope="module")
def replications() -> list[dict]:
    """AIPW and naive estimates of the x1 > 1 subgroup effect over 10 simulated cohorts."""
    out = []
    for seed in range(N_SEEDS):
        d = simulate_binary(seed)
        est = AIPWEstimator(
            propensity_model=small_classifier(seed),
            outcome_model=small_classifier(seed),
            n_splits=2,
            random_state=seed,
        ).fit(d["Y"], d["T"], X=d["X"], groups=d["groups"])
        sub, t, y = d["sub"], d["T"], d["Y"]
        out.append(
            {
                "truth": d["rd"][sub].mean(),
                "aipw": est.effect_inference(sub),
                "naive": y[sub & (t == 1)].mean() - y[sub & (t == 0)].mean(),
            }
        )
    return out


# --------------------------------------------------------------------------- scores
def test_aipw_scores_follow_the_formula():
    y, t = np.array([1.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0])
    e, m1, m0 = np.array([0.4, 0.5, 0.8]), np.array([0.7, 0.6, 0.5]), np.array([0.2, 0.3, 0.4])
    expected = [
        0.7 - 0.2 + (1 - 0.7) / 0.4,
        0.6 - 0.3 - (0 - 0.3) / 0.5,
        0.5 - 0.4 - (1 - 0.4) / 0.2,
    ]
    np.testing.assert_allclose(aipw_scores(y, t, e, m1, m0), expected)


def test_aipw_scores_clip_the_propensity_at_eps():
    clipped = aipw_scores([1.0], [1.0], [0.001], [0.5], [0.5], eps=0.05)
    assert clipped[0] == pytest.approx(0.5 / 0.05)


def test_aipw_effect_se_is_sd_over_root_n():
    psi = np.random.default_rng(0).normal(0.3, 2.0, 400)
    mask = np.arange(400) < 300
    r = aipw_effect(psi, mask)
    assert r.effect == pytest.approx(psi[:300].mean())
    assert r.se == pytest.approx(psi[:300].std(ddof=1) / np.sqrt(300))
    assert r.ci_lower == pytest.approx(r.effect - 1.959964 * r.se, rel=1e-6)
    assert r.n == 300


def test_cluster_se_equals_iid_se_for_singleton_groups():
    psi = np.random.default_rng(1).normal(size=200)
    assert aipw_effect(psi, groups=np.arange(200)).se == pytest.approx(aipw_effect(psi).se)


def test_cluster_se_exceeds_iid_se_for_duplicated_patients():
    psi = np.repeat(np.random.default_rng(2).normal(size=200), 2)
    groups = np.repeat(np.arange(200), 2)
    assert aipw_effect(psi, groups=groups).se > 1.3 * aipw_effect(psi).se


# --------------------------------------------------------------------------- estimator
def test_aipw_ci_covers_true_subgroup_risk_difference(replications):
    covered = sum(r["aipw"].ci_lower <= r["truth"] <= r["aipw"].ci_upper for r in replications)
    assert covered >= 8  # of 10; 95% intervals


def test_naive_difference_is_biased_but_aipw_is_not(replications):
    naive_bias = np.mean([r["naive"] - r["truth"] for r in replications])
    aipw_bias = np.mean([r["aipw"].effect - r["truth"] for r in replications])
    # treated rows have higher x0, which raises the outcome: the naive contrast is inflated
    assert naive_bias > 0.07
    assert abs(aipw_bias) < 0.03


def test_pooled_outcome_model_covers_the_truth():
    d = simulate_binary(seed=11)
    est = AIPWEstimator(
        propensity_model=small_classifier(),
        outcome_model=small_classifier(),
        outcome_mode="pooled",
        n_splits=3,
    ).fit(d["Y"], d["T"], X=d["X"], groups=d["groups"])
    r = est.effect_inference(d["sub"])
    assert r.ci_lower <= d["rd"][d["sub"]].mean() <= r.ci_upper


def test_continuous_outcome_gives_a_mean_difference():
    d = simulate_binary(seed=12, n_patients=1000)
    y = 2.0 * d["X"][:, 0] + 1.5 * d["T"] + np.random.default_rng(0).normal(size=d["T"].size)
    reg = OutcomeRegressor(n_estimators=60, max_depth=2, learning_rate=0.15, n_jobs=1, device="cpu")
    est = AIPWEstimator(propensity_model=small_classifier(), outcome_model=reg, n_splits=2)
    est.fit(y, d["T"], X=d["X"], groups=d["groups"])
    assert not est.binary_outcome_
    r = est.effect_inference()
    assert r.ci_lower <= 1.5 <= r.ci_upper


def test_aipw_estimator_rejects_nonbinary_treatment():
    with pytest.raises(ValueError, match="T must be 0/1"):
        AIPWEstimator().fit([0, 1, 1], [0, 1, 2], X=np.zeros((3, 1)))


def test_aipw_estimator_folds_keep_patients_together():
    d = simulate_binary(seed=13, n_patients=500)
    est = AIPWEstimator(
        propensity_model=small_classifier(), outcome_model=small_classifier(), n_splits=2
    ).fit(d["Y"], d["T"], X=d["X"], groups=d["groups"])
    folds = est.fold_ids_.reshape(-1, 2)  # 2 consecutive rows per patient
    assert (folds[:, 0] == folds[:, 1]).all()


# --------------------------------------------------------------------------- splits
def test_grouped_folds_never_split_a_group():
    rng = np.random.default_rng(3)
    groups = rng.integers(0, 250, 1000)
    for train, test in grouped_kfold(1000, groups, n_splits=5, seed=1):
        assert not set(groups[train]) & set(groups[test])


def test_grouped_folds_partition_the_rows():
    groups = np.repeat(np.arange(101), 3)
    tests = [te for _, te in grouped_kfold(303, groups, n_splits=4, seed=0)]
    np.testing.assert_array_equal(np.sort(np.concatenate(tests)), np.arange(303))
    sizes = [len(set(groups[te])) for te in tests]
    assert max(sizes) - min(sizes) <= 1


def test_grouped_folds_are_deterministic_for_a_seed():
    groups = np.repeat(np.arange(50), 2)
    a = grouped_fold_ids(100, groups, n_splits=5, seed=7)
    np.testing.assert_array_equal(a, grouped_fold_ids(100, groups, n_splits=5, seed=7))
    assert not np.array_equal(a, grouped_fold_ids(100, groups, n_splits=5, seed=8))


def test_grouped_folds_reject_more_folds_than_groups():
    with pytest.raises(ValueError, match="n_splits"):
        grouped_fold_ids(4, [1, 1, 2, 2], n_splits=3)
