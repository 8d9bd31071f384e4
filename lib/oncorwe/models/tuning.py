"""optuna tuning of the XGBoost estimators on a grouped validation split.

The study lives in a SQLite file, so an interrupted tuning resumes where it stopped
(``load_if_exists``); ``n_trials`` counts the trials already in the study that finished
(complete or pruned). A trial that a killed process left ``RUNNING`` is marked ``FAIL``
when the study is loaded (:func:`fail_stale_trials`): it is not counted, and TPE ignores
it, so the resumed study runs the trials still missing. TPE sampling is seeded per
trial, from the seed and the number of trials finished before it, so a resumed study
samples what an uninterrupted one would have (one seed for the whole call would restart
its random stream on every resume, and the first resumed trials would repeat the first
trials' settings). Trials are scored on a validation part split by patient: log-loss for
binary models, ``1 - Harrell's C`` for survival models.

Pruning: a trial reports its early-stopping validation loss every ``PRUNE_EVERY`` boosting
rounds, and optuna's median pruner stops it when that loss is worse than the median of
earlier trials at the same round (after ``PRUNE_STARTUP`` complete trials and
``PRUNE_WARMUP`` rounds), so hopeless settings stop early and the time budget buys more
trials.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from sklearn.base import clone

from oncorwe.core.io import process_alive
from oncorwe.models.estimators import SurvivalModel, grouped_validation_split
from oncorwe.models.metrics import harrell_c

PRUNE_EVERY = 10
PRUNE_STARTUP = 3
PRUNE_WARMUP = 20

# a trial records which process runs it (user attributes), so that a later load can tell a
# trial of a killed process from one that a live process is still running
PID_ATTR = "oncorwe_pid"
HOST_ATTR = "oncorwe_host"
UNOWNED_STALE_S = 600.0
"""A ``RUNNING`` trial that names no process is stale once it started this long ago (a
tuner records its process within milliseconds of starting a trial)."""

_FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)

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


def fail_stale_trials(
    study: optuna.Study, *, unowned_after_s: float = UNOWNED_STALE_S
) -> list[int]:
    """Mark ``FAIL`` the trials of ``study`` that a process which has ended left ``RUNNING``.

    A trial is stale when the process it names (:data:`PID_ATTR`, :data:`HOST_ATTR`) ran
    on this machine and is gone, or when it names none and started more than
    ``unowned_after_s`` seconds ago. A trial of a live process, or of another machine
    (whose processes cannot be seen from here), is left running.

    Returns
    -------
    list of int
        The numbers of the trials marked ``FAIL``.
    """
    host = socket.gethostname()
    now = datetime.datetime.now()
    stale = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid = t.user_attrs.get(PID_ATTR)
        if pid is None:
            started = t.datetime_start
            dead = started is None or (now - started).total_seconds() > unowned_after_s
        else:
            dead = t.user_attrs.get(HOST_ATTR) == host and not process_alive(int(pid))
        if dead:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            stale.append(t.number)
    if stale:
        logging.getLogger(__name__).warning(
            "study %s: trials %s were left running by a process that has ended; marked FAIL",
            study.study_name,
            stale,
        )
    return stale


def _sampler(seed: int, n_finished: int) -> optuna.samplers.TPESampler:
    """The TPE sampler of the trial that follows ``n_finished`` finished trials."""
    state = np.random.SeedSequence([seed, n_finished]).generate_state(1)[0]
    return optuna.samplers.TPESampler(seed=int(state))


def n_finished(study: optuna.Study) -> int:
    """The study's finished trials (complete or pruned): what a tuning budget counts and
    a report shows; failed trials, and trials a killed process left running, are not."""
    return len(study.get_trials(deepcopy=False, states=_FINISHED))


def tune(
    base,
    X: pd.DataFrame,
    y,
    groups: np.ndarray,
    *,
    n_trials: int,
    timeout_s: float | None = None,
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
        Total finished trials wanted in the study (resumed and pruned trials count,
        trials that failed or that a killed process left running do not); 0 skips
        tuning. Pruning needs ``base.early_stopping_rounds`` (its validation loss is
        what a trial reports).
    timeout_s : float, optional
        A wall-clock budget for this call, opt-in: with one, how many trials run depends
        on the machine's speed, and two runs of the same inputs may tune differently.
        Default: none (the budget is ``n_trials``).
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
        sampler=_sampler(seed, 0),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=PRUNE_STARTUP, n_warmup_steps=PRUNE_WARMUP
        ),
    )
    fail_stale_trials(study)
    todo = max(0, n_trials - n_finished(study))
    tr, va = grouped_validation_split(len(X), groups, validation_fraction=0.25, random_state=seed)
    X_tr, X_va = X.iloc[tr], X.iloc[va]
    y_tr, y_va = _take(y, tr), _take(y, va)

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr(PID_ATTR, os.getpid())
        trial.set_user_attr(HOST_ATTR, socket.gethostname())
        model = clone(base).set_params(**_suggest(trial), callbacks=[pruning_callback(trial)])
        model = _fit(model, X_tr, y_tr, np.asarray(groups)[tr])
        return _loss(model, X_va, y_va)

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    for _ in range(todo):  # one trial at a time: each gets its own seeded sampler
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        study.sampler = _sampler(seed, n_finished(study))
        study.optimize(objective, n_trials=1, timeout=left, gc_after_trial=False)
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = study.best_params if completed else {}
    return best, study
