"""Property-based tests of the bring-your-own door (the ``hypothesis`` library).

Generated cohort tables and roles files, broken and borderline the ways analysts' files
are: the answer is a valid table, or a named refusal (:class:`OncorweError`, exit 2), or
for a command a blinded result; never another exception, a traceback or a partial output.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from oncorwe.cohort.flat import ROLES, flat_cohort
from oncorwe.core.errors import OncorweError
from oncorwe.core.roles import Roles, validate_cohort

from .test_cli import oncorwe

BASE = flat_cohort(300, seed=11)

# how a two-arm code column is written, and how a roles file names its two values
CODINGS = {
    "ints": ([1, 2], 2, 1),
    "floats": ([1.0, 2.0], 2, 1),
    "text ints": (["1", "2"], "2", 1),
    "yes/no": (["no", "yes"], True, False),
    "Y/N": (["N", "Y"], True, False),
    "booleans": ([False, True], True, False),
    "0/1 as yes/no": ([0, 1], True, False),
    "names": (["chemo", "drug"], "drug", "chemo"),
}


def _mutate(frame: pd.DataFrame, kind: str, rows: list[int], draw_value) -> pd.DataFrame:
    f = frame.copy()
    if kind == "drop column":
        return f.drop(columns=[draw_value(["trt", "pfs_days", "progressed", "age"])])
    if kind == "missing time":
        f.loc[rows, "pfs_days"] = np.nan
    elif kind == "non-positive time":
        f.loc[rows, "pfs_days"] = draw_value([0, -3])
    elif kind == "text event":
        f["progressed"] = f["progressed"].astype(object)
        f.loc[rows, "progressed"] = draw_value(["yes", "2", "?"])
    elif kind == "stray strings":
        f["age"] = f["age"].astype(object)
        f.loc[rows, "age"] = draw_value(["unknown", "n/a", "."])
    elif kind == "duplicate ids":
        other = next(i for i in range(len(f)) if i not in rows)
        f.loc[rows, "patient_id"] = f["patient_id"].iloc[other]
    elif kind == "absurd covariate":
        f.loc[rows, "age"] = draw_value([1e308, np.inf, -np.inf])
    elif kind == "missing arm":
        f["trt"] = f["trt"].astype(object)
        f.loc[rows, "trt"] = None
    elif kind == "empty":
        return f.iloc[:0]
    return f


MUTATIONS = [
    "none",
    "drop column",
    "missing time",
    "non-positive time",
    "text event",
    "stray strings",
    "duplicate ids",
    "absurd covariate",
    "missing arm",
    "empty",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    coding=st.sampled_from(sorted(CODINGS)),
    kind=st.sampled_from(MUTATIONS),
    rows=st.lists(st.integers(0, len(BASE) - 1), min_size=1, max_size=5, unique=True),
    unit=st.sampled_from(["days", "weeks", "months", "years"]),
    pick=st.randoms(use_true_random=False),
    swap=st.booleans(),
)
def test_a_table_is_loaded_valid_or_refused_by_name(coding, kind, rows, unit, pick, swap):
    codes, treated, comparator = CODINGS[coding]
    frame = BASE.assign(trt=[codes[1] if t == 2 else codes[0] for t in BASE["trt"]])
    frame = _mutate(frame, kind, rows, pick.choice)
    if swap:  # the roles file gives an arm value the column never holds
        treated = "placebo"
    roles = Roles.model_validate(
        {**ROLES, "treated": treated, "comparator": comparator, "time_unit": unit}
    )
    try:
        out, bound = validate_cohort(frame, roles, "analyst.csv")
    except OncorweError as err:
        event("named error")
        assert "analyst.csv" in str(err)  # names the user's file
        assert kind != "none" or swap, err
        return
    event("valid table")
    assert kind in ("none",) and not swap
    t = out[bound.time].to_numpy(dtype=float)
    assert np.isfinite(t).all() and (t > 0).all()
    assert set(out[bound.event].unique()) <= {0, 1}
    n_treated = int((out[bound.treatment] == bound.treated).sum())
    assert n_treated == int((BASE["trt"] == 2).sum())
    months = {"days": 1 / 30.4375, "weeks": 7 / 30.4375, "months": 1.0, "years": 12.0}[unit]
    assert t == pytest.approx(BASE["pfs_days"].to_numpy() * months)


CLI_CASES = [
    "valid",
    "zero treated events",
    "same event time",
    "treatment as covariate",
    "two patients",
    "stray strings",
    "horizon 0",
    "horizon beyond follow-up",
]


@settings(
    max_examples=16,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=st.sampled_from(CLI_CASES), seed=st.integers(0, 3))
def test_emulate_answers_validly_refuses_or_blinds(tmp_path_factory, case, seed):
    d = tmp_path_factory.mktemp("em")
    frame = flat_cohort(1500, seed=seed)
    roles = dict(ROLES)
    horizon = "6"
    if case == "zero treated events":
        frame.loc[frame["trt"] == 2, "progressed"] = 0
    elif case == "same event time":
        frame.loc[frame["progressed"] == 1, "pfs_days"] = 100
        frame["pfs_days"] = frame["pfs_days"].where(frame["progressed"] == 1, 100)
    elif case == "treatment as covariate":
        frame["on_drug"] = (frame["trt"] == 2).astype(int)
        roles["covariates"] = [*ROLES["covariates"], "on_drug"]
    elif case == "two patients":
        frame = frame.groupby("trt").head(1)
    elif case == "stray strings":
        frame["age"] = frame["age"].astype(object)
        frame.loc[[1, 2, 3], "age"] = "unknown"
    elif case == "horizon 0":
        horizon = "0"
    elif case == "horizon beyond follow-up":
        horizon = "240"
    frame.to_csv(d / "c.csv", index=False)
    (d / "r.yaml").write_text(yaml.safe_dump(roles))
    res = oncorwe(
        "emulate",
        "--cohort",
        d / "c.csv",
        "--roles",
        d / "r.yaml",
        "--out",
        d / "out",
        "--horizon-months",
        horizon,
    )
    assert "Traceback" not in res.stderr, res.stderr
    event({0: "answer or blinded", 2: "named error"}.get(res.returncode, "other exit"))
    if res.returncode == 2:
        assert str(d / "c.csv") in res.stderr or "--horizon-months" in res.stderr, res.stderr
        assert not (d / "out").exists()
        assert case != "valid", res.stderr
        return
    assert res.returncode == 0, res.stderr
    em = json.loads((d / "out" / "emulation.json").read_text())
    if em["blinded"]:
        event("blinded")
        assert "blinded" in res.stderr and "HR" not in res.stderr
        assert not (d / "out" / "km.html").exists()
        assert case == "treatment as covariate", em["blinded_reason"]
        return
    event("valid answer")
    assert case == "valid", (case, em)
    assert 0 < em["ci_low"] < em["hazard_ratio"] < em["ci_high"]
    assert em["diagnostics_pass"]
