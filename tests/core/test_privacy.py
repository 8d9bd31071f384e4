"""Small-cell suppression and the identifier scan that gate every report."""

from __future__ import annotations

import pandas as pd
import pytest

from oncorwe.core.errors import OncorweError
from oncorwe.core.privacy import (
    PrivacyError,
    check_no_identifiers,
    find_identifiers,
    suppress_table,
)


@pytest.fixture
def counts() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cancer": ["breast", "breast", "breast", "liver", "liver"],
            "drug": ["a", "b", "c", "a", "b"],
            "lines": [120, 4, 30, 0, 50],
        }
    ).assign(share=lambda d: d["lines"] / d.groupby("cancer")["lines"].transform("sum"))


def test_counts_under_the_threshold_become_missing(counts):
    out = suppress_table(counts, ["lines"], 11)
    assert out["lines"].tolist()[0] == 120
    assert pd.isna(out["lines"].iloc[1])
    assert out["lines"].dtype == "Int64"


def test_zero_is_suppressed_like_any_small_count(counts):
    out = suppress_table(counts, ["lines"], 11)
    assert pd.isna(out["lines"].iloc[3])


def test_threshold_itself_is_shown():
    df = pd.DataFrame({"n": [10, 11]})
    assert suppress_table(df, ["n"], 11)["n"].isna().tolist() == [True, False]


def test_a_share_computed_from_a_suppressed_count_is_suppressed(counts):
    out = suppress_table(counts, ["lines"], 11, derived={"share": "lines"})
    assert out["share"].isna().tolist() == [False, True, False, True, False]


def test_as_text_shows_the_threshold(counts):
    out = suppress_table(counts, ["lines"], 11, as_text=True)
    assert out["lines"].tolist() == ["120", "<11", "30", "<11", "50"]


def test_a_lone_suppressed_cell_gets_a_complement_in_its_group():
    df = pd.DataFrame({"g": ["x", "x", "x", "y", "y"], "n": [100, 5, 40, 3, 2]})
    out = suppress_table(df, ["n"], 11, complement_within=["g"])
    # x: 5 alone would follow from the total; the smallest other cell (40) goes too.
    assert out["n"].isna().tolist() == [False, True, True, True, True]


def test_the_input_table_is_not_modified(counts):
    before = counts.copy()
    suppress_table(counts, ["lines"], 11, derived={"share": "lines"})
    pd.testing.assert_frame_equal(counts, before)


def test_an_unknown_column_is_an_error(counts):
    with pytest.raises(OncorweError, match="not in the table"):
        suppress_table(counts, ["patients"], 11)


def test_a_derived_column_must_name_a_count_column(counts):
    with pytest.raises(OncorweError, match="refers to"):
        suppress_table(counts, ["lines"], 11, derived={"share": "patients"})


def test_a_patient_key_in_text_is_found():
    with pytest.raises(PrivacyError, match="patient key"):
        check_no_identifiers("top responder 00dce116b0554f0e")


def test_an_exact_date_in_text_is_found():
    with pytest.raises(PrivacyError, match="exact date '2019-03-04'"):
        check_no_identifiers("diagnosed on 2019-03-04")


def test_years_months_and_float_digits_are_not_findings():
    text = 'index year 2019, median 5.5 months, "y":[0.5583333333333333, 2019-2024]'
    assert find_identifiers(text) == []


def test_an_allowed_value_passes():
    check_no_identifiers("generated 2026-01-31", allow=["2026-01-31"])


def test_a_key_in_a_table_column_is_found():
    df = pd.DataFrame({"person": ["0123456789abcdef"], "lines": [40]})
    with pytest.raises(PrivacyError, match="column 'person'"):
        check_no_identifiers(df)


def test_a_small_count_in_a_table_is_found(counts):
    with pytest.raises(PrivacyError, match="count under 11"):
        check_no_identifiers(counts, min_cell=11)


def test_a_suppressed_table_passes(counts):
    check_no_identifiers(suppress_table(counts, ["lines"], 11), min_cell=11)


def test_count_columns_can_be_named(counts):
    renamed = counts.rename(columns={"lines": "how_many"})
    check_no_identifiers(renamed, min_cell=11)  # not a count name: not checked
    with pytest.raises(PrivacyError):
        check_no_identifiers(renamed, min_cell=11, count_cols=["how_many"])


def test_custom_patterns_replace_the_defaults():
    check_no_identifiers("2019-03-04", patterns={"mrn": r"MRN\d+"})
    with pytest.raises(PrivacyError, match="mrn"):
        check_no_identifiers("MRN12345", patterns={"mrn": r"MRN\d+"})
