"""The feature stage's hash key: any source but the synthetic generator needs its own.

Runs of the real stage (``pipeline.features.run`` and ``oncorwe features`` through typer's
CliRunner) on the smallest OMOP input of the feature tests: 300 patients of the default
world at four hospitals.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from oncorwe.cli import app
from oncorwe.core.errors import OncorweError
from oncorwe.core.paths import catalog
from oncorwe.core.pseudonym import pseudonym, pseudonym_params
from oncorwe.features.build import DEV_KEY, MIN_KEY_CHARS, stage_pseudonym_key
from oncorwe.pipeline import features as stage
from oncorwe.pipeline.params import Params

ENV = "ONCORWE_PSEUDONYM_KEY"
ROOT = Path(__file__).resolve().parents[2]


def _person_key(pid, key: str) -> str:
    return pseudonym(key, "person", int(pid))


@pytest.fixture
def project(tmp_path, omop, monkeypatch) -> Path:
    """A project folder whose cohort stage has run (its OMOP tables in place), no key
    in the environment."""
    monkeypatch.delenv(ENV, raising=False)
    root = tmp_path / "project"
    (root / "data" / "cohort").mkdir(parents=True)
    shutil.copytree(omop, catalog(root).omop)
    shutil.copy(ROOT / "dvc.yaml", root / "dvc.yaml")
    (root / "params.yaml").write_text("{}\n")
    assert not any((p / ".git").exists() for p in (tmp_path, *tmp_path.parents))
    return root


@pytest.fixture
def key() -> str:
    return secrets.token_hex(32)


def _params(source: str = "omop", key_file: Path | str | None = None) -> Params:
    cohort = {"source": source}
    if source == "omop":
        cohort["omop_dir"] = "/an/extract"  # read by the cohort stage only
    return Params.model_validate(
        {
            "cohort": cohort,
            "features": {"pseudonym_key_file": None if key_file is None else str(key_file)},
            "compute": {"threads": 1},
        }
    )


def _key_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def _person_keys(project: Path) -> pd.Series:
    parts = sorted(catalog(project).analysis.glob("site=*/part-0.parquet"))
    assert parts
    return pd.concat(pq.read_table(p).to_pandas()["person_key"] for p in parts)


def _persons(project: Path) -> pd.Series:
    return pd.read_parquet(catalog(project).omop / "person.parquet")["person_id"]


def test_an_omop_source_without_a_key_is_refused_naming_both_settings(project):
    with pytest.raises(OncorweError) as err:
        stage.run(_params(), catalog(project))
    msg = str(err.value)
    assert "cohort.source is 'omop'" in msg
    assert f"no environment variable {ENV} (params.yaml features.pseudonym_key_env)" in msg
    assert "no params.yaml features.pseudonym_key_file" in msg
    assert "secrets.token_hex(32)" in msg and "~/.oncorwe/pseudonym.key" in msg
    assert not catalog(project).analysis.exists()


def test_the_refusal_is_one_paragraph_with_exit_status_two(project, monkeypatch):
    (project / "params.yaml").write_text(
        yaml.safe_dump({"cohort": {"source": "omop", "omop_dir": "/an/extract"}})
    )
    monkeypatch.setenv("ONCORWE_ROOT", str(project))
    result = CliRunner().invoke(app, ["features", "--params", str(project / "params.yaml")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: features: cohort.source is 'omop'")
    assert "Traceback" not in result.output
    assert not catalog(project).analysis.exists()


def test_a_key_in_the_environment_is_used(project, key, monkeypatch):
    monkeypatch.setenv(ENV, key)
    stage.run(_params(), catalog(project))
    expected = {_person_key(pid, key) for pid in _persons(project)}
    assert set(_person_keys(project)) <= expected


def test_a_key_file_outside_the_project_with_mode_0600_is_used(project, key, tmp_path):
    path = _key_file(tmp_path / "home" / ".oncorwe" / "pseudonym.key", key)
    stage.run(_params(key_file=path), catalog(project))
    expected = {_person_key(pid, key) for pid in _persons(project)}
    assert set(_person_keys(project)) <= expected


def test_a_key_file_others_may_read_is_refused_naming_the_chmod(project, key, tmp_path):
    path = _key_file(tmp_path / "home" / "pseudonym.key", key, mode=0o644)
    with pytest.raises(OncorweError, match=r"permissions 0644.*0600 or stricter") as err:
        stage.run(_params(key_file=path), catalog(project))
    assert f"run `chmod 600 {path}`" in str(err.value)
    assert not catalog(project).analysis.exists()


def test_a_key_file_its_group_may_read_is_refused(project, key, tmp_path):
    path = _key_file(tmp_path / "home" / "pseudonym.key", key, mode=0o640)
    with pytest.raises(OncorweError, match="permissions 0640"):
        stage.run(_params(key_file=path), catalog(project))


@pytest.mark.parametrize("where", ["project root", "data folder", "symlink from outside"])
def test_a_key_file_inside_the_project_is_refused(project, key, tmp_path, where):
    inside = project / ("pseudonym.key" if where == "project root" else "data/pseudonym.key")
    path = _key_file(inside, key)
    if where == "symlink from outside":
        path = tmp_path / "home" / "pseudonym.key"
        path.parent.mkdir()
        path.symlink_to(inside)
    with pytest.raises(OncorweError, match=r"lies inside the project's folder") as err:
        stage.run(_params(key_file=path), catalog(project))
    assert "pseudonym_key_file" in str(err.value)
    assert not catalog(project).analysis.exists()


def test_a_relative_key_file_is_read_from_the_project_and_so_refused(project, key):
    _key_file(project / "secrets" / "pseudonym.key", key)
    with pytest.raises(OncorweError, match="lies inside the project's folder"):
        stage.run(_params(key_file="secrets/pseudonym.key"), catalog(project))


def test_a_missing_key_file_is_named(project, tmp_path):
    path = tmp_path / "home" / "nope.key"
    with pytest.raises(OncorweError, match=r"nope.key is not a file, found nothing there"):
        stage.run(_params(key_file=path), catalog(project))


@pytest.mark.parametrize("via", ["environment", "file"])
def test_a_short_key_is_refused(project, tmp_path, monkeypatch, via):
    short = secrets.token_hex(MIN_KEY_CHARS // 2)[:-1]  # 31 characters
    if via == "environment":
        monkeypatch.setenv(ENV, short)
        params = _params()
    else:
        params = _params(key_file=_key_file(tmp_path / "home" / "k", short))
    with pytest.raises(OncorweError, match="holds a key of 31 characters; expected one line") as e:
        stage.run(params, catalog(project))
    assert short not in str(e.value)


def test_a_key_of_32_characters_is_enough(monkeypatch):
    monkeypatch.setenv(ENV, "a" * MIN_KEY_CHARS)
    assert stage_pseudonym_key("omop", ENV, None, project=Path("/p")) == "a" * MIN_KEY_CHARS


def test_the_development_key_is_refused_for_an_omop_source(monkeypatch):
    monkeypatch.setenv(ENV, DEV_KEY)
    with pytest.raises(OncorweError, match="the public development key"):
        stage_pseudonym_key("omop", ENV, None, project=Path("/p"))


def test_a_key_file_and_a_variable_with_different_keys_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, secrets.token_hex(32))
    path = _key_file(tmp_path / "k", secrets.token_hex(32))
    with pytest.raises(OncorweError, match="hold different keys"):
        stage_pseudonym_key("omop", ENV, str(path), project=tmp_path / "project")


def test_the_synthetic_source_without_a_key_keeps_the_development_keys(project):
    stage.run(_params(source="synthetic"), catalog(project))
    keys = _person_keys(project)
    assert set(keys) <= {_person_key(pid, DEV_KEY) for pid in _persons(project)}
    assert keys.nunique() > 200


def test_the_key_is_in_no_file_the_stage_writes_and_in_no_output_line(project, key, tmp_path):
    path = _key_file(tmp_path / "home" / "pseudonym.key", key)
    (project / "params.yaml").write_text(
        yaml.safe_dump(
            {
                "cohort": {"source": "omop", "omop_dir": "/an/extract"},
                "features": {"pseudonym_key_file": str(path)},
                "compute": {"threads": 1},
            }
        )
    )
    before = {p for p in project.rglob("*") if p.is_file()}
    with pytest.MonkeyPatch.context() as m:
        m.setenv("ONCORWE_ROOT", str(project))
        result = CliRunner().invoke(app, ["features", "--params", str(project / "params.yaml")])
    assert result.exit_code == 0, result.output
    written = {p for p in project.rglob("*") if p.is_file()} - before
    assert any(p.suffix == ".parquet" for p in written)
    assert catalog(project).metrics("features") in written
    # neither the key nor the padded forms the query is given (raw or as hex)
    secrets_ = [key.encode()]
    for pad in pseudonym_params(key).values():
        secrets_ += [pad, pad.hex().encode()]
    for p in written:
        content = p.read_bytes()
        assert not any(s in content for s in secrets_), p
    for s in secrets_:
        assert s.decode(errors="replace") not in result.stdout + result.stderr
    assert result.stderr.strip()  # the stage did log; none of it holds the key
    assert set(_person_keys(project)) <= {_person_key(pid, key) for pid in _persons(project)}
