"""Shared fixtures: tiny worlds drawn by the project's own generator."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from oncorwe.cohort.generator import generate
from oncorwe.cohort.spec import Spec, load_spec
from oncorwe.config import FeaturesParams
from oncorwe.features.build import FeatureConfig, build_features

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def default_spec() -> Spec:
    return load_spec()


@pytest.fixture(scope="session")
def null_spec(default_spec: Spec) -> Spec:
    """The default world with no planted effects: every drug equals its standard of care."""
    return default_spec.model_copy(update={"planted_effects": []})


@pytest.fixture(scope="session")
def feature_config() -> FeatureConfig:
    return FeaturesParams().feature_config()


@pytest.fixture(scope="session")
def world(tmp_path_factory, default_spec) -> Path:
    """20,000 patients of the default world (about 2 s)."""
    out = tmp_path_factory.mktemp("world")
    generate(default_spec, 20_000, seed=11, out=out)
    return out


@pytest.fixture(scope="session")
def null_world(tmp_path_factory, null_spec) -> Path:
    out = tmp_path_factory.mktemp("null_world")
    generate(null_spec, 20_000, seed=12, out=out)
    return out


@pytest.fixture(scope="session")
def truth_lines(world) -> pd.DataFrame:
    return pd.read_parquet(world / "truth" / "lines.parquet")


@pytest.fixture(scope="session")
def truth_po(world) -> pd.DataFrame:
    return pd.read_parquet(world / "truth" / "potential_outcomes.parquet")


@pytest.fixture(scope="session")
def features(world, feature_config) -> pd.DataFrame:
    return build_features(world / "omop", feature_config).to_pandas()
