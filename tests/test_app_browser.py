"""The real service in real Chromium: sign in on the landing page (key kept in a cookie),
follow the links to the demo city's gap map and a plan map, all offline."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import chromium_missing_reason, open_browser, open_page, screenshot

AREA_PATHS = ".leaflet-outreach-areas-pane path.leaflet-interactive"
MARKERS = ".leaflet-marker-pane .awesome-marker"


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory, demo_dataset) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    reason = chromium_missing_reason()
    if reason:
        pytest.skip(reason)
    from app.assets import assets_installed

    if not assets_installed():
        pytest.skip("map assets not installed (run `make install`)")
    import uvicorn

    from app.auth import create_key
    from app.main import create_app
    from app.planning import new_plan
    from app.settings import Settings
    from app.store import open_store
    from models.gaps import GapParams, analyse_gaps
    from models.plan_params import PlanParams

    folder: Path = tmp_path_factory.mktemp("browser-app")
    url = f"sqlite:///{folder / 'o.db'}"
    store = open_store(url)
    meta = store.create_dataset(demo_dataset)
    plan = new_plan(
        meta.id,
        demo_dataset,
        analyse_gaps(demo_dataset, GapParams()),
        PlanParams(n_sites=6, n_vans=2, existing_factor=0.5),
    )
    store.save_plan(plan)
    key = create_key(store, role="viewer")[1]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(Settings(database_url=url, data_dir=folder), store=store),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.1)
    yield {
        "base": f"http://127.0.0.1:{port}",
        "key": key,
        "dataset_id": meta.id,
        "plan": plan,
        "n_areas": len(demo_dataset.areas),
    }
    server.should_exit = True
    thread.join(timeout=10)


def test_landing_page_sign_in_then_gap_map(live_app: dict[str, Any]) -> None:
    with (
        open_browser() as browser,
        open_page(live_app["base"] + "/", browser=browser) as (page, report),
    ):
        assert "Sign in with an API key" in page.content()
        page.fill("input[name=key]", live_app["key"])
        page.click("button[type=submit]")
        page.wait_for_selector("text=Demo")
        screenshot(page, "app_landing")
        page.click(f"a[href='/v1/datasets/{live_app['dataset_id']}/gaps/map']")
        page.wait_for_selector(AREA_PATHS, timeout=60_000)
        page.wait_for_load_state("networkidle")
        assert page.locator(AREA_PATHS).count() == live_app["n_areas"]
        before = page.locator(AREA_PATHS).evaluate_all("ps => ps.map(p => p.getAttribute('fill'))")
        page.get_by_label("Deprivation: IMD decile", exact=True).check()
        page.wait_for_function(
            "() => document.querySelector('.or-legend').innerText.startsWith('IMD decile')"
        )
        after = page.locator(AREA_PATHS).evaluate_all("ps => ps.map(p => p.getAttribute('fill'))")
        assert before != after
        screenshot(page, "app_gap_map")
    assert report.blocked_requests == []
    assert report.clean, report.summary()


def test_plan_map_from_the_service(live_app: dict[str, Any]) -> None:
    plan = live_app["plan"]
    with (
        open_browser() as browser,
        open_page(live_app["base"] + "/", browser=browser) as (page, report),
    ):
        page.fill("input[name=key]", live_app["key"])
        page.click("button[type=submit]")
        page.wait_for_selector("text=plan map")
        page.click(f"a[href='/v1/plans/{plan['id']}/map']")
        page.wait_for_selector(MARKERS, timeout=60_000)
        page.wait_for_load_state("networkidle")
        assert page.locator(MARKERS).count() == len(plan["sites"])
        assert page.locator(AREA_PATHS).count() == live_app["n_areas"]
        labels = page.locator(".leaflet-tooltip.or-order").all_inner_texts()
        assert sorted(labels, key=int) == [str(i) for i in range(1, len(plan["sites"]) + 1)]
        screenshot(page, "app_plan_map")
    assert report.blocked_requests == []
    assert report.clean, report.summary()
