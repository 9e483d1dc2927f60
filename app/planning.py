"""Making, storing and publishing plans (shared by the API and the CLI).

A plan is computed from the dataset and its cached gap analysis, stamped with an id and
time, stored once (plans are immutable), and published through the small-number policy:
reach counts of 1–7 people are suppressed, others rounded, and each site lists what was
suppressed. The stored plan keeps the raw numbers.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from geo.dataset import Dataset
from models.disclosure import DisclosurePolicy, round_counts
from models.gaps import GapResult
from models.plan import make_plan
from models.plan_params import PlanParams

Progress = Callable[[float, str], None]


def new_plan(
    dataset_id: str,
    dataset: Dataset,
    gaps: GapResult | None,
    params: PlanParams,
    *,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Compute a plan and give it an id and a creation time."""
    plan = make_plan(dataset, gaps, params, progress=progress)
    return {
        "id": uuid.uuid4().hex,
        "dataset_id": dataset_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **plan,
    }


def estimated_size(dataset: Dataset, params: PlanParams) -> int:
    """Demand points × candidate sites, the figure that decides sync vs job."""
    candidates = int((dataset.sites["status"] == "candidate").sum()) if len(dataset.sites) else 0
    candidates += (
        params.van_stops
        if params.van_stops is not None
        else max(10, 4 * params.n_vans)
        if params.n_vans
        else 0
    )
    return len(dataset.areas) * max(candidates, 1)


def _publish_count(value: Any, policy: DisclosurePolicy) -> Any:
    if not isinstance(value, int | float) or value is None or not policy.enabled:
        return value
    if policy.lower <= value <= policy.upper:
        return None
    return int(round_counts(np.array([float(value)]), policy.rounding_base)[0])


def publish_plan(plan: dict[str, Any], policy: DisclosurePolicy) -> dict[str, Any]:
    """A copy of the plan with every count of people under the small-number policy."""
    out = {**plan, "sites": []}
    for site in plan.get("sites", []):
        published = {**site}
        suppressed: list[str] = []
        reach = dict(site.get("reach") or {})
        for key in ("total", "existing_overlap"):
            if key in reach:
                reach[key] = _publish_count(reach[key], policy)
                if reach[key] is None and site["reach"][key] is not None:
                    suppressed.append(f"reach.{key}")
        for breakdown in ("by_imd_quintile", "by_ethnic_group"):
            if isinstance(reach.get(breakdown), dict):
                values = {}
                for group, count in reach[breakdown].items():
                    values[group] = _publish_count(count, policy)
                    if values[group] is None and count is not None:
                        suppressed.append(f"reach.{breakdown}.{group}")
                reach[breakdown] = values
        published["reach"] = reach
        published["suppressed"] = suppressed
        out["sites"].append(published)
    totals = dict(plan.get("totals") or {})
    for key in ("reached", "shortfall_total", "existing_reached", "equity_weighted_reached"):
        if key in totals:
            totals[key] = _publish_count(totals[key], policy)
    out["totals"] = totals
    return out


def sites_csv(plan: dict[str, Any]) -> bytes:
    """The chosen sites in order, one row each, reach broken down in columns."""
    quintiles = sorted(
        {q for s in plan["sites"] for q in (s.get("reach", {}).get("by_imd_quintile") or {})}
    )
    groups = sorted(
        {g for s in plan["sites"] for g in (s.get("reach", {}).get("by_ethnic_group") or {})}
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "order",
            "site_id",
            "site_type",
            "subtype",
            "name",
            "lon",
            "lat",
            "marginal_gain",
            "reach_total",
            *[f"reach_imd_q{q}" for q in quintiles],
            *[f"reach_{g}" for g in groups],
            "n_catchment_areas",
            "suppressed",
        ]
    )
    for site in plan["sites"]:
        reach = site.get("reach") or {}
        writer.writerow(
            [
                site.get("order"),
                site.get("site_id"),
                site.get("site_type"),
                site.get("subtype") or "",
                site.get("name") or "",
                site.get("lon"),
                site.get("lat"),
                site.get("marginal_gain"),
                _blank(reach.get("total")),
                *[_blank((reach.get("by_imd_quintile") or {}).get(q)) for q in quintiles],
                *[_blank((reach.get("by_ethnic_group") or {}).get(g)) for g in groups],
                len(site.get("catchment_area_codes") or []),
                ";".join(site.get("suppressed") or []),
            ]
        )
    return buffer.getvalue().encode()


def _blank(value: Any) -> Any:
    return "" if value is None else value
