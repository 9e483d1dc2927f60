"""Spiegelhalter (2005) overdispersed funnel z-scores and Fingertips significance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.funnel import (
    estimate_overdispersion,
    fingertips_limits,
    funnel_limits,
    funnel_significance,
    funnel_z,
    winsorise,
)

Z95 = 1.959963984540054
Z998 = 3.090232306167813

# A small worked example: ten areas, all expected to reach 80%.
X = [150, 170, 160, 140, 190, 100, 175, 165, 155, 185]
N = [200, 210, 200, 180, 220, 180, 215, 205, 195, 225]
E = [0.8] * 10


def test_overdispersed_funnel_worked_example() -> None:
    # Step 1: arcsine-square-root transform, within-area SE 1/(2√n), z.
    theta0 = math.asin(math.sqrt(0.8))
    y = [math.asin(math.sqrt(x / n)) for x, n in zip(X, N, strict=True)]
    s = [1 / (2 * math.sqrt(n)) for n in N]
    z = [(yi - theta0) / si for yi, si in zip(y, s, strict=True)]
    # Step 2: winsorise at 10% each tail. With I = 10 the 10th percentile (linear
    # interpolation) sits 0.9 of the way from the smallest to the second smallest z.
    ordered = sorted(z)
    low = ordered[0] + 0.9 * (ordered[1] - ordered[0])
    high = ordered[8] + 0.1 * (ordered[9] - ordered[8])
    z_w = [min(max(v, low), high) for v in z]
    # Step 3: φ = mean of winsorised z².
    phi = sum(v * v for v in z_w) / 10
    # Step 4: τ² = (Iφ − (I − 1)) / (Σw − Σw²/Σw), w = 1/s² = 4n.
    w = [1 / si**2 for si in s]
    tau2 = (10 * phi - 9) / (sum(w) - sum(v * v for v in w) / sum(w))
    assert phi > 1 and tau2 > 0  # the example is overdispersed
    # Step 5: adjusted z = (y − θ0) / √(s² + τ²).
    z_adjusted = [(yi - theta0) / math.sqrt(si**2 + tau2) for yi, si in zip(y, s, strict=True)]

    result = funnel_z(X, N, E)
    assert result.overdispersion.phi == pytest.approx(phi, rel=1e-12)
    assert result.overdispersion.tau2 == pytest.approx(tau2, rel=1e-12)
    np.testing.assert_allclose(result.z_unadjusted, z, rtol=1e-12)
    np.testing.assert_allclose(result.z, z_adjusted, rtol=1e-12)
    np.testing.assert_allclose(result.z_multiplicative, np.array(z) / math.sqrt(phi), rtol=1e-12)

    # 99.8% limits for an area of 200 people: sin²(θ0 ± 3.0902·√(1/800 + τ²)).
    spread = Z998 * math.sqrt(1 / 800 + tau2)
    low_limit, high_limit = funnel_limits(
        [0.8], [200], confidence=0.998, overdispersion=result.overdispersion
    )
    assert low_limit[0] == pytest.approx(math.sin(theta0 - spread) ** 2, rel=1e-12)
    assert high_limit[0] == pytest.approx(math.sin(theta0 + spread) ** 2, rel=1e-12)


def test_no_overdispersion_gives_zero_tau2() -> None:
    # z-scores of ±0.5 give φ = 0.25 < (I − 1)/I, so τ² = 0 and z is unchanged.
    fit = estimate_overdispersion(np.array([0.5, -0.5] * 5), np.full(10, 0.03))
    assert fit.phi == pytest.approx(0.25) and fit.tau2 == 0.0
    result = funnel_z([80, 0], [100, 0], [0.8, 0.8])
    assert np.isnan(result.z[1])


def test_winsorise_clips_tails() -> None:
    values = np.arange(11.0)  # 10th/90th percentiles are 1 and 9
    np.testing.assert_array_equal(winsorise(values, 0.1), np.clip(values, 1, 9))


def phe_sigma_adjustment(p: float, population: float, average: float, side: str) -> float:
    """PHEindicatormethods' sigma_adjustment (Funnels.R), written out as published."""
    z = {0.975: Z95, 0.999: Z998}[p]
    first = average * (population / z**2 + 1)
    adj = math.sqrt(
        (-8 * average * (population / z**2 + 1)) ** 2
        - 64
        * (1 / z**2 + 1 / population)
        * average
        * (population * (average * (population / z**2 + 2) - 1) + z**2 * (average - 1))
    )
    last = 1 / z**2 + 1 / population
    count = (first - adj / 8) / last if side == "low" else (first + adj / 8) / last
    return count / population


@pytest.mark.parametrize("n", [10, 57, 100, 2500])
def test_fingertips_limits_equal_phe_formula(n: int) -> None:
    for confidence, p in ((0.95, 0.975), (0.998, 0.999)):
        low, high = fingertips_limits(np.array([n]), 0.8, confidence=confidence)
        assert low[0] == pytest.approx(phe_sigma_adjustment(p, n, 0.8, "low"), rel=1e-9)
        assert high[0] == pytest.approx(phe_sigma_adjustment(p, n, 0.8, "high"), rel=1e-9)


def test_fingertips_significance_clear_and_borderline() -> None:
    # Against an average of 0.8 with 100 people, the 95% limits are 0.8 ∓ 1.96·0.04
    # = 0.7216 / 0.8784 and the 99.8% limits 0.8 ∓ 3.09·0.04 = 0.6764 / 0.9236.
    x = [50, 72, 73, 78, 88, 99, 0]
    n = [100, 100, 100, 100, 100, 100, 0]
    labels = funnel_significance(x, n, average=0.8)
    assert list(labels) == [
        "low_99.8",  # 0.50, far below
        "low_95",  # 0.72 < 0.7216 but > 0.6764 (borderline, by hand above)
        "not_significant",  # 0.73 > 0.7216
        "not_significant",
        "high_95",  # 0.88 > 0.8784 but < 0.9236
        "high_99.8",
        None,  # nobody eligible
    ]
    # Default benchmark: the overall rate Σx/Σn.
    default = funnel_significance([10, 90], [100, 100])
    assert list(default) == ["low_99.8", "high_99.8"]
