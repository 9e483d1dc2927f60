"""Gap analysis of a dataset: the gap table, per-group tables, clusters, inequality.

:func:`analyse_gaps` runs, in order: area totals and Wilson intervals
(:mod:`models.rates`), out-of-fold expected uptake (:mod:`models.expected`),
empirical-Bayes smoothing (:mod:`models.smoothing`), overdispersed funnel z-scores and
Fingertips significance (:mod:`models.funnel`), shortfall, FDR, flags and priority
(:mod:`models.flags`), Gi* hot spots and cluster polygons (:mod:`models.clusters`) and
SII/RII (:mod:`models.inequality`). Calculations use raw counts; disclosure control
(:mod:`models.disclosure`) is for publication only.

Group tables (one per group column present: age band, sex, ethnic group) repeat the
statistics for area × group rows. Their expected uptake comes from the cell-level model
(group as a categorical feature) when that model was chosen; otherwise it is the area's
expected uptake shifted on the logit scale by one effect per group value, fitted so the
expected and observed totals of each group value agree. Each group table estimates its
own overdispersion and prior strength, and compares rows with the overall uptake of the
same group value for Fingertips significance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS
from scipy.special import expit, logit

from geo._errors import ParameterError
from geo.dataset import Dataset, area_totals
from geo.projection import to_wgs84
from models import clusters as cl
from models.expected import (
    AREA_CANDIDATES,
    CELL_CANDIDATE,
    OPTIONAL_CANDIDATES,
    CellDesign,
    build_cells,
    build_features,
    fit_expected,
)
from models.flags import (
    DEFAULT_IMD_QUINTILE_WEIGHTS,
    FLAG_VALUES,
    assign_flags,
    bh_qvalues,
    equity_weight,
    imd_quintile,
    p_low,
    priority_rank,
    shortfall,
)
from models.funnel import SIGNIFICANCE_LABELS, Overdispersion, funnel_significance, funnel_z
from models.inequality import inequality_summary
from models.rates import proportion, wilson_interval
from models.smoothing import eb_smooth

TABLE_COLUMNS = [
    "area_code",
    "area_name",
    "parent_code",
    "eligible",
    "vaccinated",
    "uptake",
    "ci_low",
    "ci_high",
    "smoothed_uptake",
    "expected_uptake",
    "target",
    "shortfall",
    "z",
    "funnel_significance",
    "flag",
    "q_value",
    "cluster_id",
    "priority",
    "imd_decile",
]
EXTRA_COLUMNS = [
    "imd_quintile",
    "prob_below_target",
    "p_value",
    "z_unadjusted",
    "equity_weight",
    "gi_z",
    "gi_p",
    "gi_q",
    "hot_target",
    "hot_expected",
    "hot_spot",
]
Progress = Callable[[float, str], None]


@dataclass
class GapParams:
    """Parameters of the gap analysis (validated on creation).

    Attributes
    ----------
    target
        Uptake target, a proportion in (0, 1].
    confidence
        Level of the Wilson interval in ``ci_low``/``ci_high``.
    prob_threshold, min_shortfall
        ``below_target`` needs P(true uptake < target) ≥ ``prob_threshold`` and a
        shortfall of at least ``min_shortfall`` people.
    fdr_alpha
        False discovery rate for ``below_expected`` flags and for Gi* hot spots.
    limit_confidence
        ``below_expected`` needs z below the lower funnel limit at this level (99.8%).
    permutations
        Conditional permutations for Gi* (0 = analytic z only, no clusters).
    imd_quintile_weights, ethnic_group_weights
        Equity multipliers for the priority (see :func:`models.flags.equity_weight`).
    min_cluster_areas
        Smallest number of contiguous hot-spot areas reported as a cluster.
    winsor_fraction
        Winsorising fraction for the overdispersion estimate (Spiegelhalter: 0.1).
    sii_repetitions
        Simulations for the SII/RII confidence intervals (PHE default 100,000).
    model_candidates
        Expected-uptake candidates to try (None = all that apply).
    seed
        Random seed (permutations, model subsampling, SII simulation).
    """

    target: float = 0.8
    confidence: float = 0.95
    prob_threshold: float = 0.95
    min_shortfall: int = 10
    fdr_alpha: float = 0.05
    limit_confidence: float = 0.998
    permutations: int = 9999
    imd_quintile_weights: dict[int, float] = field(
        default_factory=lambda: dict(DEFAULT_IMD_QUINTILE_WEIGHTS)
    )
    ethnic_group_weights: dict[str, float] = field(default_factory=dict)
    min_cluster_areas: int = 2
    winsor_fraction: float = 0.1
    sii_repetitions: int = 100_000
    model_candidates: tuple[str, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        errors: list[dict[str, Any]] = []

        def bad(name: str, msg: str) -> None:
            errors.append({"loc": [name], "msg": msg, "input": getattr(self, name)})

        if not 0 < self.target <= 1:
            bad("target", "target must be a proportion in (0, 1], e.g. 0.8")
        for name in ("confidence", "prob_threshold", "fdr_alpha", "limit_confidence"):
            if not 0 < getattr(self, name) < 1:
                bad(name, f"{name} must be strictly between 0 and 1")
        if self.min_shortfall < 0:
            bad("min_shortfall", "min_shortfall must be 0 or more people")
        if not 0 <= self.permutations <= 99_999:
            bad("permutations", "permutations must be between 0 and 99,999")
        if self.min_cluster_areas < 1:
            bad("min_cluster_areas", "min_cluster_areas must be at least 1")
        if not 0 <= self.winsor_fraction < 0.5:
            bad("winsor_fraction", "winsor_fraction must be in [0, 0.5)")
        if self.sii_repetitions < 1000:
            bad("sii_repetitions", "sii_repetitions must be at least 1,000 (PHE method)")
        if any(
            int(k) not in range(1, 6) or not v > 0 for k, v in self.imd_quintile_weights.items()
        ):
            bad("imd_quintile_weights", "keys must be IMD quintiles 1–5 and multipliers positive")
        if any(not v > 0 for v in self.ethnic_group_weights.values()):
            bad("ethnic_group_weights", "ethnic group multipliers must be positive")
        known = {*AREA_CANDIDATES, *OPTIONAL_CANDIDATES, CELL_CANDIDATE}
        if self.model_candidates is not None and not set(self.model_candidates) <= known:
            bad("model_candidates", f"model_candidates must be among {sorted(known)}")
        if errors:
            raise ParameterError(errors)


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


def _statistics(
    eligible: np.ndarray,
    vaccinated: np.ndarray,
    expected: np.ndarray,
    params: GapParams,
    *,
    average: np.ndarray | float | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The per-row gap statistics shared by the area and group tables."""
    ci_low, ci_high = wilson_interval(vaccinated, eligible, confidence=params.confidence)
    smooth = eb_smooth(vaccinated, eligible, expected, target=params.target)
    funnel = funnel_z(vaccinated, eligible, expected, winsor_fraction=params.winsor_fraction)
    p_value = p_low(funnel.z)
    q_value = bh_qvalues(p_value)
    gap = shortfall(vaccinated, eligible, params.target)
    if average is None or np.isscalar(average):
        significance = funnel_significance(vaccinated, eligible, average=average)  # type: ignore[arg-type]
    else:
        significance = _significance_by_benchmark(vaccinated, eligible, np.asarray(average))
    flags = assign_flags(
        prob_below_target=smooth.prob_below_target,
        shortfall=gap,
        z=funnel.z,
        q_value=q_value,
        prob_threshold=params.prob_threshold,
        min_shortfall=params.min_shortfall,
        fdr_alpha=params.fdr_alpha,
        limit_confidence=params.limit_confidence,
    )
    # Categoricals: a handful of labels over up to a million rows (and far cheaper for
    # pandas than object columns of strings).
    columns = {
        "uptake": proportion(vaccinated, eligible),
        "ci_low": ci_low,
        "ci_high": ci_high,
        "smoothed_uptake": smooth.smoothed,
        "expected_uptake": expected,
        "shortfall": gap,
        "z": funnel.z,
        "funnel_significance": pd.Categorical(significance, categories=SIGNIFICANCE_LABELS),
        "flag": pd.Categorical(flags, categories=FLAG_VALUES),
        "q_value": q_value,
        "prob_below_target": smooth.prob_below_target,
        "p_value": p_value,
        "z_unadjusted": funnel.z_unadjusted,
    }
    values, counts = np.unique(flags.astype(str), return_counts=True)
    estimates = {
        "overdispersion": _overdispersion_dict(funnel.overdispersion),
        "smoothing": {
            "prior_strength": smooth.prior_strength,
            "method": smooth.method,
            "at_bound": smooth.at_bound,
        },
        "flags": {v: int(c) for v, c in zip(values, counts, strict=True)},
    }
    return columns, estimates


def _significance_by_benchmark(
    vaccinated: np.ndarray, eligible: np.ndarray, average: np.ndarray
) -> np.ndarray:
    """Fingertips significance with a benchmark per row (one per distinct benchmark)."""
    labels = np.full(len(eligible), None, dtype=object)
    for value in np.unique(average[np.isfinite(average)]):
        rows = average == value
        labels[rows] = funnel_significance(vaccinated[rows], eligible[rows], average=float(value))
    return labels


def _overdispersion_dict(fit: Overdispersion) -> dict[str, Any]:
    return {
        **fit.to_dict(),
        "method": "Spiegelhalter 2005, arcsine-square-root scale, "
        "additive random effects (tau2) used for z",
    }


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


def _group_effect_expected(
    value: np.ndarray, eligible: np.ndarray, vaccinated: np.ndarray, area_expected: np.ndarray
) -> np.ndarray:
    """Area expectation shifted on the logit scale by one effect per group value, chosen
    (Newton's method) so the expected total of each value equals the observed total."""
    base = logit(np.clip(area_expected, 1e-6, 1 - 1e-6))
    observed = np.bincount(value, weights=vaccinated)
    effect = np.zeros(value.max() + 1 if len(value) else 0)
    for _ in range(50):
        p = expit(base + effect[value])
        gradient = np.bincount(value, weights=eligible * p, minlength=len(effect)) - observed
        curvature = np.bincount(value, weights=eligible * p * (1 - p), minlength=len(effect))
        step = np.where(curvature > 0, gradient / np.maximum(curvature, 1e-12), 0.0)
        effect = np.clip(effect - step, -20, 20)
        if not len(step) or np.abs(step).max() < 1e-10:
            break
    return np.asarray(expit(base + effect[value]))


def _group_table(
    column: str,
    cells: CellDesign,
    area: pd.DataFrame,
    area_expected: np.ndarray,
    cell_expected: np.ndarray | None,
    params: GapParams,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Statistics for area × value-of-``column`` rows, built with integer keys (bincount)
    so England-size tables (900,000 rows from 4.5 million cells) stay fast."""
    labels = np.asarray(cells.categories[column], dtype=object)
    width = len(labels)
    key = cells.area_index.astype(np.int64) * width + cells.codes[column]
    present = np.flatnonzero(np.bincount(key, minlength=len(area) * width) > 0)
    slot = np.full(len(area) * width, -1)
    slot[present] = np.arange(len(present))
    row = slot[key]
    eligible = np.bincount(row, weights=cells.trials, minlength=len(present))
    vaccinated = np.bincount(row, weights=cells.successes, minlength=len(present))
    area_of_row, value_of_row = present // width, present % width
    if cell_expected is not None:
        weighted = np.bincount(row, weights=cells.trials * cell_expected, minlength=len(present))
        plain = np.bincount(row, weights=cell_expected, minlength=len(present)) / np.bincount(
            row, minlength=len(present)
        )
        expected = np.where(eligible > 0, weighted / np.where(eligible > 0, eligible, 1.0), plain)
        method = "cell-level model with the group as a categorical feature"
    else:
        expected = _group_effect_expected(
            value_of_row, eligible, vaccinated, area_expected[area_of_row]
        )
        method = "area expected uptake shifted by a logit-scale effect per group value"
    value_eligible = np.bincount(value_of_row, weights=eligible, minlength=width)
    value_vaccinated = np.bincount(value_of_row, weights=vaccinated, minlength=width)
    with np.errstate(divide="ignore", invalid="ignore"):
        average = (value_vaccinated / value_eligible)[value_of_row]
    columns, estimates = _statistics(eligible, vaccinated, expected, params, average=average)
    eth = [c for c in area.columns if c.startswith("eth_")]
    decile = area["imd_decile"].to_numpy(dtype=float, na_value=np.nan)[area_of_row]
    shares = {c.removeprefix("eth_"): area[c].to_numpy()[area_of_row] for c in eth}
    if column == "ethnic_group":  # weight by the row's own group, not the area's mix
        shares = {g: (labels[value_of_row] == g).astype(float) for g in params.ethnic_group_weights}
    weight = equity_weight(
        decile,
        shares,
        imd_quintile_weights=params.imd_quintile_weights,
        ethnic_group_weights=params.ethnic_group_weights,
    )
    priority = priority_rank(
        columns["shortfall"], weight, prob_below_target=columns["prob_below_target"], codes=present
    )
    order = np.argsort(priority, kind="stable")
    carried = [
        "area_code",
        "area_name",
        "parent_code",
        "cluster_id",
        "imd_decile",
        "imd_quintile",
        *eth,
    ]
    base = area[carried].iloc[area_of_row[order]].reset_index(drop=True)
    table = pd.DataFrame(
        {
            "area_code": base["area_code"],
            "area_name": base["area_name"],
            "parent_code": base["parent_code"],
            "group": column,
            "group_value": pd.Categorical.from_codes(
                value_of_row[order], categories=[str(v) for v in labels]
            ),
            "eligible": eligible[order].astype(np.int64),
            "vaccinated": vaccinated[order].astype(np.int64),
            **{
                name: values[order]
                if isinstance(values, pd.Categorical)
                else np.asarray(values)[order]
                for name, values in columns.items()
            },
            "target": params.target,
            "cluster_id": base["cluster_id"],
            "priority": priority[order],
            "imd_decile": base["imd_decile"],
            **{c: base[c] for c in eth},
            "imd_quintile": base["imd_quintile"],
            "equity_weight": weight[order],
        }
    )
    ordered = [
        "area_code",
        "area_name",
        "parent_code",
        "group",
        "group_value",
        *TABLE_COLUMNS[3:],
        *eth,
        "imd_quintile",
        "prob_below_target",
        "p_value",
        "z_unadjusted",
        "equity_weight",
    ]
    return table[ordered], {**estimates, "expected_method": method}


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
        Analysis parameters (defaults: target 80%, 95% intervals, 999 permutations).
    progress
        Optional callback ``progress(fraction_done, stage)``.
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
    columns, estimates = _statistics(eligible, vaccinated, fit.expected, params)
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
        group_tables[column], group_estimates[column] = _group_table(
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
