"""Small-number disclosure control."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from geo._errors import ParameterError
from models.disclosure import DisclosurePolicy, apply_disclosure

RATES = {"uptake": ["eligible", "vaccinated"], "ci_low": ["eligible", "vaccinated"]}


def test_suppression_rounding_and_rates() -> None:
    frame = pd.DataFrame(
        {
            "area_code": ["a", "b", "c", "d", "e", "f"],
            "eligible": [0, 7, 8, 12, 13, 100],
            "vaccinated": [0, 1, 8, 2, 13, 60],
            "shortfall": [0, 5, 0, 8, 0, 20],
            "uptake": [np.nan, 1 / 7, 1.0, 2 / 12, 1.0, 0.6],
            "ci_low": [np.nan, 0.02, 0.7, 0.05, 0.8, 0.5],
        }
    )
    out = apply_disclosure(
        frame, count_columns=["eligible", "vaccinated", "shortfall"], rate_columns=RATES
    )
    assert out["eligible"].tolist() == [0, pd.NA, 10, 10, 15, 100]
    assert out["vaccinated"].tolist() == [0, pd.NA, 10, pd.NA, 15, 60]
    assert out["shortfall"].tolist() == [0, pd.NA, 0, 10, 0, 20]
    # rates built from a suppressed count are suppressed; others keep their raw value
    assert np.isnan(out.loc[1, "uptake"]) and np.isnan(out.loc[3, "ci_low"])
    assert out.loc[5, "uptake"] == 0.6 and out.loc[2, "uptake"] == 1.0
    assert out["suppressed"].tolist() == [
        [],
        ["eligible", "vaccinated", "shortfall", "uptake", "ci_low"],
        [],
        ["vaccinated", "uptake", "ci_low"],
        [],
        [],
    ]
    assert frame.loc[1, "eligible"] == 7  # the input is untouched


def test_disabled_policy_and_validation() -> None:
    frame = pd.DataFrame({"eligible": [3], "uptake": [0.5]})
    out = apply_disclosure(
        frame,
        count_columns=["eligible"],
        rate_columns={"uptake": ["eligible"]},
        policy=DisclosurePolicy(enabled=False),
    )
    assert out["eligible"].tolist() == [3] and out["suppressed"].tolist() == [[]]
    with pytest.raises(ParameterError) as info:
        DisclosurePolicy(lower=5, upper=2, rounding_base=0)
    assert {e["loc"][0] for e in info.value.errors} == {"upper", "rounding_base"}


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=50))
def test_no_small_count_survives(counts: list[int]) -> None:
    frame = pd.DataFrame({"eligible": counts, "uptake": [0.5] * len(counts)})
    out = apply_disclosure(frame, count_columns=["eligible"], rate_columns={"uptake": ["eligible"]})
    published = out["eligible"].dropna().astype(int)
    assert not published.between(1, 7).any()
    assert (published % 5 == 0).all()
    small = np.array(counts) >= 1
    small &= np.array(counts) <= 7
    assert out["uptake"].isna().to_numpy().tolist() == small.tolist()
