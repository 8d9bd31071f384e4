"""Track 2 end to end on track 1's output, and the go / no-go rule."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from oncorwe.core.roles import read_table, roles_for_analysis_table
from oncorwe.effects.discovery import HypothesisRecord
from oncorwe.pipeline.validation import ValidationConfig, decide, read_hypotheses, run_validation


@pytest.fixture(scope="module")
def validated(track1, tmp_path_factory):
    out, _ = track1
    analysis = out.parent / "analysis"
    hyps = read_hypotheses(out / "hypotheses.json")
    parts = pd.read_parquet(out / "splits.parquet")
    cfg = ValidationConfig(top_k=2, replicates=1000, adaptive_trials=300, threads=1, seed=3)
    path = tmp_path_factory.mktemp("validation") / "validation.json"
    res = run_validation(
        read_table(analysis), roles_for_analysis_table(analysis), hyps, parts, cfg, path
    )
    return res, path, hyps


def test_validates_the_top_confirmed_hypotheses(validated):
    res, path, hyps = validated
    firsts, seen = [], set()
    for h in hyps:
        key = (h.drug, str(h.conditions.get("cancer")))
        if h.confirmed and key not in seen:
            firsts.append(h.rank)
            seen.add(key)
    assert [r["rank"] for r in res["hypotheses"]] == firsts[:2]
    assert json.loads(path.read_text())["n_go"] == res["n_go"]


def test_each_result_has_emulation_trial_adaptive_transport_and_a_decision(validated):
    res, _, _ = validated
    for r in res["hypotheses"]:
        em = r["emulation"]
        assert em["ci_low"] <= em["hazard_ratio"] <= em["ci_high"]
        # weighting reduces the imbalance on average (the max over rare levels may not fall)
        before = sum(abs(b["smd_before"]) for b in em["balance"] if b["smd_before"] is not None)
        after = sum(abs(b["smd_after"]) for b in em["balance"] if b["smd_after"] is not None)
        assert after < before
        assert r["decision"] in ("go", "no-go") and r["reasons"]
        trial = r["trial"]
        if trial.get("sample_size"):
            # the simulated power at the chosen N reaches the target (Monte-Carlo slack)
            assert trial["power"] >= 0.8 - 0.03
            # and the simulation agrees with Schoenfeld at the simulated events
            assert abs(trial["power"] - trial["formula_power_at_simulated_events"]) < 0.05
        if r["adaptive"]["available"]:
            assert 0 <= r["adaptive"]["null_prob_graduate_any"] <= 1
        if r["transport"]["available"]:
            assert 0.5 < r["transport"]["c_index"] < 1


def test_the_emulation_agrees_with_a_large_planted_benefit(validated):
    """Atezolizumab-bevacizumab in liver cancer, if validated: HR below 1 on held-out data."""
    res, _, _ = validated
    for r in res["hypotheses"]:
        if r["drug"] == "atezolizumab_bevacizumab":
            assert r["emulation"]["hazard_ratio"] < 1
            assert r["emulation"]["risk_difference"] > 0


def _hyp(primary="pfs", effect=1.0):
    return HypothesisRecord(
        rank=1,
        drug="d",
        subgroup="all",
        conditions={},
        confirmed=True,
        primary_endpoint=primary,
        confirmation={primary: {"effect": effect}},
    )


def test_go_needs_direction_diagnostics_and_a_feasible_trial():
    em = {"ci_low": 0.5, "ci_high": 0.8, "diagnostics_pass": True, "diagnostic_reasons": []}
    assert decide(_hyp(), em, {"feasible": True})[0] == "go"
    assert decide(_hyp(), {**em, "ci_high": 1.1}, {"feasible": True})[0] == "no-go"
    assert decide(_hyp(), {**em, "diagnostics_pass": False}, {"feasible": True})[0] == "no-go"
    decision, reasons = decide(_hyp(), em, {"feasible": False, "reason": "needs 9000 patients"})
    assert decision == "no-go" and any("9000" in r for r in reasons)
    rd = {"rd_ci_low": 0.02, "rd_ci_high": 0.2, "diagnostics_pass": True}
    assert decide(_hyp("response", 0.1), rd, {"feasible": True})[0] == "go"


@pytest.mark.notebook
def test_validation_notebook_reports_the_stage_results(track2, rendered_reports):
    from oncorwe.report.render import assert_no_cdn

    res = json.loads((track2 / "validation.json").read_text())
    report = rendered_reports[1]["02_validation"]  # rendered by the report stage's code
    assert res["hypotheses"] and report.metrics["validated"] == len(res["hypotheses"])
    assert report.metrics["go"] == res["n_go"]
    assert_no_cdn(report.html.read_text())


@pytest.mark.notebook
def test_validation_notebook_renders_when_nothing_was_confirmed(tmp_path):
    from oncorwe.core.paths import project_root
    from oncorwe.report.render import render_report

    path = tmp_path / "validation.json"
    path.write_text(json.dumps({"hypotheses": [], "n_go": 0}))
    report = render_report(
        project_root() / "notebooks" / "02_validation.ipynb",
        "02_validation",
        {"validation_path": str(path), "min_cell": 11},
        tmp_path / "reports",
    )
    assert report.metrics == {"validated": 0, "go": 0, "go_drugs": []}
    assert "No hypothesis was validated" in report.html.read_text()


def test_transport_sees_only_the_validation_part(validated, track1):
    """Track 2 tests on patients neither discovery nor confirmation saw: the transport's
    development and test rows together are the validation part's rows of the cancer."""
    from oncorwe.core.rules import Condition

    res, _, _ = validated
    out, _ = track1
    analysis = read_table(out.parent / "analysis")
    roles = roles_for_analysis_table(out.parent / "analysis")
    parts = pd.read_parquet(out / "splits.parquet")
    valid_ids = set(parts.loc[parts["part"] == "validation", "id"])
    checked = 0
    for r in res["hypotheses"]:
        tr = r["transport"]
        if not tr.get("available"):
            continue
        cancer = {k: v for k, v in r["conditions"].items() if k == "cancer"}
        rows = analysis[Condition.parse(cancer).mask(analysis)]
        in_valid = rows[roles.id].astype(str).isin(valid_ids)
        assert tr["n_train"] + tr["n_test"] == int(in_valid.sum()) < len(rows)
        checked += 1
    assert checked, "no hypothesis had a transport to check"


def test_a_hypotheses_file_without_a_key_is_named_where_it_is_read(tmp_path):
    from oncorwe.core.errors import OncorweError

    path = tmp_path / "hypotheses.json"
    path.write_text(json.dumps({"hypotheses": [{"rank": 3, "drug": "d", "subgroup": "all"}]}))
    with pytest.raises(
        OncorweError, match=r"hypotheses.json: hypothesis 3 lacks \['conditions', 'confirmed'\]"
    ):
        read_hypotheses(path)


def test_a_confirmed_safety_signal_of_the_drug_in_its_cancer_type_goes_with_the_decision():
    from oncorwe.effects.discovery import HypothesisRecord
    from oncorwe.pipeline.validation import safety_reasons

    def rec(drug, cancer, confirmed=True, effect=0.12):
        return HypothesisRecord.from_dict(
            {"rank": 1, "drug": drug, "subgroup": f"cancer = {cancer} and HR positive",
             "conditions": {"cancer": cancer, "HR": "positive"}, "confirmed": confirmed,
             "primary_endpoint": "toxicity",
             "confirmation": {"toxicity": {"effect": effect, "ci_low": 0.08, "ci_high": 0.16,
                                           "q_value": 0.001}}}
        )  # fmt: skip

    h = HypothesisRecord.from_dict(
        {"rank": 1, "drug": "palbociclib", "subgroup": "cancer = breast",
         "conditions": {"cancer": "breast"}, "confirmed": True, "primary_endpoint": "pfs"}
    )  # fmt: skip
    safety = [
        rec("palbociclib", "breast"),
        rec("palbociclib", "breast", confirmed=False),  # not confirmed: no signal
        rec("palbociclib", "ovarian"),  # another cancer type
        rec("olaparib", "breast"),  # another drug
    ]
    out = safety_reasons(h, safety)
    assert len(out) == 1
    sig, text = out[0]
    assert sig["toxicity_risk_difference"] == 0.12 and sig["q_value"] == 0.001
    assert "palbociclib" in text and "+0.120" in text and "[+0.080, +0.160]" in text
    assert safety_reasons(h, []) == []


def test_the_km_plot_is_the_best_ranked_unblinded_hypothesis_as_published(tmp_path):
    """The dvc plot's data: a blinded design is skipped, the curves are the published
    ones (None where few are at risk becomes an empty cell), nothing to show is a header."""
    import pandas as pd

    from oncorwe.pipeline.validation import write_km_plot

    def km(s_t, s_c):
        return {"treated": {"times": [0, 6, 12], "survival": s_t},
                "control": {"times": [0, 6, 12], "survival": s_c}}  # fmt: skip

    res = {
        "hypotheses": [
            {"rank": 1, "emulation": {"blinded": True, "km": km([1, 0.5, 0.4], [1, 0.4, 0.3])}},
            {"rank": 2, "emulation": {"km": km([1, 0.8, None], [1, 0.6, 0.5])}},
        ]
    }
    path = tmp_path / "km.csv"
    write_km_plot(res, path)
    t = pd.read_csv(path)
    assert t["months"].tolist() == [0, 6, 12]
    assert t["treated"].tolist()[:2] == [1, 0.8] and pd.isna(t["treated"][2])
    assert t["control"].tolist() == [1, 0.6, 0.5]
    write_km_plot({"hypotheses": [{"rank": 1, "decision": "no-go"}]}, path)
    assert path.read_text().strip() == "months,treated,control"
    assert [p.name for p in tmp_path.iterdir()] == ["km.csv"]  # no temporary left
