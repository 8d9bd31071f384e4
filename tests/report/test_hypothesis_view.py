"""The track 1 notebook's tables, from the stage's files."""

from __future__ import annotations

import json

import pandas as pd

from oncorwe.report import hypothesis_view as hv


def test_not_testable_table_shows_the_screening_estimate_without_interval_and_hides_small_counts(
    tmp_path,
):
    item = {
        "drug": "olaparib",
        "group": "ovarian",
        "subgroup": "cancer = ovarian and BRCA positive",
        "conditions": {"cancer": "ovarian", "BRCA": "positive"},
        "primary_endpoint": "pfs",
        "discovery": {"effect": 4.0, "se": 1.0, "z": 4.0, "p_value": 6.3e-5, "n": 130},
        "confirmation_arms": {"treated": 63, "control": None},  # None: suppressed
        "min_arm_rows": 30,
    }
    (tmp_path / "hypotheses.json").write_text(
        json.dumps({"hypotheses": [], "not_testable": [item]})
    )
    t = hv.not_testable_table(tmp_path)
    assert len(t) == 1
    row = t.iloc[0]
    assert row["discovery estimate"] == "+4.000 (screening p=6.3e-05)"  # no interval
    assert row["confirmation rows on drug"] == 63
    assert pd.isna(row["confirmation rows on comparator"])
    assert row["rows needed per arm"] == 30


def test_not_testable_table_is_empty_for_an_older_stage_output(tmp_path):
    (tmp_path / "hypotheses.json").write_text(json.dumps({"hypotheses": []}))
    assert hv.not_testable_table(tmp_path).empty
