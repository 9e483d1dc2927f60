"""The gap table's street-level reads, the service's busiest request.

A map view asks ``GET /v1/datasets/{id}/gaps?bbox=…`` for every pan and zoom. Such a
request is answered without leaving the event loop when it can be: the API key is read
from the database on every request (a revoked key stops at once) together with the
areas in the bbox — one round trip, awaited on the loop on PostGIS — and the analysis
and its published table are already in memory, so what remains is selecting rows and
joining pre-encoded JSON. Anything else (a cold cache, a large page, CSV) runs in a
worker thread as before. Keeping the hot path off worker threads is what keeps its
latency tail short: threads competing for the GIL leave some requests waiting seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import Request

from app.analysis import PublishedTable, cached_published_table
from app.api.deps import ServicesDep
from app.auth import (
    COOKIE_NAME,
    Principal,
    authenticate_async,
    authenticate_with_areas,
    require_role,
)
from app.errors import ApiProblem
from app.services import Services
from app.store.base import NotFound
from models.gaps import GapParams, GapResult

Bbox = tuple[float, float, float, float]
#: Pages up to this many features are assembled on the event loop (about a millisecond
#: for the default page); larger ones, and CSV, are built in a worker thread so that a
#: big export never holds up other requests.
INLINE_FEATURES = 1_000


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


@dataclass(frozen=True)
class GapQuery:
    """What a gap table request asks for, once its parameters are validated."""

    dataset_id: str
    params: GapParams
    target: float
    bbox: Bbox | None
    flag: str | None
    group: str | None
    group_value: str | None
    limit: int
    offset: int
    format: str


@dataclass(frozen=True)
class GapReader:
    """The caller of a gap table and, for a bbox request with a key, the positions of the
    areas in the bbox, read in the same database round trip as the key."""

    principal: Principal
    bbox: Bbox | None = None
    area_positions: np.ndarray | None = None

    def positions_for(self, bbox: Bbox | None) -> np.ndarray | None:
        """The areas read with the key, if they are for ``bbox``."""
        return self.area_positions if bbox is not None and bbox == self.bbox else None


async def gap_reader(request: Request, services: ServicesDep) -> GapReader:
    """:data:`~app.api.deps.Reader` for the gap table, also reading the bbox's areas.

    A bbox that does not parse is left to the route, which reports it after the caller
    is authenticated, as for any other route.
    """
    auth: dict[str, Any] = {
        "header": request.headers.get("authorization"),
        "cookie": request.cookies.get(COOKIE_NAME),
        "method": request.method,
        "anonymous_read": services.settings.anonymous_read,
    }
    try:
        box = parse_bbox(request.query_params.get("bbox"), services.settings.limits.max_bbox_deg)
    except ApiProblem:
        box = None
    if box is None:
        reader = GapReader(await authenticate_async(services.store, **auth))
    else:
        principal, positions = await authenticate_with_areas(
            services.store, **auth, dataset_id=request.path_params["dataset_id"], bbox=box
        )
        reader = GapReader(principal, box, positions)
    require_role(reader.principal, "viewer")
    return reader


async def warm_rows(
    services: Services, principal: Principal, query: GapQuery, area_positions: np.ndarray | None
) -> tuple[PublishedTable, np.ndarray] | None:
    """The published table and the rows matching ``query`` if the analysis is already in
    memory and the page is small enough to build on the event loop; None sends the
    request down the ordinary path (which also answers 202 for a job)."""
    if query.format != "geojson" or query.limit > INLINE_FEATURES:
        return None
    if query.bbox is not None and area_positions is None:
        return None
    # Refreshed on the loop when it expires: sending every request of that moment to
    # worker threads instead stalled some for seconds (GIL contention) every 2 s.
    meta = await services.store.get_dataset_meta_async(query.dataset_id)
    if not principal.can_see(meta.org):
        raise NotFound("dataset", query.dataset_id)
    cached = cached_published_table(services, query.dataset_id, query.params, query.group)
    if cached is None:
        return None
    result, table = cached
    check_group(result, query.group, query.group_value)
    rows = table.select(
        flag=query.flag, area_positions=area_positions, group_value=query.group_value
    )
    return table, rows


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
