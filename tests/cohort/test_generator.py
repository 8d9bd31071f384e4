"""The synthetic world against its spec: prevalence, planted effects, confounding."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy.special import logit

from oncorwe.cohort.generator import OMOP_TABLES, generate
from oncorwe.core.rules import biomarker_column


def _digest(folder) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_spec_and_seed_give_byte_identical_files(tmp_path, default_spec):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(default_spec, 2500, seed=5, out=a, chunk_size=1000)
    generate(default_spec, 2500, seed=5, out=b, chunk_size=1000)
    generate(default_spec, 2500, seed=6, out=c, chunk_size=1000)
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert da == db
    assert set(da) == set(dc)
    assert da["omop/person.parquet"] != dc["omop/person.parquet"]


def test_writes_every_omop_table_and_truth_separately(world):
    for table in OMOP_TABLES:
        assert (world / "omop" / f"{table}.parquet").is_file(), table
    truth = {p.name for p in (world / "truth").iterdir()}
    assert {"lines.parquet", "potential_outcomes.parquet", "planted_effects.json"} <= truth
    assert not any("truth" in p.name or "potential" in p.name for p in (world / "omop").iterdir())


def test_population_shares_follow_the_spec(world, default_spec):
    person = pd.read_parquet(world / "omop" / "person.parquet")
    share = person["race_source_value"].value_counts(normalize=True)
    n = len(person)
    for name, pop in default_spec.populations.items():
        se = np.sqrt(pop.share * (1 - pop.share) / n)
        assert abs(share.get(name, 0.0) - pop.share) < 4 * se + 1e-9, name


def test_biomarker_prevalence_per_population_within_sampling_tolerance(truth_lines, default_spec):
    first = truth_lines[truth_lines["line"] == 1]
    checked = 0
    for cname, cancer in default_spec.cancers.items():
        for bname, bm in cancer.biomarkers.items():
            if default_spec.biomarkers[bname] != "binary":
                continue
            for pop in default_spec.populations:
                sub = first[(first["cancer"] == cname) & (first["population"] == pop)]
                if len(sub) < 100:
                    continue
                p = bm.value_for(pop)
                observed = sub[biomarker_column(bname)].mean()
                se = np.sqrt(p * (1 - p) / len(sub))
                assert abs(observed - p) < 4.5 * se + 1e-9, (cname, bname, pop, observed, p)
                checked += 1
    assert checked >= 20


def test_egfr_is_far_more_common_in_east_asian_nsclc(truth_lines):
    nsclc = truth_lines[(truth_lines["cancer"] == "nsclc") & (truth_lines["line"] == 1)]
    rate = nsclc.groupby("population")["bm_egfr"].mean()
    assert rate["korean"] > 2 * rate["european"]


def test_pdl1_tiers_follow_the_spec(truth_lines, default_spec):
    nsclc = truth_lines[
        (truth_lines["cancer"] == "nsclc")
        & (truth_lines["line"] == 1)
        & (truth_lines["population"] == "korean")
    ]
    tiers = default_spec.cancers["nsclc"].biomarkers["PDL1_TPS"].value_for("korean")
    high = (nsclc["bm_pdl1_tps"] >= 50).mean()
    se = np.sqrt(tiers[0] * (1 - tiers[0]) / len(nsclc))
    assert abs(high - tiers[0]) < 4 * se


def test_planted_effects_are_exactly_the_potential_outcome_contrasts(
    truth_lines, truth_po, default_spec
):
    po = truth_po.merge(
        truth_lines[["line_id", *[c for c in truth_lines if c.startswith("rule_")]]]
    )
    soc = po[po["is_standard"]].set_index("line_id")
    po = po.join(soc[["p_response", "pfs_log_hazard", "p_toxicity"]], on="line_id", rsuffix="_soc")
    expected = {"r": np.zeros(len(po)), "h": np.zeros(len(po)), "t": np.zeros(len(po))}
    for eff in default_spec.planted_effects:
        hit = (po["drug"] == eff.drug).to_numpy() & po[f"rule_{eff.name}"].to_numpy()
        assert hit.any(), f"planted rule {eff.name} matched no line that could get {eff.drug}"
        expected["r"] += eff.response_log_odds * hit
        expected["h"] += eff.pfs_log_hazard * hit
        expected["t"] += eff.toxicity_log_odds * hit
    np.testing.assert_allclose(
        logit(po["p_response"]) - logit(po["p_response_soc"]), expected["r"], atol=1e-9
    )
    np.testing.assert_allclose(
        po["pfs_log_hazard"] - po["pfs_log_hazard_soc"], expected["h"], atol=1e-9
    )
    np.testing.assert_allclose(
        logit(po["p_toxicity"]) - logit(po["p_toxicity_soc"]), expected["t"], atol=1e-9
    )


def test_rare_responder_subgroup_is_about_five_percent_of_its_cancer(truth_lines):
    crc = truth_lines[(truth_lines["cancer"] == "colorectal") & (truth_lines["line"] == 1)]
    share = crc["rule_pembrolizumab_msi_h_colorectal"].mean()
    assert 0.03 < share < 0.07


def test_treatment_probabilities_respect_the_positivity_floor(truth_po, default_spec):
    floor = default_spec.treatment_policy.positivity_floor
    assert truth_po["p_assign"].min() >= floor - 1e-12
    sums = truth_po.groupby("line_id")["p_assign"].sum()
    np.testing.assert_allclose(sums, 1.0, atol=1e-9)
    assert truth_po.groupby("line_id")["assigned"].sum().eq(1).all()


def test_observed_response_matches_the_assigned_potential_outcome(world, truth_po):
    assigned = truth_po[truth_po["assigned"]]
    obs = pd.read_parquet(world / "omop" / "observation.parquet")
    resp = obs[obs["observation_source_value"] == "best overall response"]
    merged = resp.merge(assigned, left_on="observation_event_id", right_on="line_id")
    y = (merged["value_as_string"] == "CR/PR").to_numpy()
    p = merged["p_response"].to_numpy()
    se = np.sqrt((p * (1 - p)).sum()) / len(p)
    assert abs(y.mean() - p.mean()) < 4 * se
    # and per decile of the true probability (calibrated realisation)
    bins = pd.qcut(p, 5, labels=False)
    for b in range(5):
        m = bins == b
        se_b = np.sqrt((p[m] * (1 - p[m])).sum()) / m.sum()
        assert abs(y[m].mean() - p[m].mean()) < 4.5 * se_b


def test_treatment_is_confounded_by_performance_status(null_world):
    """In a world with no effects the naive contrast is still not zero."""
    lines = pd.read_parquet(null_world / "truth" / "lines.parquet")
    po = pd.read_parquet(null_world / "truth" / "potential_outcomes.parquet")
    assigned = po[po["assigned"]].merge(lines[["line_id", "cancer", "line", "prognostic_index"]])
    nsclc = assigned[(assigned["cancer"] == "nsclc") & (assigned["line"] == 1)]
    pem = nsclc[nsclc["drug"] == "pembrolizumab"]
    chemo = nsclc[nsclc["drug"] == "platinum_doublet"]
    # the truth: no drug effect at all in the null world
    np.testing.assert_allclose(
        po.groupby("line_id")["p_response"].agg(np.ptp).to_numpy(), 0.0, atol=1e-12
    )
    # yet pembrolizumab patients are healthier (ECOG drives both choice and outcome)
    naive = pem["p_response"].mean() - chemo["p_response"].mean()
    se = np.sqrt(pem["p_response"].var() / len(pem) + chemo["p_response"].var() / len(chemo))
    assert naive > 3 * se
    assert pem["prognostic_index"].mean() < chemo["prognostic_index"].mean()


def test_biomarker_testing_is_missing_not_at_random(world):
    lines = pd.read_parquet(world / "truth" / "lines.parquet")
    meas = pd.read_parquet(world / "omop" / "measurement.parquet")
    tested = set(meas.loc[meas["measurement_source_value"] == "BRCA", "person_id"])
    breast = lines[(lines["cancer"] == "breast") & (lines["line"] == 1)].copy()
    breast["tested"] = breast["person_id"].isin(tested)
    rate = breast.groupby("bm_brca")["tested"].mean()
    assert rate[1.0] > rate[0.0] + 0.05  # spec: mnar 0.8 for BRCA in breast


def test_sponsored_sites_over_prescribe_the_cdk46_inhibitor(world):
    import json

    meta = json.loads((world / "truth" / "world.json").read_text())
    lines = pd.read_parquet(world / "truth" / "lines.parquet")
    breast = lines[lines["cancer"] == "breast"].copy()
    sponsored = np.array(meta["site_sponsored"], dtype=bool)
    breast["sponsored"] = sponsored[breast["care_site_id"] - 1]
    share = breast.groupby("sponsored")["drug"].apply(lambda d: (d == "palbociclib").mean())
    assert share[True] > share[False] + 0.1


def test_null_world_potential_outcomes_do_not_depend_on_the_drug(null_world):
    po = pd.read_parquet(null_world / "truth" / "potential_outcomes.parquet")
    spread = po.groupby("line_id")[["p_response", "pfs_log_hazard", "p_toxicity"]].agg(np.ptp)
    assert float(spread.to_numpy().max()) == pytest.approx(0.0, abs=1e-12)


def test_every_line_starts_before_the_end_of_observation(world):
    ep = pd.read_parquet(world / "omop" / "episode.parquet")
    op = pd.read_parquet(world / "omop" / "observation_period.parquet")
    lines = ep[ep["episode_source_value"] == "treatment line"].merge(op, on="person_id")
    assert (lines["episode_start_date"] < lines["observation_period_end_date"]).all()
    death = pd.read_parquet(world / "omop" / "death.parquet")
    obs = pd.read_parquet(world / "omop" / "observation.parquet").merge(death, on="person_id")
    assert (obs["observation_date"] <= obs["death_date"]).all()


def test_parquet_is_written_in_bounded_row_groups(tmp_path, default_spec):
    generate(default_spec, 2500, seed=3, out=tmp_path, chunk_size=1000)
    meta = pq.ParquetFile(tmp_path / "omop" / "person.parquet").metadata
    assert meta.num_row_groups == 3
    assert meta.num_rows == 2500


def test_a_minimal_custom_spec_works(tmp_path):
    from oncorwe.cohort.spec import Spec

    spec = Spec.model_validate(
        {
            "name": "one-cancer",
            "study": {"start": "2020-01-01", "end": "2023-12-31"},
            "populations": {"a": {"share": 0.5}, "b": {"share": 0.5}},
            "hospitals": {"count": 2},
            "biomarkers": {"M": "binary"},
            "cancers": {
                "x": {
                    "share": 1.0,
                    "stage": {"IV": 1.0},
                    "standard_of_care": {1: "chemo"},
                    "response_rate": 0.3,
                    "median_pfs_months": 6,
                    "toxicity_rate": 0.3,
                    "median_post_progression_months": 6,
                    "biomarkers": {"M": {"prevalence": {"a": 0.5, "b": 0.1}, "test_rate": 0.9}},
                }
            },
            "drugs": {
                "chemo": {"class": "chemotherapy", "indications": {"x": {}}},
                "new": {"class": "targeted", "indications": {"x": {"M": "positive"}}},
            },
            "planted_effects": [
                {"name": "new_m", "drug": "new", "when": {"M": "positive"}, "pfs_log_hazard": -0.5}
            ],
        }
    )
    summary = generate(spec, 800, seed=1, out=tmp_path)
    assert summary.patients == 800
    assert set(summary.drug_lines) == {"chemo", "new"}
