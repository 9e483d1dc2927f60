"""The sites contract: unique ids, known types and statuses, coordinates in range,
and sites near enough to the study area to serve it.

A site just over the boundary still serves people inside it, so sites within the largest
catchment radius of the study area are kept (with a warning); farther ones are dropped
with a warning; only a file with nothing near the area is refused.
"""

from __future__ import annotations

from collections.abc import Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo._errors import Problem
from geo.columns import apply_column_map, find_alias, normalise_header
from geo.dataset import SITE_COLUMNS, SITE_STATUSES, SITE_TYPES, WORSHIP_SUBTYPES
from geo.projection import BRITISH_NATIONAL_GRID, WGS84, metric_crs_of
from geo.readers import Report

_TYPE_ALIASES = {
    "chemist": "pharmacy",
    "community_pharmacy": "pharmacy",
    "gp": "gp_practice",
    "gp_surgery": "gp_practice",
    "surgery": "gp_practice",
    "general_practice": "gp_practice",
    "worship": "place_of_worship",
    "pow": "place_of_worship",
    "faith": "place_of_worship",
    "faith_venue": "place_of_worship",
    "community_center": "community_centre",
    "community_venue": "community_centre",
    "community_hall": "community_centre",
    "library": "community_centre",
    "vaccination_center": "vaccination_centre",
    "vaccination_site": "vaccination_centre",
    "mass_vaccination_centre": "vaccination_centre",
    "hospital_hub": "vaccination_centre",
    "van": "mobile_van",
    "mobile": "mobile_van",
    "mobile_unit": "mobile_van",
}
_SUBTYPE_ALIASES = {
    "masjid": "mosque",
    "mandir": "temple",
    "hindu_temple": "temple",
    "buddhist_temple": "temple",
    "chapel": "church",
    "cathedral": "church",
    "shul": "synagogue",
}
_STATUS_ALIASES = {
    "open": "existing",
    "current": "existing",
    "active": "existing",
    "proposed": "candidate",
    "potential": "candidate",
    "possible": "candidate",
}


def validate_sites(
    frame: pd.DataFrame | gpd.GeoDataFrame,
    file_name: str,
    report: Report,
    *,
    column_map: Mapping[str, str] | None = None,
) -> gpd.GeoDataFrame | None:
    """Check a site table (CSV with lon/lat or easting/northing) or point layer.

    Returns
    -------
    Canonical sites in WGS84 (see :mod:`geo.dataset`), with a ``_line`` column, or
    ``None`` when there were errors.
    """
    start = len(report.errors)
    frame = frame.rename(columns=apply_column_map(frame.columns, column_map or {}))
    is_layer = isinstance(frame, gpd.GeoDataFrame)
    lines = np.arange(1, len(frame) + 1) if is_layer else np.arange(2, len(frame) + 2)
    text = pd.DataFrame(index=frame.index)
    for canonical in ("site_id", "site_type", "subtype", "status", "name", "community"):
        source = find_alias([c for c in frame.columns if c != "geometry"], canonical)
        if source is None and canonical in ("site_id", "site_type", "status"):
            report.error(
                Problem(file_name, f"no '{canonical}' column found", f"add a '{canonical}' column")
            )
            continue
        text[canonical] = frame[source].astype("string").fillna("").str.strip() if source else ""
    if len(report.errors) > start:
        return None
    geometry = _points(frame, file_name, lines, report)

    ids = text["site_id"]
    report.errors.add_rows(
        file_name,
        lines[(ids == "").to_numpy()],
        "the site id is blank",
        "give every site a unique id",
        column="site_id",
    )
    dup = (ids.duplicated(keep=False) & (ids != "")).to_numpy()
    report.errors.add_rows(
        file_name,
        lines[dup],
        "the site id appears more than once",
        "make site ids unique",
        column="site_id",
        values=ids[dup].tolist(),
    )
    site_type, subtype = _types(text["site_type"], text["subtype"], file_name, lines, report)
    status = _statuses(text["status"], file_name, lines, report)
    numbers = {
        c: _optional_number(frame, c, file_name, lines, report)
        for c in ("capacity_per_day", "cost")
    }
    if len(report.errors) > start or geometry is None:
        return None
    out = pd.DataFrame(
        {
            "site_id": ids.to_numpy(dtype=object),
            "site_type": site_type,
            "subtype": subtype,
            "status": status,
            "name": text["name"].to_numpy(dtype=object),
            "capacity_per_day": numbers["capacity_per_day"],
            "cost": numbers["cost"],
            "community": text["community"].str.lower().to_numpy(dtype=object),
            "_line": lines,
        }
    )
    return gpd.GeoDataFrame(
        out[[*SITE_COLUMNS, "_line"]], geometry=gpd.GeoSeries(geometry, crs=WGS84), crs=WGS84
    )


def keep_sites_near(
    sites: gpd.GeoDataFrame,
    areas: gpd.GeoDataFrame,
    *,
    max_distance_m: float,
    file_name: str,
    report: Report,
) -> gpd.GeoDataFrame:
    """Keep sites within ``max_distance_m`` of the study area (warning), drop farther ones
    (warning), refuse a file with no site near the area (error)."""
    if len(sites) == 0:
        return sites
    crs = metric_crs_of(areas)
    area_geoms = np.asarray(areas.to_crs(crs).geometry.array, dtype=object)
    points = np.asarray(sites.to_crs(crs).geometry.array, dtype=object)
    tree = shapely.STRtree(area_geoms)
    # Nearest area per site; 0 for sites inside an area. query_nearest returns one pair
    # per site (ties aside), so this is one vectorised call for all sites.
    (site_index, _), distance = tree.query_nearest(points, return_distance=True, all_matches=False)
    nearest = np.full(len(points), np.inf)
    nearest[site_index] = distance
    outside = nearest > 0
    far = nearest > max_distance_m
    lines = sites["_line"].to_numpy()
    if far.all():
        report.error(
            Problem(
                file_name,
                f"none of the {len(sites)} sites is within {max_distance_m:,.0f} m of the study area",
                "check the coordinates (lon/lat in WGS84, or easting/northing in British National Grid) and that the sites belong to this area",
            )
        )
        return sites.iloc[0:0]
    near_outside = outside & ~far
    if near_outside.any():
        report.warn(
            Problem(
                file_name,
                f"{int(near_outside.sum())} sites lie outside the study area but within {max_distance_m:,.0f} m of it and were kept (they can serve people inside): rows {_rows(lines[near_outside])}",
                "nothing to do",
            )
        )
    if far.any():
        report.warn(
            Problem(
                file_name,
                f"{int(far.sum())} sites lie more than {max_distance_m:,.0f} m from the study area and were dropped: rows {_rows(lines[far])}",
                "check their coordinates if they should be inside",
            )
        )
    return sites.loc[~far]


def _rows(lines: np.ndarray, limit: int = 30) -> str:
    shown = ", ".join(str(int(x)) for x in lines[:limit])
    return shown + (f" and {len(lines) - limit} more" if len(lines) > limit else "")


def _points(
    frame: pd.DataFrame, file_name: str, lines: np.ndarray, report: Report
) -> np.ndarray | None:
    before = len(report.errors)
    if isinstance(frame, gpd.GeoDataFrame):
        if frame.crs is None:
            report.error(
                Problem(file_name, "the layer has no CRS", "export the points with their CRS")
            )
            return None
        geoms = np.asarray(frame.to_crs(WGS84).geometry.array, dtype=object)
        not_point = shapely.get_type_id(geoms) != 0
        report.errors.add_rows(
            file_name,
            lines[not_point],
            "the geometry is not a point",
            "sites must be points",
            column="geometry",
        )
        return None if not_point.any() else geoms
    columns = [str(c) for c in frame.columns]
    lon_col, lat_col = find_alias(columns, "lon"), find_alias(columns, "lat")
    east_col, north_col = find_alias(columns, "easting"), find_alias(columns, "northing")
    if lon_col and lat_col:
        x, y, crs = frame[lon_col], frame[lat_col], WGS84
        columns_used = (lon_col, lat_col)
    elif east_col and north_col:
        x, y, crs = frame[east_col], frame[north_col], BRITISH_NATIONAL_GRID
        columns_used = (east_col, north_col)
    else:
        report.error(
            Problem(
                file_name,
                "no coordinate columns found",
                "add lon and lat columns (WGS84 degrees), or easting and northing (British National Grid metres)",
            )
        )
        return None
    values = []
    for series, column in zip((x, y), columns_used, strict=True):
        text = series.astype(str).str.strip()
        number = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
        bad = np.isnan(number)
        report.errors.add_rows(
            file_name,
            lines[bad],
            "the coordinate is missing or not a number",
            "enter a number",
            column=column,
            values=series[bad].tolist(),
        )
        values.append(number)
    if crs == WGS84:
        lon, lat = values
        out_of_range = (np.abs(lon) > 180) | (np.abs(lat) > 90)
        report.errors.add_rows(
            file_name,
            lines[out_of_range],
            "lon/lat out of range (these look like metres, e.g. British National Grid)",
            "give WGS84 degrees in lon/lat, or name the columns easting/northing",
            column=columns_used[0],
        )
        swapped = (np.abs(lon) > 40) & (np.abs(lat) < 40) & ~out_of_range
        report.errors.add_rows(
            file_name,
            lines[swapped],
            "lon and lat look swapped",
            "lon is east-west (about -6 to 2 in England), lat north-south (about 50 to 56)",
            column=columns_used[0],
        )
    if len(report.errors) > before:
        return None
    points = gpd.GeoSeries(gpd.points_from_xy(values[0], values[1]), crs=crs)
    return np.asarray(points.to_crs(WGS84).array, dtype=object)


def _types(
    raw_type: pd.Series, raw_subtype: pd.Series, file_name: str, lines: np.ndarray, report: Report
) -> tuple[np.ndarray, np.ndarray]:
    key = raw_type.map(lambda v: normalise_header(v).replace(" ", "_").replace("-", "_"))
    sub = raw_subtype.map(lambda v: normalise_header(v).replace(" ", "_").replace("-", "_"))
    key = key.map(lambda v: _TYPE_ALIASES.get(v, v))
    as_subtype = key.map(lambda v: _SUBTYPE_ALIASES.get(v, v)).isin(WORSHIP_SUBTYPES)
    sub = sub.where(~as_subtype, key.map(lambda v: _SUBTYPE_ALIASES.get(v, v)))
    key = key.where(~as_subtype, "place_of_worship")
    sub = sub.map(lambda v: _SUBTYPE_ALIASES.get(v, v))
    unknown = ~key.isin(SITE_TYPES)
    report.errors.add_rows(
        file_name,
        lines[unknown.to_numpy()],
        "unknown site type",
        f"use one of {', '.join(SITE_TYPES)} (places of worship may also be given as {', '.join(WORSHIP_SUBTYPES)})",
        column="site_type",
        values=raw_type[unknown].tolist(),
    )
    return key.to_numpy(dtype=object), sub.to_numpy(dtype=object)


def _statuses(raw: pd.Series, file_name: str, lines: np.ndarray, report: Report) -> np.ndarray:
    status = raw.str.lower().map(lambda v: _STATUS_ALIASES.get(v, v))
    bad = ~status.isin(SITE_STATUSES)
    report.errors.add_rows(
        file_name,
        lines[bad.to_numpy()],
        "status must be 'existing' or 'candidate'",
        "existing = already vaccinating; candidate = could host a pop-up",
        column="status",
        values=raw[bad].tolist(),
    )
    return status.to_numpy(dtype=object)


def _optional_number(
    frame: pd.DataFrame, canonical: str, file_name: str, lines: np.ndarray, report: Report
) -> np.ndarray:
    source = find_alias([c for c in frame.columns if c != "geometry"], canonical)
    if source is None:
        return np.full(len(frame), np.nan)
    text = frame[source].astype("string").fillna("").str.strip().str.replace(",", "", regex=False)
    number = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    bad = (np.isnan(number) & (text != "").to_numpy()) | (number < 0)
    report.errors.add_rows(
        file_name,
        lines[bad],
        f"{canonical} must be a number of 0 or more",
        "enter a number or leave it blank",
        column=source,
        values=frame[source][bad].tolist(),
    )
    return number
