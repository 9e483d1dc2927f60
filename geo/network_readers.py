"""Readers of walking networks: OpenStreetMap XML and PBF files, and GraphML graphs.

:func:`read_network` chooses the reader by the file's name and returns a
:class:`geo.network.StreetNetwork`. OSM readers stream the file, keeping every node's
location and the ways a pedestrian may use (:func:`is_walkable`), then cut ways into
segments; GraphML graphs (e.g. ``osmnx.save_graphml``) keep edges whose ``highway``
attribute, when present, is walkable. Problems that do not stop the import (ways
referencing nodes missing from the file, nodes without coordinates) are collected in
``network.warnings``; anything else raises one :class:`geo._errors.InputError`.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import networkx as nx
import numpy as np
import osmium
from pyproj import CRS
from pyproj.exceptions import CRSError

from geo._errors import InputError, Problem, ProblemList
from geo.projection import metric_to_lonlat

if TYPE_CHECKING:
    from geo.network import StreetNetwork

#: File name endings :func:`read_network` understands.
NETWORK_SUFFIXES = (".osm", ".osm.xml", ".osm.pbf", ".pbf", ".graphml")
#: Shortest possible edge between two distinct nodes (coincident nodes), metres.
_MIN_EDGE_M = 1e-3

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
    # Imported here, not at the top: geo.network re-exports this module's readers.
    from geo.network import StreetNetwork, haversine_m

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
