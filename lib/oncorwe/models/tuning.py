"""optuna tuning of the XGBoost estimators on a grouped validation split.

The study lives in a SQLite file, so an interrupted tuning resumes where it stopped
(``load_if_exists``); ``n_trials`` counts the trials already in the study (finished or
pruned). TPE sampling with a fixed seed. Trials are scored on a validation part split by
patient: log-loss for binary models, ``1 - Harrell's C`` for survival models.

Pruning: a trial reports its early-stopping validation loss every ``PRUNE_EVERY`` boosting
rounds, and optuna's median pruner stops it when that loss is worse than the median of
earlier trials at the same round (after ``PRUNE_STARTUP`` complete trials and
``PRUNE_WARMUP`` rounds), so hopeless settings stop early and the time budget buys more
trials.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from sklearn.base import clone

from oncorwe.models.estimators import SurvivalModel, grouped_validation_split
from oncorwe.models.metrics import harrell_c

PRUNE_EVERY = 10
PRUNE_STARTUP = 3
PRUNE_WARMUP = 20

SPACE = {
    "max_depth": ("int", 2, 7),
    "learning_rate": ("float_log", 0.02, 0.3),
    "min_child_weight": ("float_log", 1.0, 100.0),
    "subsample": ("float", 0.6, 1.0),
    "colsample_bytree": ("float", 0.5, 1.0),
    "reg_lambda": ("float_log", 0.1, 50.0),
}


def _suggest(trial: optuna.Trial) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (kind, lo, hi) in SPACE.items():
        if kind == "int":
            out[name] = trial.suggest_int(name, lo, hi)
        elif kind == "float_log":
            out[name] = trial.suggest_float(name, lo, hi, log=True)
        else:
            out[name] = trial.suggest_float(name, lo, hi)
    return out


def pruning_callback(trial: optuna.Trial, every: int = PRUNE_EVERY):
    """An XGBoost callback that reports the validation loss to ``trial`` every ``every``
    rounds and raises ``optuna.TrialPruned`` when the study's pruner says so."""
    import xgboost as xgb

    class Pruning(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log) -> bool:  # noqa: ANN001
            if epoch % every or "validation" not in evals_log:
                return False
            history = next(iter(evals_log["validation"].values()))
            trial.report(float(history[-1]), step=int(epoch))
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at boosting round {epoch}")
            return False

    return Pruning()


def _loss(model, X_va, y_va) -> float:
    if isinstance(model, SurvivalModel):
        event, time = y_va
        return 1.0 - harrell_c(event, time, model.predict_risk(X_va))
    p = np.clip(model.predict_proba(X_va)[:, 1], 1e-6, 1 - 1e-6)
    return float(-np.mean(y_va * np.log(p) + (1 - y_va) * np.log(1 - p)))


def _fit(model, X, y, groups):
    if isinstance(model, SurvivalModel):
        event, time = y
        return model.fit(X, event, time, groups=groups)
    return model.fit(X, y, groups=groups)


def _take(y, idx):
    if isinstance(y, tuple):
        return tuple(np.asarray(v)[idx] for v in y)
    return np.asarray(y)[idx]


def tune(
    base,
    X: pd.DataFrame,
    y,
    groups: np.ndarray,
    *,
    n_trials: int,
    timeout_s: float,
    storage: str | Path | None,
    study_name: str,
    seed: int = 0,
) -> tuple[dict[str, Any], optuna.Study]:
    """Tune ``base`` (an oncorwe estimator) and return the best parameters and the study.

    Parameters
    ----------
    base : ResponseClassifier or SurvivalModel
        Its other hyperparameters stay fixed; early stopping picks ``n_estimators``.
    y : ndarray (n,) or tuple (event, time)
    groups : ndarray (n,)
        Patient ids: the validation part holds whole patients.
    n_trials : int
        Total trials wanted in the study (resumed and pruned trials count); 0 skips
        tuning. Pruning needs ``base.early_stopping_rounds`` (its validation loss is
        what a trial reports).
    timeout_s : float
        Wall-clock budget for this call.
    storage : path or None
        SQLite file for the study (None: in memory).
    """
    optuna.logging.set_verbosity(logging.WARNING)
    url = None
    if storage is not None:
        Path(storage).parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{Path(storage).resolve()}"
    study = optuna.create_study(
        study_name=study_name,
        storage=url,
        load_if_exists=True,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=PRUNE_STARTUP, n_warmup_steps=PRUNE_WARMUP
        ),
    )
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    done = len([t for t in study.trials if t.state in finished])
    todo = max(0, n_trials - done)
    tr, va = grouped_validation_split(len(X), groups, validation_fraction=0.25, random_state=seed)
    X_tr, X_va = X.iloc[tr], X.iloc[va]
    y_tr, y_va = _take(y, tr), _take(y, va)

    def objective(trial: optuna.Trial) -> float:
        model = clone(base).set_params(**_suggest(trial), callbacks=[pruning_callback(trial)])
        model = _fit(model, X_tr, y_tr, np.asarray(groups)[tr])
        return _loss(model, X_va, y_va)

    if todo:
        study.optimize(objective, n_trials=todo, timeout=timeout_s, gc_after_trial=False)
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = study.best_params if completed else {}
    return best, study
