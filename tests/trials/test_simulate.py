"""Simulated trials against lifelines, Schoenfeld's formula and numerical integration."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from lifelines.statistics import logrank_test as lifelines_logrank
from scipy import integrate

from oncorwe.trials.design import (
    prob_event_two_arms,
    sample_size_survival,
    schoenfeld_power,
    two_proportion_power,
)
from oncorwe.trials.simulate import (
    BinaryTrialDesign,
    SurvivalTrialDesign,
    find_sample_size,
    logrank_test,
    simulate_binary_trial,
    simulate_survival_trial,
)

MEDIAN, ACCRUAL, FOLLOWUP = 12.0, 24.0, 12.0


def _fixed_time(n: int, hr: float, **kw) -> SurvivalTrialDesign:
    return SurvivalTrialDesign(
        n_patients=n,
        hr=hr,
        control_median_months=MEDIAN,
        accrual_months=ACCRUAL,
        followup_months=FOLLOWUP,
        **kw,
    )


# ----------------------------------------------------------------------------- log-rank
@pytest.mark.parametrize("rounded", [False, True], ids=["continuous", "tied"])
def test_logrank_chi_square_matches_lifelines(rounded):
    rng = np.random.default_rng(5)
    for _ in range(5):
        time = rng.exponential(10.0, size=80)
        if rounded:  # whole months: many tied event and censoring times
            time = np.ceil(time)
        event = rng.random(80) < 0.7
        arm = rng.random(80) < 0.5
        ours = logrank_test(time, event, arm)
        ref = lifelines_logrank(time[arm], time[~arm], event[arm], event[~arm])
        assert ours.z[0] ** 2 == pytest.approx(ref.test_statistic, rel=1e-10)


def test_logrank_rows_are_independent_trials():
    rng = np.random.default_rng(6)
    time = rng.exponential(5.0, size=(3, 40))
    event = rng.random((3, 40)) < 0.8
    arm = rng.random((3, 40)) < 0.5
    batch = logrank_test(time, event, arm)
    for i in range(3):
        single = logrank_test(time[i], event[i], arm[i])
        assert batch.z[i] == pytest.approx(single.z[0])
        assert batch.log_hr[i] == pytest.approx(single.log_hr[0])


def test_logrank_ignores_patients_with_negative_time():
    rng = np.random.default_rng(7)
    time = rng.exponential(5.0, size=50)
    event = rng.random(50) < 0.8
    arm = rng.random(50) < 0.5
    padded = logrank_test(
        np.r_[time, -np.ones(10)], np.r_[event, np.zeros(10, bool)], np.r_[arm, np.ones(10, bool)]
    )
    assert padded.z[0] == pytest.approx(logrank_test(time, event, arm).z[0])


# ----------------------------------------------------------------------------- power
# Measured with seed 2024, 4,000 replicates, fixed-time analysis (median 12, A 24, F 12):
#   HR    N   mean events  simulated  Schoenfeld(mean events)   diff
#  0.6   200     128.1      0.8317        0.8239               +0.0079
#  0.6   500     320.4      0.9965        0.9955               +0.0010
#  0.6  1000     640.9      1.0000        1.0000                0.0000
#  0.7   200     133.4      0.5410        0.5399               +0.0011
#  0.7   500     333.9      0.9042        0.9030               +0.0012
#  0.7  1000     667.8      0.9952        0.9960               -0.0007
#  0.8   200     138.1      0.2527        0.2582               -0.0055
#  0.8   500     345.7      0.5435        0.5456               -0.0021
#  0.8  1000     691.3      0.8335        0.8348               -0.0013
#  0.9   200     142.3      0.0865        0.0915               -0.0050
#  0.9   500     355.9      0.1590        0.1670               -0.0080
#  0.9  1000     711.8      0.2767        0.2896               -0.0129
def test_simulated_power_matches_schoenfeld_over_hr_and_n_grid():
    rows = []
    for hr in (0.6, 0.7, 0.8, 0.9):
        for n in (200, 500, 1000):
            res = simulate_survival_trial(_fixed_time(n, hr), n_replicates=4000, seed=2024)
            formula = schoenfeld_power(hr, res.mean_events)
            rows.append((hr, n, res.power, formula))
    worst = max(rows, key=lambda r: abs(r[2] - r[3]))
    assert abs(worst[2] - worst[3]) < 0.025, worst


def test_event_driven_analysis_happens_at_the_target_event():
    design = SurvivalTrialDesign(
        n_patients=500,
        hr=0.75,
        control_median_months=MEDIAN,
        accrual_months=ACCRUAL,
        target_events=250,
    )
    res = simulate_survival_trial(design, n_replicates=4000, seed=3)
    assert np.all(res.replicates["events"] == 250)
    assert res.power == pytest.approx(schoenfeld_power(0.75, 250), abs=3 * res.power_se + 0.01)


def test_event_driven_analysis_before_end_of_accrual_uses_enrolled_patients_only():
    design = SurvivalTrialDesign(
        n_patients=400,
        hr=1.0,
        control_median_months=3.0,
        accrual_months=48,
        target_events=50,
    )
    res = simulate_survival_trial(design, n_replicates=512, seed=4)
    assert res.median_duration_months < 48
    assert sum(res.n_per_arm.values()) < 400


@pytest.mark.parametrize(("sided", "alpha"), [(1, 0.025), (2, 0.05)])
def test_type_one_error_under_hr_one_is_alpha(sided, alpha):
    res = simulate_survival_trial(
        _fixed_time(500, 1.0, sided=sided, alpha=alpha), n_replicates=10_000, seed=11
    )
    mc_se = math.sqrt(alpha * (1 - alpha) / res.n_replicates)
    assert abs(res.power - alpha) < 3 * mc_se


def test_peto_hr_estimate_is_centred_on_the_true_hr():
    res = simulate_survival_trial(_fixed_time(1000, 0.8), n_replicates=2000, seed=12)
    assert res.hr_quantiles["q50"] == pytest.approx(0.8, abs=0.01)
    assert res.mean_log_hr == pytest.approx(math.log(0.8), abs=0.01)
    assert res.hr_quantiles["q2.5"] < 0.8 < res.hr_quantiles["q97.5"]


# ----------------------------------------------------------------------------- events
def test_mean_events_match_the_exponential_accrual_formula_with_dropout():
    design = _fixed_time(600, 0.7, dropout_hazard=0.01)
    res = simulate_survival_trial(design, n_replicates=2000, seed=13)
    expected = 600 * prob_event_two_arms(math.log(2) / MEDIAN, 0.7, ACCRUAL, FOLLOWUP, 1.0, 0.01)
    assert res.mean_events == pytest.approx(expected, rel=0.005)


def test_weibull_event_count_matches_numerical_integration():
    shape, hr, n = 1.7, 0.6, 400
    scale = MEDIAN / math.log(2) ** (1 / shape)

    def p_event(rate):  # (1/A) int_0^A F(A + F - e) de, F(t) = 1 - exp(-rate (t/s)^k)
        f = lambda e: 1 - math.exp(-rate * ((ACCRUAL + FOLLOWUP - e) / scale) ** shape)  # noqa: E731
        return integrate.quad(f, 0, ACCRUAL)[0] / ACCRUAL

    expected = n * (p_event(1.0) + p_event(hr)) / 2
    res = simulate_survival_trial(_fixed_time(n, hr, weibull_shape=shape), 2000, seed=14)
    assert res.mean_events == pytest.approx(expected, rel=0.005)


# ----------------------------------------------------------------------------- design
def test_block_randomization_gives_exact_arm_sizes():
    res = simulate_survival_trial(_fixed_time(300, 0.8, allocation=2.0), 256, seed=1)
    assert res.n_per_arm == {"experimental": 200.0, "control": 100.0}


def test_simple_randomization_arm_sizes_vary_around_the_allocation():
    res = simulate_survival_trial(_fixed_time(300, 0.8, randomization="simple"), 1024, seed=1)
    assert res.n_per_arm["experimental"] == pytest.approx(150, abs=1.5)


def test_same_seed_reproduces_and_other_seed_differs():
    design = _fixed_time(200, 0.7)
    a = simulate_survival_trial(design, 300, seed=9)
    b = simulate_survival_trial(design, 300, seed=9)
    c = simulate_survival_trial(design, 300, seed=10)
    np.testing.assert_array_equal(a.replicates["z"], b.replicates["z"])
    assert not np.array_equal(a.replicates["z"], c.replicates["z"])


def test_more_replicates_extend_fewer_with_the_same_seed():
    design = _fixed_time(200, 0.7)
    small = simulate_survival_trial(design, 300, seed=9)
    large = simulate_survival_trial(design, 1000, seed=9)
    np.testing.assert_array_equal(small.replicates["z"], large.replicates["z"][:300])


def test_result_to_dict_is_json_serialisable():
    res = simulate_survival_trial(_fixed_time(200, 0.7), 256, seed=1)
    out = json.loads(json.dumps(res.to_dict()))
    assert set(out["hr_quantiles"]) == {"q2.5", "q25", "q50", "q75", "q97.5"}
    assert out["design"]["hr"] == 0.7
    assert "replicates" not in out


# ----------------------------------------------------------------------------- search
def test_sample_size_search_is_within_five_percent_of_the_formula():
    formula = sample_size_survival(0.7, MEDIAN, ACCRUAL, FOLLOWUP, alpha=0.025, power=0.8)
    found = find_sample_size(_fixed_time(100, 0.7), target_power=0.8, n_replicates=3000, seed=0)
    assert found.power >= 0.8
    assert found.evaluations[found.n_patients - 1] < 0.8
    assert found.n_patients == pytest.approx(formula["patients"], rel=0.05)


def test_sample_size_search_refuses_event_driven_designs():
    design = SurvivalTrialDesign(
        n_patients=400,
        hr=0.7,
        control_median_months=MEDIAN,
        accrual_months=ACCRUAL,
        target_events=200,
    )
    with pytest.raises(ValueError, match="event-driven"):
        find_sample_size(design)


# ----------------------------------------------------------------------------- binary
@pytest.mark.parametrize("n", [100, 200, 300])
def test_binary_power_matches_the_normal_approximation(n):
    design = BinaryTrialDesign(n_patients=n, p_control=0.2, p_experimental=0.35)
    res = simulate_binary_trial(design, n_replicates=20_000, seed=21)
    assert res.power == pytest.approx(two_proportion_power(0.2, 0.35, n / 2), abs=0.02)
    assert res.mean_risk_difference == pytest.approx(0.15, abs=0.005)


def test_binary_type_one_error_is_alpha():
    design = BinaryTrialDesign(n_patients=400, p_control=0.3, p_experimental=0.3)
    res = simulate_binary_trial(design, n_replicates=20_000, seed=22)
    assert abs(res.power - 0.025) < 3 * math.sqrt(0.025 * 0.975 / 20_000)


def test_binary_sample_size_search_is_near_the_formula():
    design = BinaryTrialDesign(n_patients=10, p_control=0.2, p_experimental=0.35)
    found = find_sample_size(design, target_power=0.8, n_replicates=4000, seed=0)
    assert found.n_patients == pytest.approx(276, rel=0.05)  # two_proportion_sample_size


# ----------------------------------------------------------------------------- input
@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_patients": 1}, "n_patients"),
        ({"hr": 0.0}, "hr"),
        ({"hr": -0.5}, "hr"),
        ({"alpha": 0.6}, "alpha"),
        ({"sided": 0}, "sided"),
        ({"allocation": -1.0}, "allocation"),
        ({"randomization": "urn"}, "randomization"),
        ({"block_size": 3}, "block_size"),
        ({"weibull_shape": 0.0}, "weibull_shape"),
        ({"dropout_hazard": -0.1}, "dropout_hazard"),
        ({"accrual_rate": 10.0}, "accrual_months and accrual_rate"),
        ({"target_events": 50}, "followup_months and target_events"),
    ],
)
def test_bad_survival_design_raises_value_error_naming_the_parameter(kwargs, name):
    base = {
        "n_patients": 100,
        "hr": 0.7,
        "control_median_months": MEDIAN,
        "accrual_months": ACCRUAL,
        "followup_months": FOLLOWUP,
    }
    with pytest.raises(ValueError, match=name):
        SurvivalTrialDesign(**{**base, **kwargs})


def test_target_events_above_n_patients_is_refused():
    with pytest.raises(ValueError, match="target_events"):
        SurvivalTrialDesign(
            n_patients=100,
            hr=0.7,
            control_median_months=12,
            accrual_months=12,
            target_events=101,
        )


def test_bad_binary_design_and_replicates_raise():
    with pytest.raises(ValueError, match="p_experimental"):
        BinaryTrialDesign(n_patients=100, p_control=0.2, p_experimental=1.2)
    design = BinaryTrialDesign(n_patients=100, p_control=0.2, p_experimental=0.3)
    with pytest.raises(ValueError, match="n_replicates"):
        simulate_binary_trial(design, n_replicates=0)
