"""Input files: recognising their type from content and opening zips safely.

A file's extension is a claim; its first bytes are evidence. Both are checked so that an
Excel workbook renamed ``.csv`` or an HTML error page saved as ``.geojson`` gets a clear
"wrong file type" message instead of a parser's stack trace. Zips are inspected before
anything is extracted: absolute paths and ``..`` (path traversal), too many members and
a total uncompressed size or ratio that betrays a zip bomb are refused.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from geo._errors import Problem


@dataclass(frozen=True)
class InputFile:
    """One uploaded or local input file.

    Attributes
    ----------
    name
        The file name as the user knows it (used in every problem report).
    data
        The bytes, or a path to read them from.
    """

    name: str
    data: bytes | Path

    def read_bytes(self) -> bytes:
        return self.data if isinstance(self.data, bytes) else Path(self.data).read_bytes()

    @property
    def suffix(self) -> str:
        lower = self.name.lower()
        for double in (".osm.pbf", ".shp.zip", ".geojson.zip"):
            if lower.endswith(double):
                return double
        return PurePosixPath(lower).suffix

    @classmethod
    def from_path(cls, path: str | Path) -> InputFile:
        path = Path(path)
        return cls(path.name, path)


@dataclass(frozen=True)
class ZipLimits:
    """Limits on a zip archive's contents (defaults suit an England-wide OA shapefile)."""

    max_members: int = 50
    max_uncompressed_bytes: int = 2_000_000_000
    max_ratio: float = 200.0


def sniff(data: bytes) -> str:
    """The kind of content, from its first bytes.

    Returns one of ``"sqlite"`` (GeoPackage), ``"zip"``, ``"parquet"``, ``"json"``,
    ``"xlsx"`` (a zip holding a workbook), ``"xls"``, ``"pdf"``, ``"html"``, ``"binary"``,
    ``"text"`` or ``"empty"``.
    """
    head = data[:2048]
    if not head:
        return "empty"
    if head.startswith(b"SQLite format 3\x00"):
        return "sqlite"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return (
            "xlsx" if b"[Content_Types].xml" in data[:65536] and b"xl/" in data[:65536] else "zip"
        )
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "xls"
    if head.startswith(b"%PDF"):
        return "pdf"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped[:1] in (b"{", b"["):
        return "json"
    lowered = stripped[:64].lower()
    if lowered.startswith((b"<!doctype html", b"<html")):
        return "html"
    if (
        lowered.startswith(b"<?xml")
        or lowered.startswith(b"<osm")
        or lowered.startswith(b"<graphml")
    ):
        return "xml"
    if b"\x00" in head:
        return "binary"
    return "text"


def check_zip(name: str, data: bytes, limits: ZipLimits) -> tuple[list[Problem], list[str]]:
    """Inspect a zip without extracting it.

    Returns
    -------
    problems
        Every reason to refuse the archive (empty when it is safe).
    members
        The member names, in archive order.
    """
    problems: list[Problem] = []
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return [Problem(name, "the file is not a readable zip archive", "re-create the zip")], []
    infos = archive.infolist()
    members = [info.filename for info in infos]
    if len(infos) > limits.max_members:
        problems.append(
            Problem(
                name,
                f"the zip holds {len(infos)} files; at most {limits.max_members} are accepted",
                "zip only the shapefile's parts (.shp, .shx, .dbf, .prj, .cpg)",
            )
        )
    for info in infos:
        member = PurePosixPath(info.filename.replace("\\", "/"))
        if member.is_absolute() or ".." in member.parts or info.filename.startswith(("/", "\\")):
            problems.append(
                Problem(
                    name,
                    f"the zip member {info.filename!r} points outside the archive (path traversal)",
                    "re-create the zip with plain relative file names",
                    value=info.filename[:80],
                )
            )
    total = sum(info.file_size for info in infos)
    packed = max(1, sum(info.compress_size for info in infos))
    if total > limits.max_uncompressed_bytes or total / packed > limits.max_ratio:
        problems.append(
            Problem(
                name,
                f"the zip expands to {total:,} bytes from {packed:,} (a ratio of {total / packed:.0f}); "
                f"the limits are {limits.max_uncompressed_bytes:,} bytes and a ratio of {limits.max_ratio:.0f}",
                "upload the files uncompressed, or split them",
            )
        )
    return problems, members


def describe_kind(kind: str) -> str:
    """Plain words for a sniffed kind, for error messages."""
    return {
        "sqlite": "a GeoPackage/SQLite database",
        "zip": "a zip archive",
        "parquet": "a Parquet file",
        "json": "a JSON document",
        "xlsx": "an Excel workbook (.xlsx)",
        "xls": "an Excel workbook (.xls)",
        "pdf": "a PDF document",
        "html": "an HTML page",
        "xml": "an XML document",
        "binary": "a binary file",
        "text": "a text file",
        "empty": "an empty file",
    }.get(kind, kind)
