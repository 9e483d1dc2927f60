"""Faults against a real server (uvicorn in a subprocess on a loopback port), on both
backends: concurrent uploads and plans either complete fully or fail cleanly, and a
server killed in the middle of an import leaves no trace of it."""

from __future__ import annotations

import io
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa

from tests.conftest import _postgis_reason, postgis_url

ROOT = Path(__file__).resolve().parents[1]
PROBLEM_JSON = "application/problem+json"
_UVICORN = (sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory")
#: Tables holding a dataset's rows (``dataset_id`` references ``datasets.id``).
DATASET_TABLES = ("areas", "uptake", "indicators", "sites", "blobs", "results", "plans")


# --- a database and a server ------------------------------------------------------------
@dataclass
class Database:
    """A fresh database of one backend, as the server sees it (its URL) and as the test
    inspects it (``engine``)."""

    kind: str
    url: str
    engine: sa.Engine
    app_name: str = ""
    sqlite_path: Path | None = None

    def in_write_transaction(self) -> bool:
        """Whether the server holds an open transaction that has written something."""
        if self.sqlite_path is not None:
            probe = sqlite3.connect(self.sqlite_path, timeout=0, isolation_level=None)
            try:
                probe.execute("BEGIN IMMEDIATE")  # fails while another writer is active
                probe.execute("ROLLBACK")
                return False
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    return True
                raise
            finally:
                probe.close()
        with self.engine.connect() as conn:
            return bool(
                conn.execute(
                    sa.text(
                        # A transaction id is assigned at the first write and kept until
                        # commit or rollback, whether a statement is running or not.
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = :app "
                        "AND backend_xid IS NOT NULL"
                    ),
                    {"app": self.app_name},
                ).scalar_one()
            )

    def rows_by_dataset(self) -> dict[str, dict[str, int]]:
        """``{table: {dataset_id: rows}}`` for every table holding dataset rows."""
        out: dict[str, dict[str, int]] = {}
        with self.engine.connect() as conn:
            for table in DATASET_TABLES:
                rows = conn.execute(
                    sa.text(f"SELECT dataset_id, count(*) FROM {table} GROUP BY dataset_id")
                ).all()
                out[table] = {str(d): int(n) for d, n in rows}
        return out

    def dataset_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return {str(i) for i in conn.execute(sa.text("SELECT id FROM datasets")).scalars()}


@pytest.fixture(params=["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        path = tmp_path / "outreach.db"
        url = f"sqlite:///{path}"
        engine = sa.create_engine(url, connect_args={"timeout": 60})
        yield Database("sqlite", url, engine, sqlite_path=path)
        engine.dispose()
        return
    base = postgis_url()
    if base is None:
        pytest.skip(_postgis_reason[0])
    schema = f"f_{uuid.uuid4().hex[:12]}"
    app_name = f"outreach_{schema}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    search_path = f"options=-csearch_path%3D{schema},public"
    engine = sa.create_engine(f"{base}?{search_path}")
    try:
        yield Database(
            "postgis", f"{base}?{search_path}&application_name={app_name}", engine, app_name
        )
    finally:
        engine.dispose()
        with admin.begin() as conn:
            # A killed server's backend may still be rolling back: end it first.
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :app"
                ),
                {"app": app_name},
            )
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@dataclass
class Server:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    admin_key: str
    planner_key: str
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, timeout: float = 180.0) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no rollback by the server itself."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=15)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _keys(url: str) -> tuple[str, str]:
    from app.auth import create_key
    from app.store import open_store

    store = open_store(url)
    try:
        return create_key(store, role="admin")[1], create_key(store, role="planner")[1]
    finally:
        store.close()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start ``uvicorn app.main:create_app --factory`` on a free loopback port."""
    servers: list[Server] = []

    def start(database: Database, **settings: str) -> Server:
        keys = _keys(database.url)
        port = _free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")},
            "OUTREACH_DATABASE_URL": database.url,
            "OUTREACH_DATA_DIR": str(tmp_path / "var"),
            "OUTREACH_LOAD_DEMO": "false",
            **{f"OUTREACH_{k.upper()}": v for k, v in settings.items()},
        }
        log_path = tmp_path / f"server-{len(servers)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [*_UVICORN, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = Server(f"http://127.0.0.1:{port}", process, log_path, *keys)
        servers.append(server)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"the server exited at start-up:\n{server.log()}")
            try:
                if httpx.get(f"{server.base_url}/health", timeout=2).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"the server did not answer /health within 60 s:\n{server.log()}")

    yield start
    for server in servers:
        server.stop()


# --- input files ---------------------------------------------------------------------------
@dataclass(frozen=True)
class City:
    """Input files of a synthetic city and the rows a complete import of it stores."""

    files: dict[str, bytes]
    rows: dict[str, int]

    def upload(self, **replace: bytes) -> list[tuple[str, tuple[str, bytes]]]:
        names = {"areas": "areas.gpkg"}
        parts = {**self.files, **replace}
        return [(part, (names.get(part, f"{part}.csv"), data)) for part, data in parts.items()]


def _city(folder: Path, n_areas: int, seed: int) -> City:
    from geo.ingest import read_dataset_dir
    from geo.synthetic import generate_city, write_city

    paths = write_city(generate_city(n_areas=n_areas, network=False, seed=seed), folder)
    dataset = read_dataset_dir(folder, name="expected")
    return City(
        {part: paths[part].read_bytes() for part in ("areas", "uptake", "indicators", "sites")},
        {
            "areas": len(dataset.areas),
            "uptake": len(dataset.uptake),
            "indicators": int(dataset.indicators.notna().to_numpy().sum()),
            "sites": len(dataset.sites),
        },
    )


@pytest.fixture(scope="module")
def small_cities(tmp_path_factory: pytest.TempPathFactory) -> list[City]:
    folder = tmp_path_factory.mktemp("cities")
    return [_city(folder / str(n), n, seed) for n, seed in ((120, 1), (160, 2), (200, 3))]


@pytest.fixture(scope="module")
def big_city(tmp_path_factory: pytest.TempPathFactory) -> City:
    return _city(tmp_path_factory.mktemp("big"), 8_000, 4)


def _upload(server: Server, name: str, files: list[Any], **kwargs: Any) -> httpx.Response:
    with server.client() as client:
        return client.post(
            "/v1/datasets",
            data={"name": name},
            files=files,
            headers={"Authorization": f"Bearer {server.admin_key}"},
            **kwargs,
        )


def _chunked_upload(server: Server, name: str, files: list[Any]) -> httpx.Response:
    """The same multipart body sent without Content-Length (chunked), so only counting
    the bytes as they arrive can refuse it."""
    request = httpx.Request("POST", "http://x/", data={"name": name}, files=files)
    body = request.read()
    headers = {
        "Authorization": f"Bearer {server.admin_key}",
        "Content-Type": request.headers["Content-Type"],
    }

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    with server.client() as client:
        return client.post("/v1/datasets", content=chunks(), headers=headers)


def _bad_uptake(city: City, how: str) -> bytes:
    uptake = pd.read_csv(io.BytesIO(city.files["uptake"]), dtype={"area_code": str})
    if how == "vaccinated>eligible":
        uptake.loc[3, "vaccinated"] = uptake.loc[3, "eligible"] + 5
    elif how == "unknown area":
        uptake = pd.concat([uptake, uptake.iloc[[0]].assign(area_code="E00999999")])
    elif how == "missing column":
        uptake = uptake.drop(columns="vaccinated")
    return uptake.to_csv(index=False).encode()


# --- concurrent uploads and plans -----------------------------------------------------------
def test_concurrent_uploads_and_plans_complete_or_fail_cleanly(
    database: Database, start_server: Callable[..., Server], small_cities: list[City]
) -> None:
    limit = 1_000_000
    assert all(sum(map(len, c.files.values())) < limit * 0.8 for c in small_cities)
    server = start_server(database, limits__max_upload_bytes=str(limit))
    seed = _upload(server, "seed", small_cities[0].upload())
    assert seed.status_code == 201, seed.text
    seed_id = seed.json()["id"]
    pad = b"x" * (limit + 1)

    # (name, expected status, request): 12 valid, 5 invalid, 3 oversized uploads, 6 plans.
    work: list[tuple[str, tuple[int, ...], Callable[[], httpx.Response]]] = []
    for i in range(12):
        city = small_cities[i % 3]
        work.append(
            (f"valid-{i}", (201,), lambda n=f"valid-{i}", c=city: _upload(server, n, c.upload()))
        )
    for i, how in enumerate(
        ["vaccinated>eligible", "unknown area", "missing column", "unknown area"]
    ):
        files = small_cities[i % 3].upload(uptake=_bad_uptake(small_cities[i % 3], how))
        work.append(
            (f"invalid-{i}", (422,), lambda n=f"invalid-{i}", f=files: _upload(server, n, f))
        )
    garbage = small_cities[1].upload(areas=b"GPKG? no: just some bytes\n" * 100)
    work.append(("invalid-areas", (422,), lambda: _upload(server, "invalid-areas", garbage)))
    for i in range(2):
        big = small_cities[i].upload(sites=pad)
        work.append(
            (f"oversized-{i}", (413,), lambda n=f"oversized-{i}", f=big: _upload(server, n, f))
        )
    chunked = small_cities[2].upload(sites=pad)
    work.append(
        ("oversized-chunked", (413,), lambda: _chunked_upload(server, "oversized-chunked", chunked))
    )

    def plan(n_sites: int) -> httpx.Response:
        with server.client() as client:
            return client.post(
                f"/v1/datasets/{seed_id}/plans",
                json={"n_sites": n_sites, "n_vans": n_sites % 2},
                headers={"Authorization": f"Bearer {server.planner_key}"},
            )

    for n_sites in range(1, 7):
        work.append((f"plan-{n_sites}", (201, 202), lambda n=n_sites: plan(n)))

    barrier = threading.Barrier(len(work))

    def run(call: Callable[[], httpx.Response]) -> httpx.Response:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        futures = [(name, expected, pool.submit(run, call)) for name, expected, call in work]
        responses = {name: (expected, future.result()) for name, expected, future in futures}

    wrong = {
        name: (r.status_code, r.text[:300])
        for name, (expected, r) in responses.items()
        if r.status_code not in expected
    }
    assert wrong == {}, f"{wrong}\nserver log:\n{server.log()}"
    for name, (_, response) in responses.items():
        if response.status_code >= 400:
            assert response.headers["content-type"] == PROBLEM_JSON, name
            problem = response.json()
            assert problem["status"] == response.status_code and problem["detail"], name
            assert "Traceback" not in response.text, name

    # Exactly the successful uploads are stored, each complete.
    created = {
        response.json()["id"]: int(name.split("-")[1])
        for name, (_, response) in responses.items()
        if name.startswith("valid-")
    }
    assert database.dataset_ids() == {seed_id, *created}
    with server.client() as client:
        listing = client.get(
            "/v1/datasets", headers={"Authorization": f"Bearer {server.planner_key}"}
        ).json()
    assert {item["id"] for item in listing["items"]} == {seed_id, *created}
    assert listing["total"] == len(created) + 1
    rows = database.rows_by_dataset()
    for dataset_id, i in {**created, seed_id: 0}.items():
        expected = small_cities[i % 3].rows
        stored = {table: rows[table].get(dataset_id, 0) for table in expected}
        assert stored == expected, dataset_id
    orphans = {
        table: set(ids) - database.dataset_ids()
        for table, ids in rows.items()
        if set(ids) - database.dataset_ids()
    }
    assert orphans == {}

    # Every accepted plan is stored whole and reads back as it was returned.
    plan_ids = []
    with server.client() as client:
        for name, (_, response) in responses.items():
            if not name.startswith("plan-"):
                continue
            if response.status_code == 202:
                plan_ids.append(_wait_for_job(client, response.headers["Location"], server))
                continue
            plan_ids.append(response.json()["id"])
            stored_plan = client.get(
                f"/v1/plans/{plan_ids[-1]}",
                headers={"Authorization": f"Bearer {server.planner_key}"},
            )
            assert stored_plan.status_code == 200
            assert stored_plan.json()["sites"] == response.json()["sites"]
    assert rows["plans"] == {seed_id: len(plan_ids)}
    assert server.process.poll() is None


def _wait_for_job(client: httpx.Client, location: str, server: Server) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = client.get(location, headers={"Authorization": f"Bearer {server.planner_key}"})
        body = job.json()
        if body["status"] == "succeeded":
            return str(body["result_url"]).rsplit("/", 1)[-1]
        assert body["status"] in ("queued", "running"), body
        time.sleep(0.2)
    raise AssertionError(f"job {location} did not finish")


# --- killed in the middle of an import -----------------------------------------------------
def test_server_killed_mid_import_leaves_no_partial_dataset(
    database: Database,
    start_server: Callable[..., Server],
    small_cities: list[City],
    big_city: City,
) -> None:
    server = start_server(database)
    earlier = _upload(server, "earlier", small_cities[1].upload())
    assert earlier.status_code == 201, earlier.text
    earlier_id = earlier.json()["id"]
    before = database.rows_by_dataset()

    outcome: list[Any] = []

    def upload_big() -> None:
        try:
            outcome.append(_upload(server, "big", big_city.upload()))
        except httpx.TransportError as exc:  # the server died under the request
            outcome.append(exc)

    uploader = threading.Thread(target=upload_big)
    uploader.start()
    deadline = time.monotonic() + 180
    while not database.in_write_transaction():
        assert not outcome, f"the import finished before it was seen in progress: {outcome}"
        assert time.monotonic() < deadline, "the import never started writing"
        time.sleep(0.01)
    time.sleep(0.15)  # well inside the transaction: the import writes for seconds
    assert database.in_write_transaction()
    server.kill()
    uploader.join(timeout=60)
    assert outcome and isinstance(outcome[0], httpx.TransportError), outcome

    restarted = start_server(database)
    with restarted.client() as client:
        headers = {"Authorization": f"Bearer {restarted.planner_key}"}
        listing = client.get("/v1/datasets", headers=headers).json()
        assert [item["id"] for item in listing["items"]] == [earlier_id]
        meta = client.get(f"/v1/datasets/{earlier_id}", headers=headers)
        assert meta.status_code == 200 and meta.json()["n_areas"] == small_cities[1].rows["areas"]
    assert database.dataset_ids() == {earlier_id}
    assert database.rows_by_dataset() == before
    assert {t: n.get(earlier_id, 0) for t, n in before.items() if t in small_cities[1].rows} == (
        small_cities[1].rows
    )
