"""Track 1 end to end on a small default world, and its outputs' privacy."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from oncorwe.cohort.truth import Truth, evaluate
from oncorwe.features.build import DEV_KEY


def test_writes_ranked_hypotheses_models_and_splits(track1):
    out, res = track1
    data = json.loads((out / "hypotheses.json").read_text())
    ranks = [h["rank"] for h in data["hypotheses"]]
    assert ranks == list(range(1, len(ranks) + 1))
    confirmed = [h["confirmed"] for h in data["hypotheses"]]
    assert confirmed == sorted(confirmed, reverse=True)  # confirmed first
    for name in ("response", "pfs", "toxicity"):
        assert (out / "models" / f"{name}.json").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert 0.6 < summary["models"]["response"]["overall"]["auc"] < 0.95
    assert summary["models"]["pfs"]["overall"]["c_index"] > 0.6


def test_a_patient_sits_in_one_part_only(track1):
    out, _ = track1
    splits = pd.read_parquet(out / "splits.parquet")
    assert splits.groupby("id")["part"].nunique().max() == 1
    share = splits["part"].value_counts(normalize=True)
    assert abs(share["discovery"] - 0.4) < 0.03


def test_confirmed_hypotheses_pass_bh_and_keep_their_direction(track1):
    out, _ = track1
    for h in json.loads((out / "hypotheses.json").read_text())["hypotheses"]:
        if not h["confirmed"]:
            continue
        c, d = h["confirmation"][h["primary_endpoint"]], h["discovery"][h["primary_endpoint"]]
        assert c["q_value"] < 0.05
        assert np.sign(c["effect"]) == np.sign(d["effect"])
        assert c["ci_low"] <= c["effect"] <= c["ci_high"]


def test_every_candidate_is_estimated_on_the_confirmation_part(track1):
    """Selection skips rules the confirmation part has too few rows per arm for: each
    candidate sent on gets confirmation estimates (a slot is never spent on a sure miss)."""
    out, res = track1
    hyps = json.loads((out / "hypotheses.json").read_text())["hypotheses"]
    assert hyps
    for h in hyps:
        assert h["confirmation"], h["subgroup"]
        assert h["primary_endpoint"] in h["discovery"]
    part = res["confirmation"]
    from oncorwe.effects.discovery import DiscoveryConfig, confirmable

    cfg = DiscoveryConfig()
    assert all(confirmable(h, part, cfg) for h in res["hypotheses"])
    # what selection skipped is reported, and is indeed beyond the confirmation part
    from oncorwe.core.rules import Condition
    from oncorwe.effects.discovery import Hypothesis

    data = json.loads((out / "hypotheses.json").read_text())
    assert isinstance(data["not_testable"], list)
    for item in data["not_testable"]:
        h = Hypothesis(item["drug"], item["group"], Condition.parse(item["conditions"]), "", {})
        assert not confirmable(h, part, cfg), item["subgroup"]
        assert item["discovery"]["p_value"] < cfg.discovery_p


def test_planted_effects_are_recovered_with_covering_intervals(track1, focused_world):
    """NSCLC + liver world, 20k patients: the large planted rules are found, in direction."""
    _, res = track1
    ev = evaluate(res, Truth.load(focused_world, DEV_KEY), horizon=12.0)
    rules = {r["rule"]: r for r in ev["rules"]}
    for name in (
        "atezolizumab_bevacizumab_liver",
        "pembrolizumab_pdl1_high_nsclc",
        "osimertinib_egfr_east_asian",
    ):
        assert rules[name]["recovered"], name
    assert ev["precision"] >= 0.8
    matched = [h for h in ev["hypotheses"] if h["matches"]]
    covered = sum(h["effects"][h["primary"]]["covered"] for h in matched)
    assert covered >= 0.8 * len(matched)


def _small_counts(obj, found: list) -> list:
    if isinstance(obj, dict):
        for k, v in obj.items():
            counts = ("n", "n_treated", "n_control", "treated", "control")
            if k in counts and isinstance(v, int | float) and v < 11:
                found.append((k, v))
            _small_counts(v, found)
    elif isinstance(obj, list):
        for v in obj:
            _small_counts(v, found)
    return found


def test_outputs_hold_no_identifiers_dates_or_small_counts(track1):
    out, _ = track1
    for name in ("hypotheses.json", "summary.json"):
        text = (out / name).read_text()
        keys = [t for t in re.findall(r"\b[0-9a-f]{16}\b", text) if not t.isdigit()]
        assert not keys, (name, keys[:3])  # a keyed hash always has a letter in 16 hex digits
        assert not re.search(r"\b(19|20)\d\d-\d\d-\d\d\b", text), name
        assert _small_counts(json.loads(text), []) == [], name


def test_a_null_world_confirms_nothing(tmp_path, null_world, feature_config):
    from oncorwe.core.roles import read_table, roles_for_analysis_table
    from oncorwe.features.build import build_features, write_features
    from oncorwe.pipeline.hypothesis import run_hypothesis

    from ...conftest import small_track_config

    analysis = tmp_path / "analysis"
    write_features(build_features(null_world / "omop", feature_config), analysis, feature_config)
    res = run_hypothesis(
        read_table(analysis),
        roles_for_analysis_table(analysis),
        small_track_config(),
        tmp_path / "h",
    )
    assert res["summary"]["n_confirmed"] == 0


def test_no_stage_reads_the_truth():
    """Only the cohort stage writes truth/; only cohort/truth.py (tests, benchmarks) reads it."""
    from pathlib import Path

    lib = Path(__file__).resolve().parents[3] / "lib" / "oncorwe"
    # core/paths.py is the catalog that names the folder; reading it goes through
    # catalog.truth, which no other module may touch
    allowed = {"cohort/generator.py", "cohort/truth.py", "pipeline/cohort.py", "core/paths.py"}
    for path in lib.rglob("*.py"):
        rel = path.relative_to(lib).as_posix()
        if rel in allowed:
            continue
        text = path.read_text()
        assert "cohort.truth" not in text, rel
        assert not re.search(r"[\"'/]truth[/\"']", text), rel
        assert not re.search(r"\.truth\b", text), rel


def test_population_effects_add_up_to_the_subgroup_effect(track1):
    """The per-population estimates partition the confirmation rows of each hypothesis."""
    out, _ = track1
    checked = 0
    for h in json.loads((out / "hypotheses.json").read_text())["hypotheses"]:
        pops = [p for p in h.get("effect_by_population", []) if p["n"] is not None]
        c = h["confirmation"].get(h["primary_endpoint"] or "")
        if not pops or not c or c.get("n") is None or len(pops) != len(h["effect_by_population"]):
            continue
        pooled = sum(p["n"] * p["effect"] for p in pops) / sum(p["n"] for p in pops)
        assert abs(pooled - c["effect"]) < 1e-3 * max(1.0, abs(c["effect"]))
        assert all(p["ci_low"] <= p["effect"] <= p["ci_high"] for p in pops)
        assert h["population_heterogeneity"][0]["df"] == len(pops) - 1
        checked += 1
    assert checked >= 1


def test_overlap_is_reported_per_comparison_and_per_hypothesis(track1):
    """summary.json gives each comparison's propensity overlap in both parts; each
    hypothesis carries its own subgroup's, counted on the confirmation part."""
    out, res = track1
    summary = json.loads((out / "summary.json").read_text())
    ov = summary["overlap"]
    assert [(c["group"], c["drug"]) for c in ov["comparisons"]] == [
        (c["group"], c["drug"]) for c in summary["comparisons"]
    ]
    part = res["confirmation"]
    flagged = 0
    for c in ov["comparisons"]:
        conf = c["confirmation"]
        comp = part.comparison(c["group"], c["drug"])
        n, k = int(comp.rows.sum()), int(comp.outside.sum())
        assert conf["rows"] == (n if n >= 11 else None)
        assert conf["outside_share"] == (pytest.approx(k / n, rel=1e-6) if k >= 11 else None)
        assert conf["poor_overlap"] == (k / n > ov["warn_share"])
        flagged += conf["poor_overlap"]
    # the default world's covariates hold no record of the treatment (0 of 5 measured)
    assert flagged == 0
    hyps = json.loads((out / "hypotheses.json").read_text())["hypotheses"]
    for h in hyps:
        o = h["overlap"]
        assert set(o) == {"rows", "outside_rows", "outside_share", "poor_overlap"}
        assert o["rows"] is None or o["rows"] >= 11


def test_two_runs_of_the_same_inputs_write_the_same_bytes(track1, tmp_path):
    """Same inputs, same outputs: every file of a second run equals the first's byte for
    byte (no timing, no machine speed in them); the tuning study, whose trials carry
    their timestamps, holds the same trials with the same parameters and scores."""
    import optuna

    from oncorwe.core.roles import read_table, roles_for_analysis_table
    from oncorwe.pipeline.hypothesis import TUNING_DB, run_hypothesis

    from ...conftest import small_track_config

    out, _ = track1
    analysis = out.parent / "analysis"
    again = tmp_path / "again"
    run_hypothesis(
        read_table(analysis), roles_for_analysis_table(analysis), small_track_config(), again
    )
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for f in files:
        if f.name != TUNING_DB:
            assert (out / f).read_bytes() == (again / f).read_bytes(), f

    def trials(folder):
        url = f"sqlite:///{folder / TUNING_DB}"
        return {
            s.study_name: [(t.params, t.value, t.state) for t in optuna.load_study(
                study_name=s.study_name, storage=url).trials]
            for s in optuna.get_all_study_summaries(url)
        }  # fmt: skip

    assert trials(out) == trials(again)


def test_the_pfs_model_is_judged_with_censoring_adjusted_measures(track1):
    out, _ = track1
    pfs = json.loads((out / "summary.json").read_text())["models"]["pfs"]
    overall = pfs["overall"]
    # a model with the treatment and the prognostic covariates beats a coin on every measure
    for measure in ("c_index", "uno_c", "mean_auc"):
        assert 0.55 < overall[measure] < 1.0, measure
    # and its Brier score is under that of a coin-flip survival prediction (0.25)
    assert 0.0 < overall["ibs"] < 0.25
    rows = pfs["by_population"]
    assert rows and all({"uno_c", "mean_auc", "ibs"} <= set(r) for r in rows)
    assert any(r["uno_c"] is not None for r in rows)


def test_safety_hypotheses_are_true_harms_with_covering_intervals(track1, focused_world):
    """The safety family on the focused world: each confirmed one is a drug raising
    grade >= 3 toxicity in its subgroup (potential outcomes), and its CI covers the truth."""
    from oncorwe.cohort.truth import evaluate_safety

    out, res = track1
    data = json.loads((out / "hypotheses.json").read_text())
    assert [h["rank"] for h in data["safety"]] == list(range(1, len(data["safety"]) + 1))
    assert all(
        h["kind"] == "safety" and h["primary_endpoint"] == "toxicity" for h in data["safety"]
    )
    assert all(h["kind"] == "efficacy" for h in data["hypotheses"])
    ev = evaluate_safety(res, Truth.load(focused_world, DEV_KEY), horizon=12.0)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_safety_confirmed"] == ev["n_confirmed"] >= 1
    assert ev["precision"] == 1.0, ev["hypotheses"]
    assert ev["coverage"] >= 0.8, ev["hypotheses"]
    for h in data["safety"]:
        if h["confirmed"]:
            c = h["confirmation"]["toxicity"]
            assert c["effect"] > 0 and c["q_value"] < 0.05
