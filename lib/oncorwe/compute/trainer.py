"""One training interface, three backends: pooled, federated, Dask.

:func:`train_model` trains a binary (``binary:logistic``) or Cox (``survival:cox``)
XGBoost model on the analysis table and returns a :class:`TrainedModel`; the caller
chooses the backend by name (``params.yaml`` ``compute.training``) and never touches it:

- ``pooled``: ``xgboost.train`` in this process on all rows (the reference);
- ``federated``: one OS process per hospital, each reading only its own Parquet
  partition, joined by XGBoost's federated server (:mod:`oncorwe.compute.federated.server`);
- ``dask``: ``xgboost.dask.train`` on a Dask DataFrame read from the per-site Parquet
  partitions, on a local 2-worker cluster (``cluster="local"``) or an existing scheduler
  (``cluster="tcp://host:port"``, or a ``distributed.Client``).

All three apply the same :class:`~oncorwe.compute.federated.binning.BinningContract` before
XGBoost sees the data, so no feature has more than ``max_bin`` distinct values, every
worker derives the same cut points, and the backends train the same trees
(federated == pooled to floating-point summation order). For Cox models the contract
also carries a shared time grid, and all backends use
:class:`~oncorwe.compute.federated.site.CoxRiskSetObjective`, whose risk sets span every site
(XGBoost's built-in Cox objective would use each worker's rows alone). The contract is
by default sketched from the sites (``contract="sketch"``: in the site processes for the
federated backend, per site in this process otherwise, with the same result);
``contract="none"`` trains on raw columns with XGBoost's own objectives, where federated
and pooled training differ.

Parity holds with ``subsample = 1`` (the default here): row subsampling draws different
rows at each site than in the pooled matrix.

Example
-------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> df = pd.DataFrame({"x": rng.normal(size=300), "site": np.repeat(["A", "B"], 150)})
>>> df["y"] = (df["x"] + rng.normal(size=300) > 0).astype(int)
>>> m = train_model("binary", df, features=["x"], label="y", num_boost_round=5, min_cell=5)
>>> m.predict_proba(df).shape
(300, 2)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from oncorwe.compute.federated.binning import BinningContract, contract_from_summaries, site_summary
from oncorwe.compute.federated.site import (
    CoxRiskSetObjective,
    build_matrix,
    drop_unlabeled,
    make_labels,
    prepare_features,
    read_partition,
)
from oncorwe.core.errors import OncorweError
from oncorwe.core.privacy import DEFAULT_MIN_CELL
from oncorwe.models.estimators import (
    OutcomeRegressor,
    ResponseClassifier,
    SurvivalModel,
    fit_grouped,
)

__all__ = [
    "BACKENDS",
    "KINDS",
    "EstimatorModel",
    "EstimatorTrainer",
    "TrainedModel",
    "Trainer",
    "discover_partitions",
    "stage_trainer",
    "train_model",
    "xgboost_params",
]

BACKENDS = ("pooled", "federated", "dask")
KINDS = ("binary", "multiclass", "regression", "cox")
DASK_LOCAL_WORKERS = 2
DEFAULT_PARAMS: dict[str, Any] = {
    "eta": 0.1,
    "max_depth": 4,
    "min_child_weight": 1.0,
    "lambda": 1.0,
    "subsample": 1.0,
    "colsample_bytree": 1.0,
    "tree_method": "hist",
    "device": "cpu",
    "nthread": 1,
    "seed": 0,
    "verbosity": 1,
}
# scikit-learn spellings (the estimators', and params.yaml's) -> XGBoost's
PARAM_ALIASES = {
    "learning_rate": "eta",
    "reg_lambda": "lambda",
    "reg_alpha": "alpha",
    "n_jobs": "nthread",
    "random_state": "seed",
}
_UNSUPPORTED = ("early_stopping_rounds", "validation_fraction", "objective", "num_class")
OBJECTIVES = {
    "binary": "binary:logistic",
    "multiclass": "multi:softprob",
    "regression": "reg:squarederror",
    "cox": "survival:cox",
}


# ---------------------------------------------------------------------- model
@dataclass
class TrainedModel:
    """A trained booster with what is needed to use it on new rows.

    Attributes
    ----------
    booster : xgboost.Booster
    kind : {"binary", "multiclass", "regression", "cox"}
    features : list of str
    contract : BinningContract or None
        Applied to new rows before prediction (the booster splits on bin indices).
    backend : str
    info : dict
        Timing, rows, sites and, for the federated backend, each site's manifest.
    """

    booster: Any
    kind: str
    features: list[str]
    contract: BinningContract | None
    backend: str
    info: dict[str, Any] = field(default_factory=dict)

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The matrix the booster expects: ``frame``'s features, binned."""
        return prepare_features(frame, self.features, self.contract)

    def predict_margin(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw score: log-odds (binary), log hazard ratio (cox), the prediction
        (regression), shape (n,); per-class scores (multiclass), shape (n, K)."""
        import xgboost as xgb

        dm = xgb.DMatrix(self.transform(frame), enable_categorical=True)
        return self.booster.predict(dm, output_margin=True)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities: shape (n, 2) for binary models (columns 0, 1), (n, K)
        for multiclass ones (softmax of the margins)."""
        margin = self.predict_margin(frame).astype(float)
        if self.kind == "multiclass":
            z = np.exp(margin - margin.max(axis=1, keepdims=True))
            return z / z.sum(axis=1, keepdims=True)
        if self.kind != "binary":
            raise OncorweError(f"predict_proba is for classifiers; this model is {self.kind!r}")
        p = 1.0 / (1.0 + np.exp(-margin))
        return np.column_stack([1.0 - p, p])

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Regression models: the predicted value, shape (n,)."""
        if self.kind != "regression":
            raise OncorweError(
                f"predict is for regression models; use predict_proba / predict_risk "
                f"(this model is {self.kind!r})"
            )
        return self.predict_margin(frame).astype(float)

    def predict_risk(self, frame: pd.DataFrame) -> np.ndarray:
        """Risk, shape (n,); higher = higher risk: the hazard ratio ``exp(f(x))`` (cox)
        or the probability of the outcome (binary)."""
        margin = self.predict_margin(frame).astype(float)
        if self.kind == "cox":
            return np.exp(margin)
        return 1.0 / (1.0 + np.exp(-margin))

    def shap_values(self, frame: pd.DataFrame, *, approximate: bool = False) -> pd.DataFrame:
        """Per-row contributions on the margin scale, shape (n, p + 1) (features, ``bias``).

        Computed on the binned features: a contribution belongs to the feature, whose
        value entered the model only through its bin.
        """
        import xgboost as xgb

        X = self.transform(frame)
        contrib = self.booster.predict(
            xgb.DMatrix(X, enable_categorical=True),
            pred_contribs=True,
            approx_contribs=approximate,
        )
        return pd.DataFrame(contrib, columns=[*self.features, "bias"], index=X.index)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the booster (XGBoost JSON) to ``path`` and ``<path>.meta.json`` beside it."""
        from oncorwe.core.io import atomic_path

        with atomic_path(path) as tmp:
            self.booster.save_model(str(tmp))
        self._save_meta(path)

    def _save_meta(self, path: str | os.PathLike[str]) -> None:
        from oncorwe.core.io import atomic_path

        meta = {
            "kind": self.kind,
            "features": self.features,
            "backend": self.backend,
            "contract": None if self.contract is None else self.contract.to_dict(),
        }
        with atomic_path(_meta_path(path)) as tmp:
            tmp.write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrainedModel:
        import xgboost as xgb

        meta = json.loads(_meta_path(path).read_text())
        contract = None if meta["contract"] is None else BinningContract.from_dict(meta["contract"])
        return cls(
            booster=xgb.Booster(model_file=str(path)),
            kind=meta["kind"],
            features=list(meta["features"]),
            contract=contract,
            backend=meta["backend"],
        )


def _meta_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p.with_name(p.name + ".meta.json")


# ---------------------------------------------------------------------- parameters
def xgboost_params(
    kind: str,
    params: Mapping[str, Any] | None = None,
    *,
    max_bin: int | None = None,
    num_class: int | None = None,
) -> tuple[dict[str, Any], int]:
    """XGBoost parameters for ``kind`` and the number of boosting rounds.

    ``params`` may use the estimators' names (``learning_rate``, ``n_estimators``,
    ``reg_lambda``, ``n_jobs``, ``random_state``); defaults are :data:`DEFAULT_PARAMS`
    (one thread, no subsampling) and 100 rounds.

    Returns
    -------
    params : dict
    num_boost_round : int
    """
    if kind not in KINDS:
        raise OncorweError(f"kind must be one of {KINDS}; got {kind!r}")
    given = {PARAM_ALIASES.get(k, k): v for k, v in dict(params or {}).items()}
    bad = [k for k in _UNSUPPORTED if k in given]
    if bad:
        raise OncorweError(
            f"train_model sets {bad} itself (kind={kind!r}); remove them from params"
        )
    rounds = int(given.pop("n_estimators", given.pop("num_boost_round", 100)))
    if given.get("device", "cpu") not in ("cpu", "auto"):
        raise OncorweError("train_model trains on the CPU (device 'cpu')")
    given["device"] = "cpu"
    out = {**DEFAULT_PARAMS, **given}
    if max_bin is not None:
        if "max_bin" in given and int(given["max_bin"]) != int(max_bin):
            raise OncorweError(
                f"params max_bin={given['max_bin']} differs from the binning contract's {max_bin}"
            )
        out["max_bin"] = int(max_bin)
    out.setdefault("max_bin", 256)
    out["objective"] = OBJECTIVES[kind]
    if kind == "multiclass":
        if num_class is None or int(num_class) < 2:
            raise OncorweError(f"multiclass training needs num_class >= 2; got {num_class!r}")
        out["num_class"] = int(num_class)
    elif kind == "cox":
        # the margin starts at log(1) = 0: XGBoost's intercept estimate for Cox would use
        # each worker's own risk sets in distributed training
        out.update({"objective": "survival:cox", "base_score": 1.0})
    return out, rounds


# ---------------------------------------------------------------------- data
def discover_partitions(
    root: str | os.PathLike[str], sites: Sequence[str] | None = None
) -> dict[str, Path]:
    """The per-site partitions of an analysis table: ``root/site=NAME/`` folders.

    Returns site name -> folder, sorted by name (or in the order of ``sites``).
    """
    root = Path(root)
    found = {d.name.split("=", 1)[1]: d for d in sorted(root.glob("site=*")) if d.is_dir()}
    if not found:
        raise OncorweError(f"{root}: no site=NAME partitions (expected the analysis table folder)")
    if sites is None:
        return found
    missing = [s for s in sites if s not in found]
    if missing:
        raise OncorweError(f"{root}: no partition for site(s) {missing}")
    return {s: found[s] for s in sites}


def _partition_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.parquet")) if path.is_dir() else [path]


def _as_partitions(data: Any, sites: Sequence[str] | None) -> dict[str, Path] | None:
    if isinstance(data, pd.DataFrame):
        return None
    if isinstance(data, Mapping):
        parts = {str(k): Path(v) for k, v in data.items()}
        if sites is not None:
            parts = {s: parts[s] for s in sites}
        return parts
    return discover_partitions(data, sites)


def _frames_by_site(
    data: Any,
    partitions: dict[str, Path] | None,
    columns: list[str],
    site_column: str,
    sites: Sequence[str] | None,
) -> dict[str, pd.DataFrame]:
    """Per-site frames in site order (a frame without a site column is one site)."""
    if partitions is not None:
        return {s: read_partition(p, columns)[0] for s, p in partitions.items()}
    frame: pd.DataFrame = data
    if site_column not in frame.columns:
        return {"all": frame[columns].reset_index(drop=True)}
    names = list(sites) if sites is not None else sorted(frame[site_column].astype(str).unique())
    key = frame[site_column].astype(str)
    return {s: frame.loc[key == s, columns].reset_index(drop=True) for s in names}


def _write_partitions(frames: Mapping[str, pd.DataFrame], root: Path) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = {}
    for s, f in frames.items():
        d = root / f"site={s}"
        d.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(f, preserve_index=False), d / "part-0.parquet")
        out[s] = d
    return out


def _feature_kinds(features: Sequence[str], sample: pd.DataFrame) -> tuple[list[str], list[str]]:
    numeric, categorical = [], []
    for c in features:
        dt = sample[c].dtype
        if (
            isinstance(dt, pd.CategoricalDtype)
            or pd.api.types.is_object_dtype(dt)
            or pd.api.types.is_string_dtype(dt)
        ):
            categorical.append(c)
        else:
            numeric.append(c)
    return numeric, categorical


def _schema_sample(partitions: Mapping[str, Path], columns: list[str]) -> pd.DataFrame:
    """An empty frame with the partitions' column types (reads the schema only)."""
    import pyarrow.parquet as pq

    first = _partition_files(next(iter(partitions.values())))[0]
    return pq.read_schema(first).empty_table().select(columns).to_pandas()


# ---------------------------------------------------------------------- backends
def _train_pooled(frame: pd.DataFrame, kind, features, label, contract, params, rounds, obj):
    import xgboost as xgb

    X = prepare_features(frame, features, contract)
    labels = make_labels(kind, frame, label, num_class=params.get("num_class"))
    dtrain = build_matrix(X, labels, int(params["max_bin"]))
    return xgb.train(params, dtrain, num_boost_round=rounds, obj=obj, verbose_eval=False)


def _train_dask(
    files: list[str] | None,
    frame: pd.DataFrame | None,
    columns,
    label_cols,
    kind,
    features,
    label,
    contract,
    params,
    rounds,
    obj,
    cluster,
    n_workers,
):
    import dask.dataframe as dd
    import xgboost.dask as dxgb
    from distributed import Client, LocalCluster

    if files is not None:
        ddf = dd.read_parquet(files, columns=columns)
    else:
        ddf = dd.from_pandas(frame[columns], npartitions=max(n_workers, 2))

    def feats(part: pd.DataFrame) -> pd.DataFrame:
        return prepare_features(part, features, contract)

    def lab(part: pd.DataFrame) -> pd.Series:
        y = make_labels(kind, part, label, num_class=params.get("num_class"))["label"]
        return pd.Series(y, index=part.index, dtype=float)

    ddf = ddf.dropna(subset=label_cols)
    meta_X = feats(ddf._meta)
    X = ddf.map_partitions(feats, meta=meta_X)
    y = ddf.map_partitions(lab, meta=pd.Series(dtype=float))

    def fit(client) -> Any:
        dtrain = dxgb.DaskDMatrix(client, X, y, enable_categorical=True)
        out = dxgb.train(
            client, params, dtrain, num_boost_round=rounds, obj=obj, verbose_eval=False
        )
        return out["booster"]

    if not isinstance(cluster, str):  # a distributed.Client
        return fit(cluster)
    if cluster == "local":
        with (
            LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                silence_logs=logging.ERROR,
            ) as lc,
            Client(lc) as client,
        ):
            return fit(client)
    if not cluster.startswith(("tcp://", "tls://", "ucx://", "inproc://")):
        raise OncorweError(f"cluster must be 'local' or a scheduler address; got {cluster!r}")
    with Client(cluster) as client:
        return fit(client)


# ---------------------------------------------------------------------- entry point
def train_model(
    kind: str,
    data: pd.DataFrame | str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]],
    *,
    features: Sequence[str],
    label: str | Sequence[str],
    params: Mapping[str, Any] | None = None,
    num_boost_round: int | None = None,
    backend: str = "pooled",
    cluster: Any = "local",
    sites: Sequence[str] | None = None,
    contract: BinningContract | str = "sketch",
    timeout: float | None = None,
    federated: Any = None,
    site_column: str = "site",
    min_cell: int = DEFAULT_MIN_CELL,
    dask_workers: int = DASK_LOCAL_WORKERS,
    model_path: str | os.PathLike[str] | None = None,
    num_class: int | None = None,
    session: Any = None,
) -> TrainedModel:
    """Train an XGBoost model with the chosen backend.

    Parameters
    ----------
    kind : {"binary", "multiclass", "regression", "cox"}
        ``binary:logistic`` on a 0/1 label, ``multi:softprob`` on class codes
        ``0 .. num_class - 1``, ``reg:squarederror`` on a number, or ``survival:cox`` on
        ``(event, time)`` (the library's convention; higher ``predict_risk`` = higher
        risk).
    data : DataFrame, path or mapping of site to path
        The analysis table: a DataFrame (with a ``site_column`` for per-site work), its
        folder of ``site=NAME/part-0.parquet`` partitions, or explicit site -> path.
        The federated backend given a DataFrame first writes it out per site
        (a simulation: real sites hold their own files).
    features : sequence of str
    label : str or (event column, time column)
        Rows where a label column is missing are left out, by every backend.
    params : mapping, optional
        XGBoost parameters (see :func:`xgboost_params`); ``n_estimators`` counts as
        ``num_boost_round``.
    num_boost_round : int, optional
        Default: ``params["n_estimators"]`` or 100.
    backend : {"pooled", "federated", "dask"}
    cluster : "local", scheduler address or distributed.Client
        Dask only: ``"local"`` starts a ``LocalCluster`` of ``dask_workers`` processes
        with one thread each for this call.
    sites : sequence of str, optional
        Sites to use, in rank order (default: all, sorted by name).
    contract : BinningContract, "sketch" or "none"
        The shared binning (see the module docstring). Cox training with a contract
        needs its ``time_grid``.
    timeout : float, optional
        Federated only: seconds before the run is abandoned (default: ``federated``'s,
        one hour).
    federated : FederatedConfig, optional
        Address, port, TLS and heartbeat settings of the federated backend.
    site_column : str, default "site"
    min_cell : int, default 11
        Smallest count a site sends in its sketch summary.
    dask_workers : int, default 2
    model_path : path, optional
        Write the booster there (atomically) and ``<model_path>.meta.json`` beside it.
    num_class : int, optional
        Multiclass only: the number of classes.
    session : FederatedSession, optional
        Federated only: train in this open session (its site processes stay up between
        models) instead of starting a federation for this model. Sites without rows in
        ``data`` take part with a weight-0 placeholder row; they need a
        :class:`BinningContract` (``contract="sketch"`` needs rows at every site).

    Returns
    -------
    TrainedModel

    Raises
    ------
    OncorweError
        A bad argument, or a federated site that failed (named).
    """
    if backend not in BACKENDS:
        raise OncorweError(f"backend must be one of {BACKENDS}; got {backend!r}")
    if kind not in KINDS:
        raise OncorweError(f"kind must be one of {KINDS}; got {kind!r}")
    if session is not None and backend != "federated":
        raise OncorweError(f"a federated session is for backend 'federated', not {backend!r}")
    features = [str(f) for f in features]
    label_cols = [label] if isinstance(label, str) else list(label)
    if kind == "cox" and len(label_cols) != 2:
        raise OncorweError(f"cox label must be (event column, time column); got {label!r}")
    columns = list(dict.fromkeys([*features, *label_cols]))
    t0 = time.perf_counter()
    partitions = _as_partitions(data, sites)
    frames: dict[str, pd.DataFrame] | None = None

    def site_frames() -> dict[str, pd.DataFrame]:
        nonlocal frames
        if frames is None:
            frames = _frames_by_site(data, partitions, columns, site_column, sites)
        return frames

    fed_cfg = None
    if backend == "federated":
        from dataclasses import replace

        from oncorwe.compute.federated.server import FederatedConfig

        fed_cfg = federated or FederatedConfig()
        if timeout is not None:
            fed_cfg = replace(fed_cfg, timeout=float(timeout))

    with tempfile.TemporaryDirectory(prefix="oncorwe-train-") as scratch:
        if backend == "federated" and partitions is None:
            fr = site_frames()
            if session is not None:  # a site without rows gets no file (a placeholder row)
                fr = {s: f for s, f in fr.items() if len(f)}
            partitions = _write_partitions(fr, Path(scratch))

        # ---- the binning contract
        if isinstance(contract, str):
            if contract not in ("sketch", "none"):
                raise OncorweError(
                    f"contract must be a BinningContract, 'sketch' or 'none'; got {contract!r}"
                )
            if contract == "none":
                resolved: BinningContract | None = None
            else:
                sample = (
                    _schema_sample(partitions, columns)
                    if partitions is not None
                    else data[columns].iloc[:0]
                )
                numeric, categorical = _feature_kinds(features, sample)
                time_col = label_cols[1] if kind == "cox" else None
                max_bin = int(dict(params or {}).get("max_bin", 256))
                if backend == "federated" and session is not None:
                    summaries = session.summaries(
                        partitions,
                        numeric=[*numeric, *([time_col] if time_col else [])],
                        categorical=categorical,
                        min_cell=min_cell,
                    )
                    resolved = _order(
                        contract_from_summaries(summaries, max_bin=max_bin, time_column=time_col),
                        features,
                    )
                elif backend == "federated":
                    from oncorwe.compute.federated.server import federated_contract

                    resolved = federated_contract(
                        partitions,
                        numeric=numeric,
                        categorical=categorical,
                        max_bin=max_bin,
                        time_column=time_col,
                        min_cell=min_cell,
                        config=fed_cfg,
                    )
                else:
                    summaries = [
                        site_summary(
                            f,
                            numeric=[*numeric, *([time_col] if time_col else [])],
                            categorical=categorical,
                            min_cell=min_cell,
                        )
                        for f in site_frames().values()
                    ]
                    resolved = contract_from_summaries(
                        summaries, max_bin=max_bin, time_column=time_col
                    )
                    resolved = _order(resolved, features)
        else:
            resolved = contract
            if [*resolved.numeric, *resolved.categorical] != features:
                resolved = _order(resolved, features)
        if resolved is not None and kind == "cox" and resolved.time_grid is None:
            raise OncorweError(
                "cox training with a binning contract needs its time_grid (the shared time "
                "points of the risk sets); use contract='sketch' or add time_grid"
            )

        prm, rounds = xgboost_params(
            kind,
            params,
            max_bin=None if resolved is None else resolved.max_bin,
            num_class=num_class,
        )
        if num_boost_round is not None:
            rounds = int(num_boost_round)
        time_grid = None if resolved is None or kind != "cox" else resolved.time_grid
        obj = CoxRiskSetObjective(time_grid) if time_grid is not None else None
        if obj is not None:
            prm["disable_default_eval_metric"] = 1
        info: dict[str, Any] = {"backend": backend, "num_boost_round": rounds}

        # ---- training
        if backend == "pooled":
            fr = site_frames()
            info["sites"] = list(fr)
            pooled = drop_unlabeled(pd.concat(list(fr.values()), ignore_index=True), label_cols)
            info["n_rows"] = int(len(pooled))
            booster = _train_pooled(pooled, kind, features, label, resolved, prm, rounds, obj)
            if model_path is not None:
                TrainedModel(booster, kind, features, resolved, backend).save(model_path)
        elif backend == "federated":
            from oncorwe.compute.federated.server import federated_train

            common = dict(
                kind=kind,
                features=features,
                label=label,
                params=prm,
                num_boost_round=rounds,
                contract=resolved,
                time_grid=time_grid,
            )
            if session is not None:
                run = session.train(partitions, **common)
            else:
                run = federated_train(partitions, **common, config=fed_cfg, model_path=model_path)
            booster = run.booster
            info.update(
                sites=list(session.sites if session is not None else partitions),
                manifest=run.manifest,
                port=run.port,
                n_rows=int(sum(m["n_rows"] or 0 for m in run.manifest.values())),
            )
            if model_path is not None and session is not None:
                TrainedModel(booster, kind, features, resolved, backend).save(model_path)
            elif model_path is not None:  # federated_train wrote the booster itself
                TrainedModel(booster, kind, features, resolved, backend)._save_meta(model_path)
        else:
            files = (
                [str(f) for p in partitions.values() for f in _partition_files(p)]
                if partitions is not None
                else None
            )
            frame = (
                None
                if partitions is not None
                else pd.concat(list(site_frames().values()), ignore_index=True)
            )
            booster = _train_dask(
                files,
                frame,
                columns,
                label_cols,
                kind,
                features,
                label,
                resolved,
                prm,
                rounds,
                obj,
                cluster,
                dask_workers,
            )
            info["cluster"] = cluster if isinstance(cluster, str) else "client"
            if model_path is not None:
                TrainedModel(booster, kind, features, resolved, backend).save(model_path)
    info["seconds"] = time.perf_counter() - t0
    return TrainedModel(booster, kind, features, resolved, backend, info)


def _order(contract: BinningContract, features: Sequence[str]) -> BinningContract:
    missing = [c for c in features if c not in contract.numeric and c not in contract.categorical]
    if missing:
        raise OncorweError(
            f"binning contract covers no {missing[:5]} (a sketched feature needs at least "
            "min_cell values at some site)"
        )
    return BinningContract(
        numeric={c: contract.numeric[c] for c in features if c in contract.numeric},
        categorical={c: contract.categorical[c] for c in features if c in contract.categorical},
        max_bin=contract.max_bin,
        time_grid=contract.time_grid,
    )


# ---------------------------------------------------------------------- many models
# What a binned backend decides, whatever a model's parameters say: row and column
# subsampling would draw other rows at each site than in one matrix (the backends would
# train different trees), the binning contract fixes max_bin, and every worker or site
# trains on the CPU with one thread (DEFAULT_PARAMS).
BACKEND_OWNED = ("subsample", "colsample_bytree", "max_bin", "device", "n_jobs", "nthread")


class Trainer:
    """Many models, one backend: the interface analyses call, so none of them knows
    where its models train.

    A stage opens one ``Trainer`` (a context manager) and fits every model through
    :meth:`fit`. The trainer keeps what is costly to start for the whole stage: a Dask
    client (and its ``LocalCluster``) or a :class:`~oncorwe.compute.federated.server.FederatedSession`
    (one server and one process per site). :meth:`sketch` agrees a
    :class:`~oncorwe.compute.federated.binning.BinningContract` once, over the whole table, from
    the sites' suppressed summaries; every later fit bins its features with it (a
    categorical column missing from it, such as an arm indicator, brings its fixed
    category list), so the three backends train the same trees on the same rows.

    Parameters
    ----------
    backend : {"pooled", "federated", "dask"}
    cluster : "local", scheduler address or distributed.Client
        Dask only.
    federated : FederatedConfig, optional
        Federated only.
    sites : sequence of str, optional
        Federated: every site of the federation, in rank order (required).
    site_column : str, default "site"
        The column of the frames given to :meth:`fit` that names each row's site.
    min_cell : int, default 11
        Smallest count a site sends in its sketch summary.
    dask_workers : int, default 2
    max_bin : int, default 64

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> df = pd.DataFrame({"x": rng.normal(size=400), "site": np.repeat(["A", "B"], 200)})
    >>> df["y"] = (df["x"] + rng.normal(size=400) > 0).astype(int)
    >>> with Trainer("pooled", min_cell=5) as tr:
    ...     _ = tr.sketch(df, ["x"])
    ...     m = tr.fit("binary", df, features=["x"], label="y", params={"n_estimators": 5})
    >>> m.predict_proba(df).shape
    (400, 2)
    """

    def __init__(
        self,
        backend: str = "pooled",
        *,
        cluster: Any = "local",
        federated: Any = None,
        sites: Sequence[str] | None = None,
        site_column: str = "site",
        min_cell: int = DEFAULT_MIN_CELL,
        dask_workers: int = DASK_LOCAL_WORKERS,
        max_bin: int = 64,
    ) -> None:
        if backend not in BACKENDS:
            raise OncorweError(f"backend must be one of {BACKENDS}; got {backend!r}")
        if backend == "federated" and not sites:
            raise OncorweError("a federated trainer needs the list of sites (one process each)")
        self.backend = backend
        self.cluster = cluster
        self.federated = federated
        self.sites = None if sites is None else [str(s) for s in sites]
        self.site_column = site_column
        self.min_cell = int(min_cell)
        self.dask_workers = int(dask_workers)
        self.max_bin = int(max_bin)
        self.contract: BinningContract | None = None
        self.session: Any = None
        self._client: Any = None
        self._local: Any = None
        self.n_models = 0
        self.seconds = 0.0

    holds_rows = False  # the rows are at the sites or the workers: no pooled tuning

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Trainer:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        if self.backend == "federated" and self.session is None:
            from oncorwe.compute.federated.server import FederatedConfig, FederatedSession

            self.session = FederatedSession(self.sites, self.federated or FederatedConfig())
            self.session.open()
        elif self.backend == "dask" and self._client is None:
            from distributed import Client, LocalCluster

            if not isinstance(self.cluster, str):
                self._client = self.cluster
            elif self.cluster == "local":
                self._local = LocalCluster(
                    n_workers=self.dask_workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    silence_logs=logging.ERROR,
                )
                self._client = Client(self._local)
            elif self.cluster.startswith(("tcp://", "tls://", "ucx://", "inproc://")):
                self._client = Client(self.cluster)
            else:
                raise OncorweError(
                    f"cluster must be 'local' or a scheduler address; got {self.cluster!r}"
                )

    def close(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            session.close()
        if self._client is not None and self._client is not self.cluster:
            self._client.close()
        self._client = None
        if self._local is not None:
            self._local.close()
            self._local = None

    # ------------------------------------------------------------------ binning
    def sketch(
        self,
        frame: pd.DataFrame,
        features: Sequence[str],
        *,
        time_column: str | None = None,
    ) -> BinningContract:
        """Agree the binning contract of ``features`` (and the time grid of
        ``time_column``) from every site's suppressed summary of ``frame``; later fits
        use it. In a federation each site process summarizes its own rows."""
        features = [str(f) for f in features]
        numeric, categorical = _feature_kinds(features, frame[features].iloc[:0])
        num = [*numeric, *([time_column] if time_column else [])]
        cols = list(dict.fromkeys([*features, *([time_column] if time_column else [])]))
        frames = _frames_by_site(frame, None, cols, self.site_column, self.sites)
        if self.session is not None:
            with tempfile.TemporaryDirectory(prefix="oncorwe-sketch-") as scratch:
                parts = _write_partitions(frames, Path(scratch))
                summaries = self.session.summaries(
                    parts, numeric=num, categorical=categorical, min_cell=self.min_cell
                )
        else:
            summaries = [
                site_summary(f, numeric=num, categorical=categorical, min_cell=self.min_cell)
                for f in frames.values()
            ]
        contract = contract_from_summaries(summaries, max_bin=self.max_bin, time_column=time_column)
        # a feature no site can summarize (fewer than min_cell values everywhere, e.g. a
        # marker never tested in these cancers) carries no information: one bin for all
        self.contract = _order(
            BinningContract(
                numeric={**{c: () for c in numeric}, **contract.numeric},
                categorical={**{c: () for c in categorical}, **contract.categorical},
                max_bin=contract.max_bin,
                time_grid=contract.time_grid,
            ),
            features,
        )
        return self.contract

    def _contract_for(self, frame: pd.DataFrame, features: Sequence[str]) -> BinningContract:
        if self.contract is None:
            raise OncorweError("Trainer.fit needs a binning contract: call sketch() first")
        numeric = {c: self.contract.numeric[c] for c in features if c in self.contract.numeric}
        categorical: dict[str, tuple[str, ...]] = {}
        for c in features:
            if c in self.contract.categorical:
                categorical[c] = self.contract.categorical[c]
            elif c not in numeric:
                dt = frame[c].dtype
                if not isinstance(dt, pd.CategoricalDtype):
                    raise OncorweError(
                        f"column {c!r} is not in the binning contract; sketch it, or give it "
                        "a fixed category list (pandas category dtype)"
                    )
                categorical[c] = tuple(str(v) for v in dt.categories)
        return BinningContract(
            numeric=numeric,
            categorical=categorical,
            max_bin=self.contract.max_bin,
            time_grid=self.contract.time_grid,
        )

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        kind: str,
        frame: pd.DataFrame,
        *,
        features: Sequence[str],
        label: str | Sequence[str],
        params: Mapping[str, Any] | None = None,
        num_class: int | None = None,
        groups: Any = None,
    ) -> TrainedModel:
        """Train one model on ``frame``'s rows (see :func:`train_model`); ``frame`` must
        hold ``site_column``. Rows with a missing label are left out.

        ``params`` may be the in-process estimators' (as :class:`EstimatorTrainer` takes
        them): what :data:`BACKEND_OWNED` names is the backend's and is left out, so one
        model specification serves every backend. ``groups`` is for the in-process
        estimators' early stopping; these backends do not early-stop."""
        features = [str(f) for f in features]
        if self.site_column not in frame.columns:
            raise OncorweError(
                f"Trainer.fit: the frame has no site column {self.site_column!r} "
                f"({self.backend} training needs each row's site)"
            )
        contract = self._contract_for(frame, features)
        own = {k: v for k, v in dict(params or {}).items() if k not in BACKEND_OWNED}
        prm = {"max_bin": contract.max_bin, **own}
        label_cols = [label] if isinstance(label, str) else list(label)
        cols = list(dict.fromkeys([*features, *label_cols, self.site_column]))
        model = train_model(
            kind,
            frame[cols],
            features=features,
            label=label,
            params=prm,
            backend=self.backend,
            cluster=self._client if self._client is not None else self.cluster,
            sites=self.sites if self.backend == "federated" else None,
            contract=contract,
            federated=self.federated,
            site_column=self.site_column,
            min_cell=self.min_cell,
            dask_workers=self.dask_workers,
            num_class=num_class,
            session=self.session,
        )
        self.n_models += 1
        self.seconds += float(model.info.get("seconds", 0.0))
        return model


# ---------------------------------------------------------------------- in process
class EstimatorModel:
    """A model :class:`EstimatorTrainer` fitted: the estimator, reading its own features
    from a wider frame (a site column or a label beside them is ignored)."""

    def __init__(self, estimator: Any, kind: str, features: list[str]) -> None:
        self.estimator, self.kind, self.features = estimator, kind, features

    @property
    def booster_(self) -> Any:
        """The fitted booster (XGBoost estimators), for the propensity models' gain."""
        return getattr(self.estimator, "booster_", None)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.estimator.predict_proba(frame[self.features])

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.estimator.predict(frame[self.features])

    def predict_margin(self, frame: pd.DataFrame) -> np.ndarray:
        return self.estimator.predict_margin(frame[self.features])

    def predict_risk(self, frame: pd.DataFrame) -> np.ndarray:
        return self.estimator.predict_risk(frame[self.features])

    def shap_values(self, frame: pd.DataFrame, *, approximate: bool = False) -> pd.DataFrame:
        return self.estimator.shap_values(frame[self.features], approximate=approximate)


class EstimatorTrainer:
    """The ``pooled`` backend of the pipelines: every row in this process, each model a
    scikit-learn-style estimator, behind the same :meth:`fit` as :class:`Trainer` so an
    analysis never asks which backend it has.

    By default a fit builds :class:`~oncorwe.models.estimators.ResponseClassifier`
    (``binary``, ``multiclass``: the labels decide), ``OutcomeRegressor`` (``regression``)
    or ``SurvivalModel`` (``cox``) from ``params``: histogram XGBoost with row and column
    subsampling, the models the README's planted-truth figures were measured with.
    ``estimator`` replaces them with any scikit-learn estimator (cloned per fit, given
    the ``params`` it has, e.g. a fold's ``random_state``), the way EconML takes model
    objects. ``holds_rows``: tuning may search over the rows, and there is no binning
    contract to agree (XGBoost bins each fit's own rows).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> df = pd.DataFrame({"x": rng.normal(size=200)})
    >>> df["y"] = (df["x"] + rng.normal(size=200) > 0).astype(int)
    >>> m = EstimatorTrainer().fit(
    ...     "binary", df, features=["x"], label="y", params={"n_estimators": 5, "n_jobs": 1}
    ... )
    >>> m.predict_proba(df).shape
    (200, 2)
    """

    backend = "pooled"
    holds_rows = True

    def __init__(self, estimator: Any = None, *, site_column: str = "site") -> None:
        self.estimator = estimator
        self.site_column = site_column
        self.n_models = 0
        self.seconds = 0.0

    def __enter__(self) -> EstimatorTrainer:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _make(self, kind: str, params: Mapping[str, Any]) -> Any:
        if self.estimator is not None:
            est = clone(self.estimator)
            own = est.get_params()
            return est.set_params(**{k: v for k, v in params.items() if k in own})
        if kind in ("binary", "multiclass"):
            return ResponseClassifier(**params)
        if kind == "regression":
            return OutcomeRegressor(**params)
        if kind == "cox":
            return SurvivalModel(objective="cox", **params)
        raise OncorweError(f"kind must be one of {KINDS}; got {kind!r}")

    def fit(
        self,
        kind: str,
        frame: pd.DataFrame,
        *,
        features: Sequence[str],
        label: str | Sequence[str],
        params: Mapping[str, Any] | None = None,
        num_class: int | None = None,
        groups: Any = None,
    ) -> EstimatorModel:
        """Fit one model on ``frame[features]`` and its ``label`` column (``(event,
        time)`` for ``cox``); ``groups`` keeps a patient's rows on one side of an
        estimator's early-stopping split. ``num_class`` is read from the labels here."""
        features = [str(f) for f in features]
        t0 = time.perf_counter()
        est = self._make(kind, dict(params or {}))
        labels = [frame[c].to_numpy() for c in ([label] if isinstance(label, str) else label)]
        fit_grouped(est, frame[features], *labels, groups=groups)
        self.n_models += 1
        self.seconds += time.perf_counter() - t0
        return EstimatorModel(est, kind, features)


@contextlib.contextmanager
def stage_trainer(
    backend: str,
    *,
    sites: Sequence[str] | None,
    site_column: str | None,
    cluster: Any = "local",
    federated_params: Any = None,
    min_cell: int = DEFAULT_MIN_CELL,
    max_bin: int = 64,
) -> Iterator[Trainer | EstimatorTrainer]:
    """The trainer of one pipeline stage (``params.yaml`` ``compute``): for ``pooled`` an
    :class:`EstimatorTrainer` (the in-process estimators), else a :class:`Trainer`.

    ``federated_params`` is the ``compute.federated`` section: throw-away TLS material
    goes to a temporary folder removed on exit, with every process.
    """
    if backend == "pooled":
        yield EstimatorTrainer(site_column=site_column or "site")
        return
    if not site_column or sites is None or len(sites) == 0:
        raise OncorweError(
            f"compute.training: {backend} training needs the hospital role (one site per hospital)"
        )
    sites = sorted(str(s) for s in sites)
    with tempfile.TemporaryDirectory(prefix="oncorwe-trainer-") as scratch:
        fed = None
        if backend == "federated":
            from oncorwe.compute.federated.server import FederatedConfig, federated_config

            fed = (
                federated_config(federated_params, sites, Path(scratch))
                if federated_params is not None
                else FederatedConfig()
            )
        with Trainer(
            backend,
            cluster=cluster,
            federated=fed,
            sites=sites if fed is not None else None,
            site_column=site_column,
            min_cell=min_cell,
            max_bin=max_bin,
        ) as trainer:
            yield trainer
