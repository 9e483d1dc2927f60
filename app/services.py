"""What the routes share: settings, the store and in-memory caches.

Loading a dataset from the store (parsing WKB, pivoting indicators) costs far more than
a bounding-box query, so loaded datasets are kept in a small LRU cache; analysis results
are cached in memory and in the store, keyed by dataset and parameters.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from app.settings import Settings
from app.store.base import Store
from geo.dataset import Dataset

T = TypeVar("T")


class LruCache(Generic[T]):
    """A thread-safe LRU cache whose loader runs at most once per key at a time."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[Any, T] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[Any, threading.Lock] = {}

    def get(self, key: Any, loader: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            value = loader()
            with self._lock:
                self._items[key] = value
                self._items.move_to_end(key)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
                self._key_locks.pop(key, None)
            return value

    def peek(self, key: Any) -> T | None:
        """The value if it is cached (marked as recently used), else None — never loads."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def contains(self, key: Any) -> bool:
        with self._lock:
            return key in self._items

    def discard(self, predicate: Callable[[Any], bool]) -> None:
        with self._lock:
            for key in [k for k in self._items if predicate(k)]:
                del self._items[key]


@dataclass
class Services:
    settings: Settings
    store: Store
    datasets: LruCache[Dataset] = field(default_factory=lambda: LruCache(4))
    results: LruCache[Any] = field(default_factory=lambda: LruCache(64))
    extras: dict[str, Any] = field(default_factory=dict)

    def jobs(self) -> Any:
        """The job runner (``app.jobs.JobRunner``), created with the app."""
        return self.extras["jobs"]

    def dataset(self, dataset_id: str) -> Dataset:
        return self.datasets.get(dataset_id, lambda: self.store.load_dataset(dataset_id))

    def forget(self, dataset_id: str) -> None:
        """Drop cached copies after the dataset changed or was deleted."""
        self.datasets.discard(lambda key: key == dataset_id)
        self.results.discard(
            lambda key: isinstance(key, tuple) and bool(key) and key[0] == dataset_id
        )
