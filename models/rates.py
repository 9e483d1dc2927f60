"""Proportions and their Wilson score confidence intervals.

The Wilson (1927) score interval is the method Public Health England / OHID use for
proportions in Fingertips (PHEindicatormethods ``phe_proportion``): it stays inside
[0, 1], behaves well for small counts and for 0 or n successes, and it is the set of
true proportions π a score test would not reject, ``|p − π| ≤ z·sqrt(π(1 − π)/n)``.
Solving that quadratic in π gives the closed form used here::

    (2x + z² ∓ z·sqrt(z² + 4x(1 − x/n))) / (2(n + z²))

Reference: Wilson EB. Probable inference, the law of succession, and statistical
inference. J Am Stat Assoc 1927;22:209–212.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
from scipy.stats import norm

ArrayLike = npt.ArrayLike


def z_for_confidence(confidence: float) -> float:
    """Two-sided standard normal critical value, e.g. 1.95996 for 0.95.

    Parameters
    ----------
    confidence
        Coverage of a two-sided interval, strictly between 0 and 1.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    return float(norm.ppf(0.5 + confidence / 2.0))


def proportion(successes: ArrayLike, trials: ArrayLike) -> np.ndarray:
    """Observed proportion ``successes / trials``; NaN where ``trials`` is 0."""
    x = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    out = np.full(np.broadcast(x, n).shape, np.nan)
    np.divide(x, n, out=out, where=n > 0)
    return out


def wilson_interval(
    successes: ArrayLike, trials: ArrayLike, *, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for binomial proportions, vectorised.

    Parameters
    ----------
    successes
        Number of people with the outcome (e.g. vaccinated), ``0 ≤ x ≤ n``.
    trials
        Number of people at risk (e.g. eligible). Where it is 0 both limits are NaN.
    confidence
        Two-sided coverage, e.g. 0.95 or 0.998.

    Returns
    -------
    (lower, upper)
        Arrays of proportions in [0, 1]. The lower limit is exactly 0 when ``x == 0``
        and the upper limit exactly 1 when ``x == n``.
    """
    z = z_for_confidence(confidence)
    x = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    x, n = np.broadcast_arrays(x, n)
    valid = n > 0
    safe_n = np.where(valid, n, 1.0)
    z2 = z * z
    centre = 2.0 * x + z2
    # clip guards the radicand against −0 from rounding when x == n
    spread = z * np.sqrt(np.clip(z2 + 4.0 * x * (1.0 - x / safe_n), 0.0, None))
    denominator = 2.0 * (safe_n + z2)
    lower = np.clip((centre - spread) / denominator, 0.0, 1.0)
    upper = np.clip((centre + spread) / denominator, 0.0, 1.0)
    lower = np.where(x <= 0, 0.0, lower)
    upper = np.where(x >= safe_n, 1.0, upper)
    lower = np.where(valid, lower, np.nan)
    upper = np.where(valid, upper, np.nan)
    return lower, upper


def wilson_intervals(
    successes: ArrayLike,
    trials: ArrayLike,
    *,
    confidences: Iterable[float] = (0.95, 0.998),
) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Wilson intervals at several confidence levels (Fingertips shows 95% and 99.8%).

    Returns
    -------
    ``{confidence: (lower, upper)}`` for each requested level.
    """
    return {
        float(level): wilson_interval(successes, trials, confidence=float(level))
        for level in confidences
    }
