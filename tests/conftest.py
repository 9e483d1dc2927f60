"""Shared fixtures: small inline datasets with explicit CRS, the demo city, an app client."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from geo._files import InputFile

BNG = "EPSG:27700"
ORIGIN = (458_000.0, 304_000.0)  # Leicester-ish, British National Grid


def grid_areas(
    n_cols: int = 3, n_rows: int = 2, size: float = 400.0, *, prefix: str = "E00"
) -> gpd.GeoDataFrame:
    """A grid of square OA-like areas in BNG with ONS-style columns; 2 OAs per LSOA."""
    cells = [(i, j) for j in range(n_rows) for i in range(n_cols)]
    polys = [
        shapely.box(
            ORIGIN[0] + i * size,
            ORIGIN[1] + j * size,
            ORIGIN[0] + (i + 1) * size,
            ORIGIN[1] + (j + 1) * size,
        )
        for i, j in cells
    ]
    codes = [f"{prefix}{k + 1:06d}" for k in range(len(cells))]
    parents = [f"E01{k // 2 + 1:06d}" for k in range(len(cells))]
    return gpd.GeoDataFrame({"OA21CD": codes, "LSOA21CD": parents}, geometry=polys, crs=BNG)


def uptake_for(areas: gpd.GeoDataFrame, *, eligible: int = 200, share: float = 0.7) -> pd.DataFrame:
    codes = areas.iloc[:, 0].tolist()
    return pd.DataFrame(
        {
            "area_code": codes,
            "eligible": [eligible] * len(codes),
            "vaccinated": [int(eligible * share)] * len(codes),
        }
    )


def to_bytes_gpkg(frame: gpd.GeoDataFrame, tmp_path: Path, name: str = "areas.gpkg") -> bytes:
    path = tmp_path / name
    frame.to_file(path, layer="areas", driver="GPKG")
    return path.read_bytes()


def to_bytes_csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def zipped_shapefile(frame: gpd.GeoDataFrame, tmp_path: Path, *, drop_prj: bool = False) -> bytes:
    folder = tmp_path / "shp"
    folder.mkdir(exist_ok=True)
    frame.to_file(folder / "areas.shp")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for part in folder.iterdir():
            if drop_prj and part.suffix == ".prj":
                continue
            archive.write(part, part.name)
    return buffer.getvalue()


@pytest.fixture
def small_files(tmp_path: Path) -> dict[str, InputFile]:
    """A valid six-area dataset as input files (GeoPackage + CSVs)."""
    areas = grid_areas()
    return {
        "areas": InputFile("areas.gpkg", to_bytes_gpkg(areas, tmp_path)),
        "uptake": InputFile("uptake.csv", to_bytes_csv(uptake_for(areas))),
        "indicators": InputFile(
            "imd.csv",
            to_bytes_csv(
                pd.DataFrame(
                    {
                        "area_code": ["E01000001", "E01000002", "E01000003"],
                        "imd_score": [45.0, 20.0, 5.0],
                        "imd_decile": [1, 5, 10],
                    }
                )
            ),
        ),
    }


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default demo city written once per test session (deterministic, seed 42)."""
    from geo.synthetic import generate_city, write_city

    folder = tmp_path_factory.mktemp("demo")
    write_city(generate_city(seed=42), folder)
    return folder


@pytest.fixture(scope="session")
def demo_dataset(demo_dir: Path):  # type: ignore[no-untyped-def]
    from geo.ingest import read_dataset_dir

    return read_dataset_dir(demo_dir, name="demo")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'outreach.db'}"


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., tuple[object, dict[str, str]]]]:
    """Build a TestClient on a fresh SQLite store; returns (client, {role: key})."""
    from starlette.testclient import TestClient

    from app.auth import create_key
    from app.main import create_app
    from app.settings import Settings
    from app.store import open_store

    clients: list[TestClient] = []

    def factory(**settings_kwargs: object) -> tuple[TestClient, dict[str, str]]:
        url = f"sqlite:///{tmp_path / f'app{len(clients)}.db'}"
        store = open_store(url)
        keys = {role: create_key(store, role=role)[1] for role in ("viewer", "planner", "admin")}  # type: ignore[arg-type]
        settings = Settings(database_url=url, data_dir=tmp_path, **settings_kwargs)  # type: ignore[arg-type]
        client = TestClient(create_app(settings, store=store))
        clients.append(client)
        return client, keys

    yield factory
    for client in clients:
        client.close()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


POSTGIS_URL_ENV = "OUTREACH_TEST_POSTGIS_URL"
_DEFAULT_POSTGIS_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/outreach_test"
_postgis_reason: list[str] = []


def postgis_url() -> str | None:
    """The PostGIS test database URL, or None (with the reason recorded) when unusable."""
    import os

    url = os.environ.get(POSTGIS_URL_ENV, _DEFAULT_POSTGIS_URL)
    if _postgis_reason:
        return None if _postgis_reason[0] else url
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT postgis_version()"))
        engine.dispose()
        _postgis_reason.append("")
        return url
    except Exception as exc:
        _postgis_reason.append(
            f"no PostGIS server at {url} ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); set {POSTGIS_URL_ENV} or run .ci/run"
        )
        return None


@pytest.fixture(params=["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)])
def store(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A fresh empty store of each backend (PostGIS in its own schema, dropped after)."""
    import uuid

    if request.param == "sqlite":
        from app.store.sqlite import SqliteStore

        opened = SqliteStore(f"sqlite:///{tmp_path / 'store.db'}")
        yield opened
        opened.close()
        return
    url = postgis_url()
    if url is None:
        pytest.skip(_postgis_reason[0])
    from app.store.postgis import PostgisStore

    opened = PostgisStore(url, schema=f"t_{uuid.uuid4().hex[:12]}")
    yield opened
    opened.drop_schema()


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    if _postgis_reason and _postgis_reason[0]:
        terminalreporter.write_line(
            f"PostGIS tests were SKIPPED: {_postgis_reason[0]}", yellow=True
        )
