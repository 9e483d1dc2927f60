"""Area data made light enough for a browser: suppressed values nulled, aggregation to the
parent level above the size limit, display simplification and compact columnar JSON.

A map of 20,000 areas must stay under 15 MB and open in seconds, so every area's geometry
is written once (the choropleth views, the flag outlines and the tooltips all share it),
properties travel as one JSON array per column (constants as one scalar), coordinates are
rounded to 5 decimals (about 1 m) and rings are simplified with a tolerance suited to the
map's extent.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.projection import WGS84, to_metric, to_wgs84

#: Gap-table fields shown on the map: source column -> short key used in the page.
FIELDS: dict[str, str] = {
    "area_code": "code",
    "area_name": "name",
    "eligible": "elig",
    "vaccinated": "vacc",
    "uptake": "up",
    "ci_low": "lo",
    "ci_high": "hi",
    "smoothed_uptake": "sm",
    "expected_uptake": "ex",
    "target": "tg",
    "shortfall": "sf",
    "imd_decile": "imd",
    "q_value": "q",
    "cluster_id": "cl",
    "priority": "pr",
    "eth_asian": "asian",
    "eth_black": "black",
    "eth_mixed": "mixed",
    "eth_white": "white",
    "eth_other": "other",
}
SHARE_FIELDS = ("eth_asian", "eth_black", "eth_mixed", "eth_white", "eth_other")
FLAGS = ("none", "below_target", "below_expected", "both")
#: Coordinates are written with this many decimals (1e-5 degree is about 1.1 m).
COORD_DECIMALS = 5
#: Display tolerance as a fraction of the map's larger side: about one pixel of a
#: 4,000-pixel-wide view of the whole extent, invisible at the fitted zoom.
TOLERANCE_FRACTION = 1 / 4000
#: Vertex budget of the drawn areas: about 20 bytes each as JSON, so geometry stays
#: under 9 MB and a 20,000-area page (with its ~3.5 MB of properties) under 15 MB.
MAX_DISPLAY_COORDINATES = 450_000
#: Two-sided 95% normal quantile, for Wilson intervals of aggregated areas.
_Z95 = 1.959963984540054


@dataclass(frozen=True)
class DisplayAreas:
    """Areas ready to draw.

    Attributes
    ----------
    frame
        One row per drawn area (or parent area), WGS84, simplified; the columns of
        :data:`FIELDS` (suppressed values as NaN/None) plus ``flag``, ``suppressed``,
        ``n_children`` and ``n_children_suppressed`` (0 unless aggregated).
    n_input
        Number of areas given.
    level
        ``"area"`` or ``"parent"`` (aggregated to ``parent_code``).
    note
        A sentence for the map saying what was aggregated or left out, or ``None``.
    """

    frame: gpd.GeoDataFrame
    n_input: int
    level: str
    note: str | None

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(min_lon, min_lat, max_lon, max_lat)`` of the drawn areas."""
        if len(self.frame) == 0:
            return (-180.0, -60.0, 180.0, 75.0)
        minx, miny, maxx, maxy = (float(b) for b in self.frame.total_bounds)
        return (minx, miny, maxx, maxy)


def prepare_areas(gaps: gpd.GeoDataFrame, *, max_areas: int) -> DisplayAreas:
    """Null suppressed values, aggregate or cap above ``max_areas``, simplify for display.

    Parameters
    ----------
    gaps
        Gap table with geometry (SPEC §2 columns; any may be missing). A value is
        treated as suppressed when it is null or its field is listed in ``suppressed``.
    max_areas
        Above this many areas the map aggregates to ``parent_code`` when there is one;
        if still too many, only the ``max_areas`` highest-priority areas are drawn.
    """
    frame = _normalise(gaps)
    n_input = len(frame)
    level, note = "area", None
    if n_input > max_areas and frame["parent_code"].notna().any():
        frame = _aggregate_to_parent(frame)
        level = "parent"
        note = (
            f"{n_input:,} areas are more than this map draws ({max_areas:,}): they are "
            f"aggregated to {len(frame):,} parent areas. Request a bbox to see single areas."
        )
    if len(frame) > max_areas:
        kept = len(frame)
        order = np.lexsort(
            (-frame["shortfall"].fillna(-1).to_numpy(), frame["priority"].fillna(np.inf).to_numpy())
        )
        frame = frame.iloc[np.sort(order[:max_areas])]
        what = "parent areas" if level == "parent" else "areas"
        note = (
            f"Showing the {max_areas:,} highest-priority of {kept:,} {what} "
            f"({n_input:,} areas in all). Request a smaller bbox to see the others."
        )
    simplified = simplify_for_display(frame.geometry, max_coordinates=MAX_DISPLAY_COORDINATES)
    frame = frame.set_geometry(simplified)
    return DisplayAreas(frame=frame, n_input=n_input, level=level, note=note)


def simplify_for_display(
    geometry: gpd.GeoSeries, *, max_coordinates: int | None = None
) -> gpd.GeoSeries:
    """Simplify polygons in the metric CRS, then round WGS84 coordinates to 5 decimals.

    The tolerance is :data:`TOLERANCE_FRACTION` of the larger side of the extent, but at
    most a fifth of the median area's width so small urban areas keep their shape. When
    the result still has more than ``max_coordinates`` vertices (detailed boundaries),
    it is simplified again with a doubled tolerance until it fits, so the page stays
    within its size budget.
    Topology is preserved per polygon (no ring collapses); neighbours may gain hairline
    slivers at high zoom, the price of not requiring a perfectly noded coverage.
    """
    if len(geometry) == 0:
        return geometry.to_crs(WGS84) if geometry.crs is not None else geometry
    metric_series = to_metric(gpd.GeoDataFrame(geometry=geometry)).geometry
    metric = metric_series.values
    minx, miny, maxx, maxy = shapely.total_bounds(metric)
    widths = np.sqrt(np.maximum(shapely.area(metric), 0.0))
    tolerance = min(
        max(maxx - minx, maxy - miny) * TOLERANCE_FRACTION, 0.2 * float(np.median(widths))
    )
    simplified = shapely.simplify(metric, tolerance, preserve_topology=True)
    for _ in range(8):
        if (
            max_coordinates is None
            or shapely.get_num_coordinates(simplified).sum() <= max_coordinates
        ):
            break
        # Simplify the already simplified shapes again (fast: few vertices left); the
        # deviation from the original stays within the sum of the tolerances.
        tolerance *= 2
        simplified = shapely.simplify(simplified, tolerance, preserve_topology=True)
    series = gpd.GeoSeries(simplified, index=geometry.index, crs=metric_series.crs)
    lonlat = to_wgs84(gpd.GeoDataFrame(geometry=series)).geometry
    rounded = shapely.transform(lonlat.values, lambda c: np.round(c, COORD_DECIMALS))
    return gpd.GeoSeries(rounded, index=geometry.index, crs=WGS84)


def geometry_json(geometry: gpd.GeoSeries) -> str:
    """A JSON array of GeoJSON geometries (GEOS writes the rounded coordinates as is)."""
    return "[" + ",".join(shapely.to_geojson(geometry.values).tolist()) + "]"


def column_json(values: pd.Series, *, decimals: int | None = None) -> str:
    """One column as JSON: a scalar when all values are equal, else an array.

    Nulls are written as ``null``; floats with ``decimals`` decimals; integer-valued
    counts without a decimal point.
    """
    if decimals is None and pd.api.types.is_float_dtype(values.dtype):
        values = values.round().astype("Int64")
    elif decimals is not None:
        values = values.astype(float).round(decimals)
    if len(values) > 0 and values.nunique(dropna=False) == 1:
        values = values.iloc[:1]
        return values.to_json(orient="values", double_precision=decimals or 10)[1:-1]
    return values.to_json(orient="values", double_precision=decimals or 10)


def _normalise(gaps: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The map's columns, in WGS84, with every suppressed or missing value as null."""
    frame = gaps if gaps.crs is None else to_wgs84(gaps)
    out = gpd.GeoDataFrame(
        {"area_code": frame["area_code"].astype("str")},
        geometry=frame.geometry.values,
        crs=WGS84,
        index=pd.RangeIndex(len(frame)),
    )
    for column in ("area_name", "parent_code"):
        out[column] = frame[column].astype("str").to_numpy() if column in frame else None
        out[column] = out[column].where(pd.notna(out[column]), None)
    numeric = [c for c in FIELDS if c not in ("area_code", "area_name")]
    for column in numeric:
        source = frame[column] if column in frame else pd.Series(np.nan, index=frame.index)
        out[column] = pd.to_numeric(source, errors="coerce").astype(float).to_numpy()
    flags = frame["flag"].astype("str") if "flag" in frame else pd.Series("none", index=frame.index)
    out["flag"] = pd.Categorical(flags.to_numpy(), categories=FLAGS).codes.clip(0)
    suppressed = _suppressed_lists(frame)
    out["suppressed"] = suppressed.str.join(",").to_numpy()
    # A field listed as suppressed is never shown, even if a value came with it.
    pairs = suppressed.explode().dropna()
    for field in set(pairs) & set(numeric):
        rows = pairs.index[pairs == field].to_numpy()
        out.loc[rows, field] = np.nan
    out["n_children"] = 0
    out["n_children_suppressed"] = 0
    return out


def _suppressed_lists(frame: pd.DataFrame) -> pd.Series:
    """The ``suppressed`` field lists as a Series of lists of str (empty when absent)."""
    index = pd.RangeIndex(len(frame))
    if "suppressed" not in frame:
        return pd.Series([[]] * len(frame), index=index, dtype=object)
    lists = pd.Series(frame["suppressed"].to_numpy(), index=index, dtype=object)
    return lists.apply(_as_str_list)


def _as_str_list(value: object) -> list[str]:
    if isinstance(value, list | tuple | np.ndarray):
        return [str(x) for x in value]
    return []


def _aggregate_to_parent(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Sum counts and recompute rates per parent area, from the published child values.

    Suppressed children are left out of the sums (their values are unknown here) and
    counted in ``n_children_suppressed``; a parent value is null only when no child has
    one. Uptake and its Wilson interval are recomputed from the summed counts of
    children whose eligible and vaccinated are both published.
    """
    parent = frame["parent_code"].fillna(frame["area_code"])
    known = frame["eligible"].notna() & frame["vaccinated"].notna()
    grouped = pd.DataFrame(
        {
            "eligible": frame["eligible"].where(known),
            "vaccinated": frame["vaccinated"].where(known),
            "shortfall": frame["shortfall"],
            "n_children": 1,
            "n_children_suppressed": (~known).astype(int),
            "bt": frame["flag"].isin([1, 3]),
            "be": frame["flag"].isin([2, 3]),
        }
    ).groupby(parent.to_numpy(), sort=False)
    out = grouped[["eligible", "vaccinated", "shortfall"]].sum(min_count=1)
    out[["n_children", "n_children_suppressed"]] = grouped[
        ["n_children", "n_children_suppressed"]
    ].sum()
    flags = grouped[["bt", "be"]].any()
    out["flag"] = flags["bt"].astype(int) + 2 * flags["be"].astype(int)
    weights = frame["eligible"].where(known, 0.0).to_numpy()
    for column in ("smoothed_uptake", "expected_uptake", "target", *SHARE_FIELDS):
        out[column] = _weighted_mean(frame[column], weights, parent)
    out["imd_decile"] = frame.groupby(parent.to_numpy(), sort=False)["imd_decile"].median().round()
    out["priority"] = frame.groupby(parent.to_numpy(), sort=False)["priority"].min()
    n, x = out["eligible"].to_numpy(), out["vaccinated"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["uptake"] = np.where(n > 0, x / n, np.nan)
        out["ci_low"], out["ci_high"] = _wilson(x, n)
    out["q_value"] = np.nan
    out["cluster_id"] = np.nan
    out["area_code"] = out.index.astype("str")
    out["area_name"] = None
    out["parent_code"] = None
    out["suppressed"] = ""
    geometry = (
        frame[["geometry"]].assign(_parent=parent.to_numpy()).dissolve(by="_parent", sort=False)
    )
    result = gpd.GeoDataFrame(out, geometry=geometry.geometry.reindex(out.index).values, crs=WGS84)
    return result.reset_index(drop=True)


def _weighted_mean(values: pd.Series, weights: np.ndarray, parent: pd.Series) -> pd.Series:
    """Eligible-weighted mean of the children's known values (plain mean without weights)."""
    present = values.notna().to_numpy()
    w = np.where(present, np.where(weights > 0, weights, 1e-9), 0.0)
    v = np.where(present, values.to_numpy(dtype=float, na_value=np.nan), 0.0)
    sums = pd.DataFrame({"wv": w * v, "w": w}).groupby(parent.to_numpy(), sort=False).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.Series(np.where(sums["w"] > 0, sums["wv"] / sums["w"], np.nan), index=sums.index)


def _wilson(x: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95% Wilson score interval (Wilson 1927; as in Fingertips) for x of n."""
    with np.errstate(invalid="ignore", divide="ignore"):
        p = x / n
        z2 = _Z95**2
        centre = (p + z2 / (2 * n)) / (1 + z2 / n)
        half = _Z95 * np.sqrt(p * (1 - p) / n + z2 / (4 * n**2)) / (1 + z2 / n)
    valid = n > 0
    return np.where(valid, centre - half, np.nan), np.where(valid, centre + half, np.nan)


def prepare_clusters(clusters: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame | None:
    """Clusters in WGS84, simplified, with an escaped one-line description each."""
    if clusters is None:
        return None
    frame = clusters.to_crs("EPSG:4326") if clusters.crs is not None else clusters
    frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty].copy()
    if len(frame) == 0:
        return frame
    frame = frame.reset_index(drop=True)
    for column in ("n_areas", "shortfall", "vaccinated", "eligible", "p_value"):
        values = frame[column] if column in frame else pd.Series(np.nan, index=frame.index)
        frame[column] = pd.to_numeric(values, errors="coerce").astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        uptake = frame["vaccinated"] / frame["eligible"].where(frame["eligible"] > 0)
    text = (
        "Cluster " + frame["cluster_id"].astype("int64").astype(str)
        + ": " + _fmt(frame["n_areas"], "{:,.0f}", "suppressed") + " areas, shortfall "
        + _fmt(frame["shortfall"], "{:,.0f} people", "suppressed") + ", uptake "
        + _fmt(uptake, "{:.1%}", "suppressed")
        + ", p = " + _fmt(frame["p_value"], "{:.2g}", "not available")
    )  # fmt: skip
    if "median_imd_decile" in frame:
        decile = pd.to_numeric(frame["median_imd_decile"], errors="coerce").astype(float)
        text = text + _fmt(decile, ", median IMD decile {:.0f}", "")
    if "dominant_ethnic_groups" in frame:
        groups = frame["dominant_ethnic_groups"].map(_as_str_list).str.join(", ").str.title()
        text = text + groups.where(groups == "", ", mainly " + groups)
    frame["tip_text"] = text.map(html.escape)
    frame = frame.set_geometry(simplify_for_display(frame.geometry))
    return frame


def _fmt(values: pd.Series, spec: str, missing: str) -> pd.Series:
    """Format numbers for display; nulls (suppressed or unknown) become ``missing``."""
    finite = values.where(np.isfinite(values.to_numpy(dtype=float, na_value=np.nan)))
    return finite.map(lambda v: missing if pd.isna(v) else spec.format(v))
