"""A federated session: many models in one federation; the Trainer over all backends.

Parity (federated == pooled == Dask, predictions to 1e-6) is checked for the model kinds
the analyses fit through :class:`oncorwe.compute.trainer.Trainer`: multiclass propensity,
regression (a pseudo-outcome), binary, Cox; a site without rows for a model takes part
with a weight-0 placeholder row and changes nothing.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest

from oncorwe.compute.federated.server import FederatedConfig, FederatedSession, make_tls_material
from oncorwe.compute.trainer import Trainer
from oncorwe.core.errors import OncorweError
from tests.compute.federated import FEATURES, SITES, alive, synthetic_sites

PARAMS = {"n_estimators": 25, "max_depth": 3, "learning_rate": 0.3, "min_child_weight": 2.0}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    frame = synthetic_sites(n=3000, seed=4)
    rng = np.random.default_rng(4)
    # three arms whose choice depends on the covariates (a propensity model's label)
    score = 0.8 * (frame["albumin"] - 3.8) + 0.5 * (frame["stage"] == "IV")
    u = rng.random(len(frame))
    frame["arm"] = np.where(u < 0.3 + 0.2 * np.tanh(score), 0, np.where(u < 0.75, 1, 2))
    frame["pseudo"] = frame["pfs_months"].clip(upper=12) + rng.normal(0, 1, len(frame))
    tls = make_tls_material(tmp_path_factory.mktemp("tls"), list(SITES))
    cfg = FederatedConfig(tls=tls, timeout=180, heartbeat_timeout=10)
    return {"frame": frame, "cfg": cfg}


def _fits(trainer: Trainer, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Sketch on all rows; fit three kinds on a subset where site C has no rows."""
    trainer.sketch(frame, FEATURES, time_column="pfs_months")
    sub = frame[frame["site"] != "C"].reset_index(drop=True)
    arm = pd.Categorical(sub["arm"], categories=[0, 1, 2])
    with_arm = sub.assign(arm_cat=arm)
    out = {}
    m = trainer.fit("multiclass", sub, features=FEATURES, label="arm", params=PARAMS, num_class=3)
    out["multiclass"] = m.predict_proba(frame)
    m = trainer.fit(
        "regression", with_arm, features=[*FEATURES, "arm_cat"], label="pseudo", params=PARAMS
    )
    out["regression"] = m.predict(with_arm)
    m = trainer.fit("binary", frame, features=FEATURES, label="response", params=PARAMS)
    out["binary"] = m.predict_proba(frame)[:, 1]
    # Cox risk sets span the sites; site C's placeholder row must not enter them
    m = trainer.fit("cox", sub, features=FEATURES, label=("pfs_event", "pfs_months"), params=PARAMS)
    out["cox"] = m.predict_margin(frame)
    out["n_models"] = trainer.n_models
    return out


@pytest.fixture(scope="module")
def runs(data):
    frame = data["frame"]
    res = {}
    with Trainer("pooled", max_bin=32) as tr:
        res["pooled"] = _fits(tr, frame)
    with Trainer("federated", federated=data["cfg"], sites=list(SITES), max_bin=32) as tr:
        res["federated"] = _fits(tr, frame)
        session = tr.session
        res["pids"] = [p.pid for p in session.fleet.procs.values()]
        res["work"] = session.work
    with Trainer("dask", max_bin=32) as tr:
        res["dask"] = _fits(tr, frame)
    return res


@pytest.mark.parametrize("kind", ["multiclass", "regression", "binary", "cox"])
@pytest.mark.parametrize("backend", ["federated", "dask"])
def test_backends_equal_pooled_for_every_kind(runs, kind, backend):
    ref, got = runs["pooled"][kind], runs[backend][kind]
    assert ref.shape == got.shape
    assert np.isfinite(ref).all()
    # float32 predictions: months (regression) and log-hazards agree to float32
    # resolution, 1e-6 relative
    rtol = 1e-6 if kind in ("regression", "cox") else 0
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=1e-6)


def test_models_learn_something(runs, data):
    """Parity of constant models would be empty: each model must track its label."""
    frame = data["frame"]
    p = runs["pooled"]["multiclass"]
    assert p.shape == (len(frame), 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    # the arm-0 probability rises with albumin (planted above)
    assert np.corrcoef(p[:, 0], frame["albumin"])[0, 1] > 0.3
    pb = runs["pooled"]["binary"]
    assert pb[frame["response"] == 1].mean() > pb[frame["response"] == 0].mean() + 0.05
    from oncorwe.models.metrics import harrell_c

    risk = np.exp(runs["pooled"]["cox"])
    assert harrell_c(frame["pfs_event"], frame["pfs_months"], risk) > 0.6


def test_one_session_for_all_models_and_nothing_left(runs):
    assert runs["federated"]["n_models"] == 4
    # one process per site and a server, for the whole session, all stopped at the end
    assert len(runs["pids"]) == len(SITES) + 1
    deadline = time.monotonic() + 10
    while any(alive(p) for p in runs["pids"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in runs["pids"])
    assert not runs["work"].exists()  # the temporary work folder is removed


def test_site_reads_only_its_own_file_in_a_session(data, tmp_path):
    frame = data["frame"]
    with Trainer("federated", federated=data["cfg"], sites=list(SITES), max_bin=32) as tr:
        tr.sketch(frame, FEATURES)
        m = tr.fit(
            "binary", frame[frame.site != "B"], features=FEATURES, label="response", params=PARAMS
        )
    man = m.info["manifest"]
    for s in ("A", "C"):
        assert len(man[s]["opened"]) == 1
        assert f"site={s}" in man[s]["opened"][0]
    assert man["B"]["opened"] == [] and man["B"]["n_rows"] == 0
    assert man["A"]["n_rows"] == int(((frame.site == "A") & frame.response.notna()).sum())


def test_killed_site_in_a_session_is_named_and_nothing_is_left(data, tmp_path):
    frame = data["frame"]
    cfg = FederatedConfig(tls=data["cfg"].tls, timeout=120, heartbeat_timeout=10)
    session = FederatedSession(list(SITES), cfg, work_dir=tmp_path)
    tr = Trainer("federated", federated=cfg, sites=list(SITES), max_bin=32)
    tr.session = session
    session.open()
    pids = [p.pid for p in session.fleet.procs.values()]
    tr.sketch(frame, FEATURES)

    def kill_b_when_training() -> None:
        limit = time.monotonic() + 120
        while time.monotonic() < limit:
            try:
                st = json.loads((tmp_path / "status-B.json").read_text())
            except (OSError, ValueError):
                st = {}
            if st.get("stage") == "training" and st.get("round", 0) >= 2:
                os.kill(st["pid"], signal.SIGKILL)
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_b_when_training, daemon=True)
    watcher.start()
    with pytest.raises(OncorweError, match=r"site 'B' died \(signal 9\)"):
        tr.fit(
            "binary",
            frame,
            features=FEATURES,
            label="response",
            params={**PARAMS, "n_estimators": 100_000},
        )
    watcher.join(1)
    tr.close()
    assert not any(alive(p) for p in pids)
    assert not list(tmp_path.glob("model-*.json"))


def test_trainer_errors_name_the_problem(data):
    frame = data["frame"]
    with pytest.raises(OncorweError, match="needs the list of sites"):
        Trainer("federated")
    with Trainer("pooled") as tr:
        with pytest.raises(OncorweError, match="call sketch"):
            tr.fit("binary", frame, features=FEATURES, label="response")
        tr.sketch(frame, FEATURES)
        with pytest.raises(OncorweError, match="'pseudo' is not in the binning contract"):
            tr.fit("binary", frame, features=[*FEATURES, "pseudo"], label="response")
        with pytest.raises(OncorweError, match="needs num_class"):
            tr.fit("multiclass", frame, features=FEATURES, label="arm")
