"""Study: where the certified gap of the 50,000 × 3,000 × 100 covering instance comes from.

The benchmark's common instance (``bench_siting.uniform_instance``) certifies about 1.2–1.6%
in 5 s. This script measures whether a better search or a tighter bound could close it:

1. **Search.** From the solver's own answer after ``--search-seconds``, a large-
   neighbourhood search re-optimises the chosen sites inside random square windows
   (``--window`` metres) exactly with HiGHS, the other sites held, for ``--lns-seconds``.
   If the incumbent were far from the optimum, exact windows would find better plans.
2. **Bound.** A Lagrangian decomposition of the prize-collecting subproblem: with the
   smoothed dual's multipliers ``u`` and site price ``μ``, the demand is cut into square
   tiles (``--tile`` metres), each site's price is shared among the tiles in proportion
   to the dual value it collects there, and each tile's 0/1 problem is solved by HiGHS
   (``--tile-seconds`` each). ``p·μ + Σ_tiles max`` is a valid upper bound; tile MILPs
   close the integrality gap inside each tile, the price sharing leaks it at the edges.

Not a test and not part of ``make bench``: it takes minutes. Prints figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import highspy
import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_siting import uniform_instance

from geo.catchments import euclidean_coverage
from models._cover_dual import _smoothed_dual_bound
from models._milp import highs_problem
from models.covering import CoveringProblem, _prepare, solve_covering


def window_search(
    incidence: sp.csr_array,
    weight: np.ndarray,
    sites: np.ndarray,
    chosen: np.ndarray,
    *,
    window: float,
    seconds: float,
    milp_seconds: float,
    seed: int = 1,
) -> tuple[np.ndarray, float, int]:
    """Exact re-optimisation of the sites inside random windows; the best plan found."""
    rng = np.random.default_rng(seed)
    best = _covered(incidence, weight, chosen)
    began, windows = time.perf_counter(), 0
    side = float(sites.max())
    while time.perf_counter() - began < seconds:
        centre = rng.uniform(0, side, 2)
        free = (np.abs(sites - centre) <= window / 2).all(axis=1)
        k = int((chosen & free).sum())
        if k == 0:
            continue
        held = (incidence @ (chosen & ~free).astype(float)) > 0
        columns = np.flatnonzero(free)
        block = sp.csr_array(incidence[:, columns])
        rows = np.flatnonzero((np.diff(block.indptr) > 0) & ~held)
        sub, row_weight = _merge_rows(sp.csr_array(block[rows]), weight[rows])
        picked = _max_cover(sub, row_weight, np.zeros(len(columns)), k, milp_seconds)[1]
        trial = chosen.copy()
        trial[columns] = picked
        value = _covered(incidence, weight, trial)
        windows += 1
        if value > best + 1e-6:
            chosen, best = trial, value
    return chosen, best, windows


def tile_bound(
    incidence: sp.csr_array,
    weight: np.ndarray,
    demand: np.ndarray,
    u: np.ndarray,
    p: int,
    *,
    tile: float,
    milp_seconds: float,
) -> tuple[float, float, int]:
    """``(L(u), decomposition bound, tiles solved to optimality)`` at the dual's ``u``."""
    reduced = incidence.T @ u
    ranked = np.sort(reduced)[::-1]
    price = 0.5 * (ranked[p - 1] + ranked[p])
    lagrangian = float((weight - u).sum() + ranked[:p].sum())
    cell = np.floor(demand / tile).astype(np.int64)
    tile_of = cell[:, 0] * 1_000_003 + cell[:, 1]
    total, optimal = p * price, 0
    for key in np.unique(tile_of):
        rows = np.flatnonzero(tile_of == key)
        block = sp.csr_array(incidence[rows])
        columns = np.flatnonzero(np.bincount(block.indices, minlength=incidence.shape[1]))
        block = sp.csr_array(block[:, columns])
        collected = block.T @ u[rows]
        share = price * collected / np.maximum(reduced[columns], 1e-12)
        tile_lagrangian = float(
            (weight[rows] - u[rows]).sum() + np.maximum(collected - share, 0).sum()
        )
        bound, _, solved = _max_cover(block, weight[rows], share, None, milp_seconds)
        optimal += solved
        total += min(bound, tile_lagrangian)
    return lagrangian, total, optimal


def _max_cover(
    block: sp.csr_array,
    row_weight: np.ndarray,
    price: np.ndarray,
    count: int | None,
    seconds: float,
) -> tuple[float, np.ndarray, bool]:
    """``max Σ w_i z_i − Σ price_j y_j``, ``z_i ≤ Σ_j a_ij y_j`` (and ``Σ y = count``) by
    HiGHS: its dual bound, the chosen columns and whether it was proven optimal."""
    n, m = block.shape
    rows = [sp.hstack([sp.eye_array(n, format="csr"), -block])]
    upper = [np.zeros(n)]
    if count is not None:
        rows.append(sp.hstack([sp.csr_array((1, n)), sp.csr_array(np.ones((1, m)))]))
        upper.append(np.array([float(count)]))
    highs = highs_problem(
        np.concatenate([row_weight, -price]), sp.csr_array(sp.vstack(rows)),
        np.concatenate(upper), np.zeros(n + m), np.ones(n + m),
        n_sites=m, integer=True, time_limit_s=seconds,
    )  # fmt: skip
    highs.setOptionValue("mip_rel_gap", 1e-6)
    highs.run()
    picked = np.asarray(highs.getSolution().col_value)[n:] > 0.5
    solved = highs.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return float(highs.getInfo().mip_dual_bound), picked, solved


def _merge_rows(block: sp.csr_array, row_weight: np.ndarray) -> tuple[sp.csr_array, np.ndarray]:
    """Rows reached by the same sites merged into one (weights added)."""
    key = block @ np.random.default_rng(0).random(block.shape[1])
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return sp.csr_array(block[first]), np.bincount(inverse, weights=row_weight)


def _covered(incidence: sp.csr_array, weight: np.ndarray, chosen: np.ndarray) -> float:
    return float(weight[(incidence @ chosen.astype(float)) > 0].sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--search-seconds", type=float, default=60.0)
    parser.add_argument("--lns-seconds", type=float, default=240.0)
    parser.add_argument("--window", type=float, default=7_000.0)
    parser.add_argument("--tile", type=float, default=5_000.0)
    parser.add_argument("--tile-seconds", type=float, default=20.0)
    args = parser.parse_args()
    p = 100
    demand, sites, weight = uniform_instance(50_000, 3_000, args.seed)
    coverage = euclidean_coverage(demand, sites, 1000.0)
    incidence = sp.csr_array(coverage > 0).astype(float)
    problem = CoveringProblem.with_count(coverage, weight, p)
    solution = solve_covering(problem, time_limit_s=args.search_seconds, target_gap=1e-3)
    model, _, _ = _prepare(problem)
    assert model.n_rows == len(demand), "every demand point is within reach of a candidate"
    dual = _smoothed_dual_bound(model, deadline=time.perf_counter() + 30.0)
    bound = min(solution.bound, dual.bound)
    print(
        f"seed {args.seed}: solver {solution.seconds:.1f} s, value {solution.value:,.0f}, "
        f"near-LP bound {bound:,.0f}, gap {100 * (1 - solution.value / bound):.3f}%",
        flush=True,
    )
    chosen = np.zeros(len(sites), dtype=bool)
    chosen[solution.selected] = True
    _, improved, windows = window_search(
        incidence, weight, sites, chosen,
        window=args.window, seconds=args.lns_seconds, milp_seconds=30.0,
    )  # fmt: skip
    print(
        f"exact {args.window / 1000:.0f} km windows, {windows} in {args.lns_seconds:.0f} s: "
        f"value {improved:,.0f} (+{100 * (improved / solution.value - 1):.3f}%), "
        f"gap to the bound {100 * (1 - improved / bound):.3f}%",
        flush=True,
    )
    began = time.perf_counter()
    u = model.row_weight - dual.multipliers
    lagrangian, decomposed, optimal = tile_bound(
        incidence, weight, demand, u, p, tile=args.tile, milp_seconds=args.tile_seconds
    )
    print(
        f"{args.tile / 1000:.0f} km tile decomposition ({optimal} tiles optimal, "
        f"{time.perf_counter() - began:.0f} s): L(u) {lagrangian:,.0f} -> {decomposed:,.0f} "
        f"({100 * (1 - decomposed / lagrangian):.3f}% tighter); gap with it "
        f"{100 * (1 - improved / min(decomposed, bound)):.3f}%",
        flush=True,
    )


if __name__ == "__main__":
    main()
