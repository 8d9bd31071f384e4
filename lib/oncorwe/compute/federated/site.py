"""What one hospital runs: read its own partition, bin it, train in the federation.

A site is one OS process started by the coordinator (:mod:`oncorwe.compute.federated.server`)
as ``python -m oncorwe.compute.federated.site JOB.json``. The job file names the one Parquet
partition the site may read, the features, labels, binning contract and training
parameters, the federated server's address and the site's TLS files. The site:

1. reads **only** its partition and records the paths it opened in its status file
   (``status-<site>.json``, rewritten every ``HEARTBEAT_S`` seconds with a heartbeat time,
   its stage and boosting round, so the coordinator can tell a hung site from a slow one);
2. applies the :class:`~oncorwe.compute.federated.binning.BinningContract`;
3. for ``task: "summarize"``, writes its sketch summary (``summary-<site>.json``) and
   stops; for ``task: "train"``, joins the federation inside
   ``xgboost.collective.CommunicatorContext`` and calls ``xgboost.train`` with the same
   parameters as every other site. Only gradient histograms (and, for Cox, risk-set sums
   on the shared time grid) leave the process. Rank 0 writes the model to a temporary
   file and renames it to ``model.json``;
4. for ``task: "serve"`` (a session, :class:`oncorwe.compute.federated.server.FederatedSession`),
   joins the federation once and runs numbered train / summarize tasks from the
   coordinator's inbox until told to stop, so many models cost one start-up.

An exception is written to ``error-<site>.txt`` (its first line names the exception)
and the process exits with status 1.
A watchdog thread ends the process when its parent (the coordinator) disappears, so a
killed coordinator leaves no site behind.

Joining the federation is checked: XGBoost's client never gives up on a server that
refuses it (a certificate from another CA: it waits for the connection for ever; no TLS
against a TLS server: it hangs in the first collective operation). So the site first
tests its connection and stops with a :class:`FederationJoinError` naming the cause; a
join still stalled after the job's ``server.join_s`` seconds ends the same way.

The training helpers (:func:`make_labels`, :func:`build_matrix`,
:class:`CoxRiskSetObjective`) are shared with the pooled and Dask backends of
:mod:`oncorwe.compute.trainer`, so all backends train the same model.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oncorwe.compute.federated.binning import BinningContract, site_summary

__all__ = [
    "HEARTBEAT_S",
    "CoxRiskSetObjective",
    "FederationJoinError",
    "build_matrix",
    "drop_unlabeled",
    "make_labels",
    "placeholder_row",
    "prepare_features",
    "read_partition",
    "run_job",
]

HEARTBEAT_S = 0.5
# Same rule as the estimators: QuantileDMatrix only pays off on large matrices. With a
# binning contract both give the same cuts (no feature has more than max_bin values).
QUANTILE_DMATRIX_MIN_CELLS = 1_000_000


# ---------------------------------------------------------------------- data
def read_partition(
    path: str | os.PathLike[str], columns: Sequence[str]
) -> tuple[pd.DataFrame, list[str]]:
    """Read one site's Parquet partition (a file, or a folder of ``*.parquet``).

    Returns the frame and the list of files opened (absolute paths), so a caller can
    prove that nothing else was read.
    """
    import pyarrow.parquet as pq

    p = Path(path).resolve()
    files = sorted(p.glob("*.parquet")) if p.is_dir() else [p]
    if not files:
        raise FileNotFoundError(f"no Parquet file in {p}")
    tables = [pq.read_table(f, columns=list(columns)) for f in files]
    frame = pd.concat([t.to_pandas() for t in tables], ignore_index=True)
    return frame, [str(f) for f in files]


def prepare_features(
    frame: pd.DataFrame, features: Sequence[str], contract: BinningContract | None
) -> pd.DataFrame:
    """The matrix XGBoost sees: binned by ``contract``, or the raw columns.

    Without a contract, text and boolean columns become categories / 0-1 and numeric
    columns pass through; each site then sketches its own cut points (and numbers its own
    categories), which is exactly what the contract exists to prevent.
    """
    if contract is not None:
        if list(features) != contract.features:
            extra = sorted(set(features) ^ set(contract.features))
            if extra:
                raise ValueError(f"features and binning contract differ on {extra[:5]}")
        return contract.apply(frame)[list(features)]
    out = frame[list(features)].copy()
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_bool_dtype(s.dtype):
            out[col] = s.astype(np.int8)
        elif pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype):
            out[col] = pd.Categorical(s.astype("object").where(s.notna(), None))
    return out


def drop_unlabeled(frame: pd.DataFrame, label_cols: Sequence[str]) -> pd.DataFrame:
    """The rows whose label columns are all present (an outcome not ascertained, such
    as a response never assessed, cannot train a model)."""
    keep = frame[list(label_cols)].notna().all(axis=1)
    return frame if bool(keep.all()) else frame.loc[keep].reset_index(drop=True)


def make_labels(
    kind: str, frame: pd.DataFrame, label: str | Sequence[str], *, num_class: int | None = None
) -> dict[str, np.ndarray]:
    """XGBoost labels for ``kind``:

    - ``binary``: a 0/1 column;
    - ``multiclass``: class codes ``0 .. num_class - 1``;
    - ``regression``: any finite number;
    - ``cox``: ``(event, time)`` through
      :func:`oncorwe.models.estimators.xgboost_survival_labels` (time, negative when
      censored).
    """
    if kind == "cox":
        from oncorwe.models.estimators import xgboost_survival_labels

        if isinstance(label, str) or len(label) != 2:
            raise ValueError(f"cox label must be (event column, time column); got {label!r}")
        ev_col, t_col = label
        return xgboost_survival_labels(frame[ev_col].to_numpy(), frame[t_col].to_numpy(), "cox")
    col = label if isinstance(label, str) else label[0]
    y = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if kind == "binary":
        if np.isnan(y).any() or not np.isin(y, (0.0, 1.0)).all():
            raise ValueError(f"binary label {col!r} must be 0/1 with no missing values")
    elif kind == "multiclass":
        k = int(num_class or 0)
        if k < 2 or np.isnan(y).any() or not np.isin(y, np.arange(k, dtype=float)).all():
            raise ValueError(f"multiclass label {col!r} must be class codes 0..{k - 1}")
    elif kind == "regression":
        if not np.isfinite(y).all():
            raise ValueError(f"regression label {col!r} must be finite numbers")
    else:
        raise ValueError(
            f"kind must be 'binary', 'multiclass', 'regression' or 'cox'; got {kind!r}"
        )
    return {"label": y}


def placeholder_row(X: pd.DataFrame, labels: Mapping[str, np.ndarray]):
    """A site with no rows for a model still takes part in every collective operation;
    it trains on one all-missing row of weight 0, which adds nothing to any histogram,
    cut point or intercept (XGBoost cannot estimate a local intercept on zero rows)."""
    row = X.reindex(pd.RangeIndex(1))
    return row, {"label": np.zeros(1), "weight": np.zeros(1)}


def build_matrix(
    X: pd.DataFrame,
    labels: Mapping[str, np.ndarray],
    max_bin: int,
    *,
    quantile: bool | None = None,
):
    """A ``QuantileDMatrix`` or ``DMatrix`` with categorical support.

    ``quantile=None`` picks by size (``QuantileDMatrix`` from ``QUANTILE_DMATRIX_MIN_CELLS``
    cells). In a federation every site must build the same kind (they run different
    collective operations while sketching), so the sites pass ``quantile=True``; with a
    binning contract both kinds give the same cut points.
    """
    import xgboost as xgb

    if quantile is None:
        quantile = X.size >= QUANTILE_DMATRIX_MIN_CELLS
    if quantile:
        return xgb.QuantileDMatrix(X, enable_categorical=True, max_bin=max_bin, **labels)
    return xgb.DMatrix(X, enable_categorical=True, **labels)


# ---------------------------------------------------------------------- Cox objective
class CoxRiskSetObjective:
    """Breslow Cox partial-likelihood gradients with risk sets over *all* sites.

    XGBoost's built-in ``survival:cox`` computes each worker's gradients from that
    worker's rows alone: in horizontal federated (or Dask) training every site then has
    its own risk sets, a site-stratified Cox model that pooled training does not fit.
    This objective restores the pooled risk sets: a row's time ``t`` is put at the first
    point ``>= t`` of the shared ``time_grid`` (index ``g``, ``m + 1`` buckets for ``m``
    points), and each round the sites all-reduce (sum) two length-``m + 1`` vectors,
    the events ``D[g]`` (once) and ``S[g] = sum exp(f_i)`` over the rows in bucket ``g``.
    With ``R[g] = sum_{h >= g} S[h]``:

        grad_i = exp(f_i) A[g_i] - d_i,   hess_i = exp(f_i) A[g_i] - exp(f_i)^2 B[g_i],
        A[g] = sum_{h <= g} D[h] / R[h],  B[g] = sum_{h <= g} D[h] / R[h]^2,

    XGBoost's own formulas with tied times handled by Breslow's rule (every row of a
    bucket is at risk for the bucket's events). In a single process the all-reduce is
    the identity, so pooled, federated and Dask training optimize the same likelihood;
    only the two vectors of bucket sums cross site boundaries, never an event time.

    Labels are XGBoost's Cox labels (time, negative when censored). A sample weight
    scales its row's event, risk-set and gradient contributions: the training data here
    carry none (all 1, as in XGBoost's own risk sets) except a site's weight-0
    placeholder row, which so adds nothing.
    """

    def __init__(self, time_grid: Sequence[float]) -> None:
        self.time_grid = np.asarray(time_grid, dtype=float)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"time_grid": self.time_grid}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["time_grid"])

    @staticmethod
    def _allreduce(v: np.ndarray) -> np.ndarray:
        import xgboost as xgb

        if xgb.collective.is_distributed():
            return np.asarray(xgb.collective.allreduce(v, xgb.collective.Op.SUM), dtype=float)
        return v

    def _setup(self, dtrain) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        key = int(dtrain.handle.value or 0)
        hit = self._cache.get(key)
        if hit is None or hit[0].shape[0] != dtrain.num_row():
            y = dtrain.get_label().astype(float)
            w = dtrain.get_weight().astype(float)
            w = w if w.shape[0] == y.shape[0] else np.ones_like(y)
            g = np.searchsorted(self.time_grid, np.abs(y), side="left")
            ev = (y > 0).astype(float) * w
            m = self.time_grid.shape[0] + 1
            D = self._allreduce(np.bincount(g, weights=ev, minlength=m).astype(float))
            hit = (g, ev, D, w)
            self._cache = {key: hit}
        return hit

    def __call__(self, preds: np.ndarray, dtrain) -> tuple[np.ndarray, np.ndarray]:
        g, ev, D, w = self._setup(dtrain)
        e = np.exp(np.asarray(preds, dtype=float).ravel()) * w
        S = self._allreduce(np.bincount(g, weights=e, minlength=D.shape[0]).astype(float))
        R = np.cumsum(S[::-1])[::-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            r1 = np.where(R > 0, D / R, 0.0)
            r2 = np.where(R > 0, D / (R * R), 0.0)
        A, B = np.cumsum(r1)[g], np.cumsum(r2)[g]
        grad = e * A - ev
        hess = np.maximum(e * A - e * e * B, 1e-16)
        return grad, hess


# ---------------------------------------------------------------------- status
class _Status:
    """The site's status file, rewritten atomically on change and on every heartbeat."""

    def __init__(self, path: Path, **fields: Any) -> None:
        self.path = path
        self.state: dict[str, Any] = {"pid": os.getpid(), "stage": "started", "round": -1, **fields}
        self.lock = threading.Lock()
        self.write()

    def update(self, **fields: Any) -> None:
        with self.lock:
            self.state.update(fields)
        self.write()

    def write(self) -> None:
        with self.lock:
            self.state["heartbeat"] = time.time()
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.state))
            os.replace(tmp, self.path)


def _start_daemons(status: _Status, parent: int) -> None:
    def beat() -> None:
        while True:
            time.sleep(HEARTBEAT_S)
            if os.getppid() != parent:
                # the coordinator is gone: nobody will collect the result or stop us
                os._exit(3)
            try:
                status.write()
            except OSError:
                os._exit(3)

    threading.Thread(target=beat, name="oncorwe-heartbeat", daemon=True).start()


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------------- the job
def _server_address(server: Mapping[str, Any]) -> str:
    """``host:port``, waiting for the server's port file when the port is not fixed."""
    if server.get("port"):
        return f"{server['host']}:{int(server['port'])}"
    path = Path(server["port_file"])
    limit = time.monotonic() + float(server.get("wait_s", 60.0))
    while time.monotonic() < limit:
        try:
            return f"{server['host']}:{int(json.loads(path.read_text())['port'])}"
        except (OSError, ValueError, KeyError):
            time.sleep(0.02)
    raise TimeoutError(f"the federated server wrote no port file ({path}) in time")


def _summarize(job: Mapping[str, Any], status: _Status, target: Path) -> None:
    columns = [*job.get("numeric", []), *job.get("categorical", [])]
    status.update(stage="reading")
    frame, opened = read_partition(job["partition"], columns)
    status.update(stage="summarizing", opened=opened, n_rows=int(len(frame)))
    summary = site_summary(
        frame,
        numeric=job.get("numeric", []),
        categorical=job.get("categorical", []),
        min_cell=int(job.get("min_cell", 11)),
        target_intervals=int(job.get("target_intervals", 1024)),
    )
    _atomic_write_text(target, json.dumps(summary))


def _communicator(job: Mapping[str, Any], address: str) -> dict[str, Any]:
    comm: dict[str, Any] = {
        "dmlc_communicator": "federated",
        "federated_server_address": address,
        "federated_world_size": int(job["world_size"]),
        "federated_rank": int(job["rank"]),
    }
    tls = job.get("tls")
    if tls:
        comm["federated_server_cert_path"] = tls["server_ca"]
        comm["federated_client_key_path"] = tls["client_key"]
        comm["federated_client_cert_path"] = tls["client_cert"]
    return comm


class FederationJoinError(RuntimeError):
    """A site that could not join the federated server within its deadline."""


# An HTTP/2 client preface and an empty SETTINGS frame: a gRPC server that accepts the
# connection answers with its own SETTINGS; one that refused it closes the connection.
_H2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _answer(conn: socket.socket) -> bytes:
    """The server's first bytes after our HTTP/2 hello; b"" when it closed the connection."""
    try:
        conn.sendall(_H2_HELLO)
        return conn.recv(9)
    except (ssl.SSLError, ConnectionError):
        return b""


def _speaks_tls(host: str, port: int, wait: float) -> bool:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=wait) as raw,
            ctx.wrap_socket(raw, server_hostname=host),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False


def _refusal(address: str, tls: Mapping[str, str] | None, wait: float) -> str | None:
    """Why the server at ``address`` (``host:port``) refuses this site, or None when it
    answers a test connection as a gRPC server does (or does not answer within ``wait``).

    One connection with the site's own TLS files (``server_ca``, ``client_cert``,
    ``client_key``; None: plaintext) and an HTTP/2 hello. Refusals: nothing listening, a
    server certificate that does not verify, a client certificate the server refuses (it
    closes the connection right after the handshake), plaintext against a TLS server.
    """
    host, _, port_text = address.rpartition(":")
    port = int(port_text)
    try:
        raw = socket.create_connection((host, port), timeout=wait)
    except TimeoutError:
        return None
    except OSError as err:
        return f"nothing accepts connections at {address} ({err.strerror or err})"
    with raw:
        try:
            if not tls:
                if _answer(raw):
                    return None
                if _speaks_tls(host, port, wait):
                    return (
                        "the server requires TLS and this site has no TLS configured "
                        "(it closed the plaintext connection)"
                    )
                return "the server closed the connection without an answer"
            ctx = ssl.create_default_context(cafile=tls["server_ca"])
            ctx.load_cert_chain(tls["client_cert"], tls["client_key"])
            ctx.set_alpn_protocols(["h2"])
            try:
                conn = ctx.wrap_socket(raw, server_hostname=host)
            except ssl.SSLCertVerificationError as err:
                return (
                    "the server's certificate does not verify against this site's server_ca "
                    f"({err.verify_message})"
                )
            except ssl.SSLError as err:
                return f"the TLS handshake failed ({err.reason or err})"
            with conn:
                if _answer(conn):
                    return None
            return (
                "the server refused this site's client certificate (it closed the connection "
                "right after the TLS handshake): the certificate must be signed by the CA the "
                "server trusts"
            )
        except TimeoutError:
            return None


@contextlib.contextmanager
def _federation(job: Mapping[str, Any], status: _Status):
    """Inside XGBoost's communicator, joined within ``job["server"]["join_s"]`` seconds.

    XGBoost's client never gives up on a server that refuses it: with TLS it waits for
    the connection for ever, without TLS it joins and then hangs in the first collective
    operation. So the site first tests the connection (:func:`_refusal`) and stops at
    once with a :class:`FederationJoinError` when the server refuses it. Past the
    deadline (XGBoost's wait is in C++ and cannot be interrupted) a thread writes the
    error and the process exits 1.
    """
    import xgboost as xgb

    address = _server_address(job["server"])
    status.update(stage="connecting", server=address, joining_since=time.time())
    limit = float(job["server"].get("join_s", 15.0))
    refused = _refusal(address, job.get("tls"), wait=min(limit, 2.0))
    if refused:
        raise FederationJoinError(
            f"site {job['site']!r} was refused by the federated server at {address}: {refused}"
        )
    joined = threading.Event()

    def deadline() -> None:
        if joined.wait(limit):
            return
        why = _refusal(address, job.get("tls"), wait=1.0) or "no answer from XGBoost's server"
        err = FederationJoinError(
            f"site {job['site']!r} could not join the federated server at {address} within "
            f"{limit:g} s: {why}"
        )
        if not joined.is_set():
            _write_error(job, err, f"{type(err).__name__}: {err}\n")
            os._exit(1)

    threading.Thread(target=deadline, name="oncorwe-join", daemon=True).start()
    with xgb.collective.CommunicatorContext(**_communicator(job, address)):
        joined.set()
        yield


def _training_data(job: Mapping[str, Any], status: _Status):
    """This site's binned matrix and labels for ``job`` (a placeholder row when the
    site has no rows for it: ``partition`` None, or every label missing)."""
    kind, label, features = job["kind"], job["label"], list(job["features"])
    label_cols = [label] if isinstance(label, str) else list(label)
    contract = BinningContract.from_dict(job["contract"]) if job.get("contract") else None
    status.update(stage="reading")
    if job.get("partition") is None:
        frame, opened = pd.DataFrame(columns=[*features, *label_cols]), []
    else:
        frame, opened = read_partition(job["partition"], [*features, *label_cols])
    n_read = int(len(frame))
    frame = drop_unlabeled(frame, label_cols)
    status.update(
        stage="binning", opened=opened, n_rows=int(len(frame)), n_unlabeled=n_read - len(frame)
    )
    if len(frame) == 0 and contract is not None:
        return placeholder_row(contract.apply(frame)[features], {})
    X = prepare_features(frame, features, contract)
    labels = make_labels(kind, frame, label, num_class=job["params"].get("num_class"))
    return X, labels


def _train(job: Mapping[str, Any], status: _Status, model_file: Path) -> None:
    """Train one model inside an open communicator; rank 0 writes ``model_file``."""
    import xgboost as xgb

    X, labels = _training_data(job, status)
    params = dict(job["params"])
    obj = CoxRiskSetObjective(job["time_grid"]) if job.get("time_grid") else None

    class Progress(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log) -> bool:  # noqa: ANN001
            status.update(round=int(epoch) + 1)
            return False

    status.update(stage="matrix")
    dtrain = build_matrix(X, labels, int(params.get("max_bin", 256)), quantile=True)
    del X
    status.update(stage="training", round=0)
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=int(job["num_boost_round"]),
        obj=obj,
        callbacks=[Progress()],
        verbose_eval=False,
    )
    if int(job["rank"]) == 0:
        # the suffix picks the format: keep ".json" (XGBoost writes UBJSON otherwise)
        tmp = model_file.with_name(f".{os.getpid()}.tmp.{model_file.name}")
        booster.save_model(str(tmp))
        os.replace(tmp, model_file)


def _wait_file(path: Path, poll: float = 0.01) -> dict[str, Any]:
    while True:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            time.sleep(poll)
            poll = min(poll * 1.5, 0.05)


def _serve(job: Mapping[str, Any], status: _Status) -> None:
    """A session: stay in the federation and run numbered tasks from the coordinator's
    inbox (``inbox/000000.json``, ``000001.json``, ...) until a ``stop`` task.

    Each task names one partition per site (``partitions``); this site reads only its
    own entry. After task ``n`` the status file carries ``done_task = n``.
    """
    out, site, inbox = Path(job["out_dir"]), job["site"], Path(job["inbox"])
    with _federation(job, status):
        status.update(stage="ready", done_task=-1)
        n = 0
        while True:
            task = _wait_file(inbox / f"{n:06d}.json")
            if task["task"] == "stop":
                break
            merged = {**job, **task, "partition": task["partitions"].get(site)}
            if task["task"] == "train":
                _train(merged, status, out / f"model-{n:06d}.json")
            elif task["task"] == "summarize":
                if merged["partition"] is None:
                    raise ValueError(f"summarize task {n} names no partition for site {site!r}")
                _summarize(merged, status, out / f"summary-{n:06d}-{site}.json")
            else:
                raise ValueError(f"unknown task {task['task']!r}")
            status.update(stage="done", done_task=n)
            n += 1
    status.update(stage="stopped")


def run_job(job: Mapping[str, Any]) -> None:
    """Run one site job (see the module docstring); raises on failure."""
    out = Path(job["out_dir"])
    site = job["site"]
    status = _Status(out / f"status-{site}.json", site=site, rank=job.get("rank"))
    _start_daemons(status, int(job.get("parent_pid", os.getppid())))

    if job["task"] == "summarize":
        _summarize(job, status, out / f"summary-{site}.json")
        status.update(stage="done")
        return
    if job["task"] == "serve":
        _serve(job, status)
        return
    if job["task"] != "train":
        raise ValueError(f"unknown task {job['task']!r}")
    with _federation(job, status):
        _train(job, status, out / "model.json")
    status.update(stage="done")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m oncorwe.compute.federated.site JOB.json", file=sys.stderr)
        return 2
    job = json.loads(Path(args[0]).read_text())
    if job.get("task") == "summarize" or job.get("kind") in ("binary", "multiclass", "regression"):
        # Nothing here needs scikit-learn, but ``import xgboost`` loads it when it can
        # (xgboost.compat): 1.5 s of start-up per site. Cox jobs and sessions (which may
        # get Cox tasks) need it: the label adapter lives with the estimators.
        sys.modules.setdefault("sklearn", None)  # type: ignore[arg-type]
    try:
        run_job(job)
    except BaseException as err:
        _write_error(job, err, traceback.format_exc())
        return 1
    return 0


def _write_error(job: Mapping[str, Any], err: BaseException, tb: str) -> None:
    """``error-<site>.txt``: the exception in its first line (XGBoost's messages carry a
    C++ backtrace), then the traceback; the traceback also goes to stderr."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    head = f"{type(err).__name__}: {lines[0] if lines else ''}"
    try:
        _atomic_write_text(Path(job["out_dir"]) / f"error-{job['site']}.txt", f"{head}\n{tb}")
    finally:
        print(tb, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
