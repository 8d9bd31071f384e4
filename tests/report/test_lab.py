"""`make lab`: the kernel it offers, the notebooks run from notebooks/, the server itself.

JupyterLab starts each kernel in the notebook's folder (``notebooks/``), not at the
project root where the report stage runs them: the notebooks' relative paths must still
mean the project's data. The server tests start JupyterLab with the Makefile's own
``lab`` command line (as root too), read the token URL it prints, query its API and stop
it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from oncorwe.core.paths import project_root
from oncorwe.report import describe
from oncorwe.report import hypothesis_view as hv
from oncorwe.report import validation_view as vv
from oncorwe.report.render import execute_notebook, read_metrics

from ..conftest import ROOT

KERNEL = "oncorwe"
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20
NOTEBOOKS = ROOT / "notebooks"


@pytest.fixture
def no_root_override(monkeypatch):
    """The project root found as a researcher's kernel finds it: never ONCORWE_ROOT."""
    monkeypatch.delenv("ONCORWE_ROOT", raising=False)


# --- the kernel `make install` registers ----------------------------------------------


def test_make_install_registers_the_oncorwe_kernel_of_this_environment():
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        pytest.fail(f"no Jupyter kernel {KERNEL!r} in {sys.prefix}: run `make install`")
    assert spec.display_name == "Python (oncorwe)"
    assert spec.language == "python"
    # installed inside this environment (--sys-prefix), starting this environment's python
    assert Path(spec.resource_dir).resolve().is_relative_to(Path(sys.prefix).resolve())
    assert Path(spec.argv[0]).absolute().parent == Path(sys.executable).absolute().parent
    assert "ipykernel_launcher" in spec.argv


def test_the_committed_notebooks_hold_no_outputs_and_relative_default_paths():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), path.name
        params = code[0]
        assert "parameters" in params.metadata.get("tags", []), path.name
        # the defaults are the project's data folders, relative to the project root
        paths = re.findall(r'"([^"]*/[^"]*)"', params.source)
        assert paths and all(p.startswith("data/") for p in paths), path.name


# --- the loaders resolve relative paths from the project root -------------------------


def _fake_project(root: Path) -> Path:
    """A project root (params.yaml + dvc.yaml) with one tiny output of each stage."""
    root.mkdir()
    (root / "params.yaml").write_text("{}\n")
    (root / "dvc.yaml").write_text("stages: {}\n")
    (root / "notebooks").mkdir()
    analysis = root / "data" / "features" / "analysis"
    (analysis / "site=h1").mkdir(parents=True)
    pq.write_table(pa.table({"site": ["h1"], "age": [61]}), analysis / "site=h1" / "part-0.parquet")
    (analysis / "roles.json").write_text(json.dumps({"outcome": ["age"]}))
    hyp = root / "data" / "hypothesis"
    hyp.mkdir(parents=True)
    (hyp / "hypotheses.json").write_text(json.dumps({"hypotheses": [], "not_testable": []}))
    (hyp / "summary.json").write_text(json.dumps({"n_candidates": 0}))
    val = root / "data" / "validation"
    val.mkdir(parents=True)
    (val / "validation.json").write_text(json.dumps({"hypotheses": [], "marker": "fake"}))
    return root


def _load_all() -> tuple:
    table, roles = describe.load_analysis("data/features/analysis")
    hyps, summary = hv.load_results("data/hypothesis")
    untested = hv.not_testable_table("data/hypothesis")
    res = vv.load_validation("data/validation/validation.json")
    return table, roles, hyps, summary, untested, res


def test_loaders_resolve_relative_paths_from_the_notebooks_folder(
    tmp_path, monkeypatch, no_root_override
):
    root = _fake_project(tmp_path / "project")
    monkeypatch.chdir(root / "notebooks")  # where JupyterLab starts a notebook's kernel
    assert project_root() == root
    table, roles, hyps, summary, untested, res = _load_all()
    assert table["age"].tolist() == [61] and roles == {"outcome": ["age"]}
    assert hyps == [] and summary == {"n_candidates": 0} and untested.empty
    assert res["marker"] == "fake"


def test_loaders_resolve_relative_paths_against_oncorwe_root_from_any_folder(tmp_path, monkeypatch):
    root = _fake_project(tmp_path / "project")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("ONCORWE_ROOT", str(root))
    assert _load_all()[-1]["marker"] == "fake"
    # an absolute path is taken as it is
    absolute = root / "data" / "validation" / "validation.json"
    monkeypatch.setenv("ONCORWE_ROOT", str(elsewhere))
    assert vv.load_validation(absolute)["marker"] == "fake"
    assert hv.load_results(root / "data" / "hypothesis")[1] == {"n_candidates": 0}


# --- each notebook run as JupyterLab runs it: kernel in notebooks/, default parameters --

DATA = {
    "00_world": ROOT / "data" / "features" / "analysis",
    "01_hypothesis": ROOT / "data" / "hypothesis",
    "02_validation": ROOT / "data" / "validation" / "validation.json",
}


def _expected(name: str) -> dict:
    """The numbers the notebook must record, read straight from the project's data."""
    if name == "00_world":
        table, _ = describe.load_analysis(DATA[name])
        return {"lines": len(table)}
    if name == "01_hypothesis":
        hyps, summary = hv.load_results(DATA[name])
        return {
            "candidates": summary["n_candidates"],
            "confirmed": sum(bool(h["confirmed"]) for h in hyps),
        }
    return {"go": vv.headline(vv.load_validation(DATA[name]))["go"]}


@pytest.mark.notebook
@pytest.mark.parametrize("name", sorted(DATA))
def test_notebook_runs_from_the_notebooks_folder_on_the_project_data(
    name, tmp_path, no_root_override
):
    needed = [DATA[name]] + ([DATA["00_world"]] if name == "01_hypothesis" else [])
    missing = [str(p.relative_to(ROOT)) for p in needed if not p.exists()]
    if missing:
        pytest.skip(f"no pipeline output {', '.join(missing)} (run `make repro` first)")
    out = execute_notebook(
        NOTEBOOKS / f"{name}.ipynb", tmp_path / f"{name}.ipynb", cwd=NOTEBOOKS, timeout=300
    )
    metrics = read_metrics(out)
    for key, value in _expected(name).items():
        assert metrics[key] == value, key
    assert [p.name for p in tmp_path.iterdir()] == [f"{name}.ipynb"]


# --- a real JupyterLab started by the Makefile's `lab` command line --------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


class Lab:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path, runtime: Path):
        self.proc, self.port, self.log, self.runtime = proc, port, log, runtime
        self.base = f"http://127.0.0.1:{port}"
        self.token = ""

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def fail(self, why: str):
        pytest.fail(f"{why}:\n{self.text()[-3000:]}")

    def server_files(self) -> list[Path]:
        return sorted(self.runtime.glob("jpserver-*.json"))

    def stop(self) -> int:
        """SIGTERM to `make` and the server (one process group); their exit status."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT_S)
            self.fail(f"`make lab` still running {STOP_TIMEOUT_S} s after SIGTERM")


def _wait_ready(lab: Lab) -> None:
    """Until the log shows the token URL and /api/status answers with that token."""
    url = re.compile(rf"http://127\.0\.0\.1:{lab.port}/lab\?token=([0-9a-f]+)")
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if lab.proc.poll() is not None:
            lab.fail(f"`make lab` exited with {lab.proc.returncode}")
        if not lab.token and (m := url.search(lab.text())):
            lab.token = m.group(1)
        if lab.token:
            try:
                if _get(f"{lab.base}/api/status", lab.token)[0] == 200:
                    return
            except OSError:
                pass
        if time.monotonic() > deadline:
            lab.fail(f"no token URL or no /api/status answer within {READY_TIMEOUT_S} s")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`make lab` on a free loopback port (install taken as done: `-o install`), with
    this environment's tools and Jupyter folders of its own; always stopped."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    tmp = tmp_path_factory.mktemp("lab")
    port = _free_port()
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
    }
    for name in ("JUPYTER_TOKEN", "JUPYTER_PORT", "ONCORWE_ROOT"):
        env.pop(name, None)
    cmd = [
        make,
        "-s",
        "--no-print-directory",
        "-C",
        str(ROOT),
        "-o",
        "install",
        "lab",
        f"BIN={Path(sys.executable).parent}",
        f"LAB_PORT={port}",
        "LAB_ARGS=--ServerApp.port_retries=0",
    ]
    log_path = tmp / "lab.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=tmp,  # `make -C` starts it at the project root wherever it is called from
            start_new_session=True,
        )
    server = Lab(proc, port, log_path, tmp / "runtime")
    try:
        _wait_ready(server)
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_make_lab_serves_the_notebooks_folder_on_loopback(lab):
    (info_file,) = lab.server_files()
    info = json.loads(info_file.read_text())
    assert Path(info["root_dir"]) == NOTEBOOKS
    assert info["hostname"] == "127.0.0.1" and info["port"] == lab.port
    cmdline = Path(f"/proc/{info['pid']}/cmdline")
    if cmdline.exists():  # Linux: --allow-root exactly when running as root
        args = cmdline.read_bytes().split(b"\0")
        assert (b"--allow-root" in args) == (os.getuid() == 0)
        assert b"--no-browser" in args
    status, body = _get(f"{lab.base}/api/contents", lab.token)
    assert status == 200
    names = {item["name"] for item in json.loads(body)["content"]}
    assert {"00_world.ipynb", "01_hypothesis.ipynb", "02_validation.ipynb"} <= names


@pytest.mark.slow
def test_make_lab_offers_the_oncorwe_kernel(lab):
    status, body = _get(f"{lab.base}/api/kernelspecs", lab.token)
    assert status == 200
    specs = json.loads(body)["kernelspecs"]
    assert KERNEL in specs
    assert specs[KERNEL]["spec"]["display_name"] == "Python (oncorwe)"


@pytest.mark.slow
def test_make_lab_guards_its_api_with_the_printed_token(lab):
    assert _get(f"{lab.base}/api/kernels")[0] == 403
    assert _get(f"{lab.base}/api/kernels", "not-" + lab.token)[0] == 403
    status, body = _get(f"{lab.base}/lab?token={lab.token}")
    assert status == 200 and b"JupyterLab" in body


@pytest.mark.slow
def test_make_lab_stops_on_sigterm(lab):
    (info_file,) = lab.server_files()
    lab.stop()
    # the server shut down cleanly: its runtime file removed, the port closed
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while info_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not info_file.exists()
    with pytest.raises(OSError):
        _get(f"{lab.base}/api/status", lab.token)
