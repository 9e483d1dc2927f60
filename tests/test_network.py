"""Street network readers and walking distances (geo.network)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import networkx as nx
import numpy as np
import osmium
import pytest

import geo.network as network_module
from geo._errors import InputError
from geo.network import (
    StreetNetwork,
    is_walkable,
    network_distances,
    read_network,
    snap,
    walking_pairs,
)
from geo.projection import lonlat_to_metric, metric_to_lonlat

BNG = "EPSG:27700"
R_EARTH = 6_371_008.8

# Seven nodes near Westminster (lon, lat).
NODES = {
    1: (-0.1300, 51.5000),
    2: (-0.1290, 51.5000),
    3: (-0.1290, 51.5010),
    4: (-0.1280, 51.5010),
    5: (-0.1280, 51.5020),
    6: (-0.1290, 51.5020),
    7: (-0.1300, 51.5030),
}
# (way id, node refs, tags); node 99 does not exist.
WAYS = [
    (100, [1, 2, 3], {"highway": "residential", "name": "A Street"}),
    (101, [3, 4], {"highway": "motorway"}),
    (102, [4, 5], {"highway": "footway", "foot": "no"}),
    (103, [1, 5], {"building": "yes"}),
    (104, [3, 6, 99], {"highway": "footway"}),
    (105, [6, 7], {"highway": "trunk", "foot": "yes"}),
    (106, [5, 7], {"highway": "service", "access": "private"}),
]
# What a walker may use: 1-2, 2-3, 3-6 (104 minus its missing node), 6-7.
EXPECTED_EDGES = {(1, 2), (2, 3), (3, 6), (6, 7)}


def haversine(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Independent great-circle distance (metres) with math, for expected lengths."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * R_EARTH * math.asin(math.sqrt(h))


def edge_set(network: StreetNetwork) -> dict[frozenset[tuple[float, float]], float]:
    """Edges keyed by their end coordinates (rounded), valued by length."""
    out = {}
    for u, v, length in zip(network.edge_u, network.edge_v, network.edge_length_m, strict=True):
        a = (round(network.node_lon[u], 7), round(network.node_lat[u], 7))
        b = (round(network.node_lon[v], 7), round(network.node_lat[v], 7))
        out[frozenset([a, b])] = float(length)
    return out


def expected_edge_set() -> dict[frozenset[tuple[float, float]], float]:
    return {
        frozenset([NODES[a], NODES[b]]): haversine(NODES[a], NODES[b]) for a, b in EXPECTED_EDGES
    }


def osm_xml() -> bytes:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="test">']
    lines += [f'  <node id="{i}" lat="{lat}" lon="{lon}"/>' for i, (lon, lat) in NODES.items()]
    for way_id, refs, tags in WAYS:
        lines.append(f'  <way id="{way_id}">')
        lines += [f'    <nd ref="{r}"/>' for r in refs]
        lines += [f'    <tag k="{k}" v="{v}"/>' for k, v in tags.items()]
        lines.append("  </way>")
    lines.append("</osm>")
    return "\n".join(lines).encode()


def assert_expected(network: StreetNetwork, filename: str) -> None:
    assert network.n_nodes == 5
    assert network.n_edges == 4
    got, want = edge_set(network), expected_edge_set()
    assert set(got) == set(want)
    for key, length in want.items():
        assert got[key] == pytest.approx(length, rel=1e-9)
    assert len(network.warnings) == 1
    warning = network.warnings[0]
    assert warning.file == filename
    assert "way 104" in (warning.value or "") and "99" in (warning.value or "")


def test_walkable_rules() -> None:
    assert is_walkable({"highway": "footway"})
    assert is_walkable({"highway": "primary", "access": "private", "foot": "yes"})
    assert is_walkable({"highway": "trunk", "foot": "designated"})
    assert not is_walkable({"highway": "trunk"})
    assert not is_walkable({"highway": "motorway", "foot": "yes"})
    assert not is_walkable({"highway": "residential", "foot": "no"})
    assert not is_walkable({"highway": "service", "access": "no"})
    assert not is_walkable({"building": "yes"})


def test_read_osm_xml_from_bytes_and_path(tmp_path: Path) -> None:
    assert_expected(read_network(osm_xml(), filename="city.osm"), "city.osm")
    path = tmp_path / "city.osm"
    path.write_bytes(osm_xml())
    assert_expected(read_network(path, filename="city.osm"), "city.osm")


def test_read_osm_pbf_written_with_pyosmium(tmp_path: Path) -> None:
    path = tmp_path / "city.osm.pbf"
    writer = osmium.SimpleWriter(str(path))
    for node_id, (lon, lat) in NODES.items():
        writer.add_node(osmium.osm.mutable.Node(id=node_id, location=(lon, lat)))
    for way_id, refs, tags in WAYS:
        writer.add_way(osmium.osm.mutable.Way(id=way_id, nodes=refs, tags=tags))
    writer.close()
    assert_expected(read_network(path.read_bytes(), filename="city.osm.pbf"), "city.osm.pbf")
    assert_expected(read_network(str(path), filename="city.osm.pbf"), "city.osm.pbf")


def test_read_graphml_osmnx_style(tmp_path: Path) -> None:
    graph = nx.MultiDiGraph(crs="epsg:4326")
    for node_id in (1, 2, 3, 6):
        lon, lat = NODES[node_id]
        graph.add_node(node_id, x=lon, y=lat)
    graph.add_node(4, x=NODES[4][0], y=NODES[4][1])
    # both directions of a two-way street, as osmnx stores them
    graph.add_edge(1, 2, length=150.0, highway="residential")
    graph.add_edge(2, 1, length=150.0, highway="residential")
    graph.add_edge(2, 3)  # no length: great-circle length
    graph.add_edge(3, 6, length=1.0, highway="footway")  # too short: raised to the straight line
    graph.add_edge(3, 4, length=80.0, highway="motorway")  # not walkable
    path = tmp_path / "city.graphml"
    nx.write_graphml(graph, path)
    network = read_network(path, filename="city.graphml")
    got = edge_set(network)
    assert network.n_nodes == 4
    assert got == pytest.approx(
        {
            frozenset([NODES[1], NODES[2]]): 150.0,
            frozenset([NODES[2], NODES[3]]): haversine(NODES[2], NODES[3]),
            frozenset([NODES[3], NODES[6]]): haversine(NODES[3], NODES[6]),
        },
        rel=1e-9,
    )
    assert network.warnings == []


def test_read_graphml_lon_lat_and_projected(tmp_path: Path) -> None:
    graph = nx.Graph()
    for node_id in (1, 2):
        graph.add_node(node_id, lon=NODES[node_id][0], lat=NODES[node_id][1])
    graph.add_edge(1, 2)
    buffer = io.BytesIO()
    nx.write_graphml(graph, buffer)
    network = read_network(buffer.getvalue(), filename="walk.graphml")
    assert network.edge_length_m[0] == pytest.approx(haversine(NODES[1], NODES[2]), rel=1e-9)

    # an osmnx projected graph: x/y in British National Grid metres
    x, y = lonlat_to_metric(
        np.array([NODES[1][0], NODES[2][0]]), np.array([NODES[1][1], NODES[2][1]]), BNG
    )
    projected = nx.MultiDiGraph(crs="EPSG:27700")
    projected.add_node("a", x=float(x[0]), y=float(y[0]))
    projected.add_node("b", x=float(x[1]), y=float(y[1]))
    projected.add_edge("a", "b", length=70.0)
    buffer = io.BytesIO()
    nx.write_graphml(projected, buffer)
    network = read_network(buffer.getvalue(), filename="walk.graphml")
    assert sorted(network.node_lon) == pytest.approx(sorted([NODES[1][0], NODES[2][0]]), abs=1e-7)
    assert network.edge_length_m[0] == pytest.approx(70.0)


@pytest.mark.parametrize(
    ("data", "filename", "words"),
    [
        (osm_xml(), "network.shp", "wrong file type"),
        (b"\x00\x01 not xml at all", "network.osm", "cannot be read"),
        (b"<html><body>oops</body></html>", "network.osm", "<html>"),
        (b"garbage" * 20, "network.osm.pbf", "cannot be read"),
        (b"garbage <<<", "network.graphml", "cannot be read"),
    ],
)
def test_bad_files_name_the_file(data: bytes, filename: str, words: str) -> None:
    with pytest.raises(InputError) as caught:
        read_network(data, filename=filename)
    problems = caught.value.problems
    assert len(problems) == 1
    assert problems[0].file == filename
    assert words in problems[0].problem + (problems[0].value or "")


def test_no_walkable_ways() -> None:
    data = (
        b'<osm version="0.6"><node id="1" lat="51.5" lon="-0.1"/><node id="2" lat="51.5" '
        b'lon="-0.09"/><way id="9"><nd ref="1"/><nd ref="2"/><tag k="highway" v="motorway"/>'
        b"</way></osm>"
    )
    with pytest.raises(InputError) as caught:
        read_network(data, filename="roads.osm")
    assert caught.value.problems[0].file == "roads.osm"
    assert "no walkable ways" in caught.value.problems[0].problem


def test_each_incomplete_way_is_listed() -> None:
    data = (
        b'<osm version="0.6"><node id="1" lat="51.5" lon="-0.1"/><node id="2" lat="51.5" '
        b'lon="-0.099"/><way id="7"><nd ref="50"/><nd ref="1"/><nd ref="2"/><nd ref="51"/>'
        b'<tag k="highway" v="path"/></way><way id="8"><nd ref="2"/><nd ref="60"/>'
        b'<tag k="highway" v="steps"/></way></osm>'
    )
    network = read_network(data, filename="edge.osm")
    assert network.n_edges == 1
    assert [w.value for w in network.warnings] == ["way 7: nodes 50, 51", "way 8: nodes 60"]


def test_graphml_with_a_bad_crs() -> None:
    graph = nx.Graph(crs="not a crs at all")
    graph.add_node(1, x=1.0, y=2.0)
    graph.add_node(2, x=3.0, y=4.0)
    graph.add_edge(1, 2)
    buffer = io.BytesIO()
    nx.write_graphml(graph, buffer)
    with pytest.raises(InputError) as caught:
        read_network(buffer.getvalue(), filename="g.graphml")
    assert caught.value.problems[0].file == "g.graphml"


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        read_network(tmp_path / "absent.osm", filename="absent.osm")


def test_arrays_round_trip() -> None:
    network = read_network(osm_xml(), filename="city.osm")
    buffer = io.BytesIO()
    np.savez(buffer, **network.to_arrays())
    buffer.seek(0)
    with np.load(buffer) as stored:
        again = StreetNetwork.from_arrays(stored)
    for name, array in network.to_arrays().items():
        np.testing.assert_array_equal(getattr(again, name), array)
        assert getattr(again, name).dtype == array.dtype
    assert again.bounds() == (-0.13, 51.5, -0.129, 51.503)


# --------------------------------------------------------------------------- distances


def grid_network(
    n: int, spacing: float = 100.0, origin: tuple[float, float] = (530_000.0, 180_000.0)
) -> tuple[StreetNetwork, np.ndarray]:
    """An n × n street grid in BNG with edges exactly ``spacing`` long; returns the
    network and its node coordinates in metres (node k = (k % n, k // n))."""
    k = np.arange(n * n)
    xy = np.column_stack([origin[0] + (k % n) * spacing, origin[1] + (k // n) * spacing])
    right = k[(k % n) < n - 1]
    up = k[k < n * (n - 1)]
    u = np.concatenate([right, up])
    v = np.concatenate([right + 1, up + n])
    lon, lat = metric_to_lonlat(xy[:, 0], xy[:, 1], BNG)
    network = StreetNetwork(lon, lat, u, v, np.full(len(u), spacing))
    return network, xy


def test_network_distances_on_a_grid() -> None:
    network, xy = grid_network(6)
    # a source on node 0 and one 30 m east of node 0 (snaps to node 0)
    sources = np.array([xy[0], xy[0] + [30.0, 0.0]])
    distances = network_distances(network, BNG, sources, limit_m=250.0)
    col, row = np.arange(36) % 6, np.arange(36) // 6
    manhattan = 100.0 * (col + row)
    expected_first = np.where(manhattan <= 250.0, manhattan, np.inf)
    expected_second = np.where(manhattan + 30.0 <= 250.0, manhattan + 30.0, np.inf)
    for r, expected in enumerate([expected_first, expected_second]):
        got = np.full(36, np.inf)
        row_slice = slice(distances.indptr[r], distances.indptr[r + 1])
        got[distances.indices[row_slice]] = distances.data[row_slice]
        # BNG -> WGS84 -> BNG (a Helmert datum shift each way) is exact to ~1 mm
        np.testing.assert_allclose(got, expected, atol=0.01)


def test_chunked_search_equals_whole_network(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    network, xy = grid_network(25)
    keep = rng.uniform(size=network.n_edges) > 0.2  # knock out streets
    # some edges claim to be shorter than their chord: the sub-network must grow to match
    length = network.edge_length_m[keep] * rng.choice([0.8, 1.0, 1.3], size=keep.sum())
    network = StreetNetwork(
        network.node_lon, network.node_lat, network.edge_u[keep], network.edge_v[keep], length
    )
    sources = xy.min(axis=0) + rng.uniform(0, 2400, size=(60, 2))
    whole = network_distances(network, BNG, sources, limit_m=450.0)
    monkeypatch.setattr(network_module, "_CHUNK_BYTES", 8 * 40)
    chunked = network_distances(network, BNG, sources, limit_m=450.0)
    assert whole.nnz > 500
    np.testing.assert_array_equal(whole.indptr, chunked.indptr)
    np.testing.assert_array_equal(whole.indices, chunked.indices)
    np.testing.assert_allclose(whole.data, chunked.data)

    # and against networkx on the same graph
    graph = nx.Graph()
    graph.add_weighted_edges_from(
        zip(
            network.edge_u.tolist(),
            network.edge_v.tolist(),
            network.edge_length_m.tolist(),
            strict=True,
        )
    )
    node, snap_m = snap(network, BNG, sources)
    for s in range(0, 60, 7):
        paths = nx.single_source_dijkstra_path_length(graph, int(node[s]), cutoff=450.0)
        expected = {n: d + snap_m[s] for n, d in paths.items() if d + snap_m[s] <= 450.0}
        row_slice = slice(whole.indptr[s], whole.indptr[s + 1])
        got = dict(
            zip(whole.indices[row_slice].tolist(), whole.data[row_slice].tolist(), strict=True)
        )
        assert got.keys() == expected.keys()
        assert list(got.values()) == pytest.approx([expected[n] for n in got])


def test_snap_nearest_node() -> None:
    network, xy = grid_network(3)
    node, distance = snap(network, BNG, np.array([xy[4] + [10.0, -20.0], xy[8] + [60.0, 80.0]]))
    np.testing.assert_array_equal(node, [4, 8])
    np.testing.assert_allclose(distance, [math.hypot(10, 20), 100.0], atol=0.01)


def test_walking_pairs_match_brute_force() -> None:
    rng = np.random.default_rng(9)
    network, xy = grid_network(8)
    sites = xy.min(axis=0) + rng.uniform(0, 700, size=(12, 2))
    homes = xy.min(axis=0) + rng.uniform(0, 700, size=(40, 2))
    limit = rng.choice([300.0, 500.0], size=12)
    site, home, walk = walking_pairs(network, BNG, sites, homes, limit_m=limit)
    graph = nx.Graph()
    graph.add_weighted_edges_from(
        zip(
            network.edge_u.tolist(),
            network.edge_v.tolist(),
            network.edge_length_m.tolist(),
            strict=True,
        )
    )
    site_node, site_snap = snap(network, BNG, sites)
    home_node, home_snap = snap(network, BNG, homes)
    expected = {}
    for i in range(12):
        paths = nx.single_source_dijkstra_path_length(graph, int(site_node[i]))
        for j in range(40):
            w = site_snap[i] + paths[int(home_node[j])] + home_snap[j]
            if w <= limit[i]:
                expected[(i, j)] = w
    got = dict(zip(zip(site.tolist(), home.tolist(), strict=True), walk.tolist(), strict=True))
    assert len(expected) > 20
    assert got.keys() == expected.keys()
    assert [got[k] for k in expected] == pytest.approx(list(expected.values()))
