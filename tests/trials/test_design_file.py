"""Trial design files: validation, simulation against the formulas, model-based patients.

Oracles: Schoenfeld's formula at the simulated mean events and Schoenfeld + exponential
accrual for N (SCIENCE.md, "Trial design"); the pooled two-proportion formula; for
virtual patients, the same trials simulated from the true data-generating model
(hazard ratios are not collapsible, so the truth of a trial with a prognostic covariate
is the marginal HR such a trial estimates, not the planted conditional exp(-0.5)).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from oncorwe.core.errors import ConfigError, OncorweError
from oncorwe.models.estimators import ResponseClassifier, SurvivalModel
from oncorwe.trials.design import two_proportion_power
from oncorwe.trials.design_file import (
    ModelOutcomes,
    TrialDesignSpec,
    dropout_hazard,
    load_design,
    run_design,
)
from oncorwe.trials.simulate import logrank_test

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

# Virtual-patient world: exponential PFS, hazard LAM0 exp(BETA_X x + log_hr * treated).
LAM0, BETA_X, LOG_HR = math.log(2.0) / 12.0, 0.5, -0.5
ACCRUAL, FOLLOWUP = 24.0, 12.0


def _pfs(**over) -> dict:
    base = {
        "name": "t",
        "endpoint": "pfs",
        "sample_size": 500,
        "accrual": {"months": ACCRUAL},
        "followup_months": FOLLOWUP,
        "dropout_per_year": 0.05,
        "outcomes": {
            "source": "parametric",
            "control": {"distribution": "exponential", "median_months": 12.0},
            "hazard_ratio": 0.7,
        },
        "replicates": 4000,
        "seed": 1,
    }
    base.update(over)
    return base


def _write(tmp_path: Path, payload: dict) -> Path:
    path = tmp_path / "design.yaml"
    path.write_text(yaml.safe_dump(payload))
    return path


def _model_spec(endpoint: str = "pfs", **over) -> TrialDesignSpec:
    raw = {
        "name": "virtual",
        "endpoint": endpoint,
        "sample_size": 400,
        "outcomes": {
            "source": "model",
            "treatment": {"column": "treated", "experimental": 1, "control": 0},
        },
        "replicates": 1000,
        "seed": 3,
    }
    if endpoint == "pfs":
        raw |= {"accrual": {"months": ACCRUAL}, "followup_months": FOLLOWUP}
    raw.update(over)
    return TrialDesignSpec.model_validate(raw)


# ------------------------------------------------------------------------- the file
def test_example_files_load():
    pfs = load_design(EXAMPLES / "trial_design.yaml")
    response = load_design(EXAMPLES / "trial_design_response.yaml")
    assert (pfs.endpoint, pfs.sample_size, pfs.outcomes.hazard_ratio) == ("pfs", 500, 0.7)
    assert (response.endpoint, response.target_power) == ("response", 0.8)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"acrual": {"months": 24}}, r"acrual: unknown key"),
        (
            {"accrual": {"months": -3}},
            r"accrual\.months: Input should be greater than or equal to 0",
        ),
        ({"accrual": {"months": 24, "rate_per_month": 30}}, r"accrual: give exactly one"),
        (
            {"outcomes": {**_pfs()["outcomes"], "hazard_ratio": 0}},
            r"outcomes\.hazard_ratio: Input should be greater than 0",
        ),
        ({"endpoint": "os"}, r"endpoint: Input should be 'pfs' or 'response'"),
        ({"sided": 3}, r"sided: Input should be 1 or 2"),
        ({"dropout_per_year": 1.5}, r"dropout_per_year: Input should be less than 1"),
        (
            {"outcomes": {**_pfs()["outcomes"], "control_rate": 0.3}},
            r"outcomes\.control_rate: not used with source parametric, endpoint pfs",
        ),
        ({"target_events": 300}, r"followup_months, target_events: a pfs design needs exactly one"),
        ({"eligibility": {"cancer": 3}}, r"eligibility: condition field 'cancer'"),
    ],
    ids=[
        "unknown-key",
        "negative-accrual",
        "two-accruals",
        "hazard-ratio",
        "endpoint",
        "sided",
        "dropout",
        "foreign-outcome-key",
        "two-analyses",
        "eligibility",
    ],
)
def test_bad_design_file_names_the_key(tmp_path, change, message):
    path = _write(tmp_path, _pfs(**change))
    with pytest.raises(ConfigError, match=rf"design\.yaml: {message}"):
        load_design(path)


@pytest.mark.parametrize("both", [True, False], ids=["both", "neither"])
def test_sample_size_and_target_power_are_exclusive(tmp_path, both):
    raw = (
        _pfs(target_power=0.8) if both else {k: v for k, v in _pfs().items() if k != "sample_size"}
    )
    with pytest.raises(ConfigError, match=r"sample_size, target_power: give exactly one"):
        load_design(_write(tmp_path, raw))


def test_missing_design_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_design(tmp_path / "nope.yaml")


def test_dropout_per_year_is_the_probability_of_dropping_out_within_a_year():
    assert 1.0 - math.exp(-12.0 * dropout_hazard(0.05)) == pytest.approx(0.05, rel=1e-12)


# ------------------------------------------------------------------------- parametric
def test_parametric_survival_power_matches_schoenfeld_at_simulated_events():
    res = run_design(TrialDesignSpec.model_validate(_pfs()))
    # Schoenfeld's normal approximation is accurate to ~1 point at HR 0.7 (SCIENCE.md
    # table; rpact agrees); Monte-Carlo SE at 4,000 replicates is ~0.5 point.
    assert 0.7 < res["power"] < 0.95
    assert res["power"] == pytest.approx(res["formula_power"], abs=0.025)
    assert res["hazard_ratio_distribution"]["q50"] == pytest.approx(0.7, abs=0.02)


def test_parametric_survival_sample_size_matches_the_formula():
    raw = {k: v for k, v in _pfs(target_power=0.8).items() if k != "sample_size"}
    res = run_design(TrialDesignSpec.model_validate(raw))
    # Formula: Schoenfeld D (247 events at HR 0.7, 80%) / P(event) under exponential
    # accrual and dropout, as rpact's getSampleSizeSurvival without its refinements.
    assert res["sample_size_power"] >= 0.8
    assert res["sample_size"] == pytest.approx(res["formula_sample_size"], rel=0.05)
    assert math.ceil(res["formula_events"]) == 247


def test_weibull_sample_size_matches_the_formula_by_quadrature():
    outcomes = {
        "source": "parametric",
        "control": {"distribution": "weibull", "median_months": 12.0, "shape": 1.5},
        "hazard_ratio": 0.7,
    }
    raw = {k: v for k, v in _pfs(target_power=0.8, outcomes=outcomes).items() if k != "sample_size"}
    res = run_design(TrialDesignSpec.model_validate(raw))
    assert res["sample_size"] == pytest.approx(res["formula_sample_size"], rel=0.05)


def test_event_driven_design_analyses_at_the_target_events():
    raw = {k: v for k, v in _pfs(target_events=250).items() if k != "followup_months"}
    res = run_design(TrialDesignSpec.model_validate(raw))
    assert res["mean_events"] == pytest.approx(250, abs=0.5)
    assert res["power"] == pytest.approx(res["formula_power"], abs=0.025)
    assert res["formula_sample_size"] is None  # N does not set an event-driven design's power


def test_response_power_matches_the_two_proportion_formula():
    spec = load_design(EXAMPLES / "trial_design_response.yaml").model_copy(
        update={"target_power": None, "sample_size": 300}
    )
    res = run_design(spec)
    expected = two_proportion_power(0.3, 0.45, 150, 150, alpha=0.025, sided=1)
    assert res["formula_power"] == pytest.approx(expected)
    assert res["power"] == pytest.approx(expected, abs=0.025)


def test_response_sample_size_search_matches_the_formula():
    res = run_design(load_design(EXAMPLES / "trial_design_response.yaml"))
    assert res["sample_size"] == pytest.approx(res["formula_sample_size"], rel=0.05)


def test_ten_thousand_trials_of_five_hundred_patients_run(tmp_path):
    # Feasibility only (timing lives in the benchmarks): the example design as shipped.
    res = run_design(load_design(EXAMPLES / "trial_design.yaml"))
    assert res["n_replicates"] == 10_000 and res["n_patients"] == 500
    json.dumps(res, allow_nan=False)  # JSON-safe as run_design promises


# ------------------------------------------------------------------------- virtual patients
def _world(n: int, log_hr: float, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Randomized training data (no confounding) with one prognostic covariate."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"x": rng.normal(size=n), "treated": rng.integers(0, 2, n)})
    t = rng.exponential(1.0 / (LAM0 * np.exp(BETA_X * x["x"] + log_hr * x["treated"])))
    # Follow-up 36-60 months covers the trial's 36-month analysis (the model's horizon).
    c = rng.uniform(36.0, 60.0, n)
    return x, (t <= c).astype(int), np.minimum(t, c)


def _cox(log_hr: float) -> SurvivalModel:
    x, event, time = _world(3000, log_hr, seed=1)
    model = SurvivalModel(
        n_estimators=300, learning_rate=0.05, max_depth=3, subsample=1.0, colsample_bytree=1.0
    )
    return model.set_params(n_jobs=1, device="cpu").fit(x, event, time)


@pytest.fixture(scope="module")
def pool() -> pd.DataFrame:
    return _world(5000, 0.0, seed=2)[0][["x"]]


@pytest.fixture(scope="module")
def effect_model() -> SurvivalModel:
    return _cox(LOG_HR)


def _true_trials(pool_x: np.ndarray, n: int, reps: int, seed: int) -> np.ndarray:
    """Peto log-HRs of trials simulated from the truth (no dropout, 1:1 permuted)."""
    rng = np.random.default_rng(seed)
    x = pool_x[rng.integers(0, pool_x.size, (reps, n))]
    arm = rng.permuted(np.tile(np.arange(n) % 2 == 0, (reps, 1)), axis=1)
    t = rng.exponential(1.0 / (LAM0 * np.exp(BETA_X * x + LOG_HR * arm)))
    at_risk = ACCRUAL + FOLLOWUP - rng.uniform(0.0, ACCRUAL, (reps, n))
    return logrank_test(np.minimum(t, at_risk), t <= at_risk, arm).log_hr


def test_model_event_times_follow_the_models_survival_curve(effect_model, pool):
    outcomes = ModelOutcomes(
        pool, effect_model, treatment_column="treated", experimental=1, control=0
    )
    rng = np.random.default_rng(0)
    n = 200_000
    times = outcomes.draw_event_times(np.full(n, 7), np.ones(n, bool), rng.standard_exponential(n))
    grid = np.array([3.0, 12.0, 24.0])
    row = pool.iloc[[7]].assign(treated=1)
    expected = effect_model.predict_survival(row, grid)[0]
    # Binomial SE <= 0.0011 at 200,000 draws; the linear interpolation of the Breslow
    # steps differs from them by less than one step (~1/2,500 of H0).
    np.testing.assert_allclose((times[:, None] > grid).mean(axis=0), expected, atol=0.006)


def test_model_based_trials_reproduce_the_planted_treatment_effect(effect_model, pool):
    outcomes = ModelOutcomes(
        pool, effect_model, treatment_column="treated", experimental=1, control=0
    )
    res = run_design(_model_spec(), model_outcomes=outcomes)
    model_hr = res["hazard_ratio_distribution"]["q50"]
    true_hr = math.exp(np.median(_true_trials(pool["x"].to_numpy(), 400, 1000, seed=5)))
    # Tolerance 0.1 on the log scale: the model's own estimate of the treatment log-HR
    # from 3,000 patients (~2,500 events) has SE ~ sqrt(4 / 2500) = 0.04, plus the
    # Monte-Carlo error of two medians of 1,000 trials (~0.007): about 2.5 SE.
    assert abs(math.log(model_hr) - math.log(true_hr)) < 0.1, (model_hr, true_hr)
    # The truth itself sits between exp(-0.5) and 1 (non-collapsible HR, Peto's
    # estimator): within the same 0.1 plus that measured gap of exp(-0.5).
    gap = abs(math.log(true_hr) - LOG_HR)
    assert abs(math.log(model_hr) - LOG_HR) < 0.1 + gap, (model_hr, gap)
    assert res["model"]["mean_conditional_log_hr"] == pytest.approx(LOG_HR, abs=0.1)


def test_model_without_treatment_effect_rejects_at_alpha(pool):
    outcomes = ModelOutcomes(pool, _cox(0.0), treatment_column="treated", experimental=1, control=0)
    res = run_design(_model_spec(), model_outcomes=outcomes)
    # Monte-Carlo SE sqrt(0.025 * 0.975 / 1000) = 0.005 -> 3 SE; the model's spurious
    # treatment log-HR (|.| < 0.01 here) moves the power by less than 0.005.
    assert abs(res["power"] - 0.025) < 0.015 + 0.005, res["power"]


@pytest.mark.parametrize("distribution", ["normal", "logistic", "extreme"])
def test_aft_model_event_times_follow_its_survival_curve(pool, distribution):
    x, event, time = _world(2000, LOG_HR, seed=4)
    model = SurvivalModel(
        objective="aft", aft_distribution=distribution, n_estimators=100, n_jobs=1, device="cpu"
    ).fit(x, event, time)
    outcomes = ModelOutcomes(pool, model, treatment_column="treated", experimental=1, control=0)
    n = 100_000
    rng = np.random.default_rng(1)
    times = outcomes.draw_event_times(np.full(n, 3), np.zeros(n, bool), rng.standard_exponential(n))
    grid = np.array([3.0, 12.0, 24.0])
    expected = model.predict_survival(pool.iloc[[3]].assign(treated=0), grid)[0]
    np.testing.assert_allclose((times[:, None] > grid).mean(axis=0), expected, atol=0.006)


def test_model_based_response_power_matches_the_formula_at_the_models_rates(pool):
    rng = np.random.default_rng(6)
    x = pd.DataFrame({"x": rng.normal(size=3000), "treated": rng.integers(0, 2, 3000)})
    logit = -0.85 + 0.5 * x["x"] + 0.6 * x["treated"]
    y = (rng.random(3000) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    model = ResponseClassifier(n_estimators=100, max_depth=2, n_jobs=1, device="cpu").fit(x, y)
    outcomes = ModelOutcomes(pool, model, treatment_column="treated", experimental=1, control=0)
    res = run_design(_model_spec("response", sample_size=300), model_outcomes=outcomes)
    p0, p1 = outcomes.response_rates["control"], outcomes.response_rates["experimental"]
    # Resampled patients respond independently with the pool's mean probability of
    # their arm, so the two-proportion formula at those rates is the exact target.
    expected = two_proportion_power(p0, p1, 150, 150, alpha=0.025)
    assert res["power"] == pytest.approx(expected, abs=3 * math.sqrt(0.25 / 1000) + 0.01)


def test_model_based_sample_size_search_reaches_the_target(effect_model, pool):
    outcomes = ModelOutcomes(
        pool, effect_model, treatment_column="treated", experimental=1, control=0
    )
    spec = _model_spec(sample_size=None, target_power=0.8, replicates=1000)
    res = run_design(spec, model_outcomes=outcomes)
    assert res["sample_size_power"] >= 0.8
    below = [p for n, p in res["sample_size_search"].items() if int(n) == res["sample_size"] - 1]
    assert below == [] or below[0] < 0.8
    assert res["sample_size"] == pytest.approx(res["formula_sample_size"], rel=0.1)


def test_pool_is_the_eligible_rows_of_the_cohort(effect_model, pool):
    cohort = pool.assign(cancer=np.where(np.arange(len(pool)) % 4 == 0, "nsclc", "crc"))
    spec = _model_spec(eligibility={"cancer": "nsclc"})
    outcomes = ModelOutcomes.from_design(spec, cohort, effect_model)
    assert outcomes.n_pool == (cohort["cancer"] == "nsclc").sum()


def test_model_design_without_model_outcomes_is_refused():
    with pytest.raises(OncorweError, match=r"outcomes\.source model: pass model_outcomes"):
        run_design(_model_spec())


def test_treatment_column_must_be_a_model_feature(effect_model, pool):
    with pytest.raises(ValueError, match=r"treatment column 'arm' is not a feature"):
        ModelOutcomes(pool, effect_model, treatment_column="arm", experimental=1, control=0)


def test_one_sided_search_for_a_harmful_arm_is_refused(tmp_path):
    outcomes = {**_pfs()["outcomes"], "hazard_ratio": 1.2}
    raw = {k: v for k, v in _pfs(target_power=0.8, outcomes=outcomes).items() if k != "sample_size"}
    with pytest.raises(ConfigError, match=r"outcomes\.hazard_ratio: must be < 1"):
        load_design(_write(tmp_path, raw))


def test_one_sided_formula_power_of_a_harmful_arm_is_below_alpha():
    outcomes = {**_pfs()["outcomes"], "hazard_ratio": 1.2}
    res = run_design(TrialDesignSpec.model_validate(_pfs(outcomes=outcomes, replicates=1000)))
    assert res["formula_power"] < 0.025
    assert res["power"] < 0.01


def test_trial_sim_command_runs_a_model_design_from_saved_files(effect_model, pool, tmp_path):
    """``oncorwe trial-sim --cohort --model`` gives the numbers of the Python API with the
    in-memory model: the saved model (with its Breslow baseline) predicts as it did."""
    import json

    from tests.test_cli import oncorwe

    effect_model.save(tmp_path / "pfs.json")
    pool.to_parquet(tmp_path / "cohort.parquet")
    spec = _model_spec(replicates=400)
    design = _write(tmp_path, spec.model_dump(mode="json", exclude_none=True))
    files = ("--cohort", tmp_path / "cohort.parquet", "--model", tmp_path / "pfs.json")

    def sim(out: str, *args, design=design):
        return oncorwe("trial-sim", "--design", design, "--out", tmp_path / out, *args)

    run = sim("t", *files)
    assert run.returncode == 0, run.stderr
    got = json.loads((tmp_path / "t" / "trial.json").read_text())
    api = run_design(
        spec,
        model_outcomes=ModelOutcomes(
            pool, effect_model, treatment_column="treated", experimental=1, control=0
        ),
    )
    assert got["power"] == pytest.approx(api["power"], abs=1e-12)
    assert got["hazard_ratio_distribution"] == pytest.approx(api["hazard_ratio_distribution"])
    # without the model, or with one on a parametric design: a named error, nothing written
    bad = sim("u")
    assert bad.returncode == 2 and "--cohort" in bad.stderr and "--model" in bad.stderr
    assert not (tmp_path / "u").exists()
    par = sim("v", *files[2:], design=EXAMPLES / "trial_design.yaml")
    assert par.returncode == 2 and "parametric" in par.stderr
    (tmp_path / "pfs.features.json").unlink()
    gone = sim("w", *files)
    assert gone.returncode == 2 and "pfs.features.json" in gone.stderr
    assert not any((tmp_path / d).exists() for d in ("u", "v", "w"))
