"""HTML checks of the offline Folium maps (no browser): no external URL, local assets that
exist, the required layers, suppressed values never printed, known colour classes,
aggregation above the size limit, and a 20,000-area map under 15 MB."""

from __future__ import annotations

import json
import posixpath
import re
from pathlib import Path

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from app import assets
from app._map_layers import jinja_safe
from app._map_script import SCRIPT, STYLE
from app.maps import MapSettings, gap_map_html, plan_map_html

REPO = Path(__file__).resolve().parents[1]
URL = re.compile(r"https?://[^\s\"'<>()\\]+")
PAYLOAD = re.compile(r'<script type="application/json" id="[^"]+_json">(.*?)</script>', re.S)
BASE_LAYERS = [
    "Shortfall: people to vaccinate",
    "Uptake against target",
    "Smoothed uptake against target",
    "Deprivation: IMD decile",
    "Ethnic group: Asian (share of residents)",
    "Ethnic group: Black (share of residents)",
    "Ethnic group: Mixed (share of residents)",
    "Ethnic group: White (share of residents)",
    "Ethnic group: Other (share of residents)",
]
SUPPRESSIBLE = ["eligible", "vaccinated", "uptake", "ci_low", "ci_high", "shortfall"]


def gap_frame(n_cols: int = 8, n_rows: int = 6, *, parents_of: int = 2) -> gpd.GeoDataFrame:
    """A grid of 300 m areas in Leicester (built in BNG, returned in WGS84) with gap columns.

    Area ``k`` has eligible ``200``, vaccinated ``100 + 2k`` (capped at 196), target 0.8,
    and shortfall ``160 - vaccinated`` (at least 0). Area 3 is suppressed (counts and
    rates ``None``), area 4 lists ``eligible`` as suppressed while a stray value 3 is
    still present.
    """
    x0, y0, size = 458_000.0, 304_000.0, 300.0
    cols, rows = np.meshgrid(np.arange(n_cols), np.arange(n_rows))
    cols, rows = cols.ravel(), rows.ravel()
    n = cols.size
    geometry = shapely.box(
        x0 + cols * size, y0 + rows * size, x0 + (cols + 1) * size, y0 + (rows + 1) * size
    )
    k = np.arange(n)
    eligible = np.full(n, 200.0)
    vaccinated = np.minimum(100.0 + 2 * k, 196.0)
    uptake = vaccinated / eligible
    shortfall = np.maximum(160.0 - vaccinated, 0.0)
    flags = np.array(["none", "below_target", "below_expected", "both"])[k % 4]
    frame = gpd.GeoDataFrame(
        {
            "area_code": [f"E00{i:06d}" for i in k],
            "area_name": [f"Area {i}" for i in k],
            "parent_code": [f"E01{i // parents_of:06d}" for i in k],
            "eligible": eligible,
            "vaccinated": vaccinated,
            "uptake": uptake,
            "ci_low": uptake - 0.05,
            "ci_high": uptake + 0.05,
            "smoothed_uptake": uptake,
            "expected_uptake": np.full(n, 0.75),
            "target": 0.8,
            "shortfall": shortfall,
            "z": 0.0,
            "funnel_significance": "not_significant",
            "flag": flags,
            "q_value": 0.01,
            "cluster_id": np.where(k < 4, 1.0, np.nan),
            "priority": (n - k).astype(float),
            "imd_decile": (k % 10 + 1).astype(float),
            "eth_asian": np.full(n, 0.07),
            "eth_black": np.full(n, 0.12),
            "eth_mixed": np.full(n, 0.03),
            "eth_white": np.full(n, 0.75),
            "eth_other": np.full(n, 0.03),
            "suppressed": [[] for _ in k],
        },
        geometry=geometry,
        crs="EPSG:27700",
    ).to_crs("EPSG:4326")
    if n > 4:
        frame.loc[3, SUPPRESSIBLE] = np.nan
        frame.at[3, "suppressed"] = list(SUPPRESSIBLE)
        frame.loc[4, "eligible"] = 3.0
        frame.at[4, "suppressed"] = ["eligible"]
    return frame


def cluster_frame(gaps: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    polygon = gaps.to_crs("EPSG:27700").geometry.iloc[:4].union_all()
    return gpd.GeoDataFrame(
        {
            "cluster_id": [1],
            "n_areas": [4],
            "eligible": [800],
            "vaccinated": [412],
            "shortfall": [228],
            "p_value": [0.004],
        },
        geometry=[polygon],
        crs="EPSG:27700",
    ).to_crs("EPSG:4326")


def plan_dict(gaps: gpd.GeoDataFrame) -> dict:
    points = gaps.geometry.representative_point()
    kinds = [
        ("pharmacy", ""),
        ("place_of_worship", "mosque"),
        ("place_of_worship", "gurdwara"),
        ("place_of_worship", "temple"),
        ("place_of_worship", "church"),
        ("place_of_worship", "synagogue"),
        ("community_centre", ""),
        ("school", ""),
        ("gp_practice", ""),
        ("mobile_van", ""),
    ]
    sites = []
    for order, (site_type, subtype) in enumerate(kinds, start=1):
        i = (order * 4) % len(gaps)
        sites.append(
            {
                "site_id": f"S{order}",
                "site_type": site_type,
                "subtype": subtype,
                "name": f"Site {order} & <friends>",
                "lon": float(points.x.iloc[i]),
                "lat": float(points.y.iloc[i]),
                "order": order,
                "marginal_gain": 50.0,
                "reach": {
                    "total": 120,
                    "by_imd_quintile": {"1": 60, "2": None, "3": 30, "4": 15, "5": 15},
                    "by_ethnic_group": {
                        "asian": 20,
                        "black": None,
                        "mixed": 10,
                        "white": 80,
                        "other": 10,
                    },
                },
            }
        )
    return {
        "id": "p1",
        "dataset_id": "d1",
        "params": {
            "radius_m": {
                "pharmacy": 800,
                "place_of_worship": 600,
                "community_centre": 700,
                "school": 500,
                "gp_practice": 900,
                "mobile_van": 400,
            }
        },
        "sites": sites,
        "totals": {
            "reached": 900,
            "shortfall_total": 2400,
            "reached_share": 0.375,
            "equity_weighted_reached": 1100,
        },
        "bound": 930,
        "gap_pct": 3.2,
    }


def payload(html: str) -> dict:
    (text,) = PAYLOAD.findall(html)
    return json.loads(text)


def column(data: dict, key: str, n: int) -> list:
    values = data["columns"][key]
    return values if isinstance(values, list) else [values] * n


def layer_names(html: str) -> tuple[list[str], list[str]]:
    block = re.search(r"base_layers : \{(.*?)\},\s*overlays :  \{(.*?)\},", html, re.S)
    assert block is not None
    return re.findall(r'"([^"]+)" :', block.group(1)), re.findall(r'"([^"]+)" :', block.group(2))


@pytest.fixture(scope="module")
def gaps() -> gpd.GeoDataFrame:
    return gap_frame()


@pytest.fixture(scope="module")
def gap_html(gaps: gpd.GeoDataFrame) -> str:
    return gap_map_html(
        gaps, cluster_frame(gaps), title="Flu gaps, target 80%", settings=MapSettings()
    )


@pytest.fixture(scope="module")
def plan_html(gaps: gpd.GeoDataFrame) -> str:
    existing = gpd.GeoDataFrame(
        {
            "site_id": ["X1", "X2"],
            "site_type": ["pharmacy", "gp_practice"],
            "status": "existing",
            "name": ["Boots", "Surgery"],
        },
        geometry=gaps.geometry.iloc[[10, 20]].representative_point().to_numpy(),
        crs="EPSG:4326",
    )
    return plan_map_html(
        plan_dict(gaps), gaps, existing_sites=existing, title="Plan p1", settings=MapSettings()
    )


def test_no_external_url_without_tiles(gap_html: str, plan_html: str) -> None:
    assert URL.findall(gap_html) == []
    assert URL.findall(plan_html) == []


def test_only_the_configured_tile_url(gaps: gpd.GeoDataFrame) -> None:
    tiles = "https://tiles.example.org/{z}/{x}/{y}.png"
    settings = MapSettings(tiles=tiles, tiles_attribution="© Example tiles")
    html = gap_map_html(gaps, None, title="t", settings=settings)
    found = URL.findall(html)
    assert found and all(tiles.startswith(url) for url in found)


def test_assets_are_local_files(gap_html: str, plan_html: str) -> None:
    referenced = set(re.findall(r'(?:src|href)="([^"]+)"', gap_html + plan_html))
    assert referenced, "the page loads no script at all"
    assert all(url.startswith("/static/vendor/") for url in referenced), referenced
    names = {url.removeprefix("/static/vendor/") for url in referenced}
    assert names <= set(assets.VENDOR_FILES)
    assert {
        "leaflet/leaflet.js",
        "awesome-markers/leaflet.awesome-markers.js",
        "fontawesome/css/all.min.css",
    } <= names
    if not assets.assets_installed(assets.DEFAULT_TARGET):
        pytest.skip("map assets not installed (run `make install`)")
    assert all((assets.DEFAULT_TARGET / name).is_file() for name in names)


def test_stylesheets_only_refer_to_copied_files() -> None:
    root = REPO / "node_modules"
    if not root.is_dir():
        pytest.skip("node_modules missing (run `npm ci --ignore-scripts`)")
    for dest, src in assets.VENDOR_FILES.items():
        if not dest.endswith(".css"):
            continue
        text = (root / src).read_text(encoding="utf-8")
        for ref in re.findall(r"url\(['\"]?([^'\")]+)['\"]?\)", text):
            if ref.startswith(("#", "data:")):
                continue
            target = posixpath.normpath(
                posixpath.join(posixpath.dirname(dest), ref.split("?")[0].split("#")[0])
            )
            assert target in assets.VENDOR_FILES, f"{dest} refers to {ref}, which is not copied"


def test_package_json_pins_the_vendor_packages() -> None:
    package = json.loads((REPO / "package.json").read_text())
    lock = json.loads((REPO / "package-lock.json").read_text())
    assert package["dependencies"] == assets.VENDOR_PACKAGES
    for name, version in assets.VENDOR_PACKAGES.items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
        assert lock["packages"][f"node_modules/{name}"]["integrity"].startswith("sha512-")


def test_install_assets(tmp_path: Path) -> None:
    if not (REPO / "node_modules").is_dir():
        pytest.skip("node_modules missing (run `npm ci --ignore-scripts`)")
    target = tmp_path / "vendor"
    assert not assets.assets_installed(target)
    assets.install_assets(REPO / "node_modules", target)
    assert assets.assets_installed(target)
    assert {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()} == {
        *assets.VENDOR_FILES,
        assets.MANIFEST_NAME,
    }
    (target / "leaflet" / "leaflet.js").unlink()
    assert not assets.assets_installed(target)


def test_install_assets_refuses_other_versions(tmp_path: Path) -> None:
    fake = tmp_path / "node_modules" / "leaflet"
    fake.mkdir(parents=True)
    (fake / "package.json").write_text('{"version": "1.9.4"}')
    with pytest.raises(assets.AssetsError, match=r"leaflet is version 1\.9\.4, expected 1\.9\.3"):
        assets.install_assets(tmp_path / "node_modules", tmp_path / "vendor")
    assert not (tmp_path / "vendor").exists()


def test_folium_class_defaults_untouched(gap_html: str) -> None:
    assert all(url.startswith("https://") for _, url in folium.Map.default_js)


def test_layers_named(gap_html: str, plan_html: str) -> None:
    base, overlays = layer_names(gap_html)
    assert base == BASE_LAYERS
    assert overlays == ["Flagged areas (outlined by reason)", "Gap clusters"]
    base, overlays = layer_names(plan_html)
    assert base == BASE_LAYERS[:2]
    assert overlays == [
        "Flagged areas (outlined by reason)",
        "Catchments",
        "Existing sites",
        "Chosen outreach sites (numbered in order)",
    ]


def test_suppressed_values_are_null(gaps: gpd.GeoDataFrame, gap_html: str) -> None:
    data = payload(gap_html)
    n = len(gaps)
    for key in ("elig", "vacc", "up", "lo", "hi", "sf"):
        assert column(data, key, n)[3] is None
    # Listed as suppressed: the stray value 3 is dropped, never written.
    assert column(data, "elig", n)[4] is None
    assert column(data, "vacc", n)[4] == 108
    assert column(data, "sup", n)[4] == "eligible"
    assert column(data, "c_shortfall", n)[3] == 1  # suppressed shortfall: "a few", not "no data"


def test_known_values_and_classes(gaps: gpd.GeoDataFrame, gap_html: str) -> None:
    data = payload(gap_html)
    n = len(gaps)
    assert len(data["geometries"]) == n
    assert column(data, "code", n)[:2] == ["E00000000", "E00000001"]
    assert column(data, "up", n)[0] == 0.5 and column(data, "tg", n)[0] == 0.8
    # Uptake minus target: 0.50 -> class 0 (below 60%), 0.78 -> 3, 0.89 -> 5, 0.98 -> 6.
    uptake_classes = column(data, "c_uptake", n)
    assert [uptake_classes[k] for k in (0, 28, 39, 47)] == [0, 3, 5, 6]
    assert column(data, "c_imd", n)[:3] == [0, 1, 2]
    assert column(data, "c_asian", n)[0] == 1 and column(data, "c_white", n)[0] == 5
    # No shortfall (vaccinated >= 160 from area 30 on) is class 0; positives are 1-5.
    shortfall_classes = np.array(column(data, "c_shortfall", n))
    assert (shortfall_classes[30:] == 0).all()
    assert set(shortfall_classes[:30]) - {-1} <= {1, 2, 3, 4, 5, 6}
    # Shortfall 60 - 2k; rounded quintiles of the positive values give edges 10, 25, 50.
    assert [shortfall_classes[k] for k in (0, 5, 13, 18, 25, 29)] == [
        5,
        4,
        4,
        3,
        2,
        2,
    ]  # class 1 is "a few (suppressed)"
    for label in (
        "None (target met)",
        "up to 10",
        "10–25",
        "25–50",
        "more than 50",
        "Suppressed or no data",
    ):
        assert label in gap_html
    assert column(data, "flag", n)[:4] == [0, 1, 2, 3]
    assert data["clusters"]["1"].startswith(
        "Cluster 1: 4 areas, shortfall 228 people, uptake 51.5%"
    )


def test_geometry_rounded_and_bounds_fitted(gaps: gpd.GeoDataFrame, gap_html: str) -> None:
    coords = np.array(payload(gap_html)["geometries"][0]["coordinates"][0])
    assert np.allclose(coords, np.round(coords, 5), atol=1e-12)
    minx, miny, maxx, maxy = gaps.total_bounds
    fitted = re.search(r"fitBounds\(\s*(\[\[.*?\]\])", gap_html, re.S)
    assert fitted is not None
    assert np.allclose(json.loads(fitted.group(1)), [[miny, minx], [maxy, maxx]], atol=1e-9)


def test_title_escaped_and_subtitle(gaps: gpd.GeoDataFrame) -> None:
    html = gap_map_html(
        gaps, None, title="<script>alert(1)</script> target=0.8", settings=MapSettings()
    )
    assert "<script>alert(1)" not in html
    assert "<title>&lt;script&gt;alert(1)&lt;&#47;script&gt; target=0.8</title>" in html
    assert "48 areas · target 80% · 36 flagged" in html


def test_user_text_survives_jinja_and_html(gaps: gpd.GeoDataFrame) -> None:
    tricky = gaps.copy()
    tricky.loc[0, "area_name"] = "{{ 7*7 }} {% raw %} </script><b>x</b>"
    data = payload(gap_map_html(tricky, None, title="{{ title }}", settings=MapSettings()))
    assert column(data, "name", len(tricky))[0] == "{{ 7*7 }} {% raw %} </script><b>x</b>"


def test_aggregates_to_parents_above_max_areas(gaps: gpd.GeoDataFrame) -> None:
    html = gap_map_html(gaps, None, title="t", settings=MapSettings(max_areas=30))
    data = payload(html)
    n = len(data["geometries"])
    assert n == 24
    assert (
        "48 areas are more than this map draws (30): they are aggregated to 24 parent areas" in html
    )
    codes = column(data, "code", n)
    first = codes.index("E01000000")
    # Areas 0 and 1: eligible 200 + 200, vaccinated 100 + 102; Wilson 95% from the sums.
    assert column(data, "elig", n)[first] == 400 and column(data, "vacc", n)[first] == 202
    assert column(data, "up", n)[first] == pytest.approx(0.505, abs=1e-4)
    # Parent of areas 2 and 3: area 3 suppressed, so only area 2 (200, 104) is summed.
    second = codes.index("E01000001")
    assert column(data, "elig", n)[second] == 200 and column(data, "nsup", n)[second] == 1
    # Parent of 4 and 5: eligible of area 4 suppressed -> area 5 only (vaccinated 110 of 200).
    third = codes.index("E01000002")
    assert column(data, "vacc", n)[third] == 110
    # Flags: 0 none + 1 below_target -> 1; 2 below_expected + 3 both -> 3.
    assert column(data, "flag", n)[first] == 1 and column(data, "flag", n)[second] == 3


def test_wilson_interval_of_aggregate() -> None:
    frame = gap_frame(2, 1, parents_of=2)
    frame["eligible"] = [100.0, 100.0]
    frame["vaccinated"] = [70.0, 80.0]
    data = payload(gap_map_html(frame, None, title="t", settings=MapSettings(max_areas=1)))
    # Wilson (1927) 95% interval for 150 of 200: 0.6857 to 0.8049.
    assert data["columns"]["lo"] == pytest.approx(0.6857, abs=1e-4)
    assert data["columns"]["hi"] == pytest.approx(0.8049, abs=1e-4)


def test_caps_to_highest_priority_without_parents(gaps: gpd.GeoDataFrame) -> None:
    orphan = gaps.assign(parent_code=None)
    html = gap_map_html(orphan, None, title="t", settings=MapSettings(max_areas=10))
    data = payload(html)
    assert "Showing the 10 highest-priority of 48 areas" in html
    # Priority is n - k, so the last ten areas are the highest-priority ones.
    assert column(data, "code", 10) == [f"E00{i:06d}" for i in range(38, 48)]


def test_plan_map_sites(gaps: gpd.GeoDataFrame, plan_html: str) -> None:
    plan = plan_dict(gaps)
    assert plan_html.count("L.AwesomeMarkers.icon(") == len(plan["sites"])
    icons = re.findall(r'"icon": "([a-z-]+)",\s*"prefix": "fa"', plan_html)
    assert icons == [
        "prescription-bottle-medical", "mosque", "khanda", "gopuram", "church",
        "synagogue", "people-roof", "school", "user-doctor", "truck-medical",
    ]  # fmt: skip
    labels = re.findall(r"bindTooltip\(\"(\d+)\",", plan_html)
    assert labels == [str(i) for i in range(1, 11)]
    popups = [
        json.loads(text) for text in re.findall(r"bindPopup\((\".*?\"), \{maxWidth", plan_html)
    ]
    assert len(popups) == len(plan["sites"])
    assert popups[0].startswith("<div class='or-popup'><b>1. Site 1 &amp; &lt;friends&gt;</b>")
    # Reach by quintile and ethnic group: None is "suppressed", never a number.
    assert "<td>2</td><td class='n'><i class='or-supp'>suppressed</i></td>" in popups[0]
    assert "<td>Black</td><td class='n'><i class='or-supp'>suppressed</i></td>" in popups[0]
    assert "<td>1 (most deprived)</td><td class='n'>60</td>" in popups[0]
    radii = [
        c["r"]
        for c in json.loads(
            re.search(r"Outreach\.circles\([^,]+, (\[.*?\]), \{", plan_html).group(1)
        )
    ]
    assert radii == [800, 600, 600, 600, 600, 600, 700, 500, 900, 400]


def test_plan_map_network_catchments(gaps: gpd.GeoDataFrame) -> None:
    plan = plan_dict(gaps)
    site = plan["sites"][0]
    polygon = shapely.Point(site["lon"], site["lat"]).buffer(0.003)
    catchments = gpd.GeoDataFrame({"site_id": ["S1"]}, geometry=[polygon], crs="EPSG:4326")
    html = plan_map_html(
        plan, gaps, existing_sites=None, title="p", settings=MapSettings(), catchments=catchments
    )
    match = re.search(r"Outreach\.circles\([^,]+, (\[.*?\]), (\{.*?\}), \"catchments\"", html, re.S)
    assert match is not None
    circles, polygons = json.loads(match.group(1)), json.loads(match.group(2))
    assert len(circles) == 9 and [f["properties"]["site_id"] for f in polygons["features"]] == [
        "S1"
    ]
    assert "walking-network catchment" in html


def test_twenty_thousand_areas_under_15_mb() -> None:
    rng = np.random.default_rng(5)
    extent = shapely.box(440_000, 290_000, 470_000, 310_000)  # 30 x 20 km, a city
    seeds = shapely.points(
        rng.uniform(440_000, 470_000, 20_000), rng.uniform(290_000, 310_000, 20_000)
    )
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=extent)
    )
    cells = shapely.segmentize(shapely.intersection(cells, extent), 10.0)
    # Detailed boundaries (73 vertices per area on average): a wiggle of up to 20 m that is a
    # function of position, so shared edges stay shared and rings stay closed.
    cells = shapely.transform(
        cells,
        lambda c: c + 10 * np.column_stack(
            [np.sin(c[:, 1] / 4.1) + np.sin(c[:, 0] / 9.7), np.cos(c[:, 0] / 3.7) + np.sin(c[:, 1] / 11.3)]
        ),
    )  # fmt: skip
    n = len(cells)
    values = pd.Series(rng.uniform(0.5, 0.95, n))
    frame = gpd.GeoDataFrame(
        {
            "area_code": [f"E00{i:06d}" for i in range(n)],
            "area_name": [f"Output area {i}" for i in range(n)],
            "parent_code": [f"E01{i // 5:06d}" for i in range(n)],
            "eligible": 200.0,
            "vaccinated": (values * 200).round(),
            "uptake": values,
            "ci_low": values - 0.05,
            "ci_high": values + 0.05,
            "smoothed_uptake": values,
            "expected_uptake": 0.75,
            "target": 0.8,
            "shortfall": np.maximum(160 - values * 200, 0).round(),
            "flag": np.where(values < 0.6, "both", "none"),
            "q_value": 0.05,
            "priority": np.arange(n, dtype=float),
            "imd_decile": rng.integers(1, 11, n).astype(float),
            **{
                f"eth_{g}": rng.uniform(0, 0.4, n)
                for g in ("asian", "black", "mixed", "white", "other")
            },
            "suppressed": [[] for _ in range(n)],
        },
        geometry=cells,
        crs="EPSG:27700",
    ).to_crs("EPSG:4326")
    html = gap_map_html(frame, None, title="City", settings=MapSettings())
    size_mb = len(html.encode("utf-8")) / 1e6
    assert len(payload(html)["geometries"]) == n == 20_000
    assert size_mb < 15, f"{size_mb:.1f} MB"


def test_page_script_survives_folium_jinja_pass() -> None:
    # Folium renders every element's output once more as a Jinja template.
    assert jinja_safe(SCRIPT) == SCRIPT and jinja_safe(STYLE) == STYLE
    assert jinja_safe('{"a":"{{x}} {%y%} {#z#}"}') == '{"a":"\\u007b{x}} \\u007b%y%} \\u007b#z#}"}'


def test_urls_in_user_text_are_not_resources(gaps: gpd.GeoDataFrame) -> None:
    """Text that looks like a URL (a name, a title) is data: the page stays URL-free."""
    named = gaps.assign(area_name="see https://example.org/x")
    plan = plan_dict(gaps)
    plan["sites"][0]["name"] = "Pharmacy http://shop.example.com"
    for html in (
        gap_map_html(named, None, title="Gaps from https://example.org", settings=MapSettings()),
        plan_map_html(plan, named, existing_sites=None, title="t", settings=MapSettings()),
    ):
        assert URL.findall(html) == []
    assert column(payload(html), "name", len(gaps))[0] == "see https://example.org/x"


def test_standalone_page_inlines_assets(tmp_path: Path) -> None:
    """Scripts and stylesheets under the static URL are inlined, their url() files become
    data: URIs (TTF fallbacks dropped), "</script" in code cannot close the block early,
    links elsewhere are left alone and a missing file is an error naming it."""
    from app._map_standalone import MissingAssetError, standalone_page

    (tmp_path / "lib" / "fonts").mkdir(parents=True)
    (tmp_path / "lib" / "a.js").write_text('var s = "</script>"; var t = 1;')
    (tmp_path / "lib" / "fonts" / "f.woff2").write_bytes(b"\x00font")
    (tmp_path / "lib" / "a.css").write_text(
        '@font-face{font-family:"Kept";src:url(fonts/f.woff2) format("woff2"),'
        'url(fonts/f.ttf) format("truetype")}@font-face{font-family:"Other";src:url(fonts/f.woff2)}'
        ".x{background:url('data:image/png;base64,AAAA')}"
    )
    page = (
        '<html><head><script src="/s/lib/a.js"></script>'
        '<link rel="stylesheet" href="/s/lib/a.css"/>'
        '<script src="https://example.org/x.js"></script></head></html>'
    )
    out = standalone_page(page, static_url="/s", vendor_dir=tmp_path, font_families=["Kept"])
    assert '<script>var s = "<\\/script>"; var t = 1;</script>' in out
    assert 'url("data:font/woff2;base64,AGZvbnQ=") format("woff2")}' in out
    assert ".ttf" not in out and "/s/lib" not in out and '"Other"' not in out
    assert "url('data:image/png;base64,AAAA')" in out  # already inline: untouched
    assert '<script src="https://example.org/x.js"></script>' in out
    with pytest.raises(MissingAssetError, match=r"/s/lib/b\.js"):
        standalone_page('<script src="/s/lib/b.js"></script>', static_url="/s", vendor_dir=tmp_path)
    with pytest.raises(MissingAssetError):
        standalone_page(
            '<script src="/s/../outside.js"></script>', static_url="/s", vendor_dir=tmp_path
        )
