"""The maps in a real headless Chromium, served from loopback with every other request
blocked: nothing is fetched from outside, no JavaScript error, one drawn path per area,
layer switching recolours the areas, one marker per chosen site, suppressed values shown
as "suppressed". Screenshots go to tests/artifacts/ for a human look."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import geopandas as gpd
import pytest

from app._map_standalone import standalone_page
from app.assets import DEFAULT_TARGET, assets_installed
from app.maps import MapSettings, gap_map_html, plan_map_html
from tests.browser import chromium_missing_reason, open_browser, open_page, screenshot, serve_pages
from tests.test_maps import cluster_frame, gap_frame, plan_dict

pytestmark = pytest.mark.browser

# The policy the app sends with HTML pages (app/middleware.py), without tiles: a violation
# shows up as a console error.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
AREA_PATHS = ".leaflet-outreach-areas-pane path.leaflet-interactive"
MARKERS = ".leaflet-marker-pane .awesome-marker"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = chromium_missing_reason()
    if reason:
        pytest.skip(reason)
    if not assets_installed(DEFAULT_TARGET):
        pytest.skip("map assets not installed in app/static/vendor (run `make install`)")
    with open_browser() as launched:
        yield launched


@pytest.fixture(scope="module")
def gaps() -> gpd.GeoDataFrame:
    return gap_frame(10, 7)


def fills(page: Any) -> list[str]:
    return page.locator(AREA_PATHS).evaluate_all("paths => paths.map(p => p.getAttribute('fill'))")


def area_centres(page: Any) -> list[tuple[float, float]]:
    """Screen centre of each area, in data order (read before any hover reorders paths)."""
    boxes = page.locator(AREA_PATHS).evaluate_all(
        "paths => paths.map(p => { const r = p.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })"
    )
    return [(x, y) for x, y in boxes]


def hover(page: Any, point: tuple[float, float]) -> str:
    """Hover a point and return the area tooltip's text."""
    page.mouse.move(*point)
    tooltip = page.locator(".leaflet-tooltip.or-tip")
    tooltip.wait_for(state="visible")
    return tooltip.inner_text()


def test_gap_map_offline(browser: Any, gaps: gpd.GeoDataFrame) -> None:
    html = gap_map_html(
        gaps, cluster_frame(gaps), title="Flu uptake gaps · target 80%", settings=MapSettings()
    )
    with serve_pages(
        {"/gaps.html": html}, page_headers={"Content-Security-Policy": CSP}
    ) as base_url:
        with open_page(f"{base_url}/gaps.html", browser=browser) as (page, report):
            page.wait_for_selector(AREA_PATHS)
            page.wait_for_load_state("networkidle")
            assert page.locator(AREA_PATHS).count() == len(gaps)
            assert page.locator(".or-legend").inner_text().startswith("People still to vaccinate")
            screenshot(page, "gap_map")

            # Area 3 is suppressed: words, never numbers, for its counts and rates.
            centres = area_centres(page)
            text = hover(page, centres[3])
            assert "E00000003" in text
            for field in ("Uptake", "Shortfall", "Eligible / vaccinated"):
                line = next(row for row in text.splitlines() if row.startswith(field))
                assert "suppressed" in line and not re.search(r"\d", line), line
            # Area 5 is published: uptake 110/200 with its interval, shortfall 50.
            text = hover(page, centres[5])
            assert "55.0% (95% CI 50.0%–60.0%)" in text and "50 people" in text
            assert "IMD decile\t6" in text and "White 75%, Black 12%, Asian 7%" in text
            page.mouse.move(5, 400)

            before = fills(page)
            page.get_by_label("Deprivation: IMD decile", exact=True).check()
            page.wait_for_function(
                "() => document.querySelector('.or-legend').innerText.startsWith('IMD decile')"
            )
            after = fills(page)
            assert len(after) == len(before) == len(gaps)
            assert before != after
            # Ten deciles in the data, ten colours on the map.
            assert len(set(after)) == 10
            screenshot(page, "gap_map_imd")
            page.get_by_label("Flagged areas (outlined by reason)").uncheck()
            assert page.locator(".leaflet-outreach-flags-pane path").count() == 0
    assert report.blocked_requests == []
    assert report.clean, report.summary()


def test_plan_map_offline(browser: Any, gaps: gpd.GeoDataFrame) -> None:
    plan = plan_dict(gaps)
    existing = gpd.GeoDataFrame(
        {"site_id": ["X1"], "site_type": ["pharmacy"], "status": ["existing"], "name": ["Boots"]},
        geometry=gaps.geometry.iloc[[33]].representative_point().to_numpy(),
        crs="EPSG:4326",
    )
    html = plan_map_html(
        plan, gaps, existing_sites=existing, title="Outreach plan p1", settings=MapSettings()
    )
    with serve_pages(
        {"/plan.html": html}, page_headers={"Content-Security-Policy": CSP}
    ) as base_url:
        with open_page(f"{base_url}/plan.html", browser=browser) as (page, report):
            page.wait_for_selector(MARKERS)
            page.wait_for_load_state("networkidle")
            assert page.locator(MARKERS).count() == len(plan["sites"])
            assert page.locator(AREA_PATHS).count() == len(gaps)
            labels = page.locator(".leaflet-tooltip.or-order").all_inner_texts()
            assert sorted(labels, key=int) == [str(i) for i in range(1, len(plan["sites"]) + 1)]
            # Font Awesome drew its glyphs from the local font (a resolved ::before content).
            glyph = page.locator(f"{MARKERS} i.fa-mosque").evaluate(
                "i => getComputedStyle(i, '::before').content"
            )
            assert glyph not in ("none", "normal", "")
            assert page.evaluate("document.fonts.check('900 16px \"Font Awesome 6 Free\"')")
            screenshot(page, "plan_map")

            page.locator(MARKERS).nth(1).click()
            popup = page.locator(".leaflet-popup-content")
            popup.wait_for(state="visible")
            page.wait_for_timeout(300)  # let the fade-in finish before the screenshot
            text = popup.inner_text()
            assert text.startswith("2. Site 2 & <friends>")
            assert "2\tsuppressed" in text and "Black\tsuppressed" in text
            assert "1 (most deprived)\t60" in text
            screenshot(page, "plan_map_popup")
    assert report.clean, report.summary()


def test_aggregated_map_says_so(browser: Any, gaps: gpd.GeoDataFrame) -> None:
    html = gap_map_html(gaps, None, title="Aggregated", settings=MapSettings(max_areas=40))
    with serve_pages({"/agg.html": html}) as base_url:
        with open_page(f"{base_url}/agg.html", browser=browser) as (page, report):
            page.wait_for_selector(AREA_PATHS)
            assert page.locator(AREA_PATHS).count() == len(gaps) // 2
            note = page.locator(".or-note").inner_text()
            assert "aggregated to 35 parent areas" in note
    assert report.clean, report.summary()


def test_tiles_blocked_but_data_drawn(browser: Any, gaps: gpd.GeoDataFrame) -> None:
    """The harness blocks and counts outside requests; data layers need no tiles."""
    settings = MapSettings(
        tiles="https://tiles.example.org/{z}/{x}/{y}.png", tiles_attribution="Example"
    )
    html = gap_map_html(gaps, None, title="With tiles", settings=settings)
    with serve_pages({"/tiles.html": html}) as base_url:
        with open_page(f"{base_url}/tiles.html", browser=browser) as (page, report):
            page.wait_for_selector(AREA_PATHS)
            page.wait_for_load_state("networkidle")
            assert page.locator(AREA_PATHS).count() == len(gaps)
    assert report.blocked_requests
    assert all(url.startswith("https://tiles.example.org/") for url in report.blocked_requests)
    assert report.page_errors == []


def test_twenty_thousand_areas_open_in_seconds(browser: Any) -> None:
    big = gap_frame(200, 100)
    html = gap_map_html(big, None, title="20,000 areas", settings=MapSettings())
    with serve_pages({"/big.html": html}) as base_url:
        with open_page(f"{base_url}/big.html", browser=browser, timeout_ms=60_000) as (
            page,
            report,
        ):
            load_ms = page.evaluate(
                "performance.timing.loadEventEnd - performance.timing.navigationStart"
            )
            # Scripts run before the load event, so every area is drawn by now.
            assert page.locator(AREA_PATHS).count() == 20_000
            screenshot(page, "gap_map_20000")
    assert load_ms < 10_000, f"{load_ms} ms"  # about 2.5 s measured on 2 cores
    assert report.clean, report.summary()


def test_standalone_plan_map_needs_no_files(
    browser: Any, gaps: gpd.GeoDataFrame, tmp_path: Any
) -> None:
    """The command line's map file carries its scripts, styles, images and fonts inline:
    served beside an empty static folder it still draws every area and marker, with Font
    Awesome glyphs, and asks for nothing."""
    plan = plan_dict(gaps)
    html = standalone_page(
        plan_map_html(plan, gaps, existing_sites=None, title="Plan", settings=MapSettings()),
        static_url="/static/vendor",
        vendor_dir=DEFAULT_TARGET,
    )
    assert "/static/vendor" not in html and "file://" not in html
    assert len(html) < 1_700_000  # fonts once each, WOFF2 only
    assert not re.findall(r"<(?:script|link)\b[^>]*\b(?:src|href)=", html)
    requests: list[str] = []
    empty = tmp_path / "static"
    empty.mkdir()
    with serve_pages(
        {"/plan.html": html}, static_dir=empty, page_headers={"Content-Security-Policy": CSP}
    ) as base_url:
        with open_page(f"{base_url}/plan.html", browser=browser) as (page, report):
            page.on("request", lambda request: requests.append(request.url))
            page.wait_for_selector(MARKERS)
            page.wait_for_load_state("networkidle")
            assert page.locator(AREA_PATHS).count() == len(gaps)
            assert page.locator(MARKERS).count() == len(plan["sites"])
            assert page.evaluate("document.fonts.check('900 16px \"Font Awesome 6 Free\"')")
            glyph = page.locator(f"{MARKERS} i.fa-mosque").evaluate(
                "i => getComputedStyle(i, '::before').content"
            )
            assert glyph not in ("none", "normal", "")
            # The marker sprite (a stylesheet image) came from the page itself.
            sprite = page.locator(MARKERS).first.evaluate(
                "m => getComputedStyle(m).backgroundImage"
            )
            assert sprite.startswith('url("data:image/png;base64,')
            screenshot(page, "plan_map_standalone")
    assert [u for u in requests if not u.startswith(("data:", "blob:"))] == []
    assert report.clean, report.summary()
