"""Per-row gap statistics shared by the area table and the group tables.

:func:`row_statistics` turns counts and expected uptake into the statistics columns of a
gap table: Wilson intervals (:mod:`models.rates`), empirical-Bayes smoothing
(:mod:`models.smoothing`), overdispersed funnel z-scores and Fingertips significance
(:mod:`models.funnel`), shortfall, FDR q-values and flags (:mod:`models.flags`).
:data:`TABLE_COLUMNS` and :data:`EXTRA_COLUMNS` fix the column order of the area table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models.flags import FLAG_VALUES, assign_flags, bh_qvalues, p_low, shortfall
from models.funnel import SIGNIFICANCE_LABELS, Overdispersion, funnel_significance, funnel_z
from models.gap_params import GapParams
from models.rates import proportion, wilson_interval
from models.smoothing import eb_smooth

#: The area table's leading columns (SPEC order); group tables reuse ``[3:]``.
TABLE_COLUMNS = [
    "area_code",
    "area_name",
    "parent_code",
    "eligible",
    "vaccinated",
    "uptake",
    "ci_low",
    "ci_high",
    "smoothed_uptake",
    "expected_uptake",
    "target",
    "shortfall",
    "z",
    "funnel_significance",
    "flag",
    "q_value",
    "cluster_id",
    "priority",
    "imd_decile",
]
#: The area table's trailing columns, after the ``eth_*`` shares.
EXTRA_COLUMNS = [
    "imd_quintile",
    "prob_below_target",
    "p_value",
    "z_unadjusted",
    "equity_weight",
    "gi_z",
    "gi_p",
    "gi_q",
    "hot_target",
    "hot_expected",
    "hot_spot",
]


def row_statistics(
    eligible: np.ndarray,
    vaccinated: np.ndarray,
    expected: np.ndarray,
    params: GapParams,
    *,
    average: np.ndarray | float | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The per-row gap statistics shared by the area and group tables.

    Parameters
    ----------
    eligible, vaccinated
        People eligible and vaccinated per row (raw counts).
    expected
        Expected uptake per row, a proportion (:mod:`models.expected`).
    params
        Target, interval level and flag thresholds.
    average
        Benchmark uptake for Fingertips significance: None (the overall rate of these
        rows), one proportion, or one per row (e.g. the overall rate of the row's group
        value).

    Returns
    -------
    columns, estimates
        ``{column name: value per row}`` (``funnel_significance`` and ``flag`` as
        categoricals) and a JSON-ready summary: overdispersion, smoothing prior and
        flag counts.
    """
    ci_low, ci_high = wilson_interval(vaccinated, eligible, confidence=params.confidence)
    smooth = eb_smooth(vaccinated, eligible, expected, target=params.target)
    funnel = funnel_z(vaccinated, eligible, expected, winsor_fraction=params.winsor_fraction)
    p_value = p_low(funnel.z)
    q_value = bh_qvalues(p_value)
    gap = shortfall(vaccinated, eligible, params.target)
    if average is None or np.isscalar(average):
        significance = funnel_significance(vaccinated, eligible, average=average)  # type: ignore[arg-type]
    else:
        significance = _significance_by_benchmark(vaccinated, eligible, np.asarray(average))
    flags = assign_flags(
        prob_below_target=smooth.prob_below_target,
        shortfall=gap,
        z=funnel.z,
        q_value=q_value,
        prob_threshold=params.prob_threshold,
        min_shortfall=params.min_shortfall,
        fdr_alpha=params.fdr_alpha,
        limit_confidence=params.limit_confidence,
    )
    # Categoricals: a handful of labels over up to a million rows (and far cheaper for
    # pandas than object columns of strings).
    columns = {
        "uptake": proportion(vaccinated, eligible),
        "ci_low": ci_low,
        "ci_high": ci_high,
        "smoothed_uptake": smooth.smoothed,
        "expected_uptake": expected,
        "shortfall": gap,
        "z": funnel.z,
        "funnel_significance": pd.Categorical(significance, categories=SIGNIFICANCE_LABELS),
        "flag": pd.Categorical(flags, categories=FLAG_VALUES),
        "q_value": q_value,
        "prob_below_target": smooth.prob_below_target,
        "p_value": p_value,
        "z_unadjusted": funnel.z_unadjusted,
    }
    values, counts = np.unique(flags.astype(str), return_counts=True)
    estimates = {
        "overdispersion": _overdispersion_dict(funnel.overdispersion),
        "smoothing": {
            "prior_strength": smooth.prior_strength,
            "method": smooth.method,
            "at_bound": smooth.at_bound,
        },
        "flags": {v: int(c) for v, c in zip(values, counts, strict=True)},
    }
    return columns, estimates


def _significance_by_benchmark(
    vaccinated: np.ndarray, eligible: np.ndarray, average: np.ndarray
) -> np.ndarray:
    """Fingertips significance with a benchmark per row (one per distinct benchmark)."""
    labels = np.full(len(eligible), None, dtype=object)
    for value in np.unique(average[np.isfinite(average)]):
        rows = average == value
        labels[rows] = funnel_significance(vaccinated[rows], eligible[rows], average=float(value))
    return labels


def _overdispersion_dict(fit: Overdispersion) -> dict[str, Any]:
    """The overdispersion estimate, JSON-ready, with the method it follows."""
    return {
        **fit.to_dict(),
        "method": "Spiegelhalter 2005, arcsine-square-root scale, "
        "additive random effects (tau2) used for z",
    }
