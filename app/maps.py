"""Folium maps of uptake gaps and outreach plans that work without the internet.

Both maps load Leaflet and its plugins from the app's own ``/static/vendor`` (see
:mod:`app.assets`), draw no basemap unless a tile URL template is configured, and embed
their data compactly so 20,000 areas stay under 15 MB. Values suppressed by disclosure
control arrive as ``None`` and are shown as "suppressed", never as a number.

Gap map: one choropleth at a time, picked in the layer control (shortfall, uptake and
smoothed uptake against target, IMD decile, share of each ethnic group), flagged-area
outlines by flag type, gap clusters, a legend for what is shown and a tooltip per area.
Plan map: the gap layer underneath, catchments, existing sites and the chosen sites with
an icon per type, their order and a popup of who they reach.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
from branca.element import Figure

from app import _map_scales as scales
from app._map_data import (
    FIELDS,
    DisplayAreas,
    column_json,
    geometry_json,
    prepare_areas,
    prepare_clusters,
)
from app._map_layers import (
    PANE_CLUSTERS,
    PANES,
    AreaData,
    ChoroplethView,
    FlagOutlines,
    JsLayer,
    Library,
    TitleBox,
)
from app._map_sites import add_sites
from app.assets import CDN_REPLACEMENTS, MAP_CSS, MAP_JS

#: Outline of flagged areas per flag code (1 below target, 2 below expected, 3 both).
_FLAG_COLOURS = ["#000000", "#e7298a", "#6a3d9a", "#111111"]
#: Outline widths in pixels per flag code; thinner on dense maps, where areas are small.
_FLAG_WEIGHTS = [0.0, 2.0, 2.0, 3.0]
#: Above this many drawn areas the flag outlines start hidden (tick them on and zoom in).
_FLAGS_SHOWN_UP_TO = 5_000
_FLAG_LABELS = ["", "Below target", "Below expected uptake", "Below target and expected"]
_CLUSTER_COLOUR = "#00a6d6"
_CLUSTER_STYLE = {
    "pane": PANE_CLUSTERS,
    "color": _CLUSTER_COLOUR,
    "weight": 3,
    "opacity": 1,
    "dashArray": "7 4",
    "fill": False,
}
_RESOURCE = re.compile(r"<(?:script|link)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"")


@dataclass(frozen=True)
class MapSettings:
    """How maps are served and drawn.

    Attributes
    ----------
    static_url
        URL path where the vendor assets are served (``app/static/vendor``).
    tiles
        Basemap tile URL template (``https://.../{z}/{x}/{y}.png``), or ``None`` for no
        basemap: every data layer still shows on a plain background.
    tiles_attribution
        Attribution shown for the tiles (required by most providers).
    max_areas
        Above this many areas the map aggregates to ``parent_code`` (or, without
        parents, draws the highest-priority areas only) and says so on the map.
    """

    static_url: str = "/static/vendor"
    tiles: str | None = None
    tiles_attribution: str | None = None
    max_areas: int = 20_000


def gap_map_html(
    gaps: gpd.GeoDataFrame, clusters: gpd.GeoDataFrame | None, *, title: str, settings: MapSettings
) -> str:
    """The gap map as a standalone HTML page.

    Parameters
    ----------
    gaps
        One row per area with the SPEC §2 gap columns and geometry (WGS84); suppressed
        values are ``None``/NaN and listed in ``suppressed``.
    clusters
        Gap clusters (polygons with ``cluster_id``, ``n_areas``, ``eligible``,
        ``vaccinated``, ``shortfall``, ``p_value``), or ``None``.
    title
        Map title; should state the query (target, filters) that produced the gaps.
    settings
        Asset location, basemap and size limit.
    """
    display = prepare_areas(gaps, max_areas=settings.max_areas)
    frame = display.frame
    cluster_frame = prepare_clusters(clusters)
    m, allowed = _base_map(settings, display.bounds, title=title)
    layers = scales.gap_scales(frame)
    areas = _add_areas(m, display, cluster_frame, layers)
    for i, scale in enumerate(layers):
        ChoroplethView(
            areas, key=scale.key, name=scale.name, colours=scale.colours,
            legend_html=scale.legend_html(), show=i == 0,
        ).add_to(m)  # fmt: skip
    _add_flags(m, areas, n_areas=len(frame), show=len(frame) <= _FLAGS_SHOWN_UP_TO)
    if cluster_frame is not None and len(cluster_frame):
        _add_clusters(m, cluster_frame)
    n_flagged = int((frame["flag"] > 0).sum())
    parts = [_areas_phrase(display), _target_phrase(frame), f"{n_flagged:,} flagged"]
    if cluster_frame is not None:
        parts.append(f"{len(cluster_frame):,} clusters")
    TitleBox(_title_html(title, " · ".join(p for p in parts if p), display.note)).add_to(m)
    folium.LayerControl(collapsed=False, position="topright").add_to(m)
    return _render(m, settings, allowed)


def plan_map_html(
    plan: dict,
    gaps: gpd.GeoDataFrame,
    *,
    existing_sites: gpd.GeoDataFrame | None,
    title: str,
    settings: MapSettings,
    catchments: gpd.GeoDataFrame | None = None,
) -> str:
    """The plan map as a standalone HTML page.

    Parameters
    ----------
    plan
        A plan in the SPEC §3 shape (``sites`` with ``lon``, ``lat``, ``order``,
        ``site_type``, ``subtype``, ``reach``...; ``params.radius_m`` per site type in
        metres; ``totals``, ``bound``, ``gap_pct``).
    gaps
        The gap table with geometry, drawn underneath as the shortfall choropleth.
    existing_sites
        Sites already offering vaccination (points), drawn small and grey; or ``None``.
    title
        Map title.
    settings
        Asset location, basemap and size limit.
    catchments
        Network catchment polygons with ``site_id`` (WGS84); sites without one get a
        circle of their type's radius.
    """
    display = prepare_areas(gaps, max_areas=settings.max_areas)
    sites = list(plan.get("sites") or [])
    bounds = _union_bounds(display, sites)
    m, allowed = _base_map(settings, bounds, title=title)
    chosen = [s for s in scales.gap_scales(display.frame) if s.key in ("shortfall", "uptake")]
    areas = _add_areas(m, display, None, chosen)
    for i, scale in enumerate(chosen):
        ChoroplethView(
            areas, key=scale.key, name=scale.name, colours=scale.colours,
            legend_html=scale.legend_html(), show=i == 0,
        ).add_to(m)  # fmt: skip
    _add_flags(m, areas, n_areas=len(display.frame), show=False)
    add_sites(m, plan, existing_sites=existing_sites, catchments=catchments)
    TitleBox(_title_html(title, _plan_summary(plan, display), display.note)).add_to(m)
    folium.LayerControl(collapsed=False, position="topright").add_to(m)
    return _render(m, settings, allowed)


def _base_map(
    settings: MapSettings, bounds: tuple[float, float, float, float], *, title: str
) -> tuple[folium.Map, list[str]]:
    """A map wired to the local assets, with the panes, basemap (if any) and bounds."""
    m = folium.Map(
        location=None, tiles=None, control_scale=True, zoom_control="bottomleft", zoom_snap=0.25
    )
    static = settings.static_url.rstrip("/")
    # New lists on the instance: add_js_link would mutate folium's class-level defaults.
    m.default_js = [(name, f"{static}/{path}") for name, path in MAP_JS]
    m.default_css = [(name, f"{static}/{path}") for name, path in MAP_CSS]
    root = m.get_root()
    assert isinstance(root, Figure)
    root.title = html.escape(title).replace("/", "&#47;")  # no URL-looking text
    Library().add_to(m)
    for pane, z_index in PANES.items():
        folium.map.CustomPane(pane, z_index=z_index, pointer_events=False).add_to(m)
    allowed: list[str] = []
    if settings.tiles:
        layer = folium.TileLayer(
            tiles=settings.tiles,
            attr=settings.tiles_attribution or "Basemap tiles",
            name="Basemap",
            control=False,
        )
        layer.add_to(m)
        allowed = [
            str(layer.tiles),
            *re.findall(r"https?://[^\s\"'<>]+", settings.tiles_attribution or ""),
        ]
    minx, miny, maxx, maxy = bounds
    # Keep the data clear of the title (top left) and the legend and layer list (right).
    m.fit_bounds(
        [[miny, minx], [maxy, maxx]],
        padding_top_left=(20, 90),
        padding_bottom_right=(290, 20),
        max_zoom=17,
    )
    return m, allowed


def _add_areas(
    m: folium.Map, display: DisplayAreas, clusters: pd.DataFrame | None, layers: list[scales.Scale]
) -> AreaData:
    """Embed the areas once: geometry, tooltip columns and each layer's classes."""
    frame = display.frame
    columns: list[str] = []
    for field, key in FIELDS.items():
        decimals = _DECIMALS.get(field)
        columns.append(f'"{key}":' + column_json(frame[field], decimals=decimals))
    for scale in layers:
        columns.append(f'"c_{scale.key}":' + column_json(pd.Series(scale.classes)))
    columns.append('"flag":' + column_json(frame["flag"].astype("Int64")))
    suppressed = frame["suppressed"].where(frame["suppressed"] != "", None)
    columns.append('"sup":' + column_json(suppressed.astype(object)))
    if display.level == "parent":
        columns.append('"nsub":' + column_json(frame["n_children"].astype("Int64")))
        columns.append('"nsup":' + column_json(frame["n_children_suppressed"].astype("Int64")))
    cluster_text = "{}"
    if clusters is not None and len(clusters):
        cluster_text = pd.Series(
            clusters["tip_text"].to_numpy(),
            index=clusters["cluster_id"].astype("int64").astype(str),
        ).to_json()
    payload = (
        '{"geometries":' + geometry_json(frame.geometry) + ',"columns":{' + ",".join(columns) + "}"
        ',"clusters":' + cluster_text + "}"
    )
    # Thin white borders read well at city scale; thinner when areas are many.
    weight = 0.6 if len(frame) <= 5_000 else 0.3
    areas = AreaData(payload, fill_opacity=0.8, weight=weight)
    areas.add_to(m)
    return areas


# Decimals written per field (None: whole numbers; strings are left alone).
_DECIMALS: dict[str, int | None] = {
    "uptake": 4, "ci_low": 4, "ci_high": 4, "smoothed_uptake": 4, "expected_uptake": 4,
    "target": 4, "q_value": 5, "eth_asian": 3, "eth_black": 3, "eth_mixed": 3,
    "eth_white": 3, "eth_other": 3,
}  # fmt: skip


def _add_flags(m: folium.Map, areas: AreaData, *, n_areas: int, show: bool) -> None:
    scale = 1.0 if n_areas <= 2_000 else 0.6 if n_areas <= 10_000 else 0.4
    rows = [(c, label) for c, label in zip(_FLAG_COLOURS[1:], _FLAG_LABELS[1:], strict=True)]
    legend = scales.legend_block("Flagged areas (outline)", rows, outline=True)
    FlagOutlines(
        areas, name="Flagged areas (outlined by reason)", colours=_FLAG_COLOURS,
        weights=[w * scale for w in _FLAG_WEIGHTS], legend_html=legend, show=show,
    ).add_to(m)  # fmt: skip


def _add_clusters(m: folium.Map, frame: gpd.GeoDataFrame) -> None:
    geojson = json.loads(
        frame[["tip_text", "geometry"]].rename(columns={"tip_text": "tip"}).to_json()
    )
    legend = scales.legend_block(
        "Gap clusters (hot spots)",
        [(_CLUSTER_COLOUR, "Cluster of low uptake")],
        outline=True,
    )
    JsLayer("outlines", geojson, _CLUSTER_STYLE, "clusters", legend, name="Gap clusters").add_to(m)


def _render(m: folium.Map, settings: MapSettings, allowed: list[str]) -> str:
    """Render to HTML, point any CDN address at the local copy, and refuse to return a
    page that would load anything from outside the app (other than configured tiles)."""
    page = m.get_root().render()
    static = settings.static_url.rstrip("/")
    for cdn, path in CDN_REPLACEMENTS.items():
        page = page.replace(cdn, f"{static}/{path}")
    outside = [u for u in _RESOURCE.findall(page) if not u.startswith(static + "/")]
    outside += [
        u
        for u in re.findall(r"https?://[^\s\"'<>()\\]+", page)
        if not any(a.startswith(u) for a in allowed)
    ]
    if outside:
        raise RuntimeError(f"map page would load external resources: {sorted(set(outside))[:5]}")
    return page


def _title_html(title: str, subtitle: str, note: str | None) -> str:
    out = f"<h1>{html.escape(title)}</h1><div class='or-sub'>{html.escape(subtitle)}</div>"
    if note:
        out += f"<div class='or-note'>{html.escape(note)}</div>"
    return out


def _areas_phrase(display: DisplayAreas) -> str:
    if display.level == "parent":
        return f"{display.n_input:,} areas shown as {len(display.frame):,} parent areas"
    if len(display.frame) < display.n_input:
        return f"{len(display.frame):,} of {display.n_input:,} areas"
    return f"{display.n_input:,} areas"


def _target_phrase(frame: pd.DataFrame) -> str:
    targets = frame["target"].dropna().round(4).unique()
    if len(targets) == 1:
        return f"target {float(targets[0]):.0%}"
    return "targets vary by area" if len(targets) > 1 else ""


def _plan_summary(plan: dict, display: DisplayAreas) -> str:
    sites = plan.get("sites") or []
    n_vans = sum(1 for s in sites if s.get("site_type") == "mobile_van")
    parts = [
        _plural(len(sites) - n_vans, "site") + (f" and {_plural(n_vans, 'van')}" if n_vans else "")
    ]
    totals = plan.get("totals") or {}
    reached, short, share = (
        totals.get("reached"),
        totals.get("shortfall_total"),
        totals.get("reached_share"),
    )
    if reached is not None and short is not None:
        text = f"reach {reached:,.0f} of {short:,.0f} people still to vaccinate"
        parts.append(text + (f" ({share:.1%})" if share is not None else ""))
    if totals.get("equity_weighted_reached") is not None:
        parts.append(f"equity-weighted {totals['equity_weighted_reached']:,.0f}")
    if plan.get("gap_pct") is not None and plan.get("bound") is not None:
        parts.append(f"within {plan['gap_pct']:.1f}% of the bound ({plan['bound']:,.0f})")
    parts.append(_areas_phrase(display))
    return " · ".join(parts)


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _union_bounds(display: DisplayAreas, sites: list[dict]) -> tuple[float, float, float, float]:
    lons = [float(s["lon"]) for s in sites if s.get("lon") is not None]
    lats = [float(s["lat"]) for s in sites if s.get("lat") is not None]
    if len(display.frame) == 0 and not lons:
        return display.bounds
    minx, miny, maxx, maxy = (
        display.bounds if len(display.frame) else (np.inf, np.inf, -np.inf, -np.inf)
    )
    return (min([minx, *lons]), min([miny, *lats]), max([maxx, *lons]), max([maxy, *lats]))
