"""Track 1's response models through the federated and Dask trainers."""

from __future__ import annotations

import pandas as pd
import pytest

from oncorwe.cohort.splits import assign_splits
from oncorwe.compute.trainer import EstimatorTrainer, stage_trainer
from oncorwe.core.roles import read_table, roles_for_analysis_table
from oncorwe.pipeline.hypothesis import fit_response_models, sketch_contract

from ...conftest import small_track_config


@pytest.fixture(scope="module")
def parts(track1):
    out, _ = track1
    analysis = out.parent / "analysis"
    roles = roles_for_analysis_table(analysis)
    frame = read_table(analysis)
    frame = frame[frame["site"].isin(sorted(frame["site"].unique())[:4])].reset_index(drop=True)
    part = assign_splits(frame[roles.id], {"d": 0.6, "c": 0.4}, seed=1)
    disc = frame[part == "d"].reset_index(drop=True)
    conf = frame[part == "c"].reset_index(drop=True)
    return disc, conf, roles, roles.resolved_covariates(frame)


@pytest.mark.parametrize("backend", ["federated", "dask"])
def test_response_models_train_on_the_backend_and_match_pooled_quality(parts, backend):
    from dataclasses import replace

    from oncorwe.pipeline.params import FederatedComputeParams

    disc, conf, roles, cov = parts
    pooled_cfg = small_track_config()
    cfg = replace(pooled_cfg, training=backend, federated=FederatedComputeParams(timeout_s=300))
    both = pd.concat([disc, conf], ignore_index=True)
    with stage_trainer(
        backend,
        sites=both[roles.hospital].unique(),
        site_column=roles.hospital,
        federated_params=cfg.federated,
    ) as trainer:
        sketch_contract(trainer, [both], roles, cov)
        models, metrics = fit_response_models(disc, conf, roles, cov, cfg, None, trainer)
        assert trainer.n_models == 3
    assert set(models) == {"response", "toxicity", "pfs"}
    assert metrics["response"]["backend"] == backend
    _, pooled = fit_response_models(disc, conf, roles, cov, pooled_cfg, None, EstimatorTrainer())
    for name in ("response", "toxicity"):
        assert abs(metrics[name]["overall"]["auc"] - pooled[name]["overall"]["auc"]) < 0.03
    assert abs(metrics["pfs"]["overall"]["c_index"] - pooled["pfs"]["overall"]["c_index"]) < 0.03


def test_the_stage_trainer_takes_the_nuisance_max_bin(parts):
    """hypothesis.nuisance.max_bin reaches the binning contract of the Dask / federated
    trainer (it was dropped there: every run binned at 64)."""
    from dataclasses import replace

    from oncorwe.pipeline.hypothesis import track_trainer

    disc, _, roles, _ = parts
    base = small_track_config()
    cfg = replace(base, training="dask", model_params={**base.model_params, "max_bin": 32})
    with track_trainer(cfg, disc, roles) as trainer:
        assert trainer.max_bin == 32
