"""Queen contiguity, Gi* with conditional permutations, cluster polygons."""

from __future__ import annotations

import warnings
from itertools import combinations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from models.clusters import hot_spot_clusters, local_gi_star, queen_adjacency


def _grid(n_cols: int, n_rows: int) -> gpd.GeoDataFrame:
    boxes = [
        shapely.box(i * 100.0, j * 100.0, (i + 1) * 100.0, (j + 1) * 100.0)
        for j in range(n_rows)
        for i in range(n_cols)
    ]
    codes = [f"E{k:03d}" for k in range(len(boxes))]
    return gpd.GeoDataFrame({"area_code": codes}, geometry=boxes, crs="EPSG:27700")


def test_queen_adjacency_on_a_grid_matches_libpysal() -> None:
    grid = _grid(3, 3)
    adjacency = queen_adjacency(grid.geometry.to_numpy(), precision=1e-3)
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    # corners touch 3 cells, edge cells 5, the centre 8
    assert degree.tolist() == [3, 5, 3, 5, 8, 5, 3, 5, 3]
    assert (adjacency != adjacency.T).nnz == 0 and adjacency.diagonal().sum() == 0
    from libpysal.weights import Queen

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        queen = Queen.from_dataframe(_grid(7, 5), use_index=False)
    ours = queen_adjacency(_grid(7, 5).geometry.to_numpy(), precision=1e-3)
    assert (ours != queen.sparse.tocsr()).nnz == 0


def test_gi_star_z_matches_esda() -> None:
    import esda
    from libpysal.weights import Queen

    grid = _grid(6, 6)
    values = np.random.default_rng(2).gamma(2.0, 1.0, 36)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = Queen.from_dataframe(grid, use_index=False)
        reference = esda.G_Local(values, w, transform="B", star=True, permutations=0)
    ours = local_gi_star(
        values, queen_adjacency(grid.geometry.to_numpy(), precision=1e-3), permutations=0
    )
    np.testing.assert_allclose(ours.z, reference.Zs, rtol=1e-10)


def test_permutation_p_matches_exact_enumeration() -> None:
    # A strip of 8 areas: the conditional permutation distribution of an area's
    # neighbour sum is the sum of k values drawn without replacement from the other 7,
    # which we can enumerate exactly.
    strip = gpd.GeoSeries([shapely.box(i, 0, i + 1, 1) for i in range(8)], crs="EPSG:27700")
    adjacency = queen_adjacency(strip.to_numpy(), precision=1e-6)
    values = np.array([5.0, 4.0, 0.5, 1.0, 0.0, 2.0, 0.2, 3.0])
    result = local_gi_star(values, adjacency, permutations=99_999, seed=7)
    for i in range(8):
        neighbours = adjacency.indices[adjacency.indptr[i] : adjacency.indptr[i + 1]]
        observed = values[neighbours].sum()
        others = np.delete(values, i)
        sums = [sum(c) for c in combinations(others, len(neighbours))]
        exact = np.mean(np.array(sums) >= observed - 1e-12)
        assert result.p_sim[i] == pytest.approx(exact, abs=0.006)


def test_clusters_from_two_hot_blocks() -> None:
    grid = _grid(5, 4)
    adjacency = queen_adjacency(grid.geometry.to_numpy(), precision=1e-3)
    member = np.zeros(20, dtype=bool)
    member[[0, 1, 5]] = True  # an L of three in one corner
    member[[13, 14, 19, 18]] = True  # a square of four in the opposite corner
    member[3] = True  # an isolated single area: too small to be a cluster
    stats = pd.DataFrame(
        {
            "eligible": np.full(20, 100),
            "vaccinated": np.full(20, 60),
            "shortfall": np.full(20, 20),
            "q_gi": np.linspace(0.001, 0.02, 20),
            "imd_decile": np.arange(20) % 10 + 1.0,
            "eth_asian": np.full(20, 0.3),
            "eth_white": np.full(20, 0.7),
        }
    )
    cluster_id, clusters = hot_spot_clusters(grid, adjacency, member, stats=stats, min_areas=2)
    assert clusters["n_areas"].tolist() == [4, 3]  # numbered by shortfall: 80 then 60
    assert clusters["shortfall"].tolist() == [80, 60]
    assert cluster_id[[13, 14, 18, 19]].tolist() == [1, 1, 1, 1] and np.isnan(cluster_id[3])
    assert clusters.geometry.area.tolist() == pytest.approx([40_000.0, 30_000.0])
    assert clusters["uptake"].tolist() == pytest.approx([0.6, 0.6])
    assert clusters["p_value"].tolist() == pytest.approx([stats["q_gi"][13], stats["q_gi"][0]])
    assert clusters["dominant_ethnic_groups"].tolist() == [["white", "asian"], ["white", "asian"]]
    assert sorted(clusters["area_codes"][1]) == ["E000", "E001", "E005"]
