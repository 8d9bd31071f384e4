"""DVC end to end on the tiny profile: repro, no-op rerun, metrics, params diff, push/pull."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT

pytestmark = pytest.mark.slow


def _run(args, cwd, check=True):
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    env.pop("ONCORWE_ROOT", None)
    res = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and res.returncode != 0:
        raise AssertionError(f"{args} failed:\n{res.stdout}\n{res.stderr}")
    return res


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


def copy_project(dst: Path) -> dict:
    """The pipeline's files copied to ``dst``; returns its params (to edit)."""
    for name in ("pyproject.toml", "dvc.yaml", "params.yaml", ".dvcignore", ".gitignore"):
        shutil.copy2(ROOT / name, dst / name)
    shutil.copytree(ROOT / "notebooks", dst / "notebooks")
    shutil.copytree(ROOT / ".dvc", dst / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp"))
    shutil.copytree(
        ROOT / "lib", dst / "lib", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    return yaml.safe_load((dst / "params.yaml").read_text())


def commit_and_repro(dst: Path, params: dict, *targets: str) -> None:
    """Write ``params``, commit everything in a fresh git repo, run ``dvc repro`` (of
    ``targets`` and what they need, or of every stage)."""
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["git", "init", "-q"], dst)
    _run(["git", "add", "-A"], dst)
    _run(["git", "commit", "-qm", "init"], dst)
    _run(["dvc", "repro", *targets], dst)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    dst = tmp_path_factory.mktemp("project")
    params = copy_project(dst)
    params["cohort"]["profile"] = "tiny"
    commit_and_repro(dst, params)
    return dst


def test_repro_builds_every_stage_output(project):
    assert (project / "data" / "cohort" / "omop" / "person.parquet").is_file()
    assert list((project / "data" / "features" / "analysis").glob("site=*/part-0.parquet"))
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert set(lock["stages"]) >= {"cohort", "features"}


def test_second_repro_is_a_no_op(project):
    res = _run(["dvc", "repro"], project)
    assert "didn't change" in res.stdout or "up to date" in res.stdout
    assert "Running stage" not in res.stdout


def test_metrics_show_reads_the_stage_metrics(project):
    res = _run(["dvc", "metrics", "show", "--json"], project)
    metrics = json.loads(res.stdout)
    flat = json.dumps(metrics)
    assert '"patients": 3000' in flat and "tested_share" in flat


def test_params_diff_reports_a_changed_seed(project):
    _run(["git", "add", "-A"], project)
    _run(["git", "commit", "-qm", "repro"], project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["cohort"]["seed"] = 7
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    res = _run(["dvc", "params", "diff", "--json"], project)
    diff = json.loads(res.stdout)
    assert diff["params.yaml"]["cohort.seed"]["new"] == 7
    status = _run(["dvc", "status", "--json"], project)
    assert "cohort" in json.loads(status.stdout)
    _run(["git", "checkout", "params.yaml"], project)


def test_push_then_pull_restores_the_outputs(project):
    before = _tree_digest(project / "data")
    _run(["dvc", "push"], project)
    assert any((project / ".dvc-storage").rglob("*"))
    shutil.rmtree(project / "data")
    shutil.rmtree(project / ".dvc" / "cache")
    _run(["dvc", "pull"], project)
    assert _tree_digest(project / "data") == before
