"""Storage backends: embedded SQLite (default) and PostgreSQL/PostGIS, one interface."""

from app.store.base import Conflict, DatasetMeta, NotFound, Store, StoreError
from app.store.factory import open_store

__all__ = ["Conflict", "DatasetMeta", "NotFound", "Store", "StoreError", "open_store"]
