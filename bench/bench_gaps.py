"""Benchmark of the gap analysis on an England-sized synthetic city (not a test).

Run: ``.venv/bin/python bench/bench_gaps.py [--areas 180000] [--compare-areas 2000]``

Prints the time of each stage of :func:`models.gaps.analyse_gaps` (generating the city
and converting it to a Dataset are not counted), the peak resident memory, and a
comparison of our vectorised Queen contiguity and Gi* permutations with libpysal / esda
on a smaller city. Target: under 20 s and 6 GB for 180,000 areas on 2 cores.
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings

import numpy as np

from geo.synthetic import generate_city
from models import clusters as cl
from models.gaps import GapParams, analyse_gaps


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def run_analysis(n_areas: int, permutations: int) -> None:
    t0 = time.perf_counter()
    city = generate_city(n_areas=n_areas, network=False, seed=42)
    dataset = city.to_dataset()
    print(
        f"generated {n_areas:,} areas, {len(dataset.uptake):,} uptake cells in "
        f"{time.perf_counter() - t0:.1f} s (not counted); peak RSS so far {_peak_rss_gb():.2f} GB"
    )
    stages: list[tuple[str, float]] = []
    last = [time.perf_counter(), "start"]

    def progress(fraction: float, stage: str) -> None:
        now = time.perf_counter()
        stages.append((str(last[1]), now - float(last[0])))
        last[0], last[1] = now, stage

    start = time.perf_counter()
    result = analyse_gaps(dataset, GapParams(permutations=permutations), progress=progress)
    total = time.perf_counter() - start
    for stage, seconds in stages[1:]:
        print(f"  {stage:<32s} {seconds:7.2f} s")
    print(f"  {'TOTAL':<32s} {total:7.2f} s   peak RSS {_peak_rss_gb():.2f} GB")
    report = result.model_report
    model = report["expected_model"]
    print(
        f"  model {model['model']} (OOF deviance explained {model['deviance_explained']:.3f}); "
        f"candidates {model['candidates']} on {model['selection_areas']:,} areas"
    )
    print(
        f"  phi {report['overdispersion']['phi']:.3f} tau2 {report['overdispersion']['tau2']:.2e} "
        f"EB prior strength {report['smoothing']['prior_strength']:.1f}"
    )
    print(f"  flags {report['flags']}; clusters {report['hot_spots']['n_clusters']}")
    truth = city.truth.set_index("area_code").reindex(result.table["area_code"])
    detected = result.table["flag"].isin(["below_expected", "both"]).to_numpy()
    planted = truth["planted"].to_numpy() == 1
    print(
        f"  planted recall {detected[planted].mean():.3f} "
        f"false-flag rate {detected[~planted].mean():.4f}"
    )


def compare_with_pysal(n_areas: int, permutations: int) -> None:
    """Our contiguity and Gi* against libpysal Queen and esda G_Local on one city."""
    import esda
    from libpysal.weights import Queen

    city = generate_city(n_areas=n_areas, network=False, seed=42)
    areas = city.areas.reset_index(drop=True)
    t = time.perf_counter()
    ours = cl.queen_adjacency(areas.geometry.to_numpy(), precision=1e-3)
    t_ours = time.perf_counter() - t
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        queen = Queen.from_dataframe(areas, use_index=False)
        t_queen = time.perf_counter() - t
    theirs = queen.sparse.tocsr()
    same = (ours != theirs).nnz == 0
    print(
        f"Queen contiguity, {n_areas:,} areas: ours {t_ours:.3f} s, libpysal {t_queen:.3f} s, "
        f"identical: {same}"
    )
    rng = np.random.default_rng(1)
    values = np.clip(
        rng.gamma(1.0, 0.05, n_areas) + 0.1 * (city.truth["planted"].to_numpy()), 0, None
    )
    t = time.perf_counter()
    gi = cl.local_gi_star(values, ours, permutations=permutations, seed=0)
    t_gi = time.perf_counter() - t
    queen.transform = "B"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        reference = esda.G_Local(
            values, queen, transform="B", star=True, permutations=permutations, seed=0
        )
        t_esda = time.perf_counter() - t
    # esda folds its p-value to the smaller tail; compare where the observed is high.
    high = reference.Zs > 0
    print(
        f"Gi* with {permutations} permutations: ours {t_gi:.3f} s, esda {t_esda:.2f} s; "
        f"max |z - esda Zs| = {np.max(np.abs(gi.z - reference.Zs)):.2e}; "
        f"median |p - esda p_sim| (hot side) = {np.median(np.abs(gi.p_sim[high] - reference.p_sim[high])):.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--areas", type=int, default=180_000)
    parser.add_argument("--permutations", type=int, default=GapParams().permutations)
    parser.add_argument("--compare-areas", type=int, default=2000)
    args = parser.parse_args()
    compare_with_pysal(args.compare_areas, args.permutations)
    run_analysis(args.areas, args.permutations)


if __name__ == "__main__":
    main()
