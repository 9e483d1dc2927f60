"""The outreach plan: where to put pop-up sites and vans, and whom they reach (SPEC §2).

:func:`make_plan` turns a dataset, its gap analysis and :class:`PlanParams` into the
plan document. Demand is the people to reach per area (the shortfall to the target, or
all unvaccinated) spread over demand points; its value is weighted by the equity
multipliers (IMD quintile × ethnic mix, :func:`models.flags.equity_weight`). Demand
within reach of existing sites counts as reached already. Candidates are the dataset's
candidate sites of the allowed types plus van stops placed where flagged demand
concentrates (:func:`geo.catchments.van_candidates`), chosen in one optimisation with
separate counts (:mod:`models.covering`, or :mod:`models.capacitated`).

Reported ``reached`` counts people of the demand measure newly within reach, each once
however many catchments cover them, never weighted and never above an area's demand.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from geo._errors import ParameterError
from geo.catchments import euclidean_coverage, network_coverage, site_radii
from geo.dataset import Dataset
from geo.projection import lonlat_to_metric
from models._plan_inputs import PlanInputs, build_inputs
from models.capacitated import solve_capacitated
from models.covering import CoveringProblem, solve_covering
from models.flags import imd_quintile
from models.minimum import minimum_sites
from models.plan_params import PlanParams, validate_plan_params

__all__ = ["PlanParams", "make_plan", "validate_plan_params"]

Progress = Callable[[float, str], None]


def make_plan(
    dataset: Dataset,
    gaps: Any,
    params: PlanParams,
    *,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Choose sites and vans for ``dataset`` and report whom they reach.

    Parameters
    ----------
    dataset
        The canonical dataset (areas, uptake, indicators, sites, optional network).
    gaps
        The :class:`models.gaps.GapResult` (its table's ``flag`` and ``cluster_id`` pick
        where van stops go), or ``None``.
    params
        What to plan; validated first (every problem reported at once).
    progress
        Called as ``progress(fraction, message)``.

    Returns
    -------
    JSON-ready ``{params, sites, totals, bound, gap_pct, solver}`` (and ``minimum`` in
    minimum-facilities mode); see SPEC §2/§3.
    """
    began = time.perf_counter()
    report = progress or (lambda fraction, message: None)
    validate_plan_params(params, dataset)
    report(0.02, "demand and candidates")
    inputs = build_inputs(dataset, gaps, params)
    report(0.15, "catchments")
    coverage = _coverage(dataset, inputs, params)
    existing = _existing_reach(dataset, inputs, params)
    report(0.3, "optimisation")
    budget_left = max(params.time_limit_s - (time.perf_counter() - began), 1.0)
    minimum: dict[str, Any] | None = None
    if params.capacity:
        reach_people, assignment, chosen, gains, solver = _solve_capacitated(
            inputs, coverage, existing, params, budget_left
        )
    else:
        objective = _with_affinity(coverage, inputs)
        weight = inputs.people * inputs.multiplier
        problem = CoveringProblem(
            objective, weight, inputs.limits, existing, required=inputs.required
        )
        if params.min_reach_share is not None:
            solution, minimum = _minimum_mode(coverage, existing, inputs, params, budget_left)
            gains = _gains_in_order(objective, weight, existing, solution.selected)
            # The search maximised people reached, so its value and bounds are in people.
            units, base = "people", float(np.dot(inputs.people, existing))
        else:
            solution = solve_covering(
                problem,
                exact=params.exact,
                time_limit_s=budget_left,
                progress=lambda f, m: report(0.3 + 0.6 * f, m),
            )
            units, base = "equity_weighted", float(np.dot(weight, existing))
            gains = solution.marginal_gains
        chosen = solution.selected
        reach_people, assignment = _attributed_reach(coverage, existing, inputs.people, chosen)
        solver = {**_solver_block(solution, base), "units": units}
    report(0.92, "report")
    plan = _report(
        dataset, inputs, params, chosen, gains, reach_people, assignment, coverage, existing, solver
    )
    if minimum is not None:
        plan["minimum"] = minimum
    plan["solver"]["seconds"] = time.perf_counter() - began
    report(1.0, "done")
    return plan


def _coverage(dataset: Dataset, inputs: PlanInputs, params: PlanParams) -> sp.csr_array:
    radius = site_radii(inputs.sites["site_type"].to_numpy(), params.radius_m)
    if params.distance == "network":
        assert dataset.network is not None  # validate_plan_params refuses it otherwise
        return sp.csr_array(
            network_coverage(
                dataset.network,
                inputs.crs,
                inputs.demand_xy,
                inputs.site_xy,
                radius,
                decay=params.decay,
            )
        )
    return sp.csr_array(
        euclidean_coverage(inputs.demand_xy, inputs.site_xy, radius, decay=params.decay)
    )


def _existing_reach(dataset: Dataset, inputs: PlanInputs, params: PlanParams) -> np.ndarray:
    """Share of each demand point already within reach of existing sites (× factor)."""
    n = len(inputs.demand_xy)
    existing = dataset.sites[dataset.sites["status"].astype(str) == "existing"]
    if not params.use_existing or params.existing_factor == 0 or len(existing) == 0:
        return np.zeros(n)
    x, y = lonlat_to_metric(
        existing.geometry.x.to_numpy(), existing.geometry.y.to_numpy(), inputs.crs
    )
    xy = np.column_stack([x, y])
    radius = site_radii(existing["site_type"].astype(str).to_numpy(), params.radius_m)
    if params.distance == "network":
        assert dataset.network is not None  # validate_plan_params refuses it otherwise
        reach = network_coverage(
            dataset.network, inputs.crs, inputs.demand_xy, xy, radius, decay=params.decay
        )
    else:
        reach = euclidean_coverage(inputs.demand_xy, xy, radius, decay=params.decay)
    best = sp.csr_array(reach).max(axis=1)
    best = np.asarray(best.todense() if sp.issparse(best) else best, dtype=float).ravel()
    return params.existing_factor * best


def _with_affinity(coverage: sp.csr_array, inputs: PlanInputs) -> sp.csr_array:
    """Coverage times ``1 + Σ (m − 1)·share`` for sites matching an affinity rule."""
    if not inputs.affinity_rules:
        return coverage
    coo = sp.coo_array(coverage)
    factor = np.ones(coo.nnz)
    area = inputs.point_area[coo.row]
    for site_mask, share, multiplier in inputs.affinity_rules:
        factor += site_mask[coo.col] * (multiplier - 1.0) * share[area]
    return sp.csr_array(sp.coo_array((coo.data * factor, (coo.row, coo.col)), shape=coo.shape))


def _gains_in_order(
    coverage: sp.csr_array, weight: np.ndarray, existing: np.ndarray, chosen: list[int]
) -> list[float]:
    current = existing.copy()
    gains = []
    csc = sp.csc_array(coverage)
    for j in chosen:
        rows = csc.indices[csc.indptr[j] : csc.indptr[j + 1]]
        vals = csc.data[csc.indptr[j] : csc.indptr[j + 1]]
        gains.append(float(np.dot(weight[rows], np.maximum(vals - current[rows], 0.0))))
        current[rows] = np.maximum(current[rows], vals)
    return gains


def _attributed_reach(
    coverage: sp.csr_array, existing: np.ndarray, people: np.ndarray, chosen: list[int]
) -> tuple[np.ndarray, sp.csr_array]:
    """People newly reached per demand point, and the same attributed to one site each.

    A point is attributed to the chosen site covering it best (earliest in the order on a
    tie), so per-site reach sums to the plan's reach with nobody counted twice.
    """
    n, m = coverage.shape
    if not chosen:
        return np.zeros(n), sp.csr_array((n, m))
    sub = sp.csr_array(coverage[:, np.asarray(chosen)])
    coo = sp.coo_array(sub)
    order = np.lexsort((coo.col, -coo.data, coo.row))
    rows, cols, vals = coo.row[order], coo.col[order], coo.data[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = rows[1:] != rows[:-1]
    rows, cols, vals = rows[first], cols[first], vals[first]
    gain = people[rows] * np.maximum(vals.astype(float) - existing[rows], 0.0)
    reach = np.zeros(n)
    reach[rows] = gain
    site = np.asarray(chosen)[cols]
    return reach, sp.csr_array(sp.coo_array((gain, (rows, site)), shape=(n, m)).tocsr())


def _minimum_mode(
    coverage: sp.csr_array,
    existing: np.ndarray,
    inputs: PlanInputs,
    params: PlanParams,
    time_limit: float,
) -> tuple[Any, dict[str, Any]]:
    """Fewest fixed sites whose new reach (people) is at least the requested share."""
    people = inputs.people
    base = float(np.dot(people, existing))
    total = float(people.sum())
    target = base + float(params.min_reach_share or 0.0) * total
    problem = CoveringProblem(coverage, people, inputs.limits, existing, required=inputs.required)
    try:
        result = minimum_sites(problem, target, family=0, time_limit_s=time_limit)
    except Exception as error:  # InfeasibleError: say how far the candidates go
        raise ParameterError([{"loc": ["min_reach_share"], "msg": str(error)}]) from error
    minimum = {
        "target_share": params.min_reach_share,
        "n_sites": result.n_sites,
        "proven_minimal": result.proven_minimal,
        "lower_bound": result.lower_bound,
    }
    return result.solution, minimum


def _solve_capacitated(
    inputs: PlanInputs,
    coverage: sp.csr_array,
    existing: np.ndarray,
    params: PlanParams,
    time_limit: float,
) -> tuple[Any, ...]:
    residual = inputs.people * np.maximum(1.0 - existing, 0.0)
    coo = sp.coo_array(coverage)
    reach = sp.csr_array(
        sp.coo_array((coo.data * residual[coo.row], (coo.row, coo.col)), shape=coverage.shape)
    )
    value = _with_affinity(
        sp.csr_array(sp.coo_array((np.ones(coo.nnz), (coo.row, coo.col)), shape=coverage.shape)),
        inputs,
    )
    value = sp.csr_array(value.multiply(inputs.multiplier[:, None]))
    reach.sort_indices()
    value.sort_indices()
    solution = solve_capacitated(
        reach,
        value,
        residual,
        inputs.capacity * params.days,
        inputs.limits,
        required=inputs.required,
        exact=params.exact,
        time_limit_s=time_limit,
    )
    reach_people = np.asarray(solution.assignment.sum(axis=1)).ravel()
    solver = {
        "method": "capacitated " + solution.method,
        "status": solution.status,
        "objective": solution.value,
        "bound": solution.bound,
        "gap_pct": solution.gap_pct,
        "bounds": {"submodular": None, "lagrangian": None, "lp": None, **solution.bounds},
        "units": "equity_weighted",
    }
    return reach_people, solution.assignment, solution.selected, solution.marginal_gains, solver


def _solver_block(solution: Any, base: float) -> dict[str, Any]:
    """Solver figures as value added by the plan (the existing reach ``base`` removed)."""
    value = solution.value - base
    bound = max(solution.bound - base, value)
    gap = 100.0 * (bound - value) / bound if bound > 0 else 0.0
    return {
        "method": solution.method,
        "status": solution.status,
        "objective": value,
        "bound": bound,
        "gap_pct": gap,
        "bounds": {k: (None if v is None else v - base) for k, v in solution.bounds.items()},
    }


def _report(
    dataset: Dataset,
    inputs: PlanInputs,
    params: PlanParams,
    chosen: list[int],
    gains: list[float],
    reach_people: np.ndarray,
    assignment: sp.csr_array,
    coverage: sp.csr_array,
    existing: np.ndarray,
    solver: dict[str, Any],
) -> dict[str, Any]:
    point_area = inputs.point_area
    quintile = imd_quintile(inputs.imd_decile)[point_area]
    quintile_key = np.where(
        np.isfinite(quintile), np.nan_to_num(quintile).astype(int).astype(str), "unknown"
    )
    group_share = (
        inputs.group_shares[point_area] if inputs.groups else np.zeros((len(point_area), 0))
    )
    codes = inputs.area_codes
    per_site = sp.csc_array(assignment)
    catch = sp.csc_array(coverage)
    sites_out = []
    for order, (j, gain) in enumerate(zip(chosen, gains, strict=True), start=1):
        rows = per_site.indices[per_site.indptr[j] : per_site.indptr[j + 1]]
        people = per_site.data[per_site.indptr[j] : per_site.indptr[j + 1]]
        site = inputs.sites.iloc[j]
        area_rows = catch.indices[catch.indptr[j] : catch.indptr[j + 1]]
        sites_out.append(
            {
                "site_id": str(site["site_id"]),
                "site_type": str(site["site_type"]),
                "subtype": str(site["subtype"]),
                "name": str(site["name"]),
                "lon": float(inputs.site_lonlat[j, 0]),
                "lat": float(inputs.site_lonlat[j, 1]),
                "order": order,
                "marginal_gain": float(gain),
                "catchment_area_codes": sorted(
                    set(codes[np.unique(point_area[area_rows])].tolist())
                ),
                "reach": _breakdown(people, quintile_key[rows], group_share[rows], inputs.groups),
            }
        )
    reached = float(reach_people.sum())
    total = float(inputs.people.sum())
    weighted = float(np.dot(reach_people, inputs.multiplier))
    totals = {
        "reached": reached,
        "shortfall_total": total,
        "reached_share": reached / total if total > 0 else 0.0,
        "equity_weighted_reached": weighted,
        "existing_reached": float(np.dot(inputs.people, existing)),
        "reached_by_imd_quintile": _breakdown(
            reach_people, quintile_key, group_share, inputs.groups
        )["by_imd_quintile"],
        "demand": params.demand,
    }
    return _json(
        {
            "params": params.to_dict(),
            "sites": sites_out,
            "totals": totals,
            "bound": solver["bound"],
            "gap_pct": solver["gap_pct"],
            "solver": {
                **solver,
                "n_demand_points": len(point_area),
                "n_candidates": len(inputs.sites),
                "seconds": 0.0,
            },
        }
    )


def _breakdown(
    people: np.ndarray, quintile_key: np.ndarray, group_share: np.ndarray, groups: list[str]
) -> dict[str, Any]:
    by_quintile = {str(q): 0.0 for q in range(1, 6)}
    if len(people):
        frame = pd.Series(people).groupby(quintile_key).sum()
        for key, value in frame.items():
            by_quintile[str(key)] = float(value)
    by_group = {g: float(np.dot(people, group_share[:, k])) for k, g in enumerate(groups)}
    return {
        "total": float(people.sum()),
        "by_imd_quintile": by_quintile,
        "by_ethnic_group": by_group,
    }


def _json(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
