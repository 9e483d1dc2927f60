"""Every error as ``application/problem+json`` (RFC 9457).

``geo`` and ``models`` raise plain domain errors; this module alone maps them to HTTP
status codes. No stack trace, SQL or secret ever reaches a response: unexpected errors
are logged with an id that the response quotes.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.store.base import Conflict, NotFound, SchemaMismatch, StoreBusy
from geo._errors import InfeasibleError, InputError, ParameterError

PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "https://outreach-planner.invalid/problems/"  # an identifier, never fetched
log = logging.getLogger("outreach")


class ApiProblem(Exception):
    """An error raised by the app layer with its HTTP status."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        kind: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ):
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind or title.lower().replace(" ", "-")
        self.errors = errors
        self.headers = headers
        super().__init__(detail)


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    kind: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    instance: str | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": _TYPE_BASE + kind,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def input_errors(exc: InputError) -> list[dict[str, Any]]:
    """Problems as ``errors`` entries: ``loc`` is ``[file, row, column]`` (what exists)."""
    out = []
    for p in exc.problems:
        loc: list[Any] = [p.file]
        if p.row is not None:
            loc.append(p.row)
        if p.column is not None:
            loc.append(p.column)
        out.append({"loc": loc, "msg": p.problem, **p.to_dict()})
    return out


def install_error_handlers(app: FastAPI) -> None:
    """Register the problem+json handlers on ``app``."""

    @app.exception_handler(InputError)
    async def _input(request: Request, exc: InputError) -> JSONResponse:
        errors = input_errors(exc)
        return problem_response(
            422,
            exc.title,
            f"{len(errors)} problem(s) found; nothing was stored. Fix them and upload again.",
            kind="invalid-input",
            errors=errors,
            instance=request.url.path,
        )

    @app.exception_handler(ParameterError)
    async def _params(request: Request, exc: ParameterError) -> JSONResponse:
        return problem_response(
            422,
            "Invalid parameters",
            f"{len(exc.errors)} parameter problem(s) found.",
            kind="invalid-parameters",
            errors=exc.errors,
            instance=request.url.path,
        )

    @app.exception_handler(InfeasibleError)
    async def _infeasible(request: Request, exc: InfeasibleError) -> JSONResponse:
        return problem_response(
            422,
            "No feasible solution",
            str(exc),
            kind="infeasible",
            errors=[{"loc": ["body"], "msg": str(exc)}],
            instance=request.url.path,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "loc": list(e.get("loc", ())),
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()
        ]
        return problem_response(
            422,
            "Invalid request",
            f"{len(errors)} problem(s) in the request.",
            kind="invalid-request",
            errors=errors,
            instance=request.url.path,
        )

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return problem_response(
            404,
            "Not found",
            f"No {exc.kind} with id {exc.ident!r}.",
            kind="not-found",
            instance=request.url.path,
        )

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict) -> JSONResponse:
        return problem_response(
            409, "Conflict", str(exc), kind="conflict", instance=request.url.path
        )

    @app.exception_handler(StoreBusy)
    async def _busy(request: Request, exc: StoreBusy) -> JSONResponse:
        return problem_response(
            503,
            "Database busy",
            f"{exc} Nothing was changed; try again in a moment.",
            kind="database-busy",
            headers={"Retry-After": "1"},
            instance=request.url.path,
        )

    @app.exception_handler(SchemaMismatch)
    async def _schema(request: Request, exc: SchemaMismatch) -> JSONResponse:
        return problem_response(503, "Database schema mismatch", str(exc), kind="schema-mismatch")

    @app.exception_handler(ApiProblem)
    async def _api(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(
            exc.status,
            exc.title,
            exc.detail,
            kind=exc.kind,
            errors=exc.errors,
            headers=exc.headers,
            instance=request.url.path,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {
            404: "Not found",
            405: "Method not allowed",
            413: "Payload too large",
            401: "Unauthorized",
            403: "Forbidden",
        }
        title = titles.get(exc.status_code, "HTTP error")
        detail = (
            exc.detail
            if isinstance(exc.detail, str) and exc.status_code != 404
            else f"{request.method} {request.url.path} is not a resource of this API."
        )
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            allowed = _allowed_methods(request, (headers or {}).get("Allow"))
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
            detail = (
                f"{request.url.path} does not take {request.method}; use {' or '.join(allowed)}."
            )
        return problem_response(
            exc.status_code,
            title,
            detail,
            kind=title.lower().replace(" ", "-"),
            headers=headers,
            instance=request.url.path,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        incident = uuid.uuid4().hex[:12]
        log.exception("unexpected error %s on %s %s", incident, request.method, request.url.path)
        return problem_response(
            500,
            "Internal error",
            f"Something went wrong on our side (incident {incident}). The error is logged; please try again or report the incident id.",
            kind="internal-error",
        )


def _allowed_methods(request: Request, fallback: str | None) -> list[str]:
    """Every method the API takes at this path, for a 405's ``Allow`` (RFC 9110 §15.5.6).

    Starlette answers with the methods of the first route whose path matches, so a path
    served by several routes (``GET`` and ``DELETE /v1/datasets/{id}``) would list one. The
    OpenAPI description (built once, then cached by FastAPI) lists them all per path.
    """
    path = request.url.path
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern = "".join(
            "[^/]+" if piece.startswith("{") else re.escape(piece)
            for piece in _PARAM.split(template)
        )
        if re.fullmatch(pattern, path):
            methods.update(m.upper() for m in operations if m.upper() in _HTTP_METHODS)
    if not methods and fallback:
        methods.update(m.strip() for m in fallback.split(","))
    return sorted(methods)


_PARAM = re.compile(r"(\{[^}/]+\})")
_HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
