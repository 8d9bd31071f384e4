"""The DR-learner's effect model and the loss table it prints, against a known CATE.

The pseudo-outcomes here are the true effect plus noise (what AIPW scores are, given
exact nuisances), so the truth of every loss is analytic: for a model ``f`` the held-out
DR loss minus the constant-zero loss estimates ``mean((tau - f)^2) - mean(tau^2)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from oncorwe.models.estimators import grouped_validation_split
from oncorwe.pipeline.hypothesis import effect_model

SEED = 3


def _world(n: int, effect: float, seed: int):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "marker": (rng.random(n) < 0.2).astype(float),
            "age": rng.normal(60, 10, n),
            "lab": rng.normal(0, 1, n),
        }
    )
    tau = effect * X["marker"].to_numpy()
    psi = tau + rng.normal(0, 2.0, n)  # AIPW-like noise, far larger than the effect
    groups = np.repeat(np.arange(n // 2), 2)  # two lines per patient
    return X, tau, psi, groups


def _va(psi, groups):
    return grouped_validation_split(len(psi), groups, validation_fraction=0.3, random_state=SEED)[1]


def test_the_loss_table_estimates_the_true_gain_over_zero():
    X, tau, psi, groups = _world(30_000, 0.5, 0)
    model, losses = effect_model(X, psi, groups, SEED, 1, "cpu")
    grid = {k: v for k, v in losses.items() if k.startswith("depth")}
    assert set(losses) == {"zero", "mean", *grid} and len(grid) == 6
    va = _va(psi, groups)
    # the constant-mean row: its gain over zero estimates the true MSE difference
    c = psi[np.setdiff1d(np.arange(len(psi)), va)].mean()
    true_mean_gain = np.mean(tau[va] ** 2) - np.mean((tau[va] - c) ** 2)
    se_mean = np.std(2 * psi[va] * c - c * c) / np.sqrt(len(va))
    assert abs((losses["zero"] - losses["mean"]) - true_mean_gain) < 4 * se_mean
    # the tuned model: the table reports a gain, and the model really estimates the
    # effect better than zero, on fresh patients and by about the gain the table claims
    best = min(grid.values())
    assert best < losses["zero"]
    Xn, tau_n, _, _ = _world(30_000, 0.5, 1)
    f = model.predict(Xn)
    mse_zero, mse_model = np.mean(tau_n**2), np.mean((tau_n - f) ** 2)
    assert mse_model < 0.3 * mse_zero
    f_va = model.predict(X.iloc[va])
    se = np.std(2 * psi[va] * f_va - f_va**2) / np.sqrt(len(va))
    assert abs((losses["zero"] - best) - (mse_zero - mse_model)) < 4 * se + 0.01
    # what it learned is the planted subgroup, in the planted direction
    assert f[Xn["marker"] == 1].mean() - f[Xn["marker"] == 0].mean() > 0.3


def test_with_no_effect_the_table_claims_no_gain():
    X, tau, psi, groups = _world(30_000, 0.0, 2)
    model, losses = effect_model(X, psi, groups, SEED, 1, "cpu")
    best = min(v for k, v in losses.items() if k.startswith("depth"))
    va = _va(psi, groups)
    se = 2 * np.std(psi[va]) * 0.05 / np.sqrt(len(va))  # a 0.05-sized f: the gain's noise
    assert losses["zero"] - best < 4 * se
    assert np.abs(model.predict(X)).mean() < 0.1
