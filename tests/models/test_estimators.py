"""Estimators: the scikit-learn contract for every class, survival labels, devices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import NelsonAalenFitter
from sklearn.base import clone

from oncorwe.models import (
    OutcomeRegressor,
    ResponseClassifier,
    SurvivalModel,
    grouped_validation_split,
    resolve_device,
    xgboost_survival_labels,
)
from oncorwe.models.estimators import _breslow
from oncorwe.models.metrics import harrell_c

FAST = {"n_estimators": 30, "max_depth": 3, "n_jobs": 1, "device": "cpu"}


def _data(n: int = 600, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    X["site"] = pd.Categorical(rng.choice(["s1", "s2", "s3"], n))
    lin = X["a"].to_numpy() + (X["site"] == "s1").to_numpy()
    time = rng.exponential(np.exp(-0.7 * lin))
    cens = rng.exponential(2.0, n)
    return {
        "X": X,
        "y_bin": (rng.random(n) < 1 / (1 + np.exp(-lin))).astype(int),
        "y_real": lin + rng.normal(size=n),
        "event": (time <= cens).astype(int),
        "time": np.minimum(time, cens),
    }


# Each case: a factory, how to call fit, how to predict.
CASES = {
    "classifier": (
        lambda **kw: ResponseClassifier(**FAST, **kw),
        lambda est, d: est.fit(d["X"], d["y_bin"]),
        lambda est, d: est.predict_proba(d["X"]),
    ),
    "regressor": (
        lambda **kw: OutcomeRegressor(**FAST, **kw),
        lambda est, d: est.fit(d["X"], d["y_real"]),
        lambda est, d: est.predict(d["X"]),
    ),
    "cox": (
        lambda **kw: SurvivalModel("cox", **FAST, **kw),
        lambda est, d: est.fit(d["X"], d["event"], d["time"]),
        lambda est, d: est.predict_risk(d["X"]),
    ),
    "aft": (
        lambda **kw: SurvivalModel("aft", aft_distribution="logistic", **FAST, **kw),
        lambda est, d: est.fit(d["X"], d["event"], d["time"]),
        lambda est, d: est.predict_risk(d["X"]),
    ),
}


@pytest.fixture(scope="module")
def data() -> dict:
    return _data()


# --------------------------------------------------------------------------- common
@pytest.mark.parametrize("case", CASES)
def test_fit_returns_self(case, data):
    make, fit, _ = CASES[case]
    est = make()
    assert fit(est, data) is est


@pytest.mark.parametrize("case", CASES)
def test_init_stores_hyperparameters_only(case):
    make, _, _ = CASES[case]
    est = make(random_state=7)
    assert vars(est) == est.get_params()
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    assert type(est)(**est.get_params()).get_params() == est.get_params()


@pytest.mark.parametrize("case", CASES)
def test_set_params_round_trip(case):
    make, _, _ = CASES[case]
    est = make()
    est.set_params(max_depth=2, learning_rate=0.2)
    assert est.get_params()["max_depth"] == 2
    assert est.get_params()["learning_rate"] == 0.2


@pytest.mark.parametrize("case", CASES)
def test_learned_attributes_end_with_underscore(case, data):
    make, fit, _ = CASES[case]
    est = make()
    before = set(vars(est))
    fit(est, data)
    learned = set(vars(est)) - before
    assert {"booster_", "best_iteration_", "feature_names_", "categories_"} <= learned
    assert all(name.endswith("_") for name in learned)
    assert est.get_params() == make().get_params()  # fit leaves hyperparameters alone


@pytest.mark.parametrize("case", CASES)
def test_predictions_deterministic_with_same_random_state(case, data):
    make, fit, predict = CASES[case]
    first = predict(fit(make(random_state=3), data), data)
    second = predict(fit(make(random_state=3), data), data)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("case", CASES)
def test_clone_of_fitted_estimator_is_unfitted(case, data):
    make, fit, _ = CASES[case]
    est = fit(make(), data)
    assert not hasattr(clone(est), "booster_")


@pytest.mark.parametrize("case", CASES)
def test_grouped_early_stopping_sets_best_iteration(case):
    make, fit, _ = CASES[case]
    d = _data(n=800, seed=1)
    est = make(early_stopping_rounds=5).set_params(n_estimators=400, learning_rate=0.3)
    groups = np.repeat(np.arange(400), 2)
    if case in ("cox", "aft"):
        est.fit(d["X"], d["event"], d["time"], groups=groups)
    else:
        est.fit(d["X"], d["y_bin"] if case == "classifier" else d["y_real"], groups=groups)
    assert 0 <= est.best_iteration_ < 399


# --------------------------------------------------------------------------- features
def test_categorical_levels_are_recoded_to_training_categories(data):
    clf = ResponseClassifier(**FAST).fit(data["X"], data["y_bin"])
    X2 = data["X"].iloc[:50].copy()
    # same levels, different category order and a reduced level set
    X2["site"] = pd.Categorical(X2["site"].astype(str), categories=["s3", "s2", "s1", "zz"])
    np.testing.assert_allclose(clf.predict_proba(X2), clf.predict_proba(data["X"].iloc[:50]))


def test_string_columns_become_categories(data):
    X = data["X"].assign(site=data["X"]["site"].astype(str))
    clf = ResponseClassifier(**FAST).fit(X, data["y_bin"])
    assert list(clf.categories_["site"]) == ["s1", "s2", "s3"]


def test_multiclass_probabilities_sum_to_one(data):
    labels = np.array(["a", "b", "c"])[np.random.default_rng(0).integers(0, 3, 600)]
    clf = ResponseClassifier(**FAST).fit(data["X"], labels)
    proba = clf.predict_proba(data["X"])
    assert proba.shape == (600, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert list(clf.classes_) == ["a", "b", "c"]


def test_grouped_validation_split_never_splits_a_group():
    groups = np.repeat(np.arange(300), 3)
    tr, va = grouped_validation_split(900, groups, validation_fraction=0.25, random_state=4)
    assert not set(groups[tr]) & set(groups[va])
    assert len(tr) + len(va) == 900
    assert 0.2 < len(set(groups[va])) / 300 < 0.3


# --------------------------------------------------------------------------- survival labels
def test_cox_labels_are_negative_for_censored_rows():
    out = xgboost_survival_labels([1, 0, 1, 0], [2.0, 3.5, 1.0, 0.5], "cox")
    np.testing.assert_array_equal(out["label"], [2.0, -3.5, 1.0, -0.5])
    assert set(out) == {"label"}


def test_aft_labels_are_interval_bounds_open_when_censored():
    out = xgboost_survival_labels([True, False], [2.0, 3.5], "aft")
    np.testing.assert_array_equal(out["label_lower_bound"], [2.0, 3.5])
    np.testing.assert_array_equal(out["label_upper_bound"], [2.0, np.inf])


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf])
def test_rejects_nonpositive_or_missing_time_naming_time(bad):
    with pytest.raises(ValueError, match="time"):
        SurvivalModel(**FAST).fit(np.zeros((3, 1)), [1, 0, 1], [1.0, bad, 2.0])


def test_rejects_event_other_than_zero_one():
    with pytest.raises(ValueError, match="event"):
        xgboost_survival_labels([1, 2], [1.0, 2.0], "cox")


def test_unknown_survival_objective_is_rejected():
    with pytest.raises(ValueError, match="objective"):
        SurvivalModel("weibull", **FAST).fit(np.zeros((2, 1)), [1, 1], [1.0, 2.0])


# --------------------------------------------------------------------------- survival models
def _exponential(n: int, seed: int, beta: float = 0.8) -> dict:
    """T ~ Exp(hazard 0.1 exp(beta x0)); censoring Exp(hazard 0.05): known log-HR beta."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    hazard = 0.1 * np.exp(beta * X[:, 0])
    t_event = rng.exponential(1 / hazard)
    t_cens = rng.exponential(1 / 0.05, n)
    return {
        "X": X,
        "hazard": hazard,
        "event": (t_event <= t_cens).astype(int),
        "time": np.minimum(t_event, t_cens),
    }


@pytest.mark.parametrize("objective", ["cox", "aft"])
def test_survival_model_ranks_risk_higher_is_riskier(objective):
    train, test = _exponential(3000, seed=0), _exponential(2000, seed=1)
    model = SurvivalModel(
        objective, n_estimators=100, max_depth=2, learning_rate=0.1, n_jobs=1, device="cpu"
    )
    model.fit(train["X"], train["event"], train["time"])
    c_model = harrell_c(test["event"], test["time"], model.predict_risk(test["X"]))
    c_truth = harrell_c(test["event"], test["time"], test["hazard"])
    assert c_model > 0.6
    assert c_model > c_truth - 0.03  # the true hazard is the best possible ranking


def test_cox_survival_matches_true_exponential_survival():
    train, test = _exponential(4000, seed=2), _exponential(1000, seed=3)
    model = SurvivalModel(
        "cox", n_estimators=100, max_depth=2, learning_rate=0.05, n_jobs=1, device="cpu"
    ).fit(train["X"], train["event"], train["time"])
    times = np.array([2.0, 5.0, 10.0])
    predicted = model.predict_survival(test["X"], times)
    truth = np.exp(-np.outer(test["hazard"], times))
    assert predicted.shape == (1000, 3)
    assert np.abs(predicted - truth).mean() < 0.05


def test_breslow_with_zero_margins_is_nelson_aalen():
    rng = np.random.default_rng(5)
    time = np.round(rng.exponential(1.0, 300), 1) + 0.1  # rounded: ties in time
    event = (rng.random(300) < 0.7).astype(np.int8)
    times, cumhaz = _breslow(event, time, np.zeros(300), np.ones(300))
    na = NelsonAalenFitter(nelson_aalen_smoothing=False).fit(time, event)
    expected = na.cumulative_hazard_.loc[times].to_numpy().ravel()
    np.testing.assert_allclose(cumhaz, expected, rtol=1e-10)


# --------------------------------------------------------------------------- device
def test_resolve_device_cpu_is_cpu():
    assert resolve_device("cpu") == "cpu"


def test_resolve_device_auto_is_cpu_when_gpus_are_hidden(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert resolve_device("auto") == "cpu"


def test_resolve_device_cuda_without_visible_gpu_raises(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ValueError, match="no CUDA GPU is visible"):
        resolve_device("cuda")


def test_resolve_device_rejects_unknown_device():
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("tpu")


def test_estimator_records_resolved_device(data):
    est = ResponseClassifier(**{**FAST, "device": "auto"}).fit(data["X"], data["y_bin"])
    assert est.device_ == resolve_device("auto")
