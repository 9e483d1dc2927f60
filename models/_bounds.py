"""Upper bounds on the covering optimum: Lagrangian relaxation and the LP relaxation.

Lagrangian relaxation (Galvão & ReVelle 1996, "A Lagrangean heuristic for the maximal
covering location problem", EJOR 88): in the facility-location form

    max Σ_i Σ_j v_ij x_ij   s.t.  Σ_j x_ij ≤ 1,  0 ≤ x_ij ≤ y_j,  y feasible,

relaxing ``Σ_j x_ij ≤ 1`` with multipliers ``λ_i ∈ [0, max_j v_ij]`` gives

    L(λ) = const + Σ_i λ_i + max_{y feasible} Σ_j y_j Σ_i (v_ij − λ_i)⁺,

an upper bound for every λ. One evaluation is a sparse pass over ``v`` plus a best-subset
selection. Taking ``λ_i`` equal to row ``i``'s value under a solution ``S`` makes
``L(λ)`` exactly the data-dependent bound at ``S`` (Leskovec et al. 2007), so starting the
subgradient method there can only tighten it. The dual optimum equals the LP bound
(the subproblem has the integrality property when there is no budget). Steps follow
Held, Wolfe & Crowder (1974) with Polyak's step towards the best known value and the
step factor halved when progress stalls; directions are deflected (Camerini, Fratta &
Maffioli 1975) to damp zig-zagging.

Any multipliers also give reduced-cost fixing (:func:`_reduced_cost_fixing`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from models._instance import _best_subset, _gather, _Model


@dataclass
class _LagrangianResult:
    bound: float
    multipliers: np.ndarray
    iterations: int
    best_sets: list[np.ndarray]


def _lagrangian_bound(
    model: _Model,
    start: np.ndarray,
    lower: float,
    *,
    deadline: float,
    max_iter: int = 2000,
    target_gap: float = 1e-4,
) -> _LagrangianResult:
    """Subgradient optimisation of ``L(λ)`` from ``λ = start``; the smallest value seen.

    ``lower`` is the value of the best known solution (the Polyak target). Stops at
    ``deadline``, after ``max_iter`` evaluations, or when the bound is within
    ``target_gap`` (relative) of ``lower``.
    """
    cap = model.row_weight
    lam = np.clip(start, 0.0, cap)
    best = np.inf
    best_lam = lam.copy()
    factor = 1.0
    stall = 0
    direction = np.zeros(model.n_rows)
    sets: list[np.ndarray] = []
    it = 0
    # Column sums by reduceat over non-empty columns: several times faster than bincount.
    nonempty = np.flatnonzero(np.diff(model.c_indptr) > 0)
    starts = model.c_indptr[nonempty]
    reduced = np.empty_like(model.c_vals)
    site_value = np.zeros(model.n_cols)
    while it < max_iter:
        it += 1
        np.subtract(model.c_vals, lam[model.c_rows], out=reduced)
        np.maximum(reduced, 0.0, out=reduced)
        if len(starts):
            site_value[nonempty] = np.add.reduceat(reduced, starts)
        sub_value, chosen, weight = _best_subset(site_value, model.limits)
        value = model.constant + float(lam.sum()) + sub_value
        if not np.isfinite(best) or value < best - 1e-12 * max(abs(best), 1.0):
            improvement = (best - value) / max(abs(value), 1.0) if np.isfinite(best) else 1.0
            best, best_lam = value, lam.copy()
            stall = 0 if improvement > 1e-6 else stall + 1
            if len(sets) < 64:
                sets.append(chosen[weight >= 1.0])
        else:
            stall += 1
        if best - lower <= target_gap * max(abs(lower), 1.0) or time.perf_counter() > deadline:
            break
        if stall >= 12:
            factor *= 0.5
            stall = 0
            lam = best_lam.copy()
            direction[:] = 0.0
            if factor < 1e-4:
                break
            continue
        positions, owner = _gather(model.c_indptr, chosen)
        rows = model.c_rows[positions]
        hit = model.c_vals[positions] > lam[rows]
        count = np.bincount(rows[hit], weights=weight[owner][hit], minlength=model.n_rows)
        grad = 1.0 - count
        # Only directions that can move λ inside its box count.
        grad[((lam <= 0) & (grad > 0)) | ((lam >= cap) & (grad < 0))] = 0.0
        direction = grad + 0.5 * direction
        norm = float(np.multiply(direction, direction).sum())  # no BLAS: see _cover_dual._dot
        if norm <= 0:
            break
        step = factor * max(value - lower, 1e-9 * max(abs(value), 1.0)) / norm
        lam = np.clip(lam - step * direction, 0.0, cap)
    return _LagrangianResult(float(best), best_lam, it, sets)


def _reduced_cost_fixing(
    model: _Model, multipliers: np.ndarray, bound: float, lower: float
) -> tuple[np.ndarray, np.ndarray]:
    """Sites that no solution better than ``lower`` can use (out) or can do without (in).

    With multipliers ``λ`` the reduced value of site ``j`` is ``r_j = Σ_i (v_ij − λ_i)⁺``
    and ``L(λ)`` takes the best feasible set ``T``. In a matroid the best set containing
    ``j ∉ T`` is worth at most ``L − min_T r + r_j``, and the best set without ``t ∈ T``
    at most ``L − r_t + max_{k∉T} r_k``; a site whose forced in/out bound is below the
    best known value is fixed (Galvão & ReVelle 1996). Not used with a budget.
    """
    m = model.n_cols
    out_mask = np.zeros(m, dtype=bool)
    in_mask = np.zeros(m, dtype=bool)
    if model.limits.budget is not None or m == 0:
        return out_mask, in_mask
    reduced = np.maximum(model.c_vals - multipliers[model.c_rows], 0.0)
    site_value = np.bincount(model.c_cols, weights=reduced, minlength=m)
    _, chosen, _ = _best_subset(site_value, model.limits)
    if len(chosen) == 0:
        return out_mask, in_mask
    in_top = np.zeros(m, dtype=bool)
    in_top[chosen] = True
    slack = 1e-9 * max(abs(lower), 1.0)
    weakest = float(site_value[chosen].min())
    counts = np.bincount(model.limits.group[chosen], minlength=len(model.limits.group_cap))
    room = model.limits.can_add(counts, 0.0)
    # Where T has room for j, the best set containing j is worth up to L + r_j.
    forced_in_bound = np.where(room, bound + site_value, bound - weakest + site_value)
    out_mask = ~in_top & (forced_in_bound < lower - slack)
    strongest_other = float(site_value[~in_top].max()) if (~in_top).any() else 0.0
    in_mask = in_top & (bound - site_value + strongest_other < lower - slack)
    return out_mask, in_mask
