"""Gap analyses computed once per (dataset, parameters) and reused.

The first request for a parameter set computes :func:`models.gaps.analyse_gaps`, keeps
the result in memory (a small LRU) and in the store (Parquet and JSON blobs), so later
requests — and other worker processes, and the service after a restart — reuse it.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from app.services import Services
from models.gaps import GapParams, GapResult, analyse_gaps, json_ready

#: Bump when the analysis changes in a way that makes stored results stale.
ANALYSIS_VERSION = "gaps-1"


def params_key(params: GapParams) -> str:
    """A stable key for a parameter set (and the analysis version)."""
    text = json.dumps({"v": ANALYSIS_VERSION, **asdict(params)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def is_cached(services: Services, dataset_id: str, params: GapParams) -> bool:
    key = params_key(params)
    if services.results.contains((dataset_id, key)):
        return True
    return services.store.has_result(dataset_id, key)


def gap_result(
    services: Services, dataset_id: str, params: GapParams, *, progress: Any = None
) -> GapResult:
    """The gap analysis for a dataset and parameters: from memory, the store, or computed."""
    key = params_key(params)

    def load_or_compute() -> GapResult:
        stored = services.store.load_result(dataset_id, key)
        if stored is not None:
            return _decode(stored)
        dataset = services.dataset(dataset_id)
        result = analyse_gaps(dataset, params, progress=progress)
        services.store.save_result(dataset_id, key, _encode(result))
        return result

    return services.results.get((dataset_id, key), load_or_compute)  # type: ignore[no-any-return]


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _encode(result: GapResult) -> dict[str, bytes]:
    parts = {
        "table": _parquet(result.table),
        "clusters": _parquet(result.clusters),
        "inequality": json.dumps(json_ready(result.inequality)).encode(),
        "model_report": json.dumps(json_ready(result.model_report)).encode(),
    }
    for name, table in result.group_tables.items():
        parts[f"group:{name}"] = _parquet(table)
    return parts


def _decode(parts: dict[str, bytes]) -> GapResult:
    clusters = gpd.read_parquet(io.BytesIO(parts["clusters"]))
    return GapResult(
        table=pd.read_parquet(io.BytesIO(parts["table"])),
        group_tables={
            k.split(":", 1)[1]: pd.read_parquet(io.BytesIO(v))
            for k, v in parts.items()
            if k.startswith("group:")
        },
        clusters=clusters,
        inequality=json.loads(parts["inequality"]),
        model_report=json.loads(parts["model_report"]),
    )


@dataclass(frozen=True)
class PublishedTable:
    """A gap table after disclosure control, ready to page through.

    Publishing (disclosure control, JSON encoding of every row and geometry) is done once
    per dataset, parameters and breakdown; a request then only selects rows — which keeps
    street-level bbox queries to a few milliseconds.
    """

    frame: pd.DataFrame
    properties: np.ndarray
    geometry: np.ndarray
    area_code: np.ndarray
    #: Each row's area as its position in the dataset's ``n_areas`` areas (what the
    #: store's bbox queries return), so a bbox selects rows by integer lookup, not by
    #: matching area codes; -1 for an area missing from the dataset (never after import).
    area_position: np.ndarray
    n_areas: int
    flag: np.ndarray
    group_value: np.ndarray | None

    def select(
        self, *, flag: str | None, area_positions: np.ndarray | None, group_value: str | None
    ) -> np.ndarray:
        """Row positions (in priority order) matching the filters; ``area_positions``
        (from :meth:`app.store.base.Store.area_positions_in_bbox`) keeps rows of those
        areas only."""
        if area_positions is not None:
            # Mark the areas, then look each row's area up: two small array operations
            # (the slot after the last area stays unmarked for position -1).
            wanted = np.zeros(self.n_areas + 1, dtype=bool)
            wanted[area_positions[area_positions < self.n_areas]] = True
            keep = wanted[self.area_position]
        else:
            keep = np.ones(len(self.area_code), dtype=bool)
        if flag == "any":
            keep &= self.flag != "none"
        elif flag is not None:
            keep &= self.flag == flag
        if group_value is not None and self.group_value is not None:
            keep &= self.group_value == group_value
        return np.flatnonzero(keep)


def published_table(
    services: Services, dataset_id: str, params: GapParams, group: str | None, result: GapResult
) -> PublishedTable:
    """The published table of a result (one per breakdown), cached beside the result."""
    from app.publish import GAP_COLUMNS, disclose, geometry_json, policy_of

    def build() -> PublishedTable:
        table = result.table if group is None else result.group_tables[group]
        if group is not None and "priority" in table:
            table = table.sort_values(["priority", "area_code"], kind="stable")
        frame = disclose(table, policy_of(services.settings), columns=GAP_COLUMNS).reset_index(
            drop=True
        )
        properties = np.array(
            frame.to_json(orient="records", lines=True, double_precision=10).splitlines()
            if len(frame)
            else [],
            dtype=object,
        )
        areas = services.dataset(dataset_id).areas
        shapes = pd.Series(
            geometry_json(np.asarray(areas.geometry.array, dtype=object)),
            index=areas["area_code"].to_numpy(),
        )
        codes = frame["area_code"].astype(str).to_numpy()
        return PublishedTable(
            frame=frame,
            properties=properties,
            geometry=shapes.reindex(codes).to_numpy(dtype=object),
            area_code=codes,
            area_position=pd.Index(areas["area_code"].astype(str)).get_indexer(codes),
            n_areas=len(areas),
            flag=frame["flag"].astype(str).to_numpy(),
            group_value=frame["group_value"].astype(str).to_numpy()
            if "group_value" in frame
            else None,
        )

    return services.results.get((dataset_id, params_key(params), "published", group), build)  # type: ignore[no-any-return]


def cached_published_table(
    services: Services, dataset_id: str, params: GapParams, group: str | None
) -> tuple[GapResult, PublishedTable] | None:
    """The result and its published table if both are in memory (None otherwise):
    for callers that must not load or compute anything, such as the event loop."""
    key = params_key(params)
    result = services.results.peek((dataset_id, key))
    if result is None:
        return None
    table = services.results.peek((dataset_id, key, "published", group))
    return None if table is None else (result, table)
