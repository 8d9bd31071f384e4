"""A flat cohort file written the way analysts write them, with a planted truth.

The bring-your-own door's test bench and its shipped example (``oncorwe export-flat``).

One row per patient: a numeric arm code (1 = comparator, 2 = the drug), 0/1 biomarker
markers, ECOG as a small integer, age, PFS in **days**. Treatment is confounded by ECOG
and age; the drug halves the hazard (HR ``effect_hr``) only in the ``marker_b == 1``
subgroup (``share`` of patients); elsewhere it does nothing. ``effect_hr = 1`` is the null
twin: the same file with no effect anywhere.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def flat_cohort(
    n: int = 16000, *, share: float = 0.05, effect_hr: float = 0.35, seed: int = 0
) -> pd.DataFrame:
    """Draw ``n`` patients, one row each (columns: module docstring).

    The true subgroup effect is a hazard ratio of ``effect_hr`` in ``marker_b == 1`` and
    1 elsewhere; a roles file for it is :data:`ROLES`.

    Examples
    --------
    >>> f = flat_cohort(500, seed=1)
    >>> sorted(f["trt"].unique().tolist()), int(f["marker_b"].max())
    ([1, 2], 1)
    """
    rng = np.random.default_rng(seed)
    age = rng.normal(64, 10, n).round()
    ecog = rng.choice([0, 1, 2], n, p=[0.4, 0.45, 0.15])
    markers = {
        "marker_a": rng.random(n) < 0.30,
        "marker_b": rng.random(n) < share,
        "marker_c": rng.random(n) < 0.15,
        "marker_d": rng.random(n) < 0.50,
    }
    logit = -0.2 + 0.02 * (age - 64) - 0.4 * ecog + 0.3 * markers["marker_a"]
    drug = rng.random(n) < 1 / (1 + np.exp(-logit))
    log_hr = np.where(drug & markers["marker_b"], np.log(effect_hr), 0.0)
    hazard = (1 / 120) * np.exp(
        0.25 * ecog + 0.01 * (age - 64) + 0.3 * markers["marker_c"] + log_hr
    )
    t_event = rng.exponential(1 / hazard)
    t_cens = rng.uniform(200, 900, n)
    time = np.maximum(1, np.round(np.minimum(t_event, t_cens)))
    frame = pd.DataFrame(
        {
            "patient_id": [f"P{i:06d}" for i in rng.permutation(n)],
            "trt": np.where(drug, 2, 1),
            "age": age,
            "ecog": ecog,
            **{k: v.astype(int) for k, v in markers.items()},
            "pfs_days": time.astype(int),
            "progressed": (t_event <= t_cens).astype(int),
        }
    )
    return frame


#: the roles file of :func:`flat_cohort`'s table: id, arms, outcome, covariates only
ROLES = {
    "id": "patient_id",
    "treatment": "trt",
    "treated": 2,
    "comparator": 1,
    "time": "pfs_days",
    "time_unit": "days",
    "event": "progressed",
    "covariates": ["age", "ecog", "marker_a", "marker_b", "marker_c", "marker_d"],
}
