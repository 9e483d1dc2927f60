"""The street-level map's hot path on both backends: the key read together with the
bbox's areas (one statement on PostGIS), still checked on every request; the in-memory
path giving the same answers as the ordinary one; PostGIS connections that recover
from a restarted server without a pre-ping."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from app.auth import create_key, hash_key
from geo.dataset import Dataset
from tests.conftest import _postgis_reason, auth, postgis_url


def _box(dataset: Dataset, lo: float = 0.4, hi: float = 0.46) -> tuple[float, float, float, float]:
    minx, miny, maxx, maxy = (float(v) for v in dataset.areas.total_bounds)
    return (
        minx + lo * (maxx - minx),
        miny + lo * (maxy - miny),
        minx + hi * (maxx - minx),
        miny + hi * (maxy - miny),
    )


def _meeting(dataset: Dataset, box: tuple[float, float, float, float]) -> set[str]:
    bounds = dataset.areas.bounds
    hit = (
        (bounds.maxx >= box[0])
        & (bounds.minx <= box[2])
        & (bounds.maxy >= box[1])
        & (bounds.miny <= box[3])
    )
    return set(dataset.areas.loc[hit, "area_code"])


def test_key_and_areas_in_one_read_match_the_separate_reads(store, demo_dataset) -> None:  # type: ignore[no-untyped-def]
    meta = store.create_dataset(demo_dataset)
    key_id, secret = create_key(store, role="viewer", org="north")
    box = _box(demo_dataset)
    expected = store.area_positions_in_bbox(meta.id, box)
    assert set(demo_dataset.areas["area_code"].iloc[expected]) == _meeting(demo_dataset, box)
    for record, positions in (
        store.key_and_area_positions(hash_key(secret), meta.id, box),
        asyncio.run(store.key_and_area_positions_async(hash_key(secret), meta.id, box)),
    ):
        assert record == store.find_key(hash_key(secret))
        assert record["id"] == key_id and record["org"] == "north"
        assert positions is not None and np.array_equal(positions, expected)
    assert asyncio.run(store.find_key_async(hash_key(secret))) == store.find_key(hash_key(secret))
    unknown = hash_key("okey_nobody")
    assert store.key_and_area_positions(unknown, meta.id, box) == (None, None)
    assert asyncio.run(store.key_and_area_positions_async(unknown, meta.id, box)) == (None, None)
    # A revoked key is reported as such, and its caller gets no areas.
    store.revoke_key(key_id)
    record, positions = asyncio.run(
        store.key_and_area_positions_async(hash_key(secret), meta.id, box)
    )
    assert record is not None and record["revoked_at"] is not None and positions is None
    fresh = asyncio.run(store.get_dataset_meta_async(meta.id))
    assert fresh.id == meta.id and fresh.n_areas == len(demo_dataset.areas)


def _sql(url: str, statement: str, **params: Any) -> Any:
    """Run one statement on a short-lived engine; its first column's first value."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(statement), params)
            return result.scalar() if result.returns_rows else None
    finally:
        engine.dispose()


@pytest.mark.postgis
@pytest.mark.parametrize("store", ["postgis"], indirect=True)
def test_postgis_bbox_read_uses_the_gist_index(store, demo_dataset) -> None:  # type: ignore[no-untyped-def]
    """The bbox is answered by the database's spatial index, also with the generic plan
    a prepared statement settles on."""
    from psycopg import sql

    from app.store import _pg_reads

    meta = store.create_dataset(demo_dataset)
    statement = _pg_reads._AREAS_IN_BOX.replace("%s", "{}").format("$1", "$2", "$3", "$4", "$5")
    values = sql.SQL(", ").join(map(sql.Literal, (*_box(demo_dataset), meta.id)))
    with store.engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        with dbapi.cursor() as cursor:
            cursor.execute("SET plan_cache_mode = force_generic_plan")
            cursor.execute(
                f"PREPARE areas_in_box (float8, float8, float8, float8, text) AS {statement}"
            )
            cursor.execute(sql.SQL("EXPLAIN EXECUTE areas_in_box ({})").format(values))
            plan = "\n".join(row[0] for row in cursor.fetchall())
            cursor.execute("DEALLOCATE areas_in_box")
        conn.rollback()
    assert "idx_areas_geom" in plan, plan


@pytest.fixture(params=["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)])
def map_app(request: pytest.FixtureRequest, tmp_path: Any, demo_dataset: Dataset) -> Iterator[Any]:
    """A client on an app over each backend, with the demo city and keys of two orgs."""
    from starlette.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings
    from app.store import open_store

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'map.db'}"
    else:
        base = postgis_url()
        if base is None:
            pytest.skip(_postgis_reason[0])
        schema = f"m_{uuid.uuid4().hex[:12]}"
        _sql(base, f'CREATE SCHEMA "{schema}"')
        url = f"{base}?options=-csearch_path%3D{schema},public&application_name=outreach_{schema}"
    store = open_store(url)
    dataset_id = store.create_dataset(demo_dataset, org="north").id
    keys = {org: create_key(store, role="viewer", org=org) for org in ("north", "south")}
    settings = Settings(database_url=url, data_dir=tmp_path, anonymous_read=True)
    with TestClient(create_app(settings, store=store)) as client:
        yield client, store, dataset_id, keys, url
    store.close()
    if request.param == "postgis":
        _sql(base, f'DROP SCHEMA "{schema}" CASCADE')


def test_bbox_requests_on_the_hot_path(map_app, demo_dataset, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from app.api.routes import gaps

    client, _store, dataset_id, keys, url = map_app
    key_id, secret = keys["north"]
    path = f"/v1/datasets/{dataset_id}/gaps"
    original, ordinary = gaps._gaps, []

    def counted(*args: Any) -> Any:
        ordinary.append(args)
        return original(*args)

    monkeypatch.setattr(gaps, "_gaps", counted)
    box = _box(demo_dataset)
    params = {"bbox": ",".join(map(str, box))}
    first = client.get(path, params=params, headers=auth(secret))
    assert first.status_code == 200 and len(ordinary) == 1  # computes the analysis
    again = client.get(path, params=params, headers=auth(secret))
    assert again.status_code == 200 and len(ordinary) == 1  # all in memory: on the loop
    assert again.content == first.content
    codes = {f["properties"]["area_code"] for f in again.json()["features"]}
    assert codes == _meeting(demo_dataset, box) and again.json()["total"] == len(codes)
    # The same rows as the whole table (a page too large for the loop) filtered here.
    everything = client.get(path, params={"limit": 5000}, headers=auth(secret)).json()
    assert [f for f in everything["features"] if f["properties"]["area_code"] in codes] == (
        again.json()["features"]
    )
    # Anonymous readers (allowed by the settings) have no key to read the bbox with: it
    # is read on its own, and an organisation's dataset stays hidden from them.
    before = len(ordinary)
    anonymous = client.get(path, params=params)
    assert anonymous.status_code == 404 and len(ordinary) == before + 1
    # Another organisation's key: 404, as for a dataset that does not exist.
    hidden = client.get(path, params=params, headers=auth(keys["south"][1]))
    missing = client.get(
        "/v1/datasets/" + "0" * 32 + "/gaps", params=params, headers=auth(keys["south"][1])
    )
    assert hidden.status_code == 404 == missing.status_code
    # A bad bbox is still reported after the key is checked.
    bad = client.get(path, params={"bbox": "1,2,3"}, headers=auth(secret))
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "bbox"]
    refused = client.get(path, params={"bbox": "1,2,3"}, headers=auth("okey_wrong"))
    assert refused.status_code == 401
    # Revoked through another store (another process): refused on the very next request.
    from app.store import open_store

    other = open_store(url)
    other.revoke_key(key_id)
    other.close()
    revoked = client.get(path, params=params, headers=auth(secret))
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]


@pytest.mark.postgis
@pytest.mark.parametrize("map_app", ["postgis"], indirect=True)
def test_postgis_reads_recover_from_terminated_connections(map_app, demo_dataset) -> None:  # type: ignore[no-untyped-def]
    client, store, dataset_id, keys, url = map_app
    secret = keys["north"][1]
    path = f"/v1/datasets/{dataset_id}/gaps"
    box = ",".join(map(str, _box(demo_dataset)))
    assert client.get(path, params={"bbox": box}, headers=auth(secret)).status_code == 200
    assert store.find_key(hash_key(secret)) is not None
    ended = _sql(
        url.split("?")[0],
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = :app",
        app=url.rsplit("application_name=", 1)[1],
    )
    assert ended >= 2  # the blocking and the event loop's connections at least
    # Each kind of read notices its broken connection and retries on a new one.
    assert client.get(path, params={"bbox": box}, headers=auth(secret)).status_code == 200
    assert client.get(f"/v1/datasets/{dataset_id}", headers=auth(secret)).status_code == 200
    assert store.find_key(hash_key(secret)) is not None


@pytest.mark.postgis
@pytest.mark.parametrize("map_app", ["postgis"], indirect=True)
def test_a_stuck_hot_read_is_cancelled_not_waited_for(map_app, demo_dataset) -> None:  # type: ignore[no-untyped-def]
    """A read stuck behind a lock is cancelled by the server after the statement timeout:
    that request gets a 503 problem with Retry-After, and the same connection serves the
    next request once the lock is gone."""
    import time

    from app.store._pg_reads import HotReads
    from app.store.base import StoreBusy

    client, store, dataset_id, keys, url = map_app
    secret = keys["north"][1]
    path = f"/v1/datasets/{dataset_id}/gaps"
    params = {"bbox": ",".join(map(str, _box(demo_dataset)))}
    assert client.get(path, params=params, headers=auth(secret)).status_code == 200
    store._hot.close()
    store._hot = HotReads(store.engine, {}, statement_timeout_ms=300)
    locker = sa.create_engine(url)
    try:
        with locker.connect() as conn:
            conn.execute(sa.text("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE"))
            began = time.perf_counter()
            stuck = client.get(path, params=params, headers=auth(secret))
            waited = time.perf_counter() - began
            with pytest.raises(StoreBusy):
                store._hot.find_key(hash_key(secret))
            conn.rollback()
    finally:
        locker.dispose()
    assert stuck.status_code == 503, stuck.text
    assert stuck.headers["retry-after"] == "1"
    assert stuck.headers["content-type"] == "application/problem+json"
    assert stuck.json()["title"] == "Database busy"
    assert waited < 3.0  # cancelled after 0.3 s, not retried; the lock was held throughout
    assert client.get(path, params=params, headers=auth(secret)).status_code == 200
    assert store._hot.find_key(hash_key(secret)) is not None
