"""Plans over HTTP: SPEC shape, reach adds up, stored and immutable, CSV, every bad
parameter listed, large plans as jobs, maps served without external URLs."""

from __future__ import annotations

import csv
import io
import re
import time

import pytest

from tests.conftest import auth


@pytest.fixture(scope="module")
def plan_app(tmp_path_factory: pytest.TempPathFactory, demo_dataset):  # type: ignore[no-untyped-def]
    from starlette.testclient import TestClient

    from app.auth import create_key
    from app.main import create_app
    from app.settings import Settings
    from app.store import open_store

    folder = tmp_path_factory.mktemp("plans-app")
    url = f"sqlite:///{folder / 'o.db'}"
    store = open_store(url)
    meta = store.create_dataset(demo_dataset)
    keys = {role: create_key(store, role=role)[1] for role in ("viewer", "planner")}
    with TestClient(create_app(Settings(database_url=url, data_dir=folder), store=store)) as client:
        yield client, keys, meta.id


def test_plan_shape_and_totals(plan_app) -> None:  # type: ignore[no-untyped-def]
    client, keys, dataset_id = plan_app
    response = client.post(
        f"/v1/datasets/{dataset_id}/plans",
        json={"n_sites": 6, "n_vans": 2, "existing_factor": 0.5},
        headers=auth(keys["planner"]),
    )
    assert response.status_code == 201, response.text
    plan = response.json()
    assert response.headers["location"] == f"/v1/plans/{plan['id']}"
    assert {"id", "dataset_id", "params", "sites", "totals", "bound", "gap_pct"} <= set(plan)
    assert plan["dataset_id"] == dataset_id and plan["params"]["n_sites"] == 6
    assert 1 <= len(plan["sites"]) <= 8
    assert [s["order"] for s in plan["sites"]] == list(range(1, len(plan["sites"]) + 1))
    for site in plan["sites"]:
        assert {
            "site_id",
            "site_type",
            "name",
            "lon",
            "lat",
            "order",
            "marginal_gain",
            "reach",
        } <= set(site)
        assert set(site["reach"]) >= {"total", "by_imd_quintile", "by_ethnic_group"}
    assert sum(s["site_type"] == "mobile_van" for s in plan["sites"]) <= 2
    totals = plan["totals"]
    assert {"reached", "shortfall_total", "reached_share", "equity_weighted_reached"} <= set(totals)
    assert 0 < totals["reached"] <= totals["shortfall_total"]
    assert plan["bound"] >= plan["solver"]["objective"] - 1e-6 and plan["gap_pct"] >= 0


def test_plans_are_stored_immutable_and_exported(plan_app) -> None:  # type: ignore[no-untyped-def]
    client, keys, dataset_id = plan_app
    plan = client.post(
        f"/v1/datasets/{dataset_id}/plans",
        json={"n_sites": 5, "existing_factor": 0.5},
        headers=auth(keys["planner"]),
    ).json()
    again = client.get(f"/v1/plans/{plan['id']}", headers=auth(keys["viewer"])).json()
    assert again == plan
    for method in ("put", "patch", "delete"):
        refused = getattr(client, method)(f"/v1/plans/{plan['id']}", headers=auth(keys["planner"]))
        assert refused.status_code == 405 and refused.headers["allow"] == "GET"
        assert refused.headers["content-type"] == "application/problem+json"
    # Several routes share the dataset path: Allow lists the methods of all of them.
    refused = client.put(f"/v1/datasets/{dataset_id}", headers=auth(keys["planner"]))
    assert refused.status_code == 405 and refused.headers["allow"] == "DELETE, GET"
    assert "use DELETE or GET" in refused.json()["detail"]
    rows = list(
        csv.DictReader(
            io.StringIO(
                client.get(f"/v1/plans/{plan['id']}/sites.csv", headers=auth(keys["viewer"])).text
            )
        )
    )
    assert [r["site_id"] for r in rows] == [s["site_id"] for s in plan["sites"]]
    assert all(r["reach_total"] == "" or int(r["reach_total"]) % 5 == 0 for r in rows)
    html = client.get(f"/v1/plans/{plan['id']}/map", headers=auth(keys["viewer"]))
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert not re.findall(r"https?://", html.text)
    gap_map = client.get(
        f"/v1/datasets/{dataset_id}/gaps/map", params={"target": 0.75}, headers=auth(keys["viewer"])
    )
    assert (
        gap_map.status_code == 200
        and "75%" in gap_map.text
        and not re.findall(r"https?://", gap_map.text)
    )


def test_every_bad_parameter_is_listed(plan_app) -> None:  # type: ignore[no-untyped-def]
    client, keys, dataset_id = plan_app
    body = {
        "n_sites": -2,
        "n_vans": -1,
        "site_types": ["pharmacy", "spaceport"],
        "radius_m": {"pharmacy": 0, "school": -5},
        "required_sites": ["nope-1"],
        "target": 1.4,
    }
    response = client.post(
        f"/v1/datasets/{dataset_id}/plans", json=body, headers=auth(keys["planner"])
    )
    assert (
        response.status_code == 422
        and response.headers["content-type"] == "application/problem+json"
    )
    locs = {tuple(e["loc"]) for e in response.json()["errors"]}
    for expected in [
        ("body", "n_sites"),
        ("body", "n_vans"),
        ("body", "site_types", "spaceport"),
        ("body", "radius_m", "pharmacy"),
        ("body", "radius_m", "school"),
        ("body", "required_sites", "nope-1"),
        ("body", "target"),
    ]:
        assert expected in locs, (expected, locs)
    unknown = client.post(
        f"/v1/datasets/{dataset_id}/plans", json={"n_sitez": 3}, headers=auth(keys["planner"])
    )
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["loc"] == ["body", "n_sitez"]
    assert (
        client.post(
            f"/v1/datasets/{dataset_id}/plans", json={}, headers=auth(keys["viewer"])
        ).status_code
        == 403
    )


def test_large_plans_run_as_jobs(make_client, demo_dir) -> None:  # type: ignore[no-untyped-def]
    from tests.test_api_datasets import _demo_files

    client, keys = make_client(jobs={"plan_threshold": 1000})
    dataset_id = client.post(
        "/v1/datasets", data={"name": "d"}, files=_demo_files(demo_dir), headers=auth(keys["admin"])
    ).json()["id"]
    queued = client.post(
        f"/v1/datasets/{dataset_id}/plans", json={"n_sites": 3}, headers=auth(keys["planner"])
    )
    assert queued.status_code == 202
    job_url = queued.headers["location"]
    deadline = time.time() + 180
    while time.time() < deadline:
        job = client.get(job_url, headers=auth(keys["viewer"])).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.3)
    assert job["status"] == "succeeded", job
    plan = client.get(job["result_url"], headers=auth(keys["viewer"])).json()
    assert plan["dataset_id"] == dataset_id and len(plan["sites"]) >= 1
