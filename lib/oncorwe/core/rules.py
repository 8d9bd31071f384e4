"""Subgroup rules: one small condition language shared by the generator and the tracks.

A condition is a mapping from a field to what it must satisfy; all entries must hold
(logical AND). Fields and their forms:

``cancer``, ``population``, ``stage``, ``sex``
    a value or a list of values (``cancer: nsclc`` or ``population: [korean, european]``).
``line``
    an integer, a list of integers, or a range ``{min: 2}`` / ``{min: 1, max: 2}``.
a biomarker name (``EGFR``, ``PDL1_TPS``, ...; upper case)
    ``positive`` / ``negative`` for a binary marker, or a range ``{min: 50}`` on its value
    (PD-L1 TPS in percent), read from column ``bm_<name>``. An untested marker matches
    neither ``positive`` nor ``negative``: a rule on observed data only selects patients
    whose result is known.
any other column of a user's table (lower case, e.g. ``histology``)
    a value or a list of values, or a range ``{min, max}``.

A range's ``min`` and ``max`` are inclusive; ``below`` is an exclusive upper bound
(``{min: 65, below: 75}`` is ``65 <= age < 75``), so that cut points split a numeric
field into intervals that neither overlap nor leave a gap.

The generator evaluates conditions on *true* biomarker values (its planted effects);
the tracks evaluate the same conditions on *observed* values (their hypotheses), so a
hypothesis and a planted rule can be compared directly.

Example
-------
>>> import pandas as pd
>>> frame = pd.DataFrame({"cancer": ["nsclc", "nsclc"], "line": [1, 2],
...                       "bm_egfr": [1.0, float("nan")]})
>>> Condition.parse({"cancer": "nsclc", "EGFR": "positive"}).mask(frame).tolist()
[True, False]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

CATEGORICAL_FIELDS = ("cancer", "population", "stage", "sex")
NUMERIC_FIELDS = ("line",)


def biomarker_column(name: str) -> str:
    """Column holding a biomarker's numeric value: ``EGFR`` -> ``bm_egfr``."""
    return "bm_" + name.lower()


@dataclass(frozen=True)
class Clause:
    """One field constraint: membership in ``values``, or ``low <= x <= high`` / ``x < below``."""

    field: str
    values: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    below: float | None = None  # exclusive upper bound

    def column(self, columns=None) -> str:
        """The column this clause reads: the field itself, or ``bm_<field>`` for a marker.

        With ``columns`` given, a field that is not a standard one resolves to a column of
        that exact name when there is no ``bm_`` column (a user's own cohort table).
        """
        if self.field in CATEGORICAL_FIELDS or self.field in NUMERIC_FIELDS:
            return self.field
        bm = biomarker_column(self.field)
        if columns is not None and bm not in columns and self.field in columns:
            return self.field
        return bm

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        col = self.column(frame.columns)
        if col not in frame.columns:
            raise KeyError(f"rule field {self.field!r} needs column {col!r}, which the table lacks")
        x = frame[col]
        if self.values is not None:
            return x.isin(self.values).to_numpy(dtype=bool)
        if not pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x):
            # a text marker column ("positive" / "negative") in a user's table
            want = {(1.0, None): "positive", (None, 0.0): "negative"}.get((self.low, self.high))
            if want is not None:
                return (x.astype("string").str.lower() == want).fillna(False).to_numpy(bool)
        v = pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)
        ok = ~np.isnan(v)
        if self.low is not None:
            ok &= v >= self.low
        if self.high is not None:
            ok &= v <= self.high
        if self.below is not None:
            ok &= v < self.below
        return ok

    def to_spec(self) -> Any:
        if self.values is not None:
            return self.values[0] if len(self.values) == 1 else list(self.values)
        if self.field not in NUMERIC_FIELDS and (self.low, self.high) == (1.0, None):
            return "positive"
        if self.field not in NUMERIC_FIELDS and (self.low, self.high) == (None, 0.0):
            return "negative"
        out = {}
        if self.low is not None:
            out["min"] = self.low
        if self.high is not None:
            out["max"] = self.high
        if self.below is not None:
            out["below"] = self.below
        return out

    def describe(self) -> str:
        spec = self.to_spec()
        if (
            isinstance(spec, dict)
            and spec.get("min") is not None
            and spec.get("min") == spec.get("max")
        ):
            return f"{self.field} = {spec['min']:g}"
        if isinstance(spec, dict):
            parts = []
            if "min" in spec:
                parts.append(f"{self.field} >= {spec['min']:g}")
            if "max" in spec:
                parts.append(f"{self.field} <= {spec['max']:g}")
            if "below" in spec:
                parts.append(f"{self.field} < {spec['below']:g}")
            return " and ".join(parts)
        if spec in ("positive", "negative") and self.values is None:
            return f"{self.field} {spec}"
        if isinstance(spec, list):
            return f"{self.field} in {{{', '.join(map(str, spec))}}}"
        return f"{self.field} = {spec}"


def _parse_clause(field: str, spec: Any) -> Clause:
    where = f"condition field {field!r}"
    if field in CATEGORICAL_FIELDS:
        vals = spec if isinstance(spec, list) else [spec]
        if not vals or not all(isinstance(v, str) for v in vals):
            raise ValueError(f"{where}: expected a name or a list of names, got {spec!r}")
        return Clause(field, values=tuple(vals))
    if isinstance(spec, str):
        if field in NUMERIC_FIELDS:
            raise ValueError(f"{where}: expected an integer or {{min, max}}, got {spec!r}")
        if spec == "positive":
            return Clause(field, low=1.0)
        if spec == "negative":
            return Clause(field, high=0.0)
        if field.islower():
            # a user's categorical column (marker names are upper case: EGFR, PDL1_TPS)
            return Clause(field, values=(spec,))
        raise ValueError(f"{where}: expected 'positive', 'negative' or {{min, max}}, got {spec!r}")
    if isinstance(spec, list) and field not in NUMERIC_FIELDS and field.islower():
        if not spec or not all(isinstance(v, str | int) for v in spec):
            raise ValueError(f"{where}: expected a list of values, got {spec!r}")
        return Clause(field, values=tuple(spec))
    if isinstance(spec, bool):
        raise ValueError(f"{where}: expected a value or {{min, max}}, got {spec!r}")
    if isinstance(spec, int | float):
        return Clause(field, low=float(spec), high=float(spec))
    if isinstance(spec, list) and field in NUMERIC_FIELDS:
        if not spec or not all(isinstance(v, int) for v in spec):
            raise ValueError(f"{where}: expected a list of integers, got {spec!r}")
        return Clause(field, values=tuple(spec))
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"min", "max", "below"}
        if unknown or not spec:
            raise ValueError(
                f"{where}: a range takes keys 'min', 'max' and/or 'below', got {dict(spec)!r}"
            )
        low, high, below = spec.get("min"), spec.get("max"), spec.get("below")
        for name, v in (("min", low), ("max", high), ("below", below)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                raise ValueError(f"{where}: {name} must be a number, got {v!r}")
        if high is not None and below is not None:
            raise ValueError(f"{where}: give 'max' (inclusive) or 'below' (exclusive), not both")
        if low is not None and high is not None and low > high:
            raise ValueError(f"{where}: min {low} exceeds max {high}")
        if low is not None and below is not None and low >= below:
            raise ValueError(f"{where}: min {low} is not below {below}")
        return Clause(
            field,
            low=None if low is None else float(low),
            high=None if high is None else float(high),
            below=None if below is None else float(below),
        )
    raise ValueError(f"{where}: cannot read {spec!r}")


@dataclass(frozen=True)
class Condition:
    """A conjunction of clauses; the empty condition matches every row."""

    clauses: tuple[Clause, ...] = ()

    @classmethod
    def parse(cls, spec: Mapping[str, Any] | None) -> Condition:
        if spec is None:
            return cls()
        if not isinstance(spec, Mapping):
            raise ValueError(f"a condition must be a mapping of field -> value, got {spec!r}")
        return cls(tuple(_parse_clause(str(k), v) for k, v in spec.items()))

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.ones(len(frame), dtype=bool)
        for clause in self.clauses:
            out &= clause.mask(frame)
        return out

    def fields(self) -> tuple[str, ...]:
        return tuple(c.field for c in self.clauses)

    def biomarkers(self) -> tuple[str, ...]:
        return tuple(
            c.field
            for c in self.clauses
            if c.field not in CATEGORICAL_FIELDS and c.field not in NUMERIC_FIELDS
        )

    def to_spec(self) -> dict[str, Any]:
        return {c.field: c.to_spec() for c in self.clauses}

    def describe(self) -> str:
        return " and ".join(c.describe() for c in self.clauses) or "all patients"
