"""Gap analyses computed once per (dataset, parameters) and reused.

The first request for a parameter set computes :func:`models.gaps.analyse_gaps`, keeps
the result in memory (a small LRU) and in the store (Parquet and JSON blobs), so later
requests — and other worker processes, and the service after a restart — reuse it.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict
from typing import Any

import geopandas as gpd
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
