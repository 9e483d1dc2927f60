"""Schema migrations on both backends: a new database is brought to head by Alembic (and
matches the tables the code queries), an older one is upgraded by ``migrate`` in one
transaction, an unknown revision is refused with a clear message and left untouched."""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.store.base import SchemaMismatch
from app.store.migrate import (
    MIGRATIONS_DIR,
    current_revision,
    ensure_schema,
    head_revision,
    migrate,
    migration_context,
)
from tests.conftest import _postgis_reason, postgis_url


@pytest.fixture(params=["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database of each backend (PostGIS: a schema of its own,
    selected by ``search_path`` in the URL as an operator would, dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    base = postgis_url()
    if base is None:
        pytest.skip(_postgis_reason[0])
    schema = f"m_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{base}?options=-csearch_path%3D{schema},public"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(name="engine")
def _engine(db_url: str) -> Iterator[sa.Engine]:
    """An engine on the test database for inspecting it, disposed after the test."""
    engine = sa.create_engine(db_url)
    yield engine
    engine.dispose()


def _open(url: str):  # type: ignore[no-untyped-def]
    from app.store import open_store

    return open_store(url)


def _tables(engine: sa.Engine) -> set[str]:
    inspector = sa.inspect(engine)
    return set(inspector.get_table_names(schema=inspector.default_schema_name))


def _scripts_with(tmp_path: Path, body: str) -> Path:
    """A copy of the release's migrations plus a revision 0002 with ``body`` as upgrade."""
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "versions" / "0002_next.py").write_text(
        '"""A later revision (test only)."""\n'
        "import sqlalchemy as sa\n"
        "from alembic import op\n\n"
        'revision = "0002"\n'
        'down_revision = "0001"\n'
        "branch_labels = None\n"
        "depends_on = None\n\n\n"
        "def upgrade() -> None:\n" + "".join(f"    {line}\n" for line in body.splitlines()) + "\n\n"
        "def downgrade() -> None:\n"
        '    op.drop_index("ix_jobs_status", table_name="jobs")\n'
    )
    return folder


def test_new_database_is_brought_to_head_by_the_migrations(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata

    store = _open(db_url)
    try:
        assert head_revision() == "0001"
        assert current_revision(store.engine) == "0001"
        assert {"alembic_version", "schema_info", "datasets", "areas", "plans"} <= _tables(
            store.engine
        )
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id, version FROM schema_info")).all() == [(1, 1)]
            # The migrated tables are exactly the ones the store's queries are written for.
            diffs = compare_metadata(migration_context(conn), store.metadata)
        ignored = ("spatial_ref_sys", "alembic_version")  # PostGIS's own, Alembic's own
        assert [d for d in diffs if not any(name in str(d) for name in ignored)] == []
        if store.kind == "postgis":
            with store.engine.connect() as conn:
                gist = conn.execute(
                    sa.text(
                        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                        "AND indexdef LIKE '%USING gist (geom)%' ORDER BY indexname"
                    )
                ).scalars()
                assert list(gist) == ["idx_areas_geom", "idx_sites_geom"]
        # Opening again leaves the database as it is.
        store.close()
        store = _open(db_url)
        assert current_revision(store.engine) == "0001"
    finally:
        store.close()


def test_two_processes_starting_on_a_new_database_create_it_once(
    db_url: str, engine: sa.Engine
) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        try:
            barrier.wait()
            _open(db_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM schema_info")).scalar_one() == 1
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [("0001",)]
    engine.dispose()


def test_older_revision_is_refused_then_upgraded_by_migrate(
    db_url: str, engine: sa.Engine, tmp_path: Path, demo_dataset
) -> None:  # type: ignore[no-untyped-def]
    """A database at 0001 meets a release whose head is 0002: the service refuses to
    start, ``migrate`` upgrades it and keeps the data, then the service starts."""
    store = _open(db_url)
    meta = store.create_dataset(demo_dataset)
    store.close()
    scripts = _scripts_with(tmp_path, 'op.create_index("ix_jobs_status", "jobs", ["status"])')
    try:
        with pytest.raises(
            SchemaMismatch, match=r"revision '0001'.*needs '0002'.*outreach migrate"
        ):
            ensure_schema(engine, script_location=scripts)
        assert migrate(db_url, script_location=scripts) == "0002"
        assert ensure_schema(engine, script_location=scripts) == "0002"
        assert current_revision(engine) == "0002"
        indexes = {ix["name"] for ix in sa.inspect(engine).get_indexes("jobs")}
        assert "ix_jobs_status" in indexes
    finally:
        engine.dispose()
    # The dataset written before the upgrade is whole. (The release's own head is 0001,
    # so the store now refuses this database as written by a newer release.)
    with pytest.raises(SchemaMismatch, match=r"'0002'.*newer release"):
        _open(db_url)
    with engine.connect() as conn:
        counts = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM areas WHERE dataset_id = :id), "
                "(SELECT count(*) FROM uptake WHERE dataset_id = :id)"
            ),
            {"id": meta.id},
        ).one()
    engine.dispose()
    assert tuple(counts) == (len(demo_dataset.areas), len(demo_dataset.uptake))


def test_a_failing_migration_changes_nothing(
    db_url: str, tmp_path: Path, engine: sa.Engine
) -> None:
    """The whole upgrade is one transaction on both backends (SQLite included)."""
    _open(db_url).close()
    scripts = _scripts_with(
        tmp_path,
        'op.create_index("ix_jobs_status", "jobs", ["status"])\n'
        'op.add_column("datasets", sa.Column("note", sa.Text, nullable=True))\n'
        'op.execute("INSERT INTO no_such_table VALUES (1)")',
    )
    with pytest.raises(sa.exc.OperationalError if "sqlite" in db_url else sa.exc.ProgrammingError):
        migrate(db_url, script_location=scripts)
    try:
        assert current_revision(engine) == "0001"
        inspector = sa.inspect(engine)
        assert "ix_jobs_status" not in {ix["name"] for ix in inspector.get_indexes("jobs")}
        assert "note" not in {c["name"] for c in inspector.get_columns("datasets")}
    finally:
        engine.dispose()
    _open(db_url).close()  # still a working database at the release's head


def test_unknown_revision_is_refused_with_a_clear_message(db_url: str, engine: sa.Engine) -> None:
    _open(db_url).close()
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099_future'"))
    try:
        for attempt in (lambda: _open(db_url), lambda: migrate(db_url)):
            with pytest.raises(SchemaMismatch) as caught:
                attempt()
            message = str(caught.value)
            assert "'0099_future'" in message and "newer release" in message
            assert "outreach migrate" in message and "OUTREACH_DATABASE_URL" in message
        assert current_revision(engine) == "0099_future"
    finally:
        engine.dispose()


def test_database_made_before_migrations_is_adopted(
    db_url: str, engine: sa.Engine, demo_dataset
) -> None:  # type: ignore[no-untyped-def]
    """Version 1 was created with ``create_all`` and no migration history: it holds
    exactly revision 0001, is stamped with it and opens with its data."""
    from app.store.schema import build_metadata

    try:
        if engine.dialect.name == "postgresql":
            from geoalchemy2 import Geometry

            metadata = build_metadata(
                lambda kind: Geometry(geometry_type=kind, srid=4326, spatial_index=True)
            )
        else:
            metadata = build_metadata(None)
        # checkfirst=False: PostgreSQL would also "find" tables of another schema on the path.
        metadata.create_all(engine, checkfirst=False)
        with engine.begin() as conn:
            conn.execute(metadata.tables["schema_info"].insert().values(id=1, version=1))
        store = _open(db_url)
        try:
            meta = store.create_dataset(demo_dataset)
            assert current_revision(engine) == "0001"
            assert store.load_dataset(meta.id).uptake["eligible"].sum() == (
                demo_dataset.uptake["eligible"].sum()
            )
        finally:
            store.close()
    finally:
        engine.dispose()


def test_legacy_database_of_another_version_is_refused(db_url: str, engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE schema_info (id INTEGER PRIMARY KEY, version INTEGER)"))
        conn.execute(sa.text("INSERT INTO schema_info VALUES (1, 7)"))
    try:
        with pytest.raises(SchemaMismatch, match="schema version 7"):
            _open(db_url)
        assert "alembic_version" not in _tables(engine)
    finally:
        engine.dispose()


@pytest.mark.postgis
def test_postgis_schema_is_not_confused_with_one_later_on_the_search_path() -> None:
    """PostgreSQL resolves unqualified names along ``search_path``: a new database in
    schema ``a`` must be migrated even when schema ``b`` after it holds a full one."""
    base = postgis_url()
    if base is None:
        pytest.skip(_postgis_reason[0])
    first, second = (f"m_{uuid.uuid4().hex[:12]}" for _ in range(2))
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        for schema in (first, second):
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        behind = _open(f"{base}?options=-csearch_path%3D{second},public")
        behind.create_job({"id": "j" * 32, "kind": "plan", "status": "queued", "progress": 0.0})
        behind.close()
        url = f"{base}?options=-csearch_path%3D{first},{second},public"
        assert migrate(url) == "0001"
        store = _open(url)
        try:
            assert store.fail_interrupted_jobs() == 0  # the job in `second` is not ours
        finally:
            store.close()
        with admin.connect() as conn:
            tables = conn.execute(
                sa.text(
                    "SELECT table_schema, count(*) FROM information_schema.tables "
                    "WHERE table_name IN ('alembic_version', 'schema_info', 'datasets') "
                    "AND table_schema IN (:first, :second) GROUP BY table_schema"
                ),
                {"first": first, "second": second},
            ).all()
        assert sorted(tables) == sorted([(first, 3), (second, 3)])
    finally:
        with admin.begin() as conn:
            for schema in (first, second):
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_opening_a_store_does_not_wait_for_a_writer(tmp_path: Path) -> None:
    """Checking the revision of an existing database is a read: a store opens while an
    import holds SQLite's write lock (a second worker starting, `outreach keys list`)."""
    import sqlite3
    import time

    url = f"sqlite:///{tmp_path / 'busy.db'}"
    _open(url).close()
    writer = sqlite3.connect(tmp_path / "busy.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute(
        "INSERT INTO jobs VALUES ('j', 'plan', 'queued', 0, NULL, NULL, NULL, NULL, NULL, '2026-01-01', '2026-01-01')"
    )
    try:
        started = time.monotonic()
        _open(url).close()
        assert time.monotonic() - started < 5
    finally:
        writer.execute("ROLLBACK")
        writer.close()
