"""make_plan on hand-built datasets with known answers, and parameter validation."""

from __future__ import annotations

import functools
import json
import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo._errors import ParameterError
from geo.dataset import Dataset
from geo.projection import BRITISH_NATIONAL_GRID, WGS84
from models.plan import PlanParams, make_plan

# Four 200 m square areas 5 km apart: every catchment holds exactly one area.
CENTRES = [(450_000.0 + 5_000.0 * k, 300_000.0) for k in range(4)]
CODES = ["E00000001", "E00000002", "E00000003", "E00000004"]
VACCINATED = [500, 600, 700, 750]  # of 1,000 eligible: shortfalls 300, 200, 100, 50 at 80%
IMD_DECILE = [1, 10, 3, 5]  # quintiles 1, 5, 2, 3


# These hand-built cases count existing reach fully (the service's default is 0.5).
_params = functools.partial(PlanParams, existing_factor=1.0)


def _dataset(*, gurdwara_at: int = 1, capacity: dict[str, float] | None = None) -> Dataset:
    squares = [shapely.box(x - 100, y - 100, x + 100, y + 100) for x, y in CENTRES]
    areas = gpd.GeoDataFrame(
        {"area_code": CODES, "area_name": CODES, "parent_code": [None] * 4},
        geometry=squares,
        crs=BRITISH_NATIONAL_GRID,
    ).to_crs(WGS84)
    uptake = pd.DataFrame(
        {
            "area_code": CODES,
            "age_band": "",
            "sex": "",
            "ethnic_group": "",
            "eligible": np.full(4, 1000, dtype=np.int64),
            "vaccinated": np.array(VACCINATED, dtype=np.int64),
        }
    )
    indicators = pd.DataFrame(
        {
            "imd_decile": np.array(IMD_DECILE, dtype=float),
            "eth_asian": [0.2, 0.5, 0.1, 0.6],
            "eth_white": [0.8, 0.5, 0.9, 0.4],
            "rel_sikh": [0.0, 0.0, 0.0, 1.0],
        },
        index=pd.Index(CODES, name="area_code"),
    )
    rows = []
    types = ["pharmacy", "place_of_worship", "community_centre", "school"]
    for k, (x, y) in enumerate(CENTRES):
        gurdwara = k == gurdwara_at
        rows.append(
            {
                "site_id": f"S{k}",
                "site_type": "place_of_worship" if gurdwara else types[k],
                "subtype": "gurdwara" if gurdwara else "",
                "status": "candidate",
                "name": f"site {k}",
                "capacity_per_day": (capacity or {}).get(f"S{k}", np.nan),
                "cost": float(k + 1),
                "community": "sikh" if gurdwara else "",
                "x": x,
                "y": y + 50,
            }
        )
    rows.append(
        {
            "site_id": "E0",
            "site_type": "vaccination_centre",
            "subtype": "",
            "status": "existing",
            "name": "centre",
            "capacity_per_day": np.nan,
            "cost": np.nan,
            "community": "",
            "x": CENTRES[0][0],
            "y": CENTRES[0][1],
        }
    )
    frame = pd.DataFrame(rows)
    sites = gpd.GeoDataFrame(
        frame.drop(columns=["x", "y"]),
        geometry=gpd.points_from_xy(frame["x"], frame["y"]),
        crs=BRITISH_NATIONAL_GRID,
    ).to_crs(WGS84)
    return Dataset("test", areas, uptake, indicators, sites)


def _ids(plan: dict) -> list[str]:
    return [s["site_id"] for s in plan["sites"]]


def test_plan_known_answer_and_shape() -> None:
    plan = make_plan(_dataset(), None, _params(n_sites=2))
    json.dumps(plan, allow_nan=False)
    # Area 0 is already reached by the existing centre; then 200 (q5, ×1) beats
    # 100 people in quintile 2 (×1.25 = 125), which beats 50 (×1).
    assert _ids(plan) == ["S1", "S2"]
    totals = plan["totals"]
    assert totals["reached"] == pytest.approx(300.0)
    assert totals["existing_reached"] == pytest.approx(300.0)
    assert totals["shortfall_total"] == pytest.approx(650.0)
    assert totals["reached_share"] == pytest.approx(300 / 650)
    assert totals["equity_weighted_reached"] == pytest.approx(200 + 125)
    assert totals["reached_by_imd_quintile"] == {
        "1": 0.0,
        "2": 100.0,
        "3": 0.0,
        "4": 0.0,
        "5": 200.0,
    }
    first = plan["sites"][0]
    assert set(first) >= {
        "site_id",
        "site_type",
        "subtype",
        "name",
        "lon",
        "lat",
        "order",
        "marginal_gain",
        "catchment_area_codes",
        "reach",
    }
    assert first["order"] == 1 and first["marginal_gain"] == pytest.approx(200.0)
    assert first["catchment_area_codes"] == ["E00000002"]
    assert first["reach"]["total"] == pytest.approx(200.0)
    assert sum(first["reach"]["by_imd_quintile"].values()) == pytest.approx(200.0)
    assert first["reach"]["by_ethnic_group"] == pytest.approx({"asian": 100.0, "white": 100.0})
    assert plan["gap_pct"] == pytest.approx(0.0, abs=1e-6)
    assert plan["bound"] >= totals["equity_weighted_reached"] - 1e-9
    assert set(plan["solver"]["bounds"]) >= {"submodular", "lagrangian", "lp"}
    assert plan["params"]["n_sites"] == 2


def test_existing_factor_required_excluded_and_per_type() -> None:
    data = _dataset()
    half = make_plan(data, None, _params(n_sites=1, existing_factor=0.5))
    # Half of area 0's 300 counts as reached already: 150 × 1.5 = 225 beats 200.
    assert _ids(half) == ["S0"] and half["totals"]["reached"] == pytest.approx(150.0)
    required = make_plan(data, None, _params(n_sites=2, required_sites=["S3"]))
    assert _ids(required) == ["S3", "S1"]
    excluded = make_plan(data, None, _params(n_sites=2, excluded_sites=["S1"]))
    assert _ids(excluded) == ["S2", "S3"]
    per_type = make_plan(data, None, _params(n_sites=2, per_type={"place_of_worship": 0}))
    assert _ids(per_type) == ["S2", "S3"]
    # Costs 1, 2, 3, 4; S0 adds nothing (already reached), so it is never bought.
    budget = make_plan(data, None, _params(n_sites=4, budget=4.0))
    assert _ids(budget) == ["S1"] and budget["totals"]["reached"] == pytest.approx(200.0)
    budget = make_plan(data, None, _params(n_sites=4, budget=5.0))
    assert _ids(budget) == ["S1", "S2"] and budget["totals"]["reached"] == pytest.approx(300.0)


def test_capacity_and_affinity_never_overcount() -> None:
    capped = make_plan(
        _dataset(capacity={"S1": 10.0}), None, _params(n_sites=1, capacity=True, days=5)
    )
    # S1 can see 50 people in 5 days (value 50); S2 reaches all 100 (value 125).
    assert _ids(capped) == ["S2"] and capped["totals"]["reached"] == pytest.approx(100.0)
    both = make_plan(
        _dataset(capacity={"S1": 10.0}), None, _params(n_sites=2, capacity=True, days=5)
    )
    assert both["totals"]["reached"] == pytest.approx(150.0)
    # A gurdwara in the all-Sikh area 3 valued ×6 wins, but still reaches only its 50.
    data = _dataset(gurdwara_at=3)
    plain = make_plan(data, None, _params(n_sites=1))
    assert _ids(plain) == ["S1"]
    plan = make_plan(data, None, _params(n_sites=1, affinity={"gurdwara": {"rel_sikh": 6.0}}))
    assert _ids(plan) == ["S3"]
    assert plan["totals"]["reached"] == pytest.approx(50.0)


def test_minimum_facilities_mode() -> None:
    # New reach available: 200, 100, 50 of 650 demand. 40% (260) needs two sites.
    plan = make_plan(_dataset(), None, _params(min_reach_share=0.4))
    assert plan["minimum"]["n_sites"] == 2 and plan["minimum"]["proven_minimal"]
    assert plan["totals"]["reached"] >= 0.4 * 650
    with pytest.raises(ParameterError):
        make_plan(_dataset(), None, _params(min_reach_share=0.9))


def test_vans_are_counted_separately() -> None:
    plan = make_plan(_dataset(), None, _params(n_sites=1, n_vans=1, van_stops=4))
    types = [s["site_type"] for s in plan["sites"]]
    assert types.count("mobile_van") == 1 and len(types) == 2
    assert plan["totals"]["reached"] <= plan["totals"]["shortfall_total"]


def test_every_bad_parameter_is_reported() -> None:
    params = _params(
        n_sites=-1,
        n_vans=-2,
        site_types=["castle"],
        radius_m={"pharmacy": 0.0},
        target=1.5,
        demand="everyone",
        existing_factor=2.0,
        days=0,
        distance="fly",  # type: ignore[arg-type]
        decay="cubic",
        required_sites=["S0", "S9"],
        excluded_sites=["S0", "S8"],
        budget=-1.0,
        per_type={"pharmacy": -1},
        min_reach_share=0.0,
        equity={"imd_quintile": {7: 2.0}},
        exact="maybe",  # type: ignore[arg-type]
    )
    with pytest.raises(ParameterError) as error:
        make_plan(_dataset(), None, params)
    locs = {tuple(e["loc"]) for e in error.value.errors}
    expected = {
        ("n_sites",),
        ("n_vans",),
        ("site_types", "castle"),
        ("radius_m", "pharmacy"),
        ("target",),
        ("demand",),
        ("existing_factor",),
        ("days",),
        ("distance",),
        ("decay",),
        ("required_sites", "S0"),
        ("required_sites", "S9"),
        ("excluded_sites", "S8"),
        ("budget",),
        ("per_type", "pharmacy"),
        ("min_reach_share",),
        ("equity", "imd_quintile", "7"),
        ("exact",),
    }
    assert expected <= locs
    with pytest.raises(ParameterError) as error:
        PlanParams.from_dict({"n_sites": 2, "colour": "red"})
    assert error.value.errors == [{"loc": ["colour"], "msg": "unknown parameter"}]
    too_many = _params(n_sites=1, required_sites=["S0", "S2"])
    with pytest.raises(ParameterError, match="n_sites"):
        make_plan(_dataset(), None, too_many)


def test_demo_city_plan_consistency(demo_dataset) -> None:  # type: ignore[no-untyped-def]
    plan = make_plan(demo_dataset, None, _params(n_sites=10, n_vans=2, time_limit_s=10))
    json.dumps(plan, allow_nan=False)
    totals = plan["totals"]
    assert len(plan["sites"]) <= 12
    assert sum(s["site_type"] == "mobile_van" for s in plan["sites"]) <= 2
    assert totals["reached"] <= totals["shortfall_total"] + 1e-6
    assert sum(totals["reached_by_imd_quintile"].values()) == pytest.approx(totals["reached"])
    per_site = sum(s["reach"]["total"] for s in plan["sites"])
    assert per_site == pytest.approx(totals["reached"])
    for site in plan["sites"]:
        assert sum(site["reach"]["by_imd_quintile"].values()) == pytest.approx(
            site["reach"]["total"]
        )
        groups = site["reach"]["by_ethnic_group"]
        assert not groups or sum(groups.values()) == pytest.approx(site["reach"]["total"], rel=1e-6)
    assert 0 <= plan["gap_pct"] < 5 and math.isfinite(plan["bound"])
