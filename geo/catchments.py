"""Demand points and catchments: who each site can reach.

Coverage is a sparse ``demand points × sites`` matrix (``scipy.sparse``) whose entry is
how well a site serves a point: 1 inside the site's radius with a hard cut-off, or a
distance-decay weight in (0, 1]. Points beyond the radius are absent. Distances are
straight lines in the dataset's metric CRS, found with a k-d tree, or walks along a
street network (:mod:`geo.network`). A dense demand × site matrix is never built: all of
England is ~180,000 output areas × ~60,000 candidate sites.

Distance decay (``d`` the distance, ``R`` the site's radius, ``s`` the decay scale), all
0 beyond ``R``; the impedance forms are those of Kwan (1998), "Space-time and integral
measures of individual accessibility", Geographical Analysis 30(3):

- ``None`` (hard cut-off): ``1``;
- ``"linear"``: ``max(0, 1 - d / s)``, ``s`` defaulting to ``R`` (1 at the site, 0 at
  the edge of the catchment);
- ``"gaussian"``: ``exp(-0.5 * (d / s)**2)``, ``s`` defaulting to ``R / 2``;
- ``"exponential"``: ``exp(-d / s)``, ``s`` defaulting to ``R / 2``.

With the defaults both Gaussian and exponential weights are ``exp(-2) ≈ 0.135`` at the
edge of the catchment. Pairs whose weight is 0 (e.g. linear at ``d = s``) are not stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import scipy.sparse as sp
import shapely
from pyproj import CRS
from scipy.spatial import cKDTree
from sklearn.cluster import KMeans, MiniBatchKMeans
from threadpoolctl import threadpool_limits

from geo._errors import ParameterError
from geo.network import StreetNetwork, snap, walking_pairs
from geo.projection import lonlat_to_metric

#: Catchment radius in metres per site type. A walk of 800 m (~10 minutes) is the usual
#: reach of a neighbourhood venue; pharmacies and GP practices serve about a mile
#: (1.6 km, the NHS "pharmacy within a mile" access measure); people come further to a
#: vaccination centre (3 km); a van parks in the street it serves (1 km).
DEFAULT_RADIUS_M: dict[str, float] = {
    "pharmacy": 1600.0,
    "gp_practice": 1600.0,
    "place_of_worship": 800.0,
    "community_centre": 800.0,
    "school": 800.0,
    "vaccination_centre": 3000.0,
    "mobile_van": 1000.0,
}
DECAYS = ("linear", "gaussian", "exponential")
#: Above this many distinct radii, sites are queried in this many radius bins instead.
_MAX_RADIUS_CLASSES = 16
#: Up to this many weighted points van stops come from full k-means, beyond from mini-batches.
_FULL_KMEANS_MAX_POINTS = 50_000


@dataclass(frozen=True)
class DemandPoints:
    """Population-weighted points standing for areas.

    Attributes
    ----------
    xy
        ``(n, 2)`` coordinates in metres (the areas' metric CRS).
    area_index
        Row position in the areas frame each point belongs to.
    share
        Share of its area's people the point carries; sums to 1 per area.
    """

    xy: np.ndarray
    area_index: np.ndarray
    share: np.ndarray

    def __len__(self) -> int:
        return len(self.area_index)


def site_radii(
    site_types: Sequence[str] | np.ndarray, radius_m: Mapping[str, float] | None = None
) -> np.ndarray:
    """Catchment radius in metres per site: ``radius_m`` overrides :data:`DEFAULT_RADIUS_M`.

    Raises
    ------
    ParameterError
        A type with no radius, or a radius that is not a positive number.
    """
    radii = {**DEFAULT_RADIUS_M, **(radius_m or {})}
    errors = [
        {"loc": ["radius_m", name], "msg": f"radius must be a positive number of metres, got {r}"}
        for name, r in radii.items()
        if not (np.isfinite(r) and r > 0)
    ]
    types = np.asarray(site_types, dtype=object)
    unknown = sorted(set(types.tolist()) - set(radii))
    errors += [{"loc": ["radius_m", t], "msg": f"no radius for site type {t!r}"} for t in unknown]
    if errors:
        raise ParameterError(errors)
    lookup = np.array([radii[t] for t in np.unique(types)], dtype=np.float64)
    return lookup[np.unique(types, return_inverse=True)[1]] if len(types) else np.empty(0)


def demand_points(
    areas_metric: gpd.GeoDataFrame,
    *,
    max_point_area_m2: float = 1_000_000.0,
    max_cells_per_area: int = 16,
) -> DemandPoints:
    """Points at which each area's people are placed for catchment tests.

    An area up to ``max_point_area_m2`` gets one point: its centroid when that lies
    inside, else a point on its surface. A larger area is cut by a grid of about
    ``min(ceil(extent / max_point_area_m2), max_cells_per_area)`` equal cells over its
    bounding box (``extent`` the box's area); each piece of the area in a cell gets an
    interior point carrying the piece's share of the area (people spread evenly within
    the area, the best available without a population surface).

    Parameters
    ----------
    areas_metric
        Areas (Polygon/MultiPolygon, non-empty) in a metric CRS.
    max_point_area_m2
        Largest area, in square metres, one point stands for.
    max_cells_per_area
        Cap on the grid cells of one area: very large rural areas get coarser cells
        rather than hundreds of points.

    Returns
    -------
    DemandPoints, ordered by area row.
    """
    if areas_metric.crs is not None and CRS.from_user_input(areas_metric.crs).is_geographic:
        raise ParameterError([{"loc": ["areas"], "msg": "areas must be in a metric CRS"}])
    if not max_point_area_m2 > 0 or max_cells_per_area < 1:
        raise ParameterError(
            [{"loc": ["max_point_area_m2"], "msg": "need a positive area and at least one cell"}]
        )
    geoms = np.asarray(areas_metric.geometry.array, dtype=object)
    area = shapely.area(geoms)
    empty = np.flatnonzero(~(area > 0))
    if empty.size:
        raise ParameterError(
            [
                {"loc": ["areas", int(i)], "msg": "area geometry is missing or empty"}
                for i in empty[:50]
            ]
        )
    small = np.flatnonzero(area <= max_point_area_m2)
    large = np.flatnonzero(area > max_point_area_m2)

    pieces, owner = _grid_pieces(geoms[large], max_point_area_m2, max_cells_per_area)
    piece_area = shapely.area(pieces)
    keep = piece_area > 0
    pieces, owner, piece_area = pieces[keep], large[owner[keep]], piece_area[keep]
    total = np.bincount(owner, weights=piece_area, minlength=len(geoms))

    all_geoms = np.concatenate([geoms[small], pieces])
    area_index = np.concatenate([small, owner]).astype(np.int64)
    share = np.concatenate([np.ones(len(small)), piece_area / total[owner]])
    points = _interior_points(all_geoms)
    order = np.argsort(area_index, kind="stable")
    xy = shapely.get_coordinates(points)[order]
    return DemandPoints(xy=xy, area_index=area_index[order], share=share[order])


def _interior_points(geoms: np.ndarray) -> np.ndarray:
    points = shapely.centroid(geoms)
    outside = ~shapely.within(points, geoms)  # concave shapes, rings, multipolygons
    points[outside] = shapely.point_on_surface(geoms[outside])
    return points


def _grid_pieces(
    geoms: np.ndarray, max_point_area_m2: float, max_cells: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cut each geometry by a grid of ``min(ceil(box area / max_point_area_m2),
    max_cells)`` equal cells over its bounding box.

    Returns the non-empty pieces and, for each, the position of its geometry in ``geoms``.
    """
    if len(geoms) == 0:
        return np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
    bounds = shapely.bounds(geoms)
    width = bounds[:, 2] - bounds[:, 0]
    height = bounds[:, 3] - bounds[:, 1]
    target = np.minimum(np.ceil(width * height / max_point_area_m2), max_cells)
    side = np.sqrt(width * height / target)
    nx = np.maximum(1, np.round(width / side)).astype(np.int64)
    ny = np.maximum(1, np.floor(target / nx)).astype(np.int64)
    n_cells = nx * ny
    owner = np.repeat(np.arange(len(geoms)), n_cells)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(n_cells) - n_cells, n_cells)
    col, row = k % nx[owner], k // nx[owner]
    cell_w, cell_h = (width / nx)[owner], (height / ny)[owner]
    x0 = bounds[owner, 0] + col * cell_w
    y0 = bounds[owner, 1] + row * cell_h
    boxes = shapely.box(x0, y0, x0 + cell_w, y0 + cell_h)
    # Only cells on the boundary need an (expensive) overlay; prepared predicates sort
    # cells into outside, inside and boundary cheaply.
    shapely.prepare(geoms)
    touching = shapely.intersects(geoms[owner], boxes)
    boxes, owner = boxes[touching], owner[touching]
    inside = shapely.contains_properly(geoms[owner], boxes)
    pieces = boxes.copy()
    pieces[~inside] = shapely.intersection(geoms[owner[~inside]], boxes[~inside])
    return pieces, owner


def _validate_sites(
    site_xy: np.ndarray,
    radius_m: float | np.ndarray,
    decay: str | None,
    decay_scale_m: float | np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    sites = np.asarray(site_xy, dtype=np.float64).reshape(-1, 2)
    errors = []
    radius = np.asarray(radius_m, dtype=np.float64)
    if radius.ndim > 1 or (radius.ndim == 1 and len(radius) != len(sites)):
        errors.append({"loc": ["radius_m"], "msg": "give one radius, or one per site"})
    elif not np.all(np.isfinite(radius) & (radius > 0)):
        errors.append({"loc": ["radius_m"], "msg": "radii must be positive numbers of metres"})
    if decay is not None and decay not in DECAYS:
        errors.append({"loc": ["decay"], "msg": f"decay must be one of {DECAYS} or none"})
    scale = None if decay_scale_m is None else np.asarray(decay_scale_m, dtype=np.float64)
    if scale is not None and not np.all(np.isfinite(scale) & (scale > 0)):
        errors.append({"loc": ["decay_scale_m"], "msg": "must be a positive number of metres"})
    if errors:
        raise ParameterError(errors)
    radius = np.broadcast_to(radius, (len(sites),))
    if scale is not None:
        scale = np.broadcast_to(scale, (len(sites),))
    return sites, radius, scale


def decay_weight(
    distance_m: np.ndarray,
    radius_m: np.ndarray,
    *,
    decay: str | None = None,
    decay_scale_m: np.ndarray | float | None = None,
) -> np.ndarray:
    """Coverage weight at a distance (formulas in the module docstring); 0 beyond the radius."""
    d = np.asarray(distance_m, dtype=np.float64)
    r = np.asarray(radius_m, dtype=np.float64)
    if decay is None:
        weight = np.ones_like(d)
    elif decay == "linear":
        s = r if decay_scale_m is None else np.asarray(decay_scale_m, dtype=np.float64)
        weight = np.maximum(0.0, 1.0 - d / s)
    elif decay == "gaussian":
        s = r / 2 if decay_scale_m is None else np.asarray(decay_scale_m, dtype=np.float64)
        weight = np.exp(-0.5 * (d / s) ** 2)
    elif decay == "exponential":
        s = r / 2 if decay_scale_m is None else np.asarray(decay_scale_m, dtype=np.float64)
        weight = np.exp(-d / s)
    else:
        raise ParameterError([{"loc": ["decay"], "msg": f"decay must be one of {DECAYS} or none"}])
    return np.where(d <= r, weight, 0.0)


def _coverage_matrix(
    demand: np.ndarray,
    site: np.ndarray,
    distance: np.ndarray,
    radius: np.ndarray,
    shape: tuple[int, int],
    decay: str | None,
    scale: np.ndarray | None,
) -> sp.csr_array:
    weight = decay_weight(
        distance, radius[site], decay=decay, decay_scale_m=None if scale is None else scale[site]
    ).astype(np.float32)
    kept = weight > 0
    matrix = sp.csr_array((weight[kept], (demand[kept], site[kept])), shape=shape, dtype=np.float32)
    matrix.sort_indices()
    return matrix


def euclidean_coverage(
    demand_xy: np.ndarray,
    site_xy: np.ndarray,
    radius_m: float | np.ndarray,
    *,
    decay: str | None = None,
    decay_scale_m: float | np.ndarray | None = None,
) -> sp.csr_array:
    """Straight-line coverage of demand points by sites.

    Parameters
    ----------
    demand_xy, site_xy
        ``(n, 2)`` coordinates in metres in the same metric CRS.
    radius_m
        Catchment radius in metres, one for all sites or one per site.
    decay, decay_scale_m
        Distance decay and its scale in metres (scalar or per site); see the module
        docstring. ``None`` is a hard cut-off.

    Returns
    -------
    ``(n_demand, n_sites)`` float32 CSR array, entries in (0, 1], sorted indices.
    """
    demand = np.asarray(demand_xy, dtype=np.float64).reshape(-1, 2)
    sites, radius, scale = _validate_sites(site_xy, radius_m, decay, decay_scale_m)
    shape = (len(demand), len(sites))
    if len(demand) == 0 or len(sites) == 0:
        return sp.csr_array(shape, dtype=np.float32)
    demand_tree = cKDTree(demand)
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    # One dual-tree query per radius class keeps small catchments from being searched at
    # the largest radius; with many distinct radii, bins are searched at their maximum.
    unique = np.unique(radius)
    bins = np.array_split(unique, min(len(unique), _MAX_RADIUS_CLASSES))
    for radius_bin in bins:
        in_bin = np.flatnonzero((radius >= radius_bin[0]) & (radius <= radius_bin[-1]))
        pairs = cKDTree(sites[in_bin]).sparse_distance_matrix(
            demand_tree, float(radius_bin[-1]), output_type="ndarray"
        )
        site = in_bin[pairs["i"]]
        ok = pairs["v"] <= radius[site]
        found.append((pairs["j"][ok], site[ok], pairs["v"][ok]))
    demand_index, site_index, distance = (
        np.concatenate(parts) for parts in zip(*found, strict=True)
    )
    return _coverage_matrix(demand_index, site_index, distance, radius, shape, decay, scale)


def network_coverage(
    network: StreetNetwork,
    crs: CRS | str,
    demand_xy: np.ndarray,
    site_xy: np.ndarray,
    radius_m: float | np.ndarray,
    *,
    decay: str | None = None,
    decay_scale_m: float | np.ndarray | None = None,
) -> sp.csr_array:
    """Walking-distance coverage of demand points by sites.

    Both point sets are snapped to their nearest network node; the walk is demand snap +
    shortest path + site snap. The distance used is ``max(walk, straight line)``, so a
    network distance is never shorter than the straight line, and a pair counts when it
    is within the site's radius. A site with no path to a point (e.g. across a river with
    no bridge in reach) does not cover it.

    Parameters
    ----------
    network
        The walking network.
    crs
        The metric CRS of ``demand_xy`` and ``site_xy``.
    demand_xy, site_xy, radius_m, decay, decay_scale_m
        As for :func:`euclidean_coverage`.

    Returns
    -------
    ``(n_demand, n_sites)`` float32 CSR array, entries in (0, 1], sorted indices.
    """
    demand = np.asarray(demand_xy, dtype=np.float64).reshape(-1, 2)
    sites, radius, scale = _validate_sites(site_xy, radius_m, decay, decay_scale_m)
    shape = (len(demand), len(sites))
    if len(demand) == 0 or len(sites) == 0:
        return sp.csr_array(shape, dtype=np.float32)
    site_index, demand_index, walk = walking_pairs(network, crs, sites, demand, limit_m=radius)
    straight = np.hypot(*(sites[site_index] - demand[demand_index]).T)
    distance = np.maximum(walk, straight)
    return _coverage_matrix(demand_index, site_index, distance, radius, shape, decay, scale)


def _kmeans(k: int, seed: int, n_points: int) -> KMeans | MiniBatchKMeans:
    # Exact Lloyd iterations while cheap; mini-batches for a national run. No reassignment
    # of light centres: a small cluster of real demand keeps its stop rather than being
    # pulled into a heavier one.
    if n_points <= _FULL_KMEANS_MAX_POINTS:
        return KMeans(n_clusters=k, random_state=seed, n_init=3)
    return MiniBatchKMeans(
        n_clusters=k,
        random_state=seed,
        n_init=3,
        batch_size=4096,
        max_no_improvement=20,
        reassignment_ratio=0.0,
    )


def van_candidates(
    demand_xy: np.ndarray,
    weights: np.ndarray,
    *,
    n_stops: int,
    seed: int = 0,
    network: StreetNetwork | None = None,
    crs: CRS | str | None = None,
) -> np.ndarray:
    """Candidate mobile-van stops where the weighted demand concentrates.

    Weighted k-means (``sample_weight``; KMeans, or MiniBatchKMeans above
    50,000 points) over the points with
    positive weight (e.g. shortfall in flagged areas); each centre minimises the
    weighted squared distance to its points, so stops sit near heavy demand.

    Parameters
    ----------
    demand_xy
        ``(n, 2)`` point coordinates in metres.
    weights
        Demand per point (e.g. shortfall); points with weight ≤ 0 are ignored.
    n_stops
        Number of stops wanted.
    seed
        Random seed; the same inputs and seed give the same stops.
    network, crs
        When given, each stop moves to its nearest network node (``crs`` is the metric
        CRS of ``demand_xy``); stops that land on the same node are merged.

    Returns
    -------
    ``(k, 2)`` stop coordinates in metres, heaviest cluster first; ``k ≤ n_stops``, fewer
    when there are fewer distinct weighted points.
    """
    if n_stops < 0:
        raise ParameterError([{"loc": ["n_vans"], "msg": "the number of stops cannot be negative"}])
    if network is not None and crs is None:
        raise ParameterError(
            [{"loc": ["crs"], "msg": "a metric CRS is needed to snap to the network"}]
        )
    points = np.asarray(demand_xy, dtype=np.float64).reshape(-1, 2)
    weight = np.asarray(weights, dtype=np.float64)
    positive = weight > 0
    points, weight = points[positive], weight[positive]
    distinct = np.unique(points, axis=0)
    k = min(n_stops, len(distinct))
    if k == 0:
        return np.empty((0, 2))
    if k == len(distinct):
        centres = distinct
        labels = np.unique(points, axis=0, return_inverse=True)[1].ravel()
    else:
        # One thread: k-means on a few thousand 2-D points is quicker alone than with
        # OpenMP workers competing for 2 busy cores (measured: 0.05 s against 0.2–3 s).
        with threadpool_limits(limits=1):
            model = _kmeans(k, seed, len(points)).fit(points, sample_weight=weight)
        centres, labels = model.cluster_centers_, model.labels_
    mass = np.bincount(labels, weights=weight, minlength=len(centres))
    order = np.lexsort((np.arange(len(centres)), -mass))
    centres = centres[order]
    if network is not None and crs is not None:
        node, _ = snap(network, crs, centres)
        _, first = np.unique(node, return_index=True)
        node = node[np.sort(first)]
        x, y = lonlat_to_metric(network.node_lon[node], network.node_lat[node], crs)
        centres = np.column_stack([x, y])
    return centres
