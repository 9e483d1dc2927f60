"""Files written by ``outreach gaps`` and ``outreach plan``: the same published (disclosure-
controlled) tables, GeoJSON, JSON and maps as the API serves."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from app.planning import publish_plan, sites_csv
from app.publish import (
    GAP_COLUMNS,
    csv_bytes,
    disclose,
    disclose_nested,
    feature_collection,
    geodataframe_geojson,
    geometry_json,
    policy_of,
)
from app.settings import Settings
from geo._errors import ParameterError
from geo.dataset import Dataset
from models.gaps import GapParams, GapResult


@dataclass
class Outputs:
    """Renderers by output name and file suffix."""

    renderers: dict[str, Callable[[str], bytes]]
    published: dict[str, Any]

    def render(self, key: str, suffix: str) -> bytes:
        return self.renderers[key](suffix)


def _suffix_error(key: str, suffix: str, allowed: str) -> ParameterError:
    return ParameterError(
        [
            {
                "loc": [f"--{key}"],
                "msg": f"cannot write {key} as {suffix or 'a file without suffix'}; use {allowed}",
            }
        ]
    )


def map_settings(settings: Settings, *, static_url: str = "/static/vendor") -> Any:
    from app.maps import MapSettings

    return MapSettings(
        static_url=static_url,
        tiles=settings.tiles,
        tiles_attribution=settings.tiles_attribution,
        max_areas=settings.map_max_areas,
    )


def _standalone(page: str) -> bytes:
    """A map file that opens anywhere: its assets inline, not linked to this virtualenv."""
    from app._map_standalone import standalone_page
    from app.assets import DEFAULT_TARGET

    return standalone_page(page, static_url="/static/vendor", vendor_dir=DEFAULT_TARGET).encode()


def published_gaps(dataset: Dataset, result: GapResult, settings: Settings) -> Any:
    """The gap table after disclosure control, with area geometry (WGS84)."""
    return with_geometry(disclose(result.table, policy_of(settings), columns=GAP_COLUMNS), dataset)


def with_geometry(table: pd.DataFrame, dataset: Dataset) -> Any:
    """A published table of areas as a GeoDataFrame with each area's polygon."""
    import geopandas as gpd

    geometry = dataset.areas.set_index("area_code").geometry.reindex(table["area_code"].to_numpy())
    return gpd.GeoDataFrame(
        table.reset_index(drop=True), geometry=geometry.to_numpy(), crs=dataset.areas.crs
    )


def published_clusters(result: GapResult, settings: Settings) -> Any:
    import geopandas as gpd

    clusters = result.clusters
    frame = disclose(
        pd.DataFrame(clusters.drop(columns=clusters.geometry.name)), policy_of(settings)
    )
    return gpd.GeoDataFrame(frame, geometry=clusters.geometry.to_numpy(), crs=clusters.crs)


def gap_outputs(
    dataset: Dataset, result: GapResult, params: GapParams, *, settings: Settings, title: str
) -> Outputs:
    gaps = published_gaps(dataset, result, settings)
    clusters = published_clusters(result, settings)

    def table(suffix: str) -> bytes:
        if suffix == ".csv":
            return csv_bytes(pd.DataFrame(gaps.drop(columns="geometry")))
        if suffix in (".geojson", ".json"):
            frame = pd.DataFrame(gaps.drop(columns="geometry"))
            return feature_collection(
                frame,
                geometry_json(np.asarray(gaps.geometry.array, dtype=object)),
                total=len(frame),
                extra={"target": params.target},
            )
        raise _suffix_error("out", suffix, ".geojson, .json or .csv")

    def cluster_file(suffix: str) -> bytes:
        if suffix not in (".geojson", ".json"):
            raise _suffix_error("clusters", suffix, ".geojson")
        return geodataframe_geojson(clusters)

    def inequality(suffix: str) -> bytes:
        if suffix != ".json":
            raise _suffix_error("inequality", suffix, ".json")
        policy = policy_of(settings)
        body = {
            **disclose_nested(result.inequality, policy),
            "model": disclose_nested(result.model_report, policy),
        }
        return json.dumps(body, indent=2).encode()

    def gap_map(suffix: str) -> bytes:
        if suffix not in (".html", ".htm"):
            raise _suffix_error("map", suffix, ".html")
        from app.maps import gap_map_html

        page = gap_map_html(gaps, clusters, title=title, settings=map_settings(settings))
        return _standalone(page)

    return Outputs(
        {"table": table, "clusters": cluster_file, "inequality": inequality, "map": gap_map}, {}
    )


def plan_outputs(
    dataset: Dataset, gaps: GapResult, plan: dict[str, Any], *, settings: Settings, title: str
) -> Outputs:
    published = publish_plan(plan, policy_of(settings))

    def plan_json(suffix: str) -> bytes:
        if suffix != ".json":
            raise _suffix_error("out", suffix, ".json")
        return json.dumps(published, indent=2).encode()

    def csv_file(suffix: str) -> bytes:
        if suffix != ".csv":
            raise _suffix_error("sites-csv", suffix, ".csv")
        return sites_csv(published)

    def plan_map(suffix: str) -> bytes:
        if suffix not in (".html", ".htm"):
            raise _suffix_error("map", suffix, ".html")
        from app.maps import plan_map_html

        existing = (
            dataset.sites.loc[dataset.sites["status"] == "existing"] if len(dataset.sites) else None
        )
        page = plan_map_html(
            published,
            published_gaps(dataset, gaps, settings),
            existing_sites=existing,
            title=title,
            settings=map_settings(settings),
        )
        return _standalone(page)

    return Outputs({"plan": plan_json, "sites_csv": csv_file, "map": plan_map}, published)
