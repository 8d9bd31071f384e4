"""The binning contract and the federated quantile sketch."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from oncorwe.compute.federated.binning import (
    GRID_CELLS,
    BinningContract,
    contract_from_summaries,
    grid_edges,
    site_summary,
)
from oncorwe.core.errors import OncorweError
from tests.compute.federated import SITES, synthetic_sites

NUMERIC = ["age", "ldh", "albumin", "nlr"]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic_sites(n=6000, seed=3)


@pytest.fixture(scope="module")
def contract(frame) -> BinningContract:
    sums = [
        site_summary(
            frame[frame.site == s], numeric=[*NUMERIC, "pfs_months"], categorical=["stage"]
        )
        for s in SITES
    ]
    return contract_from_summaries(sums, max_bin=32, time_column="pfs_months", time_points=50)


def test_apply_maps_a_value_to_the_same_bin_at_every_site(frame, contract):
    binned = contract.apply(frame)
    for s in SITES:
        own = contract.apply(frame[frame.site == s])
        pd.testing.assert_frame_equal(own, binned[frame.site == s])


def test_applied_features_have_at_most_max_bin_values(frame, contract):
    binned = contract.apply(frame)
    for c in NUMERIC:
        vals = binned[c].dropna()
        assert vals.nunique() <= contract.max_bin
        assert vals.min() >= 0 and vals.max() < contract.max_bin
        assert frame[c].nunique() > 1000  # the raw feature had far more
    assert binned["stage"].dtype == "category"


def test_missing_stays_missing_and_unknown_levels_become_missing(frame, contract):
    binned = contract.apply(frame)
    assert binned["nlr"].isna().equals(frame["nlr"].isna())
    odd = contract.apply(frame.head(3).assign(stage=["IV", "IVB", None]))
    assert odd["stage"].tolist()[0] == "IV"
    assert odd["stage"].isna().tolist() == [False, True, True]


def test_sketched_cuts_are_close_to_pooled_quantiles(frame, contract):
    # equi-depth bins: every bin of a continuous feature holds about 1/32 of the rows
    shares = contract.apply(frame)["ldh"].value_counts(normalize=True)
    assert shares.size >= 30
    assert shares.max() < 2.0 / 32 and shares.min() > 0.5 / 32


def test_cut_points_are_grid_edges_not_patient_values(frame, contract):
    edges = grid_edges(np.arange(GRID_CELLS + 1))
    for c in NUMERIC:
        cuts = np.asarray(contract.numeric[c])
        assert np.isin(cuts, edges).all()
        assert not np.isin(cuts, frame[c].dropna().to_numpy()).any()


def test_site_summary_sends_no_count_below_min_cell(frame):
    small = frame[frame.site == "C"].head(30)
    s = site_summary(small, numeric=NUMERIC, categorical=["stage"], min_cell=11)
    for intervals in s["numeric"].values():
        assert all(count >= 11 for _, _, count in intervals)
        assert all(isinstance(a, int) and isinstance(b, int) for a, b, _ in intervals)
    tiny = site_summary(frame.head(5), numeric=["age"], categorical=["stage"], min_cell=11)
    assert tiny["numeric"] == {}
    assert tiny["categorical"] == {"stage": []}
    json.dumps(s)  # small and serializable


def test_json_round_trip_is_exact(contract):
    again = BinningContract.from_json(contract.to_json())
    assert again == contract


def test_time_grid_maps_a_time_to_the_first_point_at_or_after_it(contract):
    grid = np.asarray(contract.time_grid)
    idx = contract.time_index([grid[0], grid[0] + 1e-9, grid[-1] + 1.0])
    assert idx.tolist() == [0, 1, grid.size]


def test_reference_ranges_give_equal_width_cuts():
    c = BinningContract.from_reference_ranges(
        {"albumin": (2.0, 5.0, 4), "age": (18, 90)}, categorical={"stage": ["I", "II"]}, max_bin=8
    )
    assert c.numeric["albumin"] == (2.0, 3.5, 5.0)
    assert len(c.numeric["age"]) == 7
    out = c.apply(
        pd.DataFrame({"albumin": [1.0, 2.0, 4.9, 5.0], "age": [50] * 4, "stage": ["I"] * 4})
    )
    assert out["albumin"].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_reference_overrides_sketch(frame):
    ref = BinningContract.from_reference_ranges({"age": (18, 90, 10)}, max_bin=32)
    sums = [site_summary(frame, numeric=NUMERIC)]
    c = contract_from_summaries(sums, max_bin=32, reference=ref)
    assert c.numeric["age"] == ref.numeric["age"]
    assert len(c.numeric["ldh"]) > 20


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"numeric": {"x": [2.0, 1.0]}}, "strictly increasing"),
        ({"numeric": {"x": list(range(10))}, "max_bin": 8}, "at most max_bin - 1"),
        ({"numeric": {"x": [1.0]}, "categorical": {"x": ["a"]}}, "both numeric"),
        ({"categorical": {"s": ["a", "a"]}}, "repeat"),
        ({"numeric": {"x": [np.inf]}}, "finite"),
    ],
)
def test_invalid_contracts_are_rejected(kwargs, message):
    with pytest.raises(OncorweError, match=message):
        BinningContract(**kwargs)


def test_apply_names_a_missing_feature(contract):
    with pytest.raises(OncorweError, match="lacks feature"):
        contract.apply(pd.DataFrame({"age": [1.0]}))
