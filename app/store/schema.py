"""Table definitions shared by both backends.

Only the geometry columns differ: plain SQLite keeps WKB blobs plus indexed bounding-box
columns (the machine's ``sqlite3`` cannot load SpatiaLite), PostGIS keeps ``geometry``
columns with GiST indexes. :func:`build_metadata` takes the geometry column type.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeEngine

#: Bump with every schema change (and add an Alembic migration).
SCHEMA_VERSION = 1


def build_metadata(geometry_type: Callable[[str], TypeEngine] | None) -> MetaData:
    """Tables for a backend.

    Parameters
    ----------
    geometry_type
        Called with ``"GEOMETRY"`` (areas: Polygon or MultiPolygon) or ``"POINT"`` to make a geometry column type, or
        ``None`` for plain SQLite (WKB in a blob).
    """
    metadata = MetaData()

    def geom(kind: str) -> Column:
        if geometry_type is None:
            return Column("geom", LargeBinary, nullable=False)
        return Column("geom", geometry_type(kind), nullable=False)

    Table(
        "schema_info",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("version", Integer, nullable=False),
    )
    Table(
        "datasets",
        metadata,
        Column("id", String(32), primary_key=True),
        Column("name", String(200), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("n_areas", Integer, nullable=False),
        Column("n_sites", Integer, nullable=False, default=0),
        Column("org", String(100), nullable=True, index=True),
        Column("warnings", Text, nullable=False),
        Column("groups", Text, nullable=False),
        Column("indicator_columns", Text, nullable=False),
        Column("has_network", Boolean, nullable=False, default=False),
    )
    areas = Table(
        "areas",
        metadata,
        Column(
            "dataset_id",
            String(32),
            ForeignKey("datasets.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("idx", Integer, primary_key=True),
        Column("area_code", String(64), nullable=False),
        Column("area_name", String(300), nullable=True),
        Column("parent_code", String(64), nullable=True),
        Column("minx", Float, nullable=False),
        Column("miny", Float, nullable=False),
        Column("maxx", Float, nullable=False),
        Column("maxy", Float, nullable=False),
        geom("GEOMETRY"),
    )
    if geometry_type is None:
        Index(
            "ix_areas_bbox",
            areas.c.dataset_id,
            areas.c.minx,
            areas.c.maxx,
            areas.c.miny,
            areas.c.maxy,
        )
    Table(
        "uptake",
        metadata,
        Column(
            "dataset_id",
            String(32),
            ForeignKey("datasets.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("row", Integer, primary_key=True),
        Column("area_code", String(64), nullable=False),
        Column("age_band", String(100), nullable=False),
        Column("sex", String(100), nullable=False),
        Column("ethnic_group", String(200), nullable=False),
        Column("eligible", BigInteger, nullable=False),
        Column("vaccinated", BigInteger, nullable=False),
    )
    Table(
        "indicators",
        metadata,
        Column(
            "dataset_id",
            String(32),
            ForeignKey("datasets.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("area_code", String(64), primary_key=True),
        Column("name", String(200), primary_key=True),
        Column("value", Float, nullable=True),
    )
    Table(
        "sites",
        metadata,
        Column(
            "dataset_id",
            String(32),
            ForeignKey("datasets.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("site_id", String(100), primary_key=True),
        Column("idx", Integer, nullable=False),
        Column("site_type", String(50), nullable=False),
        Column("subtype", String(50), nullable=False),
        Column("status", String(20), nullable=False),
        Column("name", String(300), nullable=False),
        Column("capacity_per_day", Float, nullable=True),
        Column("cost", Float, nullable=True),
        Column("community", String(100), nullable=False),
        Column("lon", Float, nullable=False),
        Column("lat", Float, nullable=False),
        *([] if geometry_type is None else [geom("POINT")]),
    )
    Table(
        "blobs",
        metadata,
        Column(
            "dataset_id",
            String(32),
            ForeignKey("datasets.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("part", String(50), primary_key=True),
        Column("data", LargeBinary, nullable=False),
    )
    Table(
        "results",
        metadata,
        Column(
            "dataset_id",
            String(32),
            ForeignKey("datasets.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("key", String(64), primary_key=True),
        Column("part", String(50), primary_key=True),
        Column("data", LargeBinary, nullable=False),
    )
    Table(
        "plans",
        metadata,
        Column("id", String(32), primary_key=True),
        Column(
            "dataset_id",
            String(32),
            ForeignKey("datasets.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("org", String(100), nullable=True),
        Column("summary", Text, nullable=False),
        Column("body", Text, nullable=False),
    )
    Table(
        "jobs",
        metadata,
        Column("id", String(32), primary_key=True),
        Column("kind", String(30), nullable=False),
        Column("status", String(20), nullable=False),
        Column("progress", Float, nullable=False, default=0.0),
        Column("message", Text, nullable=True),
        Column("dataset_id", String(32), nullable=True),
        Column("org", String(100), nullable=True),
        Column("result_url", String(300), nullable=True),
        Column("error", Text, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )
    Table(
        "api_keys",
        metadata,
        Column("id", String(32), primary_key=True),
        Column("key_hash", String(128), nullable=False, unique=True),
        Column("prefix", String(16), nullable=False),
        Column("role", String(20), nullable=False),
        Column("org", String(100), nullable=True),
        Column("name", String(200), nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("revoked_at", DateTime(timezone=True), nullable=True),
    )
    return metadata
