"""The landing page and the browser session (an API key kept in a cookie)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from app.api.deps import ServicesDep, get_principal
from app.auth import COOKIE_NAME, Principal, hash_key
from app.errors import ApiProblem

router = APIRouter(tags=["pages"], include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).resolve().parents[2] / "templates"))
_COOKIE_MAX_AGE = 12 * 3600


@router.get("/", response_class=HTMLResponse)
async def index(request: Request, services: ServicesDep) -> HTMLResponse:
    """Datasets (with links to their gap maps), recent plans (with their maps), API docs.

    A stale cookie (revoked key) must not lock the user out of the page that lets them
    sign in again: it is dropped and the page shown signed out.
    """
    stale = False
    try:
        principal = await get_principal(request, services)
    except ApiProblem:
        principal, stale = (
            Principal(role="viewer" if services.settings.anonymous_read else None),
            True,
        )
    can_read = principal.role is not None
    datasets, total, plans = [], 0, []
    if can_read:
        metas, total = await run_in_threadpool(
            services.store.list_datasets, org=principal.org, all_orgs=principal.sees_all, limit=200
        )
        datasets = [m.to_dict() for m in metas]
        visible = {m.id for m in metas}
        plans = [
            p
            for p in await run_in_threadpool(services.store.list_plans, limit=50)
            if p["dataset_id"] in visible
        ][:20]
    message = request.query_params.get("message")
    if stale:
        message = "Your key was revoked or is unknown; sign in again."
    response = templates.TemplateResponse(
        request,
        "index.html",
        {
            "principal": principal,
            "can_read": can_read,
            "datasets": datasets,
            "total": total,
            "plans": plans,
            "names": {d["id"]: d["name"] for d in datasets},
            "message": message if message in _MESSAGES else None,
        },
    )
    if stale:
        response.delete_cookie(COOKIE_NAME, path="/")
    return response


_MESSAGES = {
    "That key is unknown or revoked.",
    "Signed out.",
    "Your key was revoked or is unknown; sign in again.",
}


@router.post("/session")
async def sign_in(
    services: ServicesDep, key: Annotated[str, Form(max_length=200)]
) -> RedirectResponse:
    """Check the key and keep it in an HttpOnly, SameSite=Strict cookie."""
    record = await run_in_threadpool(services.store.find_key, hash_key(key.strip()))
    if record is None or record.get("revoked_at") is not None:
        return RedirectResponse("/?message=That key is unknown or revoked.", status_code=303)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        key.strip(),
        max_age=_COOKIE_MAX_AGE,
        httponly=True,
        samesite="strict",
        secure=services.settings.cookie_secure,
        path="/",
    )
    return response


@router.post("/session/logout")
async def sign_out() -> RedirectResponse:
    response = RedirectResponse("/?message=Signed out.", status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/")
    return response
