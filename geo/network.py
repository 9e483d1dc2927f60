"""Street networks: reading walking graphs from OSM or GraphML files and measuring walks.

A :class:`StreetNetwork` is an undirected walking graph in plain arrays (WGS84 node
coordinates, edges as node-index pairs with lengths in metres), so it can be stored with
``np.savez`` and rebuilt without any parser. Readers keep the ways a pedestrian may use
(see :func:`is_walkable`).

Walking distances are bounded multi-source Dijkstra runs (``scipy.sparse.csgraph``).
Because every edge is at least as long as the straight line between its ends, a walk of
length ``L`` never leaves the disc of radius ``L`` around its start; each chunk of
sources therefore runs on the sub-network inside its bounding box grown by the limit,
which keeps the dense ``sources × nodes`` distance block small on a national network.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import networkx as nx
import numpy as np
import osmium
import scipy.sparse as sp
from pyproj import CRS
from pyproj.exceptions import CRSError
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from geo._errors import InputError, Problem, ProblemList
from geo.projection import lonlat_to_metric, metric_to_lonlat

#: Mean Earth radius (IUGG), metres, for haversine edge lengths.
EARTH_RADIUS_M = 6_371_008.8
#: File name endings :func:`read_network` understands.
NETWORK_SUFFIXES = (".osm", ".osm.xml", ".osm.pbf", ".pbf", ".graphml")
#: Shortest possible edge between two distinct nodes (coincident nodes), metres.
_MIN_EDGE_M = 1e-3
#: Largest dense ``sources × nodes`` block one Dijkstra call may return, bytes.
_CHUNK_BYTES = 50_000_000

# Pedestrians are barred from motorways by law (Highway Code rule 253); ways not built
# yet or gone are not paths at all. Trunk roads, guided busways and raceways are usually
# unwalkable, but an explicit foot=yes/designated/permissive re-opens them, as it does
# access=no/private (OSM wiki: Key:access, "foot overrides access").
_NEVER_WALKABLE = frozenset(
    {
        "motorway",
        "motorway_link",
        "construction",
        "proposed",
        "planned",
        "abandoned",
        "razed",
        "disused",
    }
)
_UNWALKABLE_UNLESS_FOOT = frozenset(
    {"trunk", "trunk_link", "bus_guideway", "busway", "raceway", "no"}
)
_FOOT_ALLOWED = frozenset({"yes", "designated", "permissive", "official"})
_FOOT_DENIED = frozenset({"no", "private", "use_sidepath"})
_ACCESS_DENIED = frozenset({"no", "private"})


def is_walkable(tags: Mapping[str, str]) -> bool:
    """Whether an OSM way with these tags is open to pedestrians.

    Needs a ``highway`` tag; motorways and unbuilt ways never qualify; ``foot=no``
    (or ``private``/``use_sidepath``) excludes; ``foot=yes``-like values include trunk
    roads and override ``access=no/private``, which otherwise exclude.
    """
    highway = tags.get("highway")
    if not highway or highway in _NEVER_WALKABLE:
        return False
    foot = tags.get("foot", "")
    if foot in _FOOT_DENIED:
        return False
    if foot in _FOOT_ALLOWED:
        return True
    return highway not in _UNWALKABLE_UNLESS_FOOT and tags.get("access", "") not in _ACCESS_DENIED


def haversine_m(
    lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray
) -> np.ndarray:
    """Great-circle distance in metres on a sphere of radius :data:`EARTH_RADIUS_M`."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dphi = phi2 - phi1
    dlmb = np.radians(np.asarray(lon2) - np.asarray(lon1))
    h = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


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

    def to_arrays(self) -> dict[str, np.ndarray]:
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


# --------------------------------------------------------------------------- readers


@dataclass
class _OsmWays:
    """Walkable ways as read from an OSM file, before they become a graph."""

    node_id: np.ndarray  # int64, the file's nodes (or those the ways located)
    node_lon: np.ndarray
    node_lat: np.ndarray
    way_id: np.ndarray  # int64, one per walkable way
    way_size: np.ndarray  # number of node references per way
    refs: np.ndarray  # int64, the ways' node references, way after way


def read_network(source: str | Path | bytes, *, filename: str) -> StreetNetwork:
    """Read a walking network from an OSM XML, OSM PBF or GraphML file.

    Parameters
    ----------
    source
        The file's path or its bytes.
    filename
        The name the user knows the file by; its ending chooses the reader
        (``.osm``/``.osm.xml``, ``.osm.pbf``/``.pbf``, ``.graphml``) and it names the file
        in every problem.

    Returns
    -------
    The network of walkable ways (:func:`is_walkable`; for GraphML, edges whose
    ``highway`` attribute, when present, is walkable). Edge lengths are great-circle
    lengths of each segment (GraphML: the ``length`` attribute, but never shorter than
    the great-circle distance). Ways that reference nodes missing from the file keep
    their other segments and are reported in ``network.warnings``.

    Raises
    ------
    InputError
        Unknown file type, a file that cannot be read or parsed, or no walkable ways.
    """
    lower = filename.lower()
    problems = ProblemList()
    if lower.endswith((".osm.pbf", ".pbf")):
        network = _from_osm(_parse_pbf(source, filename), filename, problems)
    elif lower.endswith((".osm", ".osm.xml")):
        with _open(source, filename) as stream:
            ways = _parse_osm_xml(stream, filename)
        network = _from_osm(ways, filename, problems)
    elif lower.endswith(".graphml"):
        with _open(source, filename) as stream:
            network = _parse_graphml(stream, filename, problems)
    else:
        raise InputError(
            [
                Problem(
                    filename,
                    "wrong file type for a street network",
                    "upload OpenStreetMap data (.osm or .osm.pbf) or a GraphML file "
                    "(.graphml, e.g. from osmnx.save_graphml)",
                    value=Path(lower).suffix or lower,
                )
            ],
            title="The street network cannot be read",
        )
    network.warnings = problems.result()
    return network


def _open(source: str | Path | bytes, filename: str) -> BinaryIO:
    if isinstance(source, bytes):
        return io.BytesIO(source)
    try:
        return open(Path(source), "rb")  # closed by the caller's `with`
    except OSError as exc:
        raise _unreadable(filename, str(exc)) from exc


def _unreadable(filename: str, detail: str) -> InputError:
    return InputError(
        [
            Problem(
                filename,
                f"the file cannot be read as a street network ({detail})",
                "check that the file is complete and of the type its name says",
            )
        ],
        title="The street network cannot be read",
    )


def _parse_osm_xml(stream: BinaryIO, filename: str) -> _OsmWays:
    """Stream OSM XML, keeping every node's location and the walkable ways."""
    node_id: list[int] = []
    node_lon: list[float] = []
    node_lat: list[float] = []
    way_id: list[int] = []
    way_size: list[int] = []
    refs: list[int] = []
    root: ET.Element | None = None
    try:
        for event, elem in ET.iterparse(stream, events=("start", "end")):
            if root is None:
                root = elem
                if elem.tag != "osm":
                    raise _unreadable(filename, f"root element <{elem.tag}>, not <osm>")
                continue
            if event != "end" or elem.tag not in ("node", "way", "relation"):
                continue
            # JOSM files keep deleted objects with action="delete"
            if elem.get("action") != "delete":
                if elem.tag == "node":
                    node_id.append(int(elem.attrib["id"]))
                    node_lon.append(float(elem.attrib["lon"]))
                    node_lat.append(float(elem.attrib["lat"]))
                elif elem.tag == "way":
                    tags = {t.attrib["k"]: t.attrib["v"] for t in elem.iter("tag")}
                    if is_walkable(tags):
                        nds = [int(nd.attrib["ref"]) for nd in elem.iter("nd")]
                        way_id.append(int(elem.attrib["id"]))
                        way_size.append(len(nds))
                        refs.extend(nds)
            root.clear()  # streaming: drop what has been read
    except ET.ParseError as exc:
        raise _unreadable(filename, f"not valid XML: {exc}") from exc
    except (KeyError, ValueError) as exc:
        raise _unreadable(filename, f"an OSM element lacks or has a bad attribute: {exc}") from exc
    if root is None:
        raise _unreadable(filename, "the file is empty")
    return _OsmWays(
        np.asarray(node_id, np.int64),
        np.asarray(node_lon, np.float64),
        np.asarray(node_lat, np.float64),
        np.asarray(way_id, np.int64),
        np.asarray(way_size, np.int64),
        np.asarray(refs, np.int64),
    )


def _parse_pbf(source: str | Path | bytes, filename: str) -> _OsmWays:
    """Read walkable ways with node locations from an OSM PBF file (pyosmium)."""
    data = osmium.io.FileBuffer(source, "pbf") if isinstance(source, bytes) else str(source)
    processor = (
        osmium.FileProcessor(data)
        .with_locations()
        .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
        .with_filter(osmium.filter.KeyFilter("highway"))
    )
    way_id: list[int] = []
    way_size: list[int] = []
    refs: list[int] = []
    lon: list[float] = []
    lat: list[float] = []
    try:
        for way in processor:
            if not isinstance(way, osmium.osm.Way) or not is_walkable(
                {tag.k: tag.v for tag in way.tags}
            ):
                continue
            way_id.append(way.id)
            way_size.append(len(way.nodes))
            for nd in way.nodes:
                refs.append(nd.ref)
                located = nd.location.valid()
                lon.append(nd.location.lon if located else np.nan)
                lat.append(nd.location.lat if located else np.nan)
    except RuntimeError as exc:  # libosmium reports every format error this way
        raise _unreadable(filename, str(exc)) from exc
    ref_array = np.asarray(refs, np.int64)
    lon_array = np.asarray(lon, np.float64)
    has_location = ~np.isnan(lon_array)
    node_id, first = np.unique(ref_array[has_location], return_index=True)
    return _OsmWays(
        node_id,
        lon_array[has_location][first],
        np.asarray(lat, np.float64)[has_location][first],
        np.asarray(way_id, np.int64),
        np.asarray(way_size, np.int64),
        ref_array,
    )


def _from_osm(ways: _OsmWays, filename: str, problems: ProblemList) -> StreetNetwork:
    """Join way references to node locations and cut ways into segments."""
    order = np.argsort(ways.node_id, kind="stable")
    sorted_id = ways.node_id[order]
    n_refs = len(ways.refs)
    if len(sorted_id):
        pos = np.minimum(np.searchsorted(sorted_id, ways.refs), len(sorted_id) - 1)
        found = sorted_id[pos] == ways.refs
        node = order[pos]
    else:
        found = np.zeros(n_refs, dtype=bool)
        node = np.zeros(n_refs, dtype=np.int64)
    way_of_ref = np.repeat(np.arange(len(ways.way_id)), ways.way_size)
    # refs are stored way after way, so the missing ones come grouped by way
    missing_way, missing_ref = way_of_ref[~found], ways.refs[~found]
    cuts = np.flatnonzero(np.diff(missing_way)) + 1
    firsts = missing_way[np.r_[0, cuts]] if missing_way.size else missing_way
    for way, missing in zip(firsts, np.split(missing_ref, cuts), strict=False):
        shown = ", ".join(str(m) for m in missing[:5]) + (" …" if len(missing) > 5 else "")
        problems.add(
            Problem(
                filename,
                "a way references nodes that are not in the file; its segments touching "
                "them were left out",
                "export complete ways (e.g. osmium extract --strategy complete_ways), or "
                "ignore this if the way leaves the area of the extract",
                value=f"way {ways.way_id[way]}: nodes {shown}",
            )
        )
    segment = (way_of_ref[:-1] == way_of_ref[1:]) & found[:-1] & found[1:]
    return _assemble(
        ways.node_lon, ways.node_lat, node[:-1][segment], node[1:][segment], None, filename
    )


def _parse_graphml(stream: BinaryIO, filename: str, problems: ProblemList) -> StreetNetwork:
    """Read a GraphML graph with x/y (osmnx) or lon/lat node attributes."""
    try:
        graph = nx.read_graphml(stream)
    except (ET.ParseError, nx.NetworkXError, KeyError, ValueError, TypeError) as exc:
        raise _unreadable(filename, f"not valid GraphML: {exc}") from exc
    index = {name: i for i, name in enumerate(graph.nodes)}
    attrs = list(graph.nodes.values())
    first = attrs[0] if attrs else {}
    x_key, y_key = ("x", "y") if "x" in first else ("lon", "lat")
    x = np.array([_as_float(a.get(x_key)) for a in attrs], dtype=np.float64)
    y = np.array([_as_float(a.get(y_key)) for a in attrs], dtype=np.float64)
    crs_text = graph.graph.get("crs")
    try:
        crs = CRS.from_user_input(crs_text) if crs_text else None
    except CRSError as exc:
        raise _unreadable(filename, f"the graph's 'crs' attribute is not a CRS: {exc}") from exc
    if crs is not None and not crs.is_geographic:
        x, y = metric_to_lonlat(x, y, crs)
    valid = np.isfinite(x) & np.isfinite(y)
    if np.any(valid & ((np.abs(x) > 180) | (np.abs(y) > 90))):
        raise _unreadable(
            filename,
            "node coordinates are not longitude/latitude and the graph has no projected "
            "'crs' attribute",
        )
    for name in np.asarray(list(index), dtype=object)[~valid]:
        problems.add(
            Problem(
                filename,
                f"a node has no usable '{x_key}'/'{y_key}' coordinates; its edges were left out",
                "give every node coordinates (osmnx graphs have x and y)",
                value=str(name),
            )
        )
    u: list[int] = []
    v: list[int] = []
    length: list[float] = []
    for a, b, edge in graph.edges(data=True):
        if "highway" in edge and not _graphml_walkable(edge):
            continue
        u.append(index[a])
        v.append(index[b])
        length.append(_as_float(edge.get("length")))
    u_array, v_array = np.asarray(u, np.int64), np.asarray(v, np.int64)
    ok = valid[u_array] & valid[v_array] if len(u) else np.zeros(0, dtype=bool)
    return _assemble(x, y, u_array[ok], v_array[ok], np.asarray(length, np.float64)[ok], filename)


def _graphml_walkable(edge: Mapping[str, Any]) -> bool:
    # osmnx writes a simplified edge's merged tags as a list literal: "['footway', 'steps']"
    values = [h.strip(" '\"") for h in str(edge["highway"]).strip("[]").split(",")]
    tags = {k: str(edge[k]) for k in ("foot", "access") if k in edge}
    return any(is_walkable({**tags, "highway": h}) for h in values)


def _as_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def _assemble(
    lon: np.ndarray,
    lat: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    given_length_m: np.ndarray | None,
    filename: str,
) -> StreetNetwork:
    """Build the canonical network: no self-loops, ``u < v``, one (shortest) edge per
    node pair, only nodes that edges use."""
    keep = u != v
    lo, hi = np.minimum(u, v)[keep], np.maximum(u, v)[keep]
    if lo.size == 0:
        raise InputError(
            [
                Problem(
                    filename,
                    "the file has no walkable ways (footways, paths, streets)",
                    "export an area that contains streets; motorways, trunk roads and "
                    "ways tagged foot=no or access=private are not walkable",
                )
            ],
            title="The street network cannot be used",
        )
    length = haversine_m(lon[lo], lat[lo], lon[hi], lat[hi])
    if given_length_m is not None:
        # A walk is never shorter than the straight line; fmax keeps it where no length is given.
        length = np.fmax(given_length_m[keep], length)
    length = np.maximum(length, _MIN_EDGE_M)
    order = np.lexsort((length, hi, lo))
    lo, hi, length = lo[order], hi[order], length[order]
    first = np.ones(len(lo), dtype=bool)
    first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    lo, hi, length = lo[first], hi[first], length[first]
    used, inverse = np.unique(np.concatenate([lo, hi]), return_inverse=True)
    return StreetNetwork(
        node_lon=lon[used],
        node_lat=lat[used],
        edge_u=inverse[: len(lo)],
        edge_v=inverse[len(lo) :],
        edge_length_m=length,
    )
