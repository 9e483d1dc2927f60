"""A reusable real-browser harness: Debian Chromium driven by Playwright, fully offline.

Every request that does not go to the page's own server is blocked and recorded, so a
test can assert that a page needs nothing from the internet. Console errors, uncaught
page errors and failed or HTTP-error responses are recorded too.

Typical use::

    with serve_pages({"/map.html": html}, static_dir=STATIC_DIR) as base_url:
        with open_page(base_url + "/map.html") as (page, report):
            page.wait_for_selector(".leaflet-container")
            screenshot(page, "gap_map")
        assert report.clean, report.summary()

``open_page`` works with any server, e.g. the app run by uvicorn on 127.0.0.1.
Chromium is never downloaded (``playwright install`` is not used): the Debian package at
``/usr/bin/chromium`` is driven directly.
"""

from __future__ import annotations

import http.server
import mimetypes
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

CHROMIUM = Path(os.environ.get("OUTREACH_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
STATIC_DIR = Path(__file__).resolve().parents[1] / "app" / "static"


def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or ``None`` when they can."""
    if not CHROMIUM.exists():
        return f"Debian chromium not found at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed in the virtualenv"
    return None


@dataclass
class PageReport:
    """What happened while a page was open.

    Attributes
    ----------
    blocked_requests
        URLs the page tried to fetch from anywhere but its own server (all aborted).
    failed_requests
        Requests to its own server that failed or answered with HTTP 400 or more, as
        ``"<status or error> <url>"``.
    console_errors
        ``console.error`` messages (including resources the browser failed to load).
    page_errors
        Uncaught JavaScript exceptions.
    """

    blocked_requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """No blocked or failed request and no JavaScript error."""
        return not (
            self.blocked_requests or self.failed_requests or self.console_errors or self.page_errors
        )

    def summary(self) -> str:
        return (
            f"blocked={self.blocked_requests[:5]} failed={self.failed_requests[:5]} "
            f"console_errors={self.console_errors[:5]} page_errors={self.page_errors[:5]}"
        )


@contextmanager
def open_browser() -> Iterator[Any]:
    """A headless Debian Chromium (Playwright ``Browser``), closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def open_page(
    url: str,
    *,
    browser: Any | None = None,
    viewport: tuple[int, int] = (1280, 800),
    wait_until: str = "load",
    timeout_ms: float = 30_000,
) -> Iterator[tuple[Any, PageReport]]:
    """Open ``url`` in a fresh browser context that may only talk to ``url``'s origin.

    Parameters
    ----------
    url
        Page to open (``http://127.0.0.1:PORT/...``); its scheme, host and port are the
        only origin allowed.
    browser
        A browser from :func:`open_browser` to reuse; a new one is launched otherwise.
    viewport
        Width and height in CSS pixels.
    wait_until
        Playwright load state to wait for before yielding.
    timeout_ms
        Navigation timeout in milliseconds.

    Yields
    ------
    ``(page, report)``: the Playwright ``Page`` and the :class:`PageReport` that keeps
    filling while the page stays open.
    """
    if browser is None:
        with open_browser() as own:
            with open_page(
                url, browser=own, viewport=viewport, wait_until=wait_until, timeout_ms=timeout_ms
            ) as opened:
                yield opened
        return
    origin = _origin(url)
    report = PageReport()
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})

    def route(route: Any) -> None:
        request_url = route.request.url
        if _origin(request_url) == origin or request_url.startswith(("data:", "blob:", "about:")):
            route.continue_()
        else:
            report.blocked_requests.append(request_url)
            route.abort("blockedbyclient")

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda msg: msg.type == "error" and report.console_errors.append(msg.text))
    page.on("pageerror", lambda exc: report.page_errors.append(str(exc)))
    page.on(
        "requestfailed",
        lambda req: (
            _origin(req.url) == origin and report.failed_requests.append(f"{req.failure} {req.url}")
        ),
    )
    page.on(
        "response",
        lambda res: res.status >= 400 and report.failed_requests.append(f"{res.status} {res.url}"),
    )
    try:
        page.goto(url, wait_until=wait_until, timeout=timeout_ms)
        yield page, report
    finally:
        context.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a PNG of the page to ``tests/artifacts/<name>.png`` and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@contextmanager
def serve_pages(
    pages: dict[str, str | bytes],
    *,
    static_dir: Path = STATIC_DIR,
    page_headers: dict[str, str] | None = None,
) -> Iterator[str]:
    """Serve in-memory pages and ``static_dir`` (at ``/static``) on 127.0.0.1.

    Parameters
    ----------
    pages
        URL path (``"/map.html"``) -> HTML text or bytes.
    static_dir
        Folder served under ``/static/`` (the app's ``app/static``).
    page_headers
        Extra response headers for the pages (e.g. a Content-Security-Policy).

    Yields
    ------
    The base URL, ``http://127.0.0.1:<port>``, without a trailing slash.
    """
    bodies = {
        path: body.encode("utf-8") if isinstance(body, str) else body
        for path, body in pages.items()
    }
    root = Path(static_dir).resolve()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path)
            if path in bodies:
                self._send(200, bodies[path], "text/html; charset=utf-8", page_headers or {})
                return
            if path.startswith("/static/"):
                file = (root / path[len("/static/") :]).resolve()
                if file.is_file() and file.is_relative_to(root):
                    kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                    self._send(200, file.read_bytes(), kind)
                    return
            self._send(404, b"not found", "text/plain")

        def _send(
            self, status: int, body: bytes, kind: str, extra: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc
