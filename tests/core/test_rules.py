"""The shared condition language."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oncorwe.core.rules import Condition


@pytest.fixture()
def frame():
    return pd.DataFrame(
        {
            "cancer": ["nsclc", "nsclc", "breast", "nsclc"],
            "population": ["korean", "european", "korean", "korean"],
            "line": [1, 2, 3, 2],
            "bm_egfr": [1.0, 0.0, np.nan, np.nan],
            "bm_pdl1_tps": [80.0, 10.0, np.nan, 50.0],
        }
    )


def test_untested_matches_neither_positive_nor_negative(frame):
    assert Condition.parse({"EGFR": "positive"}).mask(frame).tolist() == [True, False, False, False]
    assert Condition.parse({"EGFR": "negative"}).mask(frame).tolist() == [False, True, False, False]


def test_ranges_lists_and_conjunction(frame):
    cond = Condition.parse({"cancer": "nsclc", "PDL1_TPS": {"min": 50}, "line": {"min": 2}})
    assert cond.mask(frame).tolist() == [False, False, False, True]
    assert Condition.parse({"population": ["european", "x"]}).mask(frame).sum() == 1


def test_round_trip_and_description():
    spec = {"cancer": "nsclc", "EGFR": "positive", "line": {"min": 2}}
    cond = Condition.parse(spec)
    assert Condition.parse(cond.to_spec()) == cond
    assert cond.describe() == "cancer = nsclc and EGFR positive and line >= 2"
    assert Condition.parse({}).describe() == "all patients"


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"EGFR": "maybe"}, "expected 'positive', 'negative'"),
        ({"line": {"min": 3, "max": 1}}, "min 3 exceeds max 1"),
        ({"cancer": 3}, "expected a name"),
        ({"PDL1_TPS": {"above": 3}}, "keys 'min', 'max' and/or 'below'"),
    ],
)
def test_bad_conditions_say_what_is_expected(spec, message):
    with pytest.raises(ValueError, match=message):
        Condition.parse(spec)


def test_missing_column_is_named(frame):
    with pytest.raises(KeyError, match="bm_alk"):
        Condition.parse({"ALK": "positive"}).mask(frame)


def test_user_columns_work_as_fields():
    frame = pd.DataFrame(
        {"histology": ["adeno", "squamous", "adeno"], "egfr": ["positive", "negative", None]}
    )
    assert Condition.parse({"histology": "adeno"}).mask(frame).tolist() == [True, False, True]
    assert Condition.parse({"egfr": "positive"}).mask(frame).tolist() == [True, False, False]
    assert Condition.parse({"histology": ["squamous"]}).mask(frame).tolist() == [False, True, False]


def test_below_is_an_exclusive_bound_so_cut_intervals_neither_overlap_nor_leave_a_gap():
    frame = pd.DataFrame({"age": [64.0, 65.0, 74.9, 75.0, float("nan")]})
    parts = [{"below": 65}, {"min": 65, "below": 75}, {"min": 75}]
    masks = np.array([Condition.parse({"age": p}).mask(frame) for p in parts])
    assert masks.sum(axis=0).tolist() == [1, 1, 1, 1, 0]  # each known age in one interval
    assert Condition.parse({"age": parts[1]}).describe() == "age >= 65 and age < 75"
    assert Condition.parse({"age": parts[1]}).to_spec() == {"age": {"min": 65.0, "below": 75.0}}
    with pytest.raises(ValueError, match="not both"):
        Condition.parse({"age": {"max": 70, "below": 75}})
    with pytest.raises(ValueError, match="is not below"):
        Condition.parse({"age": {"min": 75, "below": 75}})
