"""Readers and validators: every bad input of SPEC §1 is reported completely, real
header layouts are recognised, and good files arrive in canonical form."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo._errors import InputError
from geo._files import InputFile
from geo.ingest import ImportOptions, load_dataset
from tests.conftest import grid_areas, to_bytes_csv, to_bytes_gpkg, uptake_for, zipped_shapefile


def _load(files: dict[str, InputFile], **kwargs: object):  # type: ignore[no-untyped-def]
    indicators = files.get("indicators")
    return load_dataset(
        "t",
        areas=files["areas"],
        uptake=files["uptake"],
        indicators=[indicators] if indicators else [],
        sites=files.get("sites"),
        lookup=files.get("lookup"),
        **kwargs,  # type: ignore[arg-type]
    )


def _problems(
    exc: pytest.ExceptionInfo[InputError],
) -> list[tuple[str, int | None, str | None, str]]:
    return [(p.file, p.row, p.column, p.problem) for p in exc.value.problems]


def test_valid_dataset_is_canonical(small_files: dict[str, InputFile]) -> None:
    dataset = _load(small_files)
    assert list(dataset.areas["area_code"]) == [f"E00{k:06d}" for k in range(1, 7)]
    assert (
        list(dataset.areas["parent_code"])
        == ["E01000001"] * 2 + ["E01000002"] * 2 + ["E01000003"] * 2
    )
    assert dataset.areas.crs.to_epsg() == 4326
    assert dataset.metric_crs.to_epsg() == 27700
    assert dataset.uptake["eligible"].dtype == np.int64
    # IMD given per LSOA is inherited by both OAs of each LSOA.
    assert dataset.indicators.loc["E00000003", "imd_decile"] == 5
    assert dataset.indicators.loc["E00000006", "imd_score"] == 5.0
    assert dataset.warnings == []


def test_every_uptake_problem_is_listed(small_files: dict[str, InputFile]) -> None:
    bad = (
        "area_code,eligible,vaccinated\n"
        "E00000001,100,120\n"  # line 2: vaccinated > eligible
        "E00000002,-5,1\n"  # line 3: negative
        "E00000003,10.5,2\n"  # line 4: non-integer
        "E00000004,abc,2\n"  # line 5: not a number
        "E09999999,10,2\n"  # line 6: unknown area
        "E00000005,10,2\n"
        "E00000005,10,2\n"  # lines 7-8: duplicate
        ",10,2\n"  # line 9: blank code
    )
    files = {**small_files, "uptake": InputFile("uptake.csv", bad.encode())}
    with pytest.raises(InputError) as exc:
        _load(files)
    found = {(row, column, problem) for _, row, column, problem in _problems(exc)}
    assert (2, "vaccinated", "vaccinated is greater than eligible") in found
    assert (3, "eligible", "the count is negative") in found
    assert (4, "eligible", "the count is not a whole number") in found
    assert (5, "eligible", "the count is not a number") in found
    assert (6, "area_code", "the area code is not in the areas file") in found
    assert (7, "area_code", "the same area and group appear in more than one row") in found
    assert (8, "area_code", "the same area and group appear in more than one row") in found
    assert (9, "area_code", "the area code is blank") in found
    assert all(p.fix for p in exc.value.problems)


def test_cap_vaccinated_option_warns_with_the_areas(small_files: dict[str, InputFile]) -> None:
    table = uptake_for(grid_areas())
    table.loc[0, "vaccinated"] = 250
    files = {**small_files, "uptake": InputFile("uptake.csv", to_bytes_csv(table))}
    with pytest.raises(InputError):
        _load(files)
    dataset = _load(files, options=ImportOptions(cap_vaccinated=True))
    assert dataset.uptake.loc[0, "vaccinated"] == dataset.uptake.loc[0, "eligible"] == 200
    assert any("capped" in w.problem and "E00000001" in w.problem for w in dataset.warnings)


def test_areas_without_uptake_are_a_warning_and_unknown_codes_can_be_dropped(
    small_files: dict[str, InputFile],
) -> None:
    table = uptake_for(grid_areas()).iloc[1:]
    table = pd.concat(
        [table, pd.DataFrame({"area_code": ["E01999999"], "eligible": [5], "vaccinated": [1]})]
    )
    files = {**small_files, "uptake": InputFile("uptake.csv", to_bytes_csv(table))}
    dataset = _load(files, options=ImportOptions(drop_unmatched_uptake=True))
    messages = " ".join(w.problem for w in dataset.warnings)
    assert "1 areas have no uptake rows" in messages and "E00000001" in messages
    assert "E01999999" in messages and "E01999999" not in set(dataset.uptake["area_code"])


def test_every_area_problem_is_listed(tmp_path: Path, small_files: dict[str, InputFile]) -> None:
    areas = grid_areas()
    areas.loc[1, "OA21CD"] = "E00000001"  # duplicate code
    bowtie = shapely.Polygon(
        [(458000, 304000), (458400, 304400), (458400, 304000), (458000, 304400)]
    )
    areas.loc[2, "geometry"] = bowtie  # invalid -> repaired with a warning
    areas.loc[3, "geometry"] = shapely.Polygon()  # empty
    areas.loc[4, "geometry"] = shapely.Point(458000, 304000)  # not a polygon
    files = {**small_files, "areas": InputFile("areas.gpkg", to_bytes_gpkg(areas, tmp_path))}
    with pytest.raises(InputError) as exc:
        _load(files)
    found = {(row, problem) for _, row, _, problem in _problems(exc)}
    assert (1, "the area code appears more than once") in found
    assert (2, "the area code appears more than once") in found
    assert (4, "the feature has no geometry (empty)") in found
    assert (5, "the geometry is a Point, not a polygon") in found


def test_invalid_polygon_is_repaired_with_a_warning_or_refused(
    tmp_path: Path, small_files: dict[str, InputFile]
) -> None:
    areas = grid_areas()
    areas.loc[2, "geometry"] = shapely.Polygon(
        [(458000, 304000), (458400, 304400), (458400, 304000), (458000, 304400)]
    )
    files = {**small_files, "areas": InputFile("areas.gpkg", to_bytes_gpkg(areas, tmp_path))}
    dataset = _load(files)
    assert dataset.areas.is_valid.all()
    assert [w.row for w in dataset.warnings if "repaired" in w.problem] == [3]
    with pytest.raises(InputError) as exc:
        _load(files, options=ImportOptions(repair_geometry=False))
    assert any(p.row == 3 and "invalid" in p.problem for p in exc.value.problems)


def test_missing_crs_and_metres_labelled_as_degrees(
    tmp_path: Path, small_files: dict[str, InputFile]
) -> None:
    shp = zipped_shapefile(grid_areas(), tmp_path, drop_prj=True)
    with pytest.raises(InputError) as exc:
        _load({**small_files, "areas": InputFile("areas.zip", shp)})
    assert "coordinate reference system" in exc.value.problems[0].problem
    lying = grid_areas().set_crs("EPSG:4326", allow_override=True)
    geojson = lying.to_json().encode()
    with pytest.raises(InputError) as exc2:
        _load({**small_files, "areas": InputFile("areas.geojson", geojson)})
    assert "coordinates are metres" in exc2.value.problems[0].problem


@pytest.mark.parametrize("kind", ["gpkg", "geojson", "shpzip", "parquet"])
def test_area_formats(kind: str, tmp_path: Path, small_files: dict[str, InputFile]) -> None:
    areas = grid_areas()
    if kind == "gpkg":
        data, name = to_bytes_gpkg(areas, tmp_path), "areas.gpkg"
    elif kind == "geojson":
        data, name = areas.to_crs(4326).to_json().encode(), "areas.geojson"
    elif kind == "shpzip":
        data, name = zipped_shapefile(areas, tmp_path), "areas.zip"
    else:
        buffer = io.BytesIO()
        areas.to_parquet(buffer)
        data, name = buffer.getvalue(), "areas.parquet"
    dataset = _load({**small_files, "areas": InputFile(name, data)})
    assert len(dataset.areas) == 6
    expected = areas.to_crs(4326)
    # Shapefiles store rings clockwise: compare normalised geometries.
    assert shapely.equals_exact(
        shapely.normalize(dataset.areas.geometry.values),
        shapely.normalize(expected.geometry.values),
        tolerance=1e-7,
    ).all()


def test_wrong_file_types_are_named(small_files: dict[str, InputFile]) -> None:
    xlsx = io.BytesIO()
    with zipfile.ZipFile(xlsx, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
    files = {
        "areas": InputFile("areas.csv", b"area_code,x\nA,1\n"),
        "uptake": InputFile("uptake.csv", xlsx.getvalue()),
        "indicators": InputFile("imd.csv", b"<!DOCTYPE html><html>login page</html>"),
    }
    with pytest.raises(InputError) as exc:
        _load(files)
    messages = {p.file: p.problem for p in exc.value.problems}
    assert "a text file" in messages["areas.csv"]
    assert "Excel workbook" in messages["uptake.csv"]
    assert "HTML page" in messages["imd.csv"]


def test_zip_path_traversal_and_too_many_members(small_files: dict[str, InputFile]) -> None:
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../../etc/areas.shp", b"x")
        for k in range(60):
            archive.writestr(f"f{k}.txt", b"x")
    with pytest.raises(InputError) as exc:
        _load({**small_files, "areas": InputFile("areas.zip", evil.getvalue())})
    problems = " | ".join(p.problem for p in exc.value.problems)
    assert "path traversal" in problems and "61 files" in problems


def test_zip_bomb_is_refused(small_files: dict[str, InputFile]) -> None:
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("areas.shp", b"\0" * 50_000_000)
    with pytest.raises(InputError) as exc:
        _load({**small_files, "areas": InputFile("areas.zip", bomb.getvalue())})
    assert "ratio" in exc.value.problems[0].problem


def test_ons_and_iod_headers_are_recognised(
    tmp_path: Path, small_files: dict[str, InputFile]
) -> None:
    areas = grid_areas().rename(columns={"OA21CD": "OA11CD", "LSOA21CD": "LSOA11CD"})
    iod = pd.DataFrame(
        {
            "LSOA code (2011)": ["E01000001", "E01000002", "E01000003", "E01099999"],
            "LSOA name (2011)": ["A 001A", "A 001B", "A 001C", "Elsewhere"],
            "Local Authority District code (2019)": ["E06000016"] * 4,
            "Local Authority District name (2019)": ["Leicester"] * 4,
            "Index of Multiple Deprivation (IMD) Score": ["45.1", "20.2", "5.3", "1"],
            "Index of Multiple Deprivation (IMD) Rank (where 1 is most deprived)": [
                "100",
                "15000",
                "32000",
                "32844",
            ],
            "Index of Multiple Deprivation (IMD) Decile (where 1 is most deprived 10% of LSOAs)": [
                "1",
                "5",
                "10",
                "10",
            ],
        }
    )
    uptake = uptake_for(areas).rename(
        columns={"area_code": "OA11CD", "eligible": "Denominator", "vaccinated": "Numerator"}
    )
    dataset = _load(
        {
            "areas": InputFile("areas.gpkg", to_bytes_gpkg(areas, tmp_path)),
            "uptake": InputFile("uptake.csv", to_bytes_csv(uptake)),
            "indicators": InputFile("File_7_IoD2019.csv", to_bytes_csv(iod)),
        }
    )
    assert set(dataset.indicators.columns) == {"imd_score", "imd_rank", "imd_decile"}
    assert dataset.indicators.loc["E00000001", "imd_score"] == pytest.approx(45.1)
    assert dataset.uptake["eligible"].sum() == 1200


def test_census_long_ethnicity_download_becomes_shares(small_files: dict[str, InputFile]) -> None:
    rows = []
    for code, counts in {
        "E01000001": (50, 10, 5, 30, 5),
        "E01000002": (10, 10, 10, 60, 10),
        "E01000003": (0, 0, 0, 100, 0),
    }.items():
        for (label, sub), n in zip(
            [
                ("Asian, Asian British or Asian Welsh", "Indian"),
                ("Black, Black British, Black Welsh, Caribbean or African", "African"),
                ("Mixed or Multiple ethnic groups", "Other Mixed"),
                ("White", "English, Welsh, Scottish, Northern Irish or British"),
                ("Other ethnic group", "Arab"),
            ],
            counts,
            strict=True,
        ):
            rows.append(
                {
                    "Lower layer Super Output Areas Code": code,
                    "Lower layer Super Output Areas": "X",
                    "Ethnic group (20 categories) Code": "1",
                    "Ethnic group (20 categories)": f"{label}: {sub}",
                    "Observation": n,
                }
            )
        rows.append(
            {
                "Lower layer Super Output Areas Code": code,
                "Lower layer Super Output Areas": "X",
                "Ethnic group (20 categories) Code": "-8",
                "Ethnic group (20 categories)": "Does not apply",
                "Observation": 0,
            }
        )
    census = InputFile("TS021.csv", to_bytes_csv(pd.DataFrame(rows)))
    dataset = load_dataset(
        "t",
        areas=small_files["areas"],
        uptake=small_files["uptake"],
        indicators=[small_files["indicators"], census],
    )
    assert sorted(c for c in dataset.indicators.columns if c.startswith("eth_")) == [
        "eth_asian",
        "eth_black",
        "eth_mixed",
        "eth_other",
        "eth_white",
    ]
    assert dataset.indicators.loc["E00000001", "eth_asian"] == pytest.approx(0.5)
    assert dataset.indicators.loc["E00000005", "eth_white"] == pytest.approx(1.0)
    assert dataset.indicators.loc["E00000003", "imd_decile"] == 5


def test_nomis_wide_ethnicity_and_wide_uptake(
    tmp_path: Path, small_files: dict[str, InputFile]
) -> None:
    nomis = pd.DataFrame(
        {
            "date": [2021, 2021, 2021],
            "geography": ["a", "b", "c"],
            "geography code": ["E01000001", "E01000002", "E01000003"],
            "Ethnic group: Total: All usual residents": [100, 100, 100],
            "Ethnic group: Asian, Asian British or Asian Welsh": [40, 10, 0],
            "Ethnic group: Asian, Asian British or Asian Welsh: Indian": [20, 5, 0],
            "Ethnic group: White": [60, 90, 100],
        }
    )
    wide = pd.DataFrame(
        {
            "area_code": [f"E00{k:06d}" for k in range(1, 7)],
            "eligible_18-49": [100] * 6,
            "vaccinated_18-49": [50] * 6,
            "eligible_50+": [80] * 6,
            "vaccinated_50+": [70] * 6,
        }
    )
    dataset = load_dataset(
        "t",
        areas=small_files["areas"],
        uptake=InputFile("uptake.csv", to_bytes_csv(wide)),
        indicators=[InputFile("nomis.csv", to_bytes_csv(nomis))],
    )
    assert sorted(dataset.indicators.columns) == ["eth_asian", "eth_white"]
    assert dataset.indicators.loc["E00000001", "eth_asian"] == pytest.approx(0.4)
    assert sorted(dataset.uptake["age_band"].unique()) == ["18-49", "50+"]
    assert len(dataset.uptake) == 12 and dataset.uptake["vaccinated"].sum() == 6 * 120


def test_total_rows_beside_breakdowns_are_dropped_and_double_breakdowns_refused(
    small_files: dict[str, InputFile],
) -> None:
    rows = []
    for k in range(1, 7):
        code = f"E00{k:06d}"
        rows += [
            {
                "area_code": code,
                "age_band": "Total",
                "ethnic_group": "",
                "eligible": 200,
                "vaccinated": 140,
            },
            {
                "area_code": code,
                "age_band": "18-49",
                "ethnic_group": "",
                "eligible": 120,
                "vaccinated": 70,
            },
            {
                "area_code": code,
                "age_band": "50+",
                "ethnic_group": "",
                "eligible": 80,
                "vaccinated": 70,
            },
        ]
    dataset = _load({**small_files, "uptake": InputFile("u.csv", to_bytes_csv(pd.DataFrame(rows)))})
    assert dataset.uptake["eligible"].sum() == 6 * 200
    assert any("total rows" in w.problem for w in dataset.warnings)
    double = [r for r in rows if r["age_band"] != "Total"] + [
        {
            "area_code": "E00000001",
            "age_band": "",
            "ethnic_group": "Asian",
            "eligible": 50,
            "vaccinated": 20,
        }
    ]
    with pytest.raises(InputError) as exc:
        _load({**small_files, "uptake": InputFile("u.csv", to_bytes_csv(pd.DataFrame(double)))})
    assert "two separate breakdowns" in exc.value.problems[0].problem


def test_lookup_table_supplies_parents(tmp_path: Path, small_files: dict[str, InputFile]) -> None:
    areas = grid_areas().drop(columns="LSOA21CD")
    lookup = pd.DataFrame(
        {
            "OA21CD": [f"E00{k:06d}" for k in range(1, 7)],
            "LSOA21CD": [
                "E01000001",
                "E01000001",
                "E01000002",
                "E01000002",
                "E01000003",
                "E01000003",
            ],
        }
    )
    files = {
        **small_files,
        "areas": InputFile("areas.gpkg", to_bytes_gpkg(areas, tmp_path)),
        "lookup": InputFile("lookup.csv", to_bytes_csv(lookup)),
    }
    dataset = _load(files)
    assert dataset.indicators.loc["E00000006", "imd_decile"] == 10


def test_indicators_matching_nothing_and_bad_deciles(small_files: dict[str, InputFile]) -> None:
    table = pd.DataFrame({"area_code": ["E01900001", "E01900002"], "imd_decile": [1, 11]})
    with pytest.raises(InputError) as exc:
        _load({**small_files, "indicators": InputFile("imd.csv", to_bytes_csv(table))})
    problems = [p.problem for p in exc.value.problems]
    assert any("none of the 2 codes matches" in p for p in problems)
    assert any("imd_decile must be a whole number" in p for p in problems)


def test_explicit_column_map(small_files: dict[str, InputFile]) -> None:
    table = uptake_for(grid_areas()).rename(
        columns={"area_code": "ZONE", "eligible": "pop", "vaccinated": "jabs"}
    )
    files = {**small_files, "uptake": InputFile("uptake.csv", to_bytes_csv(table))}
    with pytest.raises(InputError) as exc:
        _load(files)
    assert len(exc.value.problems) == 3  # no code column, no eligible, no vaccinated
    dataset = _load(
        files,
        options=ImportOptions(
            column_map={"zone": "area_code", "POP": "eligible", "jabs": "vaccinated"}
        ),
    )
    assert dataset.uptake["eligible"].sum() == 1200


def _sites_csv(rows: list[dict[str, object]]) -> InputFile:
    return InputFile("sites.csv", to_bytes_csv(pd.DataFrame(rows)))


def test_sites_are_checked_and_kept_near_the_area(small_files: dict[str, InputFile]) -> None:
    inside = gpd.GeoSeries([shapely.Point(458_200, 304_200)], crs="EPSG:27700").to_crs(4326)[0]
    near = gpd.GeoSeries([shapely.Point(458_200, 303_000)], crs="EPSG:27700").to_crs(4326)[
        0
    ]  # 1 km south
    far = gpd.GeoSeries([shapely.Point(458_200, 290_000)], crs="EPSG:27700").to_crs(4326)[
        0
    ]  # 14 km
    rows = [
        {
            "site_id": "p1",
            "site_type": "Pharmacy",
            "status": "candidate",
            "lon": inside.x,
            "lat": inside.y,
            "capacity_per_day": 60,
        },
        {
            "site_id": "m1",
            "site_type": "Mosque",
            "status": "candidate",
            "lon": near.x,
            "lat": near.y,
            "capacity_per_day": "",
        },
        {
            "site_id": "v1",
            "site_type": "vaccination centre",
            "status": "existing",
            "lon": far.x,
            "lat": far.y,
            "capacity_per_day": 800,
        },
    ]
    dataset = _load({**small_files, "sites": _sites_csv(rows)})
    assert list(dataset.sites["site_id"]) == ["p1", "m1"]
    assert list(dataset.sites["site_type"]) == ["pharmacy", "place_of_worship"]
    assert dataset.sites.loc[1, "subtype"] == "mosque"
    warnings = " ".join(w.problem for w in dataset.warnings)
    assert "1 sites lie outside the study area but within" in warnings and "rows 3" in warnings
    assert "1 sites lie more than" in warnings and "rows 4" in warnings
    with pytest.raises(InputError) as exc:
        _load({**small_files, "sites": _sites_csv([rows[2]])})
    assert "none of the 1 sites is within" in exc.value.problems[0].problem


def test_every_site_problem_is_listed(small_files: dict[str, InputFile]) -> None:
    rows = [
        {
            "site_id": "a",
            "site_type": "spaceport",
            "status": "candidate",
            "lon": -1.1,
            "lat": 52.6,
            "cost": "10",
        },
        {
            "site_id": "a",
            "site_type": "pharmacy",
            "status": "maybe",
            "lon": -1.1,
            "lat": 52.6,
            "cost": "-3",
        },
        {
            "site_id": "",
            "site_type": "school",
            "status": "existing",
            "lon": 458000,
            "lat": 304000,
            "cost": "",
        },
        {
            "site_id": "c",
            "site_type": "school",
            "status": "existing",
            "lon": 52.6,
            "lat": -1.1,
            "cost": "",
        },
    ]
    with pytest.raises(InputError) as exc:
        _load({**small_files, "sites": _sites_csv(rows)})
    found = {(row, problem.split(" (")[0]) for _, row, _, problem in _problems(exc)}
    assert (2, "unknown site type") in found
    assert (2, "the site id appears more than once") in found and (
        3,
        "the site id appears more than once",
    ) in found
    assert (3, "status must be 'existing' or 'candidate'") in found
    assert (3, "cost must be a number of 0 or more") in found
    assert (4, "lon/lat out of range") in found
    assert (4, "the site id is blank") in found
    assert (5, "lon and lat look swapped") in found


def test_problems_from_several_files_arrive_together(small_files: dict[str, InputFile]) -> None:
    files = {
        **small_files,
        "uptake": InputFile("uptake.csv", b"area_code,eligible,vaccinated\nE00000001,10,20\n"),
        "indicators": InputFile("imd.csv", b"area_code,imd_decile\nE01000001,0\n"),
        "sites": _sites_csv(
            [{"site_id": "x", "site_type": "ufo", "status": "candidate", "lon": -1.1, "lat": 52.6}]
        ),
    }
    with pytest.raises(InputError) as exc:
        _load(files)
    assert {p.file for p in exc.value.problems} == {"uptake.csv", "imd.csv", "sites.csv"}
    payload = json.dumps([p.to_dict() for p in exc.value.problems])
    assert "Traceback" not in payload
