"""A tuning process killed in the middle of a trial: the trial it left ``RUNNING`` is
failed when the study is loaded again, it is not counted, and the resumed study ends with
the trials an uninterrupted run would have had (same settings, same scores, same best)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap

import numpy as np
import optuna
import pandas as pd
import pytest

from oncorwe.models.estimators import ResponseClassifier
from oncorwe.models.tuning import HOST_ATTR, PID_ATTR, fail_stale_trials, tune

RUNNING = optuna.trial.TrialState.RUNNING
COMPLETE = optuna.trial.TrialState.COMPLETE
FAIL = optuna.trial.TrialState.FAIL
N_TRIALS = 6
SEED = 7

# tunes like the parent, but its third fit (trial 2) says so and waits to be killed
KILLED_TUNER = textwrap.dedent(
    """
    import sys, time
    import numpy as np, pandas as pd
    import oncorwe.models.tuning as tuning
    from oncorwe.models.estimators import ResponseClassifier

    data, db, pruning, n_trials, seed = sys.argv[1:]
    d = np.load(data)
    X = pd.DataFrame(d["X"], columns=[f"x{i}" for i in range(d["X"].shape[1])])
    fit, calls = tuning._fit, []

    def fit_then_hang_in_trial_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            print("in trial 2", flush=True)
            time.sleep(300)
        return fit(*args, **kwargs)

    tuning._fit = fit_then_hang_in_trial_2
    base = ResponseClassifier(
        n_estimators=60, early_stopping_rounds=10 if pruning == "1" else None,
        n_jobs=1, device="cpu", random_state=0,
    )
    tuning.tune(base, X, d["y"], d["g"], n_trials=int(n_trials), timeout_s=300,
                storage=db, study_name="s", seed=int(seed))
    """
)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    n = 800
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=[f"x{i}" for i in range(4)])
    lp = 1.0 * X["x0"] - 0.7 * X["x1"] + 0.5 * X["x2"] * X["x3"]
    y = (rng.random(n) < 1 / (1 + np.exp(-lp))).astype(int)
    groups = rng.integers(0, n // 2, size=n)
    return X, y, groups


def _base(pruning: bool) -> ResponseClassifier:
    return ResponseClassifier(
        n_estimators=60,
        early_stopping_rounds=10 if pruning else None,
        n_jobs=1,
        device="cpu",
        random_state=0,
    )


def _tune(data, db, pruning: bool, n_trials: int = N_TRIALS):
    X, y, g = data
    return tune(
        _base(pruning), X, y, g, n_trials=n_trials, timeout_s=300, storage=db,
        study_name="s", seed=SEED,
    )  # fmt: skip


def _finished(study) -> list[tuple]:
    """What a trial decided: its settings, state and score, in order (failed ones left out)."""
    return [(t.params, t.state, t.value) for t in study.trials if t.state != FAIL]


def _kill_in_trial_2(data, tmp_path, db, pruning: bool) -> None:
    X, y, g = data
    np.savez(tmp_path / "data.npz", X=X.to_numpy(), y=y, g=g)
    args = [str(tmp_path / "data.npz"), str(db), "1" if pruning else "0", str(N_TRIALS), str(SEED)]
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_TUNER, *args], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "in trial 2"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    d = tmp_path_factory.mktemp("uninterrupted")
    return {p: _tune(data, d / f"{p}.db", p) for p in (False, True)}


@pytest.mark.parametrize("pruning", [False, True], ids=["no-pruning", "pruning"])
def test_a_study_killed_mid_trial_resumes_to_the_uninterrupted_result(
    data, tmp_path, uninterrupted, pruning
):
    db = tmp_path / "study.db"
    _kill_in_trial_2(data, tmp_path, db, pruning)
    left = optuna.load_study(study_name="s", storage=f"sqlite:///{db}")
    assert [t.state for t in left.trials][2:] == [RUNNING]  # what the kill left
    assert left.trials[2].user_attrs[PID_ATTR] != os.getpid()

    best, study = _tune(data, db, pruning)
    states = [t.state for t in study.trials]
    assert RUNNING not in states
    assert states[2] == FAIL and states.count(FAIL) == 1
    assert len(study.trials) == N_TRIALS + 1  # the failed one and the requested ones
    best0, study0 = uninterrupted[pruning]
    if not pruning:
        assert states.count(COMPLETE) == N_TRIALS
    assert _finished(study) == _finished(study0)
    assert best == best0 == study.best_params
    # and nothing is left to do: a third run adds no trial
    _, again = _tune(data, db, pruning)
    assert len(again.trials) == N_TRIALS + 1


def test_a_resumed_study_does_not_repeat_the_settings_of_its_first_trials(data, tmp_path):
    _tune(data, tmp_path / "s.db", False, n_trials=3)
    _, study = _tune(data, tmp_path / "s.db", False, n_trials=6)
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(params)) == 6


def test_only_trials_of_ended_processes_are_failed(tmp_path):
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}")
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    here = socket.gethostname()
    owners = {
        "ended": {PID_ATTR: ended.pid, HOST_ATTR: here},
        "this process": {PID_ATTR: os.getpid(), HOST_ATTR: here},
        "another machine's": {PID_ATTR: ended.pid, HOST_ATTR: here + "-elsewhere"},
        "nobody, just started": {},
    }
    for attrs in owners.values():
        trial = study.ask()
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
    assert fail_stale_trials(study) == [0]
    assert [t.state for t in study.trials] == [FAIL, RUNNING, RUNNING, RUNNING]
    # a trial that names no process is stale once it is older than a tuner takes to name one
    assert fail_stale_trials(study, unowned_after_s=0.0) == [3]
    assert [t.state for t in study.trials] == [FAIL, RUNNING, RUNNING, FAIL]
