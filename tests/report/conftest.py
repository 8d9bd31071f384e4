"""A tiny world through the feature stage, shared by the report tests."""

from __future__ import annotations

import pytest

from oncorwe.cohort.generator import generate
from oncorwe.cohort.spec import load_spec
from oncorwe.features.build import build_features, write_features
from oncorwe.pipeline.features import feature_config
from oncorwe.pipeline.params import FeaturesParams


@pytest.fixture(scope="session")
def analysis(tmp_path_factory):
    """1,500 patients of the default world: (analysis dir as the stage writes it, table)."""
    tmp = tmp_path_factory.mktemp("report_world")
    cfg = feature_config(FeaturesParams())
    generate(load_spec(), 1500, seed=5, out=tmp / "world")
    table = build_features(tmp / "world" / "omop", cfg)
    write_features(table, tmp / "analysis", cfg)
    return tmp / "analysis", table


@pytest.fixture(scope="session")
def analysis_frame(analysis):
    return analysis[1].to_pandas()
