"""The one Kaplan-Meier estimator against lifelines and the closed form of a hand example."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from lifelines import KaplanMeierFitter

from oncorwe.models.kaplan_meier import at_risk_counts, validate_weights, weighted_kaplan_meier


def _tied_censored(n: int = 400, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    time = np.round(rng.exponential(6.0, n), 0) + 1.0  # whole months: many ties
    event = (rng.random(n) < 0.65).astype(int)
    return event, time


def _lifelines(event, time, weights=None) -> KaplanMeierFitter:
    with warnings.catch_warnings():
        # lifelines warns that non-integer weights need a robust variance; no variance here
        warnings.simplefilter("ignore")
        return KaplanMeierFitter().fit(time, event, weights=weights)


def test_sample_has_tied_events_and_censorings_at_one_time():
    event, time = _tied_censored()
    both = [t for t in np.unique(time) if {0, 1} <= set(event[time == t])]
    assert len(both) >= 5


def test_unit_weights_equal_lifelines_survival_function():
    event, time = _tied_censored()
    curve = weighted_kaplan_meier(event, time)
    km = _lifelines(event, time)
    sf = km.survival_function_["KM_estimate"]
    # lifelines' timeline starts at 0 with S = 1; the curve's first step is the first time
    np.testing.assert_array_equal(np.r_[0.0, curve.times], sf.index.to_numpy())
    np.testing.assert_allclose(np.r_[1.0, curve.survival], sf.to_numpy(), rtol=1e-12, atol=0)


def test_unit_weights_equal_lifelines_at_risk_and_event_counts():
    event, time = _tied_censored()
    curve = weighted_kaplan_meier(event, time)
    table = _lifelines(event, time).event_table.drop(index=0.0)
    np.testing.assert_array_equal(curve.at_risk, table["at_risk"].to_numpy(float))
    np.testing.assert_array_equal(curve.events, table["observed"].to_numpy(float))


def test_at_a_horizon_equals_lifelines_predict():
    event, time = _tied_censored()
    curve = weighted_kaplan_meier(event, time)
    km = _lifelines(event, time)
    for h in (0.5, 1.0, 2.5, 6.0, 12.0, 1e3):  # before, on, between and past the steps
        assert curve.at(h)[0] == pytest.approx(float(km.predict(h)), rel=1e-12, abs=0)


def test_hand_example_equals_the_closed_form():
    # t:  1  2  2  3  4  5   (the 2s: an event and a censoring; the censored row is still
    # e:  1  1  0  1  0  1    at risk at 2)
    # S = 5/6, 5/6 * 4/5, * 2/3, * 1, * 0 at t = 1, 2, 3, 4, 5
    curve = weighted_kaplan_meier([1, 1, 0, 1, 0, 1], [1.0, 2.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_array_equal(curve.times, [1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(curve.survival, [5 / 6, 2 / 3, 4 / 9, 4 / 9, 0.0], rtol=1e-15)
    np.testing.assert_array_equal(curve.at_risk, [6, 5, 3, 2, 1])
    np.testing.assert_array_equal(curve.events, [1, 1, 1, 0, 1])
    np.testing.assert_allclose(curve.at([0.5, 2.5, 4.0, 9.0]), [1.0, 2 / 3, 4 / 9, 0.0])


def test_weighted_fit_equals_lifelines_weighted_fit():
    event, time = _tied_censored()
    w = np.random.default_rng(4).uniform(0.2, 3.0, time.size)  # IPT-like, non-integer
    curve = weighted_kaplan_meier(event, time, w)
    km = _lifelines(event, time, weights=w)
    sf = km.survival_function_["KM_estimate"]
    np.testing.assert_array_equal(np.r_[0.0, curve.times], sf.index.to_numpy())
    np.testing.assert_allclose(np.r_[1.0, curve.survival], sf.to_numpy(), rtol=1e-10, atol=0)
    table = km.event_table.drop(index=0.0)
    np.testing.assert_allclose(curve.at_risk, table["at_risk"].to_numpy(float), rtol=1e-12)
    np.testing.assert_allclose(curve.events, table["observed"].to_numpy(float), rtol=1e-12)


def test_weighted_hand_example_equals_the_closed_form():
    # weights 2, 1, 1 at t = 1 (event), 2 (censored), 3 (event): n = 4, 2, 1; d = 2, 0, 1
    curve = weighted_kaplan_meier([1, 0, 1], [1.0, 2.0, 3.0], [2.0, 1.0, 1.0])
    np.testing.assert_allclose(curve.survival, [0.5, 0.5, 0.0], rtol=1e-15)
    np.testing.assert_array_equal(curve.at_risk, [4.0, 2.0, 1.0])


def test_integer_weights_equal_repeated_rows():
    event, time = _tied_censored(n=120, seed=5)
    k = np.random.default_rng(6).integers(1, 4, time.size)
    weighted = weighted_kaplan_meier(event, time, k)
    repeated = weighted_kaplan_meier(np.repeat(event, k), np.repeat(time, k))
    np.testing.assert_allclose(weighted.survival, repeated.survival, rtol=1e-12)
    np.testing.assert_array_equal(weighted.at_risk, repeated.at_risk)


@pytest.mark.parametrize(
    ("weight", "message"),
    [([1.0, 2.0], "has 2 rows; expected 3"), ([1.0, -1.0, 1.0], "finite and >= 0")],
)
def test_weights_of_the_wrong_length_or_sign_are_rejected(weight, message):
    with pytest.raises(ValueError, match=message):
        validate_weights(weight, 3)


def test_times_outside_the_survival_convention_are_rejected():
    with pytest.raises(ValueError, match="time must be finite and > 0"):
        weighted_kaplan_meier([1, 0], [0.0, 1.0])


# --------------------------------------------------------------------------- the band
def test_unit_weight_band_equals_lifelines_exponential_greenwood_interval():
    """With unit weights the effective risk set is the risk set: the band is lifelines'
    default interval (log-log, Greenwood) at every step, ties and censorings included."""
    event, time = _tied_censored()
    curve = weighted_kaplan_meier(event, time)
    km = _lifelines(event, time)
    ci = km.confidence_interval_.drop(index=0.0)
    lower, upper = curve.confidence_interval(ci.index.to_numpy(), alpha=0.05)
    finite = curve.survival > 0  # lifelines leaves NaN where S reaches 0
    np.testing.assert_allclose(lower[finite], ci.iloc[:, 0].to_numpy()[finite], rtol=1e-9)
    np.testing.assert_allclose(upper[finite], ci.iloc[:, 1].to_numpy()[finite], rtol=1e-9)
    lo, hi = curve.confidence_interval([0.5])  # before the first time: S = 1 exactly
    assert lo[0] == hi[0] == 1.0


def test_weighted_band_covers_the_true_marginal_survival_in_95_of_100_samples():
    """Planted truth: treatment P(T=1|x) = expit(x), survival of the treated
    exp(-exp(0.5 x) t) with x ~ N(0, 1). The treated rows weighted by 1 / e(x) estimate
    the marginal S(t) = E_x exp(-exp(0.5 x) t); at S near 0.56 the 95 % band covers it
    at least 88 times in 100 (binomial slack; measured 97.7 % over 3 x 300 samples, a
    little conservative). Counting the weights as patients (lifelines' weighted
    Greenwood) covers it far less often (measured 78 %), as the weights vary."""
    rng = np.random.default_rng(7)
    xs = rng.normal(size=400_000)
    t_star = 0.55
    truth = float(np.mean(np.exp(-np.exp(0.5 * xs) * t_star)))
    covered = naive = 0
    for _ in range(100):
        x = rng.normal(size=600)
        e = 1 / (1 + np.exp(-x))
        treated = rng.random(600) < e
        t = rng.exponential(1 / np.exp(0.5 * x[treated]))
        c = rng.uniform(0.2, 3.0, t.size)
        ev, tm, w = (t <= c).astype(int), np.minimum(t, c), 1 / e[treated]
        lo, hi = weighted_kaplan_meier(ev, tm, w).confidence_interval(t_star)
        covered += bool(lo[0] <= truth <= hi[0])
        ci = _lifelines(ev, tm, weights=w).confidence_interval_
        row = ci.iloc[np.searchsorted(ci.index.to_numpy(), t_star, side="right") - 1]
        naive += bool(row.iloc[0] <= truth <= row.iloc[1])
    assert 88 <= covered <= 100, covered
    assert naive < covered - 5, (naive, covered)


def test_at_risk_counts_equal_lifelines_event_table():
    """At observed times the numbers at risk are lifelines' ``at_risk``; between two such
    times the events and censorings are the rows of its event table in the interval."""
    event, time = _tied_censored()
    table = _lifelines(event, time).event_table
    grid = np.array([0.0, 3.0, 6.0, 10.0, 15.0])
    out = at_risk_counts(event, time, grid)
    assert out["n_at_risk"][0] == time.size
    for k, t in enumerate(grid[1:], start=1):
        assert out["n_at_risk"][k] == (table.loc[t, "at_risk"] if t in table.index else 0)
    ends = np.r_[grid[1:], np.inf]
    for k, (a, b) in enumerate(zip(grid, ends, strict=True)):
        rows = table[(table.index >= a) & (table.index < b)]
        assert out["events"][k] == rows["observed"].sum()
        assert out["n_censored"][k] == rows["censored"].sum()
    # every row leaves once: at risk falls by the events and censorings in between
    np.testing.assert_array_equal(
        out["n_at_risk"] - np.r_[out["n_at_risk"][1:], 0], out["events"] + out["n_censored"]
    )
