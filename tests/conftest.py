"""Shared fixtures: tiny worlds drawn by the project's own generator."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from oncorwe.cohort.generator import generate
from oncorwe.cohort.spec import Spec, load_spec
from oncorwe.features.build import build_features
from oncorwe.features.schema import FeatureConfig
from oncorwe.pipeline.features import feature_config as make_feature_config
from oncorwe.pipeline.hypothesis import track_config
from oncorwe.pipeline.params import FeaturesParams

ROOT = Path(__file__).resolve().parents[1]

# every pipeline run of a session dates its pages by the session's start (render.run_date):
# a rerun after midnight writes the same report bytes as the run before it
RUN_EPOCH = str(int(time.time()))


def pipeline_env() -> dict[str, str]:
    """The environment a test runs the pipeline (``dvc``, ``oncorwe``) in: this
    environment's tools first on ``PATH``, a git identity, no analytics, the project root
    found from the working directory (never ``ONCORWE_ROOT``), the session's page date."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        "SOURCE_DATE_EPOCH": RUN_EPOCH,
    }
    env.pop("ONCORWE_ROOT", None)
    return env


def run_cmd(args, cwd, check=True) -> subprocess.CompletedProcess:
    """Run ``args`` in ``cwd`` with :func:`pipeline_env`; with ``check``, a failure raises
    with its output."""
    res = subprocess.run(
        args, cwd=cwd, env=pipeline_env(), capture_output=True, text=True, timeout=900
    )
    if check and res.returncode != 0:
        raise AssertionError(f"{args} failed:\n{res.stdout}\n{res.stderr}")
    return res


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
    run_cmd(["git", "init", "-q"], dst)
    run_cmd(["git", "add", "-A"], dst)
    run_cmd(["git", "commit", "-qm", "init"], dst)
    run_cmd(["dvc", "repro", *targets], dst)


@pytest.fixture(scope="session")
def tiny_repro(tmp_path_factory) -> Path:
    """The project at the tiny profile (3,000 patients), committed in a git repo of its
    own and run end to end by ``dvc repro`` once per session (about 70 s): the
    uninterrupted run that tests compare with. Never change it: copy it with
    :func:`copy_run` first."""
    dst = tmp_path_factory.mktemp("tiny_repro")
    params = copy_project(dst)
    params["cohort"]["profile"] = "tiny"
    commit_and_repro(dst, params)
    return dst


def copy_run(src: Path, dst: Path) -> Path:
    """A copy of the project run ``src`` (git repo, DVC cache, outputs, logs) at ``dst``,
    file times kept, so that DVC and git see the same state there."""
    shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
    return dst


@pytest.fixture(scope="session")
def default_spec() -> Spec:
    return load_spec()


@pytest.fixture(scope="session")
def null_spec(default_spec: Spec) -> Spec:
    """The default world with no planted effects: every drug equals its standard of care."""
    return default_spec.model_copy(update={"planted_effects": []})


@pytest.fixture(scope="session")
def feature_config() -> FeatureConfig:
    return make_feature_config(FeaturesParams())


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


@pytest.fixture(scope="session")
def analysis_dir(tmp_path_factory, world, feature_config) -> Path:
    """The default world's analysis table written as the feature stage does."""
    from oncorwe.features.build import write_features

    out = tmp_path_factory.mktemp("analysis") / "analysis"
    write_features(build_features(world / "omop", feature_config), out, feature_config)
    return out


def small_track_config(seed: int = 1):
    """Track 1 settings for tests: one thread, two tuning trials."""
    from oncorwe.pipeline.params import ComputeParams, HypothesisParams

    hp = HypothesisParams(tuning_trials=2, shap_rows=300)
    return track_config(hp, ComputeParams(threads=1), min_cell=11)


@pytest.fixture(scope="session")
def focused_world(tmp_path_factory, default_spec) -> Path:
    """The default world narrowed to NSCLC and liver cancer (20,000 patients).

    Same populations, hospitals, drugs, policy and planted rules; only two cancer types,
    so that each has the numbers a planted effect needs to be found at test size.
    """
    cancers = {
        "nsclc": default_spec.cancers["nsclc"].model_copy(update={"share": 0.6}),
        "liver": default_spec.cancers["liver"].model_copy(update={"share": 0.4}),
    }
    spec = default_spec.model_copy(update={"cancers": cancers})
    out = tmp_path_factory.mktemp("focused_world")
    generate(spec, 20_000, seed=21, out=out)
    return out


@pytest.fixture(scope="session")
def track1(tmp_path_factory, focused_world, feature_config):
    """Track 1 run once on the focused world (about a minute)."""
    from oncorwe.core.roles import read_table, roles_for_analysis_table
    from oncorwe.features.build import write_features
    from oncorwe.pipeline.hypothesis import run_hypothesis

    base = tmp_path_factory.mktemp("track1")
    analysis = base / "analysis"
    write_features(build_features(focused_world / "omop", feature_config), analysis, feature_config)
    roles = roles_for_analysis_table(analysis)
    res = run_hypothesis(read_table(analysis), roles, small_track_config(), base / "hypothesis")
    return base / "hypothesis", res


@pytest.fixture(scope="session")
def track2(track1, tmp_path_factory) -> Path:
    """Track 2 run once on track 1's output (top 2 hypotheses, short simulations,
    threshold 11): the folder holding its validation.json."""
    from oncorwe.core.roles import read_table, roles_for_analysis_table
    from oncorwe.pipeline.validation import ValidationConfig, read_hypotheses, run_validation

    out, _ = track1
    analysis = out.parent / "analysis"
    cfg = ValidationConfig(
        top_k=2, replicates=500, adaptive_trials=200, threads=1, seed=3, min_cell=11
    )
    path = tmp_path_factory.mktemp("validation_exits") / "validation.json"
    run_validation(
        read_table(analysis),
        roles_for_analysis_table(analysis),
        read_hypotheses(out / "hypotheses.json"),
        pd.read_parquet(out / "splits.parquet"),
        cfg,
        path,
        safety=read_hypotheses(out / "hypotheses.json", "safety"),
    )
    return path.parent


@pytest.fixture(scope="session")
def rendered_reports(track1, track2, tmp_path_factory):
    """Every report of the report stage and its index, rendered once by the stage's own
    functions (its notebooks, parameters and warnings) with the default params on the
    outputs of track 1 and track 2: (reports folder, name -> Report, the data catalog).

    The catalog lays the stage outputs out as the project does (links to the fixtures'
    folders), so the notebooks get the paths the stage gives them."""
    from oncorwe.core.paths import Catalog
    from oncorwe.pipeline.params import Params
    from oncorwe.pipeline.report import index_overview, parser, render_one
    from oncorwe.report.render import write_index

    out, _ = track1
    base = tmp_path_factory.mktemp("rendered")
    data = Catalog(base)
    for link, target in (
        (data.analysis, out.parent / "analysis"),
        (data.hypothesis, out),
        (data.validation, track2 / "validation.json"),
    ):
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
    reports = base / "reports"
    args = parser().parse_args(["--reports-dir", str(reports), "--timeout", "300"])
    params = Params()
    rendered = {name: render_one(name, params, args, data) for name in args.names}
    write_index(reports, overview=index_overview(params, data))
    return reports, rendered, data
