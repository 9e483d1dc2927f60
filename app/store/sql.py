"""The SQLAlchemy store shared by the SQLite and PostGIS backends.

Dialect specifics (geometry binding and reading, bounding-box filters, connection set-up)
are the few hook methods that :class:`~app.store.sqlite.SqliteStore` and
:class:`~app.store.postgis.PostgisStore` override.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Engine, MetaData, Table, delete, func, select, update
from sqlalchemy.sql.elements import ColumnElement

from app.store._rows import area_columns, indicator_columns, site_columns, uptake_columns
from app.store._sql_records import SqlRecords
from app.store.base import Conflict, DatasetMeta, NotFound, Store
from geo.dataset import SITE_COLUMNS, Dataset, empty_sites
from geo.projection import WGS84

_BATCH = 20_000
_META_TTL_S = 2.0


class SqlStore(SqlRecords, Store):
    """A store over any SQLAlchemy engine; subclasses supply the geometry hooks."""

    kind = "sql"

    def __init__(self, engine: Engine, metadata: MetaData):
        self._meta_cache: dict[str, tuple[float, DatasetMeta]] = {}
        self.engine = engine
        # Single-statement reads on every request (key, metadata, bbox) run without a
        # transaction: no BEGIN and no ROLLBACK round trips to a database server.
        self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.metadata = metadata
        self.t: dict[str, Table] = dict(metadata.tables)
        self._check_schema()

    # --- hooks ---------------------------------------------------------------
    def _geom_read(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        return column

    def _prepare_schema(self) -> None:
        """Create extensions or other prerequisites before the tables."""

    # --- schema --------------------------------------------------------------
    def _check_schema(self) -> None:
        # Alembic migrations create a new database and check an existing one (refusing an
        # older or unknown revision with SchemaMismatch): see app/store/migrate.py.
        from app.store.migrate import ensure_schema

        try:
            ensure_schema(self.engine, prepare=self._prepare_schema)
        except BaseException:
            self.engine.dispose()  # the store is not opened: release its connections
            raise

    # --- datasets ------------------------------------------------------------
    def create_dataset(self, dataset: Dataset, *, org: str | None = None) -> DatasetMeta:
        dataset_id = uuid.uuid4().hex
        now = datetime.now(UTC)
        warnings = [p.to_dict() for p in dataset.warnings]
        groups = dataset.groups_present()
        with self.engine.begin() as conn:
            conn.execute(
                self.t["datasets"]
                .insert()
                .values(
                    id=dataset_id,
                    name=dataset.name,
                    created_at=now,
                    n_areas=len(dataset.areas),
                    n_sites=len(dataset.sites),
                    org=org,
                    warnings=json.dumps(warnings),
                    groups=json.dumps(groups),
                    indicator_columns=json.dumps(list(dataset.indicators.columns)),
                    has_network=dataset.network is not None,
                )
            )
            self._insert_contents(conn, dataset_id, dataset)
            if dataset.network is not None:
                buffer = io.BytesIO()
                np.savez_compressed(buffer, **dataset.network.to_arrays())  # type: ignore[attr-defined]
                conn.execute(
                    self.t["blobs"]
                    .insert()
                    .values(dataset_id=dataset_id, part="network", data=buffer.getvalue())
                )
        return DatasetMeta(
            dataset_id,
            dataset.name,
            len(dataset.areas),
            now,
            warnings,
            org,
            len(dataset.sites),
            groups,
            dataset.network is not None,
        )

    def _insert_contents(self, conn: Any, dataset_id: str, dataset: Dataset) -> None:
        """Bulk-insert areas, uptake, indicators and sites inside the import transaction."""
        self._bulk(conn, "areas", *area_columns(dataset_id, dataset.areas, self._encode_geometry))
        self._bulk(conn, "uptake", *uptake_columns(dataset_id, dataset.uptake))
        self._bulk(conn, "indicators", *indicator_columns(dataset_id, dataset.indicators))
        self._bulk(
            conn,
            "sites",
            *site_columns(dataset_id, dataset.sites, start=0, encode=self._site_geometry),
        )

    def _bulk(self, conn: Any, table: str, names: list[str], columns: list[list[Any]]) -> None:
        """Insert rows given column by column with one ``executemany`` of tuples (the
        driver's own fast path; several times faster than SQLAlchemy rows of dicts)."""
        if not columns or not len(columns[0]):
            return
        quote = conn.dialect.identifier_preparer.quote
        marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        statement = f"INSERT INTO {quote(table)} ({', '.join(quote(n) for n in names)}) VALUES ({', '.join([marker] * len(names))})"
        rows = list(zip(*columns, strict=True))
        for start in range(0, len(rows), _BATCH):
            conn.exec_driver_sql(statement, rows[start : start + _BATCH])

    def _encode_geometry(self, geometries: np.ndarray) -> list[Any]:
        """Area geometry as the backend stores it (WKB blobs here)."""
        return shapely.to_wkb(geometries).tolist()  # type: ignore[no-any-return]

    #: Sites' geometry column encoder (None: the backend has no site geometry column).
    _site_geometry: Any = None

    def list_datasets(
        self, *, org: str | None = None, all_orgs: bool = True, limit: int = 1000, offset: int = 0
    ) -> tuple[list[DatasetMeta], int]:
        table = self.t["datasets"]
        where = [] if all_orgs else [(table.c.org.is_(None)) | (table.c.org == org)]
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
            rows = (
                conn.execute(
                    select(table)
                    .where(*where)
                    .order_by(table.c.created_at.desc(), table.c.id)
                    .limit(limit)
                    .offset(offset)
                )
                .mappings()
                .all()
            )
        return [self._meta(row) for row in rows], int(total)

    def get_dataset_meta(self, dataset_id: str) -> DatasetMeta:
        """The dataset's metadata. Read on every API request, so kept for a couple of
        seconds: a dataset deleted through another worker process disappears from this
        one within ``_META_TTL_S`` (through this store, at once)."""
        fresh = self.fresh_dataset_meta(dataset_id)
        if fresh is not None:
            return fresh
        now = time.monotonic()
        table = self.t["datasets"]
        with self._reader.connect() as conn:
            row = conn.execute(select(table).where(table.c.id == dataset_id)).mappings().first()
        return self._remember_meta(dataset_id, now, row)

    def _remember_meta(self, dataset_id: str, read_at: float, row: Any) -> DatasetMeta:
        """The metadata of a ``datasets`` row read at ``read_at`` (monotonic), kept for
        :meth:`get_dataset_meta`; NotFound when there was no row."""
        if row is None:
            self._meta_cache.pop(dataset_id, None)
            raise NotFound("dataset", dataset_id)
        meta = self._meta(row)
        self._meta_cache[dataset_id] = (read_at, meta)
        return meta

    def fresh_dataset_meta(self, dataset_id: str) -> DatasetMeta | None:
        cached = self._meta_cache.get(dataset_id)
        if cached is not None and time.monotonic() - cached[0] < _META_TTL_S:
            return cached[1]
        return None

    def load_dataset(self, dataset_id: str) -> Dataset:
        meta = self.get_dataset_meta(dataset_id)
        t = self.t
        uptake_columns = ["area_code", "age_band", "sex", "ethnic_group", "eligible", "vaccinated"]
        with self.engine.connect() as conn:
            areas = _plain(
                conn.execute(
                    select(
                        t["areas"].c.area_code,
                        t["areas"].c.area_name,
                        t["areas"].c.parent_code,
                        self._geom_read(t["areas"].c.geom).label("geom"),
                    )
                    .where(t["areas"].c.dataset_id == dataset_id)
                    .order_by(t["areas"].c.idx)
                )
            )
            uptake = pd.DataFrame(
                _plain(
                    conn.execute(
                        select(*(t["uptake"].c[c] for c in uptake_columns))
                        .where(t["uptake"].c.dataset_id == dataset_id)
                        .order_by(t["uptake"].c.row)
                    )
                ),
                columns=uptake_columns,
            )
            indicators = pd.DataFrame(
                _plain(
                    conn.execute(
                        select(
                            t["indicators"].c.area_code,
                            t["indicators"].c.name,
                            t["indicators"].c.value,
                        ).where(t["indicators"].c.dataset_id == dataset_id)
                    )
                ),
                columns=["area_code", "name", "value"],
            )
            sites = self._load_sites(conn, dataset_id)
            network_blob = conn.execute(
                select(t["blobs"].c.data).where(
                    (t["blobs"].c.dataset_id == dataset_id) & (t["blobs"].c.part == "network")
                )
            ).scalar()
        area_frame = pd.DataFrame(areas, columns=["area_code", "area_name", "parent_code", "geom"])
        geometry = shapely.from_wkb([bytes(g) for g in area_frame.pop("geom")])
        area_frame = area_frame.astype({"area_code": "str"})
        area_gdf = gpd.GeoDataFrame(
            area_frame,
            geometry=gpd.GeoSeries(geometry, crs=WGS84),
            crs=WGS84,
        )
        uptake = uptake.astype({"eligible": np.int64, "vaccinated": np.int64})
        wide = (
            indicators.pivot(index="area_code", columns="name", values="value")
            if len(indicators)
            else pd.DataFrame(index=pd.Index([], name="area_code"))
        )
        order = json.loads(self._raw_meta_field(dataset_id, "indicator_columns"))
        wide = wide.reindex(columns=[c for c in order if c in wide.columns])
        wide = wide.reindex(area_gdf["area_code"][area_gdf["area_code"].isin(wide.index)]).astype(
            np.float64
        )
        wide.columns.name = None
        network = None
        if network_blob is not None:
            from geo.network import StreetNetwork

            with np.load(io.BytesIO(bytes(network_blob))) as arrays:
                network = StreetNetwork.from_arrays({k: arrays[k] for k in arrays.files})
        from geo._errors import Problem

        warnings = [Problem(**w) for w in meta.warnings]
        return Dataset(meta.name, area_gdf, uptake, wide, sites, network, warnings)

    def delete_dataset(self, dataset_id: str) -> None:
        self.get_dataset_meta(dataset_id)
        self.forget_dataset(dataset_id)
        with self.engine.begin() as conn:
            for name in ("results", "blobs", "sites", "indicators", "uptake", "areas", "plans"):
                conn.execute(delete(self.t[name]).where(self.t[name].c.dataset_id == dataset_id))
            conn.execute(delete(self.t["datasets"]).where(self.t["datasets"].c.id == dataset_id))

    def forget_dataset(self, dataset_id: str) -> None:
        """Drop what this store keeps in memory about a dataset."""
        self._meta_cache.pop(dataset_id, None)

    def add_sites(self, dataset_id: str, sites: gpd.GeoDataFrame) -> int:
        self.forget_dataset(dataset_id)
        table = self.t["sites"]
        with self.engine.begin() as conn:
            meta = conn.execute(
                select(self.t["datasets"].c.n_sites).where(self.t["datasets"].c.id == dataset_id)
            ).first()
            if meta is None:
                raise NotFound("dataset", dataset_id)
            existing = set(
                conn.execute(
                    select(table.c.site_id).where(table.c.dataset_id == dataset_id)
                ).scalars()
            )
            clash = sorted(set(sites["site_id"]) & existing)
            if clash:
                raise Conflict(f"site ids already in the dataset: {', '.join(clash[:20])}")
            start = int(
                conn.execute(
                    select(func.coalesce(func.max(table.c.idx) + 1, 0)).where(
                        table.c.dataset_id == dataset_id
                    )
                ).scalar_one()
            )
            self._bulk(
                conn,
                "sites",
                *site_columns(dataset_id, sites, start=start, encode=self._site_geometry),
            )
            conn.execute(
                update(self.t["datasets"])
                .where(self.t["datasets"].c.id == dataset_id)
                .values(n_sites=self.t["datasets"].c.n_sites + len(sites))
            )
            conn.execute(
                delete(self.t["results"]).where(self.t["results"].c.dataset_id == dataset_id)
            )
        return len(sites)

    def close(self) -> None:
        self.engine.dispose()

    # --- helpers -------------------------------------------------------------
    def _meta(self, row: Any) -> DatasetMeta:
        created = row["created_at"]
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        return DatasetMeta(
            row["id"],
            row["name"],
            row["n_areas"],
            created,
            json.loads(row["warnings"]),
            row["org"],
            row["n_sites"],
            json.loads(row["groups"]),
            bool(row["has_network"]),
        )

    def _raw_meta_field(self, dataset_id: str, field: str) -> str:
        table = self.t["datasets"]
        with self.engine.connect() as conn:
            return str(
                conn.execute(select(table.c[field]).where(table.c.id == dataset_id)).scalar_one()
            )

    def _load_sites(self, conn: Any, dataset_id: str) -> gpd.GeoDataFrame:
        table = self.t["sites"]
        rows = conn.execute(
            select(*(table.c[c] for c in (*SITE_COLUMNS, "lon", "lat")))
            .where(table.c.dataset_id == dataset_id)
            .order_by(table.c.idx)
        ).all()
        if not rows:
            return empty_sites()
        frame = pd.DataFrame(rows, columns=[*SITE_COLUMNS, "lon", "lat"])
        frame = frame.astype({"capacity_per_day": float, "cost": float})
        frame = frame.astype(
            {c: "str" for c in ("site_id", "site_type", "subtype", "status", "name", "community")}
        )
        geometry = gpd.points_from_xy(frame.pop("lon"), frame.pop("lat"), crs=WGS84)
        return gpd.GeoDataFrame(frame, geometry=geometry, crs=WGS84)


def _plain(result: Any) -> list[tuple[Any, ...]]:
    """Result rows as plain tuples: pandas probes each row for namedtuple fields, and a
    SQLAlchemy Row answers that probe through a slow exception path (3 s per 500k rows)."""
    return [tuple(row) for row in result]
