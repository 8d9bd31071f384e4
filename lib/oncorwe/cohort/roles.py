"""Bring your own cohort: a flat table (CSV or Parquet) and a roles file naming its columns.

The roles file (YAML or JSON) says which column plays which part; the feature stage writes
one (``roles.json``) for its own analysis table, so both tracks read every cohort the same
way::

    id: patient_id               # required: a patient's rows stay together in every split
    row_id: line_id              # optional: one row's identifier
    treatment: drug              # required
    comparator: chemo            # the comparator value ... or, per row:
    comparator_column: soc       #   a column holding each row's comparator
    treated: drug_x              # optional: the treatment of interest (emulate / transport)
    response: responded          # optional binary 0/1
    time: pfs_months             # optional, with event: time > 0
    event: progressed            # 1 = event, 0 = censored
    toxicity: grade3_ae          # optional binary 0/1
    hospital: site               # optional
    population: ancestry         # optional
    stratum: [cancer, line]      # optional: comparisons stay within these strata
    covariates: [age, ecog]      # default: every column not named above
    categorical: [ecog]          # default: the non-numeric covariates
    subgroups: [histology, egfr] # fields subgroup rules may use (default: categorical covariates)
    eligible: {line: 1}          # optional rule (rules.py language) selecting eligible rows

Every problem names the file and the column and says what was expected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from oncorwe.errors import OncorweError, load_yaml_model
from oncorwe.rules import Condition


class Roles(BaseModel):
    """Which column plays which part in a cohort table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    row_id: str | None = None
    treatment: str
    comparator: str | None = None
    comparator_column: str | None = None
    treated: str | None = None
    response: str | None = None
    time: str | None = None
    event: str | None = None
    os_time: str | None = None
    os_event: str | None = None
    toxicity: str | None = None
    hospital: str | None = None
    population: str | None = None
    stratum: list[str] = Field(default_factory=list)
    # columns within whose levels censoring is independent of the outcome (what sets a
    # row's follow-up, e.g. the index year): the PFS censoring model is fitted per level
    censoring_strata: list[str] = Field(default_factory=list)
    covariates: list[str] | None = None
    categorical: list[str] | None = None
    subgroups: list[str] | None = None
    eligible: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> Roles:
        if (self.comparator is None) == (self.comparator_column is None):
            raise ValueError("give exactly one of 'comparator' (a value) or 'comparator_column'")
        if (self.time is None) != (self.event is None):
            raise ValueError("'time' and 'event' go together")
        if self.response is None and self.time is None and self.toxicity is None:
            raise ValueError("name at least one outcome: response, time + event, or toxicity")
        if self.eligible is not None:
            Condition.parse(self.eligible)
        return self

    def outcome_columns(self) -> list[str]:
        cols = [self.response, self.time, self.event, self.toxicity, self.os_time, self.os_event]
        return [c for c in cols if c]

    def reserved(self) -> set[str]:
        named = [
            self.id,
            self.row_id,
            self.treatment,
            self.comparator_column,
            *self.outcome_columns(),
        ]
        return {c for c in named if c}

    def resolved_covariates(self, frame: pd.DataFrame) -> list[str]:
        if self.covariates is not None:
            return list(self.covariates)
        skip = self.reserved() | {self.hospital}
        return [c for c in frame.columns if c not in skip]

    def resolved_categorical(self, frame: pd.DataFrame) -> list[str]:
        if self.categorical is not None:
            return list(self.categorical)
        return [
            c
            for c in self.resolved_covariates(frame)
            if not pd.api.types.is_numeric_dtype(frame[c])
        ]

    def resolved_subgroups(self, frame: pd.DataFrame) -> list[str]:
        if self.subgroups is not None:
            return list(self.subgroups)
        return [
            c for c in self.resolved_categorical(frame) if 2 <= frame[c].nunique(dropna=True) <= 12
        ]

    def comparator_of(self, frame: pd.DataFrame) -> pd.Series:
        """Each row's comparator value."""
        if self.comparator_column:
            return frame[self.comparator_column].astype("string")
        return pd.Series(self.comparator, index=frame.index, dtype="string")


def load_roles(path: str | Path) -> Roles:
    """Read and validate a roles file (YAML or JSON)."""
    return load_yaml_model(path, Roles, "roles file")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV file, a Parquet file, or a folder of Parquet files (one per site)."""
    p = Path(path)
    if not p.exists():
        raise OncorweError(f"cohort file {p} does not exist")
    if p.is_dir():
        parts = sorted(p.glob("**/*.parquet"))
        if not parts:
            raise OncorweError(f"cohort folder {p} holds no Parquet files")
        return pd.concat([pd.read_parquet(f) for f in parts], ignore_index=True)
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(p)
        if suffix in (".csv", ".txt", ".gz"):
            return pd.read_csv(p)
    except Exception as err:  # the reader's own message says what is wrong
        raise OncorweError(f"cohort file {p}: cannot be read ({err})") from err
    raise OncorweError(f"cohort file {p}: expected .csv or .parquet, got {suffix!r}")


def _binary(frame: pd.DataFrame, col: str, where: str, nullable: bool) -> list[str]:
    v = pd.to_numeric(frame[col], errors="coerce")
    bad = frame[col].notna() & ~v.isin([0, 1])
    out = []
    if bad.any():
        sample = frame.loc[bad, col].astype(str).unique()[:3].tolist()
        out.append(f"{where}: column {col!r} must be 0/1, found {sample}")
    if not nullable and frame[col].isna().any():
        out.append(f"{where}: column {col!r} has missing values")
    return out


def validate_cohort(frame: pd.DataFrame, roles: Roles, source: str) -> pd.DataFrame:
    """Check a cohort table against its roles; return it with typed outcome columns."""
    problems: list[str] = []
    named = {
        "id": roles.id,
        "row_id": roles.row_id,
        "treatment": roles.treatment,
        "comparator_column": roles.comparator_column,
        "response": roles.response,
        "time": roles.time,
        "event": roles.event,
        "toxicity": roles.toxicity,
        "hospital": roles.hospital,
        "population": roles.population,
    }
    for role, col in named.items():
        if col and col not in frame.columns:
            problems.append(f"{source}: roles.{role} names column {col!r}, which is missing")
    for group, cols in (
        ("stratum", roles.stratum),
        ("censoring_strata", roles.censoring_strata),
        ("covariates", roles.covariates or []),
        ("categorical", roles.categorical or []),
        ("subgroups", roles.subgroups or []),
    ):
        for col in cols:
            if col not in frame.columns and not (
                group == "subgroups" and f"bm_{col.lower()}" in frame.columns
            ):
                problems.append(f"{source}: roles.{group} names column {col!r}, which is missing")
    if problems:
        raise OncorweError("\n".join(problems))
    if frame[roles.id].isna().any():
        problems.append(f"{source}: column {roles.id!r} (id) has missing values")
    if frame[roles.treatment].isna().any():
        problems.append(f"{source}: column {roles.treatment!r} (treatment) has missing values")
    if roles.comparator is not None and not (frame[roles.treatment] == roles.comparator).any():
        problems.append(
            f"{source}: comparator {roles.comparator!r} never occurs in column "
            f"{roles.treatment!r} (values: {sorted(map(str, frame[roles.treatment].unique()))[:8]})"
        )
    if roles.treated is not None and not (frame[roles.treatment] == roles.treated).any():
        problems.append(
            f"{source}: treated value {roles.treated!r} never occurs in column {roles.treatment!r}"
        )
    for col in (roles.response, roles.toxicity):
        if col:
            problems += _binary(frame, col, source, nullable=True)
    if roles.event:
        problems += _binary(frame, roles.event, source, nullable=False)
    if roles.time:
        t = pd.to_numeric(frame[roles.time], errors="coerce")
        if t.isna().any():
            problems.append(
                f"{source}: column {roles.time!r} (time) has missing or non-numeric values"
            )
        elif (t <= 0).any() or not np.isfinite(t).all():
            problems.append(
                f"{source}: column {roles.time!r} (time) must be > 0 and finite; "
                f"{int((t <= 0).sum())} rows are <= 0"
            )
    if problems:
        raise OncorweError("\n".join(problems))
    out = frame.copy()
    for col in (roles.response, roles.toxicity, roles.event):
        if col:
            out[col] = pd.to_numeric(out[col], errors="coerce")
    if roles.time:
        out[roles.time] = pd.to_numeric(out[roles.time]).astype(float)
    return out


def load_cohort(path: str | Path, roles: Roles) -> pd.DataFrame:
    """Read and validate a cohort table."""
    return validate_cohort(read_table(path), roles, str(path))


def roles_for_analysis_table(folder: str | Path) -> Roles:
    """The roles the feature stage wrote beside its analysis table."""
    p = Path(folder) / "roles.json"
    if not p.is_file():
        raise OncorweError(f"{p} is missing: run the features stage first")
    return Roles.model_validate(json.loads(p.read_text()))
