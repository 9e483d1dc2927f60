"""Benjamini–Hochberg q-values, shortfall, flags and the priority ranking."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.flags import (
    assign_flags,
    bh_qvalues,
    equity_weight,
    imd_quintile,
    priority_rank,
    shortfall,
)


def test_bh_qvalues_by_hand() -> None:
    # m = 5; sorted p: 0.005, 0.01, 0.03, 0.04, 0.2 → m·p/rank: 0.025, 0.025, 0.05, 0.05, 0.2
    # (already monotone). Back in input order:
    p = [0.01, 0.04, 0.03, 0.005, 0.2]
    np.testing.assert_allclose(bh_qvalues(p), [0.025, 0.05, 0.05, 0.025, 0.2])
    # m = 3 (NaN stays NaN and does not count): sorted 0.02, 0.03, 0.04 → m·p/rank =
    # 0.06, 0.045, 0.04; the running minimum from the largest down makes all three 0.04.
    np.testing.assert_allclose(bh_qvalues([0.04, np.nan, 0.02, 0.03]), [0.04, np.nan, 0.04, 0.04])
    assert bh_qvalues([0.9, 0.8])[0] == 0.9 and bh_qvalues([1.0, 1.0]).max() == 1.0


def test_shortfall_examples() -> None:
    # 0.8·100 − 80 is 1e-14 in floating point: no phantom person; 0.8·101 − 80 = 0.8 → 1.
    assert shortfall([80, 80, 100, 0, 0], [100, 101, 100, 7, 0], 0.8).tolist() == [0, 1, 0, 6, 0]


@given(st.integers(0, 5000), st.data(), st.floats(0.01, 1.0))
def test_shortfall_never_negative_and_reaches_target(
    eligible: int, data: st.DataObject, target: float
) -> None:
    vaccinated = data.draw(st.integers(0, eligible))
    gap = int(shortfall([vaccinated], [eligible], target)[0])
    assert gap >= 0
    assert vaccinated + gap >= target * eligible - 1e-6
    assert gap == 0 or vaccinated + gap - 1 < target * eligible


def test_flags() -> None:
    flags = assign_flags(
        prob_below_target=[0.99, 0.99, 0.5, 0.99, 0.2, np.nan],
        shortfall=[20, 5, 0, 30, 0, 0],
        z=[0.0, 0.0, -4.0, -4.0, -3.0, np.nan],
        q_value=[1.0, 1.0, 0.01, 0.01, 0.01, np.nan],
        prob_threshold=0.95,
        min_shortfall=10,
    )
    # row 2: gap of 5 < 10; row 4: z = −3.0 is inside the 99.8% limit (−3.09)
    assert flags.tolist() == ["below_target", "none", "below_expected", "both", "none", "none"]


def test_equity_weight_and_priority() -> None:
    assert imd_quintile([1, 2, 3, 10, np.nan])[:4].tolist() == [1, 1, 2, 5]
    weights = equity_weight(
        [1, 5, 9, np.nan],
        {"black": [0.5, 0.0, 1.0, 0.0]},
        imd_quintile_weights={1: 2.0, 3: 1.5},
        ethnic_group_weights={"black": 3.0},
    )
    # quintile 1 → 2.0 × (1 + 0.5·2) = 4; quintile 3 → 1.5; quintile 5 → 1 × (1 + 1·2) = 3
    np.testing.assert_allclose(weights, [4.0, 1.5, 3.0, 1.0])
    rank = priority_rank(
        [10, 20, 10, 0, 40, 10],
        [4.0, 1.5, 3.0, 9.0, 1.0, 4.0],
        prob_below_target=[0.9, 0.9, 0.9, 0.1, 0.9, 0.99],
        codes=["E5", "E4", "E3", "E2", "E1", "E0"],
    )
    # scores 40, 30, 30, 0, 40, 40: the 40s tie → larger shortfall (E1) first, then higher
    # probability (E0 over E5); the 30s tie → larger shortfall E4 before E3.
    assert rank.tolist() == [3, 4, 5, 6, 1, 2]
    assert math.isclose(float(np.sum(rank)), 21.0)


def test_priority_with_numeric_codes() -> None:
    assert priority_rank(
        [1, 1], [1, 1], prob_below_target=[0.5, 0.5], codes=np.array([7, 3])
    ).tolist() == [2, 1]
    with pytest.raises(ValueError):
        imd_quintile("x")  # type: ignore[arg-type]
