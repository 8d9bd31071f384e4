"""The `oncorwe` command: stages, a clear error and exit 2 on bad input, nothing half-written."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd


def oncorwe(*args, cwd=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "oncorwe.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def test_help_lists_one_command_per_stage():
    res = oncorwe("--help")
    assert res.returncode == 0
    for cmd in ("generate", "cohort", "features", "check-params"):
        assert cmd in res.stdout


def test_generate_writes_omop_and_truth(tmp_path):
    res = oncorwe("generate", "--patients", 300, "--seed", 4, "--out", tmp_path / "w")
    assert res.returncode == 0, res.stderr
    assert len(pd.read_parquet(tmp_path / "w" / "omop" / "person.parquet")) == 300
    assert (tmp_path / "w" / "truth" / "potential_outcomes.parquet").is_file()


def test_bad_spec_exits_2_naming_the_file_and_writes_nothing(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\nstudy: {start: 2020-01-01, end: 2020-02-01}\n")
    res = oncorwe("generate", "--spec", spec, "--patients", 10, "--out", tmp_path / "w")
    assert res.returncode == 2
    assert "bad.yaml" in res.stderr and "study" in res.stderr
    assert not (tmp_path / "w").exists()


def test_negative_patient_count_is_refused(tmp_path):
    res = oncorwe("generate", "--patients", -5, "--out", tmp_path / "w")
    assert res.returncode == 2
    assert "patients" in res.stderr


def test_check_params_names_the_bad_key(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("features:\n  lookback_days: -3\n")
    res = oncorwe("check-params", "--params", bad)
    assert res.returncode == 2
    assert "features.lookback_days" in res.stderr


def test_cohort_and_features_stages_run_in_a_project(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "params.yaml").write_text(
        "cohort: {profile: tiny, profiles: {tiny: 400}, seed: 1}\n"
    )
    env = {"ONCORWE_ROOT": str(tmp_path)}
    assert oncorwe("cohort", "--params", tmp_path / "params.yaml", env=env).returncode == 0
    res = oncorwe("features", "--params", tmp_path / "params.yaml", env=env)
    assert res.returncode == 0, res.stderr
    parts = list((tmp_path / "data" / "features" / "analysis").glob("site=*/part-0.parquet"))
    assert parts
    assert (tmp_path / "metrics" / "features.json").is_file()
    # nothing but the outputs: no temporary folders left behind
    leftovers = [p for p in tmp_path.rglob("*.tmp")]
    assert not leftovers


def test_features_without_a_cohort_is_a_clear_error(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "params.yaml").write_text("{}\n")
    res = oncorwe(
        "features", "--params", tmp_path / "params.yaml", env={"ONCORWE_ROOT": str(tmp_path)}
    )
    assert res.returncode == 2
    assert "person.parquet" in res.stderr and "missing" in res.stderr
    assert not (tmp_path / "data" / "features").exists()


def test_trial_sim_writes_power_beside_the_formula(tmp_path):
    from oncorwe.core.paths import project_root

    design = project_root() / "examples" / "trial_design_response.yaml"
    res = oncorwe("trial-sim", "--design", design, "--out", tmp_path / "t")
    assert res.returncode == 0, res.stderr
    import json

    trial = json.loads((tmp_path / "t" / "trial.json").read_text())
    assert abs(trial["power"] - trial["formula_power"]) < 0.025
    assert trial["sample_size"] is not None


def test_trial_sim_names_a_misspelled_key(tmp_path):
    bad = tmp_path / "d.yaml"
    bad.write_text("name: x\nendpoint: pfs\nacrual: {months: 2}\n")
    res = oncorwe("trial-sim", "--design", bad, "--out", tmp_path / "t")
    assert res.returncode == 2 and "acrual" in res.stderr
    assert not (tmp_path / "t").exists()


def test_export_flat_writes_a_table_k_anonymous_on_the_age_band(tmp_path):
    from oncorwe.cohort.flat import flat_cohort
    from oncorwe.core.privacy import k_anonymity_violations, quasi_identifier_view

    res = oncorwe("export-flat", "--patients", 400, "--seed", 3, "--out", tmp_path / "f")
    assert res.returncode == 0, res.stderr
    written = pd.read_csv(tmp_path / "f" / "cohort.csv")
    raw = flat_cohort(400, seed=3)
    # the drawn table has age bands under k=5 (so the check can fail); the written one none
    assert not k_anonymity_violations(quasi_identifier_view(raw), ["age"], 5).empty
    assert k_anonymity_violations(quasi_identifier_view(written), ["age"], 5).empty
    band = quasi_identifier_view(raw)["age"]
    thin = band.map(band.value_counts()) < 5
    changed = written["age"] != raw["age"]
    assert changed.any() and not (changed & ~thin).any()  # only the thin bands' ages moved
    assert written.drop(columns="age").equals(raw.drop(columns="age"))
    assert "5-anonymous on the age band (ages " in res.stderr


def test_export_flat_refuses_a_k_it_cannot_reach_and_writes_nothing(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("privacy:\n  k: 60\n")
    out = tmp_path / "f"
    res = oncorwe("export-flat", "--patients", 50, "--params", params, "--out", out)
    assert res.returncode == 2
    err = res.stderr.strip().splitlines()[-1]
    assert err.startswith("error: export-flat's cohort of 50 patients is not 60-anonymous")
    assert "privacy.k = 60" in err and "Traceback" not in res.stderr
    assert not out.exists()
