"""Folium maps of gaps and plans, served as HTML with every asset from this origin."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from app.analysis import published_table
from app.api.deps import Reader, ServicesDep
from app.api.routes.gaps import (
    FlagQ,
    MinShortfallQ,
    TargetQ,
    _result_or_job,
    gap_params,
    parse_bbox,
    select_rows,
)
from app.api.routes.plans import _visible_plan
from app.cli_outputs import map_settings, published_clusters, with_geometry
from app.errors import ApiProblem
from app.planning import publish_plan
from app.publish import policy_of

router = APIRouter(tags=["maps"])
STATIC_VENDOR = "/static/vendor"


def _assets_ready() -> None:
    from app.assets import assets_installed

    if not assets_installed():
        raise ApiProblem(
            503,
            "Map assets missing",
            "The map assets are not installed: run `make install` (npm ci + python -m app.assets).",
            kind="assets-missing",
        )


@router.get(
    "/v1/datasets/{dataset_id}/gaps/map",
    response_class=HTMLResponse,
    summary="Gap map (HTML)",
    responses={202: {"description": "analysis running as a job"}},
)
def gap_map(
    dataset_id: str,
    request: Request,
    services: ServicesDep,
    principal: Reader,
    target: TargetQ = 0.8,
    min_shortfall: MinShortfallQ = 10,
    bbox: Annotated[
        str | None,
        Query(max_length=200, description="minx,miny,maxx,maxy in WGS84: map only this window"),
    ] = None,
    flag: FlagQ = None,
) -> Response:
    """Choropleth layers (shortfall, uptake, smoothed uptake, IMD decile, ethnic groups),
    flagged areas, clusters, legends and tooltips after disclosure control."""
    _assets_ready()
    box = parse_bbox(bbox, services.settings.limits.max_bbox_deg)
    params = gap_params(target, min_shortfall)
    outcome = _result_or_job(services, request, principal, dataset_id, params)
    if isinstance(outcome, Response):
        return outcome
    meta = services.store.get_dataset_meta(dataset_id)
    dataset = services.dataset(dataset_id)
    # The published table is cached beside the analysis: no disclosure pass per map.
    table, rows = select_rows(services, dataset_id, params, outcome, flag=flag, bbox=box)
    gaps = with_geometry(table.frame.iloc[rows], dataset)
    parts = [f"target {target:.0%}"]
    if flag:
        parts.append(f"flag: {flag.replace('_', ' ')}")
    if box:
        parts.append("bbox " + ", ".join(f"{v:.4f}" for v in box))
    title = f"{meta.name} — uptake gaps ({'; '.join(parts)})"
    from app.maps import gap_map_html

    html = gap_map_html(
        gaps,
        published_clusters(outcome, services.settings),
        title=title,
        settings=map_settings(services.settings, static_url=STATIC_VENDOR),
    )
    return HTMLResponse(html)


@router.get("/v1/plans/{plan_id}/map", response_class=HTMLResponse, summary="Plan map (HTML)")
async def plan_map(plan_id: str, services: ServicesDep, principal: Reader) -> Response:
    """Chosen sites by type and order with catchments and reach popups, existing sites,
    and the gap layer underneath."""
    _assets_ready()

    def render() -> str:
        from app.analysis import gap_result
        from app.maps import plan_map_html
        from models.gaps import GapParams

        plan = _visible_plan(services, principal, plan_id)
        dataset = services.dataset(plan["dataset_id"])
        params: dict[str, Any] = plan.get("params") or {}
        target_params = GapParams(target=float(params.get("target", 0.8)))
        gaps = gap_result(services, plan["dataset_id"], target_params)
        published = published_table(services, plan["dataset_id"], target_params, None, gaps)
        meta = services.store.get_dataset_meta(plan["dataset_id"])
        existing = (
            dataset.sites.loc[dataset.sites["status"] == "existing"] if len(dataset.sites) else None
        )
        title = f"{meta.name} — plan {plan_id[:8]}: {len(plan['sites'])} sites"
        return plan_map_html(
            publish_plan(plan, policy_of(services.settings)),
            with_geometry(published.frame, dataset),
            existing_sites=existing,
            title=title,
            settings=map_settings(services.settings, static_url=STATIC_VENDOR),
        )

    return HTMLResponse(await run_in_threadpool(render))
