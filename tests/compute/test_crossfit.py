"""The one cross-fitter: out-of-fold by construction, the backend one argument, and the
in-process trainer the same models as the estimators fitted by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oncorwe.compute.crossfit import OutcomeData, crossfit_nuisances
from oncorwe.compute.trainer import EstimatorTrainer, Trainer
from oncorwe.models.estimators import ResponseClassifier
from oncorwe.models.splits import grouped_fold_ids

PARAMS = {
    "n_estimators": 20,
    "max_depth": 3,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "n_jobs": 1,
}


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    F = pd.DataFrame({"x0": rng.normal(size=n), "x1": rng.normal(size=n)})
    arm = (rng.random(n) < 1 / (1 + np.exp(-F["x0"]))).astype(int)
    y = (rng.random(n) < 0.3 + 0.2 * arm).astype(float)
    groups = np.repeat(np.arange(n // 2), 2)
    return F, arm, y, groups


class _Recording(EstimatorTrainer):
    """The in-process trainer, keeping the row ids of every frame it trains on."""

    def __init__(self):
        super().__init__()
        self.seen: list[set[int]] = []

    def fit(self, kind, frame, **kw):
        self.seen.append(set(frame["row"].tolist()))
        return super().fit(kind, frame, **kw)


def test_no_row_is_predicted_by_a_model_that_saw_it():
    F, arm, y, groups = _data()
    folds = grouped_fold_ids(len(F), groups, n_splits=3, seed=0)
    rec = _Recording()
    F = F.assign(row=np.arange(len(F)))
    crossfit_nuisances(
        F, arm, 2, [OutcomeData("y", y, True)], folds=folds, trainer=rec, propensity_params=PARAMS
    )
    assert len(rec.seen) == 6  # a propensity and an outcome model per fold
    for k, seen in zip(np.repeat(np.unique(folds), 2), rec.seen, strict=True):
        assert not seen & set(np.flatnonzero(folds == k).tolist())
        assert seen == set(np.flatnonzero(folds != k).tolist())


def test_the_in_process_trainer_fits_the_estimators_one_would_fit_by_hand():
    F, arm, y, groups = _data()
    folds = grouped_fold_ids(len(F), groups, n_splits=3, seed=0)
    fit = crossfit_nuisances(
        F,
        arm,
        2,
        [OutcomeData("y", y, True)],
        folds=folds,
        propensity_params=PARAMS,
        outcome_params=PARAMS,
        seed=7,
    )
    for k in range(3):
        tr, te = folds != k, folds == k
        prop = ResponseClassifier(**PARAMS, random_state=7 + k).fit(F[tr], arm[tr])
        np.testing.assert_allclose(fit.e[te], prop.predict_proba(F[te]), rtol=0, atol=1e-12)
        Xa = F[tr].assign(__arm__=pd.Categorical(arm[tr], categories=[0, 1]))
        out = ResponseClassifier(**PARAMS, random_state=107 + k).fit(Xa, y[tr])
        for a in (0, 1):
            Xt = F[te].assign(__arm__=pd.Categorical(np.full(te.sum(), a), categories=[0, 1]))
            np.testing.assert_allclose(
                fit.m["y"][te, a], out.predict_proba(Xt)[:, 1], rtol=0, atol=1e-12
            )


def test_a_binned_backend_leaves_out_what_is_its_own():
    """One model specification serves every backend: the pooled binned Trainer trains the
    same trees with or without the in-process subsampling, threads and device."""
    F, arm, _, _ = _data()
    frame = F.assign(site=np.where(np.arange(len(F)) % 2, "A", "B"), t=arm)
    with Trainer("pooled", min_cell=5) as tr:
        tr.sketch(frame, ["x0", "x1"])
        bare = tr.fit(
            "binary", frame, features=["x0", "x1"], label="t", params={"n_estimators": 10}
        )
        full = tr.fit(
            "binary",
            frame,
            features=["x0", "x1"],
            label="t",
            params={"n_estimators": 10, "subsample": 0.5, "device": "cpu", "n_jobs": 2},
        )
    np.testing.assert_array_equal(bare.predict_proba(frame), full.predict_proba(frame))


def test_strict_refuses_an_absent_arm_and_lenient_gives_it_propensity_zero():
    F, arm, y, _ = _data(n=300)
    arm = arm.copy()
    folds = np.arange(len(F)) % 3
    arm[arm == 1] = 0
    arm[np.flatnonzero(folds == 0)[:30]] = 2  # arm 2 only in fold 0: absent from its training
    arm[np.flatnonzero(folds == 1)[:30]] = 1
    arm[np.flatnonzero(folds == 2)[:30]] = 1
    with pytest.raises(ValueError, match="lacks arm"):
        crossfit_nuisances(F, arm, 3, folds=folds, propensity_params=PARAMS)
    fit = crossfit_nuisances(F, arm, 3, folds=folds, propensity_params=PARAMS, strict=False)
    assert np.all(fit.e[folds == 0, 2] == 0.0)
    np.testing.assert_allclose(fit.e.sum(axis=1), 1.0, atol=1e-6)


def test_an_outcome_a_fold_cannot_fit_stays_missing_when_lenient():
    F, arm, y, _ = _data(n=300)
    folds = np.arange(len(F)) % 3
    y = np.where(folds == 0, y, np.nan)  # labelled in fold 0 only
    out = [OutcomeData("y", y, True)]
    fit = crossfit_nuisances(
        F, arm, 2, out, folds=folds, propensity_params=PARAMS, strict=False, min_outcome_rows=20
    )
    assert np.isnan(fit.m["y"][folds == 0]).all()  # its training folds hold no label
    assert not np.isnan(fit.m["y"][folds != 0]).any()
    with pytest.raises(ValueError, match="cannot be fitted"):
        crossfit_nuisances(F, arm, 2, out, folds=folds, min_outcome_rows=20)


def test_separate_outcome_models_fit_each_arm_on_its_own_rows():
    F, arm, _, _ = _data()
    rng = np.random.default_rng(1)
    y = F["x1"].to_numpy() + 2.0 * arm + rng.normal(scale=0.1, size=len(F))
    fit = crossfit_nuisances(
        F,
        arm,
        2,
        [OutcomeData("y", y, False)],
        folds=np.arange(len(F)) % 2,
        outcome_params={"n_estimators": 200, "learning_rate": 0.1, "n_jobs": 1},
        outcome_mode="separate",
    )
    assert isinstance(fit.models[0]["outcomes"]["y"], list)
    # the arm effect (2.0) is recovered from arm-wise models
    assert abs(np.mean(fit.m["y"][:, 1] - fit.m["y"][:, 0]) - 2.0) < 0.15
