"""Safety hypotheses: subgroups where a drug raises grade >= 3 toxicity (issue 16).

A planted world of one cancer: the drug raises response in BRCA-positive patients and
raises toxicity in EGFR-positive ones (where response is unchanged), and lowers it in
the older patients of another marker. The safety screen must find the EGFR harm with an
interval covering the planted increase, never confirm a subgroup with no harm, and never
call a protective effect a safety signal; its BH family is its own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oncorwe.compute.crossfit import OutcomeData
from oncorwe.effects.discovery import (
    SAFETY,
    DiscoveryConfig,
    PartAnalysis,
    confirm,
    confirm_safety,
    discover,
)

GAIN, HARM, BASE_TOX = 0.30, 0.25, 0.20
FIELDS = ["BRCA", "EGFR", "KRAS"]


def _part(seed: int, n: int = 4000, harm: float = HARM, protect: float = 0.15):
    rng = np.random.default_rng(seed)
    brca, egfr, kras = (rng.random(n) < p for p in (0.25, 0.25, 0.3))
    drug = rng.random(n) < 0.45
    response = rng.random(n) < 0.3 + GAIN * (brca & drug)
    tox_p = BASE_TOX + harm * (egfr & drug) - protect * (kras & ~egfr & drug)
    frame = pd.DataFrame(
        {
            "pid": [f"{seed}-{i}" for i in range(n)],
            "cancer": "x",
            "line": 1,
            "age": rng.normal(60, 10, n),
            "bm_brca": brca.astype(float),
            "bm_egfr": egfr.astype(float),
            "bm_kras": kras.astype(float),
            "treatment": np.where(drug, "drug", "soc"),
        }
    )
    outcomes = [
        OutcomeData("response", response.astype(float), True),
        OutcomeData("toxicity", (rng.random(n) < tox_p).astype(float), True),
    ]
    truth = {"egfr": egfr, "kras_only": kras & ~egfr}
    return frame, outcomes, truth


CFG = DiscoveryConfig(n_splits=2, pairs=False, model_params={"n_estimators": 40, "device": "cpu"})


def _analysis(frame, outcomes, drugs_by_group=None) -> PartAnalysis:
    return PartAnalysis(
        frame,
        treatment="treatment",
        comparator=pd.Series("soc", index=frame.index),
        group_col="cancer",
        strata=["line"],
        covariates=["age", "bm_brca", "bm_egfr", "bm_kras"],
        outcomes=outcomes,
        id_col="pid",
        cfg=CFG,
        drugs_by_group=drugs_by_group,
    )


def _true_harm(h, part_frame, truth) -> float:
    """The planted toxicity risk difference averaged over the hypothesis' rows."""
    mask = h.condition.mask(part_frame)
    return float(np.mean(HARM * truth["egfr"][mask] - 0.15 * truth["kras_only"][mask]))


@pytest.fixture(scope="module")
def parts():
    f1, o1, t1 = _part(1)
    disc = _analysis(f1, o1)
    f2, o2, t2 = _part(2)
    conf = _analysis(f2, o2, drugs_by_group=disc.drugs_by_group)
    return disc, conf, t2


def test_the_planted_harm_is_a_confirmed_safety_hypothesis_with_a_covering_interval(parts):
    disc, conf, truth = parts
    cands = discover(disc, group_col="cancer", fields=FIELDS, cfg=CFG, endpoints=SAFETY)
    safety = confirm_safety(cands, conf, cfg=CFG)
    assert all(h.kind == "safety" and h.primary == "toxicity" for h in safety)
    egfr = [h for h in safety if h.confirmed and h.condition.to_spec().get("EGFR") == "positive"]
    assert egfr, [(h.condition.describe(), h.confirmation) for h in safety]
    for h in egfr:
        c = h.confirmation["toxicity"]
        truth_h = _true_harm(h, conf.frame, truth)
        assert c["ci_low"] <= truth_h <= c["ci_high"], (h.condition.describe(), c, truth_h)
        assert c["q_value"] < CFG.q
    # every confirmed safety hypothesis is a true harm: no subgroup without one
    for h in safety:
        if h.confirmed:
            assert _true_harm(h, conf.frame, truth) > 0, h.condition.describe()


def test_a_protective_effect_is_never_a_safety_candidate(parts):
    disc, _, _ = parts
    cands = discover(disc, group_col="cancer", fields=FIELDS, cfg=CFG, endpoints=SAFETY)
    assert cands
    for h in cands:
        assert h.discovery["toxicity"]["effect"] > 0
        spec = h.condition.to_spec()
        assert not (spec.get("KRAS") == "positive" and spec.get("EGFR") == "negative")


def test_the_safety_family_is_its_own_and_leaves_efficacy_unchanged(parts):
    disc, conf, _ = parts
    eff = confirm(discover(disc, group_col="cancer", fields=FIELDS, cfg=CFG), conf, cfg=CFG)
    assert all(h.kind == "efficacy" for h in eff)
    brca = [h for h in eff if h.confirmed and h.condition.to_spec().get("BRCA") == "positive"]
    assert brca and all(h.primary == "response" for h in brca)
    # the harm-only subgroup is no efficacy finding: its response does not differ
    assert not [
        h
        for h in eff
        if h.confirmed and h.condition.to_spec() == {"cancer": "x", "EGFR": "positive"}
    ]
    safety = confirm_safety(
        discover(disc, group_col="cancer", fields=FIELDS, cfg=CFG, endpoints=SAFETY), conf, cfg=CFG
    )
    # BH within the safety family: its q-values follow from its own p-values alone
    from oncorwe.effects.multiplicity import bh_qvalues

    p = np.array([h.confirmation["toxicity"]["p_value"] for h in safety])
    q = np.array([h.confirmation["toxicity"]["q_value"] for h in safety])
    np.testing.assert_allclose(q, bh_qvalues(p))


def test_a_world_without_harm_confirms_no_safety_hypothesis():
    f1, o1, _ = _part(11, harm=0.0, protect=0.0)
    disc = _analysis(f1, o1)
    f2, o2, _ = _part(12, harm=0.0, protect=0.0)
    conf = _analysis(f2, o2, drugs_by_group=disc.drugs_by_group)
    safety = confirm_safety(
        discover(disc, group_col="cancer", fields=FIELDS, cfg=CFG, endpoints=SAFETY), conf, cfg=CFG
    )
    assert not [h for h in safety if h.confirmed]
