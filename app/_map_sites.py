"""Sites on the plan map: chosen sites with an icon per type and their order, catchments,
existing sites, and a popup of whom each chosen site reaches.

Icons are Font Awesome 6 (free, solid) through Leaflet.awesome-markers with
``Icon(prefix="fa")``; Bootstrap 3 glyphicons, folium's default, are not on npm.
"""

from __future__ import annotations

import html
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd

from app._map_data import COORD_DECIMALS, simplify_for_display
from app._map_layers import PANE_POINTS, Bindings, JsLayer, LegendFor
from app._map_scales import legend_block

#: site_type -> (Font Awesome icon, awesome-markers colour, label).
SITE_ICONS: dict[str, tuple[str, str, str]] = {
    "pharmacy": ("prescription-bottle-medical", "green", "Pharmacy"),
    "gp_practice": ("user-doctor", "blue", "GP practice"),
    "place_of_worship": ("place-of-worship", "purple", "Place of worship"),
    "community_centre": ("people-roof", "orange", "Community venue"),
    "school": ("school", "cadetblue", "School"),
    "vaccination_centre": ("syringe", "darkblue", "Vaccination centre"),
    "mobile_van": ("truck-medical", "red", "Mobile van"),
}
#: Place-of-worship subtype -> (Font Awesome icon, label).
WORSHIP_ICONS: dict[str, tuple[str, str]] = {
    "mosque": ("mosque", "Mosque"),
    "temple": ("gopuram", "Temple"),
    "gurdwara": ("khanda", "Gurdwara"),
    "church": ("church", "Church"),
    "synagogue": ("synagogue", "Synagogue"),
}
_OTHER = ("location-dot", "gray", "Other site")
# The awesome-markers sprite colours, reused for catchments and the legend.
_HEX = {
    "green": "#72b026",
    "blue": "#38aadd",
    "purple": "#d252b9",
    "orange": "#f69730",
    "cadetblue": "#436978",
    "darkblue": "#0067a3",
    "red": "#d63e2a",
    "gray": "#575757",
}
_GROUP_LABELS = {
    "asian": "Asian",
    "black": "Black",
    "mixed": "Mixed",
    "white": "White",
    "other": "Other",
}


def site_icon(site_type: str, subtype: str | None) -> tuple[str, str, str]:
    """``(icon, colour, label)`` for a site; places of worship get their faith's icon."""
    icon, colour, label = SITE_ICONS.get(site_type, _OTHER)
    if site_type == "place_of_worship" and subtype in WORSHIP_ICONS:
        icon, label = WORSHIP_ICONS[subtype]
    return icon, colour, label


def add_sites(
    m: folium.Map,
    plan: dict,
    *,
    existing_sites: gpd.GeoDataFrame | None,
    catchments: gpd.GeoDataFrame | None,
) -> None:
    """Add catchments, existing sites and the chosen sites (in plan order) to ``m``."""
    sites = sorted(
        plan.get("sites") or [], key=lambda s: (s.get("order") is None, s.get("order") or 0)
    )
    _add_catchments(m, sites, plan.get("params") or {}, catchments)
    if existing_sites is not None and len(existing_sites):
        _add_existing(m, existing_sites)
    group = folium.FeatureGroup(name="Chosen outreach sites (numbered in order)", show=True)
    for site in sites:
        icon, colour, _ = site_icon(str(site.get("site_type")), site.get("subtype"))
        marker = folium.Marker(
            location=[float(site["lat"]), float(site["lon"])],
            icon=folium.Icon(color=colour, icon=icon, prefix="fa"),
        )
        order = site.get("order")
        Bindings(_popup_html(site), "" if order is None else str(order)).add_to(marker)
        marker.add_to(group)
    if sites:
        LegendFor("sites", _sites_legend(sites)).add_to(group)
    group.add_to(m)


def _sites_legend(sites: list[dict]) -> str:
    """One row per site type (and faith) present, with its icon in its marker colour."""
    kinds: dict[tuple[str, str | None], None] = {}
    for s in sites:
        subtype = s.get("subtype") if s.get("site_type") == "place_of_worship" else None
        kinds.setdefault((str(s.get("site_type")), subtype or None), None)
    rows = []
    for site_type, subtype in kinds:
        icon, colour, label = site_icon(site_type, subtype)
        rows.append(
            f'<div class="or-row"><i class="fa fa-{html.escape(icon)}" style="color:{_HEX[colour]};'
            f'width:18px;text-align:center"></i>{html.escape(label)}</div>'
        )
    title = '<div class="or-legend-title">Chosen sites (number = order)</div>'
    return f'<div class="or-legend-block">{title}{"".join(rows)}</div>'


def _add_catchments(
    m: folium.Map, sites: list[dict], params: dict, catchments: gpd.GeoDataFrame | None
) -> None:
    """Network catchment polygons where given, else circles of the type's radius."""
    with_polygon: set[str] = set()
    polygons: dict[str, Any] = {"type": "FeatureCollection", "features": []}
    colour_of = {
        str(s.get("site_id")): _HEX[site_icon(str(s.get("site_type")), s.get("subtype"))[1]]
        for s in sites
    }
    if catchments is not None and len(catchments):
        frame = catchments.to_crs("EPSG:4326") if catchments.crs is not None else catchments
        frame = frame[frame["site_id"].astype(str).isin(colour_of)].copy()
        frame["site_id"] = frame["site_id"].astype(str)
        frame = frame.set_geometry(simplify_for_display(frame.geometry))
        frame["colour"] = frame["site_id"].map(colour_of)
        polygons = frame[["site_id", "colour", "geometry"]].__geo_interface__
        with_polygon = set(frame["site_id"])
    circles = []
    for site in sites:
        radius = _radius(site, params)
        if str(site.get("site_id")) in with_polygon or radius is None:
            continue
        circles.append(
            {
                "lat": round(float(site["lat"]), COORD_DECIMALS),
                "lon": round(float(site["lon"]), COORD_DECIMALS),
                "r": radius,
                "colour": colour_of[str(site.get("site_id"))],
            }
        )
    if not circles and not polygons["features"]:
        return
    what = "walking-network catchment" if polygons["features"] else "catchment radius"
    legend = legend_block("Catchments", [("#555555", f"Each chosen site's {what}")], outline=True)
    JsLayer("circles", circles, polygons, "catchments", legend, name="Catchments").add_to(m)


def _radius(site: dict, params: dict) -> float | None:
    """The site's catchment radius in metres: its own, else its type's in the plan."""
    if site.get("radius_m") is not None:
        return float(site["radius_m"])
    radius = params.get("radius_m")
    if isinstance(radius, dict):
        value = radius.get(site.get("site_type"), radius.get("default"))
        return None if value is None else float(value)
    return None if radius is None else float(radius)


def _add_existing(m: folium.Map, existing: gpd.GeoDataFrame) -> None:
    """Existing sites as small grey circles with a name-and-type tooltip."""
    frame = existing.to_crs("EPSG:4326") if existing.crs is not None else existing
    if "status" in frame:
        frame = frame[frame["status"].astype(str) == "existing"]
    frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
    points = frame.geometry.representative_point()
    types = (
        frame["site_type"].astype(str) if "site_type" in frame else pd.Series("", index=frame.index)
    )
    type_labels = types.map(lambda t: SITE_ICONS.get(t, _OTHER)[2])
    names = (
        frame["name"].fillna("").astype(str)
        if "name" in frame
        else pd.Series("", index=frame.index)
    )
    label = names.where(names != "", "Unnamed site") + " — existing " + type_labels.str.lower()
    data = {
        "lat": np.round(points.y.to_numpy(), COORD_DECIMALS).tolist(),
        "lon": np.round(points.x.to_numpy(), COORD_DECIMALS).tolist(),
        "label": label.tolist(),
    }
    style = {
        "pane": PANE_POINTS,
        "radius": 4,
        "color": "#333333",
        "weight": 1,
        "fillColor": "#ffffff",
        "fillOpacity": 0.9,
    }
    legend = (
        '<div class="or-legend-block"><div class="or-row"><i class="or-swatch" '
        'style="--c:#ffffff;border-radius:50%;width:10px;height:10px;border-color:#333"></i>'
        "Existing vaccination sites</div></div>"
    )
    JsLayer("points", data, style, "existing", legend, name="Existing sites").add_to(m)


def _popup_html(site: dict) -> str:
    """Escaped popup: order, name, type, reach by IMD quintile and by ethnic group."""
    _, _, label = site_icon(str(site.get("site_type")), site.get("subtype"))
    order = site.get("order")
    name = site.get("name") or site.get("site_id") or "Site"
    head = f"{order}. " if order is not None else ""
    reach = site.get("reach") or {}
    parts = [
        f"<div class='or-popup'><b>{html.escape(head + str(name))}</b><br>",
        f"{html.escape(label)} · site {html.escape(str(site.get('site_id', '')))}<br>",
        f"People reached: <b>{_count(reach.get('total'))}</b>",
    ]
    if site.get("marginal_gain") is not None:
        parts.append(f" · marginal gain {_count(site.get('marginal_gain'))}")
    quintiles = reach.get("by_imd_quintile") or {}
    if quintiles:
        rows = "".join(
            f"<tr><td>{q}{' (most deprived)' if q == 1 else ' (least deprived)' if q == 5 else ''}</td>"
            f"<td class='n'>{_count(quintiles.get(str(q), quintiles.get(q)))}</td></tr>"  # type: ignore[call-overload]
            for q in range(1, 6)
        )
        parts.append(f"<table><tr><th>IMD quintile</th><th>Reached</th></tr>{rows}</table>")
    groups = reach.get("by_ethnic_group") or {}
    if groups:
        rows = "".join(
            f"<tr><td>{html.escape(_GROUP_LABELS.get(str(g), str(g)))}</td><td class='n'>{_count(v)}</td></tr>"
            for g, v in groups.items()
        )
        parts.append(f"<table><tr><th>Ethnic group</th><th>Reached</th></tr>{rows}</table>")
    parts.append("</div>")
    return "".join(parts)


def _count(value: object) -> str:
    """A count for display; ``None`` is a suppressed value and is never shown as a number."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "<i class='or-supp'>suppressed</i>"
    return f"{float(value):,.0f}"  # type: ignore[arg-type]
