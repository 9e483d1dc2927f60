"""Greedy maximal covering with exact incremental gains and the data-dependent bound.

The classic lazy greedy (CELF; Leskovec et al. 2007, "Cost-effective outbreak detection in
networks", KDD) re-evaluates stale gains from a priority queue. Here every gain is kept
exact instead: when a chosen site raises the value of demand rows ``R``, only the sites
that also cover ``R`` lose gain, and their losses are one ``bincount`` over the entries of
``R``. Over a whole run each row is revisited only when its value rises, so the cost is
about one pass over the matrix — and it picks exactly the sites CELF would (the largest
gain, ties to the lowest index).

With exact gains at every step, the data-dependent bound of Leskovec et al. (their
Theorem 4: ``f(S*) ≤ f(S) + Σ_{j∈S*∖S} δ_j(S)``, the best feasible sum of current gains) is
evaluated at every step and the smallest kept. With a budget the greedy is run twice —
by gain and by gain per unit cost — and the better kept, as CELF does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from models._instance import _EPS, SiteLimits, _best_subset, _gather, _Model, _restrict


@dataclass
class _GreedyRun:
    selected: list[int]
    gains: list[float]
    value: float
    bound: float
    current: np.ndarray


def _greedy(
    model: _Model,
    *,
    by_ratio: bool = False,
    start: list[int] | None = None,
    deadline: float | None = None,
) -> _GreedyRun:
    """Run the greedy on ``model`` (optionally continuing from ``start``)."""
    limits = model.limits
    current = model.row_values(np.asarray(start or [], dtype=np.int64))
    gains = model.gains(current)
    chosen = np.zeros(model.n_cols, dtype=bool)
    counts = np.zeros(len(limits.group_cap), dtype=np.int64)
    spent = 0.0
    selected: list[int] = []
    step_gains: list[float] = []
    for j in start or []:
        chosen[j] = True
        counts[limits.group[j]] += 1
        spent += 0.0 if limits.cost is None else float(limits.cost[j])
        selected.append(int(j))
        step_gains.append(float("nan"))
    value = model.constant + float(current.sum())
    bound = np.inf
    scale = max(abs(value), 1.0)
    while True:
        gains[chosen] = 0.0
        bound = min(bound, value + _best_subset(gains, limits)[0])
        allowed = limits.can_add(counts, spent) & ~chosen & (gains > _EPS * scale)
        if not allowed.any() or (deadline is not None and time.perf_counter() > deadline):
            break
        if by_ratio and limits.cost is not None:
            score = np.where(allowed, gains / np.maximum(limits.cost, 1e-12), -np.inf)
        else:
            score = np.where(allowed, gains, -np.inf)
        j = int(np.argmax(score))
        gain = float(gains[j])
        _add_site(model, j, current, gains)
        chosen[j] = True
        counts[limits.group[j]] += 1
        spent += 0.0 if limits.cost is None else float(limits.cost[j])
        selected.append(j)
        step_gains.append(gain)
        value += gain
    return _GreedyRun(selected, step_gains, value, float(bound), current)


def _add_site(model: _Model, site: int, current: np.ndarray, gains: np.ndarray) -> None:
    """Raise row values for ``site`` and update every affected gain in place."""
    lo, hi = model.c_indptr[site], model.c_indptr[site + 1]
    rows = model.c_rows[lo:hi]
    new = model.c_vals[lo:hi]
    better = new > current[rows]
    rows, new = rows[better], new[better]
    if len(rows) == 0:
        return
    positions, owner = _gather(model.r_indptr, rows)
    vals = model.r_vals[positions]
    old = current[rows][owner]
    delta = np.maximum(vals - new[owner], 0.0) - np.maximum(vals - old, 0.0)
    gains += np.bincount(model.r_cols[positions], weights=delta, minlength=model.n_cols)
    current[rows] = new


def _best_greedy(model: _Model, *, deadline: float | None = None) -> _GreedyRun:
    """The greedy by gain, and with a budget also by gain per cost; the better of the two.

    The bound kept is the smaller of the two runs' bounds (both are valid).
    """
    run = _greedy(model, deadline=deadline)
    if model.limits.budget is not None:
        other = _greedy(model, by_ratio=True, deadline=deadline)
        bound = min(run.bound, other.bound)
        if other.value > run.value:
            run = other
        run.bound = bound
    return run


def _required_gains(model: _Model, required_pos: np.ndarray) -> list[float]:
    gains: list[float] = []
    current = np.zeros(model.n_rows)
    for j in required_pos.tolist():
        column = model.row_values(np.array([j]))
        new = np.maximum(current, column)
        gains.append(float((new - current).sum()))
        current = new
    return gains


def _greedy_order(model: _Model, selected: list[int]) -> tuple[list[int], list[float]]:
    """Order ``selected`` as a greedy restricted to it would add them, with the gains."""
    if not selected:
        return [], []
    keep = np.zeros(model.n_cols, dtype=bool)
    keep[np.asarray(selected, dtype=np.int64)] = True
    sub, columns = _restrict(model, keep)
    k = len(columns)
    free = SiteLimits(
        group=np.zeros(k, dtype=np.int64),
        group_cap=np.array([k]),
        family=np.zeros(1, dtype=np.int64),
        family_cap=np.array([k]),
    )
    sub.limits = free
    run = _greedy(sub)
    order = [int(columns[j]) for j in run.selected]
    gains = list(run.gains)
    missing = [j for j in selected if j not in set(order)]
    return order + missing, gains + [0.0] * len(missing)
