"""Minimum-facilities mode: how many sites are needed to reach a given value.

Smallest ``p`` with ``max_{|S| ≤ p} f(S) ≥ target`` (the dual of maximal covering; Church
& ReVelle 1974 note the two are solved by the same machinery). The greedy run without a
count cap gives a ``p`` that works; then ``p − 1`` is solved with bounds: a solution
reaching the target lowers ``p`` and the search repeats, while an upper bound below the
target proves that no ``p − 1`` sites — hence no fewer, as the optimum grows with ``p`` —
can reach it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from geo._errors import InfeasibleError
from models.covering import CoveringProblem, CoveringSolution, solve_covering


@dataclass
class MinimumSites:
    """Result of :func:`minimum_sites`.

    ``n_sites`` sites (of the counted family) reach the target with ``solution``;
    ``proven_minimal`` says whether the bounds showed ``n_sites − 1`` cannot, and
    ``lower_bound`` is the smallest count the bounds could not rule out.
    """

    n_sites: int
    solution: CoveringSolution
    proven_minimal: bool
    lower_bound: int


def minimum_sites(
    problem: CoveringProblem,
    target_value: float,
    *,
    family: int = 0,
    time_limit_s: float = 30.0,
) -> MinimumSites:
    """Smallest number of sites in ``family`` whose best choice reaches ``target_value``.

    Other caps (other families, groups, budget) are kept; the cap of ``family`` is what
    varies. ``target_value`` is in the units of ``f`` (existing reach included).

    Raises
    ------
    InfeasibleError
        When even every allowed site together cannot reach the target.
    """
    began = time.perf_counter()
    n_candidates = problem.coverage.shape[1]
    in_family = problem.limits.family[problem.limits.group] == family
    most = int(in_family.sum())
    widest = _with_cap(problem, family, most)
    full = solve_covering(widest, exact=False, time_limit_s=max(time_limit_s * 0.1, 0.5))
    if full.value < target_value * (1 - 1e-12):
        raise InfeasibleError(
            f"all {n_candidates} candidate sites together reach {full.value:.6g}, short of "
            f"the target {target_value:.6g}"
        )
    reached = np.cumsum(full.marginal_gains) + full.base_value
    # Fewest greedy-ordered sites that already reach the target.
    first = int(np.searchsorted(reached, target_value * (1 - 1e-12)))
    prefix = full.selected[: first + 1]
    n_sites = max(sum(1 for j in prefix if in_family[j]), len(problem.required))
    best = solve_covering(
        _with_cap(problem, family, n_sites), exact=False, time_limit_s=max(time_limit_s * 0.1, 0.5)
    )
    proven = False
    lower = 0
    while n_sites > 0 and time.perf_counter() - began < time_limit_s:
        remaining = time_limit_s - (time.perf_counter() - began)
        fewer = solve_covering(
            _with_cap(problem, family, n_sites - 1), exact="auto", time_limit_s=remaining
        )
        if fewer.value >= target_value * (1 - 1e-12):
            n_sites, best = n_sites - 1, fewer
            continue
        if fewer.bound < target_value * (1 - 1e-12):
            proven = True
            lower = n_sites
        else:
            lower = n_sites - 1
        break
    if n_sites == 0:
        proven, lower = True, 0
    return MinimumSites(n_sites, best, proven, lower)


def _with_cap(problem: CoveringProblem, family: int, cap: int) -> CoveringProblem:
    family_cap = problem.limits.family_cap.copy()
    family_cap[family] = cap
    # Group caps that merely repeat the family cap follow it; tighter ones stay.
    old = problem.limits.family_cap[family]
    in_family = problem.limits.family == family
    group_cap = np.where(
        in_family & (problem.limits.group_cap >= old), cap, problem.limits.group_cap
    )
    limits = replace(problem.limits, family_cap=family_cap, group_cap=group_cap)
    return replace(problem, limits=limits)
