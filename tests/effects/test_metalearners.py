"""T-learner and DR-learner on planted effects; effect-aware losses on known truths."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from oncorwe.effects import DRLearner, TLearner, aipw_scores, dr_pseudo_outcome_loss, r_loss
from oncorwe.models import OutcomeRegressor

from . import simulate_binary, small_classifier


def _small_regressor() -> OutcomeRegressor:
    return OutcomeRegressor(
        n_estimators=60, max_depth=2, learning_rate=0.15, max_bin=64, n_jobs=1, device="cpu"
    )


def _continuous(seed: int, n: int = 4000) -> dict:
    """Y = x0 + T (1 + x1) + N(0, 1), e(x) = expit(0.5 x0): every nuisance known."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    e = expit(0.5 * x[:, 0])
    t = (rng.random(n) < e).astype(int)
    tau = 1.0 + x[:, 1]
    mu0 = x[:, 0]
    y = mu0 + t * tau + rng.normal(size=n)
    return {"X": x, "T": t, "Y": y, "e": e, "tau": tau, "mu0": mu0, "m": mu0 + e * tau}


@pytest.fixture(scope="module")
def binary_data() -> dict:
    return simulate_binary(seed=0)


@pytest.fixture(scope="module")
def dr_fit(binary_data) -> DRLearner:
    d = binary_data
    return DRLearner(
        propensity_model=small_classifier(), outcome_model=small_classifier(), n_splits=2
    ).fit(d["Y"], d["T"], X=d["X"], groups=d["groups"])


# --------------------------------------------------------------------------- DR-learner
def test_drlearner_cate_is_larger_in_the_effect_subgroup(dr_fit, binary_data):
    tau, sub = dr_fit.effect(binary_data["X"]), binary_data["sub"]
    assert tau.shape == (sub.size,)
    # true risk differences: about 0.22 inside x1 > 1, exactly 0 outside
    assert tau[sub].mean() - tau[~sub].mean() > 0.08
    assert abs(tau[~sub].mean()) < 0.06


def test_drlearner_pseudo_outcomes_are_the_aipw_scores(dr_fit, binary_data):
    d, e, m = binary_data, dr_fit.propensities_, dr_fit.outcome_predictions_
    expected = aipw_scores(d["Y"], d["T"], e[:, 1], m[:, 1], m[:, 0], eps=dr_fit.eps)
    np.testing.assert_allclose(dr_fit.pseudo_outcomes_[:, 0], expected)


def test_drlearner_folds_keep_patients_together(dr_fit):
    folds = dr_fit.fold_ids_.reshape(-1, 2)  # 2 consecutive rows per patient
    assert (folds[:, 0] == folds[:, 1]).all()


def test_drlearner_effect_inference_covers_subgroup_truth(dr_fit, binary_data):
    r = dr_fit.effect_inference(binary_data["sub"])
    assert r.ci_lower <= binary_data["rd"][binary_data["sub"]].mean() <= r.ci_upper


def test_drlearner_one_column_per_treatment_vs_named_control():
    rng = np.random.default_rng(4)
    n = 4000
    x = rng.normal(size=(n, 3))
    arm = np.array(["ctl", "drug_a", "drug_b"])[rng.integers(0, 3, n)]
    sub = x[:, 1] > 0.5
    y = (rng.random(n) < expit(-0.5 + 0.7 * x[:, 0] + 1.0 * (arm == "drug_a") * sub)).astype(int)
    dr = DRLearner(
        propensity_model=small_classifier(),
        outcome_model=small_classifier(),
        control="ctl",
        n_splits=2,
    ).fit(y, arm, X=x)
    assert dr.treatments_ == ["drug_a", "drug_b"]
    assert dr.effect(x).shape == (n, 2)
    frame = dr.effect_frame(x)
    assert list(frame.columns) == ["drug_a", "drug_b"]
    np.testing.assert_allclose(dr.effect(x, treatment="drug_b"), frame["drug_b"])
    # drug_a works only in x1 > 0.5; drug_b does nothing
    assert frame["drug_a"][sub].mean() > frame["drug_b"][sub].mean() + 0.08


def test_drlearner_controls_w_enter_nuisances_only():
    d = _continuous(seed=5, n=1500)
    dr = DRLearner(
        propensity_model=small_classifier(),
        outcome_model=_small_regressor(),
        final_model=_small_regressor(),
        n_splits=2,
    ).fit(d["Y"], d["T"], X=d["X"][:, 1:], W=d["X"][:, :1])
    assert dr.final_models_[1].feature_names_ == ["x0", "x1"]
    assert dr.nuisance_models_[0]["propensity"].estimator.feature_names_ == ["x0", "x1", "w0"]


def test_drlearner_held_out_score_beats_zero_effect():
    train, test = _continuous(seed=6), _continuous(seed=7, n=2000)
    dr = DRLearner(
        propensity_model=small_classifier(), outcome_model=_small_regressor(), n_splits=2
    ).fit(train["Y"], train["T"], X=train["X"])
    psi = dr.pseudo_outcomes(test["Y"], test["T"], X=test["X"])
    assert dr.score(test["Y"], test["T"], X=test["X"]) < dr_pseudo_outcome_loss(
        psi, np.zeros_like(psi)
    )


def test_drlearner_rejects_a_control_absent_from_t():
    with pytest.raises(ValueError, match="control"):
        DRLearner(control="placebo").fit([0, 1], ["a", "b"], X=np.zeros((2, 1)))


# --------------------------------------------------------------------------- T-learner
def test_tlearner_cate_is_larger_in_the_effect_subgroup(binary_data):
    d = binary_data
    tl = TLearner(outcome_model=small_classifier()).fit(
        d["Y"], d["T"], X=d["X"], groups=d["groups"]
    )
    tau = tl.effect(d["X"])
    assert tau[d["sub"]].mean() - tau[~d["sub"]].mean() > 0.08


def test_tlearner_recovers_a_constant_mean_difference():
    d = _continuous(seed=8)
    tl = TLearner(outcome_model=_small_regressor()).fit(d["Y"], d["T"], X=d["X"])
    assert tl.effect(d["X"]).mean() == pytest.approx(d["tau"].mean(), abs=0.15)


# --------------------------------------------------------------------------- losses
def _true_psi(d: dict) -> np.ndarray:
    return aipw_scores(d["Y"], d["T"], d["e"], d["mu0"] + d["tau"], d["mu0"], eps=0.0)


def test_dr_loss_is_lowest_at_the_true_cate():
    d = _continuous(seed=9, n=20_000)
    psi = _true_psi(d)
    at_truth = dr_pseudo_outcome_loss(psi, d["tau"])
    assert at_truth < dr_pseudo_outcome_loss(psi, np.full_like(psi, d["tau"].mean()))
    assert at_truth < dr_pseudo_outcome_loss(psi, 1.5 * d["tau"])


def test_r_loss_is_lowest_at_the_true_cate():
    d = _continuous(seed=10, n=20_000)

    def loss(tau):
        return r_loss(d["Y"], d["T"], tau, e=d["e"], m=d["m"])

    assert loss(d["tau"]) < loss(np.full_like(d["tau"], d["tau"].mean()))
    assert loss(d["tau"]) < loss(0.5 * d["tau"])
