"""Service settings from the environment (prefix ``OUTREACH_``, nested with ``__``).

Settings are built by the app factory or the CLI, never at import time, so tests and
several apps in one process can use different settings.

Examples
--------
``OUTREACH_DATABASE_URL=postgresql+psycopg://outreach@db/outreach``,
``OUTREACH_LIMITS__MAX_UPLOAD_BYTES=500000000``, ``OUTREACH_DISCLOSURE__UPPER=10``,
``OUTREACH_TILES=https://tile.example.org/{z}/{x}/{y}.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Limits(BaseModel):
    """Caps on what one request may ask of the service."""

    max_upload_bytes: int = Field(
        300_000_000, gt=0, description="whole request body, bytes (413 above)"
    )
    max_zip_members: int = Field(50, gt=0)
    max_zip_uncompressed_bytes: int = Field(2_000_000_000, gt=0)
    max_zip_ratio: float = Field(200.0, gt=1)
    max_features: int = Field(400_000, gt=0, description="areas per dataset")
    max_vertices: int = Field(200_000_000, gt=0, description="vertices per dataset")
    max_page: int = Field(100_000, gt=0, description="largest `limit` a list endpoint accepts")
    max_bbox_deg: float = Field(20.0, gt=0, description="largest bbox side, degrees")


class Disclosure(BaseModel):
    """Small-number policy applied to every published count (SPEC §2)."""

    enabled: bool = True
    lower: int = Field(1, ge=0, description="smallest count suppressed")
    upper: int = Field(7, ge=0, description="largest count suppressed")
    rounding_base: int = Field(
        5, ge=1, description="other counts are rounded to a multiple of this"
    )

    @model_validator(mode="after")
    def _ordered(self) -> Disclosure:
        if self.upper < self.lower:
            raise ValueError("disclosure.upper must be ≥ disclosure.lower")
        return self


class Jobs(BaseModel):
    """Background work: what runs as a job and how many at once."""

    max_running: int = Field(2, ge=1, description="jobs running at once; the rest queue")
    plan_threshold: int = Field(
        20_000_000,
        ge=0,
        description="plans whose demand points × candidate sites exceed this run as jobs",
    )
    gaps_threshold_areas: int = Field(
        60_000, ge=0, description="gap analyses above this many areas run as jobs"
    )


class Settings(BaseSettings):
    """All settings. See the module docstring for the environment variable names."""

    model_config = SettingsConfigDict(
        env_prefix="OUTREACH_", env_nested_delimiter="__", extra="ignore"
    )

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path("./var")
    database_url: str | None = Field(None, description="default: sqlite:///<data_dir>/outreach.db")
    anonymous_read: bool = Field(False, description="let requests without a key read")
    tiles: str | None = Field(
        None, description="basemap tile URL template; none by default (offline)"
    )
    tiles_attribution: str | None = None
    load_demo: bool = Field(
        True, description="`outreach serve` loads the demo dataset into an empty store"
    )
    map_max_areas: int = Field(
        20_000, gt=0, description="larger gap maps aggregate to the parent level"
    )
    cookie_secure: bool = Field(False, description="mark the key cookie Secure (behind HTTPS)")
    limits: Limits = Limits()
    disclosure: Disclosure = Disclosure()
    jobs: Jobs = Jobs()

    @model_validator(mode="after")
    def _production_is_closed(self) -> Settings:
        if (
            self.environment == "production"
            and self.tiles is not None
            and not self.tiles.startswith("https://")
        ):
            raise ValueError("in production OUTREACH_TILES must be an https:// URL template")
        if self.tiles is not None and not all(part in self.tiles for part in ("{z}", "{x}", "{y}")):
            raise ValueError("OUTREACH_TILES must be a URL template containing {z}, {x} and {y}")
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'outreach.db').resolve()}"

    @property
    def store_kind(self) -> str:
        return "sqlite" if self.resolved_database_url.startswith("sqlite") else "postgis"
