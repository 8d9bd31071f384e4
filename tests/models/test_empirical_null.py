"""Empirical calibration against planted systematic error and the closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from oncorwe.models.empirical_null import EmpiricalNull, calibrate_ci, calibrate_p, ease, fit_null


def _controls(rng, n, mu, sigma):
    se = rng.uniform(0.05, 0.3, n)
    return rng.normal(mu, np.sqrt(se**2 + sigma**2)), se


@pytest.mark.parametrize(("mu", "sigma"), [(0.0, 0.0), (0.15, 0.1), (-0.2, 0.25)])
def test_the_fitted_null_recovers_the_planted_systematic_error(mu, sigma):
    rng = np.random.default_rng(1)
    fits = [fit_null(*_controls(rng, 300, mu, sigma)) for _ in range(20)]
    assert abs(np.mean([f.mu for f in fits]) - mu) < 0.02
    assert abs(np.mean([f.sigma for f in fits]) - sigma) < 0.03


def test_calibrated_p_values_of_null_effects_are_uniform_where_raw_ones_are_not():
    rng = np.random.default_rng(2)
    null = fit_null(*_controls(rng, 200, 0.2, 0.15))
    x, se = _controls(rng, 4000, 0.2, 0.15)  # more null effects with the same bias
    raw = 2 * stats.norm.sf(np.abs(x / se))
    cal = calibrate_p(x, se, null)
    assert np.mean(raw < 0.05) > 0.3  # the bias makes most null effects "significant"
    assert abs(np.mean(cal < 0.05) - 0.05) < 0.015
    assert stats.kstest(cal, "uniform").pvalue > 0.001


def test_calibrated_intervals_cover_the_true_effect():
    rng = np.random.default_rng(3)
    null = fit_null(*_controls(rng, 200, 0.1, 0.1))
    truth = np.log(0.7)
    x, se = _controls(rng, 2000, 0.1, 0.1)
    x = x + truth
    intervals = [calibrate_ci(a, b, null) for a, b in zip(x, se, strict=True)]
    covered = [lo <= truth <= hi for _, lo, hi in intervals]
    raw = np.abs(x - truth) <= 1.96 * se
    assert abs(np.mean(covered) - 0.95) < 0.02
    assert np.mean(raw) < 0.85


@pytest.mark.parametrize(("mu", "sigma"), [(0.0, 0.2), (0.3, 0.1), (-0.1, 0.4)])
def test_ease_is_the_expected_absolute_error(mu, sigma):
    numeric, _ = integrate.quad(lambda x: abs(x) * stats.norm.pdf(x, mu, sigma), -10, 10)
    assert ease(mu, sigma) == pytest.approx(numeric, abs=1e-8)
    assert EmpiricalNull(mu, sigma, 10).ease == pytest.approx(numeric, abs=1e-8)


def test_too_few_or_broken_controls_are_refused():
    with pytest.raises(ValueError, match=">= 5 negative controls"):
        fit_null([0.1, 0.2], [0.1, 0.1])
    with pytest.raises(ValueError, match="finite"):
        fit_null([0.1] * 5, [0.1, 0.1, 0.0, 0.1, 0.1])
