"""ASGI middleware: request body limits (413) and security headers."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PROBLEM_JSON

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
# Folium writes its map script inline, so scripts need 'unsafe-inline'; everything else
# (Leaflet, fonts) comes from this origin, tiles from the configured tile host only.
_CSP = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data: {tiles}; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413, whether or not the client sent
    Content-Length (a chunked upload is counted as it arrives)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _send_413(send, self.max_bytes)
            return
        state = {"seen": 0, "exceeded": False, "started": False}

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["seen"] += len(message.get("body", b""))
                if state["seen"] > self.max_bytes:
                    state["exceeded"] = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if state["exceeded"]:
                if not state["started"]:
                    state["started"] = True
                    await _send_413(send, self.max_bytes)
                return
            state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not state["exceeded"]:
                raise
            if not state["started"]:
                await _send_413(send, self.max_bytes)


async def _send_413(send: Send, max_bytes: int) -> None:
    body = json.dumps(
        {
            "type": "https://outreach-planner.invalid/problems/payload-too-large",
            "title": "Payload too large",
            "status": 413,
            "detail": f"The request body exceeds the limit of {max_bytes:,} bytes (OUTREACH_LIMITS__MAX_UPLOAD_BYTES).",
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class SecurityHeadersMiddleware:
    """Security headers on every response; a Content-Security-Policy on HTML pages."""

    def __init__(self, app: ASGIApp, *, tiles_origin: str = ""):
        self.app = app
        self.csp = _CSP.format(tiles=tiles_origin).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers") or [])
                headers.extend(_SECURITY_HEADERS)
                content_type = dict(headers).get(b"content-type", b"")
                if content_type.startswith(b"text/html"):
                    headers.append((b"content-security-policy", self.csp))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, add_headers)


class WriteAuthMiddleware:
    """Refuse writes to the API without a valid key *before* reading their bodies.

    FastAPI parses a multipart body before running the route's dependencies, so without
    this an anonymous client could make the service read (and spool) a 300 MB upload
    only to be told 401. Roles are still checked by the routes.
    """

    _WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

    def __init__(self, app: ASGIApp, *, key_is_valid: Any):
        self.app = app
        self.key_is_valid = key_is_valid

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in self._WRITES
            or not scope["path"].startswith("/v1/")
        ):
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            await _send_401(
                send,
                "This request changes data and needs an API key: send 'Authorization: Bearer <key>'.",
            )
            return
        from starlette.concurrency import run_in_threadpool

        if not await run_in_threadpool(self.key_is_valid, token.strip()):
            await _send_401(send, "The API key is unknown or revoked.")
            return
        await self.app(scope, receive, send)


async def _send_401(send: Send, detail: str) -> None:
    body = json.dumps(
        {
            "type": "https://outreach-planner.invalid/problems/unauthorized",
            "title": "Unauthorized",
            "status": 401,
            "detail": detail,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b"Bearer"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
