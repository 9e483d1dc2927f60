"""Self-contained map pages: every script, stylesheet, image and font inside the HTML.

A map written by the command line (``outreach gaps --map gaps.html``) is a file an analyst
attaches to an email or drops on a shared drive. Pointing it at the vendor folder of the
virtualenv that made it (``file:///…/app/static/vendor``) works on that machine only, so
those pages carry their assets inline instead: scripts and stylesheets become inline
``<script>``/``<style>`` blocks and the images and fonts that stylesheets refer to by
relative ``url()`` become ``data:`` URIs. Font Awesome lists each font as WOFF2 and TTF;
only the WOFF2 is kept (every browser that runs Leaflet 1.9 reads it), which halves the
fonts' share of the page. The page then opens from anywhere, offline, and loads nothing.
Pages served by the app keep their links: browsers cache the assets across maps.
"""

from __future__ import annotations

import base64
import mimetypes
import re
from collections.abc import Collection
from pathlib import Path

_SCRIPT = re.compile(r'<script\b[^>]*\bsrc="([^"]+)"[^>]*>\s*</script>')
_STYLESHEET = re.compile(r'<link\b[^>]*\brel="stylesheet"[^>]*>')
_HREF = re.compile(r'\bhref="([^"]+)"')
# Relative files only: not data: URIs already inline, nor fragments such as ``#default#VML``.
_URL = re.compile(r"""url\(\s*(['"]?)(?!data:|#)([^'")]+)\1\s*\)""")
# ``url(x.ttf) format("truetype")`` entries after the WOFF2 one in an @font-face src list.
_TTF_SOURCE = re.compile(
    r""",\s*url\(\s*['"]?[^'")]+\.ttf['"]?\s*\)\s*format\(\s*['"]truetype['"]\s*\)"""
)
_FONT_FACE = re.compile(r"""@font-face\s*\{[^}]*?font-family:\s*['"]?([^'";}]+)['"]?[^}]*\}""")
_FONT_TYPES = {".woff2": "font/woff2", ".woff": "font/woff", ".ttf": "font/ttf"}


class MissingAssetError(FileNotFoundError):
    """A page links a vendor file that is not installed (``make install`` copies them)."""


#: The font families map pages use: markers and popups draw Font Awesome 6 solid and
#: regular glyphs (``Icon(prefix="fa")``). The brands font and the v4/v5 aliases, which
#: repeat the same files under other names, are left out of a standalone page.
MAP_FONT_FAMILIES = ("Font Awesome 6 Free",)


def standalone_page(
    page: str,
    *,
    static_url: str,
    vendor_dir: Path,
    font_families: Collection[str] | None = MAP_FONT_FAMILIES,
) -> str:
    """``page`` with each asset under ``static_url`` replaced by its inline copy.

    Parameters
    ----------
    page
        A rendered map page whose scripts and stylesheets live under ``static_url``.
    static_url
        The URL prefix the page uses for the vendor folder (``/static/vendor``).
    vendor_dir
        The folder holding those files (``app/static/vendor``).
    font_families
        ``@font-face`` rules of other families are dropped (``None`` keeps them all).

    Raises
    ------
    MissingAssetError
        When a linked file is missing from ``vendor_dir``.
    """
    prefix = static_url.rstrip("/") + "/"

    def local(url: str) -> Path | None:
        if not url.startswith(prefix):
            return None
        path = (vendor_dir / url[len(prefix) :]).resolve()
        if not path.is_relative_to(vendor_dir.resolve()) or not path.is_file():
            raise MissingAssetError(f"map asset not installed: {url} (run `make install`)")
        return path

    def script(match: re.Match[str]) -> str:
        path = local(match.group(1))
        if path is None:
            return match.group(0)
        # "</script" inside the code would end the inline block early; "<\/" means the same
        # in every JavaScript string or regular expression where it can occur.
        code = path.read_text(encoding="utf-8").replace("</script", "<\\/script")
        return f"<script>{code}</script>"

    def stylesheet(match: re.Match[str]) -> str:
        href = _HREF.search(match.group(0))
        path = local(href.group(1)) if href else None
        if path is None:
            return match.group(0)
        css = _TTF_SOURCE.sub("", path.read_text(encoding="utf-8"))
        if font_families is not None:
            css = _FONT_FACE.sub(
                lambda m: m.group(0) if m.group(1).strip() in font_families else "", css
            )
        css = _URL.sub(lambda m: f'url("{_data_uri(path.parent / m.group(2))}")', css)
        return "<style>" + css.replace("</style", "<\\/style") + "</style>"

    return _STYLESHEET.sub(stylesheet, _SCRIPT.sub(script, page))


def _data_uri(path: Path) -> str:
    """A ``data:`` URI of an image or font a stylesheet refers to."""
    clean = Path(str(path).split("?", 1)[0].split("#", 1)[0]).resolve()
    if not clean.is_file():
        raise MissingAssetError(f"map asset not installed: {clean.name} (run `make install`)")
    kind = _FONT_TYPES.get(clean.suffix) or mimetypes.guess_type(clean.name)[0]
    encoded = base64.b64encode(clean.read_bytes()).decode("ascii")
    return f"data:{kind or 'application/octet-stream'};base64,{encoded}"
