"""Column-oriented rows for bulk inserts, shared by both backends.

Each builder returns ``(column names, one list of Python values per column)``. The
backend decides how to encode geometry (WKB blobs in SQLite, hex EWKB for PostGIS's
COPY) and how to send the rows (``executemany`` of tuples, or ``COPY``) — building
tuples column by column is several times faster than one dict per row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.dataset import SITE_COLUMNS

Columns = tuple[list[str], list[list[Any]]]
#: Encodes an array of shapely geometries (WGS84) for a backend's geometry column.
GeometryEncoder = Callable[[np.ndarray], list[Any]]
_BOUNDS = ("minx", "miny", "maxx", "maxy")
_TEXT_NOT_NULL = ("subtype", "name", "community")  # a missing value is "" in these columns
_NUMBERS = ("capacity_per_day", "cost")


def values(series: pd.Series, *, fill: Any = None) -> list[Any]:
    """Python values (NumPy scalars converted), missing values replaced by ``fill``."""
    objects = series.astype(object)
    return objects.where(objects.notna(), fill).tolist()  # type: ignore[no-any-return]


def area_columns(dataset_id: str, areas: gpd.GeoDataFrame, encode: GeometryEncoder) -> Columns:
    geoms = np.asarray(areas.geometry.array, dtype=object)
    bounds = shapely.bounds(geoms)
    n = len(areas)
    return (
        ["dataset_id", "idx", "area_code", "area_name", "parent_code", *_BOUNDS, "geom"],
        [
            [dataset_id] * n,
            list(range(n)),
            values(areas["area_code"]),
            values(areas["area_name"]),
            values(areas["parent_code"]),
            *(bounds[:, k].tolist() for k in range(len(_BOUNDS))),
            encode(geoms),
        ],
    )


def uptake_columns(dataset_id: str, uptake: pd.DataFrame) -> Columns:
    text_columns = ["area_code", "age_band", "sex", "ethnic_group"]
    n = len(uptake)
    return (
        ["dataset_id", "row", *text_columns, "eligible", "vaccinated"],
        [
            [dataset_id] * n,
            list(range(n)),
            *(values(uptake[c]) for c in text_columns),
            uptake["eligible"].to_numpy(dtype=np.int64).tolist(),
            uptake["vaccinated"].to_numpy(dtype=np.int64).tolist(),
        ],
    )


def indicator_columns(dataset_id: str, indicators: pd.DataFrame) -> Columns:
    names = ["dataset_id", "area_code", "name", "value"]
    if indicators.empty or not len(indicators.columns):
        return names, []
    long = (
        indicators.rename_axis("area_code")
        .reset_index()
        .melt(id_vars="area_code", var_name="name", value_name="value")
        .dropna(subset=["value"])
    )
    return names, [
        [dataset_id] * len(long),
        values(long["area_code"]),
        values(long["name"]),
        long["value"].to_numpy(dtype=np.float64).tolist(),
    ]


def site_columns(
    dataset_id: str, sites: gpd.GeoDataFrame, *, start: int, encode: GeometryEncoder | None
) -> Columns:
    """Sites numbered from ``start``; a ``geom`` column only when ``encode`` is given."""
    names = [*SITE_COLUMNS, "lon", "lat", "idx", "dataset_id", *(["geom"] if encode else [])]
    if len(sites) == 0:
        return names, []
    points = np.asarray(sites.geometry.array, dtype=object)
    columns = [
        *(
            values(
                sites[c].astype(np.float64) if c in _NUMBERS else sites[c],
                fill="" if c in _TEXT_NOT_NULL else None,
            )
            for c in SITE_COLUMNS
        ),
        shapely.get_x(points).tolist(),
        shapely.get_y(points).tolist(),
        list(range(start, start + len(sites))),
        [dataset_id] * len(sites),
    ]
    if encode is not None:
        columns.append(encode(points))
    return names, columns
