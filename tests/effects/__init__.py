"""Shared simulation for the treatment-effect tests (effects planted, truth known)."""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from oncorwe.models import ResponseClassifier


def simulate_binary(seed: int, n_patients: int = 2000, tau: float = 1.0) -> dict:
    """Confounded binary-treatment, binary-outcome data with 2 rows per patient.

    X ~ N(0, 1) in 5 columns, x0 correlated 0.5 within a patient; propensity
    e(x) = expit(0.8 x0); Y ~ Bernoulli(expit(-0.5 + 0.7 x0 + tau T 1{x1 > 1})).
    ``rd`` is each row's true risk difference p1(x) - p0(x), so the true subgroup
    effect is its mean over the subgroup.
    """
    rng = np.random.default_rng(seed)
    n = 2 * n_patients
    groups = np.repeat(np.arange(n_patients), 2)
    x = rng.normal(size=(n, 5))
    x[:, 0] = (np.repeat(rng.normal(size=n_patients), 2) + rng.normal(size=n)) / np.sqrt(2)
    t = (rng.random(n) < expit(0.8 * x[:, 0])).astype(int)
    sub = x[:, 1] > 1
    p0 = expit(-0.5 + 0.7 * x[:, 0])
    p1 = expit(-0.5 + 0.7 * x[:, 0] + tau * sub)
    y = np.where(t == 1, rng.random(n) < p1, rng.random(n) < p0).astype(int)
    return {"X": x, "T": t, "Y": y, "groups": groups, "sub": sub, "rd": p1 - p0}


def small_classifier(random_state: int = 0) -> ResponseClassifier:
    """A fast nuisance model for tests: 60 depth-2 trees, 64 bins, one thread."""
    return ResponseClassifier(
        n_estimators=60,
        max_depth=2,
        learning_rate=0.15,
        max_bin=64,
        n_jobs=1,
        device="cpu",
        random_state=random_state,
    )
