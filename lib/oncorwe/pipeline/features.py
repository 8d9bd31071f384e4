"""Stage ``features``: one analysis row per treated line, from the cohort's OMOP tables.

Reads ``catalog.omop``, writes ``catalog.analysis`` and the stage metrics; the SQL and
the schema live in :mod:`oncorwe.features`.
"""

from __future__ import annotations

from oncorwe.core.io import write_json
from oncorwe.core.paths import Catalog
from oncorwe.features.build import build_features, feature_metrics, write_features
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
    )


def run(params: Params, catalog: Catalog) -> dict:
    """Build the analysis table, write it and the stage metrics; return the metrics."""
    cfg = feature_config(params.features)
    table = build_features(catalog.omop, cfg, threads=params.compute.threads)
    write_features(table, catalog.analysis, cfg)
    metrics = feature_metrics(table, cfg, params.privacy.min_cell_count)
    write_json(catalog.metrics("features"), metrics)
    return metrics
