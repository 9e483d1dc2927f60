"""Funnel-plot statistics: observed uptake against an expected value.

Two views, because analysts use both:

* :func:`funnel_z` — Spiegelhalter's overdispersion-adjusted z-scores against each area's
  *expected* uptake (from the model in :mod:`models.expected`). Proportions are put on
  the variance-stabilising arcsine-square-root scale, ``y = asin(sqrt(p))`` with
  within-area standard error ``s = 1 / (2 sqrt(n))``, so ``z = (y − θ₀) / s`` with
  ``θ₀ = asin(sqrt(expected))``. Overdispersion is estimated from z-scores winsorised
  at 10% in each tail (extremes set to the 10th and 90th percentiles):
  ``φ = Σ z_w² / I`` (multiplicative), and the additive random-effects variance
  ``τ² = (I·φ − (I − 1)) / (Σ w − Σ w² / Σ w)`` with ``w = 1/s²`` (zero when
  ``I·φ ≤ I − 1``), a DerSimonian–Laird-style moment estimator. Adjusted z-scores are
  ``(y − θ₀) / sqrt(s² + τ²)``; control limits ``θ₀ ± z_α sqrt(s² + τ²)`` back-transformed
  with ``sin²``.
  Reference: Spiegelhalter DJ. Handling over-dispersion of performance indicators.
  Qual Saf Health Care 2005;14:347–351.

* :func:`funnel_significance` — the Fingertips (PHE/OHID) comparison against the
  overall average with no model and no overdispersion adjustment: an area is
  significantly low (high) at a level when its observed proportion lies below (above)
  the funnel limit where its Wilson interval just reaches the average. Because the
  Wilson interval inverts the score test, that limit is exactly
  ``average ± z·sqrt(average(1 − average)/n)``; PHEindicatormethods'
  ``sigma_adjustment`` solves the same quadratic in another form (``phe_funnel_significance``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from models.rates import z_for_confidence

#: Fingertips significance labels, lowest first.
SIGNIFICANCE_LABELS = ("low_99.8", "low_95", "not_significant", "high_95", "high_99.8")


@dataclass(frozen=True)
class Overdispersion:
    """Overdispersion estimates of one funnel plot.

    Attributes
    ----------
    phi
        Multiplicative overdispersion factor (1 = none; z-scores divide by ``sqrt(φ)``).
    tau2
        Additive between-area variance on the arcsine-square-root scale (radians²).
    n_areas
        Number of areas (with eligible people) the estimate used.
    winsor_fraction
        Fraction winsorised in each tail of the z-scores before estimating φ.
    """

    phi: float
    tau2: float
    n_areas: int
    winsor_fraction: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FunnelResult:
    """Funnel z-scores per area (NaN where there is nobody eligible).

    Attributes
    ----------
    z
        Additive random-effects adjusted z-score, the one used for flags.
    z_unadjusted
        Plain z-score on the arcsine scale (no overdispersion allowance).
    z_multiplicative
        ``z_unadjusted / sqrt(φ)`` when φ > 1, else unchanged.
    overdispersion
        The φ and τ² used.
    """

    z: np.ndarray
    z_unadjusted: np.ndarray
    z_multiplicative: np.ndarray
    overdispersion: Overdispersion


def arcsine_z(
    successes: npt.ArrayLike, trials: npt.ArrayLike, expected: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Transformed deviation of each area from its expected proportion.

    Returns
    -------
    (deviation, s, z)
        ``deviation = asin(sqrt(p)) − asin(sqrt(expected))`` in radians, the within-area
        standard error ``s = 1/(2 sqrt(n))`` and ``z = deviation / s``; NaN where
        ``trials`` is 0 or ``expected`` is missing.
    """
    x = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    e = np.asarray(expected, dtype=float)
    valid = (n > 0) & np.isfinite(e)
    safe_n = np.where(valid, n, 1.0)
    p = np.clip(np.where(valid, x / safe_n, 0.0), 0.0, 1.0)
    theta0 = np.arcsin(np.sqrt(np.clip(np.where(valid, e, 0.0), 0.0, 1.0)))
    deviation = np.where(valid, np.arcsin(np.sqrt(p)) - theta0, np.nan)
    s = np.where(valid, 0.5 / np.sqrt(safe_n), np.nan)
    return deviation, s, deviation / s


def winsorise(values: npt.ArrayLike, fraction: float = 0.1) -> np.ndarray:
    """Set values below the ``fraction`` quantile to that quantile, and values above the
    ``1 − fraction`` quantile to that one (quantiles by linear interpolation, R type 7,
    as FunnelPlotR and the NHS SHMI do). NaNs are dropped."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0 or fraction <= 0:
        return v
    low, high = np.quantile(v, [fraction, 1.0 - fraction])
    return np.clip(v, low, high)


def estimate_overdispersion(
    z: npt.ArrayLike, s: npt.ArrayLike, *, winsor_fraction: float = 0.1
) -> Overdispersion:
    """Spiegelhalter (2005) φ and τ² from unadjusted z-scores and standard errors.

    Parameters
    ----------
    z
        Unadjusted z-scores (NaN entries are ignored, with their ``s``).
    s
        Within-area standard errors on the transformed scale.
    winsor_fraction
        Winsorising fraction in each tail (0.1 in the paper).
    """
    z_arr = np.asarray(z, dtype=float)
    s_arr = np.asarray(s, dtype=float)
    keep = np.isfinite(z_arr) & np.isfinite(s_arr) & (s_arr > 0)
    count = int(keep.sum())
    if count < 2:
        return Overdispersion(phi=1.0, tau2=0.0, n_areas=count, winsor_fraction=winsor_fraction)
    z_w = winsorise(z_arr[keep], winsor_fraction)
    phi = float(np.mean(z_w**2))
    w = 1.0 / s_arr[keep] ** 2
    excess = count * phi - (count - 1)
    denominator = float(w.sum() - (w**2).sum() / w.sum())
    tau2 = max(0.0, excess / denominator) if excess > 0 and denominator > 0 else 0.0
    return Overdispersion(phi=phi, tau2=tau2, n_areas=count, winsor_fraction=winsor_fraction)


def funnel_z(
    successes: npt.ArrayLike,
    trials: npt.ArrayLike,
    expected: npt.ArrayLike,
    *,
    winsor_fraction: float = 0.1,
    overdispersion: Overdispersion | None = None,
) -> FunnelResult:
    """Overdispersion-adjusted funnel z-scores of observed against expected uptake.

    Parameters
    ----------
    successes, trials
        Vaccinated and eligible counts per area.
    expected
        Expected uptake per area (a proportion, e.g. the out-of-fold model prediction).
    winsor_fraction
        Winsorising fraction for estimating φ (ignored when ``overdispersion`` given).
    overdispersion
        Reuse estimates from elsewhere (e.g. the area-level fit for group tables).
    """
    deviation, s, z_raw = arcsine_z(successes, trials, expected)
    fit = overdispersion or estimate_overdispersion(z_raw, s, winsor_fraction=winsor_fraction)
    z_additive = deviation / np.sqrt(s**2 + fit.tau2)
    z_mult = z_raw / np.sqrt(fit.phi) if fit.phi > 1.0 else z_raw.copy()
    return FunnelResult(
        z=z_additive, z_unadjusted=z_raw, z_multiplicative=z_mult, overdispersion=fit
    )


def funnel_limits(
    expected: npt.ArrayLike,
    trials: npt.ArrayLike,
    *,
    confidence: float = 0.998,
    overdispersion: Overdispersion | None = None,
    method: Literal["additive", "multiplicative", "none"] = "additive",
) -> tuple[np.ndarray, np.ndarray]:
    """Control limits (as proportions) around ``expected`` for areas of size ``trials``.

    ``θ₀ ± z_α·sqrt(s² + τ²)`` (additive), ``θ₀ ± z_α·sqrt(φ)·s`` (multiplicative, φ > 1
    only) or ``θ₀ ± z_α·s`` (none), back-transformed with ``sin²`` and kept in [0, 1].
    """
    e = np.asarray(expected, dtype=float)
    n = np.asarray(trials, dtype=float)
    z_alpha = z_for_confidence(confidence)
    theta0 = np.arcsin(np.sqrt(np.clip(e, 0.0, 1.0)))
    with np.errstate(divide="ignore"):
        s = 0.5 / np.sqrt(n)
    if overdispersion is None or method == "none":
        spread = z_alpha * s
    elif method == "additive":
        spread = z_alpha * np.sqrt(s**2 + overdispersion.tau2)
    else:
        spread = z_alpha * s * np.sqrt(max(overdispersion.phi, 1.0))
    low = np.sin(np.clip(theta0 - spread, 0.0, np.pi / 2)) ** 2
    high = np.sin(np.clip(theta0 + spread, 0.0, np.pi / 2)) ** 2
    return low, high


def fingertips_limits(
    trials: npt.ArrayLike, average: float, *, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Fingertips funnel limits for proportions: the observed proportions at which the
    Wilson interval of an area of size ``trials`` just reaches ``average``.

    Returns ``average ∓ z·sqrt(average(1 − average)/n)`` (see the module docstring);
    NaN where ``trials`` is 0.
    """
    n = np.asarray(trials, dtype=float)
    z = z_for_confidence(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = np.where(n > 0, z * np.sqrt(average * (1.0 - average) / n), np.nan)
    return average - half, average + half


def funnel_significance(
    successes: npt.ArrayLike,
    trials: npt.ArrayLike,
    *,
    average: float | None = None,
) -> np.ndarray:
    """Fingertips-style significance of each area against the overall average.

    Parameters
    ----------
    successes, trials
        Vaccinated and eligible counts per area.
    average
        Benchmark proportion; by default the overall rate ``Σ successes / Σ trials``.

    Returns
    -------
    Object array of labels ``low_99.8``, ``low_95``, ``not_significant``, ``high_95``,
    ``high_99.8`` (strict comparisons, as ``phe_funnel_significance``), ``None`` where
    ``trials`` is 0.
    """
    x = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    valid = n > 0
    if average is None:
        total = float(n[valid].sum())
        average = float(x[valid].sum()) / total if total > 0 else float("nan")
    p = np.where(valid, x / np.where(valid, n, 1.0), np.nan)
    low95, high95 = fingertips_limits(n, average, confidence=0.95)
    low998, high998 = fingertips_limits(n, average, confidence=0.998)
    labels = np.full(p.shape, "not_significant", dtype=object)
    labels[p > high95] = "high_95"
    labels[p > high998] = "high_99.8"
    labels[p < low95] = "low_95"
    labels[p < low998] = "low_99.8"
    labels[~valid | ~np.isfinite(p)] = None
    return labels
