"""The plotted points of a binary model: ROC on a grid, calibration by decile."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from oncorwe.models.metrics import calibration_bins, roc_points


def test_the_roc_grid_integrates_to_the_auc():
    rng = np.random.default_rng(0)
    y = rng.random(20_000) < 0.3
    p = 1 / (1 + np.exp(-(rng.normal(size=20_000) + 1.2 * y)))
    roc = roc_points(y, p, n_grid=1001)
    area = np.trapezoid(roc["tpr"], roc["fpr"])
    assert abs(area - roc_auc_score(y, p)) < 2e-3
    assert roc["tpr"].is_monotonic_increasing and roc["tpr"].iloc[-1] == 1.0


def test_calibration_bins_of_a_calibrated_model_lie_on_the_diagonal():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.05, 0.95, 50_000)
    y = rng.random(50_000) < p  # outcomes drawn from the predictions: calibrated
    t = calibration_bins(y, p, 10, min_cell=11)
    se = np.sqrt(t["predicted"] * (1 - t["predicted"]) / t["rows"])
    assert (np.abs(t["observed"] - t["predicted"]) < 4 * se).all()
    assert t["rows"].sum() == 50_000


def test_a_bin_with_few_events_is_withheld_whole():
    p = np.linspace(0.001, 0.999, 200)
    y = np.zeros(200, dtype=bool)
    y[-30:] = True  # the lowest bin holds no event
    t = calibration_bins(y, p, 2, min_cell=11)
    assert np.isnan(t["observed"][0]) and np.isnan(t["rows"][0])
    assert t["rows"][1] == 100 and abs(t["observed"][1] - 0.3) < 1e-12
