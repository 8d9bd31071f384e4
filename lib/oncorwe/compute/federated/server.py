"""The coordinator: a federated XGBoost server and one process per hospital.

:func:`federated_train` starts XGBoost's federated (gRPC) server in a child process,
then one site process per hospital (:mod:`oncorwe.compute.federated.site`), each given only the
path of its own Parquet partition; the sites train one model together, exchanging
gradient histograms through the server, and rank 0 returns the model. The coordinator
watches every process and stops them all — on success, failure, timeout or
``KeyboardInterrupt`` — before it returns or raises:

- each child runs in its own process group (``start_new_session``), so stopping the
  group also stops anything it started; it also exits by itself when the coordinator
  disappears (a watchdog on the parent pid);
- a site that exits non-zero, stops sending heartbeats for ``heartbeat_timeout`` seconds
  (hung, stopped, swapped out), or has not finished after ``timeout`` seconds ends the run
  with an :class:`~oncorwe.core.errors.OncorweError` naming the site; no model file is written;
- a site the server refuses (a certificate from another CA, no TLS against a TLS server)
  ends the run too: XGBoost's client would wait for ever, so the site tests its
  connection first and stops with a ``FederationJoinError`` saying why (also when its
  join stalls for half the heartbeat timeout), and the coordinator names the site, with
  the TLS handshakes the server's log shows it refused; a site still joining after the
  full heartbeat timeout is named all the same;
- the model reaches ``model_path`` only after it loads, by an atomic rename.

Network
-------
The server listens on the port given, or on one the operating system picks (``port=0``,
the default: the server reports it back, so there is no race between choosing and
binding it); sites connect to ``address:port`` (default ``127.0.0.1``; another host only
with ``allow_non_loopback``: every site runs on this machine).

**Binding to ``address``.** XGBoost's federated server (up to 3.2 at least) takes a port
and no host: its C++ code listens on ``"0.0.0.0:" + port``, which gRPC opens as a
dual-stack wildcard (``[::]``), every interface. The server process is started with the
bind shim preloaded (:func:`bind_env`, built by ``make install`` from
``tools/bindto/bindto.c``), which rewrites that wildcard to ``address``; where the shim
is missing it listens everywhere. In both cases TLS is on unless ``allow_insecure`` says otherwise (no ``tls`` given:
throw-away certificates for the run), so the server accepts only clients holding a
certificate signed by this federation's CA; after start the coordinator reads the
server's listening sockets (:func:`listening_addresses`) and logs a warning when they
are wider than ``address``. With :class:`TLSConfig` the server requires and verifies a
client certificate signed by ``client_ca``, and the sites verify the server's certificate
against ``server_ca``. :func:`make_tls_material` writes throw-away certificates (a CA,
a server certificate for ``localhost`` / ``127.0.0.1`` and one client certificate per
site) with the ``cryptography`` package, or the ``openssl`` command where it is missing;
private keys are mode 0600, and :meth:`TLSConfig.check` refuses a key others can read.

Example
-------
>>> from oncorwe.compute.federated.server import FederatedConfig
>>> FederatedConfig(timeout=120).address
'127.0.0.1'
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from oncorwe.compute.federated.binning import BinningContract, contract_from_summaries
from oncorwe.core.errors import OncorweError
from oncorwe.core.net import is_loopback
from oncorwe.core.paths import resolve
from oncorwe.core.privacy import DEFAULT_MIN_CELL

__all__ = [
    "FederatedConfig",
    "FederatedRun",
    "FederatedSession",
    "TLSConfig",
    "federated_contract",
    "federated_summaries",
    "federated_train",
    "listening_addresses",
    "make_tls_material",
]

# The refusal of ``compute.federated.tls: false`` without ``allow_insecure: true``.
_INSECURE_REFUSAL = (
    "compute.federated.tls is false but compute.federated.allow_insecure is not true: "
    "without TLS any process that can reach the federated server's port (XGBoost's server "
    "listens on every interface) can join the federation as a site and read the gradient "
    "histograms; expected tls: true (the default, with throw-away certificates unless "
    "tls_dir is set), or allow_insecure: true to run without TLS on purpose"
)

# Exit status of a server that listens but cannot tell which port the OS gave it.
_NO_PORT = 4
_STAGES = (
    "started",
    "reading",
    "binning",
    "summarizing",
    "connecting",
    "matrix",
    "training",
    "done",
    "ready",
    "stopped",
)


def _warn(msg: str) -> None:
    print(f"[oncorwe] warning: {msg}", file=sys.stderr, flush=True)


def _open_to_others(path: Path) -> bool:
    return bool(Path(path).stat().st_mode & 0o077)


# ---------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class TLSConfig:
    """Certificate files of a TLS-secured federation (PEM).

    Parameters
    ----------
    server_key, server_cert : path
        The server's private key and certificate (chain).
    client_ca : path
        The certificate(s) the server trusts for client certificates (XGBoost's
        ``client_cert_path``); every site's certificate must chain to it.
    server_ca : path
        What the sites trust for the server's certificate (XGBoost's
        ``federated_server_cert_path``).
    client_certs : mapping of site to (key path, certificate path)
        Each site's own key and certificate.
    """

    server_key: Path
    server_cert: Path
    client_ca: Path
    server_ca: Path
    client_certs: Mapping[str, tuple[Path, Path]] = field(default_factory=dict)

    @classmethod
    def from_dir(cls, directory: str | os.PathLike[str], sites: Sequence[str]) -> TLSConfig:
        """Certificates in the layout :func:`make_tls_material` writes: ``ca.pem``,
        ``server.key``, ``server.pem`` and ``<site>.key`` / ``<site>.pem`` per site."""
        d = Path(directory)
        tls = cls(
            server_key=d / "server.key",
            server_cert=d / "server.pem",
            client_ca=d / "ca.pem",
            server_ca=d / "ca.pem",
            client_certs={s: (d / f"{s}.key", d / f"{s}.pem") for s in sites},
        )
        tls.check()
        return tls

    def for_site(self, site: str) -> dict[str, str]:
        if site not in self.client_certs:
            raise OncorweError(f"TLS: no client certificate for site {site!r}")
        key, cert = self.client_certs[site]
        return {"server_ca": str(self.server_ca), "client_key": str(key), "client_cert": str(cert)}

    def check(self) -> None:
        """Every file is there and no private key can be read by others."""
        paths = [self.server_key, self.server_cert, self.client_ca, self.server_ca]
        paths += [p for pair in self.client_certs.values() for p in pair]
        missing = [str(p) for p in paths if not Path(p).is_file()]
        if missing:
            raise OncorweError(f"TLS: missing certificate file(s) {missing[:4]}")
        keys = [self.server_key, *(k for k, _ in self.client_certs.values())]
        exposed = [Path(k) for k in keys if _open_to_others(k)]
        if exposed:
            k = exposed[0]
            raise OncorweError(
                f"TLS: private key {str(k)!r} can be read by others "
                f"(mode {oct(k.stat().st_mode & 0o777)}; {len(exposed)} such key(s)); a private "
                "key must be mode 0600. Make new certificates if others may have read it, or "
                "chmod 600 it if you are sure nobody did"
            )


@dataclass(frozen=True)
class FederatedConfig:
    """How the coordinator runs a federation.

    Parameters
    ----------
    address : str, default "127.0.0.1"
        Host the sites connect to; a loopback address unless ``allow_non_loopback``. (The
        server itself listens on every interface: XGBoost offers no bind address.)
    port : int, default 0
        Server port; 0 lets the operating system pick a free one.
    tls : TLSConfig or None
        None: throw-away certificates made for the run (in its work folder, removed
        after it), or no TLS at all where ``allow_insecure`` is true.
    allow_insecure : bool, default False
        With ``tls=None``, run without TLS (a warning is logged): any process that can
        reach the port, on any interface, can then join the federation.
    allow_non_loopback : bool, default False
        Let ``address`` be a host other than loopback.
    timeout : float, default 3600
        Seconds the whole run may take, start-up included.
    heartbeat_timeout : float, default 30
        A site silent for this long is declared hung.
    start_timeout : float, default 60
        Seconds for the server to report its port and for each site to report in.
    python : str
        Interpreter for the child processes (default: this one).
    """

    address: str = "127.0.0.1"
    port: int = 0
    tls: TLSConfig | None = None
    allow_insecure: bool = False
    allow_non_loopback: bool = False
    timeout: float = 3600.0
    heartbeat_timeout: float = 30.0
    start_timeout: float = 60.0
    python: str = sys.executable

    def __post_init__(self) -> None:
        if not 0 <= int(self.port) <= 65535:
            raise OncorweError(f"federated: port must be in [0, 65535]; got {self.port}")
        if not self.timeout > 0 or not self.heartbeat_timeout > 0 or not self.start_timeout > 0:
            raise OncorweError("federated: timeouts must be > 0")
        if not is_loopback(self.address) and not self.allow_non_loopback:
            raise OncorweError(
                f"federated: address {self.address!r} is not a loopback address; every site "
                "runs on this machine, so the sites connect over loopback (127.0.0.1) unless "
                "allow_non_loopback is true (compute.federated.allow_non_loopback)"
            )


@dataclass
class FederatedRun:
    """What a federated training run returns.

    Attributes
    ----------
    booster : xgboost.Booster
    manifest : dict
        Per site: ``rank``, ``pid``, ``partition`` (the path it was given), ``opened``
        (the files it read), ``n_rows`` (rows trained on), ``n_unlabeled`` (rows left out
        for a missing label).
    server_pid : int
    port : int
    seconds : float
        Wall time of the run.
    """

    booster: Any
    manifest: dict[str, dict[str, Any]]
    server_pid: int
    port: int
    seconds: float


# ---------------------------------------------------------------------- processes
def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the folder holding `oncorwe`
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class _Fleet:
    """Child processes, each the leader of its own process group."""

    def __init__(self, work: Path, python: str) -> None:
        self.work = work
        self.python = python
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    def start(
        self, name: str, argv: Sequence[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        log = self.work / f"log-{name}.txt"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                [self.python, *argv],
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env={**_child_env(), **(env or {})},
                cwd=str(self.work),
                start_new_session=True,
            )
        self.procs[name] = proc
        self.logs[name] = log
        return proc

    def log_tail(self, name: str, n: int = 600) -> str:
        try:
            text = self.logs[name].read_text(errors="replace")
        except OSError:
            return ""
        return text[-n:].strip()

    def stop_all(self, grace: float = 2.0) -> None:
        live = [p for p in self.procs.values() if p.poll() is None]
        for p in live:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGTERM)
                os.killpg(
                    p.pid, signal.SIGCONT
                )  # a stopped process acts on SIGTERM only when continued
        deadline = time.monotonic() + grace
        for p in live:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
        for p in live:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@contextlib.contextmanager
def _work_dir(work_dir: str | os.PathLike[str] | None) -> Iterator[Path]:
    if work_dir is not None:
        p = Path(work_dir)
        p.mkdir(parents=True, exist_ok=True)
        yield p
        return
    p = Path(tempfile.mkdtemp(prefix="oncorwe-federated-"))
    try:
        yield p
    finally:
        shutil.rmtree(p, ignore_errors=True)


def _clean(work: Path) -> None:
    """Remove a previous run's results from a reused work folder."""
    for pattern in (
        "status-*.json",
        "error-*.txt",
        "summary-*.json",
        "model.json",
        "model-*.json",
        "server-port.json",
    ):
        for f in work.glob(pattern):
            f.unlink(missing_ok=True)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _free_port(host: str) -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class _NoPortError(Exception):
    pass


def _launch_server(fleet: _Fleet, n_workers: int, cfg: FederatedConfig, port: int) -> Path:
    """Start the server process; it writes ``server-port.json`` once it listens."""
    port_file = fleet.work / "server-port.json"
    argv = ["-m", "oncorwe.compute.federated.server", "serve", "--n-workers", str(n_workers)]
    argv += ["--port", str(port), "--port-file", str(port_file), "--parent-pid", str(os.getpid())]
    argv += ["--timeout", str(int(max(cfg.timeout, 1)))]
    if cfg.tls is not None:
        argv += ["--server-key", str(cfg.tls.server_key), "--server-cert", str(cfg.tls.server_cert)]
        argv += ["--client-ca", str(cfg.tls.client_ca)]
    fleet.start("server", argv, env=bind_env(cfg.address))
    return port_file


#: The preloaded library that binds the server's wildcard socket to one address
#: (tools/bindto/bindto.c, built into the environment by ``make install``).
BIND_SHIM = "liboncorwe_bindto.so"


def bind_env(address: str) -> dict[str, str]:
    """The environment that makes the server listen on ``address`` only: the bind shim
    preloaded (``LD_PRELOAD``) with the address in numeric form. Empty where the shim is
    not built (no C compiler at install): the server then listens on every interface,
    and :func:`_check_listening` says so."""
    import socket

    shim = Path(sys.prefix) / "lib" / BIND_SHIM
    if not shim.is_file():
        return {}
    try:
        numeric = socket.getaddrinfo(address, None, proto=socket.IPPROTO_TCP)[0][4][0]
    except OSError:
        return {}
    preload = os.pathsep.join(p for p in (str(shim), os.environ.get("LD_PRELOAD", "")) if p)
    return {"LD_PRELOAD": preload, "ONCORWE_BIND_ADDRESS": numeric}


def _wait_port(
    fleet: _Fleet, port_file: Path, port: int, cfg: FederatedConfig, deadline: float
) -> int:
    proc = fleet.procs["server"]
    limit = min(deadline, time.monotonic() + cfg.start_timeout)
    while time.monotonic() < limit:
        info = _read_json(port_file)
        if info is not None:
            return int(info["port"])
        if proc.poll() is not None:
            if proc.returncode == _NO_PORT and port == 0:
                raise _NoPortError
            raise OncorweError(
                f"federated server exited with code {proc.returncode} before listening: "
                f"{fleet.log_tail('server')}"
            )
        time.sleep(0.02)
    raise OncorweError(f"federated server did not report a port within {cfg.start_timeout:g} s")


def listening_addresses(pid: int) -> list[str] | None:
    """``host:port`` of every TCP socket process ``pid`` listens on (``[::]:port`` for
    IPv6), from Linux's ``/proc``; None where it cannot be read."""
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return None
    links = []
    for fd in fds:
        with contextlib.suppress(OSError):  # closed meanwhile (listdir's own, say)
            links.append(os.readlink(fd_dir / fd))
    inodes = {ln[8:-1] for ln in links if ln.startswith("socket:[")}
    found = []
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) < 10 or cols[3] != "0A" or cols[9] not in inodes:  # 0A: LISTEN
                continue
            hex_ip, hex_port = cols[1].split(":")
            raw = bytes.fromhex(hex_ip)
            # the kernel prints each 32-bit word of the address in host (little-endian) order
            ip = ipaddress.ip_address(b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4)))
            if ip.version == 6 and ip.ipv4_mapped is not None:  # a dual-stack socket's v4
                ip = ip.ipv4_mapped
            host = f"[{ip}]" if ip.version == 6 else str(ip)
            found.append(f"{host}:{int(hex_port, 16)}")
    return found


def _check_listening(pid: int, port: int, cfg: FederatedConfig) -> list[str]:
    """Log where the server really listens when it is wider than ``cfg.address``."""
    where = [a for a in listening_addresses(pid) or [] if a.endswith(f":{port}")]
    wide = [a for a in where if not is_loopback(a.rpartition(":")[0])]
    if wide:
        guard = (
            "TLS keeps out every client without a certificate signed by this federation's CA"
            if cfg.tls is not None
            else f"without TLS anyone who can reach this host on port {port} can join"
        )
        _warn(
            f"the federated server listens on {', '.join(wide)} (every interface), not only "
            f"on compute.federated.address {cfg.address}: XGBoost's federated server takes "
            f"no bind address; {guard}"
        )
    return where


def _start_server(
    fleet: _Fleet, n_workers: int, cfg: FederatedConfig, deadline: float, before_wait=None
) -> tuple[int, int]:
    """Start the server, run ``before_wait`` (start the sites), wait for the port."""
    if cfg.tls is None:
        _warn(
            "the federated server runs without TLS (compute.federated.allow_insecure: true): "
            "any process that can reach its port can join the federation and read the "
            "gradient histograms"
        )
    port_file = _launch_server(fleet, n_workers, cfg, cfg.port)
    if before_wait is not None:
        before_wait(port_file)
    try:
        port = _wait_port(fleet, port_file, cfg.port, cfg, deadline)
    except _NoPortError:
        # XGBoost could not report the port it bound (it probes a host address for its
        # worker arguments): bind a free loopback port here and hand that over instead.
        chosen = _free_port("127.0.0.1")
        _launch_server(fleet, n_workers, cfg, chosen)
        port = _wait_port(fleet, port_file, chosen, cfg, deadline)
    return fleet.procs["server"].pid, port


def _refusals(fleet: _Fleet) -> str:
    """The TLS handshakes the server's log shows it refused, as a clause (or "")."""
    try:
        text = fleet.logs["server"].read_text(errors="replace")
    except (KeyError, OSError):
        return ""
    reasons = re.findall(
        r"Handshake failed with fatal error .*:([A-Z][A-Z0-9_]+)\.?[ \t]*$", text, re.M
    )
    if not reasons:
        return ""
    kinds = ", ".join(sorted(set(reasons)))
    return f"; the server refused {len(reasons)} TLS handshake(s) ({kinds})"


def _progress(status: Mapping[str, Any] | None) -> tuple[int, int]:
    if not status:
        return (-1, -1)
    stage = status.get("stage", "started")
    return (_STAGES.index(stage) if stage in _STAGES else 0, int(status.get("round", -1)))


def _supervise(
    fleet: _Fleet,
    sites: Sequence[str],
    cfg: FederatedConfig,
    deadline: float,
    what: str,
    task: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Wait for every site process to exit 0 (or, in a session, to report ``task``
    done); raise naming the first site that fails."""
    t0 = time.monotonic()
    statuses: dict[str, dict[str, Any] | None] = dict.fromkeys(sites)
    while True:
        now = time.monotonic()
        wall = time.time()
        for s in sites:
            statuses[s] = _read_json(fleet.work / f"status-{s}.json") or statuses[s]
        done = []
        for s in sites:
            rc = fleet.procs[s].poll()
            if task is not None and rc is None:
                # done_task is -1 once the site has joined, before its first task
                if int((statuses[s] or {}).get("done_task", -2)) >= task:
                    done.append(s)
                continue
            if rc is None:
                continue
            if rc != 0 or task is not None:
                err = fleet.work / f"error-{s}.txt"
                detail = err.read_text(errors="replace").splitlines()[:1] if err.exists() else []
                why = f"signal {-rc}" if rc < 0 else f"exit code {rc}"
                if task is not None and rc == 0:
                    why = "exited mid-session"
                raise OncorweError(
                    f"federated {what} failed: site {s!r} died ({why})"
                    + (f": {detail[0]}" if detail else "")
                    + _refusals(fleet)
                )
            done.append(s)
        if len(done) == len(sites):
            return {s: dict(statuses[s] or {}) for s in sites}
        server = fleet.procs.get("server")
        if server is not None and server.poll() is not None:
            raise OncorweError(
                f"federated {what} failed: the server exited with code {server.returncode}: "
                f"{fleet.log_tail('server')}"
            )
        running = [s for s in sites if s not in done]
        silent = [s for s in running if statuses[s] is None and now - t0 > cfg.start_timeout]
        if silent:
            raise OncorweError(
                f"federated {what} failed: site(s) {silent} did not start within "
                f"{cfg.start_timeout:g} s"
            )
        stale = [
            s
            for s in running
            if statuses[s] is not None
            and wall - float(statuses[s].get("heartbeat", wall)) > cfg.heartbeat_timeout
        ]
        if stale:
            raise OncorweError(
                f"federated {what} failed: site(s) {stale} stopped responding "
                f"(no heartbeat for {cfg.heartbeat_timeout:g} s)"
            )
        joining = [
            s
            for s in running
            if (statuses[s] or {}).get("stage") == "connecting"
            and wall - float(statuses[s].get("joining_since", wall)) > cfg.heartbeat_timeout
        ]
        if joining:
            raise OncorweError(
                f"federated {what} failed: site(s) {joining} could not join the federated "
                f"server within {cfg.heartbeat_timeout:g} s" + _refusals(fleet)
            )
        if now > deadline:
            prog = {s: _progress(statuses[s]) for s in running}
            slowest = min(prog.values())
            lagging = [s for s in running if prog[s] == slowest]
            where = ", ".join(
                f"{s} ({(statuses[s] or {}).get('stage', 'not started')}, "
                f"round {(statuses[s] or {}).get('round', -1)})"
                for s in running
            )
            raise OncorweError(
                f"federated {what} timed out after {cfg.timeout:g} s; unfinished: {where}; "
                f"furthest behind: {lagging}"
            )
        time.sleep(0.05)


def _site_names(partitions: Mapping[str, Any]) -> list[str]:
    names = [str(s) for s in partitions]
    bad = [s for s in names if not s or "/" in s or s.startswith(".")]
    if bad:
        raise OncorweError(f"federated: site names must be plain names; got {bad}")
    return names


def _member(
    cfg: FederatedConfig, work: Path, port_file: Path, site: str, rank: int, world: int
) -> dict[str, Any]:
    """What every site job carries: who it is, where the server is, its TLS files."""
    return {
        "site": site,
        "rank": rank,
        "world_size": world,
        "server": {
            "host": cfg.address,
            "port_file": str(port_file),
            "wait_s": float(cfg.start_timeout),
            # the site's own deadline comes first, so its error (with the cause) is the one
            # the coordinator reports
            "join_s": float(cfg.heartbeat_timeout) / 2,
        },
        "tls": None if cfg.tls is None else cfg.tls.for_site(site),
        "out_dir": str(work),
        "parent_pid": os.getpid(),
    }


def _manifest(
    sites: Sequence[str], statuses: Mapping[str, Mapping[str, Any]], partitions: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Per site: rank, pid, the partition given (None: no rows), the files it opened and
    the rows it trained on / left out for a missing label."""
    return {
        s: {
            "rank": r,
            "pid": statuses[s].get("pid"),
            "partition": (
                None if partitions.get(s) is None else str(Path(partitions[s]).resolve())
            ),
            "opened": list(statuses[s].get("opened", [])),
            "n_rows": statuses[s].get("n_rows"),
            "n_unlabeled": statuses[s].get("n_unlabeled"),
        }
        for r, s in enumerate(sites)
    }


def _secured(cfg: FederatedConfig, work: Path, sites: Sequence[str]) -> FederatedConfig:
    """``cfg`` with TLS: throw-away certificates in ``work / "tls"`` when none are given
    (plaintext only where ``allow_insecure`` asks for it)."""
    if cfg.tls is not None or cfg.allow_insecure:
        return cfg
    return replace(cfg, tls=make_tls_material(work / "tls", sites))


def _drop_throwaway_tls(cfg: FederatedConfig, given: FederatedConfig, work: Path) -> None:
    if cfg.tls is not None and given.tls is None:
        shutil.rmtree(work / "tls", ignore_errors=True)


def _write_job(work: Path, site: str, job: Mapping[str, Any]) -> Path:
    path = work / f"job-{site}.json"
    path.write_text(json.dumps(job))
    return path


# ---------------------------------------------------------------------- public
def federated_summaries(
    partitions: Mapping[str, str | os.PathLike[str]],
    *,
    numeric: Sequence[str] = (),
    categorical: Sequence[str] = (),
    min_cell: int = DEFAULT_MIN_CELL,
    target_intervals: int = 1024,
    config: FederatedConfig | None = None,
    work_dir: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Each site's sketch summary, computed in that site's own process.

    See :func:`oncorwe.compute.federated.binning.site_summary`; returns one summary per site,
    in the order of ``partitions``.
    """
    cfg = config or FederatedConfig()
    sites = _site_names(partitions)
    deadline = time.monotonic() + cfg.timeout
    with _work_dir(work_dir) as work:
        _clean(work)
        fleet = _Fleet(work, cfg.python)
        try:
            for s in sites:
                job = {
                    "task": "summarize",
                    "site": s,
                    "partition": str(Path(partitions[s]).resolve()),
                    "numeric": list(numeric),
                    "categorical": list(categorical),
                    "min_cell": int(min_cell),
                    "target_intervals": int(target_intervals),
                    "out_dir": str(work),
                    "parent_pid": os.getpid(),
                }
                fleet.start(
                    s, ["-m", "oncorwe.compute.federated.site", str(_write_job(work, s, job))]
                )
            _supervise(fleet, sites, cfg, deadline, "sketch")
            return [json.loads((work / f"summary-{s}.json").read_text()) for s in sites]
        finally:
            fleet.stop_all()


def federated_contract(
    partitions: Mapping[str, str | os.PathLike[str]],
    *,
    numeric: Sequence[str] = (),
    categorical: Sequence[str] = (),
    max_bin: int = 256,
    time_column: str | None = None,
    min_cell: int = DEFAULT_MIN_CELL,
    reference: BinningContract | None = None,
    config: FederatedConfig | None = None,
) -> BinningContract:
    """A :class:`BinningContract` from the sites' sketch summaries (no rows leave a site)."""
    ref = reference or BinningContract(max_bin=max_bin)
    num = [c for c in numeric if c not in ref.numeric]
    cat = [c for c in categorical if c not in ref.categorical]
    if time_column is not None and ref.time_grid is None:
        num.append(time_column)
    summaries = federated_summaries(
        partitions, numeric=num, categorical=cat, min_cell=min_cell, config=config
    )
    contract = contract_from_summaries(
        summaries,
        max_bin=max_bin,
        time_column=time_column if ref.time_grid is None else None,
        reference=reference,
    )
    return _ordered(contract, [*numeric, *categorical])


def _ordered(contract: BinningContract, order: Sequence[str]) -> BinningContract:
    missing = [c for c in order if c not in contract.numeric and c not in contract.categorical]
    if missing:
        raise OncorweError(
            f"binning contract: no site had at least min_cell values of {missing[:5]}; "
            "give these features reference ranges"
        )
    return BinningContract(
        numeric={c: contract.numeric[c] for c in order if c in contract.numeric},
        categorical={c: contract.categorical[c] for c in order if c in contract.categorical},
        max_bin=contract.max_bin,
        time_grid=contract.time_grid,
    )


def federated_train(
    partitions: Mapping[str, str | os.PathLike[str]],
    *,
    kind: str,
    features: Sequence[str],
    label: str | Sequence[str],
    params: Mapping[str, Any],
    num_boost_round: int,
    contract: BinningContract | None,
    time_grid: Sequence[float] | None = None,
    config: FederatedConfig | None = None,
    model_path: str | os.PathLike[str] | None = None,
    work_dir: str | os.PathLike[str] | None = None,
) -> FederatedRun:
    """Train one XGBoost model across the sites, one process per site.

    Parameters
    ----------
    partitions : mapping of site name to path
        Each site's own Parquet file (or folder); site ``i`` (in this order) has rank ``i``.
    kind : {"binary", "cox"}
    features : sequence of str
    label : str or (event column, time column)
    params : mapping
        XGBoost parameters, identical at every site (build them with
        :func:`oncorwe.compute.trainer.xgboost_params`).
    num_boost_round : int
    contract : BinningContract or None
        None trains on the raw columns (each site sketches its own cut points).
    time_grid : sequence of float, optional
        Cox only: use :class:`~oncorwe.compute.federated.site.CoxRiskSetObjective` on this grid
        (pooled risk sets); without it XGBoost's ``survival:cox`` uses each site's own.
    config : FederatedConfig, optional
    model_path : path, optional
        Where the model is written (atomically) on success; never on failure.
    work_dir : path, optional
        Folder for jobs, status files and logs (kept); default a temporary one (removed).

    Returns
    -------
    FederatedRun

    Raises
    ------
    OncorweError
        Naming the site that died, hung or timed out; every process is stopped first.
    """
    import xgboost as xgb

    given = config or FederatedConfig()
    sites = _site_names(partitions)
    if not sites:
        raise OncorweError("federated: no sites")
    if given.tls is not None:
        given.tls.check()
    t_start = time.monotonic()
    deadline = t_start + given.timeout
    with _work_dir(work_dir) as work:
        _clean(work)
        cfg = _secured(given, work, sites)
        fleet = _Fleet(work, cfg.python)
        try:

            def start_sites(port_file: Path) -> None:
                # the sites load XGBoost while the server starts; each waits for the
                # server's port file before it connects
                for rank, s in enumerate(sites):
                    job = {
                        **_member(cfg, work, port_file, s, rank, len(sites)),
                        "task": "train",
                        "partition": str(Path(partitions[s]).resolve()),
                        "kind": kind,
                        "features": list(features),
                        "label": label if isinstance(label, str) else list(label),
                        "params": dict(params),
                        "num_boost_round": int(num_boost_round),
                        "contract": None if contract is None else contract.to_dict(),
                        "time_grid": None if time_grid is None else [float(t) for t in time_grid],
                    }
                    fleet.start(
                        s, ["-m", "oncorwe.compute.federated.site", str(_write_job(work, s, job))]
                    )

            server_pid, port = _start_server(fleet, len(sites), cfg, deadline, start_sites)
            _check_listening(server_pid, port, cfg)
            statuses = _supervise(fleet, sites, cfg, deadline, "training")
            model_file = work / "model.json"
            if not model_file.is_file():
                raise OncorweError("federated training failed: rank 0 wrote no model")
            booster = xgb.Booster(model_file=str(model_file))
            if model_path is not None:
                from oncorwe.core.io import atomic_path

                with atomic_path(model_path) as tmp:
                    shutil.copyfile(model_file, tmp)
        finally:
            fleet.stop_all()
            _drop_throwaway_tls(cfg, given, work)
    manifest = _manifest(sites, statuses, partitions)
    return FederatedRun(
        booster=booster,
        manifest=manifest,
        server_pid=server_pid,
        port=port,
        seconds=time.monotonic() - t_start,
    )


# ---------------------------------------------------------------------- sessions
class FederatedSession:
    """A federation kept up for many models: one server and one process per site,
    started once; each :meth:`train` or :meth:`summaries` call is a numbered task.

    Analyses fit hundreds of small models (cross-fitted nuisances of every comparison);
    starting a process per site for each would cost more than the training. A session
    pays the start-up once. Each task names one partition per site (or ``None``: that
    site has no rows for this model and trains on a weight-0 placeholder row, so the
    collective operations still line up); a site reads only its own entry. Supervision
    is that of :func:`federated_train`, per task: a site that dies, falls silent for
    ``heartbeat_timeout`` seconds or has not finished a task within ``timeout`` seconds
    ends the session with an error naming it, and every process is stopped.

    Use it as a context manager::

        with FederatedSession(["A", "B"], config) as fed:
            booster = fed.train({"A": path_a, "B": path_b}, kind="binary", ...)

    Parameters
    ----------
    sites : sequence of str
        Site names in rank order.
    config : FederatedConfig, optional
    work_dir : path, optional
        Tasks, status files, logs and models (kept); default a temporary folder (removed).

    Attributes
    ----------
    port : int
        The server's port, once open.
    listening : list of str
        Where the server listens (``host:port``, from :func:`listening_addresses`;
        empty where ``/proc`` cannot be read): XGBoost's server listens on every
        interface whatever ``config.address`` says.

    :meth:`open` returns once every site has joined the federation; a site the server
    refuses ends it with an error naming the site and why, within the heartbeat timeout.
    """

    def __init__(
        self,
        sites: Sequence[str],
        config: FederatedConfig | None = None,
        work_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.sites = _site_names(dict.fromkeys(sites))
        if not self.sites:
            raise OncorweError("federated: no sites")
        self.config = config or FederatedConfig()
        if self.config.tls is not None:
            self.config.tls.check()
        self._work_arg = work_dir
        self._work_cm: Any = None
        self.work: Path | None = None
        self.fleet: _Fleet | None = None
        self.port: int | None = None
        self.listening: list[str] = []
        self.n_tasks = 0
        self._run_config = self.config

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> FederatedSession:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        cfg = self.config
        self._work_cm = _work_dir(self._work_arg)
        self.work = self._work_cm.__enter__()
        _clean(self.work)
        shutil.rmtree(self.work / "inbox", ignore_errors=True)
        (self.work / "inbox").mkdir()
        self.fleet = _Fleet(self.work, cfg.python)
        deadline = time.monotonic() + cfg.start_timeout + cfg.timeout
        try:
            cfg = self._run_config = _secured(cfg, self.work, self.sites)

            def start_sites(port_file: Path) -> None:
                for rank, s in enumerate(self.sites):
                    job = {
                        **_member(cfg, self.work, port_file, s, rank, len(self.sites)),
                        "task": "serve",
                        "inbox": str(self.work / "inbox"),
                    }
                    argv = [
                        "-m",
                        "oncorwe.compute.federated.site",
                        str(_write_job(self.work, s, job)),
                    ]
                    self.fleet.start(s, argv)

            pid, self.port = _start_server(self.fleet, len(self.sites), cfg, deadline, start_sites)
            self.listening = _check_listening(pid, self.port, cfg)
            # task -1: every site has joined (a refused one fails here, not in a task)
            _supervise(self.fleet, self.sites, cfg, deadline, "session start", task=-1)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Tell the sites to stop, then stop every process (also after a failure)."""
        if self.fleet is not None:
            try:
                if self.work is not None and all(
                    p.poll() is None for p in self.fleet.procs.values()
                ):
                    self._post({"task": "stop"})
                    limit = time.monotonic() + 5.0
                    while time.monotonic() < limit and any(
                        self.fleet.procs[s].poll() is None for s in self.sites
                    ):
                        time.sleep(0.02)
            finally:
                self.fleet.stop_all()
                self.fleet = None
        if self.work is not None:
            _drop_throwaway_tls(self._run_config, self.config, self.work)
        if self._work_cm is not None:
            cm, self._work_cm = self._work_cm, None
            cm.__exit__(None, None, None)

    # ------------------------------------------------------------------ tasks
    def _post(self, task: Mapping[str, Any]) -> int:
        n = self.n_tasks
        path = self.work / "inbox" / f"{n:06d}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(task))
        os.replace(tmp, path)
        self.n_tasks += 1
        return n

    def _run(self, task: Mapping[str, Any], what: str) -> tuple[int, dict[str, dict[str, Any]]]:
        if self.fleet is None:
            raise OncorweError("federated session is not open")
        partitions = task["partitions"]
        unknown = [s for s in partitions if s not in self.sites]
        if unknown:
            raise OncorweError(f"federated session: no site process for {unknown}")
        task = {
            **task,
            "partitions": {
                s: None if partitions.get(s) is None else str(Path(partitions[s]).resolve())
                for s in self.sites
            },
        }
        n = self._post(task)
        try:
            statuses = _supervise(
                self.fleet,
                self.sites,
                self.config,
                time.monotonic() + self.config.timeout,
                f"{what} (task {n})",
                task=n,
            )
        except BaseException:
            self.close()
            raise
        return n, statuses

    def summaries(
        self,
        partitions: Mapping[str, str | os.PathLike[str]],
        *,
        numeric: Sequence[str] = (),
        categorical: Sequence[str] = (),
        min_cell: int = DEFAULT_MIN_CELL,
        target_intervals: int = 1024,
    ) -> list[dict[str, Any]]:
        """Each site's sketch summary (see :func:`federated_summaries`), in site order;
        every site must have a partition."""
        missing = [s for s in self.sites if partitions.get(s) is None]
        if missing:
            raise OncorweError(f"federated sketch: no partition for site(s) {missing}")
        n, _ = self._run(
            {
                "task": "summarize",
                "partitions": dict(partitions),
                "numeric": list(numeric),
                "categorical": list(categorical),
                "min_cell": int(min_cell),
                "target_intervals": int(target_intervals),
            },
            "sketch",
        )
        return [
            json.loads((self.work / f"summary-{n:06d}-{s}.json").read_text()) for s in self.sites
        ]

    def train(
        self,
        partitions: Mapping[str, str | os.PathLike[str] | None],
        *,
        kind: str,
        features: Sequence[str],
        label: str | Sequence[str],
        params: Mapping[str, Any],
        num_boost_round: int,
        contract: BinningContract | None,
        time_grid: Sequence[float] | None = None,
    ) -> FederatedRun:
        """Train one model (see :func:`federated_train` for the arguments); a site missing
        from ``partitions`` (or mapped to None) has no rows for this model."""
        import xgboost as xgb

        if contract is None and any(partitions.get(s) is None for s in self.sites):
            raise OncorweError(
                "federated session: a site without rows needs a binning contract "
                "(its placeholder row must be binned like everyone else's)"
            )
        t0 = time.monotonic()
        n, statuses = self._run(
            {
                "task": "train",
                "partitions": dict(partitions),
                "kind": kind,
                "features": list(features),
                "label": label if isinstance(label, str) else list(label),
                "params": dict(params),
                "num_boost_round": int(num_boost_round),
                "contract": None if contract is None else contract.to_dict(),
                "time_grid": None if time_grid is None else [float(t) for t in time_grid],
            },
            "training",
        )
        model_file = self.work / f"model-{n:06d}.json"
        if not model_file.is_file():
            self.close()
            raise OncorweError(f"federated training (task {n}) failed: rank 0 wrote no model")
        booster = xgb.Booster(model_file=str(model_file))
        model_file.unlink()
        manifest = _manifest(self.sites, statuses, partitions)
        return FederatedRun(
            booster=booster,
            manifest=manifest,
            server_pid=self.fleet.procs["server"].pid,
            port=int(self.port),
            seconds=time.monotonic() - t0,
        )


# ---------------------------------------------------------------------- TLS material
def make_tls_material(
    directory: str | os.PathLike[str],
    sites: Sequence[str],
    *,
    hosts: Sequence[str] = ("localhost", "127.0.0.1"),
    days: int = 2,
    tool: str = "auto",
) -> TLSConfig:
    """Write a throw-away CA, a server certificate and one client certificate per site.

    Parameters
    ----------
    directory : path
        Created if needed (mode 0700); receives ``ca.pem``, ``server.key``,
        ``server.pem`` and ``<site>.key`` / ``<site>.pem``. Keys are written with mode
        0600, also over an older key: a reused folder whose keys others could read gets
        new keys, mode 0600, and a warning naming the old ones.
    sites : sequence of str
    hosts : sequence of str
        Names and IP addresses the server certificate is valid for.
    days : int, default 2
    tool : {"auto", "cryptography", "openssl"}
        ``auto`` uses the ``cryptography`` package when installed, else ``openssl``.

    Returns
    -------
    TLSConfig
        With ``client_ca`` and ``server_ca`` both the CA certificate.
    """
    d = Path(directory)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    exposed = sorted(k.name for k in d.glob("*.key") if k.is_file() and _open_to_others(k))
    if exposed:
        _warn(
            f"TLS key file(s) {exposed} in {d} could be read by others; they are replaced "
            "by new keys with mode 0600"
        )
    if tool == "auto":
        try:
            import cryptography  # noqa: F401

            tool = "cryptography"
        except ImportError:
            tool = "openssl"
    if tool == "cryptography":
        _tls_cryptography(d, sites, hosts, days)
    elif tool == "openssl":
        _tls_openssl(d, sites, hosts, days)
    else:
        raise OncorweError(
            f"make_tls_material: tool must be auto, cryptography or openssl; got {tool!r}"
        )
    return TLSConfig.from_dir(d, sites)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``path`` with mode 0600, replacing any older file: opening an existing file
    keeps its mode, so the key goes to a new 0600 file that is renamed over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _split_hosts(hosts: Sequence[str]) -> tuple[list[str], list[str]]:
    names, ips = [], []
    for h in hosts:
        try:
            ipaddress.ip_address(h)
            ips.append(h)
        except ValueError:
            names.append(h)
    return names, ips


def _tls_cryptography(d: Path, sites: Sequence[str], hosts: Sequence[str], days: int) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = _dt.datetime.now(_dt.UTC)

    def key():
        return ec.generate_private_key(ec.SECP256R1())

    def name(cn: str):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def save(stem: str, k, cert) -> None:
        _write_private(
            d / f"{stem}.key",
            k.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        (d / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def build(cn: str, k, issuer, issuer_key, *, ca: bool, usage=None, san=None):
        b = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(issuer)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5))
            .not_valid_after(now + _dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if usage is not None:
            b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    ca_key = key()
    ca = build("oncorwe federation CA", ca_key, name("oncorwe federation CA"), ca_key, ca=True)
    save("ca", ca_key, ca)
    names, ips = _split_hosts(hosts)
    san = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    sk = key()
    save(
        "server",
        sk,
        build(
            hosts[0],
            sk,
            ca.subject,
            ca_key,
            ca=False,
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            san=san,
        ),
    )
    for s in sites:
        k = key()
        save(s, k, build(s, k, ca.subject, ca_key, ca=False, usage=ExtendedKeyUsageOID.CLIENT_AUTH))


def _tls_openssl(d: Path, sites: Sequence[str], hosts: Sequence[str], days: int) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise OncorweError(
            "make_tls_material: neither the cryptography package nor openssl is available"
        )

    def run(*args: str) -> None:
        subprocess.run([exe, *args], cwd=d, check=True, capture_output=True)

    def newkey(stem: str) -> None:
        # openssl writes into the file it finds, keeping its mode: give it an empty 0600 one
        _write_private(d / f"{stem}.key", b"")
        run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{stem}.key")
        os.chmod(d / f"{stem}.key", 0o600)

    newkey("ca")
    run(
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        str(days),
        "-subj",
        "/CN=oncorwe federation CA",
    )
    names, ips = _split_hosts(hosts)
    san = ",".join([f"DNS:{n}" for n in names] + [f"IP:{i}" for i in ips])
    for stem, cn, ext in [
        ("server", hosts[0], f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
    ] + [(s, s, "extendedKeyUsage=clientAuth\n") for s in sites]:
        newkey(stem)
        run("req", "-new", "-key", f"{stem}.key", "-out", f"{stem}.csr", "-subj", f"/CN={cn}")
        (d / f"{stem}.ext").write_text("basicConstraints=critical,CA:FALSE\n" + ext)
        run(
            "x509",
            "-req",
            "-in",
            f"{stem}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{stem}.pem",
            "-days",
            str(days),
            "-extfile",
            f"{stem}.ext",
        )
        (d / f"{stem}.csr").unlink()
        (d / f"{stem}.ext").unlink()


# ---------------------------------------------------------------------- server process
def _serve(argv: Sequence[str]) -> int:
    import argparse
    import threading

    ap = argparse.ArgumentParser(prog="python -m oncorwe.compute.federated.server serve")
    ap.add_argument("--n-workers", type=int, required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--parent-pid", type=int, default=None)
    ap.add_argument("--timeout", type=int, default=3600)
    ap.add_argument("--server-key")
    ap.add_argument("--server-cert")
    ap.add_argument("--client-ca")
    a = ap.parse_args(argv)

    from xgboost.federated import FederatedTracker

    parent = a.parent_pid if a.parent_pid is not None else os.getppid()

    def watchdog() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watchdog, daemon=True).start()
    secure = a.server_key is not None
    tracker = FederatedTracker(
        n_workers=a.n_workers,
        port=a.port,
        secure=secure,
        server_key_path=a.server_key,
        server_cert_path=a.server_cert,
        client_cert_path=a.client_ca,
        timeout=a.timeout,
    )
    tracker.start()
    try:
        port = int(tracker.worker_args()["dmlc_tracker_port"])
    except Exception:  # noqa: BLE001 - XGBoost probes a host address to report args
        if not a.port:
            return _NO_PORT  # the coordinator retries with a port it chose
        port = a.port
    tmp = Path(a.port_file).with_suffix(".tmp")
    tmp.write_text(json.dumps({"port": port, "pid": os.getpid()}))
    os.replace(tmp, a.port_file)
    # XGBoost's federated server never returns: the coordinator stops this process.
    tracker.wait_for()
    return 0


if __name__ == "__main__":
    # The server needs only XGBoost's tracker; without this, ``import xgboost`` also
    # loads scikit-learn (xgboost.compat), 1.5 s of start-up for nothing.
    sys.modules.setdefault("sklearn", None)  # type: ignore[arg-type]
    if len(sys.argv) < 2 or sys.argv[1] != "serve":
        print(
            "usage: python -m oncorwe.compute.federated.server serve --n-workers N --port-file F ...",
            file=sys.stderr,
        )
        sys.exit(2)
    sys.exit(_serve(sys.argv[2:]))


def federated_config(params: Any, sites: list[str], scratch: Path) -> FederatedConfig:
    """The session's configuration from ``compute.federated`` (``address``, ``port``,
    ``tls``, ``allow_insecure``, ``allow_non_loopback``, ``tls_dir``, ``timeout_s``,
    ``heartbeat_timeout_s``): with TLS and no ``tls_dir``, throw-away certificates for
    ``sites`` are made under ``scratch`` (the caller's temporary folder, removed with it).
    ``tls: false`` is refused unless ``allow_insecure: true``."""
    allow_insecure = bool(getattr(params, "allow_insecure", False))
    if not params.tls and not allow_insecure:
        raise OncorweError(_INSECURE_REFUSAL)
    tls = None
    if params.tls:
        tls = (
            TLSConfig.from_dir(resolve(params.tls_dir), sites)
            if params.tls_dir
            else make_tls_material(Path(scratch) / "tls", sites)
        )
    return FederatedConfig(
        address=params.address,
        port=params.port,
        tls=tls,
        allow_insecure=not params.tls,
        allow_non_loopback=bool(getattr(params, "allow_non_loopback", False)),
        timeout=params.timeout_s,
        heartbeat_timeout=params.heartbeat_timeout_s,
    )
