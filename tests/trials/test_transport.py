"""Model transport from Korean to European patients of the default world.

The generator's prognostic index and baseline hazards are shared by every population
(the default spec sets no population shift), so a PFS model fitted on Korean patients
should discriminate and be calibrated (slope near 1) on European ones; the one planted
difference (osimertinib's larger gain outside East Asia) is too small to move the slope
much. A linear predictor doubled on purpose must show a slope of one half, and
recalibration must remove the miscalibration.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from oncorwe.trials.transport import (
    binary_performance,
    survival_performance,
    transport,
    transport_binary,
)

COVARIATES = [
    "cancer",
    "stage",
    "line",
    "age",
    "sex",
    "treatment",
    "lab_ecog",
    "lab_albumin",
    "lab_ldh",
    "lab_nlr",
    "lab_creatinine",
    "comorb_diabetes",
    "comorb_copd",
    "comorb_chronic_kidney_disease",
    "comorb_cardiovascular_disease",
    "comorb_hepatitis_b",
]
HORIZON = 12.0


@pytest.fixture(scope="module")
def populations(features):
    return (
        features[features["population"] == "korean"],
        features[features["population"] == "european"],
    )


@pytest.fixture(scope="module")
def cox_transport(populations):
    korean, european = populations
    return transport(
        korean,
        european,
        time="pfs_months",
        event="pfs_event",
        covariates=COVARIATES,
        model="cox",
        horizon_months=HORIZON,
    )


@pytest.fixture(scope="module")
def doubled(cox_transport, populations):
    """The same model with its linear predictor multiplied by 2 (deliberately too extreme)."""
    _, european = populations
    return survival_performance(
        european["pfs_event"],
        european["pfs_months"],
        2.0 * cox_transport.lp_test,
        cox_transport.baseline_times,
        cox_transport.baseline_cumhazard,
        HORIZON,
    )


def test_cox_model_discriminates_in_the_other_population(cox_transport):
    assert cox_transport.c_index > 0.6


def test_cox_model_slope_is_near_one_in_the_other_population(cox_transport):
    assert 0.8 <= cox_transport.calibration_slope <= 1.2


def test_cox_model_is_calibrated_in_the_large_in_the_other_population(cox_transport):
    assert 0.9 <= cox_transport.calibration_in_the_large <= 1.1
    assert abs(cox_transport.observed_risk - cox_transport.predicted_risk) < 0.03


def test_apparent_performance_is_reported_for_the_training_data(cox_transport):
    train = cox_transport.train_performance
    # Breslow's baseline on the training rows makes O/E exact there
    assert train.calibration_in_the_large == pytest.approx(1.0, abs=1e-9)
    assert train.n == cox_transport.n_train


def test_doubled_linear_predictor_has_slope_one_half(cox_transport, doubled):
    assert doubled.calibration_slope == pytest.approx(0.5, abs=0.1)
    assert doubled.calibration_slope == pytest.approx(cox_transport.calibration_slope / 2, rel=1e-6)
    assert doubled.c_index == pytest.approx(cox_transport.c_index)


def test_recalibration_in_the_large_restores_observed_over_expected(doubled):
    assert abs(doubled.calibration_in_the_large - 1.0) > 0.3
    assert doubled.recalibrated_in_the_large["calibration_in_the_large"] == pytest.approx(1.0)


def test_weak_recalibration_restores_the_risk_at_the_horizon(doubled):
    assert abs(doubled.predicted_risk - doubled.observed_risk) > 0.05
    weak = doubled.recalibrated
    assert weak["calibration_slope"] == pytest.approx(1.0, abs=1e-6)
    assert abs(weak["predicted_risk"] - weak["observed_risk"]) < 0.02


def test_xgboost_cox_model_discriminates_in_the_other_population(populations):
    korean, european = populations
    # a third of the Korean patients keeps the test quick; still > 9,000 lines
    keep = korean["person_key"].str[-1].isin(list("01234"))
    res = transport(
        korean[keep],
        european,
        time="pfs_months",
        event="pfs_event",
        covariates=COVARIATES,
        model="xgboost-cox",
        groups="person_key",
        n_jobs=1,
    )
    assert res.c_index > 0.6
    assert 0.7 <= res.calibration_slope <= 1.3


def test_survival_transport_to_dict_is_strict_json(cox_transport):
    out = json.loads(json.dumps(cox_transport.to_dict(), allow_nan=False))
    assert {"c_index", "calibration_slope", "calibration_in_the_large"} <= set(out)
    assert "recalibrated" in out["test_performance"]


def test_response_model_transports(populations):
    korean, european = populations
    res = transport_binary(
        korean, european, outcome="response", covariates=COVARIATES, model="logistic"
    )
    assert res.auc > 0.6
    assert 0.8 <= res.calibration_slope <= 1.25
    json.dumps(res.to_dict(), allow_nan=False)


def test_binary_recalibration_fixes_a_shifted_model():
    rng = np.random.default_rng(0)
    lp = rng.normal(size=5000)
    y = (rng.random(5000) < 1 / (1 + np.exp(-lp))).astype(int)
    shifted = 1 / (1 + np.exp(-(2.0 * lp + 1.0)))  # too extreme and too high
    perf = binary_performance(y, shifted)
    assert perf.calibration_slope == pytest.approx(0.5, abs=0.05)
    assert perf.observed_expected < 0.9
    assert perf.recalibrated_in_the_large["observed_expected"] == pytest.approx(1.0, abs=1e-6)
    assert perf.recalibrated["calibration_slope"] == pytest.approx(1.0, abs=1e-6)
    assert perf.recalibrated["calibration_intercept"] == pytest.approx(0.0, abs=1e-6)


def test_a_missing_column_is_named_with_its_frame(populations):
    korean, european = populations
    with pytest.raises(ValueError, match="'lab_albumin'.*test frame"):
        transport(
            korean,
            european.drop(columns=["lab_albumin"]),
            time="pfs_months",
            event="pfs_event",
            covariates=["age", "lab_albumin"],
            model="cox",
        )


def test_a_non_positive_time_is_named(populations):
    korean, european = populations
    bad = european.assign(pfs_months=np.where(np.arange(len(european)) == 0, 0.0, 1.0))
    with pytest.raises(ValueError, match="'pfs_months'.*test frame"):
        transport(
            korean.head(500),
            bad,
            time="pfs_months",
            event="pfs_event",
            covariates=["age"],
            model="cox",
        )


def test_binary_outcome_must_be_zero_one(populations):
    korean, european = populations
    bad = european.assign(response=pd.Series(2.0, index=european.index))
    with pytest.raises(ValueError, match="'response'.*test frame"):
        transport_binary(korean.head(500), bad, outcome="response", covariates=["age"])
