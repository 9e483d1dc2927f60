"""The application factory.

``create_app(settings)`` builds a FastAPI app with its own store and caches; nothing is
configured at import time, so tests can run several apps with different settings.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from app import __version__
from app.api.main import api_router
from app.auth import hash_key
from app.errors import install_error_handlers
from app.jobs import JobRunner
from app.middleware import BodyLimitMiddleware, SecurityHeadersMiddleware, WriteAuthMiddleware
from app.services import Services
from app.settings import Settings
from app.store import Store, open_store

STATIC_DIR = Path(__file__).parent / "static"
log = logging.getLogger("outreach")


class StartupRefused(RuntimeError):
    """The service must not start with these settings (said plainly, then exit)."""


def check_startup(settings: Settings, store: Store) -> None:
    """Refuse unsafe production settings before serving anything."""
    if settings.environment == "production" and store.count_keys() == 0:
        raise StartupRefused(
            "production mode needs at least one API key: run `outreach keys create --role admin` "
            "against this database first (OUTREACH_DATABASE_URL), then start the service"
        )


def create_app(settings: Settings | None = None, *, store: Store | None = None) -> FastAPI:
    """Build the service.

    Parameters
    ----------
    settings
        Defaults to :class:`Settings` read from the environment.
    store
        An open store to use (tests); by default one is opened from the settings.
    """
    settings = settings or Settings()
    store = store or open_store(settings.resolved_database_url)
    check_startup(settings, store)
    services = Services(settings=settings, store=store)
    services.extras["jobs"] = JobRunner(store, max_running=settings.jobs.max_running)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Long-lived objects made at start-up (the app, its routes, imported libraries)
        # need no garbage collection: freezing them shortens every later collection,
        # and rarer young-generation collections cut request-latency tails.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)
        yield
        services.jobs().shutdown()

    app = FastAPI(
        title="Outreach planner",
        version=__version__,
        description="Find where vaccine uptake falls short near street level and plan pop-up outreach sites.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.services = services
    install_error_handlers(app)
    app.include_router(api_router)
    STATIC_DIR.mkdir(exist_ok=True)
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        # Swagger UI from the app's own /static (installed at build time), never a CDN.
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Outreach planner API",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    app.openapi = lambda: _openapi_with_problems(app)  # type: ignore[method-assign]

    tiles_origin = ""
    if settings.tiles:
        parts = urlsplit(settings.tiles.replace("{s}", "a"))
        tiles_origin = f"{parts.scheme}://{parts.netloc.replace('a.', '*.', 1) if '{s}' in settings.tiles else parts.netloc}"
    app.add_middleware(SecurityHeadersMiddleware, tiles_origin=tiles_origin)

    def key_is_valid(token: str) -> bool:
        record = store.find_key(hash_key(token))
        return record is not None and record.get("revoked_at") is None

    app.add_middleware(WriteAuthMiddleware, key_is_valid=key_is_valid)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.limits.max_upload_bytes)
    return app


_PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "every problem found, each with its location",
            "items": {
                "type": "object",
                "required": ["loc", "msg"],
                "properties": {"loc": {"type": "array"}, "msg": {"type": "string"}},
            },
        },
    },
}


def _problem(description: str) -> dict[str, object]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def _openapi_with_problems(app: FastAPI) -> dict[str, object]:
    """FastAPI's OpenAPI, with the error responses the service really sends: every 4xx
    and 5xx as ``application/problem+json`` (FastAPI documents 422 as plain JSON)."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = _PROBLEM_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses["422"] = _problem("Invalid request: every problem is listed in `errors`")
            if path.startswith("/v1/"):
                responses.setdefault("401", _problem("No API key, or an unknown or revoked one"))
                responses.setdefault("403", _problem("The key's role does not allow this"))
                if "{" in path:
                    responses.setdefault(
                        "404", _problem("No such record (or not visible to this key)")
                    )
            if method in ("post", "put", "patch"):
                responses.setdefault(
                    "400",
                    _problem("The request body could not be parsed (malformed JSON or multipart)"),
                )
                responses.setdefault("413", _problem("Request body over the upload limit"))
            if path.endswith("/sites") and method == "post":
                responses.setdefault("409", _problem("A site id already exists in the dataset"))
            if path.endswith("/map"):
                responses.setdefault("503", _problem("Map assets not installed"))
            responses.setdefault("500", _problem("Unexpected error (an incident id is given)"))
    app.openapi_schema = schema
    return schema
