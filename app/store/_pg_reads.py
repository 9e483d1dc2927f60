"""The reads every API request makes on PostGIS, over raw psycopg connections.

Each request looks its API key up (never cached, so a key revoked by any process stops
working at once in all of them), and a street-level map view asks for the areas in a
bounding box. Through SQLAlchemy Core those were two statements costing about 0.5 ms of
client CPU per request: pool checkout with a pre-ping round trip each, compile-cache
lookups, rows turned into mappings. Here each read is one server-side prepared
statement (parsed and planned once per connection) on a connection taken from a short
LIFO list: 20–35 µs of client CPU and a single round trip, and the key and the bbox are
answered by the same statement.

The ``*_async`` reads wait for the server on the event loop instead of a worker thread.
That matters more than the CPU: when dozens of threads each hold a request and compete
for the GIL, some wait for seconds (measured: p99 of 2–7 s at 2,000 req/s, against
70 ms with one thread). Each event loop gets one connection, used by one statement at
a time: a round trip takes about 50 µs, far below a worker's CPU time per request, and
with several connections per worker some replies sat unread in the client's socket for
0.3–2 s under load (measured with ``ss``; p99 0.5–2.6 s against 30–85 ms with one).
Connections are kept per event loop, since a connection must not be awaited from two.

Instead of a pre-ping on every checkout, a statement that fails on a broken connection
(server restart, idle timeout, terminated backend) is retried once on a new connection:
these statements only read, so running one twice is harmless.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
from sqlalchemy import Engine

from app.store.base import StoreBusy

#: The columns of a key record, as :meth:`app.store.base.Store.find_key` returns them.
KEY_COLUMNS = ("id", "key_hash", "prefix", "role", "org", "name", "created_at", "revoked_at")
_KEY_SELECT = ", ".join(f"k.{c}" for c in KEY_COLUMNS)
# ``&&`` against an envelope is what the GiST index on areas.geom answers; positions are
# sorted so callers get areas in import order whatever plan the server picks.
_AREAS_IN_BOX = (
    "SELECT a.idx FROM areas AS a WHERE a.geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326) "
    "AND a.dataset_id = %s ORDER BY a.idx"
)
_FIND_KEY = f"SELECT {_KEY_SELECT} FROM api_keys AS k WHERE k.key_hash = %s"
# One row whatever the key: its columns are NULL when it is unknown, and the areas are
# only looked for when the key is live, so a wrong key costs the server no index scan.
_KEY_AND_AREAS = (
    f"SELECT {_KEY_SELECT}, CASE WHEN k.id IS NOT NULL AND k.revoked_at IS NULL "
    f"THEN ARRAY({_AREAS_IN_BOX}) END "
    "FROM (VALUES (1)) AS one LEFT JOIN api_keys AS k ON k.key_hash = %s"
)
#: The ``datasets`` columns :meth:`app.store.sql.SqlStore._meta` reads.
DATASET_COLUMNS = (
    "id",
    "name",
    "created_at",
    "n_areas",
    "n_sites",
    "org",
    "warnings",
    "groups",
    "has_network",
)
_DATASET = (
    f"SELECT {', '.join(f'd.{c}' for c in DATASET_COLUMNS)} FROM datasets AS d WHERE d.id = %s"
)
Bbox = tuple[float, float, float, float]
_TIMED_OUT = "The database did not answer within the statement timeout."
Rows = list[tuple[Any, ...]]
KeyAndAreas = tuple[dict[str, Any] | None, np.ndarray | None]


#: A hot read is one indexed lookup, well under a millisecond. One still running after
#: this long is stuck (e.g. behind a lock taken by a migration or a manual session) and,
#: with one connection per event loop, would hold up every map request of its worker, so
#: the server cancels it and that request alone gets a 503 (Retry-After) instead.
STATEMENT_TIMEOUT_MS = 5_000


class HotReads:
    """Prepared per-request reads on a few connections of the store's database.

    Parameters
    ----------
    engine
        The store's engine: its URL says where to connect.
    connect_args
        Extra libpq parameters (e.g. a ``search_path``), as given to ``create_engine``.
    blocking
        Most connections open at once for blocking reads (worker threads). A read holds
        one for a single round trip, so a few serve a whole worker process; more would
        only add server processes competing for its cores.
    per_loop
        Connections for the async reads of each event loop (see the module notes).
    statement_timeout_ms
        The server cancels a read still running after this long (see
        :data:`STATEMENT_TIMEOUT_MS`); the caller gets :class:`StoreBusy`.
    """

    def __init__(
        self,
        engine: Engine,
        connect_args: dict[str, Any],
        *,
        blocking: int = 4,
        per_loop: int = 1,
        statement_timeout_ms: float = STATEMENT_TIMEOUT_MS,
    ):
        _args, params = engine.dialect.create_connect_args(engine.url)
        params.pop("context", None)  # SQLAlchemy's type adapters: plain psycopg ones here
        # libpq startup options from the URL and from connect_args (a search_path), plus
        # the statement timeout, which the server enforces.
        options = " ".join(
            o
            for o in (
                params.pop("options", None),
                connect_args.get("options"),
                f"-cstatement_timeout={int(statement_timeout_ms)}",
            )
            if o
        )
        # Autocommit: a single read needs no transaction (no BEGIN/ROLLBACK round trips).
        self._params = {**params, **connect_args, "options": options, "autocommit": True}
        self._per_loop = per_loop
        self._idle: list[psycopg.Connection[tuple[Any, ...]]] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(blocking)
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopConnections]
        self._loops = weakref.WeakKeyDictionary()
        self._async_open: set[psycopg.AsyncConnection[tuple[Any, ...]]] = set()

    # --- the reads -----------------------------------------------------------------
    def find_key(self, key_hash: str) -> dict[str, Any] | None:
        return _key_record(self._query(_FIND_KEY, (key_hash,)))

    async def find_key_async(self, key_hash: str) -> dict[str, Any] | None:
        return _key_record(await self._query_async(_FIND_KEY, (key_hash,)))

    async def dataset_async(self, dataset_id: str) -> dict[str, Any] | None:
        """The dataset's row (:data:`DATASET_COLUMNS`), or None."""
        rows = await self._query_async(_DATASET, (dataset_id,))
        return dict(zip(DATASET_COLUMNS, rows[0], strict=True)) if rows else None

    def area_positions(self, dataset_id: str, bbox: Bbox) -> np.ndarray:
        """Positions (``areas.idx``) of the dataset's areas whose envelope meets ``bbox``,
        sorted."""
        rows = self._query(_AREAS_IN_BOX, (*bbox, dataset_id))
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def key_and_area_positions(self, key_hash: str, dataset_id: str, bbox: Bbox) -> KeyAndAreas:
        """The key's record and, when the key is live, :meth:`area_positions` — in one
        round trip. The areas are None for an unknown or revoked key."""
        return _key_and_areas(self._query(_KEY_AND_AREAS, (*bbox, dataset_id, key_hash)))

    async def key_and_area_positions_async(
        self, key_hash: str, dataset_id: str, bbox: Bbox
    ) -> KeyAndAreas:
        rows = await self._query_async(_KEY_AND_AREAS, (*bbox, dataset_id, key_hash))
        return _key_and_areas(rows)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            open_async, self._async_open = self._async_open, set()
            self._loops.clear()
        for conn in idle:
            conn.close()
        for async_conn in open_async:
            # AsyncConnection.close() only finishes the libpq connection (there is
            # nothing to await outside a psycopg pool); doing that directly closes it
            # from any thread, whether or not its event loop still runs.
            async_conn.pgconn.finish()

    # --- blocking connections ------------------------------------------------------
    def _query(self, query: str, params: Sequence[Any]) -> Rows:
        """The rows of a prepared ``query`` on a pooled connection, retried once on a new
        connection when the pooled one turns out to be broken."""
        with self._slots:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = psycopg.connect(**self._params)
            try:
                rows = conn.execute(query, params, prepare=True).fetchall()
            except psycopg.errors.QueryCanceled as exc:
                # The statement timeout: the connection is fine, the read is not retried.
                with self._lock:
                    self._idle.append(conn)
                raise StoreBusy(_TIMED_OUT) from exc
            except psycopg.Error:
                conn.close()
                conn = psycopg.connect(**self._params)
                try:
                    rows = conn.execute(query, params, prepare=True).fetchall()
                except BaseException:
                    conn.close()
                    raise
            except BaseException:
                conn.close()
                raise
            with self._lock:
                self._idle.append(conn)
        return rows

    # --- async connections, per event loop -----------------------------------------
    async def _query_async(self, query: str, params: Sequence[Any]) -> Rows:
        """:meth:`_query` on one of the running event loop's connections."""
        pool = self._loop_connections()
        async with pool.slots:
            conn = pool.idle.pop() if pool.idle else await self._connect_async()
            try:
                cursor = await conn.execute(query, params, prepare=True)
                rows = await cursor.fetchall()
            except psycopg.errors.QueryCanceled as exc:
                pool.idle.append(conn)
                raise StoreBusy(_TIMED_OUT) from exc
            except psycopg.Error:
                await self._discard_async(conn)
                conn = await self._connect_async()
                try:
                    cursor = await conn.execute(query, params, prepare=True)
                    rows = await cursor.fetchall()
                except BaseException:
                    await self._discard_async(conn)
                    raise
            except BaseException:
                # Also a cancelled request: the connection may be mid-statement.
                await self._discard_async(conn)
                raise
            pool.idle.append(conn)
        return rows

    def _loop_connections(self) -> _LoopConnections:
        loop = asyncio.get_running_loop()
        pool = self._loops.get(loop)
        if pool is None:
            with self._lock:
                pool = self._loops.setdefault(loop, _LoopConnections(self._per_loop))
        return pool

    async def _connect_async(self) -> psycopg.AsyncConnection[tuple[Any, ...]]:
        conn = await psycopg.AsyncConnection.connect(**self._params)
        with self._lock:
            self._async_open.add(conn)
        return conn

    async def _discard_async(self, conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> None:
        with self._lock:
            self._async_open.discard(conn)
        await conn.close()


class _LoopConnections:
    """One event loop's idle async connections (LIFO) and its bound on open ones."""

    def __init__(self, size: int):
        self.idle: list[psycopg.AsyncConnection[tuple[Any, ...]]] = []
        self.slots = asyncio.Semaphore(size)


def _key_record(rows: Rows) -> dict[str, Any] | None:
    return dict(zip(KEY_COLUMNS, rows[0], strict=True)) if rows else None


def _key_and_areas(rows: Rows) -> KeyAndAreas:
    (row,) = rows  # the statement always returns its one row
    if row[0] is None:
        return None, None
    positions = row[-1]
    record = dict(zip(KEY_COLUMNS, row[:-1], strict=True))
    return record, None if positions is None else np.asarray(positions, dtype=np.int64)
