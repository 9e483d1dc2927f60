"""One router for the whole API."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.routes import datasets, gaps, health, jobs, maps, pages, plans

api_router = APIRouter()
api_router.include_router(pages.router)
api_router.include_router(health.router)
api_router.include_router(datasets.router)
api_router.include_router(gaps.router)
api_router.include_router(plans.router)
api_router.include_router(maps.router)
api_router.include_router(jobs.router)
