"""Background jobs: status, progress, result link, cancellation."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from app.api.deps import Planner, Reader, ServicesDep
from app.auth import Principal
from app.jobs import job_view
from app.store.base import NotFound

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


class JobOut(BaseModel):
    id: str
    kind: str
    status: str
    progress: float
    message: str | None = None
    result_url: str | None = None
    error: dict[str, Any] | None = None
    created_at: str | None = None
    updated_at: str | None = None


def _visible(services: Any, principal: Principal, job_id: str) -> dict[str, Any]:
    job = services.store.get_job(job_id)
    if not principal.can_see(job.get("org")):
        raise NotFound("job", job_id)
    return job  # type: ignore[no-any-return]


@router.get("/{job_id}", response_model=JobOut, summary="Job status and progress")
def get_job(job_id: str, services: ServicesDep, principal: Reader) -> dict[str, Any]:
    """``status`` is queued, running, succeeded, failed or cancelled; ``result_url``
    points at the result once it succeeded."""
    return job_view(_visible(services, principal, job_id))


@router.delete("/{job_id}", response_model=JobOut, summary="Cancel a job")
def cancel_job(job_id: str, services: ServicesDep, principal: Planner) -> dict[str, Any]:
    _visible(services, principal, job_id)
    services.jobs().cancel(job_id)
    return job_view(services.store.get_job(job_id))
