"""Dependencies shared by the routes (``Annotated`` aliases, as in the FastAPI template)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.auth import COOKIE_NAME, Principal, authenticate_async, require_role
from app.errors import ApiProblem
from app.services import Services
from app.settings import Settings
from app.store.base import DatasetMeta, NotFound, Store


# Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency
# in its thread pool, a hop (and a wait for the GIL) on every request for nothing.
async def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_store(services: ServicesDep) -> Store:
    return services.store


async def get_settings(services: ServicesDep) -> Settings:
    return services.settings


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_principal(request: Request, services: ServicesDep) -> Principal:
    return await authenticate_async(
        services.store,
        header=request.headers.get("authorization"),
        cookie=request.cookies.get(COOKIE_NAME),
        method=request.method,
        anonymous_read=services.settings.anonymous_read,
    )


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def _needs(role: str):  # type: ignore[no-untyped-def]
    async def check(principal: PrincipalDep) -> Principal:
        require_role(principal, role)  # type: ignore[arg-type]
        return principal

    return check


Reader = Annotated[Principal, Depends(_needs("viewer"))]
Planner = Annotated[Principal, Depends(_needs("planner"))]
Admin = Annotated[Principal, Depends(_needs("admin"))]


def visible_dataset(store: Store, principal: Principal, dataset_id: str) -> DatasetMeta:
    """The dataset's metadata, as 404 when it belongs to another organisation."""
    meta = store.get_dataset_meta(dataset_id)
    if not principal.can_see(meta.org):
        raise NotFound("dataset", dataset_id)
    return meta


def bad_request(detail: str, loc: list[str | int], msg: str | None = None) -> ApiProblem:
    return ApiProblem(
        422,
        "Invalid request",
        detail,
        kind="invalid-request",
        errors=[{"loc": loc, "msg": msg or detail}],
    )
