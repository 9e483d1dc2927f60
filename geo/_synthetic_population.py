"""Residents, deprivation, ethnicity, religion, age structure and vaccine uptake of the
synthetic city's output areas. The model and its coefficients are documented in
:mod:`geo.synthetic`; the constants below are the single source of those numbers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse, stats

from geo._synthetic_areas import Tessellation
from geo._synthetic_fields import Raster, rank_to_unit, sigmoid, softmax

AGE_BANDS = ("18-29", "30-49", "50-64", "65-79", "80+")
#: Reported ethnic groups (2021 Census high-level groups), in output order.
ETHNIC_GROUPS = ("asian", "black", "mixed", "white", "other")
#: Communities simulated internally; each reports as one of ETHNIC_GROUPS.
SUBGROUPS = (
    "white",
    "white_jewish",
    "asian_muslim",
    "asian_hindu",
    "asian_sikh",
    "black",
    "mixed",
    "other",
)
REPORTED_AS = ("white", "white", "asian", "asian", "asian", "black", "mixed", "other")
#: Religion columns written (the last, "other religion or not stated", is not written).
RELIGIONS = ("muslim", "hindu", "sikh", "christian", "jewish", "none", "other_or_not_stated")

# --- uptake model: logit(p) = B0 + B_AGE + B_ETH + B_IMD * z_imd + u_spatial + u_area + pocket
B0 = 2.1
B_AGE = np.array([-1.5, -0.8, 0.0, 1.0, 1.1])
B_ETH = {
    "white": 0.0,
    "white_jewish": 0.0,
    "asian_muslim": -1.0,  # Pakistani/Bangladeshi heritage
    "asian_hindu": -0.2,  # Indian heritage
    "asian_sikh": -0.35,
    "black": -1.6,
    "mixed": -0.7,
    "other": -0.8,
}
B_IMD = -0.3
SPATIAL_NOISE_SD = 0.15
SPATIAL_NOISE_LENGTH_M = 1500.0
AREA_NOISE_SD = 0.1


def _rows_sum_to_one(rows: list[list[float]]) -> np.ndarray:
    table = np.asarray(rows, dtype=float)
    return np.asarray(table / table.sum(axis=1, keepdims=True))


# --- ethnic mix: logits against "white", per community (see build_population)
_ETH_BASE = {
    "white_jewish": -6.5,
    "asian_muslim": -3.8,
    "asian_hindu": -3.4,
    "asian_sikh": -3.9,
    "black": -4.1,
    "mixed": -3.3,
    "other": -4.0,
}
_ETH_INNER = {
    "white_jewish": 0.0,
    "asian_muslim": 2.0,
    "asian_hindu": 1.0,
    "asian_sikh": 0.8,
    "black": 1.9,
    "mixed": 0.8,
    "other": 1.5,
}
_ETH_DEPRIVATION = {
    "white_jewish": -0.3,
    "asian_muslim": 1.0,
    "asian_hindu": 0.15,
    "asian_sikh": 0.3,
    "black": 0.9,
    "mixed": 0.4,
    "other": 0.4,
}
# Religion of each community (rows follow SUBGROUPS, columns RELIGIONS); Census-2021-like.
_RELIGION_GIVEN_GROUP = _rows_sum_to_one(
    [
        [0.006, 0.001, 0.001, 0.48, 0.003, 0.44, 0.069],
        [0.0, 0.0, 0.0, 0.02, 0.85, 0.09, 0.04],
        [0.96, 0.0, 0.0, 0.01, 0.0, 0.02, 0.01],
        [0.01, 0.88, 0.01, 0.03, 0.0, 0.04, 0.03],
        [0.0, 0.04, 0.86, 0.02, 0.0, 0.04, 0.04],
        [0.28, 0.0, 0.0, 0.60, 0.0, 0.07, 0.05],
        [0.10, 0.01, 0.01, 0.38, 0.0, 0.41, 0.09],
        [0.40, 0.05, 0.03, 0.24, 0.01, 0.13, 0.14],
    ]
)
# Adult (18+) share offsets and age-band log-weight shifts per community.
_ADULT_OFFSET = np.array([0.02, -0.08, -0.08, -0.02, -0.03, -0.06, -0.18, -0.04])
_AGE_BASE = np.log([0.20, 0.33, 0.25, 0.16, 0.06])
_AGE_INNER = np.array([0.5, 0.15, 0.0, -0.4, -0.5])
_AGE_GROUP = np.array(
    [
        [-0.1, -0.1, 0.0, 0.15, 0.2],
        [-0.1, -0.1, 0.0, 0.15, 0.2],
        [0.3, 0.3, -0.1, -0.6, -1.0],
        [0.2, 0.3, -0.1, -0.5, -0.9],
        [0.2, 0.3, -0.1, -0.5, -0.9],
        [0.2, 0.3, 0.0, -0.6, -1.2],
        [0.6, 0.2, -0.4, -0.9, -1.3],
        [0.3, 0.4, -0.2, -0.8, -1.2],
    ]
)
#: IMD decile cut-offs on imd_score (decile 1 = score ≥ first value), chosen to resemble
#: England's IoD2019 distribution; the city is more deprived than England as a whole.
IMD_DECILE_CUTS = (34.0, 27.0, 22.0, 18.0, 14.5, 11.5, 9.0, 6.8, 4.8)


@dataclass
class Population:
    """Per-OA arrays (OA order of the tessellation)."""

    innerness: np.ndarray  # (n,)
    deprivation: np.ndarray  # (n,) standardised latent
    imd_score: np.ndarray  # (n,) of the OA's LSOA
    imd_decile: np.ndarray  # (n,)
    residents: np.ndarray  # (n, 8) by community, all ages
    religion: np.ndarray  # (n, 7) residents by RELIGIONS
    eligible: np.ndarray  # (n, 8, 5) adults by community and age band
    logit: np.ndarray  # (n, 8, 5) true uptake logit before planting
    z_imd: np.ndarray  # (n,)
    imd_mean: float
    imd_sd: float


def _scale(n_areas: int) -> float:
    return n_areas / 2000.0


def _pick_centres(
    rng: np.random.Generator, xy: np.ndarray, weight: np.ndarray, k: int
) -> np.ndarray:
    idx = rng.choice(len(xy), size=k, replace=False, p=weight / weight.sum())
    return xy[idx]


def _bump_field(
    rng: np.random.Generator,
    raster: Raster,
    xy: np.ndarray,
    weight: np.ndarray,
    k: int,
    amp: tuple[float, float],
    sigma: tuple[float, float],
) -> np.ndarray:
    """Field (read at ``xy``) of ``k`` bumps centred on OAs chosen with ``weight``."""
    where = _pick_centres(rng, xy, weight, k)
    drawn = raster.bumps(where[:, 0], where[:, 1], rng.uniform(*amp, k), rng.uniform(*sigma, k))
    return raster.sample(drawn, xy[:, 0], xy[:, 1])


def build_population(rng: np.random.Generator, tess: Tessellation) -> Population:
    """Draw every resident-level quantity of the city (see :mod:`geo.synthetic`)."""
    xy = tess.centroid_xy
    n = len(xy)
    s = _scale(n)
    raster = Raster.covering(tess.outline.bounds)
    inner = tess.centres.innerness(xy[:, 0], xy[:, 1])

    def noise(length_m: float) -> np.ndarray:
        return raster.sample(raster.noise(rng, length_m), xy[:, 0], xy[:, 1])

    # Deprivation: inner city + smooth noise + deprived estates + affluent suburbs.
    latent = 1.8 * inner + 0.7 * noise(1200.0) + 0.3 * noise(400.0)
    latent += _bump_field(
        rng, raster, xy, 1.05 - inner, max(2, round(3 * s)), (1.2, 2.0), (400.0, 800.0)
    )
    latent -= _bump_field(
        rng, raster, xy, (1.05 - inner) ** 2, max(3, round(4 * s)), (1.2, 2.0), (600.0, 1200.0)
    )
    deprivation = (latent - latent.mean()) / latent.std()
    imd_score, imd_decile = _imd(deprivation, tess.lsoa_code)

    # Ethnic mix: softmax of community logits against White.
    logits = np.zeros((n, len(SUBGROUPS)))
    for j, group in enumerate(SUBGROUPS[1:], start=1):
        logits[:, j] = (
            _ETH_BASE[group] + _ETH_INNER[group] * inner + _ETH_DEPRIVATION[group] * deprivation
        )
        logits[:, j] += 0.35 * noise(1000.0)
    dep = np.exp(np.clip(deprivation, -3, 3))
    community_bumps = {
        "asian_muslim": (dep * (0.05 + inner), max(1, round(2 * s)), (2.8, 3.5)),
        "asian_hindu": (
            np.exp(-0.5 * (deprivation - 0.3) ** 2) * (0.3 + inner),
            max(1, round(2 * s)),
            (2.8, 3.5),
        ),
        "asian_sikh": (
            np.exp(-0.5 * deprivation**2) * (0.2 + inner),
            max(1, round(1.5 * s)),
            (3.2, 3.8),
        ),
        "black": (dep * (0.2 + inner), max(1, round(1.5 * s)), (1.5, 2.2)),
        "white_jewish": (
            np.exp(-1.5 * np.clip(deprivation, -3, 3)) * (1.05 - inner),
            max(1, round(0.5 * s)),
            (5.5, 6.5),
        ),
    }
    for group, (weight, k, amp) in community_bumps.items():
        logits[:, SUBGROUPS.index(group)] += _bump_field(
            rng, raster, xy, weight, k, amp, (500.0, 900.0)
        )
    shares = softmax(logits)

    residents_total = np.clip(np.round(rng.normal(320.0, 45.0, n)), 200, 560).astype(np.int64)
    residents = rng.multinomial(residents_total, shares)
    religion = rng.multinomial(residents, _RELIGION_GIVEN_GROUP).sum(axis=1)
    adult_share = np.clip(
        0.80 - 0.07 * inner[:, None] - 0.025 * deprivation[:, None] + _ADULT_OFFSET, 0.55, 0.93
    )
    adults = rng.binomial(residents, adult_share)
    age_logw = (
        _AGE_BASE
        + _AGE_INNER * (inner + 0.3 * np.clip(deprivation, -2, 2))[:, None, None]
        + _AGE_GROUP
    )
    eligible = rng.multinomial(adults, softmax(age_logw))

    imd_mean, imd_sd = float(np.mean(imd_score)), float(np.std(imd_score))
    z_imd = (imd_score - imd_mean) / imd_sd
    b_eth = np.array([B_ETH[g] for g in SUBGROUPS])
    u = SPATIAL_NOISE_SD * noise(SPATIAL_NOISE_LENGTH_M) + AREA_NOISE_SD * rng.standard_normal(n)
    logit = B0 + B_AGE[None, None, :] + b_eth[None, :, None] + (B_IMD * z_imd + u)[:, None, None]
    return Population(
        inner,
        deprivation,
        imd_score,
        imd_decile,
        residents,
        religion,
        eligible,
        logit,
        z_imd,
        imd_mean,
        imd_sd,
    )


def _imd(deprivation: np.ndarray, lsoa_code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IMD score per OA (its LSOA's): the LSOA mean latent, rank-mapped to a Gamma(2, 13)
    distribution (mean ≈ 26, long right tail, capped at 92), then national-like deciles."""
    _, inverse = np.unique(lsoa_code, return_inverse=True)
    mean_latent = np.bincount(inverse, weights=deprivation) / np.bincount(inverse)
    score = np.round(
        np.minimum(stats.gamma.ppf(rank_to_unit(mean_latent), a=2.0, scale=13.0), 92.0), 3
    )
    decile = 1 + np.searchsorted(-np.asarray(IMD_DECILE_CUTS), -score, side="right")
    return score[inverse], decile[inverse]


def plant_pockets(
    rng: np.random.Generator, tess: Tessellation, imd_decile: np.ndarray, n_pockets: int
) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous low-uptake pockets: ``(pocket_id per OA, 0 = none; logit shift per OA)``.

    Sizes run geometrically from 3 to 25 OAs and depths from -0.8 to -2.0 (shuffled, so
    size and depth are unrelated); even-numbered pockets start in deprived areas (IMD
    decile 1–3), odd ones in less deprived areas (decile ≥ 5). Pockets grow from a seed
    OA to the nearest adjacent OAs and keep two rings of OAs away from each other, so
    each is one separate cluster.
    """
    n = len(imd_decile)
    pocket = np.zeros(n, dtype=np.int64)
    depth = np.zeros(n)
    if n_pockets <= 0:
        return pocket, depth
    sizes = (
        [10]
        if n_pockets == 1
        else np.round(3 * (25 / 3) ** (np.arange(n_pockets) / (n_pockets - 1))).astype(int)
    )
    depths = rng.permutation(np.linspace(-0.8, -2.0, n_pockets))
    adj = tess.adjacency
    forbidden = np.zeros(n, dtype=bool)
    xy = tess.centroid_xy
    for k in range(n_pockets):
        wanted = imd_decile <= 3 if k % 2 == 0 else imd_decile >= 5
        members: list[int] = []
        for _attempt in range(30):
            pool = np.flatnonzero(~forbidden & wanted)
            if len(pool) == 0:
                pool = np.flatnonzero(~forbidden)
            if len(pool) == 0:
                break
            members = _grow(adj, xy, int(rng.choice(pool)), int(sizes[k]), forbidden)
            if len(members) >= min(3, int(sizes[k])):
                break
        if not members:
            continue
        pocket[members] = k + 1
        depth[members] = depths[k]
        ring = np.zeros(n, dtype=bool)
        ring[members] = True
        for _ in range(2):
            ring |= (adj @ ring.astype(np.int64)) > 0
        forbidden |= ring
    return pocket, depth


def _grow(
    adj: sparse.csr_matrix, xy: np.ndarray, seed: int, size: int, forbidden: np.ndarray
) -> list[int]:
    members = [seed]
    inside = {seed}
    while len(members) < size:
        frontier = {int(j) for i in members for j in adj.indices[adj.indptr[i] : adj.indptr[i + 1]]}
        frontier = {j for j in frontier - inside if not forbidden[j]}
        if not frontier:
            break
        # Nearest to the seed keeps the pocket compact; ties go to the lower index.
        best = min(frontier, key=lambda j: (float(np.hypot(*(xy[j] - xy[seed]))), j))
        members.append(best)
        inside.add(best)
    return members


def uptake_cells(
    rng: np.random.Generator, pop: Population, pocket_depth: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reported cells ``(eligible, vaccinated)`` of shape (n, 5 groups, 5 bands) and the
    eligible-weighted true uptake per OA before and after planting."""
    p_before = sigmoid(pop.logit)
    p_after = sigmoid(pop.logit + pocket_depth[:, None, None])
    vaccinated = rng.binomial(pop.eligible, p_after)
    report = np.zeros((len(SUBGROUPS), len(ETHNIC_GROUPS)))
    report[np.arange(len(SUBGROUPS)), [ETHNIC_GROUPS.index(g) for g in REPORTED_AS]] = 1.0
    eligible_rep = np.einsum("nsb,sg->ngb", pop.eligible, report).astype(np.int64)
    vaccinated_rep = np.einsum("nsb,sg->ngb", vaccinated, report).astype(np.int64)
    total = pop.eligible.sum(axis=(1, 2))
    before = (pop.eligible * p_before).sum(axis=(1, 2)) / total
    after = (pop.eligible * p_after).sum(axis=(1, 2)) / total
    return eligible_rep, vaccinated_rep, before, after
