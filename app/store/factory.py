"""Choosing a backend from ``OUTREACH_DATABASE_URL``."""

from __future__ import annotations

from app.store.base import Store


def open_store(url: str) -> Store:
    """Open (creating if needed) the store at ``url``.

    ``sqlite:///path`` gives the embedded store; ``postgresql+psycopg://…`` gives PostGIS.
    """
    if url.startswith("sqlite"):
        from app.store.sqlite import SqliteStore

        return SqliteStore(url)
    if url.startswith(("postgresql", "postgres")):
        from app.store.postgis import PostgisStore

        return PostgisStore(url)
    raise ValueError(
        f"unsupported database URL {url.split(':', 1)[0]!r}: use sqlite:/// or postgresql+psycopg://"
    )
