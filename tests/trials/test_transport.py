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

from oncorwe.models.metrics import harrell_c
from oncorwe.trials.transport import (
    binary_performance,
    survival_performance,
    transport,
    transport_binary,
    transport_models,
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
        model="xgboost",
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


# --------------------------------------------------------------------------- known truth
# A Cox PH world whose truth is known: h(t | x) = 0.05 exp(0.7 x1 - 0.5 x2 + 0.4 x3) per
# month, exponential baseline. The test population is shifted (x1 mean +0.5, x2 30 % ->
# 60 %, x3 wider) but shares the hazard model, so a correctly specified Cox model must
# transport with slope near 1 and the true linear predictor's C. Censoring is random
# drop-out (2 %/month) and administrative (entry spread over 12-36 months of follow-up).
SIM_BETA = np.array([0.7, -0.5, 0.4])
SIM_KW = {"time": "pfs", "event": "ev", "covariates": ["x1", "x2", "x3"], "horizon_months": 12.0}


def _cox_world(n, rng, shifted):
    s = 1.0 if shifted else 0.0
    x1 = rng.normal(0.5 * s, 1.0, n)
    x2 = (rng.random(n) < 0.3 + 0.3 * s).astype(float)
    x3 = rng.normal(0.0, 1.0 + 0.3 * s, n)
    lp = np.column_stack([x1, x2, x3]) @ SIM_BETA
    t_event = rng.exponential(1.0 / (0.05 * np.exp(lp)))
    censor = np.minimum(rng.exponential(1.0 / 0.02, n), rng.uniform(12.0, 36.0, n))
    frame = pd.DataFrame(
        {
            "x1": x1,
            "x2": x2,
            "x3": x3,
            "pfs": np.minimum(t_event, censor),
            "ev": (t_event <= censor).astype(int),
        }
    )
    return frame, lp


@pytest.fixture(scope="module")
def simulated():
    rng = np.random.default_rng(1)
    train, _ = _cox_world(3000, rng, shifted=False)
    test, lp_true = _cox_world(3000, rng, shifted=True)
    return train, test, lp_true


@pytest.fixture(scope="module")
def simulated_transport(simulated):
    train, test, _ = simulated
    return transport_models(train, test, n_jobs=1, **SIM_KW)


def test_transport_models_fits_each_requested_model(simulated_transport):
    assert list(simulated_transport) == ["cox", "xgboost"]
    assert [r.model for r in simulated_transport.values()] == ["cox", "xgboost"]
    for res in simulated_transport.values():
        json.dumps(res.to_dict(), allow_nan=False)


def test_true_cox_model_transports_with_slope_near_one(simulated, simulated_transport):
    _, test, lp_true = simulated
    cox = simulated_transport["cox"]
    true_c = harrell_c(test["ev"], test["pfs"], lp_true)
    # measured (seed 1): slope 1.061, C 0.7259 vs the truth's 0.7254, O/E 1.08
    assert 0.8 <= cox.calibration_slope <= 1.25
    assert cox.c_index == pytest.approx(true_c, abs=0.01)
    assert 0.85 <= cox.calibration_in_the_large <= 1.15


def test_xgboost_slope_on_the_simulated_transport_is_reported(simulated, simulated_transport):
    _, test, lp_true = simulated
    xgb = simulated_transport["xgboost"]
    # measured (seed 1): slope 0.917, C 0.717; over seeds 2-9 the slope ranged 0.80-0.99,
    # below the Cox model's 0.95-1.10 on the same rows: only finiteness is asserted
    print(f"xgboost: slope {xgb.calibration_slope:.3f}, C {xgb.c_index:.3f}")
    assert np.isfinite(xgb.calibration_slope)
    assert xgb.c_index > harrell_c(test["ev"], test["pfs"], lp_true) - 0.05


def test_xgboost_cox_is_an_alias_of_xgboost(simulated):
    train, test, _ = simulated
    res = transport(train.head(800), test.head(800), model="xgboost-cox", n_jobs=1, **SIM_KW)
    assert res.model == "xgboost"
    both = transport_models(
        train.head(300), test.head(300), models=["cox", "xgboost-cox", "xgboost"], **SIM_KW
    )
    assert list(both) == ["cox", "xgboost"]


# --------------------------------------------------------------------------- refusals
def _small(simulated, n=400):
    train, test, _ = simulated
    return train.head(n).copy(), test.head(n).copy()


@pytest.mark.parametrize("horizon", [0.0, -3.0, float("nan")])
def test_a_non_positive_horizon_is_refused(simulated, horizon):
    train, test = _small(simulated)
    with pytest.raises(ValueError, match=r"horizon_months must be .*> 0"):
        transport(train, test, model="cox", **{**SIM_KW, "horizon_months": horizon})


def test_a_horizon_beyond_the_follow_up_is_refused(simulated):
    train, test = _small(simulated)
    test["pfs"] = np.minimum(test["pfs"], 10.0)
    longest = f"{test['pfs'].max():.3g}"
    with pytest.raises(
        ValueError,
        match=rf"longest follow-up in column 'pfs' of the test frame \({longest} months\)",
    ):
        transport(train, test, model="cox", **SIM_KW)


@pytest.mark.parametrize("label", ["train", "test"])
def test_a_frame_without_events_is_refused(simulated, label):
    frames = dict(zip(("train", "test"), _small(simulated), strict=True))
    frames[label]["ev"] = 0
    with pytest.raises(ValueError, match=rf"'ev' \(event\) has no events in the {label} frame"):
        transport(frames["train"], frames["test"], model="cox", **SIM_KW)


def test_every_event_at_the_same_time_is_refused(simulated):
    train, test = _small(simulated)
    # events all at 20 months, every censoring earlier: no pair can be ordered
    test["pfs"] = np.where(test["ev"] == 1, 20.0, np.minimum(test["pfs"], 19.0))
    with pytest.raises(ValueError, match=r"'pfs' of the test frame has every event at the same"):
        transport(train, test, model="cox", **SIM_KW)


def test_a_tiny_frame_is_refused_with_its_count(simulated):
    train, test = _small(simulated)
    with pytest.raises(ValueError, match=r"the test frame has 7 row\(s\); .*at least 10"):
        transport(train, test.head(7), model="cox", **SIM_KW)


# 1e100 passed the former 1e300 limit and crashed XGBoost (float32) with a C++ backtrace
@pytest.mark.parametrize("value", [1e308, -1e308, np.inf, 1e100])
def test_an_absurd_covariate_is_refused_with_its_column(simulated, value):
    train, test = _small(simulated)
    test.loc[test.index[3], "x2"] = value
    with pytest.raises(ValueError, match=r"'x2' \(covariate\).*infinite or absurd.*test frame"):
        transport(train, test, model="xgboost", **SIM_KW)


def test_a_missing_covariate_value_is_not_refused(simulated):
    train, test = _small(simulated)
    test.loc[test.index[3], "x2"] = np.nan  # missing is imputed, not absurd
    assert np.isfinite(transport(train, test, model="cox", **SIM_KW).calibration_slope)


def test_a_cox_convergence_failure_is_a_plain_value_error(simulated):
    train, test = _small(simulated)
    # a duplicated covariate without ridge makes the Hessian singular
    train["x1_copy"], test["x1_copy"] = train["x1"], test["x1"]
    kw = {**SIM_KW, "covariates": ["x1", "x1_copy", "x2"], "penalizer": 0.0}
    with pytest.raises(ValueError, match=r"^the Cox model did not converge") as info:
        transport(train, test, model="cox", **kw)
    assert "lifelines" not in str(info.value)


def test_an_unknown_model_is_refused(simulated):
    train, test = _small(simulated)
    with pytest.raises(ValueError, match=r"model must be one of"):
        transport(train, test, model="weibull", **SIM_KW)
    with pytest.raises(ValueError, match=r"model must be one of"):
        transport_models(train, test, models=["cox", "weibull"], **SIM_KW)
    with pytest.raises(ValueError, match=r"at least one"):
        transport_models(train, test, models=[], **SIM_KW)
