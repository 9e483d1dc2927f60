"""Empirical-Bayes beta-binomial smoothing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import beta as beta_dist
from scipy.stats import betabinom

from models.smoothing import eb_smooth, estimate_prior_strength


def test_posterior_by_hand() -> None:
    # M = 100, expected 0.8: prior Beta(80, 20). 30 of 50 → Beta(110, 40), mean 110/150.
    result = eb_smooth([30, 0], [50, 0], [0.8, 0.7], target=0.75, prior_strength=100.0)
    assert result.smoothed[0] == pytest.approx(110 / 150)
    assert result.smoothed[1] == pytest.approx(0.7)  # nobody eligible: the prior mean
    assert result.prob_below_target[0] == pytest.approx(beta_dist.cdf(0.75, 110, 40))
    assert result.method == "given"


def test_prior_strength_is_the_marginal_likelihood_maximum() -> None:
    rng = np.random.default_rng(3)
    n = rng.integers(20, 400, 3000)
    expected = rng.uniform(0.5, 0.9, 3000)
    true_m = 150.0
    theta = rng.beta(true_m * expected, true_m * (1 - expected))
    x = rng.binomial(n, theta)
    m_hat, at_bound = estimate_prior_strength(x, n, expected)
    assert not at_bound
    # brute force over a grid with scipy's beta-binomial log-pmf
    grid = np.exp(np.linspace(np.log(20), np.log(2000), 400))
    loglik = [betabinom.logpmf(x, n, m * expected, m * (1 - expected)).sum() for m in grid]
    assert m_hat == pytest.approx(grid[int(np.argmax(loglik))], rel=0.02)
    assert 100 < m_hat < 225  # and close to the truth


def test_no_extra_variation_hits_the_bound() -> None:
    rng = np.random.default_rng(0)
    n = np.full(2000, 300)
    x = rng.binomial(n, 0.7)  # pure binomial noise around the expected value
    m_hat, at_bound = estimate_prior_strength(x, n, np.full(2000, 0.7))
    assert at_bound and m_hat > 1e5


@given(
    st.integers(1, 200),
    st.integers(1, 5000),
    st.floats(0.0, 1.0),
    st.floats(0.05, 0.95),
    st.floats(1.0, 1000.0),
)
def test_small_areas_shrink_at_least_as_much(
    n_small: int, extra: int, rate: float, prior_mean: float, strength: float
) -> None:
    n = np.array([n_small, n_small + extra])
    x = np.round(rate * n)
    observed = x / n
    result = eb_smooth(x, n, [prior_mean, prior_mean], target=0.8, prior_strength=strength)
    moved = np.abs(result.smoothed - observed)
    distance = np.abs(prior_mean - observed)
    fraction = np.divide(moved, distance, out=np.zeros(2), where=distance > 1e-12)
    # the posterior mean moves a fraction M/(n + M) of the way towards the prior mean
    np.testing.assert_allclose(
        fraction[distance > 1e-12], (strength / (n + strength))[distance > 1e-12], rtol=1e-6
    )
    assert fraction[0] >= fraction[1] - 1e-9 or distance[0] <= 1e-12 or distance[1] <= 1e-12
