"""Fixtures of the feature-stage tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from oncorwe.cohort.generator import generate


@pytest.fixture(scope="module")
def omop(tmp_path_factory, default_spec) -> Path:
    """300 patients of the default world at four hospitals (the stage runs per hospital);
    one per test module, so no module sees another's edits."""
    hospitals = default_spec.hospitals.model_copy(update={"count": 4})
    out = tmp_path_factory.mktemp("omop_world")
    generate(default_spec.model_copy(update={"hospitals": hospitals}), 300, seed=11, out=out)
    return out / "omop"
