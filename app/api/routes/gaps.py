"""Gap table, clusters and inequality for a dataset (and the gap map)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from app.analysis import PublishedTable, gap_result, is_cached, published_table
from app.api.deps import Reader, ServicesDep, visible_dataset
from app.api.gap_reads import (
    GapQuery,
    GapReader,
    check_group,
    gap_reader,
    parse_bbox,
    warm_rows,
)
from app.auth import Principal
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
    area_positions: np.ndarray | None = None,
) -> tuple[PublishedTable, np.ndarray]:
    """The published table and the positions of its rows matching the filters (the
    bbox is answered by the store: a GiST index in PostGIS, an R-tree of envelopes in
    SQLite), unless the areas in ``bbox`` were already read (``area_positions``)."""
    check_group(result, group, group_value)
    table = published_table(services, dataset_id, params, group, result)
    if bbox is not None and area_positions is None:
        area_positions = services.store.area_positions_in_bbox(dataset_id, bbox)
    return table, table.select(flag=flag, area_positions=area_positions, group_value=group_value)


@router.get(
    "/{dataset_id}/gaps",
    summary="Gap table (GeoJSON or CSV), sorted by priority",
    responses={
        200: {"content": {GEOJSON: {}, "text/csv": {}}},
        202: {"description": "computing as a job; poll the Location"},
    },
)
async def get_gaps(
    dataset_id: str,
    request: Request,
    services: ServicesDep,
    reader: Annotated[GapReader, Depends(gap_reader)],
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
    query = GapQuery(
        dataset_id,
        gap_params(target, min_shortfall),
        target,
        parse_bbox(bbox, services.settings.limits.max_bbox_deg),
        flag,
        group,
        group_value,
        limit,
        offset,
        format,
    )
    area_positions = reader.positions_for(query.bbox)
    warm = await warm_rows(services, reader.principal, query, area_positions)
    if warm is not None:
        return _page(*warm, query)
    return await run_in_threadpool(
        _gaps, services, request, reader.principal, query, area_positions
    )


def _gaps(
    services: Services,
    request: Request,
    principal: Principal,
    query: GapQuery,
    area_positions: np.ndarray | None,
) -> Response:
    """The gap table the ordinary way (in a worker thread): the analysis and published
    table loaded or computed as needed, or a 202 job for a large dataset."""
    outcome = _result_or_job(services, request, principal, query.dataset_id, query.params)
    if isinstance(outcome, Response):
        return outcome
    table, rows = select_rows(
        services,
        query.dataset_id,
        query.params,
        outcome,
        group=query.group,
        group_value=query.group_value,
        flag=query.flag,
        bbox=query.bbox,
        area_positions=area_positions,
    )
    return _page(table, rows, query)


def _page(table: PublishedTable, rows: np.ndarray, query: GapQuery) -> Response:
    page = rows[query.offset : query.offset + query.limit]
    if query.format == "csv":
        return Response(
            csv_bytes(table.frame.iloc[page]),
            media_type="text/csv",
            headers={
                "Content-Disposition": f'attachment; filename="gaps-{query.dataset_id[:8]}.csv"',
                "X-Total-Count": str(len(rows)),
            },
        )
    body = feature_collection_from_strings(
        table.geometry[page],
        table.properties[page],
        total=len(rows),
        extra={"target": query.target, "limit": query.limit, "offset": query.offset},
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
