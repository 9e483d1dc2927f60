"""LP relaxation and exact MILP of the covering model with HiGHS (highspy).

Two formulations of ``max f(S)`` over the residual matrix ``v`` (see ``_instance``):

- 0/1 coverage (each row holds one value ``W_i``): the maximal covering location problem
  of Church & ReVelle (1974), ``max Σ_i W_i z_i`` s.t. ``z_i ≤ Σ_{j∋i} y_j``, ``z ≤ 1``;
- general values: the strong facility-location form ``max Σ v_ij x_ij`` s.t.
  ``Σ_j x_ij ≤ 1``, ``x_ij ≤ y_j`` (Cornuéjols, Fisher & Nemhauser 1977), one variable per
  matrix entry, so it is only built for small instances.

Both add the count caps and the budget on ``y``. ``fixed_in``/``fixed_out`` pin sites
(reduced-cost fixing), and a start solution warm-starts the MILP.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp

from models._instance import SiteLimits, _Model


@dataclass
class _HighsResult:
    status: str  # "optimal", "time_limit" or "failed"
    value: float | None  # best integer (MILP) or LP value, constant included
    bound: float | None  # valid upper bound, constant included
    selected: list[int] | None
    seconds: float


def _solve_highs(
    model: _Model,
    *,
    integer: bool,
    time_limit_s: float,
    start: list[int] | None = None,
    fixed_in: np.ndarray | None = None,
    fixed_out: np.ndarray | None = None,
    rel_gap: float = 1e-7,
) -> _HighsResult:
    """Solve the LP relaxation (``integer=False``, interior point) or the MILP."""
    began = time.perf_counter()
    n, m = model.n_rows, model.n_cols
    matrix = model.csr()
    if model.binary:
        n_x = n
        objective_x = model.row_weight
        # z_i − Σ_j a_ij y_j ≤ 0
        link = sp.hstack([sp.eye_array(n, format="csr"), -sp.csr_array(matrix > 0).astype(float)])
        link_upper = np.zeros(n)
    else:
        n_x = matrix.nnz
        objective_x = matrix.data.copy()
        entry_rows = np.repeat(np.arange(n), np.diff(matrix.indptr))
        entries = np.arange(n_x)
        assign = sp.csr_array((np.ones(n_x), (entry_rows, entries)), shape=(n, n_x))
        open_link = sp.csr_array(
            (
                np.concatenate([np.ones(n_x), -np.ones(n_x)]),
                (
                    np.concatenate([entries, entries]),
                    np.concatenate([entries, n_x + matrix.indices]),
                ),
            ),
            shape=(n_x, n_x + m),
        )
        link = sp.vstack([sp.hstack([assign, sp.csr_array((n, m))]), open_link])
        link_upper = np.concatenate([np.ones(n), np.zeros(n_x)])
    limit_rows, limit_upper = _limit_rows(model.limits, model.n_cols)
    limit_block = sp.hstack([sp.csr_array((limit_rows.shape[0], n_x)), limit_rows])
    constraint = sp.csr_array(sp.vstack([link, limit_block]))
    upper = np.concatenate([link_upper, limit_upper])
    col_upper = np.ones(n_x + m)
    col_lower = np.zeros(n_x + m)
    if fixed_out is not None:
        col_upper[n_x + np.asarray(fixed_out, dtype=np.int64)] = 0.0
    if fixed_in is not None:
        col_lower[n_x + np.asarray(fixed_in, dtype=np.int64)] = 1.0

    highs = highs_problem(
        np.concatenate([objective_x, np.zeros(m)]), constraint, upper, col_lower, col_upper,
        n_sites=m, integer=integer, time_limit_s=time_limit_s,
    )  # fmt: skip
    if integer:
        highs.setOptionValue("mip_rel_gap", rel_gap)
        highs.setOptionValue("mip_abs_gap", 1e-9)
    else:
        highs.setOptionValue("solver", "ipm")
    if integer and start:
        solution = highspy.HighsSolution()
        solution.col_value = list(_start_vector(model, matrix, start, n_x))
        solution.value_valid = True
        highs.setSolution(solution)
    highs.run()
    status = highs.getModelStatus()
    info = highs.getInfo()
    seconds = time.perf_counter() - began
    optimal = status == highspy.HighsModelStatus.kOptimal
    if integer:
        has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
        value = model.constant + float(info.objective_function_value) if has_solution else None
        dual_bound = model.constant + float(info.mip_dual_bound)
        selected = None
        if has_solution:
            y = np.asarray(highs.getSolution().col_value)[n_x:]
            selected = np.flatnonzero(y > 0.5).tolist()
        state = "optimal" if optimal else ("time_limit" if has_solution else "failed")
        bound = dual_bound if np.isfinite(dual_bound) else None
        return _HighsResult(state, value, bound, selected, seconds)
    if not optimal:
        return _HighsResult("time_limit", None, None, None, seconds)
    value = model.constant + float(info.objective_function_value)
    # The interior-point optimum is converged to a relative tolerance of about 1e-8; pad
    # the bound by that so it stays valid.
    return _HighsResult("optimal", value, value + 1e-7 * abs(value), None, seconds)


def _limit_rows(limits: SiteLimits, m: int) -> tuple[sp.csr_array, np.ndarray]:
    """Rows of the count caps (per group, per family) and the budget over ``y``."""
    n_groups = len(limits.group_cap)
    groups = sp.csr_array((np.ones(m), (limits.group, np.arange(m))), shape=(n_groups, m))
    fam_of_site = limits.family[limits.group]
    families = sp.csr_array(
        (np.ones(m), (fam_of_site, np.arange(m))), shape=(len(limits.family_cap), m)
    )
    blocks = [groups, families]
    upper = [limits.group_cap.astype(float), limits.family_cap.astype(float)]
    if limits.budget is not None and limits.cost is not None:
        blocks.append(sp.csr_array(limits.cost.reshape(1, -1).astype(float)))
        upper.append(np.array([float(limits.budget)]))
    return sp.csr_array(sp.vstack(blocks)), np.concatenate(upper)


def _start_vector(model: _Model, matrix: sp.csr_array, start: list[int], n_x: int) -> np.ndarray:
    y = np.zeros(model.n_cols)
    y[np.asarray(start, dtype=np.int64)] = 1.0
    if model.binary:
        x = np.minimum((sp.csr_array(matrix > 0).astype(float) @ y), 1.0)
    else:
        # Assign each row to its best chosen site.
        entry_rows = np.repeat(np.arange(model.n_rows), np.diff(matrix.indptr))
        value = np.where(y[matrix.indices] > 0, matrix.data, -1.0)
        order = np.lexsort((-value, entry_rows))
        first = np.ones(len(order), dtype=bool)
        first[1:] = entry_rows[order][1:] != entry_rows[order][:-1]
        x = np.zeros(n_x)
        pick = order[first]
        x[pick[value[pick] > 0]] = 1.0
    return np.concatenate([x, y])


def highs_problem(
    objective: np.ndarray,
    matrix: sp.csr_array,
    row_upper: np.ndarray,
    col_lower: np.ndarray,
    col_upper: np.ndarray,
    *,
    n_sites: int,
    integer: bool,
    time_limit_s: float,
) -> highspy.Highs:
    """A HiGHS maximisation ``max c·x, matrix·x ≤ row_upper, lower ≤ x ≤ upper`` whose
    last ``n_sites`` columns are the site variables (integer when ``integer``); quiet,
    single-threaded, time-limited and ready to run (callers add solver options)."""
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = len(objective), matrix.shape[0]
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = objective, col_lower, col_upper
    lp.row_lower_ = np.full(matrix.shape[0], -highspy.kHighsInf)
    lp.row_upper_ = row_upper
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = matrix.indptr.astype(np.int32)
    lp.a_matrix_.index_ = matrix.indices.astype(np.int32)
    lp.a_matrix_.value_ = matrix.data.astype(np.float64)
    if integer:
        n_other = len(objective) - n_sites
        lp.integrality_ = [highspy.HighsVarType.kContinuous] * n_other + [
            highspy.HighsVarType.kInteger
        ] * n_sites
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("time_limit", max(float(time_limit_s), 0.01))
    highs.setOptionValue("threads", 1)
    highs.passModel(lp)
    return highs
