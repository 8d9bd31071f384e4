"""Network evaluation from site aggregates, checked against the pooled, row-level metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from oncorwe.compute.federated.aggregates import combine_aggregates, site_aggregates
from oncorwe.models.metrics import auc, brier


@pytest.fixture(scope="module")
def network():
    rng = np.random.default_rng(7)
    sizes = {"A": 2500, "B": 1800, "C": 700}
    out = {}
    for i, (s, n) in enumerate(sizes.items()):
        lp = rng.normal(-0.5 + 0.3 * i, 1.2, n)
        p = 1.0 / (1.0 + np.exp(-lp))
        # outcomes drawn slightly above the predicted risk: O/E > 1
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(lp + 0.2)))).astype(int)
        out[s] = (y, p)
    return out


def _combined(network, min_cell=11, **kw):
    aggs = [site_aggregates(y, p, site=s, min_cell=min_cell, **kw) for s, (y, p) in network.items()]
    return aggs, combine_aggregates(aggs, min_cell=min_cell)


def test_combined_auc_is_within_0005_of_the_pooled_auc(network):
    y = np.concatenate([v[0] for v in network.values()])
    p = np.concatenate([v[1] for v in network.values()])
    _, out = _combined(network)
    exact = auc(y, p)
    assert abs(out["overall"]["auc"] - exact) < 0.005
    # the documented bound on the binning error holds
    assert abs(out["overall"]["auc"] - exact) <= out["overall"]["auc_tie_bound"] + 1e-12


def test_brier_and_observed_expected_are_exact(network):
    y = np.concatenate([v[0] for v in network.values()])
    p = np.concatenate([v[1] for v in network.values()])
    _, out = _combined(network)
    assert out["overall"]["brier"] == pytest.approx(brier(y, p), rel=1e-12)
    assert out["overall"]["observed_expected"] == pytest.approx(y.sum() / p.sum(), rel=1e-12)
    assert out["overall"]["n"] == y.size


def test_per_site_metrics_match_each_site(network):
    _, out = _combined(network)
    for row in out["sites"]:
        y, p = network[row["site"]]
        assert abs(row["auc"] - auc(y, p)) < 0.005
        assert row["brier"] == pytest.approx(brier(y, p), rel=1e-12)


def test_calibration_table_sums_to_the_totals(network):
    _, out = _combined(network, min_cell=1)
    cal = out["overall"]["calibration"]
    assert sum(r["n"] for r in cal if r["n"]) == out["overall"]["n"]
    assert sum(r["observed"] for r in cal if r["observed"] is not None) == out["overall"]["events"]


def test_small_site_is_suppressed(network):
    tiny = (np.array([1, 0, 0, 1, 0, 0, 0, 1]), np.linspace(0.1, 0.9, 8))
    aggs = [
        site_aggregates(y, p, site=s, min_cell=11) for s, (y, p) in {**network, "D": tiny}.items()
    ]
    assert aggs[-1]["counts"] == {"n": None, "events": None}
    out = combine_aggregates(aggs, min_cell=11)
    d = next(r for r in out["sites"] if r["site"] == "D")
    assert d["n"] is None and d["auc"] is None and d["brier"] is None
    assert d["observed_expected"] is None
    assert all(r["n"] is None and r["observed"] is None for r in d["calibration"])
    # its rows still count in the network total
    assert out["overall"]["n"] == sum(len(v[0]) for v in network.values()) + 8


def test_sparse_calibration_bins_are_suppressed(network):
    _, out = _combined(network, min_cell=200)
    for r in out["overall"]["calibration"]:
        if r["n"] is None:
            assert r["observed"] is None and r["expected"] is None


def test_aggregates_are_json_and_hold_no_row_level_values(network):
    aggs, _ = _combined(network)
    text = json.dumps(aggs)
    y, p = network["A"]
    assert f"{p[0]!r}" not in text
    assert len(text) < 60_000


def test_sites_must_share_the_score_bins(network):
    (ya, pa), (yb, pb) = network["A"], network["B"]
    a = site_aggregates(ya, pa, site="A", n_bins=1000)
    b = site_aggregates(yb, pb, site="B", n_bins=500)
    with pytest.raises(ValueError, match="different score bins"):
        combine_aggregates([a, b])


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="0/1"):
        site_aggregates([0, 2], [0.1, 0.2], site="A")
    with pytest.raises(ValueError, match="probabilities"):
        site_aggregates([0, 1], [0.1, 1.2], site="A")
