"""Coordinate reference systems: one metric CRS per dataset for every distance and area.

Distances are never measured in degrees. Inside Great Britain the metric CRS is the
British National Grid (EPSG:27700), which ONS boundaries already use; elsewhere it is the
local UTM zone (``GeoDataFrame.estimate_utm_crs``). Outputs are WGS84 (EPSG:4326), as
RFC 7946 GeoJSON requires.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
from pyproj import CRS, Transformer

WGS84 = "EPSG:4326"
BRITISH_NATIONAL_GRID = "EPSG:27700"

# Great Britain's extent in WGS84 (lon_min, lat_min, lon_max, lat_max), generous enough
# to include Scilly, Shetland and near-shore sites, excluding Ireland's west coast.
_GB_BOUNDS = (-8.75, 49.8, 1.95, 60.95)


def metric_crs_for(bounds_wgs84: tuple[float, float, float, float]) -> CRS:
    """Return the metric CRS for data with these WGS84 bounds.

    Parameters
    ----------
    bounds_wgs84
        ``(min_lon, min_lat, max_lon, max_lat)`` of the data in degrees.

    Returns
    -------
    EPSG:27700 when the bounds lie inside Great Britain, else the UTM zone of the
    bounds' centre (northern or southern hemisphere).
    """
    minx, miny, maxx, maxy = bounds_wgs84
    gx0, gy0, gx1, gy1 = _GB_BOUNDS
    if minx >= gx0 and miny >= gy0 and maxx <= gx1 and maxy <= gy1:
        return CRS.from_user_input(BRITISH_NATIONAL_GRID)
    lon = (minx + maxx) / 2.0
    lat = (miny + maxy) / 2.0
    zone = int(np.clip(np.floor((lon + 180.0) / 6.0) + 1, 1, 60))
    epsg = (32600 if lat >= 0 else 32700) + zone
    return CRS.from_epsg(epsg)


def metric_crs_of(frame: gpd.GeoDataFrame) -> CRS:
    """The metric CRS for a GeoDataFrame with a CRS (see :func:`metric_crs_for`)."""
    if frame.crs is None:
        raise ValueError("a CRS is needed to choose a metric CRS")
    if len(frame) == 0:
        return CRS.from_user_input(BRITISH_NATIONAL_GRID)
    bounds = frame.to_crs(WGS84).total_bounds if not _is_wgs84(frame.crs) else frame.total_bounds
    return metric_crs_for(tuple(float(b) for b in bounds))  # type: ignore[arg-type]


def to_metric(frame: gpd.GeoDataFrame, crs: CRS | str | None = None) -> gpd.GeoDataFrame:
    """Project to ``crs`` or, when not given, to the frame's metric CRS."""
    target = CRS.from_user_input(crs) if crs is not None else metric_crs_of(frame)
    return (
        frame
        if frame.crs is not None and CRS.from_user_input(frame.crs) == target
        else frame.to_crs(target)
    )


def to_wgs84(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Project to WGS84 longitude/latitude (RFC 7946 order)."""
    return frame if _is_wgs84(frame.crs) else frame.to_crs(WGS84)


def lonlat_to_metric(
    lon: np.ndarray, lat: np.ndarray, crs: CRS | str
) -> tuple[np.ndarray, np.ndarray]:
    """Project WGS84 lon/lat arrays to metres in ``crs``."""
    transformer = Transformer.from_crs(WGS84, crs, always_xy=True)
    x, y = transformer.transform(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return np.asarray(x), np.asarray(y)


def metric_to_lonlat(x: np.ndarray, y: np.ndarray, crs: CRS | str) -> tuple[np.ndarray, np.ndarray]:
    """Project metric arrays in ``crs`` to WGS84 lon/lat."""
    transformer = Transformer.from_crs(crs, WGS84, always_xy=True)
    lon, lat = transformer.transform(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    return np.asarray(lon), np.asarray(lat)


def _is_wgs84(crs: object) -> bool:
    if crs is None:
        return False
    return CRS.from_user_input(crs).equals(CRS.from_user_input(WGS84), ignore_axis_order=True)
