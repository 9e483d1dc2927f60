"""Initial schema: datasets (areas, uptake, indicators, sites, blobs), results, plans,
jobs, API keys.

The tables are written out here rather than taken from :mod:`app.store.schema`, so that
this revision keeps creating exactly the version-1 schema whatever the code becomes.
Only the geometry columns differ between backends: plain SQLite keeps WKB blobs with
indexed bounding-box columns (no SpatiaLite), PostGIS keeps ``geometry(…, 4326)``
columns with GiST indexes.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _owner() -> sa.Column:
    return sa.Column(
        "dataset_id",
        sa.String(32),
        sa.ForeignKey("datasets.id", ondelete="CASCADE"),
        primary_key=True,
    )


def _postgis() -> bool:
    return op.get_context().dialect.name == "postgresql"


def _geometry(kind: str) -> sa.types.TypeEngine:
    if not _postgis():
        return sa.LargeBinary()
    from geoalchemy2 import Geometry

    # The GiST index is created explicitly below, under the name GeoAlchemy2 gives it.
    return Geometry(geometry_type=kind, srid=4326, spatial_index=False)


def upgrade() -> None:
    if _postgis():
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    schema_info = op.create_table(
        "schema_info",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n_areas", sa.Integer, nullable=False),
        sa.Column("n_sites", sa.Integer, nullable=False),
        sa.Column("org", sa.String(100), nullable=True),
        sa.Column("warnings", sa.Text, nullable=False),
        sa.Column("groups", sa.Text, nullable=False),
        sa.Column("indicator_columns", sa.Text, nullable=False),
        sa.Column("has_network", sa.Boolean, nullable=False),
    )
    op.create_index("ix_datasets_org", "datasets", ["org"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("dataset_id", sa.String(32), nullable=True),
        sa.Column("org", sa.String(100), nullable=True),
        sa.Column("result_url", sa.String(300), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("key_hash", sa.String(128), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("org", sa.String(100), nullable=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "areas",
        _owner(),
        sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("area_code", sa.String(64), nullable=False),
        sa.Column("area_name", sa.String(300), nullable=True),
        sa.Column("parent_code", sa.String(64), nullable=True),
        sa.Column("minx", sa.Float, nullable=False),
        sa.Column("miny", sa.Float, nullable=False),
        sa.Column("maxx", sa.Float, nullable=False),
        sa.Column("maxy", sa.Float, nullable=False),
        sa.Column("geom", _geometry("GEOMETRY"), nullable=False),
    )
    if _postgis():
        op.create_index("idx_areas_geom", "areas", ["geom"], postgresql_using="gist")
    else:
        op.create_index("ix_areas_bbox", "areas", ["dataset_id", "minx", "maxx", "miny", "maxy"])
    op.create_table(
        "uptake",
        _owner(),
        sa.Column("row", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("area_code", sa.String(64), nullable=False),
        sa.Column("age_band", sa.String(100), nullable=False),
        sa.Column("sex", sa.String(100), nullable=False),
        sa.Column("ethnic_group", sa.String(200), nullable=False),
        sa.Column("eligible", sa.BigInteger, nullable=False),
        sa.Column("vaccinated", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "indicators",
        _owner(),
        sa.Column("area_code", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("value", sa.Float, nullable=True),
    )
    op.create_table(
        "sites",
        _owner(),
        sa.Column("site_id", sa.String(100), primary_key=True),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("site_type", sa.String(50), nullable=False),
        sa.Column("subtype", sa.String(50), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("capacity_per_day", sa.Float, nullable=True),
        sa.Column("cost", sa.Float, nullable=True),
        sa.Column("community", sa.String(100), nullable=False),
        sa.Column("lon", sa.Float, nullable=False),
        sa.Column("lat", sa.Float, nullable=False),
        *([sa.Column("geom", _geometry("POINT"), nullable=False)] if _postgis() else []),
    )
    if _postgis():
        op.create_index("idx_sites_geom", "sites", ["geom"], postgresql_using="gist")
    op.create_table(
        "blobs",
        _owner(),
        sa.Column("part", sa.String(50), primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "results",
        _owner(),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("part", sa.String(50), primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "plans",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "dataset_id",
            sa.String(32),
            sa.ForeignKey("datasets.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("org", sa.String(100), nullable=True),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("ix_plans_dataset_id", "plans", ["dataset_id"])
    op.bulk_insert(schema_info, [{"id": 1, "version": 1}])


def downgrade() -> None:
    for name in (
        "plans",
        "results",
        "blobs",
        "sites",
        "indicators",
        "uptake",
        "areas",
        "api_keys",
        "jobs",
        "datasets",
        "schema_info",
    ):
        op.drop_table(name)
