"""Track 1, hypothesis generation: from a cohort table to ranked, explained hypotheses.

:func:`run_hypothesis` is what the ``hypothesis`` stage and ``oncorwe discover`` call;
its steps, each one function, in the order it runs them:

1. :func:`split_parts`: split the eligible rows by patient into discovery, confirmation
   and validation parts (the validation part is left untouched for track 2);
2. :func:`fit_response_models`: the response models (binary response, PFS with
   ``survival:cox``, toxicity), tuned with optuna on the discovery part, evaluated on
   the confirmation part overall, per population and per hospital;
3. :func:`part_analyses` and :func:`discover_and_confirm`: the nuisance models of each
   part; candidate subgroups for every drug against its comparator screened on the
   discovery part and confirmed on the confirmation part
   (:mod:`oncorwe.effects.discovery`);
4. :func:`explain_hypotheses` and :func:`response_model_shap`: TreeSHAP of the response
   models on a stratified sample, and of an effect model (the doubly robust learner's
   second stage, tuned on the held-out DR loss) for each hypothesis, with each
   hypothesis' effect per population (the bias audit);
5. :func:`suppress_hypothesis_counts`, :func:`rank`, :func:`track_summary` and
   :func:`write_track_outputs`: small counts withheld, hypotheses ranked, the summary
   (screen, overlap, model metrics per group, SHAP, effect distributions) and the
   files, written at once.

Everything it writes is aggregate: counts under the suppression threshold are removed.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oncorwe.audit import effect_by_group, to_records
from oncorwe.cohort.splits import assign_splits
from oncorwe.compute.crossfit import OutcomeData
from oncorwe.core.errors import OncorweError
from oncorwe.core.io import atomic_path, scratch_beside, write_json
from oncorwe.core.paths import Catalog
from oncorwe.core.privacy import (
    DEFAULT_MIN_CELL,
    Sum,
    suppress,
    suppress_records,
    suppress_related,
    suppressed_label,
)
from oncorwe.core.roles import Roles, horizon_refusal, read_table, roles_for_analysis_table
from oncorwe.effects.discovery import (
    SAFETY,
    DiscoveryConfig,
    Hypothesis,
    PartAnalysis,
    confirm,
    confirm_safety,
    discover,
    ipcw_rmst,
)
from oncorwe.effects.metalearners import dr_pseudo_outcome_loss
from oncorwe.models.encoding import feature_frame
from oncorwe.models.estimators import ResponseClassifier, SurvivalModel
from oncorwe.models.metrics import (
    binary_metrics,
    calibration_bins,
    metrics_by_group,
    roc_points,
    survival_metrics,
)
from oncorwe.models.tuning import n_finished, tune
from oncorwe.pipeline.params import ComputeParams, HypothesisParams, Params


@dataclass(frozen=True)
class TrackConfig:
    """Everything track 1 needs beyond the data (from ``params.yaml`` ``hypothesis``)."""

    fractions: dict[str, float]
    split_seed: int = 0
    horizon_months: float = 12.0
    discovery: DiscoveryConfig | None = None
    tuning_trials: int = 8
    tuning_timeout_s: float | None = None  # opt-in: a time budget depends on the machine
    shap_rows: int = 2000
    min_cell: int = DEFAULT_MIN_CELL
    device: str = "auto"
    threads: int = 2
    model_params: dict[str, Any] | None = None
    training: str = "pooled"  # pooled | federated | dask (response models)
    cluster: str = "local"
    federated: Any = None  # config.FederatedComputeParams


def _log(msg: str) -> None:
    """One progress line on stdout, flushed: a long stage shows where it is."""
    print(f"[oncorwe] {msg}", flush=True)


def _outcomes(frame: pd.DataFrame, roles: Roles, horizon: float) -> list[OutcomeData]:
    """The endpoints the roles name, each as one number a row: response and toxicity as
    they are, PFS as its IPCW-weighted RMST to ``horizon`` (per censoring stratum when
    the roles give one), so that every endpoint is a mean an AIPW score can estimate."""
    out = []
    if roles.response:
        out.append(OutcomeData("response", frame[roles.response].to_numpy(float), True))
    if roles.time:
        strata = (
            frame.groupby(roles.censoring_strata, dropna=False, sort=False).ngroup().to_numpy()
            if roles.censoring_strata
            else None
        )
        y = ipcw_rmst(
            frame[roles.time].to_numpy(float),
            frame[roles.event].to_numpy(float),
            horizon,
            strata=strata,
        )
        out.append(OutcomeData("pfs", y, False))
    if roles.toxicity:
        out.append(OutcomeData("toxicity", frame[roles.toxicity].to_numpy(float), True))
    return out


# ------------------------------------------------------------------ response models
@dataclass(frozen=True)
class _PooledDesign:
    """What every pooled response model of a run shares.

    The design matrices of both parts (covariates and the treatment), the discovery
    part's patient ids (a patient's rows stay together in every tuning split), the rows
    tuning may use, the fixed estimator settings, and the study's storage and key.
    """

    X_disc: pd.DataFrame
    X_conf: pd.DataFrame
    groups: np.ndarray
    tune_rows: np.ndarray
    base_kw: dict[str, Any]
    storage: Path | None
    tag: str


def fit_response_models(
    disc: pd.DataFrame,
    conf: pd.DataFrame,
    roles: Roles,
    covariates: list[str],
    cfg: TrackConfig,
    tuning_db: Path | None,
    trainer: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit (tuned) response / PFS / toxicity models; evaluate them on ``conf``.

    Tuning searches over rows in one place: a trainer that does not hold them
    (``compute.training`` federated or dask) trains the models with fixed moderate
    hyperparameters instead. Returns the fitted models and their metrics (overall, per
    population, per hospital).
    """
    if not trainer.holds_rows:
        return _fit_response_models_distributed(disc, conf, roles, covariates, cfg, trainer)
    design = _pooled_design(disc, conf, roles, covariates, cfg, tuning_db)
    models: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    for name, col in (("response", roles.response), ("toxicity", roles.toxicity)):
        if col:
            models[name], metrics[name] = _fit_binary_model(
                name, col, disc, conf, roles, design, cfg
            )
    if roles.time:
        models["pfs"], metrics["pfs"] = _fit_pfs_model(disc, conf, roles, design, cfg)
    return models, metrics


def _pooled_design(
    disc: pd.DataFrame,
    conf: pd.DataFrame,
    roles: Roles,
    covariates: list[str],
    cfg: TrackConfig,
    tuning_db: Path | None,
) -> _PooledDesign:
    """Build once what the pooled models share: tuning runs on at most TUNE_ROWS rows
    (whole patients) while the final fits use them all, and every study of the run is
    keyed by :func:`study_key` so a rerun on other data never resumes a stale one."""
    X_cols = [*covariates, roles.treatment]
    gd = disc[roles.id].to_numpy()
    return _PooledDesign(
        X_disc=feature_frame(disc, X_cols),
        X_conf=feature_frame(conf, X_cols),
        groups=gd,
        tune_rows=_tuning_rows(gd, cfg.split_seed),
        base_kw=dict(
            n_estimators=400,
            early_stopping_rounds=30,
            device=cfg.device,
            n_jobs=cfg.threads,
            random_state=cfg.split_seed,
        ),
        storage=tuning_db,
        tag=study_key(disc, roles, covariates, cfg),
    )


def _tuned(base, rows: np.ndarray, y, name: str, design: _PooledDesign, cfg: TrackConfig):
    """Tune ``base`` with optuna on the discovery ``rows`` (grouped by patient), in the
    run's study storage under ``<name>_model_<key>``; returns the best parameters and
    the study (its trials are reported)."""
    return tune(
        base,
        design.X_disc[rows],
        y,
        design.groups[rows],
        n_trials=cfg.tuning_trials,
        timeout_s=cfg.tuning_timeout_s,
        storage=design.storage,
        study_name=f"{name}_model_{design.tag}",
        seed=cfg.split_seed,
    )


def _fit_binary_model(
    name: str,
    col: str,
    disc: pd.DataFrame,
    conf: pd.DataFrame,
    roles: Roles,
    design: _PooledDesign,
    cfg: TrackConfig,
) -> tuple[Any, dict[str, Any]]:
    """One binary outcome (response or toxicity): tuned on the discovery rows where it
    is known, refitted on all of them, scored on the confirmation rows where it is known
    (overall and per population and hospital)."""
    ok_d, ok_c = disc[col].notna().to_numpy(), conf[col].notna().to_numpy()
    base = ResponseClassifier(**design.base_kw)
    t_rows = ok_d & design.tune_rows
    best, study = _tuned(base, t_rows, disc.loc[t_rows, col].to_numpy(int), name, design, cfg)
    y = disc.loc[ok_d, col].to_numpy(int)
    model = base.set_params(**best).fit(design.X_disc[ok_d], y, groups=design.groups[ok_d])
    p = model.predict_proba(design.X_conf[ok_c])[:, 1]
    yc = conf.loc[ok_c, col].to_numpy(int)
    return model, {
        "overall": {k: float(v) for k, v in binary_metrics(yc, p).items()},
        # the confirmation rows' ROC curve and calibration points (rates only)
        "curves": {
            "roc": roc_points(yc, p).to_dict("list"),
            "calibration": calibration_bins(yc, p, min_cell=cfg.min_cell).to_dict("list"),
        },
        "n_trials": n_finished(study),
        "best_params": best,
        **_group_metrics(conf.loc[ok_c], roles, cfg, yc, p),
    }


def _fit_pfs_model(
    disc: pd.DataFrame, conf: pd.DataFrame, roles: Roles, design: _PooledDesign, cfg: TrackConfig
) -> tuple[Any, dict[str, Any]]:
    """The PFS model (``survival:cox``, a higher score is a higher risk): tuned and
    refitted on the discovery part, Harrell's C on the confirmation part (overall and
    per population and hospital). Its baseline hazard needs ``min_cell`` events."""
    ev_d = disc[roles.event].to_numpy(int)
    t_d = disc[roles.time].to_numpy(float)
    base = SurvivalModel(objective="cox", baseline_min_events=cfg.min_cell, **design.base_kw)
    sub = design.tune_rows
    best, study = _tuned(base, sub, (ev_d[sub], t_d[sub]), "pfs", design, cfg)
    model = base.set_params(**best).fit(design.X_disc, ev_d, t_d, groups=design.groups)
    return model, {
        **_survival_evaluation(model, design.X_conf, disc, conf, roles, cfg),
        "n_trials": n_finished(study),
        "best_params": best,
    }


def _survival_evaluation(model, X_conf, disc, conf, roles: Roles, cfg: TrackConfig):
    """The PFS model judged on the confirmation part, overall and per population and
    hospital: Harrell's C and the censoring-adjusted Uno's C, time-dependent AUC and
    integrated Brier score (:func:`~oncorwe.models.metrics.survival_metrics`; the
    censoring weights from the discovery part). Without a baseline hazard (a model of
    a distributed backend) there is no predicted S(t|x) and so no Brier score."""
    risk = model.predict_risk(X_conf)
    ev_c, t_c = conf[roles.event].to_numpy(int), conf[roles.time].to_numpy(float)
    train = disc[roles.event].to_numpy(int), disc[roles.time].to_numpy(float)
    has_baseline = getattr(model, "baseline_times_", None) is not None

    def judged(rows: np.ndarray) -> dict[str, float | None]:
        def survival(times):
            return model.predict_survival(X_conf[rows], times)

        return survival_metrics(
            *train, ev_c[rows], t_c[rows], risk[rows], survival=survival if has_baseline else None
        )

    out: dict[str, Any] = {"overall": judged(np.ones(len(conf), dtype=bool))}
    for k, c in (("population", roles.population), ("hospital", roles.hospital)):
        if not c:
            continue
        g = conf[c].astype(str).to_numpy()
        recs = []
        for level in sorted(set(g)):
            m = g == level
            ok = m.sum() >= cfg.min_cell and ev_c[m].sum() > 1
            blank = dict.fromkeys(("c_index", "uno_c", "mean_auc", "ibs"))
            recs.append(
                {
                    "group": level,
                    "n": suppress(int(m.sum()), cfg.min_cell),
                    **(judged(m) if ok else blank),
                }
            )
        out[f"by_{k}"] = suppress_group_metrics(recs, cfg.min_cell)
    return out


def _group_metrics(conf: pd.DataFrame, roles: Roles, cfg: TrackConfig, y, score):
    """A binary model's metrics per population and hospital on the confirmation part: a
    model good on average can fail one group, and the audit reads these tables."""
    out = {}
    for k, c in (("population", roles.population), ("hospital", roles.hospital)):
        if not c:
            continue
        g = conf[c].astype(str).to_numpy()
        recs = _records(metrics_by_group(y, score, g, min_cell=cfg.min_cell))
        out[f"by_{k}"] = suppress_group_metrics(recs, cfg.min_cell)
    return out


#: Metrics that give a group's event count back with its row count: the scaled Brier
#: score holds the prevalence (``1 - brier / (p (1 - p))``), O/E the observed events.
EVENT_DERIVED = ("scaled_brier", "observed_expected")


def suppress_group_metrics(records: list[dict[str, Any]], min_cell: int) -> list[dict[str, Any]]:
    """A per-group metrics table as published: a group's events are withheld when they,
    or the rows without one, are under ``min_cell`` (12 rows with 2 events shows neither
    the 2 nor the 10), with the metrics computed from them; across the groups, a second
    count is withheld where only one was (the groups' total is the part's, known)."""
    return suppress_records(
        records,
        min_cell,
        columns=["n", "events"],
        sums=[Sum("n", ("events",))],
        derived={m: "events" for m in EVENT_DERIVED},
    )


def sketch_contract(
    trainer: Any, frames: list[pd.DataFrame], roles: Roles, covariates: list[str]
) -> None:
    """One binning contract for every model of the stage (covariates, the treatment and
    the survival time grid), agreed from the sites' suppressed summaries of ``frames``.
    A trainer holding the rows has none to agree (each in-process fit bins its own), and
    the frame is not built for it."""
    if trainer.holds_rows:
        return
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    feats = list(dict.fromkeys([*covariates, roles.treatment]))
    sketch = feature_frame(frame, feats).assign(
        **{roles.hospital: frame[roles.hospital].astype(str).to_numpy()}
    )
    if roles.time:
        sketch[roles.time] = frame[roles.time].to_numpy(float)
    trainer.sketch(sketch, feats, time_column=roles.time)


def _fit_response_models_distributed(disc, conf, roles, covariates, cfg, trainer):
    """The response models through the federated or Dask trainer (no pooled tuning: the
    rows are not in one place; fixed, moderate hyperparameters)."""
    X_cols = [*covariates, roles.treatment]
    params = {
        "max_depth": 4,
        "learning_rate": 0.1,
        "n_estimators": 200,
        "min_child_weight": 5.0,
        "nthread": 1,
    }
    models, metrics = {}, {}
    Xc = feature_frame(conf, X_cols)
    for name, col in (("response", roles.response), ("toxicity", roles.toxicity)):
        if not col:
            continue
        model = trainer.fit("binary", disc, features=X_cols, label=col, params=params)
        ok = conf[col].notna().to_numpy()
        p = model.predict_proba(Xc[ok])[:, 1]
        y = conf.loc[ok, col].to_numpy(int)
        metrics[name] = {
            "overall": {k: float(v) for k, v in binary_metrics(y, p).items()},
            "backend": cfg.training,
            **_group_metrics(conf.loc[ok], roles, cfg, y, p),
        }
        models[name] = model
    if roles.time:
        model = trainer.fit(
            "cox", disc, features=X_cols, label=(roles.event, roles.time), params=params
        )
        metrics["pfs"] = {
            **_survival_evaluation(model, Xc, disc, conf, roles, cfg),
            "backend": cfg.training,
        }
        models["pfs"] = model
    return models, metrics


TUNE_ROWS = 40_000


def _tuning_rows(ids: np.ndarray, seed: int) -> np.ndarray:
    """Whole patients, about TUNE_ROWS rows, for tuning (all rows when fewer)."""
    if len(ids) <= TUNE_ROWS:
        return np.ones(len(ids), dtype=bool)
    share = TUNE_ROWS / len(ids)
    part = assign_splits(pd.Series(ids), {"tune": share, "rest": 1 - share}, seed=seed + 7)
    return part == "tune"


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """A metrics table as JSON-ready records: NumPy scalars to Python, non-finite floats
    to None (JSON has no NaN), anything else that is not plain to its string."""
    out = []
    for rec in df.reset_index().to_dict(orient="records"):
        clean = {}
        for k, v in rec.items():
            if isinstance(v, float | np.floating):
                clean[str(k)] = None if not np.isfinite(v) else float(v)
            elif isinstance(v, np.integer):
                clean[str(k)] = int(v)
            elif isinstance(v, np.bool_):
                clean[str(k)] = bool(v)
            else:
                clean[str(k)] = v if v is None or isinstance(v, str | int | bool) else str(v)
        out.append(clean)
    return out


# ------------------------------------------------------------------ explanations
def shap_summary(model, X: pd.DataFrame, strata: np.ndarray, n_rows: int, seed: int) -> list[dict]:
    """Mean |SHAP| per feature on a sample stratified by ``strata`` (e.g. cancer type)."""
    rng = np.random.default_rng(seed)
    idx = []
    levels = pd.Series(strata).value_counts()
    per = max(1, n_rows // max(1, len(levels)))
    for level in levels.index:
        rows = np.flatnonzero(strata == level)
        idx.extend(rng.choice(rows, size=min(per, len(rows)), replace=False).tolist())
    idx = np.sort(np.array(idx, dtype=int))
    contrib = model.shap_values(X.iloc[idx]).drop(columns="bias")
    imp = contrib.abs().mean().sort_values(ascending=False)
    return [{"feature": f, "mean_abs_shap": float(v)} for f, v in imp.items()]


def effect_model(
    X: pd.DataFrame,
    psi: np.ndarray,
    groups: np.ndarray,
    seed: int,
    threads: int,
    device: str,
    trainer: Any = None,
    sites: np.ndarray | None = None,
) -> tuple[Any, dict[str, float]]:
    """The DR-learner's second stage: a regularized regressor of ``psi`` on X.

    Tuned on the held-out DR pseudo-outcome loss over a small grid and compared with the
    constant-zero and constant-mean effects (an untuned deep learner does worse than zero
    on a rare effect). Every fit goes through ``trainer`` (default in this process; a
    federated or Dask one needs each row's site in ``sites``).
    """
    from oncorwe.compute.trainer import EstimatorTrainer
    from oncorwe.models.estimators import grouped_validation_split

    ok = ~np.isnan(psi)
    if ok.sum() < 200:
        return None, {}
    trainer = EstimatorTrainer() if trainer is None else trainer
    Xo, yo, go = X[ok], psi[ok], groups[ok]
    tr, va = grouped_validation_split(len(yo), go, validation_fraction=0.3, random_state=seed)
    losses = {
        "zero": dr_pseudo_outcome_loss(yo[va], np.zeros(len(va))),
        "mean": dr_pseudo_outcome_loss(yo[va], np.full(len(va), yo[tr].mean())),
    }
    F = Xo.assign(_psi=yo)
    if sites is not None and trainer.site_column not in F.columns:
        F[trainer.site_column] = np.asarray(sites)[ok]

    def fit(rows, prm):
        return trainer.fit(
            "regression", F.iloc[rows], features=list(X.columns), label="_psi", params=prm
        )

    best, best_loss = None, np.inf
    for depth in (1, 2, 3):
        for mcw in (50.0, 200.0):
            prm = {
                "n_estimators": 60,
                "learning_rate": 0.1,
                "max_depth": depth,
                "min_child_weight": mcw,
                "reg_lambda": 50.0,
                "subsample": 0.8,
                "colsample_bytree": 0.8,
                "n_jobs": threads,
                "device": device,
                "random_state": seed,
            }
            loss = dr_pseudo_outcome_loss(yo[va], fit(tr, prm).predict(Xo.iloc[va]))
            losses[f"depth{depth}_mcw{int(mcw)}"] = loss
            if loss < best_loss:
                best, best_loss = prm, loss
    return fit(np.arange(len(yo)), best), {k: float(v) for k, v in losses.items()}


# ------------------------------------------------------------------ the track
TUNING_DB = "tuning.db"  # the optuna study, inside the output folder


def run_hypothesis(
    frame: pd.DataFrame,
    roles: Roles,
    cfg: TrackConfig,
    out_dir: str | Path,
    *,
    splits: bool = True,
) -> dict:
    """Run track 1 on a validated cohort table and write its outputs to ``out_dir``.

    Writes ``hypotheses.json`` (ranked), ``models/`` (response models), ``splits.parquet``
    (patient id -> part, for track 2; only with ``splits``) and ``summary.json`` (metrics,
    SHAP, audit inputs). The splits file holds the ids as the table has them: the
    pipeline's are keyed hashes already (the feature stage), a user's own table's are
    not, so ``oncorwe discover`` writes none (nothing reads it there, and the part of
    an id is :func:`~oncorwe.cohort.splits.assign_splits` of it with the split seed).
    Every model (response, nuisance, effect) trains where ``cfg.training`` says: in this
    process (pooled), or through one federated session or Dask client for the stage.
    Returns the summary.

    The optuna study is part of the output (``tuning.db``): a rerun onto the same output
    with the same data and settings reuses it (a study is keyed by :func:`study_key`), and
    while the run lasts it lives in a private folder beside ``out_dir``
    (:func:`~oncorwe.core.io.scratch_beside`), removed when the run ends, and by the next
    write of ``out_dir`` when the run was killed.
    """
    out_dir = Path(out_dir)
    with scratch_beside(out_dir) as work:  # a killed run's is removed by the next
        tuning_db = work / TUNING_DB
        if (out_dir / TUNING_DB).is_file():
            shutil.copyfile(out_dir / TUNING_DB, tuning_db)
        with track_trainer(cfg, frame, roles) as trainer:
            return _run_hypothesis(frame, roles, cfg, out_dir, trainer, tuning_db, splits)


def track_trainer(cfg: Any, frame: pd.DataFrame, roles: Roles):
    """The stage trainer of a track (``cfg.training``, ``cluster``, ``federated``,
    ``min_cell``): None for pooled; one site per hospital of ``frame``. The binning
    contract takes ``hypothesis.nuisance.max_bin`` (it was dropped on these backends)."""
    from oncorwe.compute.trainer import stage_trainer

    sites = frame[roles.hospital].astype(str).unique() if roles.hospital else None
    return stage_trainer(
        cfg.training,
        sites=sites,
        site_column=roles.hospital,
        cluster=cfg.cluster,
        federated_params=cfg.federated,
        min_cell=cfg.min_cell,
        max_bin=int((getattr(cfg, "model_params", None) or {}).get("max_bin", 64)),
    )


def study_key(disc: pd.DataFrame, roles: Roles, covariates: list[str], cfg: Any) -> str:
    """A tuning study's key: a hash of the discovery rows (ids, treatment, outcomes and
    covariates) and the tuning settings. A resumed study must be about the same data: a
    key by row count let another cohort of the same size reuse a stale study."""
    import hashlib

    cols = [
        c
        for c in dict.fromkeys([roles.id, roles.treatment, *roles.outcome_columns(), *covariates])
        if c in disc.columns
    ]
    h = hashlib.sha256(pd.util.hash_pandas_object(disc[cols], index=False).to_numpy().tobytes())
    h.update(repr((cols, cfg.split_seed, cfg.tuning_trials, cfg.model_params)).encode())
    return h.hexdigest()[:16]


def training_summary(backend: str, trainer: Any) -> dict[str, Any]:
    """Where a stage's models trained and how many went through its trainer (the time
    they took is the stage's resource record's, never a hashed output's)."""
    return {
        "backend": backend,
        "models_through_trainer": trainer.n_models,
    }


def _check_horizon(frame: pd.DataFrame, roles: Roles, horizon: float) -> None:
    """Refuse a PFS horizon past the longest follow-up (:func:`~oncorwe.core.roles.horizon_refusal`)."""
    if not roles.time:
        return
    refusal = horizon_refusal(
        horizon,
        frame[roles.time],
        key="hypothesis.horizon_months",
        column=roles.time,
        advice=" in the params file (the PFS RMST horizon; roles.time_unit gave the months)",
    )
    if refusal:
        raise OncorweError(refusal)


@dataclass(frozen=True)
class TrackParts:
    """The eligible cohort split by patient, with the column choices every step reads.

    ``frame`` is the eligible rows (index 0..n-1) and ``part`` each row's part;
    ``disc`` and ``conf`` are the discovery and confirmation rows (positions ``disc_i``
    and ``conf_i`` in ``frame``). ``covariates`` feed the response and effect models,
    ``nuisance_covariates`` (plus the hospital) the propensity and outcome models.
    """

    frame: pd.DataFrame
    part: np.ndarray
    disc_i: np.ndarray
    conf_i: np.ndarray
    disc: pd.DataFrame
    conf: pd.DataFrame
    covariates: list[str]
    nuisance_covariates: list[str]
    group_col: str | None
    fields: list[str]
    comparator: pd.Series


@dataclass(frozen=True)
class Findings:
    """What discovery and confirmation found: the candidates that passed the screen, the
    signals the confirmation part cannot test, the screen's counts, the propensity
    overlap of each comparison, the confirmed (or not) hypotheses, and the safety
    hypotheses (subgroups where a drug raises toxicity; their own screen and BH family)."""

    candidates: list[Hypothesis]
    untestable: list[Hypothesis]
    screen: dict[str, Any]
    overlap: list[dict[str, Any]]
    hypotheses: list[Hypothesis]
    safety: list[Hypothesis] = field(default_factory=list)


def _run_hypothesis(
    frame: pd.DataFrame,
    roles: Roles,
    cfg: TrackConfig,
    out_dir: Path,
    trainer: Any,
    tuning_db: Path,
    splits: bool = True,
) -> dict:
    """Track 1's steps in order (the wiring); :func:`run_hypothesis` holds the study's
    temporary folder and the stage trainer around them."""
    t0 = time.perf_counter()
    dcfg = discovery_config(cfg, roles)
    parts = split_parts(frame, roles, cfg)
    sketch_contract(trainer, [parts.disc, parts.conf], roles, parts.nuisance_covariates)
    models, model_metrics = fit_response_models(
        parts.disc, parts.conf, roles, parts.covariates, cfg, tuning_db, trainer
    )
    _log(f"hypothesis: response models in {time.perf_counter() - t0:.0f}s")
    pa_disc, pa_conf = part_analyses(parts, roles, cfg, dcfg, trainer)
    found = discover_and_confirm(pa_disc, pa_conf, parts, dcfg, cfg.min_cell, t0)
    effect_dist = explain_hypotheses(
        found.hypotheses, pa_disc, pa_conf, parts, roles, cfg, dcfg, trainer
    )
    suppress_hypothesis_counts([*found.hypotheses, *found.safety], cfg.min_cell)
    ranked = rank(found.hypotheses)
    shap_models = response_model_shap(models, parts, roles, cfg)
    summary = track_summary(
        parts,
        roles,
        cfg,
        dcfg,
        found,
        pa_disc,
        model_metrics,
        shap_models,
        effect_dist,
        trainer,
    )
    write_track_outputs(
        Path(out_dir),
        models,
        parts,
        roles,
        {"hypotheses": ranked, "safety": rank(found.safety)},
        found.untestable,
        cfg,
        dcfg,
        summary,
        tuning_db,
        splits=splits,
    )
    return {
        "summary": summary,
        "hypotheses": found.hypotheses,
        "safety": found.safety,
        "not_testable": found.untestable,
        "parts": parts.part,
        "confirmation": pa_conf,
    }


def discovery_config(cfg: TrackConfig, roles: Roles) -> DiscoveryConfig:
    """The discovery settings of this run, a copy: the roles' subgroup cut points over the
    configured ones, and the stage's device, model parameters and threads for the
    nuisance models. The caller's configuration is never mutated."""
    base = cfg.discovery or DiscoveryConfig()
    return replace(
        base,
        subgroup_cuts={**base.subgroup_cuts, **roles.subgroup_cuts},
        model_params={**(cfg.model_params or {}), "device": cfg.device},
        threads=cfg.threads,
    )


def eligible_rows(frame: pd.DataFrame, roles: Roles) -> pd.DataFrame:
    """The rows ``roles.eligible`` admits (all when it is unset), indexed 0..n-1: every
    later step addresses rows by position."""
    frame = frame.reset_index(drop=True)
    if roles.eligible:
        from oncorwe.core.rules import Condition

        frame = frame[Condition.parse(roles.eligible).mask(frame)].reset_index(drop=True)
    return frame


def split_parts(frame: pd.DataFrame, roles: Roles, cfg: TrackConfig) -> TrackParts:
    """Split the eligible rows by patient into the parts (a patient's rows stay in one:
    a random row split would let one patient both find and confirm a subgroup) and fix
    the columns the steps use. Refuses a PFS horizon past the longest follow-up first."""
    frame = eligible_rows(frame, roles)
    _check_horizon(frame, roles, cfg.horizon_months)
    part = assign_splits(frame[roles.id], cfg.fractions, seed=cfg.split_seed)
    covariates = roles.resolved_covariates(frame)
    disc_i, conf_i = np.flatnonzero(part == "discovery"), np.flatnonzero(part == "confirmation")
    disc = frame.iloc[disc_i].reset_index(drop=True)
    conf = frame.iloc[conf_i].reset_index(drop=True)
    shown = [suppress(len(x), cfg.min_cell) for x in (frame, disc, conf)]
    label = suppressed_label(cfg.min_cell)
    rows, n_disc, n_conf = (label if v is None else v for v in shown)
    _log(f"hypothesis: {rows} rows -> discovery {n_disc}, confirmation {n_conf}")
    return TrackParts(
        frame=frame,
        part=part,
        disc_i=disc_i,
        conf_i=conf_i,
        disc=disc,
        conf=conf,
        covariates=covariates,
        nuisance_covariates=[
            *covariates,
            *([roles.hospital] if roles.hospital and roles.hospital not in covariates else []),
        ],
        group_col=roles.stratum[0] if roles.stratum else None,
        fields=roles.resolved_subgroups(frame),
        comparator=roles.comparator_of(frame),
    )


def part_analyses(
    parts: TrackParts, roles: Roles, cfg: TrackConfig, dcfg: DiscoveryConfig, trainer: Any
) -> tuple[PartAnalysis, PartAnalysis]:
    """The nuisance models (propensity, outcomes, pseudo-outcomes) of each part.

    The confirmation part's depend on discovery only through which drugs are compared;
    building them before selection lets it skip rules they could not estimate."""
    common = dict(
        treatment=roles.treatment,
        group_col=parts.group_col,
        strata=list(roles.stratum),
        covariates=parts.nuisance_covariates,
        id_col=roles.id,
        cfg=dcfg,
        trainer=trainer,
        site_col=roles.hospital,
    )
    pa_disc = PartAnalysis(
        parts.disc,
        comparator=parts.comparator.iloc[parts.disc_i],
        outcomes=_outcomes(parts.disc, roles, cfg.horizon_months),
        **common,
    )
    pa_conf = PartAnalysis(
        parts.conf,
        comparator=parts.comparator.iloc[parts.conf_i],
        outcomes=_outcomes(parts.conf, roles, cfg.horizon_months),
        drugs_by_group=pa_disc.drugs_by_group,
        **common,
    )
    return pa_disc, pa_conf


def discover_and_confirm(
    pa_disc: PartAnalysis,
    pa_conf: PartAnalysis,
    parts: TrackParts,
    dcfg: DiscoveryConfig,
    min_cell: int,
    t0: float,
) -> Findings:
    """Screen subgroups on the discovery part, check each comparison's propensity overlap
    (warning in the log where it is poor), and test the candidates on the confirmation
    part (Benjamini-Hochberg at 5 %). Discovery and confirmation never share a patient,
    so a confirmed subgroup was not chosen on the rows that confirm it."""
    untestable: list = []
    screen: dict[str, Any] = {}
    candidates = discover(
        pa_disc,
        group_col=parts.group_col,
        fields=parts.fields,
        cfg=dcfg,
        confirm_part=pa_conf,
        untestable=untestable,
        screen=screen,
    )
    _log(
        f"hypothesis: {len(candidates)} candidates after discovery ({time.perf_counter() - t0:.0f}s)"
    )
    overlap = overlap_summary(pa_disc, pa_conf, dcfg, min_cell)
    hyps = confirm(candidates, pa_conf, cfg=dcfg, alpha=0.05)
    _log(
        f"hypothesis: {sum(h.confirmed for h in hyps)} confirmed ({time.perf_counter() - t0:.0f}s)"
    )
    safety = confirm_safety(
        discover(
            pa_disc,
            group_col=parts.group_col,
            fields=parts.fields,
            cfg=dcfg,
            confirm_part=pa_conf,
            endpoints=SAFETY,
        ),
        pa_conf,
        cfg=dcfg,
        alpha=0.05,
    )
    _log(
        f"hypothesis: {sum(h.confirmed for h in safety)} of {len(safety)} safety candidates "
        f"confirmed ({time.perf_counter() - t0:.0f}s)"
    )
    for h in [*hyps, *safety]:
        if h.blinded:
            # the log names the subgroup and the failed diagnostic, never its estimate
            _log(f"hypothesis: blinded {h.drug} in {h.condition.describe()}: {h.blinded}")
    return Findings(candidates, untestable, screen, overlap, hyps, safety)


def explain_hypotheses(
    hyps: list[Hypothesis],
    pa_disc: PartAnalysis,
    pa_conf: PartAnalysis,
    parts: TrackParts,
    roles: Roles,
    cfg: TrackConfig,
    dcfg: DiscoveryConfig,
    trainer: Any,
) -> list[dict[str, Any]]:
    """Say why each hypothesis holds, in its ``extras``: the effect model's DR losses,
    the subgroup's overlap, the features the effect model leans on (SHAP) and the effect
    per population. One effect model per comparison and endpoint, fitted on discovery
    the first time a hypothesis needs it; returns their effect distributions on the
    confirmation part (one suppressed histogram each)."""
    X_disc = feature_frame(parts.disc, parts.covariates)
    X_conf = feature_frame(parts.conf, parts.covariates)
    sites = pa_disc.frame[roles.hospital].astype(str).to_numpy() if roles.hospital else None
    effect_models: dict[tuple[str, str, str], tuple[Any, dict]] = {}
    effect_dist: list[dict[str, Any]] = []
    for h in hyps:
        comp_d = pa_disc.comparison(h.group, h.drug)
        comp_c = pa_conf.comparison(h.group, h.drug)
        name = h.primary or "response"
        key = (h.group, h.drug, name)
        if key not in effect_models and comp_d is not None and name in comp_d.psi:
            effect_models[key] = fit_effect_model(
                comp_d, name, pa_disc, X_disc, sites, cfg, trainer
            )
            model = effect_models[key][0]
            if model is not None and comp_c is not None:
                effect_dist.append(
                    effect_distribution(h, name, model, comp_c, X_conf, cfg.min_cell)
                )
        model, losses = effect_models.get(key, (None, {}))
        h.extras["effect_model_dr_loss"] = losses
        mask = None
        if comp_c is not None:
            mask = comp_c.rows & h.condition.mask(pa_conf.frame)
            h.extras["overlap"] = suppress_overlap(
                comp_c.overlap(dcfg.overlap_warn, mask, cfg.min_cell), cfg.min_cell
            )
        if model is not None and mask is not None and mask.any():
            h.extras["top_features"] = effect_top_features(model, X_conf, mask, cfg)
        if roles.population and comp_c is not None and mask is not None and name in comp_c.psi:
            h.extras.update(effect_by_population_of(comp_c.psi[name], mask, pa_conf, roles, cfg))
    return effect_dist


def fit_effect_model(
    comp, name: str, pa_disc: PartAnalysis, X_disc: pd.DataFrame, sites, cfg: TrackConfig, trainer
) -> tuple[Any, dict[str, float]]:
    """The effect model of one comparison and endpoint, on its discovery rows: the
    learner sees only the part that chose the subgroups, never the one that tests them."""
    rows = np.flatnonzero(comp.rows)
    return effect_model(
        X_disc.iloc[rows],
        comp.psi[name][rows],
        pa_disc.ids[rows],
        cfg.split_seed,
        cfg.threads,
        cfg.device,
        trainer=trainer,
        sites=None if sites is None else sites[rows],
    )


def effect_distribution(
    h: Hypothesis, name: str, model, comp_c, X_conf: pd.DataFrame, min_cell: int
) -> dict[str, Any]:
    """The effect model's predicted effects on the comparison's confirmation rows, as a
    20-bin histogram whose small counts are suppressed: how the effect spreads, not who."""
    cate = model.predict(X_conf.iloc[np.flatnonzero(comp_c.rows)])
    counts, edges = np.histogram(cate, bins=20)
    # the bins sum to the comparison's confirmation rows (in the overlap summary): a
    # lone withheld bin would follow from them
    bins = {f"bin{i}": int(c) for i, c in enumerate(counts)}
    shown = suppress_related(
        {"rows": len(cate), **bins}, [Sum("rows", tuple(bins), exhaustive=True)], min_cell
    )
    return {
        "group": h.group,
        "drug": h.drug,
        "outcome": name,
        "bin_edges": [float(x) for x in edges],
        "counts": [shown[k] for k in bins],
    }


def effect_top_features(
    model, X_conf: pd.DataFrame, mask: np.ndarray, cfg: TrackConfig
) -> list[dict[str, Any]]:
    """The five features with the largest mean SHAP on the effect model within the
    subgroup's confirmation rows (a seeded sample of at most ``shap_rows``): what makes
    the drug work better or worse there."""
    rows = np.flatnonzero(mask)
    rng = np.random.default_rng(cfg.split_seed)
    rows = np.sort(rng.choice(rows, size=min(len(rows), cfg.shap_rows), replace=False))
    contrib = model.shap_values(X_conf.iloc[rows]).drop(columns="bias")
    mean = contrib.mean()
    top = mean.abs().sort_values(ascending=False).head(5)
    return [{"feature": f, "mean_shap_on_effect": float(mean[f])} for f in top.index]


def effect_by_population_of(
    psi: np.ndarray, mask: np.ndarray, pa_conf: PartAnalysis, roles: Roles, cfg: TrackConfig
) -> dict[str, Any]:
    """The bias audit of a subgroup: its effect per population (the audit's estimator,
    cluster-robust by patient, at least 30 rows a group) with Cochran's Q across them; a
    finding that holds in one population only is not a finding for all."""
    rows = mask & ~np.isnan(psi)
    het = effect_by_group(
        psi[rows],
        {"population": pa_conf.frame[roles.population].astype(str).to_numpy()[rows]},
        min_cell=max(cfg.min_cell, 30),
        cluster=pa_conf.ids[rows],
    )
    return {
        "effect_by_population": [
            {
                "population": g["group"],
                "n": g["n"],
                "effect": g["effect"],
                "ci_low": g["ci_low"],
                "ci_high": g["ci_high"],
            }
            for g in to_records(het.groups)
        ],
        "population_heterogeneity": to_records(het.tests),
    }


def suppress_hypothesis_counts(hyps: list[Hypothesis], min_cell: int) -> None:
    """Withhold every count of a hypothesis under ``min_cell`` (arm sizes, the overlap
    rows, each endpoint's n in both parts, the rows per population), and each count
    that would give a withheld one back: the arms sum to the subgroup's confirmation
    rows, the rows outside the propensity bounds and those inside to them too, and the
    populations' rows to the subgroup's."""
    for h in hyps:
        ov = h.extras.get("overlap") or {}
        counts = {k: h.extras[k] for k in ("n_treated", "n_control") if k in h.extras}
        counts.update({k: ov[k] for k in ("rows", "outside_rows") if k in ov})
        shown = suppress_related(
            counts,
            [
                Sum("rows", ("n_treated", "n_control"), exhaustive=True),
                Sum("rows", ("outside_rows",)),
            ],
            min_cell,
        )
        for k, v in shown.items():
            (ov if k in ("rows", "outside_rows") else h.extras)[k] = v
        if ov and ov.get("outside_rows") is None:
            ov["outside_share"] = None
        for block in (h.discovery, h.confirmation):
            for res in block.values():
                if "n" in res:
                    res["n"] = suppress(res["n"], min_cell)
        if "effect_by_population" in h.extras:
            h.extras["effect_by_population"] = suppress_records(
                h.extras["effect_by_population"], min_cell, columns=["n"]
            )


def response_model_shap(
    models: dict[str, Any], parts: TrackParts, roles: Roles, cfg: TrackConfig
) -> dict[str, list[dict]]:
    """The 20 features each response model leans on most (mean |SHAP| on the confirmation
    part, sampled evenly over the strata so a large cancer type does not drown the rest)."""
    strata_col = parts.group_col or roles.treatment
    X = feature_frame(parts.conf, [*parts.covariates, roles.treatment])
    strata = parts.conf[strata_col].astype(str).to_numpy()
    return {
        name: shap_summary(model, X, strata, cfg.shap_rows, cfg.split_seed)[:20]
        for name, model in models.items()
    }


def track_summary(
    parts: TrackParts,
    roles: Roles,
    cfg: TrackConfig,
    dcfg: DiscoveryConfig,
    found: Findings,
    pa_disc: PartAnalysis,
    model_metrics: dict[str, Any],
    shap_models: dict[str, Any],
    effect_dist: list[dict[str, Any]],
    trainer: Any,
) -> dict[str, Any]:
    """``summary.json``: the counts of every step (suppressed), the screen, why nothing
    was confirmed when nothing was, overlap, model metrics and SHAP, the effect
    distributions and where the models trained. Aggregates only."""
    hyps = found.hypotheses
    n_confirmed = sum(h.confirmed for h in hyps)
    n_blinded = sum(h.blinded is not None for h in hyps)
    report = screen_report(
        parts.disc,
        roles,
        parts.group_col,
        parts.fields,
        found.screen,
        dcfg,
        cfg.min_cell,
        parts.comparator.iloc[parts.disc_i],
    )
    n_comparisons, n_candidates = len(pa_disc.comparisons), len(found.candidates)
    return {
        "why_nothing": (
            [] if n_confirmed else why_nothing(report, n_comparisons, n_candidates, n_blinded)
        ),
        **part_counts(parts, cfg),
        "n_candidates": n_candidates,
        "n_not_testable": len(found.untestable),
        "n_confirmed": n_confirmed,
        "n_safety_candidates": len(found.safety),
        "n_safety_confirmed": sum(h.confirmed for h in found.safety),
        "n_blinded": n_blinded,
        "comparisons": [{"group": c.group, "drug": c.drug} for c in pa_disc.comparisons],
        "screen": report,
        "overlap": {"eps": dcfg.eps, "warn_share": dcfg.overlap_warn, "comparisons": found.overlap},
        "models": model_metrics,
        "shap": shap_models,
        "effect_distribution": effect_dist,
        "horizon_months": cfg.horizon_months,
        "training": training_summary(cfg.training, trainer),
    }


def part_counts(parts: TrackParts, cfg: TrackConfig) -> dict[str, Any]:
    """The rows and each part's rows, suppressed together: the parts sum to the rows."""
    counts = {k: int((parts.part == k).sum()) for k in cfg.fractions}
    shown = suppress_related(
        {"n_rows": len(parts.frame), **counts},
        [Sum("n_rows", tuple(counts), exhaustive=True)],
        cfg.min_cell,
    )
    return {"n_rows": shown.pop("n_rows"), "parts": shown}


def hypotheses_payload(
    ranked: dict[str, list[dict[str, Any]]],
    untestable: list[Hypothesis],
    dcfg: DiscoveryConfig,
    cfg: TrackConfig,
) -> dict[str, Any]:
    """``hypotheses.json``: the ranked efficacy hypotheses, the ranked safety hypotheses
    (``ranked["safety"]``: subgroups where a drug raises grade >= 3 toxicity, their own
    family), the signals nobody could test, and what each endpoint's effect means (its
    unit and sign), so a reader needs no other file."""
    return {
        "hypotheses": ranked["hypotheses"],
        "safety": ranked.get("safety", []),
        "not_testable": not_testable(untestable, dcfg.min_arm_rows, cfg.min_cell),
        "horizon_months": cfg.horizon_months,
        "endpoints": {
            "response": "risk difference (drug - comparator)",
            "pfs": f"RMST difference to {cfg.horizon_months:g} months (months, + = longer PFS)",
            "toxicity": "risk difference of grade >= 3 AE (+ = more toxic)",
        },
    }


def write_track_outputs(
    out_dir: Path,
    models: dict[str, Any],
    parts: TrackParts,
    roles: Roles,
    ranked: dict[str, list[dict[str, Any]]],
    untestable: list[Hypothesis],
    cfg: TrackConfig,
    dcfg: DiscoveryConfig,
    summary: dict[str, Any],
    tuning_db: Path,
    *,
    splits: bool = True,
) -> None:
    """Write the stage's outputs all at once (a failed run leaves no half folder): the
    response models, each patient's part (with ``splits``: track 2 validates on the
    untouched one),
    ``hypotheses.json``, ``summary.json`` and the tuning study a rerun resumes."""
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        (tmp / "models").mkdir()
        for name, model in models.items():
            # an estimator also writes <name>.features.json (load_estimator reads both);
            # a federated / Dask TrainedModel writes its own format
            model.save(tmp / "models" / f"{name}.json")
        if splits:
            pd.DataFrame(
                {"id": parts.frame[roles.id].astype(str), "part": parts.part}
            ).drop_duplicates().to_parquet(tmp / "splits.parquet", index=False)
        write_json(tmp / "hypotheses.json", hypotheses_payload(ranked, untestable, dcfg, cfg))
        write_json(tmp / "summary.json", summary)
        if tuning_db.is_file():
            shutil.copyfile(tuning_db, tmp / TUNING_DB)


def screen_report(
    disc: pd.DataFrame,
    roles: Roles,
    group_col: str | None,
    fields: list[str],
    screen: dict[str, Any],
    dcfg: DiscoveryConfig,
    min_cell: int,
    comparator: pd.Series,
) -> dict[str, Any]:
    """What the discovery screen looked at: the arms and their rows per stratum group
    (the comparator, then each treatment; counts under ``min_cell`` withheld), the row
    thresholds, the subgroup fields, how many rules were screened and the smallest
    discovery p-value. Reads no outcome but that p-value."""
    treat = disc[roles.treatment].astype(str).to_numpy()
    is_ctl = treat == comparator.reset_index(drop=True).astype(str).to_numpy()
    groups = disc[group_col].astype(str).to_numpy() if group_col else np.full(len(disc), "all")
    cells: dict[tuple[str, str | None], int] = {}
    for g in sorted(set(groups)):
        in_g = groups == g
        cells[(g, None)] = int((in_g & is_ctl).sum())
        for k, v in pd.Series(treat[in_g & ~is_ctl]).value_counts().items():
            cells[(g, str(k))] = int(v)
    # every discovery row is in one cell and the discovery part's rows are published:
    # a lone withheld cell would follow from them
    keys = {f"cell{i}": c for i, c in enumerate(cells)}
    shown = suppress_related(
        {"rows": len(disc), **{k: cells[c] for k, c in keys.items()}},
        [Sum("rows", tuple(keys), exhaustive=True)],
        min_cell,
    )
    value = {c: shown[k] for k, c in keys.items()}
    arms = [
        {
            "group": g,
            "comparator_rows": value[(g, None)],
            "treatments": {d: v for (gg, d), v in value.items() if gg == g and d is not None},
        }
        for g in sorted(set(groups))
    ]
    return {
        "discovery_arms": arms,
        "min_drug_rows": dcfg.min_drug_rows,
        "min_arm_rows": dcfg.min_arm_rows,
        "discovery_p": dcfg.discovery_p,
        "subgroup_fields": list(fields),
        "rules_screened": int(screen.get("rules", 0)),
        "rules_large_enough": int(screen.get("rules_large_enough", 0)),
        "min_discovery_p": screen.get("min_p"),
    }


def why_nothing(
    report: dict[str, Any], n_comparisons: int, n_candidates: int, n_blinded: int = 0
) -> list[str]:
    """Plain sentences saying why track 1 confirmed nothing, from :func:`screen_report`."""
    lines = []
    if n_comparisons == 0:
        shown = "; ".join(
            f"{a['group']}: comparator {a['comparator_rows'] or 'under the threshold'} rows, "
            + ", ".join(f"{k} {v or 'few'}" for k, v in a["treatments"].items())
            for a in report["discovery_arms"][:6]
        )
        lines.append(
            "no comparison could be formed: a treatment needs at least min_drug_rows "
            f"({report['min_drug_rows']}) discovery rows in a stratum, and so does the "
            f"comparator (discovery rows: {shown or 'none'})"
        )
    if not report["subgroup_fields"]:
        lines.append(
            "no subgroup fields: no covariate is categorical, two-valued or a small integer "
            "code; list them under roles.subgroups"
        )
    if n_comparisons and n_candidates == 0:
        p = report["min_discovery_p"]
        lines.append(
            f"{report['rules_screened']} rules screened over the fields "
            f"{report['subgroup_fields']}, {report['rules_large_enough']} with at least "
            f"min_arm_rows ({report['min_arm_rows']}) rows per arm; none passed the screen "
            f"(smallest discovery p-value {'none' if p is None else f'{p:.3g}'}, "
            f"threshold {report['discovery_p']:g})"
        )
    elif n_candidates:
        lines.append(f"{n_candidates} candidates were screened in; none was confirmed")
    if n_blinded:
        lines.append(
            f"{n_blinded} candidates were blinded: their comparison failed a diagnostic "
            "(blinded_reason in hypotheses.json); check the covariates for one that records "
            "the treatment or follows the index date"
        )
    return lines


def overlap_summary(
    pa_disc: PartAnalysis, pa_conf: PartAnalysis, dcfg: DiscoveryConfig, min_cell: int
) -> list[dict[str, Any]]:
    """Propensity overlap of each comparison in both parts; logs a warning for each one
    whose share of rows outside ``[eps, 1 - eps]`` exceeds ``overlap_warn``. There AIPW
    leans on the outcome models' extrapolation: a covariate that records the treatment
    (or comes after the index date) separates the arms and biases the effects; a drug
    given almost only on its indication leaves too few comparable patients. Each
    entry names the covariates the discovery part's propensity model leans on most
    (share of its total gain), where to look first."""
    out = []
    for c in pa_disc.comparisons:
        gain = pa_disc.propensity_gain.get(c.group, {})
        entry: dict[str, Any] = {
            "group": c.group,
            "drug": c.drug,
            "propensity_drivers": [
                {"feature": f, "gain_share": round(v, 4)} for f, v in list(gain.items())[:3]
            ],
        }
        for name, pa in (("discovery", pa_disc), ("confirmation", pa_conf)):
            comp = pa.comparison(c.group, c.drug)
            if comp is not None:
                entry[name] = suppress_overlap(
                    comp.overlap(dcfg.overlap_warn, min_cell=min_cell), min_cell
                )
        out.append(entry)
        poor = [k for k in ("discovery", "confirmation") if entry.get(k, {}).get("poor_overlap")]
        if poor:
            shares = ", ".join(
                f"{k} {entry[k]['outside_share']:.0%}"
                if entry[k]["outside_share"] is not None
                else f"{k} under {min_cell} rows"
                for k in poor
            )
            drivers = ", ".join(
                f"{d['feature']} ({d['gain_share']:.0%})" for d in entry["propensity_drivers"]
            )
            _log(
                f"hypothesis: WARNING poor overlap, {c.drug} vs comparator in {c.group}: "
                f"rows with a propensity outside [{dcfg.eps:g}, {1 - dcfg.eps:g}] ({shares}); "
                "its effects lean on extrapolation. Check the covariates for one that records "
                "the treatment or follows the index date (if none, the drug is given almost "
                f"only on indication here); the propensity model leans most on: {drivers or '-'}"
            )
    return out


def suppress_overlap(overlap: dict[str, Any], min_cell: int) -> dict[str, Any]:
    """An overlap summary (:meth:`Comparison.overlap`, counts suppressed) with the rows
    outside the propensity bounds also withheld when those inside are few (they would
    follow from the rows), and their share with them."""
    out = dict(overlap)
    out.update(
        suppress_related(
            {k: out[k] for k in ("rows", "outside_rows")},
            [Sum("rows", ("outside_rows",))],
            min_cell,
        )
    )
    if out["outside_rows"] is None:
        out["outside_share"] = None
    return out


def not_testable(hyps: list[Hypothesis], min_arm_rows: int, min_cell: int) -> list[dict[str, Any]]:
    """Signals that passed the discovery screen but that the confirmation part cannot
    test (fewer than ``min_arm_rows`` rows in an arm of the subgroup), strongest first.
    They are leads for more data, not findings: nothing was confirmed. Counts under
    ``min_cell`` are suppressed."""
    out = []
    for h in sorted(hyps, key=lambda h: -h.extras.get("_score", 0.0)):
        d = dict(h.discovery.get(h.primary or "", {}))
        if "n" in d:
            d["n"] = suppress(d["n"], min_cell)
        arms = h.extras.get("confirmation_arms", {})
        out.append(
            {
                "drug": h.drug,
                "group": h.group,
                "subgroup": h.condition.describe(),
                "conditions": h.condition.to_spec(),
                "primary_endpoint": h.primary,
                "discovery": d,
                "confirmation_arms": {k: suppress(int(v), min_cell) for k, v in arms.items()},
                "min_arm_rows": min_arm_rows,
            }
        )
    return out


def rank(hyps: list[Hypothesis]) -> list[dict[str, Any]]:
    """Confirmed first, by the strength of their primary endpoint; then the rest."""

    def strength(h: Hypothesis) -> float:
        c = h.confirmation.get(h.primary or "", {})
        if not c or not c.get("se"):
            return 0.0
        return abs(c["effect"] / c["se"])

    order = sorted(hyps, key=lambda h: (not h.confirmed, -strength(h)))
    out = []
    for i, h in enumerate(order, start=1):
        d = h.to_dict()
        d.pop("_score", None)
        d["rank"] = i
        out.append(d)
    return out


# ------------------------------------------------------------------ the stage
def track_config(hp: HypothesisParams, compute: ComputeParams, min_cell: int) -> TrackConfig:
    """Track 1's configuration, made from ``params.yaml``'s ``hypothesis`` and ``compute``
    in this one place (``hypothesis.min_arm_rows`` becomes ``DiscoveryConfig.min_arm_rows``
    here, and nowhere else)."""
    dcfg = DiscoveryConfig(
        min_effect={
            "response": hp.min_effect_response,
            "pfs": hp.min_effect_pfs_months,
            "toxicity": hp.min_effect_response,
        },
        discovery_p=hp.discovery_p,
        q=hp.q,
        min_arm_rows=hp.min_arm_rows,
        min_drug_rows=hp.min_drug_rows,
        max_candidates=hp.max_candidates,
        max_per_comparison=hp.max_per_comparison,
        pairs=hp.pairs,
        n_splits=hp.n_splits,
        seed=hp.split.seed,
    )
    return TrackConfig(
        fractions=hp.split.fractions(),
        split_seed=hp.split.seed,
        horizon_months=hp.horizon_months,
        discovery=dcfg,
        tuning_trials=hp.tuning_trials,
        tuning_timeout_s=hp.tuning_timeout_s,
        shap_rows=hp.shap_rows,
        min_cell=min_cell,
        device=hp.device,
        threads=compute.threads,
        model_params=hp.nuisance.model_dump(),
        training=compute.training,
        cluster=compute.cluster,
        federated=compute.federated,
    )


def run(params: Params, catalog: Catalog) -> dict:
    """Stage ``hypothesis``: track 1 on the analysis table; writes ``catalog.hypothesis``
    and the stage metrics (model quality and counts only). Returns the summary."""
    roles = roles_for_analysis_table(catalog.analysis)
    cfg = track_config(params.hypothesis, params.compute, params.privacy.min_cell_count)
    s = run_hypothesis(read_table(catalog.analysis), roles, cfg, catalog.hypothesis)["summary"]
    models = s["models"]
    write_json(
        catalog.metrics("hypothesis"),
        {
            "n_candidates": s["n_candidates"],
            "n_confirmed": s["n_confirmed"],
            "n_safety_confirmed": s["n_safety_confirmed"],
            "response_auc": models.get("response", {}).get("overall", {}).get("auc"),
            "toxicity_auc": models.get("toxicity", {}).get("overall", {}).get("auc"),
            "pfs_c_index": models.get("pfs", {}).get("overall", {}).get("c_index"),
            "pfs_uno_c": models.get("pfs", {}).get("overall", {}).get("uno_c"),
            "pfs_ibs": models.get("pfs", {}).get("overall", {}).get("ibs"),
        },
    )
    write_model_plots(models, catalog)
    return s


def write_model_plots(models: dict[str, Any], catalog: Catalog) -> None:
    """``dvc plots`` data of the binary models: each one's ROC curve and calibration
    points on the confirmation rows (``<model>_roc.csv``, ``<model>_calibration.csv``);
    a model trained without them (federated, Dask) writes an empty table with the
    same columns, so the stage's outputs are always there."""
    for name in ("response", "toxicity"):
        curves = models.get(name, {}).get("curves", {})
        for kind, cols in (
            ("roc", ["fpr", "tpr"]),
            ("calibration", ["predicted", "observed", "rows"]),
        ):
            frame = pd.DataFrame(curves.get(kind, {c: [] for c in cols}), columns=cols)
            path = catalog.plot(f"{name}_{kind}")
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                frame.to_csv(tmp, index=False, float_format="%.6g")
