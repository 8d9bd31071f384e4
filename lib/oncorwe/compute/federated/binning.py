"""The shared binning contract: identical cut points at every hospital.

XGBoost's horizontal federated mode sums the sites' gradient histograms each round, but
each site bins its own rows first, and the sites' quantile sketches are merged into cut
points that differ from the pooled sketch's once a feature has more distinct values
than ``max_bin`` (max |dp| 0.24 on a 4,000-row test, the project's stack notes). A
:class:`BinningContract` removes that difference: every site maps each numeric feature
to its bin index on the *same* cut points before XGBoost sees it, so no feature has more
than ``max_bin`` distinct values, XGBoost's own sketch is exact, and federated training
equals pooled training on the same binned data.

The contract is data-independent at the sites: it is built either from clinical
reference ranges given up front (:meth:`BinningContract.from_reference_ranges`) or from
a federated quantile sketch in which each site sends only a small summary
(:func:`site_summary`) and the coordinator merges them (:func:`contract_from_summaries`).

The sketch protocol
-------------------
All sites share one fixed grid, independent of any data: ``GRID_CELLS`` cells equally
spaced on the ``asinh`` scale over ``[-GRID_LIMIT, GRID_LIMIT]`` (about +-3.6e10 on the
original scale; relative width 0.08 % for large values, absolute width 0.0008 near 0).
A site sorts a feature's values into grid cells and sends *equi-depth intervals*:
runs of consecutive cells, each holding at least ``max(min_cell, n / target)`` rows, as
``[first_cell, end_cell, count]``. No patient value leaves the site: interval ends are
grid cells, and every count is at least ``min_cell`` (a site with fewer non-missing
values sends nothing for that feature). The coordinator spreads each interval's count
evenly over its cells, sums the sites, and places the cut points at the grid edges where
the merged cumulative count crosses ``i / max_bin``, ``i = 1 .. max_bin - 1`` (duplicates
dropped). Cut points are therefore grid edges, never an observed value; the evenly
spread mass is an approximation that moves a cut by at most one interval width, which
shifts which rows share a bin but never breaks the contract (every site still uses the
same cuts).

Categorical features carry a fixed category list (from reference lists, or the union of
the levels seen in at least ``min_cell`` rows at some site); a level outside the list is
mapped to missing.

Examples
--------
>>> import pandas as pd
>>> c = BinningContract.from_reference_ranges({"age": (20.0, 80.0, 7)}, max_bin=16)
>>> c.numeric["age"]
(20.0, 32.0, 44.0, 56.0, 68.0, 80.0)
>>> c.apply(pd.DataFrame({"age": [19.0, 20.0, 50.0, None, 99.0]}))["age"].tolist()
[0.0, 1.0, 3.0, nan, 6.0]
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oncorwe.core.errors import OncorweError
from oncorwe.core.privacy import DEFAULT_MIN_CELL

__all__ = [
    "GRID_CELLS",
    "GRID_LIMIT",
    "BinningContract",
    "contract_from_summaries",
    "grid_edges",
    "site_summary",
]

CONTRACT_VERSION = 1
# The fixed sketch grid: cells equally spaced in asinh(x) over [-GRID_LIMIT, GRID_LIMIT].
GRID_CELLS = 1 << 16
GRID_LIMIT = 25.0
_GRID_WIDTH = 2.0 * GRID_LIMIT / GRID_CELLS


def grid_cell(x: np.ndarray) -> np.ndarray:
    """Grid cell index in ``[0, GRID_CELLS)`` of each (finite) value."""
    z = (np.arcsinh(np.asarray(x, dtype=float)) + GRID_LIMIT) / _GRID_WIDTH
    return np.clip(np.floor(z), 0, GRID_CELLS - 1).astype(np.int64)


def grid_edges(cells: np.ndarray | Sequence[int]) -> np.ndarray:
    """The value of the lower edge of each grid cell index (``0 .. GRID_CELLS``)."""
    j = np.asarray(cells, dtype=float)
    return np.sinh(j * _GRID_WIDTH - GRID_LIMIT)


@dataclass(frozen=True)
class BinningContract:
    """Per-feature cut points and category lists shared by every site.

    Parameters
    ----------
    numeric : mapping of str to sequence of float
        Sorted, strictly increasing, finite cut points per numeric feature; at most
        ``max_bin - 1`` of them, so a feature takes at most ``max_bin`` bin indices.
    categorical : mapping of str to sequence of str
        The category list per categorical feature (order fixes the codes).
    max_bin : int, default 256
        XGBoost's ``max_bin``: training must use the same value.
    time_grid : sequence of float, optional
        Sorted time points for survival labels: the federated Cox objective
        (:mod:`oncorwe.compute.trainer`) puts a row with time ``t`` at the first grid point
        ``>= t`` (or after the last one), so the sites only exchange risk-set sums on this
        grid, never an event time.

    Attributes
    ----------
    features : list of str
        Numeric features, then categorical ones, in the order given.

    Notes
    -----
    Bin index of a value ``x`` with cuts ``c_0 < ... < c_{k-1}``: the number of cuts
    ``<= x`` (``numpy.searchsorted(cuts, x, side="right")``), so bin ``i`` holds
    ``c_{i-1} <= x < c_i``. Missing values stay missing (XGBoost learns their default
    direction).
    """

    numeric: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    categorical: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    max_bin: int = 256
    time_grid: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.max_bin, int | np.integer) or not 2 <= self.max_bin <= 65536:
            raise OncorweError(
                f"binning contract: max_bin must be an int in [2, 65536]; got {self.max_bin!r}"
            )
        numeric: dict[str, tuple[float, ...]] = {}
        for name, cuts in dict(self.numeric).items():
            arr = np.asarray(list(cuts), dtype=float)
            if arr.ndim != 1 or not np.isfinite(arr).all():
                raise OncorweError(f"binning contract: cuts of {name!r} must be finite numbers")
            if arr.size and not (np.diff(arr) > 0).all():
                raise OncorweError(
                    f"binning contract: cuts of {name!r} must be strictly increasing"
                )
            if arr.size > self.max_bin - 1:
                raise OncorweError(
                    f"binning contract: {name!r} has {arr.size} cuts; at most max_bin - 1 = "
                    f"{self.max_bin - 1} keep it within max_bin bins"
                )
            numeric[str(name)] = tuple(float(v) for v in arr)
        categorical: dict[str, tuple[str, ...]] = {}
        for name, levels in dict(self.categorical).items():
            lv = tuple(str(v) for v in levels)
            if len(set(lv)) != len(lv):
                raise OncorweError(f"binning contract: categories of {name!r} repeat")
            categorical[str(name)] = lv
        both = set(numeric) & set(categorical)
        if both:
            raise OncorweError(f"binning contract: {sorted(both)} are both numeric and categorical")
        grid = None
        if self.time_grid is not None:
            g = np.asarray(list(self.time_grid), dtype=float)
            if g.ndim != 1 or g.size == 0 or not np.isfinite(g).all() or not (np.diff(g) > 0).all():
                raise OncorweError(
                    "binning contract: time_grid must be finite, strictly increasing"
                )
            grid = tuple(float(v) for v in g)
        object.__setattr__(self, "numeric", numeric)
        object.__setattr__(self, "categorical", categorical)
        object.__setattr__(self, "max_bin", int(self.max_bin))
        object.__setattr__(self, "time_grid", grid)

    # ------------------------------------------------------------------ views
    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def n_bins(self, feature: str) -> int:
        """Number of bin indices (numeric) or categories (categorical) of ``feature``."""
        if feature in self.numeric:
            return len(self.numeric[feature]) + 1
        return len(self.categorical[feature])

    # ------------------------------------------------------------------ mapping
    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Map ``frame``'s contract features to bin indices / fixed categories.

        Parameters
        ----------
        frame : DataFrame of shape (n, >= len(features))
            Must hold every contract feature; other columns are dropped.

        Returns
        -------
        DataFrame of shape (n, len(features))
            Numeric features as ``float32`` bin indices in ``[0, n_bins)`` (NaN where
            missing), categorical features as pandas ``category`` with the contract's
            categories (unknown levels become missing); same index as ``frame``.
        """
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise OncorweError(f"binning contract: the data lacks feature(s) {missing[:5]}")
        out: dict[str, Any] = {}
        for name, cuts in self.numeric.items():
            s = frame[name]
            if isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(s.dtype):
                s = pd.to_numeric(s.astype("object"), errors="raise")
            x = s.to_numpy(dtype=float, na_value=np.nan)
            idx = np.searchsorted(np.asarray(cuts), x, side="right").astype(np.float32)
            idx[np.isnan(x)] = np.nan
            out[name] = idx
        for name, levels in self.categorical.items():
            s = frame[name].astype("object")
            vals = s.where(s.isna(), s.map(str))
            out[name] = pd.Categorical(vals, categories=list(levels))
        return pd.DataFrame(out, index=frame.index, columns=self.features)

    def time_index(self, time: Any) -> np.ndarray:
        """Index on :attr:`time_grid` of each time: the first grid point ``>= t``."""
        if self.time_grid is None:
            raise OncorweError("binning contract has no time_grid")
        return np.searchsorted(np.asarray(self.time_grid), np.asarray(time, float), side="left")

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_reference_ranges(
        cls,
        ranges: Mapping[str, tuple[float, float] | tuple[float, float, int] | Sequence[float]],
        *,
        categorical: Mapping[str, Sequence[Any]] | None = None,
        max_bin: int = 256,
        time_grid: Sequence[float] | None = None,
    ) -> BinningContract:
        """A contract from ranges fixed up front (clinical reference ranges, units).

        Parameters
        ----------
        ranges : mapping
            Per numeric feature either ``(low, high)`` (``max_bin`` equal-width bins:
            ``max_bin - 1`` cuts from ``low`` to ``high``; values below ``low`` share
            bin 0, values at or above ``high`` the last bin), ``(low, high, n_bins)``, or
            an explicit list of more than three cut points.
        categorical : mapping of str to sequence, optional
            Category list per categorical feature.
        max_bin : int, default 256
        time_grid : sequence of float, optional
        """
        numeric: dict[str, tuple[float, ...]] = {}
        for name, spec in ranges.items():
            spec = tuple(spec)
            if len(spec) in (2, 3):
                low, high = float(spec[0]), float(spec[1])
                n_bins = int(spec[2]) if len(spec) == 3 else max_bin
                if not high > low or not 2 <= n_bins <= max_bin:
                    raise OncorweError(
                        f"binning contract: range of {name!r} needs low < high and "
                        f"2 <= n_bins <= max_bin; got {spec}"
                    )
                numeric[name] = tuple(np.linspace(low, high, n_bins - 1).tolist())
            else:
                numeric[name] = tuple(float(v) for v in spec)
        return cls(
            numeric=numeric,
            categorical={k: tuple(v) for k, v in (categorical or {}).items()},
            max_bin=max_bin,
            time_grid=None if time_grid is None else tuple(time_grid),
        )

    # ------------------------------------------------------------------ serialization
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": CONTRACT_VERSION,
            "max_bin": self.max_bin,
            "numeric": {k: list(v) for k, v in self.numeric.items()},
            "categorical": {k: list(v) for k, v in self.categorical.items()},
            "time_grid": None if self.time_grid is None else list(self.time_grid),
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> BinningContract:
        version = payload.get("version", CONTRACT_VERSION)
        if version != CONTRACT_VERSION:
            raise OncorweError(f"binning contract version {version!r} is not {CONTRACT_VERSION}")
        return cls(
            numeric=payload.get("numeric", {}),
            categorical=payload.get("categorical", {}),
            max_bin=int(payload.get("max_bin", 256)),
            time_grid=payload.get("time_grid"),
        )

    def to_json(self) -> str:
        """JSON text; floats are written with ``repr`` precision, so cuts round-trip."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> BinningContract:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | os.PathLike[str]) -> None:
        from oncorwe.core.io import atomic_path

        with atomic_path(path) as tmp:
            tmp.write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BinningContract:
        return cls.from_json(Path(path).read_text())


# ---------------------------------------------------------------------- sketch: site side
def _intervals(x: np.ndarray, per_interval: int) -> list[list[int]]:
    """Equi-depth runs of grid cells, each with at least ``per_interval`` values."""
    cells = np.sort(grid_cell(x))
    uniq, counts = np.unique(cells, return_counts=True)
    out: list[list[int]] = []
    start, acc = None, 0
    for cell, k in zip(uniq.tolist(), counts.tolist(), strict=True):
        if start is None:
            start = cell
        acc += k
        if acc >= per_interval:
            out.append([start, cell + 1, acc])
            start, acc = None, 0
    if acc:
        # the remainder is below the threshold: fold it into the last interval
        last = out[-1]
        last[1], last[2] = int(uniq[-1]) + 1, last[2] + acc
    return out


def site_summary(
    frame: pd.DataFrame,
    *,
    numeric: Iterable[str] = (),
    categorical: Iterable[str] = (),
    min_cell: int = DEFAULT_MIN_CELL,
    target_intervals: int = 1024,
) -> dict[str, Any]:
    """One site's contribution to the federated sketch: small, no patient rows.

    Parameters
    ----------
    frame : DataFrame
        The site's own rows.
    numeric, categorical : iterables of str
        Features to summarize (a survival time column is summarized as numeric).
    min_cell : int, default 11
        Every count sent is at least this; features with fewer non-missing values and
        categories seen in fewer rows are left out.
    target_intervals : int, default 1024
        About this many equi-depth intervals per feature (fewer when ``min_cell``
        requires it); resolution of the merged cut points.

    Returns
    -------
    dict
        ``{"numeric": {name: [[first_cell, end_cell, count], ...]},
        "categorical": {name: [level, ...]}}``, JSON-serializable.
    """
    if min_cell < 1:
        raise OncorweError(f"site_summary: min_cell must be >= 1; got {min_cell}")
    out: dict[str, Any] = {"numeric": {}, "categorical": {}}
    for name in numeric:
        x = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        x = x[np.isfinite(x)]
        if x.size < min_cell:
            continue
        per = max(int(min_cell), math.ceil(x.size / max(int(target_intervals), 1)))
        out["numeric"][name] = _intervals(x, per)
    for name in categorical:
        counts = frame[name].dropna().astype(str).value_counts()
        out["categorical"][name] = sorted(counts.index[counts >= min_cell].tolist())
    return out


# ---------------------------------------------------------------------- sketch: coordinator
def _cuts_from_intervals(
    parts: Sequence[Sequence[Sequence[int]]], n_bins: int
) -> tuple[float, ...]:
    diff = np.zeros(GRID_CELLS + 1)
    for intervals in parts:
        for first, end, count in intervals:
            first, end = int(first), int(end)
            if not 0 <= first < end <= GRID_CELLS or count <= 0:
                raise OncorweError(f"sketch: malformed interval {[first, end, count]}")
            dens = float(count) / (end - first)
            diff[first] += dens
            diff[end] -= dens
    mass = np.cumsum(diff[:-1])  # per cell
    total = mass.sum()
    if total <= 0:
        return ()
    cum = np.concatenate([[0.0], np.cumsum(mass)])  # cum[j] = mass below edge j
    targets = total * np.arange(1, n_bins) / n_bins
    edges = np.searchsorted(cum, targets * (1 - 1e-12), side="left")
    edges = np.unique(edges[(edges > 0) & (edges < GRID_CELLS)])
    # a cut at an edge with no mass on one side is useless: keep edges inside the data
    lo, hi = np.flatnonzero(mass)[[0, -1]]
    edges = edges[(edges > lo) & (edges <= hi)]
    return tuple(grid_edges(edges).tolist())


def contract_from_summaries(
    summaries: Sequence[Mapping[str, Any]],
    *,
    max_bin: int = 256,
    time_column: str | None = None,
    time_points: int = 128,
    reference: BinningContract | None = None,
) -> BinningContract:
    """Merge the sites' :func:`site_summary` outputs into one contract.

    Parameters
    ----------
    summaries : sequence of dict
        One per site.
    max_bin : int, default 256
        At most ``max_bin`` bins (``max_bin - 1`` cuts) per numeric feature.
    time_column : str, optional
        A numeric entry of the summaries to turn into the contract's ``time_grid``
        (about ``time_points`` quantile points) instead of a feature.
    time_points : int, default 128
    reference : BinningContract, optional
        Features (and time grid) fixed up front; they override the sketched ones.

    Returns
    -------
    BinningContract
        Features in the order they first appear in the summaries.
    """
    numeric: dict[str, list] = {}
    categorical: dict[str, set[str]] = {}
    for s in summaries:
        for name, intervals in s.get("numeric", {}).items():
            numeric.setdefault(name, []).append(intervals)
        for name, levels in s.get("categorical", {}).items():
            categorical.setdefault(name, set()).update(str(v) for v in levels)
    time_grid = None
    if time_column is not None:
        if time_column not in numeric:
            raise OncorweError(f"sketch: no site sent a summary of the time column {time_column!r}")
        cuts = _cuts_from_intervals(numeric.pop(time_column), time_points + 1)
        time_grid = cuts or None
    cuts_by = {name: _cuts_from_intervals(parts, max_bin) for name, parts in numeric.items()}
    cats = {name: tuple(sorted(levels)) for name, levels in categorical.items()}
    if reference is not None:
        cuts_by.update(reference.numeric)
        cats.update(reference.categorical)
        if reference.time_grid is not None:
            time_grid = reference.time_grid
    return BinningContract(numeric=cuts_by, categorical=cats, max_bin=max_bin, time_grid=time_grid)
