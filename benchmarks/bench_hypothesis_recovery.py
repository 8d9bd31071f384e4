"""Track 1 against the generator's truth: recall, precision, rank, coverage, null-world FPR.

    python benchmarks/bench_hypothesis_recovery.py --patients 200000 --seeds 1
    python benchmarks/bench_hypothesis_recovery.py --patients 200000 --seeds 3 --first-seed 2
    python benchmarks/bench_hypothesis_recovery.py --patients 4960000 --cancers ovarian
    python benchmarks/bench_hypothesis_recovery.py --patients 20000 --null-seeds 20

For each planted world: draw it, build the analysis table, run track 1 with the project's
params.yaml (``hypothesis`` section), then match the confirmed hypotheses to the planted
rules (same drug, overlapping subgroup, right direction) and check whether each matched
hypothesis' confidence interval covers the true subgroup effect computed from the
potential outcomes. For each null world (no planted effects), count whether anything was
confirmed. Prints tables; the figures in issue notes come from here.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from oncorwe.cohort.generator import generate
from oncorwe.cohort.spec import load_spec
from oncorwe.cohort.truth import Truth, evaluate
from oncorwe.core.roles import read_table, roles_for_analysis_table
from oncorwe.features.build import build_features, pseudonym_key, write_features
from oncorwe.pipeline.features import feature_config
from oncorwe.pipeline.hypothesis import run_hypothesis, track_config
from oncorwe.pipeline.params import read_params


def run_world(spec, n: int, seed: int, work: Path, threads: int, params_path=None, cancers=None):
    params = read_params(params_path)
    fcfg = feature_config(params.features)
    w = work / f"w{seed}"
    peak = {}  # this process' peak RSS so far after each step (GB): what set the peak
    generate(spec, n, seed, w)
    peak["world"] = _peak_rss_gb()
    write_features(build_features(w / "omop", fcfg), w / "analysis", fcfg)
    peak["features"] = _peak_rss_gb()
    roles = roles_for_analysis_table(w / "analysis")
    frame = read_table(w / "analysis")
    peak["table read"] = _peak_rss_gb()
    if cancers:  # track 1 on these cancer types only (a larger world at the same cost)
        frame = frame[frame["cancer"].isin(cancers)].reset_index(drop=True)
    compute = params.compute.model_copy(update={"threads": threads})
    hp = params.hypothesis.model_copy(
        update={"split": params.hypothesis.split.model_copy(update={"seed": seed})}
    )
    cfg = track_config(hp, compute, params.privacy.min_cell_count)
    t0 = time.perf_counter()
    res = run_hypothesis(frame, roles, cfg, w / "hypothesis")
    secs = time.perf_counter() - t0
    peak["track 1"] = _peak_rss_gb()
    truth = Truth.load(w, pseudonym_key(fcfg.pseudonym_key_env), cancers=cancers)
    ev = evaluate(res, truth, horizon=cfg.horizon_months)
    if cancers:
        kept = {
            e.name
            for e in spec.planted_effects
            if set(_as_list(e.when.get("cancer"))) & set(cancers)
        }
        ev["rules"] = [r for r in ev["rules"] if r["rule"] in kept]
        eligible = [r for r in ev["rules"] if r["eligible"]]
        ev["recall"] = sum(r["recovered"] for r in eligible) / max(1, len(eligible))
    shutil.rmtree(w, ignore_errors=True)
    return res, ev, secs, peak


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux


def _as_list(v) -> list:
    return [] if v is None else (list(v) if isinstance(v, list | tuple) else [v])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=200_000)
    ap.add_argument("--seeds", type=int, default=1, help="planted worlds")
    ap.add_argument("--first-seed", type=int, default=1, help="seed of the first planted world")
    ap.add_argument("--null-seeds", type=int, default=0, help="null worlds")
    ap.add_argument("--null-patients", type=int, default=None)
    ap.add_argument("--null-first-seed", type=int, default=1001)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--params", type=Path, default=None, help="a params.yaml (default: the project's)"
    )
    ap.add_argument(
        "--cancers", default=None, help="comma-separated: run track 1 on these cancer types only"
    )
    args = ap.parse_args()
    cancers = args.cancers.split(",") if args.cancers else None
    work = Path(tempfile.mkdtemp(prefix="oncorwe-recovery-"))
    spec = load_spec()
    covered, matched_total = 0, 0
    try:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            res, ev, secs, peak = run_world(
                spec, args.patients, seed, work, args.threads, args.params, cancers
            )
            print(f"\n## planted world, {args.patients:,} patients, seed {seed} ({secs:.0f} s)")
            print(
                f"recall {ev['recall']:.2f}  precision {ev['precision']}  confirmed {ev['n_confirmed']}"
            )
            steps = ", ".join(f"{k} {v:.1f}" for k, v in peak.items())
            print(f"peak RSS of this process so far, GB, after each step: {steps}")
            print(
                f"\n| {'planted rule':<36} | share of cancer | recovered | best rank "
                "| listed not testable |"
            )
            print(f"|{'-' * 38}|-----------------|-----------|-----------|---------------------|")
            for r in ev["rules"]:
                flag = "" if r["eligible"] else " (<2%)"
                print(
                    f"| {r['rule']:<36} | {r['share_of_cancer']:>14.3f}{flag:>1} | "
                    f"{'yes' if r['recovered'] else 'no':>9} | {str(r['rank'] or '-'):>9} | "
                    f"{'yes' if r['not_testable'] else '':>19} |"
                )
            print(f"\n| {'confirmed hypothesis':<60} | primary | estimate [CI] | truth | covered |")
            print(f"|{'-' * 62}|---------|---------------|-------|---------|")
            for h in ev["hypotheses"]:
                e = h["effects"][h["primary"]]
                label = f"{h['drug']}: {h['subgroup']}"[:60]
                ok = "yes" if e["covered"] else "NO"
                tag = "" if h["matches"] else " (unmatched)"
                print(
                    f"| {label:<60} | {h['primary']:<7} | [{e['ci_low']:.3f}, {e['ci_high']:.3f}] | "
                    f"{e['true']:.3f} | {ok}{tag} |"
                )
                if h["matches"]:
                    matched_total += 1
                    covered += e["covered"]
        if args.seeds:
            print(
                f"\ncoverage of matched confirmed hypotheses (primary endpoint): "
                f"{covered}/{matched_total}"
            )
        if args.null_seeds:
            null = spec.model_copy(update={"planted_effects": []})
            n = args.null_patients or args.patients
            hits = 0
            print(f"\n## null worlds, {n:,} patients each")
            print("| seed | candidates | confirmed |")
            print("|------|------------|-----------|")
            for seed in range(args.null_first_seed, args.null_first_seed + args.null_seeds):
                res, ev, secs, _ = run_world(null, n, seed, work, args.threads, args.params)
                k = res["summary"]["n_confirmed"]
                hits += k > 0
                print(f"| {seed} | {res['summary']['n_candidates']} | {k} |")
                for h in res["hypotheses"]:  # each confirmation here is a false one
                    if not h.confirmed:
                        continue
                    c = h.confirmation[h.primary]
                    print(
                        f"|  | {h.drug}: {h.condition.describe()} | {h.primary} "
                        f"{c['effect']:.3f} [{c['ci_low']:.3f}, {c['ci_high']:.3f}], "
                        f"q {c['q_value']:.3g} |"
                    )
            print(f"\nnull worlds with any confirmed hypothesis: {hits}/{args.null_seeds}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
