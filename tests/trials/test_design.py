"""Analytic design formulas against published numbers and numerical integration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm

from oncorwe.trials.design import (
    hazard_from_median,
    minimum_detectable_hr,
    prob_event_exponential,
    prob_event_two_arms,
    sample_size_survival,
    schoenfeld_events,
    schoenfeld_power,
    two_proportion_power,
    two_proportion_sample_size,
)


def test_schoenfeld_hr07_90pct_power_needs_331_events():
    # SCIENCE.md "Trial design": HR 0.7, one-sided alpha 0.025, 90% power -> 331 events.
    assert math.ceil(schoenfeld_events(0.7, alpha=0.025, power=0.9)) == 331


def test_schoenfeld_hr07_80pct_power_needs_247_events():
    assert math.ceil(schoenfeld_events(0.7, alpha=0.025, power=0.8)) == 247


def test_schoenfeld_two_sided_equals_one_sided_at_half_alpha():
    # 1:1, two-sided: D = 4 (z_{1-alpha/2} + z_{1-beta})^2 / (ln HR)^2.
    expected = 4 * (norm.ppf(0.975) + norm.ppf(0.9)) ** 2 / math.log(0.75) ** 2
    assert schoenfeld_events(0.75, alpha=0.05, power=0.9, sided=2) == pytest.approx(expected)
    assert schoenfeld_events(0.75, alpha=0.05, sided=2) == pytest.approx(
        schoenfeld_events(0.75, alpha=0.025, sided=1)
    )


def test_schoenfeld_two_to_one_allocation_costs_one_eighth_more_events():
    # (1 + r)^2 / r is 4 at 1:1 and 4.5 at 2:1.
    ratio = schoenfeld_events(0.7, allocation=2.0) / schoenfeld_events(0.7)
    assert ratio == pytest.approx(4.5 / 4)


@pytest.mark.parametrize("hr", [0.5, 0.7, 0.85, 1.3])
@pytest.mark.parametrize("allocation", [1.0, 2.0])
def test_schoenfeld_power_inverts_events(hr, allocation):
    for target in (0.6, 0.8, 0.95):
        d = schoenfeld_events(hr, alpha=0.025, power=target, allocation=allocation)
        assert schoenfeld_power(hr, d, alpha=0.025, allocation=allocation) == pytest.approx(
            target, abs=1e-12
        )


def _prob_event_by_quadrature(lam, accrual, followup, dropout=0.0):
    """(1/A) int_0^A CIF(A + F - e) de, CIF(t) = lam/(lam+d) (1 - exp(-(lam+d) t))."""

    def cif(t):
        total = lam + dropout
        return lam / total * (1 - math.exp(-total * t))

    value, _ = integrate.quad(lambda e: cif(accrual + followup - e), 0, accrual)
    return value / accrual


@pytest.mark.parametrize(
    ("lam", "accrual", "followup", "dropout"),
    [
        (math.log(2) / 12, 24, 12, 0.0),
        (math.log(2) / 6, 18, 6, 0.0),
        (0.01, 36, 3, 0.0),
        (math.log(2) / 12, 24, 12, 0.005),
        (0.2, 6, 0, 0.02),
    ],
)
def test_prob_event_matches_numerical_integration(lam, accrual, followup, dropout):
    expected = _prob_event_by_quadrature(lam, accrual, followup, dropout)
    assert prob_event_exponential(lam, accrual, followup, dropout) == pytest.approx(
        expected, rel=1e-10
    )


def test_prob_event_without_accrual_is_the_exponential_cdf():
    assert prob_event_exponential(0.1, 0, 7) == pytest.approx(1 - math.exp(-0.7))


def test_prob_event_two_arms_is_allocation_weighted_mean():
    lam = hazard_from_median(10)
    p_c = prob_event_exponential(lam, 20, 10)
    p_e = prob_event_exponential(lam * 0.6, 20, 10)
    assert prob_event_two_arms(lam, 0.6, 20, 10, allocation=2.0) == pytest.approx(
        (2 * p_e + p_c) / 3
    )


def test_sample_size_survival_divides_events_by_prob_event():
    ss = sample_size_survival(0.7, 12, 24, 12, alpha=0.025, power=0.9)
    assert ss["events"] == 331
    assert ss["patients"] == math.ceil(ss["events_exact"] / ss["prob_event"])
    assert ss["prob_event"] == pytest.approx(prob_event_two_arms(math.log(2) / 12, 0.7, 24, 12))


def test_two_proportion_sample_size_matches_r_power_prop_test():
    # R: power.prop.test(p1 = .50, p2 = .75, power = .90)  # => n = 76.7 per group
    ss = two_proportion_sample_size(0.5, 0.75, alpha=0.05, power=0.9, sided=2)
    assert ss["n_control_exact"] == pytest.approx(76.7, abs=0.05)
    assert ss["n_control"] == ss["n_experimental"] == 77


def test_two_proportion_power_matches_r_power_prop_test():
    # R: power.prop.test(n = 50, p1 = .50, p2 = .75)  # => power = 0.740
    assert two_proportion_power(0.5, 0.75, 50, alpha=0.05, sided=2) == pytest.approx(
        0.740, abs=5e-4
    )


@pytest.mark.parametrize("allocation", [1.0, 2.0, 0.5])
def test_two_proportion_power_inverts_sample_size(allocation):
    ss = two_proportion_sample_size(0.2, 0.35, alpha=0.025, power=0.8, allocation=allocation)
    n_c = ss["n_control_exact"]
    assert two_proportion_power(0.2, 0.35, n_c, allocation * n_c) == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: schoenfeld_events(0.0), "hr"),
        (lambda: schoenfeld_events(-1.2), "hr"),
        (lambda: schoenfeld_events(1.0), "hr"),
        (lambda: schoenfeld_events(0.7, alpha=0.5), "alpha"),
        (lambda: schoenfeld_events(0.7, alpha=0.0), "alpha"),
        (lambda: schoenfeld_events(0.7, power=1.0), "power"),
        (lambda: schoenfeld_events(0.7, allocation=0), "allocation"),
        (lambda: schoenfeld_events(0.7, sided=3), "sided"),
        (lambda: schoenfeld_power(0.7, -5), "events"),
        (lambda: prob_event_exponential(0.0, 12, 12), "hazard"),
        (lambda: prob_event_exponential(0.1, -1, 12), "accrual_months"),
        (lambda: prob_event_exponential(0.1, 12, 12, dropout_hazard=-0.1), "dropout_hazard"),
        (lambda: two_proportion_power(0.2, 1.0, 50), "p1"),
        (lambda: two_proportion_power(0.2, 0.3, 1), "n_control"),
        (lambda: two_proportion_sample_size(0.3, 0.3), "p1"),
    ],
)
def test_bad_input_raises_value_error_naming_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_schoenfeld_power_accepts_an_array_of_events():
    d = np.array([100.0, 200.0, 331.0])
    out = schoenfeld_power(0.7, d)
    assert out.shape == (3,)
    assert np.all(np.diff(out) > 0)


@pytest.mark.parametrize("allocation", [1.0, 2.0, 0.25])
def test_minimum_detectable_hr_inverts_schoenfeld(allocation):
    """The MDRR of D events is the hazard ratio for which Schoenfeld needs D events, and
    at it the log-rank test has the asked power (SCIENCE.md: HR 0.7 at one-sided 0.025
    and 90 % power needs 331 events)."""
    for events in (40.0, 331.0, 2500.0):
        mdrr = minimum_detectable_hr(events, alpha=0.05, power=0.8, allocation=allocation)
        assert mdrr > 1
        need = schoenfeld_events(1 / mdrr, alpha=0.05, power=0.8, allocation=allocation, sided=2)
        assert need == pytest.approx(events, rel=1e-12)
        power = schoenfeld_power(mdrr, events, alpha=0.05, allocation=allocation, sided=2)
        assert power == pytest.approx(0.8, abs=1e-12)
    science = minimum_detectable_hr(331, alpha=0.025, power=0.9, sided=1)
    assert 1 / science == pytest.approx(0.7, abs=0.001)
