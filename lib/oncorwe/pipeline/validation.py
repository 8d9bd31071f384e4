"""Track 2, accelerated validation: test each confirmed hypothesis before enrolment.

For each of the top confirmed hypotheses of track 1, on the **validation part** (patients
neither discovery nor confirmation saw):

1. **target-trial emulation** of drug vs the line's comparator in the hypothesis'
   subgroup and strata (new users at the line start, cross-fitted propensity, stabilized
   trimmed IPTW, balance and equipoise diagnostics, weighted Cox HR, RMST and response
   risk difference);
2. **virtual trial**: the two-arm trial that reaches the target power, simulated with the
   emulated control-arm median PFS and hazard ratio, beside Schoenfeld's formula;
3. **adaptive design**: an I-SPY 2 style platform with the subgroup and the rest of the
   cancer type as signatures, response rates from the emulation, operating
   characteristics by simulation;
4. **transport**: a PFS model of the cancer type developed in the majority population and
   validated in the others (discrimination and calibration);
5. a **go / no-go** with its reasons.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oncorwe.core.errors import OncorweError
from oncorwe.core.io import atomic_path, rounded, write_json
from oncorwe.core.paths import Catalog
from oncorwe.core.privacy import (
    DEFAULT_MIN_CELL,
    Sum,
    suppress,
    suppress_related,
    suppressed_label,
)
from oncorwe.core.roles import Roles, read_table, roles_for_analysis_table
from oncorwe.core.rules import Condition
from oncorwe.effects.discovery import HypothesisRecord
from oncorwe.pipeline.hypothesis import sketch_contract, track_trainer, training_summary
from oncorwe.pipeline.params import ComputeParams, Params, ValidationParams
from oncorwe.trials.adaptive import AdaptiveDesign, simulate_adaptive
from oncorwe.trials.design import sample_size_survival, schoenfeld_power
from oncorwe.trials.emulation import emulate
from oncorwe.trials.simulate import SurvivalTrialDesign, find_sample_size, simulate_survival_trial
from oncorwe.trials.transport import transport


@dataclass(frozen=True)
class ValidationConfig:
    """Everything track 2 needs beyond the data (from ``params.yaml`` ``validation``)."""

    top_k: int = 5
    target_power: float = 0.8
    alpha: float = 0.025
    accrual_months: float = 24.0
    followup_months: float = 12.0
    dropout_per_year: float = 0.05
    replicates: int = 4000
    adaptive_trials: int = 1000
    max_patients: int = 2000  # a trial larger than this is not feasible
    horizon_months: float = 12.0
    min_arm_rows: int = 20
    min_cell: int = DEFAULT_MIN_CELL
    threads: int = 2
    seed: int = 0
    training: str = "pooled"  # compute.training: where the propensity and PFS models train
    cluster: str = "local"
    federated: Any = None  # config.FederatedComputeParams


def _log(msg: str) -> None:
    """One progress line on stdout, flushed: a long stage shows where it is."""
    print(f"[oncorwe] {msg}", flush=True)


def arm_column(frame: pd.DataFrame, roles: Roles, drug: str) -> pd.Series:
    """Each row's arm against ``drug``: "treated" for the drug, "control" for the line's
    comparator (standard of care), None for any other drug, which is in neither arm."""
    comp = roles.comparator_of(frame).astype(str)
    t = frame[roles.treatment].astype(str)
    arm = pd.Series(None, index=frame.index, dtype=object)
    arm[t == drug] = "treated"
    arm[(t == comp) & (t != drug)] = "control"
    return arm


def _in_strata(frame: pd.DataFrame, strata: list[dict[str, Any]]) -> np.ndarray:
    """Rows in one of the hypothesis' strata (each a dict column -> value; all rows when
    there are none): the emulation compares the arms where track 1 compared them."""
    if not strata:
        return np.ones(len(frame), dtype=bool)
    keys = list(strata[0])
    have = frame[keys].astype(str).agg("|".join, axis=1)
    want = {"|".join(str(s[k]) for k in keys) for s in strata}
    return have.isin(want).to_numpy()


def emulate_hypothesis(
    frame: pd.DataFrame,
    roles: Roles,
    hyp: HypothesisRecord,
    cfg: ValidationConfig,
    covariates: list[str],
    trainer: Any = None,
) -> dict[str, Any]:
    """Emulate drug vs comparator for one hypothesis on ``frame`` (the validation part)."""
    cond = Condition.parse(hyp.conditions)
    data = frame.assign(_arm=arm_column(frame, roles, hyp.drug))
    eligible = (
        cond.mask(data) & _in_strata(data, list(hyp.strata)) & data["_arm"].notna().to_numpy()
    )
    # new users of either strategy (no prevalent-user bias): a line of a drug the patient
    # had before, or a comparator line right after the drug of interest, is not eligible
    if "prior_same_drug" in data.columns:
        eligible &= ~(data["prior_same_drug"] == 1).to_numpy()
    if "prior_drug" in data.columns:
        eligible &= ~((data["_arm"] == "control") & (data["prior_drug"] == hyp.drug)).to_numpy()
    categorical = [c for c in roles.resolved_categorical(frame) if c in covariates]
    res = emulate(
        data,
        treatment="_arm",
        treated_value="treated",
        control_value="control",
        time=roles.time,
        event=roles.event,
        covariates=covariates,
        categorical=categorical,
        response=roles.response,
        groups=roles.id,
        eligible=eligible,
        propensity="xgboost",
        n_splits=3,
        horizon_months=cfg.horizon_months,
        min_arm_rows=cfg.min_arm_rows,
        n_jobs=1,
        seed=cfg.seed,
        trainer=trainer,
    )
    out = res.to_dict()
    out["treated_value"] = hyp.drug
    out["control_value"] = "comparator (standard of care of the line)"
    return out


def _control_median(em: dict[str, Any]) -> float | None:
    """The control arm's median PFS from the emulation's Kaplan-Meier curve; when the
    curve stays above one half, an exponential through its last point (None when the
    curve is flat at one): the trial design needs a median either way."""
    km = em.get("km", {}).get("control")
    if not km:
        return None
    t, s = np.asarray(km["times"], float), np.asarray(km["survival"], float)
    below = np.flatnonzero(s <= 0.5)
    if len(below):
        return float(t[below[0]])
    # median not reached: extrapolate an exponential through the last point
    if s[-1] < 1 and s[-1] > 0:
        return float(t[-1] * np.log(2) / -np.log(s[-1]))
    return None


def design_trial(em: dict[str, Any], cfg: ValidationConfig) -> dict[str, Any]:
    """The parallel-group trial that reaches the target power for the emulated effect."""
    hr = em.get("hazard_ratio")
    median = _control_median(em)
    if hr is None or median is None or not np.isfinite(hr) or hr >= 1:
        return {"feasible": False, "reason": "no benefit on PFS to power a trial for"}
    dropout = cfg.dropout_per_year / 12.0
    base = SurvivalTrialDesign(
        n_patients=100,
        hr=float(hr),
        control_median_months=median,
        accrual_months=cfg.accrual_months,
        followup_months=cfg.followup_months,
        dropout_hazard=dropout,
        alpha=cfg.alpha,
    )
    formula = sample_size_survival(
        float(hr),
        median,
        cfg.accrual_months,
        cfg.followup_months,
        alpha=cfg.alpha,
        power=cfg.target_power,
        dropout_hazard=dropout,
    )
    if formula["patients"] > 50 * cfg.max_patients:
        return {
            "feasible": False,
            "reason": f"needs about {formula['patients']:.0f} patients",
            "formula_patients": formula["patients"],
            "hazard_ratio": hr,
        }
    search = find_sample_size(base, cfg.target_power, n_replicates=cfg.replicates, seed=cfg.seed)
    n = int(search.n_patients)
    sim = simulate_survival_trial(
        SurvivalTrialDesign(**{**base.__dict__, "n_patients": n}),
        n_replicates=cfg.replicates,
        seed=cfg.seed,
    ).to_dict()
    return {
        "feasible": n <= cfg.max_patients,
        "hazard_ratio": float(hr),
        "control_median_months": median,
        "sample_size": n,
        "power": sim["power"],
        "mean_events": sim["mean_events"],
        "median_duration_months": sim["median_duration_months"],
        "hr_quantiles": sim.get("hr_quantiles"),
        "formula_events": formula["events"],
        "formula_patients": formula["patients"],
        "formula_power_at_simulated_events": float(
            schoenfeld_power(float(hr), sim["mean_events"], alpha=cfg.alpha)
        ),
        "accrual_months": cfg.accrual_months,
        "followup_months": cfg.followup_months,
    }


def adaptive_for(
    em_sub: dict[str, Any], em_rest: dict[str, Any] | None, cfg: ValidationConfig
) -> dict:
    """I-SPY 2 style platform: one experimental arm, signatures = subgroup and the rest."""
    p0 = em_sub.get("risk_control")
    p1 = em_sub.get("risk_treated")
    if p0 is None or p1 is None:
        return {"available": False, "reason": "no response data"}
    rates = [[p0], [p1]]
    prev = [1.0]
    if em_rest and em_rest.get("risk_control") is not None:
        rates = [[p0, em_rest["risk_control"]], [p1, em_rest["risk_treated"]]]
        prev = [0.5, 0.5]
    rates = np.clip(np.array(rates, float), 0.01, 0.99)
    design = AdaptiveDesign(response_rates=rates, prevalence=prev)
    res = simulate_adaptive(design, n_trials=cfg.adaptive_trials, seed=cfg.seed)
    null = AdaptiveDesign(response_rates=np.vstack([rates[0], rates[0]]), prevalence=prev)
    res0 = simulate_adaptive(null, n_trials=cfg.adaptive_trials, seed=cfg.seed + 1)
    return {
        "available": True,
        "signatures": ["subgroup", "rest of cancer type"][: len(prev)],
        "response_rates": rates.tolist(),
        "prob_graduation": res.prob_graduation[0].tolist(),
        "prob_futility": float(res.prob_futility[0]),
        "expected_sample_size": float(res.expected_sample_size),
        "null_prob_graduate_any": float(res0.prob_graduate_any[0]),
        "n_trials": cfg.adaptive_trials,
    }


def transport_for(
    frame: pd.DataFrame,
    roles: Roles,
    hyp: HypothesisRecord,
    covariates: list[str],
    cfg: ValidationConfig,
    trainer: Any = None,
) -> dict:
    """PFS model of the hypothesis' cancer type on ``frame`` (the validation part):
    developed in the majority population, validated in the others."""
    if not roles.population:
        return {"available": False, "reason": "no population column"}
    group = hyp.cancer
    data = frame[Condition.parse(group).mask(frame)] if group else frame
    pops = data[roles.population].astype(str)
    major = pops.value_counts().index[0]
    train, test = data[pops == major], data[pops != major]
    if len(test) < 50 or test[roles.event].sum() < 20:
        return {"available": False, "reason": "too few patients outside the majority population"}
    cov = [c for c in covariates if c != roles.population]
    categorical = [c for c in roles.resolved_categorical(frame) if c in cov]
    res = transport(
        train,
        test,
        time=roles.time,
        event=roles.event,
        covariates=cov,
        categorical=categorical,
        model="xgboost-cox",
        horizon_months=cfg.horizon_months,
        groups=roles.id,
        n_jobs=1,
        seed=cfg.seed,
        trainer=trainer,
    )
    out = res.to_dict()
    out.update({"available": True, "train_population": major, "test_population": "all others"})
    return out


def decide(hyp: HypothesisRecord, em: dict, trial: dict) -> tuple[str, list[str]]:
    """Go when the emulation agrees in direction with a CI excluding no effect, the
    diagnostics pass and a feasible trial reaches the target power."""
    reasons = []
    primary = hyp.primary_endpoint
    if primary == "response":
        lo, hi = em.get("rd_ci_low"), em.get("rd_ci_high")
        want = hyp.confirmed_effect("response") > 0
        ok = lo is not None and ((lo > 0) if want else (hi < 0))
        reasons.append(
            f"emulated response risk difference CI [{lo:.3f}, {hi:.3f}]"
            if lo is not None
            else "no response estimate"
        )
    else:
        lo, hi = em.get("ci_low"), em.get("ci_high")
        want = hyp.confirmed_effect("pfs") > 0
        ok = lo is not None and ((hi < 1) if want else (lo > 1))
        reasons.append(
            f"emulated PFS hazard ratio CI [{lo:.2f}, {hi:.2f}]"
            if lo is not None
            else "no PFS estimate"
        )
    if not ok:
        reasons.append("the held-out emulation does not confirm the direction")
    if not em.get("diagnostics_pass"):
        reasons += [f"diagnostic: {r}" for r in em.get("diagnostic_reasons", [])]
    if not trial.get("feasible"):
        reasons.append(f"trial: {trial.get('reason', 'needs more than the feasible size')}")
    go = ok and bool(em.get("diagnostics_pass")) and bool(trial.get("feasible"))
    return ("go" if go else "no-go"), reasons


def run_validation(
    frame: pd.DataFrame,
    roles: Roles,
    hypotheses: list[HypothesisRecord],
    parts: pd.DataFrame,
    cfg: ValidationConfig,
    out_path: str | Path,
    safety: list[HypothesisRecord] = (),
) -> dict[str, Any]:
    """Validate the top confirmed hypotheses on the validation part; write ``out_path``.
    ``safety`` are track 1's safety hypotheses: a confirmed one of the same drug and
    cancer type goes with the decision as a reason (:func:`safety_reasons`).

    The propensity and PFS models train where ``cfg.training`` says (pooled in this
    process, or one federated session / Dask client for the stage)."""
    with track_trainer(cfg, frame, roles) as trainer:
        return _run_validation(
            frame, roles, hypotheses, parts, cfg, out_path, trainer, list(safety)
        )


def _run_validation(
    frame, roles, hypotheses, parts, cfg, out_path, trainer, safety
) -> dict[str, Any]:
    """Track 2's steps in order (the wiring); :func:`run_validation` holds the stage
    trainer around them."""
    t0 = time.perf_counter()
    valid = validation_part(frame, roles, parts)
    covariates = validation_covariates(frame, roles)
    chosen = choose_hypotheses(hypotheses, cfg.top_k)
    n_valid = suppress(len(valid), cfg.min_cell)
    shown = suppressed_label(cfg.min_cell) if n_valid is None else n_valid
    _log(f"validation: {len(chosen)} hypotheses on {shown} held-out rows")
    sketch_contract(trainer, [frame], roles, covariates)
    results = []
    for h in chosen:
        entry = validate_hypothesis(valid, roles, h, cfg, covariates, trainer)
        signals = safety_reasons(h, safety)
        entry["safety_signals"] = [sig for sig, _ in signals]
        entry.setdefault("reasons", []).extend(text for _, text in signals)
        results.append(entry)
        if "emulation" in entry:
            _log(
                f"validation: #{h.rank} {h.drug} -> {entry['decision']} "
                f"({time.perf_counter() - t0:.0f}s)"
            )
    payload = validation_payload(results, cfg, trainer)
    write_json(out_path, payload)
    return rounded(payload)


def validation_part(frame: pd.DataFrame, roles: Roles, parts: pd.DataFrame) -> pd.DataFrame:
    """The rows of the patients track 1 left in the validation part (``parts``: patient
    id -> part), indexed 0..n-1: neither discovery nor confirmation saw them, so they can
    test what those parts found."""
    ids = frame[roles.id].astype(str)
    part = ids.map(dict(zip(parts["id"].astype(str), parts["part"], strict=False)))
    return frame[(part == "validation").to_numpy()].reset_index(drop=True)


def validation_covariates(frame: pd.DataFrame, roles: Roles) -> list[str]:
    """The emulation's and transport's covariates: the cohort's, plus the hospital
    (hospitals differ in the drugs they prefer and in their outcomes: it confounds)."""
    covariates = roles.resolved_covariates(frame)
    if roles.hospital and roles.hospital not in covariates:
        covariates = [*covariates, roles.hospital]
    return covariates


def safety_reasons(
    h: HypothesisRecord, safety: list[HypothesisRecord]
) -> list[tuple[dict[str, Any], str]]:
    """Track 1's confirmed safety hypotheses about ``h``'s drug in ``h``'s cancer type,
    each as (its summary with the toxicity estimate, the reason a reader sees). A go
    stays a go (the efficacy evidence is what it is), but the trial it proposes must
    monitor that toxicity: the reason says where and how much."""
    out = []
    for s in safety:
        if not s.confirmed or s.drug != h.drug or s.cancer != h.cancer:
            continue
        c = s.confirmation.get("toxicity", {})
        sig = {
            **s.summary(),
            "toxicity_risk_difference": c.get("effect"),
            "ci_low": c.get("ci_low"),
            "ci_high": c.get("ci_high"),
            "q_value": c.get("q_value"),
        }
        text = (
            f"safety: track 1 confirmed more grade >= 3 toxicity on {s.drug} in {s.subgroup} "
            f"(risk difference {c.get('effect', float('nan')):+.3f}, 95% CI "
            f"[{c.get('ci_low', float('nan')):+.3f}, {c.get('ci_high', float('nan')):+.3f}]); "
            "a trial must monitor it"
        )
        out.append((sig, text))
    return out


def choose_hypotheses(hypotheses: list[HypothesisRecord], top_k: int) -> list[HypothesisRecord]:
    """The best-ranked confirmed hypothesis of each drug (and cancer type), at most
    ``top_k``, in rank order: five variants of one signal would tell less than five
    signals."""
    chosen, seen = [], set()
    for h in hypotheses:
        key = (h.drug, str(h.conditions.get("cancer")))
        if h.confirmed and key not in seen and len(chosen) < top_k:
            chosen.append(h)
            seen.add(key)
    return chosen


def validate_hypothesis(
    valid: pd.DataFrame,
    roles: Roles,
    h: HypothesisRecord,
    cfg: ValidationConfig,
    covariates: list[str],
    trainer: Any,
) -> dict[str, Any]:
    """One hypothesis through track 2: emulate it (and the rest of its cancer type),
    design the trial and the adaptive platform, transport the PFS model, decide. An
    emulation that cannot be formed is a no-go with its reason."""
    entry: dict[str, Any] = h.summary()
    try:
        em = emulate_hypothesis(valid, roles, h, cfg, covariates, trainer)
    except ValueError as err:
        entry.update({"decision": "no-go", "reasons": [f"emulation impossible: {err}"]})
        return entry
    rest = emulate_rest(valid, roles, h, cfg, covariates, trainer)
    trial = design_trial(em, cfg)
    adaptive = adaptive_for(em, rest, cfg)
    tr = transport_or_reason(valid, roles, h, covariates, cfg, trainer)
    decision, reasons = decide(h, em, trial)
    publish_emulation(em, cfg.min_cell)
    suppress_transport_counts(tr, cfg.min_cell)
    entry.update(
        {
            "emulation": em,
            "trial": trial,
            "adaptive": adaptive,
            "transport": tr,
            "decision": decision,
            "reasons": reasons,
        }
    )
    return entry


def emulate_rest(
    valid: pd.DataFrame,
    roles: Roles,
    h: HypothesisRecord,
    cfg: ValidationConfig,
    covariates: list[str],
    trainer: Any,
) -> dict[str, Any] | None:
    """The same emulation in the rest of the hypothesis' cancer type (outside its
    subgroup): the adaptive platform's second signature. None when the hypothesis is the
    whole cancer type, names none, or the rest cannot be emulated."""
    cancer = h.cancer
    if not cancer or len(h.conditions) <= 1:
        return None
    rest_cond = Condition.parse(cancer).mask(valid) & ~Condition.parse(h.conditions).mask(valid)
    try:
        return emulate_hypothesis(
            valid[rest_cond].reset_index(drop=True),
            roles,
            replace(h, conditions=cancer),
            cfg,
            covariates,
            trainer,
        )
    except ValueError:
        return None


def transport_or_reason(
    valid: pd.DataFrame,
    roles: Roles,
    h: HypothesisRecord,
    covariates: list[str],
    cfg: ValidationConfig,
    trainer: Any,
) -> dict[str, Any]:
    """:func:`transport_for` on the validation part only, as every step of track 2:
    discovery and confirmation rows shaped the hypothesis and must not score the model
    that tests it. A model that cannot be fitted is reported unavailable, with why."""
    try:
        return transport_for(valid, roles, h, covariates, cfg, trainer)
    except ValueError as err:
        return {"available": False, "reason": str(err)}


EMULATION_COUNTS = (
    "n_treated",
    "n_control",
    "events",
    "events_treated",
    "events_control",
    "n_eligible",
    "n_trimmed",
    "n_response",
)
#: How the emulation's counts add up: the eligible rows are the arms and the trimmed
#: ones, the events those of the two arms, and each arm's rows its events and the rest.
EMULATION_SUMS = (
    Sum("n_eligible", ("n_treated", "n_control", "n_trimmed"), exhaustive=True),
    Sum("events", ("events_treated", "events_control"), exhaustive=True),
    Sum("n_treated", ("events_treated",)),
    Sum("n_control", ("events_control",)),
)


def publish_emulation(em: dict[str, Any], min_cell: int) -> None:
    """Make an emulation's result fit to leave the platform, in place, after the decision
    has read its estimates: every count under ``min_cell`` withheld (None) with each
    that would give a withheld one back, as one set of related counts.

    - the arms, events and trimming (:data:`EMULATION_SUMS`); a structural zero (no
      trimmed row) is no patient and is kept;
    - the at-risk table: ``n_at_risk[k] = events[k] + n_censored[k] + n_at_risk[k + 1]``
      (the last interval open), its first row the arm's analysed rows and its events the
      arm's events when they are;
    - the score histograms: each arm's bins add up to its eligible rows;
    - the baseline table: a proportion over a small cell (the rows with a level, or
      without it) is withheld with its count, and the other arm's proportion with it,
      so that the SMD, which stays (the balance diagnostic), cannot give it back;
    - the Kaplan-Meier curves end where fewer than ``min_cell`` rows are at risk (the
      steps of the tail would be single patients), and their at-risk numbers leave
      only in the at-risk table.
    """
    counts: dict[str, int | None] = {k: em[k] for k in EMULATION_COUNTS if k in em}
    sums = list(EMULATION_SUMS)
    if counts.get("n_trimmed") == 0:
        del counts["n_trimmed"]
        sums[0] = Sum("n_eligible", ("n_treated", "n_control"), exhaustive=True)
    counts, risk_sums = _at_risk_cells(em, counts)
    counts, hist_sums = _histogram_cells(em, counts)
    shown = suppress_related(counts, [*sums, *risk_sums, *hist_sums], min_cell)
    em.update({k: shown[k] for k in EMULATION_COUNTS if k in shown})
    ps = em.get("propensity_summary")
    if isinstance(ps, dict) and "n_trimmed" in ps:
        ps["n_trimmed"] = em.get("n_trimmed")
    for arm in ("treated", "control"):
        table = em.get("at_risk", {}).get(arm)
        for col in ("n_at_risk", "events", "n_censored") if table else ():
            table[col] = [shown[f"at_risk.{arm}.{col}.{i}"] for i in range(len(table[col]))]
        hist = em.get("score_histogram", {}).get(arm)
        for col in ("propensity_counts", "preference_counts") if hist else ():
            hist[col] = [shown[f"hist.{arm}.{col}.{i}"] for i in range(len(hist[col]))]
        _end_curve(em.get("km", {}).get(arm), min_cell)
    em["balance"] = [_publish_balance_row(b, min_cell) for b in em.get("balance", [])]


def _at_risk_cells(
    em: dict[str, Any], counts: dict[str, int | None]
) -> tuple[dict[str, int | None], list[Sum]]:
    """The at-risk table's cells under flat keys, and how they add up."""
    sums: list[Sum] = []
    for arm in ("treated", "control"):
        table = em.get("at_risk", {}).get(arm)
        if not table:
            continue
        key = {col: [f"at_risk.{arm}.{col}.{i}" for i in range(len(table[col]))]
               for col in ("n_at_risk", "events", "n_censored")}  # fmt: skip
        for col, keys in key.items():
            counts.update(zip(keys, table[col], strict=True))
        last = len(key["n_at_risk"]) - 1
        for i in range(last + 1):
            parts = (key["events"][i], key["n_censored"][i])
            nxt = (key["n_at_risk"][i + 1],) if i < last else ()
            sums.append(Sum(key["n_at_risk"][i], (*parts, *nxt), exhaustive=True))
        if last >= 0 and em.get(f"n_{arm}") == table["n_at_risk"][0]:
            sums.append(Sum(f"n_{arm}", (key["n_at_risk"][0],), exhaustive=True))
        if em.get(f"events_{arm}") == sum(table["events"]):
            sums.append(Sum(f"events_{arm}", tuple(key["events"]), exhaustive=True))
    return counts, sums


def _histogram_cells(
    em: dict[str, Any], counts: dict[str, int | None]
) -> tuple[dict[str, int | None], list[Sum]]:
    """The score histograms' bins under flat keys; each arm's bins of either score add
    up to its eligible rows (published or not: taken as known)."""
    sums: list[Sum] = []
    for arm in ("treated", "control"):
        hist = em.get("score_histogram", {}).get(arm)
        if not hist:
            continue
        total = f"hist.{arm}.eligible"
        for col in ("propensity_counts", "preference_counts"):
            keys = [f"hist.{arm}.{col}.{i}" for i in range(len(hist[col]))]
            counts.update(zip(keys, hist[col], strict=True))
            counts[total] = int(sum(hist[col]))
            sums.append(Sum(total, tuple(keys), exhaustive=True))
    return counts, sums


def _end_curve(curve: dict[str, Any] | None, min_cell: int) -> None:
    """A published Kaplan-Meier curve: None from the first time under ``min_cell`` rows
    at risk, and no at-risk numbers (the at-risk table has them, suppressed)."""
    if not curve:
        return
    at_risk = curve.pop("n_at_risk", None)
    if at_risk is None:
        return
    for col in ("survival", "lower", "upper"):
        values = curve.get(col)
        if values is not None:
            curve[col] = [
                v if n >= min_cell else None for v, n in zip(values, at_risk, strict=True)
            ]


def _publish_balance_row(row: dict[str, Any], min_cell: int) -> dict[str, Any]:
    """One baseline-table row as published: its observed rows per arm withheld under
    ``min_cell``; for a 0/1 column, where either arm's rows with the value, or without
    it, are under ``min_cell``, both arms' counts and proportions withheld (the SMDs
    stay)."""
    out = dict(row)
    for arm in ("treated", "control"):
        out[f"n_{arm}"] = suppress(row.get(f"n_{arm}", 0), min_cell)
    levels = [(row.get(f"n_level_{a}"), row.get(f"n_{a}", 0)) for a in ("treated", "control")]
    if all(k is None for k, _ in levels):
        return out
    small = any(
        k is None or k < min_cell or n - k < min_cell or out[f"n_{a}"] is None
        for (k, n), a in zip(levels, ("treated", "control"), strict=True)
    )
    if small:
        for arm in ("treated", "control"):
            out[f"n_level_{arm}"] = None
            for when in ("before", "after"):
                out[f"mean_{arm}_{when}"] = None
    return out


def suppress_transport_counts(tr: dict[str, Any], min_cell: int) -> None:
    """Withhold the transport's counts under ``min_cell``: the development and
    validation rows and each one's events (and the events when the rows without one
    are few, which would follow from the rows)."""
    for side, n_key in (("train_performance", "n_train"), ("test_performance", "n_test")):
        perf = tr.get(side)
        if not isinstance(perf, dict):
            if n_key in tr:
                tr[n_key] = suppress(tr[n_key], min_cell)
            continue
        counts = {k: perf[k] for k in ("n", "events") if k in perf}
        shown = suppress_related(counts, [Sum("n", ("events",))], min_cell)
        perf.update(shown)
        if n_key in tr:
            tr[n_key] = shown.get("n", suppress(tr[n_key], min_cell))


def validation_payload(
    results: list[dict[str, Any]], cfg: ValidationConfig, trainer: Any
) -> dict[str, Any]:
    """``validation.json``: each hypothesis' result, the settings that produced them
    (the execution settings left out: they do not change a number), where the models
    trained, and how many were a go."""
    return {
        "hypotheses": results,
        "settings": {
            k: v
            for k, v in cfg.__dict__.items()
            if k not in ("threads", "training", "cluster", "federated")
        },
        "training": training_summary(cfg.training, trainer),
        "n_go": sum(r.get("decision") == "go" for r in results),
    }


# ------------------------------------------------------------------ the stage
def validation_config(
    vp: ValidationParams, compute: ComputeParams, min_cell: int
) -> ValidationConfig:
    """Track 2's configuration, made from ``params.yaml``'s ``validation`` and ``compute``
    in this one place."""
    return ValidationConfig(
        **vp.model_dump(),
        min_cell=min_cell,
        threads=compute.threads,
        training=compute.training,
        cluster=compute.cluster,
        federated=compute.federated,
    )


def read_hypotheses(path: Path, key: str = "hypotheses") -> list[HypothesisRecord]:
    """Track 1's ranked hypotheses (``key="safety"``: its safety hypotheses; none in a
    file written before they were), typed: track 2 reads them through this one function."""
    entries = json.loads(Path(path).read_text()).get(key, [] if key == "safety" else None)
    if entries is None:
        raise OncorweError(f"{path}: no {key!r} list (expected the hypothesis stage's output)")
    return [HypothesisRecord.from_dict(h, str(path)) for h in entries]


def run(params: Params, catalog: Catalog) -> dict:
    """Stage ``validation``: track 2 on track 1's output; writes ``catalog.validation``
    and the stage metrics. Refuses to start, naming the file, without track 1's output."""
    hyp_dir = catalog.hypothesis
    for need in (hyp_dir / "hypotheses.json", hyp_dir / "splits.parquet"):
        if not need.is_file():
            raise OncorweError(f"{need} is missing: run the hypothesis stage first")
    res = run_validation(
        read_table(catalog.analysis),
        roles_for_analysis_table(catalog.analysis),
        read_hypotheses(hyp_dir / "hypotheses.json"),
        pd.read_parquet(hyp_dir / "splits.parquet"),
        validation_config(params.validation, params.compute, params.privacy.min_cell_count),
        catalog.validation,
        safety=read_hypotheses(hyp_dir / "hypotheses.json", "safety"),
    )
    write_json(
        catalog.metrics("validation"), {"validated": len(res["hypotheses"]), "go": res["n_go"]}
    )
    write_km_plot(res, catalog.plot("km"))
    return res


def write_km_plot(res: dict[str, Any], path: Path) -> None:
    """``dvc plots`` data: the weighted Kaplan-Meier curves of the best-ranked validated
    hypothesis that is not blinded, as published (ending where fewer than ``min_cell``
    are at risk): ``months, treated, control`` (empty when none has curves)."""
    rows = pd.DataFrame(columns=["months", "treated", "control"])
    for h in res["hypotheses"]:
        em = h.get("emulation") or {}
        km = em.get("km") or {}
        if em.get("blinded") or not {"treated", "control"} <= km.keys():
            continue
        rows = pd.DataFrame(
            {
                "months": km["treated"]["times"],
                "treated": km["treated"]["survival"],
                "control": km["control"]["survival"],
            }
        )
        break
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        rows.to_csv(tmp, index=False, float_format="%.6g")
