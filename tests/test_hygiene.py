"""The commit checks (``tools/hooks/``, run by pre-commit): each script run alone on files
it must refuse or pass, the hooks' scripts exist, and the repository's own tracked files
pass them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HOOKS = ROOT / "tools" / "hooks"
# assembled here so that this file itself holds no key block
BEGIN, END = "-----BEGIN ", "-----END "


def check(script: str, *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(HOOKS / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def notebook(path: Path, outputs: list, execution_count: int | None = None) -> Path:
    cell = {
        "cell_type": "code",
        "execution_count": execution_count,
        "id": "c1",
        "metadata": {},
        "outputs": outputs,
        "source": ["1 + 1"],
    }
    md = {"cell_type": "markdown", "id": "m1", "metadata": {}, "source": ["# title"]}
    nb = {"cells": [md, cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))
    return path


@pytest.mark.parametrize("kind", ["RSA PRIVATE KEY", "PRIVATE KEY", "OPENSSH PRIVATE KEY"])
def test_a_pem_private_key_is_refused(tmp_path, kind):
    key = tmp_path / "settings.txt"
    key.write_text(f"token: x\n{BEGIN}{kind}-----\nMIIEowIBAAKCAQEA\n{END}{kind}-----\n")
    res = check("check_private_keys.py", key)
    assert res.returncode == 1
    assert f"{key}:2: a private key" in res.stdout


def test_a_key_file_is_refused_by_its_name(tmp_path):
    key = tmp_path / "pseudonym.key"
    key.write_text("0123456789abcdef\n")
    res = check("check_private_keys.py", key)
    assert res.returncode == 1 and str(key) in res.stdout


def test_a_public_certificate_and_plain_text_pass(tmp_path):
    cert = tmp_path / "ca.pem"
    cert.write_text(f"{BEGIN}CERTIFICATE-----\nMIIB\n{END}CERTIFICATE-----\n")
    text = tmp_path / "notes.md"
    text.write_text("the key is read from ONCORWE_PSEUDONYM_KEY\n")
    assert check("check_private_keys.py", cert, text).returncode == 0


def test_a_file_over_the_limit_is_refused_and_one_under_it_passes(tmp_path):
    big, small = tmp_path / "cohort.parquet", tmp_path / "params.yaml"
    with open(big, "wb") as f:
        f.truncate(5_000_001)  # sparse: no disk used
    small.write_bytes(b"x" * 1000)
    res = check("check_large_files.py", "--max-mb", "5", big, small)
    assert res.returncode == 1
    assert f"{big}: 5.0 MB" in res.stdout and str(small) not in res.stdout
    assert check("check_large_files.py", small).returncode == 0


def test_the_size_limit_is_five_mb_unless_told(tmp_path):
    f = tmp_path / "table.csv"
    with open(f, "wb") as fh:
        fh.truncate(4_000_000)
    assert check("check_large_files.py", f).returncode == 0
    assert check("check_large_files.py", "--max-mb", "3", f).returncode == 1


@pytest.mark.parametrize(
    "outputs, count",
    [([{"output_type": "stream", "name": "stdout", "text": ["2\n"]}], 1), ([], 3)],
    ids=["outputs", "execution-count"],
)
def test_a_notebook_with_outputs_is_refused(tmp_path, outputs, count):
    nb = notebook(tmp_path / "01.ipynb", outputs, count)
    res = check("check_notebook_outputs.py", nb)
    assert res.returncode == 1
    assert f"{nb}: 1 code cell(s)" in res.stdout and "(1)" in res.stdout


def test_a_clean_notebook_passes(tmp_path):
    assert check("check_notebook_outputs.py", notebook(tmp_path / "01.ipynb", [])).returncode == 0


def test_a_notebook_that_is_not_json_is_refused(tmp_path):
    nb = tmp_path / "broken.ipynb"
    nb.write_text("{not json")
    res = check("check_notebook_outputs.py", nb)
    assert res.returncode == 1 and "not a notebook" in res.stdout


def test_every_hook_is_local_and_its_script_exists():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = [h for repo in config["repos"] for h in repo["hooks"]]
    assert {repo["repo"] for repo in config["repos"]} == {"local"}  # nothing downloaded
    assert {"notebook-outputs", "large-files", "private-keys", "ruff"} <= {h["id"] for h in hooks}
    for h in hooks:
        assert h["language"] == "system"
        scripts = [w for w in h["entry"].split() if w.startswith("tools/")]
        assert all((ROOT / s).is_file() for s in scripts), h


def tracked(*patterns: str) -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(
        ["git", "ls-files", "-z", *patterns], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [str(ROOT / p) for p in out.split("\0") if p]


def test_the_tracked_notebooks_have_no_outputs():
    notebooks = tracked("*.ipynb")
    assert notebooks
    res = check("check_notebook_outputs.py", *notebooks)
    assert res.returncode == 0, res.stdout


@pytest.mark.parametrize("script", ["check_private_keys.py", "check_large_files.py"])
def test_the_tracked_files_pass(script):
    res = check(script, *tracked())
    assert res.returncode == 0, res.stdout
