"""JupyterLab starts on the notebooks offline and guards its API with the token."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from ..conftest import ROOT

pytestmark = pytest.mark.slow
TOKEN = "oncorwe-test-token"
READY_TIMEOUT_S = 60


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


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a free loopback port; always terminated."""
    tmp = tmp_path_factory.mktemp("lab")
    port = _free_port()
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_PREFER_ENV_PATH": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--port={port}",
        "--ip=127.0.0.1",
        "--ServerApp.port_retries=0",
        f"--ServerApp.token={TOKEN}",
        "--allow-root",
        f"--ServerApp.root_dir={ROOT / 'notebooks'}",
    ]
    log = open(tmp / "lab.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"jupyter lab exited with {proc.returncode}:\n"
                    + (tmp / "lab.log").read_text(errors="replace")[-3000:]
                )
            try:
                if _get(f"{base}/api")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"jupyter lab not ready within {READY_TIMEOUT_S} s:\n"
                    + (tmp / "lab.log").read_text(errors="replace")[-3000:]
                )
            time.sleep(0.25)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()


def test_kernels_api_answers_with_the_token(lab):
    status, body = _get(f"{lab}/api/kernels", TOKEN)
    assert status == 200
    assert isinstance(json.loads(body), list)


def test_kernels_api_refuses_without_the_token(lab):
    assert _get(f"{lab}/api/kernels")[0] == 403


def test_contents_api_lists_the_notebooks(lab):
    status, body = _get(f"{lab}/api/contents", TOKEN)
    assert status == 200
    names = {item["name"] for item in json.loads(body)["content"]}
    assert "00_world.ipynb" in names


def test_the_lab_page_is_served(lab):
    status, body = _get(f"{lab}/lab?token={TOKEN}")
    assert status == 200 and b"JupyterLab" in body
