"""Slope and relative index of inequality (PHE method) and uptake by group."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.inequality import group_uptake, inequality_summary, relative_ranks, sii_rii


def test_relative_ranks_as_documented_by_phe() -> None:
    # phe_sii docs: quantile 1 with 12% of people has rank 0.06, quantile 2 with 10% 0.17.
    ranks = relative_ranks([12, 10, 78])
    np.testing.assert_allclose(ranks, [0.06, 0.17, 0.61])


def test_linear_uptake_gives_exact_sii_and_rii() -> None:
    # Equal deciles of 1,000 people, uptake = 0.5 + 0.3·rank (rank = (k − 0.5)/10).
    population = np.full(10, 1000)
    rank = (np.arange(1, 11) - 0.5) / 10
    vaccinated = np.round(1000 * (0.5 + 0.3 * rank))
    result = sii_rii(vaccinated, population, repetitions=20_000, seed=1)
    assert result["sii"] == pytest.approx(0.3, abs=1e-12)
    assert result["intercept"] == pytest.approx(0.5, abs=1e-12)
    assert result["rii"] == pytest.approx(0.8 / 0.5, abs=1e-12)
    assert result["relative_sii"] == pytest.approx(0.3 / 0.65, abs=1e-12)
    assert result["sii_ci_low"] < 0.3 < result["sii_ci_high"]
    assert result["rii_ci_low"] < 1.6 < result["rii_ci_high"]
    # sampling error of the SII is about 0.01 with 1,000 people per decile
    assert 0.005 < (result["sii_ci_high"] - result["sii_ci_low"]) / 4 < 0.02
    assert sii_rii(vaccinated, population, repetitions=20_000, seed=1) == result


def test_group_uptake_and_summary() -> None:
    uptake = pd.DataFrame(
        {
            "ethnic_group": ["a", "a", "b", ""],
            "eligible": [10, 30, 50, 5],
            "vaccinated": [5, 15, 45, 5],
        }
    )
    table = group_uptake(uptake[uptake["ethnic_group"] != ""], "ethnic_group")
    assert table["group_value"].tolist() == ["a", "b"]
    assert table["uptake"].tolist() == [0.5, 0.9]
    assert (table["ci_low"] < table["uptake"]).all() and (table["uptake"] < table["ci_high"]).all()

    areas = pd.DataFrame(
        {"eligible": [100, 100, 100], "vaccinated": [50, 60, 70], "imd_decile": [1, 2, np.nan]}
    )
    report = inequality_summary(areas, uptake, groups=("ethnic_group",), repetitions=1000)
    assert report["sii"] is None and "at least 5" in report["sii_reason"]
    assert [row["imd_decile"] for row in report["by_imd_decile"]] == [1, 2]
    assert [row["group_value"] for row in report["by_group"]["ethnic_group"]] == ["a", "b"]
