"""Bring your own cohort: a flat CSV + roles file through discover, emulate and transport."""

from __future__ import annotations

import json

import pytest
import yaml

from .test_cli import oncorwe


@pytest.fixture(scope="module")
def flat_cohort(track1, tmp_path_factory):
    """First-line NSCLC from the focused world as a user's flat table (renamed columns)."""
    from oncorwe.core.roles import read_table

    out, _ = track1
    t = read_table(out.parent / "analysis")
    t = t[(t["cancer"] == "nsclc") & (t["line"] == 1)]
    flat = t.rename(
        columns={
            "person_key": "patient",
            "treatment": "regimen",
            "pfs_months": "pfs",
            "pfs_event": "progressed",
            "response": "responded",
            "site": "hospital",
            "population": "ancestry",
            "bm_pdl1_tps_status": "pdl1",
            "bm_egfr_status": "egfr",
            "lab_ecog": "ecog",
        }
    )[
        [
            "patient",
            "regimen",
            "pfs",
            "progressed",
            "responded",
            "hospital",
            "ancestry",
            "pdl1",
            "egfr",
            "ecog",
            "age",
            "stage",
            "lab_ldh",
            "lab_albumin",
        ]
    ]
    d = tmp_path_factory.mktemp("byo")
    flat.to_csv(d / "cohort.csv", index=False)
    roles = {
        "id": "patient",
        "treatment": "regimen",
        "comparator": "platinum_doublet",
        "treated": "pembrolizumab",
        "time": "pfs",
        "event": "progressed",
        "response": "responded",
        "hospital": "hospital",
        "population": "ancestry",
        "covariates": [
            "ecog",
            "age",
            "stage",
            "lab_ldh",
            "lab_albumin",
            "pdl1",
            "egfr",
            "ancestry",
        ],
        "categorical": ["stage", "pdl1", "egfr", "ancestry"],
        "subgroups": ["pdl1", "egfr", "ancestry"],
    }
    (d / "roles.yaml").write_text(yaml.safe_dump(roles))
    return d


def test_emulate_writes_the_required_fields(flat_cohort, tmp_path):
    res = oncorwe(
        "emulate",
        "--cohort",
        flat_cohort / "cohort.csv",
        "--roles",
        flat_cohort / "roles.yaml",
        "--out",
        tmp_path / "em",
    )
    assert res.returncode == 0, res.stderr
    em = json.loads((tmp_path / "em" / "emulation.json").read_text())
    for key in (
        "hazard_ratio",
        "ci_low",
        "ci_high",
        "n_treated",
        "n_control",
        "events",
        "max_abs_smd_before",
        "max_abs_smd_after",
        "effective_sample_size",
        "risk_difference",
        "rd_ci_low",
        "rd_ci_high",
    ):
        assert key in em, key
    assert em["ci_low"] < em["hazard_ratio"] < em["ci_high"]
    assert (tmp_path / "em" / "km.html").is_file() and (tmp_path / "em" / "balance.html").is_file()


def test_discover_runs_on_a_flat_table(flat_cohort, tmp_path):
    res = oncorwe(
        "discover",
        "--cohort",
        flat_cohort / "cohort.csv",
        "--roles",
        flat_cohort / "roles.yaml",
        "--out",
        tmp_path / "d",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    data = json.loads((tmp_path / "d" / "hypotheses.json").read_text())
    assert isinstance(data["hypotheses"], list)


def test_transport_between_populations(flat_cohort, tmp_path):
    import pandas as pd

    t = pd.read_csv(flat_cohort / "cohort.csv")
    t[t["ancestry"] == "korean"].to_csv(tmp_path / "a.csv", index=False)
    t[t["ancestry"] != "korean"].to_csv(tmp_path / "b.csv", index=False)
    res = oncorwe(
        "transport",
        "--train",
        tmp_path / "a.csv",
        "--test",
        tmp_path / "b.csv",
        "--roles",
        flat_cohort / "roles.yaml",
        "--out",
        tmp_path / "t",
    )
    assert res.returncode == 0, res.stderr
    tr = json.loads((tmp_path / "t" / "transport.json").read_text())
    assert {"c_index", "calibration_slope", "calibration_in_the_large"} <= set(tr)


def test_a_roles_file_naming_a_missing_column_is_refused(flat_cohort, tmp_path):
    roles = yaml.safe_load((flat_cohort / "roles.yaml").read_text())
    roles["time"] = "pfs_days"
    (tmp_path / "roles.yaml").write_text(yaml.safe_dump(roles))
    res = oncorwe(
        "emulate",
        "--cohort",
        flat_cohort / "cohort.csv",
        "--roles",
        tmp_path / "roles.yaml",
        "--out",
        tmp_path / "em",
    )
    assert res.returncode == 2
    assert "pfs_days" in res.stderr and "roles.time" in res.stderr
    assert not (tmp_path / "em").exists()


def test_a_comparator_that_never_occurs_is_refused(flat_cohort, tmp_path):
    roles = yaml.safe_load((flat_cohort / "roles.yaml").read_text())
    roles["comparator"] = "placebo"
    (tmp_path / "roles.yaml").write_text(yaml.safe_dump(roles))
    res = oncorwe(
        "discover",
        "--cohort",
        flat_cohort / "cohort.csv",
        "--roles",
        tmp_path / "roles.yaml",
        "--out",
        tmp_path / "d",
        cwd=tmp_path,
    )
    assert res.returncode == 2 and "placebo" in res.stderr
