"""Access control: every role against every route of the app (enumerated from
``app.routes``, so a route added later is covered or fails here until it gets a rule),
revoked keys, keys never stored in clear, and organisations kept apart without
revealing what exists."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import params
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from app.auth import ROLES, create_key
from geo.dataset import Dataset

PROBLEM_JSON = "application/problem+json"
ROLE_NAMES = ("anonymous", "invalid", *ROLES)
#: Pages anyone may open: health, the API docs, the landing page and its sign-in form.
PUBLIC_PATHS = {"/health", "/docs", "/openapi.json", "/", "/session", "/session/logout"}


def required_role(method: str, path: str) -> str | None:
    """The least role a route needs (SPEC §3), or None when it is public."""
    if path in PUBLIC_PATHS or path.startswith("/static"):
        return None
    if path.startswith("/v1/keys"):
        return "admin"
    if method in ("GET", "HEAD"):
        return "viewer"
    if method == "POST" and path.endswith("/plans"):
        return "planner"
    if method == "DELETE" and path.startswith("/v1/jobs/"):
        return "planner"  # cancelling a plan's job is planning work
    if path.startswith("/v1/datasets"):
        return "admin"
    raise AssertionError(f"no access rule for {method} {path}: add one to required_role()")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    multipart: bool = False
    json_body: bool = False

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def flat_routes(app: Any) -> list[tuple[str, Any]]:
    """``(full path, route)`` of every route, with included routers expanded (FastAPI
    ≥ 0.16x keeps them as lazily resolved ``_IncludedRouter`` entries in ``app.routes``)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is already flat
        return [(route.path, route) for route in app.routes]
    return [(str(ctx.path), ctx.original_route) for ctx in iter_route_contexts(app.routes)]


def endpoints(app: Any) -> list[Endpoint]:
    """Every (method, path) the app serves, read from its routes."""
    found = []
    for path, route in flat_routes(app):
        if isinstance(route, Mount):
            found.append(Endpoint("GET", f"{path}/favicon.svg"))
        elif isinstance(route, APIRoute):
            bodies = route.dependant.body_params
            multipart = any(isinstance(p.field_info, params.File | params.Form) for p in bodies)
            for method in sorted(route.methods):
                found.append(Endpoint(method, path, multipart, bool(bodies) and not multipart))
        elif isinstance(route, Route):
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    found.append(Endpoint(method, path))
        else:
            raise AssertionError(f"unknown kind of route {route!r} at {path}")
    return found


@dataclass
class World:
    """An app on a SQLite store with a small dataset, a plan, a job and keys."""

    app: Any
    client: TestClient
    store: Any
    dataset: Dataset
    dataset_id: str
    plan_id: str
    job_id: str
    keys: dict[str, str]

    def headers(self, who: str) -> dict[str, str]:
        if who == "anonymous":
            return {}
        if who == "invalid":
            return {"Authorization": "Bearer okey_" + secrets.token_urlsafe(32)}
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def call(self, endpoint: Endpoint, headers: dict[str, str], **ids: str) -> Any:
        values = {
            "dataset_id": self.dataset_id,
            "plan_id": self.plan_id,
            "job_id": self.job_id,
            **ids,
        }
        if endpoint.method == "DELETE" and "{dataset_id}" in endpoint.path and not ids:
            # Each delete gets a dataset of its own, so the others keep theirs.
            values["dataset_id"] = self.store.create_dataset(self.dataset).id
        path = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], endpoint.path)
        kwargs: dict[str, Any] = {}
        if endpoint.path == "/session":
            kwargs = {"data": {"key": "not-a-key"}}
        elif endpoint.multipart:
            kwargs = {"data": {"name": "roles"}, "files": {"sites": ("s.csv", b"site_id\n")}}
        elif endpoint.json_body:
            kwargs = {"json": {"n_sites": 1}}
        return self.client.request(
            endpoint.method, path, headers=headers, follow_redirects=False, **kwargs
        )


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    from geo.ingest import read_dataset_dir
    from geo.synthetic import generate_city, write_city

    folder = tmp_path_factory.mktemp("small")
    write_city(generate_city(n_areas=120, network=False, seed=5), folder)
    return read_dataset_dir(folder, name="small")


def _world(folder: Path, dataset: Dataset, **settings: Any) -> Iterator[World]:
    from app.main import create_app
    from app.settings import Settings
    from app.store import open_store

    url = f"sqlite:///{folder / 'roles.db'}"
    store = open_store(url)
    keys = {role: create_key(store, role=role)[1] for role in ROLES}
    dataset_id = store.create_dataset(dataset).id
    job_id = "f" * 32
    store.create_job({"id": job_id, "kind": "plan", "status": "succeeded", "progress": 1.0})
    app = create_app(Settings(database_url=url, data_dir=folder, **settings), store=store)
    with TestClient(app) as client:
        plan = client.post(
            f"/v1/datasets/{dataset_id}/plans",
            json={"n_sites": 2},
            headers={"Authorization": f"Bearer {keys['planner']}"},
        )
        assert plan.status_code == 201, plan.text
        yield World(app, client, store, dataset, dataset_id, plan.json()["id"], job_id, keys)
    store.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, small_dataset: Dataset) -> Iterator[World]:
    yield from _world(tmp_path_factory.mktemp("roles"), small_dataset)


def _assert_refused(response: Any, status: int, label: str) -> None:
    assert response.status_code == status, f"{label}: {response.status_code} {response.text[:200]}"
    assert response.headers["content-type"] == PROBLEM_JSON, label
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"], label
    if status == 401:
        assert response.headers.get("www-authenticate") == "Bearer", label


def test_every_role_against_every_route(world: World) -> None:
    found = endpoints(world.app)
    assert len(found) >= 18  # the routes of SPEC §3 and the pages
    checked = 0
    for endpoint in found:
        needed = required_role(endpoint.method, endpoint.path)
        for who in ROLE_NAMES:
            response = world.call(endpoint, world.headers(who))
            label = f"{who} → {endpoint}"
            if who == "invalid" and endpoint.path == "/" and response.status_code == 401:
                # The landing page reads the caller's key to list what it may see; a wrong
                # key sent as a header is an error worth saying (a stale cookie is not).
                _assert_refused(response, 401, label)
            elif needed is None or (who in ROLES and ROLES.index(who) >= ROLES.index(needed)):
                assert response.status_code not in (401, 403), f"{label}: {response.text[:200]}"
                assert response.status_code < 500, f"{label}: {response.text[:200]}"
            elif who in ("anonymous", "invalid"):
                _assert_refused(response, 401, label)
            else:
                _assert_refused(response, 403, label)
                assert needed in response.json()["detail"], label
            checked += 1
    assert checked == len(found) * len(ROLE_NAMES)


def test_anonymous_reads_only_when_the_setting_allows(
    tmp_path: Path, small_dataset: Dataset
) -> None:
    for world in _world(tmp_path, small_dataset, anonymous_read=True):
        for endpoint in endpoints(world.app):
            needed = required_role(endpoint.method, endpoint.path)
            response = world.call(endpoint, {})
            if needed in (None, "viewer"):
                assert response.status_code not in (401, 403), str(endpoint)
            else:
                _assert_refused(response, 401, str(endpoint))


def test_a_key_in_the_cookie_reads_but_never_writes(world: World) -> None:
    """Browsers send the cookie with any request to the site: it must not authorise a
    write (cross-site request forgery), only reads."""
    from app.auth import COOKIE_NAME

    world.client.cookies.set(COOKIE_NAME, world.keys["admin"])
    try:
        for endpoint in endpoints(world.app):
            needed = required_role(endpoint.method, endpoint.path)
            if needed is None:
                continue
            response = world.call(endpoint, {})
            if endpoint.method in ("GET", "HEAD"):
                assert response.status_code not in (401, 403), str(endpoint)
            else:
                _assert_refused(response, 401, f"cookie → {endpoint}")
    finally:
        world.client.cookies.clear()


def test_revoked_key_stops_working_at_once(world: World) -> None:
    from app.store import open_store

    key_id, secret = create_key(world.store, role="admin", name="to revoke")
    headers = {"Authorization": f"Bearer {secret}"}
    assert world.client.get("/v1/datasets", headers=headers).status_code == 200
    # Revoked from another process's connection, as `outreach keys revoke` does.
    other = open_store(str(world.store.engine.url))
    other.revoke_key(key_id)
    other.close()
    for method, path in (("GET", "/v1/datasets"), ("GET", f"/v1/plans/{world.plan_id}")):
        _assert_refused(world.client.request(method, path, headers=headers), 401, path)
    refused = world.client.post(
        f"/v1/datasets/{world.dataset_id}/plans", json={"n_sites": 1}, headers=headers
    )
    _assert_refused(refused, 401, "revoked planner write")
    signed_in = world.client.post("/session", data={"key": secret}, follow_redirects=False)
    assert signed_in.status_code == 303 and "outreach_key" not in signed_in.headers.get(
        "set-cookie", ""
    )


def test_keys_are_never_stored_in_clear(
    store: Any, small_dataset: Dataset, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After keys are made and used (header, sign-in cookie, a plan, a job), no column of
    any table holds a secret or any 16-character piece of one."""
    import sqlalchemy as sa

    from app.main import create_app
    from app.settings import Settings

    secrets_made = [create_key(store, role=role, org="north")[1] for role in ROLES]
    app = create_app(Settings(data_dir=tmp_path), store=store)
    with TestClient(app) as client:
        admin = {"Authorization": f"Bearer {secrets_made[2]}"}
        dataset_id = store.create_dataset(small_dataset, org="north").id
        client.post("/session", data={"key": secrets_made[0]}, follow_redirects=False)
        assert client.get(f"/v1/datasets/{dataset_id}").status_code == 200  # via the cookie
        plan = client.post(f"/v1/datasets/{dataset_id}/plans", json={"n_sites": 1}, headers=admin)
        assert plan.status_code == 201
        client.get("/v1/datasets", headers={"Authorization": "Bearer " + secrets_made[1] + "x"})
    pieces = {s[i : i + 16] for s in secrets_made for i in range(5, len(s) - 15)}
    inspector = sa.inspect(store.engine)
    with store.engine.connect() as conn:
        schema = (
            conn.execute(sa.text("SELECT current_schema()")).scalar()
            if store.kind == "postgis"
            else None
        )
        tables = inspector.get_table_names(schema=schema)
        assert {"api_keys", "datasets", "plans", "jobs"} <= set(tables)
        scanned = 0
        for table in tables:
            if table == "spatial_ref_sys":
                continue
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')).all():
                for value in row:
                    text = (
                        value.decode("latin-1")
                        if isinstance(value, bytes | memoryview)
                        else str(value)
                    )
                    assert not any(piece in text for piece in pieces), f"a key in {table}"
                    scanned += 1
        assert scanned > 1000
        hashes = conn.execute(sa.text("SELECT key_hash, prefix FROM api_keys")).all()
    assert len(hashes) == len(ROLES) and all(len(h) == 64 for h, _ in hashes)
    assert not any(piece in caplog.text for piece in pieces), "a key in the log"


def test_other_organisations_datasets_do_not_exist_for_a_key(
    tmp_path: Path, small_dataset: Dataset
) -> None:
    """Every route that takes a dataset, plan or job id answers 404 — exactly as for an id
    that does not exist — to every role of another organisation."""
    from app.main import create_app
    from app.settings import Settings
    from app.store import open_store

    url = f"sqlite:///{tmp_path / 'orgs.db'}"
    store = open_store(url)
    north = {role: create_key(store, role=role, org="north")[1] for role in ROLES}
    south = {role: create_key(store, role=role, org="south")[1] for role in ROLES}
    app = create_app(Settings(database_url=url, data_dir=tmp_path), store=store)
    with TestClient(app) as client:
        dataset_id = store.create_dataset(small_dataset, org="north").id
        plan = client.post(
            f"/v1/datasets/{dataset_id}/plans",
            json={"n_sites": 1},
            headers={"Authorization": f"Bearer {north['planner']}"},
        )
        assert plan.status_code == 201, plan.text
        job_id = "e" * 32
        store.create_job(
            {"id": job_id, "kind": "plan", "status": "running", "progress": 0.5, "org": "north"}
        )
        world = World(app, client, store, small_dataset, dataset_id, plan.json()["id"], job_id, {})
        own = {"dataset_id": dataset_id, "plan_id": world.plan_id, "job_id": job_id}
        made_up = {k: "0" * 32 for k in own}
        with_ids = [e for e in endpoints(app) if "{" in e.path]
        assert {"{dataset_id}", "{plan_id}", "{job_id}"} <= {
            m for e in with_ids for m in re.findall(r"\{\w+\}", e.path)
        }
        for endpoint in with_ids:
            needed = required_role(endpoint.method, endpoint.path)
            assert needed is not None
            for role in ROLES[ROLES.index(needed) :]:
                hidden = world.call(endpoint, {"Authorization": f"Bearer {south[role]}"}, **own)
                missing = world.call(
                    endpoint, {"Authorization": f"Bearer {south[role]}"}, **made_up
                )
                label = f"south {role} → {endpoint}"
                assert hidden.status_code == 404 == missing.status_code, (
                    f"{label}: {hidden.text[:200]}"
                )
                assert hidden.headers["content-type"] == PROBLEM_JSON, label
                strip = {k: v for k, v in hidden.json().items() if k not in ("detail", "instance")}
                assert strip == {
                    k: v for k, v in missing.json().items() if k not in ("detail", "instance")
                }, label
                shown, absent = hidden.json()["detail"], missing.json()["detail"]
                for value in own.values():
                    shown = shown.replace(value, "ID")
                assert shown == absent.replace("0" * 32, "ID"), label
        listing = client.get("/v1/datasets", headers={"Authorization": f"Bearer {south['admin']}"})
        assert listing.json() == {"items": [], "total": 0}
        page = client.get("/", headers={"Authorization": f"Bearer {south['viewer']}"})
        assert dataset_id not in page.text and world.plan_id not in page.text
        # North's own keys read it (the dataset is restricted, not lost).
        for role in ROLES:
            seen = client.get(
                f"/v1/datasets/{dataset_id}", headers={"Authorization": f"Bearer {north[role]}"}
            )
            assert seen.status_code == 200
        assert store.get_dataset_meta(dataset_id).n_areas == len(small_dataset.areas)
    store.close()
