"""The canonical in-memory dataset every analysis works on.

Readers turn user files (many layouts) into this one shape; stores persist and return it.

Shapes
------
``areas``
    GeoDataFrame in WGS84 with ``area_code`` (str, unique), ``area_name`` (str or None),
    ``parent_code`` (str or None) and Polygon/MultiPolygon geometry, in input order.
``uptake``
    DataFrame, one row per area and group cell: ``area_code``, ``age_band``, ``sex``,
    ``ethnic_group`` (``""`` when the input has no such breakdown), ``eligible`` and
    ``vaccinated`` (int64, raw, never rounded). The rows of one area partition its
    eligible population, so area totals are plain sums.
``indicators``
    DataFrame indexed by ``area_code`` (only areas that have indicators; parent-level
    values already inherited), float columns such as ``imd_score``, ``imd_decile``
    (1 = most deprived), ethnicity shares ``eth_<group>`` (0–1, summing to about 1) and
    religion shares ``rel_<religion>``.
``sites``
    GeoDataFrame of points in WGS84: ``site_id`` (str, unique), ``site_type``,
    ``subtype`` (e.g. ``mosque``; ``""`` when none), ``status`` (``existing`` or
    ``candidate``), ``name``, ``capacity_per_day`` and ``cost`` (float, NaN when not
    given), ``community`` (``""`` when none).
``network``
    Optional :class:`geo.network.StreetNetwork` (walking graph).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import geopandas as gpd
import pandas as pd
from pyproj import CRS

from geo._errors import Problem
from geo.projection import WGS84, metric_crs_of

if TYPE_CHECKING:  # geo.network is heavy (osmium, networkx) and only optional here
    from geo.network import StreetNetwork

AREA_COLUMNS = ["area_code", "area_name", "parent_code"]
GROUP_COLUMNS = ["age_band", "sex", "ethnic_group"]
UPTAKE_COLUMNS = ["area_code", *GROUP_COLUMNS, "eligible", "vaccinated"]
SITE_COLUMNS = [
    "site_id",
    "site_type",
    "subtype",
    "status",
    "name",
    "capacity_per_day",
    "cost",
    "community",
]
SITE_TYPES = (
    "pharmacy",
    "gp_practice",
    "place_of_worship",
    "community_centre",
    "school",
    "vaccination_centre",
    "mobile_van",
)
WORSHIP_SUBTYPES = ("mosque", "temple", "gurdwara", "church", "synagogue")
SITE_STATUSES = ("existing", "candidate")
#: The five high-level ethnic groups of the 2021 Census (England and Wales).
ETHNIC_GROUPS = ("asian", "black", "mixed", "white", "other")


@dataclass
class Dataset:
    """A validated dataset in canonical form (see module docstring for the shapes)."""

    name: str
    areas: gpd.GeoDataFrame
    uptake: pd.DataFrame
    indicators: pd.DataFrame
    sites: gpd.GeoDataFrame
    network: StreetNetwork | None = None
    warnings: list[Problem] = field(default_factory=list)

    @property
    def metric_crs(self) -> CRS:
        """EPSG:27700 in Great Britain, else the local UTM zone."""
        return metric_crs_of(self.areas)

    @property
    def n_areas(self) -> int:
        return len(self.areas)

    def groups_present(self) -> list[str]:
        """Group columns that actually break the uptake down (not all blank)."""
        return [c for c in GROUP_COLUMNS if (self.uptake[c] != "").any()]


def empty_sites() -> gpd.GeoDataFrame:
    """A sites frame with the canonical columns and no rows."""
    frame = pd.DataFrame({c: pd.Series(dtype="object") for c in SITE_COLUMNS})
    frame["capacity_per_day"] = frame["capacity_per_day"].astype(float)
    frame["cost"] = frame["cost"].astype(float)
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries([], crs=WGS84), crs=WGS84)


def area_totals(uptake: pd.DataFrame) -> pd.DataFrame:
    """Eligible and vaccinated summed per area (index ``area_code``)."""
    return uptake.groupby("area_code", sort=False)[["eligible", "vaccinated"]].sum()
