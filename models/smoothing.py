"""Empirical-Bayes beta-binomial smoothing of area uptake.

Each area's true uptake θᵢ is given a Beta prior centred on its expected uptake eᵢ (from
:mod:`models.expected`) with a common *prior strength* M = α + β::

    θᵢ ~ Beta(M·eᵢ, M·(1 − eᵢ)),   xᵢ | θᵢ ~ Binomial(nᵢ, θᵢ)

M is estimated from the data by maximising the beta-binomial marginal likelihood
(type-II maximum likelihood) over log M, a one-dimensional bounded search. It measures
how closely areas follow the model: a large M means areas scatter little beyond
binomial noise around their expected values.

The posterior is ``Beta(xᵢ + M·eᵢ, nᵢ − xᵢ + M·(1 − eᵢ))`` with mean
``(xᵢ + M·eᵢ) / (nᵢ + M)``: the observed rate shrunk towards eᵢ by the fraction
``M / (nᵢ + M)``, so small areas shrink more than large ones. The posterior probability
that true uptake is below the target is the Beta CDF at the target.

Reference: Clayton D, Kaldor J. Empirical Bayes estimates of age-standardized relative
risks for use in disease mapping. Biometrics 1987;43:671–681; Carlin BP, Louis TA.
Bayes and Empirical Bayes Methods for Data Analysis, ch. 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize_scalar
from scipy.special import betainc, betaln

#: Search range for the prior strength M (people-equivalents of prior information).
MIN_PRIOR_STRENGTH = 0.5
MAX_PRIOR_STRENGTH = 1.0e6
#: Expected uptake is kept this far inside (0, 1) so the Beta prior is proper.
_EPS = 1.0e-6


@dataclass(frozen=True)
class SmoothingResult:
    """Empirical-Bayes posterior summaries per area.

    Attributes
    ----------
    smoothed
        Posterior mean uptake (NaN where the expected value is missing).
    prob_below_target
        Posterior probability that true uptake is below the target.
    alpha, beta
        Posterior Beta parameters.
    prior_strength
        The prior strength M = α + β used (people-equivalents).
    method
        How M was obtained: ``"marginal_likelihood"``, ``"given"`` or a fallback note.
    at_bound
        True when the likelihood maximum lay on the search bound (M effectively
        infinite — no variation beyond the model — or effectively 0).
    """

    smoothed: np.ndarray
    prob_below_target: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    prior_strength: float
    method: str
    at_bound: bool


def _negative_marginal_log_likelihood(
    log_m: float, x: np.ndarray, n: np.ndarray, e: np.ndarray
) -> float:
    m = np.exp(log_m)
    a = m * e
    b = m * (1.0 - e)
    # The binomial coefficient does not depend on M and is left out.
    return -float(np.sum(betaln(x + a, n - x + b) - betaln(a, b)))


def estimate_prior_strength(
    successes: npt.ArrayLike,
    trials: npt.ArrayLike,
    expected: npt.ArrayLike,
    *,
    max_rows: int = 100_000,
    seed: int = 0,
) -> tuple[float, bool]:
    """Maximum marginal-likelihood prior strength M of the beta-binomial model.

    With more than ``max_rows`` areas, M is estimated on a random subset of that size:
    one scalar is pinned down long before then, and England-size group tables (900,000
    rows) stay fast.

    Returns
    -------
    (M, at_bound)
        ``at_bound`` is True when the optimum is at the edge of
        [:data:`MIN_PRIOR_STRENGTH`, :data:`MAX_PRIOR_STRENGTH`].
    """
    x = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    e = np.asarray(expected, dtype=float)
    keep = (n > 0) & np.isfinite(e)
    if not keep.any():
        return MAX_PRIOR_STRENGTH, True
    x, n, e = x[keep], n[keep], np.clip(e[keep], _EPS, 1.0 - _EPS)
    if len(x) > max_rows:
        rows = np.random.default_rng(seed).choice(len(x), size=max_rows, replace=False)
        x, n, e = x[rows], n[rows], e[rows]
    lo, hi = np.log(MIN_PRIOR_STRENGTH), np.log(MAX_PRIOR_STRENGTH)
    found = minimize_scalar(
        _negative_marginal_log_likelihood,
        bounds=(lo, hi),
        args=(x, n, e),
        method="bounded",
        options={"xatol": 1e-3},
    )
    log_m = float(found.x)
    at_bound = bool(log_m - lo < 1e-2 or hi - log_m < 1e-2)
    return float(np.exp(log_m)), at_bound


def eb_smooth(
    successes: npt.ArrayLike,
    trials: npt.ArrayLike,
    expected: npt.ArrayLike,
    *,
    target: float,
    prior_strength: float | None = None,
) -> SmoothingResult:
    """Empirical-Bayes smoothed uptake and P(true uptake < target) per area.

    Parameters
    ----------
    successes, trials
        Vaccinated and eligible counts.
    expected
        Prior mean per area (expected uptake, a proportion).
    target
        Uptake target, e.g. 0.8.
    prior_strength
        Use this M instead of estimating it (e.g. the area-level M for group rows).
    """
    x = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    e_raw = np.asarray(expected, dtype=float)
    e = np.clip(np.where(np.isfinite(e_raw), e_raw, 0.5), _EPS, 1.0 - _EPS)
    if prior_strength is None:
        m, at_bound = estimate_prior_strength(x, n, e_raw)
        method = "marginal_likelihood"
    else:
        m, at_bound, method = float(prior_strength), False, "given"
    alpha = x + m * e
    beta = n - x + m * (1.0 - e)
    smoothed = alpha / (alpha + beta)
    # The Beta CDF is the regularised incomplete beta function I_target(α, β).
    prob_below = betainc(alpha, beta, target)
    missing = ~np.isfinite(e_raw)
    smoothed = np.where(missing, np.nan, smoothed)
    prob_below = np.where(missing, np.nan, prob_below)
    return SmoothingResult(
        smoothed=smoothed,
        prob_below_target=prob_below,
        alpha=alpha,
        beta=beta,
        prior_strength=m,
        method=method,
        at_bound=at_bound,
    )
