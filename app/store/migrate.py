"""Schema migrations (Alembic) for both backends.

A new, empty database is brought to the newest revision ("head") by the migrations in
``app/migrations/versions`` — never by ``metadata.create_all`` — so a database made today
and one upgraded from an old release have the same schema. Opening a store checks the
revision and refuses a database at any other one with :class:`SchemaMismatch`: an older
one needs ``outreach migrate`` (an explicit step an operator takes, after a backup), a
newer or unknown one was written by another release and is never touched.

Every upgrade runs in one transaction under a lock, so two processes starting on the same
new database do not both create the tables, and a failed upgrade changes nothing:
PostgreSQL takes a transaction-scoped advisory lock (its DDL is transactional); SQLite
starts the transaction with ``BEGIN IMMEDIATE``, which takes the database's write lock
(``sqlite3`` would otherwise commit each ``CREATE TABLE`` on its own).

Databases created before migrations existed (version 1 of the schema made by
``create_all``, with no ``alembic_version`` table) hold exactly revision ``0001`` and are
stamped with it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, inspect, text

from app.store.base import SchemaMismatch
from app.store.schema import SCHEMA_VERSION

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
#: The revision a pre-Alembic database (``schema_info.version == 1``) is equivalent to.
_LEGACY_REVISIONS = {1: "0001"}
#: Key of the PostgreSQL advisory lock that serialises migrations ("outreach" in ASCII).
_PG_LOCK_KEY = 0x6F757472656163
_OUR_TABLES = frozenset({"schema_info", "datasets", "areas", "uptake", "api_keys"})

T = TypeVar("T")


def migrate(url: str, *, script_location: Path | None = None) -> str:
    """Upgrade the database at ``url`` to the newest revision and return that revision.

    An empty database gets the whole schema; a database already at the newest revision
    is left as it is. A database at a revision this release does not know (written by a
    newer release) raises :class:`SchemaMismatch` and is not changed.

    Parameters
    ----------
    url
        SQLAlchemy URL, as ``OUTREACH_DATABASE_URL`` (``sqlite:///…`` or
        ``postgresql+psycopg://…``; a PostgreSQL ``options=-csearch_path=…`` query
        parameter selects a schema).
    script_location
        Another migrations folder (tests only).
    """
    return run_with_connection(
        url, lambda conn: _upgrade(conn, script_location=script_location, prepare=None)
    )


def ensure_schema(
    engine: Engine,
    *,
    prepare: Callable[[], None] | None = None,
    script_location: Path | None = None,
) -> str:
    """What a store does when it opens: migrate an empty database to head, accept one at
    head, refuse anything else. Returns the revision.

    Parameters
    ----------
    engine
        The store's engine.
    prepare
        Called before the first migration of an empty database (PostGIS: make sure the
        extension exists).
    script_location
        Another migrations folder (tests only).

    Raises
    ------
    SchemaMismatch
        The database is at an older revision (run ``outreach migrate``) or at one this
        release does not know.
    """

    def verify(conn: Connection, tables: set[str]) -> str:
        revision = _require_known(conn, script_location=script_location)
        head = head_revision(script_location=script_location)
        if revision != head:
            raise SchemaMismatch(
                f"the database schema is at revision {revision!r} but this release needs "
                f"{head!r}; back the database up and run `outreach migrate` "
                "(with the same OUTREACH_DATABASE_URL), then start the service again"
            )
        _check_schema_info(conn, tables)
        return str(revision)

    def create_or_adopt(conn: Connection) -> str:
        tables = _tables(conn)  # again: another process may have been first
        if not tables & _OUR_TABLES and "alembic_version" not in tables:
            return _upgrade(conn, script_location=script_location, prepare=prepare)
        _adopt_legacy(conn, tables, script_location=script_location)
        return verify(conn, tables)

    # The usual case, a database with a migration history, is checked without the lock:
    # on SQLite it is the database's write lock, which an import may hold for seconds.
    with engine.connect() as conn:
        tables = _tables(conn)
        if "alembic_version" in tables:
            return verify(conn, tables)
    return _in_migration_transaction(engine, create_or_adopt)


def head_revision(*, script_location: Path | None = None) -> str:
    """The newest revision this release's migrations create."""
    head = ScriptDirectory.from_config(_config(script_location)).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` for a database Alembic never touched)."""
    with engine.connect() as conn:
        return migration_context(conn).get_current_revision()


def database_revision(url: str) -> str | None:
    """The revision of the database at ``url`` (``None``: empty, or made before migrations)."""
    return run_with_connection(url, lambda conn: migration_context(conn).get_current_revision())


def run_with_connection(url: str, work: Callable[[Connection], T]) -> T:
    """Open ``url`` with a short-lived engine and run ``work`` in the migration transaction."""
    if url.startswith("sqlite:///"):
        path = url.split("sqlite:///", 1)[1].split("?", 1)[0]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60})
    else:
        engine = create_engine(url)
    try:
        return _in_migration_transaction(engine, work)
    finally:
        engine.dispose()


def url_from_environment() -> str:
    """The database URL the service would use (for the ``alembic`` command line)."""
    from app.settings import Settings

    return os.environ.get("OUTREACH_DATABASE_URL") or Settings().resolved_database_url


def migration_context(conn: Connection) -> MigrationContext:
    """Alembic's view of the database on ``conn``, its version table in the connection's
    own schema.

    PostgreSQL resolves unqualified names along ``search_path``, so without naming the
    schema a database in schema ``a`` would see ``public.alembic_version`` as its own.
    """
    schema = version_table_schema(conn)
    return MigrationContext.configure(
        conn, opts={"version_table_schema": schema, "compare_type": True}
    )


def version_table_schema(conn: Any) -> str | None:
    """The schema of ``alembic_version``: PostgreSQL's ``current_schema()``, else none.

    Asked of the connection each time: SQLAlchemy caches the default schema of the
    engine's first connection, which may predate the schema on the ``search_path``.
    """
    if conn.dialect.name != "postgresql":
        return None
    return str(conn.execute(text("SELECT current_schema()")).scalar_one())


# --- internals ----------------------------------------------------------------------


def _tables(conn: Connection) -> set[str]:
    """Tables in the connection's own schema (not everything visible on the search path)."""
    return set(inspect(conn).get_table_names(schema=version_table_schema(conn)))


def _config(script_location: Path | None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location or MIGRATIONS_DIR))
    return config


def _in_migration_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in one transaction that holds the migration lock."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            # Python's sqlite3 only opens a transaction before DML: start it ourselves,
            # taking the write lock now so DDL is inside it and migrators queue.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        try:
            result = work(conn)
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
        return result


def _upgrade(
    conn: Connection, *, script_location: Path | None, prepare: Callable[[], None] | None
) -> str:
    tables = _tables(conn)
    if prepare is not None and not tables & _OUR_TABLES:
        prepare()
    _adopt_legacy(conn, tables, script_location=script_location)
    _require_known(conn, script_location=script_location)
    config = _config(script_location)
    config.attributes["connection"] = conn
    command.upgrade(config, "head")
    revision = migration_context(conn).get_current_revision()
    assert revision is not None
    return revision


def _adopt_legacy(conn: Connection, tables: set[str], *, script_location: Path | None) -> None:
    """Stamp a pre-Alembic database with the revision its schema version equals."""
    if "alembic_version" in tables or "schema_info" not in tables:
        return
    version = conn.execute(text("SELECT version FROM schema_info WHERE id = 1")).scalar()
    revision = _LEGACY_REVISIONS.get(version) if isinstance(version, int) else None
    if revision is None:
        raise SchemaMismatch(
            f"the database has schema version {version!r} and no migration history; this "
            f"release needs schema version {SCHEMA_VERSION}. It was not made by a release "
            "that `outreach migrate` can upgrade: point OUTREACH_DATABASE_URL at a new database"
        )
    config = _config(script_location)
    config.attributes["connection"] = conn
    command.stamp(config, revision)


def _require_known(conn: Connection, *, script_location: Path | None) -> str | None:
    """The database's revision, which must be one of this release's revisions."""
    revision = migration_context(conn).get_current_revision()
    if revision is None:
        return None
    script = ScriptDirectory.from_config(_config(script_location))
    try:
        known = script.get_revision(revision) is not None
    except (CommandError, RevisionError):
        known = False
    if not known:
        raise SchemaMismatch(
            f"the database schema is at revision {revision!r}, which this release "
            f"(newest revision {head_revision(script_location=script_location)!r}) does not "
            "know: it was written by a newer release of outreach. Run that release (its "
            "`outreach migrate` has already upgraded this database), or point "
            "OUTREACH_DATABASE_URL at another database. Nothing was changed."
        )
    return revision


def _check_schema_info(conn: Connection, tables: set[str]) -> None:
    """The migrations also record the schema version in ``schema_info``; both must agree."""
    version: Any = None
    if "schema_info" in tables:
        version = conn.execute(text("SELECT version FROM schema_info WHERE id = 1")).scalar()
    if version != SCHEMA_VERSION:
        raise SchemaMismatch(
            f"the database has schema version {version!r} but this release needs "
            f"{SCHEMA_VERSION}; run `outreach migrate` (or point OUTREACH_DATABASE_URL at a "
            "new database)"
        )
