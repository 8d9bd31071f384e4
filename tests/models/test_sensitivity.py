"""E-values against the published examples and their closed-form properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oncorwe.models.sensitivity import e_value, e_value_ci, e_values_hr, hr_to_rr


@pytest.mark.parametrize(
    ("est", "lo", "hi", "point", "ci"),
    [
        # VanderWeele & Ding, Ann Intern Med 2017: smoking and lung cancer, and the
        # leukaemia example (a protective risk ratio)
        (10.73, 8.02, 14.36, 20.95, 15.52),
        (0.80, 0.71, 0.91, 1.81, 1.43),
    ],
)
def test_the_published_e_values(est, lo, hi, point, ci):
    assert round(e_value(est), 2) == point
    assert round(e_value_ci(lo, hi), 2) == ci


@given(st.floats(min_value=1e-3, max_value=1e3))
def test_an_e_value_is_symmetric_and_solves_its_bias_bound(rr):
    e = e_value(rr)
    assert math.isclose(e, e_value(1 / rr), rel_tol=1e-9)
    # the bounding factor of a confounder with both associations equal to E is
    # E^2 / (2E - 1): exactly the observed risk ratio (or its inverse)
    r = max(rr, 1 / rr)
    assert math.isclose(e * e / (2 * e - 1), r, rel_tol=1e-9)
    assert e >= 1


@given(st.floats(min_value=0.05, max_value=20))
def test_the_hazard_ratio_conversion_keeps_the_null_and_the_direction(hr):
    rr = hr_to_rr(hr, rare=False)
    assert math.isclose(rr * hr_to_rr(1 / hr, rare=False), 1.0, rel_tol=1e-9)
    assert (rr - 1) * (hr - 1) >= 0
    assert abs(math.log(rr)) <= abs(math.log(hr)) + 1e-12  # the RR is nearer the null
    assert hr_to_rr(hr, rare=True) == hr


def test_an_interval_across_the_null_has_e_value_one():
    assert e_values_hr(0.9, 0.7, 1.1)["e_value_ci"] == 1.0
    with pytest.raises(ValueError, match="finite and > 0"):
        e_value(0.0)
