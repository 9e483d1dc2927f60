"""The bound-and-search phase of :func:`models.covering.solve_covering`.

A Lagrangian-type upper bound and an iterated local search share a :class:`_Race` (best
value and bound so far) and both stop once the certified gap meets the target. For 0/1
coverage the bound is the smoothed dual of ``_cover_dual``, whose time goes to sparse
matrix–vector products that release the GIL, so on large instances it runs in a second
thread while the search (many small numpy steps, GIL-bound) keeps the first core; on small
ones the two would mostly queue for each other's GIL, so they run in turn. With
fractional coverage the subgradient Lagrangian of ``_bounds`` runs first, and the sets
its subproblem picked seed the search (Galvão & ReVelle 1996).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from models._bounds import _lagrangian_bound
from models._cover_dual import _smoothed_dual_bound
from models._cover_search import _iterated_search, _local_optimum
from models._instance import _Model, _Race
from models._swap import _swap_search, _top_two


@dataclass
class _Phase:
    """What the bound-and-search phase found."""

    selected: list[int]
    value: float
    bound: float
    multipliers: np.ndarray  # for reduced-cost fixing
    sets: list[np.ndarray]  # the subgradient subproblem's sets, to seed further search
    converged: bool  # the smoothed dual stalled, so it sits about on the LP bound
    steps: list[str] = field(default_factory=list)  # what improved the solution


def _bound_and_search(
    model: _Model,
    selected: list[int],
    value: float,
    race: _Race,
    *,
    deadline: float,
    search: bool,
    parallel: bool,
) -> _Phase:
    """The Lagrangian-type bound and the iterated search, sharing ``race`` until ``deadline``.

    ``search`` says whether the dense swap search fits; ``parallel`` whether the smoothed
    dual may run in a second thread. The dual's subproblem set, descended, is tried as a
    start too (near the LP optimum it is often nearly optimal); where the dense search does
    not fit it is handed back in ``sets`` for the round-based swap search.
    """
    if model.binary and parallel:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(_smoothed_dual_bound, model, deadline=deadline, race=race)
            found = _Phase(selected, value, race.bound, np.zeros(0), [], False)
            if search:
                _search(model, found, race, deadline)
            dual = pending.result()
        found.bound, found.multipliers, found.converged = (
            dual.bound,
            dual.multipliers,
            dual.converged,
        )
        if search and time.perf_counter() < deadline:
            _try_start(model, found, race, dual.top_set, deadline)
        elif not search and len(dual.top_set):
            found.sets = [dual.top_set]
        return found
    bound_deadline = time.perf_counter() + 0.5 * max(deadline - time.perf_counter(), 0.0)
    if not search:
        bound_deadline = deadline
    if model.binary:
        dual = _smoothed_dual_bound(model, deadline=bound_deadline, race=race, stall_tol=1e-5)
        found = _Phase(selected, value, dual.bound, dual.multipliers, [], dual.converged)
        if search:
            _try_start(model, found, race, dual.top_set, deadline)
        elif len(dual.top_set):
            found.sets = [dual.top_set]
    else:
        row_values = _top_two(model, np.asarray(selected, dtype=np.int64))[0]
        lagr = _lagrangian_bound(
            model, row_values, value, deadline=bound_deadline, target_gap=race.target_gap
        )
        found = _Phase(selected, value, lagr.bound, lagr.multipliers, lagr.best_sets, False)
        race.bound = min(race.bound, lagr.bound)
    if search:
        _search(model, found, race, deadline)
    return found


def _search(model: _Model, found: _Phase, race: _Race, deadline: float) -> None:
    before = found.value
    found.selected, found.value, rounds = _iterated_search(
        model, found.selected, deadline=deadline, race=race
    )
    if found.value > before:
        found.steps.append("ils" if rounds else "swap")


def _try_start(
    model: _Model, found: _Phase, race: _Race, start: np.ndarray, deadline: float
) -> None:
    """Descend from ``start`` and keep the result if it beats ``found``."""
    if len(start) == 0:
        return
    selected, value = _local_optimum(model, [int(j) for j in start], deadline=deadline)
    if value > found.value:
        found.selected, found.value = selected, value
        found.steps.append("lagrangian-start")
        race.value = max(race.value, value)


def _improve_from_sets(
    model: _Model,
    selected: list[int],
    value: float,
    sets: list[np.ndarray],
    deadline: float,
) -> tuple[list[int], float]:
    """Try the Lagrangian subproblem's sets as starts for the swap search."""
    if not sets:
        return selected, value
    scored = sorted(((model.value(s), k) for k, s in enumerate(sets)), reverse=True)
    for candidate_value, k in scored[:2]:
        if time.perf_counter() > deadline:
            break
        start = [int(j) for j in sets[k]]
        if candidate_value > value:
            selected, value = start, candidate_value
        improved, improved_value, _ = _swap_search(model, start, deadline=deadline)
        if improved_value > value:
            selected, value = improved, improved_value
    return selected, value
