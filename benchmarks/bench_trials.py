"""Virtual-trial simulation speed and agreement with the formulas.

    python benchmarks/bench_trials.py [--replicates 10000] [--patients 500]

Times 10,000 simulated trials of 500 patients (fixed-time and event-driven log-rank),
1,000 adaptive platform trials, and a baseline measured in the same run: sorting a
(replicates x patients) array of random numbers once, the core of a vectorized log-rank.
Also prints simulated power beside Schoenfeld's over a grid of hazard ratios and sizes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from oncorwe.trials.adaptive import AdaptiveDesign, simulate_adaptive
from oncorwe.trials.design import schoenfeld_power
from oncorwe.trials.simulate import SurvivalTrialDesign, simulate_survival_trial


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=10_000)
    ap.add_argument("--patients", type=int, default=500)
    args = ap.parse_args()
    r, n = args.replicates, args.patients

    t0 = time.perf_counter()
    np.sort(np.random.default_rng(0).random((r, n)), axis=1)
    base = time.perf_counter() - t0

    rows = []
    for label, kw in (
        ("fixed-time log-rank", {"followup_months": 12}),
        ("event-driven log-rank", {"target_events": n // 2}),
    ):
        d = SurvivalTrialDesign(
            n_patients=n, hr=0.7, control_median_months=12, accrual_months=24, **kw
        )
        t0 = time.perf_counter()
        simulate_survival_trial(d, n_replicates=r, seed=1)
        rows.append((f"{r:,} trials x {n} patients, {label}", time.perf_counter() - t0))
    design = AdaptiveDesign(
        response_rates=[[0.2, 0.3], [0.2, 0.3], [0.45, 0.3]], prevalence=[0.5, 0.5]
    )
    t0 = time.perf_counter()
    simulate_adaptive(design, n_trials=1000, seed=1)
    rows.append(("1,000 adaptive trials, 2 arms x 2 signatures", time.perf_counter() - t0))

    print(f"| {'step':<52} | seconds | x baseline |")
    print(f"|{'-' * 54}|---------|------------|")
    print(
        f"| {'baseline: sort a ' + str(r) + ' x ' + str(n) + ' array':<52} | {base:7.2f} | {1.0:10.1f} |"
    )
    for label, t in rows:
        print(f"| {label:<52} | {t:7.2f} | {t / base:10.1f} |")

    print("\n| HR | N | mean events | simulated power | Schoenfeld power | difference |")
    print("|----|---|-------------|-----------------|------------------|------------|")
    for hr in (0.6, 0.7, 0.8, 0.9):
        for size in (200, 500, 1000):
            d = SurvivalTrialDesign(
                n_patients=size,
                hr=hr,
                control_median_months=12,
                accrual_months=24,
                followup_months=12,
            )
            s = simulate_survival_trial(d, n_replicates=4000, seed=2024)
            f = float(schoenfeld_power(hr, s.mean_events))
            print(
                f"| {hr} | {size} | {s.mean_events:.1f} | {s.power:.4f} | {f:.4f} | {s.power - f:+.4f} |"
            )


if __name__ == "__main__":
    main()
