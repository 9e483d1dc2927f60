"""Datasets: upload (multipart), list, read, delete, add sites."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from app.api.deps import Admin, Reader, ServicesDep, bad_request, visible_dataset
from geo._errors import InputError, Problem
from geo._files import InputFile, ZipLimits, sniff
from geo.ingest import DEFAULT_SITE_DISTANCE_M, ImportLimits, ImportOptions, load_dataset
from geo.readers import Report, read_layer, read_table
from geo.validate_areas import GeometryLimits
from geo.validate_sites import keep_sites_near, validate_sites

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


class DatasetOut(BaseModel):
    id: str
    name: str
    n_areas: int
    n_sites: int = 0
    groups: list[str] = Field(
        default_factory=list, description="uptake breakdowns present (age_band, sex, ethnic_group)"
    )
    has_network: bool = False
    created_at: str
    warnings: list[dict[str, Any]] = Field(default_factory=list)


class DatasetList(BaseModel):
    items: list[DatasetOut]
    total: int


class SitesAdded(BaseModel):
    dataset_id: str
    added: int
    warnings: list[dict[str, Any]] = Field(default_factory=list)


def _limits(services: ServicesDep) -> ImportLimits:
    limits = services.settings.limits
    return ImportLimits(
        geometry=GeometryLimits(max_features=limits.max_features, max_vertices=limits.max_vertices),
        zip=ZipLimits(
            max_members=limits.max_zip_members,
            max_uncompressed_bytes=limits.max_zip_uncompressed_bytes,
            max_ratio=limits.max_zip_ratio,
        ),
    )


async def _input(upload: UploadFile | None) -> InputFile | None:
    if upload is None:
        return None
    return InputFile(upload.filename or "upload", await upload.read())


def _column_map(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise bad_request(
            'column_map must be a JSON object such as {"MYCODE": "area_code"}',
            ["body", "column_map"],
            f"not JSON: {exc.msg}",
        ) from exc
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise bad_request(
            "column_map must map column names to canonical names", ["body", "column_map"]
        )
    return value


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=DatasetOut, summary="Upload a dataset"
)
async def create_dataset(
    services: ServicesDep,
    principal: Admin,
    name: Annotated[str, Form(min_length=1, max_length=200, description="dataset name")],
    areas: Annotated[
        UploadFile, File(description="GeoPackage, GeoJSON, zipped Shapefile or GeoParquet")
    ],
    uptake: Annotated[
        UploadFile,
        File(description="CSV: area_code, eligible, vaccinated [, age_band, sex, ethnic_group]"),
    ],
    indicators: Annotated[
        list[UploadFile] | None,
        File(description="CSV(s): area_code + numeric columns (IMD, ethnicity…)"),
    ] = None,
    sites: Annotated[
        UploadFile | None, File(description="CSV (lon, lat) or GeoJSON points")
    ] = None,
    network: Annotated[
        UploadFile | None, File(description="street network: .osm, .osm.pbf or .graphml")
    ] = None,
    lookup: Annotated[UploadFile | None, File(description="CSV child → parent code lookup")] = None,
    cap_vaccinated: Annotated[
        bool, Form(description="cap vaccinated at eligible (warning) instead of refusing")
    ] = False,
    drop_unmatched_uptake: Annotated[
        bool, Form(description="drop uptake rows for unknown areas (warning)")
    ] = False,
    repair_geometry: Annotated[bool, Form(description="repair invalid polygons (warning)")] = True,
    column_map: Annotated[
        str | None, Form(description='JSON object of header renames, e.g. {"MYCODE": "area_code"}')
    ] = None,
) -> dict[str, Any]:
    """Import a dataset in one transaction. Every problem in every file is listed in one
    problem+json response (422) and nothing is stored."""
    options = ImportOptions(
        column_map=_column_map(column_map),
        cap_vaccinated=cap_vaccinated,
        drop_unmatched_uptake=drop_unmatched_uptake,
        repair_geometry=repair_geometry,
    )
    files = {
        "areas": await _input(areas),
        "uptake": await _input(uptake),
        "sites": await _input(sites),
        "network": await _input(network),
        "lookup": await _input(lookup),
    }
    indicator_files = [
        f for f in [await _input(u) for u in (indicators or [])] if f is not None and f.data
    ]
    dataset = await run_in_threadpool(
        load_dataset,
        name.strip(),
        areas=files["areas"],  # type: ignore[arg-type]
        uptake=files["uptake"],  # type: ignore[arg-type]
        indicators=indicator_files,
        sites=files["sites"] if files["sites"] and files["sites"].data else None,
        network=files["network"] if files["network"] and files["network"].data else None,
        lookup=files["lookup"] if files["lookup"] and files["lookup"].data else None,
        options=options,
        limits=_limits(services),
    )
    meta = await run_in_threadpool(services.store.create_dataset, dataset, org=principal.org)
    return meta.to_dict()


@router.get("", response_model=DatasetList, summary="List datasets")
def list_datasets(
    services: ServicesDep,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=100_000_000)] = 0,
) -> dict[str, Any]:
    items, total = services.store.list_datasets(
        org=principal.org, all_orgs=principal.sees_all, limit=limit, offset=offset
    )
    return {"items": [m.to_dict() for m in items], "total": total}


@router.get("/{dataset_id}", response_model=DatasetOut, summary="Dataset metadata")
def get_dataset(dataset_id: str, services: ServicesDep, principal: Reader) -> dict[str, Any]:
    return visible_dataset(services.store, principal, dataset_id).to_dict()


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a dataset")
def delete_dataset(dataset_id: str, services: ServicesDep, principal: Admin) -> Response:
    visible_dataset(services.store, principal, dataset_id)
    services.store.delete_dataset(dataset_id)
    services.forget(dataset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{dataset_id}/sites",
    status_code=status.HTTP_201_CREATED,
    response_model=SitesAdded,
    summary="Add existing or candidate sites",
)
async def add_sites(
    dataset_id: str,
    services: ServicesDep,
    principal: Admin,
    sites: Annotated[
        UploadFile,
        File(description="CSV (site_id, site_type, status, lon, lat …) or GeoJSON points"),
    ],
) -> dict[str, Any]:
    """Validate the sites like an import (every problem listed; nothing stored on error)."""
    visible_dataset(services.store, principal, dataset_id)
    upload = await _input(sites)
    assert upload is not None
    dataset = await run_in_threadpool(services.dataset, dataset_id)

    def validate() -> Any:
        report = Report()
        kind = sniff(upload.read_bytes())
        frame = (
            read_layer(upload, report, zip_limits=ZipLimits())
            if kind == "json"
            else read_table(upload, report)
        )
        checked = validate_sites(frame, upload.name, report) if frame is not None else None
        if checked is not None:
            checked = keep_sites_near(
                checked,
                dataset.areas,
                max_distance_m=DEFAULT_SITE_DISTANCE_M,
                file_name=upload.name,
                report=report,
            )
        report.errors.raise_if_any()
        assert checked is not None  # no errors means the table was read and validated
        return checked.drop(columns="_line"), report.warnings.result()

    checked, warnings = await run_in_threadpool(validate)
    if len(checked) == 0:
        raise InputError([Problem(upload.name, "no sites to add", "add rows")])
    added = await run_in_threadpool(services.store.add_sites, dataset_id, checked)
    services.forget(dataset_id)
    return {"dataset_id": dataset_id, "added": added, "warnings": [w.to_dict() for w in warnings]}
