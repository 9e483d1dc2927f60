"""API keys and roles.

Keys are 256-bit random tokens shown once and stored only as a SHA-256 hash (a fast hash
is enough for high-entropy secrets; there is nothing to brute-force). Roles are ordered:
``viewer`` reads, ``planner`` also makes plans, ``admin`` also manages datasets and keys.
A browser cannot send a header from a link, so reads also accept the key from an
HttpOnly, SameSite=Strict cookie set by the landing page; writes need the header.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from app.errors import ApiProblem
from app.store.base import Store

Role = Literal["viewer", "planner", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "planner", "admin")
KEY_PREFIX = "okey_"
COOKIE_NAME = "outreach_key"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's role and organisation, or an anonymous reader."""

    role: Role | None
    org: str | None = None
    key_id: str | None = None

    @property
    def anonymous(self) -> bool:
        return self.key_id is None

    def allows(self, needed: Role) -> bool:
        return self.role is not None and ROLES.index(self.role) >= ROLES.index(needed)

    def can_see(self, owner_org: str | None) -> bool:
        """Datasets of an organisation are visible only to that organisation's keys (and
        to service-wide admin keys, which belong to no organisation)."""
        if owner_org is None or owner_org == self.org:
            return True
        return self.role == "admin" and self.org is None and not self.anonymous

    @property
    def sees_all(self) -> bool:
        return self.role == "admin" and self.org is None and not self.anonymous


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    store: Store, *, role: Role, org: str | None = None, name: str | None = None
) -> tuple[str, str]:
    """Make a key; return ``(key_id, secret)``. The secret is not stored."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = uuid.uuid4().hex[:16]
    store.create_key(
        {
            "id": key_id,
            "key_hash": hash_key(secret),
            "prefix": secret[:9],
            "role": role,
            "org": org,
            "name": name,
        }
    )
    return key_id, secret


def authenticate(
    store: Store, *, header: str | None, cookie: str | None, method: str, anonymous_read: bool
) -> Principal:
    """Resolve the caller from the Authorization header (or, for reads, the cookie)."""
    token = _token(header=header, cookie=cookie, method=method)
    if token is None:
        return Principal(role="viewer" if anonymous_read else None)
    return _principal(store.find_key(hash_key(token)))


async def authenticate_async(
    store: Store, *, header: str | None, cookie: str | None, method: str, anonymous_read: bool
) -> Principal:
    """:func:`authenticate` for the event loop (see :meth:`Store.find_key_async`)."""
    token = _token(header=header, cookie=cookie, method=method)
    if token is None:
        return Principal(role="viewer" if anonymous_read else None)
    return _principal(await store.find_key_async(hash_key(token)))


async def authenticate_with_areas(
    store: Store,
    *,
    header: str | None,
    cookie: str | None,
    method: str,
    anonymous_read: bool,
    dataset_id: str,
    bbox: tuple[float, float, float, float],
) -> tuple[Principal, np.ndarray | None]:
    """:func:`authenticate_async`, and for a key the positions of the dataset's areas in
    ``bbox`` read with it (one round trip on PostGIS; see
    :meth:`~app.store.base.Store.key_and_area_positions`). The key is still read from
    the database for this request; the areas are None when the caller has no key."""
    token = _token(header=header, cookie=cookie, method=method)
    if token is None:
        return Principal(role="viewer" if anonymous_read else None), None
    record, positions = await store.key_and_area_positions_async(hash_key(token), dataset_id, bbox)
    return _principal(record), positions


def _token(*, header: str | None, cookie: str | None, method: str) -> str | None:
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiProblem(
                401,
                "Unauthorized",
                "Use 'Authorization: Bearer <key>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return value.strip()
    if cookie and method in ("GET", "HEAD"):
        return cookie
    return None


def _principal(record: dict[str, Any] | None) -> Principal:
    if record is None or record.get("revoked_at") is not None:
        raise ApiProblem(
            401,
            "Unauthorized",
            "The API key is unknown or revoked.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Principal(role=record["role"], org=record.get("org"), key_id=record["id"])


def require_role(principal: Principal, needed: Role) -> None:
    if principal.role is None or (principal.anonymous and not principal.allows(needed)):
        raise ApiProblem(
            401,
            "Unauthorized",
            "This endpoint needs an API key: send 'Authorization: Bearer <key>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not principal.allows(needed):
        raise ApiProblem(
            403,
            "Forbidden",
            f"This endpoint needs the '{needed}' role; your key has '{principal.role}'.",
        )


def public_key_record(record: dict[str, Any]) -> dict[str, Any]:
    """A key record safe to show (never the hash)."""
    return {
        k: (v.isoformat() if hasattr(v, "isoformat") else v)
        for k, v in record.items()
        if k != "key_hash"
    }
