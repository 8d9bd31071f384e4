"""Analytic sample-size and power formulas for two-arm trials.

Time-to-event endpoints use Schoenfeld's log-rank formula for the number of events and
the exponential model with uniform accrual for the probability that a patient's event is
observed by the analysis (the two pieces of the Lachin–Foulkes / rpact calculation
without its variance refinements). Binary endpoints use the normal approximation to the
two-proportion z-test with the pooled variance under the null (R's ``power.prop.test``
for 1:1 allocation, two-sided).

Conventions
-----------
- ``allocation`` is the ratio r = n_experimental / n_control (2.0 means 2:1).
- ``alpha`` is the one-sided level when ``sided=1``; with ``sided=2`` the test is run
  at ``alpha / 2`` in each tail. Power counts only the tail of the hypothesised effect
  (the other tail's contribution is negligible at any useful power).
- Formulas are symmetric in the direction of the effect: HR 0.7 and HR 1/0.7 need the
  same number of events; p1 = 0.3 vs p0 = 0.2 the same patients as 0.2 vs 0.3.
- Time is in months; a hazard is per month; median = ln 2 / hazard for the exponential.

Example
-------
>>> round(schoenfeld_events(0.7, alpha=0.025, power=0.9))
330
>>> import math; math.ceil(schoenfeld_events(0.7, alpha=0.025, power=0.8))
247
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

__all__ = [
    "hazard_from_median",
    "minimum_detectable_hr",
    "prob_event_exponential",
    "prob_event_two_arms",
    "sample_size_survival",
    "schoenfeld_events",
    "schoenfeld_power",
    "two_proportion_power",
    "two_proportion_sample_size",
]


# --------------------------------------------------------------------------- validation
def check_hr(hr: float) -> float:
    hr = float(hr)
    if not (hr > 0 and math.isfinite(hr)):
        raise ValueError(f"hr must be a finite number > 0, got {hr!r}")
    return hr


def check_alpha(alpha: float, name: str = "alpha") -> float:
    alpha = float(alpha)
    if not 0 < alpha < 0.5:
        raise ValueError(f"{name} must be in (0, 0.5), got {alpha!r}")
    return alpha


def check_power(power: float) -> float:
    power = float(power)
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power!r}")
    return power


def _check_allocation(allocation: float) -> float:
    allocation = float(allocation)
    if not (allocation > 0 and math.isfinite(allocation)):
        raise ValueError(
            f"allocation (experimental:control ratio) must be a finite number > 0, "
            f"got {allocation!r}"
        )
    return allocation


def check_sided(sided: int) -> int:
    if sided not in (1, 2):
        raise ValueError(f"sided must be 1 or 2, got {sided!r}")
    return int(sided)


def check_positive(name: str, value: float, allow_zero: bool = False) -> float:
    value = float(value)
    ok = value >= 0 if allow_zero else value > 0
    if not (ok and math.isfinite(value)):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return value


def check_probability(name: str, value: float) -> float:
    value = float(value)
    if not 0 < value < 1:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return value


def _z_alpha(alpha: float, sided: int) -> float:
    """Critical value z_{1 - alpha/sided} of the standard normal."""
    return float(norm.ppf(1.0 - alpha / sided))


# ------------------------------------------------------------------------ survival
def hazard_from_median(median_months: float) -> float:
    """Exponential hazard per month with the given median: lambda = ln 2 / median."""
    median_months = check_positive("median_months", median_months)
    return math.log(2.0) / median_months


def schoenfeld_events(
    hr: float,
    alpha: float = 0.025,
    power: float = 0.9,
    allocation: float = 1.0,
    sided: int = 1,
) -> float:
    """Number of events a log-rank test needs (Schoenfeld 1981).

    .. math::

        D = \\frac{(1 + r)^2 (z_{1-\\alpha/s} + z_{1-\\beta})^2}{r (\\ln \\mathrm{HR})^2}

    with r = ``allocation`` (experimental:control) and s = ``sided``.

    Parameters
    ----------
    hr : float
        Hazard ratio experimental / control under the alternative, > 0 and != 1.
    alpha : float
        Significance level in (0, 0.5); one-sided when ``sided=1``.
    power : float
        Target power 1 - beta in (0, 1).
    allocation : float
        r = n_experimental / n_control, > 0.
    sided : {1, 2}
        With 2 the critical value is z_{1 - alpha/2}.

    Returns
    -------
    float
        Required events (not rounded; take ``math.ceil`` for a design).

    Examples
    --------
    >>> import math
    >>> math.ceil(schoenfeld_events(0.7, alpha=0.025, power=0.9))
    331
    """
    hr = check_hr(hr)
    if hr == 1.0:
        raise ValueError("hr must differ from 1 to size a trial, got 1.0")
    alpha, power = check_alpha(alpha), check_power(power)
    r, sided = _check_allocation(allocation), check_sided(sided)
    z = _z_alpha(alpha, sided) + float(norm.ppf(power))
    return (1.0 + r) ** 2 * z**2 / (r * math.log(hr) ** 2)


def schoenfeld_power(
    hr: float,
    events: float | np.ndarray,
    alpha: float = 0.025,
    allocation: float = 1.0,
    sided: int = 1,
) -> float | np.ndarray:
    """Power of the log-rank test after ``events`` events (inverse of Schoenfeld).

    .. math::

        1 - \\beta = \\Phi\\left( \\frac{\\sqrt{r D}}{1 + r} \\lvert\\ln \\mathrm{HR}\\rvert
                     - z_{1-\\alpha/s} \\right)

    Parameters
    ----------
    hr : float
        Hazard ratio under the alternative, > 0.
    events : float or array_like
        Number of events D (>= 0); an array gives one power per entry.
    alpha, allocation, sided
        As in :func:`schoenfeld_events`.

    Returns
    -------
    float or ndarray
        Power, same shape as ``events``.

    Examples
    --------
    >>> round(float(schoenfeld_power(0.7, 331)), 3)
    0.901
    """
    hr = check_hr(hr)
    alpha, r, sided = check_alpha(alpha), _check_allocation(allocation), check_sided(sided)
    d = np.asarray(events, dtype=float)
    if np.any(d < 0) or not np.all(np.isfinite(d)):
        raise ValueError("events must be finite and >= 0")
    out = norm.cdf(np.sqrt(r * d) / (1.0 + r) * abs(math.log(hr)) - _z_alpha(alpha, sided))
    return float(out) if out.ndim == 0 else out


def minimum_detectable_hr(
    events: float,
    alpha: float = 0.05,
    power: float = 0.8,
    allocation: float = 1.0,
    sided: int = 2,
) -> float:
    """Minimum detectable hazard ratio (MDRR) of a comparison with ``events`` events.

    Schoenfeld's formula solved for the hazard ratio, as OHDSI CohortMethod reports it
    beside every estimate (SCIENCE.md, "Study diagnostics": an estimate from too few
    events cannot tell a real effect from none, whatever its point value):

    .. math::

        \\mathrm{MDRR} = \\exp\\left( \\frac{(1 + r)(z_{1-\\alpha/s} + z_{1-\\beta})}
                      {\\sqrt{r D}} \\right)

    the ratio (> 1; its inverse for a benefit) that ``D`` events detect with the given
    power. CohortMethod's defaults: two-sided alpha 0.05, power 0.8, r the treated
    share's odds.

    Parameters
    ----------
    events : float
        D > 0.
    alpha, power, allocation, sided
        As in :func:`schoenfeld_events` (here two-sided by default, as CohortMethod).

    Returns
    -------
    float

    Examples
    --------
    >>> round(minimum_detectable_hr(331, alpha=0.025, power=0.9, sided=1), 3)  # 1 / 0.7
    1.428
    """
    d = check_positive("events", events)
    alpha, power = check_alpha(alpha), check_power(power)
    r, sided = _check_allocation(allocation), check_sided(sided)
    z = _z_alpha(alpha, sided) + float(norm.ppf(power))
    return math.exp((1.0 + r) * z / math.sqrt(r * d))


def prob_event_exponential(
    hazard: float,
    accrual_months: float,
    followup_months: float,
    dropout_hazard: float = 0.0,
) -> float:
    """Probability that a patient's event is observed by the analysis.

    Patients enter uniformly over ``A = accrual_months``; the analysis is ``F =
    followup_months`` after the last entry, so follow-up is uniform on [F, A + F]. With
    an exponential event hazard lambda and no dropout:

    .. math::

        P = 1 - \\frac{e^{-\\lambda F} - e^{-\\lambda (A + F)}}{\\lambda A}

    With an independent exponential dropout hazard delta (a competing risk), the event is
    seen when it comes first: P = lambda / (lambda + delta) times the same formula at
    lambda + delta. With ``A = 0`` the limit 1 - exp(-lambda F) is used.

    Parameters
    ----------
    hazard : float
        Event hazard lambda per month, > 0.
    accrual_months : float
        Accrual duration A >= 0.
    followup_months : float
        Minimum follow-up F >= 0 (time from the last entry to the analysis).
    dropout_hazard : float
        Dropout hazard delta per month, >= 0.

    Returns
    -------
    float
        P(event observed by the analysis).

    Examples
    --------
    >>> round(prob_event_exponential(math.log(2) / 12, 24, 12), 4)
    0.7295
    """
    lam = check_positive("hazard", hazard)
    a = check_positive("accrual_months", accrual_months, allow_zero=True)
    f = check_positive("followup_months", followup_months, allow_zero=True)
    delta = check_positive("dropout_hazard", dropout_hazard, allow_zero=True)
    if a == 0 and f == 0:
        raise ValueError("accrual_months + followup_months must be > 0, got 0")
    total = lam + delta
    if a == 0:
        p_any = -math.expm1(-total * f)
    else:
        # exp(-tF) (1 - exp(-tA)) written with expm1 to stay accurate for small t A.
        p_any = 1.0 + math.exp(-total * f) * math.expm1(-total * a) / (total * a)
    return lam / total * p_any


def prob_event_two_arms(
    control_hazard: float,
    hr: float,
    accrual_months: float,
    followup_months: float,
    allocation: float = 1.0,
    dropout_hazard: float = 0.0,
) -> float:
    """Average P(event) over both arms, weighted by allocation.

    .. math::

        \\bar P = \\frac{r P(\\lambda_c \\mathrm{HR}) + P(\\lambda_c)}{1 + r}

    with P from :func:`prob_event_exponential`.
    """
    hr, r = check_hr(hr), _check_allocation(allocation)
    lam = check_positive("control_hazard", control_hazard)
    p_c = prob_event_exponential(lam, accrual_months, followup_months, dropout_hazard)
    p_e = prob_event_exponential(lam * hr, accrual_months, followup_months, dropout_hazard)
    return (r * p_e + p_c) / (1.0 + r)


def sample_size_survival(
    hr: float,
    control_median_months: float,
    accrual_months: float,
    followup_months: float,
    alpha: float = 0.025,
    power: float = 0.9,
    allocation: float = 1.0,
    sided: int = 1,
    dropout_hazard: float = 0.0,
) -> dict[str, float]:
    """Events and patients for a log-rank trial with exponential survival.

    D from :func:`schoenfeld_events`, then N = D / P-bar with P-bar the
    allocation-weighted P(event) of :func:`prob_event_two_arms` (control hazard
    ln 2 / median).

    Returns
    -------
    dict
        ``events`` (ceil D), ``patients`` (ceil N computed from the unrounded D),
        ``prob_event`` (P-bar), ``events_exact`` (D before rounding).

    Examples
    --------
    >>> ss = sample_size_survival(0.7, 12, 24, 12, power=0.8)
    >>> ss["events"], ss["patients"]
    (247, 370)
    """
    d = schoenfeld_events(hr, alpha=alpha, power=power, allocation=allocation, sided=sided)
    lam = hazard_from_median(control_median_months)
    p = prob_event_two_arms(
        lam, hr, accrual_months, followup_months, allocation, dropout_hazard=dropout_hazard
    )
    return {
        "events": math.ceil(d),
        "patients": math.ceil(d / p),
        "prob_event": p,
        "events_exact": d,
    }


# ------------------------------------------------------------------------- binary
def two_proportion_power(
    p0: float,
    p1: float,
    n_control: float,
    n_experimental: float | None = None,
    alpha: float = 0.025,
    sided: int = 1,
) -> float:
    """Power of the pooled two-proportion z-test (normal approximation).

    With n_c, n_e patients, delta = p1 - p0, p-bar = (n_c p0 + n_e p1) / (n_c + n_e):

    .. math::

        1 - \\beta = \\Phi\\left(\\frac{\\lvert\\delta\\rvert
            - z_{1-\\alpha/s} \\sqrt{\\bar p (1 - \\bar p)(1/n_c + 1/n_e)}}
            {\\sqrt{p_0 (1 - p_0)/n_c + p_1 (1 - p_1)/n_e}}\\right)

    the null standard error is pooled (as the test computes it), the alternative one
    unpooled. For 1:1 and ``sided=2`` this is R's ``power.prop.test``.

    Parameters
    ----------
    p0, p1 : float
        Response probabilities of control and experimental arms, in (0, 1).
    n_control : float
        Patients in the control arm, >= 2.
    n_experimental : float, optional
        Patients in the experimental arm (defaults to ``n_control``).
    alpha : float
        Level in (0, 0.5); one-sided when ``sided=1``.
    sided : {1, 2}

    Examples
    --------
    >>> round(two_proportion_power(0.5, 0.75, 50, alpha=0.05, sided=2), 4)
    0.7402
    """
    p0, p1 = check_probability("p0", p0), check_probability("p1", p1)
    alpha, sided = check_alpha(alpha), check_sided(sided)
    n_c = float(n_control)
    n_e = n_c if n_experimental is None else float(n_experimental)
    for name, n in (("n_control", n_c), ("n_experimental", n_e)):
        if not (n >= 2 and math.isfinite(n)):
            raise ValueError(f"{name} must be a finite number >= 2, got {n!r}")
    pbar = (n_c * p0 + n_e * p1) / (n_c + n_e)
    se0 = math.sqrt(pbar * (1 - pbar) * (1 / n_c + 1 / n_e))
    se1 = math.sqrt(p0 * (1 - p0) / n_c + p1 * (1 - p1) / n_e)
    return float(norm.cdf((abs(p1 - p0) - _z_alpha(alpha, sided) * se0) / se1))


def two_proportion_sample_size(
    p0: float,
    p1: float,
    alpha: float = 0.025,
    power: float = 0.9,
    allocation: float = 1.0,
    sided: int = 1,
) -> dict[str, float]:
    """Patients for the pooled two-proportion z-test (normal approximation).

    With r = n_e / n_c, p-bar = (p0 + r p1) / (1 + r) and delta = p1 - p0, solving
    :func:`two_proportion_power` for the control arm gives

    .. math::

        n_c = \\frac{\\left(z_{1-\\alpha/s} \\sqrt{\\bar p (1 - \\bar p)(1 + 1/r)}
              + z_{1-\\beta} \\sqrt{p_0 (1 - p_0) + p_1 (1 - p_1)/r}\\right)^2}{\\delta^2},
        \\qquad n_e = r\\, n_c

    (no continuity correction). For 1:1, two-sided alpha 0.05, this is R's
    ``power.prop.test(p1 = .50, p2 = .75, power = .90)`` -> n = 76.7 per group.

    Returns
    -------
    dict
        ``n_control`` and ``n_experimental`` (each rounded up), ``n_total`` (their
        sum) and ``n_control_exact`` (unrounded n_c).

    Examples
    --------
    >>> ss = two_proportion_sample_size(0.5, 0.75, alpha=0.05, power=0.9, sided=2)
    >>> round(ss["n_control_exact"], 2), ss["n_total"]
    (76.71, 154)
    """
    p0, p1 = check_probability("p0", p0), check_probability("p1", p1)
    if p0 == p1:
        raise ValueError(f"p1 must differ from p0 to size a trial, both are {p0!r}")
    alpha, power = check_alpha(alpha), check_power(power)
    r, sided = _check_allocation(allocation), check_sided(sided)
    pbar = (p0 + r * p1) / (1 + r)
    num = _z_alpha(alpha, sided) * math.sqrt(pbar * (1 - pbar) * (1 + 1 / r)) + float(
        norm.ppf(power)
    ) * math.sqrt(p0 * (1 - p0) + p1 * (1 - p1) / r)
    n_c = num**2 / (p1 - p0) ** 2
    n_c_int, n_e_int = math.ceil(n_c), math.ceil(r * n_c)
    return {
        "n_control": n_c_int,
        "n_experimental": n_e_int,
        "n_total": n_c_int + n_e_int,
        "n_control_exact": n_c,
    }
