"""A synthetic English city with known truth: the demo dataset and a test bed.

:func:`generate_city` builds, deterministically from ``seed``, a city in British National
Grid (EPSG:27700) around (458000, 304000) in the East Midlands; :func:`write_city`
writes it in exactly the input formats of SPEC §1 plus ``truth.csv``.

Geography
    About ``n_areas`` output-area-like (OA) polygons: a Voronoi tessellation of points
    drawn from a population density with a dense centre (OAs of ~0.01 km²), satellite
    towns (one per ~2,500 OAs) and a sparse fringe (~0.5–1 km²), clipped to an irregular
    outline whose radius is 8 km × sqrt(n_areas / 2000). OAs (``E009…`` codes) nest in
    contiguous LSOA-like parents of ~5 OAs (``E019…``), which nest in MSOA-like parents of
    ~5 LSOAs (``E029…``); names follow ONS style (``Northfield 012A``, OAs ``…012A-3``).

Residents
    ~320 residents per OA (N(320, 45), clipped to 200–560). The ethnic mix is a softmax of
    community logits against White, each the sum of a base level, an inner-city term, a
    deprivation term, smooth noise and neighbourhood bumps: Pakistani/Bangladeshi-heritage
    (mostly Muslim) communities in deprived inner areas, Indian-heritage Hindu and Sikh
    communities in distinct, moderately deprived neighbourhoods (a few Asian-majority),
    Black communities in deprived inner areas, and a Jewish community in an affluent
    suburb. Religion follows community (Census-2021-like shares). Adults (18+) are
    72–88% of residents (fewer in deprived inner areas and in younger communities); the
    adult age structure is younger inner-city and in minority communities, older in the
    suburbs.

Deprivation
    A latent surface (inner city + smooth noise on 1.2 km and 0.4 km scales + deprived
    estates + affluent suburbs), averaged per LSOA and rank-mapped to an IMD-like score
    with a Gamma(2, 13) distribution (0–92, mean ≈ 26). Deciles use fixed national-like
    cut-offs ``imd_score ≥ 34.0 → 1, ≥ 27.0 → 2, ≥ 22.0 → 3, ≥ 18.0 → 4, ≥ 14.5 → 5,
    ≥ 11.5 → 6, ≥ 9.0 → 7, ≥ 6.8 → 8, ≥ 4.8 → 9, else 10`` (1 = most deprived), so the
    city, like most English cities, has more decile-1 areas than decile-10 ones.

Uptake model (true probability of vaccination of an eligible adult)
    ``logit(p) = b0 + b_age[band] + b_eth[community] + b_imd · z_imd + u_spatial + u_area
    + pocket_depth``, with

    * ``b0 = 2.1`` (White, 50–64, average deprivation: p ≈ 0.89);
    * ``b_age``: 18–29 −1.5, 30–49 −0.8, 50–64 0, 65–79 +1.0, 80+ +1.1;
    * ``b_eth``: White 0 (also the Jewish community), Asian of Indian heritage (Hindu)
      −0.2, Asian Sikh −0.35, Asian of Pakistani/Bangladeshi heritage (Muslim) −1.0,
      Black −1.6, Mixed −0.7, Other −0.8 — the reported ``asian`` group therefore varies
      by neighbourhood with its mix of communities;
    * ``b_imd = −0.3`` per standard deviation of the LSOA ``imd_score`` (``z_imd`` uses
      the city's LSOA mean and SD, stored in ``SyntheticCity.params``);
    * ``u_spatial``: smooth noise, SD 0.15, correlation length 1.5 km; ``u_area``: OA
      noise, SD 0.1;
    * ``pocket_depth``: 0 outside planted pockets. ``n_pockets`` contiguous pockets of
      3 to 25 OAs (geometric steps), depths −0.8 to −2.0 (shuffled), alternately seeded in
      deprived (IMD decile 1–3) and less deprived (decile ≥ 5) areas, two OAs apart.

    ``vaccinated ~ Binomial(eligible, p)`` per OA × age band × community, summed to the
    five reported ethnic groups. ``truth.csv`` gives, per OA, the eligible-weighted true p
    after planting (``true_uptake``) and before (``expected_uptake_true``).

Sites
    ``n_sites`` candidates (default 0.175 per OA: ~350 for 2,000 OAs): pharmacies 28%
    (more in the centre), GP practices 10%, places of worship 27% (mosque, temple,
    gurdwara, church, synagogue in proportion to each faith, placed with weight
    (faith members in the OA)² so they sit inside their community), community centres 13%
    (weighted to deprivation), schools 17% (to children), mobile-van stands 5%; plus
    existing sites: half as many pharmacies and 0.6 × as many GP practices as candidates,
    and 3–5 vaccination centres (4 per 2,000 OAs at larger sizes). Existing sites cost 0.

Street network
    A jittered, rotated grid of ~120 m blocks with dropped edges, diagonal footways,
    primary roads every tenth line, and a river crossed only by a few bridges (one per
    ~4 km of river, at least 3). Skipped when ``network=False``.

Randomness comes from independent streams per part (``SeedSequence(seed).spawn``), so,
for example, changing ``n_sites`` or ``network`` leaves areas and uptake unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from geo._synthetic_areas import build_tessellation
from geo._synthetic_network import build_network, write_osm
from geo._synthetic_population import (
    AGE_BANDS,
    B0,
    B_AGE,
    B_ETH,
    B_IMD,
    ETHNIC_GROUPS,
    RELIGIONS,
    REPORTED_AS,
    SUBGROUPS,
    Population,
    build_population,
    plant_pockets,
    uptake_cells,
)
from geo._synthetic_sites import build_sites
from geo.dataset import Dataset, empty_sites
from geo.projection import BRITISH_NATIONAL_GRID

#: Centre of the default city (EPSG:27700 metres), in the East Midlands.
DEFAULT_CENTRE = (458000.0, 304000.0)
#: Candidate sites per OA when ``n_sites`` is not given.
CANDIDATES_PER_AREA = 0.175
_GPKG_DATE = "2024-01-01T00:00:00.000Z"
_STREAMS = ("areas", "population", "pockets", "uptake", "sites", "network")


@dataclass
class SyntheticCity:
    """A generated city; see the module docstring for how each part is made.

    ``outline`` (the city boundary), ``river`` (the barrier the street network crosses
    only at bridges; EPSG:27700) and ``params`` (model coefficients, pockets, sizes) are
    extra, for tests and documentation.
    """

    areas: gpd.GeoDataFrame
    indicators: pd.DataFrame
    uptake: pd.DataFrame
    sites: pd.DataFrame
    truth: pd.DataFrame
    network_nodes: pd.DataFrame | None
    network_ways: pd.DataFrame | None
    seed: int
    outline: shapely.Polygon | None = None
    river: shapely.LineString | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def to_dataset(self, name: str = "demo") -> Dataset:
        """The canonical :class:`~geo.dataset.Dataset` of the city without writing and
        reading files (what the import path gives, minus sites and network): WGS84
        areas, blank ``sex``, LSOA indicators inherited by their OAs with ethnicity and
        religion counts as shares of residents. For benchmarks and model tests; the
        import path itself is tested on the written files."""
        areas = self.areas.to_crs(4326)[["area_code", "area_name", "parent_code", "geometry"]]
        uptake = self.uptake.assign(sex="")[
            ["area_code", "age_band", "sex", "ethnic_group", "eligible", "vaccinated"]
        ]
        lsoa = self.indicators.set_index("area_code").astype(float)
        counts = [c for c in lsoa.columns if c.startswith(("eth_", "rel_"))]
        residents = lsoa[[c for c in counts if c.startswith("eth_")]].sum(axis=1)
        lsoa[counts] = lsoa[counts].div(residents, axis=0)
        indicators = lsoa.reindex(areas["parent_code"].to_numpy())
        indicators.index = pd.Index(areas["area_code"].to_numpy(), name="area_code")
        return Dataset(
            name=name, areas=areas, uptake=uptake, indicators=indicators, sites=empty_sites()
        )


def generate_city(
    *,
    n_areas: int = 2000,
    n_pockets: int = 6,
    n_sites: int | None = None,
    network: bool = True,
    seed: int = 42,
) -> SyntheticCity:
    """Generate a synthetic city.

    Parameters
    ----------
    n_areas
        Number of output areas (OAs). 2,000 is a large city; 180,000 is England-sized.
    n_pockets
        Number of planted low-uptake pockets (contiguous groups of 3–25 OAs).
    n_sites
        Number of candidate sites; by default 0.175 per OA. Existing sites come on top.
    network
        Whether to build the street network (skip it for very large runs).
    seed
        Everything is a deterministic function of the arguments: the same arguments give
        equal frames and byte-identical files.
    """
    if n_areas < 50:
        raise ValueError("n_areas must be at least 50")
    streams = dict(zip(_STREAMS, np.random.SeedSequence(seed).spawn(len(_STREAMS)), strict=True))
    rng = {name: np.random.default_rng(s) for name, s in streams.items()}
    tess = build_tessellation(rng["areas"], n_areas=n_areas, centre=DEFAULT_CENTRE)
    pop = build_population(rng["population"], tess)
    pocket_id, pocket_depth = plant_pockets(rng["pockets"], tess, pop.imd_decile, n_pockets)
    eligible, vaccinated, before, after = uptake_cells(rng["uptake"], pop, pocket_depth)

    areas = gpd.GeoDataFrame(
        {
            "area_code": tess.area_code,
            "area_name": tess.area_name,
            "parent_code": tess.lsoa_code,
            "msoa_code": tess.msoa_code,
        },
        geometry=tess.cells,
        crs=BRITISH_NATIONAL_GRID,
    )
    n_candidates = (
        max(20, round(CANDIDATES_PER_AREA * n_areas)) if n_sites is None else int(n_sites)
    )
    sites = build_sites(rng["sites"], tess, pop, n_candidates)
    nodes = ways = river = None
    if network:
        street = build_network(rng["network"], tess.outline, DEFAULT_CENTRE, tess.radius)
        nodes, ways, river = street.nodes, street.ways, street.river

    params = {
        "n_areas": n_areas,
        "centre": DEFAULT_CENTRE,
        "radius_m": tess.radius,
        "b0": B0,
        "b_age": dict(zip(AGE_BANDS, B_AGE.tolist(), strict=True)),
        "b_eth": dict(B_ETH),
        "b_imd": B_IMD,
        "imd_mean": pop.imd_mean,
        "imd_sd": pop.imd_sd,
        "pockets": _pocket_summary(tess.area_code, pocket_id, pocket_depth, pop.imd_decile),
    }
    return SyntheticCity(
        areas=areas,
        indicators=_indicators(tess.lsoa_code, pop),
        uptake=_uptake_frame(tess.area_code, eligible, vaccinated),
        sites=sites,
        truth=_truth(tess.area_code, before, after, pocket_id, pocket_depth),
        network_nodes=nodes,
        network_ways=ways,
        seed=seed,
        outline=tess.outline,
        river=river,
        params=params,
    )


def write_city(city: SyntheticCity, directory: str | Path) -> dict[str, Path]:
    """Write the city's input files (SPEC §1 formats) and ``truth.csv`` to ``directory``.

    Returns ``{part: path}`` for ``areas`` (GeoPackage, layer ``areas``, EPSG:27700),
    ``uptake``, ``indicators``, ``sites``, ``truth`` (CSV, UTF-8, header, no index) and
    ``network`` (OSM XML) when the city has one.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "areas": out / "areas.gpkg",
        "uptake": out / "uptake.csv",
        "indicators": out / "indicators.csv",
        "sites": out / "sites.csv",
        "truth": out / "truth.csv",
    }
    paths["areas"].unlink(missing_ok=True)
    _write_gpkg_reproducibly(city.areas, paths["areas"])
    for part in ("uptake", "indicators", "sites", "truth"):
        frame: pd.DataFrame = getattr(city, part)
        frame.to_csv(paths[part], index=False, encoding="utf-8", lineterminator="\n")
    if city.network_nodes is not None and city.network_ways is not None:
        paths["network"] = out / "network.osm"
        write_osm(paths["network"], city.network_nodes, city.network_ways)
    return paths


def _write_gpkg_reproducibly(areas: gpd.GeoDataFrame, path: Path) -> None:
    """Write layer ``areas``; GDAL's ``OGR_CURRENT_DATE`` pins the GeoPackage's
    ``last_change`` timestamp, so the same city gives a byte-identical file."""
    previous = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": _GPKG_DATE})
    try:
        areas.to_file(path, layer="areas", driver="GPKG", engine="pyogrio")
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": previous})


def _indicators(lsoa_code: np.ndarray, pop: Population) -> pd.DataFrame:
    """LSOA rows: IMD score and decile, residents by ethnic group and by religion."""
    residents = pd.DataFrame(pop.residents, columns=list(SUBGROUPS))
    frame = pd.DataFrame(
        {"area_code": lsoa_code, "imd_score": pop.imd_score, "imd_decile": pop.imd_decile}
    )
    for group in ETHNIC_GROUPS:
        members = [s for s, r in zip(SUBGROUPS, REPORTED_AS, strict=True) if r == group]
        frame[f"eth_{group}"] = residents[members].sum(axis=1).to_numpy()
    for j, religion in enumerate(RELIGIONS[:-1]):
        frame[f"rel_{religion}"] = pop.religion[:, j]
    counts = [c for c in frame.columns if c.startswith(("eth_", "rel_"))]
    table = frame.groupby("area_code", sort=True).agg(
        {"imd_score": "first", "imd_decile": "first", **{c: "sum" for c in counts}}
    )
    table["imd_decile"] = table["imd_decile"].astype("int64")
    return table.reset_index()


def _uptake_frame(
    area_code: np.ndarray, eligible: np.ndarray, vaccinated: np.ndarray
) -> pd.DataFrame:
    """Long format, one row per OA × age band × ethnic group (zero cells included)."""
    n, n_groups, n_bands = eligible.shape
    return pd.DataFrame(
        {
            "area_code": np.repeat(area_code, n_bands * n_groups),
            "age_band": np.tile(np.repeat(np.array(AGE_BANDS), n_groups), n),
            "ethnic_group": np.tile(np.array(ETHNIC_GROUPS), n * n_bands),
            # (area, group, band) -> (area, band, group) to match the row order above
            "eligible": eligible.transpose(0, 2, 1).reshape(-1),
            "vaccinated": vaccinated.transpose(0, 2, 1).reshape(-1),
        }
    )


def _truth(
    area_code: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    pocket_id: np.ndarray,
    pocket_depth: np.ndarray,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "area_code": area_code,
            "true_uptake": np.round(after, 6),
            "expected_uptake_true": np.round(before, 6),
            "planted": (pocket_id > 0).astype("int64"),
            "pocket_id": pd.Series(pocket_id, dtype="Int64").where(pocket_id > 0),
            "pocket_depth": np.round(pocket_depth, 3) + 0.0,  # + 0.0 turns -0.0 into 0.0
        }
    )


def _pocket_summary(
    area_code: np.ndarray, pocket_id: np.ndarray, pocket_depth: np.ndarray, imd_decile: np.ndarray
) -> list[dict[str, Any]]:
    summary = []
    for k in sorted(set(pocket_id[pocket_id > 0].tolist())):
        members = pocket_id == k
        summary.append(
            {
                "pocket_id": k,
                "n_areas": int(members.sum()),
                "depth": float(pocket_depth[members][0]),
                "median_imd_decile": float(np.median(imd_decile[members])),
                "area_codes": area_code[members].tolist(),
            }
        )
    return summary
