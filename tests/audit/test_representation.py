"""Representation audits: hand-computed tables and the sponsor program planted in the world.

The default world (tests/conftest.py, 20,000 patients, seed 11) runs a sponsor program
at the hospitals listed in ``truth/world.json`` (``site_sponsored``) that adds 2.5 to
the log-odds of palbociclib; no other drug has one. The truth is read only here.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from oncorwe.audit import (
    indication_share,
    population_representation,
    representation_table,
    site_concentration,
    to_records,
)


@pytest.fixture(scope="module")
def sponsored(world) -> set[str]:
    flags = json.loads((world / "truth" / "world.json").read_text())["site_sponsored"]
    return {f"H{i + 1:03d}" for i, s in enumerate(flags) if s}


@pytest.fixture(scope="module")
def indications(default_spec) -> dict:
    return {name: drug.indications for name, drug in default_spec.drugs.items()}


# --------------------------------------------------------------------------- representation_table
def test_representation_table_counts_every_line_once(features):
    out = representation_table(features, min_cell=1)
    lines = out.groupby("treatment")["lines"].sum().astype(int)
    assert lines.to_dict() == features["treatment"].value_counts().to_dict()
    assert (out["patients"] <= out["lines"]).all()
    assert out.groupby("treatment")["line_share"].sum().to_numpy() == pytest.approx(1.0)


def test_representation_table_suppresses_small_counts_and_shares_built_on_them():
    t = pd.DataFrame(
        {
            "person_key": [f"p{i}" for i in range(30)],
            "treatment": ["x"] * 30,
            "population": ["a"] * 25 + ["b"] * 5,
        }
    )
    out = representation_table(t, min_cell=11).set_index("population")
    assert out.loc["a", "lines"] == 25 and out.loc["a", "line_share"] == pytest.approx(25 / 30)
    assert pd.isna(out.loc["b", "lines"]) and pd.isna(out.loc["b", "patients"])
    assert math.isnan(out.loc["b", "line_share"])
    rec = {r["population"]: r for r in to_records(out.reset_index())}
    assert rec["b"] == {"population": "b", "treatment": "x", "patients": None, "lines": None,
                        "line_share": None}  # fmt: skip
    json.dumps(to_records(out.reset_index()), allow_nan=False)


def test_representation_table_names_a_missing_column():
    with pytest.raises(ValueError, match="population"):
        representation_table(pd.DataFrame({"person_key": [1], "treatment": ["x"]}))


# --------------------------------------------------------------------------- indication_share
def test_indication_share_matches_hand_counts():
    # breast lines: 10 indicated (HR+), 6 HR-, 4 untested; drug x on 8 indicated, 2 HR-,
    # 2 untested -> drug share 12/20, indication share 10/20, off-indication 4/12
    hr = [1.0] * 10 + [0.0] * 6 + [np.nan] * 4
    drug = ["x"] * 8 + ["s"] * 2 + ["x"] * 2 + ["s"] * 4 + ["x"] * 2 + ["s"] * 2
    t = pd.DataFrame({"cancer": "breast", "treatment": drug, "bm_hr": hr})
    row = indication_share(t, {"x": {"breast": {"HR": "positive"}}}, min_cell=1).iloc[0]
    assert (row.cancer_lines, row.drug_lines, row.indicated_lines) == (20, 12, 10)
    assert (row.off_indication_lines, row.untested_lines) == (4, 2)
    assert row.drug_share == pytest.approx(0.6) and row.indication_share == pytest.approx(0.5)
    assert row.off_indication_share == pytest.approx(1 / 3)
    # 0.6 <= 1.5 * 0.5, but 1/3 of the lines are off-indication
    assert row.over_represented and row.reason == "off_indication"
    strict = indication_share(t, {"x": {"breast": {"HR": "positive"}}}, min_cell=1, ratio=1.1,
                              off_label_max=0.5).iloc[0]  # fmt: skip
    assert strict.over_represented and strict.reason == "share"


def test_indication_share_suppresses_small_off_indication_counts():
    t = pd.DataFrame({"cancer": "c", "treatment": ["x"] * 40 + ["s"] * 10,
                      "bm_egfr": [1.0] * 35 + [0.0] * 15})  # fmt: skip
    row = indication_share(t, {"x": {"c": {"EGFR": "positive"}}}, min_cell=11).iloc[0]
    assert pd.isna(row.off_indication_lines) and math.isnan(row.off_indication_share)
    assert row.drug_lines == 40  # the drug's own count is large enough to show


def test_indication_share_never_flags_a_drug_indicated_in_every_patient(features, indications):
    out = indication_share(features, indications)
    chemo = out[out.apply(lambda r: not indications[r.drug][r.cancer], axis=1)]
    assert len(chemo) == 17  # 16 chemotherapy pairs and atezolizumab-bevacizumab in liver
    assert (chemo["indication_share"] == 1.0).all() and not chemo["over_represented"].any()


def test_palbociclib_is_over_represented_only_where_the_sponsor_program_runs(
    features, indications, sponsored
):
    ind = {"palbociclib": indications["palbociclib"]}
    at = indication_share(features[features.site.isin(sponsored)], ind).iloc[0]
    off = indication_share(features[~features.site.isin(sponsored)], ind).iloc[0]
    # measured on seed 11: 0.28 of its lines off-indication at sponsored sites, 0.08 elsewhere
    assert at.over_represented and "off_indication" in at.reason
    assert not off.over_represented
    assert at.off_indication_share > 2 * off.off_indication_share
    assert at.drug_share > off.drug_share + 0.15


def test_osimertinib_off_indication_use_does_not_depend_on_the_sponsor(
    features, indications, sponsored
):
    ind = {"osimertinib": indications["osimertinib"]}
    at = indication_share(features[features.site.isin(sponsored)], ind).iloc[0]
    off = indication_share(features[~features.site.isin(sponsored)], ind).iloc[0]
    assert abs(at.off_indication_share - off.off_indication_share) < 0.1


def test_indication_share_names_a_bad_condition():
    t = pd.DataFrame({"cancer": ["c"], "treatment": ["x"]})
    with pytest.raises(ValueError, match=r"indications\['x'\]\['c'\].*bm_egfr"):
        indication_share(t, {"x": {"c": {"EGFR": "positive"}}})


# --------------------------------------------------------------------------- site_concentration
def _two_sites(a: int, b: int, c: int, d: int, stratum: str = "k") -> pd.DataFrame:
    """Site A: a lines on drug x, b on s; site B (the rest): c on x, d on s."""
    return pd.DataFrame(
        {
            "site": ["A"] * (a + b) + ["B"] * (c + d),
            "treatment": ["x"] * a + ["s"] * b + ["x"] * c + ["s"] * d,
            "cancer": stratum,
        }
    )


def test_site_odds_ratio_is_woolf_on_one_stratum():
    a, b, c, d = 30, 20, 40, 90
    sites = site_concentration(_two_sites(a, b, c, d), min_cell=1).sites
    row = sites[(sites.drug == "x") & (sites.site == "A")].iloc[0]
    odds, se = a * d / (b * c), math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    assert row.odds_ratio == pytest.approx(odds)
    assert row.or_low == pytest.approx(odds * math.exp(-1.959964 * se), rel=1e-5)
    assert row.or_high == pytest.approx(odds * math.exp(1.959964 * se), rel=1e-5)
    # expected = site lines x network share = 50 * 70 / 180
    assert row.expected == pytest.approx(50 * 70 / 180)
    assert row.sir == pytest.approx(a / (50 * 70 / 180))
    assert row.flagged  # OR 3.4, CI above 1


def test_site_odds_ratio_over_two_identical_strata_equals_the_doubled_table():
    # Mantel-Haenszel over identical strata = the stratum's OR; the RGB variance halves
    two = pd.concat([_two_sites(30, 20, 40, 90, "k1"), _two_sites(30, 20, 40, 90, "k2")])
    doubled = _two_sites(60, 40, 80, 180)
    cols = ["expected", "odds_ratio", "or_low", "or_high"]
    got = site_concentration(two, min_cell=1).sites.set_index(["drug", "site"])[cols]
    ref = site_concentration(doubled, min_cell=1).sites.set_index(["drug", "site"])[cols]
    pd.testing.assert_frame_equal(got, ref)


def test_site_concentration_standardizes_for_case_mix():
    # site A treats only cancer k1, where x is the norm (80% everywhere): not an outlier
    t = pd.concat([_two_sites(80, 20, 80, 20, "k1"), _two_sites(0, 0, 10, 90, "k2")])
    sites = site_concentration(t, min_cell=1).sites
    row = sites[(sites.drug == "x") & (sites.site == "A")].iloc[0]
    # crude: 0.8 at A against 170/300 in the network; within cancer k1 nothing unusual
    assert row.drug_share == pytest.approx(0.8) and row.network_share == pytest.approx(170 / 300)
    assert row.odds_ratio == pytest.approx(1.0) and row.sir == pytest.approx(1.0)
    assert not row.flagged


def test_palbociclib_flagged_sites_are_the_sponsored_ones(features, sponsored):
    res = site_concentration(features)
    flagged = set(res.drugs.set_index("drug").loc["palbociclib", "flagged_sites"])
    # measured on seed 11: H003, H032, H039 flagged, all 3 sponsored (7 of 40 sites are);
    # chance of 3 of 3 under no enrichment: C(7,3) / C(40,3) = 0.0035
    assert len(flagged) >= 2
    assert len(flagged & sponsored) / len(flagged) >= 2 / 3
    pal = res.sites[res.sites.drug == "palbociclib"].dropna(subset=["odds_ratio"])
    is_sp = pal.site.isin(sponsored)
    assert pal.odds_ratio[is_sp].median() > 1.5 * pal.odds_ratio[~is_sp].median()


def test_other_drugs_flagged_sites_are_not_enriched_for_sponsored_sites(features, sponsored):
    res = site_concentration(features)
    other = res.sites[res.sites.flagged & (res.sites.drug != "palbociclib")]
    # practice-style outliers (hospital x drug preference) are spread over all sites
    assert other.site.isin(sponsored).mean() < 0.4


def test_site_concentration_summarizes_top_sites(features):
    drugs = site_concentration(features).drugs.set_index("drug")
    assert set(drugs.index) == set(features.treatment)
    top = drugs.loc["palbociclib"]
    assert len(top.top_sites) == 5
    assert top.top_share == pytest.approx(top.top_lines / top.lines)
    # top hospitals are big hospitals: share of the drug and of its strata are close
    assert 0.8 < top.concentration < 1.5


def test_site_concentration_suppresses_small_sites():
    t = _two_sites(5, 20, 60, 60)
    row = site_concentration(t, min_cell=11).sites.query("drug == 'x' and site == 'A'").iloc[0]
    assert pd.isna(row.drug_lines) and math.isnan(row.odds_ratio) and not row.flagged


# ------------------------------------------------------------------ population_representation
def test_population_representation_against_a_trial_reference(features):
    # FDA-approval trials: 76% White, 18% Asian, 3% Black; the world's labels mapped on
    groups = {"korean": "Asian", "other_east_asian": "Asian", "european": "White",
              "african": "Black", "latin_american": "Hispanic"}  # fmt: skip
    frame = features.assign(population=features.population.map(groups))
    ref = {"White": 0.76, "Asian": 0.18, "Black": 0.03}
    out = population_representation(frame, ref).set_index("population")
    n = features.person_key.nunique()
    assert out["patients"].sum() == n
    asian = features.loc[features.population.isin(["korean", "other_east_asian"]), "person_key"]
    assert out.loc["Asian", "share"] == pytest.approx(asian.nunique() / n)
    assert out["ratio"].dropna().to_dict() == pytest.approx(
        {k: out.loc[k, "share"] / v for k, v in ref.items()}
    )
    assert out.loc["Asian", "ratio"] > 4 and out.loc["White", "ratio"] < 0.2
    assert math.isnan(out.loc["Hispanic", "reference_share"])


def test_population_representation_lists_reference_populations_absent_from_data():
    t = pd.DataFrame({"person_key": range(20), "population": ["a"] * 20})
    out = population_representation(t, {"a": 0.5, "b": 0.5}).set_index("population")
    assert pd.isna(out.loc["b", "patients"]) and math.isnan(out.loc["b", "ratio"])
    assert out.loc["a", "ratio"] == pytest.approx(2.0)


@pytest.mark.parametrize("ref", [{"a": 0.7, "b": 0.6}, {"a": -0.1}, {"a": "0.5"}])
def test_population_representation_rejects_a_bad_reference(ref):
    t = pd.DataFrame({"person_key": [1], "population": ["a"]})
    with pytest.raises(ValueError, match="reference_shares"):
        population_representation(t, ref)


def test_every_representation_table_converts_to_strict_json(features, indications):
    res = site_concentration(features)
    for table in (
        representation_table(features),
        indication_share(features, indications),
        res.drugs,
        res.sites,
        population_representation(features, {"korean": 0.5}),
    ):
        rows = to_records(table)
        assert len(rows) == len(table)
        json.dumps(rows, allow_nan=False)  # suppressed cells became None, not NaN
