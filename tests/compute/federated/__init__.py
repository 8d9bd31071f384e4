"""Shared synthetic data for the federated tests (numpy/pandas; no patient data)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

SITES = ("A", "B", "C")
FEATURES = ["age", "ldh", "albumin", "nlr", "stage"]


def synthetic_sites(n: int = 4000, seed: int = 0) -> pd.DataFrame:
    """Three hospitals with different case mix; continuous features with thousands of
    distinct values (so XGBoost's per-site sketches differ), missing values, a category.

    Planted truth: response log-odds and log hazard both rise with LDH and NLR, fall
    with albumin, and are higher in stage IV.
    """
    rng = np.random.default_rng(seed)
    site = np.array(SITES)[rng.choice(3, size=n, p=[0.45, 0.35, 0.20])]
    shift = pd.Series(site).map({"A": 0.0, "B": 0.6, "C": -0.4}).to_numpy()
    age = rng.normal(62 + 5 * shift, 10)
    ldh = rng.lognormal(5.3 + 0.3 * shift, 0.5)
    albumin = rng.normal(3.8 - 0.2 * shift, 0.5)
    nlr = rng.gamma(2.0 + shift, 2.0)
    nlr[rng.random(n) < 0.12] = np.nan  # not measured
    stage = np.array(["I", "II", "III", "IV"])[rng.choice(4, size=n, p=[0.1, 0.2, 0.3, 0.4])]
    lp = (
        0.9 * (np.log(ldh) - 5.3)
        - 0.8 * (albumin - 3.8)
        + 0.15 * np.nan_to_num(nlr - 4.0, nan=0.5)
        + 0.6 * (stage == "IV")
        + 0.01 * (age - 62)
    )
    response = (rng.random(n) < 1.0 / (1.0 + np.exp(-(lp - 0.3)))).astype(np.int8)
    t_event = rng.exponential(12.0 * np.exp(-lp))
    t_cens = rng.uniform(1.0, 36.0, n)
    return pd.DataFrame(
        {
            "site": site,
            "age": age,
            "ldh": ldh,
            "albumin": albumin,
            "nlr": nlr,
            "stage": stage,
            "response": response,
            "pfs_event": (t_event <= t_cens).astype(np.int8),
            "pfs_months": np.minimum(t_event, t_cens) + 0.01,
        }
    )


def write_sites(frame: pd.DataFrame, root: Path) -> dict[str, Path]:
    """The analysis-table layout: ``root/site=NAME/part-0.parquet``."""
    out = {}
    for s in SITES:
        d = root / f"site={s}"
        d.mkdir(parents=True)
        frame[frame["site"] == s].reset_index(drop=True).to_parquet(
            d / "part-0.parquet", index=False
        )
        out[s] = d
    return out


def alive(pid: int) -> bool:
    """True when ``pid`` is a live (not zombie) process."""
    try:
        import psutil
    except ImportError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
