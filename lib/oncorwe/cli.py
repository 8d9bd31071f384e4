"""The ``oncorwe`` command: one thin subcommand per pipeline stage.

Every subcommand validates its inputs first; a user error prints ``error: ...`` naming the
file, key or column and exits with status 2, leaving no partial output behind. An ``--out``
is claimed with :func:`oncorwe.core.io.claim_output`: a command never deletes or
overwrites a file it did not write (``--force`` writes beside such files).
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from oncorwe.core.errors import OncorweError
from oncorwe.core.io import claim_output

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ParamsOpt = Annotated[
    Path, typer.Option("--params", help="parameter file (default: the project's params.yaml)")
]
UserParamsOpt = Annotated[
    Path | None,
    typer.Option(
        "--params",
        help="parameter file, relative to the current folder (default: params.yaml of the "
        "project around the current folder; outside a project, the defaults)",
    ),
]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="write into an --out folder that holds other files, beside them: a file this "
        "command did not write is never overwritten or removed, even so",
    ),
]
_DEBUG = {"on": False}


@app.callback()
def _main(
    debug: Annotated[
        bool, typer.Option("--debug", help="show the traceback of an error (for bug reports)")
    ] = False,
) -> None:
    """oncorwe: oncology real-world evidence pipeline (run `dvc repro` for all stages)."""
    _DEBUG["on"] = debug


def _user_errors(fn):
    """A user's mistake is one paragraph and exit status 2; anything else is a bug, said
    as such in one line (exit 1), its traceback shown only with ``--debug``."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (OncorweError, FileNotFoundError, FileExistsError) as err:
            if _DEBUG["on"]:
                raise
            text = str(err)
            if isinstance(err, FileExistsError) and err.filename:
                text = f"{err.filename} already exists; expected a path that does not exist"
            typer.echo(f"error: {text}", err=True)
            raise typer.Exit(code=2) from None
        except (typer.Exit, KeyboardInterrupt):
            raise
        except Exception as err:
            if _DEBUG["on"]:
                raise
            typer.echo(
                f"error: internal failure in `oncorwe {fn.__name__.replace('_', '-')}` "
                f"({type(err).__name__}: {str(err)[:300]}); nothing was written. Please "
                "report it with the output of the same command run with --debug",
                err=True,
            )
            raise typer.Exit(code=1) from None

    return wrapper


def _log(msg: str) -> None:
    print(f"[oncorwe] {msg}", file=sys.stderr, flush=True)


def _user_params(path: Path | None):
    """The parameters a user command runs with: ``--params`` resolved against the current
    folder, else the params.yaml of the project around it, else the defaults; says which."""
    from oncorwe.pipeline.params import Params, read_params

    if path is not None:
        p = Path(path).expanduser().absolute()
        if not p.is_file():
            raise OncorweError(f"--params {path}: {p} does not exist")
    else:
        here = Path.cwd()
        p = next(
            (
                d / "params.yaml"
                for d in (here, *here.parents)
                if (d / "params.yaml").is_file() and (d / "dvc.yaml").is_file()
            ),
            None,
        )
    if p is None:
        _log("parameters: the defaults (no params.yaml in or above the current folder)")
        return Params()
    _log(f"parameters: {p}")
    return read_params(p)


@app.command()
@_user_errors
def generate(
    out: Annotated[
        Path, typer.Option(help="output folder (OMOP tables and ground truth in two sub-folders)")
    ],
    patients: Annotated[int, typer.Option(min=1, help="number of patients")] = 3000,
    seed: Annotated[int, typer.Option(min=0, help="random seed")] = 0,
    spec: Annotated[str, typer.Option(help="spec YAML path, or 'default'")] = "default",
    force: ForceOpt = False,
) -> None:
    """Draw a synthetic oncology world (OMOP tables + ground truth) from a spec."""
    from oncorwe.cohort.generator import WORLD_FOLDERS
    from oncorwe.cohort.generator import generate as _generate
    from oncorwe.cohort.spec import load_spec

    t0 = time.perf_counter()
    folder = claim_output(out, "generate", {f"{name}/" for name in WORLD_FOLDERS}, force=force)
    with folder.writing() as tmp:
        summary = _generate(load_spec(spec), patients, seed, tmp)
    _log(
        f"generated {summary.patients} patients, {summary.lines} lines in "
        f"{time.perf_counter() - t0:.1f}s -> {out}"
    )


@app.command("export-flat", epilog="Example: oncorwe export-flat --out my-flat --patients 4000")
@_user_errors
def export_flat(
    out: Annotated[Path, typer.Option(help="output folder: cohort.csv, roles.yaml, truth.json")],
    patients: Annotated[int, typer.Option(min=50, help="number of patients")] = 4000,
    seed: Annotated[int, typer.Option(min=0, help="random seed")] = 0,
    effect_hr: Annotated[
        float, typer.Option(help="planted HR of drug 2 in marker_b = 1 (1 = a null world)")
    ] = 0.35,
    params: UserParamsOpt = None,
    force: ForceOpt = False,
) -> None:
    """Write a flat cohort as analysts write them (numeric arm code, 0/1 markers, days)
    with its roles file and its planted truth: the bring-your-own example.

    The table is k-anonymous (privacy.k) on its quasi-identifiers (5-year age band; it
    has no sex, population or hospital): being synthetic, the ages of its thin bands are
    recoded into a neighbouring band (oncorwe.core.privacy.code_age_bands) rather than
    refused, and the log says which; a k no recoding reaches is refused and nothing is
    written."""
    import yaml

    from oncorwe.cohort.flat import ROLES, flat_cohort
    from oncorwe.core.privacy import AGE_BAND_YEARS, code_age_bands, require_k_anonymous

    k = _user_params(params).privacy.k
    frame = flat_cohort(patients, effect_hr=effect_hr, seed=seed)
    frame["age"], moved = code_age_bands(frame["age"], k)
    require_k_anonymous(
        frame,
        k,
        f"export-flat's cohort of {patients} patients",
        remedy="more --patients (its thin age bands are recoded already), or a smaller privacy.k",
    )
    folder = claim_output(
        out, "export-flat", {"cohort.csv", "roles.yaml", "truth.json"}, force=force
    )
    with folder.writing() as tmp:
        frame.to_csv(tmp / "cohort.csv", index=False)
        (tmp / "roles.yaml").write_text(yaml.safe_dump(ROLES, sort_keys=False))
        truth = {"treated": 2, "subgroup": {"marker_b": "positive"}, "pfs_hazard_ratio": effect_hr}
        (tmp / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    w = AGE_BAND_YEARS - 1
    recoded = "; ".join(f"ages {b}-{b + w} into {to}-{to + w}" for b, to in moved.items())
    _log(
        f"export-flat: {patients} patients, {k}-anonymous on the age band"
        + (f" ({recoded})" if recoded else "")
        + f" -> {out}"
    )


@app.command()
@_user_errors
def cohort(params: ParamsOpt = Path("params.yaml")) -> None:
    """Stage `cohort`: write data/cohort/omop (and the synthetic world's ground truth)."""
    from oncorwe.core.paths import catalog
    from oncorwe.pipeline import cohort as stage
    from oncorwe.pipeline.params import read_params
    from oncorwe.pipeline.resources import measured

    with measured("cohort", catalog()) as rec:
        metrics = stage.run(read_params(params), catalog())
        rec["rows"] = metrics.get("lines")
    _log(f"cohort: {json.dumps(metrics)}")


@app.command()
@_user_errors
def features(params: ParamsOpt = Path("params.yaml")) -> None:
    """Stage `features`: one analysis row per treated line (data/features/analysis)."""
    from oncorwe.core.paths import catalog
    from oncorwe.pipeline import features as stage
    from oncorwe.pipeline.params import read_params
    from oncorwe.pipeline.resources import measured

    t0 = time.perf_counter()
    with measured("features", catalog()) as rec:
        metrics = stage.run(read_params(params), catalog())
        rec["rows"] = metrics["lines"]
    _log(f"features: {metrics['lines']} lines in {time.perf_counter() - t0:.1f}s")


@app.command()
@_user_errors
def hypothesis(params: ParamsOpt = Path("params.yaml")) -> None:
    """Stage `hypothesis` (track 1): ranked, confirmed drug-subgroup hypotheses."""
    from oncorwe.core.paths import catalog
    from oncorwe.pipeline import hypothesis as stage
    from oncorwe.pipeline.params import read_params
    from oncorwe.pipeline.resources import measured

    with measured("hypothesis", catalog()) as rec:
        s = stage.run(read_params(params), catalog())
        rec["rows"] = s.get("n_rows")
    _log(f"hypothesis: {s['n_confirmed']} confirmed of {s['n_candidates']} candidates")


@app.command(
    epilog="Example: oncorwe discover --cohort examples/flat/cohort.csv "
    "--roles examples/flat/roles.yaml --out discovered"
)
@_user_errors
def discover(
    cohort: Annotated[
        Path, typer.Option(help="cohort table: CSV, Parquet, or a folder of Parquet")
    ],
    roles: Annotated[Path, typer.Option(help="roles file (YAML/JSON) naming the columns")],
    out: Annotated[Path, typer.Option(help="output folder (hypotheses.json, summary.json, ...)")],
    params: UserParamsOpt = None,
    force: ForceOpt = False,
) -> None:
    """Run track 1 on any cohort table described by a roles file."""
    import shutil

    from oncorwe.core.roles import load_cohort, load_roles
    from oncorwe.pipeline.hypothesis import TUNING_DB, run_hypothesis, track_config

    # no splits.parquet: it would carry the table's own (raw) patient ids
    outputs = {"hypotheses.json", "summary.json", "models/", TUNING_DB}
    folder = claim_output(out, "discover", outputs, force=force)
    r = load_roles(roles)
    r.check_for("discover", str(roles))
    frame, r = load_cohort(cohort, r)
    p = _user_params(params)
    cfg = track_config(p.hypothesis, p.compute, p.privacy.min_cell_count)
    with folder.writing() as tmp:
        if (study := folder.previous(TUNING_DB)) is not None:  # a rerun resumes its study
            shutil.copyfile(study, tmp / TUNING_DB)
        res = run_hypothesis(frame, r, cfg, tmp, splits=False)
    s = res["summary"]
    if not s["n_confirmed"]:
        for line in s.get("why_nothing", []):
            _log(f"discover: {line}")
    _log(f"discover: {s['n_confirmed']} confirmed -> {out}/hypotheses.json")


@app.command()
@_user_errors
def validation(params: ParamsOpt = Path("params.yaml")) -> None:
    """Stage `validation` (track 2): emulation, virtual trial, adaptive design, transport."""
    from oncorwe.core.paths import catalog
    from oncorwe.pipeline import validation as stage
    from oncorwe.pipeline.params import read_params
    from oncorwe.pipeline.resources import measured

    with measured("validation", catalog()) as rec:
        res = stage.run(read_params(params), catalog())
        rec["hypotheses_validated"] = len(res["hypotheses"])
    _log(f"validation: {res['n_go']} go of {len(res['hypotheses'])}")


@app.command(
    epilog="Example: oncorwe emulate --cohort examples/flat/cohort.csv "
    "--roles examples/flat/roles.yaml --out emulated"
)
@_user_errors
def emulate(
    cohort: Annotated[Path, typer.Option(help="cohort table: CSV, Parquet, or a folder")],
    roles: Annotated[Path, typer.Option(help="roles file; `treated` names the drug of interest")],
    out: Annotated[
        Path,
        typer.Option(help="output folder: emulation.json, figures and the plotly.min.js they load"),
    ],
    horizon_months: Annotated[
        float, typer.Option(help="RMST horizon, in months whatever the file's time_unit")
    ] = 12.0,
    method: Annotated[str, typer.Option(help="iptw or matching")] = "iptw",
    seed: Annotated[int, typer.Option(help="cross-fitting seed")] = 0,
    params: UserParamsOpt = None,
    force: ForceOpt = False,
) -> None:
    """Target-trial emulation of `treated` vs the comparator on any cohort table.

    A design that runs but fails its diagnostics (balance, equipoise) is blinded: the
    estimate stays in emulation.json for audit, with ``blinded: true``, and is not shown."""
    import pandas as pd

    from oncorwe.core.io import write_json
    from oncorwe.core.roles import load_cohort, load_roles
    from oncorwe.core.rules import Condition
    from oncorwe.pipeline.validation import arm_column, publish_emulation
    from oncorwe.trials.emulation import emulate as _emulate

    if not horizon_months > 0:
        raise OncorweError(f"--horizon-months {horizon_months:g}: expected a horizon > 0")
    min_cell = _user_params(params).privacy.min_cell_count
    folder = claim_output(
        out, "emulate", {"emulation.json", "km.html", "balance.html", "plotly.min.js"}, force=force
    )
    r = load_roles(roles)
    r.check_for("emulate", str(roles))
    frame, r = load_cohort(cohort, r)
    # the arms under the user's own column and codes, so that every message names them
    control = r.comparator if r.comparator is not None else "comparator"
    arm = arm_column(frame, r, r.treated).map({"treated": r.treated, "control": control})
    frame = frame.assign(**{r.treatment: arm})
    eligible = frame[r.treatment].notna().to_numpy()
    if r.eligible:
        eligible &= Condition.parse(r.eligible).mask(frame)
    covariates = [c for c in r.resolved_covariates(frame) if c != r.treatment]
    try:
        res = _emulate(
            frame,
            treatment=r.treatment,
            treated_value=r.treated,
            control_value=control,
            time=r.time,
            event=r.event,
            covariates=covariates,
            categorical=[c for c in r.resolved_categorical(frame) if c in covariates],
            response=r.response,
            groups=r.id,
            eligible=eligible,
            method=method,
            horizon_months=horizon_months,
            seed=seed,
        )
    except ValueError as err:
        raise OncorweError(f"{cohort} with {roles}: {err}") from None
    out_d = res.to_dict()
    publish_emulation(out_d, min_cell)  # counts leave only above the threshold
    out_d["time_unit"] = "months"
    blinded = bool(out_d.get("blinded", not out_d.get("diagnostics_pass", True)))
    with folder.writing() as tmp:
        write_json(tmp / "emulation.json", out_d)
        from oncorwe.report.figures import balance_plot, km_plot

        if not blinded:  # the curves are the finding: a blinded design does not show them
            km = {a: (v["times"], v["survival"]) for a, v in out_d["km"].items()}
            km_plot(km, title=f"Weighted Kaplan-Meier: {r.treated} vs {control}").write_html(
                tmp / "km.html", include_plotlyjs="directory"
            )
        balance_plot(pd.DataFrame(out_d["balance"])).write_html(
            tmp / "balance.html", include_plotlyjs="directory"
        )
    if blinded:
        reason = out_d.get("blinded_reason") or "; ".join(out_d.get("diagnostic_reasons", []))
        _log(f"emulate: blinded: {reason} -> {out} (estimate kept for audit only)")
        return
    _log(
        f"emulate: HR {out_d['hazard_ratio']:.3f} [{out_d['ci_low']:.3f}, "
        f"{out_d['ci_high']:.3f}] (times in months) -> {out}"
    )


@app.command(
    epilog="Example: oncorwe transport --train examples/flat/cohort.csv "
    "--test examples/flat/cohort.csv --roles examples/flat/roles.yaml --out transported"
)
@_user_errors
def transport(
    train: Annotated[Path, typer.Option(help="development cohort table")],
    test: Annotated[Path, typer.Option(help="validation cohort table (same columns)")],
    roles: Annotated[Path, typer.Option(help="roles file (id, time + event required)")],
    out: Annotated[Path, typer.Option(help="output folder: transport.json")],
    horizon_months: Annotated[
        float, typer.Option(help="calibration horizon, in months whatever the time_unit")
    ] = 12.0,
    model: Annotated[str, typer.Option(help="cox (lifelines Cox PH), xgboost, or both")] = "cox",
    force: ForceOpt = False,
) -> None:
    """Develop a PFS model on one cohort, validate it on another (C, calibration).

    transport.json holds the first model's C index, calibration slope, calibration in the
    large and observed / predicted risk at the horizon at its top level (cox, unless
    --model xgboost), and every model's under ``models``."""
    from oncorwe.core.io import write_json
    from oncorwe.core.roles import check_same_coding, load_cohort, load_roles
    from oncorwe.trials.transport import transport_models

    names = {"cox": ("cox",), "xgboost": ("xgboost",), "both": ("cox", "xgboost")}
    if model not in names:
        raise OncorweError(f"--model {model}: expected one of {sorted(names)}")
    if not horizon_months > 0:
        raise OncorweError(f"--horizon-months {horizon_months:g}: expected a horizon > 0")
    folder = claim_output(out, "transport", {"transport.json"}, force=force)
    r = load_roles(roles)
    r.check_for("transport", str(roles))
    (a, r), (b, _) = load_cohort(train, r), load_cohort(test, r)
    # a prognostic model: neither the treatment nor the population it is moved across
    skip = {r.treatment, r.population}
    covariates = [c for c in r.resolved_covariates(a) if c not in skip]
    check_same_coding(a, b, covariates, (str(train), str(test)))
    try:
        res = transport_models(
            a,
            b,
            models=names[model],
            time=r.time,
            event=r.event,
            covariates=covariates,
            categorical=[c for c in r.resolved_categorical(a) if c in covariates],
            horizon_months=horizon_months,
            groups=r.id,
        )
    except ValueError as err:
        raise OncorweError(f"transport of {train} to {test}: {err}") from None
    first = res[names[model][0]]
    payload = {
        **first.to_dict(),
        "time_unit": "months",
        "models": {k: v.to_dict() for k, v in res.items()},
    }
    with folder.writing() as tmp:
        write_json(tmp / "transport.json", payload)
    for k, v in res.items():
        _log(f"transport: {k}: C {v.c_index:.3f}, slope {v.calibration_slope:.2f}")
    _log(f"transport -> {out}")


@app.command("trial-sim")
@_user_errors
def trial_sim(
    design: Annotated[
        Path, typer.Option("--design", help="trial design YAML (see examples/trial_design.yaml)")
    ],
    out: Annotated[Path, typer.Option("--out", help="output folder; trial.json is written there")],
    cohort: Annotated[
        Path | None,
        typer.Option(
            "--cohort",
            help="outcomes.source model: the real-world patients (CSV, Parquet or a folder "
            "of Parquet) whose eligible rows are resampled as virtual patients",
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="outcomes.source model: a saved model with the treatment among its "
            "features, e.g. data/hypothesis/models/pfs.json",
        ),
    ] = None,
    force: ForceOpt = False,
) -> None:
    """Simulate a trial design file: power, events, HR distribution, beside the formulas."""
    from oncorwe.core.io import write_json
    from oncorwe.core.roles import read_table
    from oncorwe.models.estimators import load_estimator
    from oncorwe.trials.design_file import ModelOutcomes, load_design, run_design

    t0 = time.perf_counter()
    folder = claim_output(out, "trial-sim", {"trial.json"}, force=force)
    spec = load_design(design)
    outcomes = None
    if spec.outcomes.source == "model":
        if cohort is None or model is None:
            raise OncorweError(
                f"{design}: outcomes.source model needs --cohort (the patients) and "
                "--model (the fitted model)"
            )
        table, fitted = read_table(cohort), load_estimator(model)  # their errors name them
        try:
            outcomes = ModelOutcomes.from_design(spec, table, fitted)
        except (OncorweError, ValueError) as err:  # cohort, model and design do not fit
            raise OncorweError(
                f"{design} with --cohort {cohort} and --model {model}: {err}"
            ) from err
    elif cohort is not None or model is not None:
        raise OncorweError(
            f"{design}: outcomes.source is parametric; --cohort and --model are used only "
            "with source model"
        )
    try:
        res = run_design(spec, model_outcomes=outcomes)
    except OncorweError as err:  # e.g. a target_power no N reaches: say which file
        raise OncorweError(f"{design}: {err}") from err
    with folder.writing() as tmp:
        write_json(tmp / "trial.json", res)
    for warning in res["warnings"]:
        _log(f"trial-sim: warning: {warning}")
    formula = res["formula_power"]
    _log(
        f"trial-sim: {spec.name}: power {res['power']:.3f}"
        + (f" (formula {formula:.3f})" if formula is not None else "")
        + f" at N={res['n_patients']}, {res['n_replicates']} trials in "
        f"{time.perf_counter() - t0:.1f}s -> {out / 'trial.json'}"
    )


@app.command("check-params")
@_user_errors
def check_params(params: UserParamsOpt = None) -> None:
    """Validate params.yaml (and the spec it names) and print the resolved values."""
    from oncorwe.cohort.spec import load_spec

    p = _user_params(params)
    if p.cohort.source == "synthetic":
        spec = p.cohort.spec
        load_spec(spec if spec == "default" else _spec_path(spec, params))
    typer.echo(json.dumps(p.model_dump(mode="json"), indent=2))


def _spec_path(spec: str, params: Path | None) -> Path:
    """A spec named in a params file, relative to that file's project."""
    from oncorwe.core.paths import resolve

    if params is not None and not Path(spec).is_absolute():
        return Path(params).expanduser().absolute().parent / spec
    return resolve(spec)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
