"""Track 1's nuisance models: one XGBoost thread against several, by row count.

    python benchmarks/bench_nuisance_threads.py --analysis data/features/analysis
    python benchmarks/bench_nuisance_threads.py --analysis DIR --rows 20000,200000,800000 --threads 2

Subgroup discovery cross-fits, per cancer type, a multiclass propensity model and one
outcome model per endpoint over 5 patient-grouped folds (``fit_nuisances``, the models of
``discovery.NUISANCE_DEFAULTS``). This script runs that call on the rows of one cancer
type of an analysis table, resampled (whole patients, with replacement, under fresh ids)
to each ``--rows``, once with ``n_jobs=1`` and once with ``n_jobs=--threads``, and prints
the wall time of each and their ratio. The two fits see the same rows, folds and seeds;
the largest difference between their cross-fitted predictions is printed too (XGBoost's
histogram sums may add in another order with more threads).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from oncorwe.core.roles import read_table, roles_for_analysis_table
from oncorwe.effects.discovery import arm_codes, fit_nuisances
from oncorwe.models.encoding import feature_frame
from oncorwe.pipeline.hypothesis import _outcomes


def _resample(frame: pd.DataFrame, id_col: str, n_rows: int, seed: int) -> pd.DataFrame:
    """Whole patients drawn with replacement until ``n_rows`` rows; each draw a new id."""
    rng = np.random.default_rng(seed)
    by_id = frame.groupby(id_col, sort=False).indices
    ids = np.array(list(by_id))
    parts, total, draw = [], 0, 0
    while total < n_rows:
        pick = rng.choice(ids, size=max(1, (n_rows - total) // 2 + 1))
        idx = np.concatenate([by_id[i] for i in pick])
        part = frame.iloc[idx].copy()
        part[id_col] = part[id_col].astype(str) + f"~{draw}"
        parts.append(part)
        total += len(part)
        draw += 1
    return pd.concat(parts, ignore_index=True).iloc[:n_rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--analysis", type=Path, required=True, help="an analysis table folder")
    ap.add_argument("--cancer", default="nsclc")
    ap.add_argument("--rows", default="20000,200000,800000")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--arms", type=int, default=4, help="the comparator and the most used drugs")
    args = ap.parse_args()
    roles = roles_for_analysis_table(args.analysis)
    table = read_table(args.analysis)
    table = table[table["cancer"] == args.cancer].reset_index(drop=True)
    if table.empty:
        raise SystemExit(f"error: --cancer {args.cancer!r}: no rows in {args.analysis}")
    covariates = roles.resolved_covariates(table)
    print(f"| rows | arms | 1 thread s | {args.threads} threads s | ratio | max abs diff |")
    print("|-----:|-----:|-----------:|-----------:|------:|-------------:|")
    for n in (int(x) for x in args.rows.split(",")):
        frame = _resample(table, roles.id, n, seed=n)
        treat = frame[roles.treatment].astype(str).to_numpy()
        ctl = treat == roles.comparator_of(frame).astype(str).to_numpy()
        drugs = pd.Series(treat[~ctl]).value_counts().index[: args.arms - 1].tolist()
        arm = arm_codes(treat, ctl, drugs)
        keep = arm >= 0
        frame, arm = frame[keep].reset_index(drop=True), arm[keep]
        F = feature_frame(frame, covariates)
        outcomes = _outcomes(frame, roles, 12.0)
        ids = frame[roles.id].to_numpy()
        fits, secs = [], []
        for jobs in (1, args.threads):
            t0 = time.perf_counter()
            fits.append(
                fit_nuisances(
                    F, arm, ["<comparator>", *drugs], outcomes, ids, n_splits=5, seed=0,
                    model_params={"n_jobs": jobs, "device": "cpu"},
                )
            )  # fmt: skip
            secs.append(time.perf_counter() - t0)
        a, b = fits
        diff = max(
            float(np.nanmax(np.abs(a.e - b.e))),
            *(float(np.nanmax(np.abs(a.m[k] - b.m[k]))) for k in a.m),
        )
        print(
            f"| {len(frame):,} | {len(drugs) + 1} | {secs[0]:.1f} | {secs[1]:.1f} | "
            f"{secs[0] / secs[1]:.2f} | {diff:.2g} |"
        )


if __name__ == "__main__":
    main()
