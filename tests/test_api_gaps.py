"""Gap endpoints: GeoJSON/CSV shapes, filters, disclosure control on every published
count, caching per (dataset, parameters), and large analyses as jobs."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import pytest

from tests.conftest import auth

SPEC_COLUMNS = [
    "area_code", "eligible", "vaccinated", "uptake", "ci_low", "ci_high", "smoothed_uptake", "expected_uptake", "target",
    "shortfall", "z", "funnel_significance", "flag", "q_value", "cluster_id", "priority", "imd_decile",
]  # fmt: skip


@pytest.fixture(scope="module")
def demo_app(tmp_path_factory: pytest.TempPathFactory, demo_dataset):  # type: ignore[no-untyped-def]
    from starlette.testclient import TestClient

    from app.auth import create_key
    from app.main import create_app
    from app.settings import Settings
    from app.store import open_store

    folder = tmp_path_factory.mktemp("gaps-app")
    url = f"sqlite:///{folder / 'o.db'}"
    store = open_store(url)
    meta = store.create_dataset(demo_dataset)
    key = create_key(store, role="viewer")[1]
    with TestClient(create_app(Settings(database_url=url, data_dir=folder), store=store)) as client:
        yield client, auth(key), meta.id


def test_gap_geojson_is_sorted_by_priority_with_spec_columns(demo_app) -> None:  # type: ignore[no-untyped-def]
    client, headers, dataset_id = demo_app
    response = client.get(
        f"/v1/datasets/{dataset_id}/gaps", params={"limit": 2000}, headers=headers
    )
    assert (
        response.status_code == 200 and response.headers["content-type"] == "application/geo+json"
    )
    body = response.json()
    assert (
        body["type"] == "FeatureCollection"
        and body["total"] == 2000
        and len(body["features"]) == 2000
    )
    props = [f["properties"] for f in body["features"]]
    assert set(SPEC_COLUMNS) <= set(props[0]) and {"eth_asian", "eth_white", "suppressed"} <= set(
        props[0]
    )
    assert [p["priority"] for p in props] == list(range(1, 2001))
    assert all(p["shortfall"] is None or p["shortfall"] >= 0 for p in props)
    lon, lat = body["features"][0]["geometry"]["coordinates"][0][0][:2]
    assert -2 < lon < 0 and 52 < lat < 53  # RFC 7946 lon/lat order


def test_paging_flag_and_bbox_filters(demo_app, demo_dataset) -> None:  # type: ignore[no-untyped-def]
    client, headers, dataset_id = demo_app
    everything = client.get(
        f"/v1/datasets/{dataset_id}/gaps", params={"limit": 2000}, headers=headers
    ).json()["features"]
    page = client.get(
        f"/v1/datasets/{dataset_id}/gaps", params={"limit": 10, "offset": 20}, headers=headers
    ).json()
    assert [f["properties"]["area_code"] for f in page["features"]] == [
        f["properties"]["area_code"] for f in everything[20:30]
    ]
    flagged = client.get(
        f"/v1/datasets/{dataset_id}/gaps", params={"flag": "any", "limit": 2000}, headers=headers
    ).json()
    assert flagged["total"] == sum(f["properties"]["flag"] != "none" for f in everything) > 0
    both = client.get(
        f"/v1/datasets/{dataset_id}/gaps", params={"flag": "both", "limit": 2000}, headers=headers
    ).json()
    assert all(f["properties"]["flag"] == "both" for f in both["features"])
    minx, miny, maxx, maxy = demo_dataset.areas.total_bounds
    box = (
        minx + 0.3 * (maxx - minx),
        miny + 0.3 * (maxy - miny),
        minx + 0.36 * (maxx - minx),
        miny + 0.36 * (maxy - miny),
    )
    inside = client.get(
        f"/v1/datasets/{dataset_id}/gaps",
        params={"bbox": ",".join(map(str, box)), "limit": 2000},
        headers=headers,
    ).json()
    bounds = demo_dataset.areas.bounds
    expected = set(
        demo_dataset.areas.loc[
            (bounds.maxx >= box[0])
            & (bounds.minx <= box[2])
            & (bounds.maxy >= box[1])
            & (bounds.miny <= box[3]),
            "area_code",
        ]
    )
    assert {f["properties"]["area_code"] for f in inside["features"]} == expected and inside[
        "total"
    ] == len(expected) > 0


def test_groups_and_csv_disclosure(demo_app) -> None:  # type: ignore[no-untyped-def]
    client, headers, dataset_id = demo_app
    response = client.get(
        f"/v1/datasets/{dataset_id}/gaps",
        params={"group": "ethnic_group", "format": "csv", "limit": 100_000},
        headers=headers,
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == int(response.headers["x-total-count"]) > 2000
    assert {r["group"] for r in rows} == {"ethnic_group"} and {r["group_value"] for r in rows} >= {
        "asian",
        "black",
        "white",
    }
    suppressed = [r for r in rows if r["suppressed"]]
    assert suppressed, "the demo has small ethnic groups in some areas, which must be suppressed"
    for row in rows:
        for column in ("eligible", "vaccinated", "unvaccinated", "shortfall"):
            if row[column] != "":
                value = int(row[column])
                assert not 1 <= value <= 7 and value % 5 == 0
    for row in suppressed:
        for name in row["suppressed"].split(";"):
            assert row[name] == ""
        if "vaccinated" in row["suppressed"].split(";") or "eligible" in row["suppressed"].split(
            ";"
        ):
            assert row["uptake"] == "" and row["ci_low"] == ""
    unknown = client.get(
        f"/v1/datasets/{dataset_id}/gaps", params={"group": "sex"}, headers=headers
    )
    assert (
        unknown.status_code == 422 and "available breakdowns" in unknown.json()["errors"][0]["msg"]
    )
    one = client.get(
        f"/v1/datasets/{dataset_id}/gaps",
        params={"group": "age_band", "group_value": "80+", "limit": 5000},
        headers=headers,
    ).json()
    assert one["total"] == 2000 and {f["properties"]["group_value"] for f in one["features"]} == {
        "80+"
    }


def test_bad_query_parameters_are_listed(demo_app) -> None:  # type: ignore[no-untyped-def]
    client, headers, dataset_id = demo_app
    response = client.get(
        f"/v1/datasets/{dataset_id}/gaps",
        params={"target": 1.5, "limit": 0, "flag": "purple"},
        headers=headers,
    )
    assert (
        response.status_code == 422
        and response.headers["content-type"] == "application/problem+json"
    )
    assert {tuple(e["loc"]) for e in response.json()["errors"]} == {
        ("query", "target"),
        ("query", "limit"),
        ("query", "flag"),
    }
    bbox = client.get(f"/v1/datasets/{dataset_id}/gaps", params={"bbox": "3,2,1"}, headers=headers)
    assert bbox.status_code == 422 and bbox.json()["errors"][0]["loc"] == ["query", "bbox"]
    missing = client.get("/v1/datasets/nope/gaps", headers=headers)
    assert missing.status_code == 404


def test_clusters_and_inequality(demo_app) -> None:  # type: ignore[no-untyped-def]
    client, headers, dataset_id = demo_app
    clusters = client.get(f"/v1/datasets/{dataset_id}/clusters", headers=headers).json()
    assert (
        clusters["type"] == "FeatureCollection"
        and clusters["total"] == len(clusters["features"]) > 0
    )
    first = clusters["features"][0]
    assert first["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert {
        "cluster_id",
        "eligible",
        "vaccinated",
        "shortfall",
        "p_value",
        "dominant_ethnic_groups",
        "median_imd_decile",
    } <= set(first["properties"])
    inequality = client.get(f"/v1/datasets/{dataset_id}/inequality", headers=headers).json()
    sii = inequality["sii"]
    assert (
        sii["sii_ci_low"] <= sii["sii"] <= sii["sii_ci_high"] and sii["sii"] > 0
    )  # lower uptake in deprived areas
    deciles = inequality["by_imd_decile"]
    assert [d["imd_decile"] for d in deciles] == list(range(1, 11))
    assert all(d["eligible"] % 5 == 0 for d in deciles)
    assert inequality["model"]["expected_model"]["deviance_explained"] > 0.3


def test_results_are_computed_once_and_large_analyses_run_as_jobs(
    make_client, demo_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    client, keys = make_client(jobs={"gaps_threshold_areas": 100})
    from tests.test_api_datasets import _demo_files

    dataset_id = client.post(
        "/v1/datasets", data={"name": "d"}, files=_demo_files(demo_dir), headers=auth(keys["admin"])
    ).json()["id"]
    first = client.get(
        f"/v1/datasets/{dataset_id}/gaps",
        params={"target": 0.85, "limit": 5},
        headers=auth(keys["viewer"]),
    )
    assert first.status_code == 202 and first.headers["location"].startswith("/v1/jobs/")
    job_url = first.headers["location"]
    deadline = time.time() + 120
    while time.time() < deadline:
        job = client.get(job_url, headers=auth(keys["viewer"])).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.3)
    assert job["status"] == "succeeded" and job["progress"] == 1.0
    assert job["result_url"].startswith(f"/v1/datasets/{dataset_id}/gaps")
    result = client.get(job["result_url"], headers=auth(keys["viewer"]))
    assert result.status_code == 200 and len(result.json()["features"]) == 5
    store = client.app.state.services.store
    from app.analysis import params_key
    from models.gaps import GapParams

    assert store.has_result(dataset_id, params_key(GapParams(target=0.85)))
    other_target = client.get(
        f"/v1/datasets/{dataset_id}/clusters", params={"target": 0.85}, headers=auth(keys["viewer"])
    )
    assert other_target.status_code == 200  # same parameters: reused, no new job
