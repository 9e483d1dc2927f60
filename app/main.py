"""The application factory.

``create_app(settings)`` builds a FastAPI app with its own store and caches; nothing is
configured at import time, so tests can run several apps with different settings.
"""

from __future__ import annotations

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
