"""Coverage of target-trial emulation against the synthetic world's true marginal effects.

    python benchmarks/bench_emulation_coverage.py [--seeds 20] [--patients 15000]
        [--propensity logistic] [--method iptw] [--bootstrap 0] [--n-jobs 1]

For each seed, a fresh world of the default spec restricted to NSCLC
(``tests/trials/truth.py: nsclc_spec``) is drawn and two trials are emulated:

- **planted**: pembrolizumab vs the line's standard of care in PD-L1 TPS >= 50 % NSCLC
  (all lines). The truth is the marginal HR of a simulated randomized trial of the
  analysed rows (both potential outcomes, Cox fit) and the mean difference of the true
  response probabilities.
- **null**: pembrolizumab vs platinum doublet in line-1 NSCLC of the world without
  planted effects (true HR 1, RD 0), confounded by ECOG.

It prints one row per seed and the counts: adjusted HR / RD CIs covering the truth,
unadjusted HR CIs excluding it, and the diagnostics that passed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

# the scenarios and their truths live with the tests that check them
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.trials.truth import (  # noqa: E402
    NSCLC_COVARIATES,
    nsclc_spec,
    true_effects,
    weibull_shape,
    with_standard_arm,
)

from oncorwe.cohort.generator import generate  # noqa: E402
from oncorwe.cohort.spec import load_spec  # noqa: E402
from oncorwe.features.build import build_features  # noqa: E402
from oncorwe.pipeline.features import feature_config
from oncorwe.pipeline.params import FeaturesParams  # noqa: E402
from oncorwe.trials.emulation import emulate  # noqa: E402

DRUG = "pembrolizumab"


def _world(spec, n: int, seed: int, out: Path) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    generate(spec, n, seed=seed, out=out)
    feats = build_features(out / "omop", feature_config(FeaturesParams())).to_pandas()
    po = pd.read_parquet(out / "truth" / "potential_outcomes.parquet")
    return feats, po, weibull_shape(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=100)
    ap.add_argument("--patients", type=int, default=10_000)
    ap.add_argument("--propensity", default="logistic", choices=["logistic", "xgboost"])
    ap.add_argument("--method", default="iptw", choices=["iptw", "matching"])
    ap.add_argument("--bootstrap", type=int, default=0)
    ap.add_argument("--n-jobs", type=int, default=1, help="XGBoost threads")
    args = ap.parse_args()

    base = load_spec()
    rows = []
    with tempfile.TemporaryDirectory(prefix="oncorwe-cov-") as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            t0 = time.perf_counter()
            kw = dict(
                time="pfs_months",
                event="pfs_event",
                covariates=NSCLC_COVARIATES,
                response="response",
                groups="person_key",
                propensity=args.propensity,
                method=args.method,
                bootstrap=args.bootstrap,
                n_jobs=args.n_jobs,
                seed=seed,
            )
            feats, po, kappa = _world(nsclc_spec(base), args.patients, seed, Path(tmp) / "w")
            frame = with_standard_arm(feats, DRUG)
            res = emulate(
                frame,
                treatment="arm",
                treated_value=DRUG,
                control_value="standard",
                eligible=(frame["bm_pdl1_tps_status"] == ">=50").to_numpy(),
                **kw,
            )
            truth = true_effects(po, frame.loc[res.analysed_index], DRUG, kappa, seed=seed)

            nfeats, _, _ = _world(nsclc_spec(base, null=True), args.patients, seed, Path(tmp) / "n")
            null = emulate(
                nfeats,
                treatment="treatment",
                treated_value=DRUG,
                control_value="platinum_doublet",
                eligible=(nfeats["line"] == 1).to_numpy(),
                **kw,
            )
            rows.append(
                {
                    "seed": seed,
                    "true_hr": truth["hr"],
                    "hr": res.hazard_ratio,
                    "ci_low": res.ci_low,
                    "ci_high": res.ci_high,
                    "hr_covered": res.ci_low <= truth["hr"] <= res.ci_high,
                    "log_err": np.log(res.hazard_ratio / truth["hr"]),
                    "se": res.log_hr_se,
                    "unadj_hr": res.unadjusted_hazard_ratio,
                    "true_rd": truth["rd"],
                    "rd": res.risk_difference,
                    "rd_covered": res.rd_ci_low <= truth["rd"] <= res.rd_ci_high,
                    "smd_after": res.max_abs_smd_after,
                    "passed": res.diagnostics_pass,
                    "null_hr": null.hazard_ratio,
                    "null_covered": null.ci_low <= 1.0 <= null.ci_high,
                    "null_unadj_hr": null.unadjusted_hazard_ratio,
                    "null_unadj_excludes": not (
                        null.unadjusted_ci_low <= 1.0 <= null.unadjusted_ci_high
                    ),
                    "null_rd_covered": null.rd_ci_low <= 0.0 <= null.rd_ci_high,
                    "null_smd_after": null.max_abs_smd_after,
                    "seconds": time.perf_counter() - t0,
                }
            )
            print(pd.DataFrame(rows[-1:]).round(3).to_string(index=False, header=len(rows) == 1))
    df = pd.DataFrame(rows)
    n = len(df)
    print(
        f"\n{args.propensity} / {args.method} / bootstrap {args.bootstrap}, "
        f"{args.patients} NSCLC patients per world, {n} seeds"
    )
    print(f"planted HR: CI covers the true marginal HR in {int(df.hr_covered.sum())}/{n}")
    print(
        f"planted log HR - log true HR: mean {df.log_err.mean():+.3f}, SD over seeds "
        f"{df.log_err.std():.3f}, mean reported SE {df.se.mean():.3f}"
    )
    print(f"planted RD: CI covers the true RD in {int(df.rd_covered.sum())}/{n}")
    print(
        f"planted: diagnostics passed in {int(df.passed.sum())}/{n} "
        f"(median max |SMD| after {df.smd_after.median():.3f})"
    )
    print(
        f"null HR: adjusted CI covers 1 in {int(df.null_covered.sum())}/{n}; unadjusted CI "
        f"excludes 1 in {int(df.null_unadj_excludes.sum())}/{n} "
        f"(median unadjusted HR {np.median(df.null_unadj_hr):.3f}, adjusted "
        f"{np.median(df.null_hr):.3f})"
    )
    print(f"null RD: adjusted CI covers 0 in {int(df.null_rd_covered.sum())}/{n}")
    print(f"mean seconds per seed: {df.seconds.mean():.1f}")


if __name__ == "__main__":
    main()
