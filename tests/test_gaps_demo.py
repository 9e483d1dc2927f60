"""The whole gap analysis on the demo city (known truth), plus edge cases."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo._errors import ParameterError
from geo.dataset import Dataset, empty_sites
from geo.synthetic import SyntheticCity, generate_city
from models.disclosure import apply_disclosure
from models.gaps import TABLE_COLUMNS, GapParams, GapResult, analyse_gaps

TARGET = 0.8


@pytest.fixture(scope="module")
def demo() -> tuple[SyntheticCity, GapResult]:
    city = generate_city(n_areas=2000, network=False, seed=42)
    stages: list[float] = []
    result = analyse_gaps(
        city.to_dataset(),
        GapParams(target=TARGET),
        progress=lambda fraction, stage: stages.append(fraction),
    )
    assert stages[0] == 0.0 and stages[-1] == 1.0 and stages == sorted(stages)
    return city, result


def test_gap_table_shape(demo: tuple[SyntheticCity, GapResult]) -> None:
    city, result = demo
    table = result.table
    eth = [c for c in table.columns if c.startswith("eth_")]
    assert list(table.columns[: len(TABLE_COLUMNS) + len(eth)]) == TABLE_COLUMNS + eth
    assert eth == ["eth_asian", "eth_black", "eth_mixed", "eth_white", "eth_other"]
    assert len(table) == 2000 and table["area_code"].is_unique
    assert table["priority"].tolist() == list(range(1, 2001))
    assert (table["shortfall"] >= 0).all()
    assert set(table["flag"].astype(str)) <= {"none", "below_target", "below_expected", "both"}
    totals = city.uptake.groupby("area_code")[["eligible", "vaccinated"]].sum()
    merged = table.set_index("area_code").join(totals, suffixes=("", "_raw"))
    assert (merged["eligible"] == merged["eligible_raw"]).all()
    expected_shortfall = np.maximum(
        np.ceil(TARGET * merged["eligible"] - merged["vaccinated"] - 1e-9), 0
    )
    assert (merged["shortfall"] == expected_shortfall).all()
    # the equity-weighted shortfall never increases down the priority order
    score = table["shortfall"] * table["equity_weight"]
    assert (np.diff(score.to_numpy()) <= 1e-9).all()


def test_planted_pockets_are_flagged_below_expected(demo: tuple[SyntheticCity, GapResult]) -> None:
    """Recall and false-flag rate of ``below_expected`` against the planted truth.

    Pockets are planted as a logit shift *below the model* (truth.csv's
    ``expected_uptake_true`` is an area's true uptake before planting, ``true_uptake``
    after), so the flag that should find them is ``below_expected`` (or ``both``), not
    ``below_target``. An area's true shortfall against the model is
    ``eligible × (expected_uptake_true − true_uptake)`` people; recall is measured over
    planted areas whose true shortfall is at least the default minimum shortfall (10
    people), the false-flag rate over all unplanted areas.
    """
    city, result = demo
    table = result.table.set_index("area_code")
    truth = city.truth.set_index("area_code").reindex(table.index)
    true_shortfall = table["eligible"] * (truth["expected_uptake_true"] - truth["true_uptake"])
    found = table["flag"].isin(["below_expected", "both"])
    planted = truth["planted"] == 1
    eligible_for_recall = planted & (true_shortfall >= GapParams().min_shortfall)
    assert eligible_for_recall.sum() >= 60  # 67 planted areas in this city
    recall = found[eligible_for_recall].mean()
    false_flag_rate = found[~planted].mean()
    assert recall >= 0.85, recall  # measured 0.88
    assert false_flag_rate <= 0.05, false_flag_rate  # measured 0.003


def test_pockets_are_found_as_clusters(demo: tuple[SyntheticCity, GapResult]) -> None:
    city, result = demo
    table = result.table.set_index("area_code")
    truth = city.truth.set_index("area_code").reindex(table.index)
    for pocket in city.params["pockets"]:
        if pocket["n_areas"] >= 5:
            assert table.loc[pocket["area_codes"], "cluster_id"].notna().any(), pocket["pocket_id"]
    member = table["cluster_id"].notna()
    # Members are planted, or truly below the target (deprived low-uptake areas).
    explained = member & ((truth["planted"] == 1) | (truth["true_uptake"] < TARGET))
    assert explained.sum() / member.sum() >= 0.9  # measured 0.99
    clusters = result.clusters
    assert clusters.crs.to_epsg() == 4326 and len(clusters) >= 5
    assert clusters["cluster_id"].tolist() == list(range(1, len(clusters) + 1))
    sizes = table["cluster_id"].value_counts().sort_index()
    assert sizes.tolist() == clusters["n_areas"].tolist()
    assert (clusters["p_value"] <= 0.05).all()
    first = clusters.iloc[0]
    members = table[table["cluster_id"] == 1]
    assert first["shortfall"] == members["shortfall"].sum()
    assert first["uptake"] == pytest.approx(members["vaccinated"].sum() / members["eligible"].sum())


def test_group_tables_and_reports(demo: tuple[SyntheticCity, GapResult]) -> None:
    city, result = demo
    assert set(result.group_tables) == {"age_band", "ethnic_group"}
    ages = result.group_tables["age_band"]
    assert len(ages) == 2000 * 5 and set(ages["group"]) == {"age_band"}
    assert set(ages["group_value"].astype(str)) == {"18-29", "30-49", "50-64", "65-79", "80+"}
    assert list(ages.columns[:5]) == [
        "area_code",
        "area_name",
        "parent_code",
        "group",
        "group_value",
    ]
    by_band = ages.groupby("group_value", observed=True)[["eligible", "vaccinated"]].sum()
    raw = city.uptake.groupby("age_band")[["eligible", "vaccinated"]].sum()
    assert (by_band.to_numpy() == raw.loc[by_band.index.astype(str)].to_numpy()).all()
    # expected uptake by age follows the generator: 80+ far above 18–29
    expected = ages.groupby("group_value", observed=True)["expected_uptake"].mean()
    assert expected["80+"] > expected["18-29"] + 0.2

    report = result.model_report
    json.dumps(report, allow_nan=False)
    json.dumps(result.inequality, allow_nan=False)
    assert report["expected_model"]["model"] == "cell_logistic"
    assert report["expected_model"]["deviance_explained"] > 0.7
    assert report["overdispersion"]["phi"] > 1 and report["overdispersion"]["tau2"] > 0
    assert report["smoothing"]["prior_strength"] > 10
    assert sum(report["flags"].values()) == 2000
    sii = result.inequality["sii"]
    assert sii["sii"] > 0.1 and sii["sii_ci_low"] < sii["sii"] < sii["sii_ci_high"]
    assert {"ethnic_group", "age_band"} == set(result.inequality["by_group"])


def test_publication_hides_small_counts(demo: tuple[SyntheticCity, GapResult]) -> None:
    _, result = demo
    table = result.group_tables["ethnic_group"]
    published = apply_disclosure(
        table,
        count_columns=["eligible", "vaccinated", "shortfall"],
        rate_columns={
            c: ["eligible", "vaccinated"]
            for c in ("uptake", "ci_low", "ci_high", "smoothed_uptake", "expected_uptake")
        },
    )
    for column in ("eligible", "vaccinated", "shortfall"):
        assert not published[column].dropna().between(1, 7).any()
    hidden = published["vaccinated"].isna()
    assert hidden.any() and published.loc[hidden, "uptake"].isna().all()
    assert published.loc[hidden, "suppressed"].map(lambda s: "uptake" in s).all()


def _tiny_dataset(n: int, *, indicators: bool) -> Dataset:
    boxes = [shapely.box(-1.2 + 0.01 * i, 52.6, -1.19 + 0.01 * i, 52.61) for i in range(n)]
    codes = [f"E0000000{i}" for i in range(n)]
    areas = gpd.GeoDataFrame(
        {"area_code": codes, "area_name": codes, "parent_code": None},
        geometry=boxes,
        crs="EPSG:4326",
    )
    uptake = pd.DataFrame(
        {
            "area_code": codes,
            "age_band": "",
            "sex": "",
            "ethnic_group": "",
            "eligible": np.arange(n) * 10 + 100,
            "vaccinated": np.arange(n) * 5 + 60,
        }
    )
    table = (
        pd.DataFrame(
            {"imd_decile": np.arange(n) % 10 + 1.0}, index=pd.Index(codes, name="area_code")
        )
        if indicators
        else pd.DataFrame(index=pd.Index([], name="area_code"))
    )
    return Dataset(name="tiny", areas=areas, uptake=uptake, indicators=table, sites=empty_sites())


def test_no_indicators_uses_the_overall_rate() -> None:
    result = analyse_gaps(
        _tiny_dataset(30, indicators=False), GapParams(permutations=99, sii_repetitions=1000)
    )
    overall = result.model_report["overall_uptake"]
    np.testing.assert_allclose(result.table["expected_uptake"], overall)
    assert "no indicators" in result.model_report["expected_model"]["reason"]
    assert result.model_report["reasons"] and result.inequality["sii"] is None
    assert result.group_tables == {}


def test_tiny_dataset_runs_with_reasons() -> None:
    result = analyse_gaps(
        _tiny_dataset(4, indicators=True), GapParams(permutations=99, sii_repetitions=1000)
    )
    assert len(result.table) == 4
    assert "too few areas" in result.model_report["expected_model"]["reason"]
    assert "at least 5" in result.inequality["sii_reason"]
    json.dumps(result.model_report, allow_nan=False)


def test_bad_parameters_are_all_listed() -> None:
    with pytest.raises(ParameterError) as info:
        GapParams(
            target=1.5,
            fdr_alpha=0.0,
            min_shortfall=-1,
            imd_quintile_weights={7: 1.0},
            model_candidates=("magic",),
        )
    fields = {error["loc"][0] for error in info.value.errors}
    assert fields == {
        "target",
        "fdr_alpha",
        "min_shortfall",
        "imd_quintile_weights",
        "model_candidates",
    }
