"""Gap analysis of a dataset: the gap table, per-group tables, clusters, inequality.

:func:`analyse_gaps` runs, in order: area totals and Wilson intervals
(:mod:`models.rates`), out-of-fold expected uptake (:mod:`models.expected`),
empirical-Bayes smoothing (:mod:`models.smoothing`), overdispersed funnel z-scores and
Fingertips significance (:mod:`models.funnel`), shortfall, FDR, flags and priority
(:mod:`models.flags`), Gi* hot spots and cluster polygons (:mod:`models.clusters`), the
per-group tables (:mod:`models.group_tables`) and SII/RII (:mod:`models.inequality`).
Calculations use raw counts; disclosure control (:mod:`models.disclosure`) is for
publication only.

The per-row statistics and the table columns are in :mod:`models.gap_statistics`, the
parameters (:class:`GapParams`) in :mod:`models.gap_params`; both are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from geo.dataset import Dataset, area_totals
from geo.projection import to_wgs84
from models import clusters as cl
from models.expected import fit_expected
from models.expected_features import build_cells, build_features
from models.flags import bh_qvalues, equity_weight, imd_quintile, priority_rank
from models.gap_params import GapParams
from models.gap_statistics import EXTRA_COLUMNS, TABLE_COLUMNS, row_statistics
from models.group_tables import group_table
from models.inequality import inequality_summary

__all__ = [
    "EXTRA_COLUMNS",
    "TABLE_COLUMNS",
    "GapParams",
    "GapResult",
    "Progress",
    "analyse_gaps",
    "json_ready",
]

Progress = Callable[[float, str], None]


@dataclass
class GapResult:
    """Everything :func:`analyse_gaps` produces (raw numbers; apply disclosure control
    before publishing).

    Attributes
    ----------
    table
        One row per area, :data:`TABLE_COLUMNS` then ``eth_*`` shares then
        :data:`EXTRA_COLUMNS`, sorted by priority.
    group_tables
        ``{group column: area × group table}`` with ``group`` and ``group_value`` too.
    clusters
        Cluster polygons (WGS84), see :func:`models.clusters.hot_spot_clusters`.
    inequality
        JSON-ready SII/RII and uptake by group.
    model_report
        JSON-ready description of the fit, estimates, reasons for fallbacks and counts.
    """

    table: pd.DataFrame
    group_tables: dict[str, pd.DataFrame]
    clusters: gpd.GeoDataFrame
    inequality: dict[str, Any]
    model_report: dict[str, Any]


def _area_frame(dataset: Dataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-area identity, totals and indicator columns (areas order)."""
    areas = dataset.areas
    codes = areas["area_code"].astype(str)
    totals = area_totals(dataset.uptake).reindex(codes).fillna(0)
    frame = pd.DataFrame(
        {
            "area_code": codes.to_numpy(),
            "area_name": areas["area_name"].to_numpy() if "area_name" in areas else None,
            "parent_code": areas["parent_code"].to_numpy() if "parent_code" in areas else None,
            "eligible": totals["eligible"].to_numpy(dtype=np.int64),
            "vaccinated": totals["vaccinated"].to_numpy(dtype=np.int64),
        }
    )
    indicators = (
        dataset.indicators.reindex(codes)
        if dataset.indicators is not None
        else pd.DataFrame(index=codes)
    )
    frame["imd_decile"] = (
        pd.to_numeric(indicators["imd_decile"], errors="coerce").round().astype("Int64").to_numpy()
        if "imd_decile" in indicators
        else pd.array([pd.NA] * len(frame), dtype="Int64")
    )
    eth = [c for c in indicators.columns if str(c).startswith("eth_")]
    for column in eth:
        frame[column] = pd.to_numeric(indicators[column], errors="coerce").to_numpy(dtype=float)
    if not eth and "ethnic_group" in dataset.groups_present():
        shares = dataset.uptake.pivot_table(
            index="area_code",
            columns="ethnic_group",
            values="eligible",
            aggfunc="sum",
            fill_value=0,
        )
        shares = shares.div(shares.sum(axis=1).replace(0, np.nan), axis=0).reindex(codes)
        for value in shares.columns:
            if value != "":
                frame[f"eth_{value}"] = shares[value].to_numpy(dtype=float)
    return frame, indicators


def _metric_precision(crs: Any) -> float:
    """Vertex-snapping grid for contiguity: ~1 mm in degrees or metres."""
    return 1e-8 if crs is not None and CRS.from_user_input(crs).is_geographic else 1e-3


def analyse_gaps(
    dataset: Dataset, params: GapParams | None = None, *, progress: Progress | None = None
) -> GapResult:
    """Run the gap analysis on ``dataset`` (see the module docstring).

    Parameters
    ----------
    dataset
        A validated :class:`geo.dataset.Dataset`.
    params
        Analysis parameters (defaults: target 80%, 95% intervals, 9,999 permutations).
    progress
        Optional callback ``progress(fraction_done, stage)``.

    Returns
    -------
    The area table, group tables, cluster polygons, inequality summary and model report
    (see :class:`GapResult`).
    """
    params = params or GapParams()
    tell = progress or (lambda fraction, stage: None)
    tell(0.0, "area totals")
    area, indicators = _area_frame(dataset)
    codes = area["area_code"].to_numpy()
    eligible = area["eligible"].to_numpy(dtype=float)
    vaccinated = area["vaccinated"].to_numpy(dtype=float)
    tell(0.05, "expected uptake model")
    parents = (
        area["parent_code"]
        .astype(object)
        .where(
            area["parent_code"].notna() & (area["parent_code"].astype(str) != ""), area["area_code"]
        )
    )
    cells = build_cells(codes, dataset.uptake)
    fit = fit_expected(
        build_features(codes, dataset.uptake, indicators, cells=cells),
        vaccinated,
        eligible,
        parents.to_numpy(),
        cells=cells,
        seed=params.seed,
        candidates=params.model_candidates,
    )
    tell(0.45, "smoothing, funnel and flags")
    columns, estimates = row_statistics(eligible, vaccinated, fit.expected, params)
    for name, values in columns.items():
        area[name] = values
    area["target"] = params.target
    eth = [c for c in area.columns if c.startswith("eth_")]
    area["imd_quintile"] = pd.array(
        imd_quintile(area["imd_decile"].to_numpy(dtype=float, na_value=np.nan)), dtype="Float64"
    ).astype("Int64")
    area["equity_weight"] = equity_weight(
        area["imd_decile"].to_numpy(dtype=float, na_value=np.nan),
        {c.removeprefix("eth_"): area[c].to_numpy() for c in eth},
        imd_quintile_weights=params.imd_quintile_weights,
        ethnic_group_weights=params.ethnic_group_weights,
    )
    area["priority"] = priority_rank(
        area["shortfall"],
        area["equity_weight"],
        prob_below_target=area["prob_below_target"],
        codes=codes,
    )

    tell(0.55, "hot spots (Gi*) and clusters")
    geometries = dataset.areas.geometry
    adjacency = cl.queen_adjacency(
        geometries.to_numpy(), precision=_metric_precision(geometries.crs)
    )
    # Gi* surface: smoothed shortfall against the target, signed (negative above the
    # target) — Gi* z-scores and permutation tests are unchanged by a shift, and keeping
    # the sign avoids a spike at zero that makes permutation nulls heavy-tailed.
    gap = np.nan_to_num(params.target - area["smoothed_uptake"].to_numpy(dtype=float))
    gi = cl.local_gi_star(gap, adjacency, permutations=params.permutations, seed=params.seed)
    area["gi_z"], area["gi_p"] = gi.z, gi.p_sim
    area["gi_q"] = bh_qvalues(gi.p_sim)
    # A hot spot is a significant Gi* whose own value is above average (the core of a
    # high-high area), so quiet areas at the edge of a hot spot stay out. Clusters join
    # contiguous hot spots and areas flagged below expected (significant on their own
    # after FDR): pockets below what the population explains, which a target-only view
    # misses where uptake is otherwise high.
    area["hot_target"] = (area["gi_q"] <= params.fdr_alpha) & (gi.z > 0) & (gap > gap.mean())
    area["hot_expected"] = area["flag"].isin(["below_expected", "both"])
    hot = (area["hot_target"] | area["hot_expected"]).to_numpy(dtype=bool)
    area["hot_spot"] = hot
    q_gi = np.fmin(
        np.where(area["hot_target"], area["gi_q"], np.nan),
        np.where(area["hot_expected"], area["q_value"], np.nan),
    )
    cluster_id, clusters = cl.hot_spot_clusters(
        to_wgs84(dataset.areas),
        adjacency,
        hot,
        stats=area.assign(q_gi=q_gi, imd_decile=area["imd_decile"].astype(float)),
        min_areas=params.min_cluster_areas,
    )
    area["cluster_id"] = pd.array(cluster_id, dtype="Float64").astype("Int64")

    tell(0.75, "group tables")
    group_tables: dict[str, pd.DataFrame] = {}
    group_estimates: dict[str, Any] = {}
    for column in [] if cells is None else list(cells.codes):
        assert cells is not None
        group_tables[column], group_estimates[column] = group_table(
            column, cells, area, fit.expected, fit.cell_expected, params
        )

    tell(0.9, "inequality")
    inequality = inequality_summary(
        area.assign(imd_decile=area["imd_decile"].astype(float)),
        dataset.uptake,
        groups=tuple(dataset.groups_present()),
        confidence=params.confidence,
        repetitions=params.sii_repetitions,
        seed=params.seed,
    )
    table = (
        area[[*TABLE_COLUMNS, *eth, *EXTRA_COLUMNS]]
        .sort_values("priority", kind="stable")
        .reset_index(drop=True)
    )
    reasons = [r for r in [fit.report.get("reason"), inequality.get("sii_reason")] if r]
    report = {
        "n_areas": len(area),
        "n_areas_without_eligible": int((eligible == 0).sum()),
        "overall_uptake": float(vaccinated.sum() / eligible.sum()) if eligible.sum() > 0 else None,
        "total_shortfall": int(area["shortfall"].sum()),
        "expected_model": fit.report,
        **estimates,
        "funnel_significance": _counts(area["funnel_significance"]),
        "hot_spots": {
            "weights": "Queen contiguity (shared vertex), binary, self included (Gi*)",
            "permutations": params.permutations,
            "value": "max(0, target - smoothed_uptake)",
            "n_hot_spot_areas": int(area["hot_spot"].sum()),
            "n_islands": int((np.diff(adjacency.indptr) == 0).sum()),
            "cluster_p_value": "smallest FDR-adjusted p-value among members (Gi* for "
            "hot spots, funnel for areas flagged below expected)",
            **cl.cluster_summary(clusters),
        },
        "groups": group_estimates,
        "reasons": reasons,
        "params": asdict(params),
    }
    tell(1.0, "done")
    return GapResult(
        table=table,
        group_tables=group_tables,
        clusters=clusters,
        inequality=json_ready(inequality),
        model_report=json_ready(report),
    )


def _counts(values: pd.Series) -> dict[str, int]:
    """How many rows hold each label (missing labels not counted)."""
    counts = values.dropna().astype(str).value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def json_ready(value: Any) -> Any:
    """Recursively convert to plain Python: NumPy scalars to Python, NaN/inf to None,
    tuples and arrays to lists, dict keys to strings."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is pd.NA:
        return None
    return value
