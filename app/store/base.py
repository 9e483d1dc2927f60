"""The store interface every backend implements, and its errors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio.to_thread
import numpy as np

from geo.dataset import Dataset


class StoreError(Exception):
    """A storage failure that is not the caller's fault."""


class NotFound(StoreError):
    """The requested record does not exist (or is not visible to the caller)."""

    def __init__(self, kind: str, ident: str):
        self.kind = kind
        self.ident = ident
        super().__init__(f"{kind} {ident!r} not found")


class Conflict(StoreError):
    """The write conflicts with what is stored (e.g. a duplicate site id)."""


class SchemaMismatch(StoreError):
    """The database was created by another version of the schema."""


class StoreBusy(StoreError):
    """The database did not answer a read in time (it was cancelled); try again shortly."""


@dataclass(frozen=True)
class DatasetMeta:
    """What the API returns for a dataset."""

    id: str
    name: str
    n_areas: int
    created_at: datetime
    warnings: list[dict[str, Any]] = field(default_factory=list)
    org: str | None = None
    n_sites: int = 0
    groups: list[str] = field(default_factory=list)
    has_network: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "n_areas": self.n_areas,
            "n_sites": self.n_sites,
            "groups": self.groups,
            "has_network": self.has_network,
            "created_at": self.created_at.isoformat(),
            "warnings": self.warnings,
        }


class Store(ABC):
    """Persistence for datasets, analysis results, plans, jobs and API keys.

    Every write is one transaction: a failed dataset import leaves nothing behind, and
    plans are immutable once stored.
    """

    kind: str

    # --- datasets ---------------------------------------------------------------
    @abstractmethod
    def create_dataset(self, dataset: Dataset, *, org: str | None = None) -> DatasetMeta: ...

    @abstractmethod
    def list_datasets(
        self, *, org: str | None = None, all_orgs: bool = True, limit: int = 1000, offset: int = 0
    ) -> tuple[list[DatasetMeta], int]: ...

    @abstractmethod
    def get_dataset_meta(self, dataset_id: str) -> DatasetMeta: ...

    @abstractmethod
    def load_dataset(self, dataset_id: str) -> Dataset: ...

    @abstractmethod
    def delete_dataset(self, dataset_id: str) -> None: ...

    @abstractmethod
    def add_sites(self, dataset_id: str, sites: Any) -> int: ...

    @abstractmethod
    def area_positions_in_bbox(
        self, dataset_id: str, bbox: tuple[float, float, float, float]
    ) -> np.ndarray:
        """Positions of the areas whose envelope meets ``bbox``, sorted: an area's
        position is its row in :meth:`load_dataset`'s ``areas`` (its import order), so
        callers holding the dataset select rows without comparing area codes."""

    # --- cached analysis results -----------------------------------------------
    @abstractmethod
    def save_result(self, dataset_id: str, key: str, parts: dict[str, bytes]) -> None: ...

    @abstractmethod
    def has_result(self, dataset_id: str, key: str) -> bool: ...

    @abstractmethod
    def load_result(self, dataset_id: str, key: str) -> dict[str, bytes] | None: ...

    # --- plans -----------------------------------------------------------------
    @abstractmethod
    def save_plan(self, plan: dict[str, Any], *, org: str | None = None) -> None: ...

    @abstractmethod
    def get_plan(self, plan_id: str) -> tuple[dict[str, Any], str | None]: ...

    @abstractmethod
    def list_plans(
        self, *, dataset_id: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]: ...

    # --- jobs ------------------------------------------------------------------
    @abstractmethod
    def create_job(self, job: dict[str, Any]) -> None: ...

    @abstractmethod
    def update_job(self, job_id: str, **fields: Any) -> None: ...

    @abstractmethod
    def get_job(self, job_id: str) -> dict[str, Any]: ...

    @abstractmethod
    def fail_interrupted_jobs(self, *, stale_after_s: float = 60.0) -> int: ...

    @abstractmethod
    def touch_jobs(self, job_ids: list[str]) -> None: ...

    # --- API keys --------------------------------------------------------------
    @abstractmethod
    def create_key(self, record: dict[str, Any]) -> None: ...

    @abstractmethod
    def find_key(self, key_hash: str) -> dict[str, Any] | None: ...

    def key_and_area_positions(
        self, key_hash: str, dataset_id: str, bbox: tuple[float, float, float, float]
    ) -> tuple[dict[str, Any] | None, np.ndarray | None]:
        """:meth:`find_key` and, when the key is live (found, not revoked),
        :meth:`area_positions_in_bbox` — what a map view's request needs. A backend with a
        database server answers both in one round trip."""
        record = self.find_key(key_hash)
        if record is None or record.get("revoked_at") is not None:
            return record, None
        return record, self.area_positions_in_bbox(dataset_id, bbox)

    # Async forms for the event loop. By default they run the blocking read in a worker
    # thread; a backend with a database server waits for it on the loop instead.
    async def find_key_async(self, key_hash: str) -> dict[str, Any] | None:
        return await anyio.to_thread.run_sync(self.find_key, key_hash)

    async def key_and_area_positions_async(
        self, key_hash: str, dataset_id: str, bbox: tuple[float, float, float, float]
    ) -> tuple[dict[str, Any] | None, np.ndarray | None]:
        return await anyio.to_thread.run_sync(
            self.key_and_area_positions, key_hash, dataset_id, bbox
        )

    async def get_dataset_meta_async(self, dataset_id: str) -> DatasetMeta:
        # A fresh copy is returned on the loop; only a read goes to a worker thread.
        fresh = self.fresh_dataset_meta(dataset_id)
        if fresh is not None:
            return fresh
        return await anyio.to_thread.run_sync(self.get_dataset_meta, dataset_id)

    def fresh_dataset_meta(self, dataset_id: str) -> DatasetMeta | None:
        """The dataset's metadata if this process holds a copy fresh enough for
        :meth:`get_dataset_meta` to return without reading the database, else None."""
        return None

    @abstractmethod
    def list_keys(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    def revoke_key(self, key_id: str) -> None: ...

    @abstractmethod
    def count_keys(self) -> int: ...

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release connections."""
