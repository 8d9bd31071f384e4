"""The track 1 notebook's tables, from the stage's files."""

from __future__ import annotations

import json
import re

import pandas as pd

from oncorwe.report import hypothesis_view as hv

from . import stage_outputs as so


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
    assert row["discovery estimate"] == "+4.000 (screening p<0.001)"  # no interval
    assert row["confirmation rows on drug"] == 63
    assert pd.isna(row["confirmation rows on comparator"])
    assert row["rows needed per arm"] == 30


def test_not_testable_table_is_empty_for_an_older_stage_output(tmp_path):
    (tmp_path / "hypotheses.json").write_text(json.dumps({"hypotheses": []}))
    assert hv.not_testable_table(tmp_path).empty


def test_overlap_table_puts_flagged_comparisons_first_and_keeps_withheld_shares_missing():
    def part(rows, share, poor):
        k = None if share is None else round(rows * share)
        return {"rows": rows, "outside_rows": k, "outside_share": share, "poor_overlap": poor}

    def comparison(group, drug, disc, conf):
        drivers = [
            {"feature": "prior_drug", "gain_share": 0.62},
            {"feature": "age", "gain_share": 0.1},
        ]
        return {
            "group": group,
            "drug": drug,
            "discovery": disc,
            "confirmation": conf,
            "propensity_drivers": drivers,
        }

    summary = {
        "overlap": {
            "eps": 0.01,
            "warn_share": 0.05,
            "comparisons": [
                comparison("nsclc", "a", part(900, None, False), part(1200, None, False)),
                comparison("nsclc", "b", part(900, 0.02, False), part(1200, 0.26, True)),
                comparison("breast", "c", part(500, 0.03, False), part(700, 0.04, False)),
            ],
        }
    }
    t = hv.overlap_table(summary)
    assert t["drug"].tolist() == ["b", "c", "a"]
    assert t["poor overlap"].tolist() == ["yes", "", ""]
    assert t.loc[0, "outside, confirmation"] == 0.26
    assert pd.isna(t.loc[2, "outside, confirmation"]) and t.loc[2, "lines"] == 1200
    assert t.loc[0, "propensity leans on"] == "prior drug (62%), age (10%)"
    assert t.loc[0, "cancer"] == "NSCLC"
    assert hv.overlap_table({}).empty  # an older stage output


def test_hypotheses_table_marks_a_subgroup_with_poor_overlap():
    def hyp(rank, poor):
        ci = {"effect": 0.1, "ci_low": 0.05, "ci_high": 0.15, "q_value": 0.01}
        return {
            "rank": rank,
            "drug": "d",
            "subgroup": "cancer = x",
            "confirmed": True,
            "primary_endpoint": "response",
            "confirmation": {"response": ci},
            "overlap": {
                "rows": 500,
                "outside_rows": 40,
                "outside_share": 0.08,
                "poor_overlap": poor,
            },
        }

    t = hv.hypotheses_table([hyp(1, True), hyp(2, False), {**hyp(3, False), "overlap": {}}])
    assert t["poor overlap"].tolist() == ["yes", "", ""]
    assert t.loc[0, "response RD"] == "+0.100 [+0.050, +0.150] q=0.01"


def test_a_blinded_hypothesis_shows_its_status_never_its_estimate():
    ci = {"effect": 0.3, "ci_low": 0.2, "ci_high": 0.4, "q_value": 0.001}
    h = {
        "rank": 1,
        "drug": "d",
        "subgroup": "cancer = x",
        "confirmed": False,
        "blinded": True,
        "blinded_reason": "diagnostics failed (overlap: 100% ...)",
        "confirmation": {"response": ci},
    }
    t = hv.hypotheses_table([h])
    assert t.loc[0, "confirmed"] == "blinded" and t.loc[0, "response RD"] == ""
    assert hv.forest_rows([h], "response", confirmed_only=False).empty


def test_q_values_below_a_thousandth_read_as_such():
    ci = {"effect": 0.1, "ci_low": 0.05, "ci_high": 0.15}
    hyps = [
        {
            "rank": i,
            "drug": "d",
            "subgroup": "cancer = x",
            "confirmed": True,
            "confirmation": {"response": {**ci, "q_value": q}},
        }
        for i, q in enumerate((1.76e-169, 0.0, 0.0123), 1)
    ]
    t = hv.hypotheses_table(hyps)
    assert [s.split("] ")[1] for s in t["response RD"]] == ["q<0.001", "q<0.001", "q=0.012"]
    f = hv.findings_table(hyps)
    assert not re.search(r"\de-\d", f.to_string())
    assert f["q"].tolist() == ["<0.001"]  # one finding: the three overlap


def test_names_are_readable_in_every_table_and_figure():
    hyps, summary = so.hypotheses(), so.summary()
    f = hv.findings_table(hyps)
    assert f.loc[0, "subgroup"] == "NSCLC, PD-L1 TPS status >=50"
    assert f.loc[0, "drivers of benefit"] == "HR status: positive, NLR, ECOG"
    assert "bm_" not in hv.hypotheses_table(hyps).to_string()
    assert "HR status: positive" in hv.shap_frame(summary, "response")["feature"].tolist()
    for fig in [hv.forest_figure(hyps, "pfs"), *hv.population_figures(hyps)]:
        assert not any("bm_" in str(y) or "nsclc" in str(y) for tr in fig.data for y in tr.y)


def test_a_confirmed_harm_is_never_listed_among_benefits():
    hyps = so.hypotheses()
    benefits, harms = hv.findings_table(hyps), hv.findings_table(hyps, harms=True)
    assert "tamoxifen" not in benefits["drug"].tolist()
    assert harms["drug"].tolist() == ["tamoxifen"]
    assert harms.loc[0, "effect [95% CI]"] == "-12.0 points [-16.0, -8.0]"
    tox = {
        **hyps[1],
        "primary_endpoint": "toxicity",
        "confirmation": {"toxicity": {"effect": 0.08, "ci_low": 0.03, "ci_high": 0.13}},
    }
    assert hv.is_harm(tox) and not hv.is_harm(hyps[1])


def test_nested_subgroups_of_one_drug_and_cancer_are_one_finding_with_variants():
    found = hv.findings(so.hypotheses())
    ranks = [(f["headline"]["rank"], [v["rank"] for v in f["variants"]]) for f in found]
    # 1, 3 (line 1 within it) and 5 (women within it) are one finding; 6 (PD-L1 < 1)
    # cannot share a patient with them; 2 is another drug; 4 is a harm; 7 unconfirmed
    assert ranks == [(1, [3, 5]), (2, []), (6, [])]
    t = hv.findings_table(so.hypotheses())
    assert t.loc[0, "variants"] == (
        "#3 NSCLC, PD-L1 TPS status >=50, line 1; #5 NSCLC, PD-L1 TPS status >=50, sex F"
    )


def test_a_hypothesis_overlapping_two_findings_joins_them():
    def h(rank, cond):
        return {
            "rank": rank,
            "drug": "d",
            "group": "g",
            "confirmed": True,
            "conditions": {"cancer": "g", **cond},
            "primary_endpoint": "pfs",
            "confirmation": {"pfs": {"effect": 1.0, "ci_low": 0.5, "ci_high": 1.5}},
        }

    hyps = [
        h(1, {"bm_a_status": "positive"}),
        h(2, {"bm_a_status": "negative"}),
        h(3, {"age": {"min": 70}}),
        h(4, {"age": {"below": 50}}),
    ]
    assert [[x["rank"] for x in (f["headline"], *f["variants"])] for f in hv.findings(hyps)] == [
        [1, 2, 3, 4]
    ]
    apart = [h(1, {"age": {"min": 70}}), h(2, {"age": {"below": 70}})]
    assert len(hv.findings(apart)) == 2


def test_the_safety_table_lists_each_safety_hypothesis_and_hides_a_blinded_estimate(tmp_path):
    from oncorwe.report.hypothesis_view import safety_table

    tox = {"effect": 0.123, "ci_low": 0.05, "ci_high": 0.2, "q_value": 0.0004}
    items = [
        {"rank": 1, "drug": "palbociclib", "subgroup": "cancer = breast", "confirmed": True,
         "conditions": {"cancer": "breast"}, "confirmation": {"toxicity": tox}},
        {"rank": 2, "drug": "alpelisib", "subgroup": "cancer = breast", "confirmed": False,
         "blinded": True, "conditions": {"cancer": "breast"}, "confirmation": {"toxicity": tox}},
    ]  # fmt: skip
    (tmp_path / "hypotheses.json").write_text(json.dumps({"hypotheses": [], "safety": items}))
    t = safety_table(tmp_path)
    assert t["status"].tolist() == ["confirmed", "blinded"]
    assert t.loc[0, "severe toxicity [95% CI]"] == "+12.3 points [+5.0, +20.0]"
    assert t.loc[0, "q"] == "<0.001"
    assert t.loc[1, "severe toxicity [95% CI]"] == "" and t.loc[1, "q"] == ""
    (tmp_path / "hypotheses.json").write_text(json.dumps({"hypotheses": []}))
    assert safety_table(tmp_path).empty  # a file from before safety hypotheses
