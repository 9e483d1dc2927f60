"""Street networks: the walking graph and walking distances along it.

A :class:`StreetNetwork` is an undirected walking graph in plain arrays (WGS84 node
coordinates, edges as node-index pairs with lengths in metres), so it can be stored with
``np.savez`` and rebuilt without any parser. Networks are read from OSM or GraphML files
by :mod:`geo.network_readers` (:func:`read_network`, re-exported here).

Walking distances are bounded multi-source Dijkstra runs (``scipy.sparse.csgraph``).
Because every edge is at least as long as the straight line between its ends, a walk of
length ``L`` never leaves the disc of radius ``L`` around its start; each chunk of
sources therefore runs on the sub-network inside its bounding box grown by the limit,
which keeps the dense ``sources × nodes`` distance block small on a national network.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np
import scipy.sparse as sp
from pyproj import CRS
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from geo._errors import Problem
from geo.network_readers import NETWORK_SUFFIXES, is_walkable, read_network
from geo.projection import lonlat_to_metric

__all__ = [
    "EARTH_RADIUS_M",
    "NETWORK_SUFFIXES",
    "NetworkArrays",
    "StreetNetwork",
    "haversine_m",
    "is_walkable",
    "network_distances",
    "read_network",
    "snap",
    "walking_pairs",
]

#: Mean Earth radius (IUGG), metres, for haversine edge lengths.
EARTH_RADIUS_M = 6_371_008.8
#: Largest dense ``sources × nodes`` block one Dijkstra call may return, bytes.
_CHUNK_BYTES = 50_000_000


def haversine_m(
    lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray
) -> np.ndarray:
    """Great-circle distance in metres on a sphere of radius :data:`EARTH_RADIUS_M`."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dphi = phi2 - phi1
    dlmb = np.radians(np.asarray(lon2) - np.asarray(lon1))
    h = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


class NetworkArrays(TypedDict):
    """The five arrays that define a :class:`StreetNetwork` (``np.savez`` keywords)."""

    node_lon: np.ndarray
    node_lat: np.ndarray
    edge_u: np.ndarray
    edge_v: np.ndarray
    edge_length_m: np.ndarray


@dataclass(eq=False)
class StreetNetwork:
    """An undirected walking graph.

    Attributes
    ----------
    node_lon, node_lat
        Node coordinates in WGS84 degrees.
    edge_u, edge_v
        Edge end nodes (indices into the node arrays), ``edge_u < edge_v``, no
        duplicates after :func:`read_network`.
    edge_length_m
        Walking length of each edge in metres (never shorter than the great-circle
        distance between its ends; never 0).
    warnings
        Problems found while reading that did not stop the import (e.g. ways referencing
        nodes missing from the file). Not stored by :meth:`to_arrays`.
    """

    node_lon: np.ndarray
    node_lat: np.ndarray
    edge_u: np.ndarray
    edge_v: np.ndarray
    edge_length_m: np.ndarray
    warnings: list[Problem] = field(default_factory=list)
    _cache: dict[CRS, _Projected] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.node_lon = np.ascontiguousarray(self.node_lon, dtype=np.float64)
        self.node_lat = np.ascontiguousarray(self.node_lat, dtype=np.float64)
        self.edge_u = np.ascontiguousarray(self.edge_u, dtype=np.int32)
        self.edge_v = np.ascontiguousarray(self.edge_v, dtype=np.int32)
        self.edge_length_m = np.ascontiguousarray(self.edge_length_m, dtype=np.float64)
        if len(self.node_lat) != len(self.node_lon):
            raise ValueError("node_lon and node_lat differ in length")
        if not len(self.edge_u) == len(self.edge_v) == len(self.edge_length_m):
            raise ValueError("edge_u, edge_v and edge_length_m differ in length")
        ends = np.concatenate([self.edge_u, self.edge_v])
        if ends.size and (ends.min() < 0 or ends.max() >= self.n_nodes):
            raise ValueError("edge end outside the node arrays")
        if self.n_edges and not np.all(self.edge_length_m > 0):
            raise ValueError("edge lengths must be positive")

    @property
    def n_nodes(self) -> int:
        return len(self.node_lon)

    @property
    def n_edges(self) -> int:
        return len(self.edge_u)

    def bounds(self) -> tuple[float, float, float, float]:
        """``(min_lon, min_lat, max_lon, max_lat)`` of the nodes in WGS84 degrees."""
        return (
            float(self.node_lon.min()),
            float(self.node_lat.min()),
            float(self.node_lon.max()),
            float(self.node_lat.max()),
        )

    def to_arrays(self) -> NetworkArrays:
        """The five arrays that define the network, for ``np.savez``."""
        return {
            "node_lon": self.node_lon,
            "node_lat": self.node_lat,
            "edge_u": self.edge_u,
            "edge_v": self.edge_v,
            "edge_length_m": self.edge_length_m,
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> StreetNetwork:
        """Rebuild a network from :meth:`to_arrays` output (e.g. an ``np.load`` result)."""
        return cls(
            node_lon=np.asarray(arrays["node_lon"]),
            node_lat=np.asarray(arrays["node_lat"]),
            edge_u=np.asarray(arrays["edge_u"]),
            edge_v=np.asarray(arrays["edge_v"]),
            edge_length_m=np.asarray(arrays["edge_length_m"]),
        )


@dataclass(frozen=True)
class _Projected:
    """A network's nodes in one metric CRS, with the structures every query reuses."""

    xy: np.ndarray  # (n_nodes, 2) metres
    tree: cKDTree
    graph: sp.csr_array  # symmetric, weights in metres
    # Largest ratio of an edge's projected chord to its length (≈ the projection's scale
    # factor): a walk of length L stays within L × stretch of its start in this CRS.
    stretch: float


def _projected(network: StreetNetwork, crs: CRS | str) -> _Projected:
    key = CRS.from_user_input(crs)
    cached = network._cache.get(key)
    if cached is None:
        x, y = lonlat_to_metric(network.node_lon, network.node_lat, key)
        xy = np.column_stack([x, y])
        u, v, w = network.edge_u, network.edge_v, network.edge_length_m
        n = network.n_nodes
        graph = sp.csr_array(
            (np.concatenate([w, w]), (np.concatenate([u, v]), np.concatenate([v, u]))),
            shape=(n, n),
        )
        chord = np.hypot(*(xy[u] - xy[v]).T)
        stretch = float(max(1.0, np.max(chord / w, initial=1.0)))
        cached = _Projected(xy=xy, tree=cKDTree(xy), graph=graph, stretch=stretch)
        network._cache[key] = cached
    return cached


def snap(network: StreetNetwork, crs: CRS | str, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest network node of each point.

    Parameters
    ----------
    network
        The walking network.
    crs
        Metric CRS of ``xy`` (the dataset's, see :mod:`geo.projection`).
    xy
        ``(n, 2)`` point coordinates in metres.

    Returns
    -------
    node, distance_m
        Node index (int64) and straight-line snap distance in metres per point.
    """
    points = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if len(points) == 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    distance, node = _projected(network, crs).tree.query(points)
    return np.asarray(node, dtype=np.int64), np.asarray(distance, dtype=np.float64)


def _reach(
    proj: _Projected,
    source_node: np.ndarray,
    path_limit: np.ndarray,
    *,
    keep_node: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nodes within a path length of each source node.

    Returns ``(source, node, path_m)`` triplets (``source`` indexes ``source_node``) for
    every node reached with ``path_m <= path_limit[source]``, restricted to nodes where
    ``keep_node`` is true when given. Sources sharing a node are searched once.
    """
    active = np.flatnonzero(path_limit >= 0)
    if active.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    unique_node, inverse = np.unique(source_node[active], return_inverse=True)
    unique_limit = np.full(len(unique_node), -np.inf)
    np.maximum.at(unique_limit, inverse, path_limit[active])

    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for rows, sub_nodes in _chunks(proj, unique_node, unique_limit):
        graph = proj.graph if sub_nodes is None else proj.graph[np.ix_(sub_nodes, sub_nodes)]
        local = (
            unique_node[rows]
            if sub_nodes is None
            else np.searchsorted(sub_nodes, unique_node[rows])
        )
        block = dijkstra(graph, directed=True, indices=local, limit=float(unique_limit[rows].max()))
        within = block <= unique_limit[rows][:, None]
        r, c = np.nonzero(within)
        node = c if sub_nodes is None else sub_nodes[c]
        if keep_node is not None:
            kept = keep_node[node]
            r, c, node = r[kept], c[kept], node[kept]
        found.append((rows[r], node, block[r, c]))
    u_src = np.concatenate([f[0] for f in found])
    node = np.concatenate([f[1] for f in found])
    path = np.concatenate([f[2] for f in found])
    # Expand each unique start node to the sources on it, then apply each source's limit.
    entry, member = _pairs_by_group(u_src, inverse, len(unique_node))
    source = active[member]
    ok = path[entry] <= path_limit[source]
    return source[ok], node[entry][ok], path[entry][ok]


def _chunks(
    proj: _Projected, start: np.ndarray, limit: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Split start nodes into chunks whose dense Dijkstra output fits :data:`_CHUNK_BYTES`.

    Yields ``(rows, sub_nodes)``: indices into ``start`` and the sorted sub-network node
    indices to search (``None`` for the whole network).
    """
    n_nodes = len(proj.xy)
    if len(start) * n_nodes * 8 <= _CHUNK_BYTES:
        yield np.arange(len(start)), None
        return
    xy = proj.xy[start]
    side = max(float(limit.max()), 1000.0)
    cell = np.floor((xy - xy.min(axis=0)) / side).astype(np.int64)
    order = np.lexsort((cell[:, 1], cell[:, 0]))
    key = cell[order, 0] * (cell[:, 1].max() + 1) + cell[order, 1]
    bounds = np.flatnonzero(np.diff(key)) + 1
    by_x = np.argsort(proj.xy[:, 0])
    sorted_x = proj.xy[by_x, 0]
    for group in np.split(order, bounds):
        reach = float(limit[group].max()) * proj.stretch + 1e-6
        lo = xy[group].min(axis=0) - reach
        hi = xy[group].max(axis=0) + reach
        candidates = by_x[
            np.searchsorted(sorted_x, lo[0]) : np.searchsorted(sorted_x, hi[0], "right")
        ]
        cy = proj.xy[candidates, 1]
        sub_nodes = np.sort(candidates[(cy >= lo[1]) & (cy <= hi[1])])
        per_chunk = max(1, _CHUNK_BYTES // (8 * len(sub_nodes)))
        for rows in np.array_split(group, -(-len(group) // per_chunk)):
            yield rows, sub_nodes


def _pairs_by_group(
    entry_group: np.ndarray, member_group: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """All ``(entry, member)`` index pairs with ``entry_group[entry] == member_group[member]``.

    A vectorised equi-join: each entry is repeated once per member of its group.
    """
    order = np.argsort(member_group, kind="stable")
    count = np.bincount(member_group, minlength=n_groups)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    per_entry = count[entry_group]
    entry = np.repeat(np.arange(len(entry_group)), per_entry)
    first = np.repeat(np.cumsum(per_entry) - per_entry, per_entry)
    offset = np.arange(len(entry)) - first
    member = order[start[entry_group[entry]] + offset]
    return entry, member


def network_distances(
    network: StreetNetwork, crs: CRS | str, source_xy: np.ndarray, *, limit_m: float | np.ndarray
) -> sp.csr_array:
    """Walking distance from each source point to every node within a limit.

    The walk is the straight snap from the point to its nearest node plus the shortest
    path along the network; nodes farther than ``limit_m`` are absent.

    Parameters
    ----------
    network
        The walking network.
    crs
        Metric CRS of ``source_xy``.
    source_xy
        ``(n_sources, 2)`` points in metres.
    limit_m
        Largest walk in metres (scalar or one per source).

    Returns
    -------
    ``(n_sources, n_nodes)`` float64 CSR array of walking metres. A source lying exactly
    on a node stores an explicit 0 for that node: read the sparsity structure, and do not
    call ``eliminate_zeros``.
    """
    points = np.asarray(source_xy, dtype=np.float64).reshape(-1, 2)
    limit = np.broadcast_to(np.asarray(limit_m, dtype=np.float64), (len(points),))
    node, snap_m = snap(network, crs, points)
    source, reached, path = _reach(_projected(network, crs), node, limit - snap_m)
    order = np.lexsort((reached, source))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(source, minlength=len(points)))])
    data = (path + snap_m[source])[order]
    return sp.csr_array((data, reached[order], indptr), shape=(len(points), network.n_nodes))


def walking_pairs(
    network: StreetNetwork,
    crs: CRS | str,
    source_xy: np.ndarray,
    target_xy: np.ndarray,
    *,
    limit_m: float | np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (source, target) pair within walking distance, without a dense matrix.

    Walk = source snap + shortest path between the snapped nodes + target snap.

    Parameters
    ----------
    network, crs
        The walking network and the metric CRS of the points.
    source_xy, target_xy
        ``(n, 2)`` point coordinates in metres. Sources should be the smaller set (e.g.
        sites), since one search runs per distinct source node.
    limit_m
        Largest walk in metres, scalar or one per source.

    Returns
    -------
    source, target, walk_m
        Index arrays into the two point sets and the walk length in metres.
    """
    sources = np.asarray(source_xy, dtype=np.float64).reshape(-1, 2)
    targets = np.asarray(target_xy, dtype=np.float64).reshape(-1, 2)
    limit = np.broadcast_to(np.asarray(limit_m, dtype=np.float64), (len(sources),))
    if len(sources) == 0 or len(targets) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    source_node, source_snap = snap(network, crs, sources)
    target_node, target_snap = snap(network, crs, targets)
    keep = np.zeros(network.n_nodes, dtype=bool)
    keep[target_node] = True
    # The closest target leg bounds how much of each limit the path itself may use.
    path_limit = limit - source_snap - float(target_snap.min())
    source, node, path = _reach(_projected(network, crs), source_node, path_limit, keep_node=keep)
    entry, target = _pairs_by_group(node, target_node, network.n_nodes)
    walk = path[entry] + source_snap[source[entry]] + target_snap[target]
    ok = walk <= limit[source[entry]]
    return source[entry][ok], target[ok], walk[ok]
