"""Gap table, clusters and inequality for a dataset (and the gap map)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from app.analysis import PublishedTable, gap_result, is_cached, published_table
from app.api.deps import Reader, ServicesDep, visible_dataset
from app.errors import ApiProblem
from app.publish import (
    csv_bytes,
    disclose_nested,
    feature_collection_from_strings,
    geodataframe_geojson,
    policy_of,
)
from app.services import Services
from models.gaps import GapParams, GapResult

router = APIRouter(prefix="/v1/datasets", tags=["gaps"])

FLAGS = ("none", "below_target", "below_expected", "both", "any")
GEOJSON = "application/geo+json"

TargetQ = Annotated[
    float, Query(gt=0, le=1, description="uptake target, a proportion (default 0.8)")
]
FlagQ = Annotated[
    Literal["none", "below_target", "below_expected", "both", "any"] | None,
    Query(description="keep one flag ('any' = flagged)"),
]
MinShortfallQ = Annotated[
    int,
    Query(ge=0, le=1_000_000, description="smallest shortfall (people) for a below_target flag"),
]


def gap_params(target: float, min_shortfall: int) -> GapParams:
    return GapParams(target=target, min_shortfall=min_shortfall)


def parse_bbox(raw: str | None, max_side: float) -> tuple[float, float, float, float] | None:
    """``minx,miny,maxx,maxy`` in WGS84 degrees, or a 422 listing what is wrong."""
    if raw is None:
        return None
    parts = raw.split(",")
    errors: list[dict[str, Any]] = []
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(np.isfinite(values)):
        errors.append(
            {
                "loc": ["query", "bbox"],
                "msg": "bbox must be four numbers: minx,miny,maxx,maxy (WGS84 lon/lat)",
            }
        )
    else:
        minx, miny, maxx, maxy = values
        if not (
            -180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90 and -90 <= maxy <= 90
        ):
            errors.append(
                {
                    "loc": ["query", "bbox"],
                    "msg": "bbox coordinates must be longitudes in [-180, 180] and latitudes in [-90, 90]",
                }
            )
        if minx >= maxx or miny >= maxy:
            errors.append(
                {"loc": ["query", "bbox"], "msg": "bbox must have minx < maxx and miny < maxy"}
            )
        if maxx - minx > max_side or maxy - miny > max_side:
            errors.append(
                {"loc": ["query", "bbox"], "msg": f"bbox sides must be at most {max_side} degrees"}
            )
    if errors:
        raise ApiProblem(
            422,
            "Invalid request",
            "The bbox parameter is invalid.",
            kind="invalid-request",
            errors=errors,
        )
    return tuple(values)  # type: ignore[return-value]


def _result_or_job(
    services: Services, request: Request, principal: Any, dataset_id: str, params: GapParams
) -> GapResult | Response:
    """The cached result, or — for a large uncached dataset — 202 with a job that computes it."""
    meta = visible_dataset(services.store, principal, dataset_id)
    threshold = services.settings.jobs.gaps_threshold_areas
    if meta.n_areas > threshold and not is_cached(services, dataset_id, params):
        runner = services.jobs()
        url = str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")

        def work(progress: Any) -> str:
            gap_result(services, dataset_id, params, progress=progress)
            return url

        job_id = runner.submit("gaps", work, dataset_id=dataset_id, org=principal.org)
        return JSONResponse(
            {
                "id": job_id,
                "status": "queued",
                "progress": 0.0,
                "result_url": url,
                "job_url": f"/v1/jobs/{job_id}",
            },
            status_code=202,
            headers={"Location": f"/v1/jobs/{job_id}"},
        )
    return gap_result(services, dataset_id, params)


def check_group(result: GapResult, group: str | None, group_value: str | None) -> None:
    """A 422 naming what exists when the breakdown or group asked for does not."""
    if group is None:
        return
    if group not in result.group_tables:
        available = ", ".join(sorted(result.group_tables)) or "none (the uptake has no breakdown)"
        raise ApiProblem(
            422,
            "Invalid request",
            f"The dataset has no '{group}' breakdown.",
            kind="invalid-request",
            errors=[{"loc": ["query", "group"], "msg": f"available breakdowns: {available}"}],
        )
    if group_value is not None:
        values = result.group_tables[group]["group_value"].astype(str)
        if not (values == group_value).any():
            raise ApiProblem(
                422,
                "Invalid request",
                f"No '{group}' group called {group_value!r}.",
                kind="invalid-request",
                errors=[
                    {
                        "loc": ["query", "group_value"],
                        "msg": f"values: {', '.join(sorted(values.unique())[:50])}",
                    }
                ],
            )


def select_rows(
    services: Services,
    dataset_id: str,
    params: GapParams,
    result: GapResult,
    *,
    group: str | None = None,
    group_value: str | None = None,
    flag: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
) -> tuple[PublishedTable, np.ndarray]:
    """The published table and the positions of its rows matching the filters (the
    bbox is answered by the store: an index in PostGIS, bbox columns in SQLite)."""
    check_group(result, group, group_value)
    table = published_table(services, dataset_id, params, group, result)
    codes = services.store.area_codes_in_bbox(dataset_id, bbox) if bbox is not None else None
    return table, table.select(flag=flag, codes=codes, group_value=group_value)


@router.get(
    "/{dataset_id}/gaps",
    summary="Gap table (GeoJSON or CSV), sorted by priority",
    responses={
        200: {"content": {GEOJSON: {}, "text/csv": {}}},
        202: {"description": "computing as a job; poll the Location"},
    },
)
def get_gaps(
    dataset_id: str,
    request: Request,
    services: ServicesDep,
    principal: Reader,
    target: TargetQ = 0.8,
    min_shortfall: MinShortfallQ = 10,
    bbox: Annotated[
        str | None, Query(description="minx,miny,maxx,maxy in WGS84", max_length=200)
    ] = None,
    flag: FlagQ = None,
    group: Annotated[
        Literal["age_band", "sex", "ethnic_group"] | None,
        Query(description="one row per area and group of this breakdown"),
    ] = None,
    group_value: Annotated[
        str | None, Query(max_length=200, description="with group: only this group")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=100_000_000)] = 0,
    format: Annotated[
        Literal["geojson", "csv"], Query(description="geojson (default) or csv")
    ] = "geojson",
) -> Response:
    """One row per area (or area × group), with SPEC §2 columns after disclosure control;
    suppressed values are null (empty in CSV) and listed in ``suppressed``."""
    if limit > services.settings.limits.max_page:
        raise ApiProblem(
            422,
            "Invalid request",
            "limit is too large.",
            kind="invalid-request",
            errors=[
                {"loc": ["query", "limit"], "msg": f"at most {services.settings.limits.max_page}"}
            ],
        )
    box = parse_bbox(bbox, services.settings.limits.max_bbox_deg)
    params = gap_params(target, min_shortfall)
    outcome = _result_or_job(services, request, principal, dataset_id, params)
    if isinstance(outcome, Response):
        return outcome
    table, rows = select_rows(
        services,
        dataset_id,
        params,
        outcome,
        group=group,
        group_value=group_value,
        flag=flag,
        bbox=box,
    )
    page = rows[offset : offset + limit]
    if format == "csv":
        return Response(
            csv_bytes(table.frame.iloc[page]),
            media_type="text/csv",
            headers={
                "Content-Disposition": f'attachment; filename="gaps-{dataset_id[:8]}.csv"',
                "X-Total-Count": str(len(rows)),
            },
        )
    body = feature_collection_from_strings(
        table.geometry[page],
        table.properties[page],
        total=len(rows),
        extra={"target": target, "limit": limit, "offset": offset},
    )
    return Response(body, media_type=GEOJSON)


@router.get(
    "/{dataset_id}/clusters",
    summary="Clusters of low uptake (GeoJSON polygons)",
    responses={200: {"content": {GEOJSON: {}}}},
)
def get_clusters(
    dataset_id: str,
    request: Request,
    services: ServicesDep,
    principal: Reader,
    target: TargetQ = 0.8,
    min_shortfall: MinShortfallQ = 10,
) -> Response:
    """Spatially contiguous hot spots of low uptake (Gi* with FDR control), with totals."""
    outcome = _result_or_job(
        services, request, principal, dataset_id, gap_params(target, min_shortfall)
    )
    if isinstance(outcome, Response):
        return outcome
    from app.cli_outputs import published_clusters

    clusters = published_clusters(outcome, services.settings)
    return Response(geodataframe_geojson(clusters, extra={"target": target}), media_type=GEOJSON)


@router.get("/{dataset_id}/inequality", summary="SII/RII across deprivation and uptake by group")
def get_inequality(
    dataset_id: str,
    request: Request,
    services: ServicesDep,
    principal: Reader,
    target: TargetQ = 0.8,
    min_shortfall: MinShortfallQ = 10,
) -> Any:
    """Slope and relative index of inequality with confidence intervals (PHE method),
    uptake by IMD decile and by group with Wilson intervals, and the model's fit report."""
    outcome = _result_or_job(
        services, request, principal, dataset_id, gap_params(target, min_shortfall)
    )
    if isinstance(outcome, Response):
        return outcome
    policy = policy_of(services.settings)
    return {
        "dataset_id": dataset_id,
        "target": target,
        **disclose_nested(outcome.inequality, policy),
        "model": disclose_nested(outcome.model_report, policy),
    }
