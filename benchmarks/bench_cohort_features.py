"""Throughput of the generator and the feature stage, against same-run baselines.

    python benchmarks/bench_cohort_features.py [--patients 100000] [--seed 1]

Baselines (measured in the same run, on the same files, so the ratios travel between
noisy machines): for the generator, reading and rewriting all of its Parquet output
with pyarrow (the I/O floor); for the feature stage, a DuckDB scan that touches every
column of every OMOP table it reads.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from oncorwe.cohort.generator import generate
from oncorwe.cohort.spec import load_spec
from oncorwe.features.build import REQUIRED, build_features
from oncorwe.pipeline.features import feature_config
from oncorwe.pipeline.params import FeaturesParams


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="oncorwe-bench-"))
    try:
        spec = load_spec()
        t_gen, summary = _timed(lambda: generate(spec, args.patients, args.seed, work / "w"))
        omop = work / "w" / "omop"

        def io_floor():
            for p in sorted(omop.glob("*.parquet")):
                pq.write_table(pq.read_table(p), work / f"copy-{p.name}")

        t_io, _ = _timed(io_floor)
        cfg = feature_config(FeaturesParams())
        t_feat, table = _timed(lambda: build_features(omop, cfg, threads=args.threads))

        def scan():
            con = duckdb.connect()
            con.execute(f"SET threads = {args.threads}")
            for name in REQUIRED:
                con.execute(
                    f"SELECT count(*), count(COLUMNS(*)) FROM read_parquet('{omop / name}.parquet')"
                ).fetchall()
            con.close()

        t_scan, _ = _timed(scan)
        rows = sum(summary.rows.values())
        print(
            f"patients={args.patients:,}  lines={summary.lines:,}  OMOP rows={rows:,}  "
            f"analysis rows={table.num_rows:,}  threads={args.threads}"
        )
        print()
        print(f"| {'step':<28} | {'seconds':>8} | {'patients/s':>11} | {'x baseline':>10} |")
        print(f"|{'-' * 30}|{'-' * 10}|{'-' * 13}|{'-' * 12}|")
        for name, t, base in (
            ("generate (OMOP + truth)", t_gen, t_io),
            ("  baseline: Parquet rewrite", t_io, t_io),
            ("features (DuckDB SQL)", t_feat, t_scan),
            ("  baseline: DuckDB scan", t_scan, t_scan),
        ):
            print(f"| {name:<28} | {t:>8.2f} | {args.patients / t:>11,.0f} | {t / base:>10.1f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
