"""Capacitated covering: each site reaches at most its capacity of people.

The model (the capacitated maximal covering problem, Current & Storbeck 1988):

    maximise  Σ_ij u_ij x_ij
    s.t.      Σ_j x_ij ≤ d_i            (people of demand point i reached at most once)
              Σ_i x_ij ≤ K_j y_j        (site j reaches at most its capacity K_j)
              0 ≤ x_ij ≤ r_ij y_j       (only people within its catchment)
              y within the count caps / budget, y ∈ {0, 1},

with ``d_i`` the people not yet reached, ``r_ij`` those a site can reach (``d_i`` times
its coverage share) and ``u_ij`` the value of one person (equity multiplier × affinity).

The heuristic is a lazy greedy (CELF, Leskovec et al. 2007): a site's value is its best
fill — people taken in decreasing value per person up to capacity from what is still
unreached — which only falls as others are added, so stale values are upper bounds and
only the leading candidates are re-evaluated, a batch at a time. Bounds: the best feasible
sum of stand-alone fill values (each site's value in any solution is at most its fill on
the full demand), and the LP relaxation with HiGHS when small enough; the exact MILP
runs when small or on request.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import highspy
import numpy as np
import scipy.sparse as sp

from geo._errors import InfeasibleError
from models._instance import _EPS, SiteLimits, _best_subset, _gather
from models._milp import _limit_rows, highs_problem

#: Instances up to this many (demand, site) pairs get the LP bound and, on "auto", the MILP.
CAPACITATED_EXACT_MAX_PAIRS = 20_000
_BATCH = 32


@dataclass
class CapacitatedSolution:
    """Chosen sites (greedy order), value gains, the assignment and the certificate.

    ``assignment`` is a sparse ``n_demand × n_sites`` matrix of people reached.
    """

    selected: list[int]
    marginal_gains: list[float]
    assignment: sp.csr_array
    value: float
    bound: float
    bounds: dict[str, float | None]
    gap_pct: float
    method: str
    status: str
    seconds: float


def solve_capacitated(
    reach: sp.csr_array,
    value_per_person: sp.csr_array,
    people: np.ndarray,
    capacity: np.ndarray,
    limits: SiteLimits,
    *,
    required: Sequence[int] = (),
    excluded: Sequence[int] = (),
    exact: bool | Literal["auto"] = "auto",
    time_limit_s: float = 30.0,
) -> CapacitatedSolution:
    """Choose sites and assign people to them within capacities.

    Parameters
    ----------
    reach
        ``r_ij``: people of demand point ``i`` site ``j`` can reach (sparse, ≤ ``people``).
    value_per_person
        ``u_ij`` on the same sparsity pattern as ``reach``.
    people
        ``d_i``: people at each demand point still to reach.
    capacity
        ``K_j``: people each site can reach (capacity per day × days).
    """
    began = time.perf_counter()
    reach = sp.csr_array(reach)
    csc = sp.csc_array(reach)
    csc.sort_indices()
    value_csc = sp.csc_array(value_per_person)
    value_csc.sort_indices()
    m = reach.shape[1]
    allowed = np.ones(m, dtype=bool)
    allowed[np.asarray(list(excluded), dtype=np.int64)] = False
    residual = np.asarray(people, dtype=float).copy()
    capacity = np.asarray(capacity, dtype=float)
    assignment = _Assignment()
    selected: list[int] = []
    gains: list[float] = []
    counts = np.zeros(len(limits.group_cap), dtype=np.int64)
    spent = 0.0
    for j in required:
        if not allowed[j]:
            raise InfeasibleError("a site is both required and excluded")
        gain = _fill(csc, value_csc, residual, capacity, np.array([j]), assignment)[0]
        selected.append(int(j))
        gains.append(float(gain))
        counts[limits.group[j]] += 1
        spent += 0.0 if limits.cost is None else float(limits.cost[j])
    caps_ok = (counts <= limits.group_cap).all() and (
        limits.budget is None or spent <= limits.budget + 1e-9
    )
    if not caps_ok:
        raise InfeasibleError("the required sites alone exceed the site counts or the budget")
    standalone = _fill(csc, value_csc, np.asarray(people, dtype=float), capacity, np.arange(m))
    stale = np.where(allowed, standalone, 0.0)
    stale[selected] = 0.0
    while True:
        ok = limits.can_add(counts, spent) & allowed & (stale > _EPS)
        ok[selected] = False
        if not ok.any():
            break
        score = np.where(ok, stale, -np.inf)
        top = np.argsort(-score)[:_BATCH]
        top = top[np.isfinite(score[top])]
        fresh = _fill(csc, value_csc, residual, capacity, top)
        stale[top] = fresh
        best = int(top[np.argmax(fresh)])
        rest = score.copy()
        rest[top] = -np.inf
        if fresh.max() + _EPS >= rest.max() and fresh.max() > _EPS:
            gain = _fill(csc, value_csc, residual, capacity, np.array([best]), assignment)[0]
            selected.append(best)
            gains.append(float(gain))
            counts[limits.group[best]] += 1
            spent += 0.0 if limits.cost is None else float(limits.cost[best])
            stale[best] = 0.0
    value = float(sum(gains))
    free_limits = limits.after_fixing(np.asarray(selected[: len(required)], dtype=np.int64))
    subset_value = _best_subset(
        np.where(allowed, standalone, 0.0) * _not(required, m), free_limits
    )[0]
    bounds: dict[str, float | None] = {
        "standalone": float(standalone[np.asarray(list(required), dtype=np.int64)].sum())
        + subset_value,
        "lp": None,
    }
    matrix = assignment.matrix(reach.shape)
    method, status = "greedy", "feasible"
    small = reach.nnz <= CAPACITATED_EXACT_MAX_PAIRS
    if small or exact is True:
        remaining = max(began + time_limit_s - time.perf_counter(), 0.5)
        lp = _solve_assignment(
            reach,
            value_per_person,
            people,
            capacity,
            limits,
            allowed,
            required,
            integer=False,
            time_limit_s=remaining,
        )
        if lp is not None:
            bounds["lp"] = lp[0]
        if exact is True or (exact == "auto" and small):
            remaining = max(began + time_limit_s - time.perf_counter(), 0.5)
            milp = _solve_assignment(
                reach,
                value_per_person,
                people,
                capacity,
                limits,
                allowed,
                required,
                integer=True,
                time_limit_s=remaining,
            )
            method = "greedy+milp"
            if milp is not None:
                bounds["milp"] = milp[0]
                if milp[1] > value + _EPS * max(value, 1.0):
                    value, matrix, order = milp[1], milp[2], milp[3]
                    selected, gains = _order_assignment(matrix, value_per_person, order, required)
                status = "optimal" if milp[4] else "time_limit"
    bound = min(v for v in bounds.values() if v is not None)
    bound = max(bound, value)
    gap = (bound - value) / max(bound, 1e-12)
    if gap <= 1e-6:
        status = "optimal"
    return CapacitatedSolution(
        selected,
        gains,
        matrix,
        value,
        bound,
        bounds,
        100.0 * gap,
        method,
        status,
        time.perf_counter() - began,
    )


class _Assignment:
    """Collects (row, site, people) triples as the greedy assigns them."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, rows: np.ndarray, sites: np.ndarray, people: np.ndarray) -> None:
        keep = people > 0
        self.parts.append((rows[keep], sites[keep], people[keep]))

    def matrix(self, shape: tuple[int, int]) -> sp.csr_array:
        if not self.parts:
            return sp.csr_array(shape)
        rows, sites, people = (np.concatenate(p) for p in zip(*self.parts, strict=True))
        return sp.csr_array(sp.coo_array((people, (rows, sites)), shape=shape).tocsr())


def _not(required: Sequence[int], m: int) -> np.ndarray:
    mask = np.ones(m)
    mask[np.asarray(list(required), dtype=np.int64)] = 0.0
    return mask


def _fill(
    reach: sp.csc_array,
    value: sp.csc_array,
    residual: np.ndarray,
    capacity: np.ndarray,
    sites: np.ndarray,
    assignment: _Assignment | None = None,
) -> np.ndarray:
    """Best fill value of each of ``sites`` given ``residual`` people (vectorised).

    Each site takes people in decreasing value per person up to its capacity. With
    ``assignment`` (one site) the take is applied: ``residual`` falls and triples are kept.
    """
    sites = np.asarray(sites, dtype=np.int64)
    positions, owner = _gather(reach.indptr.astype(np.int64), sites)
    rows = reach.indices[positions]
    available = np.minimum(reach.data[positions], residual[rows])
    per_person = value.data[positions]
    order = np.lexsort((-per_person, owner))
    owner_s, avail_s = owner[order], available[order]
    cum = np.cumsum(avail_s)
    start = np.searchsorted(owner_s, owner_s, side="left")
    before = cum - avail_s - np.where(start > 0, cum[start - 1], 0.0)
    room = capacity[sites][owner_s] - before
    take = np.clip(room, 0.0, avail_s)
    result = np.bincount(owner_s, weights=take * per_person[order], minlength=len(sites))
    if assignment is not None:
        taken_rows = rows[order]
        np.subtract.at(residual, taken_rows, take)
        np.maximum(residual, 0.0, out=residual)
        assignment.add(taken_rows, sites[owner_s], take)
    return result


def _solve_assignment(
    reach: sp.csr_array,
    value: sp.csr_array,
    people: np.ndarray,
    capacity: np.ndarray,
    limits: SiteLimits,
    allowed: np.ndarray,
    required: Sequence[int],
    *,
    integer: bool,
    time_limit_s: float,
) -> tuple[float, float, sp.csr_array, list[int], bool] | None:
    """LP/MILP of the assignment formulation; ``(bound, value, assignment, sites, optimal)``."""
    coo = sp.coo_array(reach)
    n, m = reach.shape
    k = coo.nnz
    pair = np.arange(k)
    objective = np.concatenate([_align(reach, value), np.zeros(m)])
    demand_rows = sp.csr_array((np.ones(k), (coo.row, pair)), shape=(n, k + m))
    cap_rows = sp.csr_array(
        (
            np.concatenate([np.ones(k), -capacity]),
            (np.concatenate([coo.col, np.arange(m)]), np.concatenate([pair, k + np.arange(m)])),
        ),
        shape=(m, k + m),
    )
    link_rows = sp.csr_array(
        (
            np.concatenate([np.ones(k), -coo.data]),
            (np.concatenate([pair, pair]), np.concatenate([pair, k + coo.col])),
        ),
        shape=(k, k + m),
    )
    limit_rows, limit_upper = _limit_rows(limits, m)
    limit_rows = sp.hstack([sp.csr_array((limit_rows.shape[0], k)), limit_rows])
    matrix = sp.csr_array(sp.vstack([demand_rows, cap_rows, link_rows, limit_rows]))
    upper = np.concatenate([np.asarray(people, dtype=float), np.zeros(m), np.zeros(k), limit_upper])
    col_upper = np.concatenate([np.full(k, np.inf), allowed.astype(float)])
    col_lower = np.zeros(k + m)
    col_lower[k + np.asarray(list(required), dtype=np.int64)] = 1.0
    highs = highs_problem(
        objective,
        matrix,
        upper,
        col_lower,
        col_upper,
        n_sites=m,
        integer=integer,
        time_limit_s=time_limit_s,
    )
    if integer:
        highs.setOptionValue("mip_rel_gap", 1e-7)
    highs.run()
    status = highs.getModelStatus()
    info = highs.getInfo()
    optimal = status == highspy.HighsModelStatus.kOptimal
    if not integer:
        if not optimal:
            return None
        obj = float(info.objective_function_value)
        return obj + 1e-7 * abs(obj), obj, sp.csr_array((n, m)), [], True
    if info.primal_solution_status != 2:
        return None
    solution = np.asarray(highs.getSolution().col_value)
    x, y = solution[:k], solution[k:]
    assignment = sp.csr_array(sp.coo_array((x, (coo.row, coo.col)), shape=(n, m)).tocsr())
    assignment.eliminate_zeros()
    chosen = np.flatnonzero(y > 0.5).tolist()
    return (
        float(info.mip_dual_bound),
        float(info.objective_function_value),
        assignment,
        chosen,
        optimal,
    )


def _align(reach: sp.csr_array, value: sp.csr_array) -> np.ndarray:
    """Values of ``value`` at ``reach``'s entries, in ``reach``'s COO order."""
    coo = sp.coo_array(reach)
    return np.asarray(sp.csr_array(value)[coo.row, coo.col], dtype=float).ravel()


def _order_assignment(
    assignment: sp.csr_array, value: sp.csr_array, chosen: list[int], required: Sequence[int]
) -> tuple[list[int], list[float]]:
    """Sites ordered by the value of the people assigned to them (required first)."""
    worth = np.asarray((assignment.multiply(value)).sum(axis=0)).ravel()
    rest = sorted((j for j in chosen if j not in set(required)), key=lambda j: -worth[j])
    order = [int(j) for j in required] + [int(j) for j in rest]
    return order, [float(worth[j]) for j in order]
