"""The pieces of subgroup discovery, against analytic truths."""

from __future__ import annotations

import numpy as np
import pandas as pd

from oncorwe.effects.aipw import aipw_scores
from oncorwe.effects.discovery import aipw_psi, clause_specs, ipcw_rmst, tree_rules


def test_ipcw_rmst_is_unbiased_for_the_exponential_rmst():
    rng = np.random.default_rng(0)
    n, lam, mu, tau = 200_000, 0.1, 0.03, 12.0
    t = rng.exponential(1 / lam, n)
    c = rng.exponential(1 / mu, n)
    y = ipcw_rmst(np.minimum(t, c), (t <= c).astype(float), tau)
    truth = (1 - np.exp(-lam * tau)) / lam  # int_0^tau exp(-lam t) dt
    se = y.std() / np.sqrt(n)
    assert abs(y.mean() - truth) < 4 * se
    # ignoring censoring would be biased downwards
    naive = np.minimum(np.minimum(t, c), tau).mean()
    assert naive < truth - 10 * se


def test_aipw_psi_equals_the_two_arm_formula():
    rng = np.random.default_rng(1)
    n = 500
    arm = rng.integers(0, 3, n)
    e = rng.dirichlet([2, 2, 2], n)
    m = rng.random((n, 3))
    y = rng.integers(0, 2, n).astype(float)
    psi = aipw_psi(y, arm, 2, e, m, eps=0.01)
    two = (arm == 2) | (arm == 0)
    e2 = np.clip(e[:, 2] / (e[:, 2] + e[:, 0]), 0.01, 0.99)
    ref = aipw_scores(
        y[two], (arm[two] == 2).astype(float), e2[two], m[two, 2], m[two, 0], eps=0.01
    )
    np.testing.assert_allclose(psi[two], ref)
    assert np.isnan(psi[~two]).all()


def test_missing_outcomes_get_no_score():
    y = np.array([1.0, np.nan, 0.0])
    psi = aipw_psi(y, np.array([1, 1, 0]), 1, np.full((3, 2), 0.5), np.full((3, 2), 0.5))
    assert np.isnan(psi[1]) and not np.isnan(psi[0]) and not np.isnan(psi[2])


def test_clause_specs_reads_markers_tiers_lines_and_categories():
    frame = pd.DataFrame(
        {
            "bm_egfr": [1.0, 0.0, np.nan] * 40,
            "bm_pdl1_tps": [80.0, 10.0, 0.0] * 40,
            "population": ["a", "b", "a"] * 40,
            "line": [1, 2, 3] * 40,
        }
    )
    specs = clause_specs(frame, ["EGFR", "PDL1_TPS", "population", "line"], min_rows=20)
    assert ("EGFR", "positive") in specs and ("EGFR", "negative") in specs
    assert ("PDL1_TPS", {"min": 50}) in specs and ("PDL1_TPS", {"max": 0}) in specs
    assert ("population", "a") in specs and ("line", {"min": 2}) in specs


def test_tree_rules_propose_the_planted_conjunction():
    rng = np.random.default_rng(2)
    n = 4000
    X = rng.random((n, 4)) < 0.5
    target = 2.0 * (X[:, 0] & X[:, 2]) + rng.normal(0, 0.5, n)
    names = [("A", "positive"), ("B", "positive"), ("C", "positive"), ("D", "positive")]
    rules = tree_rules(X, names, target, min_leaf=100, depth=2)
    assert {"A": "positive", "C": "positive"} in rules


def _part(seed, p_drug_pos, n=3000, *, share_pos=0.2, p_drug_neg=0.33, gain=0.35):
    """One data part: BRCA-positive patients (``share_pos``) gain ``gain`` in response on
    the drug; ``p_drug_pos`` of them get it (``p_drug_neg`` of the others do)."""
    from oncorwe.compute.crossfit import OutcomeData

    rng = np.random.default_rng(seed)
    pos = rng.random(n) < share_pos
    drug = rng.random(n) < np.where(pos, p_drug_pos, p_drug_neg)
    y = (rng.random(n) < 0.3 + gain * (pos & drug)).astype(float)
    frame = pd.DataFrame(
        {
            "pid": [f"{seed}-{i}" for i in range(n)],
            "cancer": "x",
            "line": 2,
            "age": rng.normal(60, 10, n),
            "bm_brca": pos.astype(float),
            "treatment": np.where(drug, "drug", "soc"),
        }
    )
    return frame, [OutcomeData("response", y, True)]


def _analysis(frame, outcomes, cfg, drugs_by_group=None, covariates=("age", "bm_brca")):
    from oncorwe.effects.discovery import PartAnalysis

    return PartAnalysis(
        frame,
        treatment="treatment",
        comparator=pd.Series("soc", index=frame.index),
        group_col="cancer",
        strata=["line"],
        covariates=list(covariates),
        outcomes=outcomes,
        id_col="pid",
        cfg=cfg,
        drugs_by_group=drugs_by_group,
    )


def test_a_signal_the_confirmation_part_cannot_test_is_reported_not_kept():
    from oncorwe.effects.discovery import DiscoveryConfig, _arm_counts, discover

    cfg = DiscoveryConfig(
        n_splits=2, pairs=False, model_params={"n_estimators": 40, "device": "cpu"}
    )
    disc = _analysis(*_part(1, 0.6), cfg)
    # in the confirmation part nearly every BRCA-positive patient gets the drug
    conf = _analysis(*_part(2, 0.97), cfg, drugs_by_group=disc.drugs_by_group)
    plain = discover(disc, group_col="cancer", fields=["BRCA"], cfg=cfg, confirm_part=conf)
    untestable: list = []
    kept = discover(
        disc, group_col="cancer", fields=["BRCA"], cfg=cfg, confirm_part=conf, untestable=untestable
    )
    assert [h.condition.to_spec() for h in kept] == [h.condition.to_spec() for h in plain]
    brca = [h for h in untestable if h.condition.to_spec().get("BRCA") == "positive"]
    assert len(brca) == 1, [h.condition.describe() for h in untestable]
    h = brca[0]
    assert all(k.condition.to_spec().get("BRCA") != "positive" for k in kept)
    # the screen saw the planted gain; the counts are the confirmation part's own
    assert h.primary == "response" and h.discovery["response"]["effect"] > 0.2
    _, n_t, n_c = _arm_counts(h, conf)
    assert h.extras["confirmation_arms"] == {"treated": n_t, "control": n_c}
    assert n_c < cfg.min_arm_rows <= n_t
    # with a confirmation part that can test it, it is a candidate again
    conf_ok = _analysis(*_part(3, 0.6), cfg, drugs_by_group=disc.drugs_by_group)
    again: list = []
    kept_ok = discover(
        disc, group_col="cancer", fields=["BRCA"], cfg=cfg, confirm_part=conf_ok, untestable=again
    )
    assert any(k.condition.to_spec().get("BRCA") == "positive" for k in kept_ok)
    assert not any(k.condition.to_spec().get("BRCA") == "positive" for k in again)


def test_ipcw_rmst_per_censoring_stratum_removes_the_follow_up_bias():
    """Lines started later are followed for less time. With one pooled censoring curve
    their RMST is underestimated (and over-estimated for the others); one curve per
    censoring stratum is unbiased in each; a stratum whose follow-up never reaches the
    horizon cannot be estimated and gets NaN."""
    rng = np.random.default_rng(4)
    n, lam, tau = 300_000, 0.08, 12.0
    stratum = rng.choice(["early", "late", "last_year"], n, p=[0.6, 0.3, 0.1])
    t = rng.exponential(1 / lam, n)  # independent of the stratum
    c = np.select(
        [stratum == "early", stratum == "late"],
        [rng.uniform(20, 60, n), rng.uniform(4, 30, n)],
        rng.uniform(0, 11, n),  # the last year: follow-up under the horizon
    )
    time, event = np.minimum(t, c), (t <= c).astype(float)
    truth = (1 - np.exp(-lam * tau)) / lam
    pooled = ipcw_rmst(time, event, tau)
    per = ipcw_rmst(time, event, tau, strata=stratum)
    assert np.isnan(per[stratum == "last_year"]).all()
    for s in ("early", "late"):
        m = stratum == s
        se = per[m].std() / np.sqrt(m.sum())
        assert abs(per[m].mean() - truth) < 4 * se, s
    # the bias the strata remove: pooled, the late rows are underestimated, the early over
    for s, sign in (("late", -1), ("early", 1)):
        m = stratum == s
        se = pooled[m].std() / np.sqrt(m.sum())
        assert sign * (pooled[m].mean() - truth) > 10 * se, s


def test_overlap_flags_a_covariate_that_records_the_treatment(capsys):
    """A covariate that is the treatment read back separates the arms: the
    propensities of most rows leave [eps, 1 - eps] (two thirds measured) and the
    comparison is flagged. Without it the propensities (a third to 0.6, by BRCA) stay
    inside and nothing is flagged. The nuisance models are discovery's own defaults."""
    from oncorwe.effects.discovery import DiscoveryConfig

    cfg = DiscoveryConfig(n_splits=2, pairs=False, model_params={"device": "cpu"})
    frame, outcomes = _part(5, 0.6)
    clean = _analysis(frame, outcomes, cfg).comparison("x", "drug")
    ok = clean.overlap(cfg.overlap_warn, min_cell=11)
    assert ok["rows"] == len(frame) and not ok["poor_overlap"]
    assert ok["outside_share"] is None or ok["outside_share"] < cfg.overlap_warn
    leaky = frame.assign(on_drug_before=(frame["treatment"] == "drug").astype(float))
    bad = _analysis(leaky, outcomes, cfg, covariates=("age", "bm_brca", "on_drug_before"))
    res = bad.comparison("x", "drug").overlap(cfg.overlap_warn, min_cell=11)
    assert res["poor_overlap"] and res["outside_share"] > 0.5, res
    from oncorwe.pipeline.hypothesis import overlap_summary

    table = overlap_summary(bad, bad, cfg, 11)
    assert table[0]["discovery"] == res and table[0]["confirmation"] == res
    log = capsys.readouterr().out
    assert "WARNING poor overlap, drug vs comparator in x" in log
    # the covariate that separates the arms is named first
    assert table[0]["propensity_drivers"][0]["feature"] == "on_drug_before"
    assert "leans most on: on_drug_before (" in log
    overlap_summary(_analysis(frame, outcomes, cfg), _analysis(frame, outcomes, cfg), cfg, 11)
    assert "WARNING" not in capsys.readouterr().out
    # within a subgroup mask, and small counts withheld with the share made from them
    pos = frame["bm_brca"].to_numpy() == 1
    sub = bad.comparison("x", "drug").overlap(cfg.overlap_warn, mask=pos, min_cell=11)
    assert sub["rows"] == pos.sum() and sub["outside_share"] > 0.5
    tiny = np.zeros(len(frame), dtype=bool)
    tiny[:5] = True
    assert bad.comparison("x", "drug").overlap(0.05, mask=tiny, min_cell=11) == {
        "rows": None,
        "outside_rows": None,
        "outside_share": None,
        "poor_overlap": True,
    }


def test_nuisance_threads_for_large_groups_leave_the_scores_unchanged():
    """A stratum group of at least ``parallel_rows`` rows fits its nuisance models with
    ``threads`` XGBoost threads: the scores are the same as with one."""
    from oncorwe.effects.discovery import DiscoveryConfig

    frame, outcomes = _part(6, 0.6)
    params = {"n_estimators": 40, "device": "cpu"}
    one = _analysis(frame, outcomes, DiscoveryConfig(n_splits=2, model_params=params))
    two = _analysis(
        frame,
        outcomes,
        DiscoveryConfig(n_splits=2, model_params=params, threads=2, parallel_rows=len(frame)),
    )
    a, b = one.comparison("x", "drug"), two.comparison("x", "drug")
    np.testing.assert_allclose(a.psi["response"], b.psi["response"], rtol=1e-6, equal_nan=True)
    assert (a.outside == b.outside).all()


def test_overlap_share_matches_the_planted_propensities():
    """A quarter of the patients (BRCA-positive) almost never get the drug (true
    propensity 0.002), the rest get it half the time: the rows outside [0.01, 0.99] are
    the BRCA-positive ones, and the reported share is theirs."""
    from oncorwe.effects.discovery import DiscoveryConfig

    frame, outcomes = _part(7, 0.002, 40_000, share_pos=0.25, p_drug_neg=0.5, gain=0.0)
    pos = frame["bm_brca"].to_numpy() == 1
    cfg = DiscoveryConfig(n_splits=2, model_params={"device": "cpu"})
    comp = _analysis(frame, outcomes, cfg).comparison("x", "drug")
    res = comp.overlap(cfg.overlap_warn, min_cell=11)
    truly_outside = pos  # true two-arm propensity 0.002 < 0.01; 0.5 inside
    assert (comp.outside == truly_outside).mean() > 0.99  # 1.0 measured
    assert abs(res["outside_share"] - truly_outside.mean()) < 0.01
    assert res["poor_overlap"]
