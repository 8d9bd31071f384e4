"""Trial design files: a YAML description of a two-arm trial, simulated and sized.

A design file says what trial to run (endpoint, allocation, accrual, analysis time,
dropout, outcomes under each arm) and either its ``sample_size`` or a ``target_power``
for which the smallest sample size is searched. :func:`load_design` validates it (unknown
keys are refused; every error names the file, the dotted key and what is allowed) and
:func:`run_design` simulates it with the vectorized simulators of
:mod:`oncorwe.trials.simulate`, beside the analytic answer of :mod:`oncorwe.trials.design`.
``examples/trial_design.yaml`` documents every key.

Outcomes come from one of two sources:

``parametric``
    PFS: an exponential or Weibull control arm and a proportional-hazards ``hazard_ratio``
    (:func:`~oncorwe.trials.simulate.simulate_survival_trial`). Response: two response
    rates (:func:`~oncorwe.trials.simulate.simulate_binary_trial`).
``model``
    Virtual patients (:class:`ModelOutcomes`): covariates of eligible real-world
    patients, resampled with replacement for every simulated trial, and a fitted model
    that includes the treatment column. Each patient's outcome under the arm they are
    randomized to is drawn from the model's prediction for that arm: an event time from
    a Cox or AFT :class:`~oncorwe.models.estimators.SurvivalModel`, a response from a
    :class:`~oncorwe.models.estimators.ResponseClassifier`. **The simulated treatment
    effect is the model's treatment effect, which is only as good as the model's
    adjustment for confounding**: a model fitted on observational data with an
    unmeasured confounder of treatment choice and outcome simulates a biased trial.

Conventions
-----------
- Time is in months. ``dropout_per_year`` is the probability of dropping out within 12
  months (rpact's ``dropoutRate1`` with ``dropoutTime = 12``): an exponential dropout
  hazard delta = -ln(1 - p) / 12 per month.
- ``alpha`` is one-sided when ``sided: 1`` (benefit of the experimental arm: HR < 1,
  higher response); with ``sided: 2`` the test runs at alpha / 2 in each tail.
- ``allocation: {experimental: a, control: b}`` is the ratio r = a / b.

Example
-------
>>> design = TrialDesignSpec.model_validate({
...     "name": "demo", "endpoint": "pfs", "sample_size": 400,
...     "accrual": {"months": 24}, "followup_months": 12,
...     "outcomes": {"source": "parametric",
...                  "control": {"distribution": "exponential", "median_months": 12},
...                  "hazard_ratio": 0.7},
...     "replicates": 512, "seed": 1})
>>> res = run_design(design)
>>> abs(res["power"] - res["formula_power"]) < 0.06
True
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from scipy import optimize
from scipy.integrate import cumulative_trapezoid, trapezoid
from scipy.stats import norm

from oncorwe.core.errors import OncorweError, format_validation_error, load_yaml_model
from oncorwe.core.io import jsonable
from oncorwe.core.rules import Condition
from oncorwe.models.estimators import ResponseClassifier, SurvivalModel
from oncorwe.trials.design import (
    prob_event_two_arms,
    schoenfeld_events,
    schoenfeld_power,
    two_proportion_power,
    two_proportion_sample_size,
)
from oncorwe.trials.simulate import (
    STREAM_BLOCK,
    BinaryTrialDesign,
    SurvivalTrialDesign,
    analyse_binary,
    analyse_survival,
    binary_block_draws,
    block_template,
    check_randomization,
    critical_value,
    find_sample_size,
    mean_arms,
    run_chunks,
    simulate_binary_trial,
    simulate_survival_trial,
    summarise_hr,
    survival_block_draws,
)

__all__ = [
    "Accrual",
    "Allocation",
    "ControlSurvival",
    "ModelOutcomes",
    "Outcomes",
    "TrialDesignSpec",
    "TreatmentArms",
    "dropout_hazard",
    "load_design",
    "run_design",
]


def _not_bool(value: Any) -> Any:
    # pydantic reads True as 1 and False as 0, and YAML reads yes/no/on/off as booleans:
    # ``hazard_ratio: yes`` would otherwise simulate HR 1 without a word.
    if isinstance(value, bool):
        raise ValueError(
            "expected a number, not a boolean (YAML reads yes/no/on/off/true/false as booleans)"
        )
    return value


def _sides(value: Any) -> Any:
    # A number written as text is read as the number everywhere else ("0.8"); so here.
    value = _not_bool(value)
    if isinstance(value, str) and value.strip() in ("1", "2"):
        return int(value)
    return value


_Number = BeforeValidator(_not_bool)
Int = Annotated[int, _Number]
Float = Annotated[float, _Number]
PosFloat = Annotated[float, _Number, Field(gt=0.0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, _Number, Field(ge=0.0, allow_inf_nan=False)]
OpenProb = Annotated[float, _Number, Field(gt=0.0, lt=1.0)]
ArmValue = bool | int | float | str
_QUANTILES = (("q2.5", 0.025), ("q25", 0.25), ("q50", 0.5), ("q75", 0.75), ("q97.5", 0.975))
#: Search bounds for ``target_power`` designs.
N_MIN, N_MAX = 4, 100_000
#: Hazard ratios from this value up are refused (a percent written for a ratio).
HR_MAX = 10.0


# --------------------------------------------------------------------------- schema
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Allocation(_Strict):
    """Randomization ratio experimental : control (``{experimental: 2, control: 1}``)."""

    experimental: PosFloat = Field(1.0, description="share of the experimental arm")
    control: PosFloat = Field(1.0, description="share of the control arm")

    @property
    def ratio(self) -> float:
        """r = experimental / control."""
        return self.experimental / self.control


class Accrual(_Strict):
    """Uniform accrual over ``months``, or at ``rate_per_month`` (then N / rate months)."""

    months: NonNegFloat | None = Field(None, description="accrual duration in months")
    rate_per_month: PosFloat | None = Field(None, description="patients enrolled per month")

    @model_validator(mode="after")
    def _one(self) -> Accrual:
        if (self.months is None) == (self.rate_per_month is None):
            raise ValueError("give exactly one of accrual.months and accrual.rate_per_month")
        return self


class ControlSurvival(_Strict):
    """Control-arm PFS: exponential, or Weibull S(t) = exp(-(t / s)^shape)."""

    distribution: Literal["exponential", "weibull"] = "exponential"
    median_months: PosFloat = Field(description="control-arm median PFS in months")
    shape: Annotated[float, _Number, Field(ge=0.01, le=100.0)] | None = Field(
        None, description="Weibull shape k in [0.01, 100] (weibull only; 1 is exponential)"
    )

    @model_validator(mode="after")
    def _shape(self) -> ControlSurvival:
        if self.distribution == "weibull" and self.shape is None:
            raise ValueError("a weibull control needs control.shape (k > 0; 1 is exponential)")
        if self.distribution == "exponential" and self.shape not in (None, 1.0):
            raise ValueError(
                "an exponential control takes no control.shape (use distribution: weibull)"
            )
        return self

    @property
    def weibull_shape(self) -> float:
        return 1.0 if self.shape is None else float(self.shape)


class TreatmentArms(_Strict):
    """The model's treatment column and its value for each arm (``source: model``)."""

    column: str = Field(min_length=1, description="treatment feature of the fitted model")
    experimental: ArmValue = Field(description="column value meaning the experimental arm")
    control: ArmValue = Field(description="column value meaning the control arm")

    @model_validator(mode="after")
    def _differ(self) -> TreatmentArms:
        if self.experimental == self.control:
            raise ValueError(
                f"treatment.experimental and treatment.control must differ, both are "
                f"{self.experimental!r}"
            )
        return self


class Outcomes(_Strict):
    """Where outcomes come from; which keys apply depends on ``source`` and ``endpoint``.

    ``parametric`` + ``pfs``: ``control`` and ``hazard_ratio``. ``parametric`` +
    ``response``: ``control_rate`` and ``experimental_rate``. ``model``: ``treatment``
    (the fitted model itself is passed to :func:`run_design` as :class:`ModelOutcomes`).
    """

    source: Literal["parametric", "model"]
    control: ControlSurvival | None = None
    hazard_ratio: PosFloat | None = Field(None, description="HR experimental / control, < 10")
    control_rate: OpenProb | None = Field(None, description="control response probability")
    experimental_rate: OpenProb | None = Field(None, description="experimental response prob.")
    treatment: TreatmentArms | None = None

    @field_validator("hazard_ratio")
    @classmethod
    def _ratio(cls, hr: float | None) -> float | None:
        # A ratio of 10 or more is no trial's planning assumption; 70 is a percent (0.7)
        # that would otherwise be simulated as a seventy-fold hazard, power 0.
        if hr is not None and hr >= HR_MAX:
            hint = f" (a percent? write {hr / 100:g})" if hr <= 100 else ""
            raise ValueError(
                f"expected a ratio experimental / control in (0, {HR_MAX:g}), e.g. 0.7{hint}"
            )
        return hr


class TrialDesignSpec(_Strict):
    """A validated trial design file (see ``examples/trial_design.yaml`` for every key).

    Cross-key rules (each violation names its key): exactly one of ``sample_size`` and
    ``target_power``; a ``pfs`` design needs ``accrual`` and exactly one of
    ``followup_months`` (fixed-time analysis at accrual + follow-up) and
    ``target_events`` (event-driven analysis); a ``response`` design takes none of the
    timing keys; ``target_power`` needs a fixed-time analysis (an event-driven design's
    power is set by ``target_events``, not by N); ``outcomes`` carries the keys of its
    ``source`` and ``endpoint`` only; a parametric ``target_power`` without an effect
    (HR 1, equal rates) or that the formula reaches only beyond ``N_MAX`` patients is
    refused before any simulation. Numbers may be written as text ("0.8"); YAML booleans
    (yes/no/on/off) are refused where a number is expected.
    """

    name: str = Field(min_length=1)
    description: str | None = None
    endpoint: Literal["pfs", "response"]
    allocation: Allocation = Allocation()
    randomization: Literal["block", "simple"] = "block"
    block_size: Int | None = Field(None, ge=2, description="permuted-block length")
    sample_size: Int | None = Field(None, ge=2, le=N_MAX, description="patients randomized")
    target_power: OpenProb | None = Field(None, description="search the smallest N reaching it")
    alpha: Float = Field(0.025, gt=0.0, lt=0.5)
    sided: Annotated[Literal[1, 2], BeforeValidator(_sides)] = 1
    accrual: Accrual | None = None
    followup_months: NonNegFloat | None = Field(
        None, description="analysis this long after the last patient enters"
    )
    target_events: Int | None = Field(None, ge=1, description="analysis at this many events")
    dropout_per_year: Float | None = Field(None, ge=0.0, lt=1.0, description="P(drop out by 12m)")
    outcomes: Outcomes
    eligibility: dict[str, Any] | None = Field(
        None, description="condition on patients (oncorwe.core.rules); selects the model's pool"
    )
    replicates: Int = Field(10_000, ge=1, le=10_000_000, description="simulated trials")
    seed: Int = Field(0, ge=0, le=2**63 - 1)

    @model_validator(mode="after")
    def _consistent(self) -> TrialDesignSpec:
        problems = self._problems()
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _problems(self) -> list[str]:
        p: list[str] = []
        if (self.sample_size is None) == (self.target_power is None):
            p.append(
                "sample_size, target_power: give exactly one of them (sample_size: patients "
                "to simulate; target_power: the smallest N reaching it is searched)"
            )
        timing = {
            "accrual": self.accrual,
            "followup_months": self.followup_months,
            "target_events": self.target_events,
            "dropout_per_year": self.dropout_per_year,
        }
        if self.endpoint == "pfs":
            if self.accrual is None:
                p.append("accrual: required for endpoint pfs ({months: A} or {rate_per_month: R})")
            if (self.followup_months is None) == (self.target_events is None):
                p.append(
                    "followup_months, target_events: a pfs design needs exactly one "
                    "(fixed-time analysis at accrual + followup_months, or event-driven)"
                )
            if self.target_events is not None and self.target_power is not None:
                p.append(
                    "target_power: needs a fixed-time analysis (followup_months); an "
                    "event-driven design's power is set by target_events, not by N"
                )
            if (
                self.target_events is not None
                and self.sample_size is not None
                and self.target_events > self.sample_size
            ):
                p.append(
                    f"target_events: must be <= sample_size={self.sample_size}, "
                    f"got {self.target_events}"
                )
            if self.accrual is not None and self.accrual.months == 0 and not self.followup_months:
                if self.target_events is None:
                    p.append("followup_months: must be > 0 when accrual.months is 0")
        else:
            for key, value in timing.items():
                if value is not None:
                    p.append(f"{key}: not used by endpoint response (remove it)")
        o = self.outcomes
        given = {
            "control": o.control,
            "hazard_ratio": o.hazard_ratio,
            "control_rate": o.control_rate,
            "experimental_rate": o.experimental_rate,
            "treatment": o.treatment,
        }
        if o.source == "model":
            wanted = {"treatment"}
        elif self.endpoint == "pfs":
            wanted = {"control", "hazard_ratio"}
        else:
            wanted = {"control_rate", "experimental_rate"}
        what = f"source {o.source}" + ("" if o.source == "model" else f", endpoint {self.endpoint}")
        for key, value in given.items():
            if key in wanted and value is None:
                p.append(f"outcomes.{key}: required with {what}")
            if key not in wanted and value is not None:
                p.append(
                    f"outcomes.{key}: not used with {what} (allowed: {', '.join(sorted(wanted))})"
                )
        if self.target_power is not None and self.sided == 1 and o.source == "parametric":
            # A one-sided test looks for benefit only: a harmful or null arm never reaches
            # the target, and the search would run to its largest N.
            if self.endpoint == "pfs" and o.hazard_ratio is not None and o.hazard_ratio >= 1:
                p.append(
                    f"outcomes.hazard_ratio: must be < 1 to search a one-sided target_power "
                    f"(the test is for benefit), got {o.hazard_ratio}"
                )
            rates = (o.control_rate, o.experimental_rate)
            if self.endpoint == "response" and None not in rates and rates[1] <= rates[0]:
                p.append(
                    "outcomes.experimental_rate: must exceed control_rate to search a "
                    f"one-sided target_power (the test is for benefit), got {rates[1]}"
                )
        if self.eligibility is not None:
            try:
                Condition.parse(self.eligibility)
            except ValueError as err:
                p.append(f"eligibility: {err}")
        try:
            check_randomization(self.randomization, self.allocation.ratio, self.block_size)
        except ValueError as err:
            p.append(f"allocation / block_size: {err}")
        if not p and self.target_power is not None and o.source == "parametric":
            p.extend(self._unreachable_power())
        return p

    def _unreachable_power(self) -> list[str]:
        """A ``target_power`` no N up to N_MAX reaches, by the formula (the search would
        simulate ever larger trials up to N_MAX before failing)."""
        o = self.outcomes
        if self.endpoint == "pfs":
            if o.hazard_ratio == 1.0:
                return ["outcomes.hazard_ratio: is 1 (no effect), so no N reaches target_power"]
            effect = f"hazard_ratio {o.hazard_ratio:g}"
        else:
            if o.control_rate == o.experimental_rate:
                return [
                    "outcomes.experimental_rate: equals control_rate (no effect), so no N "
                    "reaches target_power"
                ]
            effect = f"response rates {o.experimental_rate} vs {o.control_rate}"
        r = self.allocation.ratio
        try:
            if self.endpoint == "pfs":
                events = schoenfeld_events(
                    o.hazard_ratio, self.alpha, self.target_power, r, self.sided
                )
                n = _formula_patients(self, o.hazard_ratio, events)
            else:
                n = two_proportion_sample_size(
                    o.control_rate,
                    o.experimental_rate,
                    self.alpha,
                    self.target_power,
                    r,
                    self.sided,
                )["n_total"]
        except (ValueError, ZeroDivisionError, OverflowError):
            return []  # no closed form here; the simulated search decides
        if n <= N_MAX:
            return []
        return [
            f"target_power: {self.target_power:g} with {effect} needs about {n:,} patients "
            f"by the formula, more than the {N_MAX:,} searched; expected a lower "
            "target_power or a larger effect"
        ]

    # ---- derived quantities
    @property
    def dropout_hazard(self) -> float:
        """Monthly dropout hazard -ln(1 - dropout_per_year) / 12 (0 when not given)."""
        return dropout_hazard(self.dropout_per_year or 0.0)

    @property
    def eligibility_condition(self) -> Condition:
        return Condition.parse(self.eligibility)

    def trial_design(
        self, n_patients: int | None = None
    ) -> SurvivalTrialDesign | BinaryTrialDesign:
        """The simulator's design object at ``n_patients`` (default ``sample_size``).

        For ``source: model`` the survival design carries unit-exponential placeholders
        (HR 1, median ln 2) for the outcome model: :class:`ModelOutcomes` supplies the
        event times (see :func:`run_design`).
        """
        n = self.sample_size if n_patients is None else n_patients
        if n is None:
            raise ValueError("n_patients is needed when the design has no sample_size")
        common = {
            "n_patients": int(n),
            "allocation": self.allocation.ratio,
            "randomization": self.randomization,
            "block_size": self.block_size,
            "alpha": self.alpha,
            "sided": self.sided,
        }
        model = self.outcomes.source == "model"
        if self.endpoint == "response":
            if model:  # placeholders; the model's probabilities replace them
                return BinaryTrialDesign(p_control=0.5, p_experimental=0.5, **common)
            return BinaryTrialDesign(
                p_control=self.outcomes.control_rate,
                p_experimental=self.outcomes.experimental_rate,
                **common,
            )
        control = self.outcomes.control
        return SurvivalTrialDesign(
            hr=1.0 if model else self.outcomes.hazard_ratio,
            # scale = median / (ln 2)^(1/k) = 1 with median ln 2 and k = 1: the simulator's
            # event time is then its unit-exponential draw, which ModelOutcomes replaces.
            control_median_months=math.log(2.0) if model else control.median_months,
            weibull_shape=1.0 if model else control.weibull_shape,
            accrual_months=self.accrual.months,
            accrual_rate=self.accrual.rate_per_month,
            followup_months=self.followup_months,
            target_events=self.target_events,
            dropout_hazard=self.dropout_hazard,
            **common,
        )


def dropout_hazard(dropout_per_year: float) -> float:
    """Exponential dropout hazard per month with P(dropout by 12 months) = ``p``.

    .. math:: \\delta = -\\ln(1 - p) / 12

    Examples
    --------
    >>> round(dropout_hazard(0.05), 6)
    0.004274
    """
    p = float(dropout_per_year)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout_per_year must be in [0, 1), got {p!r}")
    return -math.log1p(-p) / 12.0


def _format_errors(err: ValidationError, source: str) -> str:
    # The cross-key validator runs on the whole file (empty location); its messages
    # already start with the key, so they are printed as they are, one per line.
    errors = err.errors()
    if errors and all(not e["loc"] and e["type"] == "value_error" for e in errors):
        lines = [str(e["ctx"]["error"]).split("\n") for e in errors]
        return "\n".join(f"{source}: {line}" for group in lines for line in group)
    return format_validation_error(err, source).replace(": Value error, ", ": ")


def load_design(path: str | Path) -> TrialDesignSpec:
    """Read and validate a trial design file.

    Parameters
    ----------
    path : str or Path
        A YAML file (see ``examples/trial_design.yaml``).

    Returns
    -------
    TrialDesignSpec

    Raises
    ------
    ConfigError
        When the file is missing, not YAML, or does not validate; one line per problem,
        ``FILE: dotted.key: what is wrong (got value)``.

    Examples
    --------
    >>> from oncorwe.core.paths import resolve
    >>> load_design(resolve("examples/trial_design.yaml")).endpoint
    'pfs'
    """
    return load_yaml_model(path, TrialDesignSpec, "trial design file", _format_errors)


# --------------------------------------------------------------------------- model outcomes
class ModelOutcomes:
    """Virtual patients: real covariates, outcomes drawn from a fitted model per arm.

    Every simulated trial resamples ``n_patients`` rows of ``covariates`` with
    replacement; each gets the arm the trial's randomization gives them and an outcome
    drawn from the model with the treatment column set to that arm. The per-patient
    predictions under both arms are computed once, here; the simulation itself is
    vectorized over replicates (:func:`run_design`).

    Survival (``SurvivalModel``), by inverse-transform sampling of S(t | x, arm) at a
    unit-exponential draw E (S(T) = exp(-E), i.e. cumulative hazard H(T) = E):

    - ``cox``: S(t | x) = exp(-r(x) H0(t)) with r = exp(f(x)) and the model's Breslow
      baseline H0, so T = H0^{-1}(E / r(x)). Inverting the one baseline curve replaces a
      per-patient grid of survival curves (same answer, memory O(pool) instead of
      O(pool x grid)). H0 is interpolated linearly between its event times (constant
      hazard within each gap, so simulated times are continuous); beyond the last
      training event time the model knows nothing, and T = +inf (no event while the
      trial runs). Keep the analysis within the model's follow-up: :func:`run_design`
      warns when it is not.
    - ``aft``: log T = f(x) + sigma z with z = F^{-1}(1 - exp(-E)): ``normal``
      z = Phi^{-1}(1 - e^{-E}); ``logistic`` z = ln(e^E - 1); ``extreme`` z = ln E.

    Response (``ResponseClassifier``): p(x, arm) = P(response | x, arm), the response a
    Bernoulli draw.

    The simulated treatment effect is the model's: unbiased only if the model adjusts for
    every confounder of treatment and outcome in the data it was fitted on, and
    attenuated by whatever regularization shrinks the treatment splits.

    Parameters
    ----------
    covariates : DataFrame, shape (n_pool, p)
        Eligible patients (already filtered by the caller, e.g. with
        :meth:`from_design`); must contain every model feature except the treatment
        column, which is overwritten per arm.
    model : SurvivalModel or ResponseClassifier
        Fitted, with ``treatment_column`` among its features.
    treatment_column : str
    experimental, control
        Values of ``treatment_column`` for the two arms.
    response_class : optional
        For a classifier, the class that counts as response (default: the last of
        ``classes_``, e.g. 1 or True).

    Attributes
    ----------
    endpoint : {"pfs", "response"}
    kind : {"cox", "aft", "response"}
    n_pool : int
    horizon_months : float
        Last baseline event time (cox; +inf otherwise).
    mean_log_hr : float
        Mean over the pool of f(x, experimental) - f(x, control), the model's
        conditional log-HR (cox); NaN otherwise.
    response_rates : dict
        Mean predicted response probability per arm (response); empty otherwise.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"x": rng.normal(size=600), "arm": rng.integers(0, 2, 600)})
    >>> t = rng.exponential(np.exp(-(0.5 * X.x - 0.5 * X.arm)))
    >>> m = SurvivalModel(n_estimators=50, n_jobs=1, device="cpu").fit(X, np.ones(600), t)
    >>> mo = ModelOutcomes(X[["x"]], m, treatment_column="arm", experimental=1, control=0)
    >>> mo.draw_event_times(np.array([0, 1]), np.array([True, False]), np.ones(2)).shape
    (2,)
    """

    def __init__(
        self,
        covariates: pd.DataFrame,
        model: SurvivalModel | ResponseClassifier,
        *,
        treatment_column: str,
        experimental: Any,
        control: Any,
        response_class: Any = None,
    ) -> None:
        if not isinstance(covariates, pd.DataFrame):
            raise ValueError(
                f"covariates must be a pandas DataFrame, got {type(covariates).__name__}"
            )
        if len(covariates) == 0:
            raise ValueError("covariates has no rows: no eligible patient to resample")
        if not hasattr(model, "booster_"):
            raise ValueError(f"model must be fitted (a {type(model).__name__} without booster_)")
        features = list(model.feature_names_)
        if treatment_column not in features:
            raise ValueError(
                f"treatment column {treatment_column!r} is not a feature of the model "
                f"(features: {features[:10]})"
            )
        missing = [c for c in features if c != treatment_column and c not in covariates.columns]
        if missing:
            raise ValueError(f"covariates lack model feature(s) {missing[:5]}")
        if experimental == control:
            raise ValueError(f"experimental and control must differ, both are {experimental!r}")
        _check_numeric_features(covariates, model, treatment_column, (experimental, control))
        cats = model.categories_.get(treatment_column)
        if cats is not None:
            unknown = [v for v in (experimental, control) if v not in set(cats)]
            if unknown:
                raise ValueError(
                    f"treatment value(s) {unknown} were not seen by the model in "
                    f"{treatment_column!r} (seen: {list(cats)[:10]})"
                )
        base = covariates.reset_index(drop=True)
        x_arm = [
            base.assign(**{treatment_column: [value] * len(base)})
            for value in (control, experimental)  # row 0 = control, row 1 = experimental
        ]
        self.n_pool = len(base)
        self.treatment_column = treatment_column
        self.experimental, self.control = experimental, control
        self.horizon_months = math.inf
        self.mean_log_hr = math.nan
        self.response_rates: dict[str, float] = {}
        if isinstance(model, SurvivalModel):
            self.endpoint = "pfs"
            self.kind = model.objective
            margin = np.vstack([model.predict_margin(x) for x in x_arm]).astype(float)
            if self.kind == "cox":
                if model.baseline_times_.size == 0:
                    raise ValueError("the Cox model's baseline has no event times")
                self._risk = np.exp(margin)
                self._h_knots = np.concatenate([[0.0], model.baseline_cumhazard_])
                self._t_knots = np.concatenate([[0.0], model.baseline_times_])
                self.horizon_months = float(model.baseline_times_[-1])
                self.mean_log_hr = float(np.mean(margin[1] - margin[0]))
            else:
                self._margin = margin
                self._sigma = float(model.aft_sigma)
                self._dist = model.aft_distribution
        elif isinstance(model, ResponseClassifier):
            self.endpoint, self.kind = "response", "response"
            classes = list(model.classes_)
            if len(classes) != 2:
                raise ValueError(f"a response model needs two classes, got {classes}")
            pos = classes[-1] if response_class is None else response_class
            if pos not in classes:
                raise ValueError(f"response_class {pos!r} is not one of {classes}")
            j = classes.index(pos)
            self._prob = np.vstack([model.predict_proba(x)[:, j] for x in x_arm]).astype(float)
            self.response_rates = {
                "control": float(self._prob[0].mean()),
                "experimental": float(self._prob[1].mean()),
            }
        else:
            raise ValueError(
                f"model must be a SurvivalModel or ResponseClassifier, got {type(model).__name__}"
            )

    @classmethod
    def from_design(
        cls,
        design: TrialDesignSpec,
        cohort: pd.DataFrame,
        model: SurvivalModel | ResponseClassifier,
        **kwargs: Any,
    ) -> ModelOutcomes:
        """Pool = rows of ``cohort`` matching ``design.eligibility``; arms from the design.

        Raises
        ------
        OncorweError
            When the design is not ``source: model`` or no row is eligible.
        """
        if design.outcomes.source != "model":
            raise OncorweError(f"design {design.name!r} has outcomes.source parametric, not model")
        if len(cohort) == 0:
            raise OncorweError("the cohort has no rows: no patient to resample")
        cond = design.eligibility_condition
        try:
            mask = cond.mask(cohort)
        except KeyError as err:
            raise OncorweError(f"eligibility: {err.args[0]}") from err
        if not mask.any():
            raise OncorweError(f"eligibility: no patient matches {cond.describe()}")
        arms = design.outcomes.treatment
        return cls(
            cohort.loc[mask],
            model,
            treatment_column=arms.column,
            experimental=arms.experimental,
            control=arms.control,
            **kwargs,
        )

    def draw_event_times(
        self, patient: np.ndarray, experimental: np.ndarray, exp1: np.ndarray
    ) -> np.ndarray:
        """Event times T with cumulative hazard H(T | x_patient, arm) = ``exp1``.

        Parameters
        ----------
        patient : int array
            Pool row of each simulated patient (any shape).
        experimental : bool array, same shape
            True for the experimental arm.
        exp1 : float array, same shape
            Unit-exponential draws (-ln U); the time is S^{-1}(exp(-exp1)).

        Returns
        -------
        ndarray, same shape, months (+inf beyond a Cox model's follow-up).
        """
        if self.endpoint != "pfs":
            raise ValueError("draw_event_times needs a survival model")
        arm = np.asarray(experimental, dtype=np.intp)
        e = np.asarray(exp1, dtype=float)
        if self.kind == "cox":
            target = e / self._risk[arm, patient]
            return np.interp(target, self._h_knots, self._t_knots, right=np.inf)
        f = self._margin[arm, patient]
        if self._dist == "normal":
            z = norm.isf(np.exp(-e))  # upper tail keeps precision when e is large
        elif self._dist == "logistic":
            z = np.log(np.expm1(e))
        else:
            z = np.log(e)
        return np.exp(f + self._sigma * z)

    def response_probability(self, patient: np.ndarray, experimental: np.ndarray) -> np.ndarray:
        """P(response) of each simulated patient under their arm, same shape."""
        if self.endpoint != "response":
            raise ValueError("response_probability needs a response model")
        return self._prob[np.asarray(experimental, dtype=np.intp), patient]

    def _indices(self, seq: np.random.SeedSequence, n: int) -> np.ndarray:
        # A further child of the block's SeedSequence (the simulator spawned its own first),
        # drawn patient-major so patient j is the same row for every n > j: the common
        # random numbers that keep power monotone in N for the sample-size search.
        rng = np.random.default_rng(seq.spawn(1)[0])
        return rng.integers(0, self.n_pool, size=(n, STREAM_BLOCK)).T

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "n_pool": self.n_pool,
            "treatment_column": self.treatment_column,
            "experimental": self.experimental,
            "control": self.control,
        }
        if self.kind == "cox":
            out["horizon_months"] = self.horizon_months
            out["mean_conditional_log_hr"] = self.mean_log_hr
        if self.endpoint == "response":
            out["response_rates"] = self.response_rates
        return out


def _check_numeric_features(
    covariates: pd.DataFrame, model: Any, treatment_column: str, arms: tuple[Any, Any]
) -> None:
    """Text where the model was fitted on numbers, said by column (XGBoost's own message
    names DataFrame dtypes and ``enable_categorical``)."""
    categorical = set(model.categories_)
    for col in model.feature_names_:
        if col == treatment_column or col in categorical:
            continue
        s = covariates[col]
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            continue
        bad = s[s.notna() & pd.to_numeric(s, errors="coerce").isna()]
        found = f"holds text {sorted(map(str, bad.unique()))[:3]}" if len(bad) else "is text"
        raise ValueError(
            f"column {col!r} {found} but the model was fitted on numbers; expected numeric "
            "values (leave a missing value empty)"
        )
    if treatment_column not in categorical:
        text = [v for v in arms if isinstance(v, str)]
        if text:
            raise ValueError(
                f"treatment value(s) {text} are text but the model's column "
                f"{treatment_column!r} is numeric; expected the numbers it was fitted on "
                "(outcomes.treatment.experimental / control, e.g. 1 and 0)"
            )


# --------------------------------------------------------------------------- simulation
def _simulate_model_survival(
    spec: TrialDesignSpec, outcomes: ModelOutcomes, n: int, n_replicates: int, seed: int
) -> dict[str, Any]:
    """Model-based survival trials through the parametric simulator's own machinery.

    The simulator's draws (entry, unit exponential, dropout, arm) and its analysis
    (administrative censoring, event-driven cut, vectorized log-rank) are reused as they
    are; only the event time changes: with the placeholder design (HR 1, scale 1) the
    analysis takes the event time to be the draw it is given, so passing the model's
    T = S^{-1}(exp(-E)) in place of E simulates the model.
    """
    design = spec.trial_design(n)
    template = block_template(design)

    def draw(seq):
        entry, exp1, dropout, arm = survival_block_draws(design, seq, template)
        t = outcomes.draw_event_times(outcomes._indices(seq, n), arm, exp1)
        return entry, t, dropout, arm

    reps, _ = run_chunks(n, n_replicates, seed, draw, lambda *a: analyse_survival(design, *a))
    crit = critical_value(design.alpha, design.sided)
    reject = (reps["z"] <= -crit) if design.sided == 1 else (np.abs(reps["z"]) >= crit)
    power = float(reject.mean())
    mean_log_hr, hr_q = summarise_hr(reps["log_hr"])
    return {
        "power": power,
        "power_se": math.sqrt(power * (1 - power) / n_replicates),
        "mean_events": float(reps["events"].mean()),
        "median_duration_months": float(np.median(reps["duration"])),
        "mean_log_hr": mean_log_hr,
        "hr_quantiles": hr_q,
        "n_per_arm": mean_arms(reps),
    }


def _simulate_model_response(
    spec: TrialDesignSpec, outcomes: ModelOutcomes, n: int, n_replicates: int, seed: int
) -> dict[str, Any]:
    """Model-based response trials through the binary simulator's draws and z-test.

    The analysis calls a response when u < p with p = 0.5 (placeholder design); passing
    u' = 0.5 u / p_i makes that exactly u < p_i, the patient's model probability.
    """
    design = spec.trial_design(n)
    template = block_template(design)

    def draw(seq):
        u, arm = binary_block_draws(design, seq, template)
        p = outcomes.response_probability(outcomes._indices(seq, n), arm)
        return 0.5 * u / np.maximum(p, 1e-300), arm

    reps, _ = run_chunks(n, n_replicates, seed, draw, lambda *a: analyse_binary(design, *a))
    crit = critical_value(design.alpha, design.sided)
    reject = (reps["z"] >= crit) if design.sided == 1 else (np.abs(reps["z"]) >= crit)
    power = float(reject.mean())
    return {
        "power": power,
        "power_se": math.sqrt(power * (1 - power) / n_replicates),
        **_rd_summary(reps["risk_difference"]),
        "n_per_arm": mean_arms(reps),
    }


def _rd_summary(rd: np.ndarray) -> dict[str, Any]:
    finite = rd[np.isfinite(rd)]
    if finite.size == 0:
        return {
            "mean_risk_difference": math.nan,
            "rd_quantiles": {k: math.nan for k, _ in _QUANTILES},
        }
    qs = np.quantile(finite, [q for _, q in _QUANTILES])
    return {
        "mean_risk_difference": float(finite.mean()),
        "rd_quantiles": {k: float(v) for (k, _), v in zip(_QUANTILES, qs, strict=True)},
    }


def _simulate_parametric(
    spec: TrialDesignSpec, n: int, n_replicates: int, seed: int
) -> dict[str, Any]:
    design = spec.trial_design(n)
    if isinstance(design, SurvivalTrialDesign):
        r = simulate_survival_trial(design, n_replicates, seed)
        return {
            "power": r.power,
            "power_se": r.power_se,
            "mean_events": r.mean_events,
            "median_duration_months": r.median_duration_months,
            "mean_log_hr": r.mean_log_hr,
            "hr_quantiles": r.hr_quantiles,
            "n_per_arm": r.n_per_arm,
        }
    r = simulate_binary_trial(design, n_replicates, seed)
    return {
        "power": r.power,
        "power_se": r.power_se,
        "mean_risk_difference": r.mean_risk_difference,
        "rd_quantiles": r.risk_difference_quantiles,
        "n_per_arm": r.n_per_arm,
    }


def _search_n(power_at, target: float, guess: int) -> int:
    """Smallest N in [N_MIN, N_MAX] with power_at(N) >= target (bracket, then bisect).

    The model-based counterpart of :func:`~oncorwe.trials.simulate.find_sample_size`
    (which takes parametric designs only); the same common random numbers make the
    simulated power close to monotone in N.
    """
    guess = int(min(max(guess, N_MIN), N_MAX))
    if power_at(guess) >= target:
        hi, lo = guess, N_MIN - 1
        while hi > N_MIN:
            cand = max(N_MIN, int(hi / 1.3))
            if power_at(cand) >= target:
                hi = cand
            else:
                lo = cand
                break
        if hi == N_MIN:
            return hi
    else:
        lo, hi = guess, None
        while hi is None:
            if lo >= N_MAX:
                raise OncorweError(
                    f"simulated power {power_at(lo):.3f} at {N_MAX} patients is below "
                    f"target_power={target}; the model's treatment effect may be too small"
                )
            cand = min(N_MAX, math.ceil(lo * 1.3))
            if power_at(cand) >= target:
                hi = cand
            else:
                lo = cand
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if power_at(mid) >= target:
            hi = mid
        else:
            lo = mid
    return hi


# --------------------------------------------------------------------------- formulas
def _prob_event(spec: TrialDesignSpec, hr: float, n: int) -> float:
    """Allocation-weighted P(event observed by the analysis) of a fixed-time pfs design.

    Exponential control: :func:`~oncorwe.trials.design.prob_event_two_arms`. Weibull:
    with S the arm's survival, delta the dropout hazard, follow-up u ~ U[F, A + F],
    P = (1 / A) int_F^{A+F} G(u) du where G(u) = P(T <= min(u, C)) =
    1 - S(u) e^{-delta u} - delta int_0^u S(s) e^{-delta s} ds (integration by parts
    of int f e^{-delta s}; smooth even where the Weibull density is not), on a grid.
    """
    control = spec.outcomes.control
    a = spec.accrual.months if spec.accrual.months is not None else n / spec.accrual.rate_per_month
    f, delta, r = spec.followup_months, spec.dropout_hazard, spec.allocation.ratio
    if control.weibull_shape == 1.0:
        lam = math.log(2.0) / control.median_months
        return prob_event_two_arms(lam, hr, a, f, r, dropout_hazard=delta)
    k = control.weibull_shape
    scale = control.median_months / math.log(2.0) ** (1.0 / k)
    grid = np.linspace(0.0, a + f, 20_001)
    p_arm = []
    for h in (hr, 1.0):
        surv = np.exp(-h * (grid / scale) ** k)
        disc = np.exp(-delta * grid)
        g = 1.0 - surv * disc - delta * cumulative_trapezoid(surv * disc, grid, initial=0.0)
        if a == 0:
            p_arm.append(float(np.interp(f, grid, g)))
        else:
            tail = grid >= f
            p_arm.append(float(trapezoid(g[tail], grid[tail]) / a))
    return (r * p_arm[0] + p_arm[1]) / (1.0 + r)


def _formula_patients(spec: TrialDesignSpec, hr: float, events: float) -> int:
    """N with N * P(event | N) = events (P depends on N through accrual at a rate)."""
    if spec.accrual.months is not None:
        return math.ceil(events / _prob_event(spec, hr, 0))
    # N P(N) increases with N (longer accrual, longer follow-up): one root.
    g = lambda n: n * _prob_event(spec, hr, n) - events  # noqa: E731
    hi = 2.0 * events
    while g(hi) < 0:
        hi *= 2.0
        if hi > 1e9:
            raise ValueError("no sample size reaches the required events")
    return math.ceil(optimize.brentq(g, events, hi, xtol=1e-6))


def _signed_schoenfeld_power(spec: TrialDesignSpec, hr: float, events: float) -> float:
    """Schoenfeld power; one-sided tests count only benefit (HR < 1), as the simulator does.

    :func:`~oncorwe.trials.design.schoenfeld_power` is symmetric in ln HR; for a
    one-sided test and HR > 1 the rejection region is on the other side:
    Phi(-sqrt(r D) / (1 + r) |ln HR| - z_{1-alpha}).
    """
    r = spec.allocation.ratio
    if spec.sided == 2 or hr <= 1.0:
        return float(schoenfeld_power(hr, events, spec.alpha, r, spec.sided))
    shift = math.sqrt(r * events) / (1.0 + r) * math.log(hr)
    return float(norm.cdf(-shift - norm.ppf(1.0 - spec.alpha)))


def _survival_formula(
    spec: TrialDesignSpec, sim: dict[str, Any], n: int, power_for: float, hr: float
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "formula": "schoenfeld",
        "formula_hazard_ratio": hr,
        "formula_target_power": power_for,
        "formula_power": _signed_schoenfeld_power(spec, hr, sim["mean_events"]),
        "formula_events": None,
        "formula_sample_size": None,
    }
    if hr == 1.0 or not 0.0 < power_for < 1.0:
        return out
    d = schoenfeld_events(hr, spec.alpha, power_for, spec.allocation.ratio, spec.sided)
    out["formula_events"] = d
    if spec.target_events is not None:
        return out  # N does not set the power of an event-driven design
    if spec.outcomes.source == "model":
        # No closed form for the model's event distribution: divide by the simulated
        # share of patients with an event (exact for the simulated N, approximate for
        # another N when accrual is at a rate).
        out["formula_sample_size"] = math.ceil(d * n / sim["mean_events"])
    else:
        out["formula_sample_size"] = _formula_patients(spec, hr, d)
    return out


def _response_formula(
    spec: TrialDesignSpec, n: int, power_for: float, p0: float, p1: float
) -> dict[str, Any]:
    r = spec.allocation.ratio
    n_c, n_e = n / (1.0 + r), n * r / (1.0 + r)
    out: dict[str, Any] = {
        "formula": "two_proportion",
        "formula_rates": {"control": p0, "experimental": p1},
        "formula_target_power": power_for,
        "formula_power": None,
        "formula_events": None,
        "formula_sample_size": None,
    }
    if 0.0 < p0 < 1.0 and 0.0 < p1 < 1.0 and min(n_c, n_e) >= 2:
        if spec.sided == 2 or p1 > p0:
            out["formula_power"] = two_proportion_power(p0, p1, n_c, n_e, spec.alpha, spec.sided)
        else:
            # two_proportion_power is symmetric in p1 - p0; the one-sided test looks for
            # p1 > p0 only, so a harmful arm rejects in the far tail.
            pbar = (n_c * p0 + n_e * p1) / (n_c + n_e)
            se0 = math.sqrt(pbar * (1 - pbar) * (1 / n_c + 1 / n_e))
            se1 = math.sqrt(p0 * (1 - p0) / n_c + p1 * (1 - p1) / n_e)
            z = norm.ppf(1.0 - spec.alpha)
            out["formula_power"] = float(norm.cdf((p1 - p0 - z * se0) / se1))
    if p0 != p1 and 0.0 < power_for < 1.0:
        ss = two_proportion_sample_size(p0, p1, spec.alpha, power_for, r, spec.sided)
        out["formula_sample_size"] = ss["n_total"]
    return out


# --------------------------------------------------------------------------- run
def run_design(design: TrialDesignSpec, *, model_outcomes: ModelOutcomes | None = None) -> dict:
    """Simulate a trial design; report its operating characteristics beside the formulas.

    With ``sample_size``, ``design.replicates`` trials of that size are simulated. With
    ``target_power``, the smallest N whose simulated power reaches it is searched
    (parametric: :func:`~oncorwe.trials.simulate.find_sample_size`; model-based: the
    same bracket-and-bisect), each evaluation with ``design.replicates`` trials and the
    design's seed (common random numbers), and the trials at that N are reported.

    The analytic answers sit beside the simulation, for the same design:

    - pfs (Schoenfeld): ``formula_power`` = Phi(sqrt(r D) / (1 + r) |ln HR| -
      z_{1-alpha/s}) at the simulated mean events D; ``formula_events`` = the events
      Schoenfeld requires, and ``formula_sample_size`` = the patients needed for them
      (D / P-bar(event), :func:`~oncorwe.trials.design.sample_size_survival`'s method, by
      quadrature for a Weibull control), both for ``formula_target_power`` =
      ``target_power`` when set, else the simulated power. If the simulator and the
      formula agree, ``formula_events`` ~ ``mean_events`` and ``formula_sample_size`` ~
      ``n_patients``.
    - response: ``two_proportion_power`` at the simulated N, and
      ``two_proportion_sample_size`` for ``formula_target_power``.
    - Model-based designs use the model's marginal effect: HR exp(mean simulated log HR)
      (Peto), and for the sample size the simulated event share; response rates are the
      mean predicted probabilities of the pool under each arm.

    Parameters
    ----------
    design : TrialDesignSpec
    model_outcomes : ModelOutcomes, optional
        Required for (and only for) ``outcomes.source: model``.

    Returns
    -------
    dict
        JSON-safe (NaN -> None). Always: ``name``, ``endpoint``, ``source``, ``design``
        (the validated file), ``n_patients``, ``n_replicates``, ``seed``, ``power``,
        ``power_se``, ``n_per_arm``, ``sample_size`` (None without ``target_power``),
        ``sample_size_power``, ``sample_size_search`` (N -> power), ``formula``,
        ``formula_power``, ``formula_events``, ``formula_sample_size``,
        ``formula_target_power``, ``warnings``. pfs: ``mean_events``,
        ``median_duration_months``, ``hazard_ratio_distribution`` (``mean_log_hr`` and
        quantiles ``q2.5 ... q97.5`` of the estimated HR), ``formula_hazard_ratio``.
        response: ``risk_difference_distribution``, ``formula_rates``. Model-based:
        ``model`` (pool size, arms, the model's horizon and mean conditional log-HR).

    Raises
    ------
    OncorweError
        When ``model_outcomes`` is missing for a model-based design, given for a
        parametric one, or of the wrong endpoint; or when no N up to 100,000 reaches
        ``target_power``.

    Examples
    --------
    >>> spec = TrialDesignSpec.model_validate({
    ...     "name": "orr", "endpoint": "response", "sample_size": 300,
    ...     "outcomes": {"source": "parametric", "control_rate": 0.3,
    ...                  "experimental_rate": 0.45}, "replicates": 1000})
    >>> res = run_design(spec)
    >>> abs(res["power"] - res["formula_power"]) < 0.05
    True
    """
    if not isinstance(design, TrialDesignSpec):
        raise OncorweError(f"design must be a TrialDesignSpec, got {type(design).__name__}")
    model = design.outcomes.source == "model"
    if model and model_outcomes is None:
        raise OncorweError(
            f"design {design.name!r} has outcomes.source model: pass model_outcomes "
            "(ModelOutcomes.from_design(design, cohort, fitted_model)); on the command "
            "line, --cohort and --model"
        )
    if not model and model_outcomes is not None:
        raise OncorweError(
            f"design {design.name!r} has outcomes.source parametric; model_outcomes is "
            "used only with source model"
        )
    if model and model_outcomes.endpoint != design.endpoint:
        raise OncorweError(
            f"design {design.name!r} has endpoint {design.endpoint} but model_outcomes "
            f"holds a {model_outcomes.endpoint} model"
        )
    reps, seed = design.replicates, design.seed

    def simulate(n: int) -> dict[str, Any]:
        if not model:
            return _simulate_parametric(design, n, reps, seed)
        if design.endpoint == "pfs":
            return _simulate_model_survival(design, model_outcomes, n, reps, seed)
        return _simulate_model_response(design, model_outcomes, n, reps, seed)

    evaluations: dict[int, float] = {}
    if design.target_power is None:
        n = design.sample_size
        sim = simulate(n)
    elif not model:
        try:
            search = find_sample_size(
                design.trial_design(100),
                target_power=design.target_power,
                n_replicates=reps,
                seed=seed,
                n_min=N_MIN,
                n_max=N_MAX,
            )
        except ValueError as err:  # the simulated power stays below target up to N_MAX
            raise OncorweError(
                f"target_power: {design.target_power:g} is not reached by {N_MAX:,} "
                f"patients ({err}); expected a lower target_power or a larger effect"
            ) from err
        n, evaluations = search.n_patients, search.evaluations
        sim = simulate(n)  # same seed: reproduces the search's evaluation at n
    else:
        cache: dict[int, dict[str, Any]] = {}

        def power_at(k: int) -> float:
            if k not in cache:
                cache[k] = simulate(k)
            return cache[k]["power"]

        n = _search_n(power_at, design.target_power, _model_guess(design, model_outcomes))
        sim = cache[n]
        evaluations = {k: v["power"] for k, v in sorted(cache.items())}

    power_for = design.target_power if design.target_power is not None else sim["power"]
    out: dict[str, Any] = {
        "name": design.name,
        "endpoint": design.endpoint,
        "source": design.outcomes.source,
        "design": design.model_dump(mode="json"),
        "eligibility": design.eligibility_condition.describe() if design.eligibility else None,
        "n_patients": n,
        "n_replicates": reps,
        "seed": seed,
        "power": sim["power"],
        "power_se": sim["power_se"],
        "n_per_arm": sim["n_per_arm"],
        "sample_size": n if design.target_power is not None else None,
        "sample_size_power": sim["power"] if design.target_power is not None else None,
        "sample_size_search": evaluations,
        "warnings": [],
    }
    if design.endpoint == "pfs":
        out["mean_events"] = sim["mean_events"]
        out["median_duration_months"] = sim["median_duration_months"]
        out["hazard_ratio_distribution"] = {
            "mean_log_hr": sim["mean_log_hr"],
            **sim["hr_quantiles"],
        }
        if model:
            hr = math.exp(sim["mean_log_hr"]) if math.isfinite(sim["mean_log_hr"]) else 1.0
        else:
            hr = design.outcomes.hazard_ratio
        out.update(_survival_formula(design, sim, n, power_for, hr))
        if design.target_events is not None and sim["mean_events"] < design.target_events:
            out["warnings"].append(
                f"target_events={design.target_events}: the simulated trials have "
                f"{sim['mean_events']:.1f} events on average; a trial that never reaches "
                "the target (dropout, or events beyond the outcome model's follow-up) is "
                "analysed after its last event, so the power is that of fewer events"
            )
    else:
        out["risk_difference_distribution"] = {
            "mean": sim["mean_risk_difference"],
            **sim["rd_quantiles"],
        }
        if model:
            rates = model_outcomes.response_rates
            p0, p1 = rates["control"], rates["experimental"]
        else:
            p0, p1 = design.outcomes.control_rate, design.outcomes.experimental_rate
        out.update(_response_formula(design, n, power_for, p0, p1))
    if model:
        out["model"] = model_outcomes.summary()
        horizon = model_outcomes.horizon_months
        if design.endpoint == "pfs" and sim["median_duration_months"] > horizon:
            out["warnings"].append(
                f"the analysis (median {sim['median_duration_months']:.1f} months) runs past "
                f"the model's last event time ({horizon:.1f} months): later events cannot "
                "be simulated and are censored, so power is underestimated"
            )
    return jsonable(out)


def _model_guess(design: TrialDesignSpec, outcomes: ModelOutcomes) -> int:
    """Starting N for the model-based search: the formula answer of a 200-patient pilot.

    Refuses a model whose effect points the wrong way for a one-sided test (or is
    null): no N would reach the target and the search would run to 100,000 patients.
    """
    pilot_n = 200
    small = design.model_copy(update={"replicates": min(design.replicates, 1000)})
    if design.endpoint == "pfs":
        sim = _simulate_model_survival(small, outcomes, pilot_n, small.replicates, design.seed)
        log_hr = sim["mean_log_hr"]
        if not math.isfinite(log_hr) or sim["mean_events"] <= 0:
            raise OncorweError("the model gives no events in a 200-patient pilot trial")
        effect = f"the model's simulated HR is {math.exp(log_hr):.3f}"
        benefit = -log_hr
    else:
        rates = outcomes.response_rates
        effect = (
            f"the model's response rates are {rates['experimental']:.3f} (experimental) vs "
            f"{rates['control']:.3f} (control)"
        )
        benefit = rates["experimental"] - rates["control"]
    if benefit <= 0 and design.sided == 1:
        raise OncorweError(
            f"target_power cannot be reached: {effect}, and the one-sided test looks "
            "for a benefit of the experimental arm"
        )
    if abs(benefit) < 1e-3:
        raise OncorweError(f"target_power cannot be reached: {effect}, no effect to detect")
    if design.endpoint == "pfs":
        f = _survival_formula(design, sim, pilot_n, design.target_power, math.exp(log_hr))
    else:
        f = _response_formula(
            design, pilot_n, design.target_power, rates["control"], rates["experimental"]
        )
    return int(f["formula_sample_size"] or 100)
