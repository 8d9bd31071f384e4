"""Pooled vs federated vs Dask training: wall time, peak memory, agreement.

    python benchmarks/bench_training_backends.py [--rows 100000] [--sites 4] [--features 20]
        [--rounds 100] [--kind binary|cox] [--backends pooled,federated,dask]
    python benchmarks/bench_training_backends.py --analysis data/features/analysis [--sites 8]

Synthetic by default: ``--rows`` rows over ``--sites`` hospitals (different case mix),
``--features`` continuous features plus one categorical, ~10 % missing in one feature.
With ``--analysis`` the project's analysis table (``site=NAME/`` partitions and
``roles.json``) is used instead: its covariates (numeric and categorical), the response
(binary) or PFS (cox), the first ``--sites`` hospitals.

One binning contract is sketched once (in this process) and shared by every backend, so
all train the same model; each backend then runs in a fresh child process, which this
script samples every 50 ms with psutil: peak memory is the largest summed RSS of the
child and all its descendants (federated: server + one process per site; Dask: the
scheduler's client + worker processes). Reported per backend: wall time of the
``train_model`` call (start-up of worker processes included; the child's own imports
excluded), peak memory, both as ratios to pooled, and max |prediction - pooled| on up to
20,000 rows. The federated run uses TLS; the sketch through site processes is timed
once as its own row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

CHILD_FLAG = "--child"


# ---------------------------------------------------------------------- data
def synthetic(rows: int, sites: int, n_features: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    site_idx = rng.integers(0, sites, rows)
    shift = (site_idx - (sites - 1) / 2) / max(sites, 1)
    cols = {"site": np.array([f"H{i:03d}" for i in range(sites)])[site_idx]}
    lp = np.zeros(rows)
    for j in range(n_features):
        x = rng.normal(shift * (j % 3), 1.0 + 0.1 * (j % 4), rows)
        if j % 5 == 1:
            x = np.exp(x)  # skewed, lab-like
        cols[f"x{j:02d}"] = x
        if j < 6:
            lp += (0.6 / (1 + j)) * np.tanh(x if j % 5 != 1 else np.log(x))
    miss = rng.random(rows) < 0.1
    cols["x00"] = np.where(miss, np.nan, cols["x00"])
    stage = np.array(["I", "II", "III", "IV"])[rng.integers(0, 4, rows)]
    cols["stage"] = stage
    lp += 0.5 * (stage == "IV")
    cols["y"] = (rng.random(rows) < 1 / (1 + np.exp(-lp))).astype(np.int8)
    t = rng.exponential(12 * np.exp(-lp))
    c = rng.uniform(1, 36, rows)
    cols["event"] = (t <= c).astype(np.int8)
    cols["time"] = np.minimum(t, c) + 0.01
    return pd.DataFrame(cols)


def write_partitions(frame: pd.DataFrame, root: Path) -> None:
    for s, part in frame.groupby("site", sort=True):
        d = root / f"site={s}"
        d.mkdir(parents=True)
        part.reset_index(drop=True).to_parquet(d / "part-0.parquet", index=False)


# ---------------------------------------------------------------------- child
def child(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    from oncorwe.compute.federated.binning import BinningContract
    from oncorwe.compute.federated.server import FederatedConfig, TLSConfig
    from oncorwe.compute.trainer import train_model

    contract = BinningContract.from_dict(spec["contract"])
    tls = spec.get("tls")
    fed = None
    if tls:
        fed = FederatedConfig(
            tls=TLSConfig(
                server_key=Path(tls["server_key"]),
                server_cert=Path(tls["server_cert"]),
                client_ca=Path(tls["client_ca"]),
                server_ca=Path(tls["server_ca"]),
                client_certs={s: (Path(k), Path(c)) for s, (k, c) in tls["client_certs"].items()},
            )
        )
    parts = {s: Path(p) for s, p in spec["partitions"].items()}
    t0 = time.perf_counter()
    model = train_model(
        spec["kind"],
        parts,
        features=spec["features"],
        label=spec["label"] if spec["kind"] == "binary" else tuple(spec["label"]),
        params=spec["params"],
        num_boost_round=spec["rounds"],
        backend=spec["backend"],
        contract=contract,
        federated=fed,
    )
    seconds = time.perf_counter() - t0
    sample = pd.read_parquet(spec["sample"])
    np.save(spec["pred_out"], model.predict_margin(sample))
    print(json.dumps({"seconds": seconds}), flush=True)


def run_child(spec: dict, work: Path) -> dict:
    import psutil

    spec_path = work / f"spec-{spec['backend']}.json"
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.perf_counter()
    err_path = work / f"stderr-{spec['backend']}.txt"
    with open(err_path, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, __file__, CHILD_FLAG, str(spec_path)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
        )
    peak = 0
    try:
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            total = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            peak = max(peak, total)
            time.sleep(0.05)
        out = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        tail = err_path.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{spec['backend']} run failed (exit code {proc.returncode}):\n{tail}")
    result = json.loads(out.strip().splitlines()[-1])
    result["wall_total"] = time.perf_counter() - t0
    result["peak_bytes"] = peak
    return result


# ---------------------------------------------------------------------- main
def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == CHILD_FLAG:
        child(sys.argv[2])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--sites", type=int, default=4)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--max-bin", type=int, default=256)
    ap.add_argument("--max-depth", type=int, default=6)
    ap.add_argument("--kind", choices=("binary", "cox"), default="binary")
    ap.add_argument("--backends", default="pooled,federated,dask")
    ap.add_argument("--analysis", type=Path, default=None, help="an analysis table folder")
    args = ap.parse_args()

    from oncorwe.compute.federated.binning import contract_from_summaries, site_summary
    from oncorwe.compute.federated.server import (
        FederatedConfig,
        federated_contract,
        make_tls_material,
    )
    from oncorwe.compute.trainer import discover_partitions

    with tempfile.TemporaryDirectory(prefix="bench-backends-") as tmp:
        work = Path(tmp)
        if args.analysis is None:
            frame = synthetic(args.rows, args.sites, args.features)
            write_partitions(frame, work / "analysis")
            parts = discover_partitions(work / "analysis")
            features = [c for c in frame.columns if c.startswith("x")] + ["stage"]
            categorical = ["stage"]
            label = "y" if args.kind == "binary" else ["event", "time"]
            source = f"synthetic: {args.rows:,} rows, {len(parts)} sites, {len(features)} features"
        else:
            roles = json.loads((args.analysis / "roles.json").read_text())
            parts = dict(list(discover_partitions(args.analysis).items())[: args.sites])
            features = [*roles["covariates"], roles["treatment"]]
            categorical = [*roles["categorical"], roles["treatment"]]
            label = roles["response"] if args.kind == "binary" else [roles["event"], roles["time"]]
            cols = list(dict.fromkeys([*features, *([label] if isinstance(label, str) else label)]))
            frame = pd.concat(
                [pd.read_parquet(p, columns=cols) for p in parts.values()], ignore_index=True
            )
            source = f"{args.analysis}: {len(frame):,} rows, {len(parts)} sites, {len(features)} features"
        numeric = [c for c in features if c not in categorical]
        time_col = label[1] if args.kind == "cox" else None
        label_cols = [label] if isinstance(label, str) else list(label)

        # one contract for every backend (sketched per site, merged here)
        frames = {s: pd.read_parquet(p, columns=[*features, *label_cols]) for s, p in parts.items()}
        t0 = time.perf_counter()
        sums = [
            site_summary(
                f, numeric=[*numeric, *([time_col] if time_col else [])], categorical=categorical
            )
            for f in frames.values()
        ]
        contract = contract_from_summaries(sums, max_bin=args.max_bin, time_column=time_col)
        sketch_local = time.perf_counter() - t0
        tls = make_tls_material(work / "tls", list(parts))
        t0 = time.perf_counter()
        fed_contract = federated_contract(
            parts,
            numeric=numeric,
            categorical=categorical,
            max_bin=args.max_bin,
            time_column=time_col,
            config=FederatedConfig(tls=tls),
        )
        sketch_fed = time.perf_counter() - t0
        same = fed_contract == contract
        order = [*contract.numeric, *contract.categorical]
        contract_features = [f for f in order if f in features]

        sample = frame.sample(n=min(len(frame), 20_000), random_state=0)
        sample[features].to_parquet(work / "sample.parquet")
        params = {
            "max_depth": args.max_depth,
            "eta": 0.1,
            "nthread": 1,
            "max_bin": args.max_bin,
        }
        tls_spec = {
            "server_key": str(tls.server_key),
            "server_cert": str(tls.server_cert),
            "client_ca": str(tls.client_ca),
            "server_ca": str(tls.server_ca),
            "client_certs": {s: [str(k), str(c)] for s, (k, c) in tls.client_certs.items()},
        }
        results = {}
        for backend in args.backends.split(","):
            spec = {
                "backend": backend,
                "kind": args.kind,
                "partitions": {s: str(p) for s, p in parts.items()},
                "features": contract_features,
                "label": label,
                "params": params,
                "rounds": args.rounds,
                "contract": contract.to_dict(),
                "tls": tls_spec if backend == "federated" else None,
                "sample": str(work / "sample.parquet"),
                "pred_out": str(work / f"pred-{backend}.npy"),
            }
            results[backend] = run_child(spec, work)
            results[backend]["pred"] = np.load(work / f"pred-{backend}.npy")

    print(
        f"data: {source}; kind {args.kind}, {args.rounds} rounds, depth {args.max_depth}, "
        f"max_bin {args.max_bin}, 1 thread per process"
    )
    print(
        f"contract sketch: in-process {sketch_local:.2f} s; through site processes "
        f"{sketch_fed:.2f} s (same contract: {same})"
    )
    base = results.get("pooled")
    header = f"{'backend':<10} {'train s':>9} {'x pooled':>9} {'peak MiB':>9} {'x pooled':>9} {'max|dmargin|':>13}"
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        t_ratio = r["seconds"] / base["seconds"] if base else float("nan")
        m_ratio = r["peak_bytes"] / base["peak_bytes"] if base else float("nan")
        diff = float(np.abs(r["pred"] - base["pred"]).max()) if base else float("nan")
        print(
            f"{name:<10} {r['seconds']:>9.2f} {t_ratio:>9.2f} {r['peak_bytes'] / 2**20:>9.0f} "
            f"{m_ratio:>9.2f} {diff:>13.2e}"
        )


if __name__ == "__main__":
    main()
