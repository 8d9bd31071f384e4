"""The analysis table's schema: columns, types, allowed values and roles.

Validated before anything is written, so a downstream stage can trust every row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oncorwe.core.errors import ConfigError, OncorweError

_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class FeatureConfig:
    """What the feature stage needs to know (from ``params.yaml`` ``features``)."""

    biomarkers: dict[str, str]  # name -> "binary" | "tps"
    labs: tuple[str, ...]
    comorbidities: tuple[str, ...]
    cancers: tuple[str, ...]
    standard_of_care: dict[str, dict[int, str]] = field(default_factory=dict)
    lookback_days: int = 180
    toxicity_window_days: int = 90
    pseudonym_key_env: str = "ONCORWE_PSEUDONYM_KEY"
    pseudonym_key_file: str | None = None  # a key file outside the project, 0600

    def __post_init__(self) -> None:
        for kind, names in (
            ("biomarker", list(self.biomarkers)),
            ("lab", list(self.labs)),
            ("comorbidity", list(self.comorbidities)),
        ):
            for name in names:
                if not _IDENT.match(name):
                    raise ConfigError(
                        f"features: {kind} name {name!r} must be letters, digits and '_'"
                    )
        for name, kind in self.biomarkers.items():
            if kind not in ("binary", "tps"):
                raise ConfigError(
                    f"features.biomarkers.{name}: expected 'binary' or 'tps', got {kind!r}"
                )


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "string" | "int" | "float"
    nullable: bool = True
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low is exclusive
    allowed: tuple[str, ...] | None = None
    unique: bool = False  # no value on two rows


@dataclass
class FeatureSchema:
    columns: list[Column] = field(default_factory=list)
    covariates: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)

    @classmethod
    def for_config(cls, cfg: FeatureConfig) -> FeatureSchema:
        cols = [
            Column("person_key", "string", nullable=False),
            Column("line_key", "string", nullable=False, unique=True),
            Column("site", "string", nullable=False),
            Column("population", "string", nullable=False),
            Column("sex", "string", nullable=False),
            Column("age", "int", nullable=False, low=0, high=120),
            Column("index_year", "int", nullable=False, low=1900, high=2100),
            Column("cancer", "string", nullable=False),
            Column("stage", "string", nullable=False, allowed=("I", "II", "III", "IV", "unknown")),
            Column("line", "int", nullable=False, low=1, high=20),
            Column("n_prior_lines", "int", nullable=False, low=0, high=20),
            Column("prior_drug", "string", nullable=False),
            Column("prior_same_drug", "int", nullable=False, low=0, high=1),
            Column("months_since_diagnosis", "float", low=0),
        ]
        categorical = ["population", "sex", "cancer", "stage", "prior_drug"]
        covariates = [
            "population",
            "sex",
            "age",
            "index_year",
            "cancer",
            "stage",
            "line",
            "n_prior_lines",
            "prior_drug",
            # not prior_same_drug: it is the line's own treatment read back (1 only when the
            # drug repeats the prior one), so a propensity model separates the arms with it
            # and effect estimates lose their overlap; prior_drug carries what confounds.
            # The column stays for track 2's new-user eligibility.
            "months_since_diagnosis",
        ]
        for b, kind in cfg.biomarkers.items():
            col = f"bm_{b.lower()}"
            if kind == "binary":
                cols.append(Column(col, "float", low=0, high=1))
                cols.append(
                    Column(
                        f"{col}_status",
                        "string",
                        nullable=False,
                        allowed=("positive", "negative", "not_tested"),
                    )
                )
            else:
                cols.append(Column(col, "float", low=0, high=100))
                cols.append(
                    Column(
                        f"{col}_status",
                        "string",
                        nullable=False,
                        allowed=(">=50", "1-49", "<1", "not_tested"),
                    )
                )
                covariates.append(col)
            covariates.append(f"{col}_status")
            categorical.append(f"{col}_status")
        for lab in cfg.labs:
            cols.append(Column(f"lab_{lab.lower()}", "float", low=0))
            covariates.append(f"lab_{lab.lower()}")
        for c in cfg.comorbidities:
            cols.append(Column(f"comorb_{c.lower()}", "int", nullable=False, low=0, high=1))
            covariates.append(f"comorb_{c.lower()}")
        cols += [
            Column("treatment", "string", nullable=False),
            Column("standard_of_care", "string"),
            Column("response", "int", low=0, high=1),
            Column("toxicity", "int", low=0, high=1),
            Column("pfs_event", "int", nullable=False, low=0, high=1),
            Column("pfs_months", "float", nullable=False, low=0, low_open=True),
            Column("os_event", "int", nullable=False, low=0, high=1),
            Column("os_months", "float", nullable=False, low=0, low_open=True),
        ]
        return cls(cols, covariates, categorical)

    def roles(self, biomarkers: list[str] | None = None) -> dict:
        """The table's roles, in the same format as a user's roles file (cohort/roles.py)."""
        return {
            "id": "person_key",
            "row_id": "line_key",
            "treatment": "treatment",
            "comparator_column": "standard_of_care",
            "stratum": ["cancer", "line"],
            # follow-up ends at the data cut-off: it is set by when the line started
            "censoring_strata": ["index_year", "line"],
            "response": "response",
            "toxicity": "toxicity",
            "time": "pfs_months",
            "event": "pfs_event",
            "os_time": "os_months",
            "os_event": "os_event",
            "hospital": "site",
            "population": "population",
            "covariates": list(self.covariates),
            "categorical": list(self.categorical),
            "subgroups": ["population", "line", *(biomarkers or [])],
        }


_KINDS = {
    "string": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
    "int": pa.types.is_integer,
    "float": lambda t: pa.types.is_floating(t) or pa.types.is_decimal(t),
}


def validate_table(table: pa.Table, schema: FeatureSchema, source: str) -> None:
    """Raise :class:`OncorweError` naming every column that breaks the schema."""
    problems = []
    names = set(table.column_names)
    for col in schema.columns:
        if col.name not in names:
            problems.append(f"column {col.name!r} is missing")
            continue
        arr = table.column(col.name)
        if not _KINDS[col.kind](arr.type):
            problems.append(f"column {col.name!r}: expected {col.kind}, got {arr.type}")
            continue
        nulls = arr.null_count
        if not col.nullable and nulls:
            problems.append(f"column {col.name!r}: {nulls} missing values, none allowed")
        if col.unique and len(arr) - nulls:
            repeated = len(arr) - nulls - pc.count_distinct(arr).as_py()
            if repeated:
                problems.append(
                    f"column {col.name!r}: {repeated} values repeat an earlier row's, "
                    "each must be on one row"
                )
        if col.allowed is not None:
            bad = set(pc.unique(arr).to_pylist()) - set(col.allowed) - {None}
            if bad:
                problems.append(
                    f"column {col.name!r}: values {sorted(bad)[:5]} not in {list(col.allowed)}"
                )
        if col.kind in ("int", "float") and len(arr) - nulls:
            v = arr.to_numpy(zero_copy_only=False).astype(float)
            v = v[~np.isnan(v)]
            if col.kind == "float" and not np.isfinite(v).all():
                problems.append(f"column {col.name!r}: non-finite values")
            if col.low is not None:
                low_bad = (v <= col.low) if col.low_open else (v < col.low)
                if low_bad.any():
                    op = ">" if col.low_open else ">="
                    problems.append(
                        f"column {col.name!r}: {int(low_bad.sum())} values not {op} {col.low:g}"
                    )
            if col.high is not None and (v > col.high).any():
                problems.append(
                    f"column {col.name!r}: {int((v > col.high).sum())} values above {col.high:g}"
                )
    if problems:
        raise OncorweError(
            f"analysis table from {source} fails its schema:\n  " + "\n  ".join(problems)
        )
