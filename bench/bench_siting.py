"""Benchmark: site selection against spopt's MCLP (PuLP + CBC), and at England scale.

Run ``python bench/bench_siting.py`` (several minutes: spopt is given up to 300 s per
instance) or ``python bench/bench_siting.py --quick`` (under a minute). Prints figures;
not a test.

Common instance (the same for both solvers, built once): demand points and candidate
sites uniform on a 20 km square, 1 km hard radius, weights uniform 50–500. spopt solves
the MCLP exactly with CBC from a dense cost matrix; ours runs the greedy, then an iterated
fast-swap search beside a smoothed Lagrangian dual (a near-LP bound), and (when small)
HiGHS, and reports its certified gap. Ours runs ``--repeat`` times per instance: the
median time is shown with the minimum, and the median run by gap with the range.

England scale: 180,000 demand points and 60,000 candidates with clustered, England-like
density (towns of log-normal size over a 550 × 350 km box plus a rural background),
radii 800–1,600 m, 500 sites.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geo.catchments import euclidean_coverage
from models.covering import CoveringProblem, covering_value, solve_covering

SPOPT_TIMEOUT_S = 300.0


def uniform_instance(n: int, m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Demand xy, site xy and weights of the common uniform instance."""
    rng = np.random.default_rng(seed)
    demand = rng.uniform(0, 20_000, (n, 2))
    sites = rng.uniform(0, 20_000, (m, 2))
    weight = rng.uniform(50, 500, n)
    return demand, sites, weight


def england_instance(
    n: int, m: int, seed: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Clustered demand and candidates with England-like density, and per-site radii.

    85% of points lie in 900 towns of log-normal size, each a Gaussian whose peak density
    is that of English urban output areas (~11 per km²: 144,000 urban OAs on ~13,000 km²);
    the rest are spread over the whole box. Candidates follow the same density.
    """
    rng = np.random.default_rng(seed)
    n_towns = 900
    centres = rng.uniform([0, 0], [550_000, 350_000], (n_towns, 2))
    size = rng.lognormal(0.0, 1.2, n_towns)
    size /= size.sum()
    peak_per_m2 = 11e-6 * n / 180_000

    def draw(count: int) -> np.ndarray:
        urban = int(count * 0.85)
        town = rng.choice(n_towns, urban, p=size)
        # σ so that the town's peak density is the urban OA density (demand scale).
        sigma = np.sqrt(size * n * 0.85 / (2 * np.pi * peak_per_m2))
        points = centres[town] + rng.normal(0, 1, (urban, 2)) * sigma[town, None]
        rural = rng.uniform([0, 0], [550_000, 350_000], (count - urban, 2))
        return np.vstack([points, rural])

    demand, sites = draw(n), draw(m)
    radius = rng.choice([800.0, 1000.0, 1200.0, 1600.0], m)
    weight = rng.uniform(50, 500, n)
    return demand, sites, radius, weight


def run_spopt(n: int, m: int, p: int) -> dict[str, object]:
    """Solve with spopt in a child process (so a timeout can stop it)."""
    command = [sys.executable, __file__, "--spopt-child", str(n), str(m), str(p)]
    began = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=SPOPT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"finished": False, "seconds": time.perf_counter() - began}
    if done.returncode != 0:
        return {
            "finished": False,
            "seconds": time.perf_counter() - began,
            "error": done.stderr[-500:],
        }
    return {"finished": True, **json.loads(done.stdout.strip().splitlines()[-1])}


def _spopt_child(n: int, m: int, p: int) -> None:
    import pulp
    from scipy.spatial.distance import cdist
    from spopt.locate import MCLP

    demand, sites, weight = uniform_instance(n, m)
    began = time.perf_counter()
    cost = cdist(demand, sites)
    model = MCLP.from_cost_matrix(cost, weight, service_radius=1000.0, p_facilities=p)
    model.solve(pulp.PULP_CBC_CMD(msg=False))
    seconds = time.perf_counter() - began
    chosen = [j for j in range(m) if model.fac_vars[j].value() > 0.5]
    print(json.dumps({"seconds": seconds, "selected": chosen}))


def bench_vs_spopt(
    n: int,
    m: int,
    p: int,
    *,
    with_spopt: bool,
    time_limit: float,
    target_gap: float = 1e-4,
    repeat: int = 1,
) -> None:
    """Ours ``repeat`` times (median time and the median run by gap), then spopt once."""
    demand, sites, weight = uniform_instance(n, m)
    coverage = euclidean_coverage(demand, sites, 1000.0)
    problem = CoveringProblem.with_count(coverage, weight, p)
    runs = []
    for _ in range(max(repeat, 1)):
        began = time.perf_counter()
        ours = solve_covering(problem, time_limit_s=time_limit, target_gap=target_gap)
        runs.append((time.perf_counter() - began, ours.gap_pct, ours))
    times = np.array([r[0] for r in runs])
    gaps = np.array([r[1] for r in runs])
    ours = sorted(runs, key=lambda r: r[1])[len(runs) // 2][2]  # the median run by gap
    seconds = float(np.median(times))
    spread = f" (min {times.min():.2f}, {len(runs)} runs)" if len(runs) > 1 else ""
    gap_spread = f" (min {gaps.min():.3f}%, max {gaps.max():.3f}%)" if len(runs) > 1 else ""
    line = (
        f"{n:>7,} x {m:>6,} x {p:>4}: ours {seconds:7.2f} s{spread}, value {ours.value:,.0f}, "
        f"certified gap {ours.gap_pct:.3f}%{gap_spread} ({ours.method}, {ours.status}; "
        f"bounds {_short(ours.bounds)})"
    )
    print(line, flush=True)
    if not with_spopt:
        return
    peer = run_spopt(n, m, p)
    if not peer["finished"]:
        print(
            f"{'':>26}spopt did not finish in {SPOPT_TIMEOUT_S:.0f} s"
            + (f" ({peer['error']})" if "error" in peer else ""),
            flush=True,
        )
        return
    value = covering_value(problem, peer["selected"])  # type: ignore[arg-type]
    print(
        f"{'':>26}spopt {peer['seconds']:7.2f} s, value {value:,.0f} -> time ratio "
        f"{peer['seconds'] / seconds:,.0f}x, objective ratio {ours.value / value:.5f}",
        flush=True,
    )


def bench_england(n: int, m: int, p: int, *, time_limit: float) -> None:
    began = time.perf_counter()
    demand, sites, radius, weight = england_instance(n, m)
    coverage = euclidean_coverage(demand, sites, radius)
    built = time.perf_counter() - began
    problem = CoveringProblem.with_count(sp.csr_array(coverage), weight, p)
    began = time.perf_counter()
    solution = solve_covering(problem, time_limit_s=time_limit, target_gap=0.01)
    seconds = time.perf_counter() - began
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(
        f"England-like {n:,} x {m:,} x {p} ({coverage.nnz:,} pairs, built in {built:.1f} s): "
        f"{seconds:.1f} s, certified gap {solution.gap_pct:.3f}%, peak RSS {peak_gb:.2f} GB "
        f"({solution.method}, bounds {_short(solution.bounds)})",
        flush=True,
    )


def _short(bounds: dict[str, float | None]) -> str:
    return ", ".join(f"{k} {v:,.0f}" for k, v in bounds.items() if v is not None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small instances, under a minute")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of ours per instance (median time shown)"
    )
    parser.add_argument("--spopt-child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.spopt_child:
        _spopt_child(*args.spopt_child)
        return
    k = args.repeat
    if args.quick:
        bench_vs_spopt(2_000, 300, 20, with_spopt=True, time_limit=5, repeat=k)
        bench_vs_spopt(10_000, 1_000, 50, with_spopt=False, time_limit=5, repeat=k)
        bench_vs_spopt(
            50_000, 3_000, 100, with_spopt=False, time_limit=5, target_gap=0.01, repeat=k
        )
        bench_england(30_000, 10_000, 100, time_limit=10)
        return
    bench_vs_spopt(2_000, 300, 20, with_spopt=True, time_limit=5, repeat=k)
    bench_vs_spopt(10_000, 1_000, 50, with_spopt=True, time_limit=5, repeat=k)
    bench_vs_spopt(50_000, 3_000, 100, with_spopt=True, time_limit=5, target_gap=0.01, repeat=k)
    bench_england(180_000, 60_000, 500, time_limit=60)


if __name__ == "__main__":
    main()
