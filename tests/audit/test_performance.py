"""Performance audits on simulated predictors with known calibration per group."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from oncorwe.audit import performance_by_group, survival_performance_by_group
from oncorwe.models.metrics import binary_metrics, harrell_c

N = 20_000
POPULATIONS = np.array(["a", "b", "c", "d", "e"])
SITES = np.array([f"H{i:02d}" for i in range(8)])


def _cohort(seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Risks p, outcomes y ~ Bernoulli(p): a perfectly calibrated predictor."""
    rng = np.random.default_rng(seed)
    p = expit(rng.normal(-0.8, 1.0, N))
    y = (rng.random(N) < p).astype(int)
    groups = {"population": rng.choice(POPULATIONS, N), "site": rng.choice(SITES, N)}
    return y, p, groups


def test_calibrated_predictor_is_calibrated_in_every_group_and_never_flagged():
    y, p, groups = _cohort(0)
    out = performance_by_group(y, p, groups)
    assert len(out) == 1 + len(POPULATIONS) + len(SITES)
    assert out["observed_expected"].between(0.9, 1.1).all()
    assert out["calibration_slope"].between(0.8, 1.2).all()
    assert not out["flagged"].any()


def test_predictor_halved_in_one_population_flags_that_population_only():
    y, p, groups = _cohort(1)
    shown = np.where(groups["population"] == "c", 0.5 * p, p)
    out = performance_by_group(y, shown, groups)
    flagged = out.loc[out.flagged, ["grouping", "group"]].to_records(index=False).tolist()
    assert flagged == [("population", "c")]
    row = out.set_index(["grouping", "group"]).loc[("population", "c")]
    assert row.observed_expected == pytest.approx(2.0, rel=0.1)
    assert row.flag_calibration and not row.flag_auc  # a monotone distortion keeps AUC


def test_noise_predictor_in_one_site_flags_its_auc():
    y, p, groups = _cohort(2)
    rng = np.random.default_rng(3)
    at = groups["site"] == "H03"
    shown = p.copy()
    shown[at] = rng.permutation(p[at])  # same calibration in the large, no discrimination
    out = performance_by_group(y, shown, groups).set_index(["grouping", "group"])
    row = out.loc[("site", "H03")]
    assert row.flag_auc and not row.flag_calibration
    assert row.auc_gap > 0.15
    assert out.flagged.sum() == 1


def test_group_metrics_are_those_of_models_metrics():
    y, p, groups = _cohort(4)
    out = performance_by_group(y, p, groups).set_index(["grouping", "group"])
    sel = groups["site"] == "H05"
    ref = binary_metrics(y[sel], p[sel])
    got = out.loc[("site", "H05")]
    assert got.n == sel.sum() and got.events == y[sel].sum()
    for k, v in ref.items():
        assert got[k] == pytest.approx(v, rel=1e-9), k
    assert out.loc[("overall", "all"), "auc"] == pytest.approx(binary_metrics(y, p)["auc"])


def test_small_groups_and_groups_with_few_events_are_suppressed_but_kept():
    y, p, groups = _cohort(5)
    pop = groups["population"].astype(object)
    pop[:8] = "tiny"  # 8 rows
    rare = np.flatnonzero(pop == "a")[:200]
    pop[rare] = "rare"  # 200 rows, events forced to 5
    y = y.copy()
    y[rare] = 0
    y[rare[:5]] = 1
    pop[-1] = None  # a missing label is left out of the grouping
    out = performance_by_group(y, p, {"population": pop}, min_cell=11)
    out = out.set_index("group")
    for g in ("tiny", "rare"):
        row = out.loc[g]
        assert row.suppressed and not row.flagged
        assert pd.isna(row.n) and pd.isna(row.events) and np.isnan(row.auc)
        assert np.isnan(row.observed_expected)
    assert out.loc[["a", "b", "c", "d", "e"], "n"].sum() == N - 8 - 200 - 1


def test_performance_by_group_names_a_misfit_grouping():
    y, p, groups = _cohort(6)
    with pytest.raises(ValueError, match="groups\\['site'\\]"):
        performance_by_group(y, p, {"site": groups["site"][:-1]})
    with pytest.raises(ValueError, match="oe_range"):
        performance_by_group(y, p, groups, oe_range=(1.2, 1.5))


# --------------------------------------------------------------------------- survival
def _survival(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 6000
    risk = rng.normal(size=n)
    t_event = rng.exponential(np.exp(-risk))  # hazard exp(risk): higher risk, earlier event
    t_cens = rng.exponential(2.0, n)
    event = (t_event <= t_cens).astype(int)
    return event, np.minimum(t_event, t_cens), risk, rng.choice(SITES[:4], n)


def test_survival_c_per_group_is_harrell_c_and_flags_a_noise_site():
    event, time, risk, site = _survival(7)
    rng = np.random.default_rng(8)
    shown = np.where(site == "H02", rng.normal(size=site.size), risk)
    out = survival_performance_by_group(event, time, shown, {"site": site})
    out = out.set_index("group")
    for g in ("H00", "H01", "H02", "H03"):
        sel = site == g
        assert out.loc[g, "c_index"] == pytest.approx(harrell_c(event[sel], time[sel], shown[sel]))
    assert out.loc["all", "c_index"] == pytest.approx(harrell_c(event, time, shown))
    assert out.loc["H00", "c_index"] > 0.65 and abs(out.loc["H02", "c_index"] - 0.5) < 0.05
    assert out.index[out.flagged].tolist() == ["H02"]


def test_survival_performance_suppresses_groups_with_few_events():
    event, time, risk, site = _survival(9)
    event = event.copy()
    event[site == "H01"] = 0
    out = survival_performance_by_group(event, time, risk, site).set_index("group")
    assert out.loc["H01", "suppressed"] and np.isnan(out.loc["H01", "c_index"])
    assert pd.isna(out.loc["H01", "n"]) and not out.loc["H01", "flagged"]
