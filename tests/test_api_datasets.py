"""Datasets over HTTP: multipart upload and read-back, problem+json for every bad upload
with the store unchanged, 413 for oversized bodies, roles enforced."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import auth


def _demo_files(demo_dir: Path) -> list[tuple[str, tuple[str, bytes]]]:
    return [
        ("areas", ("areas.gpkg", (demo_dir / "areas.gpkg").read_bytes())),
        ("uptake", ("uptake.csv", (demo_dir / "uptake.csv").read_bytes())),
        ("indicators", ("indicators.csv", (demo_dir / "indicators.csv").read_bytes())),
        ("sites", ("sites.csv", (demo_dir / "sites.csv").read_bytes())),
        ("network", ("network.osm", (demo_dir / "network.osm").read_bytes())),
    ]


def test_upload_and_read_back(make_client, demo_dir: Path) -> None:  # type: ignore[no-untyped-def]
    client, keys = make_client()
    response = client.post(
        "/v1/datasets",
        data={"name": "Demo"},
        files=_demo_files(demo_dir),
        headers=auth(keys["admin"]),
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert (
        created["n_areas"] == 2000 and created["name"] == "Demo" and created["has_network"] is True
    )
    assert set(created["groups"]) == {"age_band", "ethnic_group"}
    listing = client.get("/v1/datasets", headers=auth(keys["viewer"])).json()
    assert listing["total"] == 1 and listing["items"][0]["id"] == created["id"]
    meta = client.get(f"/v1/datasets/{created['id']}", headers=auth(keys["viewer"])).json()
    assert meta == {**created, "warnings": created["warnings"]}
    assert (
        client.delete(f"/v1/datasets/{created['id']}", headers=auth(keys["planner"])).status_code
        == 403
    )
    assert (
        client.delete(f"/v1/datasets/{created['id']}", headers=auth(keys["admin"])).status_code
        == 204
    )
    gone = client.get(f"/v1/datasets/{created['id']}", headers=auth(keys["viewer"]))
    assert gone.status_code == 404 and gone.headers["content-type"] == "application/problem+json"


def test_bad_upload_lists_every_problem_and_changes_nothing(make_client, demo_dir: Path) -> None:  # type: ignore[no-untyped-def]
    client, keys = make_client()
    first = client.post(
        "/v1/datasets",
        data={"name": "Good"},
        files=_demo_files(demo_dir),
        headers=auth(keys["admin"]),
    )
    assert first.status_code == 201
    lines = (demo_dir / "uptake.csv").read_text().splitlines()
    header = lines[0].split(",")
    bad_row = lines[1].split(",")
    bad_row[header.index("vaccinated")] = "99999"
    worse_row = lines[2].split(",")
    worse_row[header.index("eligible")] = "-4"
    bad_uptake = (
        "\n".join(
            [
                lines[0],
                ",".join(bad_row),
                ",".join(worse_row),
                *lines[3:],
                "E09999999,18-29,White,10,5",
            ]
        )
        + "\n"
    )
    files = [f for f in _demo_files(demo_dir) if f[0] != "uptake"] + [
        ("uptake", ("uptake.csv", bad_uptake.encode()))
    ]
    files.append(
        ("sites", ("more.csv", b"site_id,site_type,status,lon,lat\nz,rocket,open,-1.1,52.6\n"))
    )
    response = client.post(
        "/v1/datasets", data={"name": "Bad"}, files=files, headers=auth(keys["admin"])
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert {"type", "title", "status", "detail", "errors"} <= set(body)
    rows = {(e["file"], e.get("row"), e.get("column")) for e in body["errors"]}
    assert ("uptake.csv", 2, "vaccinated") in rows
    assert ("uptake.csv", 3, "eligible") in rows
    assert ("uptake.csv", len(lines) + 1, "area_code") in rows
    assert all(e["fix"] and e["loc"][0] == e["file"] for e in body["errors"])
    listing = client.get("/v1/datasets", headers=auth(keys["viewer"])).json()
    assert [d["name"] for d in listing["items"]] == ["Good"]


def test_missing_parts_and_bad_options_are_422(make_client) -> None:  # type: ignore[no-untyped-def]
    client, keys = make_client()
    response = client.post(
        "/v1/datasets",
        data={"name": ""},
        files=[("uptake", ("u.csv", b"a"))],
        headers=auth(keys["admin"]),
    )
    assert response.status_code == 422
    locs = {tuple(e["loc"]) for e in response.json()["errors"]}
    assert ("body", "areas") in locs and ("body", "name") in locs
    response = client.post(
        "/v1/datasets",
        data={"name": "x", "column_map": "{not json"},
        files=[("areas", ("a.gpkg", b"x")), ("uptake", ("u.csv", b"a"))],
        headers=auth(keys["admin"]),
    )
    assert response.status_code == 422 and response.json()["errors"][0]["loc"] == [
        "body",
        "column_map",
    ]


def test_oversized_upload_is_413(make_client) -> None:  # type: ignore[no-untyped-def]
    client, keys = make_client(limits={"max_upload_bytes": 10_000})
    response = client.post(
        "/v1/datasets",
        data={"name": "big"},
        files=[("areas", ("a.gpkg", b"x" * 20_000)), ("uptake", ("u.csv", b"a"))],
        headers=auth(keys["admin"]),
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert "limit" in response.json()["detail"]

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(30):
            yield b"y" * 1000

    response = client.post(
        "/v1/datasets",
        content=chunks(),
        headers={**auth(keys["admin"]), "content-type": "multipart/form-data; boundary=zz"},
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("role", "method", "path", "allowed"),
    [
        (None, "get", "/v1/datasets", False),
        ("viewer", "get", "/v1/datasets", True),
        ("viewer", "post", "/v1/datasets", False),
        ("planner", "post", "/v1/datasets", False),
        ("admin", "post", "/v1/datasets", True),
    ],
)
def test_roles(make_client, role: str | None, method: str, path: str, allowed: bool) -> None:  # type: ignore[no-untyped-def]
    client, keys = make_client()
    headers = auth(keys[role]) if role else {}
    response = getattr(client, method)(
        path, headers=headers, **({"data": {"name": "x"}} if method == "post" else {})
    )
    if allowed:
        assert response.status_code not in (401, 403)
    else:
        assert response.status_code == (401 if role is None else 403)
        assert response.headers["content-type"] == "application/problem+json"


def test_anonymous_read_setting_and_revoked_key(make_client) -> None:  # type: ignore[no-untyped-def]
    client, _keys = make_client(anonymous_read=True)
    assert client.get("/v1/datasets").status_code == 200
    assert client.post("/v1/datasets", data={"name": "x"}).status_code == 401
    bogus = client.get("/v1/datasets", headers=auth("okey_not-a-real-key"))
    assert bogus.status_code == 401
    store = client.app.state.services.store
    from app.auth import hash_key

    record = store.find_key(hash_key(_keys["viewer"]))
    assert client.get("/v1/datasets", headers=auth(_keys["viewer"])).status_code == 200
    store.revoke_key(record["id"])
    revoked = client.get("/v1/datasets", headers=auth(_keys["viewer"]))
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["store"] == "sqlite"


def test_landing_page_and_cookie_session(make_client, demo_dir: Path) -> None:  # type: ignore[no-untyped-def]
    client, keys = make_client()
    created = client.post(
        "/v1/datasets",
        data={"name": "Demo city"},
        files=_demo_files(demo_dir),
        headers=auth(keys["admin"]),
    ).json()
    page = client.get("/")
    assert (
        page.status_code == 200
        and "Sign in with an API key" in page.text
        and "Demo city" not in page.text
    )
    assert (
        "content-security-policy" in page.headers
        and page.headers["x-content-type-options"] == "nosniff"
    )
    bad = client.post("/session", data={"key": "okey_wrong"}, follow_redirects=False)
    assert bad.status_code == 303 and "outreach_key" not in bad.headers.get("set-cookie", "")
    good = client.post("/session", data={"key": keys["viewer"]}, follow_redirects=False)
    cookie = good.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    page = client.get("/")
    assert (
        "Demo city" in page.text
        and f"/v1/datasets/{created['id']}/gaps/map" in page.text
        and "/docs" in page.text
    )
    # The cookie authorises reads (pages and their data requests) but never writes.
    assert client.get("/v1/datasets").status_code == 200
    assert client.delete(f"/v1/datasets/{created['id']}").status_code == 401
    client.post("/session/logout")
    assert client.get("/v1/datasets").status_code == 401


def test_writes_without_a_valid_key_are_refused_before_the_body_is_read(tmp_path: Path) -> None:
    """An anonymous 50 MB upload gets 401 after its headers, not after 50 MB."""
    import socket
    import threading
    import time

    import uvicorn

    from app.main import create_app
    from app.settings import Settings

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'o.db'}", data_dir=tmp_path)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        for auth_header in ("", "Authorization: Bearer okey_forged\r\n"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                head = f"POST /v1/datasets HTTP/1.1\r\nHost: x\r\n{auth_header}Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 50000000\r\n\r\n"
                sock.sendall(head.encode() + b"--b\r\n")  # 50 MB announced, a few bytes sent
                reply = sock.recv(4096).decode()
            assert reply.startswith("HTTP/1.1 401") and "application/problem+json" in reply
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_revoked_key_in_the_cookie_does_not_lock_the_user_out(make_client) -> None:  # type: ignore[no-untyped-def]
    from app.auth import hash_key

    client, keys = make_client()
    client.post("/session", data={"key": keys["viewer"]})
    store = client.app.state.services.store
    store.revoke_key(store.find_key(hash_key(keys["viewer"]))["id"])
    page = client.get("/")
    assert page.status_code == 200 and "sign in again" in page.text and "Sign in" in page.text
    assert 'outreach_key=""' in page.headers.get(
        "set-cookie", ""
    ) or "Max-Age=0" in page.headers.get("set-cookie", "")
    assert client.get("/v1/datasets").status_code == 401
