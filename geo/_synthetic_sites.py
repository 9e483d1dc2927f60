"""Existing and candidate outreach sites of the synthetic city.

Each site type is placed in output areas drawn with a type-specific weight (pharmacies
follow people and the centre, schools follow children, community centres deprivation,
places of worship their community — squared, so they cluster where it lives), at a
jittered point inside the chosen OA.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from geo._synthetic_areas import Tessellation, hilbert_rank
from geo._synthetic_population import RELIGIONS, Population
from geo.projection import BRITISH_NATIONAL_GRID, metric_to_lonlat

#: Share of the candidate sites per type (places of worship split by community below).
CANDIDATE_MIX = {
    "pharmacy": 0.28,
    "gp_practice": 0.10,
    "place_of_worship": 0.27,
    "community_centre": 0.13,
    "school": 0.17,
    "mobile_van": 0.05,
}
#: Existing (already vaccinating) sites per candidate of the same type.
EXISTING_PER_CANDIDATE = {"pharmacy": 0.5, "gp_practice": 0.6}
CAPACITY_PER_DAY = {
    "pharmacy": 60,
    "gp_practice": 100,
    "place_of_worship": 150,
    "community_centre": 200,
    "school": 250,
    "vaccination_centre": 800,
    "mobile_van": 120,
}
#: Cost (GBP) of running a candidate site for a day; existing sites cost nothing extra.
COST = {
    "pharmacy": 500.0,
    "gp_practice": 700.0,
    "place_of_worship": 900.0,
    "community_centre": 1200.0,
    "school": 1500.0,
    "vaccination_centre": 5000.0,
    "mobile_van": 1800.0,
}
_WORSHIP = (  # subtype, community, religion column, minimum count
    ("mosque", "muslim", "muslim", 2),
    ("temple", "hindu", "hindu", 2),
    ("gurdwara", "sikh", "sikh", 2),
    ("church", "christian", "christian", 2),
    ("synagogue", "jewish", "jewish", 1),
)
_PREFIX = {
    "pharmacy": "PHA",
    "gp_practice": "GPP",
    "place_of_worship": "POW",
    "community_centre": "CCE",
    "school": "SCH",
    "vaccination_centre": "VAC",
    "mobile_van": "VAN",
}
_STREETS = (
    "Station Road, High Street, Church Lane, London Road, Park Road, Mill Lane, Victoria Road, "
    "Queen Street, King Street, New Road, Green Lane, Main Street, Chapel Street, Albert Road, "
    "School Lane, Market Street, Manor Road, Springfield Road, Grange Road, Westfield Avenue"
).split(", ")
_NAMES = {
    "pharmacy": ("{street} Pharmacy", "{district} Pharmacy", "{district} Chemist"),
    "gp_practice": ("{street} Surgery", "{district} Medical Centre", "{district} Health Centre"),
    "community_centre": (
        "{district} Community Centre",
        "{street} Neighbourhood Centre",
        "{district} Library",
    ),
    "school": (
        "{district} Primary School",
        "{district} Academy",
        "{street} Junior School",
        "{district} High School",
    ),
    "mobile_van": (
        "Van stand: {district} Retail Park",
        "Van stand: {district} Market Place",
        "Van stand: {street} car park",
    ),
    "vaccination_centre": (
        "{district} Leisure Centre Vaccination Centre",
        "{district} Hospital Vaccination Centre",
    ),
    "mosque": (
        "Jame Masjid {district}",
        "Masjid Al-Noor",
        "Masjid Bilal",
        "{district} Islamic Centre",
        "Masjid Umar",
    ),
    "temple": (
        "Shree Ram Mandir",
        "Shri Krishna Temple",
        "{district} Hindu Mandir",
        "Jalaram Mandir",
    ),
    "gurdwara": (
        "Gurdwara Guru Nanak Sahib",
        "Gurdwara Sri Guru Singh Sabha",
        "{district} Ramgarhia Gurdwara",
    ),
    "church": (
        "St Mary's Church",
        "St Peter's Church",
        "{district} Methodist Church",
        "{district} Baptist Church",
        "New Testament Church of God",
        "St Joseph's RC Church",
    ),
    "synagogue": ("{district} Hebrew Congregation", "{district} Progressive Synagogue"),
}


def build_sites(
    rng: np.random.Generator, tess: Tessellation, pop: Population, n_candidates: int
) -> pd.DataFrame:
    """The site table (SPEC §1 columns, lon/lat in WGS84), candidates then existing."""
    residents = pop.residents.sum(axis=1).astype(float)
    children = residents - pop.eligible.sum(axis=(1, 2))
    weights = {
        "pharmacy": residents * (1.0 + 2.0 * pop.innerness),
        "gp_practice": residents * (1.0 + pop.innerness),
        "community_centre": residents * np.exp(0.5 * np.clip(pop.deprivation, -3, 3)),
        "school": np.maximum(children, 1.0),
        "mobile_van": residents,
    }
    counts = _split(n_candidates, CANDIDATE_MIX)
    religion = pd.DataFrame(pop.religion, columns=list(RELIGIONS))
    frames = []
    for site_type in ("pharmacy", "gp_practice"):
        n_existing = round(counts[site_type] * EXISTING_PER_CANDIDATE[site_type])
        frames.append(
            _place(rng, tess, site_type, "", "", weights[site_type], counts[site_type], "candidate")
        )
        frames.append(
            _place(rng, tess, site_type, "", "", weights[site_type], n_existing, "existing")
        )
    for (subtype, community, column, _), k in zip(
        _WORSHIP, _worship_counts(religion, counts["place_of_worship"]), strict=True
    ):
        people = religion[column].to_numpy(dtype=float)
        frames.append(
            _place(
                rng, tess, "place_of_worship", subtype, community, people**2 + 1e-9, k, "candidate"
            )
        )
    for site_type in ("community_centre", "school", "mobile_van"):
        frames.append(
            _place(rng, tess, site_type, "", "", weights[site_type], counts[site_type], "candidate")
        )
    frames.append(_vaccination_centres(rng, tess, residents))
    sites = pd.concat(frames, ignore_index=True)
    sites["capacity_per_day"] = sites["site_type"].map(CAPACITY_PER_DAY).astype("int64")
    sites["cost"] = np.where(
        sites["status"] == "existing", 0.0, sites["site_type"].map(COST).astype(float)
    )
    # Ids by type in a fixed order, numbered within type: PHA00001, POW00001 …
    sites["site_id"] = [
        f"{_PREFIX[t]}{i:05d}"
        for t, i in zip(sites["site_type"], sites.groupby("site_type").cumcount() + 1, strict=True)
    ]
    lon, lat = metric_to_lonlat(
        sites.pop("x").to_numpy(), sites.pop("y").to_numpy(), BRITISH_NATIONAL_GRID
    )
    sites["lon"], sites["lat"] = np.round(lon, 6), np.round(lat, 6)
    columns = [
        "site_id",
        "site_type",
        "subtype",
        "status",
        "name",
        "lon",
        "lat",
        "capacity_per_day",
        "cost",
        "community",
    ]
    return sites[columns]


def _split(total: int, mix: dict[str, float]) -> dict[str, int]:
    """Integer counts summing to ``total`` in proportion to ``mix`` (largest remainder)."""
    raw = np.array(list(mix.values())) * total / sum(mix.values())
    counts = np.floor(raw).astype(int)
    counts[np.argsort(-(raw - counts), kind="stable")[: total - counts.sum()]] += 1
    return dict(zip(mix, counts.tolist(), strict=True))


def _worship_counts(religion: pd.DataFrame, total: int) -> list[int]:
    """Places of worship per subtype: in proportion to each faith's population, at least
    the minimum for faiths with a real presence (≥ 150 people) when ``total`` allows,
    summing to ``total``."""
    people = np.array([religion[col].sum() for _, _, col, _ in _WORSHIP], dtype=float)
    minimum = np.array([m if p >= 150 else 0 for (*_, m), p in zip(_WORSHIP, people, strict=True)])
    if minimum.sum() > total:  # too few sites for the minimums: plain proportions
        minimum[:] = 0
    spare = max(total - int(minimum.sum()), 0)
    extra = _split(spare, {str(i): float(p) for i, p in enumerate(people)})
    return [int(minimum[i] + extra[str(i)]) for i in range(len(_WORSHIP))]


def _place(
    rng: np.random.Generator,
    tess: Tessellation,
    site_type: str,
    subtype: str,
    community: str,
    weight: np.ndarray,
    k: int,
    status: str,
) -> pd.DataFrame:
    oa = rng.choice(len(weight), size=k, replace=True, p=weight / weight.sum())
    x, y = _point_in(rng, tess, oa)
    names = _names(rng, subtype or site_type, tess.district[oa])
    return pd.DataFrame(
        {
            "site_type": site_type,
            "subtype": subtype,
            "status": status,
            "name": names,
            "x": x,
            "y": y,
            "community": community,
        }
    )


def _point_in(
    rng: np.random.Generator, tess: Tessellation, oa: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A point near the seed of each OA, jittered but kept inside the OA."""
    seed = tess.seed_xy[oa]
    spread = 0.25 * np.sqrt(shapely.area(tess.cells[oa]))
    x = seed[:, 0] + spread * rng.standard_normal(len(oa))
    y = seed[:, 1] + spread * rng.standard_normal(len(oa))
    inside = shapely.contains_xy(tess.cells[oa], x, y)
    return np.where(inside, x, seed[:, 0]), np.where(inside, y, seed[:, 1])


def _names(rng: np.random.Generator, kind: str, district: np.ndarray) -> list[str]:
    templates = _NAMES[kind]
    picks = rng.integers(len(templates), size=len(district))
    streets = rng.integers(len(_STREETS), size=len(district))
    return [
        templates[t].format(street=_STREETS[s], district=d)
        for t, s, d in zip(picks, streets, district, strict=True)
    ]


def _vaccination_centres(
    rng: np.random.Generator, tess: Tessellation, residents: np.ndarray
) -> pd.DataFrame:
    """3–5 existing mass-vaccination centres in a city (4 per 2,000 OAs at scale), one per
    equal-population stretch of the Hilbert-ordered OAs, at the OA nearest its middle."""
    n = len(residents)
    k = max(3, round(4 * n / 2000))
    order = np.argsort(hilbert_rank(tess.centroid_xy))
    cum = np.cumsum(residents[order])
    chunk = np.minimum((cum / cum[-1] * k).astype(int), k - 1)
    picked = []
    for c in range(k):
        members = order[chunk == c]
        if len(members) == 0:
            continue
        w = residents[members]
        centre = (tess.centroid_xy[members] * w[:, None]).sum(axis=0) / w.sum()
        picked.append(members[int(np.argmin(np.hypot(*(tess.centroid_xy[members] - centre).T)))])
    oa = np.array(picked)
    x, y = _point_in(rng, tess, oa)
    names = _names(rng, "vaccination_centre", tess.district[oa])
    return pd.DataFrame(
        {
            "site_type": "vaccination_centre",
            "subtype": "",
            "status": "existing",
            "name": names,
            "x": x,
            "y": y,
            "community": "",
        }
    )
