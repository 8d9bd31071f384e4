"""Spec validation: every error names the spec file and the failing key."""

from __future__ import annotations

import pytest
import yaml

from oncorwe.cohort.spec import default_spec_path, load_spec
from oncorwe.core.errors import ConfigError


def _mutated(tmp_path, edit):
    raw = yaml.safe_load(default_spec_path().read_text())
    edit(raw)
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def test_default_spec_has_the_required_world(default_spec):
    assert {"colorectal", "nsclc", "breast", "gastric", "prostate", "ovarian", "pancreatic"} <= set(
        default_spec.cancers
    )
    assert {
        "EGFR",
        "KRAS_G12C",
        "ALK",
        "BRCA",
        "HER2",
        "HR",
        "PDL1_TPS",
        "PTEN_LOSS",
        "MSI_H",
        "PIK3CA",
    } <= set(default_spec.biomarkers)
    classes = {d.drug_class for d in default_spec.drugs.values()}
    assert {"pi3k_inhibitor", "cdk46_inhibitor", "parp_inhibitor", "immunotherapy"} <= classes
    assert len(default_spec.populations) >= 5


def test_unknown_drug_in_a_planted_effect(tmp_path):
    def edit(raw):
        raw["planted_effects"][0]["drug"] = "unobtainium"

    with pytest.raises(
        ConfigError, match=r"spec.yaml: .*planted_effects\[0\].*unknown drug 'unobtainium'"
    ):
        load_spec(_mutated(tmp_path, edit))


def test_unknown_biomarker_in_a_rule(tmp_path):
    def edit(raw):
        raw["planted_effects"][0]["when"]["NOPE"] = "positive"

    with pytest.raises(ConfigError, match=r"unknown field or biomarker 'NOPE'"):
        load_spec(_mutated(tmp_path, edit))


def test_population_shares_must_sum_to_one(tmp_path):
    def edit(raw):
        raw["populations"]["korean"]["share"] = 0.5

    with pytest.raises(ConfigError, match=r"populations: shares must sum to 1"):
        load_spec(_mutated(tmp_path, edit))


def test_unknown_key_in_the_spec(tmp_path):
    def edit(raw):
        raw["hospitals"]["cout"] = 3

    with pytest.raises(ConfigError, match=r"hospitals\.cout: unknown key"):
        load_spec(_mutated(tmp_path, edit))


def test_probability_out_of_range(tmp_path):
    def edit(raw):
        raw["cancers"]["nsclc"]["response_rate"] = 1.5

    with pytest.raises(ConfigError, match=r"cancers\.nsclc\.response_rate"):
        load_spec(_mutated(tmp_path, edit))


def test_exclusive_markers_cannot_exceed_one(tmp_path):
    def edit(raw):
        raw["cancers"]["nsclc"]["biomarkers"]["ALK"]["prevalence"] = 0.9

    with pytest.raises(ConfigError, match=r"exclusive: prevalences"):
        load_spec(_mutated(tmp_path, edit))


def test_an_empty_effect_list_is_a_valid_null_world(tmp_path):
    def edit(raw):
        raw["planted_effects"] = []

    assert load_spec(_mutated(tmp_path, edit)).planted_effects == []


def test_missing_spec_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")
