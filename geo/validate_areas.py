"""The areas contract: unique codes, polygon geometry, a known CRS.

One validator collects every problem in an areas layer before the import is refused.
Invalid polygons are repaired with ``make_valid`` and reported as a warning (unless the
caller asks to refuse them); empty or non-polygonal geometries are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from geo._errors import Problem
from geo.columns import apply_column_map, code_columns, name_level
from geo.projection import WGS84
from geo.readers import Report


@dataclass(frozen=True)
class GeometryLimits:
    """Caps that keep one upload from exhausting memory (England's OAs fit comfortably)."""

    max_features: int = 400_000
    max_vertices: int = 200_000_000
    max_vertices_per_feature: int = 1_000_000


def validate_areas(
    frame: gpd.GeoDataFrame,
    file_name: str,
    report: Report,
    *,
    column_map: Mapping[str, str] | None = None,
    repair: bool = True,
    limits: GeometryLimits = GeometryLimits(),
) -> gpd.GeoDataFrame | None:
    """Check an areas layer and return it in canonical form (WGS84).

    Parameters
    ----------
    frame
        The layer as read.
    file_name
        Used in every problem reported.
    report
        Receives errors and warnings.
    column_map
        Explicit header renames, e.g. ``{"MYCODE": "area_code"}``.
    repair
        Repair invalid polygons with ``shapely.make_valid`` (reported as a warning);
        when false they are refused.
    limits
        Feature and vertex caps.

    Returns
    -------
    The canonical areas (``area_code``, ``area_name``, ``parent_code``, geometry) or
    ``None`` when there were errors.
    """
    start = len(report.errors)
    frame = frame.rename(columns=apply_column_map(frame.columns, column_map or {}))
    if len(frame) == 0:
        report.error(
            Problem(file_name, "the layer has no features", "export the layer with its polygons")
        )
        return None
    if len(frame) > limits.max_features:
        report.error(
            Problem(
                file_name,
                f"the layer has {len(frame):,} features; at most {limits.max_features:,} are accepted",
                "split the study area, or raise OUTREACH_LIMITS__MAX_FEATURES",
            )
        )
        return None
    code_col, parent_col, name_col = _identify_columns(frame, file_name, report)
    crs = _check_crs(frame, file_name, report)
    geometry = _check_geometry(frame, file_name, report, repair=repair, limits=limits)
    if code_col is None:
        return None
    codes = frame[code_col].astype("string").str.strip()
    _check_codes(codes, file_name, code_col, report)
    if len(report.errors) > start or geometry is None or crs is None:
        return None
    out = gpd.GeoDataFrame(
        {
            "area_code": codes.astype(str).to_numpy(),
            "area_name": _optional_text(frame, name_col),
            "parent_code": _optional_text(frame, parent_col),
        },
        geometry=gpd.GeoSeries(geometry, crs=crs),
        crs=crs,
    )
    return (
        out.to_crs(WGS84)
        if not CRS.from_user_input(crs).equals(CRS.from_user_input(WGS84))
        else out
    )


def _identify_columns(
    frame: gpd.GeoDataFrame, file_name: str, report: Report
) -> tuple[str | None, str | None, str | None]:
    columns = [c for c in frame.columns if c != frame.geometry.name]
    codes = code_columns(columns)
    explicit = "area_code" if "area_code" in columns else None
    if explicit is None and not codes:
        report.error(
            Problem(
                file_name,
                "no area code column found (looked for area_code, OA21CD, OA11CD, LSOA21CD, LSOA11CD, MSOA21CD, geography code, …)",
                'rename the code column to area_code, or pass a column mapping such as {"MYCODE": "area_code"}',
            )
        )
        return None, None, None
    code_col = explicit or codes[0][0]
    code_level = dict(codes).get(code_col)
    parent_col: str | None = "parent_code" if "parent_code" in columns else None
    if parent_col is None:
        coarser = [c for c, lvl in codes if c != code_col and lvl not in ("other", code_level)]
        parent_col = coarser[0] if coarser else None
    name_col: str | None = "area_name" if "area_name" in columns else None
    if name_col is None:
        by_level = {name_level(c): c for c in columns if name_level(c)}
        name_col = by_level.get(code_level) or by_level.get("other")
    return code_col, parent_col, name_col


def _check_crs(frame: gpd.GeoDataFrame, file_name: str, report: Report) -> CRS | None:
    if frame.crs is None:
        report.error(
            Problem(
                file_name,
                "the layer has no coordinate reference system (CRS)",
                "set the CRS when exporting (ONS boundaries are British National Grid, EPSG:27700); for a shapefile include the .prj file",
            )
        )
        return None
    crs = CRS.from_user_input(frame.crs)
    if crs.is_geographic:
        bounds = frame.total_bounds
        if np.isfinite(bounds).all() and (
            np.abs(bounds[[0, 2]]).max() > 180 or np.abs(bounds[[1, 3]]).max() > 90
        ):
            report.error(
                Problem(
                    file_name,
                    f"the CRS says longitude/latitude ({crs.to_string()}) but the coordinates are metres",
                    "set the layer's real CRS (e.g. EPSG:27700 for British National Grid) instead of WGS84",
                )
            )
            return None
    return crs


def _check_geometry(
    frame: gpd.GeoDataFrame,
    file_name: str,
    report: Report,
    *,
    repair: bool,
    limits: GeometryLimits,
) -> np.ndarray | None:
    geoms = np.asarray(frame.geometry.array, dtype=object)
    rows = np.arange(1, len(geoms) + 1)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    for row in rows[missing]:
        report.error(
            Problem(
                file_name,
                "the feature has no geometry (empty)",
                "remove the feature or give it its polygon",
                row=int(row),
            )
        )
    type_ids = shapely.get_type_id(geoms)
    polygonal = np.isin(type_ids, (3, 6))  # Polygon, MultiPolygon
    wrong = ~polygonal & ~missing
    for row, type_id in zip(rows[wrong], type_ids[wrong], strict=True):
        report.error(
            Problem(
                file_name,
                f"the geometry is a {_TYPE_NAMES.get(int(type_id), 'non-polygon')}, not a polygon",
                "areas must be Polygon or MultiPolygon features",
                row=int(row),
            )
        )
    n_vertices = shapely.get_num_coordinates(geoms)
    for row in rows[n_vertices > limits.max_vertices_per_feature]:
        report.error(
            Problem(
                file_name,
                f"the polygon has more than {limits.max_vertices_per_feature:,} vertices",
                "simplify the boundary (e.g. the ONS 'generalised' BGC files)",
                row=int(row),
            )
        )
    if int(n_vertices.sum()) > limits.max_vertices:
        report.error(
            Problem(
                file_name,
                f"the layer has {int(n_vertices.sum()):,} vertices; at most {limits.max_vertices:,} are accepted",
                "use generalised (BGC/BSC) boundaries",
            )
        )
    if missing.any() or wrong.any():
        return None
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        if not repair:
            for row, reason in zip(
                rows[invalid], shapely.is_valid_reason(geoms[invalid]), strict=True
            ):
                report.error(
                    Problem(
                        file_name,
                        f"the polygon is invalid ({reason})",
                        "repair it (QGIS: Fix geometries) or import with geometry repair on",
                        row=int(row),
                    )
                )
            return None
        fixed = _polygonal_part(shapely.make_valid(geoms[invalid]))
        bad = shapely.is_empty(fixed)
        for row in rows[invalid][bad]:
            report.error(
                Problem(
                    file_name,
                    "the polygon is invalid and nothing remains after repair",
                    "redraw the polygon",
                    row=int(row),
                )
            )
        for row in rows[invalid][~bad]:
            report.warn(
                Problem(
                    file_name,
                    "an invalid polygon was repaired with make_valid",
                    "check the boundary; repair it at source to silence this warning",
                    row=int(row),
                )
            )
        if bad.any():
            return None
        geoms = geoms.copy()
        geoms[invalid] = fixed
    return geoms


def _polygonal_part(geoms: np.ndarray) -> np.ndarray:
    """Keep only the polygonal parts of repaired geometries (make_valid may add lines)."""
    out = geoms.copy()
    collections = shapely.get_type_id(geoms) == 7
    for i in np.flatnonzero(collections):  # few: only repaired geometries that split
        parts = shapely.get_parts(geoms[i])
        polys = parts[np.isin(shapely.get_type_id(parts), (3, 6))]
        out[i] = shapely.union_all(polys) if len(polys) else shapely.Polygon()
    return out


def _check_codes(codes: pd.Series, file_name: str, column: str, report: Report) -> None:
    rows = np.arange(1, len(codes) + 1)
    blank = codes.isna() | (codes == "")
    report.errors.add_rows(
        file_name,
        rows[blank.to_numpy()],
        "the area code is blank",
        "give every area its code",
        column=column,
    )
    dup = codes.duplicated(keep=False) & ~blank
    report.errors.add_rows(
        file_name,
        rows[dup.to_numpy()],
        "the area code appears more than once",
        "each area must appear once; dissolve multi-part areas into one MultiPolygon",
        column=column,
        values=codes[dup].tolist(),
    )


def _optional_text(frame: pd.DataFrame, column: str | None) -> np.ndarray:
    if column is None:
        return np.full(len(frame), None, dtype=object)
    values = frame[column].astype("string").str.strip()
    return values.where(values.notna() & (values != ""), None).astype(object).to_numpy()


_TYPE_NAMES = {
    0: "Point",
    1: "LineString",
    2: "LinearRing",
    4: "MultiPoint",
    5: "MultiLineString",
    7: "GeometryCollection",
}
