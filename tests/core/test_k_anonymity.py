"""k-anonymity of patient-level tables: the group count against a brute-force count on
generated frames, the refusal of a user's table, and the recoding of a synthetic
export's thin age bands."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oncorwe.core.privacy import (
    AGE_BAND_YEARS,
    KAnonymityError,
    age_band,
    code_age_bands,
    k_anonymity_violations,
    quasi_identifier_view,
    require_k_anonymous,
)
from oncorwe.pipeline.params import Params

MISSING = [None, np.nan]
# the kinds of column a user's table holds: numeric codes, string codes, the two mixed
# (a code and its string are different values), each with missing values
COLUMNS = {
    "numeric": st.sampled_from([1, 2, 3, 2.5, *MISSING]),
    "string": st.sampled_from(["F", "M", "korean", "H01", "", *MISSING]),
    "mixed": st.sampled_from([1, "1", 2, "H2", *MISSING]),
}


@st.composite
def frames(draw):
    """A frame of 0 to 40 rows and 1 to 3 quasi-identifier columns of the kinds above,
    and a k from 1 to 6."""
    n = draw(st.integers(0, 40))
    kinds = draw(st.lists(st.sampled_from(sorted(COLUMNS)), min_size=1, max_size=3))
    data = {
        f"q{i}_{kind}": draw(st.lists(COLUMNS[kind], min_size=n, max_size=n))
        for i, kind in enumerate(kinds)
    }
    if draw(st.booleans()) and n:  # a nullable integer column, missing as pd.NA
        data["q_int64"] = pd.array(
            draw(st.lists(st.sampled_from([1, 2, None]), min_size=n, max_size=n)), dtype="Int64"
        )
    return pd.DataFrame(data, index=pd.RangeIndex(n)), draw(st.integers(1, 6))


def _key(value):
    return "<missing>" if pd.isna(value) else value


def brute_force_small_classes(frame: pd.DataFrame, k: int) -> dict[tuple, int]:
    """For every row, the rows equal to it on every column (missing equal to missing),
    counted one pair at a time; the classes under k with their sizes."""
    rows = [tuple(_key(v) for v in r) for r in frame.astype(object).itertuples(index=False)]
    sizes = {}
    for r in rows:
        sizes[r] = sum(all(a == b for a, b in zip(r, o, strict=True)) for o in rows)
    return {r: n for r, n in sizes.items() if n < k}


@given(case=frames())
@settings(max_examples=200, deadline=None)
def test_violations_are_the_classes_a_brute_force_count_finds_under_k(case):
    frame, k = case
    found = k_anonymity_violations(frame, list(frame.columns), k)
    got = {
        tuple(_key(v) for v in row[:-1]): int(row[-1])
        for row in found.astype(object).itertuples(index=False)
    }
    assert got == brute_force_small_classes(frame, k)
    assert found["class_size"].is_monotonic_increasing


def test_a_k_anonymous_table_has_no_violation_and_one_row_under_k_is_found():
    frame = pd.DataFrame({"sex": ["F"] * 5 + ["M"] * 5, "site": ["H1"] * 10})
    assert k_anonymity_violations(frame, ["sex", "site"], 5).empty
    one_more = pd.concat([frame, pd.DataFrame({"sex": [None], "site": ["H1"]})])
    bad = k_anonymity_violations(one_more, ["sex", "site"], 5)
    assert len(bad) == 1 and bad["class_size"].tolist() == [1] and pd.isna(bad["sex"].iloc[0])


@pytest.mark.parametrize("k", [0, 2.5, True, "5"])
def test_k_must_be_a_positive_integer(k):
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        k_anonymity_violations(pd.DataFrame({"a": [1]}), ["a"], k)


def test_the_quasi_identifiers_are_the_age_band_sex_population_and_site():
    frame = pd.DataFrame(
        {"age": [61, 64.0, None], "sex": ["F"] * 3, "site": [1] * 3, "stage": ["IV"] * 3}
    )
    view = quasi_identifier_view(frame)
    assert list(view.columns) == ["age", "sex", "site"]
    assert view["age"].tolist() == ["60-64", "60-64", pd.NA]
    assert age_band([59.9, 60])[0] == "55-59"


def test_a_users_table_under_k_is_refused_naming_the_table_and_a_class():
    frame = pd.DataFrame(
        {
            "age": [61, 62, 63, 64, 60, 91],
            "sex": ["F"] * 6,
            "population": ["korean"] * 6,
            "pfs_months": np.arange(6.0),
        }
    )
    with pytest.raises(KAnonymityError) as err:
        require_k_anonymous(frame, 5, "the table cohort.csv")
    text = str(err.value)
    assert text.startswith("the table cohort.csv is not 5-anonymous: 1 combination(s)")
    assert "age 90-94, sex F, population korean" in text and "nothing was written" in text
    assert "\n" not in text
    require_k_anonymous(frame.iloc[:5], 5, "the table cohort.csv")  # k-anonymous: passes


@given(
    ages=st.lists(st.integers(18, 105) | st.floats(18, 105) | st.none(), min_size=0, max_size=80),
    k=st.integers(2, 8),
)
@settings(max_examples=200, deadline=None)
def test_recoded_ages_leave_every_band_with_k_rows_and_full_bands_as_they_were(ages, k):
    a = pd.Series(ages, dtype=float)
    coded, moved = code_age_bands(a, k)
    assert coded.isna().equals(a.isna())  # missing ages stay missing
    kept = a.notna()
    if kept.sum() < k:  # no recoding reaches k: nothing recoded, left to the refusal
        assert coded.equals(a) and moved == {}
        return
    before = np.floor(a[kept] / AGE_BAND_YEARS) * AGE_BAND_YEARS
    after = np.floor(coded[kept] / AGE_BAND_YEARS) * AGE_BAND_YEARS
    assert after.value_counts().min() >= k
    full = before.map(before.value_counts()) >= k
    assert coded[kept][full].equals(a[kept][full])  # a band that held k rows is untouched
    assert set(moved) == set(before[coded[kept] != a[kept]])
    assert after.equals(before.replace({float(b): float(t) for b, t in moved.items()}))


def test_the_tails_of_a_drawn_age_distribution_are_bottom_and_top_coded():
    ages = pd.Series([24.0, *[27.0] * 4, *[60.0] * 50, 103.0, *[96.0] * 4])
    coded, moved = code_age_bands(ages, 5)
    assert moved == {20: 25, 100: 95}
    assert coded.iloc[0] == 25 and coded.iloc[55] == 99  # lower edge / top year
    assert (coded.iloc[1:55] == ages.iloc[1:55]).all()


def test_privacy_k_defaults_to_5_and_refuses_one():
    assert Params().privacy.k == 5
    with pytest.raises(ValueError, match="greater than or equal to 2"):
        Params.model_validate({"privacy": {"k": 1}})
