"""Internal form of a covering instance shared by the greedy, swap, bound and MILP code.

Every variant the solvers handle is the facility-location form

    f(S) = Σ_i w_i · max(e_i, max_{j∈S} a_ij)          (Cornuéjols, Fisher & Nemhauser 1977)

with demand weights ``w_i``, existing reach ``e_i`` and (possibly fractional or > 1)
coverage values ``a_ij``. Writing ``v_ij = w_i · (a_ij − e_i)⁺`` it becomes

    f(S) = Σ_i w_i e_i + Σ_i max(0, max_{j∈S} v_ij),

so the solvers only see the non-negative sparse matrix ``v`` (held both row- and
column-wise), with entries ``v_ij = 0`` and rows no candidate improves dropped. Plain 0/1
maximal covering (Church & ReVelle 1974) is the case where each row of ``v`` holds one
value; :attr:`_Model.binary` records it so the compact LP/MILP formulation can be used.

Site constraints form a two-level laminar family (groups inside families, each with a
count cap) plus an optional knapsack budget; :func:`_best_subset` returns the best value of
any feasible set for given per-site values, which every bound needs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

_EPS = 1e-9


@dataclass(frozen=True)
class SiteLimits:
    """Count caps per group and per family of groups, and an optional budget.

    ``group[j]`` is the group of site ``j``; ``group_cap[g]`` caps the sites chosen in
    group ``g``; ``family[g]`` is the family of group ``g`` and ``family_cap[f]`` caps the
    sites chosen over all groups of family ``f``. ``cost``/``budget`` add a knapsack.
    """

    group: np.ndarray
    group_cap: np.ndarray
    family: np.ndarray
    family_cap: np.ndarray
    cost: np.ndarray | None = None
    budget: float | None = None

    @property
    def single(self) -> bool:
        return len(self.group_cap) == 1 and self.budget is None

    def subset(self, keep: np.ndarray) -> SiteLimits:
        cost = None if self.cost is None else self.cost[keep]
        return replace(self, group=self.group[keep], cost=cost)

    def after_fixing(self, fixed: np.ndarray) -> SiteLimits:
        """Caps left once the sites ``fixed`` (indices) are in every solution."""
        used = np.bincount(self.group[fixed], minlength=len(self.group_cap))
        group_cap = self.group_cap - used
        family_cap = self.family_cap - np.bincount(
            self.family, weights=used, minlength=len(self.family_cap)
        ).astype(np.int64)
        budget = self.budget
        if budget is not None and self.cost is not None:
            budget = budget - float(self.cost[fixed].sum())
        return replace(self, group_cap=group_cap, family_cap=family_cap, budget=budget)

    def can_add(self, counts: np.ndarray, spent: float) -> np.ndarray:
        """Mask of sites that could be added given current group counts and spend."""
        fam_counts = np.bincount(self.family, weights=counts, minlength=len(self.family_cap))
        group_ok = (counts < self.group_cap) & (
            fam_counts[self.family] < self.family_cap[self.family]
        )
        ok = group_ok[self.group]
        if self.budget is not None and self.cost is not None:
            ok &= self.cost <= self.budget - spent + _EPS * max(1.0, abs(self.budget))
        return ok


@dataclass
class _Model:
    """Residual instance: the matrix ``v`` over active rows, both orientations."""

    n_rows: int
    n_cols: int
    r_indptr: np.ndarray
    r_cols: np.ndarray
    r_vals: np.ndarray
    c_indptr: np.ndarray
    c_rows: np.ndarray
    c_vals: np.ndarray
    c_cols: np.ndarray  # column of each CSC entry, for bincount
    constant: float
    binary: bool
    limits: SiteLimits
    row_weight: np.ndarray  # max_j v_ij per active row

    @classmethod
    def build(
        cls,
        coverage: sp.csr_array,
        weight: np.ndarray,
        existing: np.ndarray,
        limits: SiteLimits,
    ) -> _Model:
        coverage = sp.csr_array(coverage)
        coverage.sum_duplicates()
        rows = np.repeat(np.arange(coverage.shape[0]), np.diff(coverage.indptr))
        values = weight[rows] * np.maximum(coverage.data.astype(np.float64) - existing[rows], 0.0)
        keep = values > 0
        constant = float(np.dot(weight, existing))
        matrix = sp.coo_array(
            (values[keep], (rows[keep], coverage.indices[keep])), shape=coverage.shape
        ).tocsr()
        active = np.flatnonzero(np.diff(matrix.indptr) > 0)
        matrix = sp.csr_array(matrix[active])
        matrix.sort_indices()
        return cls.from_csr(matrix, constant, limits)

    @classmethod
    def from_csr(cls, matrix: sp.csr_array, constant: float, limits: SiteLimits) -> _Model:
        csc = matrix.tocsc()
        csc.sort_indices()
        n_rows, n_cols = matrix.shape
        row_weight = np.zeros(n_rows)
        row_min = np.zeros(n_rows)
        if matrix.nnz:
            starts = matrix.indptr[:-1]
            nonempty = np.diff(matrix.indptr) > 0
            row_weight[nonempty] = np.maximum.reduceat(matrix.data, starts[nonempty])
            row_min[nonempty] = np.minimum.reduceat(matrix.data, starts[nonempty])
        binary = bool(np.all(row_weight - row_min <= _EPS * np.maximum(row_weight, 1.0)))
        return cls(
            n_rows=n_rows,
            n_cols=n_cols,
            r_indptr=matrix.indptr.astype(np.int64),
            r_cols=matrix.indices.astype(np.int64),
            r_vals=matrix.data.astype(np.float64),
            c_indptr=csc.indptr.astype(np.int64),
            c_rows=csc.indices.astype(np.int64),
            c_vals=csc.data.astype(np.float64),
            c_cols=np.repeat(np.arange(n_cols), np.diff(csc.indptr)),
            constant=constant,
            binary=binary,
            limits=limits,
            row_weight=row_weight,
        )

    def csr(self) -> sp.csr_array:
        return sp.csr_array(
            (self.r_vals, self.r_cols, self.r_indptr), shape=(self.n_rows, self.n_cols)
        )

    def fix(self, fixed: np.ndarray) -> tuple[_Model, float]:
        """Residual model once the sites ``fixed`` are chosen; returns it and ``f(fixed)``."""
        fixed = np.asarray(fixed, dtype=np.int64)
        current = self.row_values(fixed)
        matrix = self.csr()
        rows = np.repeat(np.arange(self.n_rows), np.diff(self.r_indptr))
        values = np.maximum(self.r_vals - current[rows], 0.0)
        keep = np.ones(self.n_cols, dtype=bool)
        keep[fixed] = False
        new_index = np.cumsum(keep) - 1
        mask = (values > 0) & keep[self.r_cols]
        matrix = sp.coo_array(
            (values[mask], (rows[mask], new_index[self.r_cols[mask]])),
            shape=(self.n_rows, int(keep.sum())),
        ).tocsr()
        active = np.flatnonzero(np.diff(matrix.indptr) > 0)
        matrix = sp.csr_array(matrix[active])
        matrix.sort_indices()
        value = self.constant + float(current.sum())
        limits = self.limits.after_fixing(fixed).subset(keep)
        return _Model.from_csr(matrix, value, limits), value

    def row_values(self, selected: np.ndarray) -> np.ndarray:
        """``max_{j∈S} v_ij`` per active row (0 where no chosen site helps)."""
        current = np.zeros(self.n_rows)
        idx, _ = _gather(self.c_indptr, np.asarray(selected, dtype=np.int64))
        if len(idx):
            np.maximum.at(current, self.c_rows[idx], self.c_vals[idx])
        return current

    def value(self, selected: np.ndarray) -> float:
        return self.constant + float(self.row_values(selected).sum())

    def gains(self, current: np.ndarray) -> np.ndarray:
        """Marginal value of every site given per-row current values."""
        delta = np.maximum(self.c_vals - current[self.c_rows], 0.0)
        return np.bincount(self.c_cols, weights=delta, minlength=self.n_cols)


def _gather(indptr: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the entries of compressed rows/columns ``items`` and their owner index."""
    starts = indptr[items]
    lengths = indptr[items + 1] - starts
    total = int(lengths.sum())
    owner = np.repeat(np.arange(len(items)), lengths)
    offsets = np.cumsum(lengths) - lengths
    positions = np.arange(total) - np.repeat(offsets, lengths) + np.repeat(starts, lengths)
    return positions.astype(np.int64), owner


def _best_subset(values: np.ndarray, limits: SiteLimits) -> tuple[float, np.ndarray, np.ndarray]:
    """Best total of ``values`` over sets allowed by ``limits`` (a relaxation with a budget).

    Without a budget this is exact: the greedy on a laminar matroid is optimal (Edmonds
    1971). With a budget the knapsack is relaxed to its fractional (LP) form, and with
    both the smaller of the two relaxations is returned — each is a valid upper bound.
    Returns ``(value, chosen sites, their weights in [0, 1])``.
    """
    positive = values > 0
    value_c, chosen_c = _best_counted(values, positive, limits)
    if limits.budget is None or limits.cost is None:
        return value_c, chosen_c, np.ones(len(chosen_c))
    value_k, chosen_k, frac_k = _best_fractional_knapsack(values, positive, limits)
    if value_k < value_c:
        return value_k, chosen_k, frac_k
    return value_c, chosen_c, np.ones(len(chosen_c))


def _best_counted(
    values: np.ndarray, positive: np.ndarray, limits: SiteLimits
) -> tuple[float, np.ndarray]:
    if len(limits.group_cap) == 1:
        cap = int(min(limits.group_cap[0], limits.family_cap[limits.family[0]]))
        candidates = np.flatnonzero(positive)
        if cap <= 0 or len(candidates) == 0:
            return 0.0, np.empty(0, dtype=np.int64)
        if len(candidates) > cap:
            part = np.argpartition(-values[candidates], cap - 1)[:cap]
            candidates = candidates[part]
        return float(values[candidates].sum()), candidates
    candidates = np.flatnonzero(positive)
    chosen = _top_per_key(candidates, values, limits.group[candidates], limits.group_cap)
    fam = limits.family[limits.group[chosen]]
    chosen = _top_per_key(chosen, values, fam, limits.family_cap)
    return float(values[chosen].sum()), chosen


def _top_per_key(
    items: np.ndarray, values: np.ndarray, keys: np.ndarray, caps: np.ndarray
) -> np.ndarray:
    order = np.lexsort((-values[items], keys))
    sorted_keys = keys[order]
    first = np.searchsorted(sorted_keys, sorted_keys, side="left")
    rank = np.arange(len(order)) - first
    return items[order[rank < np.maximum(caps[sorted_keys], 0)]]


def _best_fractional_knapsack(
    values: np.ndarray, positive: np.ndarray, limits: SiteLimits
) -> tuple[float, np.ndarray, np.ndarray]:
    assert limits.cost is not None and limits.budget is not None
    budget = max(float(limits.budget), 0.0)
    candidates = np.flatnonzero(positive)
    cost = limits.cost[candidates]
    free = cost <= 0
    free_value = float(values[candidates[free]].sum())
    paid = candidates[~free]
    ratio = values[paid] / limits.cost[paid]
    order = paid[np.argsort(-ratio, kind="stable")]
    spent = np.cumsum(limits.cost[order])
    whole = spent <= budget
    n_whole = int(whole.sum())
    fractions = np.ones(n_whole)
    chosen = order[:n_whole]
    value = free_value + float(values[chosen].sum())
    if n_whole < len(order):
        left = budget - (float(spent[n_whole - 1]) if n_whole else 0.0)
        part = left / float(limits.cost[order[n_whole]])
        value += part * float(values[order[n_whole]])
        chosen = np.append(chosen, order[n_whole])
        fractions = np.append(fractions, part)
    chosen = np.concatenate([candidates[free], chosen])
    fractions = np.concatenate([np.ones(int(free.sum())), fractions])
    return value, chosen, fractions


def _restrict(model: _Model, keep: np.ndarray) -> tuple[_Model, np.ndarray]:
    """The model over the sites ``keep`` (mask) and the rows they reach; and their indices."""
    columns = np.flatnonzero(keep)
    matrix = sp.csr_array(model.csr()[:, columns])
    active = np.flatnonzero(np.diff(matrix.indptr) > 0)
    matrix = sp.csr_array(matrix[active])
    matrix.sort_indices()
    return _Model.from_csr(matrix, model.constant, model.limits.subset(keep)), columns


@dataclass
class _Race:
    """Best value and bound found so far, shared by a search and a bound run side by side.

    Each side records its progress here and stops once the relative gap
    ``(bound − value)/bound`` is at most ``target_gap``.
    """

    value: float = -np.inf
    bound: float = np.inf
    target_gap: float = 0.0

    def settled(self) -> bool:
        if not np.isfinite(self.bound) or not np.isfinite(self.value):
            return False
        return self.bound - self.value <= self.target_gap * max(abs(self.bound), 1e-12)
