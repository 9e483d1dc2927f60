"""Shortfall, false-discovery control, gap flags and the priority ranking.

* ``shortfall`` — people still to vaccinate for an area to reach the target,
  ``max(0, ceil(target·eligible − vaccinated))``.
* ``q_value`` — Benjamini–Hochberg (1995) adjusted p-values across areas.
* ``flag`` — ``below_target`` when the posterior probability that true uptake is below
  the target is at least ``prob_threshold`` *and* the shortfall is at least
  ``min_shortfall`` people (a big enough gap to act on); ``below_expected`` when the
  overdispersion-adjusted funnel z lies below the lower 99.8% limit *and* its one-sided
  p-value survives BH FDR control at ``fdr_alpha``; ``both``; else ``none``.
* ``priority`` — rank (1 = act first) by shortfall × equity weight, where the equity
  weight multiplies an IMD-quintile multiplier (quintile 1 = deciles 1–2, most
  deprived) by the share-weighted mean of ethnic-group multipliers.

Reference: Benjamini Y, Hochberg Y. Controlling the false discovery rate: a practical
and powerful approach to multiple testing. J R Stat Soc B 1995;57:289–300.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from scipy.stats import norm

from models.rates import z_for_confidence

FLAG_VALUES = ("none", "below_target", "below_expected", "both")
#: Default multipliers by IMD quintile (1 = most deprived fifth).
DEFAULT_IMD_QUINTILE_WEIGHTS: dict[int, float] = {1: 1.5, 2: 1.25, 3: 1.0, 4: 1.0, 5: 1.0}


def bh_qvalues(p_values: npt.ArrayLike) -> np.ndarray:
    """Benjamini–Hochberg q-values (step-up adjusted p-values).

    ``q₍ᵢ₎ = min_{j ≥ i} m·p₍ⱼ₎ / j`` over the ``m`` finite p-values sorted ascending,
    capped at 1. NaN p-values stay NaN and do not count in ``m``.
    """
    p = np.asarray(p_values, dtype=float)
    q = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    if m == 0:
        return q
    order = finite[np.argsort(p[finite], kind="stable")]
    ranked = p[order] * m / np.arange(1, m + 1)
    # running minimum from the largest p downwards enforces monotonicity
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    q[order] = np.minimum(adjusted, 1.0)
    return q


def shortfall(vaccinated: npt.ArrayLike, eligible: npt.ArrayLike, target: float) -> np.ndarray:
    """People still to vaccinate to reach ``target`` (int64, never negative).

    A tolerance of 1e-9 people stops floating-point noise (0.8 × 100 = 80.00000000000001)
    from adding a phantom person.
    """
    v = np.asarray(vaccinated, dtype=float)
    e = np.asarray(eligible, dtype=float)
    gap = np.ceil(target * e - v - 1e-9)
    return np.maximum(gap, 0.0).astype(np.int64)


def p_low(z: npt.ArrayLike) -> np.ndarray:
    """One-sided p-value for uptake *below* expected: ``Φ(z)`` (NaN stays NaN)."""
    return np.asarray(norm.cdf(np.asarray(z, dtype=float)), dtype=float)


def assign_flags(
    *,
    prob_below_target: npt.ArrayLike,
    shortfall: npt.ArrayLike,
    z: npt.ArrayLike,
    q_value: npt.ArrayLike,
    prob_threshold: float = 0.95,
    min_shortfall: int = 10,
    fdr_alpha: float = 0.05,
    limit_confidence: float = 0.998,
) -> np.ndarray:
    """Gap flag per area (object array of ``none``/``below_target``/``below_expected``/``both``).

    Parameters
    ----------
    prob_below_target
        Posterior P(true uptake < target) from :func:`models.smoothing.eb_smooth`.
    shortfall
        People to vaccinate to reach the target.
    z
        Overdispersion-adjusted funnel z-score against expected uptake.
    q_value
        BH-adjusted one-sided p-value of ``z``.
    prob_threshold, min_shortfall
        ``below_target`` needs ``P ≥ prob_threshold`` and ``shortfall ≥ min_shortfall``.
    fdr_alpha, limit_confidence
        ``below_expected`` needs ``z`` below the lower two-sided ``limit_confidence``
        funnel limit and ``q ≤ fdr_alpha``.
    """
    prob = np.asarray(prob_below_target, dtype=float)
    gap = np.asarray(shortfall, dtype=float)
    z_arr = np.asarray(z, dtype=float)
    q = np.asarray(q_value, dtype=float)
    below_target = (prob >= prob_threshold) & (gap >= min_shortfall)
    z_limit = z_for_confidence(limit_confidence)
    below_expected = (z_arr < -z_limit) & (q <= fdr_alpha)
    flags = np.full(prob.shape, "none", dtype=object)
    flags[below_target] = "below_target"
    flags[below_expected] = "below_expected"
    flags[below_target & below_expected] = "both"
    return flags


def imd_quintile(imd_decile: npt.ArrayLike) -> np.ndarray:
    """IMD quintile (1 = most deprived: deciles 1–2) as float, NaN when unknown."""
    d = np.asarray(imd_decile, dtype=float)
    return np.where(np.isfinite(d), np.ceil(np.clip(d, 1, 10) / 2.0), np.nan)


def equity_weight(
    imd_decile: npt.ArrayLike,
    ethnic_shares: Mapping[str, npt.ArrayLike],
    *,
    imd_quintile_weights: Mapping[int, float] | None = None,
    ethnic_group_weights: Mapping[str, float] | None = None,
) -> np.ndarray:
    """Equity weight per area: IMD-quintile multiplier × ethnic-mix multiplier.

    The ethnic-mix multiplier is the share-weighted mean of group multipliers,
    ``1 + Σ_g share_g·(m_g − 1)`` (groups without a multiplier and the unknown remainder
    count as 1). Areas with unknown IMD get the quintile multiplier 1.

    Parameters
    ----------
    imd_decile
        IMD decile per area (1 = most deprived), NaN when unknown.
    ethnic_shares
        ``{group: share array}`` (0–1, e.g. from ``eth_<group>`` indicators).
    imd_quintile_weights
        ``{quintile: multiplier}``; default :data:`DEFAULT_IMD_QUINTILE_WEIGHTS`.
    ethnic_group_weights
        ``{group: multiplier}``; default none (all 1).
    """
    quintile = imd_quintile(imd_decile)
    weights_by_q = dict(
        DEFAULT_IMD_QUINTILE_WEIGHTS if imd_quintile_weights is None else imd_quintile_weights
    )
    lookup = np.ones(6)
    for q, mult in weights_by_q.items():
        if 1 <= int(q) <= 5:
            lookup[int(q)] = float(mult)
    weight = np.where(
        np.isfinite(quintile), lookup[np.nan_to_num(quintile, nan=0).astype(int)], 1.0
    )
    ethnic_factor = np.ones_like(weight)
    for group, mult in (ethnic_group_weights or {}).items():
        if group in ethnic_shares:
            share = np.nan_to_num(np.asarray(ethnic_shares[group], dtype=float), nan=0.0)
            ethnic_factor = ethnic_factor + share * (float(mult) - 1.0)
    return weight * ethnic_factor


def priority_rank(
    shortfall: npt.ArrayLike,
    weight: npt.ArrayLike,
    *,
    prob_below_target: npt.ArrayLike,
    codes: npt.ArrayLike,
) -> np.ndarray:
    """Priority rank (1 = act first) by ``shortfall × weight``, descending.

    Ties are broken, in order, by larger shortfall, larger P(below target) and then
    ``codes`` (area codes, or any numeric key), so the ranking is deterministic.
    Missing values rank last.
    """
    gap = np.nan_to_num(np.asarray(shortfall, dtype=float), nan=0.0)
    score = gap * np.nan_to_num(np.asarray(weight, dtype=float), nan=1.0)
    prob = np.nan_to_num(np.asarray(prob_below_target, dtype=float), nan=-1.0)
    keys = np.asarray(codes)
    code_rank = (
        keys
        if np.issubdtype(keys.dtype, np.number)
        else np.unique(keys.astype(str), return_inverse=True)[1]
    )
    # np.lexsort sorts by the last key first
    order = np.lexsort((code_rank, -prob, -gap, -score))
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(1, order.size + 1)
    return rank
