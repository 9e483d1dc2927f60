"""Inequality in uptake: slope and relative index of inequality across IMD deciles, and
uptake by group (ethnic group, age band, sex) with Wilson intervals.

SII and RII follow PHE/OHID (PHEindicatormethods ``phe_sii``; Low A, Low A. Measuring
the gap: quantifying and comparing local health inequalities. J Public Health
2004;26:388–395):

* deciles are ordered from most deprived (IMD decile 1) to least deprived (10); each
  gets a relative rank ``b`` = the midpoint of its share of the cumulative eligible
  population, so rank 0 is the most deprived end and rank 1 the least deprived;
* uptake ``Y`` is regressed on ``b`` weighted by population share ``a``
  (``Y·√a = β₀·√a + β₁·b·√a`` without intercept, as ``phe_sii`` does);
* **SII = β₁** — fitted uptake at the least deprived end minus at the most deprived end,
  so a *positive* SII means uptake rises as deprivation falls (the usual gap);
* **RII = (β₀ + β₁) / β₀** — fitted uptake at rank 1 over fitted uptake at rank 0, as
  in current ``phe_sii``. ``relative_sii`` = SII / overall uptake is also given (the
  "SII over the mean" some reports call RII);
* confidence intervals by simulation, as ``phe_sii`` with ``value_type = 2``
  (proportions): each decile's uptake is drawn on the logit scale from a normal
  distribution whose standard error comes from its 95% Wilson interval, ``repetitions``
  times (seeded), the regression refitted, and the order statistics at
  ``round(R·(1 − c)/2)`` and ``round(R·(1 + c)/2)`` taken.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import expit, logit

from models.rates import proportion, wilson_interval, z_for_confidence

#: PHE needs between 5 and 100 quantiles for an SII.
MIN_QUANTILES = 5


def relative_ranks(populations: npt.ArrayLike) -> np.ndarray:
    """Midpoint of each quantile's share of the cumulative population (``FindXValues``)."""
    pop = np.asarray(populations, dtype=float)
    share = pop / pop.sum()
    return np.cumsum(share) - share / 2.0


def _fit_matrix(share: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Least-squares solver for ``Y·√a = β₀√a + β₁·b√a``: returns M with β = M @ (Y·√a)."""
    design = np.column_stack([np.sqrt(share), rank * np.sqrt(share)])
    return np.linalg.pinv(design)


def sii_rii(
    successes: npt.ArrayLike,
    populations: npt.ArrayLike,
    *,
    confidence: float = 0.95,
    repetitions: int = 100_000,
    seed: int = 0,
) -> dict[str, Any]:
    """SII and RII of a proportion across ordered quantiles (most deprived first).

    Parameters
    ----------
    successes
        People with the outcome (vaccinated) per quantile, most deprived first.
    populations
        People at risk (eligible) per quantile; all must be positive.
    confidence
        Confidence level of the simulated intervals.
    repetitions
        Number of simulations (PHE's default is 100,000).
    seed
        Seed of the random generator, so results repeat.

    Returns
    -------
    JSON-ready dict: ``sii``, ``sii_ci_low``, ``sii_ci_high``, ``rii``, ``rii_ci_low``,
    ``rii_ci_high``, ``relative_sii``, ``intercept`` (fitted uptake at rank 0),
    ``confidence``, ``repetitions``, ``n_quantiles``.
    """
    x = np.asarray(successes, dtype=float)
    n = np.asarray(populations, dtype=float)
    share = n / n.sum()
    rank = relative_ranks(n)
    solver = _fit_matrix(share, rank)
    p = x / n
    intercept, slope = solver @ (p * np.sqrt(share))

    # Standard error on the logit scale from the 95% Wilson interval (phe_sii value_type 2).
    # A decile at 0% or 100% has an infinite logit; it keeps its Wilson-based SE on the
    # proportion scale instead.
    low, high = wilson_interval(x, n, confidence=0.95)
    z95 = z_for_confidence(0.95)
    interior = (x > 0) & (x < n)
    rng = np.random.default_rng(seed)
    draws = rng.standard_normal((repetitions, p.size))
    simulated = np.empty_like(draws)
    if interior.any():
        se_logit = (logit(high[interior]) - logit(low[interior])) / (2.0 * z95)
        simulated[:, interior] = expit(logit(p[interior]) + draws[:, interior] * se_logit)
    if (~interior).any():
        se_raw = (high[~interior] - low[~interior]) / (2.0 * z95)
        simulated[:, ~interior] = np.clip(p[~interior] + draws[:, ~interior] * se_raw, 0.0, 1.0)
    coefficients = (simulated * np.sqrt(share)) @ solver.T
    sims_sii = np.sort(coefficients[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        sims_rii = np.sort((coefficients[:, 0] + coefficients[:, 1]) / coefficients[:, 0])
    upper_level = confidence + (1.0 - confidence) / 2.0
    pos_low = max(round(repetitions * (1.0 - upper_level)), 1) - 1
    pos_high = min(round(repetitions * upper_level), repetitions) - 1
    overall = float(x.sum() / n.sum())
    return {
        "sii": float(slope),
        "sii_ci_low": float(sims_sii[pos_low]),
        "sii_ci_high": float(sims_sii[pos_high]),
        "rii": _finite(float((intercept + slope) / intercept)) if intercept != 0 else None,
        "rii_ci_low": _finite(float(sims_rii[pos_low])),
        "rii_ci_high": _finite(float(sims_rii[pos_high])),
        "relative_sii": float(slope / overall) if overall > 0 else None,
        "intercept": float(intercept),
        "confidence": float(confidence),
        "repetitions": int(repetitions),
        "n_quantiles": int(p.size),
    }


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None


def group_uptake(frame: pd.DataFrame, column: str, *, confidence: float = 0.95) -> pd.DataFrame:
    """Uptake per value of ``column`` with Wilson intervals.

    Parameters
    ----------
    frame
        Rows with ``column``, ``eligible`` and ``vaccinated`` (e.g. the uptake table).
    column
        Grouping column (``ethnic_group``, ``age_band``, ``sex``, ``imd_decile``…).

    Returns
    -------
    One row per value (sorted): ``group_value``, ``eligible``, ``vaccinated``,
    ``uptake``, ``ci_low``, ``ci_high``.
    """
    totals = (
        frame.groupby(column, sort=True, dropna=True)[["eligible", "vaccinated"]]
        .sum()
        .reset_index()
        .rename(columns={column: "group_value"})
    )
    eligible = totals["eligible"].to_numpy(dtype=float)
    vaccinated = totals["vaccinated"].to_numpy(dtype=float)
    totals["uptake"] = proportion(vaccinated, eligible)
    totals["ci_low"], totals["ci_high"] = wilson_interval(
        vaccinated, eligible, confidence=confidence
    )
    return totals


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain-Python dicts with NaN turned into None."""
    records = []
    for row in table.to_dict(orient="records"):
        clean: dict[str, Any] = {}
        for key, value in row.items():
            if isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, float) and not np.isfinite(value):
                value = None
            clean[str(key)] = value
        records.append(clean)
    return records


def inequality_summary(
    areas: pd.DataFrame,
    uptake: pd.DataFrame | None = None,
    *,
    groups: tuple[str, ...] = (),
    confidence: float = 0.95,
    repetitions: int = 100_000,
    seed: int = 0,
) -> dict[str, Any]:
    """JSON-ready inequality report.

    Parameters
    ----------
    areas
        One row per area with ``eligible``, ``vaccinated`` and ``imd_decile`` (NaN when
        unknown; such areas are left out of the SII).
    uptake
        The long uptake table (area × group rows), for uptake by group.
    groups
        Group columns present in ``uptake`` (e.g. ``("age_band", "ethnic_group")``).
    confidence, repetitions, seed
        As :func:`sii_rii`.

    Returns
    -------
    ``{"sii": {...} or None, "sii_reason": str or None, "by_imd_decile": [...],
    "by_group": {column: [...]}, "convention": str}``.
    """
    report: dict[str, Any] = {
        "convention": (
            "rank 0 = most deprived (IMD decile 1), rank 1 = least deprived; SII = fitted "
            "uptake at rank 1 minus rank 0 (positive: lower uptake in more deprived areas); "
            "RII = fitted uptake at rank 1 / fitted uptake at rank 0 (PHEindicatormethods "
            "phe_sii); relative_sii = SII / overall uptake"
        ),
        "sii": None,
        "sii_reason": None,
        "by_imd_decile": [],
        "by_group": {},
    }
    with_decile = areas[np.isfinite(pd.to_numeric(areas["imd_decile"], errors="coerce"))]
    with_decile = with_decile[with_decile["eligible"] > 0]
    if len(with_decile):
        deciles = with_decile.assign(imd_decile=with_decile["imd_decile"].round().astype(int))
        by_decile = group_uptake(deciles, "imd_decile", confidence=confidence)
        report["by_imd_decile"] = _records(by_decile.rename(columns={"group_value": "imd_decile"}))
        if len(by_decile) >= MIN_QUANTILES:
            report["sii"] = sii_rii(
                by_decile["vaccinated"].to_numpy(),
                by_decile["eligible"].to_numpy(),
                confidence=confidence,
                repetitions=repetitions,
                seed=seed,
            )
        else:
            report["sii_reason"] = (
                f"only {len(by_decile)} IMD deciles have eligible people; an SII needs at "
                f"least {MIN_QUANTILES} (PHE method)"
            )
    else:
        report["sii_reason"] = "no IMD decile is known for any area with eligible people"
    if uptake is not None:
        for column in groups:
            present = uptake[uptake[column] != ""]
            if len(present):
                report["by_group"][column] = _records(
                    group_uptake(present, column, confidence=confidence)
                )
    return report
