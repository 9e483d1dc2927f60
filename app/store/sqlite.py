"""The embedded store: one SQLite file, no server.

The machine's ``sqlite3`` cannot load SpatiaLite, so geometries are WKB blobs and
bounding-box queries use indexed ``minx/miny/maxx/maxy`` columns. WAL mode lets readers
continue while an import is written; an import is one transaction.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from sqlalchemy import create_engine, event, select

from app.store.schema import build_metadata
from app.store.sql import SqlStore


class SqliteStore(SqlStore):
    kind = "sqlite"

    def __init__(self, url: str):
        path = url.split("sqlite:///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            _switch_to_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        super().__init__(engine, build_metadata(None))
        self._bbox_index: dict[str, _EnvelopeIndex] = {}
        self._bbox_lock = threading.Lock()

    def area_positions_in_bbox(
        self, dataset_id: str, bbox: tuple[float, float, float, float]
    ) -> np.ndarray:
        return self._envelopes(dataset_id).positions_in(bbox)

    def _envelopes(self, dataset_id: str) -> _EnvelopeIndex:
        """The in-memory R-tree of the dataset's area envelopes (plain SQLite has no
        spatial index; areas never change after an import, so the tree is built once
        per dataset)."""
        index = self._bbox_index.get(dataset_id)
        if index is None:
            with self._bbox_lock:
                index = self._bbox_index.get(dataset_id)
                if index is None:
                    index = self._build_bbox_index(dataset_id)
                    self._bbox_index[dataset_id] = index
        return index

    def _build_bbox_index(self, dataset_id: str) -> _EnvelopeIndex:
        table = self.t["areas"]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table.c.idx, table.c.minx, table.c.miny, table.c.maxx, table.c.maxy)
                .where(table.c.dataset_id == dataset_id)
                .order_by(table.c.idx)
            ).all()
        bounds = np.asarray([r[1:] for r in rows], dtype=float).reshape(-1, 4)
        return _EnvelopeIndex(
            positions=np.asarray([r[0] for r in rows], dtype=np.int64),
            tree=shapely.STRtree(
                shapely.box(bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3])
            ),
        )

    def forget_dataset(self, dataset_id: str) -> None:
        super().forget_dataset(dataset_id)
        self._bbox_index.pop(dataset_id, None)


@dataclass(frozen=True)
class _EnvelopeIndex:
    """A dataset's area positions, in import order, and an R-tree of their envelopes."""

    positions: np.ndarray
    tree: shapely.STRtree

    def positions_in(self, bbox: tuple[float, float, float, float]) -> np.ndarray:
        """Positions, sorted, of the areas whose envelope meets ``bbox``."""
        return self.positions[np.sort(self.tree.query(shapely.box(*bbox)))]


def _switch_to_wal(cursor: Any, *, wait_s: float = 60.0) -> None:
    """``PRAGMA journal_mode=WAL``, retried while another connection holds the lock.

    Changing the journal mode of a new database needs an exclusive lock, and SQLite
    answers "database is locked" at once instead of calling the busy handler, so
    processes starting together on a new file (measured: 6 of 60 four-way starts)
    would fail without the retry. Once the file is in WAL mode the pragma only reads it.
    """
    deadline = time.monotonic() + wait_s
    pause = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.2)
