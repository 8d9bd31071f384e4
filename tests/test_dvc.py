"""DVC end to end on the tiny profile: repro, no-op rerun, metrics, params diff, push/pull."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from .conftest import copy_run, run_cmd

pytestmark = pytest.mark.slow


def _tree_digest(folder: Path) -> dict[str, str]:
    """Hashes of the DVC outputs: hidden files, and the optuna study, which .dvcignore
    keeps out of the output (its trials carry their times), are not outputs."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
        and p.name != "tuning.db"
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }


@pytest.fixture(scope="module")
def project(tiny_repro, tmp_path_factory) -> Path:
    """A copy of the session's tiny ``dvc repro`` (these tests commit, edit params and
    pull into it)."""
    return copy_run(tiny_repro, tmp_path_factory.mktemp("project"))


def test_repro_builds_every_stage_output(project):
    assert (project / "data" / "cohort" / "omop" / "person.parquet").is_file()
    assert list((project / "data" / "features" / "analysis").glob("site=*/part-0.parquet"))
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert set(lock["stages"]) >= {"cohort", "features"}


def test_second_repro_is_a_no_op(project):
    res = run_cmd(["dvc", "repro"], project)
    assert "didn't change" in res.stdout or "up to date" in res.stdout
    assert "Running stage" not in res.stdout


def test_metrics_show_reads_the_stage_metrics(project):
    res = run_cmd(["dvc", "metrics", "show", "--json"], project)
    metrics = json.loads(res.stdout)
    flat = json.dumps(metrics)
    assert '"patients": 3000' in flat and "tested_share" in flat


def test_params_diff_reports_a_changed_seed(project):
    run_cmd(["git", "add", "-A"], project)
    run_cmd(["git", "commit", "-qm", "repro"], project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["cohort"]["seed"] = 7
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    res = run_cmd(["dvc", "params", "diff", "--json"], project)
    diff = json.loads(res.stdout)
    assert diff["params.yaml"]["cohort.seed"]["new"] == 7
    status = run_cmd(["dvc", "status", "--json"], project)
    assert "cohort" in json.loads(status.stdout)
    run_cmd(["git", "checkout", "params.yaml"], project)


def test_push_then_pull_restores_the_outputs(project):
    before = _tree_digest(project / "data")
    run_cmd(["dvc", "push"], project)
    assert any((project / ".dvc-storage").rglob("*"))
    shutil.rmtree(project / "data")
    shutil.rmtree(project / ".dvc" / "cache")
    run_cmd(["dvc", "pull"], project)
    assert _tree_digest(project / "data") == before


def test_a_forced_rerun_of_a_stage_writes_the_same_bytes_and_reruns_nothing_after_it(
    tiny_repro, tmp_path
):
    """``dvc repro --force --single-item hypothesis`` (a lost cache, a suspicious
    reader) reruns the stage; its outputs are byte for byte the committed ones, so the
    next ``dvc repro`` finds validation and the report unchanged and reruns nothing."""
    root = copy_run(tiny_repro, tmp_path / "project")
    before = {top: _tree_digest(root / "data" / top) for top in ("features", "hypothesis")}
    metrics = (root / "metrics" / "hypothesis.json").read_bytes()
    # --single-item: the stage alone (cohort and features were tested above it)
    forced = run_cmd(["dvc", "repro", "--force", "--single-item", "hypothesis"], root)
    assert "Running stage 'hypothesis'" in forced.stdout
    assert "Running stage 'features'" not in forced.stdout
    after = {top: _tree_digest(root / "data" / top) for top in ("features", "hypothesis")}
    assert after == before
    assert (root / "metrics" / "hypothesis.json").read_bytes() == metrics
    res = run_cmd(["dvc", "repro"], root)
    assert "Running stage" not in res.stdout, res.stdout
    status = run_cmd(["dvc", "status", "--json"], root)
    assert json.loads(status.stdout) == {}


def test_plots_show_draws_roc_calibration_and_km(project):
    """``dvc plots show`` finds the declared plots and their data: the ROC curve rises
    from (0, 0) to (1, 1), and a KM curve starts at 1 and never rises."""
    import pandas as pd

    res = run_cmd(["dvc", "plots", "show", "--json"], project)
    shown = json.loads(res.stdout)["data"]  # plot id -> its rendered data
    titles = " ".join(shown)
    assert shown["metrics/plots/response_roc.csv"]  # the ROC has data to draw
    for part in ("ROC", "Calibration", "Kaplan-Meier"):
        assert part in titles, titles
    assert "No plots were loaded" not in res.stdout + res.stderr
    roc = pd.read_csv(project / "metrics/plots/response_roc.csv")
    assert roc["fpr"].iloc[0] == 0 and roc["fpr"].iloc[-1] == 1 and roc["tpr"].iloc[-1] == 1
    assert roc["tpr"].is_monotonic_increasing
    km = pd.read_csv(project / "metrics/plots/km.csv")
    if len(km):
        for arm in ("treated", "control"):
            s = km[arm].dropna()
            assert s.iloc[0] <= 1 and s.is_monotonic_decreasing
