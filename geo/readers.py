"""Reading input files into raw frames.

Readers only parse: they turn bytes into a DataFrame or GeoDataFrame and report files
that cannot be parsed at all (wrong type, unreadable, unsafe zip). Checking the content
against the data contract is :mod:`geo.validate`'s job. Each reader returns the frame (or
``None``) and adds what it found to a :class:`Report`, so all files of an import are read
and every problem is listed at once.
"""

from __future__ import annotations

import csv
import io
import tempfile
from dataclasses import dataclass, field

import geopandas as gpd
import pandas as pd
import pyogrio

from geo._errors import Problem, ProblemList
from geo._files import InputFile, ZipLimits, check_zip, describe_kind, sniff

AREA_SUFFIXES = (".gpkg", ".geojson", ".json", ".zip", ".shp.zip", ".parquet", ".geoparquet")
_AREA_KINDS = {"sqlite", "json", "zip", "parquet"}
_AREA_FIX = "upload areas as a GeoPackage (.gpkg), GeoJSON, zipped Shapefile (.zip) or GeoParquet"
_CSV_FIX = "save the table as CSV (comma-separated, UTF-8) with a header row"


@dataclass
class Report:
    """Errors (which refuse the import) and warnings (returned with a success)."""

    errors: ProblemList = field(default_factory=ProblemList)
    warnings: ProblemList = field(default_factory=ProblemList)

    def error(self, problem: Problem) -> None:
        self.errors.add(problem)

    def warn(self, problem: Problem) -> None:
        self.warnings.add(problem)


def read_table(file: InputFile, report: Report, *, fix: str = _CSV_FIX) -> pd.DataFrame | None:
    """Read a CSV (or tab/semicolon-separated) file with every cell as a string.

    Cells are kept as text (blank cells as ``""``) so that validators can report the exact
    bad value and row instead of a parser silently turning ``"12a"`` into NaN.
    """
    data = file.read_bytes()
    kind = sniff(data)
    if kind != "text":
        report.error(
            Problem(file.name, f"expected a CSV table but the file is {describe_kind(kind)}", fix)
        )
        return None
    text = _decode(data)
    delimiter = _delimiter(text[:8192])
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            dtype=str,
            keep_default_na=False,
            sep=delimiter,
            skipinitialspace=True,
        )
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as exc:
        report.error(Problem(file.name, f"the CSV could not be parsed: {_first_line(exc)}", fix))
        return None
    if frame.empty:
        report.error(Problem(file.name, "the table has a header but no data rows", fix))
        return None
    frame.columns = [str(c).replace("\ufeff", "").strip() for c in frame.columns]
    unnamed = [c for c in frame.columns if c.startswith("Unnamed:")]
    if unnamed and all((frame[c] == "").all() for c in unnamed):
        frame = frame.drop(columns=unnamed)  # trailing commas in spreadsheet exports
    dupes = frame.columns[frame.columns.duplicated()].tolist()
    for column in dupes:
        report.error(
            Problem(
                file.name,
                "the column appears twice in the header",
                "rename or remove one",
                column=column,
            )
        )
    if dupes:
        return None
    return frame.apply(lambda s: s.str.strip()) if len(frame.columns) else frame


def read_layer(
    file: InputFile,
    report: Report,
    *,
    zip_limits: ZipLimits,
    fix: str = _AREA_FIX,
    prefer_layer: str | None = None,
) -> gpd.GeoDataFrame | None:
    """Read a vector layer (GeoPackage, GeoJSON, zipped Shapefile or GeoParquet)."""
    data = file.read_bytes()
    kind = sniff(data)
    if kind not in _AREA_KINDS:
        report.error(
            Problem(
                file.name, f"expected a vector data file but the file is {describe_kind(kind)}", fix
            )
        )
        return None
    if kind == "zip":
        zip_problems, members = check_zip(file.name, data, zip_limits)
        if zip_problems:
            for problem in zip_problems:
                report.error(problem)
            return None
        if not any(m.lower().endswith((".shp", ".gpkg", ".geojson", ".json")) for m in members):
            report.error(Problem(file.name, "the zip holds no .shp, .gpkg or .geojson file", fix))
            return None
        if not any(m.lower().endswith(".prj") for m in members) and any(
            m.lower().endswith(".shp") for m in members
        ):
            report.error(
                Problem(
                    file.name,
                    "the shapefile has no .prj file, so its coordinate reference system (CRS) is unknown",
                    "add the .prj file to the zip (British National Grid is EPSG:27700)",
                )
            )
            return None
    try:
        if kind == "parquet":
            return gpd.read_parquet(io.BytesIO(data))
        if kind == "sqlite":
            return _read_geopackage(data, prefer_layer)
        return pyogrio.read_dataframe(io.BytesIO(data))
    except Exception as exc:
        report.error(Problem(file.name, f"the file could not be read: {_first_line(exc)}", fix))
        return None


def _read_geopackage(data: bytes, prefer_layer: str | None) -> gpd.GeoDataFrame:
    # SQLite needs a real file for random access; a temporary file costs little.
    with tempfile.NamedTemporaryFile(suffix=".gpkg") as handle:
        handle.write(data)
        handle.flush()
        layers = pyogrio.list_layers(handle.name)
        names = [str(row[0]) for row in layers if row[1] is not None]
        if not names:
            raise ValueError("the GeoPackage holds no layer with geometry")
        layer = prefer_layer if prefer_layer in names else names[0]
        return pyogrio.read_dataframe(handle.name, layer=layer)


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _delimiter(sample: str) -> str:
    first = sample.splitlines()[0] if sample else ""
    try:
        return csv.Sniffer().sniff(first, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else type(exc).__name__
    return message[:300]
