"""Bring your own cohort: a flat table (CSV or Parquet) and a roles file naming its columns.

The roles file (YAML or JSON) says which column plays which part; the feature stage writes
one (``roles.json``) for its own analysis table, so both tracks read every cohort the same
way::

    id: patient_id               # required: a patient's rows stay together in every split
    row_id: line_id              # optional: one row's identifier
    treatment: drug              # required by discover and emulate
    comparator: chemo            # the comparator value (any scalar: 1, "1", no) ... or, per row:
    comparator_column: soc       #   a column holding each row's comparator
    treated: drug_x              # the treatment of interest (emulate); any scalar: 2, yes
    response: responded          # optional binary 0/1
    time: pfs_days               # optional, with event: time > 0
    time_unit: days              # days | weeks | months | years (default months)
    event: progressed            # 1 = event, 0 = censored
    toxicity: grade3_ae          # optional binary 0/1
    hospital: site               # optional
    population: ancestry         # optional
    stratum: [cancer, line]      # optional: comparisons stay within these strata
    covariates: [age, ecog]      # default: every column not named above
    categorical: [ecog]          # default: the non-numeric covariates
    subgroups: [histology, egfr] # fields subgroup rules may use (default: see below)
    subgroup_cuts:               # numeric covariates split at cut points (optional)
      age: [65, 75]              #   age < 65, 65 <= age < 75, age >= 75
      bmi: {quantiles: 3}        #   tertiles of the discovery part
    eligible: {line: 1}          # optional rule (rules.py language) selecting eligible rows

Arm values are matched against the column whatever type the reader gave it: ``treated: 2``
matches a column of integers 1/2, of floats 1.0/2.0 or of strings "1"/"2"; ``treated: yes``
(a YAML boolean) matches yes/no, true/false, on/off or 1/0. After loading, the treatment
column holds text codes ("2") and the roles the matched codes.

Times are converted once, on loading, from ``time_unit`` to months: every output of every
command reports months (a month is 30.4375 days).

The default subgroup fields are the covariates a rule can split without cut points: every
categorical covariate with 2 to 12 levels, every covariate with exactly two distinct values
(0/1, yes/no, positive/negative, True/False) and every integer covariate with at most 5
levels. A continuous covariate is a subgroup field only when ``subgroup_cuts`` splits it,
at fixed cut points or at quantiles of the discovery part (never of the confirmation part,
so the confirmed rule was chosen without seeing the data that test it).

Every problem names the file and the column and says what was expected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from oncorwe.core.errors import OncorweError, load_yaml_model
from oncorwe.core.rules import Condition


class Roles(BaseModel):
    """Which column plays which part in a cohort table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    row_id: str | None = None
    treatment: str | None = None
    # arm values as people write them: 1, "1", 1.0, yes (YAML 1.1 booleans) all allowed;
    # load_cohort matches them to the column's codes
    comparator: str | int | float | bool | None = None
    comparator_column: str | None = None
    treated: str | int | float | bool | None = None
    response: str | None = None
    time: str | None = None
    time_unit: Literal["days", "weeks", "months", "years"] = "months"
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
    subgroup_cuts: dict[str, list[float] | dict[Literal["quantiles"], int]] = Field(
        default_factory=dict
    )
    eligible: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> Roles:
        if self.comparator is not None and self.comparator_column is not None:
            raise ValueError("give one of 'comparator' (a value) or 'comparator_column', not both")
        if (self.time is None) != (self.event is None):
            raise ValueError("'time' and 'event' go together")
        if self.response is None and self.time is None and self.toxicity is None:
            raise ValueError("name at least one outcome: response, time + event, or toxicity")
        if self.eligible is not None:
            Condition.parse(self.eligible)
        for col, cuts in self.subgroup_cuts.items():
            where = f"subgroup_cuts.{col}"
            if isinstance(cuts, dict):
                k = cuts.get("quantiles")
                if k is None or not 2 <= k <= 10:
                    raise ValueError(f"{where}: quantiles must be 2 to 10, got {k!r}")
            elif not cuts or not all(np.isfinite(cuts)) or list(cuts) != sorted(set(cuts)):
                raise ValueError(
                    f"{where}: expected increasing finite cut points such as [65, 75], got {cuts!r}"
                )
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
        """Fields subgroup rules may use: the roles file's list, or every covariate a rule
        can split without cut points (module docstring). 0/1-coded markers, the usual
        export, are fields by default: a planted subgroup coded so is otherwise never
        looked for."""
        plain = self._plain_subgroups(frame) if self.subgroups is None else list(self.subgroups)
        return [*plain, *(c for c in self.subgroup_cuts if c not in plain)]

    def _plain_subgroups(self, frame: pd.DataFrame) -> list[str]:
        """The default fields: covariates a rule splits without cut points."""
        categorical = set(self.resolved_categorical(frame))
        out = []
        for c in self.resolved_covariates(frame):
            x = frame[c].dropna()
            levels = x.nunique()
            if levels == 2:
                out.append(c)
            elif c in categorical and 2 <= levels <= 12:
                out.append(c)
            elif pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x):
                v = x.to_numpy(dtype=float)
                if 2 <= levels <= 5 and np.all(v == np.round(v)):
                    out.append(c)
        return out

    def required(self, command: str) -> list[str]:
        """The roles keys ``command`` needs (the README's roles table): each command checks
        only what it uses, so a prognostic transport needs no treatment."""
        return {
            "discover": ["id", "treatment"],
            "emulate": ["id", "treatment", "treated", "time"],
            "transport": ["id", "time"],
        }[command]

    def check_for(self, command: str, source: str) -> None:
        """Refuse, naming the missing keys, a roles file that lacks what ``command`` needs."""
        missing = [k for k in self.required(command) if getattr(self, k) is None]
        if command in ("discover", "emulate") and self.comparator is None:
            if self.comparator_column is None:
                missing.append("comparator (or comparator_column)")
        if missing:
            raise OncorweError(
                f"{source}: {command} needs the roles {', '.join(map(repr, missing))}; "
                f"the file does not give them"
            )

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
    suffix = p.suffix.lower()
    try:
        if p.is_dir():
            frames = []
            for f in parts:
                try:
                    frames.append(pd.read_parquet(f))
                except Exception as err:
                    raise OncorweError(
                        f"cohort folder {p}: {f.name} cannot be read as Parquet ({err})"
                    ) from err
            return pd.concat(frames, ignore_index=True)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(p)
        if suffix in (".csv", ".txt", ".gz"):
            return pd.read_csv(p)
    except OncorweError:
        raise
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


# Larger covariate magnitudes are data errors (a sentinel, a unit slip), not values, and
# break the models: XGBoost stores float32, so anything past its largest (3.4e38; 1e100
# and 1e308 alike) aborts in C++ with a backtrace; a logistic or Cox design overflows.
MAX_ABS_COVARIATE = float(np.finfo(np.float32).max)


def horizon_refusal(
    horizon: float, times: Any, *, key: str, column: str, where: str = "", advice: str = ""
) -> str | None:
    """The one rule for an RMST horizon: it may not lie past the longest follow-up in
    ``times``, where the Kaplan-Meier curves end and an RMST to a later horizon would be an
    extrapolation (a 12-month horizon on a file whose times were days read as months was
    one). Returns the refusal, naming ``key`` (the user's setting), ``column`` and the
    longest time, or None when the horizon is within follow-up; the caller raises it.

    >>> horizon_refusal(24, [3.0, 12.5], key="horizon_months", column="pfs")
    "horizon_months 24 is beyond the longest follow-up in column 'pfs' (12.5 months): the Kaplan-Meier curves end there; choose a horizon <= 12.5"
    >>> horizon_refusal(12, [3.0, 12.5], key="horizon_months", column="pfs") is None
    True
    """
    t = np.asarray(times, dtype=float)
    if t.size == 0:
        return None
    longest = float(np.nanmax(t))
    if horizon <= longest:
        return None
    return (
        f"{key} {horizon:g} is beyond the longest follow-up in column {column!r}{where} "
        f"({longest:.3g} months): the Kaplan-Meier curves end there; choose a horizon "
        f"<= {longest:.3g}{advice}"
    )


def absurd_values(x: Any) -> np.ndarray:
    """Rows of a numeric covariate that are infinite or past :data:`MAX_ABS_COVARIATE`
    (NaN is missing, not absurd): the one rule for loading, emulation and transport.

    >>> absurd_values([1.0, float("nan"), 1e100, -float("inf")]).tolist()
    [False, False, True, True]
    """
    v = np.asarray(x, dtype=float)
    return np.isinf(v) | (np.abs(np.nan_to_num(v)) > MAX_ABS_COVARIATE)


MONTHS_PER = {"days": 1 / 30.4375, "weeks": 7 / 30.4375, "months": 1.0, "years": 12.0}
_YES = {"yes", "y", "true", "t", "on", "1"}
_NO = {"no", "n", "false", "f", "off", "0"}


def code_text(x: pd.Series) -> pd.Series:
    """A code column as text, whatever type the reader gave it: integral floats lose their
    ``.0`` (a CSV column with a gap reads 2 as 2.0), strings lose surrounding blanks."""
    if pd.api.types.is_bool_dtype(x):
        return x.map({True: "true", False: "false"}).astype("string")
    if pd.api.types.is_numeric_dtype(x):
        # spelled once per distinct value, not per row: a treatment column of millions
        # of rows holds a handful of codes
        codes, uniques = pd.factorize(x.to_numpy(dtype=float))
        spelled = np.array(
            [str(int(a)) if np.isfinite(a) and a == round(a) else repr(float(a)) for a in uniques]
            + [None],
            dtype=object,
        )
        return pd.Series(spelled[codes], index=x.index, dtype="string")
    return x.astype("string").str.strip()


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value == round(value):
        return str(int(value))
    return str(value).strip()


def match_code(value: Any, codes: pd.Series, what: str, column: str, source: str) -> str:
    """The code of ``codes`` (text, see :func:`code_text`) that a roles value means.

    ``2``, ``"2"`` and ``2.0`` mean the code ``"2"``; a YAML boolean (``yes`` / ``no``
    read as True / False) means the one code of the column spelled yes/true/on/1 (or
    no/false/off/0), in any case. Raises :class:`OncorweError` saying what was compared
    when nothing, or more than one code, matches."""
    levels = sorted(codes.dropna().unique().tolist())
    want = _scalar_text(value)
    hits = [c for c in levels if c == want or c.lower() == want.lower()]
    if not hits and isinstance(value, bool):
        words = _YES if value else _NO
        hits = [c for c in levels if c.lower() in words]
    if len(hits) == 1:
        return hits[0]
    shown = ", ".join(repr(c) for c in levels[:12]) + (" ..." if len(levels) > 12 else "")
    found = "several codes" if hits else "no code"
    raise OncorweError(
        f"{source}: roles.{what} is {value!r} (read as {type(value).__name__}), and {found} of "
        f"column {column!r} matches it; the column's codes, compared as text, are {shown}"
    )


def _stray_strings(x: pd.Series) -> list[str]:
    """Values of a text column that is numeric but for a few stray strings ("n/a",
    "unknown"): read as text it would become a many-level categorical in silence."""
    if pd.api.types.is_numeric_dtype(x) or pd.api.types.is_bool_dtype(x):
        return []
    s = x.dropna().astype(str).str.strip()
    if len(s) == 0:
        return []
    num = pd.to_numeric(s, errors="coerce")
    stray = s[num.isna()]
    if num.notna().mean() >= 0.9 and s[num.notna()].nunique() > 12 and len(stray):
        return stray.unique()[:5].tolist()
    return []


def validate_cohort(frame: pd.DataFrame, roles: Roles, source: str) -> tuple[pd.DataFrame, Roles]:
    """Check a cohort table against its roles; return it with typed outcome columns, the
    treatment as text codes and times in months, and the roles with the matched codes."""
    problems: list[str] = []
    named = {
        "id": roles.id,
        "row_id": roles.row_id,
        "treatment": roles.treatment,
        "comparator_column": roles.comparator_column,
        "response": roles.response,
        "time": roles.time,
        "event": roles.event,
        "os_time": roles.os_time,
        "os_event": roles.os_event,
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
        ("subgroup_cuts", list(roles.subgroup_cuts)),
    ):
        for col in cols:
            if col not in frame.columns and not (
                group == "subgroups" and f"bm_{col.lower()}" in frame.columns
            ):
                problems.append(f"{source}: roles.{group} names column {col!r}, which is missing")
    if roles.eligible is not None:
        try:
            Condition.parse(roles.eligible).mask(frame)
        except KeyError as err:
            problems.append(f"{source}: roles.eligible: {err.args[0]}")
    if problems:
        raise OncorweError("\n".join(problems))
    if len(frame) == 0:
        raise OncorweError(f"{source}: the table has no rows")
    if frame[roles.id].isna().any():
        problems.append(f"{source}: column {roles.id!r} (id) has missing values")
    key = roles.row_id or roles.id
    dup = frame[key].duplicated(keep=False)
    if dup.any():
        # several rows per patient are fine only when the roles say so (row_id): else a
        # patient counted twice, possibly in both arms, weighs twice and unbalances them
        problems.append(
            f"{source}: column {key!r} ({'row_id' if roles.row_id else 'id'}) repeats: "
            f"{int(frame.loc[dup, key].nunique())} values occur on {int(dup.sum())} rows; "
            + (
                "each row needs its own row_id"
                if roles.row_id
                else "expected one row per patient (name roles.row_id when a patient has "
                "several rows, e.g. lines of therapy)"
            )
        )
    out = frame.copy()
    if roles.treatment:
        if frame[roles.treatment].isna().any():
            problems.append(
                f"{source}: column {roles.treatment!r} (treatment) has "
                f"{int(frame[roles.treatment].isna().sum())} missing values"
            )
        out[roles.treatment] = code_text(frame[roles.treatment])
        if roles.comparator_column:
            out[roles.comparator_column] = code_text(frame[roles.comparator_column])
    update: dict[str, Any] = {}
    for what in ("comparator", "treated"):
        value = getattr(roles, what)
        if value is not None and roles.treatment:
            try:
                update[what] = match_code(
                    value, out[roles.treatment], what, roles.treatment, source
                )
            except OncorweError as err:
                problems.append(str(err))
    if "comparator" in update and update["comparator"] == update.get("treated"):
        problems.append(
            f"{source}: roles.treated and roles.comparator are the same code "
            f"{update['comparator']!r} of column {roles.treatment!r}"
        )
    for col in (roles.response, roles.toxicity):
        if col:
            problems += _binary(frame, col, source, nullable=True)
    for ev, tcol in ((roles.event, roles.time), (roles.os_event, roles.os_time)):
        if ev:
            problems += _binary(frame, ev, source, nullable=False)
        if tcol:
            t = pd.to_numeric(frame[tcol], errors="coerce")
            if t.isna().any():
                problems.append(
                    f"{source}: column {tcol!r} (time) has {int(t.isna().sum())} missing or "
                    "non-numeric values"
                )
            elif (t <= 0).any() or not np.isfinite(t).all():
                problems.append(
                    f"{source}: column {tcol!r} (time) must be > 0 and finite; "
                    f"{int((t <= 0).sum())} rows are <= 0"
                )
    for col in roles.resolved_covariates(frame):
        if col == roles.treatment:
            continue
        stray = _stray_strings(frame[col])
        if stray:
            problems.append(
                f"{source}: column {col!r} (covariate) is numeric but for values {stray}; "
                "expected numbers or empty cells (write missing values as empty), or list "
                "the column under roles.categorical if it is a code"
            )
        elif pd.api.types.is_numeric_dtype(frame[col]):
            bad = absurd_values(frame[col].to_numpy(dtype=float))
            if bad.any():
                problems.append(
                    f"{source}: column {col!r} (covariate) has {int(bad.sum())} infinite or "
                    f"absurd values (|x| > {MAX_ABS_COVARIATE:.3g}); expected finite "
                    "measurements"
                )
    for col in roles.subgroup_cuts:
        if _stray_strings(frame[col]):
            continue  # named above as a numeric column with stray strings
        if not pd.api.types.is_numeric_dtype(frame[col]) or pd.api.types.is_bool_dtype(frame[col]):
            problems.append(
                f"{source}: roles.subgroup_cuts names column {col!r}, which is not numeric "
                f"(values such as {sorted(map(str, frame[col].dropna().unique()[:3]))}); "
                "cut points split a numeric covariate, list a code under roles.subgroups"
            )
    if problems:
        raise OncorweError("\n".join(problems))
    for col in (roles.response, roles.toxicity, roles.event, roles.os_event):
        if col:
            out[col] = pd.to_numeric(out[col], errors="coerce")
    # one conversion at the boundary: everything downstream is in months
    for col in (roles.time, roles.os_time):
        if col:
            out[col] = pd.to_numeric(out[col]).astype(float) * MONTHS_PER[roles.time_unit]
    if roles.time_unit != "months":
        update["time_unit"] = "months"
    return out, roles.model_copy(update=update)


def load_cohort(path: str | Path, roles: Roles) -> tuple[pd.DataFrame, Roles]:
    """Read and validate a cohort table (:func:`validate_cohort`)."""
    return validate_cohort(read_table(path), roles, str(path))


def check_same_coding(
    train: pd.DataFrame, test: pd.DataFrame, columns: list[str], sources: tuple[str, str]
) -> None:
    """Refuse a second table whose columns are coded otherwise than the first's (sex 0/1
    where the first has F/M): a model applied to codes it never saw predicts nonsense."""
    problems = []
    for col in columns:
        a, b = train[col], test[col]
        num_a, num_b = pd.api.types.is_numeric_dtype(a), pd.api.types.is_numeric_dtype(b)
        if num_a != num_b:
            kind = {True: "numbers", False: "text"}
            problems.append(
                f"{sources[1]}: column {col!r} holds {kind[num_b]} where {sources[0]} holds "
                f"{kind[num_a]} (e.g. {b.dropna().astype(str).unique()[:3].tolist()} against "
                f"{a.dropna().astype(str).unique()[:3].tolist()}); expected the same coding"
            )
        elif not num_a:
            # a few unseen levels are a new population's right; most rows unseen is a code
            seen = set(a.dropna().astype(str))
            tb = b.dropna().astype(str)
            unseen = ~tb.isin(seen)
            if len(tb) and unseen.mean() > 0.5:
                problems.append(
                    f"{sources[1]}: column {col!r} has codes "
                    f"{sorted(tb[unseen].unique())[:5]} on {unseen.mean():.0%} of its rows "
                    f"that {sources[0]} never has (it has {sorted(seen)[:5]}); expected the "
                    "same coding in both tables"
                )
    if problems:
        raise OncorweError("\n".join(problems))


def roles_for_analysis_table(folder: str | Path) -> Roles:
    """The roles the feature stage wrote beside its analysis table."""
    p = Path(folder) / "roles.json"
    if not p.is_file():
        raise OncorweError(f"{p} is missing: run the features stage first")
    return Roles.model_validate(json.loads(p.read_text()))
