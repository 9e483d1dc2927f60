"""Store contract: both backends keep datasets whole, return them unchanged, and leave
nothing behind when an import fails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely

from app.store.base import Conflict, NotFound, SchemaMismatch
from geo.dataset import Dataset


def _counts(store) -> dict[str, int]:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    with store.engine.connect() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(store.t[name])).scalar_one()
            for name in ("datasets", "areas", "uptake", "indicators", "sites", "blobs")
        }


def test_demo_round_trip(store, demo_dir: Path, demo_dataset: Dataset) -> None:  # type: ignore[no-untyped-def]
    """Demo files -> import -> store -> load equal the original files."""
    meta = store.create_dataset(demo_dataset)
    loaded = store.load_dataset(meta.id)
    original_uptake = pd.read_csv(demo_dir / "uptake.csv", dtype={"area_code": str})
    assert loaded.uptake["eligible"].sum() == original_uptake["eligible"].sum()
    assert loaded.uptake["vaccinated"].sum() == original_uptake["vaccinated"].sum()
    merged = loaded.uptake.merge(
        original_uptake, on=["area_code", "age_band", "ethnic_group"], suffixes=("", "_file")
    )
    assert len(merged) == len(original_uptake) == len(loaded.uptake)
    assert (merged["eligible"] == merged["eligible_file"]).all() and (
        merged["vaccinated"] == merged["vaccinated_file"]
    ).all()

    import geopandas as gpd

    original_areas = gpd.read_file(demo_dir / "areas.gpkg").to_crs(4326)
    assert list(loaded.areas["area_code"]) == list(original_areas["area_code"])
    assert list(loaded.areas["parent_code"]) == list(original_areas["parent_code"])
    assert shapely.equals_exact(
        loaded.areas.geometry.values, original_areas.geometry.values, tolerance=1e-9
    ).all()

    pd.testing.assert_frame_equal(
        loaded.indicators, demo_dataset.indicators, check_exact=False, rtol=1e-12
    )
    original_sites = pd.read_csv(demo_dir / "sites.csv", dtype={"site_id": str})
    assert set(loaded.sites["site_id"]) == set(original_sites["site_id"])
    by_id = original_sites.set_index("site_id").loc[loaded.sites["site_id"]]
    assert np.allclose(loaded.sites.geometry.x, by_id["lon"]) and np.allclose(
        loaded.sites.geometry.y, by_id["lat"]
    )
    assert loaded.network is not None
    assert np.array_equal(loaded.network.edge_u, demo_dataset.network.edge_u)
    assert np.allclose(loaded.network.edge_length_m, demo_dataset.network.edge_length_m)


def test_bbox_query_returns_exactly_the_intersecting_envelopes(
    store, demo_dataset: Dataset
) -> None:  # type: ignore[no-untyped-def]
    meta = store.create_dataset(demo_dataset)
    minx, miny, maxx, maxy = demo_dataset.areas.total_bounds
    bbox = (
        minx + (maxx - minx) * 0.4,
        miny + (maxy - miny) * 0.4,
        minx + (maxx - minx) * 0.5,
        miny + (maxy - miny) * 0.5,
    )
    positions = store.area_positions_in_bbox(meta.id, bbox)
    assert list(positions) == sorted(positions)
    codes = set(demo_dataset.areas["area_code"].iloc[positions])
    bounds = demo_dataset.areas.bounds
    expected = demo_dataset.areas.loc[
        (bounds.maxx >= bbox[0])
        & (bounds.minx <= bbox[2])
        & (bounds.maxy >= bbox[1])
        & (bounds.miny <= bbox[3]),
        "area_code",
    ]
    assert codes == set(expected) and len(codes) > 10


def test_failed_import_leaves_nothing(store, demo_dataset: Dataset) -> None:  # type: ignore[no-untyped-def]
    first = store.create_dataset(demo_dataset)
    before = _counts(store)
    broken = Dataset(
        demo_dataset.name,
        demo_dataset.areas,
        demo_dataset.uptake.assign(eligible=None),
        demo_dataset.indicators,
        demo_dataset.sites,
    )
    with pytest.raises(Exception):  # noqa: B017 - a NOT NULL violation midway through the import
        store.create_dataset(broken)
    assert _counts(store) == before
    assert store.load_dataset(first.id).uptake.equals(store.load_dataset(first.id).uptake)
    assert [m.id for m in store.list_datasets()[0]] == [first.id]


def test_add_sites_delete_and_not_found(store, demo_dataset: Dataset) -> None:  # type: ignore[no-untyped-def]
    meta = store.create_dataset(demo_dataset)
    extra = demo_dataset.sites.iloc[:2].copy()
    with pytest.raises(Conflict):
        store.add_sites(meta.id, extra)
    extra["site_id"] = ["new-1", "new-2"]
    assert store.add_sites(meta.id, extra) == 2
    assert store.get_dataset_meta(meta.id).n_sites == len(demo_dataset.sites) + 2
    assert list(store.load_dataset(meta.id).sites["site_id"][-2:]) == ["new-1", "new-2"]
    store.delete_dataset(meta.id)
    with pytest.raises(NotFound):
        store.get_dataset_meta(meta.id)
    assert _counts(store) == {
        name: 0 for name in ("datasets", "areas", "uptake", "indicators", "sites", "blobs")
    }


def test_plans_are_immutable_and_keys_hashed(store, demo_dataset: Dataset) -> None:  # type: ignore[no-untyped-def]
    meta = store.create_dataset(demo_dataset)
    plan = {
        "id": "p1",
        "dataset_id": meta.id,
        "created_at": "2026-11-23T10:00:00+00:00",
        "sites": [],
        "totals": {"reached": 5},
    }
    store.save_plan(plan)
    with pytest.raises(Conflict):
        store.save_plan({**plan, "totals": {"reached": 6}})
    assert store.get_plan("p1")[0]["totals"]["reached"] == 5
    from app.auth import create_key, hash_key

    key_id, secret = create_key(store, role="planner", org="north")
    assert all(secret not in str(v) for row in store.list_keys() for v in row.values())
    assert store.find_key(hash_key(secret))["org"] == "north"
    store.revoke_key(key_id)
    assert store.find_key(hash_key(secret))["revoked_at"] is not None


def test_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    from sqlalchemy import update

    from app.store.sqlite import SqliteStore

    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = SqliteStore(url)
    with store.engine.begin() as conn:
        conn.execute(update(store.t["schema_info"]).values(version=999))
    store.close()
    with pytest.raises(SchemaMismatch, match="schema version 999"):
        SqliteStore(url)
