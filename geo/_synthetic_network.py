"""A walking network for the synthetic city, written as OSM XML.

A slightly rotated grid of streets (node spacing ~120 m, nodes jittered, some edges
dropped, a few diagonal footways), with every tenth line a ``primary`` road. A meandering
river crosses the city; every street crossing it is removed except a few bridges, so
places facing each other across the water can be kilometres apart on foot — the case a
network catchment must get right and a straight-line one gets wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from geo.projection import BRITISH_NATIONAL_GRID, metric_to_lonlat

SPACING_M = 120.0
PRIMARY_EVERY = 10
_DROP = 0.12  # share of residential grid edges removed
_DIAGONAL = 0.07  # share of grid cells with a diagonal footway
_ANTI_DIAGONAL = 0.04


@dataclass
class StreetNetwork:
    """Nodes (``node_id, lon, lat``), ways (``way_id, highway, bridge, node_ids``) and the
    river (EPSG:27700 LineString) the network avoids except at bridges."""

    nodes: pd.DataFrame
    ways: pd.DataFrame
    river: shapely.LineString


def make_river(
    rng: np.random.Generator, centre: tuple[float, float], radius: float
) -> shapely.LineString:
    """A meandering line through the city, passing a little off the centre."""
    heading = rng.uniform(0.0, np.pi)
    along = np.array([np.cos(heading), np.sin(heading)])
    normal = np.array([-along[1], along[0]])
    offset = rng.uniform(0.05, 0.2) * radius * rng.choice([-1.0, 1.0])
    t = np.arange(-1.6 * radius, 1.6 * radius, 50.0)
    meander = (0.05 * radius + 100.0) * np.sin(
        2 * np.pi * t / (0.6 * radius + 500.0) + rng.uniform(0, 2 * np.pi)
    )
    pts = np.asarray(centre) + (offset + meander)[:, None] * normal + t[:, None] * along
    return shapely.LineString(pts)


def build_network(
    rng: np.random.Generator, outline: shapely.Polygon, centre: tuple[float, float], radius: float
) -> StreetNetwork:
    """The street grid inside ``outline`` (see module docstring)."""
    s = SPACING_M
    cx, cy = centre
    reach = float(np.max(np.hypot(*(shapely.get_coordinates(outline) - centre).T))) + s
    m = int(np.ceil(reach / s))
    ii, jj = np.meshgrid(np.arange(-m, m + 1), np.arange(-m, m + 1), indexing="ij")
    angle = rng.uniform(-0.35, 0.35)
    u = ii * s + rng.uniform(-0.2 * s, 0.2 * s, ii.shape)
    v = jj * s + rng.uniform(-0.2 * s, 0.2 * s, ii.shape)
    x = cx + u * np.cos(angle) - v * np.sin(angle)
    y = cy + u * np.sin(angle) + v * np.cos(angle)
    shapely.prepare(outline)
    inside = shapely.contains_xy(outline, x, y)
    index = np.full(ii.shape, -1, dtype=np.int64)
    index[inside] = np.arange(int(inside.sum()))
    xy = np.column_stack([x[inside], y[inside]])

    edges = _grid_edges(rng, index, ii, jj)
    river = make_river(rng, centre, radius)
    edges = _bridge_river(edges, xy, river, outline)

    graph = sparse.coo_matrix(
        (np.ones(len(edges)), (edges["a"], edges["b"])), shape=(len(xy), len(xy))
    )
    _, comp = connected_components(graph, directed=False)
    main = np.argmax(np.bincount(comp))
    keep_node = comp == main
    edges = edges[keep_node[edges["a"].to_numpy()]].reset_index(drop=True)
    node_id = np.zeros(len(xy), dtype=np.int64)
    node_id[keep_node] = np.arange(1, int(keep_node.sum()) + 1)
    edges["a"], edges["b"] = node_id[edges["a"].to_numpy()], node_id[edges["b"].to_numpy()]

    lon, lat = metric_to_lonlat(xy[keep_node, 0], xy[keep_node, 1], BRITISH_NATIONAL_GRID)
    nodes = pd.DataFrame(
        {"node_id": node_id[keep_node], "lon": np.round(lon, 7), "lat": np.round(lat, 7)}
    )
    return StreetNetwork(nodes=nodes, ways=_ways(edges), river=river)


def _grid_edges(
    rng: np.random.Generator, index: np.ndarray, ii: np.ndarray, jj: np.ndarray
) -> pd.DataFrame:
    """Grid edges between inside nodes: ``a, b`` (node indices), ``kind`` (h, v, d),
    ``line`` (row/column number, for ways), ``pos`` (position along the line)."""
    frames = []
    for kind, a, b, line, pos in (
        ("h", index[:-1, :], index[1:, :], jj[:-1, :], ii[:-1, :]),
        ("v", index[:, :-1], index[:, 1:], ii[:, :-1], jj[:, :-1]),
    ):
        ok = (a >= 0) & (b >= 0)
        primary = line % PRIMARY_EVERY == 0
        ok &= primary | (rng.random(a.shape) >= _DROP)
        frames.append(
            pd.DataFrame(
                {
                    "a": a[ok],
                    "b": b[ok],
                    "kind": kind,
                    "line": line[ok],
                    "pos": pos[ok],
                    "primary": primary[ok],
                }
            )
        )
    draw = rng.random(ii[:-1, :-1].shape)
    for lo, hi, a, b in (
        (0.0, _DIAGONAL, index[:-1, :-1], index[1:, 1:]),
        (_DIAGONAL, _DIAGONAL + _ANTI_DIAGONAL, index[1:, :-1], index[:-1, 1:]),
    ):
        ok = (a >= 0) & (b >= 0) & (draw >= lo) & (draw < hi)
        frames.append(
            pd.DataFrame(
                {"a": a[ok], "b": b[ok], "kind": "d", "line": 0, "pos": 0, "primary": False}
            )
        )
    edges = pd.concat(frames, ignore_index=True)
    edges["bridge"] = False
    return edges


def _bridge_river(
    edges: pd.DataFrame, xy: np.ndarray, river: shapely.LineString, outline: shapely.Polygon
) -> pd.DataFrame:
    """Drop every edge crossing the river except one per ~4 km of river (at least 3),
    evenly spread along it, preferring primary roads."""
    segments = shapely.linestrings(np.stack([xy[edges["a"]], xy[edges["b"]]], axis=1))
    shapely.prepare(river)
    crossing = shapely.intersects(segments, river)
    if not crossing.any():
        return edges
    candidates = np.flatnonzero(crossing & (edges["kind"] != "d").to_numpy())
    where = shapely.line_locate_point(river, shapely.centroid(segments[candidates]))
    inside_length = float(shapely.length(shapely.intersection(river, outline)))
    n_bridges = max(3, round(inside_length / 4000.0))
    targets = where.min() + (np.arange(n_bridges) + 0.5) / n_bridges * (where.max() - where.min())
    penalty = np.where(edges["primary"].to_numpy()[candidates], 0.0, 300.0)
    bridges = {int(candidates[np.argmin(np.abs(where - t) + penalty)]) for t in targets}
    edges.loc[sorted(bridges), "bridge"] = True
    drop = crossing & ~edges["bridge"].to_numpy()
    return edges[~drop].reset_index(drop=True)


def _ways(edges: pd.DataFrame) -> pd.DataFrame:
    """Runs of consecutive grid edges along a row or column become one way; bridges and
    diagonals are ways of their own."""
    ways: list[tuple[str, bool, tuple[int, ...]]] = []
    straight = edges[(edges["kind"] != "d") & ~edges["bridge"]].sort_values(["kind", "line", "pos"])
    key = straight[["kind", "line"]].to_numpy()
    pos = straight["pos"].to_numpy()
    new_run = np.ones(len(straight), dtype=bool)
    new_run[1:] = (key[1:] != key[:-1]).any(axis=1) | (pos[1:] != pos[:-1] + 1)
    starts = np.flatnonzero(new_run)
    a, b, primary = (
        straight["a"].to_numpy(),
        straight["b"].to_numpy(),
        straight["primary"].to_numpy(),
    )
    for lo, hi in zip(starts, [*starts[1:], len(straight)], strict=True):
        ways.append(
            (
                "primary" if primary[lo] else "residential",
                False,
                (*a[lo:hi].tolist(), int(b[hi - 1])),
            )
        )
    for row in edges[edges["bridge"]].itertuples():
        ways.append(("primary" if row.primary else "residential", True, (int(row.a), int(row.b))))
    for row in edges[edges["kind"] == "d"].itertuples():
        ways.append(("footway", False, (int(row.a), int(row.b))))
    return pd.DataFrame(
        {
            "way_id": np.arange(1, len(ways) + 1, dtype=np.int64),
            "highway": [w[0] for w in ways],
            "bridge": [w[1] for w in ways],
            "node_ids": [w[2] for w in ways],
        }
    )


def write_osm(path: Path, nodes: pd.DataFrame, ways: pd.DataFrame) -> None:
    """OSM XML 0.6: ``<node id lat lon>`` and ``<way>`` with ``<nd ref>`` and tags."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<osm version="0.6" generator="outreach-planner synthetic city">',
        f'  <bounds minlat="{nodes["lat"].min():.7f}" minlon="{nodes["lon"].min():.7f}" '
        f'maxlat="{nodes["lat"].max():.7f}" maxlon="{nodes["lon"].max():.7f}"/>',
    ]
    lines += [
        f'  <node id="{i}" version="1" lat="{lat:.7f}" lon="{lon:.7f}"/>'
        for i, lon, lat in zip(nodes["node_id"], nodes["lon"], nodes["lat"], strict=True)
    ]
    for way_id, highway, bridge, node_ids in zip(
        ways["way_id"], ways["highway"], ways["bridge"], ways["node_ids"], strict=True
    ):
        lines.append(f'  <way id="{way_id}" version="1">')
        lines += [f'    <nd ref="{ref}"/>' for ref in node_ids]
        lines.append(f'    <tag k="highway" v={quoteattr(highway)}/>')
        if bridge:
            lines += ['    <tag k="bridge" v="yes"/>', '    <tag k="layer" v="1"/>']
        lines.append("  </way>")
    lines.append("</osm>")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
