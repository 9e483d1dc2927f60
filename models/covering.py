"""Maximal covering site selection with certified optimality gaps.

The model (facility-location form of the maximal covering location problem, Church &
ReVelle 1974; Cornuéjols, Fisher & Nemhauser 1977):

    maximise  f(S) = Σ_i w_i · max(e_i, max_{j∈S} a_ij)
    s.t.      |S ∩ G_g| ≤ k_g (groups),  |S ∩ F_f| ≤ K_f (families of groups),
              Σ_{j∈S} c_j ≤ B (optional budget),  R ⊆ S,  S ∩ X = ∅,

with demand weights ``w_i`` (people × equity multiplier), existing reach ``e_i`` (what
sites already open reach) and coverage ``a_ij`` (1 inside a catchment for hard coverage,
a distance decay in (0, 1], times an optional affinity multiplier). ``f`` is monotone
submodular, so the greedy achieves at least ``1 − 1/e`` of the optimum (Nemhauser,
Wolsey & Fisher 1978).

:func:`solve_covering` runs, within a time limit:

1. the greedy with exact incremental gains (picks as CELF does) and the data-dependent
   bound of Leskovec et al. (2007) at every step;
2. a bound and a search side by side until the gap target is met (``_cover_race``): for
   0/1 coverage the smoothed Lagrangian dual (``_cover_dual``, within a few hundredths
   of a percent of the LP bound; on large instances in a second thread), otherwise
   subgradient optimisation (``_bounds``); and an iterated local search over fast swaps
   (``_cover_search``), or on instances too large for its swap table the interchange
   applying disjoint improving swaps in rounds (``_swap``);
3. reduced-cost fixing (sites that cannot be in any better solution are removed) and,
   when small enough or on request, the LP relaxation and the exact MILP with HiGHS,
   warm-started with the best solution.

Every solution carries the smallest valid upper bound found and the certified gap
``(bound − value) / bound``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp

from geo._errors import InfeasibleError
from models._bounds import _reduced_cost_fixing
from models._cover_race import _bound_and_search, _improve_from_sets
from models._cover_search import _dense_search_fits
from models._greedy import _best_greedy, _greedy_order, _required_gains
from models._instance import SiteLimits, _Model, _Race, _restrict
from models._milp import _solve_highs
from models._swap import _swap_search

__all__ = [
    "CoveringProblem",
    "CoveringSolution",
    "SiteLimits",
    "covering_value",
    "solve_covering",
]

#: Instances up to this many matrix entries (after reduction) are solved exactly by
#: default (``exact="auto"``); larger ones only on request.
EXACT_AUTO_MAX_ENTRIES = 60_000
#: The LP relaxation is tried by default up to this many entries (interior point).
LP_AUTO_MAX_ENTRIES = 300_000

Progress = Callable[[float, str], None]


@dataclass
class CoveringProblem:
    """One covering instance.

    Attributes
    ----------
    coverage
        Sparse ``n_demand × n_sites`` matrix of ``a_ij > 0``: the share of demand point
        ``i`` a site ``j`` reaches (1 inside the catchment for hard coverage), times any
        affinity multiplier.
    weight
        Value of demand point ``i`` when fully reached (people × equity multiplier).
    limits
        Count caps per group/family and the optional budget.
    existing
        Share of each demand point already reached by existing sites (``e_i``, ≥ 0).
    required, excluded
        Site indices that must be / must not be chosen.
    """

    coverage: sp.csr_array
    weight: np.ndarray
    limits: SiteLimits
    existing: np.ndarray | None = None
    required: Sequence[int] = field(default_factory=tuple)
    excluded: Sequence[int] = field(default_factory=tuple)

    @classmethod
    def with_count(
        cls,
        coverage: sp.csr_array | sp.csr_matrix,
        weight: np.ndarray,
        n_sites: int,
        *,
        existing: np.ndarray | None = None,
        cost: np.ndarray | None = None,
        budget: float | None = None,
        required: Sequence[int] = (),
        excluded: Sequence[int] = (),
    ) -> CoveringProblem:
        """The common case: at most ``n_sites`` sites of one kind (and an optional budget)."""
        m = coverage.shape[1]
        limits = SiteLimits(
            group=np.zeros(m, dtype=np.int64),
            group_cap=np.array([int(n_sites)]),
            family=np.zeros(1, dtype=np.int64),
            family_cap=np.array([int(n_sites)]),
            cost=None if cost is None else np.asarray(cost, dtype=float),
            budget=budget,
        )
        return cls(
            sp.csr_array(coverage),
            np.asarray(weight, dtype=float),
            limits,
            existing,
            tuple(required),
            tuple(excluded),
        )


@dataclass
class CoveringSolution:
    """A chosen set of sites with its value and certificate.

    ``selected`` lists site indices in the order a greedy would add them (required sites
    first) and ``marginal_gains`` the value each adds to those before it, so the gains sum
    to ``value − base_value``. ``bound`` is the smallest valid upper bound on the optimum
    found and ``bounds`` each one (``None`` when not computed); ``gap_pct`` is
    ``100·(bound − value)/bound``.
    """

    selected: list[int]
    marginal_gains: list[float]
    value: float
    base_value: float
    bound: float
    bounds: dict[str, float | None]
    gap_pct: float
    method: str
    status: str
    seconds: float

    @property
    def proven_optimal(self) -> bool:
        return self.gap_pct <= 1e-4


def covering_value(problem: CoveringProblem, selected: Sequence[int]) -> float:
    """``f(S)`` of a set of sites (by index), existing reach included."""
    existing = _existing(problem)
    coverage = sp.csr_array(problem.coverage)
    columns = np.asarray(list(selected), dtype=np.int64)
    best = np.zeros(coverage.shape[0])
    if len(columns):
        best = np.asarray(coverage[:, columns].max(axis=1).todense()).ravel()
    return float(np.dot(problem.weight, np.maximum(existing, best)))


def solve_covering(
    problem: CoveringProblem,
    *,
    exact: bool | Literal["auto"] = "auto",
    time_limit_s: float = 30.0,
    target_gap: float = 1e-4,
    progress: Progress | None = None,
) -> CoveringSolution:
    """Choose sites maximising ``f`` within the limits, with a certified gap.

    Parameters
    ----------
    exact
        ``True``: run the HiGHS MILP (warm-started) until optimal or the time limit;
        ``False``: heuristics and bounds only; ``"auto"``: MILP when the instance left
        after reduced-cost fixing is small.
    time_limit_s
        Wall-clock budget in seconds (the greedy always completes).
    target_gap
        Relative gap at which the search stops early.
    progress
        Called as ``progress(fraction, message)``.

    Raises
    ------
    InfeasibleError
        When required sites break the count caps or the budget.
    """
    began = time.perf_counter()
    deadline = began + float(time_limit_s)
    if exact is True:
        target_gap = 0.0
    report = progress or (lambda fraction, message: None)
    model, columns, required_pos = _prepare(problem)
    residual, _ = model.fix(required_pos) if len(required_pos) else (model, model.constant)
    residual_limits = residual.limits
    if (
        (residual_limits.group_cap < 0).any()
        or (residual_limits.family_cap < 0).any()
        or (residual_limits.budget is not None and residual_limits.budget < -1e-9)
    ):
        raise InfeasibleError("the required sites alone exceed the site counts or the budget")

    report(0.05, "greedy")
    run = _best_greedy(residual)
    bounds: dict[str, float | None] = {"submodular": run.bound, "lagrangian": None, "lp": None}
    method = ["greedy"]
    selected, value, bound = run.selected, run.value, run.bound
    dense = _dense_search_fits(residual)
    if residual.n_cols and selected and not dense:
        report(0.2, "swap search")
        selected, value, moves = _swap_search(
            residual, selected, deadline=began + 0.3 * time_limit_s
        )
        if moves:
            method.append("swap")
    milp_status = None
    if _gap(value, bound) > target_gap and residual.n_rows:
        # HiGHS only runs on small (reduced) instances or on request; otherwise the
        # bound and the search share the time.
        highs_may_run = exact is True or len(residual.r_vals) <= LP_AUTO_MAX_ENTRIES
        report(0.3, "bound and search")
        share = 0.35 if highs_may_run else 0.96
        phase_end = time.perf_counter() + share * max(deadline - time.perf_counter(), 0.0)
        race = _Race(value=value, bound=bound, target_gap=target_gap)
        found = _bound_and_search(
            residual,
            selected,
            value,
            race,
            deadline=phase_end,
            search=dense and bool(selected),
            parallel=not highs_may_run,
        )
        selected, value, lagr_bound = found.selected, found.value, found.bound
        multipliers, sets, converged = found.multipliers, found.sets, found.converged
        method.extend(found.steps)
        bounds["lagrangian"] = lagr_bound
        bound = min(bound, lagr_bound)
        before = value
        selected, value = _improve_from_sets(residual, selected, value, sets, deadline)
        if value > before:
            method.append("lagrangian-start")
        value = residual.value(np.asarray(selected, dtype=np.int64))
        out_mask, in_mask = _reduced_cost_fixing(residual, multipliers, lagr_bound, value)
        # Entries left after fixing, known before building the reduced model.
        left = int(np.diff(residual.c_indptr)[~out_mask].sum())
        run_lp = 0 < left <= LP_AUTO_MAX_ENTRIES and residual.binary and not converged
        want_exact = exact is True or (exact == "auto" and left <= EXACT_AUTO_MAX_ENTRIES)
        if _gap(value, bound) > target_gap and (run_lp or want_exact):
            reduced, kept = _restrict(residual, ~out_mask)
            fixed_in = np.flatnonzero(in_mask[kept])
        else:
            run_lp = want_exact = False
        # The smoothed dual may already sit on the LP bound (it stopped when it stalled).
        if _gap(value, bound) > target_gap and run_lp:
            report(0.6, "LP bound")
            lp = _solve_highs(
                reduced,
                integer=False,
                time_limit_s=max(deadline - time.perf_counter(), 0.05),
                fixed_in=fixed_in,
            )
            if lp.bound is not None:
                lp_bound = max(lp.bound, value)
                bounds["lp"] = lp_bound
                bound = min(bound, lp_bound)
        if _gap(value, bound) > target_gap and want_exact and reduced.n_cols:
            report(0.8, "exact MILP")
            position = {int(c): k for k, c in enumerate(kept)}
            warm = [position[j] for j in selected if int(j) in position]
            milp = _solve_highs(
                reduced,
                integer=True,
                time_limit_s=max(deadline - time.perf_counter(), 0.5),
                start=warm,
                fixed_in=fixed_in,
            )
            milp_status = milp.status
            method.append("milp")
            if milp.selected is not None and milp.value is not None and milp.value > value:
                selected = [int(kept[k]) for k in milp.selected]
                value = residual.value(np.asarray(selected, dtype=np.int64))
            if milp.bound is not None:
                bound = min(bound, max(milp.bound, value))
    elif exact is True and residual.n_cols:
        milp_status = "optimal"
    bound = max(bound, value)
    order, gains = _greedy_order(residual, selected)
    residual_columns = np.delete(columns, required_pos) if len(required_pos) else columns
    final = [int(columns[k]) for k in required_pos] + [int(residual_columns[k]) for k in order]
    required_gains = _required_gains(model, required_pos)
    report(1.0, "done")
    gap = _gap(value, bound)
    status = (
        "optimal" if gap <= 1e-6 else ("time_limit" if milp_status == "time_limit" else "feasible")
    )
    return CoveringSolution(
        selected=final,
        marginal_gains=required_gains + gains,
        value=value,
        base_value=model.constant,
        bound=bound,
        bounds=bounds,
        gap_pct=100.0 * gap,
        method="+".join(method),
        status=status,
        seconds=time.perf_counter() - began,
    )


def _existing(problem: CoveringProblem) -> np.ndarray:
    n = problem.coverage.shape[0]
    if problem.existing is None:
        return np.zeros(n)
    return np.asarray(problem.existing, dtype=float)


def _prepare(problem: CoveringProblem) -> tuple[_Model, np.ndarray, np.ndarray]:
    """The model over the non-excluded sites, their original indices and required ones."""
    coverage = sp.csr_array(problem.coverage)
    n, m = coverage.shape
    weight = np.asarray(problem.weight, dtype=float)
    if weight.shape != (n,) or len(problem.limits.group) != m:
        raise ValueError("weight and limits must match the coverage matrix's shape")
    keep = np.ones(m, dtype=bool)
    keep[np.asarray(list(problem.excluded), dtype=np.int64)] = False
    required = np.asarray(list(problem.required), dtype=np.int64)
    if len(required) and not keep[required].all():
        raise InfeasibleError("a site is both required and excluded")
    columns = np.flatnonzero(keep)
    position = np.full(m, -1, dtype=np.int64)
    position[columns] = np.arange(len(columns))
    model = _Model.build(
        sp.csr_array(coverage[:, columns]),
        weight,
        _existing(problem),
        problem.limits.subset(keep),
    )
    return model, columns, position[np.unique(required)] if len(required) else required


def _gap(value: float, bound: float) -> float:
    if not np.isfinite(bound):
        return np.inf
    return max(bound - value, 0.0) / max(abs(bound), 1e-12)
