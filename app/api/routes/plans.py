"""Plans: choose outreach sites and vans for a dataset; read them back (JSON, CSV, map)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from app.analysis import gap_result
from app.api.deps import Planner, Reader, ServicesDep, visible_dataset
from app.planning import estimated_size, new_plan, publish_plan, sites_csv
from app.publish import policy_of
from app.services import Services
from app.store.base import NotFound
from geo._errors import ParameterError
from models.gaps import GapParams
from models.plan_params import PlanParams, validate_plan_params

router = APIRouter(tags=["plans"])


class PlanRequest(BaseModel):
    """What to plan. Only types are checked here; values are checked together so that
    a 422 lists every problem at once (negative counts, unknown types or site ids…)."""

    model_config = ConfigDict(extra="forbid")

    n_sites: int = Field(10, description="fixed pop-up sites to place")
    n_vans: int = Field(0, description="mobile vans to place (stops generated where the gaps are)")
    site_types: list[str] | None = Field(
        None, description="candidate types for fixed sites (default: all but mobile_van)"
    )
    radius_m: dict[str, float] = Field(
        default_factory=dict, description="catchment radius per site type, metres"
    )
    target: float = Field(0.8, description="uptake target defining the shortfall")
    demand: Literal["shortfall", "unvaccinated"] = Field("shortfall", description="people to reach")
    equity: dict[str, dict[str, float]] | None = Field(
        None,
        description='multipliers, e.g. {"imd_quintile": {"1": 2.0}, "ethnic_group": {"black": 1.5}}',
    )
    use_existing: bool = Field(True, description="count demand near existing sites as reached")
    existing_factor: float = Field(
        0.5, description="share of the demand near existing sites counted as already reached (0–1)"
    )
    capacity: bool = Field(False, description="cap each site's reach at capacity_per_day × days")
    days: float = Field(5.0, description="days of operation (capacity mode)")
    default_capacity_per_day: float = Field(100.0, description="capacity for sites that give none")
    distance: Literal["euclidean", "network"] = Field(
        "euclidean", description="straight-line or walking distance"
    )
    decay: Literal["linear", "gaussian", "exponential"] | None = Field(
        None, description="distance decay instead of a hard cut-off"
    )
    required_sites: list[str] = Field(
        default_factory=list, description="site ids that must be chosen"
    )
    excluded_sites: list[str] = Field(
        default_factory=list, description="site ids that must not be chosen"
    )
    budget: float | None = Field(None, description="total budget (with cost per type or per site)")
    cost: dict[str, float] = Field(default_factory=dict, description="cost per site type")
    per_type: dict[str, int] | None = Field(None, description="caps per fixed site type")
    min_reach_share: float | None = Field(
        None, description="minimum-facilities mode: fewest sites reaching this share"
    )
    affinity: dict[str, dict[str, float]] = Field(
        default_factory=dict, description='e.g. {"gurdwara": {"rel_sikh": 2.0}}'
    )
    van_stops: int | None = Field(None, description="candidate van stops to generate")
    exact: bool | Literal["auto"] = Field(
        "auto", description="exact MILP (auto: when small enough)"
    )
    time_limit_s: float = Field(30.0, description="solver time budget, seconds")
    seed: int = 0


class PlanSite(BaseModel):
    site_id: str
    site_type: str
    subtype: str | None = None
    name: str | None = None
    lon: float
    lat: float
    order: int
    marginal_gain: float | None = None
    catchment_area_codes: list[str] = Field(default_factory=list)
    reach: dict[str, Any]
    suppressed: list[str] = Field(default_factory=list)


class PlanOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    dataset_id: str
    created_at: str
    params: dict[str, Any]
    sites: list[PlanSite]
    totals: dict[str, Any]
    bound: float | None = None
    gap_pct: float | None = None


def _params(body: PlanRequest) -> PlanParams:
    values = body.model_dump(exclude_unset=True)
    if values.get("equity") is None:
        values.pop("equity", None)
    try:
        return PlanParams.from_dict(values)
    except ParameterError as exc:
        raise ParameterError(
            [{**e, "loc": ["body", *e.get("loc", [])]} for e in exc.errors]
        ) from exc


def _compute(
    services: Services, dataset_id: str, params: PlanParams, org: str | None, progress: Any = None
) -> dict[str, Any]:
    dataset = services.dataset(dataset_id)
    gaps = gap_result(services, dataset_id, GapParams(target=params.target))
    plan = new_plan(dataset_id, dataset, gaps, params, progress=progress)
    services.store.save_plan(plan, org=org)
    return plan


@router.post(
    "/v1/datasets/{dataset_id}/plans",
    status_code=201,
    response_model=PlanOut,
    summary="Make a plan",
    responses={
        202: {"description": "large plan: running as a job (Location: the job)"},
        422: {"description": "every parameter problem listed"},
    },
)
async def create_plan(
    dataset_id: str, services: ServicesDep, principal: Planner, body: Annotated[PlanRequest, Body()]
) -> Response:
    """Choose sites (and van stops) that reach the most people in the demand measure,
    equity-weighted; report reach by IMD quintile and ethnic group, the certified bound
    and the optimality gap. Plans are stored and immutable."""
    visible_dataset(services.store, principal, dataset_id)
    params = _params(body)
    dataset = await run_in_threadpool(services.dataset, dataset_id)
    try:
        validate_plan_params(params, dataset)
    except ParameterError as exc:
        raise ParameterError(
            [{**e, "loc": ["body", *e.get("loc", [])]} for e in exc.errors]
        ) from exc
    if estimated_size(dataset, params) > services.settings.jobs.plan_threshold:

        def work(progress: Any) -> str:
            plan = _compute(services, dataset_id, params, principal.org, progress)
            return f"/v1/plans/{plan['id']}"

        job_id = services.jobs().submit("plan", work, dataset_id=dataset_id, org=principal.org)
        return JSONResponse(
            {
                "id": job_id,
                "status": "queued",
                "progress": 0.0,
                "result_url": None,
                "job_url": f"/v1/jobs/{job_id}",
            },
            status_code=202,
            headers={"Location": f"/v1/jobs/{job_id}"},
        )
    plan = await run_in_threadpool(_compute, services, dataset_id, params, principal.org)
    return JSONResponse(
        publish_plan(plan, policy_of(services.settings)),
        status_code=201,
        headers={"Location": f"/v1/plans/{plan['id']}"},
    )


def _visible_plan(services: Services, principal: Any, plan_id: str) -> dict[str, Any]:
    plan, org = services.store.get_plan(plan_id)
    if not principal.can_see(org):
        raise NotFound("plan", plan_id)
    return plan


@router.get("/v1/plans/{plan_id}", response_model=PlanOut, summary="A stored plan")
def get_plan(plan_id: str, services: ServicesDep, principal: Reader) -> dict[str, Any]:
    return publish_plan(_visible_plan(services, principal, plan_id), policy_of(services.settings))


@router.get(
    "/v1/plans/{plan_id}/sites.csv",
    summary="A plan's sites as CSV",
    responses={200: {"content": {"text/csv": {}}}},
)
def get_plan_sites_csv(plan_id: str, services: ServicesDep, principal: Reader) -> Response:
    plan = publish_plan(_visible_plan(services, principal, plan_id), policy_of(services.settings))
    return Response(
        sites_csv(plan),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="plan-{plan_id[:8]}-sites.csv"'},
    )
