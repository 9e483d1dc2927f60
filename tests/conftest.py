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


def grid_areas(n_cols: int = 3, n_rows: int = 2, size: float = 400.0, *, prefix: str = "E00") -> gpd.GeoDataFrame:
    """A grid of square OA-like areas in BNG with ONS-style columns; 2 OAs per LSOA."""
    cells = [(i, j) for j in range(n_rows) for i in range(n_cols)]
    polys = [shapely.box(ORIGIN[0] + i * size, ORIGIN[1] + j * size, ORIGIN[0] + (i + 1) * size, ORIGIN[1] + (j + 1) * size) for i, j in cells]
    codes = [f"{prefix}{k + 1:06d}" for k in range(len(cells))]
    parents = [f"E01{k // 2 + 1:06d}" for k in range(len(cells))]
    return gpd.GeoDataFrame({"OA21CD": codes, "LSOA21CD": parents}, geometry=polys, crs=BNG)


def uptake_for(areas: gpd.GeoDataFrame, *, eligible: int = 200, share: float = 0.7) -> pd.DataFrame:
    codes = areas.iloc[:, 0].tolist()
    return pd.DataFrame({"area_code": codes, "eligible": [eligible] * len(codes), "vaccinated": [int(eligible * share)] * len(codes)})


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
            to_bytes_csv(pd.DataFrame({"area_code": ["E01000001", "E01000002", "E01000003"], "imd_score": [45.0, 20.0, 5.0], "imd_decile": [1, 5, 10]})),
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
