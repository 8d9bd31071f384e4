"""Empirical calibration with negative controls (OHDSI's EmpiricalCalibration).

Estimates of effects known to be null (negative controls: outcomes no drug causes) are
spread wider than their standard errors say when the design has systematic error
(residual confounding, selection, measurement). Schuemie et al. (Stat Med 2014; PNAS
2018) model each negative control's log estimate as ``N(mu, se_i^2 + sigma^2)``: ``mu``
and ``sigma`` describe the systematic error. :func:`fit_null` finds them by maximum
likelihood (the package's ``fitNull``); :func:`calibrate_p` gives a result's two-sided
p-value under that null (``calibrateP``); :func:`calibrate_ci` removes ``mu`` and widens
the interval by ``sigma`` (the error model of negative controls alone: systematic error
that does not depend on the true effect); :func:`ease` is the expected absolute
systematic error ``E|X|``, ``X ~ N(mu, sigma^2)`` (``computeExpectedAbsoluteSystematicError``),
which SCIENCE.md's gate compares with 0.25.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

__all__ = ["EmpiricalNull", "calibrate_ci", "calibrate_p", "ease", "fit_null"]


@dataclass(frozen=True)
class EmpiricalNull:
    """The systematic error distribution on the log scale: mean ``mu``, SD ``sigma``; ``n``
    negative controls fitted it."""

    mu: float
    sigma: float
    n: int

    @property
    def ease(self) -> float:
        """Expected absolute systematic error (:func:`ease`)."""
        return ease(self.mu, self.sigma)


def _arrays(log_rr: Any, se: Any) -> tuple[np.ndarray, np.ndarray]:
    x, s = np.asarray(log_rr, dtype=float).ravel(), np.asarray(se, dtype=float).ravel()
    if x.shape != s.shape:
        raise ValueError(f"log_rr has {x.size} values but se has {s.size}")
    if not (np.isfinite(x).all() and np.isfinite(s).all() and (s > 0).all()):
        raise ValueError("log_rr must be finite and se finite and > 0 for every control")
    return x, s


def fit_null(log_rr: Any, se: Any) -> EmpiricalNull:
    """Maximum-likelihood ``mu`` and ``sigma`` of ``log_rr_i ~ N(mu, se_i^2 + sigma^2)``.

    Needs at least 5 negative controls (with fewer the SD is not estimable in practice).

    >>> rng = np.random.default_rng(0)
    >>> se = rng.uniform(0.05, 0.2, 400)
    >>> null = fit_null(rng.normal(0.2, np.sqrt(se**2 + 0.1**2)), se)
    >>> round(null.mu, 1), round(null.sigma, 1)
    (0.2, 0.1)
    """
    x, s = _arrays(log_rr, se)
    if x.size < 5:
        raise ValueError(f"fitting the empirical null needs >= 5 negative controls; got {x.size}")

    def nll(theta: np.ndarray) -> float:
        v = s**2 + math.exp(2 * theta[1])
        return float(0.5 * np.sum(np.log(2 * math.pi * v) + (x - theta[0]) ** 2 / v))

    start = np.array([float(np.mean(x)), math.log(max(float(np.std(x)), 1e-3))])
    fit = optimize.minimize(nll, start, method="L-BFGS-B", bounds=[(None, None), (-12.0, 3.0)])
    return EmpiricalNull(mu=float(fit.x[0]), sigma=float(math.exp(fit.x[1])), n=int(x.size))


def calibrate_p(log_rr: Any, se: Any, null: EmpiricalNull) -> np.ndarray:
    """Two-sided p-values of ``log_rr`` (with ``se``) against the empirical null.

    >>> float(calibrate_p([0.0], [0.1], EmpiricalNull(0.0, 0.0, 10))[0])
    1.0
    """
    x, s = _arrays(log_rr, se)
    z = (x - null.mu) / np.sqrt(s**2 + null.sigma**2)
    return np.minimum(1.0, 2 * stats.norm.sf(np.abs(z)))


def calibrate_ci(
    log_rr: float, se: float, null: EmpiricalNull, *, alpha: float = 0.05
) -> tuple[float, float, float]:
    """Calibrated estimate and confidence interval on the log scale: ``log_rr - mu`` and
    ``+-z * sqrt(se^2 + sigma^2)``.

    >>> [round(v, 3) for v in calibrate_ci(0.5, 0.1, EmpiricalNull(0.1, 0.0, 10))]
    [0.4, 0.204, 0.596]
    """
    z = float(stats.norm.ppf(1 - alpha / 2))
    half = z * math.sqrt(se**2 + null.sigma**2)
    centre = float(log_rr) - null.mu
    return centre, centre - half, centre + half


def ease(mu: float, sigma: float) -> float:
    """``E|X|`` for ``X ~ N(mu, sigma^2)``: ``mu (1 - 2 Phi(-mu/sigma)) + 2 sigma phi(mu/sigma)``.

    >>> round(ease(0.0, 1.0), 4), ease(-0.3, 0.0)
    (0.7979, 0.3)
    """
    if sigma <= 0:
        return abs(mu)
    r = mu / sigma
    return float(mu * (1 - 2 * stats.norm.cdf(-r)) + 2 * sigma * stats.norm.pdf(r))
