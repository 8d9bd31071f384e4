"""The Dask backend: ``xgboost.dask.train`` on the per-site Parquet partitions."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from oncorwe.compute.trainer import train_model
from oncorwe.models.metrics import auc, harrell_c
from tests.compute.federated import FEATURES, synthetic_sites, write_sites

pytest.importorskip("distributed")

PARAMS = {"max_depth": 4, "eta": 0.2, "nthread": 1, "max_bin": 64}
ROUNDS = 40


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask")
    train = synthetic_sites(n=4000, seed=1)
    write_sites(train, root / "analysis")
    return {"root": root / "analysis", "train": train, "test": synthetic_sites(n=3000, seed=2)}


def test_dask_local_cluster_matches_pooled_auc(data):
    kw = dict(features=FEATURES, label="response", params=PARAMS, num_boost_round=ROUNDS)
    pooled = train_model("binary", data["root"], backend="pooled", **kw)
    dasked = train_model("binary", data["root"], backend="dask", cluster="local", **kw)
    test = data["test"]
    y = test["response"].to_numpy()
    auc_pooled = auc(y, pooled.predict_proba(test)[:, 1])
    auc_dask = auc(y, dasked.predict_proba(test)[:, 1])
    assert abs(auc_dask - auc_pooled) < 0.005
    assert auc_pooled > 0.6  # the planted signal is learned
    # same binning contract on every worker: the same trees, not only the same AUC
    assert np.abs(dasked.predict_proba(test) - pooled.predict_proba(test)).max() < 1e-5


def test_dask_scheduler_address_cox_matches_pooled(data):
    from distributed import LocalCluster

    kw = dict(
        features=FEATURES,
        label=("pfs_event", "pfs_months"),
        params=PARAMS,
        num_boost_round=ROUNDS,
    )
    pooled = train_model("cox", data["root"], backend="pooled", **kw)
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    ) as cluster:
        dasked = train_model(
            "cox", data["root"], backend="dask", cluster=cluster.scheduler_address, **kw
        )
    test = data["test"]
    ev, t = test["pfs_event"].to_numpy(), test["pfs_months"].to_numpy()
    c_pooled = harrell_c(ev, t, pooled.predict_risk(test))
    c_dask = harrell_c(ev, t, dasked.predict_risk(test))
    assert abs(c_dask - c_pooled) < 0.005
    assert c_pooled > 0.6
