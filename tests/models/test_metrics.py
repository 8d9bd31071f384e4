"""Metrics against analytic truths, definitions computed by hand, and lifelines."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, logit
from sklearn.metrics import roc_auc_score

from oncorwe.models import metrics as mx
from oncorwe.models.metrics import (
    _loess_at,
    auc,
    binary_metrics,
    brier,
    calibration_in_the_large,
    calibration_slope_intercept,
    harrell_c,
    ici,
    metrics_by_group,
    scaled_brier,
    survival_calibration_at_horizon,
)


def _calibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes drawn from the predicted probabilities themselves: perfect calibration."""
    rng = np.random.default_rng(seed)
    p = expit(rng.normal(-0.5, 1.2, n))
    return (rng.random(n) < p).astype(int), p


# --------------------------------------------------------------------------- binary
def test_auc_known_value():
    # pairs (pos, neg): 0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4 -> 3 of 4
    assert auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)


def test_brier_and_scaled_brier_of_prevalence_prediction():
    y = [0, 1, 0, 1]
    assert brier(y, [0.5] * 4) == pytest.approx(0.25)
    assert scaled_brier(y, [0.5] * 4) == pytest.approx(0.0)
    assert scaled_brier(y, [0.0, 1.0, 0.0, 1.0]) == pytest.approx(1.0)


def test_calibration_slope_one_intercept_zero_for_calibrated_probabilities():
    y, p = _calibrated(100_000, seed=0)
    out = calibration_slope_intercept(y, p)
    assert out["slope"] == pytest.approx(1.0, abs=0.03)
    assert out["intercept"] == pytest.approx(0.0, abs=0.03)


def test_calibration_slope_half_when_predicted_logits_are_doubled():
    # truth logit L, prediction logit 2L: logit P(y) = 0 + 0.5 * (2L) exactly
    y, p_true = _calibrated(100_000, seed=1)
    out = calibration_slope_intercept(y, expit(2 * logit(p_true)))
    assert out["slope"] == pytest.approx(0.5, abs=0.02)
    assert out["intercept"] == pytest.approx(0.0, abs=0.03)


def test_calibration_in_the_large_recovers_a_logit_shift():
    # predictions 0.5 too low on the logit scale: intercept with offset = +0.5, O/E > 1
    y, p_true = _calibrated(100_000, seed=2)
    out = calibration_in_the_large(y, expit(logit(p_true) - 0.5))
    assert out["intercept"] == pytest.approx(0.5, abs=0.03)
    assert out["observed_expected"] > 1.2


def test_calibration_in_the_large_is_perfect_for_calibrated_probabilities():
    y, p = _calibrated(100_000, seed=3)
    out = calibration_in_the_large(y, p)
    assert out["observed_expected"] == pytest.approx(1.0, abs=0.02)
    assert out["intercept"] == pytest.approx(0.0, abs=0.03)


def test_ici_near_zero_for_calibrated_probabilities():
    y, p = _calibrated(20_000, seed=4)
    out = ici(y, p)
    assert out["ici"] < 0.01
    assert out["e50"] <= out["e90"] <= out["emax"] < 0.05


def test_ici_equals_half_mean_risk_when_predictions_are_halved():
    # true risk r ~ U(0.1, 0.9), prediction r/2: the calibration curve is 2p, so
    # |curve - p| = r/2 and ICI = E[r]/2 = 0.25, E90 = 0.9 quantile of r/2 = 0.41
    rng = np.random.default_rng(5)
    r = rng.uniform(0.1, 0.9, 20_000)
    y = (rng.random(r.size) < r).astype(int)
    out = ici(y, r / 2)
    assert out["ici"] == pytest.approx(0.25, abs=0.015)
    assert out["e90"] == pytest.approx(0.41, abs=0.02)


def test_local_quadratic_smoother_reproduces_a_quadratic_exactly():
    x = np.linspace(0, 1, 200)
    y = 0.2 + 0.5 * x - 0.3 * x**2
    grid = np.array([0.0, 0.3, 0.77, 1.0])
    np.testing.assert_allclose(
        _loess_at(x, y, grid, span=0.75, degree=2), 0.2 + 0.5 * grid - 0.3 * grid**2, atol=1e-10
    )


def test_metrics_by_group_suppresses_small_cells():
    y, p = _calibrated(3000, seed=6)
    groups = np.array(["a"] * 1500 + ["b"] * 1490 + ["c"] * 10)
    out = metrics_by_group(y, p, groups, min_cell=20).set_index("group")
    assert list(out.index) == ["a", "b", "c"]
    assert out.loc["a", "n"] == 1500 and not out.loc["a", "suppressed"]
    assert out.loc["c", "suppressed"]
    assert out.loc[["c"]].drop(columns="suppressed").isna().all(axis=None)
    assert out.loc["a", "auc"] == pytest.approx(binary_metrics(y[:1500], p[:1500])["auc"])


# --------------------------------------------------------------------------- survival
def test_harrell_c_perfect_risk_score_is_one():
    time = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    event = np.array([1, 1, 0, 1, 1])
    assert harrell_c(event, time, -time) == pytest.approx(1.0)  # earlier failure = riskier
    assert harrell_c(event, time, time) == pytest.approx(0.0)


def _c_by_definition(event, time, risk):
    num = den = 0.0
    for i in range(len(time)):
        if not event[i]:
            continue
        for j in range(len(time)):
            if time[j] > time[i]:  # i failed first: concordant when risk_i > risk_j
                den += 1
                num += 1.0 if risk[i] > risk[j] else 0.5 if risk[i] == risk[j] else 0.0
    return num / den


def test_harrell_c_matches_the_pairwise_definition_with_censoring():
    rng = np.random.default_rng(7)
    time = rng.exponential(1.0, 150)
    event = (rng.random(150) < 0.6).astype(int)
    risk = np.round(-time + rng.normal(0, 1.0, 150), 1)  # rounded: ties in risk
    assert harrell_c(event, time, risk) == pytest.approx(_c_by_definition(event, time, risk))


def test_survival_calibration_at_horizon_agrees_for_the_true_model():
    rng = np.random.default_rng(9)
    n, horizon = 10_000, 5.0
    hazard = 0.1 * np.exp(0.8 * rng.normal(size=n))
    t_event = rng.exponential(1 / hazard)
    t_cens = rng.exponential(1 / 0.05, n)
    event, time = (t_event <= t_cens).astype(int), np.minimum(t_event, t_cens)
    table = survival_calibration_at_horizon(event, time, np.exp(-hazard * horizon), horizon)
    assert list(table["group"]) == list(range(1, 11))
    assert table["n"].sum() == n
    assert table["predicted"].is_monotonic_decreasing  # group 1 = lowest risk
    assert table["difference"].abs().mean() < 0.02


# ------------------------------------------------- censoring-adjusted survival measures
def _uncensored(n: int = 300, seed: int = 3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    t = rng.exponential(np.exp(-x))
    return np.ones(n, dtype=int), t, x + rng.normal(scale=0.5, size=n)


def test_uno_c_without_censoring_is_the_share_of_concordant_pairs_before_tau():
    ev, t, risk = _uncensored()
    tau = float(np.quantile(t, 0.8))
    i, j = np.triu_indices(len(t), 1)
    first, second = np.where(t[i] < t[j], i, j), np.where(t[i] < t[j], j, i)
    keep = t[first] < tau
    concordant = (risk[first] > risk[second]) + 0.5 * (risk[first] == risk[second])
    expected = concordant[keep].mean()
    assert mx.uno_c(ev, t, ev, t, risk, tau=tau) == pytest.approx(expected, abs=1e-12)


def test_time_dependent_auc_without_censoring_is_the_auc_of_an_event_by_t():
    ev, t, risk = _uncensored()
    times = mx.evaluation_times(t, ev, t)
    auc_t, _ = mx.time_dependent_auc(ev, t, ev, t, risk, times)
    for tk, a in zip(times, auc_t, strict=True):
        assert a == pytest.approx(roc_auc_score(t <= tk, risk), abs=1e-12)


def test_integrated_brier_of_the_marginal_curve_without_censoring_is_s_times_one_minus_s():
    ev, t, _ = _uncensored()
    times = mx.evaluation_times(t, ev, t)
    s = np.array([(t > tk).mean() for tk in times])
    surv = np.tile(s, (len(t), 1))
    expected = np.trapezoid(s * (1 - s), times) / (times[-1] - times[0])
    assert mx.integrated_brier(ev, t, ev, t, surv, times) == pytest.approx(expected, abs=1e-12)


def test_survival_metrics_rank_the_true_model_above_noise_under_heavy_censoring():
    rng = np.random.default_rng(5)
    n = 4000
    x = rng.normal(size=n)
    t = rng.exponential(np.exp(-x))
    c = rng.exponential(0.4, size=n)  # most rows censored, as at a data cut
    ev, tt = (t < c).astype(int), np.minimum(t, c)
    assert ev.mean() < 0.5
    half = n // 2
    train, test = slice(0, half), slice(half, n)
    good = mx.survival_metrics(
        ev[train],
        tt[train],
        ev[test],
        tt[test],
        x[test],
        survival=lambda ts: np.exp(-np.outer(np.exp(x[test]), ts)),
    )
    noise = mx.survival_metrics(
        ev[train],
        tt[train],
        ev[test],
        tt[test],
        rng.normal(size=n - half),
        survival=lambda ts: np.full((n - half, len(ts)), 0.5),  # a coin for every row
    )
    assert good["uno_c"] > 0.65 and good["mean_auc"] > 0.65
    assert abs(noise["uno_c"] - 0.5) < 0.05 and abs(noise["mean_auc"] - 0.5) < 0.05
    assert good["ibs"] < noise["ibs"]


def test_survival_metrics_on_a_part_with_one_event_are_none_not_numbers():
    t = np.arange(1.0, 41.0)
    ev = np.zeros(40, dtype=int)
    ev[5] = 1
    out = mx.survival_metrics(ev, t, ev, t, -t)
    assert out == {"c_index": None, "uno_c": None, "mean_auc": None, "ibs": None}


def test_uno_c_on_a_sample_of_a_large_part_is_near_the_whole_parts():
    rng = np.random.default_rng(8)
    n = 8000
    x = rng.normal(size=n)
    t, c = rng.exponential(np.exp(-x)), rng.exponential(1.0, size=n)
    ev, tt = (t < c).astype(int), np.minimum(t, c)
    tau = float(np.quantile(tt[ev == 1], 0.9))
    whole = mx.uno_c(ev, tt, ev, tt, x, tau=tau)
    assert mx.uno_c(ev, tt, ev, tt, x, tau=tau, max_rows=n) == whole
    sampled = mx.uno_c(ev, tt, ev, tt, x, tau=tau, max_rows=2000)
    assert sampled == mx.uno_c(ev, tt, ev, tt, x, tau=tau, max_rows=2000)  # the same rows
    assert abs(sampled - whole) < 0.03 and sampled != whole
