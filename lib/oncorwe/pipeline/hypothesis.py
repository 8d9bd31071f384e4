"""Track 1, hypothesis generation: from a cohort table to ranked, explained hypotheses.

:func:`run_hypothesis` is what the ``hypothesis`` stage and ``oncorwe discover`` call:

1. split the rows by patient into discovery, confirmation and validation parts (the
   validation part is left untouched for track 2);
2. fit the response models (binary response, PFS with ``survival:cox``, toxicity), tuned
   with optuna on the discovery part, evaluated on the confirmation part overall, per
   population and per hospital;
3. screen candidate subgroups for every drug against its comparator on the discovery
   part and confirm them on the confirmation part (:mod:`oncorwe.effects.discovery`);
4. explain: TreeSHAP of the response models on a stratified sample, and of an
   effect model (the doubly robust learner's second stage, tuned on the held-out DR loss)
   for each hypothesis;
5. audit: representation of drugs, populations and hospitals, model performance and
   calibration per group, and each hypothesis' effect per population.

Everything it writes is aggregate: counts under the suppression threshold are removed.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oncorwe.audit import effect_by_group, to_records
from oncorwe.cohort.splits import assign_splits
from oncorwe.core.errors import OncorweError
from oncorwe.core.io import atomic_path, write_json
from oncorwe.core.privacy import DEFAULT_MIN_CELL, suppress
from oncorwe.core.roles import Roles
from oncorwe.effects.discovery import (
    DiscoveryConfig,
    Hypothesis,
    OutcomeData,
    PartAnalysis,
    confirm,
    discover,
    feature_frame,
    ipcw_rmst,
)
from oncorwe.effects.metalearners import dr_pseudo_outcome_loss
from oncorwe.models.estimators import OutcomeRegressor, ResponseClassifier, SurvivalModel
from oncorwe.models.metrics import binary_metrics, harrell_c, metrics_by_group
from oncorwe.models.tuning import tune


@dataclass
class TrackConfig:
    """Everything track 1 needs beyond the data (from ``params.yaml`` ``hypothesis``)."""

    fractions: dict[str, float]
    split_seed: int = 0
    horizon_months: float = 12.0
    discovery: DiscoveryConfig | None = None
    tuning_trials: int = 8
    tuning_timeout_s: float = 60.0
    shap_rows: int = 2000
    min_cell: int = DEFAULT_MIN_CELL
    device: str = "auto"
    threads: int = 2
    model_params: dict[str, Any] | None = None
    training: str = "pooled"  # pooled | federated | dask (response models)
    cluster: str = "local"
    federated: Any = None  # config.FederatedComputeParams


def _log(msg: str) -> None:
    print(f"[oncorwe] {msg}", flush=True)


def _outcomes(frame: pd.DataFrame, roles: Roles, horizon: float) -> list[OutcomeData]:
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
def fit_response_models(
    disc: pd.DataFrame,
    conf: pd.DataFrame,
    roles: Roles,
    covariates: list[str],
    cfg: TrackConfig,
    tuning_db: Path | None,
    trainer: Any = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit (tuned) response / PFS / toxicity models; evaluate them on ``conf``.

    With a ``trainer`` (``compute.training`` federated or dask) the models train through
    it, with fixed moderate hyperparameters (no pooled tuning: the rows are not in one
    place). Returns the fitted models and their metrics (overall, per population, per
    hospital).
    """
    if trainer is not None:
        return _fit_response_models_distributed(disc, conf, roles, covariates, cfg, trainer)
    models: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    X_cols = [*covariates, roles.treatment]
    base_kw = dict(
        n_estimators=400,
        early_stopping_rounds=30,
        device=cfg.device,
        n_jobs=cfg.threads,
        random_state=cfg.split_seed,
    )
    Xd = feature_frame(disc, X_cols)
    Xc = feature_frame(conf, X_cols)
    gd = disc[roles.id].to_numpy()
    groups_conf = {
        k: conf[c].astype(str).to_numpy()
        for k, c in (("population", roles.population), ("hospital", roles.hospital))
        if c
    }
    tasks = []
    if roles.response:
        tasks.append(("response", roles.response))
    if roles.toxicity:
        tasks.append(("toxicity", roles.toxicity))
    # tuning runs on at most TUNE_ROWS rows (whole patients); the final fit uses them all
    sub = _tuning_rows(gd, cfg.split_seed)
    tag = study_key(disc, roles, covariates, cfg)
    for name, col in tasks:
        ok_d, ok_c = disc[col].notna().to_numpy(), conf[col].notna().to_numpy()
        y = disc.loc[ok_d, col].to_numpy(int)
        base = ResponseClassifier(**base_kw)
        t_rows = ok_d & sub
        best, study = tune(
            base,
            Xd[t_rows],
            disc.loc[t_rows, col].to_numpy(int),
            gd[t_rows],
            n_trials=cfg.tuning_trials,
            timeout_s=cfg.tuning_timeout_s,
            storage=tuning_db,
            study_name=f"{name}_model_{tag}",
            seed=cfg.split_seed,
        )
        model = base.set_params(**best).fit(Xd[ok_d], y, groups=gd[ok_d])
        p = model.predict_proba(Xc[ok_c])[:, 1]
        yc = conf.loc[ok_c, col].to_numpy(int)
        metrics[name] = {
            "overall": {k: float(v) for k, v in binary_metrics(yc, p).items()},
            "n_trials": len(study.trials),
            "best_params": best,
            **{
                f"by_{k}": _records(metrics_by_group(yc, p, g[ok_c], min_cell=cfg.min_cell))
                for k, g in groups_conf.items()
            },
        }
        models[name] = model
    if roles.time:
        ev_d = disc[roles.event].to_numpy(int)
        t_d = disc[roles.time].to_numpy(float)
        base = SurvivalModel(objective="cox", baseline_min_events=cfg.min_cell, **base_kw)
        best, study = tune(
            base,
            Xd[sub],
            (ev_d[sub], t_d[sub]),
            gd[sub],
            n_trials=cfg.tuning_trials,
            timeout_s=cfg.tuning_timeout_s,
            storage=tuning_db,
            study_name=f"pfs_model_{tag}",
            seed=cfg.split_seed,
        )
        model = base.set_params(**best).fit(Xd, ev_d, t_d, groups=gd)
        risk = model.predict_risk(Xc)
        ev_c, t_c = conf[roles.event].to_numpy(int), conf[roles.time].to_numpy(float)
        by = {}
        for k, g in groups_conf.items():
            rows = []
            for level in sorted(set(g)):
                m = g == level
                n = int(m.sum())
                rows.append(
                    {
                        "group": level,
                        "n": suppress(n, cfg.min_cell),
                        "c_index": float(harrell_c(ev_c[m], t_c[m], risk[m]))
                        if n >= cfg.min_cell and ev_c[m].sum() > 1
                        else None,
                    }
                )
            by[f"by_{k}"] = rows
        metrics["pfs"] = {
            "overall": {"c_index": float(harrell_c(ev_c, t_c, risk))},
            "n_trials": len(study.trials),
            "best_params": best,
            **by,
        }
        models["pfs"] = model
    return models, metrics


def _group_metrics(conf: pd.DataFrame, roles: Roles, cfg: TrackConfig, y, score, binary: bool):
    """Metrics per population and hospital on the confirmation part."""
    out = {}
    for k, c in (("population", roles.population), ("hospital", roles.hospital)):
        if not c:
            continue
        g = conf[c].astype(str).to_numpy()
        if binary:
            out[f"by_{k}"] = _records(metrics_by_group(y, score, g, min_cell=cfg.min_cell))
            continue
        ev, t = y
        rows = []
        for level in sorted(set(g)):
            m = g == level
            n = int(m.sum())
            ok = n >= cfg.min_cell and ev[m].sum() > 1
            rows.append(
                {
                    "group": level,
                    "n": suppress(n, cfg.min_cell),
                    "c_index": float(harrell_c(ev[m], t[m], score[m])) if ok else None,
                }
            )
        out[f"by_{k}"] = rows
    return out


def sketch_contract(trainer: Any, frame: pd.DataFrame, roles: Roles, covariates: list[str]):
    """One binning contract for every model of the stage (covariates, the treatment and
    the survival time grid), agreed from the sites' suppressed summaries of ``frame``."""
    feats = list(dict.fromkeys([*covariates, roles.treatment]))
    sketch = feature_frame(frame, feats).assign(
        **{roles.hospital: frame[roles.hospital].astype(str).to_numpy()}
    )
    if roles.time:
        sketch[roles.time] = frame[roles.time].to_numpy(float)
    return trainer.sketch(sketch, feats, time_column=roles.time)


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
            **_group_metrics(conf.loc[ok], roles, cfg, y, p, True),
        }
        models[name] = model
    if roles.time:
        model = trainer.fit(
            "cox", disc, features=X_cols, label=(roles.event, roles.time), params=params
        )
        risk = model.predict_risk(Xc)
        ev, t = conf[roles.event].to_numpy(int), conf[roles.time].to_numpy(float)
        metrics["pfs"] = {
            "overall": {"c_index": float(harrell_c(ev, t, risk))},
            "backend": cfg.training,
            **_group_metrics(conf, roles, cfg, (ev, t), risk, False),
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
    on a rare effect). With a ``trainer`` (and each row's site in ``sites``) every fit
    goes through it, without row subsampling.
    """
    from oncorwe.models.estimators import grouped_validation_split

    ok = ~np.isnan(psi)
    if ok.sum() < 200:
        return None, {}
    Xo, yo, go = X[ok], psi[ok], groups[ok]
    tr, va = grouped_validation_split(len(yo), go, validation_fraction=0.3, random_state=seed)
    losses = {
        "zero": dr_pseudo_outcome_loss(yo[va], np.zeros(len(va))),
        "mean": dr_pseudo_outcome_loss(yo[va], np.full(len(va), yo[tr].mean())),
    }
    best, best_loss = None, np.inf
    if trainer is not None:
        F = Xo.assign(**{trainer.site_column: np.asarray(sites)[ok], "_psi": yo})

        def fit(rows, prm):
            return trainer.fit(
                "regression", F.iloc[rows], features=list(X.columns), label="_psi", params=prm
            )

        for depth in (1, 2, 3):
            for mcw in (50.0, 200.0):
                prm = {
                    "n_estimators": 60,
                    "learning_rate": 0.1,
                    "max_depth": depth,
                    "min_child_weight": mcw,
                    "reg_lambda": 50.0,
                    "n_jobs": 1,
                    "random_state": seed,
                }
                loss = dr_pseudo_outcome_loss(yo[va], fit(tr, prm).predict(Xo.iloc[va]))
                losses[f"depth{depth}_mcw{int(mcw)}"] = loss
                if loss < best_loss:
                    best, best_loss = prm, loss
        return fit(np.arange(len(yo)), best), {k: float(v) for k, v in losses.items()}
    for depth in (1, 2, 3):
        for mcw in (50.0, 200.0):
            m = OutcomeRegressor(
                n_estimators=60,
                learning_rate=0.1,
                max_depth=depth,
                min_child_weight=mcw,
                reg_lambda=50.0,
                subsample=0.8,
                colsample_bytree=0.8,
                n_jobs=threads,
                device=device,
                random_state=seed,
            ).fit(Xo.iloc[tr], yo[tr])
            loss = dr_pseudo_outcome_loss(yo[va], m.predict(Xo.iloc[va]))
            losses[f"depth{depth}_mcw{int(mcw)}"] = loss
            if loss < best_loss:
                best, best_loss = m.get_params(), loss
    model = OutcomeRegressor(**best).fit(Xo, yo)
    return model, {k: float(v) for k, v in losses.items()}


# ------------------------------------------------------------------ the track
TUNING_DB = "tuning.db"  # the optuna study, inside the output folder


def run_hypothesis(
    frame: pd.DataFrame, roles: Roles, cfg: TrackConfig, out_dir: str | Path
) -> dict:
    """Run track 1 on a validated cohort table and write its outputs to ``out_dir``.

    Writes ``hypotheses.json`` (ranked), ``models/`` (response models), ``splits.parquet``
    (patient id -> part, for track 2) and ``summary.json`` (metrics, SHAP, audit inputs).
    Every model (response, nuisance, effect) trains where ``cfg.training`` says: in this
    process (pooled), or through one federated session or Dask client for the stage.
    Returns the summary.

    The optuna study is part of the output (``tuning.db``): a rerun onto the same output
    with the same data and settings reuses it (a study is keyed by :func:`study_key`), and
    while the run lasts it lives in a private temporary folder, removed whatever happens,
    so a failed run leaves no study behind.
    """
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="oncorwe-tuning-") as work:
        tuning_db = Path(work) / TUNING_DB
        if (out_dir / TUNING_DB).is_file():
            shutil.copyfile(out_dir / TUNING_DB, tuning_db)
        with track_trainer(cfg, frame, roles) as trainer:
            return _run_hypothesis(frame, roles, cfg, out_dir, trainer, tuning_db)


def track_trainer(cfg: Any, frame: pd.DataFrame, roles: Roles):
    """The stage trainer of a track (``cfg.training``, ``cluster``, ``federated``,
    ``min_cell``): None for pooled; one site per hospital of ``frame``."""
    from oncorwe.compute.trainer import stage_trainer

    sites = frame[roles.hospital].astype(str).unique() if roles.hospital else None
    return stage_trainer(
        cfg.training,
        sites=sites,
        site_column=roles.hospital,
        cluster=cfg.cluster,
        federated_params=cfg.federated,
        min_cell=cfg.min_cell,
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
    """Where a stage's models trained, how many went through its trainer, how long."""
    return {
        "backend": backend,
        "models_through_trainer": 0 if trainer is None else trainer.n_models,
        "training_seconds": None if trainer is None else round(trainer.seconds, 1),
    }


def _check_horizon(frame: pd.DataFrame, roles: Roles, horizon: float) -> None:
    """Refuse a PFS horizon past the longest follow-up: the RMST difference to it would be
    an extrapolation of Kaplan-Meier curves that have ended (a 12-month horizon on a file
    whose times were days read as months was one)."""
    if not roles.time or len(frame) == 0:
        return
    longest = float(frame[roles.time].max())
    if horizon > longest:
        raise OncorweError(
            f"hypothesis.horizon_months {horizon:g} (the PFS RMST horizon) is beyond the "
            f"longest follow-up in column {roles.time!r} ({longest:.3g} months, "
            f"roles.time_unit converted); choose a horizon <= {longest:.3g} in the params file"
        )


def _run_hypothesis(
    frame: pd.DataFrame,
    roles: Roles,
    cfg: TrackConfig,
    out_dir: Path,
    trainer: Any,
    tuning_db: Path,
) -> dict:
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    # a copy: the caller's configuration is never mutated
    base = cfg.discovery or DiscoveryConfig()
    dcfg = replace(
        base,
        subgroup_cuts={**base.subgroup_cuts, **roles.subgroup_cuts},
        model_params={**(cfg.model_params or {}), "device": cfg.device},
        threads=cfg.threads,
    )
    frame = frame.reset_index(drop=True)
    if roles.eligible:
        from oncorwe.core.rules import Condition

        frame = frame[Condition.parse(roles.eligible).mask(frame)].reset_index(drop=True)
    _check_horizon(frame, roles, cfg.horizon_months)
    part = assign_splits(frame[roles.id], cfg.fractions, seed=cfg.split_seed)
    covariates = roles.resolved_covariates(frame)
    nuis_cov = [
        *covariates,
        *([roles.hospital] if roles.hospital and roles.hospital not in covariates else []),
    ]
    group_col = roles.stratum[0] if roles.stratum else None
    fields = roles.resolved_subgroups(frame)
    comparator = roles.comparator_of(frame)

    disc_i, conf_i = np.flatnonzero(part == "discovery"), np.flatnonzero(part == "confirmation")
    disc, conf = (
        frame.iloc[disc_i].reset_index(drop=True),
        frame.iloc[conf_i].reset_index(drop=True),
    )
    _log(f"hypothesis: {len(frame)} rows -> discovery {len(disc)}, confirmation {len(conf)}")

    if trainer is not None:
        sketch_contract(trainer, pd.concat([disc, conf], ignore_index=True), roles, nuis_cov)
    models, model_metrics = fit_response_models(
        disc, conf, roles, covariates, cfg, tuning_db, trainer
    )
    _log(f"hypothesis: response models in {time.perf_counter() - t0:.0f}s")

    common = dict(
        treatment=roles.treatment,
        group_col=group_col,
        strata=list(roles.stratum),
        covariates=nuis_cov,
        id_col=roles.id,
        cfg=dcfg,
        trainer=trainer,
        site_col=roles.hospital if trainer is not None else None,
    )
    pa_disc = PartAnalysis(
        disc,
        comparator=comparator.iloc[disc_i],
        outcomes=_outcomes(disc, roles, cfg.horizon_months),
        **common,
    )
    # the confirmation part's nuisances depend on discovery only through which drugs are
    # compared; building them first lets selection skip rules it could not estimate
    pa_conf = PartAnalysis(
        conf,
        comparator=comparator.iloc[conf_i],
        outcomes=_outcomes(conf, roles, cfg.horizon_months),
        drugs_by_group=pa_disc.drugs_by_group,
        **common,
    )
    untestable: list = []
    screen: dict[str, Any] = {}
    candidates = discover(
        pa_disc,
        group_col=group_col,
        fields=fields,
        cfg=dcfg,
        confirm_part=pa_conf,
        untestable=untestable,
        screen=screen,
    )
    _log(
        f"hypothesis: {len(candidates)} candidates after discovery ({time.perf_counter() - t0:.0f}s)"
    )
    overlap = overlap_summary(pa_disc, pa_conf, dcfg, cfg.min_cell)
    hyps = confirm(candidates, pa_conf, cfg=dcfg, alpha=0.05)
    _log(
        f"hypothesis: {sum(h.confirmed for h in hyps)} confirmed ({time.perf_counter() - t0:.0f}s)"
    )
    for h in hyps:
        if h.blinded:
            # the log names the subgroup and the failed diagnostic, never its estimate
            _log(f"hypothesis: blinded {h.drug} in {h.condition.describe()}: {h.blinded}")

    # explanations: effect models per comparison, SHAP for each hypothesis
    X_disc = feature_frame(disc, covariates)
    X_conf = feature_frame(conf, covariates)
    effect_models: dict[tuple[str, str, str], tuple[Any, dict]] = {}
    effect_dist: list[dict[str, Any]] = []
    for h in hyps:
        comp_d = pa_disc.comparison(h.group, h.drug)
        comp_c = pa_conf.comparison(h.group, h.drug)
        name = h.primary or "response"
        key = (h.group, h.drug, name)
        if key not in effect_models and comp_d is not None and name in comp_d.psi:
            rows = np.flatnonzero(comp_d.rows)
            effect_models[key] = effect_model(
                X_disc.iloc[rows],
                comp_d.psi[name][rows],
                pa_disc.ids[rows],
                cfg.split_seed,
                cfg.threads,
                cfg.device,
                trainer=trainer,
                sites=(
                    None
                    if trainer is None
                    else pa_disc.frame[roles.hospital].astype(str).to_numpy()[rows]
                ),
            )
            model = effect_models[key][0]
            if model is not None and comp_c is not None:
                cate = model.predict(X_conf.iloc[np.flatnonzero(comp_c.rows)])
                counts, edges = np.histogram(cate, bins=20)
                effect_dist.append(
                    {
                        "group": h.group,
                        "drug": h.drug,
                        "outcome": name,
                        "bin_edges": [float(x) for x in edges],
                        "counts": [suppress(int(c), cfg.min_cell) for c in counts],
                    }
                )
        model, losses = effect_models.get(key, (None, {}))
        h.extras["effect_model_dr_loss"] = losses
        mask = None
        if comp_c is not None:
            mask = comp_c.rows & h.condition.mask(pa_conf.frame)
            h.extras["overlap"] = comp_c.overlap(dcfg.overlap_warn, mask, cfg.min_cell)
        if model is not None and mask is not None and mask.any():
            rows = np.flatnonzero(mask)
            rng = np.random.default_rng(cfg.split_seed)
            rows = np.sort(rng.choice(rows, size=min(len(rows), cfg.shap_rows), replace=False))
            contrib = model.shap_values(X_conf.iloc[rows]).drop(columns="bias")
            mean = contrib.mean()
            top = mean.abs().sort_values(ascending=False).head(5)
            h.extras["top_features"] = [
                {"feature": f, "mean_shap_on_effect": float(mean[f])} for f in top.index
            ]
        # effect by population within the subgroup (bias audit): the audit's estimator,
        # cluster-robust by patient, with Cochran's Q across populations
        if roles.population and comp_c is not None and mask is not None and name in comp_c.psi:
            psi = comp_c.psi[name]
            rows = mask & ~np.isnan(psi)
            het = effect_by_group(
                psi[rows],
                {"population": pa_conf.frame[roles.population].astype(str).to_numpy()[rows]},
                min_cell=max(cfg.min_cell, 30),
                cluster=pa_conf.ids[rows],
            )
            h.extras["effect_by_population"] = [
                {
                    "population": g["group"],
                    "n": g["n"],
                    "effect": g["effect"],
                    "ci_low": g["ci_low"],
                    "ci_high": g["ci_high"],
                }
                for g in to_records(het.groups)
            ]
            h.extras["population_heterogeneity"] = to_records(het.tests)
        # counts leave only above the suppression threshold
        for k in ("n_treated", "n_control"):
            if k in h.extras:
                h.extras[k] = suppress(h.extras[k], cfg.min_cell)
        for block in (h.discovery, h.confirmation):
            for res in block.values():
                if "n" in res:
                    res["n"] = suppress(res["n"], cfg.min_cell)

    ranked = rank(hyps)
    shap_models = {}
    strata_col = group_col or roles.treatment
    X_cols = [*covariates, roles.treatment]
    Xc_full = feature_frame(conf, X_cols)
    for name, model in models.items():
        shap_models[name] = shap_summary(
            model, Xc_full, conf[strata_col].astype(str).to_numpy(), cfg.shap_rows, cfg.split_seed
        )[:20]

    n_confirmed = sum(h.confirmed for h in hyps)
    report = screen_report(
        disc, roles, group_col, fields, screen, dcfg, cfg.min_cell, comparator.iloc[disc_i]
    )
    summary = {
        "why_nothing": (
            []
            if n_confirmed
            else why_nothing(
                report,
                len(pa_disc.comparisons),
                len(candidates),
                sum(h.blinded is not None for h in hyps),
            )
        ),
        "n_rows": suppress(len(frame), cfg.min_cell),
        "parts": {k: suppress(int((part == k).sum()), cfg.min_cell) for k in cfg.fractions},
        "n_candidates": len(candidates),
        "n_not_testable": len(untestable),
        "n_confirmed": sum(h.confirmed for h in hyps),
        "n_blinded": sum(h.blinded is not None for h in hyps),
        "comparisons": [{"group": c.group, "drug": c.drug} for c in pa_disc.comparisons],
        "screen": report,
        "overlap": {"eps": dcfg.eps, "warn_share": dcfg.overlap_warn, "comparisons": overlap},
        "models": model_metrics,
        "shap": shap_models,
        "effect_distribution": effect_dist,
        "horizon_months": cfg.horizon_months,
        "training": training_summary(cfg.training, trainer),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        (tmp / "models").mkdir()
        for name, model in models.items():
            # an estimator also writes <name>.features.json (load_estimator reads both);
            # a federated / Dask TrainedModel writes its own format
            model.save(tmp / "models" / f"{name}.json")
        pd.DataFrame(
            {"id": frame[roles.id].astype(str), "part": part}
        ).drop_duplicates().to_parquet(tmp / "splits.parquet", index=False)
        write_json(
            tmp / "hypotheses.json",
            {
                "hypotheses": ranked,
                "not_testable": not_testable(untestable, dcfg.min_arm_rows, cfg.min_cell),
                "horizon_months": cfg.horizon_months,
                "endpoints": {
                    "response": "risk difference (drug - comparator)",
                    "pfs": f"RMST difference to {cfg.horizon_months:g} months (months, + = longer PFS)",
                    "toxicity": "risk difference of grade >= 3 AE (+ = more toxic)",
                },
            },
        )
        write_json(tmp / "summary.json", summary)
        if tuning_db.is_file():
            shutil.copyfile(tuning_db, tmp / TUNING_DB)
    return {
        "summary": summary,
        "hypotheses": hyps,
        "not_testable": untestable,
        "parts": part,
        "confirmation": pa_conf,
    }


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
    arms = []
    for g in sorted(set(groups)):
        in_g = groups == g
        counts = pd.Series(treat[in_g & ~is_ctl]).value_counts()
        arms.append(
            {
                "group": g,
                "comparator_rows": suppress(int((in_g & is_ctl).sum()), min_cell),
                "treatments": {str(k): suppress(int(v), min_cell) for k, v in counts.items()},
            }
        )
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
                entry[name] = comp.overlap(dcfg.overlap_warn, min_cell=min_cell)
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
