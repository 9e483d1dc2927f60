"""Demand points, straight-line and walking coverage, van stops (geo.catchments)."""

from __future__ import annotations

import math

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist
from shapely.geometry import MultiPolygon, Polygon, box

import geo.catchments as catchments
from geo._errors import ParameterError
from geo.catchments import (
    DEFAULT_RADIUS_M,
    demand_points,
    euclidean_coverage,
    network_coverage,
    site_radii,
    van_candidates,
)
from geo.network import StreetNetwork, snap
from geo.projection import lonlat_to_metric, metric_to_lonlat

BNG = "EPSG:27700"
X0, Y0 = 530_000.0, 180_000.0
ORIGIN = np.array([X0, Y0])


# --------------------------------------------------------------------------- demand points


def test_demand_points_small_large_and_concave() -> None:
    u_shape = Polygon(
        [(0, 0), (900, 0), (900, 600), (600, 600), (600, 200), (300, 200), (300, 600), (0, 600)]
    )
    areas = gpd.GeoDataFrame(
        {"area_code": ["square", "u", "big", "islands"]},
        geometry=[
            box(0, 0, 500, 500),  # 0.25 km²: one point, its centroid
            shapely.affinity.translate(u_shape, 1000, 0),  # 0.42 km², centroid outside
            box(0, 1000, 4000, 3000),  # 8 km²: a 4 × 2 grid of 1 km² cells
            MultiPolygon([box(5000, 0, 6500, 1000), box(9000, 0, 10000, 500)]),  # 2 km²
        ],
        crs=BNG,
    )
    areas = areas.set_geometry(areas.translate(X0, Y0))
    points = demand_points(areas, max_point_area_m2=1_000_000.0)

    np.testing.assert_allclose(np.bincount(points.area_index, weights=points.share), 1.0)
    geoms = areas.geometry.to_numpy()[points.area_index]
    assert shapely.contains_xy(geoms, points.xy[:, 0], points.xy[:, 1]).all()
    counts = np.bincount(points.area_index, minlength=4)
    assert counts[0] == 1 and counts[1] == 1
    assert counts[2] == 8 and counts[3] >= 2
    np.testing.assert_allclose(points.xy[points.area_index == 0], [[X0 + 250, Y0 + 250]])
    # the 8 km² rectangle: 8 equal cells, each point at its cell's centre
    big = points.xy[points.area_index == 2] - [X0, Y0]
    expected = {(500.0 + 1000 * i, 1500.0 + 1000 * j) for i in range(4) for j in range(2)}
    assert {(round(x, 6), round(y, 6)) for x, y in big} == expected
    np.testing.assert_allclose(points.share[points.area_index == 2], 1 / 8)
    # both islands of the multipolygon carry people, in proportion to their area
    islands = points.area_index == 3
    on_small_island = points.xy[islands, 0] > X0 + 8000
    assert on_small_island.any()
    assert points.share[islands][on_small_island].sum() == pytest.approx(0.25)


def test_demand_points_refuse_degrees() -> None:
    areas = gpd.GeoDataFrame(geometry=[box(-0.1, 51.5, -0.09, 51.51)], crs="EPSG:4326")
    with pytest.raises(ParameterError):
        demand_points(areas)


# --------------------------------------------------------------------------- straight line


def test_site_radii_defaults_and_overrides() -> None:
    radii = site_radii(["pharmacy", "mobile_van", "place_of_worship"], {"mobile_van": 1200})
    np.testing.assert_array_equal(radii, [1600.0, 1200.0, 800.0])
    assert DEFAULT_RADIUS_M["community_centre"] == 800.0
    with pytest.raises(ParameterError) as caught:
        site_radii(["spaceport", "pharmacy"], {"pharmacy": -5})
    assert len(caught.value.errors) == 2


@pytest.mark.parametrize("n_radii", [3, 60])
def test_euclidean_coverage_equals_brute_force(n_radii: int) -> None:
    rng = np.random.default_rng(n_radii)
    demand = rng.uniform(0, 3000, size=(300, 2)) + ORIGIN
    sites = rng.uniform(0, 3000, size=(80, 2)) + ORIGIN
    radius = rng.choice(rng.uniform(200, 900, size=n_radii), size=80)
    distance = cdist(demand, sites)
    coverage = euclidean_coverage(demand, sites, radius)
    assert coverage.dtype == np.float32 and coverage.shape == (300, 80)
    expected = (distance <= radius).astype(np.float32)
    assert expected.sum() > 300
    np.testing.assert_array_equal(coverage.toarray(), expected)
    assert coverage.has_sorted_indices

    gaussian = euclidean_coverage(demand, sites, radius, decay="gaussian")
    expected = np.where(distance <= radius, np.exp(-0.5 * (distance / (radius / 2)) ** 2), 0.0)
    np.testing.assert_allclose(gaussian.toarray(), expected, rtol=1e-6)


def test_decay_formulas_at_chosen_distances() -> None:
    demand = np.array([[X0, Y0]])
    offsets = np.array([0.0, 250.0, 500.0, 1000.0, 1000.5])
    sites = np.column_stack([X0 + offsets, np.full(5, Y0)])

    def row(**kwargs: object) -> np.ndarray:
        return euclidean_coverage(demand, sites, 1000.0, **kwargs).toarray()[0]  # type: ignore[arg-type]

    np.testing.assert_array_equal(row(), [1, 1, 1, 1, 0])
    np.testing.assert_allclose(row(decay="linear"), [1, 0.75, 0.5, 0, 0])
    np.testing.assert_allclose(
        row(decay="gaussian"), [1, math.exp(-0.125), math.exp(-0.5), math.exp(-2), 0], rtol=1e-6
    )
    np.testing.assert_allclose(
        row(decay="exponential"), [1, math.exp(-0.5), math.exp(-1), math.exp(-2), 0], rtol=1e-6
    )
    np.testing.assert_allclose(
        row(decay="exponential", decay_scale_m=250.0),
        [1, math.exp(-1), math.exp(-2), math.exp(-4), 0],
        rtol=1e-6,
    )
    # linear weight 0 at the edge is not stored
    assert euclidean_coverage(demand, sites, 1000.0, decay="linear").nnz == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"radius_m": -1.0},
        {"radius_m": np.array([100.0, 200.0])},
        {"radius_m": 100.0, "decay": "cubic"},
        {"radius_m": 100.0, "decay": "linear", "decay_scale_m": 0.0},
    ],
)
def test_bad_parameters(kwargs: dict[str, object]) -> None:
    with pytest.raises(ParameterError):
        euclidean_coverage(np.zeros((2, 2)), np.zeros((3, 2)), **kwargs)  # type: ignore[arg-type]


def test_scale_smoke_matches_tree_count() -> None:
    rng = np.random.default_rng(42)
    demand = rng.uniform(0, 40_000, size=(50_000, 2))
    sites = rng.uniform(0, 40_000, size=(10_000, 2))
    coverage = euclidean_coverage(demand, sites, 1000.0)
    expected = cKDTree(demand).count_neighbors(cKDTree(sites), 1000.0)
    assert coverage.nnz == expected
    assert coverage.nnz > 900_000  # ~ 50,000 × 10,000 × π / 1,600 ≈ 982,000
    assert (coverage.data == 1).all()


# --------------------------------------------------------------------------- walking


def make_network(xy: np.ndarray, u: np.ndarray, v: np.ndarray, length: np.ndarray) -> StreetNetwork:
    lon, lat = metric_to_lonlat(xy[:, 0], xy[:, 1], BNG)
    return StreetNetwork(lon, lat, u, v, length)


def grid(
    nx_: int, ny: int, spacing: float, origin: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    k = np.arange(nx_ * ny)
    xy = np.column_stack([origin[0] + (k % nx_) * spacing, origin[1] + (k // nx_) * spacing])
    right = k[(k % nx_) < nx_ - 1]
    up = k[k < nx_ * (ny - 1)]
    return xy, np.concatenate([right, up]), np.concatenate([right + 1, up + nx_])


def river_city(bridge: bool) -> StreetNetwork:
    """Two 6 × 6 grids (100 m streets) either side of a 100 m wide river at x = 500–600 m,
    joined, when ``bridge``, by one bridge at y = 0."""
    west, wu, wv = grid(6, 6, 100.0, (X0, Y0))
    east, eu, ev = grid(6, 6, 100.0, (X0 + 600, Y0))
    xy = np.vstack([west, east])
    u, v = np.concatenate([wu, eu + 36]), np.concatenate([wv, ev + 36])
    if bridge:
        u, v = np.append(u, 5), np.append(v, 36)  # (500, 0) – (600, 0)
    return make_network(xy, u, v, np.full(len(u), 100.0))


def test_site_across_the_river_without_bridge_does_not_cover() -> None:
    home = np.array([[X0 + 490, Y0 + 240]])
    site = np.array([[X0 + 610, Y0 + 240]])  # 120 m away as the crow flies
    assert euclidean_coverage(home, site, 800.0).nnz == 1
    assert network_coverage(river_city(bridge=False), BNG, home, site, 800.0).nnz == 0

    # Over the bridge: snap √(10² + 40²) to (500, 200), 200 m south, 100 m bridge, 200 m
    # north, snap √(10² + 40²) to the site.
    walk = 500 + 2 * math.hypot(10, 40)
    bridged = river_city(bridge=True)
    linear = network_coverage(bridged, BNG, home, site, 800.0, decay="linear")
    assert linear.toarray()[0, 0] == pytest.approx(1 - walk / 800, abs=1e-5)
    assert network_coverage(bridged, BNG, home, site, 550.0).nnz == 0  # the detour is too long


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(2, 6),
    spacing=st.floats(40.0, 200.0),
    drop=st.floats(0.0, 0.5),
    radius=st.floats(50.0, 900.0),
)
def test_network_distance_never_below_straight_line(
    seed: int, size: int, spacing: float, drop: float, radius: float
) -> None:
    rng = np.random.default_rng(seed)
    xy, u, v = grid(size, size, spacing, (X0, Y0))
    xy = xy + rng.uniform(-0.3, 0.3, size=xy.shape) * spacing  # crooked streets
    keep = rng.uniform(size=len(u)) >= drop
    u, v = u[keep], v[keep]
    chord = np.hypot(*(xy[u] - xy[v]).T)
    # some edges claim lengths shorter than their chord (bad data): coverage must still
    # never use a distance below the straight line
    length = chord * rng.uniform(0.7, 1.6, size=len(u)) + 0.01
    if len(u) == 0:
        return
    network = make_network(xy, u, v, length)
    extent = size * spacing
    demand = rng.uniform(-0.2, 1.2, size=(25, 2)) * extent + ORIGIN
    sites = rng.uniform(-0.2, 1.2, size=(6, 2)) * extent + ORIGIN
    radii = radius * rng.uniform(0.5, 1.0, size=6)
    coverage = network_coverage(network, BNG, demand, sites, radii, decay="linear").toarray()

    graph = nx.Graph()
    graph.add_nodes_from(range(network.n_nodes))
    graph.add_weighted_edges_from(
        zip(
            network.edge_u.tolist(),
            network.edge_v.tolist(),
            network.edge_length_m.tolist(),
            strict=True,
        )
    )
    demand_node, demand_snap = snap(network, BNG, demand)
    site_node, site_snap = snap(network, BNG, sites)
    straight = cdist(demand, sites)
    for j in range(len(sites)):
        paths = nx.single_source_dijkstra_path_length(graph, int(site_node[j]))
        for i in range(len(demand)):
            path = paths.get(int(demand_node[i]), math.inf)
            distance = max(demand_snap[i] + path + site_snap[j], straight[i, j])
            if abs(distance - radii[j]) < 1e-6:
                continue  # on the edge: rounding decides
            expected = max(0.0, 1 - distance / radii[j]) if distance <= radii[j] else 0.0
            assert coverage[i, j] == pytest.approx(expected, abs=1e-5)
            if coverage[i, j] > 0:
                implied = radii[j] * (1 - coverage[i, j])
                assert implied >= straight[i, j] - 0.01


def test_network_coverage_hard_cut_agrees_with_walks() -> None:
    network = river_city(bridge=True)
    rng = np.random.default_rng(3)
    demand = rng.uniform([0, 0], [1100, 500], size=(200, 2)) + ORIGIN
    sites = rng.uniform([0, 0], [1100, 500], size=(15, 2)) + ORIGIN
    hard = network_coverage(network, BNG, demand, sites, 400.0)
    straight = euclidean_coverage(demand, sites, 400.0)
    # walking coverage is a subset of straight-line coverage, and the river removes some
    assert (hard.multiply(straight)).nnz == hard.nnz
    assert 0 < hard.nnz < straight.nnz


# --------------------------------------------------------------------------- vans


def two_towns() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    heavy = rng.normal(0, 200, size=(50, 2)) + ORIGIN
    light = rng.normal(0, 200, size=(50, 2)) + ORIGIN + [5000, 0]
    far_but_zero = rng.normal(0, 200, size=(30, 2)) + ORIGIN + [0, 20_000]
    weights = np.concatenate([np.full(50, 100.0), np.ones(50), np.zeros(30)])
    return np.vstack([heavy, light, far_but_zero]), weights


def test_van_candidates_weighted_and_deterministic() -> None:
    xy, weights = two_towns()
    stops = van_candidates(xy, weights, n_stops=3, seed=1)
    np.testing.assert_array_equal(stops, van_candidates(xy, weights, n_stops=3, seed=1))
    assert stops.shape == (3, 2)
    near_heavy = np.hypot(*(stops - [X0, Y0]).T) < 600
    near_light = np.hypot(*(stops - [X0 + 5000, Y0]).T) < 600
    assert near_heavy.sum() == 2 and near_light.sum() == 1
    assert near_heavy[0]  # heaviest cluster first
    # weighted centre of one stop's cluster = weighted mean of its points
    one = van_candidates(xy, weights, n_stops=1)
    positive = weights > 0
    np.testing.assert_allclose(
        one[0], np.average(xy[positive], axis=0, weights=weights[positive]), atol=1.0
    )


def test_van_candidates_mini_batches_keep_small_clusters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catchments, "_FULL_KMEANS_MAX_POINTS", 10)
    xy, weights = two_towns()
    stops = van_candidates(xy, weights, n_stops=3, seed=4)
    near_light = np.hypot(*(stops - ORIGIN - [5000, 0]).T) < 600
    near_heavy = np.hypot(*(stops - ORIGIN).T) < 600
    assert near_heavy.sum() == 2 and near_light.sum() == 1


def test_van_candidates_fewer_distinct_points() -> None:
    xy = np.array([[X0, Y0], [X0, Y0], [X0 + 100, Y0], [X0 + 200, Y0], [X0 + 300, Y0]])
    stops = van_candidates(xy, np.array([1.0, 2.0, 1.0, 1.0, 0.0]), n_stops=5)
    assert stops.shape == (3, 2)
    np.testing.assert_array_equal(stops[0], [X0, Y0])  # heaviest first
    assert van_candidates(xy, np.zeros(5), n_stops=2).shape == (0, 2)


def test_van_candidates_snap_to_network_nodes() -> None:
    network = river_city(bridge=True)
    rng = np.random.default_rng(8)
    xy = rng.uniform([0, 0], [1100, 500], size=(300, 2)) + ORIGIN
    stops = van_candidates(xy, rng.uniform(0, 10, 300), n_stops=6, network=network, crs=BNG)
    node_x, node_y = lonlat_to_metric(network.node_lon, network.node_lat, BNG)
    nearest = cdist(stops, np.column_stack([node_x, node_y])).min(axis=1)
    assert 1 <= len(stops) <= 6
    np.testing.assert_allclose(nearest, 0.0, atol=1e-6)
