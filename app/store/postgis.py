"""The production store: PostgreSQL with PostGIS.

Geometries live in ``geometry(…, 4326)`` columns with GiST indexes (GeoAlchemy2 creates
them), so bounding-box queries are answered by the index (``&&``) in the database.
An optional ``schema`` keeps several stores apart in one database (tests use one schema
per store and drop it afterwards).
"""

from __future__ import annotations

import re
from typing import Any

import shapely
from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import LargeBinary, Table, create_engine, func, text
from sqlalchemy.sql.elements import ColumnElement

from app.store.schema import build_metadata
from app.store.sql import SqlStore

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgisStore(SqlStore):
    kind = "postgis"

    def __init__(self, url: str, *, schema: str | None = None):
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise ValueError(f"invalid schema name {schema!r}")
        self.schema = schema
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
        if schema is not None:
            with engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))

        metadata = build_metadata(
            lambda kind: Geometry(geometry_type=kind, srid=4326, spatial_index=True)
        )
        super().__init__(engine, metadata)

    def _prepare_schema(self) -> None:
        with self.engine.begin() as conn:
            installed = conn.execute(
                text("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")
            ).scalar()
            if not installed:
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))

    def _geom_bind(self, wkb: bytes) -> Any:
        return WKBElement(wkb, srid=4326)

    def _geom_read(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.ST_AsBinary(column, type_=LargeBinary)

    def _bbox_clause(
        self, table: Table, bbox: tuple[float, float, float, float]
    ) -> ColumnElement[bool]:
        minx, miny, maxx, maxy = bbox
        return table.c.geom.op("&&")(func.ST_MakeEnvelope(minx, miny, maxx, maxy, 4326))

    def _site_geometry_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        points = shapely.points([(r["lon"], r["lat"]) for r in rows])
        for row, wkb in zip(rows, shapely.to_wkb(points), strict=True):
            row["geom"] = WKBElement(wkb, srid=4326)
        return rows

    def drop_schema(self) -> None:
        """Drop this store's schema and everything in it (tests only)."""
        if self.schema is None:
            raise ValueError("refusing to drop the default schema")
        with self.engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
        self.engine.dispose()
