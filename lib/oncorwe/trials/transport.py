"""Transport of a prediction model between populations or hospital groups.

A model is fitted on one population (``train``) and evaluated, as it is, on another
(``test``): external validation in OHDSI PatientLevelPrediction's sense (SCIENCE.md,
"Prediction model evaluation"), with the training data's apparent performance beside it
and the two recalibrations that a receiving site would try first.

Survival models (:func:`transport`) follow the library's convention: **a higher score
(linear predictor ``lp``) means a higher risk**, ``H(t | x) = H0(t) exp(lp(x))``.

- discrimination: Harrell's C (:func:`oncorwe.models.metrics.harrell_c`), with a Wald CI
  from its influence-function standard error (:func:`concordance_se`: C is a ratio of
  two U-statistics);
- calibration slope: the coefficient ``b`` of a Cox regression of the evaluation
  outcome on ``lp`` (1 is ideal; < 1 means predictions too extreme);
- calibration-in-the-large: observed / expected events by the horizon,
  ``O/E = sum_i 1[event_i, t_i <= h] / sum_i H0(min(t_i, h)) exp(lp_i)``, whose log is the
  intercept of a Poisson model with offset ``log H_i(min(t_i, h))`` (1 is ideal; > 1:
  the model under-predicts), with the Poisson CI ``exp(log(O/E) +- z / sqrt(O))``
  (Debray et al., BMJ 2017); beside it the Kaplan-Meier risk ``1 - S_KM(h)`` and the
  mean predicted risk ``mean_i (1 - exp(-H0(h) exp(lp_i)))``;
- the calibration curve: predicted against Kaplan-Meier risk at the horizon in groups
  of predicted risk (:func:`oncorwe.models.metrics.survival_calibration_at_horizon`);
- recalibration in the large: ``H0 -> (O/E) H0`` (slope kept);
- weak recalibration: ``lp -> b lp`` and ``H0`` re-estimated by Breslow on the
  evaluation data (intercept and slope).

Binary models (:func:`transport_binary`) use :mod:`oncorwe.models.metrics`: AUC,
calibration slope and intercept (``logit P(y) = a + b logit p``), calibration-in-the-
large, recalibration in the large (``logit p + a``) and weak recalibration
(``a + b logit p``).

Recalibrations are fitted on the evaluation data and reported there: their figures are
apparent (optimistic) for that data; hold part of it out to judge them honestly.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.exceptions import ConvergenceError, ConvergenceWarning
from scipy import special, stats
from sklearn.linear_model import LogisticRegression
from xgboost.core import XGBoostError

from oncorwe.compute.trainer import EstimatorTrainer
from oncorwe.core.io import jsonable
from oncorwe.core.roles import MAX_ABS_COVARIATE, absurd_values, horizon_refusal
from oncorwe.models.encoding import CovariateEncoder
from oncorwe.models.estimators import ResponseClassifier
from oncorwe.models.kaplan_meier import weighted_kaplan_meier
from oncorwe.models.metrics import (
    auc,
    brier,
    calibration_in_the_large,
    calibration_slope_intercept,
    harrell_c,
    survival_calibration_at_horizon,
)
from oncorwe.trials.survival import (
    breslow_baseline,
    cox_coefficient,
    cumulative_hazard_at,
)

__all__ = [
    "BinaryPerformance",
    "BinaryTransportResult",
    "SurvivalPerformance",
    "TransportResult",
    "binary_performance",
    "concordance_se",
    "survival_performance",
    "transport",
    "transport_binary",
    "transport_models",
]

SURVIVAL_MODELS = ("cox", "xgboost")
# "xgboost-cox" was the XGBoost model's first name; validation.py and older configs
# still pass it, so it stays accepted and is reported under the canonical name.
SURVIVAL_MODEL_ALIASES = {"xgboost-cox": "xgboost"}
MIN_ROWS = 10
BINARY_MODELS = ("xgboost", "logistic")


def _internal() -> Any:
    return field(default=None, repr=False, metadata={"export": False})


# --------------------------------------------------------------------------- survival
def _exported_dict(self) -> dict[str, Any]:
    """JSON-safe dict of a result's exported fields (NaN -> None)."""
    out: dict[str, Any] = {}
    for f in fields(self):
        if not f.metadata.get("export", True):
            continue
        v = getattr(self, f.name)
        out[f.name] = v.to_dict() if hasattr(v, "to_dict") else v
    return jsonable(out)


@dataclass(frozen=True)
class SurvivalPerformance:
    """Discrimination and calibration of a survival model's ``lp`` on one data set.

    Attributes
    ----------
    n, events : int
    horizon : float
    c_index : float
        Harrell's C, higher ``lp`` = higher risk.
    calibration_slope, slope_ci_low, slope_ci_high : float
        Cox coefficient of ``lp`` (Breslow ties) and its Wald CI.
    calibration_in_the_large : float
        Observed / expected events by the horizon.
    citl_intercept : float
        ``log(O/E)``, the Poisson-offset intercept.
    observed_risk, predicted_risk : float
        ``1 - S_KM(h)`` and the mean predicted ``1 - S(h | x)``.
    recalibrated_in_the_large : dict
        ``calibration_in_the_large`` (1 by construction) and ``predicted_risk`` after
        ``H0 -> (O/E) H0``.
    recalibrated : dict
        Weak recalibration: ``slope`` (the ``b`` applied), ``calibration_slope`` and
        ``calibration_in_the_large`` after it (1 by construction) and ``predicted_risk``.
    c_index_ci_low, c_index_ci_high : float
        Wald CI of C from :func:`concordance_se` (NaN when not computed).
    oe_ci_low, oe_ci_high : float
        Poisson CI of O/E: ``exp(log(O/E) -+ z / sqrt(O))``, O the events by the horizon.
    calibration_groups : list of dict
        Per group of predicted risk (tenths by default; fewer when the rows are few):
        ``group, n, events, predicted_risk, observed_risk`` (mean predicted
        ``1 - S(h | x)``, Kaplan-Meier ``1 - S(h)`` of the group).
    """

    n: int
    events: int
    horizon: float
    c_index: float
    calibration_slope: float
    slope_ci_low: float
    slope_ci_high: float
    calibration_in_the_large: float
    citl_intercept: float
    observed_risk: float
    predicted_risk: float
    recalibrated_in_the_large: dict[str, float]
    recalibrated: dict[str, float]
    c_index_ci_low: float = float("nan")
    c_index_ci_high: float = float("nan")
    oe_ci_low: float = float("nan")
    oe_ci_high: float = float("nan")
    calibration_groups: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN -> None)."""
        return jsonable(asdict(self))


def concordance_se(event: Any, time: Any, risk: Any, *, block: int = 512) -> float:
    """Influence-function standard error of Harrell's C (higher ``risk`` = higher risk).

    C is ``U_c / U_p``, two U-statistics over pairs: ``k_p(i, j)`` is 1 for a comparable
    pair (the shorter time is an event), ``k_c(i, j)`` is 1 for a concordant one and 1/2
    for a tie in risk. Hoeffding's projection gives each row the influence
    ``r_c(i) - C r_p(i)`` (``r`` its sums of the kernels over the other rows), and
    ``SE(C) = 2 sqrt(sum_i (r_c(i) - C r_p(i))^2) / sum_i r_p(i)``. Rows are compared
    ``block`` at a time (memory ``block x n``); the cost is O(n^2), a few hundredths of
    a second at 2,000 rows, where a bootstrap of lifelines' C would take seconds.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> lp = rng.normal(size=1000)
    >>> t = rng.exponential(np.exp(-lp))
    >>> round(concordance_se(np.ones(1000), t, lp), 3)
    0.009
    """
    ev = np.asarray(event, dtype=float).ravel()
    tm = np.asarray(time, dtype=float).ravel()
    rk = np.asarray(risk, dtype=float).ravel()
    if not ev.shape == tm.shape == rk.shape:
        raise ValueError("event, time and risk must have the same length")
    n = ev.size
    r_c, r_p = np.zeros(n), np.zeros(n)
    for start in range(0, n, block):
        sl = slice(start, min(start + block, n))
        ti, ei, ri = tm[sl, None], ev[sl, None], rk[sl, None]
        first = (ti < tm[None, :]) & (ei == 1)  # i failed first: comparable
        second = (tm[None, :] < ti) & (ev[None, :] == 1)  # j failed first
        tie = 0.5 * (ri == rk[None, :])
        conc = first * ((ri > rk[None, :]) + tie) + second * ((rk[None, :] > ri) + tie)
        r_c[sl] = conc.sum(axis=1)
        r_p[sl] = (first | second).sum(axis=1)
    total = r_p.sum()
    if total == 0:
        return float("nan")
    c = r_c.sum() / total
    return float(2.0 * np.sqrt(np.sum((r_c - c * r_p) ** 2)) / total)


def _calibration_groups(
    ev: np.ndarray, tm: np.ndarray, surv: np.ndarray, horizon: float, n_groups: int
) -> list[dict[str, Any]]:
    """Predicted against Kaplan-Meier risk at ``horizon`` by group of predicted risk
    (:func:`~oncorwe.models.metrics.survival_calibration_at_horizon`), as risks."""
    if ev.size < 2 * n_groups:
        n_groups = max(1, ev.size // 2)
    table = survival_calibration_at_horizon(ev, tm, surv, horizon, n_groups=n_groups)
    return [
        {
            "group": int(r.group),
            "n": int(r.n),
            "events": int(r.events),
            "predicted_risk": 1.0 - float(r.predicted),
            "observed_risk": 1.0 - float(r.observed),
        }
        for r in table.itertuples()
    ]


def _oe(ev: np.ndarray, tm: np.ndarray, lp: np.ndarray, h0t, h0c, horizon: float) -> float:
    observed = float(np.sum(ev * (tm <= horizon)))
    expected = float(np.sum(cumulative_hazard_at(h0t, h0c, np.minimum(tm, horizon)) * np.exp(lp)))
    return observed / expected if expected > 0 else float("nan")


def _mean_risk(lp: np.ndarray, h0_at_horizon: float) -> float:
    return float(np.mean(-np.expm1(-h0_at_horizon * np.exp(lp))))


def survival_performance(
    event: Any,
    time: Any,
    lp: Any,
    baseline_times: Any,
    baseline_cumhazard: Any,
    horizon: float,
    *,
    alpha: float = 0.05,
    uncertainty: bool = True,
    calibration_groups: int = 10,
) -> SurvivalPerformance:
    """Evaluate a proportional-hazards prediction ``H(t | x) = H0(t) exp(lp)`` on data.

    Parameters
    ----------
    event, time : array-like of shape (n,)
        The evaluation outcome (1 = event; months > 0).
    lp : array-like of shape (n,)
        Linear predictor, higher = higher risk.
    baseline_times, baseline_cumhazard : array-like of shape (k,)
        The model's cumulative baseline hazard ``H0`` as a right-continuous step
        (e.g. :func:`~oncorwe.trials.survival.breslow_baseline` on the training data).
    horizon : float
        Months.
    alpha : float, default 0.05
    uncertainty : bool, default True
        Compute C's CI (:func:`concordance_se`, O(n^2)); False leaves it NaN (the
        training rows' apparent C, say).
    calibration_groups : int, default 10
        Groups of predicted risk of the calibration curve.

    Returns
    -------
    SurvivalPerformance

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> lp = rng.normal(size=3000)
    >>> t = rng.exponential(np.exp(-lp))
    >>> e = np.ones(3000)
    >>> h0t, h0c = np.sort(t), np.sort(t)  # H0(t) = t: the true exponential baseline
    >>> perf = survival_performance(e, t, lp, h0t, h0c, horizon=1.0)
    >>> round(perf.calibration_slope, 1), round(perf.calibration_in_the_large, 1)
    (1.0, 1.0)
    """
    ev = np.asarray(event, dtype=float).ravel()
    tm = np.asarray(time, dtype=float).ravel()
    lpv = np.asarray(lp, dtype=float).ravel()
    h0t = np.asarray(baseline_times, dtype=float)
    h0c = np.asarray(baseline_cumhazard, dtype=float)
    if not ev.shape == tm.shape == lpv.shape:
        raise ValueError("event, time and lp must have the same length")
    z = stats.norm.ppf(1 - alpha / 2)
    slope, se = cox_coefficient(ev, tm, lpv)
    oe = _oe(ev, tm, lpv, h0t, h0c, horizon)
    h0_h = float(cumulative_hazard_at(h0t, h0c, horizon))
    observed = float(1.0 - weighted_kaplan_meier(ev, tm).at(horizon)[0])

    # weak recalibration: slope b, then the baseline re-estimated on these data
    lp_b = slope * lpv
    rt, rc = breslow_baseline(ev, tm, lp_b)
    c_index = harrell_c(ev, tm, lpv)
    c_se = concordance_se(ev, tm, lpv) if uncertainty else float("nan")
    o_events = float(np.sum(ev * (tm <= horizon)))
    oe_half = z / math.sqrt(o_events) if o_events > 0 else float("nan")
    return SurvivalPerformance(
        n=int(ev.size),
        events=int(ev.sum()),
        horizon=float(horizon),
        c_index=c_index,
        calibration_slope=slope,
        slope_ci_low=slope - z * se,
        slope_ci_high=slope + z * se,
        calibration_in_the_large=oe,
        citl_intercept=float(np.log(oe)) if oe > 0 else float("nan"),
        observed_risk=observed,
        predicted_risk=_mean_risk(lpv, h0_h),
        recalibrated_in_the_large={
            "calibration_in_the_large": _oe(ev, tm, lpv, h0t, h0c * oe, horizon),
            "predicted_risk": _mean_risk(lpv, h0_h * oe),
            "observed_risk": observed,
        },
        recalibrated={
            "slope": slope,
            "calibration_slope": cox_coefficient(ev, tm, lp_b)[0],
            "calibration_in_the_large": _oe(ev, tm, lp_b, rt, rc, horizon),
            "predicted_risk": _mean_risk(lp_b, float(cumulative_hazard_at(rt, rc, horizon))),
            "observed_risk": observed,
        },
        c_index_ci_low=float(np.clip(c_index - z * c_se, 0.0, 1.0)),
        c_index_ci_high=float(np.clip(c_index + z * c_se, 0.0, 1.0)),
        oe_ci_low=oe * math.exp(-oe_half),
        oe_ci_high=oe * math.exp(oe_half),
        calibration_groups=_calibration_groups(
            ev, tm, np.exp(-h0_h * np.exp(lpv)), horizon, calibration_groups
        ),
    )


@dataclass
class TransportResult:
    """A survival model fitted on ``train`` and evaluated on ``test``.

    Attributes
    ----------
    model : str
    horizon_months : float
    n_train, n_test : int
    c_index, calibration_slope, calibration_in_the_large : float
        On ``test`` (copies of ``test_performance``'s, for one-line reports).
    observed_risk, predicted_risk : float
        On ``test``, at the horizon.
    test_performance, train_performance : SurvivalPerformance
        External and apparent performance.
    lp_train, lp_test : ndarray
        Linear predictors (not exported).
    baseline_times, baseline_cumhazard : ndarray
        Breslow ``H0`` from the training data (not exported).
    """

    model: str
    horizon_months: float
    n_train: int
    n_test: int
    c_index: float
    calibration_slope: float
    calibration_in_the_large: float
    observed_risk: float
    predicted_risk: float
    test_performance: SurvivalPerformance
    train_performance: SurvivalPerformance
    lp_train: np.ndarray = _internal()
    lp_test: np.ndarray = _internal()
    baseline_times: np.ndarray = _internal()
    baseline_cumhazard: np.ndarray = _internal()

    to_dict = _exported_dict


def _check_frame(frame: pd.DataFrame, label: str, named: dict[str, Sequence[str]]) -> None:
    for role, cols in named.items():
        for col in cols:
            if col not in frame.columns:
                raise ValueError(f"column {col!r} ({role}) is not in the {label} frame")


def _survival_outcome(frame: pd.DataFrame, label: str, time: str, event: str):
    tm = pd.to_numeric(frame[time], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(tm) | (tm <= 0)
    if bad.any():
        raise ValueError(
            f"column {time!r} (time) must be finite and > 0; {int(bad.sum())} row(s) of the "
            f"{label} frame are not"
        )
    ev = pd.to_numeric(frame[event], errors="coerce").to_numpy(dtype=float)
    if not np.isin(ev, (0.0, 1.0)).all():
        raise ValueError(f"column {event!r} (event) must be 0/1 in the {label} frame")
    return ev, tm


def _canonical_model(model: str) -> str:
    name = SURVIVAL_MODEL_ALIASES.get(model, model)
    if name not in SURVIVAL_MODELS:
        accepted = SURVIVAL_MODELS + tuple(SURVIVAL_MODEL_ALIASES)
        raise ValueError(f"model must be one of {accepted}; got {model!r}")
    return name


def _check_horizon(horizon_months: float) -> float:
    try:
        h = float(horizon_months)
    except (TypeError, ValueError):
        raise ValueError(
            f"horizon_months must be a number of months; got {horizon_months!r}"
        ) from None
    if not math.isfinite(h) or h <= 0:
        raise ValueError(f"horizon_months must be a finite number of months > 0; got {h:g}")
    return h


def _check_outcome(
    ev: np.ndarray, tm: np.ndarray, label: str, time: str, event: str, horizon: float
) -> None:
    """Refuse outcomes on which the fit or the evaluation would be undefined.

    Each check stands for a failure that would otherwise surface as a lifelines or
    XGBoost traceback, or as a silent NaN in the report, far from its cause.
    """
    n = int(ev.size)
    if n < MIN_ROWS:
        raise ValueError(f"the {label} frame has {n} row(s); transport needs at least {MIN_ROWS}")
    if ev.sum() == 0:
        raise ValueError(
            f"column {event!r} (event) has no events in the {label} frame (every row is "
            "censored): neither a model nor its calibration can be estimated"
        )
    refusal = horizon_refusal(
        horizon, tm, key="horizon_months", column=time, where=f" of the {label} frame"
    )
    if refusal:
        raise ValueError(refusal)
    longest = float(tm.max())
    # Harrell's C compares a row with an event to a row still at risk later: with
    # every event at one time and no follow-up after it, no pair can be ordered
    if float(tm[ev == 1].min()) >= longest:
        raise ValueError(
            f"column {time!r} of the {label} frame has every event at the same time "
            f"({longest:g} months) and no follow-up after it: no pair of rows can be "
            "ordered, so the C-index is undefined"
        )


def _check_covariates(enc: CovariateEncoder, frame: pd.DataFrame, label: str) -> None:
    # NaN is missing (imputed or routed by XGBoost); +-inf and overflow-sized values
    # are not, and would otherwise turn the fit into NaNs or a lifelines traceback
    for col in enc.numeric_:
        try:
            x = pd.to_numeric(frame[col], errors="raise").to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise ValueError(
                f"column {col!r} (covariate) must be numeric in the {label} frame, as it "
                "is in the train frame"
            ) from None
        bad = absurd_values(x)
        if bad.any():
            raise ValueError(
                f"column {col!r} (covariate) has {int(bad.sum())} infinite or absurd "
                f"value(s) (|x| > {MAX_ABS_COVARIATE:.3g}) in the {label} frame, e.g. "
                f"{x[bad][0]:g}; recode them as missing or fix their units"
            )


# The XGBoost Cox model of a transport check (``survival:cox``); a federated or Dask
# trainer leaves out what is its own (device, threads), in this process it subsamples as
# SurvivalModel does by default.
XGBOOST_COX = {
    "n_estimators": 300,
    "learning_rate": 0.05,
    "max_depth": 3,
    "min_child_weight": 5.0,
    "reg_lambda": 5.0,
    "device": "cpu",
}


def _xgboost_cox_margins(enc, train, test, ev_tr, tm_tr, covariates, groups, n_jobs, seed, trainer):
    """Fit the XGBoost Cox model on ``train`` through ``trainer`` (default in this
    process) and return its margins (log hazard ratios) on ``train`` and ``test``."""
    trainer = EstimatorTrainer() if trainer is None else trainer
    site = trainer.site_column
    frame = enc.xgboost_frame(train).assign(_event=ev_tr, _time=tm_tr)
    if site in train.columns and site not in frame.columns:
        frame[site] = train[site].astype(str).to_numpy()
    try:
        tm = trainer.fit(
            "cox",
            frame,
            features=list(covariates),
            label=("_event", "_time"),
            params={**XGBOOST_COX, "n_jobs": n_jobs, "random_state": seed},
            groups=None if groups is None else train[groups].to_numpy(),
        )
    except XGBoostError as err:
        # keep XGBoost's first line only: the rest is a C++ stack trace
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unknown error"
        raise ValueError(
            f"the XGBoost model could not be fitted on the train frame: {first}"
        ) from None
    # XGBoost's float32 margins, on every backend
    return tm.predict_margin(enc.xgboost_frame(train)), tm.predict_margin(enc.xgboost_frame(test))


def transport(
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    time: str,
    event: str,
    covariates: Sequence[str],
    categorical: Sequence[str] = (),
    model: str = "xgboost",
    horizon_months: float = 12.0,
    penalizer: float = 0.01,
    groups: str | None = None,
    n_jobs: int = 2,
    seed: int = 0,
    trainer: Any = None,
) -> TransportResult:
    """Fit a survival model on ``train`` and evaluate it, unchanged, on ``test``.

    Parameters
    ----------
    train, test : DataFrame
        Rows of two populations (e.g. hospital groups), with the same columns.
    time, event : str
        PFS/OS months (> 0) and event (1 = event, 0 = censored).
    covariates : sequence of str
        Baseline predictors; object columns and ``categorical`` are one-hot encoded (cox)
        or native categories (XGBoost).
    categorical : sequence of str, default ()
    model : {"xgboost", "cox"}, default "xgboost"
        ``"xgboost"``: :class:`~oncorwe.models.estimators.SurvivalModel`
        (``survival:cox``, 300 depth-3 trees, learning rate 0.05, lambda 5), ``lp`` its
        margin; ``"xgboost-cox"`` is accepted as an alias (its former name) and
        reported as ``"xgboost"``. ``"cox"``: lifelines
        ``CoxPHFitter(penalizer=penalizer)`` (ridge) on standardized one-hot covariates,
        median-imputed with missing indicators, ``lp`` the fitted ``x' beta``.
    horizon_months : float, default 12
        Must be > 0 and no later than the longest follow-up of either frame.
    penalizer : float, default 0.01
        Ridge penalty of the lifelines Cox model.
    groups : str, optional
        Patient column of ``train``, for XGBoost's early-stopping split (whole patients).
    n_jobs : int, default 2
        XGBoost threads.
    seed : int, default 0
    trainer : oncorwe.compute.trainer.Trainer, optional
        ``"xgboost"`` through the stage's trainer (``compute.training``; ``train``
        holds its site column): the same trees for 300 rounds, no early stopping, risk
        sets over every site. Default: in-process XGBoost.

    Returns
    -------
    TransportResult
        The baseline ``H0`` is Breslow's on the training rows for both models.

    Raises
    ------
    ValueError
        With a message naming the column at fault, before any model is fitted, when:
        a column is missing; ``time`` is not finite and > 0 or ``event`` not 0/1;
        ``horizon_months`` is not > 0 or is beyond the longest follow-up of a frame;
        a frame has fewer than 10 rows, no events, or every event at one time with no
        follow-up after it (no pair for the C-index); a numeric covariate is infinite
        or absurd (``|x| > 3.4e38``, past float32). Also when the lifelines Cox model does not
        converge or XGBoost fails, in place of their tracebacks.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> def frame(n):
    ...     x = rng.normal(size=n)
    ...     return pd.DataFrame({"x": x, "t": rng.exponential(np.exp(-x)), "e": 1})
    >>> res = transport(frame(1500), frame(1500), time="t", event="e", covariates=["x"],
    ...                 model="cox", horizon_months=1.0)
    >>> 0.8 < res.calibration_slope < 1.2
    True
    """
    model = _canonical_model(model)
    horizon_months = _check_horizon(horizon_months)
    covariates = list(covariates)
    named = {"time": [time], "event": [event], "covariates": covariates}
    _check_frame(train, "train", {**named, "groups": [groups] if groups else []})
    _check_frame(test, "test", named)
    ev_tr, tm_tr = _survival_outcome(train, "train", time, event)
    ev_te, tm_te = _survival_outcome(test, "test", time, event)
    _check_outcome(ev_tr, tm_tr, "train", time, event, horizon_months)
    _check_outcome(ev_te, tm_te, "test", time, event, horizon_months)
    enc = CovariateEncoder(covariates, categorical).fit(train)
    _check_covariates(enc, train, "train")
    _check_covariates(enc, test, "test")

    if model == "cox":
        design = enc.standardizer(train)
        x_tr = design(train)
        df = pd.DataFrame(x_tr, columns=[f"x{j}" for j in range(x_tr.shape[1])])
        df["T"], df["E"] = tm_tr, ev_tr
        try:
            with warnings.catch_warnings():
                # lifelines warns and then raises on the same problem; the raise is kept
                warnings.simplefilter("ignore", ConvergenceWarning)
                cph = CoxPHFitter(penalizer=penalizer).fit(df, duration_col="T", event_col="E")
        except (ConvergenceError, np.linalg.LinAlgError, FloatingPointError, ZeroDivisionError):
            # lifelines' own message points at its internals; the user needs the cause
            raise ValueError(
                f"the Cox model did not converge on the train frame ({len(train)} rows, "
                f"{int(ev_tr.sum())} events, covariates {covariates!r}): a covariate may "
                "separate events from censored rows perfectly, be constant, or duplicate "
                "another; drop or merge it, or raise penalizer"
            ) from None
        beta = cph.params_.to_numpy()
        if not np.all(np.isfinite(beta)):
            raise ValueError(
                f"the Cox model's coefficients are not finite on the train frame "
                f"(covariates {covariates!r}); raise penalizer or drop a covariate"
            )
        lp_tr, lp_te = x_tr @ beta, design(test) @ beta
    else:
        lp_tr, lp_te = _xgboost_cox_margins(
            enc, train, test, ev_tr, tm_tr, covariates, groups, n_jobs, seed, trainer
        )
    if not (np.all(np.isfinite(lp_tr)) and np.all(np.isfinite(lp_te))):
        raise ValueError(
            f"the {model} model's linear predictor is not finite (covariates {covariates!r}); "
            "check the covariates for extreme values"
        )
    # centre on the training mean: H0 then refers to an average training patient
    centre = float(np.mean(lp_tr))
    lp_tr, lp_te = lp_tr - centre, lp_te - centre
    h0t, h0c = breslow_baseline(ev_tr, tm_tr, lp_tr)
    perf_te = survival_performance(ev_te, tm_te, lp_te, h0t, h0c, horizon_months)
    # the apparent performance needs no CI (and C's SE is O(n^2) in the larger part)
    perf_tr = survival_performance(ev_tr, tm_tr, lp_tr, h0t, h0c, horizon_months, uncertainty=False)
    return TransportResult(
        model=model,
        horizon_months=float(horizon_months),
        n_train=int(len(train)),
        n_test=int(len(test)),
        c_index=perf_te.c_index,
        calibration_slope=perf_te.calibration_slope,
        calibration_in_the_large=perf_te.calibration_in_the_large,
        observed_risk=perf_te.observed_risk,
        predicted_risk=perf_te.predicted_risk,
        test_performance=perf_te,
        train_performance=perf_tr,
        lp_train=lp_tr,
        lp_test=lp_te,
        baseline_times=h0t,
        baseline_cumhazard=h0c,
    )


def transport_models(
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    models: Sequence[str] = ("cox", "xgboost"),
    **kwargs: Any,
) -> dict[str, TransportResult]:
    """Fit several survival models on ``train`` and evaluate each on ``test``.

    Why: a transported model's calibration slope mixes two causes, the populations'
    difference and the model's own overfitting (boosted trees' margins are often too
    extreme, slope < 1, where a Cox PH model on the same rows is near 1). Fitting both
    on the same rows, horizon and checks puts them side by side, so that a receiving
    site can tell the two apart; it backs the CLI's ``--model cox|xgboost|both``.

    Parameters
    ----------
    train, test : DataFrame
        As in :func:`transport`.
    models : sequence of str, default ("cox", "xgboost")
        Names accepted by :func:`transport` (``"xgboost-cox"`` as an alias of
        ``"xgboost"``); a model named twice is fitted once.
    **kwargs
        Every other keyword of :func:`transport` (``time``, ``event``, ``covariates``,
        ``categorical``, ``horizon_months``, ``penalizer``, ``groups``, ``n_jobs``,
        ``seed``, ``trainer``), the same for every model.

    Returns
    -------
    dict of str to TransportResult
        Keyed by the canonical model name (``"cox"``, ``"xgboost"``), in the order of
        ``models``.

    Raises
    ------
    ValueError
        As :func:`transport`; also for an empty ``models``, a ``model=`` keyword, or an
        unknown name (raised before anything is fitted).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> def frame(n):
    ...     x = rng.normal(size=n)
    ...     return pd.DataFrame({"x": x, "t": rng.exponential(np.exp(-x)), "e": 1})
    >>> res = transport_models(frame(500), frame(500), models=["cox"], time="t",
    ...                        event="e", covariates=["x"], horizon_months=1.0)
    >>> list(res)
    ['cox']
    """
    if "model" in kwargs:
        raise ValueError("transport_models takes models=[...], not model=")
    if isinstance(models, str):
        models = [models]
    # canonical names first, so that a typo fails before a long fit and an alias
    # named beside its model is not fitted twice
    names = list(dict.fromkeys(_canonical_model(m) for m in models))
    if not names:
        raise ValueError(f"models must name at least one of {SURVIVAL_MODELS}")
    return {name: transport(train, test, model=name, **kwargs) for name in names}


# --------------------------------------------------------------------------- binary
@dataclass(frozen=True)
class BinaryPerformance:
    """Discrimination and calibration of predicted probabilities on one data set.

    Attributes
    ----------
    n, events : int
    auc, brier : float
    calibration_slope, calibration_intercept : float
        ``b`` and ``a`` of ``logit P(y) = a + b logit p``.
    observed_expected, citl_intercept : float
        ``sum y / sum p`` and ``a`` of ``logit P(y) = a + logit p``.
    recalibrated_in_the_large : dict
        After ``logit p -> logit p + citl_intercept``: ``observed_expected``,
        ``citl_intercept`` (0), ``calibration_slope`` (unchanged), ``brier``.
    recalibrated : dict
        Weak recalibration ``logit p -> a + b logit p``: ``calibration_slope`` (1),
        ``calibration_intercept`` (0), ``observed_expected``, ``brier``.
    """

    n: int
    events: int
    auc: float
    brier: float
    calibration_slope: float
    calibration_intercept: float
    observed_expected: float
    citl_intercept: float
    recalibrated_in_the_large: dict[str, float]
    recalibrated: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN -> None)."""
        return jsonable(asdict(self))


def binary_performance(y: Any, p: Any) -> BinaryPerformance:
    """AUC, Brier, calibration and the two recalibrations of ``p`` against ``y``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.05, 0.95, 4000)
    >>> y = (rng.random(4000) < p).astype(int)
    >>> round(binary_performance(y, p).calibration_slope, 1)
    1.0
    """
    ya = np.asarray(y, dtype=float).ravel()
    pa = np.asarray(p, dtype=float).ravel()
    citl = calibration_in_the_large(ya, pa)
    cal = calibration_slope_intercept(ya, pa)
    lg = special.logit(np.clip(pa, 1e-12, 1 - 1e-12))
    p_large = special.expit(lg + citl["intercept"])
    p_weak = special.expit(cal["intercept"] + cal["slope"] * lg)
    citl_large = calibration_in_the_large(ya, p_large)
    cal_weak = calibration_slope_intercept(ya, p_weak)
    return BinaryPerformance(
        n=int(ya.size),
        events=int(ya.sum()),
        auc=auc(ya, pa),
        brier=brier(ya, pa),
        calibration_slope=cal["slope"],
        calibration_intercept=cal["intercept"],
        observed_expected=citl["observed_expected"],
        citl_intercept=citl["intercept"],
        recalibrated_in_the_large={
            "observed_expected": citl_large["observed_expected"],
            "citl_intercept": citl_large["intercept"],
            "calibration_slope": calibration_slope_intercept(ya, p_large)["slope"],
            "brier": brier(ya, p_large),
        },
        recalibrated={
            "calibration_slope": cal_weak["slope"],
            "calibration_intercept": cal_weak["intercept"],
            "observed_expected": calibration_in_the_large(ya, p_weak)["observed_expected"],
            "brier": brier(ya, p_weak),
        },
    )


@dataclass
class BinaryTransportResult:
    """A binary response model fitted on ``train`` and evaluated on ``test``.

    Attributes
    ----------
    model : str
    n_train, n_test : int
        Rows with a non-missing outcome.
    auc, calibration_slope, calibration_intercept, observed_expected : float
        On ``test``.
    test_performance, train_performance : BinaryPerformance
    p_train, p_test : ndarray
        Predicted probabilities (not exported).
    """

    model: str
    n_train: int
    n_test: int
    auc: float
    calibration_slope: float
    calibration_intercept: float
    observed_expected: float
    test_performance: BinaryPerformance
    train_performance: BinaryPerformance
    p_train: np.ndarray = _internal()
    p_test: np.ndarray = _internal()

    to_dict = _exported_dict


def transport_binary(
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    outcome: str,
    covariates: Sequence[str],
    categorical: Sequence[str] = (),
    model: str = "xgboost",
    n_jobs: int = 2,
    seed: int = 0,
) -> BinaryTransportResult:
    """Fit a binary response model on ``train`` and evaluate it, unchanged, on ``test``.

    Rows with a missing ``outcome`` are left out of both fits and evaluations.

    Parameters
    ----------
    train, test : DataFrame
    outcome : str
        0/1 column (missing allowed).
    covariates, categorical : sequence of str
        As in :func:`transport`.
    model : {"xgboost", "logistic"}, default "xgboost"
        :class:`~oncorwe.models.estimators.ResponseClassifier` (300 depth-3 trees,
        learning rate 0.05, lambda 5) or an L2 (C=1) logistic regression on standardized
        one-hot covariates.
    n_jobs : int, default 2
    seed : int, default 0

    Returns
    -------
    BinaryTransportResult

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> def frame(n):
    ...     x = rng.normal(size=n)
    ...     return pd.DataFrame({"x": x, "y": (rng.random(n) < 1 / (1 + np.exp(-x))) * 1})
    >>> res = transport_binary(frame(2000), frame(2000), outcome="y", covariates=["x"],
    ...                        model="logistic")
    >>> 0.8 < res.calibration_slope < 1.2
    True
    """
    if model not in BINARY_MODELS:
        raise ValueError(f"model must be one of {BINARY_MODELS}; got {model!r}")
    covariates = list(covariates)
    named = {"outcome": [outcome], "covariates": covariates}
    _check_frame(train, "train", named)
    _check_frame(test, "test", named)
    frames = []
    for label, frame in (("train", train), ("test", test)):
        y = pd.to_numeric(frame[outcome], errors="coerce")
        ok = y.notna().to_numpy()
        if not np.isin(y[ok], (0.0, 1.0)).all():
            raise ValueError(f"column {outcome!r} (outcome) must be 0/1 in the {label} frame")
        if np.unique(y[ok]).size < 2:
            raise ValueError(f"column {outcome!r} (outcome) has a single class in {label}")
        frames.append((frame.loc[ok], y[ok].to_numpy(dtype=int)))
    (tr, y_tr), (te, y_te) = frames
    enc = CovariateEncoder(covariates, categorical).fit(tr)
    if model == "logistic":
        design = enc.standardizer(tr)
        clf = LogisticRegression(C=1.0, solver="newton-cholesky", max_iter=200)
        clf.fit(design(tr), y_tr)
        p_tr, p_te = clf.predict_proba(design(tr))[:, 1], clf.predict_proba(design(te))[:, 1]
    else:
        rc = ResponseClassifier(
            n_estimators=300,
            learning_rate=0.05,
            max_depth=3,
            min_child_weight=5.0,
            reg_lambda=5.0,
            device="cpu",
            n_jobs=n_jobs,
            random_state=seed,
        )
        rc.fit(enc.xgboost_frame(tr), y_tr)
        p_tr = rc.predict_proba(enc.xgboost_frame(tr))[:, 1]
        p_te = rc.predict_proba(enc.xgboost_frame(te))[:, 1]
    perf_te, perf_tr = binary_performance(y_te, p_te), binary_performance(y_tr, p_tr)
    return BinaryTransportResult(
        model=model,
        n_train=int(len(tr)),
        n_test=int(len(te)),
        auc=perf_te.auc,
        calibration_slope=perf_te.calibration_slope,
        calibration_intercept=perf_te.calibration_intercept,
        observed_expected=perf_te.observed_expected,
        test_performance=perf_te,
        train_performance=perf_tr,
        p_train=p_tr,
        p_test=p_te,
    )
