"""Parameters of an outreach plan and their validation.

:func:`validate_plan_params` collects every problem — with the parameters alone and,
given a dataset, against its sites, types and indicators — and raises one
:class:`~geo._errors.ParameterError` listing each as ``{"loc": [...], "msg": ...}``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from geo._errors import ParameterError
from geo.dataset import SITE_TYPES, Dataset
from models.flags import DEFAULT_IMD_QUINTILE_WEIGHTS

DEMANDS = ("shortfall", "unvaccinated")
DISTANCES = ("euclidean", "network")
DECAYS = ("linear", "gaussian", "exponential")
FIXED_TYPES = tuple(t for t in SITE_TYPES if t != "mobile_van")


def _default_equity() -> dict[str, dict[Any, float]]:
    return {"imd_quintile": dict(DEFAULT_IMD_QUINTILE_WEIGHTS), "ethnic_group": {}}


@dataclass
class PlanParams:
    """What a plan is asked to do.

    Attributes
    ----------
    n_sites, n_vans
        Fixed pop-up sites and mobile vans to place (at most).
    site_types
        Candidate types for fixed sites (``None``: every type but ``mobile_van``).
    radius_m
        Catchment radius in metres per site type (defaults ``DEFAULT_RADIUS_M``).
    target
        Uptake target in (0, 1] that defines the shortfall.
    demand
        ``"shortfall"`` (people to vaccinate to reach ``target``) or ``"unvaccinated"``.
    equity
        Multipliers of the objective: ``{"imd_quintile": {1: 1.5, …}, "ethnic_group":
        {"black": 1.3, …}}`` (quintile 1 = IMD deciles 1–2; missing entries count 1).
    use_existing, existing_factor
        Demand within reach of existing sites counts as reached, times the factor. The
        default 0.5 counts half of it: the people still unvaccinated next to an existing
        site have, by definition, not been reached by it, and the COVID-19 programme's
        pop-ups at faith and community venues reached many of them; 1.0 treats existing
        sites as fully serving their catchments.
    capacity, days, default_capacity_per_day
        Capacitated mode: a site reaches at most capacity per day × days people
        (``default_capacity_per_day`` where a site gives none).
    distance, decay
        Straight-line or walking (street network) catchments; distance decay or ``None``.
    required_sites, excluded_sites
        Candidate site ids that must / must not be chosen.
    budget, cost
        Total budget and cost per site type (else each site's own ``cost``).
    per_type
        Caps per fixed site type, e.g. ``{"pharmacy": 4}`` (within ``n_sites``).
    min_reach_share
        Minimum-facilities mode: the fewest fixed sites reaching this share of the demand.
    affinity
        ``{site subtype, community or type: {indicator: multiplier}}``, e.g.
        ``{"gurdwara": {"rel_sikh": 2.0}}``: the value of reaching an area through such a
        site is multiplied by ``1 + (multiplier − 1) × indicator share`` (objective only).
    van_stops
        Candidate van stops to generate (``None``: ``max(10, 4 × n_vans)``).
    exact, time_limit_s, seed
        Exact MILP (``True``/``False``/``"auto"``), time budget (s), random seed.
    """

    n_sites: int = 10
    n_vans: int = 0
    site_types: list[str] | None = None
    radius_m: dict[str, float] = field(default_factory=dict)
    target: float = 0.8
    demand: Literal["shortfall", "unvaccinated"] = "shortfall"
    equity: dict[str, dict[Any, float]] = field(default_factory=_default_equity)
    use_existing: bool = True
    existing_factor: float = 0.5
    capacity: bool = False
    days: float = 5.0
    default_capacity_per_day: float = 100.0
    distance: Literal["euclidean", "network"] = "euclidean"
    decay: str | None = None
    required_sites: list[str] = field(default_factory=list)
    excluded_sites: list[str] = field(default_factory=list)
    budget: float | None = None
    cost: dict[str, float] = field(default_factory=dict)
    per_type: dict[str, int] | None = None
    min_reach_share: float | None = None
    affinity: dict[str, dict[str, float]] = field(default_factory=dict)
    van_stops: int | None = None
    exact: bool | Literal["auto"] = "auto"
    time_limit_s: float = 30.0
    seed: int = 0

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PlanParams:
        """Build from a JSON-like dict; unknown keys are reported, not ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ParameterError([{"loc": [k], "msg": "unknown parameter"} for k in unknown])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy (dict keys as strings)."""
        data = asdict(self)
        data["equity"] = {
            k: {str(g): float(w) for g, w in v.items()} for k, v in (self.equity or {}).items()
        }
        return data

    def imd_weights(self) -> dict[int, float]:
        raw = (self.equity or {}).get("imd_quintile", {}) or {}
        return {int(k): float(v) for k, v in raw.items()}

    def ethnic_weights(self) -> dict[str, float]:
        raw = (self.equity or {}).get("ethnic_group", {}) or {}
        return {str(k): float(v) for k, v in raw.items()}


def validate_plan_params(params: PlanParams, dataset: Dataset | None = None) -> None:
    """Raise one :class:`ParameterError` listing every problem with ``params``."""
    errors: list[dict[str, Any]] = []

    def bad(loc: list[Any], msg: str) -> None:
        errors.append({"loc": loc, "msg": msg})

    for name in ("n_sites", "n_vans"):
        value = getattr(params, name)
        if not _is_int(value) or value < 0:
            bad([name], f"must be a whole number ≥ 0, got {value!r}")
    if params.site_types is not None:
        for t in params.site_types:
            if t not in SITE_TYPES:
                bad(["site_types", t], f"unknown site type; use one of {', '.join(SITE_TYPES)}")
    for t, r in (params.radius_m or {}).items():
        if t not in SITE_TYPES:
            bad(["radius_m", t], "unknown site type")
        if not _is_number(r) or not r > 0:
            bad(["radius_m", t], f"radius must be a positive number of metres, got {r!r}")
    if not _is_number(params.target) or not 0 < params.target <= 1:
        bad(["target"], f"target must be in (0, 1], got {params.target!r}")
    if params.demand not in DEMANDS:
        bad(["demand"], f"must be one of {', '.join(DEMANDS)}")
    _check_equity(params, bad)
    if not _is_number(params.existing_factor) or not 0 <= params.existing_factor <= 1:
        bad(["existing_factor"], "must be between 0 and 1")
    for name in ("days", "default_capacity_per_day", "time_limit_s"):
        value = getattr(params, name)
        if not _is_number(value) or not value > 0:
            bad([name], f"must be a positive number, got {value!r}")
    if params.distance not in DISTANCES:
        bad(["distance"], f"must be one of {', '.join(DISTANCES)}")
    if params.decay is not None and params.decay not in DECAYS:
        bad(["decay"], f"must be null or one of {', '.join(DECAYS)}")
    both = sorted(set(params.required_sites) & set(params.excluded_sites))
    for site in both:
        bad(["required_sites", site], "site is both required and excluded")
    if params.budget is not None and (not _is_number(params.budget) or params.budget < 0):
        bad(["budget"], f"must be a number ≥ 0, got {params.budget!r}")
    for t, c in (params.cost or {}).items():
        if t not in SITE_TYPES:
            bad(["cost", t], "unknown site type")
        if not _is_number(c) or c < 0:
            bad(["cost", t], f"cost must be a number ≥ 0, got {c!r}")
    for t, k in (params.per_type or {}).items():
        if t not in FIXED_TYPES:
            bad(["per_type", t], "unknown fixed site type (vans are counted by n_vans)")
        if not _is_int(k) or k < 0:
            bad(["per_type", t], f"must be a whole number ≥ 0, got {k!r}")
    share = params.min_reach_share
    if share is not None and (not _is_number(share) or not 0 < share <= 1):
        bad(["min_reach_share"], f"must be in (0, 1], got {share!r}")
    if share is not None and params.capacity:
        bad(["min_reach_share"], "minimum-facilities mode does not support capacity")
    for key, rule in (params.affinity or {}).items():
        if not isinstance(rule, dict) or not rule:
            bad(["affinity", key], "must map indicator names to multipliers")
            continue
        for indicator, mult in rule.items():
            if not _is_number(mult) or not mult > 0:
                bad(["affinity", key, indicator], f"multiplier must be > 0, got {mult!r}")
    if params.van_stops is not None and (not _is_int(params.van_stops) or params.van_stops < 1):
        bad(["van_stops"], "must be a whole number ≥ 1")
    if params.exact not in (True, False, "auto"):
        bad(["exact"], "must be true, false or 'auto'")
    if dataset is not None:
        _check_against(params, dataset, bad)
    if errors:
        raise ParameterError(errors)


def _check_equity(params: PlanParams, bad: Any) -> None:
    equity = params.equity or {}
    if not isinstance(equity, dict):
        bad(["equity"], "must be an object")
        return
    for key in equity:
        if key not in ("imd_quintile", "ethnic_group"):
            bad(["equity", key], "unknown equity dimension; use imd_quintile or ethnic_group")
    for q, w in (equity.get("imd_quintile") or {}).items():
        if str(q) not in {"1", "2", "3", "4", "5"}:
            bad(["equity", "imd_quintile", str(q)], "quintiles are 1 (most deprived) to 5")
        if not _is_number(w) or w < 0:
            bad(["equity", "imd_quintile", str(q)], f"weight must be ≥ 0, got {w!r}")
    for g, w in (equity.get("ethnic_group") or {}).items():
        if not _is_number(w) or w < 0:
            bad(["equity", "ethnic_group", str(g)], f"weight must be ≥ 0, got {w!r}")


def _check_against(params: PlanParams, dataset: Dataset, bad: Any) -> None:
    sites = dataset.sites
    ids = sites["site_id"].astype(str)
    status = dict(zip(ids, sites["status"].astype(str), strict=True))
    types = dict(zip(ids, sites["site_type"].astype(str), strict=True))
    allowed = set(params.site_types or FIXED_TYPES)
    for name in ("required_sites", "excluded_sites"):
        for site in getattr(params, name):
            if site not in status:
                bad([name, site], "no site with this id in the dataset")
            elif name == "required_sites" and status[site] != "candidate":
                bad([name, site], "only candidate sites can be required (this one is existing)")
            elif (
                name == "required_sites"
                and types[site] != "mobile_van"
                and types[site] not in allowed
            ):
                bad([name, site], f"site type {types[site]!r} is not among site_types")
    required = [s for s in params.required_sites if s in types]
    n_vans_required = sum(types[s] == "mobile_van" for s in required)
    n_fixed_required = len(required) - n_vans_required
    if (
        _is_int(params.n_sites)
        and n_fixed_required > params.n_sites
        and params.min_reach_share is None
    ):
        bad(
            ["required_sites"],
            f"{n_fixed_required} fixed sites required but n_sites is {params.n_sites}",
        )
    if _is_int(params.n_vans) and n_vans_required > params.n_vans:
        bad(["required_sites"], f"{n_vans_required} vans required but n_vans is {params.n_vans}")
    for t, k in (params.per_type or {}).items():
        wanted = sum(types[s] == t for s in required)
        if _is_int(k) and wanted > k:
            bad(["per_type", t], f"{wanted} required sites of this type exceed the cap {k}")
    if params.distance == "network" and dataset.network is None:
        bad(["distance"], "walking distances need a street network in the dataset")
    indicators = (
        set(map(str, dataset.indicators.columns)) if dataset.indicators is not None else set()
    )
    for key, rule in (params.affinity or {}).items():
        for indicator in rule if isinstance(rule, dict) else {}:
            if indicator not in indicators:
                bad(["affinity", key, indicator], "no such indicator in the dataset")
    if params.budget is not None:
        candidate_types = set(sites.loc[sites["status"] == "candidate", "site_type"].astype(str))
        if params.n_vans:
            candidate_types.add("mobile_van")
        own_cost = sites.loc[sites["cost"].notna(), "site_type"].astype(str)
        for t in sorted(candidate_types - set(params.cost or {}) - set(own_cost)):
            if t in allowed or t == "mobile_van":
                bad(["cost", t], "a budget needs a cost for every candidate type")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
