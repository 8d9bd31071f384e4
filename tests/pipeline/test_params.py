"""params.yaml validation: errors name the key and what is allowed."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from oncorwe.core.errors import ConfigError
from oncorwe.pipeline.params import STAGES, Params, load_params, read_params

from ..conftest import ROOT


def _write(tmp_path, text: str):
    p = tmp_path / "params.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_the_project_params_file_validates():
    params = read_params(ROOT / "params.yaml")
    assert params.cohort.n_patients == 200_000
    assert params.cohort.profiles["full"] == 4_960_000


def test_unknown_key_is_named(tmp_path):
    p = _write(tmp_path, "cohort:\n  sed: 3\n")
    with pytest.raises(ConfigError, match=r"params.yaml: cohort\.sed: unknown key"):
        read_params(p)


def test_unknown_section_is_named(tmp_path):
    p = _write(tmp_path, "cohrt:\n  seed: 3\n")
    with pytest.raises(ConfigError, match=r"cohrt: unknown key"):
        read_params(p)


def test_wrong_type_is_named_with_the_value(tmp_path):
    p = _write(tmp_path, "cohort:\n  seed: abc\n")
    with pytest.raises(ConfigError, match=r"cohort\.seed: .*integer.*'abc'"):
        read_params(p)


def test_out_of_range_value_says_what_is_allowed(tmp_path):
    p = _write(tmp_path, "privacy:\n  min_cell_count: 0\n")
    with pytest.raises(ConfigError, match=r"privacy\.min_cell_count: .*greater than or equal to 1"):
        read_params(p)


def test_profile_must_be_one_of_the_profiles(tmp_path):
    p = _write(tmp_path, "cohort:\n  profile: huge\n")
    with pytest.raises(ConfigError, match=r"cohort: .*profile 'huge' is not one of"):
        read_params(p)


def test_biomarker_kind_is_checked(tmp_path):
    p = _write(tmp_path, "features:\n  biomarkers: {EGFR: yes-no}\n")
    with pytest.raises(ConfigError, match=r"features\.biomarkers\.EGFR"):
        read_params(p)


def test_load_params_returns_only_the_stage_section(tmp_path):
    p = _write(tmp_path, "cohort:\n  profile: tiny\n")
    section = load_params("cohort", p)
    assert section.n_patients == 3000
    assert not hasattr(section, "features")
    with pytest.raises(ConfigError, match="unknown params section"):
        load_params("nonsense", p)


def test_dvc_yaml_declares_every_section_a_stage_reads():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    declared = {
        name: {str(k).split(".")[0] for k in st.get("params", [])} for name, st in dvc.items()
    }
    assert declared["cohort"] >= {"cohort", "privacy"}
    assert declared["features"] >= {"features", "privacy", "compute"}
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(params) <= set(STAGES)
    assert set(Params.model_fields) == set(STAGES)


def test_missing_empty_or_broken_params_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match="parameter file .*nope.yaml does not exist"):
        read_params(tmp_path / "nope.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="empty.yaml: expected a mapping"):
        read_params(empty)
    broken = tmp_path / "broken.yaml"
    broken.write_text("cohort: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        read_params(broken)


def test_min_cell_count_below_five_is_refused_naming_the_key(tmp_path):
    p = _write(tmp_path, "privacy:\n  min_cell_count: 3\n")
    with pytest.raises(
        ConfigError,
        match=r"params.yaml: privacy: .*min_cell_count is 3, below 5.*privacy\.allow_small_cells",
    ):
        read_params(p)


def test_min_cell_count_below_five_with_allow_small_cells_is_logged(tmp_path, capsys):
    p = _write(tmp_path, "privacy:\n  min_cell_count: 3\n  allow_small_cells: true\n")
    assert read_params(p).privacy.min_cell_count == 3
    err = capsys.readouterr().err
    assert "[oncorwe] warning: privacy.min_cell_count is 3, below 5" in err


def test_min_cell_count_of_five_needs_no_allowance(tmp_path, capsys):
    p = _write(tmp_path, "privacy:\n  min_cell_count: 5\n")
    assert read_params(p).privacy.min_cell_count == 5
    assert "warning" not in capsys.readouterr().err


def test_federated_tls_false_is_refused_without_allow_insecure(tmp_path):
    p = _write(tmp_path, "compute:\n  federated:\n    tls: false\n")
    with pytest.raises(
        ConfigError,
        match=r"params.yaml: compute\.federated: .*compute\.federated\.tls is false but "
        r"compute\.federated\.allow_insecure is not true.*expected tls: true",
    ):
        read_params(p)
    p = _write(tmp_path, "compute:\n  federated:\n    tls: false\n    allow_insecure: true\n")
    fed = read_params(p).compute.federated
    assert fed.tls is False and fed.allow_insecure is True


def test_federated_address_off_loopback_is_refused_unless_allowed(tmp_path):
    p = _write(tmp_path, "compute:\n  federated:\n    address: 10.0.0.5\n")
    with pytest.raises(ConfigError, match=r"compute\.federated\.address is '10\.0\.0\.5'"):
        read_params(p)
    p = _write(
        tmp_path, "compute:\n  federated:\n    address: 10.0.0.5\n    allow_non_loopback: true\n"
    )
    assert read_params(p).compute.federated.address == "10.0.0.5"
