"""Importing a dataset: read every file, validate every contract, join, and either
return a complete :class:`~geo.dataset.Dataset` or raise one :class:`InputError` that
lists every problem in every file.

Cross-file rules (the single-file contracts live in ``geo/validate_*.py``):

- uptake rows whose area code is not among the areas are an error (usually a 2011/2021
  code mismatch), or dropped with a warning when ``drop_unmatched_uptake`` is set;
- areas with no uptake row are kept and reported as a warning (shown as "no data");
- indicator rows are matched to area codes or, failing that, to parent codes (via the
  areas' ``parent_code`` or a lookup table) and inherited by child areas; rows for other
  places (a national IoD file against one city) are ignored; a file matching nothing is
  an error;
- sites are kept within the largest catchment radius of the study area.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd

from geo._errors import InputError, Problem
from geo._files import InputFile, ZipLimits, sniff
from geo.columns import code_columns
from geo.dataset import Dataset, empty_sites
from geo.readers import Report, read_layer, read_table
from geo.validate_areas import GeometryLimits, validate_areas
from geo.validate_indicators import validate_indicators
from geo.validate_sites import keep_sites_near, validate_sites
from geo.validate_uptake import validate_uptake

if TYPE_CHECKING:
    from geo.network import StreetNetwork

#: Sites farther than this from the study area cannot serve it under any default radius.
DEFAULT_SITE_DISTANCE_M = 3_000.0


@dataclass(frozen=True)
class ImportOptions:
    """How to treat imperfect inputs.

    Attributes
    ----------
    column_map
        Explicit header renames applied to every file, e.g. ``{"MYCODE": "area_code"}``.
    cap_vaccinated
        Cap ``vaccinated`` at ``eligible`` (warning listing the areas) instead of refusing.
    drop_unmatched_uptake
        Drop uptake rows for unknown areas (warning) instead of refusing.
    repair_geometry
        Repair invalid polygons with ``make_valid`` (warning) instead of refusing.
    site_distance_m
        Sites farther than this from the study area are dropped; default the largest
        catchment radius.
    """

    column_map: Mapping[str, str] = field(default_factory=dict)
    cap_vaccinated: bool = False
    drop_unmatched_uptake: bool = False
    repair_geometry: bool = True
    site_distance_m: float | None = None


@dataclass(frozen=True)
class ImportLimits:
    """Size limits applied while reading."""

    geometry: GeometryLimits = field(default_factory=GeometryLimits)
    zip: ZipLimits = field(default_factory=ZipLimits)


def load_dataset(
    name: str,
    *,
    areas: InputFile,
    uptake: InputFile,
    indicators: Sequence[InputFile] = (),
    sites: InputFile | None = None,
    network: InputFile | None = None,
    lookup: InputFile | None = None,
    options: ImportOptions = ImportOptions(),
    limits: ImportLimits = ImportLimits(),
) -> Dataset:
    """Read, validate and join a dataset's files.

    Raises
    ------
    InputError
        Listing every problem found in every file; nothing is returned half-done.
    """
    report = Report()
    area_frame = _areas(areas, report, options, limits)
    uptake_frame = _table(
        uptake,
        report,
        lambda t: validate_uptake(
            t,
            uptake.name,
            report,
            column_map=options.column_map,
            cap_vaccinated=options.cap_vaccinated,
        ),
    )
    indicator_frames = [
        (
            file.name,
            _table(
                file,
                report,
                lambda t, f=file: validate_indicators(
                    t, f.name, report, column_map=options.column_map
                ),
            ),
        )
        for file in indicators
    ]
    site_frame = _sites(sites, report, options, limits) if sites is not None else None
    street_network = _network(network, report) if network is not None else None
    parent_lookup = _lookup(lookup, report) if lookup is not None else None

    if area_frame is not None and parent_lookup is not None:
        missing = area_frame["parent_code"].isna()
        area_frame.loc[missing, "parent_code"] = area_frame.loc[missing, "area_code"].map(
            parent_lookup
        )
    if area_frame is not None and uptake_frame is not None:
        uptake_frame = _match_uptake(
            area_frame, uptake_frame, uptake.name, report, drop=options.drop_unmatched_uptake
        )
    indicator_frame = pd.DataFrame(index=pd.Index([], name="area_code"))
    if area_frame is not None:
        indicator_frame = _join_indicators(area_frame, indicator_frames, report)
    if area_frame is not None and site_frame is not None and sites is not None:
        site_frame = keep_sites_near(
            site_frame,
            area_frame,
            max_distance_m=options.site_distance_m or DEFAULT_SITE_DISTANCE_M,
            file_name=sites.name,
            report=report,
        )
    report.errors.raise_if_any()
    assert area_frame is not None and uptake_frame is not None
    return Dataset(
        name=name,
        areas=area_frame.reset_index(drop=True),
        uptake=uptake_frame.drop(columns="_line").reset_index(drop=True),
        indicators=indicator_frame,
        sites=site_frame.drop(columns="_line").reset_index(drop=True)
        if site_frame is not None
        else empty_sites(),
        network=street_network,
        warnings=report.warnings.result(),
    )


def read_dataset_dir(
    directory: str | Path, *, name: str | None = None, options: ImportOptions = ImportOptions()
) -> Dataset:
    """Import the files in a folder laid out as ``outreach demo`` writes them.

    Recognised names: ``areas.*`` (or any vector file named after boundaries), ``uptake*.csv``,
    ``indicators*.csv`` (several allowed), ``sites.csv``/``sites.geojson``, ``network.osm``/
    ``.osm.pbf``/``.graphml``, ``lookup*.csv``.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise InputError(
            [
                Problem(
                    str(folder),
                    "the folder does not exist",
                    "give the folder holding the dataset files",
                )
            ]
        )
    files = sorted(p for p in folder.iterdir() if p.is_file())

    def pick(predicate: object) -> list[Path]:
        return [p for p in files if predicate(p.name.lower())]  # type: ignore[operator]

    area_files = pick(
        lambda n: (
            n.startswith(("areas", "boundar"))
            and n.endswith((".gpkg", ".geojson", ".json", ".zip", ".parquet"))
        )
    )
    uptake_files = pick(lambda n: n.startswith("uptake") and n.endswith(".csv"))
    problems = []
    if not area_files:
        problems.append(
            Problem(
                str(folder),
                "no areas file (areas.gpkg, areas.geojson, areas.zip or areas.parquet)",
                "add the boundaries file",
            )
        )
    if not uptake_files:
        problems.append(Problem(str(folder), "no uptake file (uptake.csv)", "add the uptake table"))
    if problems:
        raise InputError(problems)
    sites = pick(lambda n: n.startswith("sites") and n.endswith((".csv", ".geojson", ".json")))
    network = pick(
        lambda n: n.startswith("network") and n.endswith((".osm", ".osm.pbf", ".pbf", ".graphml"))
    )
    lookup = pick(lambda n: n.startswith("lookup") and n.endswith(".csv"))
    return load_dataset(
        name or folder.name,
        areas=InputFile.from_path(area_files[0]),
        uptake=InputFile.from_path(uptake_files[0]),
        indicators=[
            InputFile.from_path(p)
            for p in pick(lambda n: n.startswith("indicators") and n.endswith(".csv"))
        ],
        sites=InputFile.from_path(sites[0]) if sites else None,
        network=InputFile.from_path(network[0]) if network else None,
        lookup=InputFile.from_path(lookup[0]) if lookup else None,
        options=options,
    )


def _areas(
    file: InputFile, report: Report, options: ImportOptions, limits: ImportLimits
) -> gpd.GeoDataFrame | None:
    layer = read_layer(file, report, zip_limits=limits.zip, prefer_layer="areas")
    if layer is None:
        return None
    return validate_areas(
        layer,
        file.name,
        report,
        column_map=options.column_map,
        repair=options.repair_geometry,
        limits=limits.geometry,
    )


def _table(file: InputFile, report: Report, validate: object) -> pd.DataFrame | None:
    table = read_table(file, report)
    return None if table is None else validate(table)  # type: ignore[operator]


def _sites(
    file: InputFile, report: Report, options: ImportOptions, limits: ImportLimits
) -> gpd.GeoDataFrame | None:
    kind = sniff(file.read_bytes())
    fix = "upload sites as CSV with lon/lat columns, or GeoJSON points"
    frame = (
        read_layer(file, report, zip_limits=limits.zip, fix=fix)
        if kind == "json"
        else read_table(file, report, fix=fix)
    )
    if frame is None:
        return None
    return validate_sites(frame, file.name, report, column_map=options.column_map)


def _network(file: InputFile, report: Report) -> StreetNetwork | None:
    from geo.network import read_network  # imported late: optional heavy readers

    try:
        network = read_network(file.read_bytes(), filename=file.name)
    except InputError as exc:
        for problem in exc.problems:
            report.error(problem)
        return None
    for problem in network.warnings:
        report.warn(problem)
    return network


def _lookup(file: InputFile, report: Report) -> dict[str, str] | None:
    table = read_table(file, report)
    if table is None:
        return None
    codes = code_columns(table.columns)
    if len(codes) < 2:
        report.error(
            Problem(
                file.name,
                "a lookup needs two code columns (e.g. OA21CD and LSOA21CD)",
                "give the child and parent code columns",
            )
        )
        return None
    child, parent = codes[0][0], codes[1][0]
    return dict(zip(table[child].str.strip(), table[parent].str.strip(), strict=True))


def _match_uptake(
    areas: gpd.GeoDataFrame, uptake: pd.DataFrame, file_name: str, report: Report, *, drop: bool
) -> pd.DataFrame:
    known = uptake["area_code"].isin(areas["area_code"])
    if not known.all():
        unknown = uptake.loc[~known]
        if drop:
            report.warn(
                Problem(
                    file_name,
                    f"{len(unknown)} rows for {unknown['area_code'].nunique()} area codes not in the areas file were dropped: {_sample(unknown['area_code'].unique())}",
                    "check the code vintage (2011 vs 2021) if this is unexpected",
                )
            )
            uptake = uptake.loc[known]
        else:
            report.errors.add_rows(
                file_name,
                unknown["_line"].to_numpy(),
                "the area code is not in the areas file",
                "check the code vintage (2011 vs 2021 codes) and the boundaries, or import with drop_unmatched_uptake=true to drop these rows",
                column="area_code",
                values=unknown["area_code"].tolist(),
            )
    without = ~areas["area_code"].isin(uptake["area_code"])
    if without.any():
        report.warn(
            Problem(
                file_name,
                f"{int(without.sum())} areas have no uptake rows and are shown as having no data: {_sample(areas.loc[without, 'area_code'])}",
                "add their rows if they should be analysed",
            )
        )
    return uptake


def _join_indicators(
    areas: gpd.GeoDataFrame, tables: list[tuple[str, pd.DataFrame | None]], report: Report
) -> pd.DataFrame:
    area_codes = pd.Index(areas["area_code"])
    joined = pd.DataFrame(index=pd.Index(area_codes, name="area_code"))
    parents = areas.set_index("area_code")["parent_code"]
    for file_name, table in tables:
        if table is None:
            continue
        direct = table.index.isin(area_codes).sum()
        via_parent = table.index.isin(parents.dropna().unique()).sum()
        if direct == 0 and via_parent == 0:
            report.error(
                Problem(
                    file_name,
                    f"none of the {len(table):,} codes matches an area or parent code (e.g. {_sample(table.index)})",
                    "use codes of the same vintage as the boundaries (2011 vs 2021), or supply a lookup table",
                )
            )
            continue
        if direct >= via_parent:
            per_area = table.reindex(area_codes)
        else:
            per_area = table.reindex(parents.reindex(area_codes).to_numpy())
            per_area.index = area_codes
        overlap = [c for c in per_area.columns if c in joined.columns]
        if overlap:
            report.warn(
                Problem(
                    file_name,
                    f"columns also given by an earlier indicator file were ignored: {', '.join(overlap)}",
                    "give each indicator once",
                )
            )
            per_area = per_area.drop(columns=overlap)
        joined = joined.join(per_area)
        missing = per_area.isna().all(axis=1)
        if missing.any():
            report.warn(
                Problem(
                    file_name,
                    f"{int(missing.sum())} areas have no indicator values in this file: {_sample(area_codes[missing.to_numpy()])}",
                    "add rows for them (their expected uptake falls back to the other indicators)",
                )
            )
    joined = joined.dropna(how="all")
    return joined.astype(np.float64) if len(joined.columns) else joined


def _sample(values: object, limit: int = 10) -> str:
    items = [str(v) for v in list(values)[: limit + 1]]  # type: ignore[call-overload]
    text = ", ".join(items[:limit])
    return text + ", …" if len(items) > limit else text
