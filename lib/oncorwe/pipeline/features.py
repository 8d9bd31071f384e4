"""Stage ``features``: one analysis row per treated line, from the cohort's OMOP tables.

Reads ``catalog.omop``, writes ``catalog.analysis`` and the stage metrics; the SQL and
the schema live in :mod:`oncorwe.features`.
"""

from __future__ import annotations

from oncorwe.core.io import write_json
from oncorwe.core.paths import Catalog
from oncorwe.features.build import (
    build_features,
    feature_metrics,
    stage_pseudonym_key,
    write_features,
)
from oncorwe.features.schema import FeatureConfig
from oncorwe.pipeline.params import FeaturesParams, Params


def feature_config(fp: FeaturesParams) -> FeatureConfig:
    """The feature builder's configuration, made from ``params.yaml``'s ``features`` in
    this one place."""
    return FeatureConfig(
        biomarkers=dict(fp.biomarkers),
        labs=tuple(fp.labs),
        comorbidities=tuple(fp.comorbidities),
        cancers=tuple(fp.cancers),
        standard_of_care={c: dict(v) for c, v in fp.standard_of_care.items()},
        lookback_days=fp.lookback_days,
        toxicity_window_days=fp.toxicity_window_days,
        pseudonym_key_env=fp.pseudonym_key_env,
        pseudonym_key_file=fp.pseudonym_key_file,
    )


def run(params: Params, catalog: Catalog) -> dict:
    """Build the analysis table, write it and the stage metrics; return the metrics.

    The hash key is settled before any table is read: a source other than the synthetic
    generator without a key of its own stops here (:func:`stage_pseudonym_key`).
    """
    cfg = feature_config(params.features)
    # cohort.source decides whether the development key may stand in; dvc.yaml's
    # features stage should declare it (it does not change any output: only a refusal)
    key = stage_pseudonym_key(
        params.cohort.source,
        cfg.pseudonym_key_env,
        cfg.pseudonym_key_file,
        project=catalog.root,
    )
    table = build_features(catalog.omop, cfg, threads=params.compute.threads, key=key)
    write_features(table, catalog.analysis, cfg)
    metrics = feature_metrics(table, cfg, params.privacy.min_cell_count)
    write_json(catalog.metrics("features"), metrics)
    return metrics
