"""Inputs of a plan: demand points with people and equity weights, candidate sites with
their counts, costs, capacities and affinity rules (see :mod:`models.plan`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyproj import CRS

from geo._errors import ParameterError
from geo.catchments import demand_points, van_candidates
from geo.dataset import Dataset, area_totals
from geo.projection import lonlat_to_metric, metric_to_lonlat
from models.covering import SiteLimits
from models.flags import equity_weight, shortfall
from models.plan_params import FIXED_TYPES, PlanParams

#: Family (count cap) numbers in :class:`SiteLimits`: fixed sites and vans.
FIXED, VANS = 0, 1


@dataclass
class PlanInputs:
    """Everything the optimisation and the report need, in array form.

    Per area (areas order): ``area_codes``, ``imd_decile``, ``demand_area`` (people of the
    demand measure), ``groups``/``group_shares`` (ethnic shares of that demand). Per
    demand point: ``point_area``, ``demand_xy`` (metres), ``people``, ``multiplier``
    (equity). Per candidate: ``sites`` (frame), ``site_xy``, ``site_lonlat``,
    ``capacity`` (per day); ``limits``, ``required`` (indices) and ``affinity_rules``
    (``(site mask, share per area, multiplier)``).
    """

    crs: CRS
    area_codes: np.ndarray
    imd_decile: np.ndarray
    demand_area: np.ndarray
    groups: list[str]
    group_shares: np.ndarray
    point_area: np.ndarray
    demand_xy: np.ndarray
    people: np.ndarray
    multiplier: np.ndarray
    sites: pd.DataFrame
    site_xy: np.ndarray
    site_lonlat: np.ndarray
    capacity: np.ndarray
    limits: SiteLimits
    required: list[int]
    affinity_rules: list[tuple[np.ndarray, np.ndarray, float]]


def build_inputs(dataset: Dataset, gaps: Any, params: PlanParams) -> PlanInputs:
    crs = dataset.metric_crs
    codes = dataset.areas["area_code"].astype(str).to_numpy()
    totals = area_totals(dataset.uptake).reindex(codes).fillna(0)
    eligible = totals["eligible"].to_numpy(dtype=float)
    vaccinated = totals["vaccinated"].to_numpy(dtype=float)
    if params.demand == "shortfall":
        demand_area = shortfall(vaccinated, eligible, params.target).astype(float)
    else:
        demand_area = np.maximum(eligible - vaccinated, 0.0)
    indicators = (
        dataset.indicators.reindex(codes)
        if dataset.indicators is not None
        else pd.DataFrame(index=codes)
    )
    imd = pd.to_numeric(
        indicators.get("imd_decile", pd.Series(np.nan, index=codes)), errors="coerce"
    )
    imd_decile = imd.to_numpy(dtype=float, na_value=np.nan)
    groups, shares = _group_shares(dataset, codes, indicators, params)
    multiplier_area = equity_weight(
        imd_decile,
        {g: shares[:, k] for k, g in enumerate(groups)},
        imd_quintile_weights=params.imd_weights(),
        ethnic_group_weights=params.ethnic_weights(),
    )
    points = demand_points(dataset.areas.to_crs(crs))
    people = demand_area[points.area_index] * points.share
    sites, site_xy = _candidates(
        dataset, gaps, params, crs, points.xy, people, points.area_index, codes
    )
    lon, lat = (
        metric_to_lonlat(site_xy[:, 0], site_xy[:, 1], crs)
        if len(site_xy)
        else (np.empty(0), np.empty(0))
    )
    limits = _limits(sites, params)
    ids = sites["site_id"].astype(str).tolist()
    position = {s: k for k, s in enumerate(ids)}
    required = [position[s] for s in params.required_sites if s in position]
    capacity = pd.to_numeric(sites["capacity_per_day"], errors="coerce").to_numpy(dtype=float)
    capacity = np.where(
        np.isfinite(capacity) & (capacity > 0), capacity, params.default_capacity_per_day
    )
    return PlanInputs(
        crs=crs,
        area_codes=codes,
        imd_decile=imd_decile,
        demand_area=demand_area,
        groups=groups,
        group_shares=shares,
        point_area=points.area_index,
        demand_xy=points.xy,
        people=people,
        multiplier=multiplier_area[points.area_index],
        sites=sites,
        site_xy=site_xy,
        site_lonlat=np.column_stack([lon, lat]),
        capacity=capacity,
        limits=limits,
        required=required,
        affinity_rules=_affinity_rules(sites, indicators, params),
    )


def _group_shares(
    dataset: Dataset, codes: np.ndarray, indicators: pd.DataFrame, params: PlanParams
) -> tuple[list[str], np.ndarray]:
    """Ethnic-group shares of each area's demand: from uptake by group, else eth_* shares."""
    uptake = dataset.uptake
    if "ethnic_group" in dataset.groups_present():
        cells = uptake[uptake["ethnic_group"] != ""]
        table = cells.groupby(["area_code", "ethnic_group"], sort=True)[
            ["eligible", "vaccinated"]
        ].sum()
        elig = table["eligible"].unstack(fill_value=0).reindex(codes).fillna(0)
        vacc = table["vaccinated"].unstack(fill_value=0).reindex(codes).fillna(0)
        unvaccinated = (elig - vacc).clip(lower=0)
        measure = (
            (params.target * elig - vacc).clip(lower=0)
            if params.demand == "shortfall"
            else unvaccinated
        )
        shares = _normalise(measure.to_numpy(dtype=float))
        empty = shares.sum(axis=1) == 0
        shares[empty] = _normalise(unvaccinated.to_numpy(dtype=float))[empty]
        empty = shares.sum(axis=1) == 0
        shares[empty] = _normalise(elig.to_numpy(dtype=float))[empty]
        return [str(g) for g in elig.columns], shares
    columns = [c for c in indicators.columns if str(c).startswith("eth_")]
    if not columns:
        return [], np.zeros((len(codes), 0))
    values = (
        indicators[columns].apply(pd.to_numeric, errors="coerce").fillna(0).to_numpy(dtype=float)
    )
    return [str(c).removeprefix("eth_") for c in columns], _normalise(values)


def _normalise(values: np.ndarray) -> np.ndarray:
    total = values.sum(axis=1, keepdims=True)
    return np.divide(values, total, out=np.zeros_like(values), where=total > 0)


def _candidates(
    dataset: Dataset,
    gaps: Any,
    params: PlanParams,
    crs: CRS,
    demand_xy: np.ndarray,
    people: np.ndarray,
    point_area: np.ndarray,
    codes: np.ndarray,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Candidate sites of the allowed types (and dataset vans), then generated van stops."""
    sites = dataset.sites
    allowed = set(params.site_types or FIXED_TYPES)
    site_type = sites["site_type"].astype(str)
    keep = (
        (sites["status"].astype(str) == "candidate")
        & (site_type.isin(allowed) | ((site_type == "mobile_van") & (params.n_vans > 0)))
        & ~sites["site_id"].astype(str).isin(set(params.excluded_sites))
    )
    chosen = sites[keep]
    x, y = lonlat_to_metric(chosen.geometry.x.to_numpy(), chosen.geometry.y.to_numpy(), crs)
    frame = pd.DataFrame(
        {
            "site_id": chosen["site_id"].astype(str).to_numpy(),
            "site_type": chosen["site_type"].astype(str).to_numpy(),
            "subtype": chosen["subtype"].astype(str).to_numpy(),
            "name": chosen["name"].astype(str).to_numpy(),
            "community": chosen["community"].astype(str).to_numpy(),
            "capacity_per_day": pd.to_numeric(chosen["capacity_per_day"], errors="coerce").to_numpy(
                dtype=float
            ),
            "cost": pd.to_numeric(chosen["cost"], errors="coerce").to_numpy(dtype=float),
        }
    )
    xy = np.column_stack([x, y])
    if params.n_vans > 0:
        stops = _van_stops(dataset, gaps, params, crs, demand_xy, people, point_area, codes)
        van_cost = pd.to_numeric(sites.loc[site_type == "mobile_van", "cost"], errors="coerce")
        van_capacity = pd.to_numeric(
            sites.loc[site_type == "mobile_van", "capacity_per_day"], errors="coerce"
        )
        vans = pd.DataFrame(
            {
                "site_id": [f"van_stop_{k + 1:03d}" for k in range(len(stops))],
                "site_type": "mobile_van",
                "subtype": "",
                "name": [f"Mobile van stop {k + 1}" for k in range(len(stops))],
                "community": "",
                "capacity_per_day": float(van_capacity.median())
                if van_capacity.notna().any()
                else np.nan,
                "cost": float(van_cost.median()) if van_cost.notna().any() else np.nan,
            }
        )
        frame = pd.concat([frame, vans], ignore_index=True)
        xy = np.vstack([xy, stops]) if len(stops) else xy
    return frame, xy.reshape(-1, 2)


def _van_stops(
    dataset: Dataset,
    gaps: Any,
    params: PlanParams,
    crs: CRS,
    demand_xy: np.ndarray,
    people: np.ndarray,
    point_area: np.ndarray,
    codes: np.ndarray,
) -> np.ndarray:
    """Stops where the demand of flagged areas (or in clusters) concentrates."""
    weights = people.copy()
    table = getattr(gaps, "table", None)
    if table is not None and "flag" in table:
        flagged = table["flag"].astype(str) != "none"
        if "cluster_id" in table:
            flagged |= table["cluster_id"].notna()
        flagged_codes = set(table.loc[flagged.to_numpy(dtype=bool), "area_code"].astype(str))
        in_flagged = np.isin(codes[point_area], list(flagged_codes))
        if (weights * in_flagged).sum() > 0:
            weights = weights * in_flagged
    n_stops = params.van_stops or max(10, 4 * params.n_vans)
    network = dataset.network if params.distance == "network" else None
    return van_candidates(
        demand_xy,
        weights,
        n_stops=n_stops,
        seed=params.seed,
        network=network,
        crs=crs if network is not None else None,
    )


def _limits(sites: pd.DataFrame, params: PlanParams) -> SiteLimits:
    """Groups: one per capped type, one for the other fixed types, one for vans."""
    site_type = sites["site_type"].to_numpy(dtype=str)
    is_van = site_type == "mobile_van"
    n_fixed = int((~is_van).sum())
    fixed_cap = n_fixed if params.min_reach_share is not None else int(params.n_sites)
    capped = sorted((params.per_type or {}).items())
    group = np.full(len(sites), len(capped), dtype=np.int64)  # "other fixed" group
    for k, (t, _) in enumerate(capped):
        group[site_type == t] = k
    group[is_van] = len(capped) + 1
    group_cap = np.array(
        [int(c) for _, c in capped] + [fixed_cap, int(params.n_vans)], dtype=np.int64
    )
    family = np.array([FIXED] * (len(capped) + 1) + [VANS], dtype=np.int64)
    family_cap = np.array([fixed_cap, int(params.n_vans)], dtype=np.int64)
    cost = None
    if params.budget is not None:
        own = sites["cost"].to_numpy(dtype=float)
        by_type = np.array([params.cost.get(t, np.nan) for t in site_type], dtype=float)
        cost = np.where(np.isfinite(by_type), by_type, own)
        missing = sorted(set(site_type[~np.isfinite(cost)].tolist()))
        if missing:
            raise ParameterError(
                [
                    {"loc": ["cost", t], "msg": "a budget needs a cost for every candidate type"}
                    for t in missing
                ]
            )
    return SiteLimits(
        group=group,
        group_cap=group_cap,
        family=family,
        family_cap=family_cap,
        cost=cost,
        budget=params.budget,
    )


def _affinity_rules(
    sites: pd.DataFrame, indicators: pd.DataFrame, params: PlanParams
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    rules = []
    for key, rule in (params.affinity or {}).items():
        mask = (
            (sites["subtype"] == key) | (sites["community"] == key) | (sites["site_type"] == key)
        ).to_numpy(dtype=float)
        if not mask.any():
            continue
        for indicator, multiplier in rule.items():
            share = pd.to_numeric(indicators[indicator], errors="coerce").fillna(0).clip(0, 1)
            rules.append((mask, share.to_numpy(dtype=float), float(multiplier)))
    return rules
