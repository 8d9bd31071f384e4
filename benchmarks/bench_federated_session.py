"""What a stage's many small models cost in one federated session, by number of sites.

    python benchmarks/bench_federated_session.py [--rows 20000] [--sites 2,4,8,16]
        [--models 6] [--rounds 120]

A stage trains hundreds of small models (cross-fitted propensity and outcome models of
every comparison). This trains ``--models`` nuisance-like models (a 3-class propensity,
a regression, a binary outcome, in turn; depth 4, ``--rounds`` trees, 15 features) through
:class:`oncorwe.compute.trainer.Trainer` on synthetic rows split over N hospitals, with
each backend: pooled (the reference, in this process), Dask (a 2-worker LocalCluster) and
federated (one session: a server and N site processes, TLS on). Printed per backend and
N: the start-up (session or cluster), the mean seconds per model, and both as ratios to
pooled's seconds per model measured in the same run; and whether the predictions equal
pooled's (max |difference|). Machines are shared and noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from bench_training_backends import synthetic  # noqa: E402


def models(frame: pd.DataFrame, features: list[str], k: int):
    rng = np.random.default_rng(0)
    arm = rng.integers(0, 3, len(frame))
    frame = frame.assign(arm=arm, pseudo=frame["time"].clip(upper=12))
    plan = [
        ("multiclass", "arm", {"num_class": 3}),
        ("regression", "pseudo", {}),
        ("binary", "y", {}),
    ]
    return frame, [plan[i % 3] for i in range(k)]


def run(backend: str, frame, features, plan, rounds, sites, tls_dir: Path):
    from oncorwe.compute.federated.server import FederatedConfig, make_tls_material
    from oncorwe.compute.trainer import Trainer

    fed = None
    if backend == "federated":
        fed = FederatedConfig(tls=make_tls_material(tls_dir, sites), timeout=3600)
    params = {"n_estimators": rounds, "max_depth": 4, "learning_rate": 0.1, "n_jobs": 1}
    t0 = time.perf_counter()
    with Trainer(
        backend, federated=fed, sites=sites if fed else None, max_bin=64, min_cell=11
    ) as tr:
        tr.sketch(frame, features)
        start = time.perf_counter() - t0
        preds, secs = [], []
        for kind, label, extra in plan:
            t1 = time.perf_counter()
            m = tr.fit(
                kind,
                frame,
                features=features,
                label=label,
                params=params,
                num_class=extra.get("num_class"),
            )
            secs.append(time.perf_counter() - t1)
            preds.append(m.predict_proba(frame) if kind != "regression" else m.predict(frame))
    return start, float(np.mean(secs)), preds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--sites", default="2,4,8,16")
    ap.add_argument("--models", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=120)
    ap.add_argument("--backends", default="pooled,dask,federated")
    args = ap.parse_args()
    backends = args.backends.split(",")
    print(
        f"{args.models} models per backend, {args.rounds} trees each, {args.rows:,} rows\n\n"
        "| sites | backend | start-up s | s per model | × pooled per model | max abs diff vs pooled |\n"
        "|------:|---------|-----------:|------------:|-------------------:|-----------------------:|"
    )
    for n in [int(s) for s in args.sites.split(",")]:
        frame = synthetic(args.rows, n, 14)
        features = [c for c in frame.columns if c.startswith("x")] + ["stage"]
        frame, plan = models(frame, features, args.models)
        sites = sorted(frame["site"].unique())
        ref = None
        with tempfile.TemporaryDirectory(prefix="bench-session-") as tmp:
            for b in backends:
                start, per, preds = run(b, frame, features, plan, args.rounds, sites, Path(tmp) / b)
                if ref is None:
                    ref = (per, preds)
                diff = max(float(np.max(np.abs(p - q))) for p, q in zip(preds, ref[1], strict=True))
                print(
                    f"| {n} | {b} | {start:.1f} | {per:.2f} | {per / ref[0]:.1f} | {diff:.1e} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
