"""The ``oncorwe`` command: one thin subcommand per pipeline stage.

Every subcommand validates its inputs first; a user error prints ``error: ...`` naming the
file, key or column and exits with status 2, leaving no partial output behind.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from oncorwe.errors import OncorweError

app = typer.Typer(
    help="oncorwe: oncology real-world evidence pipeline (run `dvc repro` for all stages).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ParamsOpt = Annotated[
    Path, typer.Option("--params", help="parameter file (default: the project's params.yaml)")
]


def _user_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (OncorweError, FileNotFoundError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from None

    return wrapper


def _log(msg: str) -> None:
    print(f"[oncorwe] {msg}", file=sys.stderr, flush=True)


@app.command()
@_user_errors
def generate(
    out: Annotated[
        Path, typer.Option(help="output folder (OMOP tables and ground truth in two sub-folders)")
    ],
    patients: Annotated[int, typer.Option(min=1, help="number of patients")] = 3000,
    seed: Annotated[int, typer.Option(min=0, help="random seed")] = 0,
    spec: Annotated[str, typer.Option(help="spec YAML path, or 'default'")] = "default",
) -> None:
    """Draw a synthetic oncology world (OMOP tables + ground truth) from a spec."""
    from oncorwe.cohort.generator import generate as _generate
    from oncorwe.cohort.spec import load_spec

    t0 = time.perf_counter()
    summary = _generate(load_spec(spec), patients, seed, out)
    _log(
        f"generated {summary.patients} patients, {summary.lines} lines in "
        f"{time.perf_counter() - t0:.1f}s -> {out}"
    )


@app.command()
@_user_errors
def cohort(params: ParamsOpt = Path("params.yaml")) -> None:
    """Stage `cohort`: write data/cohort/omop (and the synthetic world's ground truth)."""
    from oncorwe.cohort.sources import run_cohort_stage
    from oncorwe.config import read_params

    p = read_params(params)
    metrics = run_cohort_stage(p.cohort, p.privacy.min_cell_count)
    _log(f"cohort: {json.dumps(metrics)}")


@app.command()
@_user_errors
def features(params: ParamsOpt = Path("params.yaml")) -> None:
    """Stage `features`: one analysis row per treated line (data/features/analysis)."""
    from oncorwe.config import read_params
    from oncorwe.features.build import run_feature_stage
    from oncorwe.paths import resolve

    p = read_params(params)
    t0 = time.perf_counter()
    metrics = run_feature_stage(
        resolve("data/cohort/omop"),
        resolve("data/features/analysis"),
        resolve("metrics/features.json"),
        p.features.feature_config(),
        p.privacy.min_cell_count,
        threads=p.compute.threads,
    )
    _log(f"features: {metrics['lines']} lines in {time.perf_counter() - t0:.1f}s")


@app.command()
@_user_errors
def hypothesis(params: ParamsOpt = Path("params.yaml")) -> None:
    """Stage `hypothesis` (track 1): ranked, confirmed drug-subgroup hypotheses."""
    from oncorwe.cohort.roles import read_table, roles_for_analysis_table
    from oncorwe.config import read_params
    from oncorwe.hypothesis import run_hypothesis
    from oncorwe.paths import resolve

    p = read_params(params)
    analysis = resolve("data/features/analysis")
    roles = roles_for_analysis_table(analysis)
    frame = read_table(analysis)
    cfg = p.compute.track_config(p.hypothesis, p.privacy.min_cell_count)
    res = run_hypothesis(frame, roles, cfg, resolve("data/hypothesis"))
    from oncorwe.io import write_json

    s = res["summary"]
    write_json(
        resolve("metrics/hypothesis.json"),
        {
            "n_candidates": s["n_candidates"],
            "n_confirmed": s["n_confirmed"],
            "response_auc": s["models"].get("response", {}).get("overall", {}).get("auc"),
            "toxicity_auc": s["models"].get("toxicity", {}).get("overall", {}).get("auc"),
            "pfs_c_index": s["models"].get("pfs", {}).get("overall", {}).get("c_index"),
            "seconds": s["seconds"],
        },
    )
    _log(f"hypothesis: {s['n_confirmed']} confirmed of {s['n_candidates']} candidates")


@app.command()
@_user_errors
def discover(
    cohort: Annotated[
        Path, typer.Option(help="cohort table: CSV, Parquet, or a folder of Parquet")
    ],
    roles: Annotated[Path, typer.Option(help="roles file (YAML/JSON) naming the columns")],
    out: Annotated[Path, typer.Option(help="output folder (hypotheses.json, summary.json, ...)")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Run track 1 on any cohort table described by a roles file."""
    from oncorwe.cohort.roles import load_cohort, load_roles
    from oncorwe.config import Params, read_params
    from oncorwe.hypothesis import run_hypothesis

    r = load_roles(roles)
    frame = load_cohort(cohort, r)
    # outside a project (no params.yaml here) the defaults apply
    p = read_params(params) if params.is_file() or params != Path("params.yaml") else Params()
    cfg = p.compute.track_config(p.hypothesis, p.privacy.min_cell_count)
    res = run_hypothesis(frame, r, cfg, out)
    _log(f"discover: {res['summary']['n_confirmed']} confirmed -> {out}/hypotheses.json")


@app.command("check-params")
@_user_errors
def check_params(params: ParamsOpt = Path("params.yaml")) -> None:
    """Validate params.yaml (and the spec it names) and print the resolved values."""
    from oncorwe.cohort.spec import load_spec
    from oncorwe.config import read_params
    from oncorwe.paths import resolve

    p = read_params(params)
    if p.cohort.source == "synthetic":
        spec = p.cohort.spec
        load_spec(spec if spec == "default" else resolve(spec))
    typer.echo(json.dumps(p.model_dump(mode="json"), indent=2))


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
