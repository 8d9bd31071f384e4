"""E-values: how strong an unmeasured confounder would have to be to explain an effect away.

VanderWeele & Ding (Ann Intern Med 2017): for an observed risk ratio RR >= 1 the E-value
is ``RR + sqrt(RR * (RR - 1))``, the minimum risk ratio that an unmeasured confounder
would need with both the treatment and the outcome, beyond the measured covariates, to
move the estimate to the null; for RR < 1 it is that of ``1 / RR``. The E-value of a
confidence interval is that of the bound closer to the null, and 1 when the interval
includes it. A hazard ratio of a common outcome (more than 15 % with an event by the end
of follow-up, as PFS in oncology) is first converted to the risk-ratio scale with
VanderWeele's (2020) approximation ``RR = (1 - 0.5^sqrt(HR)) / (1 - 0.5^sqrt(1/HR))``;
a rare outcome's HR approximates the RR.
"""

from __future__ import annotations

import math

__all__ = ["e_value", "e_value_ci", "e_values_hr", "hr_to_rr"]


def e_value(rr: float) -> float:
    """E-value of a risk ratio (either direction).

    >>> round(e_value(10.73), 2), round(e_value(0.80), 2)
    (20.95, 1.81)
    """
    if not rr > 0 or not math.isfinite(rr):
        raise ValueError(f"a risk ratio must be finite and > 0; got {rr!r}")
    r = rr if rr >= 1 else 1.0 / rr
    return r + math.sqrt(r * (r - 1.0))


def e_value_ci(lo: float, hi: float) -> float:
    """E-value of the confidence interval ``[lo, hi]`` (risk-ratio scale): that of the bound
    closer to 1, or 1 when the interval includes 1.

    >>> round(e_value_ci(8.02, 14.36), 2), round(e_value_ci(0.71, 0.91), 2), e_value_ci(0.9, 1.2)
    (15.52, 1.43, 1.0)
    """
    if lo > hi:
        raise ValueError(f"lower bound {lo!r} is above upper bound {hi!r}")
    if lo <= 1.0 <= hi:
        return 1.0
    return e_value(lo if lo > 1.0 else hi)


def hr_to_rr(hr: float, *, rare: bool) -> float:
    """A hazard ratio on the risk-ratio scale: itself for a rare outcome, else VanderWeele's
    approximation for a common one (see the module docstring).

    >>> hr_to_rr(1.0, rare=False), round(hr_to_rr(0.56, rare=False), 4)
    (1.0, 0.6701)
    """
    if not hr > 0 or not math.isfinite(hr):
        raise ValueError(f"a hazard ratio must be finite and > 0; got {hr!r}")
    if rare:
        return hr
    return (1.0 - 0.5 ** math.sqrt(hr)) / (1.0 - 0.5 ** math.sqrt(1.0 / hr)) if hr != 1 else 1.0


def e_values_hr(hr: float, lo: float, hi: float, *, rare: bool = False) -> dict[str, float]:
    """E-values of a hazard ratio and of its confidence interval (common outcome by default).

    >>> {k: round(v, 2) for k, v in e_values_hr(0.56, 0.46, 0.69).items()}
    {'e_value': 2.35, 'e_value_ci': 1.91}
    """
    return {
        "e_value": e_value(hr_to_rr(hr, rare=rare)),
        "e_value_ci": e_value_ci(hr_to_rr(lo, rare=rare), hr_to_rr(hi, rare=rare)),
    }
