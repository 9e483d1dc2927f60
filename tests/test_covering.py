"""Covering solvers against brute-force enumeration and hand-built instances."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.spatial import cKDTree

from geo._errors import InfeasibleError
from models._cover_dual import _smoothed_dual_bound
from models._cover_race import _bound_and_search
from models._cover_search import _iterated_search, _SwapState
from models._greedy import _best_greedy
from models._instance import _Race
from models._milp import _solve_highs
from models.capacitated import solve_capacitated
from models.covering import (
    CoveringProblem,
    SiteLimits,
    _prepare,
    covering_value,
    solve_covering,
)
from models.minimum import minimum_sites


def _random_instance(seed: int, n: int = 30, m: int = 10, *, decay: bool = False):
    rng = np.random.default_rng(seed)
    demand = rng.uniform(0, 10, (n, 2))
    sites = rng.uniform(0, 10, (m, 2))
    distance = np.hypot(*(demand[:, None, :] - sites[None, :, :]).transpose(2, 0, 1))
    radius = 3.0
    values = np.where(distance <= radius, 1.0 - distance / radius if decay else 1.0, 0.0)
    weight = rng.uniform(1, 10, n)
    return sp.csr_array(values), weight


def _brute_force(problem: CoveringProblem, p: int, feasible=lambda s: True) -> float:
    m = problem.coverage.shape[1]
    best = -np.inf
    for k in range(p + 1):
        for subset in itertools.combinations(range(m), k):
            if not set(problem.required) <= set(subset) or set(problem.excluded) & set(subset):
                continue
            if feasible(subset):
                best = max(best, covering_value(problem, subset))
    return best


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("decay", [False, True])
def test_exact_equals_brute_force(seed: int, decay: bool) -> None:
    coverage, weight = _random_instance(seed, decay=decay)
    existing = np.where(np.arange(30) % 7 == 0, 0.5, 0.0)
    problem = CoveringProblem.with_count(coverage, weight, 3, existing=existing)
    optimum = _brute_force(problem, 3)
    solution = solve_covering(problem, exact=True)
    assert solution.value == pytest.approx(optimum, rel=1e-7)
    assert covering_value(problem, solution.selected) == pytest.approx(solution.value, rel=1e-9)
    assert solution.status == "optimal"
    assert len(solution.selected) <= 3


@pytest.mark.parametrize("seed", range(6))
def test_heuristic_within_certified_gap_and_bounds_valid(seed: int) -> None:
    coverage, weight = _random_instance(100 + seed, n=40, m=12)
    problem = CoveringProblem.with_count(coverage, weight, 3)
    optimum = _brute_force(problem, 3)
    solution = solve_covering(problem, exact=False, target_gap=0.0, time_limit_s=5)
    assert solution.value <= optimum * (1 + 1e-9)
    assert solution.value >= (1 - 1 / np.e) * optimum
    assert solution.bound >= optimum * (1 - 1e-9)
    for name, bound in solution.bounds.items():
        if bound is not None:
            assert bound >= optimum * (1 - 1e-9), name
    assert optimum <= solution.value / (1 - solution.gap_pct / 100) * (1 + 1e-9)
    assert sum(solution.marginal_gains) == pytest.approx(solution.value - solution.base_value)


def test_overlapping_catchments_count_each_person_once() -> None:
    # Rows 0-2 are in both catchments; site 2 alone covers row 3.
    coverage = sp.csr_array(np.array([[1, 1, 0], [1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=float))
    weight = np.array([10.0, 10.0, 10.0, 25.0])
    solution = solve_covering(CoveringProblem.with_count(coverage, weight, 2))
    assert sorted(solution.selected) == [0, 2] or sorted(solution.selected) == [1, 2]
    assert solution.value == pytest.approx(55.0)
    assert solution.marginal_gains == pytest.approx([30.0, 25.0])


def test_existing_reach_is_not_counted_again() -> None:
    coverage = sp.csr_array(np.array([[1, 0], [1, 0], [0, 1]], dtype=float))
    weight = np.array([50.0, 50.0, 60.0])
    existing = np.array([1.0, 1.0, 0.0])  # an open site already reaches rows 0 and 1
    solution = solve_covering(CoveringProblem.with_count(coverage, weight, 1, existing=existing))
    assert solution.selected == [1]
    assert solution.base_value == pytest.approx(100.0)
    assert solution.value == pytest.approx(160.0)
    assert solution.marginal_gains == pytest.approx([60.0])
    # With a factor of one half, site 0 adds the other half of rows 0 and 1: 50 < 60.
    half = solve_covering(CoveringProblem.with_count(coverage, weight, 1, existing=existing / 2))
    assert half.selected == [1] and half.value == pytest.approx(110.0)


def test_required_and_excluded_sites() -> None:
    coverage, weight = _random_instance(7)
    problem = CoveringProblem.with_count(coverage, weight, 3)
    free = solve_covering(problem, exact=True)
    required, excluded = [j for j in range(10) if j not in free.selected][:1], free.selected[:1]
    constrained = CoveringProblem.with_count(
        coverage, weight, 3, required=required, excluded=excluded
    )
    solution = solve_covering(constrained, exact=True)
    assert required[0] in solution.selected and excluded[0] not in solution.selected
    assert solution.selected[0] == required[0]
    assert solution.value == pytest.approx(_brute_force(constrained, 3), rel=1e-7)
    with pytest.raises(InfeasibleError):
        solve_covering(CoveringProblem.with_count(coverage, weight, 1, required=[0, 1]))


def test_per_type_counts_and_budget() -> None:
    coverage, weight = _random_instance(11, m=10)
    group = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])  # e.g. pharmacies and vans
    limits = SiteLimits(
        group=group,
        group_cap=np.array([1, 2]),
        family=np.array([0, 1]),
        family_cap=np.array([1, 2]),
    )
    problem = CoveringProblem(coverage, weight, limits)
    optimum = _brute_force(
        problem, 3, lambda s: sum(group[list(s)] == 0) <= 1 and sum(group[list(s)] == 1) <= 2
    )
    for exact in (True, False):
        solution = solve_covering(problem, exact=exact)
        chosen = group[solution.selected]
        assert (chosen == 0).sum() <= 1 and (chosen == 1).sum() <= 2
        assert solution.bound >= optimum * (1 - 1e-9)
    assert solve_covering(problem, exact=True).value == pytest.approx(optimum, rel=1e-7)

    cost = np.array([1.0, 2, 3, 4, 5, 1, 2, 3, 4, 5])
    budgeted = CoveringProblem.with_count(coverage, weight, 10, cost=cost, budget=6.0)
    optimum = _brute_force(budgeted, 6, lambda s: cost[list(s)].sum() <= 6.0)
    for exact in (True, False):
        solution = solve_covering(budgeted, exact=exact)
        assert cost[solution.selected].sum() <= 6.0
        assert solution.bound >= optimum * (1 - 1e-9)
    assert solve_covering(budgeted, exact=True).value == pytest.approx(optimum, rel=1e-7)


def test_capacitated_hand_built() -> None:
    # Site 0 reaches rows 0-1 (40 + 30 people) but can take 50; site 1 reaches rows 1-2.
    reach = sp.csr_array(np.array([[40, 0], [30, 30], [0, 20]], dtype=float))
    value = sp.csr_array(np.array([[2.0, 0], [1.0, 1.0], [0, 1.0]]))
    people = np.array([40.0, 30.0, 20.0])
    capacity = np.array([50.0, 100.0])
    limits = SiteLimits(
        group=np.zeros(2, dtype=np.int64),
        group_cap=np.array([2]),
        family=np.zeros(1, dtype=np.int64),
        family_cap=np.array([2]),
    )
    solution = solve_capacitated(reach, value, people, capacity, limits)
    # Optimum: site 0 takes row 0 (40 × 2) + 10 of row 1; site 1 takes 20 of row 1 + row 2.
    assert solution.value == pytest.approx(80 + 10 + 20 + 20)
    assert solution.status == "optimal"
    taken = solution.assignment.toarray()
    assert np.all(taken.sum(axis=0) <= capacity + 1e-9)
    assert np.all(taken.sum(axis=1) <= people + 1e-9)
    one = SiteLimits(
        group=np.zeros(2, dtype=np.int64),
        group_cap=np.array([1]),
        family=np.zeros(1, dtype=np.int64),
        family_cap=np.array([1]),
    )
    single = solve_capacitated(reach, value, people, capacity, one, exact=False)
    assert single.selected == [0] and single.value == pytest.approx(90.0)
    assert single.bound >= 90.0


def test_minimum_sites_hand_built() -> None:
    # Four disjoint catchments of 40, 30, 20, 10 people: 75% of 100 needs three sites.
    coverage = sp.csr_array(np.eye(4))
    weight = np.array([40.0, 30.0, 20.0, 10.0])
    result = minimum_sites(CoveringProblem.with_count(coverage, weight, 4), 75.0)
    assert result.n_sites == 3 and result.proven_minimal
    assert sorted(result.solution.selected) == [0, 1, 2]
    assert minimum_sites(CoveringProblem.with_count(coverage, weight, 4), 70.0).n_sites == 2
    with pytest.raises(InfeasibleError):
        minimum_sites(CoveringProblem.with_count(coverage, weight, 4), 101.0)


def test_greedy_matches_known_uniform_instance() -> None:
    # 2,000 points, 300 sites: the greedy + swap solution is certified within 0.1%.
    rng = np.random.default_rng(0)
    demand = rng.uniform(0, 20_000, (2000, 2))
    sites = rng.uniform(0, 20_000, (300, 2))
    pairs = cKDTree(sites).sparse_distance_matrix(cKDTree(demand), 1000.0, output_type="ndarray")
    coverage = sp.csr_array((np.ones(len(pairs)), (pairs["j"], pairs["i"])), shape=(2000, 300))
    weight = rng.uniform(50, 500, 2000)
    solution = solve_covering(CoveringProblem.with_count(coverage, weight, 20), exact=False)
    assert solution.gap_pct < 0.1
    exact = solve_covering(CoveringProblem.with_count(coverage, weight, 20), exact=True)
    assert exact.status == "optimal"
    assert solution.value >= exact.value * (1 - solution.gap_pct / 100) - 1e-6


# Smoothed dual bound, fast swap bookkeeping and the iterated search.

_GROUPS = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
_COST = np.array([1.0, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3])


def _limited(seed: int, kind: str, *, decay: bool = False) -> tuple[CoveringProblem, object]:
    """A 40 × 12 instance with one cap, two groups under a family cap, or a budget."""
    coverage, weight = _random_instance(300 + seed, n=40, m=12, decay=decay)
    existing = np.where(np.arange(40) % 5 == 0, 0.5, 0.0)
    if kind == "single":
        problem = CoveringProblem.with_count(coverage, weight, 3, existing=existing)
        return problem, lambda s: len(s) <= 3
    if kind == "groups":
        limits = SiteLimits(
            group=_GROUPS,
            group_cap=np.array([2, 2]),
            family=np.array([0, 0]),
            family_cap=np.array([3]),
        )
        problem = CoveringProblem(coverage, weight, limits, existing)
        return (
            problem,
            lambda s: (
                len(s) <= 3
                and (_GROUPS[list(s)] == 0).sum() <= 2
                and (_GROUPS[list(s)] == 1).sum() <= 2
            ),
        )
    problem = CoveringProblem.with_count(
        coverage, weight, 12, existing=existing, cost=_COST, budget=5.0
    )
    return problem, lambda s: _COST[list(s)].sum() <= 5.0


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kind", ["single", "groups", "budget"])
def test_smoothed_dual_bound_is_valid_and_near_lp(seed: int, kind: str) -> None:
    problem, feasible = _limited(seed, kind)
    optimum = _brute_force(problem, 5, feasible)
    model, _, _ = _prepare(problem)
    assert model.binary
    dual = _smoothed_dual_bound(model, deadline=time.perf_counter() + 5, stall_tol=1e-9)
    assert dual.bound >= optimum * (1 - 1e-9)
    exact = _solve_highs(model, integer=True, time_limit_s=10)
    assert exact.value == pytest.approx(optimum, rel=1e-7)
    lp = _solve_highs(model, integer=False, time_limit_s=10)
    assert lp.value is not None
    # Every Lagrangian bound is at least the LP optimum (weak duality) ...
    assert dual.bound >= lp.value * (1 - 1e-7)
    # ... and the smoothed dual gets close to it (with a budget, the knapsack and the
    # counts are relaxed separately, so only the first two are held to the LP).
    if kind != "budget":
        assert dual.bound <= lp.value * (1 + 2e-3)


def _swap_values(problem: CoveringProblem, state: _SwapState, columns: np.ndarray) -> None:
    """Every Δ(j, s) the bookkeeping gives equals the change of f, recomputed."""
    here = state.selected
    base = covering_value(problem, [int(columns[k]) for k in here])
    for j in range(state.model.n_cols):
        if state.in_set[j]:
            continue
        for slot in np.flatnonzero(state.site_of_slot >= 0):
            out = int(state.site_of_slot[slot])
            after = [int(columns[k]) for k in here if k != out] + [int(columns[j])]
            delta = state.gain[j] - state.loss[slot] + state.extra[j, slot]
            assert delta == pytest.approx(covering_value(problem, after) - base, abs=1e-7)


@pytest.mark.parametrize("decay", [False, True])
def test_fast_swap_bookkeeping_matches_recomputation(decay: bool) -> None:
    coverage, weight = _random_instance(41, n=40, m=12, decay=decay)
    existing = np.where(np.arange(40) % 6 == 0, 0.3, 0.0)
    problem = CoveringProblem.with_count(coverage, weight, 4, existing=existing)
    model, columns, _ = _prepare(problem)
    state = _SwapState(model, [0, 3, 7], 4)
    _swap_values(problem, state, columns)
    rng = np.random.default_rng(5)
    for _ in range(6):
        inside = np.flatnonzero(state.in_set)
        outside = np.flatnonzero(~state.in_set)
        k = int(rng.integers(1, 3))
        room = int((state.site_of_slot < 0).sum())
        state.move(rng.choice(outside, k + min(room, 1), replace=False), rng.choice(inside, k))
        assert state.value == pytest.approx(model.value(np.array(state.selected)), rel=1e-12)
        _swap_values(problem, state, columns)
    # Incremental updates leave the same tables as building them afresh (slots may differ).
    fresh = _SwapState(model, state.selected, 4)
    assert np.allclose(state.gain, fresh.gain)
    slot_of = {int(site): s for s, site in enumerate(state.site_of_slot) if site >= 0}
    for s, site in enumerate(fresh.site_of_slot):
        if site >= 0:
            assert state.loss[slot_of[int(site)]] == pytest.approx(fresh.loss[s], abs=1e-9)
            assert np.allclose(state.extra[:, slot_of[int(site)]], fresh.extra[:, s])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", ["single", "groups", "budget"])
def test_iterated_search_feasible_and_never_below_greedy(seed: int, kind: str) -> None:
    problem, feasible = _limited(seed, kind, decay=seed % 2 == 1)
    model, columns, _ = _prepare(problem)
    greedy = _best_greedy(model)
    chosen, value, _ = _iterated_search(model, greedy.selected, deadline=time.perf_counter() + 2)
    assert value >= greedy.value - 1e-9
    picked = [int(columns[k]) for k in chosen]
    assert feasible(picked)
    assert value == pytest.approx(covering_value(problem, picked), rel=1e-9)
    assert value <= _brute_force(problem, 5, feasible) * (1 + 1e-9)


@pytest.mark.parametrize("parallel", [False, True])
def test_bound_and_search_side_by_side(parallel: bool) -> None:
    problem, feasible = _limited(2, "groups")
    optimum = _brute_force(problem, 5, feasible)
    model, columns, _ = _prepare(problem)
    race = _Race(target_gap=0.0)
    found = _bound_and_search(
        model,
        [0],
        model.value(np.array([0])),
        race,
        deadline=time.perf_counter() + 1.0,
        search=True,
        parallel=parallel,
    )
    assert found.bound >= optimum * (1 - 1e-9) and race.bound >= optimum * (1 - 1e-9)
    assert feasible([int(columns[k]) for k in found.selected])
    assert found.value == pytest.approx(model.value(np.array(found.selected)), rel=1e-12)
    assert found.value <= optimum * (1 + 1e-9)
    assert found.steps  # one site out of three: the search must have improved on it


def test_large_instance_runs_bound_beside_search_within_time() -> None:
    # 40,000 points and 1,000 sites (about 314,000 pairs): past the LP size, so the dual
    # runs in a second thread beside the iterated search.
    rng = np.random.default_rng(3)
    demand = rng.uniform(0, 20_000, (40_000, 2))
    sites = rng.uniform(0, 20_000, (1_000, 2))
    pairs = cKDTree(sites).sparse_distance_matrix(cKDTree(demand), 1000.0, output_type="ndarray")
    coverage = sp.csr_array((np.ones(len(pairs)), (pairs["j"], pairs["i"])), shape=(40_000, 1_000))
    weight = rng.uniform(50, 500, 40_000)
    problem = CoveringProblem.with_count(coverage, weight, 40)
    solution = solve_covering(problem, exact=False, time_limit_s=2.0, target_gap=1e-4)
    assert solution.seconds <= 2.5
    assert solution.value == pytest.approx(covering_value(problem, solution.selected), rel=1e-9)
    assert solution.bounds["lagrangian"] is not None
    assert solution.bound <= solution.bounds["submodular"]
    assert "ils" in solution.method
    assert solution.gap_pct < 3.0
