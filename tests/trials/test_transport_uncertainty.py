"""The transport's confidence intervals and calibration curve against simulation.

A known model in a known world: ``lp ~ N(0, 1)``, ``T ~ Exp(rate exp(lp))`` (cumulative
baseline hazard ``H0(t) = t``), uniform censoring. The model is the truth, so its C, O/E
and calibration vary only by sampling: the standard errors must match the spread of
the estimates over independent samples, and the intervals cover the truth (O/E = 1)
at about their level.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oncorwe.models.metrics import harrell_c
from oncorwe.trials.transport import concordance_se, survival_performance, transport

GRID = np.linspace(0.0, 50.0, 5001)  # H0(t) = t as a fine step function


def _sample(rng, n):
    lp = rng.normal(size=n)
    t = rng.exponential(np.exp(-lp))
    c = rng.uniform(0.2, 3.0, n)
    return (t <= c).astype(float), np.minimum(t, c), lp


def test_concordance_se_matches_the_spread_of_c_over_independent_samples():
    rng = np.random.default_rng(0)
    cs = []
    ses = []
    for i in range(100):
        ev, tm, lp = _sample(rng, 400)
        cs.append(harrell_c(ev, tm, lp))
        if i < 30:
            ses.append(concordance_se(ev, tm, lp))
    ratio = float(np.mean(ses) / np.std(cs, ddof=1))
    assert 0.8 < ratio < 1.25, ratio  # measured: 1.06


def test_concordance_se_of_a_hand_example_is_its_closed_form():
    """Three rows, all events at 1, 2, 3 with risks 3, 1, 2: pairs (1,2) and (1,3) are
    concordant, (2,3) discordant, C = 2/3; r_p = (2, 2, 2), r_c = (2, 1, 1), so
    SE = 2 sqrt((2 - 4/3)^2 + 2 (1 - 4/3)^2) / 6 = 2 sqrt(2/3) / 6."""
    se = concordance_se([1, 1, 1], [1.0, 2.0, 3.0], [3.0, 1.0, 2.0])
    assert se == pytest.approx(2 * np.sqrt(2 / 3) / 6, rel=1e-12)


def test_oe_interval_covers_one_for_the_true_model_at_its_level():
    rng = np.random.default_rng(1)
    covered, logs, half = 0, [], []
    for _ in range(120):
        ev, tm, lp = _sample(rng, 400)
        perf = survival_performance(ev, tm, lp, GRID, GRID, horizon=1.0, uncertainty=False)
        covered += perf.oe_ci_low <= 1.0 <= perf.oe_ci_high
        logs.append(np.log(perf.calibration_in_the_large))
        half.append(np.log(perf.oe_ci_high / perf.calibration_in_the_large) / 1.959964)
    assert 106 <= covered <= 119, covered  # 95 % of 120 (114), binomial slack; measured 112
    ratio = float(np.mean(half) / np.std(logs, ddof=1))
    assert 0.8 < ratio < 1.25, ratio  # 1 / sqrt(O) is the SE of log(O/E); measured 0.98


def test_calibration_groups_of_the_true_model_lie_on_the_diagonal():
    rng = np.random.default_rng(2)
    ev, tm, lp = _sample(rng, 4000)
    perf = survival_performance(ev, tm, lp, GRID, GRID, horizon=1.0)
    groups = perf.calibration_groups
    assert len(groups) == 10 and sum(g["n"] for g in groups) == 4000
    z = _z(groups)
    assert np.all(np.diff([g["predicted_risk"] for g in groups]) > 0)  # 1 = lowest risk
    # sampling only: the groups' standardized gaps look like standard normals
    assert np.max(np.abs(z)) < 4 and np.mean(z**2) < 3, z.round(1)  # measured 2.9, 2.1
    assert perf.c_index_ci_low < perf.c_index < perf.c_index_ci_high
    # a model twice too extreme is off the diagonal in the same data
    doubled = survival_performance(ev, tm, 2 * lp, GRID, GRID, horizon=1.0, uncertainty=False)
    assert np.max(np.abs(_z(doubled.calibration_groups))) > 6


def _z(groups) -> np.ndarray:
    """(observed - predicted) risk per group over its binomial SE."""
    pred = np.array([g["predicted_risk"] for g in groups])
    obs = np.array([g["observed_risk"] for g in groups])
    n = np.array([g["n"] for g in groups])
    return (obs - pred) / np.sqrt(pred * (1 - pred) / n)


def test_transport_gives_the_test_c_a_ci_and_the_apparent_one_none():
    rng = np.random.default_rng(3)

    def frame(n):
        ev, tm, lp = _sample(rng, n)
        return pd.DataFrame({"x": lp, "t": tm, "e": ev})

    res = transport(frame(800), frame(600), time="t", event="e", covariates=["x"],
                    model="cox", horizon_months=1.0)  # fmt: skip
    out = res.to_dict()
    test, train = out["test_performance"], out["train_performance"]
    assert test["c_index_ci_low"] < test["c_index"] < test["c_index_ci_high"]
    assert test["oe_ci_low"] < test["calibration_in_the_large"] < test["oe_ci_high"]
    assert train["c_index_ci_low"] is None and len(test["calibration_groups"]) == 10
