"""Browser assets of the Folium maps, served by the app itself so maps work offline.

Folium's default page loads Leaflet, jQuery, Bootstrap, Font Awesome and
Leaflet.awesome-markers (and branca's colour legends load d3) from public CDNs. Locked-down
networks block those, so the map pages reference local copies under ``/static/vendor``
instead. The copies come from the npm registry at build time, pinned by ``package.json`` and
``package-lock.json`` at the top of the repository (``npm ci``), and are copied from
``node_modules`` into ``app/static/vendor`` by::

    python -m app.assets [--node-modules DIR] [--target DIR]

The same folder holds Swagger UI for the API's ``/docs`` page. Nothing third-party is
committed: ``app/static/vendor`` and ``node_modules`` are ignored by git. The versions match
those folium 0.20 and branca 0.8 reference (Leaflet.awesome-markers 2.0.2 is not on npm;
2.0.5 is the same code with a package manifest).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

#: The npm packages and exact versions the maps need (also pinned in package.json).
VENDOR_PACKAGES: dict[str, str] = {
    "leaflet": "1.9.3",
    "jquery": "3.7.1",
    "bootstrap": "5.2.2",
    "@fortawesome/fontawesome-free": "6.2.0",
    "leaflet.awesome-markers": "2.0.5",
    "d3": "3.5.5",
    # Not a map asset: the API's /docs page (app.main) serves Swagger UI from here too.
    "swagger-ui-dist": "5.35.0",
}

#: Files to copy: path under the vendor folder -> path under ``node_modules``. Relative
#: layouts are kept where a stylesheet refers to images or fonts by relative ``url()``.
VENDOR_FILES: dict[str, str] = {
    "leaflet/leaflet.js": "leaflet/dist/leaflet.js",
    "leaflet/leaflet.css": "leaflet/dist/leaflet.css",
    "leaflet/images/layers.png": "leaflet/dist/images/layers.png",
    "leaflet/images/layers-2x.png": "leaflet/dist/images/layers-2x.png",
    "leaflet/images/marker-icon.png": "leaflet/dist/images/marker-icon.png",
    "leaflet/images/marker-icon-2x.png": "leaflet/dist/images/marker-icon-2x.png",
    "leaflet/images/marker-shadow.png": "leaflet/dist/images/marker-shadow.png",
    "leaflet/LICENSE": "leaflet/LICENSE",
    "jquery/jquery.min.js": "jquery/dist/jquery.min.js",
    "jquery/LICENSE.txt": "jquery/LICENSE.txt",
    "bootstrap/css/bootstrap.min.css": "bootstrap/dist/css/bootstrap.min.css",
    "bootstrap/js/bootstrap.bundle.min.js": "bootstrap/dist/js/bootstrap.bundle.min.js",
    "bootstrap/LICENSE": "bootstrap/LICENSE",
    "fontawesome/css/all.min.css": "@fortawesome/fontawesome-free/css/all.min.css",
    **{
        f"fontawesome/webfonts/{font}.{ext}": f"@fortawesome/fontawesome-free/webfonts/{font}.{ext}"
        for font in ("fa-brands-400", "fa-regular-400", "fa-solid-900", "fa-v4compatibility")
        for ext in ("woff2", "ttf")
    },
    "fontawesome/LICENSE.txt": "@fortawesome/fontawesome-free/LICENSE.txt",
    "awesome-markers/leaflet.awesome-markers.js": (
        "leaflet.awesome-markers/dist/leaflet.awesome-markers.js"
    ),
    "awesome-markers/leaflet.awesome-markers.css": (
        "leaflet.awesome-markers/dist/leaflet.awesome-markers.css"
    ),
    **{
        f"awesome-markers/images/{image}": f"leaflet.awesome-markers/dist/images/{image}"
        for image in (
            "markers-soft.png",
            "markers-soft@2x.png",
            "markers-shadow.png",
            "markers-shadow@2x.png",
        )
    },
    "awesome-markers/LICENSE": "leaflet.awesome-markers/LICENSE",
    "d3/d3.min.js": "d3/d3.min.js",
    "d3/LICENSE": "d3/LICENSE",
    "swagger-ui/swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
    "swagger-ui/swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
    "swagger-ui/LICENSE": "swagger-ui-dist/LICENSE",
    "swagger-ui/NOTICE": "swagger-ui-dist/NOTICE",
}

#: Scripts every map page loads, in order: (folium's resource name, vendor path).
MAP_JS: list[tuple[str, str]] = [
    ("leaflet", "leaflet/leaflet.js"),
    ("jquery", "jquery/jquery.min.js"),
    ("bootstrap", "bootstrap/js/bootstrap.bundle.min.js"),
    ("awesome_markers", "awesome-markers/leaflet.awesome-markers.js"),
]
#: Stylesheets every map page loads: (folium's resource name, vendor path). Folium's
#: Bootstrap 3 glyphicons sheet is left out (not on npm): markers use Font Awesome.
MAP_CSS: list[tuple[str, str]] = [
    ("leaflet_css", "leaflet/leaflet.css"),
    ("bootstrap_css", "bootstrap/css/bootstrap.min.css"),
    ("awesome_markers_font_css", "fontawesome/css/all.min.css"),
    ("awesome_markers_css", "awesome-markers/leaflet.awesome-markers.css"),
]
#: CDN addresses that folium or branca may still write into a page, and their local copy.
CDN_REPLACEMENTS: dict[str, str] = {
    "https://cdnjs.cloudflare.com/ajax/libs/d3/3.5.5/d3.min.js": "d3/d3.min.js",
    "https://d3js.org/d3.v3.min.js": "d3/d3.min.js",
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js": "leaflet/leaflet.js",
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.css": "leaflet/leaflet.css",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/jquery.min.js",
}

#: Written into the vendor folder after a complete copy; records the installed versions.
MANIFEST_NAME = "manifest.json"

_REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_NODE_MODULES = _REPO_ROOT / "node_modules"
DEFAULT_TARGET = Path(__file__).resolve().parent / "static" / "vendor"


class AssetsError(RuntimeError):
    """The npm packages are missing or are not the pinned versions."""


def install_assets(node_modules: Path, target: Path) -> None:
    """Copy the map assets from ``node_modules`` into ``target``.

    The copy is built beside ``target`` and swapped in at the end, so a failed run leaves
    the previous install untouched and no stale file survives a version change.

    Parameters
    ----------
    node_modules
        The folder ``npm ci`` filled (``node_modules`` at the repository root).
    target
        The vendor folder the app serves at ``/static/vendor`` (``app/static/vendor``).

    Raises
    ------
    AssetsError
        When a package is missing, has another version than :data:`VENDOR_PACKAGES`, or
        lacks one of :data:`VENDOR_FILES`; the message says to run ``npm ci``.
    """
    node_modules = Path(node_modules)
    target = Path(target)
    problems = _version_problems(node_modules)
    missing = [src for src in VENDOR_FILES.values() if not (node_modules / src).is_file()]
    problems += [f"missing file node_modules/{src}" for src in missing]
    if problems:
        raise AssetsError(
            "cannot install the map assets: "
            + "; ".join(problems)
            + ". Run `npm ci --ignore-scripts` at the repository root first."
        )
    staging = target.with_name(target.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    for dest, src in VENDOR_FILES.items():
        out = staging / dest
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(node_modules / src, out)
    manifest = {"packages": VENDOR_PACKAGES, "files": sorted(VENDOR_FILES)}
    (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)


def assets_installed(target: Path = DEFAULT_TARGET) -> bool:
    """Whether ``target`` holds a complete install of the pinned assets.

    ``False`` means ``make install`` (``npm ci`` then ``python -m app.assets``) has not
    been run, or was run for other versions: map pages would load without Leaflet.
    """
    target = Path(target)
    manifest_path = target / MANIFEST_NAME
    if not manifest_path.is_file():
        return False
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if manifest.get("packages") != VENDOR_PACKAGES:
        return False
    return all((target / dest).is_file() for dest in VENDOR_FILES)


def _version_problems(node_modules: Path) -> list[str]:
    problems = []
    for package, version in VENDOR_PACKAGES.items():
        manifest = node_modules / package / "package.json"
        if not manifest.is_file():
            problems.append(f"package {package} is not installed")
            continue
        found = json.loads(manifest.read_text(encoding="utf-8")).get("version")
        if found != version:
            problems.append(f"{package} is version {found}, expected {version}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m app.assets [--node-modules DIR] [--target DIR]``."""
    parser = argparse.ArgumentParser(
        prog="python -m app.assets",
        description="Copy the pinned map assets from node_modules into the static folder.",
    )
    parser.add_argument("--node-modules", type=Path, default=DEFAULT_NODE_MODULES)
    parser.add_argument("--target", type=Path, default=DEFAULT_TARGET)
    args = parser.parse_args(argv)
    try:
        install_assets(args.node_modules, args.target)
    except AssetsError as exc:
        print(exc, file=sys.stderr)
        return 1
    size = sum(f.stat().st_size for f in args.target.rglob("*") if f.is_file())
    print(f"map assets installed in {args.target} ({len(VENDOR_FILES)} files, {size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
