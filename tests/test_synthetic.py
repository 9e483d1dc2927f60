"""The synthetic demo city: determinism, geometry, hierarchy, planted truth, realism of the
indicators and sites, file formats, and that the ordinary import path loads it."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from geo.dataset import SITE_TYPES, WORSHIP_SUBTYPES
from geo.projection import BRITISH_NATIONAL_GRID, lonlat_to_metric
from geo.synthetic import SyntheticCity, generate_city, write_city

N_AREAS = 400
SEED = 42
CSV_PARTS = ("uptake", "indicators", "sites", "truth")


@pytest.fixture(scope="module")
def city() -> SyntheticCity:
    return generate_city(n_areas=N_AREAS, seed=SEED)


@pytest.fixture(scope="module")
def written(city: SyntheticCity, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_city(city, tmp_path_factory.mktemp("city"))


@pytest.fixture(scope="module")
def queen(city: SyntheticCity) -> sparse.csr_matrix:
    """Queen contiguity of the OAs (sharing at least one point), from the geometries."""
    cells = city.areas.geometry.to_numpy()
    left, right = shapely.STRtree(cells).query(cells, predicate="intersects")
    keep = left != right
    n = len(cells)
    return sparse.csr_matrix((np.ones(int(keep.sum())), (left[keep], right[keep])), shape=(n, n))


def _n_components(adjacency: sparse.csr_matrix, members: np.ndarray) -> int:
    sub = adjacency[members][:, members]
    return int(connected_components(sub, directed=False)[0])


def _oa_indicators(city: SyntheticCity) -> pd.DataFrame:
    """Indicators inherited by each OA, in area order."""
    return city.areas[["area_code", "parent_code"]].merge(
        city.indicators,
        left_on="parent_code",
        right_on="area_code",
        suffixes=("", "_lsoa"),
        validate="many_to_one",
    )


# --- determinism -------------------------------------------------------------------------


def test_same_seed_gives_equal_frames_and_identical_files(
    city: SyntheticCity, written: dict[str, Path], tmp_path: Path
) -> None:
    again = generate_city(n_areas=N_AREAS, seed=SEED)
    assert_geodataframe_equal(city.areas, again.areas)
    for part in (*CSV_PARTS, "network_nodes", "network_ways"):
        pd.testing.assert_frame_equal(getattr(city, part), getattr(again, part))
    paths = write_city(again, tmp_path)
    for part in (*CSV_PARTS, "network", "areas"):
        assert paths[part].read_bytes() == written[part].read_bytes(), part


def test_different_seed_gives_a_different_city(city: SyntheticCity) -> None:
    other = generate_city(n_areas=N_AREAS, seed=SEED + 1, network=False)
    assert not city.areas.geometry.geom_equals(other.areas.geometry).all()
    assert not city.uptake["vaccinated"].equals(other.uptake["vaccinated"])
    assert not city.sites[["lon", "lat"]].equals(other.sites[["lon", "lat"]])


def test_parts_draw_from_independent_streams(city: SyntheticCity) -> None:
    """Changing the number of sites or dropping the network leaves areas and uptake alone."""
    other = generate_city(n_areas=N_AREAS, seed=SEED, n_sites=25, network=False)
    assert_geodataframe_equal(city.areas, other.areas)
    pd.testing.assert_frame_equal(city.uptake, other.uptake)
    pd.testing.assert_frame_equal(city.truth, other.truth)
    assert (other.sites["status"] == "candidate").sum() == 25
    assert other.network_nodes is None and other.network_ways is None


# --- areas -------------------------------------------------------------------------------


def test_areas_tile_the_outline(city: SyntheticCity) -> None:
    areas = city.areas
    assert areas.crs.to_epsg() == 27700
    assert list(areas.columns) == ["area_code", "area_name", "parent_code", "msoa_code", "geometry"]
    assert len(areas) == N_AREAS
    geoms = areas.geometry.to_numpy()
    assert shapely.is_valid(geoms).all()
    assert not shapely.is_empty(geoms).any()
    assert (shapely.get_type_id(geoms) == shapely.GeometryType.POLYGON).all()
    union = shapely.union_all(geoms)
    total = shapely.area(geoms).sum()
    assert total == pytest.approx(union.area, rel=1e-9)  # no overlaps
    assert city.outline is not None
    assert union.area == pytest.approx(city.outline.area, rel=1e-9)  # no gaps
    assert union.geom_type == "Polygon"
    # No slivers: every OA reasonably large and compact (a circle scores 1, a square 0.79).
    area = shapely.area(geoms)
    compactness = 4 * np.pi * area / shapely.length(geoms) ** 2
    assert area.min() > 2_000.0  # m²
    assert compactness.min() > 0.3
    # Realistic OA sizes: dense centre ~0.01 km², fringe up to ~1 km².
    assert 0.003e6 < np.quantile(area, 0.01) and np.quantile(area, 0.99) < 1.5e6


def test_codes_names_and_hierarchy(city: SyntheticCity, queen: sparse.csr_matrix) -> None:
    areas = city.areas
    assert areas["area_code"].is_unique
    assert areas["area_code"].str.fullmatch(r"E009\d{5}").all()
    assert areas["parent_code"].str.fullmatch(r"E019\d{5}").all()
    assert areas["msoa_code"].str.fullmatch(r"E029\d{5}").all()
    assert areas["area_name"].is_unique
    assert (
        areas["area_name"]
        .map(lambda s: re.fullmatch(r"[A-Z][A-Za-z ]+ \d{3}[A-Z]+-\d+", s) is not None)
        .all()
    )

    oas_per_lsoa = areas.groupby("parent_code").size()
    assert oas_per_lsoa.between(3, 8).all()
    assert 4.5 <= oas_per_lsoa.mean() <= 5.5
    lsoa_per_msoa = areas.groupby("msoa_code")["parent_code"].nunique()
    assert lsoa_per_msoa.between(3, 8).all()
    assert areas.groupby("parent_code")["msoa_code"].nunique().eq(1).all()  # LSOAs nest in MSOAs
    # The OA name starts with its LSOA's name, shared by all its OAs.
    assert (
        areas.assign(lsoa_name=areas["area_name"].str.rsplit("-", n=1).str[0])
        .groupby("parent_code")["lsoa_name"]
        .nunique()
        .eq(1)
        .all()
    )
    for parent in ("parent_code", "msoa_code"):
        for members in areas.groupby(parent).indices.values():
            assert _n_components(queen, np.asarray(members)) == 1, f"{parent} not contiguous"
    assert sorted(city.indicators["area_code"]) == sorted(areas["parent_code"].unique())


# --- planted truth -----------------------------------------------------------------------


def test_planted_pockets_are_lower_than_expected_and_contiguous(
    city: SyntheticCity, queen: sparse.csr_matrix
) -> None:
    truth = city.truth
    assert list(truth.columns) == [
        "area_code",
        "true_uptake",
        "expected_uptake_true",
        "planted",
        "pocket_id",
        "pocket_depth",
    ]
    assert truth["area_code"].tolist() == city.areas["area_code"].tolist()
    planted = truth[truth["planted"] == 1]
    assert (planted["true_uptake"] < planted["expected_uptake_true"]).all()
    assert planted["pocket_depth"].between(-2.0, -0.8).all()
    plain = truth[truth["planted"] == 0]
    assert (plain["true_uptake"] == plain["expected_uptake_true"]).all()
    assert plain["pocket_id"].isna().all() and (plain["pocket_depth"] == 0.0).all()

    sizes = planted.groupby("pocket_id").size()
    assert len(sizes) == 6
    assert sizes.min() == 3 and sizes.max() == 25
    assert planted.groupby("pocket_id")["pocket_depth"].nunique().eq(1).all()
    pocket = truth["pocket_id"].fillna(0).to_numpy(dtype=int)
    for k in sizes.index:
        assert _n_components(queen, np.flatnonzero(pocket == k)) == 1
    # Pockets never touch each other, so each is a separate cluster to find.
    rows, cols = queen.nonzero()
    touching = (pocket[rows] > 0) & (pocket[cols] > 0) & (pocket[rows] != pocket[cols])
    assert not touching.any()
    # Some pockets sit in deprived areas, some not.
    decile = _oa_indicators(city).set_index("area_code")["imd_decile"]
    median_decile = planted.groupby("pocket_id")["area_code"].agg(
        lambda codes: decile[codes].median()
    )
    assert median_decile.min() <= 3 and median_decile.max() >= 5


def test_observed_uptake_follows_the_truth(city: SyntheticCity) -> None:
    totals = city.uptake.groupby("area_code", sort=False)[["eligible", "vaccinated"]].sum()
    observed = totals["vaccinated"] / totals["eligible"]
    truth = city.truth.set_index("area_code")
    assert np.corrcoef(observed, truth.loc[observed.index, "true_uptake"])[0, 1] > 0.8
    by_age = city.uptake.groupby("age_band")[["eligible", "vaccinated"]].sum()
    rate = by_age["vaccinated"] / by_age["eligible"]
    assert rate.loc["18-29"] < rate.loc["30-49"] < rate.loc["50-64"] < rate.loc["65-79"]
    by_group = city.uptake.groupby("ethnic_group")[["eligible", "vaccinated"]].sum()
    rate = by_group["vaccinated"] / by_group["eligible"]
    assert rate.loc["black"] < rate.loc["asian"] < rate.loc["white"]


# --- indicators --------------------------------------------------------------------------


def test_deprivation_is_spatially_autocorrelated(city: SyntheticCity) -> None:
    esda = pytest.importorskip("esda")
    weights = pytest.importorskip("libpysal.weights")
    w = weights.Queen.from_dataframe(city.areas, use_index=False)
    y = _oa_indicators(city)["imd_score"].to_numpy(dtype=float)
    np.random.seed(0)  # noqa: NPY002 -- esda draws its permutations from numpy's global RNG
    moran = esda.Moran(y, w, permutations=999)
    assert moran.I > 0.3
    assert moran.p_sim < 0.01


def test_indicator_values_and_relations(city: SyntheticCity) -> None:
    ind = city.indicators
    eth = [f"eth_{g}" for g in ("asian", "black", "mixed", "white", "other")]
    rel = [f"rel_{r}" for r in ("muslim", "hindu", "sikh", "christian", "jewish", "none")]
    assert list(ind.columns) == ["area_code", "imd_score", "imd_decile", *eth, *rel]
    assert ind["imd_score"].between(0, 92).all()
    assert ind["imd_decile"].between(1, 10).all() and ind["imd_decile"].nunique() >= 8
    # decile 1 = most deprived
    assert ind.groupby("imd_decile")["imd_score"].mean().is_monotonic_decreasing
    for col in eth + rel:
        assert pd.api.types.is_integer_dtype(ind[col]) and (ind[col] >= 0).all()
    population = ind[eth].sum(axis=1)
    assert (ind[rel].sum(axis=1) <= population).all()
    share = ind[eth + rel].div(population, axis=0)
    # Inner-city deprived areas have larger Asian and Black populations.
    assert np.corrcoef(share["eth_asian"] + share["eth_black"], ind["imd_score"])[0, 1] > 0.3
    # Muslim, Hindu and Sikh residents are mostly Asian ...
    asian_faiths = share[["rel_muslim", "rel_hindu", "rel_sikh"]].sum(axis=1)
    assert np.corrcoef(asian_faiths, share["eth_asian"])[0, 1] > 0.8
    peaks = {faith: share[faith].idxmax() for faith in ("rel_muslim", "rel_hindu", "rel_sikh")}
    for peak in peaks.values():
        assert share.loc[peak, "eth_asian"] > share["eth_asian"].median()
    # ... and live in distinct neighbourhoods; a few are Asian-majority.
    assert len(set(peaks.values())) == 3
    assert (share["eth_asian"] > 0.5).any()


# --- sites -------------------------------------------------------------------------------


def _sites_lsoa(city: SyntheticCity) -> pd.DataFrame:
    x, y = lonlat_to_metric(
        city.sites["lon"].to_numpy(), city.sites["lat"].to_numpy(), BRITISH_NATIONAL_GRID
    )
    points = gpd.GeoDataFrame(
        city.sites, geometry=gpd.points_from_xy(x, y), crs=BRITISH_NATIONAL_GRID
    )
    return gpd.sjoin(
        points, city.areas[["parent_code", "geometry"]], predicate="within", how="left"
    )


def test_sites_table(city: SyntheticCity) -> None:
    sites = city.sites
    assert list(sites.columns) == [
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
    assert sites["site_id"].is_unique
    assert set(sites["site_type"]) == set(SITE_TYPES)
    assert set(sites["status"]) == {"existing", "candidate"}
    assert (sites["status"] == "candidate").sum() == round(0.175 * N_AREAS)
    worship = sites[sites["site_type"] == "place_of_worship"]
    assert set(worship["subtype"]) == set(WORSHIP_SUBTYPES)
    faith = {
        "mosque": "muslim",
        "temple": "hindu",
        "gurdwara": "sikh",
        "church": "christian",
        "synagogue": "jewish",
    }
    assert (worship["community"] == worship["subtype"].map(faith)).all()
    assert (
        (sites.loc[sites["site_type"] != "place_of_worship", ["subtype", "community"]] == "")
        .all()
        .all()
    )
    centres = sites[sites["site_type"] == "vaccination_centre"]
    assert 3 <= len(centres) <= 5 and (centres["status"] == "existing").all()
    assert {"pharmacy", "gp_practice"} <= set(sites.loc[sites["status"] == "existing", "site_type"])
    assert (sites["capacity_per_day"] > 0).all() and (sites["cost"] >= 0).all()
    joined = _sites_lsoa(city)
    assert joined["parent_code"].notna().all()  # every site inside the city


@pytest.mark.parametrize(
    ("subtype", "religion"),
    [("mosque", "rel_muslim"), ("gurdwara", "rel_sikh"), ("temple", "rel_hindu")],
)
def test_places_of_worship_sit_in_their_community(
    city: SyntheticCity, subtype: str, religion: str
) -> None:
    ind = city.indicators.set_index("area_code")
    population = ind.filter(like="eth_").sum(axis=1)
    city_share = ind[religion].sum() / population.sum()
    joined = _sites_lsoa(city)
    at_sites = joined.loc[joined["subtype"] == subtype, "parent_code"]
    assert len(at_sites) >= 2
    share_at_sites = (ind.loc[at_sites, religion] / population.loc[at_sites]).mean()
    assert share_at_sites > 1.5 * city_share


# --- uptake ------------------------------------------------------------------------------


def test_uptake_rows(city: SyntheticCity) -> None:
    uptake = city.uptake
    assert list(uptake.columns) == [
        "area_code",
        "age_band",
        "ethnic_group",
        "eligible",
        "vaccinated",
    ]
    for col in ("eligible", "vaccinated"):
        assert pd.api.types.is_integer_dtype(uptake[col])
    assert (uptake["vaccinated"] >= 0).all() and (uptake["vaccinated"] <= uptake["eligible"]).all()
    assert set(uptake["age_band"]) == {"18-29", "30-49", "50-64", "65-79", "80+"}
    assert set(uptake["ethnic_group"]) == {"asian", "black", "mixed", "white", "other"}
    assert not uptake.duplicated(["area_code", "age_band", "ethnic_group"]).any()
    per_area = uptake.groupby("area_code").size()
    assert set(per_area.index) == set(city.areas["area_code"]) and (per_area == 25).all()
    eligible = uptake.groupby("area_code")["eligible"].sum()
    assert eligible.between(100, 500).all() and 200 <= eligible.median() <= 300


# --- files -------------------------------------------------------------------------------


def test_written_files(city: SyntheticCity, written: dict[str, Path]) -> None:
    assert set(written) == {"areas", "uptake", "indicators", "sites", "truth", "network"}
    layer = gpd.read_file(written["areas"], layer="areas", engine="pyogrio")
    assert layer.crs.to_epsg() == 27700 and len(layer) == N_AREAS
    for part in CSV_PARTS:
        text = written[part].read_bytes().decode("utf-8")
        header = text.split("\n", 1)[0]
        assert header == ",".join(getattr(city, part).columns)  # header row, no index column
        assert "\r" not in text
    back = pd.read_csv(written["uptake"])
    pd.testing.assert_frame_equal(back, city.uptake, check_dtype=False)


def test_network_file(city: SyntheticCity, written: dict[str, Path]) -> None:
    root = ET.parse(written["network"]).getroot()
    assert root.tag == "osm" and root.get("version") == "0.6"
    nodes = {
        int(n.attrib["id"]): (float(n.attrib["lon"]), float(n.attrib["lat"]))
        for n in root.iter("node")
    }
    assert len(nodes) > 1000
    lonlat = np.array(list(nodes.values()))
    x, y = lonlat_to_metric(lonlat[:, 0], lonlat[:, 1], BRITISH_NATIONAL_GRID)
    minx, miny, maxx, maxy = city.areas.total_bounds
    assert ((x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy)).all()
    xy = dict(zip(nodes, zip(x, y, strict=True), strict=True))
    highways: set[str] = set()
    segments, on_bridge = [], []
    for way in root.iter("way"):
        refs = [int(nd.attrib["ref"]) for nd in way.iter("nd")]
        tags = {t.attrib["k"]: t.attrib["v"] for t in way.iter("tag")}
        assert len(refs) >= 2 and all(r in nodes for r in refs)
        highways.add(tags["highway"])
        for a, b in itertools.pairwise(refs):
            segments.append(shapely.LineString([xy[a], xy[b]]))
            on_bridge.append(tags.get("bridge") == "yes")
    assert highways == {"residential", "footway", "primary"}
    # The river is a barrier: only the few bridges cross it.
    crossing = shapely.intersects(np.array(segments), city.river)
    assert crossing.any()
    assert (crossing == np.array(on_bridge)).all()
    assert 3 <= int(np.sum(on_bridge)) <= 5


def test_the_import_path_loads_the_city(written: dict[str, Path]) -> None:
    from geo.ingest import read_dataset_dir

    dataset = read_dataset_dir(written["areas"].parent, name="synthetic")
    assert dataset.n_areas == N_AREAS
    assert dataset.metric_crs.to_epsg() == 27700
    assert dataset.warnings == []
    assert set(dataset.groups_present()) == {"age_band", "ethnic_group"}
    assert dataset.network is not None


# --- size --------------------------------------------------------------------------------


def test_a_city_of_20000_areas_generates() -> None:
    big = generate_city(n_areas=20_000, seed=1, network=False)
    assert len(big.areas) == 20_000
    assert len(big.uptake) == 25 * 20_000
    assert (big.sites["status"] == "candidate").sum() == 3_500
    assert big.truth["planted"].sum() > 0
    assert big.areas["parent_code"].nunique() == len(big.indicators)
