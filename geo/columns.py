"""Recognising the column headers that real files use.

ONS boundary files name their code column by level and vintage (``OA21CD``,
``LSOA11CD``…), the English Indices of Deprivation 2019 files use long descriptive
headers (``LSOA code (2011)``), Nomis and Census 2021 downloads use ``geography code`` or
``Lower layer Super Output Areas Code``. This module maps them to canonical names so the
readers never need a user to rename a column; anything else can be mapped explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

#: Geography levels from finest to coarsest; an areas file holding several code columns
#: uses the finest as ``area_code`` and the next one as ``parent_code``.
LEVELS = ("oa", "lsoa", "msoa", "lad", "other")

_CODE_PATTERNS: dict[str, tuple[str, ...]] = {
    "oa": (
        r"oa\d{2}cd",
        r"oa_?code",
        r"output areas? code",
        r"output areas? \(\d{4}\) code",
        r"oa code \(\d{4}\)",
    ),
    "lsoa": (
        r"lsoa\d{2}cd",
        r"lsoa_?code",
        r"lsoa code \(\d{4}\)",
        r"lower layer super output areas? code",
        r"lower layer super output areas? \(\d{4}\) code",
        r"lsoa",
    ),
    "msoa": (
        r"msoa\d{2}cd",
        r"msoa_?code",
        r"msoa code \(\d{4}\)",
        r"middle layer super output areas? code",
        r"msoa",
    ),
    "lad": (
        r"lad\d{2}cd",
        r"lad code",
        r"local authority district code( \(\d{4}\))?",
        r"local authority code",
        r"ltla\d{2}cd",
        r"utla\d{2}cd",
    ),
    "other": (
        r"area_?code",
        r"geography code",
        r"geography_code",
        r"geo_?code",
        r"areacode",
        r"code",
    ),
}

_NAME_PATTERNS: dict[str, tuple[str, ...]] = {
    "oa": (r"oa\d{2}nm",),
    "lsoa": (
        r"lsoa\d{2}nm",
        r"lsoa name( \(\d{4}\))?",
        r"lower layer super output areas?",
        r"lower layer super output areas? name",
    ),
    "msoa": (
        r"msoa\d{2}nm",
        r"msoa name( \(\d{4}\))?",
        r"middle layer super output areas?",
        r"msoa\d{2}hclnm",
    ),
    "lad": (r"lad\d{2}nm", r"local authority district name( \(\d{4}\))?"),
    "other": (r"area_?name", r"geography", r"name", r"areaname"),
}

_COMPILED_CODES = {
    level: [re.compile(rf"^{p}$") for p in patterns] for level, patterns in _CODE_PATTERNS.items()
}
_COMPILED_NAMES = {
    level: [re.compile(rf"^{p}$") for p in patterns] for level, patterns in _NAME_PATTERNS.items()
}

#: Canonical names of uptake and site columns and the headers accepted for each.
ALIASES: dict[str, tuple[str, ...]] = {
    "parent_code": ("parent_code", "parent", "parent code"),
    "eligible": (
        "eligible",
        "denominator",
        "eligible population",
        "number eligible",
        "total eligible",
        "population",
        "cohort",
        "n_eligible",
        "number of people eligible",
        "people eligible",
        "registered population",
        "eligible cohort",
    ),
    "vaccinated": (
        "vaccinated",
        "numerator",
        "number vaccinated",
        "total vaccinated",
        "vaccinations",
        "n_vaccinated",
        "count_vaccinated",
        "number of people vaccinated",
        "people vaccinated",
        "vaccinated people",
        "count vaccinated",
    ),
    "age_band": ("age_band", "age band", "age", "age group", "age_group", "ageband"),
    "sex": ("sex", "gender"),
    "ethnic_group": (
        "ethnic_group",
        "ethnic group",
        "ethnicity",
        "ethnic category",
        "ethnic_category",
    ),
    "site_id": ("site_id", "id", "site id", "site code", "ods code", "ods_code"),
    "site_type": ("site_type", "type", "site type", "category"),
    "subtype": ("subtype", "sub_type", "faith", "religion", "denomination"),
    "status": ("status", "site status"),
    "name": ("name", "site name", "site_name"),
    "lon": ("lon", "longitude", "long", "lng", "x_wgs84"),
    "lat": ("lat", "latitude", "y_wgs84"),
    "easting": ("easting", "eastings", "x", "oseast1m", "bng_e"),
    "northing": ("northing", "northings", "y", "osnrth1m", "bng_n"),
    "capacity_per_day": ("capacity_per_day", "capacity", "daily capacity", "capacity per day"),
    "cost": ("cost", "cost_per_day", "cost per day"),
    "community": ("community", "community served"),
}

#: IoD2019 headers (File 1/7 of the English Indices of Deprivation) and their canonical names.
IOD_HEADERS: dict[str, str] = {
    "index of multiple deprivation (imd) score": "imd_score",
    "index of multiple deprivation (imd) rank (where 1 is most deprived)": "imd_rank",
    "index of multiple deprivation (imd) rank": "imd_rank",
    "index of multiple deprivation (imd) decile (where 1 is most deprived 10% of lsoas)": "imd_decile",
    "index of multiple deprivation (imd) decile": "imd_decile",
    "imd_score": "imd_score",
    "imd score": "imd_score",
    "imd_rank": "imd_rank",
    "imd rank": "imd_rank",
    "imd_decile": "imd_decile",
    "imd decile": "imd_decile",
    "imd19_score": "imd_score",
    "imd19_decile": "imd_decile",
}


def normalise_header(header: object) -> str:
    """Lower-case, trim and collapse inner whitespace (``" LSOA  Code "`` -> ``"lsoa code"``)."""
    return re.sub(r"\s+", " ", str(header).replace("\ufeff", "")).strip().lower()


def snake_case(header: object) -> str:
    """A safe snake_case column name for an indicator header."""
    text = re.sub(r"[^0-9a-z]+", "_", normalise_header(header)).strip("_")
    return text or "column"


def code_level(header: object) -> str | None:
    """The geography level whose code this header names, or ``None``."""
    text = normalise_header(header)
    for level in LEVELS:
        if any(p.match(text) for p in _COMPILED_CODES[level]):
            return level
    return None


def name_level(header: object) -> str | None:
    """The geography level whose name this header names, or ``None``."""
    text = normalise_header(header)
    for level in LEVELS:
        if any(p.match(text) for p in _COMPILED_NAMES[level]):
            return level
    return None


def code_columns(columns: Iterable[object]) -> list[tuple[str, str]]:
    """Code columns found, as ``(column, level)`` ordered finest level first."""
    found = [(str(c), lvl) for c in columns if (lvl := code_level(c)) is not None]
    return sorted(found, key=lambda item: LEVELS.index(item[1]))


def find_alias(columns: Iterable[object], canonical: str) -> str | None:
    """The first column whose normalised header is an accepted alias of ``canonical``."""
    accepted = ALIASES[canonical]
    by_norm = {normalise_header(c): str(c) for c in columns}
    for alias in accepted:
        if alias in by_norm:
            return by_norm[alias]
    return None


def apply_column_map(columns: Iterable[object], column_map: Mapping[str, str]) -> dict[str, str]:
    """Renames for an explicit user mapping, matched case- and space-insensitively."""
    wanted = {normalise_header(k): v for k, v in column_map.items()}
    return {str(c): wanted[normalise_header(c)] for c in columns if normalise_header(c) in wanted}
