"""Output-area-like polygons for the synthetic city, and their LSOA/MSOA parents.

Steps: an irregular city outline; seed points drawn from a population-density surface
(dense centre, satellite towns, sparse fringe); one Lloyd iteration so no two seeds sit
too close (which would make slivers); a Voronoi tessellation clipped to the outline;
then nested groups — about 5 OAs per LSOA, 5 LSOAs per MSOA, ~12 MSOAs per named
district — built by cutting a Hilbert-curve ordering into runs and repairing any run
that is not contiguous. Codes use ONS-like prefixes from unused ranges (``E009…``).
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from geo._synthetic_fields import Centres

#: Radius (m) of a city of 2,000 OAs; larger runs scale it with sqrt(n_areas).
BASE_RADIUS_M = 8000.0
OAS_PER_LSOA = 5
LSOAS_PER_MSOA = 5
MSOAS_PER_DISTRICT = 12
#: Area of the densest OAs, at the main centre (real inner-city OAs: ~0.005–0.02 km²).
PEAK_OA_AREA_M2 = 12_000.0

_PREFIXES = (
    "North South East West Upper Lower Old New Kings Queens Ash Oak Elm Birch Hazel Thorn "
    "Brook Mill Church Castle Bridge Stone Green Red White Black High Fair Long Wood Moor "
    "Marsh Hay Lark Wild"
).split()
_SUFFIXES = "field gate bury ton ley wood ham worth by stead cote well ford hurst mere thorpe wick dale brook hill".split()


@dataclass
class Tessellation:
    """OA polygons in code order, with their hierarchy and adjacency."""

    cells: np.ndarray  # shapely Polygons, EPSG:27700
    seed_xy: np.ndarray  # (n, 2) generator point of each cell (inside it)
    centroid_xy: np.ndarray  # (n, 2)
    area_code: np.ndarray
    area_name: np.ndarray
    lsoa_code: np.ndarray  # per OA
    msoa_code: np.ndarray  # per OA
    district: np.ndarray  # per OA, a place name
    adjacency: sparse.csr_matrix  # OA × OA, queen contiguity, symmetric, 0/1
    outline: shapely.Polygon
    centres: Centres
    radius: float


def city_radius(n_areas: int) -> float:
    """Outline radius in metres: ~8 km for 2,000 OAs (≈0.1 km² per OA on average)."""
    return BASE_RADIUS_M * float(np.sqrt(n_areas / 2000.0))


def make_outline(
    rng: np.random.Generator, centre: tuple[float, float], radius: float
) -> shapely.Polygon:
    """An irregular, star-shaped blob: a circle perturbed by a few low harmonics."""
    theta = np.linspace(0.0, 2.0 * np.pi, 721)[:-1]
    r = np.ones_like(theta)
    for k in range(2, 6):
        r += (
            rng.uniform(0.04, 0.13) / np.sqrt(k - 1) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        )
    r = radius * np.clip(r, 0.6, None)
    return shapely.Polygon(
        np.column_stack([centre[0] + r * np.cos(theta), centre[1] + r * np.sin(theta)])
    )


def make_centres(
    rng: np.random.Generator,
    outline: shapely.Polygon,
    centre: tuple[float, float],
    radius: float,
    n_areas: int,
) -> Centres:
    """The main centre plus one satellite town per ~2,500 OAs, kept apart from each other."""
    xs, ys = [centre[0]], [centre[1]]
    scales, weights = [min(0.25 * radius, 3000.0)], [1.0]
    n_towns = round(n_areas / 2500)
    attempts = 0
    while len(xs) < n_towns + 1 and attempts < 50 * (n_towns + 1):
        attempts += 1
        r = radius * np.sqrt(rng.uniform(0.12, 0.8))
        a = rng.uniform(0, 2 * np.pi)
        x, y = centre[0] + r * np.cos(a), centre[1] + r * np.sin(a)
        if not shapely.contains_xy(outline, x, y):
            continue
        if np.min(np.hypot(np.array(xs) - x, np.array(ys) - y)) < 6000.0:
            continue
        xs.append(x)
        ys.append(y)
        scales.append(rng.uniform(700.0, 1300.0))
        weights.append(rng.uniform(0.25, 0.6))
    return Centres(np.array(xs), np.array(ys), np.array(scales), np.array(weights))


def sample_seeds(
    rng: np.random.Generator, outline: shapely.Polygon, centres: Centres, n: int
) -> np.ndarray:
    """``n`` points inside ``outline`` drawn from the density of :meth:`Centres.density`.

    The density is a mixture (a uniform rural floor plus one radial exponential kernel
    per centre, whose radius is Gamma(2, scale) distributed in 2-D), so it is sampled
    exactly, component by component, rather than by rejection against its peak.
    """
    minx, miny, maxx, maxy = outline.bounds
    box_area = (maxx - minx) * (maxy - miny)
    centre_mass = centres.weight * 2 * np.pi * centres.scale**2
    # The densest OAs (at the main centre, relative density 1) should cover about
    # PEAK_OA_AREA: that fixes the total mass, and the rural floor makes up the rest.
    floor = max(0.012, (PEAK_OA_AREA_M2 * n - centre_mass.sum()) / box_area)
    mass = np.concatenate([[floor * box_area], centre_mass])
    shapely.prepare(outline)
    chunks: list[np.ndarray] = []
    have = 0
    while have < n:
        counts = rng.multinomial(int(1.3 * n) + 100, mass / mass.sum())
        pts = [
            np.column_stack(
                [rng.uniform(minx, maxx, counts[0]), rng.uniform(miny, maxy, counts[0])]
            )
        ]
        for k in range(len(centres.x)):
            r = rng.gamma(2.0, centres.scale[k], counts[k + 1])
            a = rng.uniform(0, 2 * np.pi, counts[k + 1])
            pts.append(
                np.column_stack([centres.x[k] + r * np.cos(a), centres.y[k] + r * np.sin(a)])
            )
        batch = np.concatenate(pts)
        batch = batch[rng.permutation(len(batch))]
        batch = batch[shapely.contains_xy(outline, batch[:, 0], batch[:, 1])]
        chunks.append(batch)
        have += len(batch)
    return np.concatenate(chunks)[:n]


def voronoi_cells(seeds: np.ndarray, outline: shapely.Polygon) -> np.ndarray:
    """Voronoi cells of ``seeds`` (in seed order) clipped to ``outline``; every cell a
    single Polygon (fragments cut off by a bend of the outline join a neighbour)."""
    minx, miny, maxx, maxy = outline.bounds
    pad = max(maxx - minx, maxy - miny)
    frame = shapely.box(minx - pad, miny - pad, maxx + pad, maxy + pad)
    diagram = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=frame, ordered=True)
    cells = shapely.get_parts(diagram)
    if len(cells) != len(seeds):
        raise RuntimeError("duplicate seed points in the synthetic tessellation")
    shapely.prepare(outline)
    inside = shapely.within(cells, outline)
    cells = cells.copy()
    cells[~inside] = shapely.intersection(cells[~inside], outline)
    return _rejoin_fragments(cells, seeds)


def _rejoin_fragments(cells: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    multi = np.flatnonzero(shapely.get_type_id(cells) != shapely.GeometryType.POLYGON)
    orphans: list[shapely.Polygon] = []
    for i in multi:
        parts = [
            p for p in shapely.get_parts(cells[i]) if isinstance(p, shapely.Polygon) and p.area > 0
        ]
        home = [p for p in parts if p.contains(shapely.Point(seeds[i]))]
        keep = home[0] if home else max(parts, key=lambda p: p.area)
        cells[i] = keep
        orphans.extend(p for p in parts if p is not keep)
    if orphans:
        tree = shapely.STRtree(cells)
        for piece in orphans:
            near = tree.query(piece, predicate="intersects")
            shared = shapely.length(shapely.intersection(piece.boundary, cells[near]))
            j = near[int(np.argmax(shared))]
            cells[j] = shapely.union(cells[j], piece)
    return cells


def lloyd_step(seeds: np.ndarray, outline: shapely.Polygon) -> np.ndarray:
    """Move every seed to the centroid of its clipped cell (one Lloyd iteration)."""
    cells = voronoi_cells(seeds, outline)
    moved = shapely.get_coordinates(shapely.centroid(cells))
    ok = shapely.contains_xy(cells, moved[:, 0], moved[:, 1])
    return np.where(ok[:, None], moved, seeds)


def adjacency(cells: np.ndarray) -> sparse.csr_matrix:
    """Queen contiguity (sharing at least a point) as a symmetric 0/1 matrix."""
    left, right = shapely.STRtree(cells).query(cells, predicate="intersects")
    keep = left != right
    n = len(cells)
    matrix = sparse.coo_matrix(
        (np.ones(int(keep.sum()), dtype=np.int8), (left[keep], right[keep])), shape=(n, n)
    )
    return matrix.tocsr()


def hilbert_rank(xy: np.ndarray, order: int = 16) -> np.ndarray:
    """Position of each point along a Hilbert curve over the points' bounding box."""
    side = 1 << order
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    scaled = (xy - lo) / np.maximum(hi - lo, 1e-9) * (side - 1)
    x, y = scaled[:, 0].astype(np.int64), scaled[:, 1].astype(np.int64)
    d = np.zeros(len(xy), dtype=np.int64)
    s = side >> 1
    while s > 0:
        rx = (x & s) > 0
        ry = (y & s) > 0
        d += s * s * ((3 * rx.astype(np.int64)) ^ ry.astype(np.int64))
        flip = ~ry & rx
        x = np.where(flip, side - 1 - x, x)
        y = np.where(flip, side - 1 - y, y)
        swap = ~ry
        x, y = np.where(swap, y, x), np.where(swap, x, y)
        s >>= 1
    return np.argsort(np.argsort(d, kind="stable"), kind="stable")


def contiguous_groups(xy: np.ndarray, adj: sparse.csr_matrix, size: int) -> np.ndarray:
    """Labels ``0..k-1`` putting ~``size`` neighbouring units in each group.

    Units are cut into runs of ``size`` along a Hilbert curve (spatially compact). Then,
    until nothing changes, any unit cut off from the main part of its group, and every
    unit of a group smaller than ``size - 2``, moves to the smallest adjacent group; last,
    groups above ``2 * size - 2`` hand boundary units to smaller neighbours. Every group
    ends contiguous with ``size - 2`` to ``2 * size - 2`` units (the few units whose
    removal would split a group excepted). Labels follow the curve.
    """
    n = len(xy)
    rank = hilbert_rank(xy)
    n_groups = max(n // size, 1)
    labels = np.minimum(rank // size, n_groups - 1)  # the short tail joins the last group
    min_size = max(size - 2, 1)
    coo = adj.tocoo()
    rows, cols = coo.row, coo.col
    for _ in range(50):
        movable = _stray_units(labels, rows, cols, n)
        group_size = np.bincount(labels, minlength=labels.max() + 1)
        movable |= group_size[labels] < min_size
        edge = movable[rows] & (labels[rows] != labels[cols])
        if not edge.any():
            break
        options = pd.DataFrame({"unit": rows[edge], "target": labels[cols[edge]]})
        options["target_size"] = group_size[options["target"].to_numpy()]
        best = options.sort_values(["unit", "target_size", "target"]).drop_duplicates("unit")
        labels[best["unit"].to_numpy()] = best["target"].to_numpy()
    labels = _shed_excess(labels, adj, max_size=2 * size - 2)
    # Relabel 0..k-1 in curve order of each group's first unit.
    first = pd.Series(rank).groupby(labels).min().sort_values()
    remap = np.full(labels.max() + 1, -1)
    remap[first.index.to_numpy()] = np.arange(len(first))
    return np.asarray(remap[labels])


def _shed_excess(labels: np.ndarray, adj: sparse.csr_matrix, max_size: int) -> np.ndarray:
    """Move units out of groups above ``max_size`` into adjacent groups below it, only
    where the group left behind stays contiguous. Oversized groups are rare, so a loop."""
    labels = labels.copy()
    sizes = np.bincount(labels)
    for group in np.flatnonzero(sizes > max_size):
        members = np.flatnonzero(labels == group).tolist()
        moved = True
        while len(members) > max_size and moved:
            moved = False
            for unit in members:
                near = adj.indices[adj.indptr[unit] : adj.indptr[unit + 1]]
                targets = sorted(
                    {
                        int(labels[j])
                        for j in near
                        if labels[j] != group and sizes[labels[j]] < max_size
                    }
                )
                rest = [m for m in members if m != unit]
                if not targets or connected_components(adj[rest][:, rest], directed=False)[0] != 1:
                    continue
                target = min(targets, key=lambda g: (sizes[g], g))
                labels[unit] = target
                sizes[target] += 1
                sizes[group] -= 1
                members = rest
                moved = True
                break
    return labels


def _stray_units(labels: np.ndarray, rows: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray:
    """Units not in the largest connected part of their group."""
    same = labels[rows] == labels[cols]
    graph = sparse.coo_matrix((np.ones(int(same.sum())), (rows[same], cols[same])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    sizes = np.bincount(comp)
    frame = pd.DataFrame({"group": labels, "comp": comp, "size": sizes[comp]})
    main = frame.sort_values(
        ["group", "size", "comp"], ascending=[True, False, True]
    ).drop_duplicates("group")
    main_comp = main.set_index("group")["comp"].reindex(labels).to_numpy()
    return np.asarray(comp != main_comp)


def aggregate_adjacency(adj: sparse.csr_matrix, labels: np.ndarray) -> sparse.csr_matrix:
    """Adjacency between groups: two groups touch when any of their units touch."""
    k = int(labels.max()) + 1
    member = sparse.csr_matrix(
        (np.ones(len(labels)), (labels, np.arange(len(labels)))), shape=(k, len(labels))
    )
    touching = (member @ adj @ member.T).tocoo()
    keep = touching.row != touching.col
    return sparse.csr_matrix(
        (np.ones(int(keep.sum())), (touching.row[keep], touching.col[keep])), shape=(k, k)
    )


def place_names(rng: np.random.Generator, k: int) -> list[str]:
    """``k`` distinct invented English place names (``Northfield``, ``Ashbury`` …)."""
    combos = [p + s for p in _PREFIXES for s in _SUFFIXES if not (p[-1] == s[0] and p[-1] in "kdw")]
    combos = [combos[i] for i in rng.permutation(len(combos))]
    names = combos[:k]
    extra = 2
    while len(names) < k:
        names += [f"{c} {extra}" for c in combos[: k - len(names)]]
        extra += 1
    return names


def code_range(prefix: str, n: int) -> np.ndarray:
    """``n`` ONS-like 9-character codes from an unused range: ``E00900001``… when they
    fit, else starting lower (real codes stop near ``E00190000``/``E01036000``)."""
    start = 900_001
    while start + n - 1 > 999_999:
        start -= 100_000
    if start < 200_001:
        raise ValueError(f"too many areas for 9-character {prefix} codes: {n}")
    return np.array([f"{prefix}{i:06d}" for i in range(start, start + n)])


def _rank_within(frame: pd.DataFrame, unit: str, parent: str) -> np.ndarray:
    """0-based position of each row's ``unit`` among the units of its ``parent``, in the
    frame's (sorted) order."""
    first = frame.drop_duplicates(unit)
    position = pd.Series(first.groupby(parent).cumcount().to_numpy(), index=first[unit].to_numpy())
    return position.reindex(frame[unit].to_numpy()).to_numpy()


def _letters(i: int) -> str:
    letters = string.ascii_uppercase
    return letters[i] if i < 26 else letters[i // 26 - 1] + letters[i % 26]


def build_tessellation(
    rng: np.random.Generator, *, n_areas: int, centre: tuple[float, float]
) -> Tessellation:
    """The OA tessellation with codes, names and hierarchy (see module docstring)."""
    radius = city_radius(n_areas)
    outline = make_outline(rng, centre, radius)
    centres = make_centres(rng, outline, centre, radius, n_areas)
    seeds = lloyd_step(sample_seeds(rng, outline, centres, n_areas), outline)
    cells = voronoi_cells(seeds, outline)
    adj = adjacency(cells)
    centroid = shapely.get_coordinates(shapely.centroid(cells))

    lsoa = contiguous_groups(centroid, adj, OAS_PER_LSOA)
    lsoa_xy = pd.DataFrame(centroid).groupby(lsoa).mean().to_numpy()
    lsoa_adj = aggregate_adjacency(adj, lsoa)
    msoa_of_lsoa = contiguous_groups(lsoa_xy, lsoa_adj, LSOAS_PER_MSOA)
    msoa = msoa_of_lsoa[lsoa]
    msoa_xy = pd.DataFrame(centroid).groupby(msoa).mean().to_numpy()
    district_of_msoa = contiguous_groups(
        msoa_xy, aggregate_adjacency(lsoa_adj, msoa_of_lsoa), MSOAS_PER_DISTRICT
    )
    names = np.array(place_names(rng, int(district_of_msoa.max()) + 1))

    # ONS habit: MSOAs numbered north to south within a district; letters and OA
    # numbers likewise within their parent.
    frame = pd.DataFrame(
        {
            "district": district_of_msoa[msoa],
            "msoa": msoa,
            "lsoa": lsoa,
            "msoa_y": msoa_xy[msoa, 1],
            "lsoa_y": lsoa_xy[lsoa, 1],
            "y": centroid[:, 1],
        }
    )
    frame = frame.sort_values(
        ["district", "msoa_y", "msoa", "lsoa_y", "lsoa", "y"],
        ascending=[True, False, True, False, True, False],
    )
    frame["msoa_num"] = _rank_within(frame, "msoa", "district") + 1
    frame["lsoa_pos"] = _rank_within(frame, "lsoa", "msoa")
    frame["oa_num"] = frame.groupby("lsoa").cumcount() + 1
    order = frame.index.to_numpy()

    msoa_rank = pd.factorize(frame["msoa"])[0]
    lsoa_rank = pd.factorize(frame["lsoa"])[0]
    msoa_codes = code_range("E02", int(msoa_rank.max()) + 1)[msoa_rank]
    lsoa_codes = code_range("E01", int(lsoa_rank.max()) + 1)[lsoa_rank]
    district = names[frame["district"].to_numpy()]
    lsoa_names = [
        f"{d} {m:03d}{_letters(p)}"
        for d, m, p in zip(
            district, frame["msoa_num"].to_numpy(), frame["lsoa_pos"].to_numpy(), strict=True
        )
    ]
    oa_names = [f"{ln}-{k}" for ln, k in zip(lsoa_names, frame["oa_num"].to_numpy(), strict=True)]
    return Tessellation(
        cells=cells[order],
        seed_xy=seeds[order],
        centroid_xy=centroid[order],
        area_code=code_range("E00", n_areas),
        area_name=np.array(oa_names),
        lsoa_code=lsoa_codes,
        msoa_code=msoa_codes,
        district=district,
        adjacency=adj[order][:, order].tocsr(),
        outline=outline,
        centres=centres,
        radius=radius,
    )
