"""What an emulation's result shows when it leaves the platform (publish_emulation).

The property: after publishing, no count under the threshold is shown, and none can be
given back by the sums the published numbers obey (each at-risk row is its events, its
censorings and the next row; each arm's histogram bins are its eligible rows; the arms
and events add up). Checked on emulations of generated small worlds, by an attacker
that solves every sum with one unknown until nothing more follows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oncorwe.pipeline.validation import publish_emulation
from oncorwe.trials.emulation import emulate

MIN_CELL = 11


def _world(n: int, seed: int, p_treat: float, p_flag: float = 0.15) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    flag = rng.random(n) < p_flag  # a 0/1 marker: its level counts can be small in an arm
    t = rng.random(n) < 1 / (1 + np.exp(-(np.log(p_treat / (1 - p_treat)) + 0.5 * x)))
    time = rng.exponential(12 * np.exp(0.3 * t - 0.2 * x))
    cens = rng.uniform(2, 30, n)
    return pd.DataFrame(
        {
            "arm": np.where(t, "drug", "soc"),
            "x": x,
            "flag": flag.astype(int),
            "time": np.minimum(time, cens),
            "event": (time <= cens).astype(int),
            "response": (rng.random(n) < 0.3 + 0.1 * t).astype(int),
        }
    )


def _emulated(frame: pd.DataFrame) -> dict:
    res = emulate(
        frame,
        treatment="arm",
        treated_value="drug",
        control_value="soc",
        time="time",
        event="event",
        covariates=["x", "flag"],
        response="response",
        horizon_months=12.0,
        n_splits=2,
        seed=0,
    )
    return res.to_dict()


def _equations(em: dict, raw: dict) -> tuple[dict, list[tuple[str, list[str]]]]:
    """Every count cell (raw value) and the sums among them as ``(total, parts)``."""
    cells: dict[str, int] = {}
    eqs: list[tuple[str, list[str]]] = []
    for k in ("n_treated", "n_control", "events_treated", "events_control", "events"):
        cells[k] = raw[k]
    eqs.append(("events", ["events_treated", "events_control"]))
    for arm in ("treated", "control"):
        cells[f"rest_{arm}"] = raw[f"n_{arm}"] - raw[f"events_{arm}"]
        eqs.append((f"n_{arm}", [f"events_{arm}", f"rest_{arm}"]))
        table = raw["at_risk"][arm]
        m = len(table["n_at_risk"])
        for i in range(m):
            for col in ("n_at_risk", "events", "n_censored"):
                cells[f"{arm}.{col}.{i}"] = table[col][i]
            nxt = [f"{arm}.n_at_risk.{i + 1}"] if i + 1 < m else []
            eqs.append(
                (f"{arm}.n_at_risk.{i}", [f"{arm}.events.{i}", f"{arm}.n_censored.{i}", *nxt])
            )
        if table["n_at_risk"][0] == raw[f"n_{arm}"]:
            eqs.append((f"n_{arm}", [f"{arm}.n_at_risk.0"]))
        hist = raw["score_histogram"][arm]
        cells[f"{arm}.eligible"] = int(sum(hist["propensity_counts"]))
        for col in ("propensity_counts", "preference_counts"):
            keys = [f"{arm}.{col}.{i}" for i in range(len(hist[col]))]
            cells.update(zip(keys, hist[col], strict=True))
            eqs.append((f"{arm}.eligible", keys))
    return cells, eqs


def _shown(em: dict) -> dict[str, int | None]:
    out: dict[str, int | None] = {k: em[k] for k in ("n_treated", "n_control", "events")}
    out |= {k: em[k] for k in ("events_treated", "events_control")}
    for arm in ("treated", "control"):
        out[f"rest_{arm}"] = None  # never published
        out[f"{arm}.eligible"] = None
        for col in ("n_at_risk", "events", "n_censored"):
            for i, v in enumerate(em["at_risk"][arm][col]):
                out[f"{arm}.{col}.{i}"] = v
        for col in ("propensity_counts", "preference_counts"):
            for i, v in enumerate(em["score_histogram"][arm][col]):
                out[f"{arm}.{col}.{i}"] = v
    return out


def _attack(known: dict[str, int | None], cells: dict, eqs: list) -> dict[str, int | None]:
    """What follows from the shown cells: solve each sum with exactly one unknown, repeat."""
    known = dict(known)
    changed = True
    while changed:
        changed = False
        for total, parts in eqs:
            group = [total, *parts]
            unknown = [c for c in group if known.get(c) is None]
            if len(unknown) != 1:
                continue
            c = unknown[0]
            if c == total:
                known[c] = sum(known[p] for p in parts)
            else:
                known[c] = known[total] - sum(known[p] for p in parts if p != c)
            assert known[c] == cells[c]  # the sums are the data's own
            changed = True
    return known


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(200, 600),
    seed=st.integers(0, 10_000),
    p_treat=st.floats(0.2, 0.5),
)
def test_no_small_count_is_shown_or_follows_from_the_shown_ones(n, seed, p_treat):
    import copy

    raw = _emulated(_world(n, seed, p_treat))
    em = copy.deepcopy(raw)
    publish_emulation(em, MIN_CELL)
    cells, eqs = _equations(em, raw)
    shown = _shown(em)
    for k, v in shown.items():
        assert v is None or v >= MIN_CELL, k
        assert v is None or v == cells[k], k
    derived = _attack(shown, cells, eqs)
    leaked = {k: v for k, v in derived.items() if v is not None and v < MIN_CELL}
    assert leaked == {}
    # the curves stop where few are at risk, and carry no at-risk numbers of their own
    for arm in ("treated", "control"):
        curve = em["km"][arm]
        assert "n_at_risk" not in curve
        at_risk = np.asarray(raw["km"][arm]["n_at_risk"])
        s = np.array([np.nan if v is None else v for v in curve["survival"]], float)
        assert np.isnan(s[at_risk < MIN_CELL]).all()
        assert np.isfinite(s[at_risk >= MIN_CELL]).all()


def test_a_rare_level_hides_both_arms_proportions_but_keeps_the_smd():
    raw = _emulated(_world(400, 3, 0.3, p_flag=0.04))
    em = {**raw, "balance": [dict(b) for b in raw["balance"]]}
    publish_emulation(em, MIN_CELL)
    rows = {b["covariate"]: b for b in em["balance"]}
    before = {b["covariate"]: b for b in raw["balance"]}
    flag = next(c for c in rows if c.startswith("flag"))
    r, b = rows[flag], before[flag]
    small = min(b["n_level_treated"], b["n_level_control"]) < MIN_CELL
    assert small  # 4 % of about 120 treated rows is under the threshold
    assert r["n_level_treated"] is None and r["n_level_control"] is None
    assert r["mean_treated_before"] is None and r["mean_control_before"] is None
    assert r["smd_before"] == pytest.approx(b["smd_before"])
    x = rows["x"]  # continuous: its means stay, its counts of observed rows are large
    assert x["mean_treated_before"] == pytest.approx(before["x"]["mean_treated_before"])
    assert x["n_treated"] == before["x"]["n_treated"]


def test_publishing_changes_no_estimate():
    raw = _emulated(_world(500, 1, 0.4))
    em = {**raw}
    publish_emulation(em, MIN_CELL)
    for k in ("hazard_ratio", "ci_low", "ci_high", "rmst_difference", "risk_difference"):
        if k in raw:
            assert em[k] == raw[k], k
