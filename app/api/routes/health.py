"""Liveness and store readiness."""

from __future__ import annotations

from fastapi import APIRouter

from app import __version__
from app.api.deps import SettingsDep

router = APIRouter(tags=["health"])


@router.get("/health", summary="Service health")
def health(settings: SettingsDep) -> dict[str, str]:
    """``{"status": "ok", "store": "sqlite"|"postgis", "version": …}``."""
    return {"status": "ok", "store": settings.store_kind, "version": __version__}
