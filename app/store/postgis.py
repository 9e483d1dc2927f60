"""The production store: PostgreSQL with PostGIS.

Geometries live in ``geometry(…, 4326)`` columns with GiST indexes (created by the
migrations), so bounding-box queries are answered by the index (``&&``) in the database.
An import writes the big tables with ``COPY`` (psycopg 3's ``cursor.copy``) on the same
connection and in the same transaction as the dataset row, so it stays all-or-nothing
while skipping per-row statement overhead: about 3× faster than ``executemany``
(demo city, 2,000 areas and 50,000 uptake rows: 2.0 s → 0.8 s; 20,000 areas and
500,000 uptake rows: 26 s → 7.6 s, where the remaining time is mostly the server
checking keys and foreign keys row by row).
An optional ``schema`` keeps several stores apart in one database (tests use one schema
per store and drop it afterwards); a ``search_path`` in the URL's ``options`` does the
same for a deployment.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from geoalchemy2 import Geometry, WKBElement
from psycopg import sql
from sqlalchemy import Connection, LargeBinary, Table, create_engine, func, text
from sqlalchemy.sql.elements import ColumnElement

from app.store.schema import build_metadata
from app.store.sql import SqlStore
from geo.dataset import SITE_COLUMNS, Dataset

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SRID = 4326
_BOUNDS = ("minx", "miny", "maxx", "maxy")


class PostgisStore(SqlStore):
    kind = "postgis"

    def __init__(self, url: str, *, schema: str | None = None):
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise ValueError(f"invalid schema name {schema!r}")
        self.schema = schema
        if schema is not None:
            # Before the store's engine connects: SQLAlchemy remembers the default schema
            # its first connection saw, which must already be this one.
            bootstrap = create_engine(url)
            with bootstrap.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            bootstrap.dispose()
        # search_path as a libpq startup option applies to every pooled connection.
        connect_args = {"options": f"-csearch_path={schema},public"} if schema else {}
        engine = create_engine(
            url,
            pool_size=10,
            max_overflow=20,
            pool_pre_ping=True,
            pool_recycle=1800,
            connect_args=connect_args,
        )

        # The migrations create the GiST indexes; the metadata only describes the columns.
        metadata = build_metadata(
            lambda kind: Geometry(geometry_type=kind, srid=_SRID, spatial_index=True)
        )
        super().__init__(engine, metadata)

    def _prepare_schema(self) -> None:
        with self.engine.begin() as conn:
            installed = conn.execute(
                text("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")
            ).scalar()
            if not installed:
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))

    # --- import with COPY ------------------------------------------------------
    def _insert_contents(self, conn: Any, dataset_id: str, dataset: Dataset) -> None:
        """Areas, uptake, indicators and sites with ``COPY`` on the import's connection,
        so the import stays one transaction (3-4x faster than executemany here)."""
        _copy(conn, "areas", *_area_columns(dataset_id, dataset.areas))
        _copy(conn, "uptake", *_uptake_columns(dataset_id, dataset.uptake))
        _copy(conn, "indicators", *_indicator_columns(dataset_id, dataset.indicators))
        _copy(conn, "sites", *_site_columns(dataset_id, dataset.sites))

    def _geom_bind(self, wkb: bytes) -> Any:
        return WKBElement(wkb, srid=_SRID)

    def _geom_read(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.ST_AsBinary(column, type_=LargeBinary)

    def _bbox_clause(
        self, table: Table, bbox: tuple[float, float, float, float]
    ) -> ColumnElement[bool]:
        minx, miny, maxx, maxy = bbox
        return table.c.geom.op("&&")(func.ST_MakeEnvelope(minx, miny, maxx, maxy, _SRID))

    def _site_geometry_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        points = shapely.points([(r["lon"], r["lat"]) for r in rows])
        for row, wkb in zip(rows, shapely.to_wkb(points), strict=True):
            row["geom"] = WKBElement(wkb, srid=_SRID)
        return rows

    def drop_schema(self) -> None:
        """Drop this store's schema and everything in it (tests only)."""
        if self.schema is None:
            raise ValueError("refusing to drop the default schema")
        with self.engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
        self.engine.dispose()


# --- COPY helpers ----------------------------------------------------------------------
Columns = tuple[list[str], list[list[Any]]]


def _copy(conn: Connection, table: str, names: Sequence[str], columns: list[list[Any]]) -> None:
    """``COPY table (names) FROM STDIN`` the rows of ``columns`` (one list per column,
    Python values; ``None`` is NULL) on ``conn``'s connection, inside its transaction."""
    if not columns or not len(columns[0]):
        return
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(n) for n in names)
    )
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    with dbapi.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[attr-defined]
        for row in zip(*columns, strict=True):
            copy.write_row(row)


def _values(series: pd.Series, *, fill: Any = None) -> list[Any]:
    """Python values (numpy scalars converted), missing values replaced by ``fill``."""
    values = series.astype(object)
    return values.where(values.notna(), fill).tolist()  # type: ignore[no-any-return]


def _ewkb_hex(geometries: np.ndarray) -> list[str]:
    """Hex EWKB with SRID 4326, which ``geometry``'s text input reads directly."""
    return shapely.to_wkb(shapely.set_srid(geometries, _SRID), hex=True, include_srid=True).tolist()  # type: ignore[no-any-return]


def _area_columns(dataset_id: str, areas: gpd.GeoDataFrame) -> Columns:
    geoms = np.asarray(areas.geometry.array, dtype=object)
    bounds = shapely.bounds(geoms)
    n = len(areas)
    return (
        [*("dataset_id", "idx", "area_code", "area_name", "parent_code"), *_BOUNDS, "geom"],
        [
            [dataset_id] * n,
            list(range(n)),
            _values(areas["area_code"]),
            _values(areas["area_name"]),
            _values(areas["parent_code"]),
            *(bounds[:, k].tolist() for k in range(len(_BOUNDS))),
            _ewkb_hex(geoms),
        ],
    )


def _uptake_columns(dataset_id: str, uptake: pd.DataFrame) -> Columns:
    text_columns = ["area_code", "age_band", "sex", "ethnic_group"]
    n = len(uptake)
    return (
        ["dataset_id", "row", *text_columns, "eligible", "vaccinated"],
        [
            [dataset_id] * n,
            list(range(n)),
            *(_values(uptake[c]) for c in text_columns),
            uptake["eligible"].to_numpy(dtype=np.int64).tolist(),
            uptake["vaccinated"].to_numpy(dtype=np.int64).tolist(),
        ],
    )


def _indicator_columns(dataset_id: str, indicators: pd.DataFrame) -> Columns:
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
        _values(long["area_code"]),
        _values(long["name"]),
        long["value"].to_numpy(dtype=np.float64).tolist(),
    ]


def _site_columns(dataset_id: str, sites: gpd.GeoDataFrame) -> Columns:
    names = [*SITE_COLUMNS, "lon", "lat", "idx", "dataset_id", "geom"]
    if len(sites) == 0:
        return names, []
    points = np.asarray(sites.geometry.array, dtype=object)
    not_null_text = ("subtype", "name", "community")  # missing is "" in these columns
    numbers = ("capacity_per_day", "cost")
    return names, [
        *(
            _values(
                sites[c].astype(np.float64) if c in numbers else sites[c],
                fill="" if c in not_null_text else None,
            )
            for c in SITE_COLUMNS
        ),
        shapely.get_x(points).tolist(),
        shapely.get_y(points).tolist(),
        list(range(len(sites))),
        [dataset_id] * len(sites),
        _ewkb_hex(points),
    ]
