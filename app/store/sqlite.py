"""The embedded store: one SQLite file, no server.

The machine's ``sqlite3`` cannot load SpatiaLite, so geometries are WKB blobs and
bounding-box queries use indexed ``minx/miny/maxx/maxy`` columns. WAL mode lets readers
continue while an import is written; an import is one transaction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event

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
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        super().__init__(engine, build_metadata(None))
