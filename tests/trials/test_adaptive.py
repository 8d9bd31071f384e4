"""I-SPY 2 style adaptive platform: predictive probabilities and operating characteristics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import beta, betabinom, norm

from oncorwe.trials.adaptive import (
    AdaptiveDesign,
    predictive_probability,
    probability_best,
    simulate_adaptive,
)

# The platform the operating-characteristic tests simulate: two experimental arms, two
# equally common signatures with control pCR 20% and 30%, 30% of patients to control,
# decisions once an arm has 80 patients, at most 120 per arm.
CONTROL = [0.2, 0.3]
PLATFORM = {"prevalence": [0.5, 0.5], "control_share": 0.3, "min_patients_decision": 80}
N_TRIALS = 1500

# A Bayesian design has no fixed alpha. The bound we hold this platform to: under the
# global null, the chance that any arm graduates in any signature (family-wise false
# graduation over 2 arms x 2 signatures) is below 10%, checked with the upper limit of a
# 99% Clopper-Pearson interval. Measured: 100 / 1500 = 6.7% (upper limit 8.5%).
NOMINAL_FAMILYWISE = 0.10


@pytest.fixture(scope="module")
def global_null():
    design = AdaptiveDesign(response_rates=[CONTROL, CONTROL, CONTROL], **PLATFORM)
    return simulate_adaptive(design, n_trials=N_TRIALS, seed=2024)


@pytest.fixture(scope="module")
def one_effective_arm():
    # Arm 1 lifts pCR from 20% to 50% in signature 0 only; arm 2 equals control.
    design = AdaptiveDesign(response_rates=[CONTROL, [0.5, 0.3], CONTROL], **PLATFORM)
    return simulate_adaptive(design, n_trials=N_TRIALS, seed=2025)


# ----------------------------------------------------------------------------- PP
def _pp_by_scipy_betabinom(y_e, n_e, y_c, n_c, m=150, alpha=0.025):
    """Independent oracle: double sum over scipy's beta-binomial pmfs."""
    x = np.arange(m + 1)
    pe = betabinom.pmf(x, m, 1 + y_e, 1 + n_e - y_e)
    pc = betabinom.pmf(x, m, 1 + y_c, 1 + n_c - y_c)
    xe, xc = np.meshgrid(x, x, indexing="ij")
    pbar = (xe + xc) / (2 * m)
    se = np.sqrt(pbar * (1 - pbar) * 2 / m)
    with np.errstate(divide="ignore", invalid="ignore"):
        win = np.where(se > 0, (xe - xc) / m / se, 0) > norm.ppf(1 - alpha)
    return float(pe @ win @ pc)


CASES = [(20, 40, 8, 40), (10, 30, 8, 30), (5, 20, 5, 20), (30, 60, 12, 40), (0, 0, 0, 0)]


@pytest.mark.parametrize("case", CASES)
def test_exact_predictive_probability_matches_scipy_betabinomial(case):
    assert predictive_probability(*case) == pytest.approx(_pp_by_scipy_betabinom(*case), abs=1e-10)


def test_exact_predictive_probability_matches_its_monte_carlo_definition():
    # Draw rates from the posteriors, simulate the 300-patient trial, count z-test wins.
    y_e, n_e, y_c, n_c = (np.array(c) for c in zip(*CASES, strict=True))
    exact = predictive_probability(y_e, n_e, y_c, n_c)
    mc = predictive_probability(y_e, n_e, y_c, n_c, method="montecarlo", n_draws=20_000, seed=1)
    se = np.sqrt(exact * (1 - exact) / 20_000)
    assert np.all(np.abs(mc - exact) < 4 * se + 1e-9)


def test_predictive_probability_grows_with_the_observed_difference():
    pps = predictive_probability(np.arange(0, 25), 40, 8, 40)
    assert np.all(np.diff(pps) >= 0)
    assert pps[0] < 0.10 < 0.85 < pps[-1]


def test_probability_best_matches_monte_carlo():
    rng = np.random.default_rng(0)
    y, n = np.array([8, 5, 3]), np.array([10, 10, 10])
    draws = rng.beta(1 + y, 1 + n - y, size=(400_000, 3))
    mc = np.bincount(draws.argmax(axis=1), minlength=3) / draws.shape[0]
    assert probability_best(y, n) == pytest.approx(mc, abs=0.003)


def test_probability_best_gives_inactive_arms_zero():
    p = probability_best([8, 9, 3], [10, 10, 10], active=[True, False, True])
    assert p[1] == 0
    assert p.sum() == pytest.approx(1)
    assert p[0] > 0.95


# ----------------------------------------------------------------------------- OC
def test_global_null_familywise_false_graduation_is_below_nominal(global_null):
    k = int(global_null.replicates["graduated"].any(axis=(1, 2)).sum())
    assert k / N_TRIALS == pytest.approx(global_null.familywise_error)
    upper = beta.ppf(0.995, k + 1, N_TRIALS - k)  # 99% Clopper-Pearson upper limit
    assert upper < NOMINAL_FAMILYWISE, (k, upper)


def test_global_null_reports_every_arm_signature_as_type_one_error(global_null):
    assert not np.isnan(global_null.type_i_error).any()
    assert np.isnan(global_null.power).all()
    assert global_null.type_i_error.max() < 0.05


def test_effective_arm_graduates_in_its_signature(one_effective_arm):
    assert one_effective_arm.prob_graduation[0, 0] > 0.7
    assert one_effective_arm.power[0, 0] == one_effective_arm.prob_graduation[0, 0]


def test_effective_arm_rarely_graduates_elsewhere(one_effective_arm):
    grad = one_effective_arm.prob_graduation
    assert grad[0, 1] < 0.05  # the effective arm, in the signature where it does nothing
    assert grad[1].max() < 0.05  # the null arm
    assert one_effective_arm.graduation_signature_share[0, 0] > 0.95


@pytest.mark.parametrize(("rar_power", "low", "high"), [(0.0, 0.9, 1.1), (0.5, 1.5, np.inf)])
def test_adaptive_randomization_favours_the_effective_arm(rar_power, low, high):
    # No early decisions (min_patients_decision = max_per_arm), so the arms' sizes show
    # the randomization alone: equal without adaptation, tilted towards arm 1 with it.
    design = AdaptiveDesign(
        response_rates=[CONTROL, [0.5, 0.3], CONTROL],
        **{**PLATFORM, "min_patients_decision": 120},
        rar_power=rar_power,
    )
    by_sig = simulate_adaptive(design, n_trials=300, seed=5).mean_patients_by_signature
    assert low < by_sig[1, 0] / by_sig[2, 0] < high


def test_caps_and_control_share_are_respected(global_null):
    n = global_null.replicates["patients"].sum(axis=2)  # (T, arms + 1)
    assert n[:, 1:].max() <= 120
    size = global_null.replicates["size"]
    assert size.max() <= AdaptiveDesign(response_rates=[CONTROL] * 3, **PLATFORM).total_cap
    assert n[:, 0].sum() / size.sum() == pytest.approx(0.3, abs=0.01)


def test_every_arm_ends_with_a_decision(global_null):
    status = global_null.replicates["status"]
    assert set(np.unique(status)) <= {1, 2, 3}
    total = global_null.prob_graduate_any + global_null.prob_futility
    np.testing.assert_allclose(total + global_null.prob_no_decision, 1.0)


def test_simulation_is_reproducible_and_json_ready():
    design = AdaptiveDesign(response_rates=[CONTROL, [0.5, 0.3]], **PLATFORM)
    a = simulate_adaptive(design, n_trials=50, seed=3)
    b = simulate_adaptive(design, n_trials=50, seed=3)
    np.testing.assert_array_equal(a.replicates["patients"], b.replicates["patients"])
    out = json.loads(json.dumps(a.to_dict()))
    assert out["design"]["response_rates"] == [CONTROL, [0.5, 0.3]]
    assert out["power"][0][1] is None  # no true effect in signature 1: not a power entry


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"response_rates": [[0.2, 0.3]]}, "response_rates"),
        ({"response_rates": [[0.2, 0.3], [1.2, 0.3]]}, "response_rates"),
        ({"prevalence": [0.5, 0.6]}, "prevalence"),
        ({"prevalence": [1.0]}, "prevalence"),
        ({"control_share": 1.0}, "control_share"),
        ({"block": 0}, "block"),
        ({"min_patients_decision": 200}, "min_patients_decision"),
        ({"futility_threshold": 0.9}, "futility_threshold"),
        ({"confirm_n": 301}, "confirm_n"),
        ({"confirm_alpha": 0.7}, "confirm_alpha"),
        ({"prior_a": 0.0}, "prior_a"),
    ],
)
def test_bad_adaptive_design_raises_value_error_naming_the_parameter(kwargs, name):
    base = {"response_rates": [[0.2, 0.3], [0.4, 0.3]], "prevalence": [0.5, 0.5]}
    with pytest.raises(ValueError, match=name):
        AdaptiveDesign(**{**base, **kwargs})
