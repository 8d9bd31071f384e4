"""What a report of an emulation shows, as :func:`emulate` returns it: attrition, the
baseline table, the score histograms, the Kaplan-Meier band and at-risk table and the
diagnostics, each against a direct computation, lifelines or a closed form."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter

from oncorwe.trials.design import minimum_detectable_hr
from oncorwe.trials.emulation import MAX_SMD, MIN_EQUIPOISE, emulate, preference_score


def _frame(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """x confounds (choice and outcome), ``flag`` a 0/1 covariate, ``grade`` a
    categorical; censoring by administrative end of follow-up."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    flag = (rng.random(n) < 0.3).astype(float)
    arm = np.where(rng.random(n) < 1 / (1 + np.exp(-1.2 * x - 0.5 * flag)), "a", "b")
    t = rng.exponential(6 * np.exp(-0.4 * x))
    c = rng.uniform(3, 30, n)
    return pd.DataFrame(
        {
            "drug": arm,
            "x": x,
            "flag": flag,
            "grade": rng.choice(["g1", "g2", "g3"], n, p=[0.5, 0.3, 0.2]),
            "months": np.minimum(t, c) + 0.01,
            "progressed": (t <= c).astype(int),
        }
    )


def _emulate(frame, **kw):
    args = dict(
        treatment="drug",
        treated_value="a",
        control_value="b",
        time="months",
        event="progressed",
        covariates=["x", "flag", "grade"],
        categorical=["grade"],
        propensity="logistic",
        n_splits=3,
        n_jobs=1,
    )
    return emulate(frame, **{**args, **kw})


@pytest.fixture(scope="module")
def trimmed():
    frame = _frame()
    return frame, _emulate(frame, trim=(0.1, 0.9), trim_kind="percentile")


def test_attrition_adds_up_from_the_eligible_rows_to_the_analysed_arms(trimmed):
    frame, res = trimmed
    assert res.n_eligible == len(frame)
    assert res.n_eligible_treated == int((frame["drug"] == "a").sum())
    assert res.n_eligible_treated + res.n_eligible_control == res.n_eligible
    lost = (res.n_eligible_treated - res.n_treated) + (res.n_eligible_control - res.n_control)
    assert res.n_trimmed == lost > 0


def test_weighted_means_and_smds_equal_a_direct_weighted_computation(trimmed):
    """After weighting: the arms' weighted means over the analysed rows, divided by the
    unweighted pooled SD of the eligible rows (before and after share a denominator)."""
    frame, res = trimmed
    rows = frame.loc[res.analysed_index]
    x_all, t_all = frame["x"].to_numpy(), (frame["drug"] == "a").to_numpy()
    x, t, w = rows["x"].to_numpy(), res.treated, res.weights
    a1, a0 = np.average(x[t], weights=w[t]), np.average(x[~t], weights=w[~t])
    sd = np.sqrt((x_all[t_all].var(ddof=1) + x_all[~t_all].var(ddof=1)) / 2)
    row = next(b for b in res.balance if b.covariate == "x")
    assert row.mean_treated_after == pytest.approx(a1, rel=1e-12)
    assert row.mean_control_after == pytest.approx(a0, rel=1e-12)
    assert row.smd_after == pytest.approx((a1 - a0) / sd, rel=1e-10)
    assert row.mean_treated_before == pytest.approx(x_all[t_all].mean(), rel=1e-12)
    assert row.n_treated == t_all.sum() and row.n_level_treated is None


def test_a_level_carries_the_counts_behind_its_proportion(trimmed):
    frame, res = trimmed
    t_all = (frame["drug"] == "a").to_numpy()
    flag = next(b for b in res.balance if b.covariate == "flag")
    assert flag.n_level_treated == int(frame.loc[t_all, "flag"].sum())
    assert flag.mean_treated_before == pytest.approx(flag.n_level_treated / flag.n_treated)
    levels = [b for b in res.balance if b.covariate.startswith("grade=")]
    assert sum(b.n_level_control for b in levels) == res.n_eligible_control


def test_score_histograms_count_every_eligible_row_in_its_bin():
    frame = _frame(seed=1)
    res = _emulate(frame, trim=None)  # nothing trimmed: the analysed rows are the eligible
    hist = res.score_histogram
    edges = np.asarray(hist["bin_edges"])
    t, e = res.treated, res.propensity
    pref = preference_score(e, t.mean())
    for name, arm in (("treated", t), ("control", ~t)):
        want = np.histogram(e[arm], bins=edges)[0]
        assert hist[name]["propensity_counts"] == want.tolist()
        assert hist[name]["preference_counts"] == np.histogram(pref[arm], bins=edges)[0].tolist()
    assert sum(hist["treated"]["propensity_counts"]) == res.n_eligible_treated
    # equipoise is the share of preference scores in [0.3, 0.7]: bins 6..13 exactly
    inner = sum(sum(hist[a]["preference_counts"][6:14]) for a in ("treated", "control"))
    assert inner / res.n_eligible == pytest.approx(res.equipoise, abs=1e-12)


def test_the_matched_km_band_is_lifelines_interval_and_at_risk_its_event_table():
    """Matching weighs every analysed row 1: the band is lifelines' own (log-log
    Greenwood) on the matched treated rows, and the at-risk table its counts."""
    frame = _frame(seed=2)
    res = _emulate(frame, method="matching")
    rows = frame.loc[res.analysed_index[res.treated]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kmf = KaplanMeierFitter().fit(rows["months"], rows["progressed"])
    km = res.km["treated"]
    grid = np.asarray(km["times"])
    ci = kmf.confidence_interval_
    at = np.searchsorted(ci.index.to_numpy(), grid, side="right") - 1
    ok = np.asarray(km["survival"]) > 0
    np.testing.assert_allclose(np.asarray(km["lower"])[ok], ci.iloc[at, 0].to_numpy()[ok])
    np.testing.assert_allclose(np.asarray(km["upper"])[ok], ci.iloc[at, 1].to_numpy()[ok])
    table = res.at_risk
    arm = table["treated"]
    assert arm["n_at_risk"][0] == res.n_treated == km["n_at_risk"][0]
    assert sum(arm["events"]) == res.events_treated
    times = np.asarray(table["times"])
    assert times[0] == 0 and len(times) <= 9 and np.all(np.diff(times) == times[1])
    for k, t0 in enumerate(times):
        assert arm["n_at_risk"][k] == int((rows["months"] >= t0).sum())


def test_diagnostics_carry_their_thresholds_and_the_decision(trimmed):
    _, res = trimmed
    by = {d["code"]: d for d in res.diagnostics}
    assert by["max_abs_smd"]["threshold"] == MAX_SMD and by["max_abs_smd"]["passes"] == "below"
    assert by["equipoise"]["threshold"] == MIN_EQUIPOISE
    assert by["max_abs_smd"]["value"] == res.max_abs_smd_after
    gating = [d["passed"] for d in res.diagnostics if d["passed"] is not None]
    assert all(gating) == res.diagnostics_pass and len(gating) == 2
    want = minimum_detectable_hr(res.events, alpha=0.05, allocation=res.n_treated / res.n_control)
    assert by["mdrr"]["value"] == pytest.approx(want) == res.mdrr
    worst = max(res.balance, key=lambda b: abs(b.smd_after))
    assert by["max_abs_smd"]["covariate"] == worst.covariate
