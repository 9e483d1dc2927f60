"""Publishing results: disclosure control, then GeoJSON, CSV or JSON.

Every count that leaves the service (API, CSV, map tooltips) passes through the
configured small-number policy here; the analysis itself always uses raw numbers.
GeoJSON is RFC 7946 (WGS84 lon/lat); a FeatureCollection carries ``total`` (rows
matching before paging) as a foreign member.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import shapely

from app.settings import Settings
from geo.dataset import ETHNIC_GROUPS
from models.disclosure import DisclosurePolicy, apply_disclosure
from models.gap_statistics import TABLE_COLUMNS

COUNT_COLUMNS = ("eligible", "vaccinated", "unvaccinated", "shortfall")
# A rate reveals its complement as well as its numerator: 97% of about 100 people says
# "3 unvaccinated". So rates are also suppressed when the unvaccinated count is small.
_FROM_COUNTS = ["eligible", "vaccinated", "unvaccinated"]
RATE_SOURCES: dict[str, list[str]] = {
    "uptake": _FROM_COUNTS,
    "ci_low": _FROM_COUNTS,
    "ci_high": _FROM_COUNTS,
    "smoothed_uptake": _FROM_COUNTS,
    "prob_below_target": _FROM_COUNTS,
}


def _published_columns() -> list[str]:
    """SPEC §2's gap columns in the analysis' order, with the breakdown, the unvaccinated
    count and a few helpful extras inserted where a reader looks for them."""
    columns = list(TABLE_COLUMNS)
    columns[columns.index("eligible") : columns.index("eligible")] = ["group", "group_value"]
    columns.insert(columns.index("vaccinated") + 1, "unvaccinated")
    columns.insert(columns.index("imd_decile") + 1, "imd_quintile")
    return [*columns, *(f"eth_{g}" for g in ETHNIC_GROUPS), "prob_below_target", "hot_spot"]


#: Published gap-table columns, in order.
GAP_COLUMNS = _published_columns()


def policy_of(settings: Settings) -> DisclosurePolicy:
    d = settings.disclosure
    return DisclosurePolicy(
        lower=d.lower, upper=d.upper, rounding_base=d.rounding_base, enabled=d.enabled
    )


def disclose(
    frame: pd.DataFrame, policy: DisclosurePolicy, *, columns: Iterable[str] | None = None
) -> pd.DataFrame:
    """Apply the policy to a table of counts and rates; keep ``columns`` (if given)."""
    if (
        "eligible" in frame.columns
        and "vaccinated" in frame.columns
        and "unvaccinated" not in frame.columns
    ):
        frame = frame.assign(unvaccinated=frame["eligible"] - frame["vaccinated"])
    kept = frame if columns is None else frame[[c for c in columns if c in frame.columns]]
    return apply_disclosure(
        kept, count_columns=COUNT_COLUMNS, rate_columns=RATE_SOURCES, policy=policy
    )


def disclose_records(
    records: list[dict[str, Any]], policy: DisclosurePolicy
) -> list[dict[str, Any]]:
    """The same policy for a list of JSON records (e.g. uptake by IMD decile)."""
    if not records:
        return records
    frame = pd.DataFrame.from_records(records)
    return json_records(disclose(frame, policy))


def disclose_nested(value: Any, policy: DisclosurePolicy) -> Any:
    """Walk a JSON-ready structure and disclose every list of records holding counts."""
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, Mapping) for v in value)
        and any(c in value[0] for c in COUNT_COLUMNS)
    ):
        return disclose_records([dict(v) for v in value], policy)
    if isinstance(value, list):
        return [disclose_nested(v, policy) for v in value]
    if isinstance(value, Mapping):
        out = {k: disclose_nested(v, policy) for k, v in value.items()}
        present = [c for c in COUNT_COLUMNS if c in out and isinstance(out[c], int | float)]
        if present:  # a single record of counts (e.g. cluster totals)
            published = disclose_records([out], policy)[0]
            return published
        return out
    return value


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts (NaN/NA -> null, NumPy scalars -> Python)."""
    if frame.empty:
        return []
    return json.loads(frame.to_json(orient="records", double_precision=10, date_format="iso"))  # type: ignore[no-any-return]


def geometry_json(geometries: np.ndarray) -> np.ndarray:
    """GeoJSON geometry strings, coordinates rounded to 6 decimals (~0.1 m)."""
    rounded = shapely.set_precision(geometries, 1e-6, mode="pointwise")
    return shapely.to_geojson(rounded)


def feature_collection(
    frame: pd.DataFrame,
    geometry_strings: np.ndarray,
    *,
    total: int,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """A FeatureCollection as bytes from a frame of properties and geometry strings."""
    props = (
        frame.to_json(
            orient="records", lines=True, double_precision=10, date_format="iso"
        ).splitlines()
        if len(frame)
        else []
    )
    return feature_collection_from_strings(geometry_strings, props, total=total, extra=extra)


def feature_collection_from_strings(
    geometry_strings: Iterable[str],
    property_strings: Iterable[str],
    *,
    total: int,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """A FeatureCollection assembled from pre-encoded JSON, without re-parsing anything."""
    features = ",".join(
        f'{{"type":"Feature","geometry":{g},"properties":{p}}}'
        for g, p in zip(geometry_strings, property_strings, strict=True)
    )
    members = "".join(f',"{k}":{json.dumps(v)}' for k, v in (extra or {}).items())
    return f'{{"type":"FeatureCollection","total":{int(total)}{members},"features":[{features}]}}'.encode()


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """CSV with suppressed values empty and the ``suppressed`` list joined by ``;``."""
    out = frame.copy()
    if "suppressed" in out.columns:
        out["suppressed"] = out["suppressed"].map(
            lambda names: ";".join(names) if isinstance(names, list | tuple | np.ndarray) else ""
        )
    buffer = io.StringIO()
    out.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def geodataframe_geojson(frame: Any, *, extra: Mapping[str, Any] | None = None) -> bytes:
    """A (published) GeoDataFrame as an RFC 7946 FeatureCollection."""
    properties = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    geometry = (
        geometry_json(np.asarray(frame.geometry.array, dtype=object))
        if len(frame)
        else np.array([])
    )
    return feature_collection(properties, geometry, total=len(properties), extra=extra)
