"""optuna tuning: SQLite resume, pruning of hopeless trials, the best trial is complete."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest

from oncorwe.models.estimators import ResponseClassifier
from oncorwe.models.tuning import tune


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    n = 3000
    X = pd.DataFrame(rng.normal(size=(n, 6)), columns=[f"x{i}" for i in range(6)])
    lp = 1.2 * X["x0"] - 0.8 * X["x1"] + 0.6 * X["x2"] * X["x3"]
    y = (rng.random(n) < 1 / (1 + np.exp(-lp))).astype(int)
    groups = rng.integers(0, n // 2, size=n)  # about two rows per patient
    return X, y, groups


def _base():
    return ResponseClassifier(
        n_estimators=120, early_stopping_rounds=15, n_jobs=1, device="cpu", random_state=0
    )


def _states(study):
    return [t.state for t in study.trials]


def test_an_interrupted_study_resumes_from_its_sqlite_file(data, tmp_path):
    X, y, g = data
    db = tmp_path / "study.db"
    _, s1 = tune(_base(), X, y, g, n_trials=3, timeout_s=120, storage=db, study_name="r")
    first = [t.params for t in s1.trials]
    assert len(first) == 3
    # a new process would see the same file: the study continues, it does not restart
    _, s2 = tune(_base(), X, y, g, n_trials=5, timeout_s=120, storage=db, study_name="r")
    assert len(s2.trials) == 5
    assert [t.params for t in s2.trials[:3]] == first
    _, s3 = tune(_base(), X, y, g, n_trials=5, timeout_s=120, storage=db, study_name="r")
    assert len(s3.trials) == 5  # nothing left to do


def test_hopeless_trials_are_pruned_and_the_best_is_complete(data, tmp_path):
    X, y, g = data
    best, study = tune(
        _base(), X, y, g, n_trials=14, timeout_s=300, storage=tmp_path / "p.db", study_name="p"
    )
    states = _states(study)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, states
    assert study.best_trial.state == optuna.trial.TrialState.COMPLETE
    assert best == study.best_trial.params
    # the median pruner's rule: a pruned trial's best loss so far was above the median
    # of the complete trials before it at that round
    for t in pruned:
        step = max(t.intermediate_values)
        earlier = [
            u.intermediate_values[step]
            for u in study.trials
            if u.number < t.number
            and u.state == optuna.trial.TrialState.COMPLETE
            and step in u.intermediate_values
        ]
        assert len(earlier) >= 3
        assert min(t.intermediate_values.values()) > np.median(earlier)
