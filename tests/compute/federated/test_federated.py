"""Horizontal federated XGBoost: parity with pooled training, isolation, failure handling.

Every federated run here uses TLS (throw-away certificates) and one process per site.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from oncorwe.compute.federated.binning import BinningContract, contract_from_summaries, site_summary
from oncorwe.compute.federated.server import (
    FederatedConfig,
    federated_contract,
    federated_train,
    make_tls_material,
)
from oncorwe.compute.trainer import TrainedModel, train_model, xgboost_params
from oncorwe.core.errors import OncorweError
from tests.compute.federated import FEATURES, SITES, alive, synthetic_sites, write_sites

NUMERIC = ["age", "ldh", "albumin", "nlr"]
ROUNDS = 25
PARAMS = {"max_depth": 4, "eta": 0.3, "nthread": 1, "max_bin": 64}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("fed")
    frame = synthetic_sites()
    parts = write_sites(frame, root / "analysis")
    tls = make_tls_material(root / "tls", list(SITES))
    summaries = [
        site_summary(
            frame[frame.site == s], numeric=[*NUMERIC, "pfs_months"], categorical=["stage"]
        )
        for s in SITES
    ]
    contract = contract_from_summaries(summaries, max_bin=64, time_column="pfs_months")
    cfg = FederatedConfig(tls=tls, timeout=120, heartbeat_timeout=5)
    return {"root": root, "frame": frame, "parts": parts, "contract": contract, "cfg": cfg}


def _fit(world, backend: str, kind: str = "binary", contract=None, **kw) -> TrainedModel:
    label = "response" if kind == "binary" else ("pfs_event", "pfs_months")
    return train_model(
        kind,
        world["root"] / "analysis",
        features=FEATURES if contract != "none" else NUMERIC,
        label=label,
        params=PARAMS,
        num_boost_round=ROUNDS,
        backend=backend,
        contract=world["contract"] if contract is None else contract,
        federated=world["cfg"],
        **kw,
    )


@pytest.fixture(scope="module")
def binary_runs(world):
    model_path = world["root"] / "models" / "response.json"
    fed = _fit(world, "federated", model_path=model_path)
    pooled = _fit(world, "pooled")
    return {"fed": fed, "pooled": pooled, "model_path": model_path}


# ---------------------------------------------------------------------- parity
def test_binary_federated_equals_pooled_with_contract(world, binary_runs):
    frame = world["frame"]
    p_fed = binary_runs["fed"].predict_proba(frame)[:, 1]
    p_pool = binary_runs["pooled"].predict_proba(frame)[:, 1]
    assert np.abs(p_fed - p_pool).max() < 1e-6
    # the model learned something (planted signal), so parity is not trivial
    assert p_pool.std() > 0.1


def test_without_contract_federated_differs_from_pooled(world):
    # raw continuous features: each site sketches its own cut points
    fed = _fit(world, "federated", contract="none")
    pooled = _fit(world, "pooled", contract="none")
    diff = np.abs(
        fed.predict_proba(world["frame"])[:, 1] - pooled.predict_proba(world["frame"])[:, 1]
    )
    assert diff.max() > 1e-3


def test_cox_federated_equals_pooled_with_contract(world):
    frame = world["frame"]
    fed = _fit(world, "federated", kind="cox")
    pooled = _fit(world, "pooled", kind="cox")
    m_fed, m_pool = fed.predict_margin(frame), pooled.predict_margin(frame)
    assert np.abs(m_fed - m_pool).max() < 1e-6
    assert np.abs(fed.predict_risk(frame) - pooled.predict_risk(frame)).max() < 1e-6
    # higher risk for the planted high-LDH rows
    hi = frame["ldh"] > frame["ldh"].quantile(0.8)
    assert pooled.predict_risk(frame)[hi].mean() > pooled.predict_risk(frame)[~hi].mean()


# ---------------------------------------------------------------------- isolation
def test_each_site_opened_only_its_own_partition(world, binary_runs):
    manifest = binary_runs["fed"].info["manifest"]
    assert sorted(manifest) == sorted(SITES)
    for s, m in manifest.items():
        expected = str((world["parts"][s] / "part-0.parquet").resolve())
        assert m["opened"] == [expected]
        assert m["n_rows"] == int((world["frame"]["site"] == s).sum())
    pids = [m["pid"] for m in manifest.values()]
    assert len(set(pids)) == len(SITES) and os.getpid() not in pids


def test_model_file_is_written_and_loads(world, binary_runs):
    path = binary_runs["model_path"]
    loaded = TrainedModel.load(path)
    frame = world["frame"].head(200)
    assert np.array_equal(loaded.predict_proba(frame), binary_runs["fed"].predict_proba(frame))
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_federated_sketch_equals_in_process_sketch(world):
    got = federated_contract(
        world["parts"],
        numeric=NUMERIC,
        categorical=["stage"],
        max_bin=64,
        time_column="pfs_months",
        config=world["cfg"],
    )
    assert got == world["contract"]
    assert got.categorical["stage"] == ("I", "II", "III", "IV")


# ---------------------------------------------------------------------- failures
def _job(world, work: Path, rounds: int = 100_000, **cfg_kw):
    cfg = dataclasses.replace(world["cfg"], **cfg_kw)
    params, _ = xgboost_params("binary", PARAMS, max_bin=64)
    return dict(
        partitions=world["parts"],
        kind="binary",
        features=FEATURES,
        label="response",
        params=params,
        num_boost_round=rounds,
        contract=world["contract"],
        config=cfg,
        work_dir=work,
        model_path=work / "out" / "model.json",
    )


def _status(work: Path, site: str) -> dict | None:
    try:
        return json.loads((work / f"status-{site}.json").read_text())
    except (OSError, ValueError):
        return None


def _when_training(work: Path, site: str, action, min_round: int = 3, limit: float = 300.0):
    """Run ``action(pid)`` once ``site`` has boosted ``min_round`` rounds (in a thread)."""

    def watch() -> None:
        end = time.monotonic() + limit
        while time.monotonic() < end:
            st = _status(work, site)
            if st and st.get("stage") == "training" and st.get("round", -1) >= min_round:
                action(st["pid"])
                return
            time.sleep(0.01)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def _pids(work: Path) -> list[int]:
    pids = [json.loads((work / "server-port.json").read_text())["pid"]]
    return pids + [_status(work, s)["pid"] for s in SITES]


def test_killed_site_is_named_and_nothing_is_left(world, tmp_path):
    job = _job(world, tmp_path)
    watcher = _when_training(tmp_path, "B", lambda pid: os.kill(pid, signal.SIGKILL))
    t0 = time.monotonic()
    with pytest.raises(OncorweError, match=r"site 'B' died \(signal 9\)"):
        federated_train(**job)
    assert time.monotonic() - t0 < 60
    watcher.join(1)
    assert not any(alive(p) for p in _pids(tmp_path))
    assert not (tmp_path / "out" / "model.json").exists()


def test_hung_site_is_named_within_heartbeat_timeout(world, tmp_path):
    job = _job(world, tmp_path, heartbeat_timeout=2.0)
    stopped: list[int] = []

    def stop(pid: int) -> None:
        os.kill(pid, signal.SIGSTOP)
        stopped.append(time.monotonic())

    watcher = _when_training(tmp_path, "C", stop)
    with pytest.raises(OncorweError, match=r"\['C'\] stopped responding"):
        federated_train(**job)
    watcher.join(1)
    assert stopped and time.monotonic() - stopped[0] < 2.0 + 5.0
    assert not any(alive(p) for p in _pids(tmp_path))
    assert not (tmp_path / "out" / "model.json").exists()


def test_timeout_names_unfinished_sites(world, tmp_path):
    job = _job(world, tmp_path, timeout=6.0)
    with pytest.raises(
        OncorweError, match=r"timed out after 6 s; unfinished: A \(\w+, round -?\d+\), B"
    ):
        federated_train(**job)
    assert not any(alive(p) for p in _pids(tmp_path))
    assert not (tmp_path / "out" / "model.json").exists()


def test_keyboard_interrupt_stops_every_process(world, tmp_path):
    # an earlier test (a Dask cluster, a kernel) may have replaced the SIGINT handler in
    # this process; Ctrl-C in a terminal reaches the default one
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _interrupt_run(world, tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt_run(world, tmp_path):
    job = _job(world, tmp_path)
    # a real SIGINT to this process (what Ctrl-C sends), raised in the main thread
    watcher = _when_training(tmp_path, "A", lambda pid: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(KeyboardInterrupt):
        federated_train(**job)
    watcher.join(1)
    assert not any(alive(p) for p in _pids(tmp_path))
    assert not (tmp_path / "out" / "model.json").exists()


# ---------------------------------------------------------------------- pieces
def test_tls_material_with_openssl_verifies(tmp_path):
    tls = make_tls_material(tmp_path, ["A", "B"], tool="openssl")
    for cert in (tls.server_cert, *(c for _, c in tls.client_certs.values())):
        subprocess.run(
            ["openssl", "verify", "-CAfile", str(tls.client_ca), str(cert)],
            check=True,
            capture_output=True,
        )
    assert oct(tls.server_key.stat().st_mode & 0o777) == "0o600"


def test_trainer_rejects_cox_contract_without_time_grid(world):
    contract = BinningContract(
        numeric=world["contract"].numeric, categorical=world["contract"].categorical, max_bin=64
    )
    with pytest.raises(OncorweError, match="time_grid"):
        _fit(world, "pooled", kind="cox", contract=contract)


def test_trainer_rejects_unknown_backend(world):
    with pytest.raises(OncorweError, match="backend"):
        _fit(world, "spark")


def test_trained_model_shap_values_sum_to_the_margin(world, binary_runs):
    frame = world["frame"].head(50)
    model = binary_runs["pooled"]
    contrib = model.shap_values(frame)
    assert list(contrib.columns) == [*FEATURES, "bias"]
    np.testing.assert_allclose(contrib.sum(axis=1), model.predict_margin(frame), atol=1e-4)
