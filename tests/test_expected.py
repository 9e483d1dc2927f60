"""Expected uptake: features, out-of-fold predictions, fallbacks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from geo._errors import ParameterError
from models.expected import build_cells, build_features, fit_expected


def _simulated(
    n_areas: int = 600, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    """Areas whose uptake follows logit p = 0.5 + 1.0·x − 0.8·share_old, in parents of 5."""
    rng = np.random.default_rng(seed)
    codes = [f"E{i:05d}" for i in range(n_areas)]
    x = rng.normal(size=n_areas)
    old = rng.integers(20, 200, n_areas)
    young = rng.integers(20, 200, n_areas)
    p_old, p_young = expit(1.5 + 1.0 * x), expit(0.0 + 1.0 * x)
    uptake = pd.DataFrame(
        {
            "area_code": np.repeat(codes, 2),
            "age_band": np.tile(["18-49", "50+"], n_areas),
            "sex": "",
            "ethnic_group": "",
            "eligible": np.column_stack([young, old]).ravel(),
            "vaccinated": np.column_stack(
                [rng.binomial(young, p_young), rng.binomial(old, p_old)]
            ).ravel(),
        }
    )
    indicators = pd.DataFrame(
        {"score": x, "lon": rng.normal(size=n_areas), "eth_white": 1.0},
        index=pd.Index(codes, name="area_code"),
    )
    truth = (young * p_young + old * p_old) / (young + old)
    return uptake, indicators, np.array(codes), truth


def test_features_from_breakdown_and_indicators() -> None:
    uptake, indicators, codes, _ = _simulated(30)
    features = build_features(codes, uptake, indicators)
    # coordinates are never features; constant columns are dropped
    assert list(features.columns) == ["age_18-49", "age_50+", "score"]
    shares = features[["age_18-49", "age_50+"]].sum(axis=1)
    np.testing.assert_allclose(shares, 1.0)
    first = uptake[uptake["area_code"] == codes[0]]
    assert features.iloc[0]["age_50+"] == pytest.approx(
        first["eligible"].iloc[1] / first["eligible"].sum()
    )


def test_out_of_fold_recovers_the_model_and_never_uses_itself() -> None:
    uptake, indicators, codes, truth = _simulated()
    cells = build_cells(codes, uptake)
    features = build_features(codes, uptake, indicators, cells=cells)
    totals = uptake.groupby("area_code", sort=False)[["eligible", "vaccinated"]].sum()
    groups = np.repeat(np.arange(len(codes) // 5), 5)
    fit = fit_expected(
        features,
        totals["vaccinated"].to_numpy(),
        totals["eligible"].to_numpy(),
        groups,
        cells=cells,
    )
    report = fit.report
    assert report["model"] in report["candidates"] and report["folds"] == 5
    assert report["deviance_explained"] > 0.5
    assert np.corrcoef(fit.expected, truth)[0, 1] > 0.97
    assert len(report["calibration"]) == 10
    for row in report["calibration"]:
        assert abs(row["expected"] - row["observed"]) < 0.03
    # Changing area 0's own outcome must not change its prediction, nor those of the
    # other areas in its parent group (they are predicted by the same fold's model).
    changed = totals["vaccinated"].to_numpy().copy()
    changed[0] = 0
    cells.successes[0:2] = 0
    refit = fit_expected(
        features,
        changed,
        totals["eligible"].to_numpy(),
        groups,
        cells=cells,
        candidates=[report["model"]],
    )
    again = fit_expected(
        features,
        totals["vaccinated"].to_numpy(),
        totals["eligible"].to_numpy(),
        groups,
        cells=build_cells(codes, uptake),
        candidates=[report["model"]],
    )
    np.testing.assert_allclose(refit.expected[:5], again.expected[:5], rtol=1e-9)
    assert not np.allclose(refit.expected[5:], again.expected[5:])


def test_fallbacks_never_crash() -> None:
    n = np.array([100, 200, 50, 150])
    x = np.array([80, 120, 40, 90])
    no_features = fit_expected(pd.DataFrame(index=range(4)), x, n, np.arange(4))
    np.testing.assert_allclose(no_features.expected, x.sum() / n.sum())
    assert (
        no_features.report["model"] == "overall_rate"
        and "no indicators" in no_features.report["reason"]
    )
    tiny = fit_expected(pd.DataFrame({"score": [1.0, 2.0, 3.0, 4.0]}), x, n, np.arange(4))
    np.testing.assert_allclose(tiny.expected, x.sum() / n.sum())
    assert "too few areas" in tiny.report["reason"]
    with pytest.raises(ParameterError):
        fit_expected(
            pd.DataFrame({"score": np.arange(40.0)}),
            np.ones(40),
            np.full(40, 2),
            np.arange(40),
            candidates=["magic"],
        )
