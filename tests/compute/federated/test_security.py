"""Data protection of the federation: where the server listens, TLS refusals, key files.

Real processes on loopback (the server and one process per site), no mocks. A refused
site must end on both sides with a named error within the heartbeat timeout: the site
process with a ``FederationJoinError`` in its error file, the coordinator with an
:class:`~oncorwe.core.errors.OncorweError` naming the site; the seconds are printed
(``pytest -s``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import stat
import sys
import time

import pytest

from oncorwe.compute.federated.server import (
    FederatedConfig,
    FederatedSession,
    TLSConfig,
    federated_config,
    listening_addresses,
    make_tls_material,
)
from oncorwe.core.errors import OncorweError
from oncorwe.core.net import is_loopback
from oncorwe.pipeline.params import FederatedComputeParams
from tests.compute.federated import alive

SITES = ["A", "B"]
HEARTBEAT_S = 4.0  # small, so that a refusal must come within seconds


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls")
    return {
        "good": make_tls_material(root / "good", SITES),
        "other": make_tls_material(root / "other", SITES),  # another CA, same names
    }


# ---------------------------------------------------------------------- listening socket
@pytest.fixture(scope="module")
def open_session(tmp_path_factory):
    """A session with the default configuration (no TLS files given: throw-away ones),
    its stderr, and what it showed while open."""
    work = tmp_path_factory.mktemp("work")
    err = io.StringIO()
    cfg = FederatedConfig(timeout=60, heartbeat_timeout=HEARTBEAT_S)
    seen = {}
    with contextlib.redirect_stderr(err), FederatedSession(SITES, cfg, work_dir=work) as fed:
        server = fed.fleet.procs["server"].pid
        seen["listening"] = list(fed.listening)
        seen["from_proc"] = listening_addresses(server)
        psutil = pytest.importorskip("psutil")
        seen["from_psutil"] = [
            (c.laddr.ip, c.laddr.port)
            for c in psutil.Process(server).net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN
        ]
        seen["server_key_mode"] = _mode(work / "tls" / "server.key")
        # the private keys' base64 body lines, to look for in every log the session leaves
        seen["key_lines"] = {
            line
            for key in (work / "tls").glob("*.key")
            for line in key.read_text().splitlines()
            if line and not line.startswith("-----")
        }
        seen["port"] = fed.port
    seen["tls_left"] = (work / "tls").exists()
    seen["work"] = work
    seen["stderr"] = err.getvalue()
    return cfg, seen


def test_session_reports_where_the_server_really_listens(open_session):
    cfg, seen = open_session
    # an outside reading of the same sockets (psutil) agrees with the coordinator's
    # (a dual-stack socket's IPv4-mapped address read as the IPv4 one, as the coordinator does)
    ips = [(ip.removeprefix("::ffff:"), port) for ip, port in seen["from_psutil"]]
    outside = {f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}" for ip, port in ips}
    assert set(seen["listening"]) == outside
    assert all(a.endswith(f":{seen['port']}") for a in seen["listening"])
    assert seen["listening"] and set(seen["listening"]) <= set(seen["from_proc"])
    print(f"\nconfigured {cfg.address}; the server listens on {seen['listening']}")


def test_server_listens_only_on_the_configured_address(open_session):
    """XGBoost's server binds 0.0.0.0 ([::]); the preloaded bind shim (``make install``)
    keeps it on ``compute.federated.address``."""
    cfg, seen = open_session
    assert seen["listening"]
    assert {a.rpartition(":")[0] for a in seen["listening"]} == {cfg.address}
    assert "every interface" not in seen["stderr"]


SHIM_PROBE = (
    "import socket\n"
    "s = socket.socket(socket.AF_INET6)\n"
    "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n"
    "s.bind(('::', 0)); s.listen()\n"
    "c = socket.create_connection(('127.0.0.1', s.getsockname()[1]), timeout=5)\n"
    "t = socket.socket(); t.bind(('0.0.0.0', 0))\n"
    "u = socket.socket(); u.bind(('127.0.0.1', 0))\n"
    "print(s.getsockname()[0], t.getsockname()[0], u.getsockname()[0])\n"
)


def test_the_bind_shim_rewrites_only_wildcard_binds():
    import subprocess
    import sys

    from oncorwe.compute.federated.server import bind_env

    env = bind_env("localhost")
    assert env, "the bind shim is not built: run make install (it needs a C compiler)"
    assert env["ONCORWE_BIND_ADDRESS"] == "127.0.0.1"
    out = subprocess.run(
        [sys.executable, "-c", SHIM_PROBE],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.split()
    # the dual-stack wildcard serves IPv4 clients on the mapped loopback only
    assert out == ["::ffff:127.0.0.1", "127.0.0.1", "127.0.0.1"]


def test_without_the_shim_the_server_environment_is_unchanged(monkeypatch, tmp_path):
    from oncorwe.compute.federated import server

    monkeypatch.setattr(server.sys, "prefix", str(tmp_path))
    assert server.bind_env("127.0.0.1") == {}


def test_a_wider_listening_socket_is_logged(capsys):
    """Where the shim is not built, the server listens on every interface: the
    coordinator reads its sockets and says so (a listener of this process stands in)."""
    import socket

    from oncorwe.compute.federated.server import _check_listening

    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        port = sock.getsockname()[1]
        where = _check_listening(os.getpid(), port, FederatedConfig(timeout=60))
    assert where == [f"0.0.0.0:{port}"]
    err = capsys.readouterr().err
    assert "[oncorwe] warning: the federated server listens on" in err
    assert "every interface" in err


def test_no_private_key_is_in_a_log_or_a_file_the_session_leaves(open_session):
    cfg, seen = open_session
    work = seen["work"]
    assert seen["key_lines"], "the session made no key to look for"
    texts = {"stderr": seen["stderr"]}
    texts |= {str(p): p.read_text(errors="replace") for p in work.rglob("*") if p.is_file()}
    assert len(texts) > 1, "the session left no status or log file to scan"
    for where, text in texts.items():
        assert not any(line in text for line in seen["key_lines"]), where


def test_without_tls_files_a_session_uses_throw_away_certificates(open_session):
    _, seen = open_session
    assert seen["server_key_mode"] == 0o600
    assert not seen["tls_left"]  # the throw-away keys go with the session
    assert "without TLS" not in seen["stderr"]


def test_a_non_loopback_address_is_refused_unless_allowed():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    with pytest.raises(OncorweError, match=r"'10\.1\.2\.3' is not a loopback address"):
        FederatedConfig(address="10.1.2.3")
    assert FederatedConfig(address="10.1.2.3", allow_non_loopback=True).address == "10.1.2.3"


# ---------------------------------------------------------------------- tls: false
def test_tls_false_is_refused_without_allow_insecure():
    params = FederatedComputeParams.model_construct(
        address="127.0.0.1", port=0, tls=False, allow_insecure=False, tls_dir=None
    )
    with pytest.raises(OncorweError, match=r"compute\.federated\.tls is false.*allow_insecure"):
        federated_config(params, SITES, None)


def test_an_insecure_session_is_logged(tmp_path):
    params = FederatedComputeParams(tls=False, allow_insecure=True, heartbeat_timeout_s=4)
    cfg = federated_config(params, SITES, tmp_path)
    assert cfg.tls is None and cfg.allow_insecure
    err = io.StringIO()
    with contextlib.redirect_stderr(err), FederatedSession(SITES, cfg, work_dir=tmp_path):
        pass
    assert "[oncorwe] warning: the federated server runs without TLS" in err.getvalue()
    assert "any process that can reach its port can join" in err.getvalue()


# ---------------------------------------------------------------------- refused sites
def _refused(cfg: FederatedConfig, work) -> dict:
    """Open a session that must fail; the seconds to each side's named error."""
    t0_wall = time.time()
    t0 = time.monotonic()
    with pytest.raises(OncorweError) as info:
        FederatedSession(SITES, cfg, work_dir=work).open()
    coordinator_at = time.time()
    seconds = time.monotonic() - t0
    status = json.loads((work / "status-B.json").read_text())
    error_file = work / "error-B.txt"
    pids = [json.loads((work / f"status-{s}.json").read_text())["pid"] for s in SITES]
    pids.append(json.loads((work / "server-port.json").read_text())["pid"])
    joining = float(status["joining_since"])
    return {
        "message": str(info.value),
        "site_error": error_file.read_text().splitlines()[0],
        "from_open_s": seconds,
        "site_after_join_s": error_file.stat().st_mtime - joining,
        "coordinator_after_join_s": coordinator_at - joining,
        "site_from_open_s": error_file.stat().st_mtime - t0_wall,
        "left": [p for p in pids if alive(p)],
    }


def _report(name: str, r: dict) -> None:
    print(
        f"\n{name}: coordinator's error {r['from_open_s']:.2f} s after open "
        f"({r['coordinator_after_join_s']:.2f} s after the site began joining); site's error "
        f"{r['site_from_open_s']:.2f} s after open ({r['site_after_join_s']:.2f} s after it "
        f"began joining); heartbeat timeout {HEARTBEAT_S:g} s\n  coordinator: {r['message']}"
        f"\n  site: {r['site_error']}"
    )


def test_site_with_a_certificate_from_another_ca_is_refused_on_both_sides(tls, tmp_path):
    good, other = tls["good"], tls["other"]
    mixed = dataclasses.replace(
        good, client_certs={"A": good.client_certs["A"], "B": other.client_certs["B"]}
    )
    cfg = FederatedConfig(tls=mixed, timeout=60, heartbeat_timeout=HEARTBEAT_S)
    r = _refused(cfg, tmp_path)
    _report("certificate from another CA", r)
    assert r["site_error"].startswith("FederationJoinError: site 'B' was refused")
    assert "refused this site's client certificate" in r["site_error"]
    assert "site 'B'" in r["message"] and "FederationJoinError" in r["message"]
    assert "the server refused" in r["message"]  # the server's side of the handshake
    assert r["site_after_join_s"] <= HEARTBEAT_S
    assert r["coordinator_after_join_s"] <= HEARTBEAT_S
    assert r["left"] == []


def _python_without_tls_for(site: str, folder) -> str:
    """An interpreter for the child processes that starts ``site`` without its TLS
    files (the job file it is given loses them), everything else as usual."""
    wrapper = folder / "python-without-tls"
    wrapper.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "args = sys.argv[1:]\n"
        "if args[:2] == ['-m', 'oncorwe.compute.federated.site']:\n"
        "    job = json.loads(open(args[2]).read())\n"
        f"    if job['site'] == {site!r}:\n"
        "        job['tls'] = None\n"
        "        open(args[2], 'w').write(json.dumps(job))\n"
        "os.execv(sys.executable, [sys.executable, *args])\n"
    )
    wrapper.chmod(0o700)
    return str(wrapper)


def test_site_without_tls_is_refused_on_both_sides(tls, tmp_path):
    cfg = FederatedConfig(
        tls=tls["good"],
        timeout=60,
        heartbeat_timeout=HEARTBEAT_S,
        python=_python_without_tls_for("B", tmp_path),
    )
    work = tmp_path / "work"
    r = _refused(cfg, work)
    _report("site without TLS", r)
    assert json.loads((work / "job-B.json").read_text())["tls"] is None
    assert r["site_error"].startswith("FederationJoinError: site 'B' was refused")
    assert "the server requires TLS and this site has no TLS configured" in r["site_error"]
    assert "site 'B'" in r["message"] and "the server refused" in r["message"]
    assert r["site_after_join_s"] <= HEARTBEAT_S
    assert r["coordinator_after_join_s"] <= HEARTBEAT_S
    assert r["left"] == []


# ---------------------------------------------------------------------- key files
@pytest.mark.parametrize("tool", ["cryptography", "openssl"])
def test_reused_folder_with_readable_keys_gets_new_0600_keys(tmp_path, capsys, tool):
    if tool == "cryptography":
        pytest.importorskip("cryptography")
    first = make_tls_material(tmp_path, SITES, tool=tool)
    old = first.server_key.read_bytes()
    first.server_key.chmod(0o644)
    first.client_certs["A"][0].chmod(0o644)
    again = make_tls_material(tmp_path, SITES, tool=tool)
    keys = sorted(tmp_path.glob("*.key"))
    assert keys and {k.name: _mode(k) for k in keys} == {k.name: 0o600 for k in keys}
    assert again.server_key.read_bytes() != old
    err = capsys.readouterr().err
    assert "[oncorwe] warning: TLS key file(s) ['A.key', 'server.key']" in err
    assert "replaced by new keys with mode 0600" in err


def test_tls_files_with_a_key_others_can_read_are_refused(tmp_path):
    d = tmp_path / "given"
    make_tls_material(d, SITES)
    (d / "B.key").chmod(0o640)
    with pytest.raises(OncorweError, match=r"B\.key' can be read by others \(mode 0o640"):
        TLSConfig.from_dir(d, SITES)
