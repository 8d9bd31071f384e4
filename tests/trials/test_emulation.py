"""Target-trial emulation against lifelines, closed forms and the synthetic world's truth.

World-based checks emulate "pembrolizumab vs the line's standard of care in PD-L1 TPS
>= 50 % NSCLC" (a planted effect, conditional HR exp(-0.69) = 0.50) on fresh worlds of
the default spec restricted to NSCLC (``truth.nsclc_spec``: the same model for the NSCLC
rows at a sixth of the cost), and "pembrolizumab vs platinum doublet in line-1 NSCLC" in
the null world, where ECOG drives both the choice and the outcome. The truth of a
hazard ratio is the marginal HR of a simulated randomized trial of the analysed rows
(``truth.true_marginal_hr``), not the planted conditional one.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter

from oncorwe.cohort.generator import generate
from oncorwe.features.build import build_features
from oncorwe.models.kaplan_meier import restricted_mean_survival_time, weighted_kaplan_meier
from oncorwe.trials.emulation import (
    emulate,
    equipoise,
    match_nearest,
    preference_score,
    weighted_risk_difference,
)
from oncorwe.trials.survival import (
    cox_coefficient,
    cox_hazard_ratio,
)
from tests.trials.truth import (
    NSCLC_COVARIATES,
    cox_arm_coefficient,
    nsclc_spec,
    true_effects,
    weibull_shape,
    with_standard_arm,
)

DRUG = "pembrolizumab"
PLANTED_LOG_HR = -0.69  # default.yaml: pembrolizumab_pdl1_high_nsclc
COVERAGE_SEEDS = range(100, 110)  # benchmarks/bench_emulation_coverage.py runs 100..119
COVERAGE_PATIENTS = 10_000


def _survival_sample(n: int = 300, seed: int = 0, ties: bool = True):
    rng = np.random.default_rng(seed)
    arm = rng.integers(0, 2, n)
    t = rng.weibull(1.3, n) * np.where(arm == 1, 14.0, 9.0)
    if ties:
        t = np.ceil(t * 4) / 4  # quarter-month grid: many tied times
    c = rng.uniform(2, 30, n)
    return (t <= c).astype(int), np.minimum(t, c), arm


def _planted_trial(features: pd.DataFrame, **kw):
    frame = with_standard_arm(features, DRUG)
    res = emulate(
        frame,
        treatment="arm",
        treated_value=DRUG,
        control_value="standard",
        time="pfs_months",
        event="pfs_event",
        covariates=NSCLC_COVARIATES,
        response="response",
        groups="person_key",
        eligible=(frame["bm_pdl1_tps_status"] == ">=50").to_numpy(),
        **kw,
    )
    return frame, res


def _world(spec, n: int, seed: int, out, feature_config):
    generate(spec, n, seed=seed, out=out)
    feats = build_features(out / "omop", feature_config).to_pandas()
    po = pd.read_parquet(out / "truth" / "potential_outcomes.parquet")
    return feats, po, weibull_shape(out)


# --------------------------------------------------------------------------- survival
def test_weighted_km_with_unit_weights_equals_lifelines():
    event, time, _ = _survival_sample()
    curve = weighted_kaplan_meier(event, time, np.ones(time.size))
    kmf = KaplanMeierFitter().fit(time, event)
    expected = kmf.survival_function_.iloc[:, 0]
    np.testing.assert_allclose(curve.at(expected.index.to_numpy()), expected.to_numpy())


def test_weighted_km_with_integer_weights_equals_repeated_rows():
    event, time, _ = _survival_sample(seed=1)
    w = np.random.default_rng(1).integers(1, 4, time.size)
    curve = weighted_kaplan_meier(event, time, w)
    kmf = KaplanMeierFitter().fit(np.repeat(time, w), np.repeat(event, w))
    expected = kmf.survival_function_.iloc[:, 0]
    np.testing.assert_allclose(curve.at(expected.index.to_numpy()), expected.to_numpy())


def test_rmst_equals_numerical_integration_of_the_km_curve():
    event, time, _ = _survival_sample(seed=2)
    curve = weighted_kaplan_meier(event, time)
    tau = 12.0
    # midpoint rule on a fine grid: the step function's integral to within 1e-4
    h = tau / 400_000
    numeric = float(np.sum(curve.at(np.arange(400_000) * h + h / 2)) * h)
    assert restricted_mean_survival_time(curve, tau) == pytest.approx(numeric, abs=1e-4)


def test_rmst_equals_lifelines_restricted_mean_survival_time():
    from lifelines.utils import restricted_mean_survival_time as lifelines_rmst

    event, time, _ = _survival_sample(seed=3)
    kmf = KaplanMeierFitter().fit(time, event)
    curve = weighted_kaplan_meier(event, time)
    assert curve.rmst(12.0) == pytest.approx(lifelines_rmst(kmf, t=12.0), rel=1e-9)


def test_weighted_cox_with_unit_weights_equals_lifelines_unweighted_fit():
    event, time, arm = _survival_sample(seed=4)
    df = pd.DataFrame({"T": time, "E": event, "arm": arm})
    ref = CoxPHFitter().fit(df, "T", "E")
    res = cox_hazard_ratio(event, time, arm, weight=np.ones(time.size), robust=False)
    assert res.log_hr == pytest.approx(ref.params_["arm"], rel=1e-6)
    assert res.se == pytest.approx(ref.standard_errors_["arm"], rel=1e-6)


def test_numpy_cox_equals_lifelines_without_ties_for_any_weights():
    event, time, arm = _survival_sample(seed=5, ties=False)
    w = np.random.default_rng(5).uniform(0.2, 3.0, time.size)
    df = pd.DataFrame({"T": time, "E": event, "arm": arm, "w": w})
    ref = CoxPHFitter().fit(df, "T", "E", weights_col="w", robust=True)
    beta, _ = cox_coefficient(event, time, arm, w)
    assert beta == pytest.approx(ref.params_["arm"], rel=1e-6)


def test_numpy_cox_se_equals_lifelines_model_based_se():
    event, time, arm = _survival_sample(seed=6, ties=False)
    ref = CoxPHFitter().fit(pd.DataFrame({"T": time, "E": event, "x": arm}), "T", "E")
    beta, se = cox_coefficient(event, time, arm)
    assert beta == pytest.approx(ref.params_["x"], rel=1e-6)
    assert se == pytest.approx(ref.standard_errors_["x"], rel=1e-6)


def test_truth_cox_oracle_equals_lifelines():
    event, time, arm = _survival_sample(seed=7, ties=False)
    ref = CoxPHFitter().fit(pd.DataFrame({"T": time, "E": event, "a": arm}), "T", "E")
    assert cox_arm_coefficient(time, event, arm) == pytest.approx(ref.params_["a"], rel=1e-6)


# --------------------------------------------------------------------------- components
def test_unweighted_rd_ci_is_the_two_proportion_wald_interval():
    rng = np.random.default_rng(0)
    t = rng.random(500) < 0.4
    y = (rng.random(500) < np.where(t, 0.5, 0.3)).astype(float)
    out = weighted_risk_difference(y, t)
    p1, p0, n1, n0 = y[t].mean(), y[~t].mean(), t.sum(), (~t).sum()
    se = np.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    assert out["risk_difference"] == pytest.approx(p1 - p0)
    assert out["se"] == pytest.approx(se, rel=1e-9)


def test_preference_score_is_one_half_at_the_treated_share():
    np.testing.assert_allclose(preference_score([0.1, 0.7], 0.1)[0], 0.5)
    assert equipoise([0.1] * 4, [1, 0, 0, 0]) == pytest.approx(0.0)
    assert equipoise([0.25] * 4, [1, 0, 0, 0]) == pytest.approx(1.0)


def test_matching_is_one_to_one_within_the_caliper():
    rng = np.random.default_rng(0)
    le = rng.normal(size=400)
    treated = rng.random(400) < 0.3
    pair = match_nearest(le, treated, caliper=0.05, seed=0)
    matched = pair >= 0
    counts = np.bincount(pair[matched])
    assert (counts == 2).all()  # every pair: one row of each arm, no row reused
    frame = pd.DataFrame({"pair": pair[matched], "t": treated[matched], "le": le[matched]})
    assert (frame.groupby("pair")["t"].sum() == 1).all()
    assert (frame.groupby("pair")["le"].agg(np.ptp) <= 0.05).all()


# --------------------------------------------------------------------------- errors
def _tiny_frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "drug": np.where(np.arange(n) % 2 == 0, "a", "b"),
            "x": rng.normal(size=n),
            "months": rng.exponential(5.0, n) + 0.1,
            "progressed": 1,
        }
    )


def _call(frame, **over):
    kw = dict(
        treatment="drug",
        treated_value="a",
        control_value="b",
        time="months",
        event="progressed",
        covariates=["x"],
        propensity="logistic",
    )
    return emulate(frame, **{**kw, **over})


def test_a_missing_column_is_named():
    with pytest.raises(ValueError, match="'lab_ldh'.*covariates"):
        _call(_tiny_frame(), covariates=["x", "lab_ldh"])


def test_an_absent_treatment_value_names_the_column_and_value():
    with pytest.raises(ValueError, match="'drug'.*'c'"):
        _call(_tiny_frame(), control_value="c")


def test_a_small_arm_names_the_column():
    frame = _tiny_frame()
    with pytest.raises(ValueError, match="'drug'.*'b' has 5"):
        _call(frame, eligible=(frame["drug"] == "a") | (frame.index < 10))


def test_a_non_positive_time_names_the_column():
    frame = _tiny_frame()
    frame.loc[3, "months"] = 0.0
    with pytest.raises(ValueError, match="'months'.*> 0"):
        _call(frame)


def test_an_arm_without_events_names_the_arm_and_the_event_column():
    # before: HR 3e-9 [2.7e-9, 3.7e-9], p = 0, diagnostics pass
    frame = _tiny_frame()
    frame.loc[frame["drug"] == "a", "progressed"] = 0
    with pytest.raises(ValueError, match="'progressed'.*arm 'a' of column 'drug' has no events"):
        _call(frame)
    with pytest.raises(ValueError, match=r"arm 'a': 30 row\(s\), 0 event.*arm 'b': 30 row"):
        _call(frame)


def test_a_control_arm_without_events_is_named_by_its_value():
    frame = _tiny_frame()
    frame.loc[frame["drug"] == "b", "progressed"] = 0
    with pytest.raises(ValueError, match="arm 'b' of column 'drug' has no events"):
        _call(frame)


def test_events_all_at_one_time_name_the_time_column():
    # before: HR 1.00 [0.90, 1.11]: a single risk set, no information on the hazards
    frame = _tiny_frame().assign(months=5.0)
    with pytest.raises(ValueError, match="'months'.*same time.*not identified"):
        _call(frame, horizon_months=3.0)


def test_one_patient_per_arm_names_the_arms_and_counts():
    frame = _tiny_frame(2)
    with pytest.raises(ValueError, match=r"'drug'.*arm 'a': 1 row\(s\).*arm 'b': 1 row"):
        _call(frame, min_arm_rows=1, horizon_months=0.1)


def test_an_arm_of_one_patient_is_too_small_to_cross_fit():
    frame = _tiny_frame().assign(pid=lambda d: np.where(d["drug"] == "a", "p0", d.index))
    with pytest.raises(ValueError, match=r"arm 'a' is too small.*1 patient\(s\)"):
        _call(frame, groups="pid", horizon_months=1.0)


def test_an_arm_trimmed_below_min_arm_rows_is_named_by_its_value():
    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=n)
    arm = np.where(rng.random(n) < 1 / (1 + np.exp(-4 * x)), "a", "b")
    frame = pd.DataFrame({"drug": arm, "x": x, "months": rng.exponential(5, n), "progressed": 1})
    with pytest.raises(
        ValueError, match=r"after propensity trimming arm 'a' has \d+ row\(s\) and arm 'b'"
    ):
        _call(frame, trim=(0.45, 0.55), horizon_months=1.0)


@pytest.mark.parametrize("horizon", [0.0, -3.0, float("nan")])
def test_a_non_positive_horizon_is_refused(horizon):
    with pytest.raises(ValueError, match="horizon_months must be a finite number > 0"):
        _call(_tiny_frame(), horizon_months=horizon)


def test_a_horizon_beyond_the_follow_up_names_the_longest_follow_up():
    frame = _tiny_frame()
    longest = frame["months"].max()
    with pytest.raises(
        ValueError,
        match=f"longest follow-up in column 'months' of the eligible rows \\({longest:.3g}",
    ):
        _call(frame, horizon_months=1000.0)


@pytest.mark.parametrize("value", [1e308, -1e100, np.inf])
@pytest.mark.parametrize("model", ["logistic", "xgboost"])
def test_an_absurd_covariate_value_names_the_column(value, model):
    # before: XGBoost aborted with a C++ backtrace, the logistic design with a NaN error
    frame = _tiny_frame().assign(ldh=1.0)
    frame.loc[7, "ldh"] = value
    with pytest.raises(ValueError, match="'ldh' \\(covariates\\).*infinite or absurd"):
        _call(frame, covariates=["x", "ldh"], propensity=model, n_jobs=1)


def test_a_missing_covariate_value_is_still_accepted():
    frame = _tiny_frame(200)
    frame.loc[7, "x"] = np.nan
    assert np.isfinite(_call(frame).hazard_ratio)


# --------------------------------------------------------------------------- blinding
def _randomized_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "drug": np.where(rng.random(n) < 0.5, "a", "b"),
            "x": rng.normal(size=n),
            "months": rng.exponential(5.0, n) + 0.1,
            "progressed": 1,
        }
    )


def test_a_covariate_that_is_the_treatment_blinds_the_result():
    frame = _randomized_frame().assign(copy=lambda d: (d["drug"] == "a").astype(float))
    res = _call(frame, covariates=["x", "copy"])
    assert res.blinded and not res.diagnostics_pass
    assert res.blinded_reason.startswith("diagnostics failed (")
    assert "equipoise 0.00 < 0.20" in res.blinded_reason
    assert "on 'copy'" in res.blinded_reason
    out = res.to_dict()
    assert out["blinded"] is True and out["blinded_reason"] == res.blinded_reason
    assert out["hazard_ratio"] > 0  # the estimate is kept, for audit


def test_a_randomized_trial_is_not_blinded():
    res = _call(_randomized_frame())
    assert res.diagnostics_pass, res.diagnostic_reasons
    assert res.blinded is False and res.blinded_reason is None
    assert res.to_dict()["blinded"] is False


# --------------------------------------------------------------------------- synthetic
def test_strong_confounding_fails_the_equipoise_diagnostic():
    rng = np.random.default_rng(0)
    n = 2000
    x = rng.normal(size=n)
    arm = np.where(rng.random(n) < 1 / (1 + np.exp(-4 * x)), "a", "b")
    frame = pd.DataFrame({"drug": arm, "x": x, "months": rng.exponential(5, n), "progressed": 1})
    res = _call(frame)
    assert not res.diagnostics_pass
    assert any("equipoise" in r for r in res.diagnostic_reasons)


def _confounded_frame(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    arm = np.where(rng.random(n) < 1 / (1 + np.exp(-1.5 * x)), "a", "b")
    months = rng.exponential(np.exp(-0.5 * x))  # true HR 1, x prognostic
    return pd.DataFrame({"drug": arm, "x": x, "months": months, "progressed": 1})


def test_percentile_trimming_cuts_both_tails():
    frame = _confounded_frame()
    res = _call(frame, trim=(0.05, 0.95), trim_kind="percentile")
    # Stürmer: below the treated's 5th percentile or above the controls' 95th is cut
    summary = res.propensity_summary
    assert res.n_trimmed > 0.05 * len(frame)
    assert res.propensity.min() >= summary["treated"]["q05"]
    assert res.propensity.max() <= summary["control"]["q95"]


def test_matching_without_patient_ids_pairs_and_balances():
    res = _call(_confounded_frame(), method="matching")
    assert res.estimand == "matched"
    assert res.n_treated == res.n_control
    assert res.max_abs_smd_after < 0.1 < res.max_abs_smd_before
    assert res.ci_low <= 1.0 <= res.ci_high


def test_to_dict_is_strict_json():
    res = _call(_tiny_frame(200), bootstrap=20)
    out = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    for key in (
        "hazard_ratio",
        "ci_low",
        "ci_high",
        "p_value",
        "n_treated",
        "n_control",
        "events",
        "max_abs_smd_before",
        "max_abs_smd_after",
        "effective_sample_size",
        "equipoise",
        "risk_difference",
        "rmst_difference",
        "unadjusted_hazard_ratio",
        "unadjusted_risk_difference",
        "balance",
        "km",
        "diagnostics_pass",
        "blinded",
        "blinded_reason",
    ):
        assert key in out
    assert set(out["km"]) == {"treated", "control"}
    assert {"covariate", "smd_before", "smd_after"} <= set(out["balance"][0])


def test_the_emulation_carries_the_e_values_of_its_hazard_ratio():
    from oncorwe.models.sensitivity import e_values_hr

    res = _call(_tiny_frame(400))
    want = e_values_hr(res.hazard_ratio, res.ci_low, res.ci_high)
    assert res.e_value == pytest.approx(want["e_value"], rel=1e-12)
    assert res.e_value_ci == pytest.approx(want["e_value_ci"], rel=1e-12)
    assert res.e_value >= res.e_value_ci >= 1.0
    if res.ci_low <= 1.0 <= res.ci_high:
        assert res.e_value_ci == 1.0


# --------------------------------------------------------------------------- worlds
@pytest.fixture(scope="module")
def coverage_runs(tmp_path_factory, default_spec, feature_config):
    """The planted trial in 10 fresh NSCLC worlds: (result, truth) per seed."""
    spec = nsclc_spec(default_spec)
    runs = []
    for seed in COVERAGE_SEEDS:
        out = tmp_path_factory.mktemp(f"cov{seed}")
        feats, po, kappa = _world(spec, COVERAGE_PATIENTS, seed, out, feature_config)
        frame, res = _planted_trial(feats, propensity="logistic", seed=seed)
        truth = true_effects(po, frame.loc[res.analysed_index], DRUG, kappa, seed=seed)
        runs.append((res, truth))
    return runs


def test_adjusted_hr_ci_covers_the_true_marginal_hr_in_9_of_10_worlds(coverage_runs):
    covered = [r.ci_low <= t["hr"] <= r.ci_high for r, t in coverage_runs]
    assert sum(covered) >= 9, covered


def test_true_marginal_hr_is_attenuated_from_the_planted_conditional_hr(coverage_runs):
    # non-collapsibility: the marginal HR lies between exp(beta) = 0.50 and 1
    for _, truth in coverage_runs:
        assert np.exp(PLANTED_LOG_HR) + 0.05 < truth["hr"] < 0.9


def test_unadjusted_hr_overstates_the_benefit_in_every_world(coverage_runs):
    # pembrolizumab goes to fitter patients: the crude HR lies below the truth's CI
    for res, truth in coverage_runs:
        assert res.unadjusted_ci_high < truth["hr"]


def test_rd_ci_covers_the_true_risk_difference_in_most_worlds(coverage_runs):
    covered = [r.rd_ci_low <= t["rd"] <= r.rd_ci_high for r, t in coverage_runs]
    assert sum(covered) >= 8, covered


@pytest.fixture(scope="module")
def large_world(tmp_path_factory, default_spec, feature_config):
    """40,000 NSCLC patients of the default spec: about 1,900 standard-of-care rows in
    the PD-L1 >= 50 % comparison, enough for CohortMethod's balance threshold."""
    out = tmp_path_factory.mktemp("large_nsclc")
    return _world(nsclc_spec(default_spec), 40_000, 21, out, feature_config)


@pytest.fixture(scope="module")
def xgboost_trial(large_world):
    feats, po, kappa = large_world
    frame, res = _planted_trial(feats, propensity="xgboost", n_jobs=1, seed=1)
    return res, true_effects(po, frame.loc[res.analysed_index], DRUG, kappa)


def test_xgboost_iptw_balances_every_covariate(xgboost_trial):
    res, _ = xgboost_trial
    assert res.max_abs_smd_before > 0.5  # ECOG: the planted confounder
    assert res.max_abs_smd_after < 0.1
    assert res.diagnostics_pass, res.diagnostic_reasons


def test_xgboost_iptw_ci_covers_the_true_marginal_hr(xgboost_trial):
    res, truth = xgboost_trial
    assert res.ci_low <= truth["hr"] <= res.ci_high


@pytest.fixture(scope="module")
def trainer_trial(large_world):
    """The propensity models through the stage trainer (the code path of federated and
    Dask training; pooled here: the backends train the same trees)."""
    from oncorwe.compute.trainer import Trainer

    feats, po, kappa = large_world
    with Trainer("pooled", site_column="site") as tr:
        tr.sketch(feats, NSCLC_COVARIATES)
        frame, res = _planted_trial(feats, propensity="xgboost", seed=1, trainer=tr)
        n_models = tr.n_models
    return res, true_effects(po, frame.loc[res.analysed_index], DRUG, kappa), n_models


def test_trainer_propensity_balances_and_covers_the_true_marginal_hr(trainer_trial):
    res, truth, n_models = trainer_trial
    assert n_models == 5  # one per cross-fitting fold
    assert res.max_abs_smd_before > 0.5
    assert res.max_abs_smd_after < 0.1
    assert res.ci_low <= truth["hr"] <= res.ci_high


def test_matching_balances_and_covers_the_true_marginal_hr(large_world):
    feats, po, kappa = large_world
    frame, res = _planted_trial(feats, propensity="logistic", method="matching")
    truth = true_effects(po, frame.loc[res.analysed_index], DRUG, kappa)
    assert res.n_treated == res.n_control
    assert res.max_abs_smd_after < res.max_abs_smd_before
    assert res.max_abs_smd_after < 0.1
    assert res.ci_low <= truth["hr"] <= res.ci_high


@pytest.fixture(scope="module")
def null_trial(null_world, feature_config):
    """Pembrolizumab vs platinum doublet in line-1 NSCLC of the 20,000-patient null world
    (true HR 1), with 100 bootstrap replicates."""
    feats = build_features(null_world / "omop", feature_config).to_pandas()
    nsclc = feats[feats["cancer"] == "nsclc"]
    res = emulate(
        nsclc,
        treatment="treatment",
        treated_value=DRUG,
        control_value="platinum_doublet",
        time="pfs_months",
        event="pfs_event",
        covariates=NSCLC_COVARIATES,
        response="response",
        groups="person_key",
        eligible=(nsclc["line"] == 1).to_numpy(),
        propensity="logistic",
        bootstrap=100,
    )
    return nsclc, res


def test_null_world_adjusted_ci_covers_one(null_trial):
    _, res = null_trial
    assert res.ci_low <= 1.0 <= res.ci_high


def test_null_world_unadjusted_hr_is_off_by_more_than_its_ci(null_trial):
    # ECOG sends fitter patients to pembrolizumab: the crude HR shows a benefit
    _, res = null_trial
    assert res.unadjusted_ci_high < 1.0


def test_null_world_bootstrap_rmst_ci_covers_zero(null_trial):
    _, res = null_trial
    assert res.ci_method == "bootstrap"
    assert res.rmst_ci_low <= 0.0 <= res.rmst_ci_high


def test_null_world_bootstrap_se_is_close_to_the_sandwich_se(null_trial):
    frame, res = null_trial
    rows = frame.loc[res.analysed_index]
    sandwich = cox_hazard_ratio(
        rows["pfs_event"],
        rows["pfs_months"],
        res.treated,
        weight=res.weights,
        cluster=rows["person_key"],
    )
    assert res.log_hr_se == pytest.approx(sandwich.se, rel=0.3)
