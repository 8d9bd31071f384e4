"""Saved estimators load and predict exactly as they did."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from oncorwe.core.errors import OncorweError
from oncorwe.models.estimators import (
    OutcomeRegressor,
    ResponseClassifier,
    SurvivalModel,
    load_estimator,
    sidecar_path,
)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 1500
    X = pd.DataFrame(
        {
            "age": rng.normal(60, 10, n),
            "line": pd.Categorical(rng.integers(1, 4, n)),  # integer levels stay integers
            "drug": rng.choice(["a", "b", "c"], n),
        }
    )
    t = rng.exponential(np.exp(-0.02 * (X["age"] - 60)))
    e = (rng.random(n) < 0.8).astype(int)
    return X, e, t


def _fit(kind, X, e, t):
    kw = {"n_estimators": 25, "n_jobs": 1, "device": "cpu"}
    if kind == "cox":
        return SurvivalModel(**kw).fit(X, e, t)
    if kind == "aft":
        return SurvivalModel(objective="aft", aft_distribution="logistic", **kw).fit(X, e, t)
    if kind == "multiclass":
        return ResponseClassifier(**kw).fit(X, np.digitize(t, [0.5, 1.5]))
    if kind == "binary":
        return ResponseClassifier(**kw).fit(X, e)
    return OutcomeRegressor(**kw).fit(X, t)


@pytest.mark.parametrize("kind", ["cox", "aft", "binary", "multiclass", "regression"])
def test_a_saved_model_predicts_as_it_did(kind, data, tmp_path):
    X, e, t = data
    model = _fit(kind, X, e, t)
    model.save(tmp_path / "m.json")
    back = load_estimator(tmp_path / "m.json")
    assert type(back) is type(model) and back.get_params() == {
        k: v for k, v in model.get_params().items() if k != "callbacks"
    } | {"callbacks": None}
    new = X.sample(300, random_state=1).assign(drug="b")  # another row order, one level
    if kind in ("cox", "aft"):
        grid = [0.3, 1.0, 2.5]
        np.testing.assert_array_equal(
            back.predict_survival(new, grid), model.predict_survival(new, grid)
        )
    elif kind in ("binary", "multiclass"):
        np.testing.assert_array_equal(back.predict_proba(new), model.predict_proba(new))
        np.testing.assert_array_equal(back.classes_, model.classes_)
    else:
        np.testing.assert_array_equal(back.predict(new), model.predict(new))
    np.testing.assert_array_equal(back.shap_values(new), model.shap_values(new))


def test_loading_names_the_missing_or_foreign_file(data, tmp_path):
    X, e, t = data
    with pytest.raises(OncorweError, match="m.json does not exist"):
        load_estimator(tmp_path / "m.json")
    _fit("binary", X, e, t).save(tmp_path / "m.json")
    side = sidecar_path(tmp_path / "m.json")
    assert side.name == "m.features.json"
    side.write_text(json.dumps({"features": ["age"]}))  # an older or foreign sidecar
    with pytest.raises(OncorweError, match="m.features.json: not written by"):
        load_estimator(tmp_path / "m.json")
    side.unlink()
    with pytest.raises(OncorweError, match="m.features.json does not exist"):
        load_estimator(tmp_path / "m.json")
    with pytest.raises(AttributeError, match="not fitted"):
        SurvivalModel().save(tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_a_cox_baseline_can_keep_only_steps_of_enough_events(data, tmp_path):
    """``baseline_min_events``: each step of the saved baseline stands for at least that
    many events, and H0 at the steps kept is the full Breslow estimate there."""
    X, e, t = data
    kw = {"n_estimators": 25, "n_jobs": 1, "device": "cpu"}
    full = SurvivalModel(**kw).fit(X, e, t)
    thin = SurvivalModel(baseline_min_events=11, **kw).fit(X, e, t)
    thin.save(tmp_path / "pfs.json")
    saved = json.loads(sidecar_path(tmp_path / "pfs.json").read_text())["state"]
    knots = np.asarray(saved["baseline_times"])
    assert 0 < len(knots) <= e.sum() // 11 < len(full.baseline_times_)
    event_times = np.sort(t[e == 1])
    per_step = np.diff(np.searchsorted(event_times, np.concatenate([[0.0], knots]), "right"))
    assert per_step.min() >= 11
    at = np.searchsorted(full.baseline_times_, knots)
    np.testing.assert_allclose(saved["baseline_cumhazard"], full.baseline_cumhazard_[at])
    np.testing.assert_allclose(
        load_estimator(tmp_path / "pfs.json").predict_survival(X[:50], knots),
        full.predict_survival(X[:50], knots),
    )


def test_a_model_saved_by_a_trainer_is_named_as_such(data, tmp_path):
    X, e, t = data
    _fit("binary", X, e, t).booster_.save_model(str(tmp_path / "m.json"))
    (tmp_path / "m.json.meta.json").write_text("{}")  # what a federated / Dask model has
    with pytest.raises(OncorweError, match="m.json: trained through a federated or Dask"):
        load_estimator(tmp_path / "m.json")
