"""Wilson score intervals against the published formula (Wilson 1927)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.rates import proportion, wilson_interval, wilson_intervals

Z95 = 1.959963984540054  # Φ⁻¹(0.975)
Z998 = 3.090232306167813  # Φ⁻¹(0.999)


def wilson_by_hand(x: int, n: int, z: float) -> tuple[float, float]:
    """Centre ± half-width form: (p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n)."""
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize(
    ("x", "n", "z", "expected"),
    [
        (20, 360, Z95, (0.036248, 0.084248)),
        (30, 400, Z95, (0.053038, 0.105048)),
        (20, 360, Z998, (0.028469, 0.105612)),
        (30, 400, Z998, (0.043487, 0.126332)),
    ],
)
def test_wilson_matches_formula(x: int, n: int, z: float, expected: tuple[float, float]) -> None:
    confidence = 0.95 if z == Z95 else 0.998
    low, high = wilson_interval(x, n, confidence=confidence)
    by_hand = wilson_by_hand(x, n, z)
    assert float(low) == pytest.approx(by_hand[0], abs=1e-12)
    assert float(high) == pytest.approx(by_hand[1], abs=1e-12)
    assert (round(float(low), 6), round(float(high), 6)) == expected


def test_zero_and_all_successes() -> None:
    # 0 of n: [0, z²/(n + z²)]; n of n: [n/(n + z²), 1]
    low, high = wilson_interval([0, 25], [25, 25], confidence=0.95)
    assert low[0] == 0.0 and high[0] == pytest.approx(Z95**2 / (25 + Z95**2), abs=1e-12)
    assert high[1] == 1.0 and low[1] == pytest.approx(25 / (25 + Z95**2), abs=1e-12)


def test_zero_trials_is_nan_and_several_levels() -> None:
    low, high = wilson_interval([0, 3], [0, 10])
    assert np.isnan(low[0]) and np.isnan(high[0])
    levels = wilson_intervals(np.array([20]), np.array([360]))
    assert set(levels) == {0.95, 0.998}
    assert levels[0.998][0][0] < levels[0.95][0][0] < levels[0.95][1][0] < levels[0.998][1][0]
    assert np.isnan(proportion(1, 0)) and proportion(1, 4) == 0.25


def test_bad_confidence_rejected() -> None:
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 2, confidence=1.0)


@given(st.integers(1, 100_000), st.data(), st.sampled_from([0.9, 0.95, 0.998]))
def test_interval_contains_observed_rate(n: int, data: st.DataObject, confidence: float) -> None:
    x = data.draw(st.integers(0, n))
    low, high = wilson_interval(x, n, confidence=confidence)
    assert 0.0 <= low <= x / n <= high <= 1.0
